//! `POST /{tid}/{aid}/oauth2/introspect` (RFC 7662).

use actix_web::{web, HttpRequest, HttpResponse};
use tollgate_core::oauth::ClientEndpoint;
use tollgate_core::{introspection, Tollgate};

use crate::{client_request, no_store, OAuthResponse};

/// The introspection endpoint.
pub async fn introspect(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let r = client_request::authenticate(&app, &path, &req, payload, ClientEndpoint::Introspection)
        .await?;
    let answer = introspection::introspect(&app, &r.server, &r.client, &r.params).await?;
    Ok(no_store().json(answer))
}
