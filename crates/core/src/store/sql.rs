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

use super::{
    AdminRepo, AuditRepo, ClientRepo, KeyRepo, Page, Repository, ServerRepo, SigningAlgChange,
    StoreError, TenantRepo,
};
use crate::audit::{AuditEvent, AuditFilter, AuditRecord};
use crate::ids::{ClientId, CredentialId, ServerId, TenantId};
use crate::keys::{KeyRecord, KeyStatus};
use crate::model::client::{Client, ClientMetadata, StoredSecret};
use crate::model::credential::{AdminCredential, AdminRole};
use crate::model::rate_limits::RateLimits;
use crate::model::server::{AuthMethod, Server, SigningAlg};
use crate::model::tenant::Tenant;
use crate::model::trusted_issuer::TrustedIssuer;

pub(super) fn map_err(e: sqlx::Error) -> StoreError {
    match e {
        // A row that names a parent which does not exist (any more) conflicts with the data as
        // much as a taken id does.
        sqlx::Error::Database(d) if d.is_unique_violation() || d.is_foreign_key_violation() => {
            StoreError::Conflict
        }
        // A value the schema refuses is our bug, not an outage to retry.
        sqlx::Error::Database(d) if d.is_check_violation() => {
            StoreError::Corrupt("a written value breaks a table constraint".into())
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

pub(super) fn parse_id<T>(
    f: fn(&str) -> Result<T, crate::ids::IdError>,
    s: &str,
) -> Result<T, StoreError> {
    f(s).map_err(|_| corrupt("stored id is invalid"))
}

pub(super) fn page<T>(mut items: Vec<T>, limit: u32, id: impl Fn(&T) -> String) -> Page<T> {
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

/// A list of client ids as its column holds it: a JSON array, `NULL` when empty.
fn client_ids_column(ids: &[ClientId]) -> Result<Option<String>, StoreError> {
    if ids.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(ids)
        .map(Some)
        .map_err(|_| corrupt("introspection_clients"))
}

fn client_ids_from(text: Option<String>) -> Result<Vec<ClientId>, StoreError> {
    text.map_or_else(
        || Ok(Vec::new()),
        |t| serde_json::from_str(&t).map_err(|_| corrupt("introspection_clients")),
    )
}

/// A server's trusted issuers as their column holds them: a JSON array, `NULL` when empty.
fn trusted_issuers_column(list: &[TrustedIssuer]) -> Result<Option<String>, StoreError> {
    if list.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(list)
        .map(Some)
        .map_err(|_| corrupt("trusted_issuers"))
}

fn trusted_issuers_from(text: Option<String>) -> Result<Vec<TrustedIssuer>, StoreError> {
    text.map_or_else(
        || Ok(Vec::new()),
        |t| serde_json::from_str(&t).map_err(|_| corrupt("trusted_issuers")),
    )
}

const TENANT_COLS: &str = "id, name, created_at, updated_at";
const SERVER_COLS: &str = "tenant_id, id, name, access_token_ttl, refresh_token_ttl, signing_alg, default_audience, allowed_auth_methods, created_at, updated_at, certificate_bound_tokens, key_rotation_period, require_pkce, allow_plain_pkce, logo_uri, brand_color, rate_limits, tls_client_ca, introspection_clients, allow_insecure_redirect_uris, require_par, par_ttl, trusted_issuers";
const CLIENT_COLS: &str = "tenant_id, server_id, client_id, metadata, secret_kind, secret_hash, secret_sealed, secret_expires_at, issued_at, updated_at";
const KEY_COLS: &str =
    "tenant_id, server_id, kid, alg, status, sealed_private, public_jwk, created_at, retire_at";
const CREDENTIAL_COLS: &str =
    "id, tenant_id, name, role, token_hash, created_by, created_at, expires_at, revoked_at";
const AUDIT_COLS: &str = "tenant_id, server_id, client_id, occurred_at, actor, action, resource, address, before_state, after_state, detail";

fn json_text(v: Option<&serde_json::Value>) -> Option<String> {
    v.map(serde_json::Value::to_string)
}

fn json_value(text: Option<String>, what: &str) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|t| serde_json::from_str(&t).map_err(|_| corrupt(what)))
        .transpose()
}

fn opt_id<T>(
    f: fn(&str) -> Result<T, crate::ids::IdError>,
    s: Option<String>,
) -> Result<Option<T>, StoreError> {
    s.map(|s| parse_id(f, &s)).transpose()
}

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
                    require_pkce: row.try_get("require_pkce").map_err(map_err)?,
                    allow_plain_pkce: row.try_get("allow_plain_pkce").map_err(map_err)?,
                    logo_uri: row.try_get("logo_uri").map_err(map_err)?,
                    brand_color: row.try_get("brand_color").map_err(map_err)?,
                    rate_limits: rate_limits_from(row.try_get("rate_limits").map_err(map_err)?)?,
                    tls_client_ca: row.try_get("tls_client_ca").map_err(map_err)?,
                    introspection_clients: client_ids_from(row.try_get("introspection_clients").map_err(map_err)?)?,
                    allow_insecure_redirect_uris: row.try_get("allow_insecure_redirect_uris").map_err(map_err)?,
                    require_pushed_authorization_requests: row.try_get("require_par").map_err(map_err)?,
                    pushed_authorization_request_ttl: row.try_get("par_ttl").map_err(map_err)?,
                    trusted_issuers: trusted_issuers_from(row.try_get("trusted_issuers").map_err(map_err)?)?,
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

            fn credential(row: &$row) -> Result<AdminCredential, StoreError> {
                let role: String = row.try_get("role").map_err(map_err)?;
                Ok(AdminCredential {
                    id: parse_id(CredentialId::parse, &row.try_get::<String, _>("id").map_err(map_err)?)?,
                    tenant_id: parse_id(TenantId::parse, &row.try_get::<String, _>("tenant_id").map_err(map_err)?)?,
                    name: row.try_get("name").map_err(map_err)?,
                    role: AdminRole::parse(&role).ok_or_else(|| corrupt("role"))?,
                    token_hash: row.try_get("token_hash").map_err(map_err)?,
                    created_by: row.try_get("created_by").map_err(map_err)?,
                    created_at: row.try_get("created_at").map_err(map_err)?,
                    expires_at: row.try_get("expires_at").map_err(map_err)?,
                    revoked_at: row.try_get("revoked_at").map_err(map_err)?,
                })
            }

            fn audit_event(row: &$row) -> Result<AuditEvent, StoreError> {
                Ok(AuditEvent {
                    id: row.try_get("id").map_err(map_err)?,
                    record: AuditRecord {
                        at: row.try_get("occurred_at").map_err(map_err)?,
                        tenant_id: parse_id(TenantId::parse, &row.try_get::<String, _>("tenant_id").map_err(map_err)?)?,
                        server_id: opt_id(ServerId::parse, row.try_get("server_id").map_err(map_err)?)?,
                        client_id: opt_id(ClientId::parse, row.try_get("client_id").map_err(map_err)?)?,
                        actor: row.try_get("actor").map_err(map_err)?,
                        action: row.try_get("action").map_err(map_err)?,
                        resource: row.try_get("resource").map_err(map_err)?,
                        address: row.try_get("address").map_err(map_err)?,
                        before: json_value(row.try_get("before_state").map_err(map_err)?, "before_state")?,
                        after: json_value(row.try_get("after_state").map_err(map_err)?, "after_state")?,
                        detail: json_value(row.try_get("detail").map_err(map_err)?, "detail")?,
                    },
                })
            }

            /// Writes an audit row; called inside the transaction of the change it describes,
            /// so a failure here rolls the change back.
            pub(super) async fn insert_audit<'e, E>(exec: E, a: &AuditRecord) -> Result<(), StoreError>
            where
                E: sqlx::Executor<'e, Database = <$pool as PoolDb>::Db>,
            {
                sqlx::query(&format!(
                    "INSERT INTO audit_events ({AUDIT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                ))
                .bind(a.tenant_id.as_str())
                .bind(a.server_id.as_ref().map(ServerId::as_str))
                .bind(a.client_id.as_ref().map(ClientId::as_str))
                .bind(a.at)
                .bind(&a.actor)
                .bind(&a.action)
                .bind(&a.resource)
                .bind(a.address.as_deref())
                .bind(json_text(a.before.as_ref()))
                .bind(json_text(a.after.as_ref()))
                .bind(json_text(a.detail.as_ref()))
                .execute(exec)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            /// Marks the current keys of `alg` retiring until `retire_at`.
            async fn retire_current<'e, E>(exec: E, t: &TenantId, s: &ServerId, alg: SigningAlg, retire_at: i64) -> Result<(), StoreError>
            where
                E: sqlx::Executor<'e, Database = <$pool as PoolDb>::Db>,
            {
                sqlx::query(
                    "UPDATE signing_keys SET status = 'retiring', retire_at = $1 \
                     WHERE tenant_id = $2 AND server_id = $3 AND alg = $4 AND status = 'current'",
                )
                .bind(retire_at)
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(alg.as_str())
                .execute(exec)
                .await
                .map_err(map_err)?;
                Ok(())
            }

            /// Deletes a server's retiring keys whose time has passed.
            async fn delete_expired<'e, E>(exec: E, t: &TenantId, s: &ServerId, now: i64) -> Result<(), StoreError>
            where
                E: sqlx::Executor<'e, Database = <$pool as PoolDb>::Db>,
            {
                sqlx::query(
                    "DELETE FROM signing_keys WHERE tenant_id = $1 AND server_id = $2 AND status = 'retiring' AND retire_at <= $3",
                )
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(now)
                .execute(exec)
                .await
                .map_err(map_err)?;
                Ok(())
            }
        }

        #[async_trait]
        impl TenantRepo for $name {
            async fn create_tenant(&self, t: &Tenant, audit: &AuditRecord) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query(&format!("INSERT INTO tenants ({TENANT_COLS}) VALUES ($1, $2, $3, $4)"))
                    .bind(t.id.as_str())
                    .bind(&t.name)
                    .bind(t.created_at)
                    .bind(t.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(map_err)
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

            async fn update_tenant(&self, t: &Tenant, audit: &AuditRecord) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let r = sqlx::query("UPDATE tenants SET name = $1, updated_at = $2 WHERE id = $3")
                    .bind(&t.name)
                    .bind(t.updated_at)
                    .bind(t.id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if r.rows_affected() == 0 {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(false);
                }
                Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn delete_tenant(&self, id: &TenantId, audit: &AuditRecord) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let r = sqlx::query("DELETE FROM tenants WHERE id = $1")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if r.rows_affected() == 0 {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(false);
                }
                Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }
        }

        #[async_trait]
        impl ServerRepo for $name {
            async fn create_server(&self, s: &Server, keys: &[KeyRecord], audit: &AuditRecord) -> Result<(), StoreError> {
                let methods = serde_json::to_string(&s.allowed_token_endpoint_auth_methods)
                    .map_err(|_| corrupt("allowed_auth_methods"))?;
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query(&format!(
                    "INSERT INTO servers ({SERVER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)"
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
                .bind(s.require_pkce)
                .bind(s.allow_plain_pkce)
                .bind(s.logo_uri.as_deref())
                .bind(s.brand_color.as_deref())
                .bind(rate_limits_column(&s.rate_limits)?)
                .bind(s.tls_client_ca.as_deref())
                .bind(client_ids_column(&s.introspection_clients)?)
                .bind(s.allow_insecure_redirect_uris)
                .bind(s.require_pushed_authorization_requests)
                .bind(s.pushed_authorization_request_ttl)
                .bind(trusted_issuers_column(&s.trusted_issuers)?)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                for k in keys {
                    Self::insert_key(&mut *tx, k).await?;
                }
                Self::insert_audit(&mut *tx, audit).await?;
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

            async fn update_server(&self, s: &Server, keys: Option<&SigningAlgChange>, audit: &AuditRecord) -> Result<bool, StoreError> {
                let methods = serde_json::to_string(&s.allowed_token_endpoint_auth_methods)
                    .map_err(|_| corrupt("allowed_auth_methods"))?;
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let r = sqlx::query(
                    "UPDATE servers SET name = $1, access_token_ttl = $2, refresh_token_ttl = $3, signing_alg = $4, \
                     default_audience = $5, allowed_auth_methods = $6, updated_at = $7, certificate_bound_tokens = $8, \
                     key_rotation_period = $9, require_pkce = $10, allow_plain_pkce = $11, logo_uri = $12, \
                     brand_color = $13, rate_limits = $14, tls_client_ca = $15, introspection_clients = $16, \
                     allow_insecure_redirect_uris = $17, require_par = $18, par_ttl = $19, trusted_issuers = $20 WHERE tenant_id = $21 AND id = $22",
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
                .bind(s.require_pkce)
                .bind(s.allow_plain_pkce)
                .bind(s.logo_uri.as_deref())
                .bind(s.brand_color.as_deref())
                .bind(rate_limits_column(&s.rate_limits)?)
                .bind(s.tls_client_ca.as_deref())
                .bind(client_ids_column(&s.introspection_clients)?)
                .bind(s.allow_insecure_redirect_uris)
                .bind(s.require_pushed_authorization_requests)
                .bind(s.pushed_authorization_request_ttl)
                .bind(trusted_issuers_column(&s.trusted_issuers)?)
                .bind(s.tenant_id.as_str())
                .bind(s.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if r.rows_affected() == 0 {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(false);
                }
                if let Some(change) = keys {
                    if let Some(new) = &change.new_key {
                        Self::retire_current(&mut *tx, &s.tenant_id, &s.id, new.alg, change.retire_at).await?;
                        Self::delete_expired(&mut *tx, &s.tenant_id, &s.id, change.now).await?;
                        Self::insert_key(&mut *tx, new).await?;
                    }
                    if let Some(alg) = change.retire_alg {
                        Self::retire_current(&mut *tx, &s.tenant_id, &s.id, alg, change.retire_at).await?;
                    }
                }
                Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn delete_server(&self, t: &TenantId, id: &ServerId, audit: &AuditRecord) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let r = sqlx::query("DELETE FROM servers WHERE tenant_id = $1 AND id = $2")
                    .bind(t.as_str())
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if r.rows_affected() == 0 {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(false);
                }
                Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }
        }

        #[async_trait]
        impl ClientRepo for $name {
            async fn create_client(&self, c: &Client, audit: &AuditRecord) -> Result<(), StoreError> {
                let metadata = serde_json::to_string(&c.metadata).map_err(|_| corrupt("metadata"))?;
                let (kind, hash, sealed) = secret_columns(&c.secret);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
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
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(map_err)
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

            async fn update_client(&self, c: &Client, audit: &AuditRecord) -> Result<bool, StoreError> {
                let metadata = serde_json::to_string(&c.metadata).map_err(|_| corrupt("metadata"))?;
                let (kind, hash, sealed) = secret_columns(&c.secret);
                let mut tx = self.pool.begin().await.map_err(map_err)?;
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
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if r.rows_affected() == 0 {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(false);
                }
                Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            async fn delete_client(&self, t: &TenantId, s: &ServerId, id: &ClientId, audit: &AuditRecord) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let r = sqlx::query("DELETE FROM clients WHERE tenant_id = $1 AND server_id = $2 AND client_id = $3")
                    .bind(t.as_str())
                    .bind(s.as_str())
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                if r.rows_affected() == 0 {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(false);
                }
                Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
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

            async fn rotate_key(&self, new: &KeyRecord, retire_at: i64, now: i64, audit: &AuditRecord) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                Self::retire_current(&mut *tx, &new.tenant_id, &new.server_id, new.alg, retire_at).await?;
                Self::delete_expired(&mut *tx, &new.tenant_id, &new.server_id, now).await?;
                Self::insert_key(&mut *tx, new).await?;
                Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn rotate_key_if_current(&self, new: &KeyRecord, expected_current_kid: &str, retire_at: i64, now: i64, audit: &AuditRecord) -> Result<bool, StoreError> {
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
                Self::retire_current(&mut *tx, &new.tenant_id, &new.server_id, new.alg, retire_at).await?;
                Self::delete_expired(&mut *tx, &new.tenant_id, &new.server_id, now).await?;
                Self::insert_key(&mut *tx, new).await?;
                Self::insert_audit(&mut *tx, audit).await?;
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

            async fn servers_without_current_key(&self, alg: SigningAlg, limit: u32) -> Result<Vec<Server>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {SERVER_COLS} FROM servers s WHERE NOT EXISTS \
                     (SELECT 1 FROM signing_keys k WHERE k.tenant_id = s.tenant_id AND k.server_id = s.id \
                     AND k.alg = $1 AND k.status = 'current') \
                     ORDER BY s.tenant_id, s.id LIMIT $2"
                ))
                .bind(alg.as_str())
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
            async fn create_credential(&self, c: &AdminCredential, audit: &AuditRecord) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                sqlx::query(&format!(
                    "INSERT INTO admin_credentials ({CREDENTIAL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ))
                .bind(c.id.as_str())
                .bind(c.tenant_id.as_str())
                .bind(c.name.as_deref())
                .bind(c.role.as_str())
                .bind(&c.token_hash)
                .bind(&c.created_by)
                .bind(c.created_at)
                .bind(c.expires_at)
                .bind(c.revoked_at)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn credential_by_hash(&self, token_hash: &str) -> Result<Option<AdminCredential>, StoreError> {
                sqlx::query(&format!("SELECT {CREDENTIAL_COLS} FROM admin_credentials WHERE token_hash = $1"))
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(map_err)?
                    .map(|r| Self::credential(&r))
                    .transpose()
            }

            async fn list_credentials(&self, t: &TenantId, after: Option<&str>, limit: u32) -> Result<Page<AdminCredential>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {CREDENTIAL_COLS} FROM admin_credentials WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(t.as_str())
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let items = rows.iter().map(Self::credential).collect::<Result<Vec<_>, _>>()?;
                Ok(page(items, limit, |c| c.id.to_string()))
            }

            async fn revoke_credential(&self, t: &TenantId, id: &CredentialId, now: i64, audit: &AuditRecord) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin().await.map_err(map_err)?;
                let r = sqlx::query(
                    "UPDATE admin_credentials SET revoked_at = $1 WHERE tenant_id = $2 AND id = $3 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(t.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                if r.rows_affected() == 0 {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(false);
                }
                Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

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
        impl AuditRepo for $name {
            async fn append_audit(&self, r: &AuditRecord) -> Result<(), StoreError> {
                Self::insert_audit(&self.pool, r).await
            }

            async fn list_audit(&self, t: &TenantId, filter: &AuditFilter, before: Option<i64>, limit: u32) -> Result<Page<AuditEvent>, StoreError> {
                // Each condition is on, or off when its parameter is NULL. A resource matches
                // itself and anything below it (at a `/` boundary).
                let rows = sqlx::query(&format!(
                    "SELECT id, {AUDIT_COLS} FROM audit_events WHERE tenant_id = $1 AND id < $2 \
                     AND ($3 IS NULL OR action = $3) \
                     AND ($4 IS NULL OR actor = $4) \
                     AND ($5 IS NULL OR resource = $5 OR substr(resource, 1, length($5) + 1) = $5 || '/') \
                     AND ($6 IS NULL OR client_id = $6) \
                     AND ($7 IS NULL OR occurred_at >= $7) \
                     AND ($8 IS NULL OR occurred_at < $8) \
                     ORDER BY id DESC LIMIT $9"
                ))
                .bind(t.as_str())
                .bind(before.unwrap_or(i64::MAX))
                .bind(filter.action.as_deref())
                .bind(filter.actor.as_deref())
                .bind(filter.resource.as_deref())
                .bind(filter.client_id.as_ref().map(ClientId::as_str))
                .bind(filter.since)
                .bind(filter.until)
                .bind(i64::from(limit) + 1)
                .fetch_all(&self.pool)
                .await
                .map_err(map_err)?;
                let items = rows.iter().map(Self::audit_event).collect::<Result<Vec<_>, _>>()?;
                Ok(page(items, limit, |e| e.id.to_string()))
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
        // What retrying cannot fix is `Config`, so start-up ends at once instead of waiting.
        let opts: sqlx::postgres::PgConnectOptions = url
            .parse()
            .map_err(|_| StoreError::Config("invalid PostgreSQL URL".into()))?;
        let conn = tokio::time::timeout(ACQUIRE_TIMEOUT, sqlx::PgConnection::connect_with(&opts))
            .await
            .map_err(|_| StoreError::Unavailable("connection timed out".into()))?
            .map_err(|e| match &e {
                sqlx::Error::Configuration(_) => {
                    StoreError::Config("invalid PostgreSQL connection options".into())
                }
                // 28000 invalid_authorization_specification, 28P01 invalid_password.
                sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("28")) => {
                    StoreError::Config(format!("PostgreSQL refused the login: {}", d.message()))
                }
                _ => map_err(e),
            })?;
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
