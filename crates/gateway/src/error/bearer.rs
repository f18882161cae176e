//! Refused `/userinfo` requests (RFC 6750 §3): a JSON body, and a `WWW-Authenticate: Bearer`
//! challenge naming the error core chose — or no error, when no token was sent (§3.1). A store
//! outage is not the token's fault: no challenge then, but when to retry.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use tollgate_core::oauth::ErrorBody;
use tollgate_core::userinfo::UserinfoError;

use super::UNAVAILABLE_RETRY_AFTER;

/// The realm of every `Bearer` challenge.
const REALM_CHALLENGE: &str = "Bearer realm=\"tollgate\"";

pub(super) fn status(e: &UserinfoError) -> StatusCode {
    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST)
}

pub(super) fn response(e: &UserinfoError) -> HttpResponse {
    let status = status(e);
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        b.insert_header((
            header::RETRY_AFTER,
            HeaderValue::from_static(UNAVAILABLE_RETRY_AFTER),
        ));
    } else {
        let challenge = match e.challenge_error() {
            Some(code) => format!(
                "{REALM_CHALLENGE}, error=\"{}\", error_description=\"{}\"",
                code.as_str(),
                e.description()
            ),
            None => REALM_CHALLENGE.to_owned(),
        };
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            b.insert_header((header::WWW_AUTHENTICATE, v));
        }
    }
    b.json(ErrorBody {
        error: e.code().as_str(),
        error_description: e.description(),
    })
}
