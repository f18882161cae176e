//! `POST /{tid}/{aid}/oauth2/token` (RFC 6749 §3.2).

use actix_web::{web, HttpRequest, HttpResponse};
use tollgate_core::oauth::ClientEndpoint;
use tollgate_core::{grants, Tollgate};

use crate::{client_request, no_store, OAuthResponse};

/// The token endpoint.
pub async fn token(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let r = client_request::authenticate(&app, &path, &req, payload, ClientEndpoint::Token).await?;
    let response = grants::issue(&app.grants(), &r.server, &r.client, &r.params).await?;
    tracing::debug!(
        tenant = %r.server.server.tenant_id,
        server = %r.server.server.id,
        client_id = %r.client.client.client.client_id,
        method = r.client.method.as_str(),
        grant = r.params.grant_type.as_deref().unwrap_or(""),
        "token issued"
    );
    Ok(no_store().json(response))
}
