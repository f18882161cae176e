//! The authorization-code flow up to the code (RFC 6749 §4.1, RFC 7636, RFC 9207, OpenID
//! Connect Core §3.1): request validation, the browser session, login, consent, and the code
//! itself. The token endpoint's side is `crate::grants::authorization_code`.
//!
//! Everything short-lived lives in the short-lived store, keyed per tenant and server, so any
//! replica can continue a flow another one started:
//! - `authz:{tid}/{aid}/{id}` — a validated request waiting for login or consent (10 min),
//!   bound to the browser that started it and carrying its CSRF token;
//! - `session:{tid}/{aid}/{sha256(sid)}` — a logged-in browser;
//! - `code:{tid}/{aid}/{sha256(code)}` — a code (at most 60 s), taken atomically once;
//! - `issued:{tid}/{aid}/{sha256(code)}` — what a code's exchange issues, kept so that a
//!   second use can revoke it (RFC 6749 §4.1.2);
//! - `login:…` — failed-login counters and lockouts;
//! - `par:{tid}/{aid}/{client_id}/{sha256(ref)}` — a pushed request (RFC 9126), taken once.

pub mod code;
pub mod device;
pub mod flow;
pub mod pushed;
pub mod response;

pub mod request;
pub mod session;

use std::borrow::Cow;

use crate::oauth::{ErrorCode, OAuthError};

pub use flow::{ConsentView, LoginView, Step};
pub use request::{AuthorizeRequest, Prompt, RawParams};
pub use session::Browser;

/// An error sent back to the client's redirect URI (RFC 6749 §4.1.2.1, RFC 9207).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectError {
    /// Where to send it.
    pub redirect_uri: String,
    /// The RFC / OIDC error code.
    pub error: &'static str,
    /// For the client developer.
    pub description: String,
    /// The request's `state`.
    pub state: Option<String>,
    /// The issuer (RFC 9207 `iss`).
    pub issuer: String,
    /// The client (the `aud` of a JWT-secured response).
    pub client_id: crate::ids::ClientId,
    /// How the response travels.
    pub mode: crate::oauth::ResponseMode,
}

impl RedirectError {
    /// The response's parameters: `error`, `error_description`, `state`, RFC 9207 `iss`.
    #[must_use]
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("error", self.error.to_owned()),
            ("error_description", self.description.clone()),
        ];
        if let Some(s) = &self.state {
            params.push(("state", s.clone()));
        }
        params.push(("iss", self.issuer.clone()));
        params
    }

    /// The `Location` to send the browser to, in the query (`response_mode=query`).
    #[must_use]
    pub fn location(&self) -> String {
        let params = self.params();
        let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        with_query(&self.redirect_uri, &pairs)
    }
}

/// Appends query parameters to a registered redirect URI, keeping the query it already has
/// (RFC 6749 §3.1.2).
#[must_use]
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.into()
        }
        // Registered URIs are validated as absolute URLs; this cannot happen.
        Err(_) => uri.to_owned(),
    }
}

/// Why an authorization step failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// Shown to the user on an error page: the redirect URI is unknown or untrusted, or the
    /// form is stale.
    Page {
        /// HTTP status.
        status: u16,
        /// What happened, in words for the user.
        message: Cow<'static, str>,
    },
    /// Sent back to the client (boxed: the other variants are small).
    Redirect(Box<RedirectError>),
    /// Too many failed logins: the login page again, with `429` and `Retry-After`.
    Throttled {
        /// Seconds until the next attempt is accepted.
        retry_after: u64,
        /// The page to show.
        view: Box<LoginView>,
    },
    /// A rate limit refused the request: `429` with `Retry-After`, as a page.
    RateLimited {
        /// Seconds until a request would be admitted.
        retry_after: u64,
    },
    /// A store is down: `503` with `Retry-After`.
    Unavailable,
}

impl AuthorizeError {
    /// An error page.
    pub fn page(status: u16, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Page {
            status,
            message: message.into(),
        }
    }

    /// From a store failure on the way (`503`), a rate limit (`429`), or another OAuth error
    /// (as a page).
    #[must_use]
    pub fn from_oauth(e: OAuthError) -> Self {
        match (e.code, e.retry_after) {
            (ErrorCode::TemporarilyUnavailable, _) => Self::Unavailable,
            (_, Some(retry_after)) if e.status == 429 => Self::RateLimited { retry_after },
            _ => Self::page(e.status, e.description),
        }
    }

    /// The RFC error code or a short name, for logs and metrics.
    #[must_use]
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Page { .. } => "error_page",
            Self::Redirect(r) => r.error,
            Self::Throttled { .. } => "throttled",
            Self::RateLimited { .. } => "too_many_requests",
            Self::Unavailable => "temporarily_unavailable",
        }
    }
}

impl From<crate::store::StoreError> for AuthorizeError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::from_oauth(crate::store::store_failure(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_the_registered_query_and_carry_state_and_iss() {
        let e = RedirectError {
            redirect_uri: "https://app.example/cb?tenant=a".into(),
            error: "access_denied",
            description: "the user denied".into(),
            state: Some("s t&x".into()),
            issuer: "https://as.example/t/s".into(),
            client_id: crate::ids::ClientId::parse("c").unwrap(),
            mode: crate::oauth::ResponseMode::Query,
        };
        let loc = url::Url::parse(&e.location()).unwrap();
        let q: Vec<(String, String)> = loc.query_pairs().into_owned().collect();
        assert_eq!(q[0], ("tenant".into(), "a".into()));
        assert!(q.contains(&("error".into(), "access_denied".into())));
        assert!(q.contains(&("state".into(), "s t&x".into())));
        assert!(q.contains(&("iss".into(), "https://as.example/t/s".into())));
    }
}
