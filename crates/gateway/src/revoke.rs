//! `POST /{tid}/{aid}/oauth2/revoke` (RFC 7009).

use actix_web::{web, HttpRequest, HttpResponse};
use tollgate_core::oauth::ClientEndpoint;
use tollgate_core::{introspection, Tollgate};

use crate::{client_request, no_store, OAuthResponse};

/// The revocation endpoint: `200` with an empty body whether or not the token was valid.
pub async fn revoke(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let r = client_request::authenticate(&app, &path, &req, payload, ClientEndpoint::Revocation)
        .await?;
    introspection::revoke(&app, &r.server, &r.client, &r.params).await?;
    Ok(no_store().finish())
}
