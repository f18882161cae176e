//! A failed step of the browser flow, as the browser sees it: an error page titled by its
//! status, the login page again for a throttled login, or a `303` that takes the error back
//! to the client (RFC 6749 §4.1.2.1). `crate::pages` draws them; the status and
//! `Retry-After` are decided here. A page that cannot be drawn is a bare `500`.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use tollgate_core::authorize::AuthorizeError;

use super::UNAVAILABLE_RETRY_AFTER;
use crate::pages::{self, DrawError, Site};

/// What a rate-limited browser is told.
const RATE_LIMITED: &str = "Too many requests from here. Wait a moment and try again.";

/// What a browser is told while a store is down.
const UNAVAILABLE: &str = "The service is temporarily unavailable. Try again in a moment.";

/// A failed step of the browser flow, and the site whose page shows it.
#[derive(Debug)]
pub(crate) struct PageError {
    /// How the server's pages look.
    pub(super) site: Site,
    /// What failed.
    pub(super) error: AuthorizeError,
}

pub(super) fn status(e: &AuthorizeError) -> StatusCode {
    match e {
        AuthorizeError::Page { status, .. } => page_status(*status),
        AuthorizeError::Redirect(_) => StatusCode::SEE_OTHER,
        AuthorizeError::Throttled { .. } | AuthorizeError::RateLimited { .. } => {
            StatusCode::TOO_MANY_REQUESTS
        }
        AuthorizeError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn page_status(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST)
}

pub(super) fn response(PageError { site, error }: &PageError) -> HttpResponse {
    let drawn = match error {
        AuthorizeError::Page { status, message } => error_page(site, page_status(*status), message),
        AuthorizeError::Redirect(r) => pages::see_other(site, &r.location()),
        AuthorizeError::Throttled { retry_after, view } => {
            pages::login(site, view, StatusCode::TOO_MANY_REQUESTS)
                .map(|res| with_retry_after(res, HeaderValue::from(*retry_after)))
        }
        AuthorizeError::RateLimited { retry_after } => {
            error_page(site, StatusCode::TOO_MANY_REQUESTS, RATE_LIMITED)
                .map(|res| with_retry_after(res, HeaderValue::from(*retry_after)))
        }
        AuthorizeError::Unavailable => {
            error_page(site, StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE)
        }
    };
    drawn.unwrap_or_else(|e| draw_failed(&e))
}

/// An error page; a `503` says when to retry.
fn error_page(site: &Site, status: StatusCode, message: &str) -> Result<HttpResponse, DrawError> {
    let res = pages::error_page(site, status, message)?;
    Ok(if status == StatusCode::SERVICE_UNAVAILABLE {
        with_retry_after(res, HeaderValue::from_static(UNAVAILABLE_RETRY_AFTER))
    } else {
        res
    })
}

fn with_retry_after(mut res: HttpResponse, seconds: HeaderValue) -> HttpResponse {
    res.headers_mut().insert(header::RETRY_AFTER, seconds);
    res
}

/// The bare `500` of a page that could not be drawn; a template failure is logged.
pub(super) fn draw_failed(e: &DrawError) -> HttpResponse {
    if let DrawError::Template(cause) = e {
        tracing::error!(error = %cause, "page rendering failed");
    }
    HttpResponse::InternalServerError().finish()
}
