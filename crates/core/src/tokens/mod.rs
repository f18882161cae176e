//! Access tokens (RFC 9068 JWT profile) and the token endpoint's success response.

mod mint;

pub use mint::{AccessToken, Minter, Subject, Target};

use serde::Serialize;

use crate::keys::{KeyError, SigningKey, TokenType};
use crate::oauth::SigningAlg;

/// `aud`: one audience is a string, several an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Audience {
    /// One.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// RFC 9068 §2.2 claims.
#[derive(Debug, Clone, Serialize)]
pub struct AccessTokenClaims<'a> {
    /// Issuer.
    pub iss: &'a str,
    /// Subject: the user, or the client for client_credentials.
    pub sub: &'a str,
    /// Audience.
    pub aud: &'a Audience,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before (= `iat`).
    pub nbf: i64,
    /// Unique id.
    pub jti: &'a str,
    /// The client.
    pub client_id: &'a str,
    /// Granted scopes, space-delimited; absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'a str>,
    /// RFC 8705 §3.1 confirmation: the certificate the token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation<'a>>,
    /// When the user authenticated (RFC 9068 §2.2.1), for tokens issued to a user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// RFC 8693 §4.1 actor (token exchange's delegation), nested for chains.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub act: Option<&'a serde_json::Value>,
    /// The `jti`s of the tokens it was exchanged from (RFC 8693), revoked with them.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub exchanged_from: &'a [String],
}

/// RFC 7800 `cnf` with the RFC 8705 certificate thumbprint.
#[derive(Debug, Clone, Serialize)]
pub struct Confirmation<'a> {
    /// base64url SHA-256 of the DER client certificate.
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: &'a str,
}

impl AccessTokenClaims<'_> {
    /// Signs these claims as an `at+jwt`.
    ///
    /// # Errors
    /// When signing fails.
    pub fn sign(&self, key: &SigningKey) -> Result<String, KeyError> {
        key.sign_jws(TokenType::AccessToken, self)
    }
}

/// OpenID Connect Core §2 ID token claims.
#[derive(Debug, Clone, Serialize)]
pub struct IdTokenClaims<'a> {
    /// Issuer.
    pub iss: &'a str,
    /// The user.
    pub sub: &'a str,
    /// The client.
    pub aud: &'a str,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// When the user authenticated.
    pub auth_time: i64,
    /// The `nonce` of the authorization request, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<&'a str>,
    /// The login session (OpenID Connect Front-/Back-Channel Logout `sid`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<&'a str>,
    /// Half of the access token's hash (§3.1.3.6).
    pub at_hash: String,
    /// Authentication methods (RFC 8176), e.g. `pwd`.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub amr: &'a [String],
    /// Authorized party: the client.
    pub azp: &'a str,
}

impl IdTokenClaims<'_> {
    /// Signs these claims as a plain `JWT`.
    ///
    /// # Errors
    /// When signing fails.
    pub fn sign(&self, key: &SigningKey) -> Result<String, KeyError> {
        key.sign_jws(TokenType::Jwt, self)
    }
}

/// `at_hash` (OIDC Core §3.1.3.6): base64url of the left half of the hash of the access
/// token, with the hash of the ID token's `alg` — SHA-256 for ES256, RS256 and PS256, and
/// SHA-512 for `EdDSA` with Ed25519 (as OpenID Connect Core errata set 2 specifies).
#[must_use]
pub fn at_hash(alg: SigningAlg, access_token: &str) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    let algorithm = match alg {
        SigningAlg::EdDSA => &aws_lc_rs::digest::SHA512,
        SigningAlg::ES256 | SigningAlg::RS256 | SigningAlg::PS256 => &aws_lc_rs::digest::SHA256,
    };
    let digest = aws_lc_rs::digest::digest(algorithm, access_token.as_bytes());
    let bytes = digest.as_ref();
    URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() / 2])
}

/// The token endpoint's success body (RFC 6749 §5.1). `Debug` shows no token.
#[derive(Clone, Serialize)]
pub struct TokenResponse {
    /// The JWT.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: i64,
    /// Granted scope, when any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Only for grants that involve a user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// OpenID Connect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// RFC 8693 §2.2.1: what `access_token` holds, for token exchange.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_hash_follows_oidc_core() {
        // OIDC Core §A.3 example: access token and its at_hash (RS256 → SHA-256).
        assert_eq!(
            at_hash(
                SigningAlg::RS256,
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(at_hash(SigningAlg::EdDSA, "x").len(), 43);
    }
}
