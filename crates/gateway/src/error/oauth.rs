//! OAuth errors as RFC 6749 §5.2 JSON bodies, with the headers the RFCs ask for: the
//! `Basic` challenge of a failed HTTP Basic authentication (§5.2), the methods a `405`
//! allows (RFC 9110 §15.5.6), and when to retry a `429` or `503` (RFC 9110 §10.2.3).

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use tollgate_core::oauth::OAuthError;

use super::UNAVAILABLE_RETRY_AFTER;

/// An OAuth error on its way to the client.
#[derive(Debug)]
pub struct OAuthResponse(pub OAuthError);

impl From<OAuthError> for OAuthResponse {
    fn from(e: OAuthError) -> Self {
        Self(e)
    }
}

impl std::fmt::Display for OAuthResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for OAuthResponse {
    fn status_code(&self) -> StatusCode {
        status(&self.0)
    }

    fn error_response(&self) -> HttpResponse {
        response(&self.0)
    }
}

pub(super) fn status(e: &OAuthError) -> StatusCode {
    StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST)
}

pub(super) fn response(e: &OAuthError) -> HttpResponse {
    let mut res = HttpResponse::build(status(e));
    // The request middleware reads the RFC code from here for metrics and traces.
    res.extensions_mut().insert(e.code);
    res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
    if e.status == 401 && e.basic_challenge {
        res.insert_header((
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"tollgate\", charset=\"UTF-8\""),
        ));
    }
    match e.retry_after {
        Some(seconds) => {
            res.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
        }
        None if e.status == 503 => {
            res.insert_header((
                header::RETRY_AFTER,
                HeaderValue::from_static(UNAVAILABLE_RETRY_AFTER),
            ));
        }
        None => {}
    }
    if let Some(allow) = e.allow {
        res.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
    }
    res.json(e.body())
}
