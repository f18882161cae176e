//! Timing decorators for the two storage seams: every call through the trait object is timed
//! into `tollgate_store_operation_duration_seconds`, whichever backend sits behind it, so the
//! backends themselves carry no metrics code. [`crate::Tollgate::new`] wraps both stores.
//!
//! The repository decorator also puts a deadline ([`DATABASE_CALL_TIMEOUT`]) on every call
//! but migrations: the pool bounds waiting for a connection, but a query on an established
//! connection to a database that stopped answering (a network partition, a frozen host)
//! would otherwise wait for TCP to give up, minutes later. Redis calls carry their own
//! deadline in the Redis store.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{
    AdminRepo, AuditRepo, ClientRepo, KeyRepo, Owner, Page, RateCheck, RateDecision, RefreshRepo,
    Repository, ServerRepo, ShortLivedStore, SigningAlgChange, StoreError, TenantRepo, UserRepo,
};
use crate::audit::{AuditEvent, AuditFilter, AuditRecord};
use crate::ids::{ClientId, CredentialId, ServerId, TenantId, UserId};
use crate::keys::KeyRecord;
use crate::metrics::{Metrics, StoreKind};
use crate::model::client::Client;
use crate::model::credential::AdminCredential;
use crate::model::server::{Server, SigningAlg};
use crate::model::tenant::Tenant;
use crate::model::users::{Consent, User};
use crate::refresh::{RefreshRecord, Rotated, Successor};
use crate::revoked_subjects::Subject;

async fn timed<T>(
    metrics: &Metrics,
    store: StoreKind,
    backend: &'static str,
    operation: &'static str,
    call: impl Future<Output = T>,
) -> T {
    let start = Instant::now();
    let out = call.await;
    metrics.store_operation(store, backend, operation, start.elapsed());
    out
}

/// The longest any database call may take (the pool's 5 s wait for a connection included)
/// before it fails as [`StoreError::Unavailable`]; migrations are not bounded.
pub const DATABASE_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// `call`, failed as unavailable when it has not finished within `deadline`.
async fn bounded<T>(
    deadline: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(deadline, call)
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable("database call timed out".into())))
}

/// A [`Repository`] that times (and bounds) every call of the one it wraps.
#[derive(Debug)]
pub struct TimedRepository {
    inner: Arc<dyn Repository>,
    metrics: Arc<Metrics>,
    backend: &'static str,
}

impl TimedRepository {
    /// Wraps `inner`.
    #[must_use]
    pub fn wrap(inner: Arc<dyn Repository>, metrics: Arc<Metrics>) -> Arc<dyn Repository> {
        let backend = inner.backend();
        Arc::new(Self {
            inner,
            metrics,
            backend,
        })
    }

    async fn time<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        timed(
            &self.metrics,
            StoreKind::Database,
            self.backend,
            operation,
            bounded(DATABASE_CALL_TIMEOUT, call),
        )
        .await
    }
}

#[async_trait]
impl TenantRepo for TimedRepository {
    async fn create_tenant(&self, t: &Tenant, audit: &AuditRecord) -> Result<(), StoreError> {
        self.time("create_tenant", self.inner.create_tenant(t, audit))
            .await
    }

    async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
        self.time("get_tenant", self.inner.get_tenant(id)).await
    }

    async fn list_tenants(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Tenant>, StoreError> {
        self.time("list_tenants", self.inner.list_tenants(after, limit))
            .await
    }

    async fn update_tenant(&self, t: &Tenant, audit: &AuditRecord) -> Result<bool, StoreError> {
        self.time("update_tenant", self.inner.update_tenant(t, audit))
            .await
    }

    async fn delete_tenant(&self, id: &TenantId, audit: &AuditRecord) -> Result<bool, StoreError> {
        self.time("delete_tenant", self.inner.delete_tenant(id, audit))
            .await
    }
}

#[async_trait]
impl ServerRepo for TimedRepository {
    async fn create_server(
        &self,
        s: &Server,
        keys: &[KeyRecord],
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        self.time("create_server", self.inner.create_server(s, keys, audit))
            .await
    }

    async fn get_server(&self, t: &TenantId, id: &ServerId) -> Result<Option<Server>, StoreError> {
        self.time("get_server", self.inner.get_server(t, id)).await
    }

    async fn list_servers(
        &self,
        t: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Server>, StoreError> {
        self.time("list_servers", self.inner.list_servers(t, after, limit))
            .await
    }

    async fn update_server(
        &self,
        s: &Server,
        keys: Option<&SigningAlgChange>,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.time("update_server", self.inner.update_server(s, keys, audit))
            .await
    }

    async fn delete_server(
        &self,
        t: &TenantId,
        id: &ServerId,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.time("delete_server", self.inner.delete_server(t, id, audit))
            .await
    }
}

#[async_trait]
impl ClientRepo for TimedRepository {
    async fn create_client(&self, c: &Client, audit: &AuditRecord) -> Result<(), StoreError> {
        self.time("create_client", self.inner.create_client(c, audit))
            .await
    }

    async fn get_client(
        &self,
        t: &TenantId,
        s: &ServerId,
        id: &ClientId,
    ) -> Result<Option<Client>, StoreError> {
        self.time("get_client", self.inner.get_client(t, s, id))
            .await
    }

    async fn list_clients(
        &self,
        t: &TenantId,
        s: &ServerId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<Client>, StoreError> {
        self.time("list_clients", self.inner.list_clients(t, s, after, limit))
            .await
    }

    async fn update_client(&self, c: &Client, audit: &AuditRecord) -> Result<bool, StoreError> {
        self.time("update_client", self.inner.update_client(c, audit))
            .await
    }

    async fn delete_client(
        &self,
        t: &TenantId,
        s: &ServerId,
        id: &ClientId,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.time("delete_client", self.inner.delete_client(t, s, id, audit))
            .await
    }
}

#[async_trait]
impl KeyRepo for TimedRepository {
    async fn list_keys(&self, t: &TenantId, s: &ServerId) -> Result<Vec<KeyRecord>, StoreError> {
        self.time("list_keys", self.inner.list_keys(t, s)).await
    }

    async fn rotate_key(
        &self,
        new: &KeyRecord,
        retire_at: i64,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        self.time(
            "rotate_key",
            self.inner.rotate_key(new, retire_at, now, audit),
        )
        .await
    }

    async fn rotate_key_if_current(
        &self,
        new: &KeyRecord,
        expected_current_kid: &str,
        retire_at: i64,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.time(
            "rotate_key_if_current",
            self.inner
                .rotate_key_if_current(new, expected_current_kid, retire_at, now, audit),
        )
        .await
    }

    async fn servers_due_for_key_rotation(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<Server>, StoreError> {
        self.time(
            "servers_due_for_key_rotation",
            self.inner.servers_due_for_key_rotation(now, limit),
        )
        .await
    }

    async fn delete_retired_keys(&self, now: i64) -> Result<Vec<(TenantId, ServerId)>, StoreError> {
        self.time("delete_retired_keys", self.inner.delete_retired_keys(now))
            .await
    }

    async fn servers_without_current_key(
        &self,
        alg: SigningAlg,
        limit: u32,
    ) -> Result<Vec<Server>, StoreError> {
        self.time(
            "servers_without_current_key",
            self.inner.servers_without_current_key(alg, limit),
        )
        .await
    }
}

#[async_trait]
impl AdminRepo for TimedRepository {
    async fn create_credential(
        &self,
        c: &AdminCredential,
        audit: &AuditRecord,
    ) -> Result<(), StoreError> {
        self.time("create_credential", self.inner.create_credential(c, audit))
            .await
    }

    async fn credential_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<AdminCredential>, StoreError> {
        self.time(
            "credential_by_hash",
            self.inner.credential_by_hash(token_hash),
        )
        .await
    }

    async fn list_credentials(
        &self,
        t: &TenantId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<AdminCredential>, StoreError> {
        self.time(
            "list_credentials",
            self.inner.list_credentials(t, after, limit),
        )
        .await
    }

    async fn revoke_credential(
        &self,
        t: &TenantId,
        id: &CredentialId,
        now: i64,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.time(
            "revoke_credential",
            self.inner.revoke_credential(t, id, now, audit),
        )
        .await
    }

    async fn admin_token_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.time("admin_token_hash", self.inner.admin_token_hash(name))
            .await
    }

    async fn set_admin_token_hash_if_absent(
        &self,
        name: &str,
        hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.time(
            "set_admin_token_hash",
            self.inner.set_admin_token_hash_if_absent(name, hash, now),
        )
        .await
    }
}

#[async_trait]
impl UserRepo for TimedRepository {
    async fn create_user(&self, u: &User, audit: &AuditRecord) -> Result<(), StoreError> {
        self.time("create_user", self.inner.create_user(u, audit))
            .await
    }

    async fn get_user(
        &self,
        t: &TenantId,
        s: &ServerId,
        id: &UserId,
    ) -> Result<Option<User>, StoreError> {
        self.time("get_user", self.inner.get_user(t, s, id)).await
    }

    async fn find_user(
        &self,
        t: &TenantId,
        s: &ServerId,
        username: &str,
    ) -> Result<Option<User>, StoreError> {
        self.time("find_user", self.inner.find_user(t, s, username))
            .await
    }

    async fn list_users(
        &self,
        t: &TenantId,
        s: &ServerId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Page<User>, StoreError> {
        self.time("list_users", self.inner.list_users(t, s, after, limit))
            .await
    }

    async fn update_user(&self, u: &User, audit: &AuditRecord) -> Result<bool, StoreError> {
        self.time("update_user", self.inner.update_user(u, audit))
            .await
    }

    async fn delete_user(
        &self,
        t: &TenantId,
        s: &ServerId,
        id: &UserId,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.time("delete_user", self.inner.delete_user(t, s, id, audit))
            .await
    }

    async fn get_consent(
        &self,
        t: &TenantId,
        s: &ServerId,
        user: &UserId,
        client: &ClientId,
    ) -> Result<Option<Consent>, StoreError> {
        self.time("get_consent", self.inner.get_consent(t, s, user, client))
            .await
    }

    async fn put_consent(&self, c: &Consent) -> Result<(), StoreError> {
        self.time("put_consent", self.inner.put_consent(c)).await
    }

    async fn list_consents(
        &self,
        t: &TenantId,
        s: &ServerId,
        user: &UserId,
    ) -> Result<Vec<Consent>, StoreError> {
        self.time("list_consents", self.inner.list_consents(t, s, user))
            .await
    }

    async fn delete_consent(
        &self,
        t: &TenantId,
        s: &ServerId,
        user: &UserId,
        client: &ClientId,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.time(
            "delete_consent",
            self.inner.delete_consent(t, s, user, client, audit),
        )
        .await
    }
}

#[async_trait]
impl RefreshRepo for TimedRepository {
    async fn insert_refresh_token(&self, r: &RefreshRecord) -> Result<(), StoreError> {
        self.time("insert_refresh_token", self.inner.insert_refresh_token(r))
            .await
    }

    async fn get_refresh_token(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
        self.time("get_refresh_token", self.inner.get_refresh_token(hash))
            .await
    }

    async fn rotate_refresh_token(
        &self,
        t: &TenantId,
        s: &ServerId,
        client: &ClientId,
        old_hash: &str,
        next: &Successor,
        now: i64,
    ) -> Result<Option<Rotated>, StoreError> {
        self.time(
            "rotate_refresh_token",
            self.inner
                .rotate_refresh_token(t, s, client, old_hash, next, now),
        )
        .await
    }

    async fn revoke_refresh_family(
        &self,
        t: &TenantId,
        s: &ServerId,
        family_id: &str,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.time(
            "revoke_refresh_family",
            self.inner.revoke_refresh_family(t, s, family_id, now),
        )
        .await
    }

    async fn revoke_refresh_tokens_of(
        &self,
        t: &TenantId,
        s: &ServerId,
        user: &UserId,
        client: &ClientId,
        now: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.time(
            "revoke_refresh_tokens_of",
            self.inner.revoke_refresh_tokens_of(t, s, user, client, now),
        )
        .await
    }

    async fn revoke_refresh_tokens_of_user(
        &self,
        t: &TenantId,
        s: &ServerId,
        user: &UserId,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.time(
            "revoke_refresh_tokens_of_user",
            self.inner.revoke_refresh_tokens_of_user(t, s, user, now),
        )
        .await
    }

    async fn revoke_subject(
        &self,
        t: &TenantId,
        s: &ServerId,
        subject: &Subject,
        before_ms: i64,
        keep_until: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.time(
            "revoke_subject",
            self.inner
                .revoke_subject(t, s, subject, before_ms, keep_until, now),
        )
        .await
    }

    async fn revoked_subjects(
        &self,
        t: &TenantId,
        s: &ServerId,
        now: i64,
    ) -> Result<Vec<(Subject, i64)>, StoreError> {
        self.time("revoked_subjects", self.inner.revoked_subjects(t, s, now))
            .await
    }

    async fn delete_expired_refresh_tokens(&self, before: i64) -> Result<u64, StoreError> {
        self.time(
            "delete_expired_refresh_tokens",
            self.inner.delete_expired_refresh_tokens(before),
        )
        .await
    }
}

#[async_trait]
impl AuditRepo for TimedRepository {
    async fn append_audit(&self, r: &AuditRecord) -> Result<(), StoreError> {
        self.time("append_audit", self.inner.append_audit(r)).await
    }

    async fn list_audit(
        &self,
        t: &TenantId,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Page<AuditEvent>, StoreError> {
        self.time(
            "list_audit",
            self.inner.list_audit(t, filter, before, limit),
        )
        .await
    }
}

#[async_trait]
impl Repository for TimedRepository {
    async fn migrate(&self) -> Result<(), StoreError> {
        // A long migration is not an outage: no deadline here.
        timed(
            &self.metrics,
            StoreKind::Database,
            self.backend,
            "migrate",
            self.inner.migrate(),
        )
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.time("ping", self.inner.ping()).await
    }

    fn backend(&self) -> &'static str {
        self.backend
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}

/// A [`ShortLivedStore`] that times every call of the one it wraps.
#[derive(Debug)]
pub struct TimedShortLived {
    inner: Arc<dyn ShortLivedStore>,
    metrics: Arc<Metrics>,
    backend: &'static str,
}

impl TimedShortLived {
    /// Wraps `inner`.
    #[must_use]
    pub fn wrap(
        inner: Arc<dyn ShortLivedStore>,
        metrics: Arc<Metrics>,
    ) -> Arc<dyn ShortLivedStore> {
        let backend = inner.backend();
        Arc::new(Self {
            inner,
            metrics,
            backend,
        })
    }

    async fn time<T>(&self, operation: &'static str, call: impl Future<Output = T>) -> T {
        timed(
            &self.metrics,
            StoreKind::ShortLived,
            self.backend,
            operation,
            call,
        )
        .await
    }
}

#[async_trait]
impl ShortLivedStore for TimedShortLived {
    async fn put_if_absent(
        &self,
        owner: Owner<'_>,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.time(
            "put_if_absent",
            self.inner.put_if_absent(owner, key, value, ttl),
        )
        .await
    }

    async fn put(
        &self,
        owner: Owner<'_>,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.time("put", self.inner.put(owner, key, value, ttl))
            .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.time("get", self.inner.get(key)).await
    }

    async fn take(&self, owner: Owner<'_>, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.time("take", self.inner.take(owner, key)).await
    }

    async fn remove(&self, owner: Owner<'_>, key: &str) -> Result<bool, StoreError> {
        self.time("remove", self.inner.remove(owner, key)).await
    }

    async fn incr(&self, owner: Owner<'_>, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        self.time("incr", self.inner.incr(owner, key, ttl)).await
    }

    async fn rate_limit(
        &self,
        checks: &[RateCheck<'_>],
        want: u32,
    ) -> Result<RateDecision, StoreError> {
        self.time("rate_limit", self.inner.rate_limit(checks, want))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.time("ping", self.inner.ping()).await
    }

    fn backend(&self) -> &'static str {
        self.backend
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn a_call_past_its_deadline_is_unavailable() {
        let hung = bounded(
            Duration::from_millis(20),
            std::future::pending::<Result<(), StoreError>>(),
        );
        assert!(matches!(hung.await, Err(StoreError::Unavailable(_))));
        let quick = bounded(Duration::from_secs(5), async { Ok::<_, StoreError>(7) });
        assert_eq!(quick.await.unwrap(), 7);
    }

    #[tokio::test]
    async fn times_calls_under_the_wrapped_backend_name() {
        let metrics = Arc::new(Metrics::new("0", None));
        let store = TimedShortLived::wrap(Arc::new(MemoryStore::new()), metrics.clone());
        assert_eq!(store.backend(), "memory");
        let (t, s) = (
            TenantId::parse("acme").unwrap(),
            ServerId::parse("main").unwrap(),
        );
        let owner = Owner::new(&t, &s);
        store
            .put(owner, "k", b"v", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            store.take(owner, "k").await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
        let text = metrics.render();
        for op in ["put", "take"] {
            let series = format!(
                r#"tollgate_store_operation_duration_seconds_count{{store="short_lived",backend="memory",operation="{op}"}} 1"#
            );
            assert!(text.contains(&series), "{series} in\n{text}");
        }
    }
}
