//! Rate limits: GCRA (the generic cell rate algorithm, a leaky bucket kept as one timestamp
//! per key) in the short-lived store, so every replica sharing a Redis shares the buckets.
//!
//! [`check`] is the one entry point: it takes every bucket a request must fit in (for a client
//! endpoint: the client's and the source address's) and asks the store about all of them in
//! one atomic operation — one Redis round trip — which either admits the request into every
//! bucket or into none. Busy keys far below their limits lease admissions ahead ([`Lease`]):
//! one round trip then admits a batch, which the next requests use up without a round trip. It fails open: when the store cannot answer within
//! [`CHECK_TIMEOUT`] the request is served (counted in
//! `tollgate_rate_limit_checks_skipped_total`), and for a second after a failure no request
//! waits for the store at all, so an outage of Redis costs the token path nothing.
//!
//! [`check_client_endpoint`] applies the per-server settings ([`RateLimits`], falling back on
//! the process's [`RateLimitDefaults`]) to the three client-authenticated endpoints.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::ids::{ClientId, ServerId, TenantId};
use crate::metrics::Metrics;
use crate::model::rate_limits::RateLimits;
use crate::oauth::OAuthError;
use crate::store::ShortLivedStore;
use crate::store::{Owner, RateCheck, RateDecision, StoreError};

/// The longest a request waits for the limiter before being served unchecked.
pub const CHECK_TIMEOUT: Duration = Duration::from_millis(250);
/// After the store failed a check, how long checks are skipped without asking it.
const BACKOFF: Duration = Duration::from_secs(1);

/// One limit: a sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests per second, sustained (at least 1).
    pub per_second: u32,
    /// Requests allowed at once from a full bucket (at least 1).
    pub burst: u32,
}

impl Limit {
    /// A limit, or `None` when `per_second` is 0 (no limit).
    #[must_use]
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        (per_second > 0).then_some(Self {
            per_second,
            burst: burst.max(1),
        })
    }

    /// Time between two requests at the sustained rate (GCRA's emission interval).
    #[must_use]
    pub fn interval(self) -> Duration {
        Duration::from_micros(1_000_000 / u64::from(self.per_second.max(1)))
            .max(Duration::from_micros(1))
    }
}

/// What a bucket limits, for metrics: a client, a source address, or something else a caller
/// names (`user`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A client of a server.
    Client,
    /// A source address (IPv6 by /64).
    Address,
    /// Anything else; the label is the caller's, from a closed set.
    Other(&'static str),
}

impl Subject {
    /// The metric label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Address => "address",
            Self::Other(l) => l,
        }
    }
}

/// One bucket a request must fit in.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// The store key (namespaced `rl:…`; never a secret).
    pub key: String,
    /// The limit.
    pub limit: Limit,
    /// What it limits.
    pub subject: Subject,
    /// The tenant whose share of the short-lived store the bucket counts against.
    pub tenant: TenantId,
    /// The server, likewise.
    pub server: ServerId,
}

impl Bucket {
    /// The bucket of a client at one endpoint of one server.
    #[must_use]
    pub fn client(
        endpoint: &str,
        t: &TenantId,
        s: &ServerId,
        client: &ClientId,
        limit: Limit,
    ) -> Self {
        Self {
            key: format!("rl:{endpoint}:{t}/{s}:c:{client}"),
            limit,
            subject: Subject::Client,
            tenant: t.clone(),
            server: s.clone(),
        }
    }

    /// The bucket of a source address at one endpoint of one server. IPv6 addresses share a
    /// bucket per /64, the block one subscriber usually holds.
    #[must_use]
    pub fn address(endpoint: &str, t: &TenantId, s: &ServerId, ip: IpAddr, limit: Limit) -> Self {
        Self {
            key: format!("rl:{endpoint}:{t}/{s}:a:{}", address_key(ip)),
            limit,
            subject: Subject::Address,
            tenant: t.clone(),
            server: s.clone(),
        }
    }
}

/// The address a bucket is keyed by: IPv4 (also IPv4-mapped IPv6) whole, IPv6 by /64.
fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// How long a limited request should wait before trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter {
    /// The wait.
    pub wait: Duration,
    /// Which bucket refused.
    pub subject: Subject,
}

impl RetryAfter {
    /// Whole seconds for `Retry-After`, rounded up, at least 1.
    #[must_use]
    pub fn seconds(&self) -> u64 {
        let s = self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0);
        s.max(1)
    }
}

impl From<RetryAfter> for OAuthError {
    fn from(r: RetryAfter) -> Self {
        OAuthError::too_many_requests(r.seconds())
    }
}

/// The limiter's memory of store failures: while it says so, checks are skipped without
/// waiting for the store; afterwards one request probes it while the others keep skipping.
#[derive(Debug)]
pub struct Limiter {
    epoch: Instant,
    /// Milliseconds since `epoch` until which checks are skipped; 0: the store is healthy.
    skip_until_ms: AtomicU64,
    probing: AtomicBool,
    /// Admissions already charged in the store and not yet used, by the buckets a request
    /// falls in (see [`Lease`]).
    leases: DashMap<String, Lease>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            leases: DashMap::new(),
        }
    }
}

/// How long admissions leased ahead stay usable. Short: an unused admission is a charge the
/// buckets carry for nothing (never one too few), so leases only pay off for traffic that
/// arrives many times within this window.
pub const LEASE_WINDOW: Duration = Duration::from_millis(100);
/// Most admissions leased in one store call.
pub const MAX_LEASE: u32 = 32;
/// Most distinct leases kept; beyond, they are all dropped (their charges simply lapse).
const MAX_LEASES: usize = 100_000;

/// Admissions charged in the store ahead of the requests that will use them: a request that
/// finds one left is admitted without a round trip. The size asked for adapts to the traffic:
/// it doubles when a lease was used up within [`LEASE_WINDOW`] and falls back to one when one
/// lapsed, so sporadic traffic is checked one request at a time — exactly — and only traffic
/// far below its limit (it got every admission it asked for) rides on leases. A lease can
/// only make the limit stricter, never looser: each admission was charged before it is used.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    /// Admissions left.
    left: u32,
    /// When they lapse.
    until: Instant,
    /// What the next store call asks for.
    next_want: u32,
}

/// What the breaker allows for one check.
enum Gate {
    /// Ask the store.
    Ask { probe: bool },
    /// Serve without asking.
    Skip,
}

impl Limiter {
    /// Takes one admission from a live lease of `key`; otherwise says how many to ask for.
    fn take_leased(&self, key: &str, now: Instant) -> Result<(), u32> {
        let Some(mut lease) = self.leases.get_mut(key) else {
            return Err(1);
        };
        if lease.left > 0 && lease.until > now {
            lease.left -= 1;
            return Ok(());
        }
        // Used up in time: ask for more next; lapsed with some left: back to one at a time.
        let want = if lease.left == 0 && lease.until > now {
            lease.next_want.saturating_mul(2).min(MAX_LEASE)
        } else {
            1
        };
        Err(want)
    }

    /// Keeps what a store call granted beyond the request that asked.
    fn store_lease(&self, key: String, wanted: u32, granted: u32, now: Instant) {
        if wanted <= 1 && granted <= 1 {
            // One at a time: remember only that traffic came, to grow on the next call.
            if self.leases.len() >= MAX_LEASES {
                self.leases.clear();
            }
            self.leases.insert(
                key,
                Lease {
                    left: 0,
                    until: now + LEASE_WINDOW,
                    next_want: 1,
                },
            );
            return;
        }
        if self.leases.len() >= MAX_LEASES {
            self.leases.clear();
        }
        // Granted less than asked: the buckets are getting full; no growth from here.
        let next_want = if granted < wanted { 1 } else { wanted };
        let fresh = Lease {
            left: granted.saturating_sub(1),
            until: now + LEASE_WINDOW,
            next_want,
        };
        // Concurrent requests may each have leased: what they got adds up (an overwritten
        // lease would be admissions charged for nothing).
        self.leases
            .entry(key)
            .and_modify(|l| {
                l.left = if l.until > now {
                    l.left.saturating_add(fresh.left)
                } else {
                    fresh.left
                };
                l.until = fresh.until;
                l.next_want = fresh.next_want;
            })
            .or_insert(fresh);
    }

    /// Drops lapsed leases (called on an interval).
    pub fn sweep(&self) {
        let now = Instant::now();
        self.leases.retain(|_, l| l.until > now);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn gate(&self) -> Gate {
        let until = self.skip_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return Gate::Ask { probe: false };
        }
        if self.now_ms() < until {
            return Gate::Skip;
        }
        // Past the back-off: exactly one request probes the store.
        if self.probing.swap(true, Ordering::AcqRel) {
            Gate::Skip
        } else {
            Gate::Ask { probe: true }
        }
    }

    fn succeeded(&self, probe: bool) {
        // Only a failure ever sets it, so the healthy path is one relaxed load.
        if self.skip_until_ms.load(Ordering::Relaxed) != 0
            && self.skip_until_ms.swap(0, Ordering::AcqRel) != 0
        {
            tracing::info!("rate limiting resumed: the short-lived store answers again");
        }
        if probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    fn failed(&self, probe: bool, why: &str) {
        let until = self.now_ms().saturating_add(millis(BACKOFF)).max(1);
        if self.skip_until_ms.swap(until, Ordering::AcqRel) == 0 {
            tracing::warn!(
                error = why,
                "rate limiting suspended: the short-lived store does not answer; requests are served unchecked"
            );
        }
        if probe {
            self.probing.store(false, Ordering::Release);
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What rate limiting needs: the limiter's process memory, the store holding the buckets,
/// the process defaults and the metrics.
#[derive(Debug, Clone, Copy)]
pub struct RateLimiter<'a> {
    /// Leases and the memory of store failures.
    pub limiter: &'a Limiter,
    /// Holds the buckets (shared by every replica on one Redis).
    pub store: &'a dyn ShortLivedStore,
    /// For servers that set no limits themselves.
    pub defaults: &'a RateLimitDefaults,
    /// Counts refusals and skipped checks.
    pub metrics: &'a Metrics,
}

/// Admits a request into every bucket, or into none. `endpoint` labels the metrics (a route
/// name from a closed set: `token`, `introspect`, `revoke`, …).
///
/// # Errors
/// [`RetryAfter`] when a bucket is full: the longest wait among the full ones. Never for a
/// store failure: the limiter fails open.
pub async fn check(
    rl: &RateLimiter<'_>,
    endpoint: &'static str,
    buckets: &[Bucket],
) -> Result<(), RetryAfter> {
    if buckets.is_empty() {
        return Ok(());
    }
    let limiter = rl.limiter;
    let lease_key = match buckets {
        [one] => one.key.clone(),
        many => many
            .iter()
            .map(|b| b.key.as_str())
            .collect::<Vec<_>>()
            .join("|"),
    };
    let now = Instant::now();
    let want = match limiter.take_leased(&lease_key, now) {
        Ok(()) => return Ok(()),
        Err(want) => want,
    };
    let probe = match limiter.gate() {
        Gate::Skip => {
            rl.metrics.rate_limit_skipped(endpoint);
            return Ok(());
        }
        Gate::Ask { probe } => probe,
    };
    let checks: Vec<RateCheck<'_>> = buckets
        .iter()
        .map(|b| RateCheck {
            key: &b.key,
            interval: b.limit.interval(),
            burst: b.limit.burst,
            owner: Owner::new(&b.tenant, &b.server),
        })
        .collect();
    let decision = tokio::time::timeout(CHECK_TIMEOUT, rl.store.rate_limit(&checks, want)).await;
    match decision {
        Ok(Ok(RateDecision::Allowed { granted })) => {
            limiter.succeeded(probe);
            limiter.store_lease(lease_key, want, granted, now);
            Ok(())
        }
        Ok(Ok(RateDecision::Limited { index, retry_after })) => {
            limiter.succeeded(probe);
            limiter.leases.remove(&lease_key);
            let subject = buckets
                .get(index)
                .map_or(Subject::Other("unknown"), |b| b.subject);
            rl.metrics.rate_limited(endpoint, subject.label());
            Err(RetryAfter {
                wait: retry_after,
                subject,
            })
        }
        // The store answered, but this tenant (or server) holds its whole share: refused
        // for it alone; the limiter keeps asking the store for everyone else.
        Ok(Err(StoreError::OverShare { retry_after })) => {
            limiter.succeeded(probe);
            limiter.leases.remove(&lease_key);
            let subject = Subject::Other("share");
            rl.metrics.rate_limited(endpoint, subject.label());
            Err(RetryAfter {
                wait: retry_after,
                subject,
            })
        }
        Ok(Err(e)) => {
            limiter.failed(probe, &e.to_string());
            rl.metrics.rate_limit_skipped(endpoint);
            Ok(())
        }
        Err(_) => {
            limiter.failed(probe, "timed out");
            rl.metrics.rate_limit_skipped(endpoint);
            Ok(())
        }
    }
}

/// The process-wide defaults (`--rate-limit-…`), for servers that set nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitDefaults {
    /// Requests per second per client; 0: off.
    pub client_per_second: u32,
    /// Burst per client.
    pub client_burst: u32,
    /// Requests per second per source address; 0: off.
    pub address_per_second: u32,
    /// Burst per source address.
    pub address_burst: u32,
}

impl Default for RateLimitDefaults {
    fn default() -> Self {
        Self {
            client_per_second: 100,
            client_burst: 200,
            address_per_second: 300,
            address_burst: 600,
        }
    }
}

impl RateLimitDefaults {
    /// The effective client and address limits of a server.
    #[must_use]
    pub fn resolve(&self, server: &RateLimits) -> (Option<Limit>, Option<Limit>) {
        (
            Limit::new(
                server.client_per_second.unwrap_or(self.client_per_second),
                server.client_burst.unwrap_or(self.client_burst),
            ),
            Limit::new(
                server.address_per_second.unwrap_or(self.address_per_second),
                server.address_burst.unwrap_or(self.address_burst),
            ),
        )
    }
}

/// The limits of a client-authenticated endpoint (`token`, `introspect`, `revoke`) of a
/// server: the client named by the request (before it is authenticated, so that a flood of
/// wrong secrets is stopped before it costs argon2) and the source address, in one store
/// round trip.
///
/// # Errors
/// `429 too_many_requests` with the wait.
pub async fn check_client_endpoint(
    rl: &RateLimiter<'_>,
    endpoint: &'static str,
    server: &crate::model::server::Server,
    client: Option<&ClientId>,
    address: Option<IpAddr>,
) -> Result<(), OAuthError> {
    let (client_limit, address_limit) = rl.defaults.resolve(&server.rate_limits);
    let mut buckets = Vec::with_capacity(2);
    if let (Some(limit), Some(c)) = (client_limit, client) {
        buckets.push(Bucket::client(
            endpoint,
            &server.tenant_id,
            &server.id,
            c,
            limit,
        ));
    }
    if let (Some(limit), Some(ip)) = (address_limit, address) {
        buckets.push(Bucket::address(
            endpoint,
            &server.tenant_id,
            &server.id,
            ip,
            limit,
        ));
    }
    check(rl, endpoint, &buckets).await.map_err(|r| {
        tracing::info!(
            tenant = %server.tenant_id,
            server = %server.id,
            limit = r.subject.label(),
            retry_after = r.seconds(),
            "request rate limited"
        );
        OAuthError::from(r)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::model::rate_limits::{RateLimitsPatch, MAX_SETTING};
    use crate::Tollgate;

    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    use super::*;
    use crate::keys::MasterKey;
    use crate::store::{open_repository, open_short_lived, Owner, ShortLivedStore, StoreError};
    use crate::TollgateOptions;

    /// A short-lived store whose rate limiting fails (or hangs) while `down` is set and
    /// otherwise answers from memory; counts the calls that reached it.
    #[derive(Debug)]
    struct Flaky {
        inner: Arc<dyn ShortLivedStore>,
        down: AtomicBool,
        hang: bool,
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl ShortLivedStore for Flaky {
        async fn put_if_absent(
            &self,
            o: Owner<'_>,
            k: &str,
            v: &[u8],
            t: Duration,
        ) -> Result<bool, StoreError> {
            self.inner.put_if_absent(o, k, v, t).await
        }
        async fn put(
            &self,
            o: Owner<'_>,
            k: &str,
            v: &[u8],
            t: Duration,
        ) -> Result<(), StoreError> {
            self.inner.put(o, k, v, t).await
        }
        async fn get(&self, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(k).await
        }
        async fn take(&self, o: Owner<'_>, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.take(o, k).await
        }
        async fn remove(&self, o: Owner<'_>, k: &str) -> Result<bool, StoreError> {
            self.inner.remove(o, k).await
        }
        async fn incr(&self, o: Owner<'_>, k: &str, t: Duration) -> Result<u64, StoreError> {
            self.inner.incr(o, k, t).await
        }
        async fn rate_limit(
            &self,
            checks: &[RateCheck<'_>],
            want: u32,
        ) -> Result<RateDecision, StoreError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.down.load(Ordering::SeqCst) {
                if self.hang {
                    std::future::pending::<()>().await;
                }
                return Err(StoreError::Unavailable("down".into()));
            }
            self.inner.rate_limit(checks, want).await
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
        fn backend(&self) -> &'static str {
            "flaky"
        }
    }

    async fn app(hang: bool) -> (Tollgate, Arc<Flaky>) {
        let store = Arc::new(Flaky {
            inner: open_short_lived(None).await.unwrap(),
            down: AtomicBool::new(false),
            hang,
            calls: AtomicUsize::new(0),
        });
        let app = Tollgate::new(
            open_repository("sqlite::memory:").await.unwrap(),
            store.clone(),
            MasterKey::generate().0,
            TollgateOptions::default(),
        );
        (app, store)
    }

    fn buckets(n: u32) -> Vec<Bucket> {
        let t = TenantId::parse("t").unwrap();
        let s = ServerId::parse("s").unwrap();
        vec![
            Bucket::client(
                "token",
                &t,
                &s,
                &ClientId::parse("c").unwrap(),
                Limit::new(1, n).unwrap(),
            ),
            Bucket::address(
                "token",
                &t,
                &s,
                "192.0.2.1".parse().unwrap(),
                Limit::new(1, 100).unwrap(),
            ),
        ]
    }

    /// A store with one budget of `cap` admissions that grants as many as asked while they
    /// last, counting its calls and what it charged.
    #[derive(Debug)]
    struct Budget {
        cap: u32,
        charged: std::sync::Mutex<u32>,
        calls: AtomicUsize,
    }

    #[async_trait::async_trait]
    impl ShortLivedStore for Budget {
        async fn put_if_absent(
            &self,
            _: Owner<'_>,
            _: &str,
            _: &[u8],
            _: Duration,
        ) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn put(
            &self,
            _: Owner<'_>,
            _: &str,
            _: &[u8],
            _: Duration,
        ) -> Result<(), StoreError> {
            Ok(())
        }
        async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        async fn take(&self, _: Owner<'_>, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        async fn remove(&self, _: Owner<'_>, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn incr(&self, _: Owner<'_>, _: &str, _: Duration) -> Result<u64, StoreError> {
            Ok(1)
        }
        async fn rate_limit(
            &self,
            _: &[RateCheck<'_>],
            want: u32,
        ) -> Result<RateDecision, StoreError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut charged = self.charged.lock().unwrap();
            let granted = want.min(self.cap - *charged);
            if granted == 0 {
                return Ok(RateDecision::Limited {
                    index: 0,
                    retry_after: Duration::from_secs(1),
                });
            }
            *charged += granted;
            Ok(RateDecision::Allowed { granted })
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
        fn backend(&self) -> &'static str {
            "budget"
        }
    }

    async fn budget_app(cap: u32) -> (Tollgate, Arc<Budget>) {
        let store = Arc::new(Budget {
            cap,
            charged: std::sync::Mutex::new(0),
            calls: AtomicUsize::new(0),
        });
        let app = Tollgate::new(
            open_repository("sqlite::memory:").await.unwrap(),
            store.clone(),
            MasterKey::generate().0,
            TollgateOptions::default(),
        );
        (app, store)
    }

    #[tokio::test]
    async fn busy_keys_lease_admissions_and_never_exceed_what_was_charged() {
        // Plenty of budget: 500 back-to-back requests cost far fewer store calls.
        let (app, store) = budget_app(1_000_000).await;
        for _ in 0..500 {
            check(&app.rate_limiter(), "token", &buckets(1000))
                .await
                .unwrap();
        }
        let calls = store.calls.load(Ordering::SeqCst);
        assert!(calls < 40, "{calls} store calls for 500 requests");
        // A small budget: exactly that many admitted, however they were leased.
        let (app, store) = budget_app(10).await;
        let mut admitted = 0;
        for _ in 0..50 {
            admitted += u32::from(
                check(&app.rate_limiter(), "token", &buckets(1000))
                    .await
                    .is_ok(),
            );
        }
        assert_eq!(admitted, 10);
        assert_eq!(*store.charged.lock().unwrap(), 10);
    }

    #[tokio::test]
    async fn sporadic_keys_are_checked_one_request_at_a_time() {
        let (app, store) = budget_app(1_000_000).await;
        for _ in 0..3 {
            check(&app.rate_limiter(), "token", &buckets(1000))
                .await
                .unwrap();
            tokio::time::sleep(LEASE_WINDOW + Duration::from_millis(20)).await;
        }
        assert_eq!(store.calls.load(Ordering::SeqCst), 3);
        assert_eq!(*store.charged.lock().unwrap(), 3, "nothing leased ahead");
    }

    #[tokio::test]
    async fn limits_then_names_the_full_bucket_and_counts_it() {
        let (app, _) = app(false).await;
        for _ in 0..3 {
            check(&app.rate_limiter(), "token", &buckets(3))
                .await
                .unwrap();
        }
        let refused = check(&app.rate_limiter(), "token", &buckets(3))
            .await
            .unwrap_err();
        assert_eq!(refused.subject, Subject::Client);
        assert_eq!(refused.seconds(), 1);
        let e = OAuthError::from(refused);
        assert_eq!(
            (e.status, e.code.as_str(), e.retry_after),
            (429, "too_many_requests", Some(1))
        );
        assert!(app
            .metrics
            .render()
            .contains(r#"tollgate_rate_limited_total{endpoint="token",limit="client"} 1"#));
    }

    #[tokio::test]
    async fn fails_open_then_stops_asking_then_recovers() {
        for hang in [false, true] {
            let (app, store) = app(hang).await;
            store.down.store(true, Ordering::SeqCst);
            // The store fails (or hangs past the deadline): served, counted.
            let started = Instant::now();
            check(&app.rate_limiter(), "token", &buckets(1))
                .await
                .unwrap();
            assert!(started.elapsed() < CHECK_TIMEOUT + Duration::from_millis(500));
            // Within the back-off nobody waits for the store.
            for _ in 0..50 {
                check(&app.rate_limiter(), "token", &buckets(1))
                    .await
                    .unwrap();
            }
            assert_eq!(store.calls.load(Ordering::SeqCst), 1, "hang={hang}");
            assert!(app
                .metrics
                .render()
                .contains(r#"tollgate_rate_limit_checks_skipped_total{endpoint="token"} 51"#));
            // The store is back: after the back-off one probe finds it, and limiting resumes.
            store.down.store(false, Ordering::SeqCst);
            let deadline = Instant::now() + Duration::from_secs(5);
            while store.calls.load(Ordering::SeqCst) < 2 {
                assert!(Instant::now() < deadline, "no probe after the back-off");
                check(&app.rate_limiter(), "token", &buckets(1))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            assert!(
                check(&app.rate_limiter(), "token", &buckets(1))
                    .await
                    .is_err(),
                "hang={hang}"
            );
        }
    }

    #[test]
    fn intervals_and_waits_round_sensibly() {
        assert_eq!(Limit::new(0, 10), None);
        let l = Limit::new(4, 0).unwrap();
        assert_eq!((l.interval(), l.burst), (Duration::from_millis(250), 1));
        assert_eq!(
            Limit::new(MAX_SETTING, 1).unwrap().interval(),
            Duration::from_micros(1)
        );
        let r = |ms| RetryAfter {
            wait: Duration::from_millis(ms),
            subject: Subject::Client,
        };
        assert_eq!(
            (r(1).seconds(), r(1000).seconds(), r(1001).seconds()),
            (1, 1, 2)
        );
    }

    #[test]
    fn ipv6_shares_a_bucket_per_64() {
        let t = TenantId::parse("t").unwrap();
        let s = ServerId::parse("s").unwrap();
        let l = Limit::new(1, 1).unwrap();
        let key = |ip: &str| Bucket::address("token", &t, &s, ip.parse().unwrap(), l).key;
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
        assert_eq!(key("10.0.0.1"), "rl:token:t/s:a:10.0.0.1");
    }

    #[test]
    fn settings_merge_validate_and_resolve() {
        let set = RateLimits {
            client_per_second: Some(5),
            ..RateLimits::default()
        };
        let patch: RateLimitsPatch =
            serde_json::from_str(r#"{"client_per_second":null,"address_burst":7}"#).unwrap();
        let merged = set.merged(&patch);
        assert_eq!(merged.client_per_second, None);
        assert_eq!(merged.address_burst, Some(7));
        assert!(serde_json::from_str::<RateLimits>(r#"{"rate":1}"#).is_err());
        let bad = RateLimits {
            client_burst: Some(0),
            ..RateLimits::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().field,
            "rate_limits.client_burst"
        );
        let defaults = RateLimitDefaults::default();
        let (client, address) = defaults.resolve(&RateLimits {
            address_per_second: Some(0),
            client_burst: Some(3),
            ..RateLimits::default()
        });
        assert_eq!(client, Limit::new(100, 3));
        assert_eq!(address, None);
    }
}
