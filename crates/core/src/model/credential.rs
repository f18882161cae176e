//! Tenant-scoped admin credentials as stored and shown: the role, the record (token only as
//! its SHA-256), the request body and the public view. The operations on them are in
//! `manage::credentials`.

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{CredentialId, TenantId};
use crate::secrets::AdminToken;

pub use crate::secrets::CREDENTIAL_PREFIX as TOKEN_PREFIX;

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
    pub id: CredentialId,
    /// The one tenant it reaches.
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
    pub(crate) fn new(c: AdminCredential, token: Option<&AdminToken>) -> Self {
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
