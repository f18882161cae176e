//! The durable repository on sqlx, for SQLite (the embedded default) and PostgreSQL
//! (production). Both speak the same SQL — `$N` placeholders work in both — so one macro
//! generates both implementations from one text and the two cannot drift apart.
//!
//! Queries are checked at run time rather than with `query!`: sqlx's compile-time checking
//! binds a crate to one database, and these queries must hold for two. The repository
//! contract suite (`store::contract`) runs every query against both backends instead.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;

use super::{AdminRepo, ClientRepo, KeyRepo, Page, Repository, ServerRepo, StoreError, TenantRepo};
use crate::client::{Client, ClientMetadata, StoredSecret};
use crate::ids::{ClientId, ServerId, TenantId};
use crate::keys::{KeyRecord, KeyStatus};
use crate::rate_limit::RateLimits;
use crate::server::{AuthMethod, Server, SigningAlg};
use crate::tenant::Tenant;

fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn parse_id<T>(f: fn(&str) -> Result<T, crate::ids::IdError>, s: &str) -> Result<T, StoreError> {
    f(s).map_err(|_| corrupt("stored id is invalid"))
}

fn page<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> String) -> Page<T> {
    let next = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(id)
    } else {
        None
    };
    Page { items, next }
}

fn secret_columns(s: &StoredSecret) -> (&'static str, Option<&str>, Option<&[u8]>) {
    match s {
        StoredSecret::None => ("none", None, None),
        StoredSecret::Hash(h) => ("hash", Some(h.as_str()), None),
        StoredSecret::Sealed(b) => ("sealed", None, Some(b.as_slice())),
    }
}

/// The `rate_limits` column: JSON, or NULL when every limit takes the default.
fn rate_limits_column(r: &RateLimits) -> Result<Option<String>, StoreError> {
    if r.is_default() {
        return Ok(None);
    }
    serde_json::to_string(r)
        .map(Some)
        .map_err(|_| corrupt("rate_limits"))
}

/// Reads the column leniently: members a later release may add are ignored, so a rolling
/// upgrade's older processes keep reading the servers it writes.
fn rate_limits_from(column: Option<String>) -> Result<RateLimits, StoreError> {
    let Some(text) = column else {
        return Ok(RateLimits::default());
    };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|_| corrupt("rate_limits"))?;
    let member = |name: &str| {
        value
            .get(name)
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    Ok(RateLimits {
        client_per_second: member("client_per_second"),
        client_burst: member("client_burst"),
        address_per_second: member("address_per_second"),
        address_burst: member("address_burst"),
    })
}

const TENANT_COLS: &str = "id, name, created_at, updated_at";
const SERVER_COLS: &str = "tenant_id, id, name, access_token_ttl, refresh_token_ttl, signing_alg, default_audience, allowed_auth_methods, created_at, updated_at, certificate_bound_tokens, key_rotation_period, rate_limits";
const CLIENT_COLS: &str = "tenant_id, server_id, client_id, metadata, secret_kind, secret_hash, secret_sealed, secret_expires_at, issued_at, updated_at";
const KEY_COLS: &str =
    "tenant_id, server_id, kid, alg, status, sealed_private, public_jwk, created_at, retire_at";

macro_rules! sql_repository {
    ($name:ident, $pool:ty, $row:ty, $backend:literal, $migrator:literal) => {
        /// The repository on this backend.
        #[derive(Debug, Clone)]
        pub struct $name {
            pool: $pool,
        }

        impl $name {
            /// Wraps an existing pool.
            #[must_use]
            pub fn from_pool(pool: $pool) -> Self {
                Self { pool }
            }

            /// The underlying pool.
            #[must_use]
            pub fn pool(&self) -> &$pool {
                &self.pool
            }

            fn tenant(row: &$row) -> Result<Tenant, StoreError> {
                Ok(Tenant {
                    id: parse_id(TenantId::parse, &row.try_get::<String, _>("id").map_err(map_err)?)?,
                    name: row.try_get("name").map_err(map_err)?,
                    created_at: row.try_get("created_at").map_err(map_err)?,
                    updated_at: row.try_get("updated_at").map_err(map_err)?,
                })
            }

            fn server(row: &$row) -> Result<Server, StoreError> {
                let alg: String = row.try_get("signing_alg").map_err(map_err)?;
                let methods: String = row.try_get("allowed_auth_methods").map_err(map_err)?;
                Ok(Server {
                    tenant_id: parse_id(TenantId::parse, &row.try_get::<String, _>("tenant_id").map_err(map_err)?)?,
                    id: parse_id(ServerId::parse, &row.try_get::<String, _>("id").map_err(map_err)?)?,
                    name: row.try_get("name").map_err(map_err)?,
                    access_token_ttl: row.try_get("access_token_ttl").map_err(map_err)?,
                    refresh_token_ttl: row.try_get("refresh_token_ttl").map_err(map_err)?,
                    signing_alg: SigningAlg::parse(&alg).ok_or_else(|| corrupt("signing_alg"))?,
                    default_audience: row.try_get("default_audience").map_err(map_err)?,
                    allowed_token_endpoint_auth_methods: serde_json::from_str::<Vec<AuthMethod>>(&methods)
                        .map_err(|_| corrupt("allowed_auth_methods"))?,
                    tls_client_certificate_bound_access_tokens: row.try_get("certificate_bound_tokens").map_err(map_err)?,
                    key_rotation_period: row.try_get("key_rotation_period").map_err(map_err)?,
                    rate_limits: rate_limits_from(row.try_get("rate_limits").map_err(map_err)?)?,
                    created_at: row.try_get("created_at").map_err(map_err)?,
                    updated_at: row.try_get("updated_at").map_err(map_err)?,
                })
            }

            fn client(row: &$row) -> Result<Client, StoreError> {
                let metadata: String = row.try_get("metadata").map_err(map_err)?;
                let kind: String = row.try_get("secret_kind").map_err(map_err)?;
                let secret = match kind.as_str() {
                    "none" => StoredSecret::None,
                    "hash" => StoredSecret::Hash(
                        row.try_get::<Option<String>, _>("secret_hash").map_err(map_err)?
                            .ok_or_else(|| corrupt("secret_hash"))?,
                    ),
                    "sealed" => StoredSecret::Sealed(
                        row.try_get::<Option<Vec<u8>>, _>("secret_sealed").map_err(map_err)?
                            .ok_or_else(|| corrupt("secret_sealed"))?,
                    ),
                    _ => return Err(corrupt("secret_kind")),
                };
                Ok(Client {
                    tenant_id: parse_id(TenantId::parse, &row.try_get::<String, _>("tenant_id").map_err(map_err)?)?,
                    server_id: parse_id(ServerId::parse, &row.try_get::<String, _>("server_id").map_err(map_err)?)?,
                    client_id: parse_id(ClientId::parse, &row.try_get::<String, _>("client_id").map_err(map_err)?)?,
                    metadata: serde_json::from_str::<ClientMetadata>(&metadata).map_err(|_| corrupt("metadata"))?,
                    secret,
                    secret_expires_at: row.try_get("secret_expires_at").map_err(map_err)?,
                    issued_at: row.try_get("issued_at").map_err(map_err)?,
                    updated_at: row.try_get("updated_at").map_err(map_err)?,
                })
            }

            fn key(row: &$row) -> Result<KeyRecord, StoreError> {
                let alg: String = row.try_get("alg").map_err(map_err)?;
                let status: String = row.try_get("status").map_err(map_err)?;
                let jwk: String = row.try_get("public_jwk").map_err(map_err)?;
                Ok(KeyRecord {
                    tenant_id: parse_id(TenantId::parse, &row.try_get::<String, _>("tenant_id").map_err(map_err)?)?,
                    server_id: parse_id(ServerId::parse, &row.try_get::<String, _>("server_id").map_err(map_err)?)?,
                    kid: row.try_get("kid").map_err(map_err)?,
                    alg: SigningAlg::parse(&alg).ok_or_else(|| corrupt("alg"))?,
                    status: KeyStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
                    sealed_private: row.try_get("sealed_private").map_err(map_err)?,
                    public_jwk: serde_json::from_str(&jwk).map_err(|_| corrupt("public_jwk"))?,
                    created_at: row.try_get("created_at").map_err(map_err)?,
                    retire_at: row.try_get("retire_at").map_err(map_err)?,
                })
            }

            async fn insert_key<'e, E>(exec: E, k: &KeyRecord) -> Result<(), StoreError>
            where
                E: sqlx::Executor<'e, Database = <$pool as PoolDb>::Db>,
            {
                sqlx::query(&format!("INSERT INTO signing_keys ({KEY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
                    .bind(k.tenant_id.as_str())
                    .bind(k.server_id.as_str())
                    .bind(&k.kid)
                    .bind(k.alg.as_str())
                    .bind(k.status.as_str())
                    .bind(&k.sealed_private)
                    .bind(k.public_jwk.to_string())
                    .bind(k.created_at)
                    .bind(k.retire_at)
                    .execute(exec)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }
        }

        #[async_trait]
        impl TenantRepo for $name {
            async fn create_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
                sqlx::query(&format!("INSERT INTO tenants ({TENANT_COLS}) VALUES ($1, $2, $3, $4)"))
                    .bind(t.id.as_str())
                    .bind(&t.name)
                    .bind(t.created_at)
                    .bind(t.updated_at)
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(())
            }

            async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>, StoreError> {
                sqlx::query(&format!("SELECT {TENANT_COLS} FROM tenants WHERE id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?
                    .map(|r| Self::tenant(&r))
                    .transpose()
            }

            async fn list_tenants(&self, after: Option<&str>, limit: u32) -> Result<Page<Tenant>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {TENANT_COLS} FROM tenants WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let items = rows.iter().map(Self::tenant).collect::<Result<Vec<_>, _>>()?;
                Ok(page(items, limit, |t| t.id.to_string()))
            }

            async fn update_tenant(&self, t: &Tenant) -> Result<bool, StoreError> {
                let r = sqlx::query("UPDATE tenants SET name = $1, updated_at = $2 WHERE id = $3")
                    .bind(&t.name)
                    .bind(t.updated_at)
                    .bind(t.id.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(r.rows_affected() > 0)
            }

            async fn delete_tenant(&self, id: &TenantId) -> Result<bool, StoreError> {
                let r = sqlx::query("DELETE FROM tenants WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(r.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl ServerRepo for $name {
            async fn create_server(&self, s: &Server, keys: &[KeyRecord]) -> Result<(), StoreError> {
                let methods = serde_json::to_string(&s.allowed_token_endpoint_auth_methods)
                    .map_err(|_| corrupt("allowed_auth_methods"))?;
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query(&format!(
                    "INSERT INTO servers ({SERVER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
                ))
                .bind(s.tenant_id.as_str())
                .bind(s.id.as_str())
                .bind(&s.name)
                .bind(s.access_token_ttl)
                .bind(s.refresh_token_ttl)
                .bind(s.signing_alg.as_str())
                .bind(s.default_audience.as_deref())
                .bind(methods)
                .bind(s.created_at)
                .bind(s.updated_at)
                .bind(s.tls_client_certificate_bound_access_tokens)
                .bind(s.key_rotation_period)
                .bind(rate_limits_column(&s.rate_limits)?)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                for k in keys {
                    Self::insert_key(&mut *tx, k).await?;
                }
                tx.commit().await.map_err(map_err)
            }

            async fn get_server(&self, t: &TenantId, id: &ServerId) -> Result<Option<Server>, StoreError> {
                sqlx::query(&format!("SELECT {SERVER_COLS} FROM servers WHERE tenant_id = $1 AND id = $2"))
                    .bind(t.as_str())
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?
                    .map(|r| Self::server(&r))
                    .transpose()
            }

            async fn list_servers(&self, t: &TenantId, after: Option<&str>, limit: u32) -> Result<Page<Server>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {SERVER_COLS} FROM servers WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(t.as_str())
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let items = rows.iter().map(Self::server).collect::<Result<Vec<_>, _>>()?;
                Ok(page(items, limit, |s| s.id.to_string()))
            }

            async fn update_server(&self, s: &Server) -> Result<bool, StoreError> {
                let methods = serde_json::to_string(&s.allowed_token_endpoint_auth_methods)
                    .map_err(|_| corrupt("allowed_auth_methods"))?;
                let r = sqlx::query(
                    "UPDATE servers SET name = $1, access_token_ttl = $2, refresh_token_ttl = $3, signing_alg = $4, \
                     default_audience = $5, allowed_auth_methods = $6, updated_at = $7, certificate_bound_tokens = $8, \
                     key_rotation_period = $9, rate_limits = $10 WHERE tenant_id = $11 AND id = $12",
                )
                .bind(&s.name)
                .bind(s.access_token_ttl)
                .bind(s.refresh_token_ttl)
                .bind(s.signing_alg.as_str())
                .bind(s.default_audience.as_deref())
                .bind(methods)
                .bind(s.updated_at)
                .bind(s.tls_client_certificate_bound_access_tokens)
                .bind(s.key_rotation_period)
                .bind(rate_limits_column(&s.rate_limits)?)
                .bind(s.tenant_id.as_str())
                .bind(s.id.as_str())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(r.rows_affected() > 0)
            }

            async fn delete_server(&self, t: &TenantId, id: &ServerId) -> Result<bool, StoreError> {
                let r = sqlx::query("DELETE FROM servers WHERE tenant_id = $1 AND id = $2")
                    .bind(t.as_str())
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(r.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl ClientRepo for $name {
            async fn create_client(&self, c: &Client) -> Result<(), StoreError> {
                let metadata = serde_json::to_string(&c.metadata).map_err(|_| corrupt("metadata"))?;
                let (kind, hash, sealed) = secret_columns(&c.secret);
                sqlx::query(&format!(
                    "INSERT INTO clients ({CLIENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ))
                .bind(c.tenant_id.as_str())
                .bind(c.server_id.as_str())
                .bind(c.client_id.as_str())
                .bind(metadata)
                .bind(kind)
                .bind(hash)
                .bind(sealed)
                .bind(c.secret_expires_at)
                .bind(c.issued_at)
                .bind(c.updated_at)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn get_client(&self, t: &TenantId, s: &ServerId, id: &ClientId) -> Result<Option<Client>, StoreError> {
                sqlx::query(&format!(
                    "SELECT {CLIENT_COLS} FROM clients WHERE tenant_id = $1 AND server_id = $2 AND client_id = $3"
                ))
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?
                .map(|r| Self::client(&r))
                .transpose()
            }

            async fn list_clients(&self, t: &TenantId, s: &ServerId, after: Option<&str>, limit: u32) -> Result<Page<Client>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {CLIENT_COLS} FROM clients WHERE tenant_id = $1 AND server_id = $2 AND client_id > $3 \
                     ORDER BY client_id LIMIT $4"
                ))
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let items = rows.iter().map(Self::client).collect::<Result<Vec<_>, _>>()?;
                Ok(page(items, limit, |c| c.client_id.to_string()))
            }

            async fn update_client(&self, c: &Client) -> Result<bool, StoreError> {
                let metadata = serde_json::to_string(&c.metadata).map_err(|_| corrupt("metadata"))?;
                let (kind, hash, sealed) = secret_columns(&c.secret);
                let r = sqlx::query(
                    "UPDATE clients SET metadata = $1, secret_kind = $2, secret_hash = $3, secret_sealed = $4, \
                     secret_expires_at = $5, updated_at = $6 WHERE tenant_id = $7 AND server_id = $8 AND client_id = $9",
                )
                .bind(metadata)
                .bind(kind)
                .bind(hash)
                .bind(sealed)
                .bind(c.secret_expires_at)
                .bind(c.updated_at)
                .bind(c.tenant_id.as_str())
                .bind(c.server_id.as_str())
                .bind(c.client_id.as_str())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(r.rows_affected() > 0)
            }

            async fn delete_client(&self, t: &TenantId, s: &ServerId, id: &ClientId) -> Result<bool, StoreError> {
                let r = sqlx::query("DELETE FROM clients WHERE tenant_id = $1 AND server_id = $2 AND client_id = $3")
                    .bind(t.as_str())
                    .bind(s.as_str())
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(map_err)?;
                Ok(r.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl KeyRepo for $name {
            async fn list_keys(&self, t: &TenantId, s: &ServerId) -> Result<Vec<KeyRecord>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {KEY_COLS} FROM signing_keys WHERE tenant_id = $1 AND server_id = $2 ORDER BY created_at, kid"
                ))
                .bind(t.as_str())
                .bind(s.as_str())
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map(Self::key).collect()
            }

            async fn retire_keys(&self, t: &TenantId, s: &ServerId, alg: SigningAlg, retire_at: i64) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE signing_keys SET status = 'retiring', retire_at = $1 \
                     WHERE tenant_id = $2 AND server_id = $3 AND alg = $4 AND status = 'current'",
                )
                .bind(retire_at)
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(alg.as_str())
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn rotate_key(&self, new: &KeyRecord, retire_at: i64, now: i64) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query(
                    "UPDATE signing_keys SET status = 'retiring', retire_at = $1 \
                     WHERE tenant_id = $2 AND server_id = $3 AND alg = $4 AND status = 'current'",
                )
                .bind(retire_at)
                .bind(new.tenant_id.as_str())
                .bind(new.server_id.as_str())
                .bind(new.alg.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                sqlx::query(
                    "DELETE FROM signing_keys WHERE tenant_id = $1 AND server_id = $2 AND status = 'retiring' AND retire_at <= $3",
                )
                .bind(new.tenant_id.as_str())
                .bind(new.server_id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                Self::insert_key(&mut *tx, new).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn rotate_key_if_current(&self, new: &KeyRecord, expected_current_kid: &str, retire_at: i64, now: i64) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                // The conditional update is the arbiter: of several processes rotating from
                // the same key, the first to update its row wins; the others wait for its
                // commit (a row lock in PostgreSQL, the write lock in SQLite), then match
                // nothing.
                let claimed = sqlx::query(
                    "UPDATE signing_keys SET status = 'retiring', retire_at = $1 \
                     WHERE tenant_id = $2 AND server_id = $3 AND kid = $4 AND alg = $5 AND status = 'current'",
                )
                .bind(retire_at)
                .bind(new.tenant_id.as_str())
                .bind(new.server_id.as_str())
                .bind(expected_current_kid)
                .bind(new.alg.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if claimed.rows_affected() == 0 {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE signing_keys SET status = 'retiring', retire_at = $1 \
                     WHERE tenant_id = $2 AND server_id = $3 AND alg = $4 AND status = 'current'",
                )
                .bind(retire_at)
                .bind(new.tenant_id.as_str())
                .bind(new.server_id.as_str())
                .bind(new.alg.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                sqlx::query(
                    "DELETE FROM signing_keys WHERE tenant_id = $1 AND server_id = $2 AND status = 'retiring' AND retire_at <= $3",
                )
                .bind(new.tenant_id.as_str())
                .bind(new.server_id.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                Self::insert_key(&mut *tx, new).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn servers_due_for_key_rotation(&self, now: i64, limit: u32) -> Result<Vec<Server>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {SERVER_COLS} FROM servers s WHERE s.key_rotation_period IS NOT NULL AND NOT EXISTS \
                     (SELECT 1 FROM signing_keys k WHERE k.tenant_id = s.tenant_id AND k.server_id = s.id \
                     AND k.status = 'current' AND k.created_at + s.key_rotation_period > $1) \
                     ORDER BY s.tenant_id, s.id LIMIT $2"
                ))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                rows.iter().map(Self::server).collect()
            }

            async fn delete_retired_keys(&self, now: i64) -> Result<Vec<(TenantId, ServerId)>, StoreError> {
                let rows = sqlx::query(
                    "DELETE FROM signing_keys WHERE status = 'retiring' AND retire_at <= $1 RETURNING tenant_id, server_id",
                )
                .bind(now)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let mut servers = Vec::new();
                for row in &rows {
                    let t = parse_id(TenantId::parse, &row.try_get::<String, _>("tenant_id").map_err(map_err)?)?;
                    let s = parse_id(ServerId::parse, &row.try_get::<String, _>("server_id").map_err(map_err)?)?;
                    if !servers.contains(&(t.clone(), s.clone())) {
                        servers.push((t, s));
                    }
                }
                Ok(servers)
            }
        }

        #[async_trait]
        impl AdminRepo for $name {
            async fn admin_token_hash(&self, name: &str) -> Result<Option<String>, StoreError> {
                sqlx::query("SELECT token_hash FROM admin_tokens WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?
                    .map(|r| r.try_get::<String, _>("token_hash").map_err(map_err))
                    .transpose()
            }

            async fn set_admin_token_hash_if_absent(&self, name: &str, hash: &str, now: i64) -> Result<bool, StoreError> {
                let r = sqlx::query(
                    "INSERT INTO admin_tokens (name, token_hash, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(hash)
                .bind(now)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
                Ok(r.rows_affected() > 0)
            }
        }

        #[async_trait]
        impl Repository for $name {
            async fn migrate(&self) -> Result<(), StoreError> {
                sqlx::migrate!($migrator)
                    .run(&self.pool)
                    .await
                    .map_err(|e| StoreError::Migrate(e.to_string()))
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await.map_err(map_err)?;
                Ok(())
            }

            fn backend(&self) -> &'static str {
                $backend
            }

            async fn close(&self) {
                self.pool.close().await;
            }
        }
    };
}

/// Maps a pool type to its database, so the macro can name the executor's database.
pub trait PoolDb {
    /// The sqlx database.
    type Db: sqlx::Database;
}
impl PoolDb for SqlitePool {
    type Db = sqlx::Sqlite;
}
impl PoolDb for PgPool {
    type Db = sqlx::Postgres;
}

sql_repository!(
    SqliteRepository,
    SqlitePool,
    SqliteRow,
    "sqlite",
    "../../migrations/sqlite"
);
sql_repository!(
    PostgresRepository,
    PgPool,
    PgRow,
    "postgres",
    "../../migrations/postgres"
);

const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl SqliteRepository {
    /// Opens (creating when the URL says `mode=rwc`) a SQLite database. An in-memory database
    /// is held on one connection that never closes, since each connection would otherwise see
    /// its own empty database.
    ///
    /// # Errors
    /// Bad URL or an unopenable file.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 8 })
            .min_connections(u32::from(in_memory))
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await
            .map_err(map_err)?;
        Ok(Self { pool })
    }
}

impl PostgresRepository {
    /// One connection attempt, opened and closed, within [`ACQUIRE_TIMEOUT`]: whether the
    /// database answers now. (A pool's first connect instead retries a refused connection
    /// silently until its acquire timeout; start-up uses this to say what it waits for.)
    ///
    /// # Errors
    /// Bad URL, or the database does not accept a connection.
    pub async fn probe(url: &str) -> Result<(), StoreError> {
        use sqlx::Connection as _;
        let opts: sqlx::postgres::PgConnectOptions = url
            .parse()
            .map_err(|_| StoreError::Unavailable("invalid PostgreSQL URL".into()))?;
        let conn = tokio::time::timeout(ACQUIRE_TIMEOUT, sqlx::PgConnection::connect_with(&opts))
            .await
            .map_err(|_| StoreError::Unavailable("connection timed out".into()))?
            .map_err(map_err)?;
        let _ = conn.close().await;
        Ok(())
    }

    /// Connects a pool to PostgreSQL.
    ///
    /// # Errors
    /// Bad URL or an unreachable server.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(url)
            .await
            .map_err(map_err)?;
        Ok(Self { pool })
    }
}
