//! The one place a gateway error becomes an HTTP response. Core decides what went wrong and
//! its RFC code; the files here decide the status line, the headers and the body, and
//! `WWW-Authenticate`, `Allow` and `Retry-After` are set nowhere else in the gateway (a test
//! below checks):
//! - `oauth.rs` — RFC 6749 §5.2 JSON, for every endpoint that is not /userinfo or a page;
//! - `bearer.rs` — RFC 6750 §3 errors of /userinfo, with their `Bearer` challenge;
//! - `page.rs` — the browser flow's error pages, drawn by `crate::pages`.

mod bearer;
mod oauth;
mod page;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use tollgate_core::authorize::AuthorizeError;
use tollgate_core::oauth::OAuthError;
use tollgate_core::userinfo::UserinfoError;

use crate::pages::{DrawError, Site};

pub use oauth::OAuthResponse;
pub(crate) use page::PageError;

/// Seconds to wait before retrying while a store is unavailable.
const UNAVAILABLE_RETRY_AFTER: &str = "5";

/// Why a request to an endpoint failed that answers in more than one format: the browser
/// flow's (a page, unless its server is unknown) and /userinfo's (RFC 6750, likewise).
/// Endpoints that only ever answer in JSON return [`OAuthResponse`].
#[derive(Debug)]
pub(crate) enum GatewayError {
    /// An RFC 6749 §5.2 JSON error.
    OAuth(OAuthError),
    /// A refused /userinfo request.
    Bearer(UserinfoError),
    /// A failed step of the browser flow, shown as a page.
    Page(Box<PageError>),
    /// A page of the browser flow that could not be drawn.
    Draw(DrawError),
}

impl GatewayError {
    /// A failed step of the browser flow on `site`.
    pub(crate) fn page(site: &Site, error: AuthorizeError) -> Self {
        Self::Page(Box::new(PageError {
            site: site.clone(),
            error,
        }))
    }
}

impl From<OAuthError> for GatewayError {
    fn from(e: OAuthError) -> Self {
        Self::OAuth(e)
    }
}

impl From<OAuthResponse> for GatewayError {
    fn from(e: OAuthResponse) -> Self {
        Self::OAuth(e.0)
    }
}

impl From<UserinfoError> for GatewayError {
    fn from(e: UserinfoError) -> Self {
        Self::Bearer(e)
    }
}

impl From<DrawError> for GatewayError {
    fn from(e: DrawError) -> Self {
        Self::Draw(e)
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OAuth(e) => e.fmt(f),
            Self::Bearer(e) => write!(f, "{}: {}", e.code().as_str(), e.description()),
            Self::Page(p) => f.write_str(p.error.outcome()),
            Self::Draw(e) => e.fmt(f),
        }
    }
}

impl ResponseError for GatewayError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::OAuth(e) => oauth::status(e),
            Self::Bearer(e) => bearer::status(e),
            Self::Page(p) => page::status(&p.error),
            Self::Draw(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::OAuth(e) => oauth::response(e),
            Self::Bearer(e) => bearer::response(e),
            Self::Page(p) => page::response(p),
            Self::Draw(e) => page::draw_failed(e),
        }
    }
}

#[cfg(test)]
mod tests;
