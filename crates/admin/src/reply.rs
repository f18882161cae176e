//! Success responses: JSON bodies with the status each operation answers, and `no-store` on
//! any response that carries a client secret.

use actix_web::http::header::{CACHE_CONTROL, PRAGMA};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::Serialize;
use tollgate_core::manage::ClientView;

/// `200` with `body`.
pub(crate) fn ok<T: Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok().json(body)
}

/// `201` with the created object.
pub(crate) fn created<T: Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Created().json(body)
}

/// `204`, for deletions.
pub(crate) fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// A client with `status`; when the view carries the secret (shown this once) no cache may
/// keep the response.
pub(crate) fn client(status: StatusCode, view: &ClientView) -> HttpResponse {
    let mut reply = HttpResponse::build(status);
    if view.client_secret.is_some() {
        reply
            .insert_header((CACHE_CONTROL, "no-store"))
            .insert_header((PRAGMA, "no-cache"));
    }
    reply.json(view)
}
