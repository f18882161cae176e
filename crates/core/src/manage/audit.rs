//! Reading the audit trail (the admin listing) and writing the sampled client-authentication
//! failures that the request path queues (`crate::audit::AuthFailureSampler`).

use std::sync::Arc;
use std::time::Duration;

use super::{page_limit, ManageError};
use crate::app::Tollgate;
use crate::audit::{AuditEvent, AuditFilter};
use crate::ids::TenantId;
use crate::store::Page;

/// Deadline for writing one sample.
const WRITE_DEADLINE: Duration = Duration::from_secs(5);

/// A page of tenant `t`'s audit trail matching `filter`, newest first, below the cursor
/// `before`. The trail outlives the tenant: it is readable after the tenant is deleted.
///
/// # Errors
/// Store failure.
pub async fn list(
    app: &Tollgate,
    t: &TenantId,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: Option<u32>,
) -> Result<Page<AuditEvent>, ManageError> {
    Ok(app
        .repo
        .list_audit(t, filter, before, page_limit(limit))
        .await?)
}

/// Writes queued samples until the queue closes (or the task is aborted). A sample that
/// cannot be written within the deadline is logged and dropped: sampling is best effort,
/// unlike the audit rows of admin changes.
pub async fn write_samples(app: Arc<Tollgate>) {
    let Some(mut queue) = app.auth_failures.take_queue() else {
        return;
    };
    while let Some(record) = queue.recv().await {
        match tokio::time::timeout(WRITE_DEADLINE, app.repo.append_audit(&record)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not write a sampled authentication failure to the audit trail");
            }
            Err(_) => {
                tracing::warn!(
                    "writing a sampled authentication failure to the audit trail timed out"
                );
            }
        }
    }
}
