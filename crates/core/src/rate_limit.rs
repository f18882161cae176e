//! Rate limits: GCRA (the generic cell rate algorithm, a leaky bucket kept as one timestamp
//! per key) in the short-lived store, so every replica sharing a Redis shares the buckets.
//!
//! [`check`] is the one entry point: it takes every bucket a request must fit in and asks the
//! store about all of them in one atomic operation — one Redis round trip — which either
//! admits the request into every bucket or into none. Busy keys far below their limits lease
//! admissions ahead (see `Lease`): one round trip then admits a batch, which the next
//! requests use up without a round trip. It fails open: when the store cannot answer within
//! [`CHECK_TIMEOUT`] the request is served (counted in
//! `tollgate_rate_limit_checks_skipped_total`), and for a second after a failure no request
//! waits for the store at all, so an outage of Redis costs the token path nothing.
//!
//! A limit never refuses traffic below it: a bucket's clock is read inside the store's atomic
//! step, at most one call per key and process asks for a batch (the others wait for it
//! instead of each charging a batch of their own), a batch takes at most half the room left,
//! and admissions leased but never used are handed back on the next call.
//!
//! [`ClientEndpointLimits`] applies the per-server settings ([`RateLimits`], falling back on
//! the process's [`RateLimitDefaults`]) to the three client-authenticated endpoints: the
//! source address before authentication, the client only once it has authenticated, and
//! failed authentications in buckets of their own. [`check_client_endpoint`] serves the
//! browser endpoints, where no client authenticates.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::clock::Clock;
use crate::ids::{ClientId, ServerId, TenantId};
use crate::metrics::Metrics;
use crate::model::rate_limits::RateLimits;
use crate::model::server::Server;
use crate::oauth::OAuthError;
use crate::store::ShortLivedStore;
use crate::store::{Owner, RateCheck, RateDecision, StoreError};

/// The longest a request waits for a store call of the limiter (its own, or the one in flight
/// for its key) before being served unchecked.
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

    /// Time between two requests at the sustained rate (GCRA's emission interval), in whole
    /// microseconds rounded down: the bucket refills at least at `per_second`, never slower.
    #[must_use]
    pub fn interval(self) -> Duration {
        Duration::from_micros(1_000_000 / u64::from(self.per_second.max(1)))
            .max(Duration::from_micros(1))
    }
}

/// What a bucket limits, for metrics: a client, a source address, the failed
/// authentications of either, or something else a caller names (`user`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// A client of a server.
    Client,
    /// A source address (IPv6 by /64).
    Address,
    /// Failed client authentications naming one client.
    ClientFailures,
    /// Failed client authentications from one source address.
    AddressFailures,
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
            Self::ClientFailures => "client_failures",
            Self::AddressFailures => "address_failures",
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
    /// Only consulted: the request needs room for one, but is not charged.
    pub peek: bool,
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
            peek: false,
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
            peek: false,
            tenant: t.clone(),
            server: s.clone(),
        }
    }

    /// The failed client authentications naming `client` at one endpoint of one server.
    #[must_use]
    pub fn client_failures(
        endpoint: &str,
        t: &TenantId,
        s: &ServerId,
        client: &ClientId,
        limit: Limit,
    ) -> Self {
        Self {
            key: format!("rl:{endpoint}:{t}/{s}:fc:{client}"),
            limit,
            subject: Subject::ClientFailures,
            peek: false,
            tenant: t.clone(),
            server: s.clone(),
        }
    }

    /// The failed client authentications from a source address (IPv6: its /64) at one
    /// endpoint of one server.
    #[must_use]
    pub fn address_failures(
        endpoint: &str,
        t: &TenantId,
        s: &ServerId,
        ip: IpAddr,
        limit: Limit,
    ) -> Self {
        Self {
            key: format!("rl:{endpoint}:{t}/{s}:fa:{}", address_key(ip)),
            limit,
            subject: Subject::AddressFailures,
            peek: false,
            tenant: t.clone(),
            server: s.clone(),
        }
    }

    /// This bucket, only consulted.
    #[must_use]
    pub fn peeked(mut self) -> Self {
        self.peek = true;
        self
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

/// The limiter's process memory: leases, and store failures — while it says so, checks are
/// skipped without waiting for the store; afterwards one request probes it while the others
/// keep skipping.
#[derive(Debug)]
pub struct Limiter {
    epoch: Instant,
    /// Milliseconds since `epoch` until which checks are skipped; 0: the store is healthy.
    skip_until_ms: AtomicU64,
    probing: AtomicBool,
    /// Admissions already charged in the store and not yet used, by the buckets a request
    /// falls in (see `Lease`).
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
/// buckets carry until it is handed back, so leases only pay off for traffic that arrives
/// many times within this window.
pub const LEASE_WINDOW: Duration = Duration::from_millis(100);
/// Most admissions leased in one store call.
pub const MAX_LEASE: u32 = 32;
/// Most distinct leases kept; beyond, new keys are checked one request at a time.
const MAX_LEASES: usize = 100_000;
/// How long admissions that lapsed unused are remembered to be handed back: no bucket holds
/// a lapsed lease's charges longer (at most [`MAX_LEASE`] intervals of at most a second).
const REFUND_HORIZON: Duration = Duration::from_secs(MAX_LEASE as u64);

/// Admissions charged in the store ahead of the requests that will use them: a request that
/// finds one left is admitted without a round trip. The size asked for adapts to the traffic:
/// it doubles when a lease was used up within [`LEASE_WINDOW`] and falls back to one when one
/// lapsed, so sporadic traffic is checked one request at a time — exactly — and only traffic
/// far below its limit rides on leases.
///
/// Why leases never refuse traffic below the limit: every store call for a key in this
/// process holds `refill`, so no batch is in flight while another call is decided; requests
/// that find the lease empty wait for that call (no longer than they would wait for their
/// own) and take from what it brought. Whatever lapsed unused is handed back (`refund`) in
/// the next call. So when a call is made, this process holds no admission it charged and did
/// not use, and the store decides exactly as if every admission had been charged on use.
#[derive(Debug)]
struct Lease {
    /// Admissions left.
    left: u32,
    /// When they lapse.
    until: Instant,
    /// What the next store call asks for.
    next_want: u32,
    /// Admissions that lapsed unused, to hand back on the next call.
    refund: u32,
    /// Requests waiting for `refill`.
    waiting: u32,
    /// Held across every store call for this key.
    refill: Arc<tokio::sync::Mutex<()>>,
}

impl Lease {
    fn new(now: Instant) -> Self {
        Self {
            left: 0,
            until: now,
            next_want: 1,
            refund: 0,
            waiting: 0,
            refill: Arc::default(),
        }
    }

    /// Takes one admission if a live one is left; a lapsed remainder becomes a refund.
    fn take(&mut self, now: Instant) -> bool {
        if self.left > 0 {
            if self.until > now {
                self.left -= 1;
                return true;
            }
            self.refund = self.refund.saturating_add(self.left);
            self.left = 0;
            self.next_want = 1;
        }
        false
    }
}

/// What a request found in the leases.
enum Found {
    /// It took a leased admission.
    Admitted,
    /// None left: it must hold this key's refill lock and ask the store.
    Refill(Arc<tokio::sync::Mutex<()>>),
    /// Too many keys are leased: it asks the store alone, for one.
    Untracked,
}

/// What a store call for a key asks.
#[derive(Debug, Clone, Copy)]
struct Ask {
    want: u32,
    refund: u32,
}

/// What the breaker allows for one check.
enum Gate {
    /// Ask the store.
    Ask { probe: bool },
    /// Serve without asking.
    Skip,
}

impl Limiter {
    /// Takes one admission from a live lease of `key`, or says how to ask the store.
    fn find(&self, key: &str, now: Instant) -> Found {
        if let Some(mut lease) = self.leases.get_mut(key) {
            if lease.take(now) {
                return Found::Admitted;
            }
            lease.waiting += 1;
            return Found::Refill(Arc::clone(&lease.refill));
        }
        if self.leases.len() >= MAX_LEASES {
            self.sweep_at(now);
            if self.leases.len() >= MAX_LEASES {
                return Found::Untracked;
            }
        }
        let mut lease = self
            .leases
            .entry(key.to_owned())
            .or_insert_with(|| Lease::new(now));
        if lease.take(now) {
            return Found::Admitted;
        }
        lease.waiting += 1;
        Found::Refill(Arc::clone(&lease.refill))
    }

    /// Under the refill lock: an admission the previous holder brought, or what to ask for.
    fn prepare(&self, key: &str, now: Instant) -> Result<(), Ask> {
        let Some(mut lease) = self.leases.get_mut(key) else {
            return Err(Ask { want: 1, refund: 0 });
        };
        lease.waiting = lease.waiting.saturating_sub(1);
        let lapsed_unused = lease.left > 0 && lease.until <= now;
        if lease.take(now) {
            return Ok(());
        }
        // Used up in time: ask for more; lapsed or new: one at a time. Requests already
        // waiting behind this one are served from the same batch.
        let grow = if lapsed_unused || lease.until <= now {
            1
        } else {
            lease.next_want.saturating_mul(2)
        };
        let want = grow
            .max(lease.waiting.saturating_add(1))
            .clamp(1, MAX_LEASE);
        Err(Ask {
            want,
            refund: std::mem::take(&mut lease.refund),
        })
    }

    /// Under the refill lock, after the store answered (or did not).
    fn settle(&self, key: &str, ask: Ask, granted: Option<u32>, answered: bool, now: Instant) {
        let Some(mut lease) = self.leases.get_mut(key) else {
            return;
        };
        if !answered {
            // The refund was not handed back: keep it for the next call.
            lease.refund = lease.refund.saturating_add(ask.refund);
            return;
        }
        match granted {
            Some(granted) => {
                lease.left = lease.left.saturating_add(granted.saturating_sub(1));
                lease.until = now + LEASE_WINDOW;
                // Granted less than asked: the buckets are getting full; no growth from here.
                lease.next_want = if granted < ask.want { 1 } else { ask.want };
            }
            None => lease.next_want = 1,
        }
    }

    /// Gives up a waiting request's place (it timed out waiting).
    fn stop_waiting(&self, key: &str) {
        if let Some(mut lease) = self.leases.get_mut(key) {
            lease.waiting = lease.waiting.saturating_sub(1);
        }
    }

    /// Turns what is left of `key`'s lease into a refund, so that the next request asks the
    /// store (which then sees whatever changed, e.g. failures just counted).
    fn release(&self, key: &str) {
        if let Some(mut lease) = self.leases.get_mut(key) {
            lease.refund = lease.refund.saturating_add(lease.left);
            lease.left = 0;
            lease.next_want = 1;
        }
    }

    /// Drops lapsed leases (called on an interval).
    pub fn sweep(&self) {
        self.sweep_at(Instant::now());
    }

    fn sweep_at(&self, now: Instant) {
        self.leases.retain(|_, l| {
            l.until > now
                || l.waiting > 0
                || Arc::strong_count(&l.refill) > 1
                || (l.refund > 0 && l.until + REFUND_HORIZON > now)
        });
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
/// the process defaults, the metrics and the clock of leases.
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
    /// When leases lapse (monotonic time).
    pub clock: &'a dyn Clock,
}

/// The key of the lease a request of `buckets` uses.
fn lease_key(buckets: &[Bucket]) -> String {
    match buckets {
        [one] => one.key.clone(),
        many => many
            .iter()
            .map(|b| b.key.as_str())
            .collect::<Vec<_>>()
            .join("|"),
    }
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
    let key = lease_key(buckets);
    let refill = match limiter.find(&key, rl.clock.instant()) {
        Found::Admitted => return Ok(()),
        Found::Refill(refill) => Some(refill),
        Found::Untracked => None,
    };
    let probe = match limiter.gate() {
        Gate::Skip => {
            if refill.is_some() {
                limiter.stop_waiting(&key);
            }
            rl.metrics.rate_limit_skipped(endpoint);
            return Ok(());
        }
        Gate::Ask { probe } => probe,
    };
    // One store call per key at a time: wait for the one in flight (no longer than a store
    // call may take), then use what it brought.
    let (guard, ask) = match refill {
        Some(refill) => {
            let Ok(guard) = tokio::time::timeout(CHECK_TIMEOUT, refill.lock_owned()).await else {
                limiter.stop_waiting(&key);
                if probe {
                    limiter.probing.store(false, Ordering::Release);
                }
                rl.metrics.rate_limit_skipped(endpoint);
                return Ok(());
            };
            match limiter.prepare(&key, rl.clock.instant()) {
                Ok(()) => {
                    if probe {
                        limiter.probing.store(false, Ordering::Release);
                    }
                    return Ok(());
                }
                Err(ask) => (Some(guard), ask),
            }
        }
        None => (None, Ask { want: 1, refund: 0 }),
    };
    let checks: Vec<RateCheck<'_>> = buckets
        .iter()
        .map(|b| RateCheck {
            key: &b.key,
            interval: b.limit.interval(),
            burst: b.limit.burst,
            peek: b.peek,
            refund: if b.peek { 0 } else { ask.refund },
            owner: Owner::new(&b.tenant, &b.server),
        })
        .collect();
    // The store gets its whole deadline, whatever the wait before it: only its own slowness
    // suspends rate limiting.
    let decision =
        tokio::time::timeout(CHECK_TIMEOUT, rl.store.rate_limit(&checks, ask.want)).await;
    let now = rl.clock.instant();
    let settle = |granted: Option<u32>, answered: bool| {
        if guard.is_some() {
            limiter.settle(&key, ask, granted, answered, now);
        }
    };
    let outcome = match decision {
        Ok(Ok(RateDecision::Allowed { granted })) => {
            limiter.succeeded(probe);
            settle(Some(granted), true);
            Ok(())
        }
        Ok(Ok(RateDecision::Limited { index, retry_after })) => {
            limiter.succeeded(probe);
            settle(None, true);
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
            settle(None, true);
            let subject = Subject::Other("share");
            rl.metrics.rate_limited(endpoint, subject.label());
            Err(RetryAfter {
                wait: retry_after,
                subject,
            })
        }
        Ok(Err(e)) => {
            limiter.failed(probe, &e.to_string());
            settle(None, false);
            rl.metrics.rate_limit_skipped(endpoint);
            Ok(())
        }
        Err(_) => {
            limiter.failed(probe, "timed out");
            settle(None, false);
            rl.metrics.rate_limit_skipped(endpoint);
            Ok(())
        }
    };
    drop(guard);
    outcome
}

/// Charges one bucket exactly (no lease), for counting failures. `None` when it had room
/// (or the store did not answer: the limiter fails open), else the wait.
async fn count(
    rl: &RateLimiter<'_>,
    endpoint: &'static str,
    bucket: &Bucket,
) -> Option<RetryAfter> {
    let probe = match rl.limiter.gate() {
        Gate::Skip => return None,
        Gate::Ask { probe } => probe,
    };
    let check = [RateCheck {
        key: &bucket.key,
        interval: bucket.limit.interval(),
        burst: bucket.limit.burst,
        peek: false,
        refund: 0,
        owner: Owner::new(&bucket.tenant, &bucket.server),
    }];
    match tokio::time::timeout(CHECK_TIMEOUT, rl.store.rate_limit(&check, 1)).await {
        Ok(Ok(RateDecision::Allowed { .. })) => {
            rl.limiter.succeeded(probe);
            None
        }
        Ok(Ok(RateDecision::Limited { retry_after, .. })) => {
            rl.limiter.succeeded(probe);
            rl.metrics.rate_limited(endpoint, bucket.subject.label());
            Some(RetryAfter {
                wait: retry_after,
                subject: bucket.subject,
            })
        }
        // Over its share: refused for this tenant alone, never a reason to stop asking.
        Ok(Err(StoreError::OverShare { retry_after })) => {
            rl.limiter.succeeded(probe);
            let subject = Subject::Other("share");
            rl.metrics.rate_limited(endpoint, subject.label());
            Some(RetryAfter {
                wait: retry_after,
                subject,
            })
        }
        Ok(Err(e)) => {
            rl.limiter.failed(probe, &e.to_string());
            None
        }
        Err(_) => {
            rl.limiter.failed(probe, "timed out");
            None
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
    /// Failed client authentications per second, per client and per source address; 0: off.
    pub failures_per_second: u32,
    /// Burst of failed client authentications.
    pub failures_burst: u32,
}

impl Default for RateLimitDefaults {
    fn default() -> Self {
        Self {
            client_per_second: 100,
            client_burst: 200,
            address_per_second: 300,
            address_burst: 600,
            failures_per_second: 10,
            failures_burst: 20,
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

    /// The limit on failed client authentications (per client, and per address).
    #[must_use]
    pub fn failures(&self) -> Option<Limit> {
        Limit::new(self.failures_per_second, self.failures_burst)
    }
}

fn limited(server: &Server, r: RetryAfter) -> OAuthError {
    tracing::info!(
        tenant = %server.tenant_id,
        server = %server.id,
        limit = r.subject.label(),
        retry_after = r.seconds(),
        "request rate limited"
    );
    OAuthError::from(r)
}

/// The limits of a browser endpoint (`authorize`, `login`) of a server: the client named by
/// the request and the source address, in one store round trip.
///
/// # Errors
/// `429 too_many_requests` with the wait.
pub async fn check_client_endpoint(
    rl: &RateLimiter<'_>,
    endpoint: &'static str,
    server: &Server,
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
    check(rl, endpoint, &buckets)
        .await
        .map_err(|r| limited(server, r))
}

/// The rate limits of one request to a client-authenticated endpoint (`token`,
/// `introspect`, `revoke`) of a server, in the order they apply:
///
/// 1. [`before_authentication`](Self::before_authentication): the source address's bucket
///    (charged) and its failed authentications (consulted): an address that has failed too
///    often is refused before its credentials cost argon2 or a signature check.
/// 2. [`authenticated`](Self::authenticated): the client's own bucket, charged only once the
///    client proved who it is — so nobody else can spend it, and nothing anybody else did
///    (failures naming it included) refuses it.
/// 3. or [`failed`](Self::failed): the failure counts against the address and against the
///    client it named; past either budget the answer is `429` instead of `401`.
#[derive(Debug, Clone, Copy)]
pub struct ClientEndpointLimits<'a> {
    rl: RateLimiter<'a>,
    endpoint: &'static str,
    server: &'a Server,
    address: Option<IpAddr>,
}

impl<'a> ClientEndpointLimits<'a> {
    /// The limits of a request from `address` to `endpoint` of `server`.
    #[must_use]
    pub fn new(
        rl: RateLimiter<'a>,
        endpoint: &'static str,
        server: &'a Server,
        address: Option<IpAddr>,
    ) -> Self {
        Self {
            rl,
            endpoint,
            server,
            address,
        }
    }

    fn address_buckets(&self) -> Vec<Bucket> {
        let (t, s) = (&self.server.tenant_id, &self.server.id);
        let Some(ip) = self.address else {
            return Vec::new();
        };
        let (_, address_limit) = self.rl.defaults.resolve(&self.server.rate_limits);
        let mut buckets = Vec::with_capacity(2);
        if let Some(limit) = address_limit {
            buckets.push(Bucket::address(self.endpoint, t, s, ip, limit));
        }
        if let Some(limit) = self.rl.defaults.failures() {
            buckets.push(Bucket::address_failures(self.endpoint, t, s, ip, limit).peeked());
        }
        buckets
    }

    /// Before authentication: the source address.
    ///
    /// # Errors
    /// `429 too_many_requests` with the wait.
    pub async fn before_authentication(&self) -> Result<(), OAuthError> {
        check(&self.rl, self.endpoint, &self.address_buckets())
            .await
            .map_err(|r| limited(self.server, r))
    }

    /// After `client` authenticated: its own bucket.
    ///
    /// # Errors
    /// `429 too_many_requests` with the wait.
    pub async fn authenticated(&self, client: &ClientId) -> Result<(), OAuthError> {
        let (client_limit, _) = self.rl.defaults.resolve(&self.server.rate_limits);
        let Some(limit) = client_limit else {
            return Ok(());
        };
        let bucket = Bucket::client(
            self.endpoint,
            &self.server.tenant_id,
            &self.server.id,
            client,
            limit,
        );
        check(&self.rl, self.endpoint, &[bucket])
            .await
            .map_err(|r| limited(self.server, r))
    }

    /// After a failed authentication (`error`, a `401 invalid_client`) that named `client`
    /// (a registered one, or none): counts it against the address and the client, each in a
    /// bucket of its own, both in one round trip's time. The answer is `error`, or `429` when
    /// the failure did not fit in one of those budgets.
    pub async fn failed(&self, client: Option<&ClientId>, error: OAuthError) -> OAuthError {
        let Some(limit) = self.rl.defaults.failures() else {
            return error;
        };
        let (t, s) = (&self.server.tenant_id, &self.server.id);
        let by_address = self
            .address
            .map(|ip| Bucket::address_failures(self.endpoint, t, s, ip, limit));
        let by_client = client.map(|c| Bucket::client_failures(self.endpoint, t, s, c, limit));
        // The address's next request must consult its failure count in the store, not ride
        // on admissions leased before this failure.
        if self.address.is_some() {
            self.rl.limiter.release(&lease_key(&self.address_buckets()));
        }
        let charge = |b: Option<Bucket>| async move {
            match b {
                Some(b) => count(&self.rl, self.endpoint, &b).await,
                None => None,
            }
        };
        let (a, c) = tokio::join!(charge(by_address), charge(by_client));
        match (a, c) {
            (None, None) => error,
            (Some(r), None) | (None, Some(r)) => limited(self.server, r),
            (Some(x), Some(y)) => limited(self.server, if x.wait >= y.wait { x } else { y }),
        }
    }
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

    use crate::clock::{ManualClock, SystemClock};
    use crate::store::memory::MemoryStore;

    /// A limiter on `store` whose leases read `clock`.
    struct Rig {
        limiter: Limiter,
        store: Arc<dyn ShortLivedStore>,
        defaults: RateLimitDefaults,
        metrics: Metrics,
        clock: Arc<dyn Clock>,
    }

    impl Rig {
        fn new(store: Arc<dyn ShortLivedStore>, clock: Arc<dyn Clock>) -> Self {
            Self {
                limiter: Limiter::default(),
                store,
                defaults: RateLimitDefaults::default(),
                metrics: Metrics::default(),
                clock,
            }
        }

        fn rl(&self) -> RateLimiter<'_> {
            RateLimiter {
                limiter: &self.limiter,
                store: self.store.as_ref(),
                defaults: &self.defaults,
                metrics: &self.metrics,
                clock: self.clock.as_ref(),
            }
        }
    }

    fn unique_bucket(limit: Limit) -> Bucket {
        let t = TenantId::parse("t").unwrap();
        let s = ServerId::parse("s").unwrap();
        let c = ClientId::parse(&format!("c{}", uuid::Uuid::new_v4().simple())).unwrap();
        Bucket::client("token", &t, &s, &c, limit)
    }

    /// GCRA admitting every request of a schedule exactly at `per_second` (its interval in
    /// nanoseconds rounded up: a little stricter than the limit itself).
    struct Reference {
        interval_ns: u128,
        tolerance_ns: u128,
        tat_ns: u128,
    }

    impl Reference {
        fn new(limit: Limit) -> Self {
            let interval_ns = 1_000_000_000u128.div_ceil(u128::from(limit.per_second));
            Self {
                interval_ns,
                tolerance_ns: interval_ns * u128::from(limit.burst),
                tat_ns: 0,
            }
        }

        fn would_admit(&self, now_ns: u128) -> bool {
            self.tat_ns.max(now_ns) + self.interval_ns - now_ns <= self.tolerance_ns
        }

        fn admit(&mut self, now_ns: u128) {
            self.tat_ns = self.tat_ns.max(now_ns) + self.interval_ns;
        }
    }

    fn limit_strategy() -> impl proptest::strategy::Strategy<Value = Limit> {
        use proptest::prelude::*;
        (
            prop_oneof![1..=50u32, 50..=5_000u32, 5_000..=1_000_000u32],
            prop_oneof![1..=4u32, 4..=300u32],
        )
            .prop_map(|(r, b)| Limit::new(r, b).unwrap())
    }

    /// Drives one limiter (leases and all) over the in-process store on a manual clock with a
    /// schedule: at each step the clock moves `gap` (in units of the tighter limit's interval
    /// / 8) and up to `at_once` requests arrive together, of which only those that exactly
    /// GCRA would admit are sent. Every one sent must be admitted.
    fn run_schedule(limits: &[Limit], steps: &[(u64, u32)]) -> Result<(), String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let clock = Arc::new(ManualClock::new(1_700_000_000));
            let store: Arc<dyn ShortLivedStore> = Arc::new(MemoryStore::with_clock(clock.clone()));
            let rig = Arc::new(Rig::new(store, clock.clone()));
            let buckets: Arc<Vec<Bucket>> =
                Arc::new(limits.iter().map(|l| unique_bucket(*l)).collect());
            let mut reference: Vec<Reference> = limits.iter().map(|l| Reference::new(*l)).collect();
            let unit_us = limits
                .iter()
                .map(|l| u64::try_from(l.interval().as_micros()).unwrap())
                .min()
                .unwrap()
                .div_ceil(8)
                .max(1);
            let mut now_ns: u128 = 0;
            let mut sent = 0usize;
            for (step, &(gap, at_once)) in steps.iter().enumerate() {
                clock.advance_by(Duration::from_micros(gap * unit_us));
                now_ns += u128::from(gap * unit_us) * 1000;
                let mut arriving = 0;
                for _ in 0..at_once {
                    if reference.iter().all(|r| r.would_admit(now_ns)) {
                        reference.iter_mut().for_each(|r| r.admit(now_ns));
                        arriving += 1;
                    }
                }
                let mut tasks = tokio::task::JoinSet::new();
                for _ in 0..arriving {
                    let (rig, buckets) = (rig.clone(), buckets.clone());
                    tasks.spawn(async move { check(&rig.rl(), "token", &buckets).await });
                }
                while let Some(answer) = tasks.join_next().await {
                    sent += 1;
                    if let Err(refused) = answer.unwrap() {
                        return Err(format!(
                            "request {sent} (step {step}) refused below the limit: {refused:?}"
                        ));
                    }
                }
            }
            Ok(())
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// The property of issue 10, item 3: a limit never refuses a rate below it, whatever
        /// the arrival schedule, with leases growing, lapsing and being handed back.
        #[test]
        fn never_refuses_a_schedule_below_the_limit(
            limits in proptest::collection::vec(limit_strategy(), 1..=2),
            steps in proptest::collection::vec(
                (proptest::prop_oneof![0..=2u64, 0..=16u64, 0..=200u64, 1_000..=2_000_000u64], 1..=6u32),
                1..300,
            ),
        ) {
            if let Err(e) = run_schedule(&limits, &steps) {
                proptest::prop_assert!(false, "{:?}: {}", limits, e);
            }
        }
    }

    #[test]
    fn leases_that_lapse_unused_are_handed_back() {
        // 10/s with a burst of 20: bursts of 20 leased in batches, spaced so that batches
        // lapse half used. Charging those leftovers for nothing (as before) refused the
        // schedule within a few rounds; handed back, every round fits.
        let limit = Limit::new(10, 20).unwrap();
        let mut steps = Vec::new();
        for _ in 0..40 {
            // 2 s of quiet (the bucket is full again), then 20 within 60 ms.
            steps.push((160, 1));
            for _ in 0..19 {
                steps.push((0, 1));
            }
        }
        run_schedule(&[limit], &steps).unwrap();
    }

    /// `tasks` tasks sending `each` requests as fast as they can through one limiter, into a
    /// bucket whose burst holds them all: every one must be admitted, and the bucket is then
    /// full (the limiter was not looser either).
    async fn concurrent_requests_fit_exactly(
        store: Arc<dyn ShortLivedStore>,
        clock: Arc<dyn Clock>,
        per_second: u32,
    ) {
        let (tasks, each) = (32u32, 40u32);
        let limit = Limit::new(per_second, tasks * each).unwrap();
        let rig = Arc::new(Rig::new(store, clock));
        let bucket = Arc::new(vec![unique_bucket(limit)]);
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let (rig, bucket) = (rig.clone(), bucket.clone());
            set.spawn(async move {
                let mut refused = 0u32;
                for _ in 0..each {
                    refused += u32::from(check(&rig.rl(), "token", &bucket).await.is_err());
                }
                refused
            });
        }
        let mut refused = 0;
        while let Some(r) = set.join_next().await {
            refused += r.unwrap();
        }
        assert_eq!(
            refused,
            0,
            "{refused} of {} refused below the limit ({per_second}/s)",
            tasks * each
        );
        assert!(
            !rig.metrics
                .render()
                .contains("tollgate_rate_limit_checks_skipped_total{"),
            "some checks were skipped"
        );
        if per_second == 1 {
            // Nothing refilled worth counting: the bucket is (about) full now.
            let mut extra = 0;
            while check(&rig.rl(), "token", &bucket).await.is_ok() {
                extra += 1;
                assert!(extra <= 3, "admitted past the burst");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_tasks_one_limiter_no_refusal_below_the_limit_in_memory() {
        for per_second in [1, 1_000_000] {
            concurrent_requests_fit_exactly(
                Arc::new(MemoryStore::new()),
                Arc::new(SystemClock),
                per_second,
            )
            .await;
            // A clock standing still: every request at the same instant.
            let frozen = Arc::new(ManualClock::new(1_700_000_000));
            concurrent_requests_fit_exactly(
                Arc::new(MemoryStore::with_clock(frozen.clone())),
                frozen,
                per_second,
            )
            .await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_tasks_one_limiter_no_refusal_below_the_limit_on_redis() {
        let Some(store) = crate::store::contract::redis().await else {
            return;
        };
        for per_second in [1, 1_000_000] {
            concurrent_requests_fit_exactly(store.clone(), Arc::new(SystemClock), per_second).await;
        }
    }

    /// The limits of a client endpoint of a server, with the given settings.
    fn endpoint_rig(store: Arc<dyn ShortLivedStore>, client_burst: u32) -> (Rig, Server) {
        let t = TenantId::parse(&format!(
            "t{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ))
        .unwrap();
        let mut server = crate::store::contract::server(&t, "main");
        server.rate_limits = RateLimits {
            client_per_second: Some(1),
            client_burst: Some(client_burst),
            address_per_second: Some(1000),
            address_burst: Some(1000),
        };
        let mut rig = Rig::new(store, Arc::new(SystemClock));
        rig.defaults.failures_per_second = 1;
        rig.defaults.failures_burst = 3;
        (rig, server)
    }

    async fn failures_never_refuse_an_authenticated_client(store: Arc<dyn ShortLivedStore>) {
        let (rig, server) = endpoint_rig(store, 5);
        let client = ClientId::parse("victim").unwrap();
        let attacker: IpAddr = "198.51.100.66".parse().unwrap();
        let real: IpAddr = "203.0.113.7".parse().unwrap();
        let from = |ip| ClientEndpointLimits::new(rig.rl(), "token", &server, Some(ip));
        // Wrong secrets naming the client: 401 within the failure budget, then 429, and the
        // attacker's address is refused before authentication.
        let mut answers = Vec::new();
        for _ in 0..50 {
            if let Err(e) = from(attacker).before_authentication().await {
                answers.push(e.status);
                continue;
            }
            let e = from(attacker)
                .failed(Some(&client), OAuthError::invalid_client("no"))
                .await;
            answers.push(e.status);
        }
        assert_eq!(&answers[..3], &[401, 401, 401], "{answers:?}");
        assert!(answers[3..].iter().all(|s| *s == 429), "{answers:?}");
        // The client itself, authenticated, keeps its whole bucket: 5 of 5.
        for n in 0..5 {
            from(real).before_authentication().await.unwrap();
            from(real)
                .authenticated(&client)
                .await
                .unwrap_or_else(|e| panic!("request {n} of the real client refused: {e:?}"));
        }
        // Its own sixth is over its own limit.
        assert_eq!(
            from(real).authenticated(&client).await.unwrap_err().status,
            429
        );
        // A failure from a fresh address against the attacked client is 429 at once (the
        // client's failure budget is spent), but the address was not refused beforehand.
        let other: IpAddr = "192.0.2.99".parse().unwrap();
        from(other).before_authentication().await.unwrap();
        assert_eq!(
            from(other)
                .failed(Some(&client), OAuthError::invalid_client("no"))
                .await
                .status,
            429
        );
        let m = rig.metrics.render();
        for label in ["address_failures", "client_failures"] {
            assert!(
                m.contains(&format!(
                    r#"tollgate_rate_limited_total{{endpoint="token",limit="{label}"}}"#
                )),
                "{label}: {m}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_authentications_are_counted_apart_in_memory() {
        failures_never_refuse_an_authenticated_client(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_authentications_are_counted_apart_on_redis() {
        if let Some(store) = crate::store::contract::redis().await {
            failures_never_refuse_an_authenticated_client(store).await;
        }
    }

    #[tokio::test]
    async fn a_failure_ends_the_address_lease() {
        // A busy address leases admissions; once it fails, its next request asks the store,
        // which knows its failure budget is spent.
        let (rig, server) = endpoint_rig(Arc::new(MemoryStore::new()), 5);
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let limits = ClientEndpointLimits::new(rig.rl(), "token", &server, Some(ip));
        for _ in 0..20 {
            limits.before_authentication().await.unwrap();
        }
        for _ in 0..3 {
            let _ = limits.failed(None, OAuthError::invalid_client("no")).await;
        }
        assert_eq!(
            limits.before_authentication().await.unwrap_err().status,
            429
        );
    }

    /// The scenario of issue 10, item 3: 32 connections of one client, each sending a token
    /// request every millisecond or so, against limits of 1,000,000/s with the default
    /// bursts (200 per client, 600 per address): far below the limit, so never a refusal.
    async fn paced_connections_far_below_the_limit(store: Arc<dyn ShortLivedStore>) {
        let rig = Arc::new(Rig::new(store, Arc::new(SystemClock)));
        let t = TenantId::parse("t").unwrap();
        let s = ServerId::parse("s").unwrap();
        let c = ClientId::parse(&format!("c{}", uuid::Uuid::new_v4().simple())).unwrap();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let address = Bucket::address("token", &t, &s, ip, Limit::new(1_000_000, 600).unwrap());
        let address = Bucket {
            key: format!("{}-{}", address.key, uuid::Uuid::new_v4().simple()),
            ..address
        };
        let steps = Arc::new([
            vec![address],
            vec![Bucket::client(
                "token",
                &t,
                &s,
                &c,
                Limit::new(1_000_000, 200).unwrap(),
            )],
        ]);
        let start = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..32 {
            let (rig, steps) = (rig.clone(), steps.clone());
            set.spawn(async move {
                let (mut sent, mut refused) = (0u32, 0u32);
                while start.elapsed() < Duration::from_secs(2) {
                    for buckets in steps.iter() {
                        refused += u32::from(check(&rig.rl(), "token", buckets).await.is_err());
                    }
                    sent += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                (sent, refused)
            });
        }
        let (mut sent, mut refused) = (0, 0);
        while let Some(r) = set.join_next().await {
            let (a, b) = r.unwrap();
            sent += a;
            refused += b;
        }
        assert!(sent > 1000, "only {sent} requests");
        assert_eq!(refused, 0, "{refused} refusals in {sent} requests");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn paced_connections_far_below_the_limit_are_never_refused() {
        paced_connections_far_below_the_limit(Arc::new(MemoryStore::new())).await;
        if let Some(store) = crate::store::contract::redis().await {
            paced_connections_far_below_the_limit(store).await;
        }
    }
}
