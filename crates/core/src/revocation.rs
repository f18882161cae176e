//! Revocation: an access token is remembered as revoked in the short-lived store until it
//! would have expired (on every replica); a refresh-token family is revoked in the database
//! together with the access tokens issued from it. Introspection, the refresh grant's replay
//! rule, code reuse and the admin API all revoke through [`Revocations`].

use std::time::Duration;

use crate::clock::Clock;
use crate::ids::{ServerId, TenantId};
use crate::oauth::OAuthError;
use jsonwebtoken::{decode, decode_header, Validation};
use serde_json::{Map, Value};

use crate::ids::ClientId;
use crate::model::server::Server;
use crate::registry::ServerRuntime;
use crate::revoked_subjects::RevokedSubjects;
use crate::store::{store_failure, Owner, Repository, ShortLivedStore};

/// The claim of an exchanged access token (RFC 8693) that lists the `jti`s of the tokens it
/// was exchanged from, the nearest first: revoking any of them revokes it too.
pub const EXCHANGED_FROM: &str = "exchanged_from";
/// Most `jti`s [`EXCHANGED_FROM`] holds: a longer chain of exchanges is refused.
pub const MAX_EXCHANGE_CHAIN: usize = 8;

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

/// Verifies `token` as an access token of `server`: signature by one of its published keys,
/// `typ: at+jwt`, its issuer, not expired. `None` for anything else.
pub fn verify_access_token(server: &ServerRuntime, token: &str) -> Option<Map<String, Value>> {
    let header = decode_header(token).ok()?;
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("at+jwt"))
    {
        return None;
    }
    let (key, alg) = server.verify_keys.get(header.kid.as_deref()?)?;
    if header.alg != *alg {
        return None;
    }
    let mut v = Validation::new(*alg);
    v.set_issuer(&[&server.issuer]);
    v.validate_aud = false;
    v.validate_nbf = true;
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "iss", "sub"]);
    let claims = decode::<Map<String, Value>>(token, key, &v).ok()?.claims;
    // Tokens Tollgate issues always carry a `jti`; revocation is keyed by it.
    claims
        .get("jti")
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty())?;
    Some(claims)
}

/// Whether the access token with these verified `claims` of `server` was revoked: by its
/// `jti` or the `jti` of a token it was exchanged from (the short-lived store), or by what
/// it stands for — its client deleted, its user deleted or their password changed since it
/// was issued (`revoked`, cached in memory). Fails closed: an unreadable revocation list is
/// an error, not "not revoked".
///
/// # Errors
/// `503` when the short-lived store cannot be read.
pub async fn is_access_token_revoked(
    revoked: &RevokedSubjects,
    short_lived: &dyn ShortLivedStore,
    server: &ServerRuntime,
    claims: &Map<String, Value>,
) -> Result<bool, OAuthError> {
    let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
        return Ok(true);
    };
    if revoked.revokes_token(claims) {
        return Ok(true);
    }
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let origins = claims
        .get(EXCHANGED_FROM)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for id in std::iter::once(jti).chain(origins.iter().filter_map(Value::as_str)) {
        let found = short_lived
            .get(&revoked_access_key(t, s, id))
            .await
            .map_err(|e| store_failure(&e))?;
        if found.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether `client` may learn about an access token with these claims (RFC 7662 §4): it was
/// issued to the client, names it in `aud`, or the server lets this client (a resource server)
/// introspect any of its tokens (`introspection_clients`).
pub fn may_learn_about(server: &Server, id: &ClientId, claims: &Map<String, Value>) -> bool {
    if server.introspection_clients.contains(id) {
        return true;
    }
    if claims.get("client_id").and_then(Value::as_str) == Some(id.as_str()) {
        return true;
    }
    match claims.get("aud") {
        Some(Value::String(aud)) => aud == id.as_str(),
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(id.as_str())),
        _ => false,
    }
}
