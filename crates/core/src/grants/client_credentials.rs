//! The client credentials grant (RFC 6749 §4.4): a confidential client obtains an access
//! token for itself. No refresh token is issued (§4.4.3).

use crate::app::Tollgate;
use crate::client_auth::Authenticated;
use crate::oauth::OAuthError;
use crate::registry::ServerRuntime;
use crate::scope::Scopes;
use crate::server::AuthMethod;
use crate::tokens::TokenResponse;

use super::TokenParams;

/// Issues an access token to `client` on `server`.
///
/// # Errors
/// `unauthorized_client` when the client may not use this grant, `invalid_scope`,
/// `invalid_target`, or `server_error` when signing fails.
pub fn issue(
    _app: &Tollgate,
    server: &ServerRuntime,
    auth: &Authenticated,
    params: &TokenParams,
) -> Result<TokenResponse, OAuthError> {
    let c = &auth.client.client;
    if c.auth_method() == AuthMethod::None {
        return Err(OAuthError::unauthorized_client(
            "public clients cannot use the client_credentials grant",
        ));
    }
    if !c.has_grant("client_credentials") {
        return Err(OAuthError::unauthorized_client(
            "the client is not registered for the client_credentials grant",
        ));
    }
    let allowed = c.scopes();
    let granted = match params.scope.as_deref() {
        Some(requested) => {
            let requested =
                Scopes::parse(requested).map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
            if !requested.is_subset(&allowed) {
                return Err(OAuthError::invalid_scope(
                    "requested scope exceeds the scope registered for the client",
                ));
            }
            requested
        }
        None => allowed,
    };
    let scope = (!granted.is_empty()).then(|| granted.to_scope_string());
    let access = super::access_token(
        server,
        auth,
        super::Subject {
            sub: c.client_id.as_str(),
            auth_time: None,
        },
        scope.as_deref(),
        params,
        &uuid::Uuid::new_v4().to_string(),
    )?;
    Ok(TokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: server.server.access_token_ttl,
        scope,
        refresh_token: None,
        id_token: None,
    })
}
