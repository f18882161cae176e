//! The admin API's one error type, [`AdminError`], and the one place where an error becomes an
//! HTTP response: status, `{error, error_description}` body, and the headers some statuses
//! carry (`WWW-Authenticate`, `Allow`, `Retry-After`).
//!
//! Causes of server-side failures go to the log here and never into a response body.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use tollgate_core::manage::ManageError;
use tollgate_core::store::StoreError;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A machine-readable code: `invalid_request`, `invalid_client_metadata`,
    /// `invalid_redirect_uri`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `method_not_allowed`,
    /// `unsupported_media_type`, `temporarily_unavailable` or `server_error`.
    #[schema(value_type = String, example = "not_found")]
    pub error: &'static str,
    /// What went wrong, for a human; names the offending field where there is one.
    #[schema(example = "tenant not found")]
    pub error_description: String,
}

/// The realm named in `WWW-Authenticate` challenges.
const REALM_CHALLENGE: &str = "Bearer realm=\"tollgate-admin\"";

/// Seconds a client should wait before retrying when the store is unavailable.
const RETRY_AFTER_SECS: &str = "5";

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No usable bearer token, or the wrong one (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A valid token without rights to this tenant or operation (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// A malformed request: path parameter, query or body (400).
    #[error("{description}")]
    BadRequest {
        /// `invalid_request`, or an RFC 7591 code for client metadata.
        code: &'static str,
        /// Names the offending parameter or field.
        description: String,
    },
    /// The body is not `application/json` (415).
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    /// The body is over the size limit, in bytes (413).
    #[error("request body is larger than {0} bytes (the limit)")]
    PayloadTooLarge(usize),
    /// The request head is over the size limit, in bytes (431).
    #[error("request headers are larger than {0} bytes (the limit)")]
    HeadersTooLarge(usize),
    /// No admin endpoint at this path (404).
    #[error("no admin endpoint at this path")]
    RouteNotFound,
    /// The path exists but not with this method (405).
    #[error("method not allowed; this path accepts {allow}")]
    MethodNotAllowed {
        /// The `Allow` header value: the methods the path accepts.
        allow: &'static str,
    },
    /// The domain operation failed.
    #[error(transparent)]
    Manage(#[from] ManageError),
    /// The admin service itself is misconfigured (500); the message is logged only.
    #[error("{0}")]
    Misconfigured(&'static str),
}

impl AdminError {
    /// A 400 `invalid_request` with the given description.
    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::BadRequest {
            code: "invalid_request",
            description: description.into(),
        }
    }

    /// The error code and description that go into the body.
    fn body(&self) -> ErrorBody {
        let (error, error_description) = match self {
            Self::Unauthorized(why) => ("unauthorized", (*why).to_owned()),
            Self::Forbidden(why) => ("forbidden", (*why).to_owned()),
            Self::BadRequest { code, description } => (*code, description.clone()),
            Self::UnsupportedMediaType(why) => ("unsupported_media_type", (*why).to_owned()),
            Self::PayloadTooLarge(_) | Self::HeadersTooLarge(_) => {
                ("invalid_request", self.to_string())
            }
            Self::RouteNotFound => ("not_found", self.to_string()),
            Self::MethodNotAllowed { .. } => ("method_not_allowed", self.to_string()),
            Self::Manage(e) => manage_body(e),
            Self::Misconfigured(_) => internal(),
        };
        ErrorBody {
            error,
            error_description,
        }
    }
}

fn internal() -> (&'static str, String) {
    ("server_error", "internal error".to_owned())
}

fn manage_body(e: &ManageError) -> (&'static str, String) {
    match e {
        ManageError::Invalid(i) => (i.code, i.to_string()),
        ManageError::NotFound(what) => ("not_found", format!("{what} not found")),
        // Users are unique by username; everything else by id.
        ManageError::Conflict("user") => (
            "conflict",
            "a user with this username already exists".to_owned(),
        ),
        ManageError::Conflict("client_id") => (
            "conflict",
            "client_id: a user of this server has this id as its `sub`; a client's must differ (RFC 9068 §2.2)".to_owned(),
        ),
        ManageError::Conflict(what) => ("conflict", format!("{what} with this id already exists")),
        ManageError::Store(StoreError::Conflict) => (
            "conflict",
            "the change conflicts with an existing object".to_owned(),
        ),
        ManageError::Store(StoreError::Unavailable(_)) => (
            "temporarily_unavailable",
            "the database is temporarily unavailable; retry later".to_owned(),
        ),
        ManageError::Store(_) | ManageError::Internal(_) => internal(),
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Manage(e) => match e {
                ManageError::Invalid(_) => StatusCode::BAD_REQUEST,
                ManageError::NotFound(_) => StatusCode::NOT_FOUND,
                ManageError::Conflict(_) | ManageError::Store(StoreError::Conflict) => {
                    StatusCode::CONFLICT
                }
                ManageError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
                ManageError::Store(_) | ManageError::Internal(_) => {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        // The cause of a server-side failure is for operators only.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = %self, "admin request failed: store unavailable");
        } else if status.is_server_error() {
            tracing::error!(error = %self, "admin request failed");
        }
        let mut reply = HttpResponse::build(status);
        match self {
            Self::Unauthorized(_) => {
                reply.insert_header((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(REALM_CHALLENGE),
                ));
            }
            Self::MethodNotAllowed { allow } => {
                reply.insert_header((header::ALLOW, HeaderValue::from_static(allow)));
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                reply.insert_header((
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                ));
            }
            _ => {}
        }
        reply.json(self.body())
    }
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;
    use actix_web::http::header::HeaderMap;
    use tollgate_core::model::Invalid;

    use super::*;

    async fn render(e: &AdminError) -> (StatusCode, HeaderMap, serde_json::Value) {
        let resp = e.error_response();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = to_bytes(resp.into_body()).await.unwrap_or_default();
        let json = serde_json::from_slice(&bytes).unwrap_or_default();
        (status, headers, json)
    }

    #[actix_web::test]
    async fn maps_each_error_to_status_code_and_description() {
        let rows: Vec<(AdminError, u16, &str, &str)> = vec![
            (
                AdminError::Unauthorized("missing bearer token"),
                401,
                "unauthorized",
                "missing bearer token",
            ),
            (
                AdminError::Forbidden("read-only"),
                403,
                "forbidden",
                "read-only",
            ),
            (
                AdminError::invalid_request("limit: bad"),
                400,
                "invalid_request",
                "limit: bad",
            ),
            (
                AdminError::UnsupportedMediaType("need JSON"),
                415,
                "unsupported_media_type",
                "need JSON",
            ),
            (
                AdminError::PayloadTooLarge(262_144),
                413,
                "invalid_request",
                "request body is larger than 262144 bytes (the limit)",
            ),
            (
                AdminError::HeadersTooLarge(16_384),
                431,
                "invalid_request",
                "request headers are larger than 16384 bytes (the limit)",
            ),
            (
                AdminError::RouteNotFound,
                404,
                "not_found",
                "no admin endpoint at this path",
            ),
            (
                AdminError::MethodNotAllowed { allow: "GET" },
                405,
                "method_not_allowed",
                "method not allowed; this path accepts GET",
            ),
            (
                ManageError::Invalid(Invalid::redirect_uri("no fragments")).into(),
                400,
                "invalid_redirect_uri",
                "redirect_uris: no fragments",
            ),
            (
                ManageError::Invalid(Invalid::request("name", "too long")).into(),
                400,
                "invalid_request",
                "name: too long",
            ),
            (
                ManageError::NotFound("server").into(),
                404,
                "not_found",
                "server not found",
            ),
            (
                ManageError::Conflict("tenant").into(),
                409,
                "conflict",
                "tenant with this id already exists",
            ),
            (
                ManageError::Store(StoreError::Unavailable("pool timed out".into())).into(),
                503,
                "temporarily_unavailable",
                "the database is temporarily unavailable; retry later",
            ),
            (
                ManageError::Store(StoreError::Corrupt("bad row 7".into())).into(),
                500,
                "server_error",
                "internal error",
            ),
            (
                ManageError::Internal("hasher exploded".into()).into(),
                500,
                "server_error",
                "internal error",
            ),
            (
                AdminError::Misconfigured("no AdminAuth"),
                500,
                "server_error",
                "internal error",
            ),
        ];
        for (err, status, code, description) in rows {
            let (got, _, body) = render(&err).await;
            assert_eq!(got.as_u16(), status, "{err:?}");
            assert_eq!(body["error"], code, "{err:?}");
            assert_eq!(body["error_description"], description, "{err:?}");
        }
    }

    #[actix_web::test]
    async fn status_headers_are_set() {
        let (_, headers, _) = render(&AdminError::Unauthorized("x")).await;
        assert_eq!(
            headers
                .get(header::WWW_AUTHENTICATE)
                .map(HeaderValue::as_bytes),
            Some(&b"Bearer realm=\"tollgate-admin\""[..])
        );
        let (_, headers, _) = render(&AdminError::MethodNotAllowed { allow: "GET, POST" }).await;
        assert_eq!(
            headers.get(header::ALLOW).map(HeaderValue::as_bytes),
            Some(&b"GET, POST"[..])
        );
        let unavailable: AdminError =
            ManageError::Store(StoreError::Unavailable("x".into())).into();
        let (_, headers, _) = render(&unavailable).await;
        assert_eq!(
            headers.get(header::RETRY_AFTER).map(HeaderValue::as_bytes),
            Some(&b"5"[..])
        );
        assert_eq!(
            headers.get(header::CONTENT_TYPE).map(HeaderValue::as_bytes),
            Some(&b"application/json"[..])
        );
    }
}
