//! Authorization codes (RFC 6749 §4.1.2): random, at most 60 s, single use, bound to the
//! client, redirect URI, PKCE challenge, scopes, nonce and user. A code lives in the
//! short-lived store under its SHA-256 and is taken atomically (`GETDEL`), so of two
//! exchanges exactly one wins — on every replica. Beside it, what its exchange will issue
//! (the access token's `jti` and the refresh-token family, chosen up front) is kept for the
//! access-token lifetime, so that a second use can revoke them (RFC 6749 §4.1.2).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::ids::{ServerId, TenantId};
use crate::oauth::pkce::Method;
use crate::secrets::sha256_b64;
use crate::store::{to_json, Owner, ShortLivedStore, StoreError};

/// What a code stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    /// The client it was issued to.
    pub client_id: String,
    /// The redirect URI of the request, which the exchange must repeat.
    pub redirect_uri: String,
    /// Granted scopes.
    pub scope: String,
    /// The user.
    pub user_id: String,
    /// When the user authenticated.
    pub auth_time: i64,
    /// How.
    pub amr: Vec<String>,
    /// OIDC `nonce`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    /// OIDC `sid`: the login session the code was issued in.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sid: Option<String>,
    /// PKCE challenge.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code_challenge: Option<String>,
    /// PKCE method.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code_challenge_method: Option<Method>,
    /// `jti` of the access token the exchange issues.
    pub access_jti: String,
    /// Family of the refresh tokens the exchange issues.
    pub family_id: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// What a code's exchange issued, for revocation on reuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    /// The access token's `jti`.
    pub access_jti: String,
    /// When that access token expires at the latest.
    pub access_exp: i64,
    /// The refresh-token family.
    pub family_id: String,
}

fn code_key(t: &TenantId, s: &ServerId, code: &str) -> String {
    format!("code:{t}/{s}/{}", sha256_b64(code))
}

fn issued_key(t: &TenantId, s: &ServerId, code: &str) -> String {
    format!("issued:{t}/{s}/{}", sha256_b64(code))
}

fn replayed_key(t: &TenantId, s: &ServerId, family_id: &str) -> String {
    format!("replayed:{t}/{s}/{family_id}")
}

/// How long a replay is remembered: longer than any exchange can take between its take of
/// the code and its check (every store call has a deadline of seconds).
const REPLAY_MEMORY: Duration = Duration::from_secs(600);

/// Remembers that the code whose exchange issues `family_id` was used twice. A replay marks
/// this before it revokes the family; the exchange that won checks it after storing the
/// family ([`was_replayed`]). Whichever runs first, one of them sees the other: either the
/// winner finds the mark and revokes its own family, or its family was stored before the
/// mark was set, and so before the replay revoked the family in the database.
///
/// # Errors
/// When the short-lived store cannot keep it.
pub async fn mark_replayed(
    short_lived: &dyn ShortLivedStore,
    t: &TenantId,
    s: &ServerId,
    family_id: &str,
) -> Result<(), StoreError> {
    short_lived
        .put(
            Owner::new(t, s),
            &replayed_key(t, s, family_id),
            b"1",
            REPLAY_MEMORY,
        )
        .await
}

/// Whether a replay of the code that issues `family_id` was seen ([`mark_replayed`]).
///
/// # Errors
/// When the short-lived store cannot be read (the exchange then fails: it cannot prove
/// that its refresh token was not revoked).
pub async fn was_replayed(
    short_lived: &dyn ShortLivedStore,
    t: &TenantId,
    s: &ServerId,
    family_id: &str,
) -> Result<bool, StoreError> {
    Ok(short_lived
        .get(&replayed_key(t, s, family_id))
        .await?
        .is_some())
}

/// Keeps a fresh `code` for `ttl`, and beside it what its exchange will issue, for the
/// access-token lifetime longer, so that a second use can revoke it.
///
/// # Errors
/// When the short-lived store cannot keep them.
pub async fn put(
    short_lived: &dyn ShortLivedStore,
    t: &TenantId,
    s: &ServerId,
    code: &str,
    grant: &CodeGrant,
    ttl: Duration,
    access_token_ttl: i64,
) -> Result<(), StoreError> {
    let issued = Issued {
        access_jti: grant.access_jti.clone(),
        access_exp: grant.expires_at + access_token_ttl,
        family_id: grant.family_id.clone(),
    };
    let keep = ttl + Duration::from_secs(u64::try_from(access_token_ttl).unwrap_or(3600));
    short_lived
        .put(
            Owner::new(t, s),
            &issued_key(t, s, code),
            &to_json(&issued)?,
            keep,
        )
        .await?;
    short_lived
        .put(
            Owner::new(t, s),
            &code_key(t, s, code),
            &to_json(grant)?,
            ttl,
        )
        .await
}

/// Takes a code: `Ok(Ok(grant))` the first time; `Ok(Err(issued))` when it is unknown,
/// expired or already used, with what its first exchange issued when that is still known.
///
/// # Errors
/// When the short-lived store cannot be reached.
pub async fn take(
    short_lived: &dyn ShortLivedStore,
    clock: &dyn Clock,
    t: &TenantId,
    s: &ServerId,
    code: &str,
) -> Result<Result<CodeGrant, Option<Issued>>, StoreError> {
    if code.is_empty() || code.len() > 128 {
        return Ok(Err(None));
    }
    if let Some(grant) = short_lived
        .take(Owner::new(t, s), &code_key(t, s, code))
        .await?
        .and_then(|b| serde_json::from_slice::<CodeGrant>(&b).ok())
        .filter(|g| g.expires_at > clock.now())
    {
        return Ok(Ok(grant));
    }
    // Only the failure path reads this: a replay, an expired code, or a guess.
    let issued = short_lived
        .get(&issued_key(t, s, code))
        .await?
        .and_then(|b| serde_json::from_slice::<Issued>(&b).ok());
    Ok(Err(issued))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::store::memory::MemoryStore;

    fn grant(expires_at: i64) -> CodeGrant {
        CodeGrant {
            client_id: "web".into(),
            redirect_uri: "https://app.example/cb".into(),
            scope: "openid".into(),
            user_id: "u1".into(),
            auth_time: 0,
            amr: vec!["pwd".into()],
            nonce: None,
            sid: None,
            code_challenge: None,
            code_challenge_method: None,
            access_jti: "jti-1".into(),
            family_id: "fam-1".into(),
            expires_at,
        }
    }

    /// The code's own expiry is judged by the clock, not by when the store drops it: a code
    /// whose minute has passed is refused even though the store still holds it.
    #[tokio::test]
    async fn codes_expire_when_the_clock_passes_their_lifetime() {
        let store = MemoryStore::new();
        let clock = ManualClock::new(1_000_000);
        let (t, s) = (TenantId::parse("t").unwrap(), ServerId::parse("s").unwrap());
        let ttl = Duration::from_secs(60);
        for (code, wait, fresh) in [("a", 59, true), ("b", 60, false), ("c", 3_600, false)] {
            let g = grant(clock.now() + 60);
            put(&store, &t, &s, code, &g, ttl, 3600).await.unwrap();
            clock.advance(wait);
            let taken = take(&store, &clock, &t, &s, code).await.unwrap();
            assert_eq!(taken.is_ok(), fresh, "after {wait} s");
            if !fresh {
                // What the exchange would have issued is still known, for revocation.
                assert_eq!(taken.unwrap_err().unwrap().access_jti, "jti-1");
            }
        }
    }

    #[tokio::test]
    async fn a_code_is_taken_once() {
        let store = MemoryStore::new();
        let clock = ManualClock::new(1_000_000);
        let (t, s) = (TenantId::parse("t").unwrap(), ServerId::parse("s").unwrap());
        put(
            &store,
            &t,
            &s,
            "x",
            &grant(clock.now() + 60),
            Duration::from_secs(60),
            3600,
        )
        .await
        .unwrap();
        assert!(take(&store, &clock, &t, &s, "x").await.unwrap().is_ok());
        let replay = take(&store, &clock, &t, &s, "x")
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(replay.unwrap().family_id, "fam-1");
    }
}
