//! Tollgate's admin REST API: tenants, authorization servers, OAuth clients, signing keys,
//! tenant-scoped admin credentials and the audit trail under `/admin`, served on the admin
//! listener.
//!
//! [`configure`] registers every route; the caller supplies the state as app data
//! (`web::Data<tollgate_core::Tollgate>` and `web::Data<AdminAuth>`).
//!
//! How a request flows:
//! - `paths.rs` extractors authenticate the bearer token (`auth.rs`: the root token or a
//!   tenant-scoped credential), parse the ids in the path and authorize the caller for the
//!   tenant and the method, in that order, and carry the request's audit `Origin`;
//! - `body.rs` reads a JSON body (415 / 413 / 400 naming the field) and `paging.rs` the list
//!   query;
//! - the handler (`tenants.rs`, `servers.rs`, `clients.rs`, `keys.rs`, `credentials.rs`,
//!   `audit.rs`) calls one core function (which audits the change) and answers through
//!   `reply.rs`;
//! - every failure is an `AdminError` (`error.rs`), turned into a response in one place.

mod audit;
mod auth;
mod body;
mod clients;
mod credentials;
mod error;
mod keys;
mod openapi;
mod paging;
mod paths;
mod reply;
mod servers;
mod tenants;
mod users;

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
                resource("/tenants/{tid}/credentials", "GET, POST")
                    .route(web::get().to(credentials::list))
                    .route(web::post().to(credentials::create)),
            )
            .service(
                resource("/tenants/{tid}/credentials/{credential_id}", "DELETE")
                    .route(web::delete().to(credentials::revoke)),
            )
            .service(resource("/tenants/{tid}/audit", "GET").route(web::get().to(audit::list)))
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
                resource("/tenants/{tid}/servers/{aid}/users", "GET, POST")
                    .route(web::get().to(users::list))
                    .route(web::post().to(users::create)),
            )
            .service(
                resource(
                    "/tenants/{tid}/servers/{aid}/users/{user_id}",
                    "GET, PATCH, DELETE",
                )
                .route(web::get().to(users::get))
                .route(web::patch().to(users::patch))
                .route(web::delete().to(users::delete)),
            )
            .service(
                resource(
                    "/tenants/{tid}/servers/{aid}/users/{user_id}/consents",
                    "GET",
                )
                .route(web::get().to(users::consents)),
            )
            .service(
                resource(
                    "/tenants/{tid}/servers/{aid}/users/{user_id}/consents/{client_id}",
                    "DELETE",
                )
                .route(web::delete().to(users::revoke_consent)),
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
