//! The one place gateway errors become HTTP: RFC 6749 §5.2 JSON bodies with the headers the
//! RFCs ask for.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use tollgate_core::oauth::OAuthError;

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
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        // The request middleware reads the RFC code from here for metrics and traces.
        res.extensions_mut().insert(self.0.code);
        res.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
        if self.0.status == 401 && self.0.basic_challenge {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tollgate\", charset=\"UTF-8\""),
            ));
        }
        match self.0.retry_after {
            Some(seconds) => {
                res.insert_header((header::RETRY_AFTER, HeaderValue::from(seconds)));
            }
            None if self.0.status == 503 => {
                res.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
            }
            None => {}
        }
        if let Some(allow) = self.0.allow {
            res.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
        }
        res.json(self.0.body())
    }
}
