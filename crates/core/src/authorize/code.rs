//! Authorization codes (RFC 6749 §4.1.2): random, at most 60 s, single use, bound to the
//! client, redirect URI, PKCE challenge, scopes, nonce and user. A code lives in the
//! short-lived store under its SHA-256 and is taken atomically (`GETDEL`), so of two
//! exchanges exactly one wins — on every replica. Beside it, what its exchange will issue
//! (the access token's `jti` and the refresh-token family, chosen up front) is kept for the
//! access-token lifetime, so that a second use can revoke them (RFC 6749 §4.1.2).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pkce::Method;
use super::request::AuthorizeRequest;
use super::session::Session;
use crate::app::Tollgate;
use crate::clock;
use crate::ids::{ServerId, TenantId};
use crate::registry::ServerRuntime;
use crate::secrets::{random_token, sha256_b64};
use crate::store::StoreError;

/// What a code stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the request, which the exchange must repeat.
    pub redirect_uri: String,
    /// Granted scopes.
    pub scope: String,
    /// The user.
    pub user_id: String,
    /// When the user authenticated.
    pub auth_time: i64,
    /// How.
    pub amr: Vec<String>,
    /// OIDC `nonce`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    /// PKCE challenge.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code_challenge: Option<String>,
    /// PKCE method.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code_challenge_method: Option<Method>,
    /// `jti` of the access token the exchange issues.
    pub access_jti: String,
    /// Family of the refresh tokens the exchange issues.
    pub family_id: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// What a code's exchange issued, for revocation on reuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    /// The access token's `jti`.
    pub access_jti: String,
    /// When that access token expires at the latest.
    pub access_exp: i64,
    /// The refresh-token family.
    pub family_id: String,
}

fn code_key(t: &TenantId, s: &ServerId, code: &str) -> String {
    format!("code:{t}/{s}/{}", sha256_b64(code))
}

fn issued_key(t: &TenantId, s: &ServerId, code: &str) -> String {
    format!("issued:{t}/{s}/{}", sha256_b64(code))
}

/// Issues a code for an approved request and returns the redirect to the client (with
/// `code`, `state` and RFC 9207 `iss`).
///
/// # Errors
/// When the short-lived store cannot keep the code.
pub(crate) async fn issue(
    app: &Tollgate,
    server: &ServerRuntime,
    request: &AuthorizeRequest,
    session: &Session,
) -> Result<String, StoreError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let code = random_token(32);
    let ttl = app.options.code_ttl;
    let now = clock::now();
    let grant = CodeGrant {
        client_id: request.client_id.to_string(),
        redirect_uri: request.redirect_uri.clone(),
        scope: request.scope.clone(),
        user_id: session.user_id.to_string(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone(),
        code_challenge_method: request.code_challenge_method,
        access_jti: uuid::Uuid::new_v4().to_string(),
        family_id: uuid::Uuid::new_v4().to_string(),
        expires_at: now + i64::try_from(ttl.as_secs()).unwrap_or(60),
    };
    let issued = Issued {
        access_jti: grant.access_jti.clone(),
        access_exp: grant.expires_at + server.server.access_token_ttl,
        family_id: grant.family_id.clone(),
    };
    let keep =
        ttl + Duration::from_secs(u64::try_from(server.server.access_token_ttl).unwrap_or(3600));
    app.short_lived
        .put(&issued_key(t, s, &code), &super::json(&issued)?, keep)
        .await?;
    app.short_lived
        .put(&code_key(t, s, &code), &super::json(&grant)?, ttl)
        .await?;
    let mut params: Vec<(&str, &str)> = vec![("code", &code)];
    if let Some(state) = &request.state {
        params.push(("state", state));
    }
    params.push(("iss", &server.issuer));
    Ok(super::with_query(&request.redirect_uri, &params))
}

/// Takes a code: `Ok(Ok(grant))` the first time; `Ok(Err(issued))` when it is unknown,
/// expired or already used, with what its first exchange issued when that is still known.
///
/// # Errors
/// When the short-lived store cannot be reached.
pub async fn take(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    code: &str,
) -> Result<Result<CodeGrant, Option<Issued>>, StoreError> {
    if code.is_empty() || code.len() > 128 {
        return Ok(Err(None));
    }
    if let Some(grant) = app
        .short_lived
        .take(&code_key(t, s, code))
        .await?
        .and_then(|b| serde_json::from_slice::<CodeGrant>(&b).ok())
        .filter(|g| g.expires_at > clock::now())
    {
        return Ok(Ok(grant));
    }
    // Only the failure path reads this: a replay, an expired code, or a guess.
    let issued = app
        .short_lived
        .get(&issued_key(t, s, code))
        .await?
        .and_then(|b| serde_json::from_slice::<Issued>(&b).ok());
    Ok(Err(issued))
}
