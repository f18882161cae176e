//! The in-process short-lived store: a sharded map with per-entry deadlines, for the embedded
//! default and single-replica deployments. Expired entries are invisible at once and swept
//! out of memory periodically.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::{ShortLivedStore, StoreError};

#[derive(Debug)]
struct Item {
    value: Vec<u8>,
    deadline: Instant,
}

/// Upper bound on live entries, so a flood of unique keys cannot exhaust memory.
const MAX_ENTRIES: usize = 1_000_000;

/// In-process store. Cloning shares the map.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    map: Arc<DashMap<String, Item>>,
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

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}
