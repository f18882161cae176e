//! The grant types (RFC 6749 §4, RFC 7591 `grant_types`): the one list that discovery, client
//! registration and the token endpoint's dispatch all read. A grant's name appears here and
//! nowhere else in the code.

use std::fmt;
use std::str::FromStr;

/// A grant type Tollgate serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantType {
    /// RFC 6749 §4.1.
    AuthorizationCode,
    /// RFC 6749 §6.
    RefreshToken,
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 8628 §3.4: a device polls with its `device_code`.
    DeviceCode,
    /// RFC 8693: a token traded for another.
    TokenExchange,
    /// RFC 7523 §2.1: a trusted issuer's JWT traded for a token.
    JwtBearer,
}

impl GrantType {
    /// Every grant type, in the order discovery lists them.
    pub const ALL: &'static [GrantType] = &[
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::DeviceCode,
        Self::TokenExchange,
        Self::JwtBearer,
    ];

    /// The registered name (`grant_type` on the wire).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            Self::TokenExchange => "urn:ietf:params:oauth:grant-type:token-exchange",
            Self::JwtBearer => "urn:ietf:params:oauth:grant-type:jwt-bearer",
        }
    }

    /// The grant type of a registered name, or `None` for one Tollgate does not serve.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|g| g.as_str() == s)
    }

    /// Whether a client holding this grant also needs `redirect_uris` and a response type:
    /// the grants that start at the authorization endpoint.
    #[must_use]
    pub fn uses_authorization_endpoint(self) -> bool {
        matches!(self, Self::AuthorizationCode)
    }

    /// Whether a public client (`none`) may use it (the contract's second round: the code
    /// flow, the device flow, and refreshing what they issued).
    #[must_use]
    pub fn open_to_public_clients(self) -> bool {
        matches!(
            self,
            Self::AuthorizationCode | Self::DeviceCode | Self::RefreshToken
        )
    }

    /// Whether it issues tokens for a user who logged in (and so may come with refresh and
    /// ID tokens).
    #[must_use]
    pub fn involves_user_login(self) -> bool {
        matches!(self, Self::AuthorizationCode | Self::DeviceCode)
    }
}

impl fmt::Display for GrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `grant_type` that names no grant Tollgate serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownGrantType;

impl fmt::Display for UnknownGrantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unsupported grant type")
    }
}

impl std::error::Error for UnknownGrantType {}

impl FromStr for GrantType {
    type Err = UnknownGrantType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or(UnknownGrantType)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for g in GrantType::ALL {
            assert_eq!(GrantType::parse(g.as_str()), Some(*g));
            assert_eq!(g.as_str().parse::<GrantType>(), Ok(*g));
        }
        assert_eq!(GrantType::parse("password"), None);
        assert_eq!(GrantType::parse("Client_Credentials"), None);
        assert_eq!("".parse::<GrantType>(), Err(UnknownGrantType));
    }
}
