//! Tollgate's gateway: the public, tenant-routed OAuth 2.0 / OpenID Connect endpoints under
//! `/{tid}/{aid}`. Handlers are thin: they parse the request into core's typed values, call
//! one core function, and map the result to HTTP. Every error becomes its response in
//! `error` ([`OAuthResponse`] for the JSON endpoints).

mod authorize;
mod body;
mod client_addr;
mod client_cert;
mod client_request;
mod device;
mod discovery;
mod error;
mod introspect;
mod pages;
mod par;
mod revoke;
mod token;
mod userinfo;

use actix_web::{web, HttpResponse, ResponseError as _};
use tollgate_core::ids::{ServerId, TenantId};
use tollgate_core::oauth::OAuthError;

pub use client_cert::{ConnectionCertificate, ProxyTrust};
pub use error::OAuthResponse;

/// Registers every gateway route. The caller adds `web::Data<tollgate_core::Tollgate>`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/.well-known/oauth-authorization-server/{tid}/{aid}")
            .route(web::get().to(discovery::oauth_metadata))
            .default_service(web::to(get_only)),
    )
    .service(
        web::resource("/{tid}/{aid}/.well-known/openid-configuration")
            .route(web::get().to(discovery::openid_configuration))
            .default_service(web::to(get_only)),
    )
    .service(
        web::resource("/{tid}/{aid}/.well-known/oauth-authorization-server")
            .route(web::get().to(discovery::oauth_metadata))
            .default_service(web::to(get_only)),
    )
    .service(
        web::resource("/{tid}/{aid}/.well-known/jwks.json")
            .route(web::get().to(discovery::jwks))
            .default_service(web::to(get_only)),
    )
    .service(
        web::resource("/{tid}/{aid}/oauth2/authorize")
            .route(web::get().to(authorize::authorize_get))
            .route(web::post().to(authorize::authorize_post))
            .default_service(web::to(get_or_post)),
    )
    .service(
        web::resource("/{tid}/{aid}/login")
            .route(web::get().to(authorize::login_get))
            .route(web::post().to(authorize::login_post))
            .default_service(web::to(get_or_post)),
    )
    .service(
        web::resource("/{tid}/{aid}/consent")
            .route(web::get().to(authorize::consent_get))
            .route(web::post().to(authorize::consent_post))
            .default_service(web::to(get_or_post)),
    )
    .service(
        web::resource("/{tid}/{aid}/userinfo")
            .route(web::get().to(userinfo::userinfo_get))
            .route(web::post().to(userinfo::userinfo_post))
            .default_service(web::to(get_or_post)),
    )
    .service(
        web::resource("/{tid}/{aid}/oauth2/token")
            .route(web::post().to(token::token))
            .default_service(web::to(post_only)),
    )
    .service(
        web::resource("/{tid}/{aid}/oauth2/introspect")
            .route(web::post().to(introspect::introspect))
            .default_service(web::to(post_only)),
    )
    .service(
        web::resource("/{tid}/{aid}/oauth2/revoke")
            .route(web::post().to(revoke::revoke))
            .default_service(web::to(post_only)),
    )
    .service(
        web::resource("/{tid}/{aid}/oauth2/par")
            .route(web::post().to(par::par))
            .default_service(web::to(post_only)),
    )
    .service(
        web::resource("/{tid}/{aid}/oauth2/device_authorization")
            .route(web::post().to(device::device_authorization))
            .default_service(web::to(post_only)),
    )
    .service(
        web::resource("/{tid}/{aid}/device")
            .route(web::get().to(device::device_get))
            .route(web::post().to(device::device_post))
            .default_service(web::to(get_or_post)),
    );
}

/// A `200` builder with `Cache-Control: no-store` and `Pragma: no-cache`, for responses that
/// carry or describe tokens (RFC 6749 §5.1, RFC 7662 §2.2).
fn no_store() -> actix_web::HttpResponseBuilder {
    use actix_web::http::header::{self, HeaderValue};
    let mut b = HttpResponse::Ok();
    b.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
    b
}

/// The `404` answer for paths no route serves, in the OAuth error format.
pub async fn not_found() -> HttpResponse {
    OAuthResponse(OAuthError::not_found()).error_response()
}

async fn get_only() -> HttpResponse {
    OAuthResponse(OAuthError::method_not_allowed("GET")).error_response()
}

async fn get_or_post() -> HttpResponse {
    OAuthResponse(OAuthError::method_not_allowed("GET, POST")).error_response()
}

async fn post_only() -> HttpResponse {
    OAuthResponse(OAuthError::method_not_allowed("POST")).error_response()
}

/// Parses the `{tid}/{aid}` path segments; anything off-grammar names no server (`404`).
fn server_ids(path: &(String, String)) -> Result<(TenantId, ServerId), OAuthResponse> {
    match (TenantId::parse(&path.0), ServerId::parse(&path.1)) {
        (Ok(t), Ok(s)) => {
            // Validated ids only: the request span never carries an off-grammar path segment.
            let span = tracing::Span::current();
            span.record("tollgate.tenant", t.as_str());
            span.record("tollgate.server", s.as_str());
            Ok((t, s))
        }
        _ => Err(OAuthResponse(OAuthError::unknown_server())),
    }
}
