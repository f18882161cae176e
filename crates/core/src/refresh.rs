//! Refresh tokens (RFC 6749 §6, RFC 9700 §4.14): opaque, random, stored only as SHA-256
//! digests, and grouped in families. Every use rotates the token; presenting a rotated one
//! means it leaked, so the whole family is revoked — with the access tokens issued from it
//! (`revocation.rs`).

use crate::ids::{ClientId, ServerId, TenantId, UserId};
use crate::secrets::{random_token, sha256_b64};

/// Prefix of every refresh token, so secret scanners can recognise one.
pub const PREFIX: &str = "tgr_";

/// A refresh token as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// SHA-256 of the token, base64url.
    pub token_hash: String,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Owning server.
    pub server_id: ServerId,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The user who granted it.
    pub user_id: UserId,
    /// Every rotation of one grant shares this id.
    pub family_id: String,
    /// Granted scopes, space-delimited.
    pub scope: String,
    /// When the user authenticated (Unix seconds), carried into ID tokens.
    pub auth_time: i64,
    /// How they authenticated (`amr`), space-delimited.
    pub amr: String,
    /// `jti` of the access token issued with it, revoked with the family.
    pub access_jti: String,
    /// Expiry of that access token.
    pub access_exp: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub expires_at: i64,
    /// Set once the token has been exchanged for its successor.
    pub rotated_at: Option<i64>,
    /// Set when the token (or its family) was revoked.
    pub revoked_at: Option<i64>,
}

impl RefreshRecord {
    /// Whether the token may still be exchanged at `now`.
    #[must_use]
    pub fn usable(&self, now: i64) -> bool {
        self.rotated_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

/// The successor written by a rotation.
#[derive(Debug, Clone)]
pub struct Successor {
    /// Digest of the new token.
    pub token_hash: String,
    /// `jti` of the access token issued with it.
    pub access_jti: String,
    /// Expiry of that access token.
    pub access_exp: i64,
    /// Expiry of the new token.
    pub expires_at: i64,
}

/// What a successful rotation carries over from the old token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The user.
    pub user_id: UserId,
    /// The family.
    pub family_id: String,
    /// Granted scopes.
    pub scope: String,
    /// Authentication time.
    pub auth_time: i64,
    /// Authentication methods.
    pub amr: String,
    /// The `jti` of the access token issued with the old token, which dates the old token
    /// (`crate::revoked_subjects`): a token issued before its user or client was revoked
    /// must not rotate, even when the rotation raced with the revocation.
    pub issued_jti: String,
}

/// A fresh refresh token and its digest.
#[must_use]
pub fn generate() -> (String, String) {
    let token = format!("{PREFIX}{}", random_token(32));
    let hash = sha256_b64(&token);
    (token, hash)
}

/// The digest under which `token` is stored.
#[must_use]
pub fn digest(token: &str) -> String {
    sha256_b64(token)
}

/// Whether a presented token has the shape of a Tollgate refresh token (cheap pre-check
/// before a database lookup).
#[must_use]
pub fn looks_like_refresh_token(token: &str) -> bool {
    token.len() == PREFIX.len() + 43
        && token.starts_with(PREFIX)
        && token[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_and_stored_as_digests() {
        let (a, ha) = generate();
        let (b, _) = generate();
        assert_ne!(a, b);
        assert!(looks_like_refresh_token(&a));
        assert!(!looks_like_refresh_token("eyJhbGciOi.x.y"));
        assert_eq!(digest(&a), ha);
        assert!(!ha.contains(&a[PREFIX.len()..]));
    }
}
