//! The in-process short-lived store: a sharded map with per-entry deadlines, for the embedded
//! default and single-replica deployments. Expired entries are invisible at once and swept
//! out of memory periodically.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::{gcra, RateCheck, RateDecision, ShortLivedStore, StoreError};

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
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            map: Arc::default(),
            epoch: Instant::now(),
        }
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

    /// Grants one request at a time: an in-process check costs no round trip to save.
    async fn rate_limit(
        &self,
        checks: &[RateCheck<'_>],
        _want: u32,
    ) -> Result<RateDecision, StoreError> {
        self.check_capacity()?;
        let at = Instant::now();
        let now = micros(at.duration_since(self.epoch));
        // Each bucket is updated under its own entry lock (two at once could deadlock on one
        // shard); a refusal then takes back the charges already made, by one interval each,
        // which commutes with whatever other requests did to those buckets meanwhile.
        let mut charged: Vec<(&str, u64)> = Vec::with_capacity(checks.len());
        let mut refused: Option<(usize, u64)> = None;
        for (index, check) in checks.iter().enumerate() {
            let interval = micros(check.interval).max(1);
            let mut entry = self
                .map
                .entry(check.key.to_owned())
                .or_insert_with(|| Item {
                    value: Vec::new(),
                    deadline: at,
                });
            let tat = if entry.deadline > at {
                read_u64(&entry.value)
            } else {
                0
            };
            match gcra(tat, now, interval, check.burst) {
                Ok(new_tat) => {
                    entry.value = new_tat.to_be_bytes().to_vec();
                    entry.deadline = at + Duration::from_micros(new_tat - now);
                    charged.push((check.key, interval));
                }
                Err(wait) => {
                    if refused.is_none_or(|(_, w)| wait > w) {
                        refused = Some((index, wait));
                    }
                }
            }
        }
        let Some((index, wait)) = refused else {
            return Ok(RateDecision::Allowed { granted: 1 });
        };
        for (key, interval) in charged {
            if let Some(mut entry) = self.map.get_mut(key) {
                let tat = read_u64(&entry.value).saturating_sub(interval);
                entry.value = tat.to_be_bytes().to_vec();
                entry.deadline = self.epoch + Duration::from_micros(tat);
            }
        }
        Ok(RateDecision::Limited {
            index,
            retry_after: Duration::from_micros(wait),
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
