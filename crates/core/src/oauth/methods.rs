//! Two protocol lists a server is configured with: the JWS algorithms it signs with (RFC 7518)
//! and the client-authentication methods, by their RFC 7591 `token_endpoint_auth_method`
//! names. Discovery, client validation and dispatch all read these enums.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// JWS algorithms a server signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
pub enum SigningAlg {
    /// ECDSA P-256 with SHA-256 (the default).
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlg {
    /// The JWS `alg` name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Parses a JWS `alg` name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ES256" => Some(Self::ES256),
            "RS256" => Some(Self::RS256),
            "PS256" => Some(Self::PS256),
            "EdDSA" => Some(Self::EdDSA),
            _ => None,
        }
    }
}

/// Client-authentication methods, by their RFC 7591 `token_endpoint_auth_method` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// RFC 6749 §2.3.1, HTTP Basic.
    ClientSecretBasic,
    /// RFC 6749 §2.3.1, body parameters.
    ClientSecretPost,
    /// RFC 7523, HMAC-signed assertion.
    ClientSecretJwt,
    /// RFC 7523, assertion signed with the client's private key.
    PrivateKeyJwt,
    /// RFC 8705 §2.1, PKI-bound client certificate.
    TlsClientAuth,
    /// RFC 8705 §2.2, self-signed client certificate.
    SelfSignedTlsClientAuth,
    /// A public client.
    None,
}

impl AuthMethod {
    /// The registered name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
            Self::None => "none",
        }
    }

    /// Whether the server generates a secret for clients of this method.
    #[must_use]
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            Self::ClientSecretBasic | Self::ClientSecretPost | Self::ClientSecretJwt
        )
    }

    /// Every method, in the order discovery lists them.
    pub const ALL: &'static [AuthMethod] = &[
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::ClientSecretJwt,
        Self::PrivateKeyJwt,
        Self::TlsClientAuth,
        Self::SelfSignedTlsClientAuth,
        Self::None,
    ];

    /// Whether the method needs a client certificate to reach the gateway.
    #[must_use]
    pub fn needs_certificate(self) -> bool {
        matches!(self, Self::TlsClientAuth | Self::SelfSignedTlsClientAuth)
    }

    /// The methods a gateway can serve: all of them when client certificates can arrive (TLS
    /// with a client CA, or a trusted proxy header), else all but the two TLS methods.
    #[must_use]
    pub fn servable(client_certificates: bool) -> Vec<AuthMethod> {
        Self::ALL
            .iter()
            .copied()
            .filter(|m| client_certificates || !m.needs_certificate())
            .collect()
    }
}
