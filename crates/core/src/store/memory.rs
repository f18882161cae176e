//! The in-process short-lived store: a sharded map with per-entry deadlines, for the embedded
//! default and single-replica deployments. Expired entries are invisible at once and swept
//! out of memory periodically (and at once, at most every [`RECLAIM_EVERY`], when a write
//! finds its owner's share full).
//!
//! Every entry is charged to its owner's counters (tenant, server, and the process total)
//! from its creation until it is taken, removed or swept; a write that would create an entry
//! beyond one of the [`Shares`] is refused for that owner alone.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

use super::{
    batch_limit, gcra_room, Owner, RateCheck, RateDecision, Shares, ShortLivedStore, StoreError,
};
use crate::clock::{Clock, SystemClock};

/// The counters an entry is charged to: its tenant's and its server's.
#[derive(Debug)]
struct Charge {
    tenant: Arc<AtomicU64>,
    server: AtomicU64,
}

#[derive(Debug)]
struct Item {
    value: Vec<u8>,
    deadline: Instant,
    charge: Arc<Charge>,
}

/// Shortest time between two sweeps that a full share triggers: a tenant writing against its
/// full share makes the process scan its map at most this often.
const RECLAIM_EVERY: Duration = Duration::from_secs(1);

/// In-process store. Cloning shares the map.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    map: Arc<DashMap<String, Item>>,
    /// Counters by tenant.
    tenants: Arc<DashMap<String, Arc<AtomicU64>>>,
    /// Counters by `tenant/server`.
    servers: Arc<DashMap<String, Arc<Charge>>>,
    /// Entries held altogether (expired ones until swept).
    total: Arc<AtomicU64>,
    shares: Shares,
    /// When a full share last triggered a sweep (milliseconds since `epoch`).
    last_reclaim_ms: Arc<AtomicU64>,
    /// The zero of the rate limiter's clock (monotonic, microseconds).
    epoch: Instant,
    /// The rate limiter's clock, read under each bucket's lock.
    clock: Arc<dyn Clock>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_shares(Shares::default())
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

fn read_u64(value: &[u8]) -> u64 {
    value.try_into().map_or(0, u64::from_be_bytes)
}

impl MemoryStore {
    /// An empty store with the default shares.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store bounded by `shares`.
    #[must_use]
    pub fn with_shares(shares: Shares) -> Self {
        Self::with_shares_and_clock(shares, Arc::new(SystemClock))
    }

    /// An empty store whose rate-limit buckets read `clock`'s monotonic time (tests: a
    /// [`crate::clock::ManualClock`]; such a store is not swept, which reads the system's).
    #[must_use]
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self::with_shares_and_clock(Shares::default(), clock)
    }

    fn with_shares_and_clock(shares: Shares, clock: Arc<dyn Clock>) -> Self {
        Self {
            map: Arc::default(),
            tenants: Arc::default(),
            servers: Arc::default(),
            total: Arc::default(),
            shares,
            // Far in the past: the first full share may reclaim at once.
            last_reclaim_ms: Arc::new(AtomicU64::new(0)),
            epoch: clock.instant(),
            clock,
        }
    }

    /// The rate limiter's time: microseconds since `epoch`, and the instant they stand for.
    fn rate_now(&self) -> (Instant, u64) {
        let at = self.clock.instant();
        (at, micros(at.saturating_duration_since(self.epoch)))
    }

    /// Drops expired entries, releasing what they were charged; the server calls this on an
    /// interval.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.map.retain(|_, item| {
            let live = item.deadline > now;
            if !live {
                self.release(&item.charge);
            }
            live
        });
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

    /// Entries charged to a tenant (expired ones included until swept).
    #[must_use]
    pub fn tenant_entries(&self, tenant: &str) -> u64 {
        self.tenants
            .get(tenant)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The counters of `owner`, created on first use.
    fn charge(&self, owner: Owner<'_>) -> Arc<Charge> {
        let key = format!("{}/{}", owner.tenant, owner.server);
        if let Some(c) = self.servers.get(&key) {
            return Arc::clone(&c);
        }
        let tenant = Arc::clone(&self.tenants.entry(owner.tenant.to_string()).or_default());
        Arc::clone(&self.servers.entry(key).or_insert_with(|| {
            Arc::new(Charge {
                tenant,
                server: AtomicU64::new(0),
            })
        }))
    }

    /// Charges one new entry, or refuses (charging nothing) when a share is full.
    fn reserve(&self, c: &Charge) -> bool {
        let total = self.total.fetch_add(1, Ordering::AcqRel) < self.shares.total_entries;
        let tenant = c.tenant.fetch_add(1, Ordering::AcqRel) < self.shares.tenant_entries;
        let server = c.server.fetch_add(1, Ordering::AcqRel) < self.shares.server_entries;
        if total && tenant && server {
            true
        } else {
            self.release(c);
            false
        }
    }

    fn release(&self, c: &Charge) {
        self.total.fetch_sub(1, Ordering::AcqRel);
        c.tenant.fetch_sub(1, Ordering::AcqRel);
        c.server.fetch_sub(1, Ordering::AcqRel);
    }

    /// Moves an existing entry's charge to `to` (the same owner, in practice: keys carry it).
    fn transfer(&self, from: &Arc<Charge>, to: &Arc<Charge>) -> bool {
        if Arc::ptr_eq(from, to) {
            return true;
        }
        if !self.reserve(to) {
            return false;
        }
        self.release(from);
        true
    }

    /// Sweeps, unless a full share triggered a sweep within [`RECLAIM_EVERY`]; true if it
    /// swept. Called with no entry of the map held.
    fn reclaim(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_reclaim_ms.load(Ordering::Acquire);
        let every = u64::try_from(RECLAIM_EVERY.as_millis()).unwrap_or(1000);
        if last != 0 && now.saturating_sub(last) < every {
            return false;
        }
        if self
            .last_reclaim_ms
            .compare_exchange(last, now.max(1), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.sweep();
        true
    }

    fn over_share() -> StoreError {
        StoreError::OverShare {
            retry_after: RECLAIM_EVERY,
        }
    }

    /// Writes `key` through `write` (given the entry when one exists, live or expired, and
    /// answering what to keep), charging a new entry to `owner`; once more after a reclaim
    /// when the share is full.
    fn write<T>(
        &self,
        owner: Owner<'_>,
        key: &str,
        mut write: impl FnMut(Option<&Item>, Instant) -> Write<T>,
    ) -> Result<T, StoreError> {
        let charge = self.charge(owner);
        for _ in 0..2 {
            let now = Instant::now();
            let refused = match self.map.entry(key.to_owned()) {
                Entry::Occupied(mut e) => match write(Some(e.get()), now) {
                    Write::Keep(out) => return Ok(out),
                    Write::Store(value, deadline, out) => {
                        if self.transfer(&e.get().charge, &charge) {
                            e.insert(Item {
                                value,
                                deadline,
                                charge: Arc::clone(&charge),
                            });
                            return Ok(out);
                        }
                        true
                    }
                },
                Entry::Vacant(e) => match write(None, now) {
                    Write::Keep(out) => return Ok(out),
                    Write::Store(value, deadline, out) => {
                        if self.reserve(&charge) {
                            e.insert(Item {
                                value,
                                deadline,
                                charge: Arc::clone(&charge),
                            });
                            return Ok(out);
                        }
                        true
                    }
                },
            };
            // The entry's lock is released here: sweeping may take every shard.
            if refused && !self.reclaim() {
                break;
            }
        }
        Err(Self::over_share())
    }
}

/// What [`MemoryStore::write`]'s closure decides.
enum Write<T> {
    /// Leave the entry as it is and answer this.
    Keep(T),
    /// Store this value until this deadline, then answer this.
    Store(Vec<u8>, Instant, T),
}

#[async_trait]
impl ShortLivedStore for MemoryStore {
    async fn put_if_absent(
        &self,
        owner: Owner<'_>,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.write(owner, key, |old, now| match old {
            Some(item) if item.deadline > now => Write::Keep(false),
            _ => Write::Store(value.to_vec(), now + ttl, true),
        })
    }

    async fn put(
        &self,
        owner: Owner<'_>,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.write(owner, key, |_, now| {
            Write::Store(value.to_vec(), now + ttl, ())
        })
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        Ok(self
            .map
            .get(key)
            .filter(|i| i.deadline > now)
            .map(|i| i.value.clone()))
    }

    async fn take(&self, _owner: Owner<'_>, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = Instant::now();
        let Some((_, item)) = self.map.remove(key) else {
            return Ok(None);
        };
        self.release(&item.charge);
        Ok((item.deadline > now).then_some(item.value))
    }

    async fn remove(&self, _owner: Owner<'_>, key: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        let Some((_, item)) = self.map.remove(key) else {
            return Ok(false);
        };
        self.release(&item.charge);
        Ok(item.deadline > now)
    }

    async fn incr(&self, owner: Owner<'_>, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        self.write(owner, key, |old, now| {
            let (n, deadline) = match old {
                Some(item) if item.deadline > now => (read_u64(&item.value), item.deadline),
                _ => (0, now + ttl),
            };
            let n = n.saturating_add(1);
            Write::Store(n.to_be_bytes().to_vec(), deadline, n)
        })
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
        let mut refused: Option<(usize, u64)> = None;
        let mut over_share = false;
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
            // Only a new bucket needs room: a full store or share never stops the buckets
            // that exist.
            let mut entry = match self.map.entry(check.key.to_owned()) {
                Entry::Occupied(e) => e.into_ref(),
                Entry::Vacant(e) => {
                    let charge = self.charge(check.owner);
                    if !self.reserve(&charge) {
                        over_share = true;
                        break;
                    }
                    e.insert(Item {
                        value: Vec::new(),
                        deadline: self.clock.instant(),
                        charge,
                    })
                }
            };
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
        let keep = if refused.is_some() || over_share {
            0
        } else {
            granted
        };
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
        if over_share {
            self.reclaim();
            return Err(Self::over_share());
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::ids::{ServerId, TenantId};

    #[tokio::test]
    async fn a_sweep_releases_what_expired_entries_were_charged() {
        let store = MemoryStore::with_shares(Shares {
            tenant_entries: 3,
            server_entries: 3,
            total_entries: 100,
        });
        let (t, s) = (
            TenantId::parse("acme").unwrap(),
            ServerId::parse("main").unwrap(),
        );
        let owner = Owner::new(&t, &s);
        for i in 0..3 {
            store
                .put(owner, &format!("k{i}"), b"v", Duration::from_millis(1))
                .await
                .unwrap();
        }
        assert_eq!(store.tenant_entries("acme"), 3);
        tokio::time::sleep(Duration::from_millis(5)).await;
        store.sweep();
        assert_eq!(store.tenant_entries("acme"), 0);
        assert!(store.is_empty());
    }
}
