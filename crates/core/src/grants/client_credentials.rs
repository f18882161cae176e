//! The client credentials grant (RFC 6749 §4.4): a confidential client obtains an access
//! token for itself. No refresh token is issued (§4.4.3).

use crate::app::Tollgate;
use crate::client_auth::Authenticated;
use crate::clock;
use crate::oauth::OAuthError;
use crate::registry::ServerRuntime;
use crate::scope::Scopes;
use crate::server::AuthMethod;
use crate::tokens::{AccessTokenClaims, Audience, Confirmation, TokenResponse};

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
    let aud = audience(server, &c.metadata.audience, params)?;
    let now = clock::now();
    let ttl = server.server.access_token_ttl;
    let jti = uuid::Uuid::new_v4().to_string();
    let scope = (!granted.is_empty()).then(|| granted.to_scope_string());
    let cnf = auth
        .certificate_thumbprint
        .as_deref()
        .filter(|_| server.server.tls_client_certificate_bound_access_tokens)
        .map(|x5t| Confirmation { x5t_s256: x5t });
    let claims = AccessTokenClaims {
        iss: &server.issuer,
        sub: c.client_id.as_str(),
        aud: &aud,
        exp: now + ttl,
        iat: now,
        nbf: now,
        jti: &jti,
        client_id: c.client_id.as_str(),
        scope: scope.as_deref(),
        cnf,
    };
    let access_token = claims.sign(&server.signing_key).map_err(|e| {
        tracing::error!(error = %e, "signing failed");
        OAuthError::server_error()
    })?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: ttl,
        scope,
        refresh_token: None,
        id_token: None,
    })
}

/// `aud`: the requested `resource`s (RFC 8707) or `audience`, each of which must be one the
/// client registered; otherwise the server's default audience, or the issuer.
fn audience(
    server: &ServerRuntime,
    registered: &[String],
    params: &TokenParams,
) -> Result<Audience, OAuthError> {
    let mut requested: Vec<String> = params.resource.clone();
    if let Some(a) = &params.audience {
        requested.extend(a.split(' ').filter(|s| !s.is_empty()).map(str::to_owned));
    }
    for r in &params.resource {
        let ok = url::Url::parse(r).is_ok_and(|u| u.fragment().is_none());
        if !ok {
            return Err(OAuthError::invalid_target(
                "`resource` must be an absolute URI without a fragment (RFC 8707 §2)",
            ));
        }
    }
    if requested.is_empty() {
        let default = server
            .server
            .default_audience
            .clone()
            .unwrap_or_else(|| server.issuer.clone());
        return Ok(Audience::One(default));
    }
    requested.dedup();
    if let Some(bad) = requested.iter().find(|r| !registered.contains(r)) {
        let shown: String = bad.chars().filter(|c| !c.is_control()).take(200).collect();
        return Err(OAuthError::invalid_target(format!(
            "the client may not request tokens for `{shown}`"
        )));
    }
    Ok(if requested.len() == 1 {
        Audience::One(requested.remove(0))
    } else {
        Audience::Many(requested)
    })
}
