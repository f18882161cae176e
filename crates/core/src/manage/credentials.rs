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

use crate::app::Tollgate;
use crate::audit::{AuditRecord, Origin, Resource};
use crate::ids::{CredentialId, TenantId};
use crate::manage::{get_tenant, page_limit, ManageError};
use crate::model::credential::{AdminCredential, CredentialView, NewCredential, TOKEN_PREFIX};
use crate::model::tenant::validate_name;
use crate::model::Invalid;
use crate::secrets::{ct_eq, AdminToken};
use crate::store::{Page, StoreError};

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
    let now = app.clock.now();
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
        .revoke_credential(t, id, app.clock.now(), &audit)
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
    if credential.expires_at.is_some_and(|e| e <= app.clock.now()) {
        return Err(CredentialError::Expired);
    }
    Ok(credential)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::credential::AdminRole;

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
