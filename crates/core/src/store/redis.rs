//! The Redis short-lived store, shared by every replica: `SET NX PX` for single-use keys,
//! `GETDEL` for atomic take, a small script for counters with a TTL, and one for GCRA rate
//! limiting over several buckets at once (one round trip, atomic, on Redis's clock). Every call has a
//! deadline; a slow or absent Redis is [`StoreError::Unavailable`], never a hang.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{RateCheck, RateDecision, ShortLivedStore, StoreError};

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
    incr: Script,
    gcra: Script,
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
    /// system's roots.
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
        let incr = Script::new(
            "local v = redis.call('INCR', KEYS[1]) \
             if v == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
             return v",
        );
        Ok(Self {
            conn,
            incr,
            gcra: Script::new(GCRA_SCRIPT),
        })
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
}

/// GCRA over every bucket in KEYS, all or nothing (see `store::gcra_room` and
/// `store::batch_limit`, which this mirrors). ARGV holds, per key, the emission interval in
/// microseconds, the burst, whether the bucket is only consulted (`1`) or charged (`0`), and
/// the admissions to hand back first; then how many requests the caller would like admitted
/// at once. Each key holds its bucket's theoretical arrival time in microseconds on Redis's
/// clock (`TIME`, read inside the script, so every bucket's time only moves forward),
/// expiring when the bucket is full again. Returns `{0, granted}` when admitted (as many as
/// every charged bucket can take, extra ones out of half the room left, at most the wish, at
/// least one), else `{index (1-based) of the fullest bucket, wait in microseconds}`; refunds
/// hold either way. Times are integers below 2^53, exact in Lua's doubles; `%d` keeps them out
/// of exponent notation.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local want = tonumber(ARGV[#ARGV])
local bases, intervals, peeks, refunds = {}, {}, {}, {}
local worst, worst_i = 0, 0
local granted = want
local function put(i, tat)
  if tat <= now then
    redis.call('DEL', KEYS[i])
  else
    local ttl = math.ceil((tat - now) / 1000)
    if ttl < 1 then ttl = 1 end
    redis.call('SET', KEYS[i], string.format('%d', tat), 'PX', string.format('%d', ttl))
  end
end
for i = 1, #KEYS do
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
  for i = 1, #KEYS do
    if refunds[i] > 0 then put(i, bases[i]) end
  end
  return {worst_i, worst}
end
for i = 1, #KEYS do
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
        k: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let opts = redis::SetOptions::default()
            .conditional_set(redis::ExistenceCheck::NX)
            .with_expiration(redis::SetExpiry::PX(ms(ttl)));
        let r: Option<String> = self.run(c.set_options(key(k), value, opts)).await?;
        Ok(r.is_some())
    }

    async fn put(&self, k: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        self.run(c.pset_ex::<_, _, ()>(key(k), value, ms(ttl)))
            .await
    }

    async fn get(&self, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn.clone();
        self.run(c.get(key(k))).await
    }

    async fn take(&self, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut c = self.conn.clone();
        self.run(c.get_del(key(k))).await
    }

    async fn remove(&self, k: &str) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let n: u64 = self.run(c.del(key(k))).await?;
        Ok(n > 0)
    }

    async fn incr(&self, k: &str, ttl: Duration) -> Result<u64, StoreError> {
        let mut c = self.conn.clone();
        let mut inv = self.incr.key(key(k));
        inv.arg(ms(ttl));
        self.run(inv.invoke_async(&mut c)).await
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
            let interval = u64::try_from(check.interval.as_micros())
                .unwrap_or(u64::MAX)
                .max(1);
            inv.key(key(check.key))
                .arg(interval)
                .arg(check.burst.max(1))
                .arg(u8::from(check.peek))
                .arg(check.refund);
        }
        inv.arg(want.max(1));
        let (index, wait): (u64, u64) = self.run(inv.invoke_async(&mut c)).await?;
        Ok(match usize::try_from(index) {
            Ok(0) => RateDecision::Allowed {
                granted: u32::try_from(wait).unwrap_or(1).clamp(1, want.max(1)),
            },
            Ok(i) if i <= checks.len() => RateDecision::Limited {
                index: i - 1,
                retry_after: Duration::from_micros(wait),
            },
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
