//! The OpenID Connect UserInfo endpoint (OIDC Core §5.3): the claims of the user an access
//! token was issued for, released by the token's scopes (§5.4). Bearer tokens as RFC 6750
//! sends them; errors as RFC 6750 §3.1 names them.

use serde_json::{Map, Value};

use crate::app::Tollgate;
use crate::ids::UserId;
use crate::introspection;
use crate::model::users::claims_for_scopes;
use crate::oauth::{ErrorCode, OAuthError};
use crate::registry::ServerRuntime;
use crate::scope::Scopes;
use crate::store::store_failure;

/// Why a UserInfo request was refused (RFC 6750 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserinfoError {
    /// No token: `401` with a bare `Bearer` challenge (§3.1: no error code).
    NoToken,
    /// `400 invalid_request`.
    InvalidRequest(&'static str),
    /// `401 invalid_token`: expired, revoked, malformed, foreign, or not a user's.
    InvalidToken(&'static str),
    /// `403 insufficient_scope`: the token lacks `openid`.
    InsufficientScope,
    /// `503`.
    Unavailable,
}

impl UserinfoError {
    /// The RFC error code of the response body. A request without a token is an
    /// `invalid_request` there, though its challenge names no error (§3.1).
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NoToken | Self::InvalidRequest(_) => ErrorCode::InvalidRequest,
            Self::InvalidToken(_) => ErrorCode::InvalidToken,
            Self::InsufficientScope => ErrorCode::InsufficientScope,
            Self::Unavailable => ErrorCode::TemporarilyUnavailable,
        }
    }

    /// The error the `WWW-Authenticate: Bearer` challenge names: none when the request
    /// carried no token at all (RFC 6750 §3.1).
    #[must_use]
    pub fn challenge_error(&self) -> Option<ErrorCode> {
        match self {
            Self::NoToken => None,
            _ => Some(self.code()),
        }
    }

    /// HTTP status (RFC 6750 §3.1).
    #[must_use]
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidRequest(_) => 400,
            Self::NoToken | Self::InvalidToken(_) => 401,
            Self::InsufficientScope => 403,
            Self::Unavailable => 503,
        }
    }

    /// What went wrong, safe to show the caller.
    #[must_use]
    pub fn description(&self) -> &'static str {
        match self {
            Self::NoToken => "an access token is required",
            Self::InvalidRequest(d) | Self::InvalidToken(d) => d,
            Self::InsufficientScope => "the access token lacks the `openid` scope",
            Self::Unavailable => "a backing store is unavailable; retry later",
        }
    }

    fn from_oauth(e: &OAuthError) -> Self {
        if e.code == ErrorCode::TemporarilyUnavailable {
            Self::Unavailable
        } else {
            Self::InvalidToken("the access token is not valid")
        }
    }
}

/// The claims for `token` on `server`. `certificate_thumbprint` is the `x5t#S256` of the
/// client certificate on this request, checked against a certificate-bound token's `cnf`
/// (RFC 8705 §3).
///
/// # Errors
/// As [`UserinfoError`] says.
pub async fn userinfo(
    app: &Tollgate,
    server: &ServerRuntime,
    token: &str,
    certificate_thumbprint: Option<&str>,
) -> Result<Map<String, Value>, UserinfoError> {
    let invalid = UserinfoError::InvalidToken("the access token is invalid, expired or revoked");
    let claims = introspection::verify(server, token).ok_or(invalid.clone())?;
    if introspection::is_revoked(app, server, &claims)
        .await
        .map_err(|e| UserinfoError::from_oauth(&e))?
    {
        return Err(invalid);
    }
    if let Some(bound) = claims
        .get("cnf")
        .and_then(|c| c.get("x5t#S256"))
        .and_then(Value::as_str)
    {
        if certificate_thumbprint != Some(bound) {
            return Err(UserinfoError::InvalidToken(
                "the access token is bound to a client certificate this request did not present",
            ));
        }
    }
    let scopes = Scopes::parse(claims.get("scope").and_then(Value::as_str).unwrap_or(""))
        .unwrap_or_default();
    if !scopes.contains("openid") {
        return Err(UserinfoError::InsufficientScope);
    }
    // Only tokens issued to a user carry `auth_time`; a client's own token has no user.
    if claims.get("auth_time").is_none() {
        return Err(UserinfoError::InvalidToken(
            "the access token was not issued to a user",
        ));
    }
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    let user_id = UserId::parse(sub).map_err(|_| invalid.clone())?;
    let user = app
        .repo
        .get_user(&server.server.tenant_id, &server.server.id, &user_id)
        .await
        .map_err(|e| UserinfoError::from_oauth(&store_failure(&e)))?
        .ok_or(UserinfoError::InvalidToken("the user no longer exists"))?;
    let mut out = Map::new();
    out.insert("sub".into(), Value::String(user.id.to_string()));
    out.extend(claims_for_scopes(&user.claims, &scopes));
    if scopes.contains("profile") && !out.contains_key("preferred_username") {
        out.insert("preferred_username".into(), Value::String(user.username));
    }
    Ok(out)
}
