//! In-memory caches of servers (with their parsed signing keys and rendered JWKS) and
//! clients, so the steady-state token path makes no database round trip. Admin operations
//! invalidate entries in the same process before they return, and other processes' changes
//! arrive as announced invalidations (`crate::invalidation`); every entry also expires after a
//! bounded time, the safety net for an announcement that was lost.
//!
//! An expired entry is re-read by one request while the others keep using it, and when the
//! re-read row is unchanged the existing entry (with its verified-secret digest and parsed
//! keys) stays in place: expiry never sends a burst of requests to the database or to argon2.
//! While the database is unreachable, expired entries keep serving.
//! When announcements may have been missed, [`Registry::expire_all`] has every entry re-read.

use crate::model::ceilings::Ceilings;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::client_cert::ClientCa;
use crate::client_keys::AssertionKeyCache;
use crate::clock;
use crate::ids::{ClientId, ServerId, TenantId};
use crate::invalidation::Invalidation;
use crate::keys::{KeyStatus, MasterKey, SigningKey};
pub use crate::metrics::Lookup;
use crate::metrics::{Cache, Metrics};
use crate::model::client::Client;
use crate::model::server::{Server, SigningAlg};
use crate::oauth::OAuthError;
use crate::revoked_subjects::RevokedSubjects;
use crate::store::{store_failure, Repository, StoreError};

/// A server as the gateway uses it: settings plus keys parsed once.
#[derive(Debug)]
pub struct ServerRuntime {
    /// Settings.
    pub server: Server,
    /// `{public_url}/{tid}/{aid}`.
    pub issuer: String,
    /// The tenant's display name, for the login and consent pages.
    pub tenant_name: String,
    /// The key that signs access tokens (`server.signing_alg`).
    pub signing_key: Arc<SigningKey>,
    /// Current keys, the server's own first, then the PS256 views of its RS256 keys: what
    /// ID tokens are signed with (see [`ServerRuntime::id_token_key`]).
    pub current_keys: Vec<Arc<SigningKey>>,
    /// The JWK Set document (current, next and unexpired retiring keys), rendered once.
    pub jwks: String,
    /// Verification keys of every published key, by `kid`, for introspection and revocation.
    pub verify_keys: HashMap<String, (DecodingKey, Algorithm)>,
    /// The server's own `tls_client_ca`, parsed once per load; see
    /// [`ServerRuntime::trusted_client_ca`].
    pub own_client_ca: OwnClientCa,
    /// The inline JWK Sets of the server's `trusted_issuers`, parsed once per load, by
    /// issuer: the JWT bearer grant and token exchange verify with them without parsing keys
    /// per request. An issuer whose stored set no longer parses is absent (nothing verifies).
    pub trusted_issuer_keys: HashMap<String, Arc<crate::client_keys::ClientKeySet>>,
}

/// A server's own client CAs (`tls_client_ca`), as parsed when the server was loaded.
#[derive(Debug, Clone)]
pub enum OwnClientCa {
    /// The server names none: the operator's process-wide bundle applies.
    Default,
    /// The server's bundle, parsed.
    Parsed(Arc<ClientCa>),
    /// The stored bundle no longer parses (it was validated when saved): nothing is trusted,
    /// rather than falling back to the process-wide CAs the server chose not to trust.
    Unusable,
}

impl OwnClientCa {
    /// Parses a server's `tls_client_ca` setting.
    #[must_use]
    pub fn parse(pem: Option<&str>) -> Self {
        match pem {
            None => Self::Default,
            Some(pem) => match ClientCa::from_server_bundle(pem) {
                Ok(ca) => Self::Parsed(Arc::new(ca)),
                Err(e) => {
                    tracing::error!(error = %e, "a server's stored tls_client_ca is unusable: its tls_client_auth clients cannot authenticate");
                    Self::Unusable
                }
            },
        }
    }
}

impl ServerRuntime {
    /// The CAs `tls_client_auth` certificates of this server must chain to: its own bundle
    /// when it has one, else `process_default` (`--tls-client-ca`). `None`: none are trusted.
    #[must_use]
    pub fn trusted_client_ca<'a>(
        &'a self,
        process_default: Option<&'a ClientCa>,
    ) -> Option<&'a ClientCa> {
        match &self.own_client_ca {
            OwnClientCa::Default => process_default,
            OwnClientCa::Parsed(ca) => Some(ca),
            OwnClientCa::Unusable => None,
        }
    }

    /// The current key for `alg`, if the server holds one (for PS256: its own PS256 key, else
    /// the PS256 view of its RS256 key).
    #[must_use]
    pub fn key_for(&self, alg: SigningAlg) -> Option<&Arc<SigningKey>> {
        self.current_keys.iter().find(|k| k.alg == alg)
    }

    /// The key that signs ID tokens for a client that registered the
    /// `id_token_signed_response_alg` `registered` (`None`: the default, RS256). `None` when
    /// the server holds no such key: the ID token is then not issued, never signed with
    /// another algorithm.
    #[must_use]
    pub fn id_token_key(&self, registered: Option<&str>) -> Option<&Arc<SigningKey>> {
        let alg = match registered {
            None => SigningAlg::RS256,
            Some(name) => SigningAlg::parse(name)?,
        };
        if !self.server.id_token_algs().contains(&alg) {
            return None;
        }
        self.key_for(alg)
    }
}

/// A client as the gateway uses it.
pub struct ClientRuntime {
    /// The stored client.
    pub client: Client,
    /// Keyed digest of the secret, set after its first successful argon2 verification.
    pub verified_digest: OnceLock<[u8; 32]>,
    /// Verification keys for JWT client assertions, derived on first use.
    pub assertion_keys: AssertionKeyCache,
}

impl std::fmt::Debug for ClientRuntime {
    // The digest is keyed and useless elsewhere, but it is a function of the secret: it
    // stays out of logs like the secret does.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRuntime")
            .field("client", &self.client)
            .field(
                "verified_digest",
                &self.verified_digest.get().map(|_| "[redacted]"),
            )
            .field("assertion_keys", &self.assertion_keys)
            .finish()
    }
}

#[derive(Debug)]
struct Slot<T> {
    value: T,
    loaded: Instant,
    /// Set while one request re-reads an expired entry; the others use the old value.
    refreshing: AtomicBool,
}

impl<T> Slot<T> {
    fn new(value: T) -> Self {
        Self {
            value,
            loaded: Instant::now(),
            refreshing: AtomicBool::new(false),
        }
    }
}

/// What to do with a cache entry.
enum Plan<T> {
    /// Use this (possibly cached-absent) value.
    Serve(Option<T>),
    /// Load from the database; `stale` is the expired value, if any.
    Load(Option<T>),
}

/// Decides between serving and loading, electing one loader per expired entry.
fn plan<K, T>(
    map: &DashMap<K, Slot<Option<Arc<T>>>>,
    key: &K,
    ttl: Duration,
    negative_ttl: Duration,
) -> Plan<Arc<T>>
where
    K: std::hash::Hash + Eq,
{
    let Some(slot) = map.get(key) else {
        return Plan::Load(None);
    };
    let lifetime = if slot.value.is_some() {
        ttl
    } else {
        negative_ttl
    };
    if slot.loaded.elapsed() < lifetime {
        return Plan::Serve(slot.value.clone());
    }
    match &slot.value {
        // Someone else is re-reading it: keep serving the old value meanwhile.
        Some(v) if slot.refreshing.swap(true, Ordering::AcqRel) => Plan::Serve(Some(Arc::clone(v))),
        Some(v) => Plan::Load(Some(Arc::clone(v))),
        None => Plan::Load(None),
    }
}

type ServerKey = (TenantId, ServerId);
type ClientKey = (TenantId, ServerId, ClientId);

/// The caches. Absent entries are cached too (briefly), so a flood of requests for unknown
/// tenants or clients does not become a flood of queries.
#[derive(Debug)]
pub struct Registry {
    servers: DashMap<ServerKey, Slot<Option<Arc<ServerRuntime>>>>,
    clients: DashMap<ClientKey, Slot<Option<Arc<ClientRuntime>>>>,
    /// Each server's watermarks (`crate::revoked_subjects`), usually empty.
    revoked: DashMap<ServerKey, Slot<Option<Arc<RevokedSubjects>>>>,
    ttl: Duration,
    negative_ttl: Duration,
    /// Bumped by every invalidation, so a load that raced with one is not cached.
    generation: AtomicU64,
    /// The operator's ceilings, applied to every server loaded (clamped at use).
    ceilings: Ceilings,
}

/// The lookups of the request path: servers and clients from the [`Registry`], read through
/// from the repository on a miss, counted in the metrics, with store failures already turned
/// into their RFC answers. The seam client authentication and the gateway find things by.
#[derive(Debug, Clone, Copy)]
pub struct Directory<'a> {
    /// The caches.
    pub registry: &'a Registry,
    /// Read on a miss.
    pub repo: &'a dyn Repository,
    /// Opens the servers' sealed signing keys.
    pub master: &'a MasterKey,
    /// The external base URL issuers are made of.
    pub public_url: &'a str,
    /// Counts hits and misses.
    pub metrics: &'a Metrics,
}

impl Directory<'_> {
    /// The server for a gateway request: `404` when unknown, `503` when the store is down.
    ///
    /// # Errors
    /// As above.
    pub async fn server(
        &self,
        t: &TenantId,
        s: &ServerId,
    ) -> Result<Arc<ServerRuntime>, OAuthError> {
        match self
            .registry
            .server(self.repo, self.master, self.public_url, t, s)
            .await
        {
            Ok((server, lookup)) => {
                self.metrics.cache_lookup(Cache::Server, lookup);
                server.ok_or_else(OAuthError::unknown_server)
            }
            Err(e) => Err(store_failure(&e)),
        }
    }

    /// A server's revoked subjects (`crate::revoked_subjects`).
    ///
    /// # Errors
    /// `503` when the store is down and nothing is cached (fail closed).
    pub async fn revoked_subjects(
        &self,
        t: &TenantId,
        s: &ServerId,
    ) -> Result<Arc<RevokedSubjects>, OAuthError> {
        self.registry
            .revoked_subjects(self.repo, t, s)
            .await
            .map(|(v, _)| v)
            .map_err(|e| store_failure(&e))
    }

    /// A client of a server, or `None`.
    ///
    /// # Errors
    /// `503` when the store is down.
    pub async fn client(
        &self,
        t: &TenantId,
        s: &ServerId,
        c: &ClientId,
    ) -> Result<Option<Arc<ClientRuntime>>, OAuthError> {
        self.registry
            .client(self.repo, t, s, c)
            .await
            .map(|(c, lookup)| {
                self.metrics.cache_lookup(Cache::Client, lookup);
                c
            })
            .map_err(|e| store_failure(&e))
    }
}

impl Registry {
    /// Caches whose entries live at most `ttl` (absent entries at most 5 s).
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            servers: DashMap::new(),
            clients: DashMap::new(),
            revoked: DashMap::new(),
            ttl,
            negative_ttl: ttl.min(Duration::from_secs(5)),
            generation: AtomicU64::new(0),
            ceilings: Ceilings::default(),
        }
    }

    /// The same registry, clamping every server it loads to `ceilings`.
    #[must_use]
    pub fn with_ceilings(mut self, ceilings: Ceilings) -> Self {
        self.ceilings = ceilings;
        self
    }

    /// Caches a loaded value unless an invalidation happened while it was being read.
    fn store<K: std::hash::Hash + Eq, T>(
        &self,
        map: &DashMap<K, Slot<Option<Arc<T>>>>,
        key: K,
        value: Option<Arc<T>>,
        generation: u64,
    ) {
        if self.generation.load(Ordering::Acquire) == generation {
            map.insert(key, Slot::new(value));
        } else {
            map.remove(&key);
        }
    }

    fn in_use<T>(&self, slot: &Slot<Option<T>>) -> bool {
        let lifetime = if slot.value.is_some() {
            self.ttl * 4
        } else {
            self.negative_ttl
        };
        slot.loaded.elapsed() < lifetime
    }

    fn invalidated(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The server, from memory or loaded (with keys opened under `master`).
    ///
    /// # Errors
    /// Store failure or a key that cannot be opened.
    pub async fn server(
        &self,
        repo: &dyn Repository,
        master: &MasterKey,
        public_url: &str,
        t: &TenantId,
        s: &ServerId,
    ) -> Result<(Option<Arc<ServerRuntime>>, Lookup), StoreError> {
        let key = (t.clone(), s.clone());
        let stale = match plan(&self.servers, &key, self.ttl, self.negative_ttl) {
            Plan::Serve(v) => return Ok((v, Lookup::Hit)),
            Plan::Load(stale) => stale,
        };
        let generation = self.generation.load(Ordering::Acquire);
        let loaded = match load_server(repo, master, public_url, t, s).await {
            Ok(v) => v.map(|mut runtime| {
                self.ceilings.clamp(&mut runtime.server);
                runtime
            }),
            Err(e) => return self.keep_stale(&self.servers, key, stale, generation, e),
        };
        // Unchanged: keep the entry (and everything parsed in it), just renew it.
        let value = match (stale, loaded) {
            (Some(old), Some(new)) if same_server(&old, &new) => Some(old),
            (_, new) => new.map(Arc::new),
        };
        self.store(&self.servers, key, value.clone(), generation);
        Ok((value, Lookup::Miss))
    }

    /// The client, from memory or loaded.
    ///
    /// # Errors
    /// Store failure.
    pub async fn client(
        &self,
        repo: &dyn Repository,
        t: &TenantId,
        s: &ServerId,
        c: &ClientId,
    ) -> Result<(Option<Arc<ClientRuntime>>, Lookup), StoreError> {
        let key = (t.clone(), s.clone(), c.clone());
        let stale = match plan(&self.clients, &key, self.ttl, self.negative_ttl) {
            Plan::Serve(v) => return Ok((v, Lookup::Hit)),
            Plan::Load(stale) => stale,
        };
        let generation = self.generation.load(Ordering::Acquire);
        let loaded = match repo.get_client(t, s, c).await {
            Ok(v) => v,
            Err(e) => return self.keep_stale(&self.clients, key, stale, generation, e),
        };
        // Unchanged: keep the verified-secret digest and parsed keys.
        let value = match (stale, loaded) {
            (Some(old), Some(new)) if old.client == new => Some(old),
            (_, new) => new.map(|client| {
                Arc::new(ClientRuntime {
                    client,
                    verified_digest: OnceLock::new(),
                    assertion_keys: AssertionKeyCache::default(),
                })
            }),
        };
        self.store(&self.clients, key, value.clone(), generation);
        Ok((value, Lookup::Miss))
    }

    /// A server's revoked subjects, from memory or loaded. They expire and are invalidated
    /// like servers and clients, so a revocation reaches every process at once when announced
    /// and within the cache lifetime at the latest.
    ///
    /// # Errors
    /// Store failure (with nothing cached to serve: the caller fails closed).
    pub async fn revoked_subjects(
        &self,
        repo: &dyn Repository,
        t: &TenantId,
        s: &ServerId,
    ) -> Result<(Arc<RevokedSubjects>, Lookup), StoreError> {
        let key = (t.clone(), s.clone());
        // Never cached as absent: an empty set is a value.
        let stale = match plan(&self.revoked, &key, self.ttl, self.ttl) {
            Plan::Serve(Some(v)) => return Ok((v, Lookup::Hit)),
            Plan::Serve(None) | Plan::Load(None) => None,
            Plan::Load(Some(v)) => Some(v),
        };
        let generation = self.generation.load(Ordering::Acquire);
        let loaded = match repo.revoked_subjects(t, s, clock::now()).await {
            Ok(rows) => RevokedSubjects::new(rows),
            Err(e) => {
                let (v, lookup) = self.keep_stale(&self.revoked, key, stale, generation, e)?;
                return v
                    .map(|v| (v, lookup))
                    .ok_or_else(|| StoreError::Unavailable("revoked subjects".into()));
            }
        };
        let value = match stale {
            Some(old) if *old == loaded => old,
            _ => Arc::new(loaded),
        };
        self.store(&self.revoked, key, Some(Arc::clone(&value)), generation);
        Ok((value, Lookup::Miss))
    }

    /// Drops a server's cached revoked subjects.
    pub fn invalidate_revoked_subjects(&self, t: &TenantId, s: &ServerId) {
        self.invalidated();
        self.revoked.remove(&(t.clone(), s.clone()));
    }

    /// After a failed re-read: while the database is unreachable an expired entry keeps
    /// serving (renewed for another lifetime, so one request per lifetime tries again) rather
    /// than failing requests the cache can answer; admin changes cannot be made meanwhile.
    /// Otherwise the error stands and the next request tries again.
    fn keep_stale<K: std::hash::Hash + Eq, T>(
        &self,
        map: &DashMap<K, Slot<Option<Arc<T>>>>,
        key: K,
        stale: Option<Arc<T>>,
        generation: u64,
        e: StoreError,
    ) -> Result<(Option<Arc<T>>, Lookup), StoreError> {
        match (stale, &e) {
            (Some(old), StoreError::Unavailable(_)) => {
                tracing::warn!(error = %e, "database unavailable: serving a cached entry past its lifetime");
                self.store(map, key, Some(Arc::clone(&old)), generation);
                Ok((Some(old), Lookup::Hit))
            }
            _ => {
                self.release(map, &key);
                Err(e)
            }
        }
    }

    /// After a failed re-read, lets the next request try again.
    fn release<K: std::hash::Hash + Eq, T>(&self, map: &DashMap<K, Slot<T>>, key: &K) {
        if let Some(slot) = map.get(key) {
            slot.refreshing.store(false, Ordering::Release);
        }
    }

    /// Drops a client's entry.
    pub fn invalidate_client(&self, t: &TenantId, s: &ServerId, c: &ClientId) {
        self.invalidated();
        self.clients.remove(&(t.clone(), s.clone(), c.clone()));
    }

    /// Drops a server's entry and those of its clients.
    pub fn invalidate_server(&self, t: &TenantId, s: &ServerId) {
        self.invalidated();
        self.servers.remove(&(t.clone(), s.clone()));
        self.clients.retain(|(ct, cs, _), _| !(ct == t && cs == s));
        self.revoked.remove(&(t.clone(), s.clone()));
    }

    /// Drops every entry of a tenant.
    pub fn invalidate_tenant(&self, t: &TenantId) {
        self.invalidated();
        self.servers.retain(|(st, _), _| st != t);
        self.clients.retain(|(ct, _, _), _| ct != t);
        self.revoked.retain(|(rt, _), _| rt != t);
    }

    /// Drops a server's entry (settings, keys, JWKS) but keeps its clients: after a key
    /// rotation, which changes no client.
    pub fn invalidate_keys(&self, t: &TenantId, s: &ServerId) {
        self.invalidated();
        self.servers.remove(&(t.clone(), s.clone()));
    }

    /// Drops the entries an invalidation names (announced by this or another process).
    pub fn apply(&self, inv: &Invalidation) {
        match inv {
            Invalidation::Tenant { tid } => self.invalidate_tenant(tid),
            Invalidation::Server { tid, aid } => self.invalidate_server(tid, aid),
            Invalidation::Keys { tid, aid } => self.invalidate_keys(tid, aid),
            Invalidation::Client {
                tid,
                aid,
                client_id,
            } => self.invalidate_client(tid, aid, client_id),
            Invalidation::RevokedSubjects { tid, aid } => {
                self.invalidate_revoked_subjects(tid, aid);
            }
        }
    }

    /// Marks every entry expired, for when invalidations may have been missed (a notification
    /// listener reconnected). Unlike dropping them, each is re-read by one request while
    /// the others keep using it, and an unchanged row keeps its entry: no stampede on the
    /// database, and no verified secret goes back through argon2.
    pub fn expire_all(&self) {
        self.invalidated();
        match Instant::now().checked_sub(self.ttl) {
            Some(expired) => {
                for mut slot in self.servers.iter_mut() {
                    slot.loaded = slot.loaded.min(expired);
                }
                for mut slot in self.clients.iter_mut() {
                    slot.loaded = slot.loaded.min(expired);
                }
                for mut slot in self.revoked.iter_mut() {
                    slot.loaded = slot.loaded.min(expired);
                }
            }
            // The monotonic clock is younger than one lifetime: nothing is old enough to keep.
            None => {
                self.servers.clear();
                self.clients.clear();
                self.revoked.clear();
            }
        }
    }

    /// Drops entries nobody has used for several lifetimes (called on an interval to bound
    /// memory). Entries in use are renewed by the requests that use them, so they stay.
    pub fn sweep(&self) {
        self.servers.retain(|_, slot| self.in_use(slot));
        self.clients.retain(|_, slot| self.in_use(slot));
        self.revoked.retain(|_, slot| self.in_use(slot));
    }
}

/// Whether a re-read server is the same as the cached one: settings, published keys and the
/// set of current keys.
fn same_server(old: &ServerRuntime, new: &ServerRuntime) -> bool {
    old.server == new.server
        && old.issuer == new.issuer
        && old.jwks == new.jwks
        && old
            .current_keys
            .iter()
            .map(|k| &k.kid)
            .eq(new.current_keys.iter().map(|k| &k.kid))
}

async fn load_server(
    repo: &dyn Repository,
    master: &MasterKey,
    public_url: &str,
    t: &TenantId,
    s: &ServerId,
) -> Result<Option<ServerRuntime>, StoreError> {
    let Some(server) = repo.get_server(t, s).await? else {
        return Ok(None);
    };
    let now = clock::now();
    let records = repo.list_keys(t, s).await?;
    let mut current_keys = Vec::new();
    let mut views = Vec::new();
    let mut published = Vec::new();
    let mut verify_keys = HashMap::new();
    for rec in &records {
        if rec.retire_at.is_some_and(|r| r <= now) {
            continue;
        }
        published.extend(rec.published_jwks());
        let decoding = serde_json::from_value::<Jwk>(rec.public_jwk.clone())
            .ok()
            .and_then(|jwk| DecodingKey::from_jwk(&jwk).ok())
            .ok_or_else(|| {
                StoreError::Corrupt(format!("public key {} is not a usable JWK", rec.kid))
            })?;
        verify_keys.insert(rec.kid.clone(), (decoding, jwt_algorithm(rec.alg)));
        if rec.status == KeyStatus::Current {
            let (key, view) = rec
                .open_with_view(master)
                .map_err(|e| StoreError::Corrupt(format!("signing key {}: {e}", rec.kid)))?;
            current_keys.push(Arc::new(key));
            views.extend(view.map(Arc::new));
        }
    }
    // Newest current key of the server's algorithm signs.
    let signing_key = current_keys
        .iter()
        .rev()
        .find(|k| k.alg == server.signing_alg)
        .cloned()
        .ok_or_else(|| {
            StoreError::Corrupt(format!(
                "server {t}/{s} has no current {} key",
                server.signing_alg.as_str()
            ))
        })?;
    // After the server's own keys: `key_for` prefers a key of the algorithm to a view.
    current_keys.extend(views);
    let jwks = serde_json::json!({ "keys": published }).to_string();
    let tenant_name = repo
        .get_tenant(t)
        .await?
        .map_or_else(|| t.to_string(), |tenant| tenant.name);
    let own_client_ca = OwnClientCa::parse(server.tls_client_ca.as_deref());
    let trusted_issuer_keys = server
        .trusted_issuers
        .iter()
        .filter_map(|t| {
            let keys = crate::client_keys::ClientKeySet::from_document(t.jwks.as_ref()?).ok()?;
            Some((t.issuer.clone(), Arc::new(keys)))
        })
        .collect();
    Ok(Some(ServerRuntime {
        own_client_ca,
        trusted_issuer_keys,
        issuer: format!("{public_url}/{t}/{s}"),
        tenant_name,
        server,
        signing_key,
        current_keys,
        jwks,
        verify_keys,
    }))
}

fn jwt_algorithm(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::PS256 => Algorithm::PS256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::test_record;
    use crate::model::client::{ClientMetadata, StoredSecret};
    use crate::model::tenant::Tenant;
    use crate::store::open_repository;

    async fn repo_with_client() -> (Arc<dyn Repository>, Client) {
        let repo = open_repository("sqlite::memory:").await.unwrap();
        repo.migrate().await.unwrap();
        let t = TenantId::parse("t").unwrap();
        repo.create_tenant(
            &Tenant {
                id: t.clone(),
                name: "T".into(),
                created_at: 0,
                updated_at: 0,
            },
            &test_record(&t, "tenant.create"),
        )
        .await
        .unwrap();
        let server = Server {
            access_token_ttl: 3600,
            refresh_token_ttl: 7200,
            allowed_token_endpoint_auth_methods: vec![
                crate::model::server::AuthMethod::ClientSecretBasic,
            ],
            ..Server::example(t.clone(), ServerId::parse("s").unwrap())
        };
        repo.create_server(&server, &[], &test_record(&t, "server.create"))
            .await
            .unwrap();
        let audit = test_record(&t, "client.create");
        let client = Client {
            tenant_id: t,
            server_id: server.id,
            client_id: ClientId::parse("c").unwrap(),
            metadata: ClientMetadata::default(),
            secret: StoredSecret::Hash("h".into()),
            secret_expires_at: 0,
            issued_at: 0,
            updated_at: 0,
        };
        repo.create_client(&client, &audit).await.unwrap();
        (repo, client)
    }

    async fn get(
        reg: &Registry,
        repo: &dyn Repository,
        c: &Client,
    ) -> (Arc<ClientRuntime>, Lookup) {
        let (v, l) = reg
            .client(repo, &c.tenant_id, &c.server_id, &c.client_id)
            .await
            .unwrap();
        (v.unwrap(), l)
    }

    #[tokio::test]
    async fn expiry_keeps_an_unchanged_entry_and_its_digest() {
        let (repo, client) = repo_with_client().await;
        let reg = Registry::new(Duration::from_millis(30));
        let (first, lookup) = get(&reg, repo.as_ref(), &client).await;
        assert_eq!(lookup, Lookup::Miss);
        first.verified_digest.set([1; 32]).unwrap();
        assert_eq!(get(&reg, repo.as_ref(), &client).await.1, Lookup::Hit);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (again, lookup) = get(&reg, repo.as_ref(), &client).await;
        assert_eq!(lookup, Lookup::Miss, "re-read after expiry");
        assert!(Arc::ptr_eq(&first, &again), "unchanged row keeps the entry");
        assert_eq!(again.verified_digest.get(), Some(&[1; 32]));

        let mut changed = client.clone();
        changed.secret = StoredSecret::Hash("other".into());
        repo.update_client(&changed, &test_record(&changed.tenant_id, "client.update"))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (fresh, _) = get(&reg, repo.as_ref(), &client).await;
        assert!(
            !Arc::ptr_eq(&first, &fresh),
            "a changed row replaces the entry"
        );
        assert!(fresh.verified_digest.get().is_none());
    }

    #[tokio::test]
    async fn one_request_rereads_while_others_use_the_old_entry() {
        let (repo, client) = repo_with_client().await;
        let reg = Registry::new(Duration::from_millis(30));
        let (first, _) = get(&reg, repo.as_ref(), &client).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let key = (
            client.tenant_id.clone(),
            client.server_id.clone(),
            client.client_id.clone(),
        );
        // The first caller after expiry is elected to reload...
        assert!(matches!(
            plan(&reg.clients, &key, reg.ttl, reg.negative_ttl),
            Plan::Load(Some(_))
        ));
        // ...and everyone else meanwhile gets the old entry without waiting.
        match plan(&reg.clients, &key, reg.ttl, reg.negative_ttl) {
            Plan::Serve(Some(v)) => assert!(Arc::ptr_eq(&v, &first)),
            _ => panic!("expected the stale entry"),
        }
    }

    #[tokio::test]
    async fn expire_all_rereads_but_keeps_unchanged_entries() {
        let (repo, client) = repo_with_client().await;
        let reg = Registry::new(Duration::from_secs(3600));
        let (first, _) = get(&reg, repo.as_ref(), &client).await;
        first.verified_digest.set([2; 32]).unwrap();
        reg.expire_all();
        let (again, lookup) = get(&reg, repo.as_ref(), &client).await;
        assert_eq!(
            lookup,
            Lookup::Miss,
            "re-read at once despite the long lifetime"
        );
        assert!(
            Arc::ptr_eq(&first, &again),
            "unchanged row keeps its verified digest"
        );
        assert_eq!(get(&reg, repo.as_ref(), &client).await.1, Lookup::Hit);
    }

    #[tokio::test]
    async fn announced_invalidations_drop_what_they_name() {
        let (repo, client) = repo_with_client().await;
        let (t, s, c) = (&client.tenant_id, &client.server_id, &client.client_id);
        let reg = Registry::new(Duration::from_secs(3600));
        get(&reg, repo.as_ref(), &client).await;
        // A key rotation leaves clients (and their verified secrets) alone.
        reg.apply(&Invalidation::keys(t, s));
        assert_eq!(get(&reg, repo.as_ref(), &client).await.1, Lookup::Hit);
        for inv in [
            Invalidation::client(t, s, c),
            Invalidation::server(t, s),
            Invalidation::tenant(t),
        ] {
            reg.apply(&inv);
            assert_eq!(
                get(&reg, repo.as_ref(), &client).await.1,
                Lookup::Miss,
                "{inv:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_unreachable_database_keeps_expired_entries_serving() {
        let (repo, client) = repo_with_client().await;
        let reg = Registry::new(Duration::from_millis(30));
        let (first, _) = get(&reg, repo.as_ref(), &client).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        repo.close().await;
        let (served, _) = reg
            .client(
                repo.as_ref(),
                &client.tenant_id,
                &client.server_id,
                &client.client_id,
            )
            .await
            .expect("the cached entry, not an error");
        assert!(Arc::ptr_eq(&first, &served.unwrap()));
        // Nothing cached: the outage is an error.
        let other = ClientId::parse("unknown").unwrap();
        assert!(reg
            .client(repo.as_ref(), &client.tenant_id, &client.server_id, &other)
            .await
            .is_err());
    }

    #[tokio::test]
    async fn a_load_racing_an_invalidation_is_not_cached() {
        let (repo, client) = repo_with_client().await;
        let reg = Registry::new(Duration::from_secs(30));
        let generation = reg.generation.load(Ordering::Acquire);
        reg.invalidate_client(&client.tenant_id, &client.server_id, &client.client_id);
        let key = (
            client.tenant_id.clone(),
            client.server_id.clone(),
            client.client_id.clone(),
        );
        reg.store(&reg.clients, key.clone(), None, generation);
        assert!(reg.clients.get(&key).is_none());
        assert_eq!(get(&reg, repo.as_ref(), &client).await.1, Lookup::Miss);
    }
}
