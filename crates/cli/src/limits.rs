//! The request-head limit (`--max-header-bytes`), as middleware on every listener: the HTTP
//! parser beneath refuses heads over its own fixed 128 KiB; this makes the limit smaller and
//! configurable, and answers in each listener's JSON error format (`431`). Counted: the
//! request target and every header name and value, with their separators.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError as _};
use tollgate_core::oauth::OAuthError;
use tollgate_core::Tollgate;

/// Bytes the request head takes on the wire, near enough: target, names, values, separators.
fn head_bytes(req: &ServiceRequest) -> usize {
    let target = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    req.headers().iter().fold(target, |sum, (name, value)| {
        sum.saturating_add(name.as_str().len() + value.len() + 4)
    })
}

/// The limit, when the request's head is over it.
fn over_limit(req: &ServiceRequest) -> Option<usize> {
    let limit = req
        .app_data::<web::Data<Tollgate>>()?
        .options
        .limits
        .max_header_bytes;
    (head_bytes(req) > limit).then_some(limit)
}

async fn check(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
    refuse: fn(usize) -> HttpResponse,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if let Some(limit) = over_limit(&req) {
        let (req, _) = req.into_parts();
        return Ok(ServiceResponse::new(req, refuse(limit)).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// The gateway listener's head limit: an OAuth-style `431 invalid_request`.
pub async fn gateway_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    check(req, next, |limit| {
        tollgate_gateway::OAuthResponse(OAuthError::headers_too_large(limit)).error_response()
    })
    .await
}

/// The admin listener's head limit: the admin error body, `431`.
pub async fn admin_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    check(req, next, tollgate_admin::headers_too_large).await
}
