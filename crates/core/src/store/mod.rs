//! Storage seams: the durable repository (tenants, servers, clients, signing keys, admin
//! credentials, the audit trail) with SQLite and PostgreSQL implementations, and the
//! short-lived store (codes, assertion `jti`s, revocations, counters) with in-process and
//! Redis implementations.
//!
//! Every write that is an admin change takes the [`AuditRecord`] describing it and inserts
//! it in the change's own transaction: the two commit together or not at all, and a failure
//! to write the audit row fails the change. A write that finds nothing to change (an absent
//! row) writes no audit row either.

pub mod memory;
pub mod redis;
pub mod sql;
mod sql_users;
pub mod timed;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::audit::{AuditEvent, AuditFilter, AuditRecord};
use crate::ids::{ClientId, CredentialId, ServerId, TenantId, UserId};
use crate::keys::KeyRecord;
use crate::model::client::Client;
use crate::model::credential::AdminCredential;
use crate::model::server::{Server, SigningAlg};
use crate::model::tenant::Tenant;
use crate::model::users::{Consent, User};
use crate::refresh::{RefreshRecord, Rotated, Successor};
use crate::revoked_subjects::Subject;

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
    /// The store's configuration is wrong in a way retrying cannot fix (a URL the client
    /// refuses, a certificate no configured CA vouches for, a rejected password).
    #[error("misconfigured: {0}")]
    Config(String),
    /// A short-lived write refused: it would put its owner (a tenant or a server) over its
    /// share of the short-lived store ([`Shares`]), or the in-process store is at its overall
    /// capacity. Only that owner's writes are refused; `retry_after` is when its oldest entry
    /// lapses (an estimate).
    #[error("over its share of the short-lived store")]
    OverShare {
        /// When a write may fit again.
        retry_after: Duration,
    },
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
    /// Inserts, with its audit row; [`StoreError::Conflict`] if the id is taken.
    async fn create_tenant(&self, t: &Tenant, audit: &AuditRecord) -> Result<(), StoreError>;
    /// One tenant.
    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError>;
    /// Tenants with id greater than `after`, at most `limit`.
    async fn list_tenants(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Tenant>, StoreError>;
    /// Updates the name, with its audit row; false if absent.
    async fn update_tenant(&self, t: &Tenant, audit: &AuditRecord) -> Result<bool, StoreError>;
    /// Deletes the tenant and everything in it (not its audit trail), with its audit row;
    /// false if absent.
    async fn delete_tenant(&self, id: &TenantId, audit: &AuditRecord) -> Result<bool, StoreError>;
}

/// Authorization servers.
#[async_trait]
pub trait ServerRepo: Send + Sync {
    /// Inserts the server with its first keys and its audit row in one transaction.
    async fn create_server(
        &self,
        s: &Server,
        keys: &[KeyRecord],
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// One server.
    async fn get_server(&self, t: &TenantId, id: &ServerId) -> Result<Option<Server>, StoreError>;
    /// Servers of a tenant.
    async fn list_servers(
        &self,
        t: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Server>, StoreError>;
    /// Updates settings, with the key changes a new `signing_alg` brings and the audit row,
    /// in one transaction; false (nothing changed) if absent.
    async fn update_server(
        &self,
        s: &Server,
        keys: Option<&SigningAlgChange>,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
    /// Deletes the server and its clients and keys, with its audit row; false if absent.
    async fn delete_server(
        &self,
        t: &TenantId,
        id: &ServerId,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
}

/// Clients.
#[async_trait]
pub trait ClientRepo: Send + Sync {
    /// Inserts, with its audit row; [`StoreError::Conflict`] if the id is taken in that
    /// server.
    async fn create_client(&self, c: &Client, audit: &AuditRecord) -> Result<(), StoreError>;
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
    /// Replaces metadata and secret, with its audit row; false if absent.
    async fn update_client(&self, c: &Client, audit: &AuditRecord) -> Result<bool, StoreError>;
    /// Deletes, with its audit row; false if absent.
    async fn delete_client(
        &self,
        t: &TenantId,
        s: &ServerId,
        id: &ClientId,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
}

/// Signing keys.
#[async_trait]
pub trait KeyRepo: Send + Sync {
    /// Every key of a server (all statuses), oldest first.
    async fn list_keys(&self, t: &TenantId, s: &ServerId) -> Result<Vec<KeyRecord>, StoreError>;
    /// In one transaction: marks the current keys of `new.alg` as retiring until `retire_at`,
    /// inserts `new` as current, deletes retiring keys whose time has passed, and writes the
    /// audit row.
    async fn rotate_key(
        &self,
        new: &KeyRecord,
        retire_at: i64,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// Rotation that is safe with several processes: in one transaction, and only if the key
    /// `expected_current_kid` is still current, marks it (and any other current key of
    /// `new.alg`) retiring until `retire_at`, inserts `new` as current, and deletes retiring
    /// keys whose time has passed, and writes the audit row. False, with nothing changed,
    /// when another rotation got there first.
    async fn rotate_key_if_current(
        &self,
        new: &KeyRecord,
        expected_current_kid: &str,
        retire_at: i64,
        now: i64,
        audit: &AuditRecord,
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
    /// Servers that hold no current key of `alg`, at most `limit`, ordered by tenant and id
    /// (how the key housekeeper finds servers without the RS256 key ID tokens need).
    async fn servers_without_current_key(
        &self,
        alg: SigningAlg,
        limit: u32,
    ) -> Result<Vec<Server>, StoreError>;
}

/// Admin credentials: the generated root token's hash, and tenant-scoped credentials.
#[async_trait]
pub trait AdminRepo: Send + Sync {
    /// Inserts a tenant-scoped credential, with its audit row.
    async fn create_credential(
        &self,
        c: &AdminCredential,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// The credential whose token hashes to `token_hash` (revoked and expired ones too).
    async fn credential_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AdminCredential>, StoreError>;
    /// A tenant's credentials with id greater than `after`, at most `limit`.
    async fn list_credentials(
        &self,
        t: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<AdminCredential>, StoreError>;
    /// Marks a credential revoked at `now`, with its audit row; false if absent or revoked
    /// already.
    async fn revoke_credential(
        &self,
        t: &TenantId,
        id: &CredentialId,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
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

/// Users of the built-in login and their remembered consents.
#[async_trait]
pub trait UserRepo: Send + Sync {
    /// Inserts, with its audit row; [`StoreError::Conflict`] if the username (or id) is
    /// taken in that server.
    async fn create_user(&self, u: &User, audit: &AuditRecord) -> Result<(), StoreError>;
    /// One user by id.
    async fn get_user(
        &self,
        t: &TenantId,
        s: &ServerId,
        id: &UserId,
    ) -> Result<Option<User>, StoreError>;
    /// One user by (lowercased) username.
    async fn find_user(
        &self,
        t: &TenantId,
        s: &ServerId,
        username: &str,
    ) -> Result<Option<User>, StoreError>;
    /// Users of a server with id greater than `after`, ordered by id.
    async fn list_users(
        &self,
        t: &TenantId,
        s: &ServerId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<User>, StoreError>;
    /// Replaces username, password hash and claims, with the audit row; false if absent;
    /// conflict on a taken username.
    async fn update_user(&self, u: &User, audit: &AuditRecord) -> Result<bool, StoreError>;
    /// Deletes the user with their consents and refresh tokens, with the audit row; false if
    /// absent.
    async fn delete_user(
        &self,
        t: &TenantId,
        s: &ServerId,
        id: &UserId,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
    /// A user's consent to a client.
    async fn get_consent(
        &self,
        t: &TenantId,
        s: &ServerId,
        user: &UserId,
        client: &ClientId,
    ) -> Result<Option<Consent>, StoreError>;
    /// Inserts or replaces a consent.
    async fn put_consent(&self, c: &Consent) -> Result<(), StoreError>;
    /// Every consent of a user, by client id.
    async fn list_consents(
        &self,
        t: &TenantId,
        s: &ServerId,
        user: &UserId,
    ) -> Result<Vec<Consent>, StoreError>;
    /// Deletes a consent (an admin withdrawing it), with the audit row; false if absent.
    async fn delete_consent(
        &self,
        t: &TenantId,
        s: &ServerId,
        user: &UserId,
        client: &ClientId,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;
}

/// Refresh tokens, by digest.
#[async_trait]
pub trait RefreshRepo: Send + Sync {
    /// Inserts a new token (the first of its family).
    async fn insert_refresh_token(&self, r: &RefreshRecord) -> Result<(), StoreError>;
    /// One token by digest, whatever its state.
    async fn get_refresh_token(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError>;
    /// Exchanges a usable token of this client for `next`, atomically (one round trip on
    /// PostgreSQL): marks the old one rotated and inserts its successor in the same family.
    /// `None`, with nothing changed, when the token is unknown, of another client or server,
    /// rotated, revoked or expired.
    async fn rotate_refresh_token(
        &self,
        t: &TenantId,
        s: &ServerId,
        client: &ClientId,
        old_hash: &str,
        next: &Successor,
        now: i64,
    ) -> Result<Option<Rotated>, StoreError>;
    /// Marks every token of a family revoked; returns `(jti, exp)` of the access tokens
    /// issued with them that have not expired.
    async fn revoke_refresh_family(
        &self,
        t: &TenantId,
        s: &ServerId,
        family_id: &str,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError>;
    /// Revokes every token a user granted a client (consent withdrawn); returns the live
    /// access tokens issued with them, as [`RefreshRepo::revoke_refresh_family`] does.
    async fn revoke_refresh_tokens_of(
        &self,
        t: &TenantId,
        s: &ServerId,
        user: &UserId,
        client: &ClientId,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError>;
    /// Revokes every token of a user, whichever client holds it (their password changed);
    /// returns how many were live.
    async fn revoke_refresh_tokens_of_user(
        &self,
        t: &TenantId,
        s: &ServerId,
        user: &UserId,
        now: i64,
    ) -> Result<u64, StoreError>;
    /// Records that the access tokens of `subject` issued at or before `before_ms` (Unix
    /// milliseconds) are revoked, until `keep_until` (Unix seconds); drops the server's
    /// watermarks that expired by `now` (`crate::revoked_subjects`).
    async fn revoke_subject(
        &self,
        t: &TenantId,
        s: &ServerId,
        subject: &Subject,
        before_ms: i64,
        keep_until: i64,
        now: i64,
    ) -> Result<(), StoreError>;
    /// A server's watermarks still kept at `now`.
    async fn revoked_subjects(
        &self,
        t: &TenantId,
        s: &ServerId,
        now: i64,
    ) -> Result<Vec<(Subject, i64)>, StoreError>;
    /// Deletes tokens that expired before `before`; returns how many.
    async fn delete_expired_refresh_tokens(&self, before: i64) -> Result<u64, StoreError>;
}

/// The audit trail. Rows of admin changes are written by the change's own repository
/// method; this appends rows that describe no change (sampled gateway events) and reads.
#[async_trait]
pub trait AuditRepo: Send + Sync {
    /// Appends one row on its own.
    async fn append_audit(&self, r: &AuditRecord) -> Result<(), StoreError>;
    /// A tenant's rows matching `filter`, newest first, with id below `before` (the cursor),
    /// at most `limit`.
    async fn list_audit(
        &self,
        t: &TenantId,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Page<AuditEvent>, StoreError>;
}

/// Key changes that go with a server's new `signing_alg`, made in the transaction that
/// updates the server.
#[derive(Debug, Clone)]
pub struct SigningAlgChange {
    /// A fresh current key for the new algorithm, when the server has none of it yet.
    pub new_key: Option<KeyRecord>,
    /// The old algorithm, whose current keys stop signing (never RS256: ID tokens need it).
    pub retire_alg: Option<SigningAlg>,
    /// When the keys that stop signing leave the JWKS (Unix seconds).
    pub retire_at: i64,
    /// Now: retiring keys whose time has passed are deleted.
    pub now: i64,
}

/// The durable store: every repository plus health and migrations.
#[async_trait]
pub trait Repository:
    TenantRepo
    + ServerRepo
    + ClientRepo
    + KeyRepo
    + AdminRepo
    + AuditRepo
    + UserRepo
    + RefreshRepo
    + std::fmt::Debug
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

/// Whose share of the short-lived store an entry counts against: the tenant and the server
/// whose traffic created it. Every entry belongs to exactly one server of one tenant (their
/// ids are in its key too); the store counts it against both until it is taken, removed or
/// expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner<'a> {
    /// The tenant.
    pub tenant: &'a TenantId,
    /// The server, inside the tenant.
    pub server: &'a ServerId,
}

impl<'a> Owner<'a> {
    /// The owner `(t, s)`.
    #[must_use]
    pub fn new(tenant: &'a TenantId, server: &'a ServerId) -> Self {
        Self { tenant, server }
    }
}

/// An owner for tests that need one but test no share: tenant `t`, server `s`.
#[cfg(test)]
pub(crate) fn test_owner() -> Owner<'static> {
    static IDS: std::sync::OnceLock<(TenantId, ServerId)> = std::sync::OnceLock::new();
    let (t, s) = IDS.get_or_init(|| {
        (
            TenantId::parse("t").expect("tenant id"),
            ServerId::parse("s").expect("server id"),
        )
    });
    Owner::new(t, s)
}

/// The operator's bounds on the short-lived store (`--short-lived-…-entries`): how many live
/// entries one tenant, and one server, may hold, and (in-process only) how many the whole
/// process may hold. A write beyond a share is [`StoreError::OverShare`] for that owner alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// Live entries of one tenant (all its servers together).
    pub tenant_entries: u64,
    /// Live entries of one server.
    pub server_entries: u64,
    /// Live entries of the in-process store altogether (memory's bound; Redis has its own
    /// `maxmemory`).
    pub total_entries: u64,
}

impl Default for Shares {
    fn default() -> Self {
        Self {
            tenant_entries: 1_000_000,
            server_entries: 1_000_000,
            total_entries: 4_000_000,
        }
    }
}

/// Short-lived state with TTLs and atomic take-once semantics. Keys are namespaced by the
/// caller (`code:…`, `jti:…`); values are opaque bytes. Every entry is counted against its
/// [`Owner`]'s [`Shares`] while it lives: a write that would create an entry beyond them is
/// [`StoreError::OverShare`], whatever other owners hold; replacing an entry that exists
/// costs nothing more.
#[async_trait]
pub trait ShortLivedStore: Send + Sync + std::fmt::Debug {
    /// Stores `value` unless `key` exists (Redis `SET NX PX`); true if stored.
    async fn put_if_absent(
        &self,
        owner: Owner<'_>,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// Stores `value`, replacing any previous one.
    async fn put(
        &self,
        owner: Owner<'_>,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Reads without consuming.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Reads and deletes atomically (Redis `GETDEL`): of concurrent takers exactly one wins.
    /// The entry no longer counts against `owner`.
    async fn take(&self, owner: Owner<'_>, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Deletes; true if something was there.
    async fn remove(&self, owner: Owner<'_>, key: &str) -> Result<bool, StoreError>;
    /// Increments a counter, starting its TTL on creation; returns the new value.
    async fn incr(&self, owner: Owner<'_>, key: &str, ttl: Duration) -> Result<u64, StoreError>;
    /// GCRA rate limiting over several buckets at once, atomically: first hands back each
    /// bucket's `refund`, then admits up to `want` requests into every bucket that is charged
    /// (as many as fit in all of them, at least one, and never more extra ones than leave as
    /// much room again), provided every bucket, charged or only consulted (`peek`), has room
    /// for one; or else admits none and says which bucket is full and for how long. One round
    /// trip whatever the number of buckets; the clock is read inside the atomic step (Redis
    /// `TIME`; the in-process store under the bucket's lock), so the buckets' time never runs
    /// backwards and replicas with skewed clocks agree. Asking for several at once lets a
    /// caller admit the next ones without a round trip. A charged bucket is an entry of its
    /// check's owner: creating one beyond a share is [`StoreError::OverShare`], with no
    /// bucket charged.
    async fn rate_limit(
        &self,
        checks: &[RateCheck<'_>],
        want: u32,
    ) -> Result<RateDecision, StoreError>;
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
    /// Only consulted: the request needs room for one in this bucket, but is not charged to
    /// it (the failed authentications of an address, before authentication).
    pub peek: bool,
    /// Admissions charged to this bucket earlier and never used (a lapsed lease), handed back
    /// before the check, whatever its answer.
    pub refund: u32,
    /// Whose share the bucket counts against.
    pub owner: Owner<'a>,
}

/// The answer of [`ShortLivedStore::rate_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Admitted into every bucket (each has been charged `granted` times, 1 ≤ granted ≤ want).
    Allowed {
        /// How many requests were admitted.
        granted: u32,
    },
    /// Refused; no bucket was charged (refunds were handed back all the same).
    Limited {
        /// The index, in the checks, of the full bucket with the longest wait.
        index: usize,
        /// How long until that bucket admits the request.
        retry_after: Duration,
    },
}

/// GCRA for one bucket at `now` (microseconds on the store's clock), given its stored
/// theoretical arrival time `tat` with `refund` admissions already taken back: the new base
/// (`max(tat - refund·interval, now)`) and either how many requests fit now (`Ok`, one or
/// more) or how long until one does (`Err`, microseconds). Shared by the in-process store and
/// mirrored by the Redis script, so both answer alike.
pub(crate) fn gcra_room(
    tat: u64,
    now: u64,
    interval: u64,
    burst: u32,
    refund: u32,
) -> (u64, Result<u64, u64>) {
    let interval = interval.max(1);
    let base = tat
        .saturating_sub(interval.saturating_mul(u64::from(refund)))
        .max(now);
    let tolerance = interval.saturating_mul(u64::from(burst.max(1)));
    let ahead = base - now;
    if ahead + interval > tolerance {
        (base, Err(ahead + interval - tolerance))
    } else {
        (base, Ok((tolerance - ahead) / interval))
    }
}

/// The most requests one call may admit into a bucket with room for `fits`: the request
/// itself, plus extra (leased) ones only out of half the room left, so admissions taken ahead
/// never fill a bucket on their own.
pub(crate) fn batch_limit(fits: u64) -> u64 {
    1 + fits.saturating_sub(1) / 2
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

/// Opens the short-lived store with the default [`Shares`]: Redis when a URL is given, else
/// in-process.
///
/// # Errors
/// Bad URL or unreachable Redis.
pub async fn open_short_lived(
    redis_url: Option<&str>,
) -> Result<Arc<dyn ShortLivedStore>, StoreError> {
    open_short_lived_with(redis_url, Shares::default()).await
}

/// Opens the short-lived store with the operator's [`Shares`].
///
/// # Errors
/// Bad URL or unreachable Redis.
pub async fn open_short_lived_with(
    redis_url: Option<&str>,
    shares: Shares,
) -> Result<Arc<dyn ShortLivedStore>, StoreError> {
    match redis_url {
        Some(url) => Ok(Arc::new(
            redis::RedisStore::connect(url).await?.with_shares(shares),
        )),
        None => Ok(Arc::new(memory::MemoryStore::with_shares(shares))),
    }
}

/// Connects to Redis at `url`, bounded by the operator's [`Shares`]; `ca_pem` (PEM), when
/// given, replaces the system's roots as the CAs a `rediss://` server certificate must chain
/// to.
///
/// # Errors
/// [`StoreError::Config`] for what retrying cannot fix, [`StoreError::Unavailable`] for an
/// outage.
pub async fn open_redis(
    url: &str,
    ca_pem: Option<&[u8]>,
    shares: Shares,
) -> Result<Arc<dyn ShortLivedStore>, StoreError> {
    Ok(Arc::new(
        redis::RedisStore::connect_with(url, ca_pem)
            .await?
            .with_shares(shares),
    ))
}

/// A value as the JSON a store keeps; a value that will not serialise is `Corrupt`.
///
/// # Errors
/// As above.
pub fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Maps a store failure on a request path: unreachable is `503`, a tenant over its share of
/// the short-lived store `429` with `Retry-After` (for that tenant alone), anything else
/// `500`; the cause goes to the log, not to the caller.
#[must_use]
pub fn store_failure(e: &StoreError) -> crate::oauth::OAuthError {
    match e {
        StoreError::OverShare { retry_after } => {
            tracing::info!("short-lived write refused: its owner is over its share");
            let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            crate::oauth::OAuthError::too_many_requests(secs.max(1))
        }
        StoreError::Unavailable(_) => {
            tracing::warn!(error = %e, "store unavailable");
            crate::oauth::OAuthError::temporarily_unavailable()
        }
        _ => {
            tracing::error!(error = %e, "store failure");
            crate::oauth::OAuthError::server_error()
        }
    }
}

#[cfg(test)]
pub(crate) mod contract;
