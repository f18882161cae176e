//! Who may call the admin API: the bearer-token check ([`AdminAuth`], [`Caller`]) and the
//! authorization rules that decide what a caller may manage.
//!
//! Two kinds of caller: the root token (everything), and tenant-scoped credentials
//! (`tgc_…`) that reach one tenant only, as `admin` (every operation there) or `read-only`
//! (`GET` only). Authentication answers 401 (missing, wrong, expired or revoked token);
//! authorization 403 (another tenant, a root-only operation, a write with a read-only
//! credential). Both run inside the path extractors of [`crate::paths`], so a handler cannot
//! reach a tenant's data without passing them.

use std::fmt;
use std::net::IpAddr;
use std::rc::Rc;

use actix_web::http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use actix_web::http::Method;
use actix_web::{web, HttpMessage as _, HttpRequest};
use tollgate_core::audit::{Actor, Origin};
use tollgate_core::ids::{CredentialId, TenantId};
use tollgate_core::manage::credentials::{self, CredentialError};
use tollgate_core::manage::ManageError;
use tollgate_core::model::credential::AdminRole;
use tollgate_core::secrets::AdminToken;
use tollgate_core::Tollgate;

use crate::error::AdminError;

/// The admin API's root credential: the hash of the root admin token (SHA-256 hex, as
/// [`AdminToken::hash`] computes it). Register it as `web::Data<AdminAuth>`. Tenant-scoped
/// credentials are read from the database per request (see `tollgate_core::manage::credentials`).
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

    /// Whether `token` is the root token. The comparison is constant-time.
    fn is_root(&self, token: &AdminToken) -> bool {
        token.matches_hash(&self.root_token_hash)
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The holder of the root admin token: may manage everything.
    Root,
    /// A tenant-scoped credential.
    Tenant {
        /// The credential's id (the audit trail's actor).
        credential: CredentialId,
        /// The one tenant it reaches.
        tenant: TenantId,
        /// What it may do there.
        role: AdminRole,
    },
}

/// What a request does: reads (`GET`, `HEAD`) or anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

impl Access {
    pub(crate) fn of(method: &Method) -> Self {
        if method == Method::GET || method == Method::HEAD {
            Self::Read
        } else {
            Self::Write
        }
    }
}

/// Which tenants a caller may see in the tenant list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TenantScope {
    /// Every tenant (root).
    All,
    /// Only this one (a tenant-scoped credential).
    Only(TenantId),
}

impl TenantScope {
    /// The one tenant, if the scope is limited to one.
    pub(crate) fn only(&self) -> Option<&TenantId> {
        match self {
            Self::All => None,
            Self::Only(t) => Some(t),
        }
    }
}

const ROOT_ONLY: AdminError = AdminError::Forbidden("this operation needs the root admin token");
const OTHER_TENANT: AdminError =
    AdminError::Forbidden("this credential does not reach this tenant");
const READ_ONLY: AdminError =
    AdminError::Forbidden("this credential is read-only: it may only GET");

impl Caller {
    /// What the caller may do with the tenant collection: everyone may list (a tenant
    /// credential sees its own tenant only); only the root token creates tenants.
    pub(crate) fn authorize_tenants(&self, access: Access) -> Result<TenantScope, AdminError> {
        match (self, access) {
            (Self::Root, _) => Ok(TenantScope::All),
            (Self::Tenant { tenant, .. }, Access::Read) => Ok(TenantScope::Only(tenant.clone())),
            (Self::Tenant { .. }, Access::Write) => Err(ROOT_ONLY),
        }
    }

    /// Whether the caller may do `access` on `tenant` and everything in it: the root token
    /// everywhere; a tenant credential in its own tenant only, and only reads if read-only.
    pub(crate) fn authorize_tenant(
        &self,
        tenant: &TenantId,
        access: Access,
    ) -> Result<(), AdminError> {
        match self {
            Self::Root => Ok(()),
            Self::Tenant { tenant: own, .. } if own != tenant => Err(OTHER_TENANT),
            Self::Tenant {
                role: AdminRole::ReadOnly,
                ..
            } if access == Access::Write => Err(READ_ONLY),
            Self::Tenant { .. } => Ok(()),
        }
    }

    /// Operations only the root token may do (deleting a tenant).
    pub(crate) fn authorize_root(&self) -> Result<(), AdminError> {
        match self {
            Self::Root => Ok(()),
            Self::Tenant { .. } => Err(ROOT_ONLY),
        }
    }

    /// The actor the audit trail records.
    pub(crate) fn actor(&self) -> Actor {
        match self {
            Self::Root => Actor::Root,
            Self::Tenant { credential, .. } => Actor::Credential(credential.clone()),
        }
    }

    /// Authenticates the request's bearer token: the root token (in memory), else a
    /// tenant-scoped credential (one indexed read). Every extractor of a request awaits this
    /// before doing its own work, so authentication comes first whatever order actix polls
    /// them in; the result is shared through the request's extensions, so the credential is
    /// read once per request.
    pub(crate) async fn authenticate(req: &HttpRequest) -> Result<Self, AdminError> {
        let cell = req
            .extensions_mut()
            .get_or_insert_with(AuthCell::default)
            .clone();
        cell.0
            .get_or_try_init(|| Self::identify(req))
            .await
            .cloned()
    }

    async fn identify(req: &HttpRequest) -> Result<Self, AdminError> {
        let auth = req
            .app_data::<web::Data<AdminAuth>>()
            .ok_or(AdminError::Misconfigured(
                "web::Data<AdminAuth> is not registered on the admin app",
            ))?;
        let token = AdminToken::new(bearer_token(req.headers())?.to_owned());
        let caller = if auth.is_root(&token) {
            Self::Root
        } else if !token
            .expose()
            .starts_with(tollgate_core::model::credential::TOKEN_PREFIX)
        {
            return Err(AdminError::Unauthorized("the bearer token is not valid"));
        } else {
            let app = req
                .app_data::<web::Data<Tollgate>>()
                .ok_or(AdminError::Misconfigured(
                    "web::Data<Tollgate> is not registered on the admin app",
                ))?;
            match credentials::authenticate(app, &token).await {
                Ok(c) => Self::Tenant {
                    credential: c.id,
                    tenant: c.tenant_id,
                    role: c.role,
                },
                Err(CredentialError::Store(e)) => return Err(ManageError::Store(e).into()),
                Err(e) => {
                    // Why, for operators; the caller learns only that the token is not valid.
                    tracing::info!(reason = %e, "admin authentication failed");
                    return Err(AdminError::Unauthorized("the bearer token is not valid"));
                }
            }
        };
        Ok(caller)
    }
}

/// The request's authentication, done once and awaited by every extractor.
#[derive(Debug, Clone, Default)]
struct AuthCell(Rc<tokio::sync::OnceCell<Caller>>);

/// Who is calling, from where, for the audit trail: the caller's actor and the client
/// address (the peer, or what a trusted proxy reported in `X-Forwarded-For`).
pub(crate) fn origin(req: &HttpRequest, caller: &Caller) -> Origin {
    const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
    let trusted = req
        .app_data::<web::Data<Tollgate>>()
        .map(|app| app.options.trusted_proxies.as_slice())
        .unwrap_or_default();
    let address: Option<IpAddr> = tollgate_core::peer::client_address(
        req.peer_addr().map(|a| a.ip()),
        req.headers()
            .get_all(X_FORWARDED_FOR)
            .filter_map(|v| v.to_str().ok()),
        trusted,
    );
    Origin::new(caller.actor(), address)
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

    #[actix_web::test]
    async fn accepts_the_root_token_in_any_scheme_case() {
        for header in [
            format!("Bearer {TOKEN}"),
            format!("bearer {TOKEN}"),
            format!("BEARER  {TOKEN}"),
        ] {
            assert_eq!(
                Caller::authenticate(&request(&[&header])).await.ok(),
                Some(Caller::Root),
                "{header}"
            );
        }
    }

    #[actix_web::test]
    async fn rejects_missing_malformed_and_wrong_tokens() {
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
            // No `Tollgate` is registered: a token that is neither the root token nor shaped
            // like a credential is refused without looking anything up.
            match Caller::authenticate(&request(headers)).await {
                Err(AdminError::Unauthorized(got)) => assert_eq!(got, *why, "{headers:?}"),
                other => panic!("{headers:?}: {other:?}"),
            }
        }
    }

    #[actix_web::test]
    async fn fails_closed_without_credentials_configured() {
        let req = TestRequest::default()
            .insert_header((AUTHORIZATION, format!("Bearer {TOKEN}")))
            .to_http_request();
        assert!(matches!(
            Caller::authenticate(&req).await,
            Err(AdminError::Misconfigured(_))
        ));
    }

    #[test]
    fn tenant_credentials_reach_their_tenant_only() {
        let acme = TenantId::parse("acme").unwrap();
        let other = TenantId::parse("other").unwrap();
        let caller = |role| Caller::Tenant {
            credential: CredentialId::parse("c-1").unwrap(),
            tenant: acme.clone(),
            role,
        };
        let (admin, reader) = (caller(AdminRole::Admin), caller(AdminRole::ReadOnly));
        let rows: [(&Caller, &TenantId, Access, Option<&str>); 8] = [
            (&Caller::Root, &other, Access::Write, None),
            (&admin, &acme, Access::Write, None),
            (&admin, &acme, Access::Read, None),
            (&admin, &other, Access::Read, Some("does not reach")),
            (&admin, &other, Access::Write, Some("does not reach")),
            (&reader, &acme, Access::Read, None),
            (&reader, &acme, Access::Write, Some("read-only")),
            (&reader, &other, Access::Read, Some("does not reach")),
        ];
        for (who, tenant, access, refused) in rows {
            match (who.authorize_tenant(tenant, access), refused) {
                (Ok(()), None) => {}
                (Err(AdminError::Forbidden(why)), Some(want)) => {
                    assert!(why.contains(want), "{who:?} {tenant} {access:?}: {why}");
                }
                (got, want) => panic!("{who:?} {tenant} {access:?}: {got:?}, want {want:?}"),
            }
        }
        assert_eq!(
            admin.authorize_tenants(Access::Read).ok(),
            Some(TenantScope::Only(acme.clone()))
        );
        assert!(matches!(
            admin.authorize_tenants(Access::Write),
            Err(AdminError::Forbidden(_))
        ));
        assert!(matches!(
            admin.authorize_root(),
            Err(AdminError::Forbidden(_))
        ));
        assert_eq!(
            Caller::Root.authorize_tenants(Access::Write).ok(),
            Some(TenantScope::All)
        );
        assert_eq!(Access::of(&Method::HEAD), Access::Read);
        assert_eq!(Access::of(&Method::PATCH), Access::Write);
    }

    #[test]
    fn origin_believes_forwarded_for_only_from_trusted_proxies() {
        let req = |peer: &str| {
            TestRequest::default()
                .peer_addr(format!("{peer}:5000").parse().unwrap())
                .insert_header(("x-forwarded-for", "198.51.100.8"))
                .to_http_request()
        };
        // Without `Tollgate` no proxy is trusted: the peer is the client.
        assert_eq!(
            origin(&req("10.0.0.1"), &Caller::Root).address,
            Some("10.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn debug_does_not_show_the_hash() {
        let a = auth();
        assert!(!format!("{a:?}").contains(&AdminToken::new(TOKEN.to_owned()).hash()));
    }
}
