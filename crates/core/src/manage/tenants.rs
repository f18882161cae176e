//! Tenants: create, read, list, patch, delete.

use crate::app::Tollgate;
use crate::audit::{AuditRecord, Origin, Resource};
use crate::ids::TenantId;
use crate::invalidation::Invalidation;
use crate::model::tenant::{validate_name, NewTenant, Tenant, TenantPatch};
use crate::store::Page;

use super::{conflict, page_limit, ManageError};
/// Creates a tenant.
///
/// # Errors
/// Invalid name, id taken, or store failure.
pub async fn create_tenant(
    app: &Tollgate,
    by: &Origin,
    input: NewTenant,
) -> Result<Tenant, ManageError> {
    validate_name("name", &input.name)?;
    let now = app.clock.now();
    let t = Tenant {
        id: input.id,
        name: input.name,
        created_at: now,
        updated_at: now,
    };
    let audit = AuditRecord::new(by, "tenant.create", Resource::tenant(&t.id)).after(&t);
    app.repo
        .create_tenant(&t, &audit)
        .await
        .map_err(conflict("tenant"))?;
    app.invalidate(Invalidation::tenant(&t.id)).await;
    Ok(t)
}

/// One tenant.
///
/// # Errors
/// Not found or store failure.
pub async fn get_tenant(app: &Tollgate, id: &TenantId) -> Result<Tenant, ManageError> {
    app.repo
        .get_tenant(id)
        .await?
        .ok_or(ManageError::NotFound("tenant"))
}

/// A page of tenants: every tenant, or with `only`, that one alone (what a tenant-scoped
/// credential may see).
///
/// # Errors
/// Store failure.
pub async fn list_tenants(
    app: &Tollgate,
    only: Option<&TenantId>,
    cursor: Option<&str>,
    l: Option<u32>,
) -> Result<Page<Tenant>, ManageError> {
    let Some(only) = only else {
        return Ok(app.repo.list_tenants(cursor, page_limit(l)).await?);
    };
    // The one-tenant list pages like any other: the tenant, unless the cursor is past it.
    let items = match app.repo.get_tenant(only).await? {
        Some(t) if cursor.is_none_or(|c| t.id.as_str() > c) => vec![t],
        _ => Vec::new(),
    };
    Ok(Page { items, next: None })
}

/// Applies a patch to a tenant.
///
/// # Errors
/// Invalid name, not found, or store failure.
pub async fn patch_tenant(
    app: &Tollgate,
    by: &Origin,
    id: &TenantId,
    patch: TenantPatch,
) -> Result<Tenant, ManageError> {
    let before = get_tenant(app, id).await?;
    let mut t = before.clone();
    if let Some(name) = patch.name {
        validate_name("name", &name)?;
        t.name = name;
    }
    t.updated_at = app.clock.now();
    let audit = AuditRecord::new(by, "tenant.update", Resource::tenant(id))
        .before(&before)
        .after(&t);
    if !app.repo.update_tenant(&t, &audit).await? {
        return Err(ManageError::NotFound("tenant"));
    }
    app.invalidate(Invalidation::tenant(id)).await;
    Ok(t)
}

/// Deletes a tenant with its servers, clients and keys.
///
/// # Errors
/// Not found or store failure.
pub async fn delete_tenant(app: &Tollgate, by: &Origin, id: &TenantId) -> Result<(), ManageError> {
    let before = get_tenant(app, id).await?;
    let audit = AuditRecord::new(by, "tenant.delete", Resource::tenant(id)).before(&before);
    let deleted = app.repo.delete_tenant(id, &audit).await?;
    app.invalidate(Invalidation::tenant(id)).await;
    if deleted {
        Ok(())
    } else {
        Err(ManageError::NotFound("tenant"))
    }
}
