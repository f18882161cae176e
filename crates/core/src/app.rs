//! The application state handed to both listeners: stores, caches, keys and options. Built
//! once in `main` and passed explicitly; there are no globals.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::audit::AuthFailureSampler;
use crate::client_auth::{AssertionOptions, ClientAuth};
use crate::client_keys::ClientKeys;
use crate::client_keys::JwksFetchOptions;
use crate::clock::{Clock, SystemClock};
use crate::grants::Grants;
use crate::ids::{ClientId, ServerId, TenantId};
use crate::invalidation::{Heard, Invalidation, Invalidations, Local};
use crate::keys::MasterKey;
use crate::keys::Signer;
use crate::metrics::Metrics;
use crate::oauth::OAuthError;
use crate::rate_limit::{Limiter, RateLimiter};
use crate::registry::{ClientRuntime, Directory, Registry, ServerRuntime};
use crate::revocation::Revocations;
use crate::secrets::SecretDigester;
use crate::store::timed::{TimedRepository, TimedShortLived};
use crate::store::{Repository, ShortLivedStore};
use crate::tokens::Minter;

/// Options that shape behaviour, validated by the CLI before anything starts.
#[derive(Debug, Clone)]
pub struct TollgateOptions {
    /// External base URL, without a trailing slash; issuers are `{public_url}/{tid}/{aid}`.
    pub public_url: String,
    /// How long cached servers and clients live before being re-read.
    pub cache_ttl: Duration,
    /// Most argon2 verifications running at once; others queue.
    pub max_concurrent_hashes: usize,
    /// Whether client certificates can reach the gateway (TLS with a client CA, or a trusted
    /// proxy header): decides whether the two TLS methods are servable.
    pub client_certificates: bool,
    /// The CAs `tls_client_auth` certificates must chain to (`--tls-client-ca`).
    pub client_ca: Option<Arc<crate::client_auth::ClientCa>>,
    /// RFC 7523 client-assertion rules.
    pub assertions: AssertionOptions,
    /// How client `jwks_uri`s are fetched and cached.
    pub jwks_fetch: JwksFetchOptions,
    /// The guards of every outbound call (`--outbound-…`).
    pub outbound: crate::outbound::OutboundOptions,
    /// Lifetime of authorization codes (at most 60 s).
    pub code_ttl: Duration,
    /// Lifetime of a login session.
    pub session_ttl: Duration,
    /// Reverse proxies (`--trusted-proxies`) whose `X-Forwarded-For` names the client's
    /// address in audit rows; empty: the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Input limits (body, headers, parameters, JSON depth, assertions, JWK Sets).
    pub limits: crate::limits::Limits,
    /// Rate limits for servers that set none themselves.
    pub rate_limits: crate::rate_limit::RateLimitDefaults,
    /// The operator's ceilings on servers' lifetimes and rate limits.
    pub ceilings: crate::model::ceilings::Ceilings,
    /// The device flow's lifetimes and polling interval (RFC 8628).
    pub device: crate::grants::device::DeviceOptions,
}

impl Default for TollgateOptions {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".into(),
            cache_ttl: Duration::from_secs(30),
            max_concurrent_hashes: 2,
            client_certificates: false,
            client_ca: None,
            assertions: AssertionOptions::default(),
            jwks_fetch: JwksFetchOptions::default(),
            outbound: crate::outbound::OutboundOptions::default(),
            code_ttl: Duration::from_secs(60),
            session_ttl: Duration::from_secs(8 * 3600),
            trusted_proxies: Vec::new(),
            limits: crate::limits::Limits::default(),
            rate_limits: crate::rate_limit::RateLimitDefaults::default(),
            ceilings: crate::model::ceilings::Ceilings::default(),
            device: crate::grants::device::DeviceOptions::default(),
        }
    }
}

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Tollgate {
    /// The durable store.
    pub repo: Arc<dyn Repository>,
    /// The short-lived store.
    pub short_lived: Arc<dyn ShortLivedStore>,
    /// Caches of servers and clients.
    pub registry: Registry,
    /// Seals signing keys and HMAC client secrets.
    pub master: Arc<MasterKey>,
    /// Keyed digests of verified secrets.
    pub digester: SecretDigester,
    /// Options.
    pub options: TollgateOptions,
    /// Bounds CPU spent on argon2 so a burst of wrong secrets cannot starve the runtime.
    pub hash_permits: Semaphore,
    /// argon2 with pooled work areas (secrets and passwords).
    pub hasher: Arc<crate::secrets::Hasher>,
    /// Set when shutdown begins: `/readyz` then answers 503 so load balancers drain us.
    pub draining: AtomicBool,
    /// The one guarded client of every outbound call.
    pub outbound: Arc<crate::outbound::Outbound>,
    /// Fetches and caches clients' `jwks_uri` documents (`private_key_jwt`).
    pub client_keys: ClientKeys,
    /// Prometheus metrics (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// Announces admin changes to the other processes sharing the database.
    pub invalidations: Arc<dyn Invalidations>,
    /// Samples client-authentication failures into the audit trail, off the request path
    /// ([`crate::audit::write_samples`] writes them).
    pub auth_failures: AuthFailureSampler,
    /// The rate limiter's memory of store failures (it fails open, and briefly stops asking).
    pub limiter: Limiter,
    /// Signs tokens, keeping RSA signatures off the async workers.
    pub signer: Signer,
    /// The time: the system's, or one a test moves.
    pub clock: Arc<dyn Clock>,
}

impl Tollgate {
    /// Assembles the state.
    #[must_use]
    pub fn new(
        repo: Arc<dyn Repository>,
        short_lived: Arc<dyn ShortLivedStore>,
        master: MasterKey,
        options: TollgateOptions,
    ) -> Self {
        // Both stores are timed at the trait-object boundary, whatever the backend.
        let metrics = Arc::new(Metrics::default());
        let repo = TimedRepository::wrap(repo, metrics.clone());
        let short_lived = TimedShortLived::wrap(short_lived, metrics.clone());
        let outbound = Arc::new(crate::outbound::Outbound::new(options.outbound.clone()));
        Self {
            registry: Registry::new(options.cache_ttl).with_ceilings(options.ceilings),
            hash_permits: Semaphore::new(options.max_concurrent_hashes.max(1)),
            hasher: Arc::new(crate::secrets::Hasher::default()),
            client_keys: ClientKeys::new(options.jwks_fetch.clone(), outbound.clone()),
            outbound,
            metrics,
            repo,
            short_lived,
            master: Arc::new(master),
            digester: SecretDigester::new(),
            options,
            draining: AtomicBool::new(false),
            invalidations: Arc::new(Local),
            auth_failures: AuthFailureSampler::new(),
            limiter: Limiter::default(),
            signer: Signer::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// Announces admin changes to other processes through `invalidations` (default: no other
    /// process is told).
    #[must_use]
    pub fn with_invalidations(mut self, invalidations: Arc<dyn Invalidations>) -> Self {
        self.invalidations = invalidations;
        self
    }

    /// After an admin change has committed: drops this process's cache entries at once, then
    /// tells the other processes. A failed announcement is logged, not returned: the change
    /// is made, and the others' cache lifetime (`--cache-ttl`) still bounds its arrival.
    pub async fn invalidate(&self, inv: Invalidation) {
        self.registry.apply(&inv);
        if let Err(e) = self.invalidations.publish(&inv).await {
            tracing::warn!(
                error = %e,
                "could not announce a change to other processes; they see it within --cache-ttl"
            );
        }
    }

    /// Applies other processes' announcements to this process's caches until aborted (see
    /// [`crate::invalidation::listen`]).
    pub async fn listen_for_invalidations(self: Arc<Self>) {
        let invalidations = Arc::clone(&self.invalidations);
        crate::invalidation::listen(invalidations, |heard| match heard {
            Heard::One(inv) => self.registry.apply(inv),
            Heard::Everything => self.registry.expire_all(),
        })
        .await;
    }

    /// Uses `clock` for every expiry decision (tests: a [`crate::clock::ManualClock`]).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Whether shutdown has begun.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The client-authentication methods this gateway can serve.
    #[must_use]
    pub fn servable_methods(&self) -> Vec<crate::model::server::AuthMethod> {
        crate::model::server::AuthMethod::servable(self.options.client_certificates)
    }

    /// The issuer of a server.
    #[must_use]
    pub fn issuer(&self, t: &TenantId, s: &ServerId) -> String {
        format!("{}/{t}/{s}", self.options.public_url)
    }

    /// The server for a gateway request: `404` when unknown, `503` when the store is down.
    ///
    /// # Errors
    /// As above.
    pub async fn server(
        &self,
        t: &TenantId,
        s: &ServerId,
    ) -> Result<Arc<ServerRuntime>, OAuthError> {
        self.directory().server(t, s).await
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
        self.directory().client(t, s, c).await
    }

    // The narrow seams: each hands a part of the domain just the few things it uses.

    /// Server and client lookups.
    #[must_use]
    pub fn directory(&self) -> Directory<'_> {
        Directory {
            registry: &self.registry,
            repo: self.repo.as_ref(),
            master: &self.master,
            public_url: &self.options.public_url,
            metrics: &self.metrics,
        }
    }

    /// What client authentication uses.
    #[must_use]
    pub fn client_auth(&self) -> ClientAuth<'_> {
        ClientAuth {
            directory: self.directory(),
            digester: &self.digester,
            hasher: &self.hasher,
            hash_permits: &self.hash_permits,
            master: &self.master,
            replay: self.short_lived.as_ref(),
            client_keys: &self.client_keys,
            assertions: &self.options.assertions,
            client_ca: self.options.client_ca.as_deref(),
            client_certificates: self.options.client_certificates,
            metrics: &self.metrics,
            failures: &self.auth_failures,
            clock: self.clock.as_ref(),
        }
    }

    /// Signs and dates tokens.
    #[must_use]
    pub fn minter(&self) -> Minter<'_> {
        Minter {
            signer: &self.signer,
            clock: self.clock.as_ref(),
        }
    }

    /// What the token endpoint's grants use.
    #[must_use]
    pub fn grants(&self) -> Grants<'_> {
        Grants {
            repo: self.repo.as_ref(),
            short_lived: self.short_lived.as_ref(),
            minter: self.minter(),
            metrics: &self.metrics,
            registry: &self.registry,
            client_keys: &self.client_keys,
            assertions: &self.options.assertions,
            device: &self.options.device,
        }
    }

    /// Revokes access tokens and refresh-token families.
    #[must_use]
    pub fn revocations(&self) -> Revocations<'_> {
        Revocations {
            repo: self.repo.as_ref(),
            short_lived: self.short_lived.as_ref(),
            clock: self.clock.as_ref(),
        }
    }

    /// What the rate limiter uses.
    #[must_use]
    pub fn rate_limiter(&self) -> RateLimiter<'_> {
        RateLimiter {
            limiter: &self.limiter,
            store: self.short_lived.as_ref(),
            defaults: &self.options.rate_limits,
            metrics: &self.metrics,
            clock: self.clock.as_ref(),
        }
    }
}
