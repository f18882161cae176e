//! The application state handed to both listeners: stores, caches, keys and options. Built
//! once in `main` and passed explicitly; there are no globals.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::audit::AuthFailureSampler;
use crate::client_keys::ClientKeys;
use crate::ids::{ClientId, ServerId, TenantId};
use crate::invalidation::{Invalidation, Invalidations, Local};
use crate::keys::MasterKey;
use crate::metrics::{Cache, Metrics};
use crate::oauth::OAuthError;
use crate::registry::{ClientRuntime, Registry, ServerRuntime};
use crate::secrets::SecretDigester;
use crate::store::timed::{TimedRepository, TimedShortLived};
use crate::store::{Repository, ShortLivedStore, StoreError};

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
    /// How client `jwks_uri`s are fetched.
    pub jwks_fetch: JwksFetchOptions,
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
}

/// Which `aud` values a client assertion may carry (RFC 7523 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAudience {
    /// The URL of the endpoint receiving it, or the issuer (default).
    EndpointOrIssuer,
    /// Only the issuer (the stricter reading of draft-ietf-oauth-rfc7523bis).
    IssuerOnly,
}

/// RFC 7523 client-assertion rules.
#[derive(Debug, Clone)]
pub struct AssertionOptions {
    /// How far ahead `exp` may be (default 5 minutes).
    pub max_lifetime: Duration,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 30 s).
    pub clock_skew: Duration,
    /// Accepted audiences.
    pub audience: AssertionAudience,
}

impl Default for AssertionOptions {
    fn default() -> Self {
        Self {
            max_lifetime: Duration::from_secs(300),
            clock_skew: Duration::from_secs(30),
            audience: AssertionAudience::EndpointOrIssuer,
        }
    }
}

/// How client `jwks_uri`s are fetched and cached.
#[derive(Debug, Clone)]
pub struct JwksFetchOptions {
    /// Allow `http://` URIs (development only).
    pub allow_http: bool,
    /// Allow loopback, private and link-local addresses (development only; SSRF guard).
    pub allow_private_addresses: bool,
    /// Deadline for one fetch.
    pub timeout: Duration,
    /// Largest document accepted.
    pub max_bytes: usize,
    /// Least time between two fetches of one URI caused by an unknown `kid`.
    pub refetch_cooldown: Duration,
    /// Bounds on the cache lifetime taken from the response's caching headers.
    pub min_cache: Duration,
    /// See `min_cache`.
    pub max_cache: Duration,
}

impl Default for JwksFetchOptions {
    fn default() -> Self {
        Self {
            allow_http: false,
            allow_private_addresses: false,
            timeout: Duration::from_secs(5),
            max_bytes: 64 * 1024,
            refetch_cooldown: Duration::from_secs(60),
            min_cache: Duration::from_secs(60),
            max_cache: Duration::from_secs(3600),
        }
    }
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
            code_ttl: Duration::from_secs(60),
            session_ttl: Duration::from_secs(8 * 3600),
            trusted_proxies: Vec::new(),
            limits: crate::limits::Limits::default(),
            rate_limits: crate::rate_limit::RateLimitDefaults::default(),
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
    pub rate_limiter: crate::rate_limit::Limiter,
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
        Self {
            registry: Registry::new(options.cache_ttl),
            hash_permits: Semaphore::new(options.max_concurrent_hashes.max(1)),
            hasher: Arc::new(crate::secrets::Hasher::default()),
            client_keys: ClientKeys::new(options.jwks_fetch.clone()),
            metrics,
            repo,
            short_lived,
            master: Arc::new(master),
            digester: SecretDigester::new(),
            options,
            draining: AtomicBool::new(false),
            invalidations: Arc::new(Local),
            auth_failures: AuthFailureSampler::new(),
            rate_limiter: crate::rate_limit::Limiter::default(),
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

    /// Whether shutdown has begun.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The client-authentication methods this gateway can serve.
    #[must_use]
    pub fn servable_methods(&self) -> Vec<crate::server::AuthMethod> {
        crate::server::AuthMethod::servable(self.options.client_certificates)
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
        match self
            .registry
            .server(
                self.repo.as_ref(),
                &self.master,
                &self.options.public_url,
                t,
                s,
            )
            .await
        {
            Ok((server, lookup)) => {
                self.metrics.cache_lookup(Cache::Server, lookup);
                server.ok_or_else(OAuthError::unknown_server)
            }
            Err(e) => Err(store_failure(&e)),
        }
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
            .client(self.repo.as_ref(), t, s, c)
            .await
            .map(|(c, lookup)| {
                self.metrics.cache_lookup(Cache::Client, lookup);
                c
            })
            .map_err(|e| store_failure(&e))
    }
}

/// Maps a store failure on a request path: unreachable is `503`, anything else `500`;
/// the cause goes to the log, not to the caller.
#[must_use]
pub fn store_failure(e: &StoreError) -> OAuthError {
    match e {
        StoreError::Unavailable(_) => {
            tracing::warn!(error = %e, "store unavailable");
            OAuthError::temporarily_unavailable()
        }
        _ => {
            tracing::error!(error = %e, "store failure");
            OAuthError::server_error()
        }
    }
}
