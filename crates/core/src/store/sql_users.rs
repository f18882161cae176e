//! Users, consents and refresh tokens on sqlx, for SQLite and PostgreSQL: like `sql.rs`, one
//! macro writes both implementations from one SQL text. Only the refresh-token rotation
//! differs: PostgreSQL does it in one statement (a data-modifying CTE, one round trip);
//! SQLite, embedded and without such CTEs, in a short transaction.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::sql::{corrupt, map_err, page, parse_id, PostgresRepository, SqliteRepository};
use super::{Page, RefreshRepo, StoreError, UserRepo};
use crate::audit::AuditRecord;
use crate::ids::{ClientId, ServerId, TenantId, UserId};
use crate::model::users::{Consent, User};
use crate::refresh::{RefreshRecord, Rotated, Successor};
use crate::revoked_subjects::Subject;

const USER_COLS: &str =
    "tenant_id, server_id, id, username, password_hash, claims, created_at, updated_at";
const CONSENT_COLS: &str =
    "tenant_id, server_id, user_id, client_id, scope, created_at, updated_at";
const REFRESH_COLS: &str = "token_hash, tenant_id, server_id, client_id, user_id, family_id, scope, auth_time, amr, access_jti, access_exp, created_at, expires_at, rotated_at, revoked_at";

macro_rules! user_repository {
    ($name:ident, $row:ty, $db:ty) => {
        impl $name {
            fn user_row(row: &$row) -> Result<User, StoreError> {
                let claims: String = row.try_get("claims").map_err(map_err)?;
                Ok(User {
                    tenant_id: parse_id(TenantId::parse, &row.try_get::<String, _>("tenant_id").map_err(map_err)?)?,
                    server_id: parse_id(ServerId::parse, &row.try_get::<String, _>("server_id").map_err(map_err)?)?,
                    id: parse_id(UserId::parse, &row.try_get::<String, _>("id").map_err(map_err)?)?,
                    username: row.try_get("username").map_err(map_err)?,
                    password_hash: row.try_get("password_hash").map_err(map_err)?,
                    claims: serde_json::from_str(&claims).map_err(|_| corrupt("claims"))?,
                    created_at: row.try_get("created_at").map_err(map_err)?,
                    updated_at: row.try_get("updated_at").map_err(map_err)?,
                })
            }

            fn consent_row(row: &$row) -> Result<Consent, StoreError> {
                Ok(Consent {
                    tenant_id: parse_id(TenantId::parse, &row.try_get::<String, _>("tenant_id").map_err(map_err)?)?,
                    server_id: parse_id(ServerId::parse, &row.try_get::<String, _>("server_id").map_err(map_err)?)?,
                    user_id: parse_id(UserId::parse, &row.try_get::<String, _>("user_id").map_err(map_err)?)?,
                    client_id: parse_id(ClientId::parse, &row.try_get::<String, _>("client_id").map_err(map_err)?)?,
                    scope: row.try_get("scope").map_err(map_err)?,
                    created_at: row.try_get("created_at").map_err(map_err)?,
                    updated_at: row.try_get("updated_at").map_err(map_err)?,
                })
            }

            fn refresh_row(row: &$row) -> Result<RefreshRecord, StoreError> {
                Ok(RefreshRecord {
                    token_hash: row.try_get("token_hash").map_err(map_err)?,
                    tenant_id: parse_id(TenantId::parse, &row.try_get::<String, _>("tenant_id").map_err(map_err)?)?,
                    server_id: parse_id(ServerId::parse, &row.try_get::<String, _>("server_id").map_err(map_err)?)?,
                    client_id: parse_id(ClientId::parse, &row.try_get::<String, _>("client_id").map_err(map_err)?)?,
                    user_id: parse_id(UserId::parse, &row.try_get::<String, _>("user_id").map_err(map_err)?)?,
                    family_id: row.try_get("family_id").map_err(map_err)?,
                    scope: row.try_get("scope").map_err(map_err)?,
                    auth_time: row.try_get("auth_time").map_err(map_err)?,
                    amr: row.try_get("amr").map_err(map_err)?,
                    access_jti: row.try_get("access_jti").map_err(map_err)?,
                    access_exp: row.try_get("access_exp").map_err(map_err)?,
                    created_at: row.try_get("created_at").map_err(map_err)?,
                    expires_at: row.try_get("expires_at").map_err(map_err)?,
                    rotated_at: row.try_get("rotated_at").map_err(map_err)?,
                    revoked_at: row.try_get("revoked_at").map_err(map_err)?,
                })
            }

            fn rotated_row(row: &$row) -> Result<Rotated, StoreError> {
                Ok(Rotated {
                    user_id: parse_id(UserId::parse, &row.try_get::<String, _>("user_id").map_err(map_err)?)?,
                    family_id: row.try_get("family_id").map_err(map_err)?,
                    scope: row.try_get("scope").map_err(map_err)?,
                    auth_time: row.try_get("auth_time").map_err(map_err)?,
                    amr: row.try_get("amr").map_err(map_err)?,
                    issued_jti: row.try_get("access_jti").map_err(map_err)?,
                })
            }

            /// Commits a change with its audit row when it changed something; rolls back (and
            /// writes no row) when it found nothing to change.
            async fn audited(
                mut tx: sqlx::Transaction<'_, $db>,
                changed: bool,
                audit: &AuditRecord,
            ) -> Result<bool, StoreError> {
                if !changed {
                    tx.rollback().await.map_err(map_err)?;
                    return Ok(false);
                }
                Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(map_err)?;
                Ok(true)
            }

            fn access_tokens(rows: &[$row]) -> Result<Vec<(String, i64)>, StoreError> {
                rows.iter()
                    .map(|r| Ok((r.try_get("access_jti").map_err(map_err)?, r.try_get("access_exp").map_err(map_err)?)))
                    .collect()
            }
        }

        #[async_trait]
        impl UserRepo for $name {
            async fn create_user(&self, u: &User, audit: &AuditRecord) -> Result<(), StoreError> {
                let claims = serde_json::to_string(&u.claims).map_err(|_| corrupt("claims"))?;
                let mut tx = self.pool().begin().await.map_err(map_err)?;
                sqlx::query(&format!("INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"))
                    .bind(u.tenant_id.as_str())
                    .bind(u.server_id.as_str())
                    .bind(u.id.as_str())
                    .bind(&u.username)
                    .bind(&u.password_hash)
                    .bind(claims)
                    .bind(u.created_at)
                    .bind(u.updated_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Self::insert_audit(&mut *tx, audit).await?;
                tx.commit().await.map_err(map_err)
            }

            async fn get_user(&self, t: &TenantId, s: &ServerId, id: &UserId) -> Result<Option<User>, StoreError> {
                sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE tenant_id = $1 AND server_id = $2 AND id = $3"))
                    .bind(t.as_str())
                    .bind(s.as_str())
                    .bind(id.as_str())
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_err)?
                    .map(|r| Self::user_row(&r))
                    .transpose()
            }

            async fn find_user(&self, t: &TenantId, s: &ServerId, username: &str) -> Result<Option<User>, StoreError> {
                sqlx::query(&format!("SELECT {USER_COLS} FROM users WHERE tenant_id = $1 AND server_id = $2 AND username = $3"))
                    .bind(t.as_str())
                    .bind(s.as_str())
                    .bind(username)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_err)?
                    .map(|r| Self::user_row(&r))
                    .transpose()
            }

            async fn list_users(&self, t: &TenantId, s: &ServerId, after: Option<&str>, limit: u32) -> Result<Page<User>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {USER_COLS} FROM users WHERE tenant_id = $1 AND server_id = $2 AND id > $3 ORDER BY id LIMIT $4"
                ))
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(after.unwrap_or(""))
                .bind(i64::from(limit) + 1)
                .fetch_all(self.pool())
                .await
                .map_err(map_err)?;
                let items = rows.iter().map(Self::user_row).collect::<Result<Vec<_>, _>>()?;
                Ok(page(items, limit, |u| u.id.to_string()))
            }

            async fn update_user(&self, u: &User, audit: &AuditRecord) -> Result<bool, StoreError> {
                let claims = serde_json::to_string(&u.claims).map_err(|_| corrupt("claims"))?;
                let mut tx = self.pool().begin().await.map_err(map_err)?;
                let r = sqlx::query(
                    "UPDATE users SET username = $1, password_hash = $2, claims = $3, updated_at = $4 \
                     WHERE tenant_id = $5 AND server_id = $6 AND id = $7",
                )
                .bind(&u.username)
                .bind(&u.password_hash)
                .bind(claims)
                .bind(u.updated_at)
                .bind(u.tenant_id.as_str())
                .bind(u.server_id.as_str())
                .bind(u.id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                Self::audited(tx, r.rows_affected() > 0, audit).await
            }

            async fn delete_user(&self, t: &TenantId, s: &ServerId, id: &UserId, audit: &AuditRecord) -> Result<bool, StoreError> {
                let mut tx = self.pool().begin().await.map_err(map_err)?;
                let r = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND server_id = $2 AND id = $3")
                    .bind(t.as_str())
                    .bind(s.as_str())
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                Self::audited(tx, r.rows_affected() > 0, audit).await
            }

            async fn get_consent(&self, t: &TenantId, s: &ServerId, user: &UserId, client: &ClientId) -> Result<Option<Consent>, StoreError> {
                sqlx::query(&format!(
                    "SELECT {CONSENT_COLS} FROM consents WHERE tenant_id = $1 AND server_id = $2 AND user_id = $3 AND client_id = $4"
                ))
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(user.as_str())
                .bind(client.as_str())
                .fetch_optional(self.pool())
                .await
                .map_err(map_err)?
                .map(|r| Self::consent_row(&r))
                .transpose()
            }

            async fn put_consent(&self, c: &Consent) -> Result<(), StoreError> {
                sqlx::query(&format!(
                    "INSERT INTO consents ({CONSENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (tenant_id, server_id, user_id, client_id) \
                     DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at"
                ))
                .bind(c.tenant_id.as_str())
                .bind(c.server_id.as_str())
                .bind(c.user_id.as_str())
                .bind(c.client_id.as_str())
                .bind(&c.scope)
                .bind(c.created_at)
                .bind(c.updated_at)
                .execute(self.pool())
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn list_consents(&self, t: &TenantId, s: &ServerId, user: &UserId) -> Result<Vec<Consent>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {CONSENT_COLS} FROM consents WHERE tenant_id = $1 AND server_id = $2 AND user_id = $3 ORDER BY client_id"
                ))
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(user.as_str())
                .fetch_all(self.pool())
                .await
                .map_err(map_err)?;
                rows.iter().map(Self::consent_row).collect()
            }

            async fn delete_consent(&self, t: &TenantId, s: &ServerId, user: &UserId, client: &ClientId, audit: &AuditRecord) -> Result<bool, StoreError> {
                let mut tx = self.pool().begin().await.map_err(map_err)?;
                let r = sqlx::query(
                    "DELETE FROM consents WHERE tenant_id = $1 AND server_id = $2 AND user_id = $3 AND client_id = $4",
                )
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(user.as_str())
                .bind(client.as_str())
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                Self::audited(tx, r.rows_affected() > 0, audit).await
            }
        }

        #[async_trait]
        impl RefreshRepo for $name {
            async fn insert_refresh_token(&self, r: &RefreshRecord) -> Result<(), StoreError> {
                sqlx::query(&format!(
                    "INSERT INTO refresh_tokens ({REFRESH_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
                ))
                .bind(&r.token_hash)
                .bind(r.tenant_id.as_str())
                .bind(r.server_id.as_str())
                .bind(r.client_id.as_str())
                .bind(r.user_id.as_str())
                .bind(&r.family_id)
                .bind(&r.scope)
                .bind(r.auth_time)
                .bind(&r.amr)
                .bind(&r.access_jti)
                .bind(r.access_exp)
                .bind(r.created_at)
                .bind(r.expires_at)
                .bind(r.rotated_at)
                .bind(r.revoked_at)
                .execute(self.pool())
                .await
                .map_err(map_err)?;
                Ok(())
            }

            async fn get_refresh_token(&self, hash: &str) -> Result<Option<RefreshRecord>, StoreError> {
                sqlx::query(&format!("SELECT {REFRESH_COLS} FROM refresh_tokens WHERE token_hash = $1"))
                    .bind(hash)
                    .fetch_optional(self.pool())
                    .await
                    .map_err(map_err)?
                    .map(|r| Self::refresh_row(&r))
                    .transpose()
            }

            async fn rotate_refresh_token(
                &self,
                t: &TenantId,
                s: &ServerId,
                client: &ClientId,
                old_hash: &str,
                next: &Successor,
                now: i64,
            ) -> Result<Option<Rotated>, StoreError> {
                self.rotate(t, s, client, old_hash, next, now).await
            }

            async fn revoke_refresh_family(&self, t: &TenantId, s: &ServerId, family_id: &str, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
                let rows = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, $1) \
                     WHERE tenant_id = $2 AND server_id = $3 AND family_id = $4 \
                     RETURNING access_jti, access_exp",
                )
                .bind(now)
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(family_id)
                .fetch_all(self.pool())
                .await
                .map_err(map_err)?;
                Ok(Self::access_tokens(&rows)?.into_iter().filter(|(_, exp)| *exp > now).collect())
            }

            async fn revoke_refresh_tokens_of(&self, t: &TenantId, s: &ServerId, user: &UserId, client: &ClientId, now: i64) -> Result<Vec<(String, i64)>, StoreError> {
                let rows = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, $1) \
                     WHERE tenant_id = $2 AND server_id = $3 AND user_id = $4 AND client_id = $5 \
                     RETURNING access_jti, access_exp",
                )
                .bind(now)
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(user.as_str())
                .bind(client.as_str())
                .fetch_all(self.pool())
                .await
                .map_err(map_err)?;
                Ok(Self::access_tokens(&rows)?.into_iter().filter(|(_, exp)| *exp > now).collect())
            }

            async fn revoke_refresh_tokens_of_user(&self, t: &TenantId, s: &ServerId, user: &UserId, now: i64) -> Result<u64, StoreError> {
                let r = sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = COALESCE(revoked_at, $1) \
                     WHERE tenant_id = $2 AND server_id = $3 AND user_id = $4 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(user.as_str())
                .execute(self.pool())
                .await
                .map_err(map_err)?;
                Ok(r.rows_affected())
            }

            async fn revoke_subject(&self, t: &TenantId, s: &ServerId, subject: &Subject, before_ms: i64, keep_until: i64, now: i64) -> Result<(), StoreError> {
                let mut tx = self.pool().begin().await.map_err(map_err)?;
                sqlx::query("DELETE FROM revoked_subjects WHERE tenant_id = $1 AND server_id = $2 AND expires_at <= $3")
                    .bind(t.as_str())
                    .bind(s.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(map_err)?;
                sqlx::query(
                    "INSERT INTO revoked_subjects (tenant_id, server_id, kind, subject, revoked_before, expires_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (tenant_id, server_id, kind, subject) \
                     DO UPDATE SET revoked_before = excluded.revoked_before, expires_at = excluded.expires_at",
                )
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(subject.kind())
                .bind(subject.id())
                .bind(before_ms)
                .bind(keep_until)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
                tx.commit().await.map_err(map_err)
            }

            async fn revoked_subjects(&self, t: &TenantId, s: &ServerId, now: i64) -> Result<Vec<(Subject, i64)>, StoreError> {
                let rows = sqlx::query(
                    "SELECT kind, subject, revoked_before FROM revoked_subjects \
                     WHERE tenant_id = $1 AND server_id = $2 AND expires_at > $3",
                )
                .bind(t.as_str())
                .bind(s.as_str())
                .bind(now)
                .fetch_all(self.pool())
                .await
                .map_err(map_err)?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    let kind: String = r.try_get("kind").map_err(map_err)?;
                    let id: String = r.try_get("subject").map_err(map_err)?;
                    let before: i64 = r.try_get("revoked_before").map_err(map_err)?;
                    // A kind a newer release wrote: not ours to judge.
                    if let Some(subject) = Subject::from_stored(&kind, &id) {
                        out.push((subject, before));
                    }
                }
                Ok(out)
            }

            async fn delete_expired_refresh_tokens(&self, before: i64) -> Result<u64, StoreError> {
                let r = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
                    .bind(before)
                    .execute(self.pool())
                    .await
                    .map_err(map_err)?;
                Ok(r.rows_affected())
            }
        }
    };
}

user_repository!(SqliteRepository, SqliteRow, sqlx::Sqlite);
user_repository!(PostgresRepository, PgRow, sqlx::Postgres);

/// The condition a token must meet to be rotated; `$1`…`$5` are the same in both backends.
const ROTATABLE: &str = "token_hash = $1 AND tenant_id = $2 AND server_id = $3 AND client_id = $4 \
     AND rotated_at IS NULL AND revoked_at IS NULL AND expires_at > $5";

impl PostgresRepository {
    /// One statement: the `UPDATE` marks the old token rotated and hands its row to the
    /// `INSERT` of the successor; concurrent rotations of one token serialise on its row
    /// lock, and only the first finds it still unrotated.
    async fn rotate(
        &self,
        t: &TenantId,
        s: &ServerId,
        client: &ClientId,
        old_hash: &str,
        next: &Successor,
        now: i64,
    ) -> Result<Option<Rotated>, StoreError> {
        let sql = format!(
            "WITH old AS ( \
               UPDATE refresh_tokens SET rotated_at = $5 WHERE {ROTATABLE} \
               RETURNING user_id, family_id, scope, auth_time, amr, access_jti \
             ), ins AS ( \
               INSERT INTO refresh_tokens ({REFRESH_COLS}) \
               SELECT $6, $2, $3, $4, user_id, family_id, scope, auth_time, amr, $7, $8, $5, $9, NULL, NULL FROM old \
               RETURNING token_hash \
             ) SELECT user_id, family_id, scope, auth_time, amr, access_jti FROM old"
        );
        sqlx::query(&sql)
            .bind(old_hash)
            .bind(t.as_str())
            .bind(s.as_str())
            .bind(client.as_str())
            .bind(now)
            .bind(&next.token_hash)
            .bind(&next.access_jti)
            .bind(next.access_exp)
            .bind(next.expires_at)
            .fetch_optional(self.pool())
            .await
            .map_err(map_err)?
            .map(|r| Self::rotated_row(&r))
            .transpose()
    }
}

impl SqliteRepository {
    /// A write transaction: SQLite allows one writer at a time, so the `UPDATE … RETURNING`
    /// and the `INSERT` cannot interleave with another rotation of the same token.
    async fn rotate(
        &self,
        t: &TenantId,
        s: &ServerId,
        client: &ClientId,
        old_hash: &str,
        next: &Successor,
        now: i64,
    ) -> Result<Option<Rotated>, StoreError> {
        let mut tx = self.pool().begin().await.map_err(map_err)?;
        let Some(row) = sqlx::query(&format!(
            "UPDATE refresh_tokens SET rotated_at = $5 WHERE {ROTATABLE} \
             RETURNING user_id, family_id, scope, auth_time, amr, access_jti"
        ))
        .bind(old_hash)
        .bind(t.as_str())
        .bind(s.as_str())
        .bind(client.as_str())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?
        else {
            return Ok(None);
        };
        let rotated = Self::rotated_row(&row)?;
        sqlx::query(&format!(
            "INSERT INTO refresh_tokens ({REFRESH_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, NULL)"
        ))
        .bind(&next.token_hash)
        .bind(t.as_str())
        .bind(s.as_str())
        .bind(client.as_str())
        .bind(rotated.user_id.as_str())
        .bind(&rotated.family_id)
        .bind(&rotated.scope)
        .bind(rotated.auth_time)
        .bind(&rotated.amr)
        .bind(&next.access_jti)
        .bind(next.access_exp)
        .bind(now)
        .bind(next.expires_at)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some(rotated))
    }
}
