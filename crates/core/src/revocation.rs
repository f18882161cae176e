//! Revocation: an access token is remembered as revoked in the short-lived store until it
//! would have expired (on every replica); a refresh-token family is revoked in the database
//! together with the access tokens issued from it. Introspection, the refresh grant's replay
//! rule, code reuse and the admin API all revoke through [`Revocations`].

use std::time::Duration;

use crate::clock::Clock;
use crate::ids::{ServerId, TenantId};
use crate::oauth::OAuthError;
use crate::store::{store_failure, Owner, Repository, ShortLivedStore};

/// The short-lived-store key that marks an access token revoked.
#[must_use]
pub fn revoked_access_key(t: &TenantId, s: &ServerId, jti: &str) -> String {
    format!("revoked:{t}/{s}/{jti}")
}

/// What revoking needs: the two stores and the clock.
#[derive(Debug, Clone, Copy)]
pub struct Revocations<'a> {
    /// Holds refresh-token families.
    pub repo: &'a dyn Repository,
    /// Holds the revoked access tokens' `jti`s.
    pub short_lived: &'a dyn ShortLivedStore,
    /// Decides how long a revocation must be remembered.
    pub clock: &'a dyn Clock,
}

impl Revocations<'_> {
    /// Remembers an access token as revoked until it would have expired, on every replica.
    ///
    /// # Errors
    /// `503` when the short-lived store cannot record it.
    pub async fn revoke_access_token(
        &self,
        t: &TenantId,
        s: &ServerId,
        jti: &str,
        exp: i64,
    ) -> Result<(), OAuthError> {
        let left = exp - self.clock.now();
        if left <= 0 {
            return Ok(());
        }
        let ttl = Duration::from_secs(u64::try_from(left).unwrap_or(1).max(1));
        self.short_lived
            .put(Owner::new(t, s), &revoked_access_key(t, s, jti), b"1", ttl)
            .await
            .map_err(|e| store_failure(&e))
    }

    /// Revokes a whole family: its refresh tokens in the database and the access tokens
    /// issued with them in the short-lived store.
    ///
    /// # Errors
    /// `503` when a store is unreachable.
    pub async fn revoke_family(
        &self,
        t: &TenantId,
        s: &ServerId,
        family_id: &str,
    ) -> Result<(), OAuthError> {
        let access = self
            .repo
            .revoke_refresh_family(t, s, family_id, self.clock.now())
            .await
            .map_err(|e| store_failure(&e))?;
        for (jti, exp) in access {
            self.revoke_access_token(t, s, &jti, exp).await?;
        }
        tracing::warn!(tenant = %t, server = %s, family = family_id, "refresh token family revoked");
        Ok(())
    }
}
