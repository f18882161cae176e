//! Tollgate's admin REST API: tenants, authorization servers, OAuth clients and signing keys
//! under `/admin`, served on the admin listener.
//!
//! [`configure`] registers every route; the caller supplies the state as app data
//! (`web::Data<tollgate_core::Tollgate>` and `web::Data<AdminAuth>`).
//!
//! How a request flows:
//! - `paths.rs` extractors authenticate the bearer token (`auth.rs`), parse the ids in the
//!   path and authorize the caller for the tenant, in that order;
//! - `body.rs` reads a JSON body (415 / 413 / 400 naming the field) and `paging.rs` the list
//!   query;
//! - the handler (`tenants.rs`, `servers.rs`, `clients.rs`, `keys.rs`) calls one
//!   `tollgate_core::manage` function and answers through `reply.rs`;
//! - every failure is an `AdminError` (`error.rs`), turned into a response in one place.

mod auth;
mod body;
mod clients;
mod error;
mod keys;
mod openapi;
mod paging;
mod paths;
mod reply;
mod servers;
mod tenants;

use actix_web::{web, HttpResponse, Resource};

pub use crate::auth::AdminAuth;
use crate::error::AdminError;
pub use crate::openapi::ApiDoc;

/// Registers every `/admin` route: the API, `GET /admin/openapi.json`, a JSON 405 for a
/// known path with another method, and a JSON 404 for any other path under `/admin`.
///
/// The caller adds the app data: `web::Data<tollgate_core::Tollgate>` (built with
/// `web::Data::from(Arc<Tollgate>)`) and `web::Data<AdminAuth>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .service(resource("/openapi.json", "GET").route(web::get().to(openapi::document)))
            .service(
                resource("/tenants", "GET, POST")
                    .route(web::get().to(tenants::list))
                    .route(web::post().to(tenants::create)),
            )
            .service(
                resource("/tenants/{tid}", "GET, PATCH, DELETE")
                    .route(web::get().to(tenants::get))
                    .route(web::patch().to(tenants::patch))
                    .route(web::delete().to(tenants::delete)),
            )
            .service(
                resource("/tenants/{tid}/servers", "GET, POST")
                    .route(web::get().to(servers::list))
                    .route(web::post().to(servers::create)),
            )
            .service(
                resource("/tenants/{tid}/servers/{aid}", "GET, PATCH, DELETE")
                    .route(web::get().to(servers::get))
                    .route(web::patch().to(servers::patch))
                    .route(web::delete().to(servers::delete)),
            )
            .service(
                resource("/tenants/{tid}/servers/{aid}/clients", "GET, POST")
                    .route(web::get().to(clients::list))
                    .route(web::post().to(clients::create)),
            )
            .service(
                resource(
                    "/tenants/{tid}/servers/{aid}/clients/{client_id}",
                    "GET, PUT, DELETE",
                )
                .route(web::get().to(clients::get))
                .route(web::put().to(clients::replace))
                .route(web::delete().to(clients::delete)),
            )
            .service(
                resource(
                    "/tenants/{tid}/servers/{aid}/clients/{client_id}/secret",
                    "POST",
                )
                .route(web::post().to(clients::rotate_secret)),
            )
            .service(
                resource("/tenants/{tid}/servers/{aid}/keys", "GET")
                    .route(web::get().to(keys::list)),
            )
            .service(
                resource("/tenants/{tid}/servers/{aid}/keys/rotate", "POST")
                    .route(web::post().to(keys::rotate)),
            )
            .default_service(web::to(|| async {
                Err::<HttpResponse, _>(AdminError::RouteNotFound)
            })),
    );
}

/// The admin API's answer to a request whose head is larger than `limit` bytes: `431` with
/// the admin error body. For the listener's head-size check, which runs before routing.
#[must_use]
pub fn headers_too_large(limit: usize) -> HttpResponse {
    actix_web::ResponseError::error_response(&AdminError::HeadersTooLarge(limit))
}

/// A resource at `path` whose other methods answer 405 with `Allow: allow`.
fn resource(path: &str, allow: &'static str) -> Resource {
    web::resource(path).default_service(web::to(move || async move {
        Err::<HttpResponse, _>(AdminError::MethodNotAllowed { allow })
    }))
}
