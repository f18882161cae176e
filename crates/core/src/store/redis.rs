//! The Redis short-lived store, shared by every replica: `SET NX PX` for single-use keys,
//! `GETDEL` for atomic take, a small script for counters with a TTL, and one for GCRA rate
//! limiting over several buckets at once (one round trip, atomic, on Redis's clock). Every call has a
//! deadline; a slow or absent Redis is [`StoreError::Unavailable`], never a hang.
//!
//! Shares ([`Shares`]): each tenant and each server has a sorted set of the keys it holds,
//! scored by when each expires (`tollgate:share:t:{tenant}`, `tollgate:share:s:{tenant}/{server}`).
//! Every write that may create an entry is one script that drops the lapsed members, refuses
//! a new key when a set is full, and otherwise writes the entry and its members together, so
//! the count holds across replicas without a race; taking or deleting an entry removes its
//! members in the same script. A member whose key Redis evicted early lingers until its score
//! passes, never longer.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::{Owner, RateCheck, RateDecision, Shares, ShortLivedStore, StoreError};

/// Deadline for one Redis command, as the caller sees it (waiting for a reconnection included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// The connection's own deadlines for connecting and for an answer: shorter than
/// [`COMMAND_TIMEOUT`], so that redis-rs sees its own failure (and reconnects when the
/// connection is gone) before our deadline drops the command.
const CONNECTION_TIMEOUT: Duration = Duration::from_millis(1500);
/// Prefix of every key Tollgate writes.
const PREFIX: &str = "tollgate:";

/// Redis-backed store. Cloning shares the multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    put: Script,
    take: Script,
    remove: Script,
    incr: Script,
    gcra: Script,
    shares: Shares,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisStore")
    }
}

fn unavailable(e: &redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {:?}", e.kind()))
}

/// A failed connection: a configuration error when retrying cannot fix it, else an outage.
fn connect_failure(e: &redis::RedisError) -> StoreError {
    use redis::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidClientConfig => StoreError::Config(format!(
            "Redis refuses the configuration: {}",
            e.detail().unwrap_or("invalid client configuration")
        )),
        ErrorKind::AuthenticationFailed => {
            StoreError::Config("Redis rejected the credentials in the URL".into())
        }
        _ => match certificate_error(e) {
            Some(why) => StoreError::Config(format!(
                "the Redis server's TLS certificate is not trusted ({why}); see --redis-ca-file"
            )),
            None => unavailable(e),
        },
    }
}

/// The rustls verdict on the server certificate, if that is why the connection failed.
fn certificate_error(e: &redis::RedisError) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return matches!(tls, rustls::Error::InvalidCertificate(_)).then(|| tls.to_string());
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return matches!(tls, rustls::Error::InvalidCertificate(_))
                    .then(|| tls.to_string());
            }
        }
        source = err.source();
    }
    None
}

fn ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// Connects (with reconnection handled by the connection manager); `rediss://` with the
    /// system's roots (or `--redis-ca-file`),
    /// with the default [`Shares`].
    ///
    /// # Errors
    /// Bad URL, or Redis unreachable within the deadline.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, None).await
    }

    /// Connects; for `rediss://` (TLS through rustls, the certificate always verified),
    /// `ca_pem` replaces the system's roots when given.
    ///
    /// # Errors
    /// [`StoreError::Config`] when retrying cannot help (a URL redis-rs refuses, such as
    /// `#insecure`; an untrusted certificate; a rejected password), else
    /// [`StoreError::Unavailable`].
    pub async fn connect_with(url: &str, ca_pem: Option<&[u8]>) -> Result<Self, StoreError> {
        // The URL may hold a password: errors name the kind, never the text redis-rs quotes.
        let client = match ca_pem {
            None => redis::Client::open(url),
            Some(pem) => redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
        }
        .map_err(|e| StoreError::Config(format!("invalid Redis URL ({:?})", e.kind())))?;
        // One reconnection attempt retried once, at most 200 ms apart. redis-rs's defaults
        // (6 retries, its `factor` multiplying backon's 1 s base delay) keep one reconnection
        // going for minutes while every command waits on it: Redis would be back long before
        // Tollgate noticed. A failed reconnection is retried by the next command instead.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(CONNECTION_TIMEOUT)
            .set_response_timeout(CONNECTION_TIMEOUT)
            .set_number_of_retries(1)
            .set_factor(1)
            .set_max_delay(200);
        let conn = tokio::time::timeout(
            COMMAND_TIMEOUT * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::Unavailable("redis: connection timed out".into()))?
        .map_err(|e| connect_failure(&e))?;
        Ok(Self {
            conn,
            put: Script::new(&format!("{SHARE_LUA}{PUT_SCRIPT}")),
            take: Script::new(TAKE_SCRIPT),
            remove: Script::new(REMOVE_SCRIPT),
            incr: Script::new(&format!("{SHARE_LUA}{INCR_SCRIPT}")),
            gcra: Script::new(&format!("{SHARE_LUA}{GCRA_SCRIPT}")),
            shares: Shares::default(),
        })
    }

    /// The same store bounded by `shares`.
    #[must_use]
    pub fn with_shares(mut self, shares: Shares) -> Self {
        self.shares = shares;
        self
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(&e)),
            Err(_) => Err(StoreError::Unavailable("redis: command timed out".into())),
        }
    }

    /// Runs a script over an entry and its owner's two sets: `KEYS = {entry, tenant set,
    /// server set}`, `ARGV = args…, tenant share, server share`.
    fn invocation<'s>(
        &self,
        script: &'s Script,
        owner: Owner<'_>,
        k: &str,
    ) -> redis::ScriptInvocation<'s> {
        let mut inv = script.prepare_invoke();
        inv.key(key(k));
        let (tenant_set, server_set) = share_keys(owner);
        inv.key(tenant_set).key(server_set);
        inv
    }
}

/// The sorted sets counting an owner's entries.
fn share_keys(owner: Owner<'_>) -> (String, String) {
    (
        format!("{PREFIX}share:t:{}", owner.tenant),
        format!("{PREFIX}share:s:{}/{}", owner.tenant, owner.server),
    )
}

fn over_share(wait_ms: u64) -> StoreError {
    StoreError::OverShare {
        retry_after: Duration::from_millis(wait_ms.max(1)),
    }
}

/// Functions the writing scripts share. `room(entry, tz, sz, now, tmax, smax, extra)`: whether
/// `entry`, when it is not counted yet, fits in the tenant set `tz` and the server set `sz`
/// beside `extra` other new entries of this call (lapsed members are dropped first); else
/// false and the milliseconds until the fuller set's oldest member lapses. `count(entry, tz,
/// sz, exp, ttl)`: records `entry` in both sets until `exp` (milliseconds on Redis's clock),
/// and keeps each set at least `ttl` ms longer.
const SHARE_LUA: &str = r"
local function clock_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function room(entry, tz, sz, now, tmax, smax, extra)
  if redis.call('ZSCORE', sz, entry) then return true, 0 end
  redis.call('ZREMRANGEBYSCORE', tz, '-inf', now)
  redis.call('ZREMRANGEBYSCORE', sz, '-inf', now)
  local full = nil
  if redis.call('ZCARD', tz) + extra >= tmax then full = tz
  elseif redis.call('ZCARD', sz) + extra >= smax then full = sz end
  if not full then return true, 0 end
  local first = redis.call('ZRANGE', full, 0, 0, 'WITHSCORES')
  local wait = 1000
  if first[2] then wait = math.max(tonumber(first[2]) - now, 1) end
  return false, wait
end
local function count(entry, tz, sz, exp, ttl)
  redis.call('ZADD', tz, string.format('%d', exp), entry)
  redis.call('ZADD', sz, string.format('%d', exp), entry)
  if redis.call('PTTL', tz) < ttl then redis.call('PEXPIRE', tz, ttl) end
  if redis.call('PTTL', sz) < ttl then redis.call('PEXPIRE', sz, ttl) end
end
";

/// `SET` (with `NX` when ARGV[3] is `1`) within the shares. ARGV: value, TTL in ms, nx,
/// tenant share, server share. `{1, 0}` stored, `{0, 0}` present already (NX), `{2, wait}`
/// over a share.
const PUT_SCRIPT: &str = r"
local ttl = tonumber(ARGV[2])
if ARGV[3] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then return {0, 0} end
local now = clock_ms()
local ok, wait = room(KEYS[1], KEYS[2], KEYS[3], now, tonumber(ARGV[4]), tonumber(ARGV[5]), 0)
if not ok then return {2, wait} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
count(KEYS[1], KEYS[2], KEYS[3], now + ttl, ttl)
return {1, 0}
";

/// `GETDEL` and the entry's members.
const TAKE_SCRIPT: &str = r"
local v = redis.call('GETDEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('ZREM', KEYS[3], KEYS[1])
return v
";

/// `DEL` and the entry's members.
const REMOVE_SCRIPT: &str = r"
local n = redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('ZREM', KEYS[3], KEYS[1])
return n
";

/// `INCR`, starting the TTL (ARGV[1], ms) when it creates the counter, which must fit in the
/// shares (ARGV[2], ARGV[3]). `{value, 0}`, or `{0, wait}` over a share.
const INCR_SCRIPT: &str = r"
local ttl = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[1]) == 1 then return {redis.call('INCR', KEYS[1]), 0} end
local now = clock_ms()
local ok, wait = room(KEYS[1], KEYS[2], KEYS[3], now, tonumber(ARGV[2]), tonumber(ARGV[3]), 0)
if not ok then return {0, wait} end
local v = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ttl)
count(KEYS[1], KEYS[2], KEYS[3], now + ttl, ttl)
return {v, 0}
";

/// GCRA over every bucket, all or nothing (see `store::gcra_room` and `store::batch_limit`,
/// which this mirrors). KEYS holds the n bucket keys, then each bucket's tenant and server sets
/// (2n more). ARGV holds, per bucket, the emission interval in microseconds, the burst, whether
/// the bucket is only consulted (`1`) or charged (`0`), and the admissions to hand back first;
/// then how many requests the caller would like admitted at once, then the tenant and server
/// shares. Each bucket key holds its theoretical arrival time in microseconds on Redis's clock
/// (`TIME`, read inside the script, so every bucket's time only moves forward), expiring when
/// the bucket is full again. Returns `{0, granted}` when admitted (as many as every charged
/// bucket can take, extra ones out of half the room left, at most the wish, at least one),
/// `{index (1-based) of the fullest bucket, wait in microseconds}` when refused (refunds hold
/// either way), and `{n + 1, wait in ms}` when a new charged bucket does not fit in its owner's
/// share (nothing charged). Times are integers below 2^53, exact in Lua's doubles; `%d` keeps
/// them out of exponent notation.
const GCRA_SCRIPT: &str = r"
local n = #KEYS / 3
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now_ms = math.floor(now / 1000)
local want = tonumber(ARGV[4 * n + 1])
local tmax, smax = tonumber(ARGV[4 * n + 2]), tonumber(ARGV[4 * n + 3])
local function put(i, tat)
  local tz, sz = KEYS[n + 2 * i - 1], KEYS[n + 2 * i]
  if tat <= now then
    redis.call('DEL', KEYS[i])
    redis.call('ZREM', tz, KEYS[i])
    redis.call('ZREM', sz, KEYS[i])
  else
    local ttl = math.ceil((tat - now) / 1000)
    if ttl < 1 then ttl = 1 end
    redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', string.format('%d', ttl))
    count(KEYS[i], tz, sz, now_ms + ttl, ttl)
  end
end
local fresh = {}
for i = 1, n do
  local tz, sz = KEYS[n + 2 * i - 1], KEYS[n + 2 * i]
  if ARGV[4 * i - 1] ~= '1' and redis.call('EXISTS', KEYS[i]) == 0 then
    local ok, wait = room(KEYS[i], tz, sz, now_ms, tmax, smax, fresh[sz] or 0)
    if not ok then return {n + 1, wait} end
    fresh[sz] = (fresh[sz] or 0) + 1
  end
end
local bases, intervals, peeks, refunds = {}, {}, {}, {}
local worst, worst_i = 0, 0
local granted = want
for i = 1, n do
  local interval = tonumber(ARGV[4 * i - 3])
  local burst = tonumber(ARGV[4 * i - 2])
  local peek = ARGV[4 * i - 1] == '1'
  local refund = tonumber(ARGV[4 * i])
  if peek then refund = 0 end
  local base = (tonumber(redis.call('GET', KEYS[i]) or '0') or 0) - refund * interval
  if base < now then base = now end
  local fits = math.floor((interval * burst - (base - now)) / interval)
  if fits < 1 then
    local over = base + interval - now - interval * burst
    if over > worst then worst = over; worst_i = i end
  elseif not peek then
    local most = 1 + math.floor((fits - 1) / 2)
    if most < granted then granted = most end
  end
  bases[i] = base
  intervals[i] = interval
  peeks[i] = peek
  refunds[i] = refund
end
if worst_i > 0 then
  for i = 1, n do
    if refunds[i] > 0 then put(i, bases[i]) end
  end
  return {worst_i, worst}
end
for i = 1, n do
  if not peeks[i] then put(i, bases[i] + granted * intervals[i]) end
end
return {0, granted}
";

fn key(k: &str) -> String {
    format!("{PREFIX}{k}")
}

#[async_trait]
impl ShortLivedStore for RedisStore {
    async fn put_if_absent(
        &self,
        owner: Owner<'_>,
        k: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.write(owner, k, value, ttl, true).await
    }

    async fn put(
        &self,
        owner: Owner<'_>,
        k: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        self.write(owner, k, value, ttl, false).await.map(|_| ())
    }

    async fn get(&self, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn.clone();
        self.run(redis::AsyncCommands::get(&mut c, key(k))).await
    }

    async fn take(&self, owner: Owner<'_>, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn.clone();
        let inv = self.invocation(&self.take, owner, k);
        self.run(inv.invoke_async(&mut c)).await
    }

    async fn remove(&self, owner: Owner<'_>, k: &str) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let inv = self.invocation(&self.remove, owner, k);
        let n: u64 = self.run(inv.invoke_async(&mut c)).await?;
        Ok(n > 0)
    }

    async fn incr(&self, owner: Owner<'_>, k: &str, ttl: Duration) -> Result<u64, StoreError> {
        let mut c = self.conn.clone();
        let mut inv = self.invocation(&self.incr, owner, k);
        inv.arg(ms(ttl))
            .arg(self.shares.tenant_entries)
            .arg(self.shares.server_entries);
        let (v, wait): (u64, u64) = self.run(inv.invoke_async(&mut c)).await?;
        if v == 0 {
            return Err(over_share(wait));
        }
        Ok(v)
    }

    async fn rate_limit(
        &self,
        checks: &[RateCheck<'_>],
        want: u32,
    ) -> Result<RateDecision, StoreError> {
        if checks.is_empty() {
            return Ok(RateDecision::Allowed {
                granted: want.max(1),
            });
        }
        let mut c = self.conn.clone();
        let mut inv = self.gcra.prepare_invoke();
        for check in checks {
            inv.key(key(check.key));
        }
        for check in checks {
            let (tenant_set, server_set) = share_keys(check.owner);
            inv.key(tenant_set).key(server_set);
        }
        for check in checks {
            let interval = u64::try_from(check.interval.as_micros())
                .unwrap_or(u64::MAX)
                .max(1);
            inv.arg(interval)
                .arg(check.burst.max(1))
                .arg(u8::from(check.peek))
                .arg(check.refund);
        }
        inv.arg(want.max(1))
            .arg(self.shares.tenant_entries)
            .arg(self.shares.server_entries);
        let (index, wait): (u64, u64) = self.run(inv.invoke_async(&mut c)).await?;
        Ok(match usize::try_from(index) {
            Ok(0) => RateDecision::Allowed {
                granted: u32::try_from(wait).unwrap_or(1).clamp(1, want.max(1)),
            },
            Ok(i) if i <= checks.len() => RateDecision::Limited {
                index: i - 1,
                retry_after: Duration::from_micros(wait),
            },
            Ok(i) if i == checks.len() + 1 => return Err(over_share(wait)),
            _ => {
                return Err(StoreError::Corrupt(
                    "rate limit script answered nonsense".into(),
                ))
            }
        })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: String = self.run(redis::cmd("PING").query_async(&mut c)).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

impl RedisStore {
    async fn write(
        &self,
        owner: Owner<'_>,
        k: &str,
        value: &[u8],
        ttl: Duration,
        nx: bool,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let mut inv = self.invocation(&self.put, owner, k);
        inv.arg(value)
            .arg(ms(ttl))
            .arg(u8::from(nx))
            .arg(self.shares.tenant_entries)
            .arg(self.shares.server_entries);
        let (status, wait): (u64, u64) = self.run(inv.invoke_async(&mut c)).await?;
        match status {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(over_share(wait)),
        }
    }
}
