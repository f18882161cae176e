//! Who may call the admin API: the bearer-token check ([`AdminAuth`], [`Caller`]) and the
//! authorization rules ([`Caller::authorize_tenant`]) that decide what a caller may manage.
//!
//! Authentication answers 401; authorization is where a token without rights to a tenant
//! will answer 403 once per-tenant tokens exist. Both run inside the path extractors of
//! [`crate::paths`], so a handler cannot reach a tenant's data without passing them.

use std::fmt;

use actix_web::http::header::{HeaderMap, AUTHORIZATION};
use actix_web::{web, HttpRequest};
use tollgate_core::ids::TenantId;
use tollgate_core::secrets::AdminToken;

use crate::error::AdminError;

/// The admin API's credentials: the hash of the root admin token (SHA-256 hex, as
/// [`AdminToken::hash`] computes it). Register it as `web::Data<AdminAuth>`.
#[derive(Clone)]
pub struct AdminAuth {
    root_token_hash: String,
}

impl AdminAuth {
    /// Credentials that accept the root token whose hash is `root_token_hash`.
    #[must_use]
    pub fn new(root_token_hash: String) -> Self {
        Self { root_token_hash }
    }

    /// Who `token` belongs to, or `None` when it matches no credential. The comparison is
    /// constant-time.
    fn identify(&self, token: &str) -> Option<Caller> {
        AdminToken::new(token.to_owned())
            .matches_hash(&self.root_token_hash)
            .then_some(Caller::Root)
    }
}

impl fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminAuth")
            .field("root_token_hash", &"[redacted]")
            .finish()
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The holder of the root admin token: may manage everything.
    Root,
}

impl Caller {
    /// Whether the caller may list and create tenants. Only the root token will; others
    /// will get 403 here.
    pub(crate) fn authorize_tenants(self) -> Result<(), AdminError> {
        match self {
            Self::Root => Ok(()),
        }
    }

    /// Whether the caller may manage `tenant` and everything in it. The root token may
    /// manage every tenant; a per-tenant token will be refused the others here (403).
    pub(crate) fn authorize_tenant(self, _tenant: &TenantId) -> Result<(), AdminError> {
        match self {
            Self::Root => Ok(()),
        }
    }

    /// Authenticates the request's bearer token.
    pub(crate) fn authenticate(req: &HttpRequest) -> Result<Self, AdminError> {
        let auth = req
            .app_data::<web::Data<AdminAuth>>()
            .ok_or(AdminError::Misconfigured(
                "web::Data<AdminAuth> is not registered on the admin app",
            ))?;
        let token = bearer_token(req.headers())?;
        auth.identify(token)
            .ok_or(AdminError::Unauthorized("the bearer token is not valid"))
    }
}

/// The token of a single `Authorization: Bearer <token>` header (RFC 6750 §2.1; the scheme
/// is case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Result<&str, AdminError> {
    const MALFORMED: AdminError =
        AdminError::Unauthorized("the Authorization header must be `Bearer <token>`");
    let mut values = headers.get_all(AUTHORIZATION);
    let value = values
        .next()
        .ok_or(AdminError::Unauthorized("a bearer token is required"))?;
    if values.next().is_some() {
        return Err(MALFORMED);
    }
    let value = value.to_str().map_err(|_| MALFORMED)?;
    let (scheme, token) = value.split_once(' ').ok_or(MALFORMED)?;
    let token = token.trim_start_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(MALFORMED);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HeaderValue;
    use actix_web::test::TestRequest;

    use super::*;

    const TOKEN: &str = "tga_root-token";

    fn auth() -> AdminAuth {
        AdminAuth::new(AdminToken::new(TOKEN.to_owned()).hash())
    }

    fn request(headers: &[&str]) -> HttpRequest {
        let mut req = TestRequest::default().app_data(web::Data::new(auth()));
        for h in headers {
            req = req.append_header((
                AUTHORIZATION,
                HeaderValue::from_str(h).unwrap_or_else(|_| HeaderValue::from_static("invalid")),
            ));
        }
        req.to_http_request()
    }

    #[test]
    fn accepts_the_root_token_in_any_scheme_case() {
        for header in [
            format!("Bearer {TOKEN}"),
            format!("bearer {TOKEN}"),
            format!("BEARER  {TOKEN}"),
        ] {
            assert_eq!(
                Caller::authenticate(&request(&[&header])).ok(),
                Some(Caller::Root),
                "{header}"
            );
        }
    }

    #[test]
    fn rejects_missing_malformed_and_wrong_tokens() {
        let rows: &[(&[&str], &str)] = &[
            (&[], "a bearer token is required"),
            (
                &["Basic dXNlcjpwYXNz"],
                "the Authorization header must be `Bearer <token>`",
            ),
            (
                &["Bearer"],
                "the Authorization header must be `Bearer <token>`",
            ),
            (
                &["Bearer "],
                "the Authorization header must be `Bearer <token>`",
            ),
            (
                &["Bearer a b"],
                "the Authorization header must be `Bearer <token>`",
            ),
            (
                &["Bearer tga_root-token", "Bearer tga_root-token"],
                "the Authorization header must be `Bearer <token>`",
            ),
            (&["Bearer tga_root-tokeN"], "the bearer token is not valid"),
            (&["Bearer 0000"], "the bearer token is not valid"),
        ];
        for (headers, why) in rows {
            match Caller::authenticate(&request(headers)) {
                Err(AdminError::Unauthorized(got)) => assert_eq!(got, *why, "{headers:?}"),
                other => panic!("{headers:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn fails_closed_without_credentials_configured() {
        let req = TestRequest::default()
            .insert_header((AUTHORIZATION, format!("Bearer {TOKEN}")))
            .to_http_request();
        assert!(matches!(
            Caller::authenticate(&req),
            Err(AdminError::Misconfigured(_))
        ));
    }

    #[test]
    fn debug_does_not_show_the_hash() {
        let a = auth();
        assert!(!format!("{a:?}").contains(&AdminToken::new(TOKEN.to_owned()).hash()));
    }
}
