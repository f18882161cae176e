//! OAuth 2.0 protocol errors (RFC 6749 §5.2, RFC 8707, RFC 7009 and friends) as one typed
//! value that carries its RFC code and HTTP status. Handlers never build these as strings.

use std::borrow::Cow;

use serde::Serialize;

/// The RFC error codes Tollgate answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// RFC 6749 §5.2.
    InvalidRequest,
    /// RFC 6749 §5.2; always HTTP 401.
    InvalidClient,
    /// RFC 6749 §5.2.
    InvalidGrant,
    /// RFC 6749 §5.2.
    UnauthorizedClient,
    /// RFC 6749 §5.2.
    UnsupportedGrantType,
    /// RFC 6749 §5.2.
    InvalidScope,
    /// RFC 8707 §2.
    InvalidTarget,
    /// RFC 6750 §3.1: the access token is expired, revoked, malformed or foreign.
    InvalidToken,
    /// RFC 6750 §3.1: the access token lacks a scope the resource needs.
    InsufficientScope,
    /// RFC 6749 §4.1.2.1; an internal failure that is not the caller's fault.
    ServerError,
    /// RFC 6749 §4.1.2.1; a store Tollgate needs is unreachable.
    TemporarilyUnavailable,
    /// A rate limit refused the request (HTTP 429, RFC 6585). No OAuth RFC names one outside
    /// the device flow (`slow_down`, RFC 8628, which means something narrower), so this is
    /// the status's own name, as Auth0 and others answer.
    TooManyRequests,
    /// RFC 6749 §4.1.2.1, answered by the pushed authorization request endpoint (RFC 9126
    /// §2.3).
    UnsupportedResponseType,
    /// RFC 9101 §6.2: the request object is invalid (signature, claims, algorithm).
    InvalidRequestObject,
    /// RFC 8628 §3.5: the user has not finished yet.
    AuthorizationPending,
    /// RFC 8628 §3.5: poll more slowly (the interval grew by 5 s).
    SlowDown,
    /// RFC 8628 §3.5: the user denied the device.
    AccessDenied,
    /// RFC 8628 §3.5: the device code expired.
    ExpiredToken,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::TooManyRequests => "too_many_requests",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidRequestObject => "invalid_request_object",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
        }
    }
}

/// An OAuth error response: code, status and a description safe to show the caller (never a
/// secret, token or assertion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The RFC error code.
    pub code: ErrorCode,
    /// Human-readable text for the client developer.
    pub description: Cow<'static, str>,
    /// HTTP status.
    pub status: u16,
    /// The client tried HTTP Basic: a 401 then carries `WWW-Authenticate: Basic`.
    pub basic_challenge: bool,
    /// For a `405`: the methods the resource allows.
    pub allow: Option<&'static str>,
    /// Seconds the client should wait before retrying (`Retry-After`), when known.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    fn new(code: ErrorCode, status: u16, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: description.into(),
            status,
            basic_challenge: false,
            allow: None,
            retry_after: None,
        }
    }

    /// `400 invalid_request`.
    pub fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, 400, d)
    }
    /// `401 invalid_client`.
    pub fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, 401, d)
    }
    /// `400 invalid_grant`.
    pub fn invalid_grant(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, 400, d)
    }
    /// `400 unauthorized_client`.
    pub fn unauthorized_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, 400, d)
    }
    /// `400 unsupported_grant_type`.
    pub fn unsupported_grant_type(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::UnsupportedGrantType, 400, d)
    }
    /// `400 invalid_scope`.
    pub fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, 400, d)
    }
    /// `400 invalid_request_object` (RFC 9101 §6.2).
    pub fn invalid_request_object(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequestObject, 400, d)
    }
    /// A `400` with one of the authorization endpoint's codes (RFC 6749 §4.1.2.1), as the
    /// pushed authorization request endpoint answers them (RFC 9126 §2.3); a code outside
    /// that list is `invalid_request`.
    pub fn authorization(code: &str, d: impl Into<Cow<'static, str>>) -> Self {
        let code = match code {
            "unauthorized_client" => ErrorCode::UnauthorizedClient,
            "invalid_scope" => ErrorCode::InvalidScope,
            "unsupported_response_type" => ErrorCode::UnsupportedResponseType,
            "invalid_request_object" => ErrorCode::InvalidRequestObject,
            "server_error" => return Self::server_error(),
            _ => ErrorCode::InvalidRequest,
        };
        Self::new(code, 400, d)
    }
    /// `400 invalid_target`.
    pub fn invalid_target(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidTarget, 400, d)
    }
    /// `400` with one of the device flow's polling answers (RFC 8628 §3.5).
    pub fn device(code: ErrorCode, d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(code, 400, d)
    }
    /// `404 invalid_request`: the tenant or authorization server does not exist.
    #[must_use]
    pub fn unknown_server() -> Self {
        Self::new(
            ErrorCode::InvalidRequest,
            404,
            "unknown tenant or authorization server",
        )
    }
    /// `404 invalid_request`: no endpoint at this path.
    #[must_use]
    pub fn not_found() -> Self {
        Self::new(ErrorCode::InvalidRequest, 404, "no endpoint at this path")
    }
    /// `405 invalid_request`, listing the allowed methods.
    #[must_use]
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::new(
            ErrorCode::InvalidRequest,
            405,
            format!("this endpoint accepts only {allow}"),
        );
        e.allow = Some(allow);
        e
    }
    /// `500 server_error`; the cause is logged, never shown.
    #[must_use]
    pub fn server_error() -> Self {
        Self::new(ErrorCode::ServerError, 500, "internal error")
    }
    /// `503 temporarily_unavailable`.
    #[must_use]
    pub fn temporarily_unavailable() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            503,
            "a backing store is unavailable; retry later",
        )
    }

    /// `429 too_many_requests`: retry after `seconds`.
    #[must_use]
    pub fn too_many_requests(seconds: u64) -> Self {
        let mut e = Self::new(
            ErrorCode::TooManyRequests,
            429,
            format!("too many requests; retry after {seconds} s"),
        );
        e.retry_after = Some(seconds);
        e
    }

    /// `431 invalid_request`: the request head is larger than `limit` bytes.
    #[must_use]
    pub fn headers_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::InvalidRequest,
            431,
            format!("request headers are larger than {limit} bytes (the limit)"),
        )
    }

    /// Marks that the client tried HTTP Basic authentication.
    #[must_use]
    pub fn with_basic_challenge(mut self, basic: bool) -> Self {
        self.basic_challenge = basic;
        self
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

/// The JSON body of an error response (RFC 6749 §5.2).
#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    /// RFC code.
    pub error: &'static str,
    /// Description.
    pub error_description: &'a str,
}

impl OAuthError {
    /// The response body.
    #[must_use]
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: self.code.as_str(),
            error_description: &self.description,
        }
    }
}
