//! Tenant-scoped admin credentials: bearer tokens that reach one tenant only, as an `admin`
//! (everything inside the tenant) or `read-only` (reads only). Created, listed and revoked
//! through the admin API; the token is shown once and stored only as its SHA-256.
//!
//! Why SHA-256 and not argon2id: the token is 256 random bits, so no dictionary or brute-force
//! attack on a leaked hash is possible and a slow hash would add nothing but cost on every
//! admin request. argon2id stays for secrets a person might choose (and client secrets,
//! whose format the contract fixes).
//!
//! Why no cache: credentials are read per request by the hash's unique index. The admin path
//! is not the hot path, and reading per request makes a revocation or expiry effective on
//! every replica at once, with no invalidation protocol to get wrong.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::Tollgate;
use crate::audit::{AuditRecord, Origin, Resource};
use crate::clock;
use crate::ids::{CredentialId, TenantId};
use crate::manage::{get_tenant, page_limit, Invalid, ManageError};
use crate::secrets::{ct_eq, AdminToken};
use crate::store::{Page, StoreError};
use crate::tenant::validate_name;

/// The prefix of every tenant-scoped credential token (the root token's is `tga_`).
pub const TOKEN_PREFIX: &str = "tgc_";

/// What a credential may do inside its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AdminRole {
    /// Every operation inside the tenant.
    Admin,
    /// `GET` only.
    ReadOnly,
}

impl AdminRole {
    /// The stored form.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::ReadOnly => "read-only",
        }
    }

    /// Parses the stored form.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "read-only" => Some(Self::ReadOnly),
            _ => None,
        }
    }
}

/// Body of `POST /admin/tenants/{tid}/credentials`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// A label for people, 1–200 characters.
    pub name: Option<String>,
    /// `admin` or `read-only`.
    pub role: AdminRole,
    /// When the credential stops working (Unix seconds, in the future); absent: never.
    pub expires_at: Option<i64>,
}

/// A credential as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminCredential {
    /// The id (not the token).
    pub id: CredentialId,
    /// The one tenant it reaches.
    pub tenant_id: TenantId,
    /// Label.
    pub name: Option<String>,
    /// What it may do.
    pub role: AdminRole,
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// The actor label of whoever created it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `None`: never expires.
    pub expires_at: Option<i64>,
    /// Unix seconds; `None`: not revoked.
    pub revoked_at: Option<i64>,
}

impl fmt::Debug for AdminCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminCredential")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("role", &self.role)
            .field("token_hash", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

/// A credential as the admin API shows it: never the hash; the token only in the response
/// that created it.
#[derive(Clone, Serialize, ToSchema)]
pub struct CredentialView {
    /// The id, for listing and revoking.
    #[schema(value_type = String)]
    pub id: CredentialId,
    /// The one tenant it reaches.
    #[schema(value_type = String)]
    pub tenant_id: TenantId,
    /// Label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `admin` or `read-only`.
    pub role: AdminRole,
    /// Who created it: `root` or `credential:{id}`.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `null`: never.
    pub expires_at: Option<i64>,
    /// Unix seconds; `null`: not revoked.
    pub revoked_at: Option<i64>,
    /// The bearer token (`tgc_…`): present only in the creation response, shown this once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl fmt::Debug for CredentialView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialView")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("role", &self.role)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl CredentialView {
    fn new(c: AdminCredential, token: Option<&AdminToken>) -> Self {
        Self {
            id: c.id,
            tenant_id: c.tenant_id,
            name: c.name,
            role: c.role,
            created_by: c.created_by,
            created_at: c.created_at,
            expires_at: c.expires_at,
            revoked_at: c.revoked_at,
            token: token.map(|t| t.expose().to_owned()),
        }
    }
}

/// Creates a credential for tenant `t`; the returned view carries the token, once.
///
/// # Errors
/// Invalid body, tenant not found, or store failure.
pub async fn create_credential(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    input: NewCredential,
) -> Result<CredentialView, ManageError> {
    if let Some(name) = &input.name {
        validate_name("name", name)?;
    }
    let now = clock::now();
    if input.expires_at.is_some_and(|e| e <= now) {
        return Err(Invalid::request("expires_at", "must be in the future (Unix seconds)").into());
    }
    get_tenant(app, t).await?;
    let token = AdminToken::generate_credential();
    let credential = AdminCredential {
        id: CredentialId::generate(),
        tenant_id: t.clone(),
        name: input.name,
        role: input.role,
        token_hash: token.hash(),
        created_by: by.actor.label(),
        created_at: now,
        expires_at: input.expires_at,
        revoked_at: None,
    };
    let view = CredentialView::new(credential.clone(), None);
    let audit = AuditRecord::new(
        by,
        "credential.create",
        Resource::credential(t, &credential.id),
    )
    .after(&view);
    app.repo
        .create_credential(&credential, &audit)
        .await
        .map_err(|e| match e {
            // The tenant was deleted in between: the foreign key fails.
            StoreError::Conflict => ManageError::NotFound("tenant"),
            other => ManageError::Store(other),
        })?;
    Ok(CredentialView::new(credential, Some(&token)))
}

/// A page of a tenant's credentials (never their tokens), revoked ones included.
///
/// # Errors
/// Tenant not found or store failure.
pub async fn list_credentials(
    app: &Tollgate,
    t: &TenantId,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<Page<CredentialView>, ManageError> {
    get_tenant(app, t).await?;
    let page = app
        .repo
        .list_credentials(t, cursor, page_limit(limit))
        .await?;
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(|c| CredentialView::new(c, None))
            .collect(),
        next: page.next,
    })
}

/// Revokes a credential at once (on every replica: credentials are not cached).
///
/// # Errors
/// Not found (or revoked already), or store failure.
pub async fn revoke_credential(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    id: &CredentialId,
) -> Result<(), ManageError> {
    let audit = AuditRecord::new(by, "credential.revoke", Resource::credential(t, id));
    if app
        .repo
        .revoke_credential(t, id, clock::now(), &audit)
        .await?
    {
        Ok(())
    } else {
        Err(ManageError::NotFound("credential"))
    }
}

/// Why a bearer token is not a usable credential.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// No credential has this token.
    #[error("unknown credential")]
    Unknown,
    /// Past its `expires_at`.
    #[error("credential expired")]
    Expired,
    /// Revoked.
    #[error("credential revoked")]
    Revoked,
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The credential a bearer token belongs to, if it is usable now. Tokens without the
/// credential prefix are refused without a database round trip.
///
/// # Errors
/// Unknown, expired or revoked, or a store failure.
pub async fn authenticate(
    app: &Tollgate,
    token: &AdminToken,
) -> Result<AdminCredential, CredentialError> {
    if !token.expose().starts_with(TOKEN_PREFIX) {
        return Err(CredentialError::Unknown);
    }
    let hash = token.hash();
    let credential = app
        .repo
        .credential_by_hash(&hash)
        .await?
        .ok_or(CredentialError::Unknown)?;
    // The lookup went by an index over the hash; this equality is the one that decides, and
    // it does not leak where two digests differ.
    if !ct_eq(credential.token_hash.as_bytes(), hash.as_bytes()) {
        return Err(CredentialError::Unknown);
    }
    if credential.revoked_at.is_some() {
        return Err(CredentialError::Revoked);
    }
    if credential.expires_at.is_some_and(|e| e <= clock::now()) {
        return Err(CredentialError::Expired);
    }
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_in_kebab_case() {
        for role in [AdminRole::Admin, AdminRole::ReadOnly] {
            assert_eq!(AdminRole::parse(role.as_str()), Some(role));
            assert_eq!(
                serde_json::to_value(role).unwrap(),
                serde_json::Value::String(role.as_str().into())
            );
        }
        assert_eq!(AdminRole::parse("root"), None);
    }

    #[test]
    fn bodies_reject_unknown_fields() {
        assert!(
            serde_json::from_str::<NewCredential>(r#"{"role":"admin","scope":"all"}"#).is_err()
        );
        assert!(serde_json::from_str::<NewCredential>(r#"{"role":"owner"}"#).is_err());
        assert!(serde_json::from_str::<NewCredential>(r#"{"name":"ci"}"#).is_err());
        let ok: NewCredential =
            serde_json::from_str(r#"{"role":"read-only","expires_at":99}"#).unwrap();
        assert_eq!(
            (ok.role, ok.expires_at, ok.name),
            (AdminRole::ReadOnly, Some(99), None)
        );
    }

    #[test]
    fn debug_hides_the_token_and_its_hash() {
        let token = AdminToken::generate_credential();
        let c = AdminCredential {
            id: CredentialId::generate(),
            tenant_id: TenantId::parse("acme").unwrap(),
            name: None,
            role: AdminRole::Admin,
            token_hash: token.hash(),
            created_by: "root".into(),
            created_at: 1,
            expires_at: None,
            revoked_at: None,
        };
        let view = CredentialView::new(c.clone(), Some(&token));
        for text in [format!("{c:?}"), format!("{view:?}"), format!("{token:?}")] {
            assert!(!text.contains(token.expose()), "{text}");
            assert!(!text.contains(&token.hash()), "{text}");
        }
    }
}
