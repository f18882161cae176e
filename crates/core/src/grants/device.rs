//! The device authorization flow's state (RFC 8628): what the device authorization endpoint
//! starts (§3.1–3.2), what the user's decision on `/device` records (§3.3), and what the
//! token endpoint's polling reads (`device_code.rs`). Everything lives in the short-lived
//! store, counted against its server and tenant (`store::Owner`):
//! - `device:{tid}/{aid}/{sha256(device_code)}` — the pending authorization: client, scope,
//!   user code, expiry and the polling interval (kept a while past its expiry, so that a late
//!   poll hears `expired_token` rather than `invalid_grant`);
//! - `device-user:{tid}/{aid}/{sha256(user_code)}` — the user code, naming the device code's
//!   hash, until it expires or the user decides;
//! - `device-decision:{tid}/{aid}/{sha256(device_code)}` — the user's decision, written
//!   once, taken once by the poll that issues the tokens.
//!
//! User codes are 8 letters from an alphabet without vowels or look-alikes (RFC 8628 §6.1:
//! `BCDFGHJKLMNPQRSTVWXZ`, 20⁸ ≈ 2^34.6), shown as `XXXX-XXXX`; case, spaces and hyphens
//! are ignored when typed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{registered, requested_scope};
use crate::client_auth::Authenticated;
use crate::ids::{ServerId, TenantId};
use crate::oauth::{GrantType, OAuthError, TokenParams};
use crate::registry::ServerRuntime;
use crate::secrets::{random_bytes, random_token, sha256_b64};
use crate::store::{store_failure, to_json, Owner, ShortLivedStore, StoreError};

/// The letters of a user code (RFC 8628 §6.1).
pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
/// Letters in a user code.
pub const USER_CODE_LEN: usize = 8;
/// How long past its expiry a device code is still recognised (to answer `expired_token`).
const EXPIRED_MEMORY: Duration = Duration::from_secs(600);

/// The device flow's settings (`--device-code-ttl`, `--device-code-interval`).
#[derive(Debug, Clone, Copy)]
pub struct DeviceOptions {
    /// Lifetime of a device code and its user code (`expires_in`).
    pub ttl: Duration,
    /// Least seconds between two polls (`interval`); each `slow_down` adds 5 (§3.5).
    pub interval: u64,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(600),
            interval: 5,
        }
    }
}

/// A pending device authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceGrant {
    /// The client that asked.
    pub client_id: String,
    /// The scope it asked for (its registered one when it named none).
    pub scope: String,
    /// The user code, as shown (`XXXX-XXXX`).
    pub user_code: String,
    /// Unix seconds.
    pub expires_at: i64,
    /// Current polling interval, seconds.
    pub interval: u64,
    /// When the device last polled, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_poll: Option<i64>,
}

/// What the user decided on `/device`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Allowed: the tokens are for this user.
    Approved {
        /// The user.
        user_id: String,
        /// When they authenticated.
        auth_time: i64,
        /// How.
        amr: Vec<String>,
    },
    /// Denied (`access_denied`).
    Denied,
}

/// The device authorization response (RFC 8628 §3.2). `Debug` shows no code.
#[derive(Clone, Serialize)]
pub struct DeviceAuthorization {
    /// The device's secret (polled with).
    pub device_code: String,
    /// What the user types.
    pub user_code: String,
    /// `{issuer}/device`.
    pub verification_uri: String,
    /// The same with the user code filled in.
    pub verification_uri_complete: String,
    /// Seconds.
    pub expires_in: u64,
    /// Seconds between polls.
    pub interval: u64,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("device_code", &"[redacted]")
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

pub fn device_key(t: &TenantId, s: &ServerId, hash: &str) -> String {
    format!("device:{t}/{s}/{hash}")
}

pub fn decision_key(t: &TenantId, s: &ServerId, hash: &str) -> String {
    format!("device-decision:{t}/{s}/{hash}")
}

fn user_key(t: &TenantId, s: &ServerId, normalized: &str) -> String {
    format!("device-user:{t}/{s}/{}", sha256_b64(normalized))
}

/// A fresh user code, `XXXX-XXXX`, each letter uniform over the alphabet.
#[must_use]
pub fn new_user_code() -> String {
    let mut letters = Vec::with_capacity(USER_CODE_LEN);
    while letters.len() < USER_CODE_LEN {
        let mut buf = [0u8; 16];
        random_bytes(&mut buf);
        // 240 = 12 × 20: rejecting the rest keeps every letter equally likely.
        letters.extend(
            buf.iter()
                .filter(|b| **b < 240)
                .map(|b| USER_CODE_ALPHABET[usize::from(*b % 20)]),
        );
    }
    letters.truncate(USER_CODE_LEN);
    let (a, b) = letters.split_at(USER_CODE_LEN / 2);
    format!(
        "{}-{}",
        String::from_utf8_lossy(a),
        String::from_utf8_lossy(b)
    )
}

/// A typed user code without case, spaces or hyphens; `None` when it cannot be one.
#[must_use]
pub fn normalize_user_code(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// `POST /oauth2/device_authorization` (RFC 8628 §3.1) for an authenticated client.
///
/// # Errors
/// `unauthorized_client` for a client not registered for the device grant; `invalid_scope`;
/// `503`.
pub async fn authorize(
    short_lived: &dyn ShortLivedStore,
    clock: &dyn crate::clock::Clock,
    options: &DeviceOptions,
    server: &ServerRuntime,
    auth: &Authenticated,
    params: &TokenParams,
) -> Result<DeviceAuthorization, OAuthError> {
    let c = &auth.client.client;
    registered(c, GrantType::DeviceCode)?;
    let allowed = c.scopes();
    let scope = match requested_scope(params)? {
        Some(r) if !r.is_subset(&allowed) => {
            return Err(OAuthError::invalid_scope(
                "requested scope exceeds the scope registered for the client",
            ))
        }
        Some(r) => r,
        None => allowed,
    };
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let owner = Owner::new(t, s);
    let device_code = random_token(32);
    let hash = sha256_b64(&device_code);
    let now = clock.now();
    let ttl_secs = options.ttl.as_secs().max(1);
    // A collision with a live user code is 1 in 20⁸ per live code: retried, never shared.
    let mut user_code = String::new();
    for _ in 0..4 {
        let candidate = new_user_code();
        let normalized = normalize_user_code(&candidate).unwrap_or_default();
        let fresh = short_lived
            .put_if_absent(
                owner,
                &user_key(t, s, &normalized),
                hash.as_bytes(),
                options.ttl,
            )
            .await
            .map_err(|e| store_failure(&e))?;
        if fresh {
            user_code = candidate;
            break;
        }
    }
    if user_code.is_empty() {
        return Err(OAuthError::temporarily_unavailable());
    }
    let grant = DeviceGrant {
        client_id: c.client_id.to_string(),
        scope: scope.to_scope_string(),
        user_code: user_code.clone(),
        expires_at: now + i64::try_from(ttl_secs).unwrap_or(600),
        interval: options.interval,
        last_poll: None,
    };
    let body = to_json(&grant).map_err(|e| store_failure(&e))?;
    short_lived
        .put(
            owner,
            &device_key(t, s, &hash),
            &body,
            options.ttl + EXPIRED_MEMORY,
        )
        .await
        .map_err(|e| store_failure(&e))?;
    let verification_uri = format!("{}/device", server.issuer);
    let verification_uri_complete = format!(
        "{verification_uri}?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("user_code", &user_code)
            .finish()
    );
    tracing::info!(tenant = %t, server = %s, client_id = %c.client_id, "device authorization started");
    Ok(DeviceAuthorization {
        device_code,
        user_code,
        verification_uri,
        verification_uri_complete,
        expires_in: ttl_secs,
        interval: options.interval,
    })
}

/// The pending authorization a typed user code names: its device code's hash and grant,
/// while it is live and undecided.
///
/// # Errors
/// When the short-lived store cannot be read.
pub async fn find_by_user_code(
    short_lived: &dyn ShortLivedStore,
    now: i64,
    t: &TenantId,
    s: &ServerId,
    typed: &str,
) -> Result<Option<(String, DeviceGrant)>, StoreError> {
    let Some(normalized) = normalize_user_code(typed) else {
        return Ok(None);
    };
    let Some(hash) = short_lived.get(&user_key(t, s, &normalized)).await? else {
        return Ok(None);
    };
    let hash = String::from_utf8_lossy(&hash).into_owned();
    let grant = short_lived
        .get(&device_key(t, s, &hash))
        .await?
        .and_then(|b| serde_json::from_slice::<DeviceGrant>(&b).ok())
        .filter(|g| g.expires_at > now);
    Ok(grant.map(|g| (hash, g)))
}

/// Records the user's decision for the device code with this hash, once: `false` when one
/// was recorded already. The user code is spent either way.
///
/// # Errors
/// When the short-lived store cannot keep it.
pub async fn decide(
    short_lived: &dyn ShortLivedStore,
    t: &TenantId,
    s: &ServerId,
    hash: &str,
    grant: &DeviceGrant,
    decision: &Decision,
    now: i64,
) -> Result<bool, StoreError> {
    let owner = Owner::new(t, s);
    let left = u64::try_from(grant.expires_at - now).unwrap_or(1).max(1);
    let recorded = short_lived
        .put_if_absent(
            owner,
            &decision_key(t, s, hash),
            &to_json(decision)?,
            Duration::from_secs(left),
        )
        .await?;
    if let Some(normalized) = normalize_user_code(&grant.user_code) {
        short_lived
            .remove(owner, &user_key(t, s, &normalized))
            .await?;
    }
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_unambiguous_and_typed_loosely() {
        for _ in 0..200 {
            let code = new_user_code();
            assert_eq!(code.len(), 9);
            assert_eq!(&code[4..5], "-");
            let n = normalize_user_code(&code).unwrap();
            assert!(n.bytes().all(|b| !b"AEIOUY0123456789".contains(&b)));
            assert_eq!(normalize_user_code(&code.to_lowercase()), Some(n.clone()));
            assert_eq!(normalize_user_code(&n), Some(n.clone()));
            let spaced = format!(" {} - {} ", &n[..4], &n[4..]).to_lowercase();
            assert_eq!(normalize_user_code(&spaced), Some(n));
        }
        for bad in [
            "",
            "BCDF",
            "BCDF-GHJK-L",
            "ABCD-EFGH",
            "BCDF-GHJ1",
            &"B".repeat(100),
        ] {
            assert_eq!(normalize_user_code(bad), None, "{bad}");
        }
    }
}
