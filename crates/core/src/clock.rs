//! Time as a dependency. [`Clock`] gives wall-clock Unix seconds, the unit of every timestamp
//! Tollgate stores or signs, and a monotonic [`Instant`] for what is measured in
//! microseconds (rate-limit buckets and their leases); the application holds one
//! ([`SystemClock`] in production) and hands it to whatever decides expiry, so tests advance a
//! [`ManualClock`] instead of sleeping. Also the random jitter that keeps replicas' periodic
//! tasks apart.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Wall-clock time in Unix seconds, and monotonic time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Seconds since the Unix epoch, now.
    fn now(&self) -> i64;

    /// Milliseconds since the Unix epoch, now: for ordering a revocation against the tokens
    /// issued just before and just after it (`revoked_subjects.rs`).
    fn now_millis(&self) -> i64 {
        self.now().saturating_mul(1000)
    }

    /// Monotonic time, now: never earlier than an instant this clock returned before, on any
    /// thread.
    fn instant(&self) -> Instant {
        Instant::now()
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

/// A clock that stands still until told to move: for tests of expiry and of rate limits.
/// Both readings move together: [`advance`](Self::advance) by whole seconds,
/// [`advance_by`](Self::advance_by) by any duration.
#[derive(Debug)]
pub struct ManualClock {
    /// Wall-clock time, in nanoseconds since the Unix epoch.
    wall_nanos: AtomicI64,
    /// The monotonic reading is `base` plus this many nanoseconds.
    elapsed_nanos: AtomicU64,
    base: Instant,
}

impl ManualClock {
    /// A clock reading `start`.
    #[must_use]
    pub fn new(start: i64) -> Self {
        Self {
            wall_nanos: AtomicI64::new(start.saturating_mul(1_000_000_000)),
            elapsed_nanos: AtomicU64::new(0),
            base: Instant::now(),
        }
    }

    /// A clock reading the system time now.
    #[must_use]
    pub fn starting_now() -> Self {
        Self::new(now())
    }

    /// Moves the clock `seconds` ahead (the wall clock back, for a negative number; the
    /// monotonic reading never goes back).
    pub fn advance(&self, seconds: i64) {
        self.wall_nanos
            .fetch_add(seconds.saturating_mul(1_000_000_000), Ordering::SeqCst);
        if let Ok(s) = u64::try_from(seconds) {
            self.elapsed_nanos
                .fetch_add(s.saturating_mul(1_000_000_000), Ordering::SeqCst);
        }
    }

    /// Moves both readings `d` ahead.
    pub fn advance_by(&self, d: Duration) {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.elapsed_nanos.fetch_add(nanos, Ordering::SeqCst);
        self.wall_nanos
            .fetch_add(i64::try_from(nanos).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.wall_nanos
            .load(Ordering::SeqCst)
            .div_euclid(1_000_000_000)
    }

    fn now_millis(&self) -> i64 {
        self.wall_nanos.load(Ordering::SeqCst).div_euclid(1_000_000)
    }

    fn instant(&self) -> Instant {
        self.base + Duration::from_nanos(self.elapsed_nanos.load(Ordering::SeqCst))
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
        let start = c.instant();
        c.advance(61);
        assert_eq!(c.now(), 1_061);
        c.advance_by(Duration::from_micros(1_500_000));
        assert_eq!(c.now(), 1_062);
        assert_eq!(c.instant() - start, Duration::from_micros(62_500_000));
        c.advance(-2);
        assert_eq!(c.now(), 1_060);
        assert_eq!(c.instant() - start, Duration::from_micros(62_500_000));
        assert!(SystemClock.now() > 1_700_000_000);
    }
}
