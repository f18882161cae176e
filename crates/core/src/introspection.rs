//! Token introspection (RFC 7662) and revocation (RFC 7009) of the access tokens a server
//! issued. Tokens are verified against the server's own published keys, so a token of another
//! server or tenant is simply not active here. Revoked tokens are remembered in the
//! short-lived store until they would have expired, so every replica sees the revocation.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::app::Tollgate;
use crate::client_auth::Authenticated;
use crate::oauth::OAuthError;
use crate::oauth::TokenParams;
use crate::registry::ServerRuntime;
use crate::store::store_failure;

/// An RFC 7662 §2.2 response: `{"active": false}`, or the token's claims with `active: true`.
#[derive(Debug, Clone, Serialize)]
pub struct Introspection {
    /// Whether the token is active.
    pub active: bool,
    /// `Bearer` for active access tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    /// The verified claims (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`, `client_id`,
    /// `scope`, `cnf`).
    #[serde(flatten)]
    pub claims: Map<String, Value>,
}

impl Introspection {
    fn inactive() -> Self {
        Self {
            active: false,
            token_type: None,
            claims: Map::new(),
        }
    }
}

/// Whether the access token with these verified `claims` of `server` was revoked: by its
/// `jti` (the short-lived store), or by what it stands for — its client deleted, its user
/// deleted or their password changed since it was issued (`crate::revoked_subjects`, cached
/// in memory). Fails closed: an unreadable revocation list is an error, not "not revoked".
///
/// # Errors
/// `503` when the short-lived store, or the database with nothing cached, cannot be read.
pub async fn is_revoked(
    app: &Tollgate,
    server: &ServerRuntime,
    claims: &Map<String, Value>,
) -> Result<bool, OAuthError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let revoked = app.directory().revoked_subjects(t, s).await?;
    crate::revocation::is_access_token_revoked(&revoked, app.short_lived.as_ref(), server, claims)
        .await
}

/// A refresh token of `server` issued to `client`, if it is usable.
async fn own_refresh_token(
    app: &Tollgate,
    server: &ServerRuntime,
    client: &Authenticated,
    token: &str,
) -> Result<Option<crate::refresh::RefreshRecord>, OAuthError> {
    if !crate::refresh::looks_like_refresh_token(token) {
        return Ok(None);
    }
    let rec = app
        .repo
        .get_refresh_token(&crate::refresh::digest(token))
        .await
        .map_err(|e| store_failure(&e))?;
    Ok(rec.filter(|r| {
        r.tenant_id == server.server.tenant_id
            && r.server_id == server.server.id
            && r.client_id == client.client.client.client_id
    }))
}

pub(crate) use crate::revocation::verify_access_token as verify;

use crate::revocation::may_learn_about;

fn required_token(params: &TokenParams) -> Result<&str, OAuthError> {
    params
        .token
        .as_ref()
        .map(crate::secrets::ClientSecret::expose)
        .ok_or_else(|| OAuthError::invalid_request("missing parameter `token`"))
}

/// Introspects `params.token` for an authenticated client of `server`.
///
/// # Errors
/// `invalid_request` without a token; `503` when the revocation list cannot be read (fail
/// closed: a revoked token must not look active).
pub async fn introspect(
    app: &Tollgate,
    server: &ServerRuntime,
    client: &Authenticated,
    params: &TokenParams,
) -> Result<Introspection, OAuthError> {
    let token = required_token(params)?;
    // Refresh tokens are opaque: only the client they were issued to learns about them.
    if let Some(rec) = own_refresh_token(app, server, client, token).await? {
        let active = rec.usable(app.clock.now());
        app.metrics.introspection(active);
        if !active {
            return Ok(Introspection::inactive());
        }
        let mut claims = Map::new();
        claims.insert("iss".into(), Value::String(server.issuer.clone()));
        claims.insert("sub".into(), Value::String(rec.user_id.to_string()));
        claims.insert("client_id".into(), Value::String(rec.client_id.to_string()));
        claims.insert("scope".into(), Value::String(rec.scope));
        claims.insert("exp".into(), Value::from(rec.expires_at));
        claims.insert("iat".into(), Value::from(rec.created_at));
        claims.insert("auth_time".into(), Value::from(rec.auth_time));
        return Ok(Introspection {
            active: true,
            token_type: None,
            claims,
        });
    }
    let Some(claims) = verify(server, token) else {
        app.metrics.introspection(false);
        return Ok(Introspection::inactive());
    };
    if !may_learn_about(&server.server, &client.client.client.client_id, &claims) {
        // RFC 7662 §4: indistinguishable from a token that does not exist.
        app.metrics.introspection(false);
        return Ok(Introspection::inactive());
    }
    if is_revoked(app, server, &claims).await? {
        app.metrics.introspection(false);
        return Ok(Introspection::inactive());
    }
    app.metrics.introspection(true);
    Ok(Introspection {
        active: true,
        token_type: Some("Bearer"),
        claims,
    })
}

/// Revokes `params.token` (RFC 7009 §2.1). Invalid, expired and foreign tokens are accepted
/// silently (§2.2); a valid token issued to another client is refused.
///
/// # Errors
/// `invalid_request` without a token; `unauthorized_client` for another client's token;
/// `503` when the revocation cannot be recorded.
pub async fn revoke(
    app: &Tollgate,
    server: &ServerRuntime,
    client: &Authenticated,
    params: &TokenParams,
) -> Result<(), OAuthError> {
    let token = required_token(params)?;
    if crate::refresh::looks_like_refresh_token(token) {
        return revoke_refresh_token(app, server, client, token).await;
    }
    let Some(claims) = verify(server, token) else {
        return Ok(());
    };
    let (Some(jti), Some(exp)) = (
        claims.get("jti").and_then(Value::as_str),
        claims.get("exp").and_then(Value::as_i64),
    ) else {
        return Ok(());
    };
    let owner = claims.get("client_id").and_then(Value::as_str);
    if owner != Some(client.client.client.client_id.as_str()) {
        return Err(OAuthError::unauthorized_client(
            "the token was not issued to this client",
        ));
    }
    app.revocations()
        .revoke_access_token(&server.server.tenant_id, &server.server.id, jti, exp)
        .await?;
    app.metrics.revocation();
    tracing::info!(
        tenant = %server.server.tenant_id,
        server = %server.server.id,
        client_id = %client.client.client.client_id,
        jti,
        "access token revoked"
    );
    Ok(())
}

/// Revokes a refresh token with its whole grant: every token of its family and the access
/// tokens issued with them (RFC 7009 §2.1). Another client's token is refused; an unknown one
/// is accepted silently (§2.2).
async fn revoke_refresh_token(
    app: &Tollgate,
    server: &ServerRuntime,
    client: &Authenticated,
    token: &str,
) -> Result<(), OAuthError> {
    let rec = app
        .repo
        .get_refresh_token(&crate::refresh::digest(token))
        .await
        .map_err(|e| store_failure(&e))?;
    let Some(rec) =
        rec.filter(|r| r.tenant_id == server.server.tenant_id && r.server_id == server.server.id)
    else {
        return Ok(());
    };
    if rec.client_id != client.client.client.client_id {
        return Err(OAuthError::unauthorized_client(
            "the token was not issued to this client",
        ));
    }
    app.revocations()
        .revoke_family(&server.server.tenant_id, &server.server.id, &rec.family_id)
        .await?;
    app.metrics.revocation();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{Algorithm, DecodingKey};
    use serde_json::json;

    use super::*;
    use crate::ids::{ClientId, ServerId, TenantId};
    use crate::keys::{KeyRecord, KeyStatus, MasterKey, TokenType};
    use crate::model::server::Server;
    use crate::model::server::{AuthMethod, SigningAlg};

    fn runtime() -> ServerRuntime {
        let (master, _) = MasterKey::generate();
        let (t, s) = (TenantId::parse("t").unwrap(), ServerId::parse("s").unwrap());
        let rec =
            KeyRecord::generate(&master, &t, &s, SigningAlg::ES256, KeyStatus::Current, 0).unwrap();
        let key = Arc::new(rec.open(&master).unwrap());
        let jwk: Jwk = serde_json::from_value(rec.public_jwk.clone()).unwrap();
        let mut verify_keys = HashMap::new();
        verify_keys.insert(
            rec.kid,
            (DecodingKey::from_jwk(&jwk).unwrap(), Algorithm::ES256),
        );
        ServerRuntime {
            own_client_ca: crate::registry::OwnClientCa::Default,
            trusted_issuer_keys: HashMap::new(),
            server: Server {
                access_token_ttl: 3600,
                refresh_token_ttl: 7200,
                allowed_token_endpoint_auth_methods: vec![AuthMethod::ClientSecretBasic],
                ..Server::example(t, s)
            },
            issuer: "https://issuer.example/t/s".into(),
            tenant_name: "T".into(),
            signing_key: key.clone(),
            current_keys: vec![key],
            jwks: String::new(),
            verify_keys,
        }
    }

    fn claims(exp_offset: i64, nbf_offset: i64, iss: &str) -> Value {
        let now = crate::clock::now();
        json!({"iss": iss, "sub": "c", "aud": iss, "exp": now + exp_offset, "iat": now, "nbf": now + nbf_offset, "jti": "j1", "client_id": "c"})
    }

    #[test]
    fn accepts_only_live_access_tokens_of_this_server() {
        let rt = runtime();
        let iss = rt.issuer.clone();
        let sign = |typ, c: &Value| rt.signing_key.sign_jws(typ, c).unwrap();
        assert!(
            verify(&rt, &sign(TokenType::AccessToken, &claims(60, 0, &iss))).is_some(),
            "live"
        );
        let rows = [
            (
                "expired",
                sign(TokenType::AccessToken, &claims(-1, -10, &iss)),
            ),
            (
                "not yet valid",
                sign(TokenType::AccessToken, &claims(600, 300, &iss)),
            ),
            (
                "an ID token, not an access token",
                sign(TokenType::Jwt, &claims(60, 0, &iss)),
            ),
            (
                "another issuer",
                sign(TokenType::AccessToken, &claims(60, 0, "https://other/t/s")),
            ),
            ("no jti", {
                let mut c = claims(60, 0, &iss);
                c.as_object_mut().unwrap().remove("jti");
                sign(TokenType::AccessToken, &c)
            }),
            (
                "signed by a key this server does not hold",
                runtime()
                    .signing_key
                    .sign_jws(TokenType::AccessToken, &claims(60, 0, &iss))
                    .unwrap(),
            ),
        ];
        for (name, token) in rows {
            assert!(verify(&rt, &token).is_none(), "{name}");
        }
    }

    #[test]
    fn a_client_learns_only_about_its_own_tokens_or_those_naming_it() {
        let mut server = runtime().server;
        let id = |s: &str| ClientId::parse(s).unwrap();
        let claims = |v: Value| v.as_object().unwrap().clone();
        let rows = [
            (
                json!({"client_id": "app", "aud": "https://api"}),
                "app",
                true,
            ),
            (
                json!({"client_id": "app", "aud": "https://api"}),
                "rs",
                false,
            ),
            (json!({"client_id": "app", "aud": "rs"}), "rs", true),
            (
                json!({"client_id": "app", "aud": ["https://api", "rs"]}),
                "rs",
                true,
            ),
            (
                json!({"client_id": "app", "aud": ["https://api"]}),
                "rs",
                false,
            ),
            (json!({"aud": "https://api"}), "rs", false),
        ];
        for (c, who, want) in &rows {
            assert_eq!(
                may_learn_about(&server, &id(who), &claims(c.clone())),
                *want,
                "{who}: {c}"
            );
        }
        server.introspection_clients = vec![id("rs")];
        assert!(may_learn_about(
            &server,
            &id("rs"),
            &claims(rows[1].0.clone())
        ));
        assert!(!may_learn_about(
            &server,
            &id("other"),
            &claims(rows[1].0.clone())
        ));
    }
}
