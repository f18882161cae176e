//! Access tokens (RFC 9068 JWT profile) and the token endpoint's success response.

use serde::Serialize;

use crate::keys::{KeyError, SigningKey, TokenType};

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
