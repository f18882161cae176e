//! The part every client-authenticated endpoint shares (token, introspection, revocation,
//! pushed authorization requests):
//! find the server, read the credentials and the body, apply the rate limits and
//! authenticate the client — the source address (and its failed attempts) before the
//! authentication it protects, the client's own bucket only once it authenticated, or the
//! failure counts when it did not (see `rate_limit::ClientEndpointLimits`).

use std::sync::Arc;

use actix_web::{web, HttpRequest};
use tollgate_core::client_auth::{self, Authenticated};
use tollgate_core::oauth::{ClientEndpoint, GrantType, OAuthError, TokenParams};
use tollgate_core::rate_limit;
use tollgate_core::registry::ServerRuntime;
use tollgate_core::Tollgate;

use crate::{body, server_ids, OAuthResponse};

/// An authenticated request to one of a server's client endpoints.
#[derive(Debug)]
pub struct ClientRequest {
    /// The authorization server.
    pub server: Arc<ServerRuntime>,
    /// The body parameters.
    pub params: TokenParams,
    /// The authenticated client.
    pub client: Authenticated,
}

/// Reads and authenticates a request to one of a server's client endpoints.
pub async fn authenticate(
    app: &Tollgate,
    path: &(String, String),
    req: &HttpRequest,
    payload: web::Payload,
    endpoint: ClientEndpoint,
) -> Result<ClientRequest, OAuthResponse> {
    let (t, s) = server_ids(path)?;
    let server = app.server(&t, &s).await?;
    let basic = body::basic_credentials(req)?;
    let params = body::token_params(req, payload, &app.options.limits)
        .await
        .map_err(|e| e.with_basic_challenge(basic.is_some()))?;
    authenticate_params(app, server, req, basic, params, endpoint).await
}

/// Reads and authenticates a form-encoded request to a client endpoint, keeping every
/// name/value pair of the body as well (the pushed authorization request: its parameters
/// are the authorization request's, not only the ones `TokenParams` knows).
pub async fn authenticate_form(
    app: &Tollgate,
    path: &(String, String),
    req: &HttpRequest,
    payload: web::Payload,
    endpoint: ClientEndpoint,
) -> Result<(ClientRequest, Vec<(String, String)>), OAuthResponse> {
    let (t, s) = server_ids(path)?;
    let server = app.server(&t, &s).await?;
    let basic = body::basic_credentials(req)?;
    let challenge = |e: OAuthError| e.with_basic_challenge(basic.is_some());
    let pairs = body::form(req, payload, &app.options.limits)
        .await
        .map_err(challenge)?;
    let params = TokenParams::parse(pairs.clone(), &app.options.limits).map_err(challenge)?;
    let r = authenticate_params(app, server, req, basic, params, endpoint).await?;
    Ok((r, pairs))
}

async fn authenticate_params(
    app: &Tollgate,
    server: Arc<ServerRuntime>,
    req: &HttpRequest,
    basic: Option<client_auth::BasicCredentials>,
    params: TokenParams,
    endpoint: ClientEndpoint,
) -> Result<ClientRequest, OAuthResponse> {
    // Only a grant type we serve is recorded: the parameter itself is the client's free text.
    if let Some(grant) = params.grant_type.as_deref().and_then(GrantType::parse) {
        tracing::Span::current().record("tollgate.grant_type", grant.as_str());
    }
    let certificate = crate::client_cert::client_certificate(req)
        .map_err(|e| e.with_basic_challenge(basic.is_some()))?;
    let address = crate::client_addr::client_address(req);
    let request = client_auth::Request {
        basic: basic.as_ref(),
        params: &params,
        certificate: certificate.as_ref(),
        endpoint,
        address,
    };
    let limits = rate_limit::ClientEndpointLimits::new(
        app.rate_limiter(),
        endpoint.label(),
        &server.server,
        address,
    );
    limits.before_authentication().await?;
    let client = match client_auth::authenticate(&app.client_auth(), &server, request).await {
        Ok(client) => client,
        Err(refused) if refused.failed => {
            return Err(limits
                .failed(refused.client.as_ref(), refused.error)
                .await
                .into())
        }
        Err(refused) => return Err(OAuthError::from(refused).into()),
    };
    limits
        .authenticated(&client.client.client.client_id)
        .await?;
    Ok(ClientRequest {
        server,
        params,
        client,
    })
}
