//! The in-process short-lived store: a sharded map with per-entry deadlines, for the embedded
//! default and single-replica deployments. Expired entries are invisible at once and swept
//! out of memory periodically.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::{batch_limit, gcra_room, RateCheck, RateDecision, ShortLivedStore, StoreError};
use crate::clock::{Clock, SystemClock};

#[derive(Debug)]
struct Item {
    value: Vec<u8>,
    deadline: Instant,
}

/// Upper bound on live entries, so a flood of unique keys cannot exhaust memory.
const MAX_ENTRIES: usize = 1_000_000;

/// In-process store. Cloning shares the map.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    map: Arc<DashMap<String, Item>>,
    /// The zero of the rate limiter's clock (monotonic, microseconds).
    epoch: Instant,
    /// The rate limiter's clock, read under each bucket's lock.
    clock: Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn read_u64(value: &[u8]) -> u64 {
    value.try_into().map_or(0, u64::from_be_bytes)
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose rate-limit buckets read `clock`'s monotonic time (tests: a
    /// [`crate::clock::ManualClock`]; such a store is not swept, which reads the system's).
    #[must_use]
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            map: Arc::default(),
            epoch: clock.instant(),
            clock,
        }
    }

    /// The rate limiter's time: microseconds since `epoch`, and the instant they stand for.
    fn rate_now(&self) -> (Instant, u64) {
        let at = self.clock.instant();
        (at, micros(at.saturating_duration_since(self.epoch)))
    }

    /// Drops expired entries; the server calls this on an interval.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.map.retain(|_, item| item.deadline > now);
    }

    /// Number of entries held (expired ones included until swept).
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn check_capacity(&self) -> Result<(), StoreError> {
        if self.map.len() >= MAX_ENTRIES {
            self.sweep();
            if self.map.len() >= MAX_ENTRIES {
                return Err(StoreError::Unavailable("in-process store is full".into()));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl ShortLivedStore for MemoryStore {
    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.check_capacity()?;
        let now = Instant::now();
        match self.map.entry(key.to_owned()) {
            Entry::Occupied(mut e) => {
                if e.get().deadline > now {
                    return Ok(false);
                }
                e.insert(Item {
                    value: value.to_vec(),
                    deadline: now + ttl,
                });
                Ok(true)
            }
            Entry::Vacant(e) => {
                e.insert(Item {
                    value: value.to_vec(),
                    deadline: now + ttl,
                });
                Ok(true)
            }
        }
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        self.check_capacity()?;
        self.map.insert(
            key.to_owned(),
            Item {
                value: value.to_vec(),
                deadline: Instant::now() + ttl,
            },
        );
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        Ok(self
            .map
            .get(key)
            .filter(|i| i.deadline > now)
            .map(|i| i.value.clone()))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        Ok(self
            .map
            .remove(key)
            .filter(|(_, i)| i.deadline > now)
            .map(|(_, i)| i.value))
    }

    async fn remove(&self, key: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        Ok(self.map.remove(key).is_some_and(|(_, i)| i.deadline > now))
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        self.check_capacity()?;
        let now = Instant::now();
        let mut entry = self.map.entry(key.to_owned()).or_insert_with(|| Item {
            value: 0u64.to_be_bytes().to_vec(),
            deadline: now + ttl,
        });
        if entry.deadline <= now {
            *entry = Item {
                value: 0u64.to_be_bytes().to_vec(),
                deadline: now + ttl,
            };
        }
        let mut buf = [0u8; 8];
        if entry.value.len() == 8 {
            buf.copy_from_slice(&entry.value);
        }
        let n = u64::from_be_bytes(buf).saturating_add(1);
        entry.value = n.to_be_bytes().to_vec();
        Ok(n)
    }

    /// The same answers as the Redis script. Each bucket is read and written under its own
    /// entry lock (two at once could deadlock on one shard), with the clock read under that
    /// lock: whoever holds it sees the latest time any holder saw, so a thread that read the
    /// clock early can never find the bucket fuller than it is. Buckets only consulted are
    /// checked first (a refusal there charged nothing); a charged bucket that cannot take the
    /// batch the earlier ones took has them take back the difference, which commutes with
    /// whatever other requests did to those buckets meanwhile.
    async fn rate_limit(
        &self,
        checks: &[RateCheck<'_>],
        want: u32,
    ) -> Result<RateDecision, StoreError> {
        self.check_capacity()?;
        let mut refused: Option<(usize, u64)> = None;
        let note = |refused: &mut Option<(usize, u64)>, index: usize, wait: u64| {
            if refused.is_none_or(|(_, w)| wait > w) {
                *refused = Some((index, wait));
            }
        };
        let live_tat = |item: &Item, at: Instant| {
            if item.deadline > at {
                read_u64(&item.value)
            } else {
                0
            }
        };
        // Refunds first, whatever the answer: they are admissions nobody used.
        for check in checks.iter().filter(|c| c.refund > 0 && !c.peek) {
            if let Some(mut entry) = self.map.get_mut(check.key) {
                let (at, now) = self.rate_now();
                let interval = micros(check.interval).max(1);
                let (base, _) = gcra_room(
                    live_tat(&entry, at),
                    now,
                    interval,
                    check.burst,
                    check.refund,
                );
                entry.value = base.to_be_bytes().to_vec();
                entry.deadline = at + Duration::from_micros(base - now);
            }
        }
        for (index, check) in checks.iter().enumerate().filter(|(_, c)| c.peek) {
            if let Some(entry) = self.map.get(check.key) {
                let (at, now) = self.rate_now();
                let (_, room) = gcra_room(
                    live_tat(&entry, at),
                    now,
                    micros(check.interval),
                    check.burst,
                    0,
                );
                if let Err(wait) = room {
                    note(&mut refused, index, wait);
                }
            }
        }
        let mut granted = u64::from(want.max(1));
        let mut charged: Vec<(&str, u64, u64)> = Vec::with_capacity(checks.len());
        for (index, check) in checks.iter().enumerate().filter(|(_, c)| !c.peek) {
            let interval = micros(check.interval).max(1);
            if refused.is_some() {
                // Refused already: only the longest wait is still to find.
                if let Some(entry) = self.map.get(check.key) {
                    let (at, now) = self.rate_now();
                    let tat = live_tat(&entry, at);
                    if let (_, Err(wait)) = gcra_room(tat, now, interval, check.burst, 0) {
                        note(&mut refused, index, wait);
                    }
                }
                continue;
            }
            let mut entry = self
                .map
                .entry(check.key.to_owned())
                .or_insert_with(|| Item {
                    value: Vec::new(),
                    deadline: self.clock.instant(),
                });
            let (at, now) = self.rate_now();
            let (base, room) = gcra_room(live_tat(&entry, at), now, interval, check.burst, 0);
            match room {
                Ok(fits) => {
                    granted = granted.min(batch_limit(fits));
                    let tat = base + granted * interval;
                    entry.value = tat.to_be_bytes().to_vec();
                    entry.deadline = at + Duration::from_micros(tat - now);
                    charged.push((check.key, interval, granted));
                }
                Err(wait) => note(&mut refused, index, wait),
            }
        }
        // Take back what the request will not use: all of it when refused, else what earlier
        // buckets took beyond the final batch.
        let keep = if refused.is_some() { 0 } else { granted };
        for (key, interval, took) in charged {
            if took > keep {
                if let Some(mut entry) = self.map.get_mut(key) {
                    let (at, now) = self.rate_now();
                    let tat = read_u64(&entry.value).saturating_sub((took - keep) * interval);
                    entry.value = tat.to_be_bytes().to_vec();
                    entry.deadline = at + Duration::from_micros(tat.saturating_sub(now));
                }
            }
        }
        Ok(match refused {
            None => RateDecision::Allowed {
                granted: u32::try_from(granted).unwrap_or(1),
            },
            Some((index, wait)) => RateDecision::Limited {
                index,
                retry_after: Duration::from_micros(wait),
            },
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
