//! The Redis short-lived store, shared by every replica: `SET NX PX` for single-use keys,
//! `GETDEL` for atomic take, and a small script for counters with a TTL. Every call has a
//! deadline; a slow or absent Redis is [`StoreError::Unavailable`], never a hang.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{ShortLivedStore, StoreError};

/// Deadline for one Redis command.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Prefix of every key Tollgate writes.
const PREFIX: &str = "tollgate:";

/// Redis-backed store. Cloning shares the multiplexed connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    incr: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisStore")
    }
}

fn unavailable(e: &redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {:?}", e.kind()))
}

fn ms(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// Connects (with reconnection handled by the connection manager).
    ///
    /// # Errors
    /// Bad URL, or Redis unreachable within the deadline.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|_| StoreError::Unavailable("invalid Redis URL".into()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(COMMAND_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(2);
        let conn = tokio::time::timeout(
            COMMAND_TIMEOUT * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::Unavailable("redis: connection timed out".into()))?
        .map_err(|e| unavailable(&e))?;
        let incr = Script::new(
            "local v = redis.call('INCR', KEYS[1]) \
             if v == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end \
             return v",
        );
        Ok(Self { conn, incr })
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

    async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: String = self.run(redis::cmd("PING").query_async(&mut c)).await?;
        Ok(())
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}
