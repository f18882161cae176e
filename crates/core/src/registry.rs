//! In-memory caches of servers (with their parsed signing keys and rendered JWKS) and
//! clients, so the steady-state token path makes no database round trip. Admin operations
//! invalidate entries in the same process before they return; every entry also expires after
//! a bounded time, which is how changes made through another replica arrive here.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};

use crate::client::Client;
use crate::client_keys::AssertionKeyCache;
use crate::clock;
use crate::ids::{ClientId, ServerId, TenantId};
use crate::keys::{KeyStatus, MasterKey, SigningKey};
use crate::server::{Server, SigningAlg};
use crate::store::{Repository, StoreError};

/// A server as the gateway uses it: settings plus keys parsed once.
#[derive(Debug)]
pub struct ServerRuntime {
    /// Settings.
    pub server: Server,
    /// `{public_url}/{tid}/{aid}`.
    pub issuer: String,
    /// The key that signs access tokens (`server.signing_alg`).
    pub signing_key: Arc<SigningKey>,
    /// Current keys by algorithm, for ID tokens that ask for another algorithm.
    pub current_keys: Vec<Arc<SigningKey>>,
    /// The JWK Set document (current, next and unexpired retiring keys), rendered once.
    pub jwks: String,
    /// Verification keys of every published key, by `kid`, for introspection and revocation.
    pub verify_keys: HashMap<String, (DecodingKey, Algorithm)>,
}

impl ServerRuntime {
    /// The current key for `alg`, if the server holds one.
    #[must_use]
    pub fn key_for(&self, alg: SigningAlg) -> Option<&Arc<SigningKey>> {
        self.current_keys.iter().find(|k| k.alg == alg)
    }
}

/// A client as the gateway uses it.
#[derive(Debug)]
pub struct ClientRuntime {
    /// The stored client.
    pub client: Client,
    /// Keyed digest of the secret, set after its first successful argon2 verification.
    pub verified_digest: OnceLock<[u8; 32]>,
    /// Verification keys for JWT client assertions, derived on first use.
    pub assertion_keys: AssertionKeyCache,
}

#[derive(Debug)]
struct Slot<T> {
    value: T,
    loaded: Instant,
}

type ServerKey = (TenantId, ServerId);
type ClientKey = (TenantId, ServerId, ClientId);

/// The caches. Absent entries are cached too (briefly), so a flood of requests for unknown
/// tenants or clients does not become a flood of queries.
#[derive(Debug)]
pub struct Registry {
    servers: DashMap<ServerKey, Slot<Option<Arc<ServerRuntime>>>>,
    clients: DashMap<ClientKey, Slot<Option<Arc<ClientRuntime>>>>,
    ttl: Duration,
    negative_ttl: Duration,
}

/// What a cache lookup found; hit/miss counts feed metrics later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Served from memory.
    Hit,
    /// Loaded from the database.
    Miss,
}

impl Registry {
    /// Caches whose entries live at most `ttl` (absent entries at most 5 s).
    #[must_use]
    pub fn new(ttl: Duration) -> Self {
        Self {
            servers: DashMap::new(),
            clients: DashMap::new(),
            ttl,
            negative_ttl: ttl.min(Duration::from_secs(5)),
        }
    }

    fn fresh<T>(&self, slot: &Slot<Option<T>>) -> bool {
        let ttl = if slot.value.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        };
        slot.loaded.elapsed() < ttl
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
        if let Some(slot) = self.servers.get(&key) {
            if self.fresh(&slot) {
                return Ok((slot.value.clone(), Lookup::Hit));
            }
        }
        let loaded = load_server(repo, master, public_url, t, s)
            .await?
            .map(Arc::new);
        self.servers.insert(
            key,
            Slot {
                value: loaded.clone(),
                loaded: Instant::now(),
            },
        );
        Ok((loaded, Lookup::Miss))
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
        if let Some(slot) = self.clients.get(&key) {
            if self.fresh(&slot) {
                return Ok((slot.value.clone(), Lookup::Hit));
            }
        }
        let loaded = repo.get_client(t, s, c).await?.map(|client| {
            Arc::new(ClientRuntime {
                client,
                verified_digest: OnceLock::new(),
                assertion_keys: AssertionKeyCache::default(),
            })
        });
        self.clients.insert(
            key,
            Slot {
                value: loaded.clone(),
                loaded: Instant::now(),
            },
        );
        Ok((loaded, Lookup::Miss))
    }

    /// Drops a client's entry.
    pub fn invalidate_client(&self, t: &TenantId, s: &ServerId, c: &ClientId) {
        self.clients.remove(&(t.clone(), s.clone(), c.clone()));
    }

    /// Drops a server's entry and those of its clients.
    pub fn invalidate_server(&self, t: &TenantId, s: &ServerId) {
        self.servers.remove(&(t.clone(), s.clone()));
        self.clients.retain(|(ct, cs, _), _| !(ct == t && cs == s));
    }

    /// Drops every entry of a tenant.
    pub fn invalidate_tenant(&self, t: &TenantId) {
        self.servers.retain(|(st, _), _| st != t);
        self.clients.retain(|(ct, _, _), _| ct != t);
    }

    /// Drops entries past their lifetime (called on an interval to bound memory).
    pub fn sweep(&self) {
        self.servers.retain(|_, slot| self.fresh(slot));
        self.clients.retain(|_, slot| self.fresh(slot));
    }
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
    let mut published = Vec::new();
    let mut verify_keys = HashMap::new();
    for rec in &records {
        if rec.retire_at.is_some_and(|r| r <= now) {
            continue;
        }
        published.push(rec.public_jwk.clone());
        let decoding = serde_json::from_value::<Jwk>(rec.public_jwk.clone())
            .ok()
            .and_then(|jwk| DecodingKey::from_jwk(&jwk).ok())
            .ok_or_else(|| {
                StoreError::Corrupt(format!("public key {} is not a usable JWK", rec.kid))
            })?;
        verify_keys.insert(rec.kid.clone(), (decoding, jwt_algorithm(rec.alg)));
        if rec.status == KeyStatus::Current {
            let key = rec
                .open(master)
                .map_err(|e| StoreError::Corrupt(format!("signing key {}: {e}", rec.kid)))?;
            current_keys.push(Arc::new(key));
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
    let jwks = serde_json::json!({ "keys": published }).to_string();
    Ok(Some(ServerRuntime {
        issuer: format!("{public_url}/{t}/{s}"),
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
