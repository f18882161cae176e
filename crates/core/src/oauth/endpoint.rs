//! The endpoints where a client authenticates: one list for the gateway's routes, the rate
//! limiter's keys and metric labels, and the audit trail's sampled failures.

/// An endpoint of an authorization server at which clients authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientEndpoint {
    /// RFC 6749 §3.2.
    Token,
    /// RFC 7662.
    Introspection,
    /// RFC 7009.
    Revocation,
    /// RFC 9126 pushed authorization requests.
    PushedAuthorization,
    /// RFC 8628 §3.1.
    DeviceAuthorization,
}

impl ClientEndpoint {
    /// Every client-authenticating endpoint.
    pub const ALL: &'static [ClientEndpoint] = &[
        Self::Token,
        Self::Introspection,
        Self::Revocation,
        Self::PushedAuthorization,
        Self::DeviceAuthorization,
    ];

    /// The path below the issuer, e.g. `oauth2/token`.
    #[must_use]
    pub fn path(self) -> &'static str {
        match self {
            Self::Token => "oauth2/token",
            Self::Introspection => "oauth2/introspect",
            Self::Revocation => "oauth2/revoke",
            Self::PushedAuthorization => "oauth2/par",
            Self::DeviceAuthorization => "oauth2/device_authorization",
        }
    }

    /// The endpoint's name in rate-limit keys and metric labels (a closed set).
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Introspection => "introspect",
            Self::Revocation => "revoke",
            Self::PushedAuthorization => "par",
            Self::DeviceAuthorization => "device_authorization",
        }
    }

    /// Whether public clients (`none`, a bare `client_id`) may use it: at the token endpoint
    /// for the grants they may use, and at revocation (RFC 7009 §5 lets a public client revoke
    /// its own tokens), at PAR (RFC 9126 §2.1, with `client_id`) and at device authorization
    /// (RFC 8628 §3.1: public clients are its main users); not at introspection, which needs
    /// authorization (RFC 7662 §2.1).
    /// Discovery's `…_endpoint_auth_methods_supported` follow it.
    #[must_use]
    pub fn admits_public_clients(self) -> bool {
        match self {
            Self::Token
            | Self::Revocation
            | Self::PushedAuthorization
            | Self::DeviceAuthorization => true,
            Self::Introspection => false,
        }
    }

    /// The endpoint's URL on the server with this issuer (an accepted client-assertion `aud`).
    #[must_use]
    pub fn url(self, issuer: &str) -> String {
        format!("{issuer}/{}", self.path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_labels_are_distinct() {
        for (i, a) in ClientEndpoint::ALL.iter().enumerate() {
            for b in &ClientEndpoint::ALL[i + 1..] {
                assert_ne!(a.path(), b.path());
                assert_ne!(a.label(), b.label());
            }
        }
        assert_eq!(
            ClientEndpoint::Token.url("https://as.example/t/s"),
            "https://as.example/t/s/oauth2/token"
        );
    }
}
