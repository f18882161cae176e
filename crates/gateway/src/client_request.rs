//! The part every client-authenticated endpoint shares (token, introspection, revocation):
//! find the server, read the credentials and the body, apply the rate limits (the client the
//! request names and its source address, in one short-lived-store round trip, before the
//! authentication they protect), authenticate the client.

use std::sync::Arc;

use actix_web::{web, HttpRequest};
use tollgate_core::client_auth::{self, Authenticated};
use tollgate_core::oauth::{ClientEndpoint, GrantType, TokenParams};
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
    // Only a grant type we serve is recorded: the parameter itself is the client's free text.
    if let Some(grant) = params.grant_type.as_deref().and_then(GrantType::parse) {
        tracing::Span::current().record("tollgate.grant_type", grant.as_str());
    }
    let certificate = crate::client_cert::client_certificate(req)
        .map_err(|e| e.with_basic_challenge(basic.is_some()))?;
    let request = client_auth::Request {
        basic: basic.as_ref(),
        params: &params,
        certificate: certificate.as_ref(),
        endpoint,
        address: crate::client_addr::client_address(req),
    };
    rate_limit::check_client_endpoint(
        &app.rate_limiter(),
        endpoint.label(),
        &server.server,
        client_auth::presented_client_id(&request).as_ref(),
        crate::client_addr::client_address(req),
    )
    .await?;
    let client = client_auth::authenticate(&app.client_auth(), &server, request).await?;
    Ok(ClientRequest {
        server,
        params,
        client,
    })
}
