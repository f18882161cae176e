//! Cache invalidation across processes. After an admin change commits, the process that made it
//! drops its own cache entries and announces the change; every other process sharing the
//! database drops the same entries when the announcement arrives.
//!
//! PostgreSQL carries announcements with `LISTEN`/`NOTIFY` on the channel
//! [`CHANNEL`], as a small JSON payload (`{"scope":"client","tid":…,"aid":…,"client_id":…}`).
//! SQLite is the embedded, single-process database: there is nothing to announce to, and
//! several processes on one SQLite file see each other's changes when their cache entries
//! expire (`--cache-ttl`).
//!
//! Notifications are not durable: one sent while a listener was disconnected is lost. So a
//! listener that (re)connects marks every cached entry stale, and the cache lifetime bounds
//! anything else: a change reaches every replica at once, and at the latest after
//! `--cache-ttl` if its notification was lost.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use crate::clock;
use crate::ids::{ClientId, ServerId, TenantId};
use crate::store::StoreError;

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "tollgate_invalidate";

/// Deadline for publishing one notification, and for each step of subscribing.
const DEADLINE: Duration = Duration::from_secs(5);
/// A listener silent for this long checks that its connection still answers.
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// Bounds of the reconnection backoff.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// What changed: which cache entries every process must drop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scope", rename_all = "snake_case", deny_unknown_fields)]
pub enum Invalidation {
    /// A tenant and everything in it.
    Tenant {
        /// Tenant.
        tid: TenantId,
    },
    /// A server's settings and keys, and its clients.
    Server {
        /// Tenant.
        tid: TenantId,
        /// Server.
        aid: ServerId,
    },
    /// A server's signing keys only (a rotation); its clients are unaffected.
    Keys {
        /// Tenant.
        tid: TenantId,
        /// Server.
        aid: ServerId,
    },
    /// A server's revoked subjects (a client or user deleted, a password changed): the
    /// watermarks of `crate::revoked_subjects`.
    RevokedSubjects {
        /// Tenant.
        tid: TenantId,
        /// Server.
        aid: ServerId,
    },
    /// One client.
    Client {
        /// Tenant.
        tid: TenantId,
        /// Server.
        aid: ServerId,
        /// Client.
        client_id: ClientId,
    },
}

impl Invalidation {
    /// A tenant changed.
    #[must_use]
    pub fn tenant(t: &TenantId) -> Self {
        Self::Tenant { tid: t.clone() }
    }
    /// A server changed.
    #[must_use]
    pub fn server(t: &TenantId, s: &ServerId) -> Self {
        Self::Server {
            tid: t.clone(),
            aid: s.clone(),
        }
    }
    /// A server's keys changed.
    #[must_use]
    pub fn keys(t: &TenantId, s: &ServerId) -> Self {
        Self::Keys {
            tid: t.clone(),
            aid: s.clone(),
        }
    }
    /// A client or user of a server was revoked.
    #[must_use]
    pub fn revoked_subjects(t: &TenantId, s: &ServerId) -> Self {
        Self::RevokedSubjects {
            tid: t.clone(),
            aid: s.clone(),
        }
    }
    /// A client changed.
    #[must_use]
    pub fn client(t: &TenantId, s: &ServerId, c: &ClientId) -> Self {
        Self::Client {
            tid: t.clone(),
            aid: s.clone(),
            client_id: c.clone(),
        }
    }

    /// The notification payload.
    #[must_use]
    pub fn to_payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses a notification payload.
    ///
    /// # Errors
    /// A payload this version does not understand.
    pub fn from_payload(payload: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(payload)
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// Drop these entries.
    One(Invalidation),
    /// A notification this process cannot read (say, from a newer version): drop everything.
    Unknown,
}

/// How a process announces changes to the others and hears theirs: the seam between the
/// caches and the database's notification mechanism.
#[async_trait]
pub trait Invalidations: Send + Sync + fmt::Debug {
    /// Announces a committed change to every process, this one included.
    async fn publish(&self, inv: &Invalidation) -> Result<(), StoreError>;
    /// Starts listening. `None`: this backend has no other processes to hear from.
    async fn subscribe(&self) -> Result<Option<Box<dyn Subscription>>, StoreError>;
    /// Which mechanism this is (`none`, `postgres`).
    fn backend(&self) -> &'static str;
    /// Whether a subscription is live right now; `None` when there is nothing to listen to.
    fn is_listening(&self) -> Option<bool> {
        None
    }
}

/// A live subscription.
#[async_trait]
pub trait Subscription: Send {
    /// The next announcement. An error means the subscription is broken (the connection was
    /// lost): announcements may have been missed, and the caller subscribes again.
    async fn next(&mut self) -> Result<Received, StoreError>;
}

/// No other process to tell (SQLite, in-memory tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

#[async_trait]
impl Invalidations for Local {
    async fn publish(&self, _inv: &Invalidation) -> Result<(), StoreError> {
        Ok(())
    }
    async fn subscribe(&self) -> Result<Option<Box<dyn Subscription>>, StoreError> {
        Ok(None)
    }
    fn backend(&self) -> &'static str {
        "none"
    }
}

/// `LISTEN`/`NOTIFY` on PostgreSQL. Publishing uses a small pool of its own; each subscription
/// holds one dedicated connection.
pub struct PgInvalidations {
    options: PgConnectOptions,
    publisher: PgPool,
    listening: Arc<AtomicBool>,
}

impl fmt::Debug for PgInvalidations {
    // The connection options hold the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PgInvalidations")
    }
}

fn unavailable(e: &sqlx::Error) -> StoreError {
    StoreError::Unavailable(format!("notifications: {e}"))
}

fn timed_out(what: &str) -> StoreError {
    StoreError::Unavailable(format!("notifications: {what} timed out"))
}

impl PgInvalidations {
    /// Prepares (without connecting) publishing and subscribing for the database at `url`.
    ///
    /// # Errors
    /// An unparsable URL.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url
            .parse()
            .map_err(|_| StoreError::Unavailable("invalid PostgreSQL URL".into()))?;
        let publisher = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(DEADLINE)
            .idle_timeout(Some(Duration::from_secs(300)))
            .connect_lazy_with(options.clone());
        Ok(Self {
            options,
            publisher,
            listening: Arc::default(),
        })
    }
}

#[async_trait]
impl Invalidations for PgInvalidations {
    async fn publish(&self, inv: &Invalidation) -> Result<(), StoreError> {
        let send = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(inv.to_payload())
            .execute(&self.publisher);
        match tokio::time::timeout(DEADLINE, send).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(unavailable(&e)),
            Err(_) => Err(timed_out("publishing")),
        }
    }

    async fn subscribe(&self) -> Result<Option<Box<dyn Subscription>>, StoreError> {
        // A pool of one connection, kept for as long as the subscription lives.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(DEADLINE)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(self.options.clone());
        let mut listener = tokio::time::timeout(DEADLINE, PgListener::connect_with(&pool))
            .await
            .map_err(|_| timed_out("connecting"))?
            .map_err(|e| unavailable(&e))?;
        // A lost connection must surface here (so the caches are marked stale), not be
        // re-established silently.
        listener.eager_reconnect(false);
        tokio::time::timeout(DEADLINE, listener.listen(CHANNEL))
            .await
            .map_err(|_| timed_out("LISTEN"))?
            .map_err(|e| unavailable(&e))?;
        self.listening.store(true, Ordering::Relaxed);
        Ok(Some(Box::new(PgSubscription {
            listener,
            listening: Arc::clone(&self.listening),
        })))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn is_listening(&self) -> Option<bool> {
        Some(self.listening.load(Ordering::Relaxed))
    }
}

struct PgSubscription {
    listener: PgListener,
    /// Shared with [`PgInvalidations::is_listening`]; cleared when the subscription ends.
    listening: Arc<AtomicBool>,
}

impl Drop for PgSubscription {
    fn drop(&mut self) {
        self.listening.store(false, Ordering::Relaxed);
    }
}

#[async_trait]
impl Subscription for PgSubscription {
    async fn next(&mut self) -> Result<Received, StoreError> {
        loop {
            // `try_recv` is cancel-safe: a timeout loses no notification.
            match tokio::time::timeout(IDLE_CHECK, self.listener.try_recv()).await {
                Ok(Ok(Some(n))) => {
                    return Ok(match Invalidation::from_payload(n.payload()) {
                        Ok(inv) => Received::One(inv),
                        Err(_) => Received::Unknown,
                    });
                }
                Ok(Ok(None)) => {
                    return Err(StoreError::Unavailable(
                        "notifications: connection lost".into(),
                    ))
                }
                Ok(Err(e)) => return Err(unavailable(&e)),
                Err(_) => {
                    // Quiet for a while: make sure the connection is alive rather than
                    // half-open (notifications arriving meanwhile are buffered, not lost).
                    let ping = sqlx::query("SELECT 1").execute(&mut self.listener);
                    match tokio::time::timeout(DEADLINE, ping).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(unavailable(&e)),
                        Err(_) => return Err(timed_out("liveness check")),
                    }
                }
            }
        }
    }
}

/// The mechanism for the database at `url`: `LISTEN`/`NOTIFY` for PostgreSQL, none for SQLite.
///
/// # Errors
/// An unparsable PostgreSQL URL.
pub fn for_database(url: &str) -> Result<Arc<dyn Invalidations>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgInvalidations::new(url)?))
    } else {
        Ok(Arc::new(Local))
    }
}

/// What the listener heard, for the caches that follow it.
#[derive(Debug, Clone, Copy)]
pub enum Heard<'a> {
    /// One change.
    One(&'a Invalidation),
    /// Changes may have been missed (a reconnect, an unreadable message): re-read everything.
    Everything,
}

/// Hands other processes' announcements to `apply` (the caches) until aborted;
/// reconnects with capped exponential backoff (and jitter) when the subscription breaks.
/// Returns at once when the backend has nothing to listen to.
pub async fn listen(invalidations: Arc<dyn Invalidations>, apply: impl Fn(Heard<'_>) + Send) {
    let mut backoff = BACKOFF_MIN;
    loop {
        match invalidations.subscribe().await {
            Ok(None) => return,
            Ok(Some(mut sub)) => {
                // Whatever changed while we were not listening was not heard: re-read every
                // cached entry (unchanged ones keep their parsed keys and verified secrets).
                apply(Heard::Everything);
                tracing::info!(
                    backend = invalidations.backend(),
                    "listening for cache invalidations"
                );
                backoff = BACKOFF_MIN;
                loop {
                    match sub.next().await {
                        Ok(Received::One(inv)) => apply(Heard::One(&inv)),
                        Ok(Received::Unknown) => {
                            tracing::warn!(
                                "unreadable cache invalidation: re-reading every cached entry"
                            );
                            apply(Heard::Everything);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cache invalidation listener disconnected");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    retry_in_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX),
                    "cannot listen for cache invalidations; cached entries expire after --cache-ttl meanwhile"
                );
            }
        }
        tokio::time::sleep(backoff + clock::jitter(backoff / 2)).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_small_json_with_a_scope() {
        let t = TenantId::parse("acme").unwrap();
        let s = ServerId::parse("main").unwrap();
        let c = ClientId::parse("svc").unwrap();
        let inv = Invalidation::client(&t, &s, &c);
        assert_eq!(
            inv.to_payload(),
            r#"{"scope":"client","tid":"acme","aid":"main","client_id":"svc"}"#
        );
        for inv in [
            Invalidation::tenant(&t),
            Invalidation::server(&t, &s),
            Invalidation::keys(&t, &s),
            Invalidation::revoked_subjects(&t, &s),
            inv,
        ] {
            assert_eq!(Invalidation::from_payload(&inv.to_payload()).unwrap(), inv);
        }
    }

    /// Two processes' worth of state on the test PostgreSQL database: `here` listens, `there`
    /// makes changes. Both cache for an hour, so only announcements explain what `here` sees.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listener_applies_announcements_and_recovers_missed_ones_on_reconnect() {
        use crate::keys::MasterKey;
        use crate::store::{open_repository, open_short_lived};
        use crate::{Tollgate, TollgateOptions};

        let Ok(url) = std::env::var("TOLLGATE_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("TOLLGATE_REQUIRE_BACKENDS").as_deref() != Ok("1"),
                "TOLLGATE_TEST_POSTGRES_URL is not set but TOLLGATE_REQUIRE_BACKENDS=1"
            );
            eprintln!("SKIPPED: TOLLGATE_TEST_POSTGRES_URL not set");
            return;
        };
        let repo = open_repository(&url).await.unwrap();
        repo.migrate().await.unwrap();
        let master = MasterKey::generate().1;
        let options = TollgateOptions {
            cache_ttl: Duration::from_secs(3600),
            ..TollgateOptions::default()
        };
        let process = |repo| async {
            Tollgate::new(
                repo,
                open_short_lived(None).await.unwrap(),
                MasterKey::from_base64(&master).unwrap(),
                options.clone(),
            )
            .with_invalidations(for_database(&url).unwrap())
        };
        let here = Arc::new(process(repo.clone()).await);
        let there = process(repo.clone()).await;
        let listener = tokio::spawn(Arc::clone(&here).listen_for_invalidations());
        let until = |what: &'static str, deadline: Duration| {
            let start = std::time::Instant::now();
            move |ok: bool| {
                assert!(
                    start.elapsed() < deadline,
                    "not within {deadline:?}: {what}"
                );
                ok
            }
        };
        let waiting = until("listening", Duration::from_secs(10));
        while !waiting(here.invalidations.is_listening() == Some(true)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let tid = format!("inv-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let t = TenantId::parse(&tid).unwrap();
        let root = crate::audit::Origin::new(crate::audit::Actor::Root, None);
        crate::manage::create_tenant(
            &there,
            &root,
            serde_json::from_value(serde_json::json!({"id": tid, "name": "T"})).unwrap(),
        )
        .await
        .unwrap();
        let server = crate::manage::create_server(
            &there,
            &root,
            &t,
            serde_json::from_value(serde_json::json!({"id": "main", "name": "M"})).unwrap(),
        )
        .await
        .unwrap();
        let s = server.id;
        let mut clients = Vec::new();
        for _ in 0..2 {
            let view = crate::manage::create_client(
                &there,
                &root,
                &t,
                &s,
                serde_json::from_value(serde_json::json!({"grant_types": ["client_credentials"]}))
                    .unwrap(),
            )
            .await
            .unwrap();
            assert!(here
                .client(&t, &s, &view.client_id)
                .await
                .unwrap()
                .is_some());
            clients.push(view.client_id);
        }

        // An announced change arrives at once.
        crate::manage::delete_client(&there, &root, &t, &s, &clients[0])
            .await
            .unwrap();
        let waiting = until("announced deletion", Duration::from_secs(5));
        while !waiting(here.client(&t, &s, &clients[0]).await.unwrap().is_none()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // A change whose announcement is lost (made behind Tollgate's back, and the listener's
        // connection cut) arrives when the listener reconnects and re-reads its cache.
        assert!(repo
            .delete_client(
                &t,
                &s,
                &clients[1],
                &crate::audit::test_record(&t, "client.delete")
            )
            .await
            .unwrap());
        // (Any other test process's listener is cut too; they reconnect the same way.)
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let cut = sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND query = 'LISTEN \"tollgate_invalidate\"'",
        )
        .fetch_all(&admin)
        .await
        .unwrap();
        admin.close().await;
        assert!(
            !cut.is_empty(),
            "the listener's connection was found and cut"
        );
        let waiting = until("missed deletion after reconnect", Duration::from_secs(5));
        while !waiting(here.client(&t, &s, &clients[1]).await.unwrap().is_none()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let waiting = until("listening again", Duration::from_secs(5));
        while !waiting(here.invalidations.is_listening() == Some(true)) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        listener.abort();
        crate::manage::delete_tenant(&there, &root, &t)
            .await
            .unwrap();
    }

    #[test]
    fn unreadable_payloads_are_refused() {
        for bad in [
            "",
            "{}",
            r#"{"scope":"galaxy","tid":"a"}"#,
            r#"{"scope":"tenant","tid":"NOT VALID"}"#,
            r#"{"scope":"tenant","tid":"a","extra":1}"#,
        ] {
            assert!(Invalidation::from_payload(bad).is_err(), "{bad}");
        }
    }
}
