//! Time as a dependency. [`Clock`] gives wall-clock Unix seconds, the unit of every timestamp
//! Tollgate stores or signs; the application holds one ([`SystemClock`] in production) and
//! hands it to whatever decides expiry, so tests advance a [`ManualClock`] instead of
//! sleeping. Also the random jitter that keeps replicas' periodic tasks apart.

use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time in Unix seconds.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Seconds since the Unix epoch, now.
    fn now(&self) -> i64;

    /// Milliseconds since the Unix epoch, now: for ordering a revocation against the tokens
    /// issued just before and just after it (`revoked_subjects.rs`).
    fn now_millis(&self) -> i64 {
        self.now().saturating_mul(1000)
    }
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        now()
    }

    fn now_millis(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// A clock that stands still until told to move: for tests of expiry.
#[derive(Debug)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock reading `start`.
    #[must_use]
    pub fn new(start: i64) -> Self {
        Self(AtomicI64::new(start))
    }

    /// A clock reading the system time now.
    #[must_use]
    pub fn starting_now() -> Self {
        Self::new(now())
    }

    /// Moves the clock `seconds` ahead.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Seconds since the Unix epoch, by the system clock. Code that decides expiry takes a
/// [`Clock`] instead; this is for the clock itself and for timestamps nobody tests against.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now(), 1_000);
        c.advance(61);
        assert_eq!(c.now(), 1_061);
        assert!(SystemClock.now() > 1_700_000_000);
    }
}
