//! Tenants: the top-level isolation unit. Each holds authorization servers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::TenantId;
use crate::model::Invalid;

/// A tenant as stored and as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    /// 1–64 chars of `[a-z0-9-]`, not starting with `-`.
    #[schema(value_type = String, example = "acme")]
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Body of `POST /admin/tenants`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// The tenant id.
    #[schema(value_type = String, example = "acme")]
    pub id: TenantId,
    /// Display name, 1–200 characters.
    pub name: String,
}

/// Body of `PATCH /admin/tenants/{tid}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// New display name.
    pub name: Option<String>,
}

/// Checks a display name: 1–200 characters, no control characters.
///
/// # Errors
/// Names the field on failure.
pub fn validate_name(field: &'static str, name: &str) -> Result<(), Invalid> {
    let len = name.chars().count();
    if len == 0 || len > 200 || name.trim().is_empty() {
        return Err(Invalid::request(field, "must be 1 to 200 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::request(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}
