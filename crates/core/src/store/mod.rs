//! Storage seams: the durable repository (tenants, servers, clients, signing keys, admin
//! credentials) with SQLite and PostgreSQL implementations, and the short-lived store
//! (codes, assertion `jti`s, revocations, counters) with in-process and Redis implementations.

pub mod memory;
pub mod redis;
pub mod sql;
pub mod timed;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::client::Client;
use crate::ids::{ClientId, ServerId, TenantId};
use crate::keys::KeyRecord;
use crate::server::Server;
use crate::tenant::Tenant;

/// Storage failures. Messages never carry stored values.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A row with that key exists.
    #[error("already exists")]
    Conflict,
    /// The store cannot be reached or timed out.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored row cannot be decoded.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(String),
}

/// One page of a listing, ordered by id.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// The id to pass as `after` for the next page; `None` on the last page.
    pub next: Option<String>,
}

/// Tenants.
#[async_trait]
pub trait TenantRepo: Send + Sync {
    /// Inserts; [`StoreError::Conflict`] if the id is taken.
    async fn create_tenant(&self, t: &Tenant) -> Result<(), StoreError>;
    /// One tenant.
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError>;
    /// Tenants with id greater than `after`, at most `limit`.
    async fn list_tenants(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Tenant>, StoreError>;
    /// Updates the name; false if absent.
    async fn update_tenant(&self, t: &Tenant) -> Result<bool, StoreError>;
    /// Deletes the tenant and everything in it; false if absent.
    async fn delete_tenant(&self, id: &TenantId) -> Result<bool, StoreError>;
}

/// Authorization servers.
#[async_trait]
pub trait ServerRepo: Send + Sync {
    /// Inserts the server with its first keys in one transaction.
    async fn create_server(&self, s: &Server, keys: &[KeyRecord]) -> Result<(), StoreError>;
    /// One server.
    async fn get_server(&self, t: &TenantId, id: &ServerId) -> Result<Option<Server>, StoreError>;
    /// Servers of a tenant.
    async fn list_servers(
        &self,
        t: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Server>, StoreError>;
    /// Updates settings; false if absent.
    async fn update_server(&self, s: &Server) -> Result<bool, StoreError>;
    /// Deletes the server and its clients and keys; false if absent.
    async fn delete_server(&self, t: &TenantId, id: &ServerId) -> Result<bool, StoreError>;
}

/// Clients.
#[async_trait]
pub trait ClientRepo: Send + Sync {
    /// Inserts; [`StoreError::Conflict`] if the id is taken in that server.
    async fn create_client(&self, c: &Client) -> Result<(), StoreError>;
    /// One client.
    async fn get_client(
        &self,
        t: &TenantId,
        s: &ServerId,
        id: &ClientId,
    ) -> Result<Option<Client>, StoreError>;
    /// Clients of a server.
    async fn list_clients(
        &self,
        t: &TenantId,
        s: &ServerId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Client>, StoreError>;
    /// Replaces metadata and secret; false if absent.
    async fn update_client(&self, c: &Client) -> Result<bool, StoreError>;
    /// Deletes; false if absent.
    async fn delete_client(
        &self,
        t: &TenantId,
        s: &ServerId,
        id: &ClientId,
    ) -> Result<bool, StoreError>;
}

/// Signing keys.
#[async_trait]
pub trait KeyRepo: Send + Sync {
    /// Every key of a server (all statuses), oldest first.
    async fn list_keys(&self, t: &TenantId, s: &ServerId) -> Result<Vec<KeyRecord>, StoreError>;
    /// In one transaction: marks the current keys of `new.alg` as retiring until `retire_at`,
    /// inserts `new` as current, and deletes retiring keys whose time has passed.
    async fn rotate_key(&self, new: &KeyRecord, retire_at: i64, now: i64)
        -> Result<(), StoreError>;
    /// Marks the current keys of `alg` as retiring until `retire_at`.
    async fn retire_keys(
        &self,
        t: &TenantId,
        s: &ServerId,
        alg: crate::server::SigningAlg,
        retire_at: i64,
    ) -> Result<(), StoreError>;
    /// Rotation that is safe with several processes: in one transaction, and only if the key
    /// `expected_current_kid` is still current, marks it (and any other current key of
    /// `new.alg`) retiring until `retire_at`, inserts `new` as current, and deletes retiring
    /// keys whose time has passed. False, with nothing changed, when another rotation got
    /// there first.
    async fn rotate_key_if_current(
        &self,
        new: &KeyRecord,
        expected_current_kid: &str,
        retire_at: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Servers with a `key_rotation_period` whose newest current key is at least that old at
    /// `now`, at most `limit`, ordered by tenant and id.
    async fn servers_due_for_key_rotation(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<Server>, StoreError>;
    /// Deletes retiring keys whose `retire_at` has passed; returns the servers that lost one
    /// (each once).
    async fn delete_retired_keys(&self, now: i64) -> Result<Vec<(TenantId, ServerId)>, StoreError>;
}

/// Admin credentials (the generated root token's hash).
#[async_trait]
pub trait AdminRepo: Send + Sync {
    /// The stored hash of the named token.
    async fn admin_token_hash(&self, name: &str) -> Result<Option<String>, StoreError>;
    /// Stores the hash unless one exists; returns whether it was stored.
    async fn set_admin_token_hash_if_absent(
        &self,
        name: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError>;
}

/// The durable store: every repository plus health and migrations.
#[async_trait]
pub trait Repository:
    TenantRepo + ServerRepo + ClientRepo + KeyRepo + AdminRepo + std::fmt::Debug
{
    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// One cheap round trip.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Which backend this is (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;
    /// Closes the pool.
    async fn close(&self);
}

/// Short-lived state with TTLs and atomic take-once semantics. Keys are namespaced by the
/// caller (`code:…`, `jti:…`); values are opaque bytes.
#[async_trait]
pub trait ShortLivedStore: Send + Sync + std::fmt::Debug {
    /// Stores `value` unless `key` exists (Redis `SET NX PX`); true if stored.
    async fn put_if_absent(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// Stores `value`, replacing any previous one.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError>;
    /// Reads without consuming.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Reads and deletes atomically (Redis `GETDEL`): of concurrent takers exactly one wins.
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes; true if something was there.
    async fn remove(&self, key: &str) -> Result<bool, StoreError>;
    /// Increments a counter, starting its TTL on creation; returns the new value.
    async fn incr(&self, key: &str, ttl: Duration) -> Result<u64, StoreError>;
    /// GCRA rate limiting over several buckets at once, atomically: admits the request into
    /// every bucket, or (when one is full) into none and says which and for how long. One
    /// round trip whatever the number of buckets; clocks are the store's own (Redis `TIME`),
    /// so replicas with skewed clocks agree.
    async fn rate_limit(&self, checks: &[RateCheck<'_>]) -> Result<RateDecision, StoreError>;
    /// One cheap round trip.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Which backend this is (`memory`, `redis`).
    fn backend(&self) -> &'static str;
}

/// One bucket of a [`ShortLivedStore::rate_limit`] call: a key holding the bucket's
/// theoretical arrival time (GCRA), the emission interval and the burst.
#[derive(Debug, Clone, Copy)]
pub struct RateCheck<'a> {
    /// The key (namespaced by the caller, `rl:…`).
    pub key: &'a str,
    /// Time between requests at the sustained rate (at least 1 µs).
    pub interval: Duration,
    /// Requests a full bucket admits at once (at least 1).
    pub burst: u32,
}

/// The answer of [`ShortLivedStore::rate_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Admitted into every bucket (each has been charged).
    Allowed,
    /// Refused; no bucket was charged.
    Limited {
        /// The index, in the checks, of the full bucket with the longest wait.
        index: usize,
        /// How long until that bucket admits the request.
        retry_after: Duration,
    },
}

/// GCRA for one bucket at `now` (microseconds on the store's clock), given its stored
/// theoretical arrival time: `Ok(new_tat)` when the request fits, else `Err(wait)`. Shared by
/// the in-process store and mirrored by the Redis script, so both answer alike.
pub(crate) fn gcra(tat: u64, now: u64, interval: u64, burst: u32) -> Result<u64, u64> {
    let new_tat = tat.max(now).saturating_add(interval);
    let tolerance = interval.saturating_mul(u64::from(burst.max(1)));
    let ahead = new_tat - now;
    if ahead > tolerance {
        Err(ahead - tolerance)
    } else {
        Ok(new_tat)
    }
}

/// Opens the repository named by a database URL (`sqlite:…` or `postgres://…`).
///
/// # Errors
/// Unknown scheme, bad URL, or an unreachable database.
pub async fn open_repository(url: &str) -> Result<Arc<dyn Repository>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sql::SqliteRepository::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(sql::PostgresRepository::connect(url).await?))
    } else {
        Err(StoreError::Unavailable(
            "database URL must start with sqlite: or postgres://".into(),
        ))
    }
}

/// Opens the short-lived store: Redis when a URL is given, else in-process.
///
/// # Errors
/// Bad URL or unreachable Redis.
pub async fn open_short_lived(
    redis_url: Option<&str>,
) -> Result<Arc<dyn ShortLivedStore>, StoreError> {
    match redis_url {
        Some(url) => Ok(Arc::new(redis::RedisStore::connect(url).await?)),
        None => Ok(Arc::new(memory::MemoryStore::new())),
    }
}

#[cfg(test)]
pub(crate) mod contract;
