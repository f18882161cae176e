//! Wall-clock time as Unix seconds, the unit of every timestamp Tollgate stores or signs, and
//! the random jitter that keeps replicas' periodic tasks apart.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
#[must_use]
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A random duration in `[0, max)`, to spread periodic work of several replicas apart.
#[must_use]
pub fn jitter(max: std::time::Duration) -> std::time::Duration {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut bytes = [0u8; 4];
    // Without randomness the jitter is zero: the work still runs, only less spread out.
    if aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .is_err()
    {
        return std::time::Duration::ZERO;
    }
    max.mul_f64(f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0))
}
