//! Administrative operations on tenants, servers, clients and keys: validation, persistence,
//! key and secret generation, and cache invalidation so a change takes effect on this
//! process's gateway before the call returns. The admin crate's handlers call exactly one of
//! these each.
//!
//! Every change takes the [`Origin`] of the request (who, from where) and hands the
//! repository an [`AuditRecord`] built from the public views before and after, which the
//! repository writes in the change's own transaction.

pub mod audit;
mod clients;
pub mod credentials;
mod keys;
pub mod rotation;
mod servers;
mod tenants;
mod users;

pub use clients::*;
pub use keys::*;
pub use servers::*;
pub use tenants::*;
pub use users::*;

use std::sync::Arc;

use crate::app::Tollgate;
use crate::model::Invalid;
use crate::store::StoreError;

/// Why an administrative operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// Bad input (400).
    #[error("{0}")]
    Invalid(Invalid),
    /// The named thing does not exist (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The id is taken (409).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database failed (503 when unreachable, else 500).
    #[error(transparent)]
    Store(StoreError),
    /// Key generation, sealing or hashing failed (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<Invalid> for ManageError {
    fn from(i: Invalid) -> Self {
        Self::Invalid(i)
    }
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn conflict(what: &'static str) -> impl Fn(StoreError) -> ManageError {
    move |e| match e {
        StoreError::Conflict => ManageError::Conflict(what),
        other => ManageError::Store(other),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ManageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ManageError::Internal(e.to_string()))
}

/// Revokes every access token issued to `subject` until now, by what it stands for
/// (`crate::revoked_subjects`): the watermark is written to the database, this process's
/// cache drops the server's set at once and the other processes when the announcement
/// arrives. Written before the change it comes with, so a change that then fails leaves
/// tokens revoked, never a change whose tokens live on.
async fn revoke_subject(
    app: &Tollgate,
    t: &crate::ids::TenantId,
    s: &crate::ids::ServerId,
    subject: &crate::revoked_subjects::Subject,
) -> Result<(), ManageError> {
    let now = app.clock.now();
    app.repo
        .revoke_subject(
            t,
            s,
            subject,
            app.clock.now_millis(),
            now + crate::revoked_subjects::KEEP_SECONDS,
            now,
        )
        .await?;
    app.invalidate(crate::invalidation::Invalidation::revoked_subjects(t, s))
        .await;
    Ok(())
}

/// Page size bounds for listings.
pub const MAX_PAGE: u32 = 200;

/// A page size: the requested one within bounds, else 50.
pub(crate) fn page_limit(l: Option<u32>) -> u32 {
    l.unwrap_or(50).clamp(1, MAX_PAGE)
}

/// Shared handle type used by the admin and gateway crates.
pub type App = Arc<Tollgate>;
