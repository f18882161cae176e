//! The part every client-authenticated endpoint shares (token, introspection, revocation):
//! find the server, read the credentials and the body, authenticate the client.

use std::sync::Arc;

use actix_web::http::header::HeaderName;
use actix_web::{web, HttpRequest};
use tollgate_core::client_auth::{self, Authenticated};
use tollgate_core::grants::{self, TokenParams};
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

/// Reads and authenticates a request to `{issuer}/{endpoint}` (e.g. `oauth2/token`).
pub async fn authenticate(
    app: &Tollgate,
    path: &(String, String),
    req: &HttpRequest,
    payload: web::Payload,
    endpoint: &str,
) -> Result<ClientRequest, OAuthResponse> {
    let (t, s) = server_ids(path)?;
    let server = app.server(&t, &s).await?;
    let basic = body::basic_credentials(req)?;
    let params = body::token_params(req, payload)
        .await
        .map_err(|e| e.with_basic_challenge(basic.is_some()))?;
    // Only a grant type we serve is recorded: the parameter itself is the client's free text.
    if let Some(grant) = params
        .grant_type
        .as_deref()
        .and_then(|g| grants::SUPPORTED_GRANTS.iter().find(|s| **s == g))
    {
        tracing::Span::current().record("tollgate.grant_type", *grant);
    }
    let certificate = crate::client_cert::client_certificate(req)
        .map_err(|e| e.with_basic_challenge(basic.is_some()))?;
    let endpoint_url = format!("{}/{endpoint}", server.issuer);
    let request = client_auth::Request {
        basic: basic.as_ref(),
        params: &params,
        certificate: certificate.as_ref(),
        endpoint_url: &endpoint_url,
        address: client_address(app, req),
    };
    let client = client_auth::authenticate(app, &server, request).await?;
    Ok(ClientRequest {
        server,
        params,
        client,
    })
}

/// The client's address: the peer, or what a trusted proxy reported in `X-Forwarded-For`.
pub(crate) fn client_address(app: &Tollgate, req: &HttpRequest) -> Option<std::net::IpAddr> {
    const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    tollgate_core::peer::client_address(
        req.peer_addr().map(|a| a.ip()),
        req.headers()
            .get_all(X_FORWARDED_FOR)
            .filter_map(|v| v.to_str().ok()),
        &app.options.trusted_proxies,
    )
}
