//! Prometheus metrics: one registry per process, held by [`crate::Tollgate`], rendered as
//! Prometheus text by the listeners that serve `/metrics`.
//!
//! Every label value is bounded: routes are patterns (never raw paths), methods, reasons,
//! grant types and backends are `&'static str` from closed sets, statuses are numbers. The hot
//! paths touch pre-resolved counters or a family lookup keyed by those small values.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::oauth::{AuthMethod, GrantType};

/// The `Content-Type` of [`Metrics::render`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the request-latency buckets: the token path answers in well
/// under a millisecond when warm, a cold argon2 verification takes tens of milliseconds.
const HTTP_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds (seconds) of the store-latency buckets: the in-process store answers in
/// microseconds, a remote database in about a millisecond, a struggling one in seconds.
const STORE_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

fn store_histogram() -> Histogram {
    Histogram::new(STORE_BUCKETS)
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    listener: &'static str,
    endpoint: String,
    method: &'static str,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteLabels {
    listener: &'static str,
    endpoint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TokenLabels {
    grant_type: &'static str,
    auth_method: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FailureLabels {
    method: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabels {
    store: &'static str,
    backend: &'static str,
    operation: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LoginLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RateLimitLabels {
    endpoint: &'static str,
    limit: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ActiveLabels {
    active: &'static str,
}

/// Which store an operation went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The durable repository (SQLite, PostgreSQL).
    Database,
    /// The short-lived store (in-process, Redis).
    ShortLived,
}

impl StoreKind {
    fn label(self) -> &'static str {
        match self {
            Self::Database => "database",
            Self::ShortLived => "short_lived",
        }
    }
}

/// Which registry cache a lookup went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cache {
    /// Authorization servers (with their keys).
    Server,
    /// Clients.
    Client,
}

/// Pre-resolved hit and miss counters of one cache.
#[derive(Debug)]
struct CacheCounters {
    hit: Counter,
    miss: Counter,
}

impl CacheCounters {
    fn new(family: &Family<CacheLabels, Counter>, cache: &'static str) -> Self {
        let get = |result| family.get_or_create_owned(&CacheLabels { cache, result });
        Self {
            hit: get("hit"),
            miss: get("miss"),
        }
    }

    fn record(&self, lookup: Lookup) {
        match lookup {
            Lookup::Hit => self.hit.inc(),
            Lookup::Miss => self.miss.inc(),
        };
    }
}

/// What a cache lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Served from memory.
    Hit,
    /// Loaded from the database.
    Miss,
}

/// The process's metrics. Cheap to update from any thread; rendered on scrape.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    tokens_issued: Family<TokenLabels, Counter>,
    /// `client_credentials` by method, in [`AuthMethod::ALL`] order: the token path's counter
    /// without a hash lookup (and every series present from the start).
    client_credentials_issued: Vec<Counter>,
    auth_failures: Family<FailureLabels, Counter>,
    store_duration: Family<StoreLabels, Histogram, fn() -> Histogram>,
    server_cache: CacheCounters,
    client_cache: CacheCounters,
    introspections_active: Counter,
    introspections_inactive: Counter,
    revocations: Counter,
    audit_samples_dropped: Counter,
    logins: Family<LoginLabels, Counter>,
    rate_limited: Family<RateLimitLabels, Counter>,
    rate_limit_skipped: Family<EndpointLabels, Counter>,
    short_lived_entries: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(
            env!("CARGO_PKG_VERSION"),
            option_env!("TOLLGATE_BUILD_REVISION"),
        )
    }
}

impl Metrics {
    /// A registry with every Tollgate metric, and `tollgate_build_info` set to 1 for
    /// `version` (and `revision`, when known).
    #[must_use]
    pub fn new(version: &str, revision: Option<&str>) -> Self {
        let mut registry = Registry::with_prefix("tollgate");

        let http_requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by listener, route pattern, method and status",
            http_requests.clone(),
        );
        let http_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                http_histogram,
            );
        registry.register_with_unit(
            "http_request_duration",
            "Time from receiving a request to its response, by listener and route pattern",
            Unit::Seconds,
            http_duration.clone(),
        );
        let tokens_issued = Family::<TokenLabels, Counter>::default();
        let client_credentials_issued = AuthMethod::ALL
            .iter()
            .map(|m| {
                tokens_issued.get_or_create_owned(&TokenLabels {
                    grant_type: GrantType::ClientCredentials.as_str(),
                    auth_method: m.as_str(),
                })
            })
            .collect();
        registry.register(
            "tokens_issued",
            "Access tokens issued, by grant type and client authentication method",
            tokens_issued.clone(),
        );
        let auth_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "client_auth_failures",
            "Failed client authentications, by method (registered, else the shape presented) and reason",
            auth_failures.clone(),
        );
        let store_duration =
            Family::<StoreLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                store_histogram,
            );
        registry.register_with_unit(
            "store_operation_duration",
            "Time spent in store calls, by store (database, short_lived), backend and operation",
            Unit::Seconds,
            store_duration.clone(),
        );
        let cache_lookups = Family::<CacheLabels, Counter>::default();
        let server_cache = CacheCounters::new(&cache_lookups, "server");
        let client_cache = CacheCounters::new(&cache_lookups, "client");
        registry.register(
            "cache_lookups",
            "Registry cache lookups, by cache (server, client) and result (hit, miss)",
            cache_lookups,
        );
        let introspections = Family::<ActiveLabels, Counter>::default();
        let introspections_active =
            introspections.get_or_create_owned(&ActiveLabels { active: "true" });
        let introspections_inactive =
            introspections.get_or_create_owned(&ActiveLabels { active: "false" });
        registry.register(
            "introspections",
            "Token introspection answers (RFC 7662), by whether the token was active",
            introspections,
        );
        let revocations = Counter::default();
        registry.register(
            "revocations",
            "Access tokens revoked (RFC 7009): valid tokens of the requesting client",
            revocations.clone(),
        );
        let audit_samples_dropped = Counter::default();
        registry.register(
            "audit_samples_dropped",
            "Client-authentication failures that would have been sampled into the audit trail \
             but were dropped: the writer's queue was full or the per-minute cap was reached",
            audit_samples_dropped.clone(),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "Login attempts at the built-in login page, by result (success, wrong_password, \
             unknown_user, locked_out)",
            logins.clone(),
        );
        let rate_limited = Family::<RateLimitLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429 by a rate limit, by endpoint and limit (client, address)",
            rate_limited.clone(),
        );
        let rate_limit_skipped = Family::<EndpointLabels, Counter>::default();
        registry.register(
            "rate_limit_checks_skipped",
            "Requests served without a rate-limit check because the short-lived store did not answer (the limiter fails open)",
            rate_limit_skipped.clone(),
        );
        let short_lived_entries = Gauge::default();
        registry.register(
            "short_lived_entries",
            "Entries held by the in-process short-lived store (expired ones until swept); \
             0 with Redis",
            short_lived_entries.clone(),
        );
        let build_info = Family::<Vec<(String, String)>, Gauge>::default();
        let mut labels = vec![("version".to_owned(), version.to_owned())];
        if let Some(r) = revision.filter(|r| !r.is_empty()) {
            labels.push(("revision".to_owned(), r.to_owned()));
        }
        build_info.get_or_create(&labels).set(1);
        registry.register(
            "build_info",
            "Always 1; the labels name the running build",
            build_info,
        );

        Self {
            registry,
            http_requests,
            http_duration,
            tokens_issued,
            client_credentials_issued,
            auth_failures,
            store_duration,
            server_cache,
            client_cache,
            introspections_active,
            introspections_inactive,
            revocations,
            audit_samples_dropped,
            logins,
            rate_limited,
            short_lived_entries,
            rate_limit_skipped,
        }
    }

    /// One answered HTTP request. `endpoint` must be a route pattern (bounded), never a path.
    pub fn observe_http(
        &self,
        listener: &'static str,
        endpoint: String,
        method: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            listener,
            endpoint,
            method,
            status,
        };
        self.http_requests.get_or_create(&labels).inc();
        let route = RouteLabels {
            listener,
            endpoint: labels.endpoint,
        };
        self.http_duration
            .get_or_create(&route)
            .observe(elapsed.as_secs_f64());
    }

    /// An access token issued.
    pub fn token_issued(&self, grant_type: GrantType, method: AuthMethod) {
        if grant_type == GrantType::ClientCredentials {
            if let Some(c) = AuthMethod::ALL
                .iter()
                .position(|m| *m == method)
                .and_then(|i| self.client_credentials_issued.get(i))
            {
                c.inc();
                return;
            }
        }
        self.tokens_issued
            .get_or_create(&TokenLabels {
                grant_type: grant_type.as_str(),
                auth_method: method.as_str(),
            })
            .inc();
    }

    /// A sampled client-authentication failure dropped before reaching the audit trail.
    pub fn audit_sample_dropped(&self) {
        self.audit_samples_dropped.inc();
    }

    /// A failed client authentication; `method` is the registered method when the client is
    /// known, else the shape of what was presented; `reason` is a
    /// `client_auth::Failure::reason()` (a closed set).
    pub fn client_auth_failure(&self, method: &'static str, reason: &'static str) {
        self.auth_failures
            .get_or_create(&FailureLabels { method, reason })
            .inc();
    }

    /// One store call and how long it took.
    pub fn store_operation(
        &self,
        store: StoreKind,
        backend: &'static str,
        operation: &'static str,
        elapsed: Duration,
    ) {
        self.store_duration
            .get_or_create(&StoreLabels {
                store: store.label(),
                backend,
                operation,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A registry cache lookup.
    pub fn cache_lookup(&self, cache: Cache, lookup: Lookup) {
        match cache {
            Cache::Server => self.server_cache.record(lookup),
            Cache::Client => self.client_cache.record(lookup),
        }
    }

    /// An introspection answer.
    pub fn introspection(&self, active: bool) {
        if active {
            self.introspections_active.inc();
        } else {
            self.introspections_inactive.inc();
        }
    }

    /// A token revoked.
    pub fn revocation(&self) {
        self.revocations.inc();
    }

    /// A login attempt at the built-in login page: `success`, `wrong_password`,
    /// `unknown_user` or `locked_out`.
    pub fn login(&self, result: &'static str) {
        self.logins.get_or_create(&LoginLabels { result }).inc();
    }

    /// A request refused by a rate limit. `endpoint` and `limit` come from closed sets.
    pub fn rate_limited(&self, endpoint: &'static str, limit: &'static str) {
        self.rate_limited
            .get_or_create(&RateLimitLabels { endpoint, limit })
            .inc();
    }

    /// How many entries the in-process short-lived store holds.
    pub fn set_short_lived_entries(&self, n: usize) {
        self.short_lived_entries
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A request served unchecked because the rate limiter's store did not answer.
    pub fn rate_limit_skipped(&self, endpoint: &'static str) {
        self.rate_limit_skipped
            .get_or_create(&EndpointLabels { endpoint })
            .inc();
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing into a String cannot fail; an encoder error would leave a partial page,
        // which Prometheus rejects as a whole rather than misreading.
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::error!(error = %e, "cannot render metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn renders_conventional_names_and_labels() {
        let m = Metrics::new("1.2.3", Some("abc123"));
        m.observe_http(
            "gateway",
            "/{tid}/{aid}/oauth2/token".into(),
            "POST",
            200,
            Duration::from_millis(3),
        );
        m.token_issued(GrantType::ClientCredentials, AuthMethod::ClientSecretBasic);
        m.client_auth_failure("client_secret_basic", "wrong_secret");
        m.store_operation(
            StoreKind::ShortLived,
            "memory",
            "get",
            Duration::from_micros(5),
        );
        m.cache_lookup(Cache::Client, Lookup::Miss);
        m.introspection(true);
        m.revocation();
        m.rate_limited("token", "client");
        m.rate_limit_skipped("introspect");
        let text = m.render();
        for (series, want) in [
            (
                r#"tollgate_http_requests_total{listener="gateway",endpoint="/{tid}/{aid}/oauth2/token",method="POST",status="200"}"#,
                1.0,
            ),
            (
                r#"tollgate_http_request_duration_seconds_count{listener="gateway",endpoint="/{tid}/{aid}/oauth2/token"}"#,
                1.0,
            ),
            (
                r#"tollgate_tokens_issued_total{grant_type="client_credentials",auth_method="client_secret_basic"}"#,
                1.0,
            ),
            (
                r#"tollgate_client_auth_failures_total{method="client_secret_basic",reason="wrong_secret"}"#,
                1.0,
            ),
            (
                r#"tollgate_store_operation_duration_seconds_count{store="short_lived",backend="memory",operation="get"}"#,
                1.0,
            ),
            (
                r#"tollgate_cache_lookups_total{cache="client",result="miss"}"#,
                1.0,
            ),
            (
                r#"tollgate_cache_lookups_total{cache="server",result="hit"}"#,
                0.0,
            ),
            (r#"tollgate_introspections_total{active="true"}"#, 1.0),
            (r#"tollgate_introspections_total{active="false"}"#, 0.0),
            ("tollgate_revocations_total", 1.0),
            (
                r#"tollgate_rate_limited_total{endpoint="token",limit="client"}"#,
                1.0,
            ),
            (
                r#"tollgate_rate_limit_checks_skipped_total{endpoint="introspect"}"#,
                1.0,
            ),
            (
                r#"tollgate_build_info{version="1.2.3",revision="abc123"}"#,
                1.0,
            ),
        ] {
            assert_eq!(value(&text, series), Some(want), "{series} in\n{text}");
        }
        assert!(text.contains("# TYPE tollgate_http_request_duration_seconds histogram"));
    }

    #[test]
    fn build_info_without_revision_has_only_the_version() {
        let text = Metrics::new("0.1.0", None).render();
        assert_eq!(
            value(&text, r#"tollgate_build_info{version="0.1.0"}"#),
            Some(1.0)
        );
    }
}
