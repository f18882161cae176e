//! `POST /{tid}/{aid}/oauth2/par` (RFC 9126): a pushed authorization request, authenticated
//! like a token request; answers `201 {request_uri, expires_in}` or an RFC 9126 §2.3 error.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use tollgate_core::authorize::pushed;
use tollgate_core::oauth::ClientEndpoint;
use tollgate_core::Tollgate;

use crate::{client_request, OAuthResponse};

/// The pushed authorization request endpoint.
pub async fn par(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let (r, pairs) = client_request::authenticate_form(
        &app,
        &path,
        &req,
        payload,
        ClientEndpoint::PushedAuthorization,
    )
    .await?;
    let pushed = pushed::push(&app, &r.server, &r.client.client, pairs).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .json(pushed))
}
