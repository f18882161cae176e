//! Pushed authorization requests (RFC 9126): the client posts its authorization request to
//! `/oauth2/par` (authenticated like at the token endpoint), it is checked there exactly as
//! `/oauth2/authorize` would check it, and kept in the short-lived store under a random
//! reference; the browser then brings only `client_id` and the `request_uri` naming it.
//!
//! A `request_uri` is unguessable (256 random bits), short-lived (the server's
//! `pushed_authorization_request_ttl`, at most 600 s), single-use (taken atomically) and
//! bound to the client that pushed it: its key holds the client id, so another client's
//! `client_id` finds nothing. The key holds the reference's SHA-256 only.

use serde::{Deserialize, Serialize};

use super::request::{self, AuthorizeRequest, Origin, RawParams};
use super::AuthorizeError;
use crate::app::Tollgate;
use crate::ids::{ClientId, ServerId, TenantId};
use crate::oauth::{ErrorCode, OAuthError};
use crate::registry::{ClientRuntime, ServerRuntime};
use crate::secrets::{random_token, sha256_b64};
use crate::store::{store_failure, Owner};

/// RFC 9126 §2.2: the URN prefix of every `request_uri`.
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// Longest `request_uri` accepted at `/oauth2/authorize` (ours are far shorter).
const MAX_REQUEST_URI: usize = 128;

/// Parameters of a PAR body that authenticate the client, not the authorization request.
const CLIENT_AUTH_PARAMS: &[&str] = &["client_secret", "client_assertion", "client_assertion_type"];

/// What the store keeps for a pushed request. New members (a DPoP key binding, say) take
/// `#[serde(default)]`, so records pushed by an older release still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedRequest {
    /// The checked authorization request.
    pub request: AuthorizeRequest,
    /// When the `request_uri` stops working, Unix seconds on the application's clock.
    pub expires_at: i64,
}

/// The `201` body of `/oauth2/par` (RFC 9126 §2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PushedResponse {
    /// `urn:ietf:params:oauth:request_uri:…`.
    pub request_uri: String,
    /// Seconds it stays usable.
    pub expires_in: i64,
}

fn key(t: &TenantId, s: &ServerId, client_id: &ClientId, reference: &str) -> String {
    format!("par:{t}/{s}/{client_id}/{}", sha256_b64(reference))
}

/// A failed check as the PAR endpoint answers it (RFC 9126 §2.3): JSON, never a redirect.
fn as_oauth(e: AuthorizeError) -> OAuthError {
    match e {
        AuthorizeError::Page { message, .. } => OAuthError::invalid_request(message),
        AuthorizeError::Redirect(r) => OAuthError::authorization(r.error, r.description),
        AuthorizeError::Throttled { retry_after, .. }
        | AuthorizeError::RateLimited { retry_after } => OAuthError::too_many_requests(retry_after),
        AuthorizeError::Unavailable => OAuthError::temporarily_unavailable(),
    }
}

/// `POST /oauth2/par` after the client authenticated: checks the request (the body's
/// parameters, or only those of its `request` object), keeps it, and answers its
/// `request_uri`.
///
/// # Errors
/// `400` with the authorization endpoint's error code (`invalid_request`, `invalid_scope`,
/// `unsupported_response_type`, `invalid_request_object`, …); `429`/`503` from the store.
pub async fn push(
    app: &Tollgate,
    server: &ServerRuntime,
    client: &ClientRuntime,
    pairs: Vec<(String, String)>,
) -> Result<PushedResponse, OAuthError> {
    let pairs: Vec<(String, String)> = pairs
        .into_iter()
        .filter(|(name, _)| !CLIENT_AUTH_PARAMS.contains(&name.as_str()))
        .collect();
    let raw = RawParams::from_pairs(pairs, &app.options.limits).map_err(as_oauth)?;
    if raw.has("request_uri") {
        return Err(OAuthError::invalid_request(
            "`request_uri` cannot be pushed (RFC 9126 §2.1)",
        ));
    }
    let c = &client.client;
    let object;
    let raw = match raw.one("request") {
        Ok(Some(jwt)) => {
            let claims =
                crate::client_auth::request_object::verify(&app.client_auth(), server, client, jwt)
                    .await?;
            object = RawParams::from_claims(&claims, &c.client_id, &app.options.limits)
                .map_err(as_oauth)?;
            &object
        }
        Ok(None) => &raw,
        Err(()) => {
            return Err(OAuthError::invalid_request(
                "parameter `request` is repeated",
            ))
        }
    };
    let request = request::check(server, client, raw, Origin::Pushed).map_err(as_oauth)?;
    let ttl = server.server.pushed_authorization_request_ttl;
    let reference = random_token(32);
    let record = PushedRequest {
        request,
        expires_at: app.clock.now() + ttl,
    };
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let value = crate::store::to_json(&record).map_err(|e| store_failure(&e))?;
    app.short_lived
        .put(
            Owner::new(t, s),
            &key(t, s, &c.client_id, &reference),
            &value,
            std::time::Duration::from_secs(u64::try_from(ttl).unwrap_or(60)),
        )
        .await
        .map_err(|e| store_failure(&e))?;
    tracing::info!(tenant = %t, server = %s, client_id = %c.client_id, "authorization request pushed");
    Ok(PushedResponse {
        request_uri: format!("{REQUEST_URI_PREFIX}{reference}"),
        expires_in: ttl,
    })
}

fn invalid_request_uri() -> AuthorizeError {
    AuthorizeError::page(
        400,
        "invalid_request_uri: the `request_uri` is unknown, was used already, has expired, \
         or belongs to another application. Go back to the application and start again.",
    )
}

/// `/oauth2/authorize` with `client_id` and `request_uri` (RFC 9126 §4): takes the pushed
/// request, once. The redirect URI inside it is not the browser's to choose, so every
/// failure here is an error page.
///
/// # Errors
/// `invalid_request_uri` as a page; `503` when the store cannot answer.
pub(crate) async fn take(
    app: &Tollgate,
    server: &ServerRuntime,
    client_id: &ClientId,
    request_uri: &str,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let Some(reference) = request_uri
        .strip_prefix(REQUEST_URI_PREFIX)
        .filter(|r| !r.is_empty() && request_uri.len() <= MAX_REQUEST_URI)
    else {
        return Err(invalid_request_uri());
    };
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let taken = app
        .short_lived
        .take(Owner::new(t, s), &key(t, s, client_id, reference))
        .await
        .map_err(|e| match store_failure(&e).code {
            ErrorCode::TemporarilyUnavailable => AuthorizeError::Unavailable,
            _ => AuthorizeError::from(e),
        })?;
    let record: PushedRequest = taken
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(invalid_request_uri)?;
    // The store's TTL runs on its own clock; the application's decides.
    if record.expires_at <= app.clock.now() || record.request.client_id != *client_id {
        return Err(invalid_request_uri());
    }
    Ok(record.request)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::audit::{Actor, Origin as AuditOrigin};
    use crate::clock::ManualClock;
    use crate::keys::MasterKey;
    use crate::manage;
    use crate::model::client::NewClient;
    use crate::model::server::NewServer;
    use crate::model::tenant::NewTenant;
    use crate::store::{open_repository, open_short_lived};
    use crate::TollgateOptions;

    const REDIRECT: &str = "https://app.example/cb";

    /// An application on a fresh SQLite file and the in-process store, on a manual clock,
    /// with one server and one client.
    async fn app() -> (Tollgate, Arc<ManualClock>, TenantId, ServerId, ClientId) {
        let dir =
            std::env::temp_dir().join(format!("tollgate-par-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let repo = open_repository(&format!("sqlite://{}?mode=rwc", dir.join("t.db").display()))
            .await
            .unwrap();
        repo.migrate().await.unwrap();
        let clock = Arc::new(ManualClock::new(1_000_000));
        let app = Tollgate::new(
            repo,
            open_short_lived(None).await.unwrap(),
            MasterKey::from_base64(&MasterKey::generate().1).unwrap(),
            TollgateOptions::default(),
        )
        .with_clock(clock.clone());
        let root = AuditOrigin::new(Actor::Root, None);
        let body = |v: serde_json::Value| v;
        manage::create_tenant(
            &app,
            &root,
            serde_json::from_value::<NewTenant>(body(serde_json::json!({"id": "t", "name": "T"})))
                .unwrap(),
        )
        .await
        .unwrap();
        let t = TenantId::parse("t").unwrap();
        manage::create_server(
            &app,
            &root,
            &t,
            serde_json::from_value::<NewServer>(serde_json::json!({"id": "s", "name": "S"}))
                .unwrap(),
        )
        .await
        .unwrap();
        let s = ServerId::parse("s").unwrap();
        let client: NewClient = serde_json::from_value(serde_json::json!({
            "client_id": "web", "redirect_uris": [REDIRECT], "scope": "openid",
            "token_endpoint_auth_method": "client_secret_basic"}))
        .unwrap();
        manage::create_client(&app, &root, &t, &s, client)
            .await
            .unwrap();
        (app, clock, t, s, ClientId::parse("web").unwrap())
    }

    fn form() -> Vec<(String, String)> {
        [
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("state", "x"),
            ("client_secret", "never a parameter"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[tokio::test]
    async fn request_uris_expire_by_the_application_clock_and_are_single_use() {
        let (app, clock, t, s, c) = app().await;
        let server = app.server(&t, &s).await.unwrap();
        let client = app.client(&t, &s, &c).await.unwrap().unwrap();
        let pushed = push(&app, &server, &client, form()).await.unwrap();
        assert_eq!(pushed.expires_in, 60);
        assert!(pushed.request_uri.len() > REQUEST_URI_PREFIX.len() + 40);
        let req = take(&app, &server, &c, &pushed.request_uri).await.unwrap();
        assert_eq!(req.state.as_deref(), Some("x"));
        assert!(matches!(
            take(&app, &server, &c, &pushed.request_uri).await,
            Err(AuthorizeError::Page { status: 400, .. })
        ));
        // Expired by the clock, while the store still holds it.
        let pushed = push(&app, &server, &client, form()).await.unwrap();
        clock.advance(60);
        assert!(matches!(
            take(&app, &server, &c, &pushed.request_uri).await,
            Err(AuthorizeError::Page { status: 400, .. })
        ));
        // Another client's id finds nothing, and leaves it for its owner.
        let pushed = push(&app, &server, &client, form()).await.unwrap();
        let other = ClientId::parse("other").unwrap();
        assert!(take(&app, &server, &other, &pushed.request_uri)
            .await
            .is_err());
        assert!(take(&app, &server, &c, &pushed.request_uri).await.is_ok());
    }
}
