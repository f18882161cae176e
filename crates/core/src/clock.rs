//! Wall-clock time as Unix seconds, the unit of every timestamp Tollgate stores or signs.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
#[must_use]
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
