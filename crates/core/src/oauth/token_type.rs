//! The token type identifiers of RFC 8693 §3 (`subject_token_type`, `actor_token_type`,
//! `requested_token_type`, `issued_token_type`): one list, spelled only here.

/// A token type URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenTypeUri {
    /// `urn:ietf:params:oauth:token-type:access_token`.
    AccessToken,
    /// `urn:ietf:params:oauth:token-type:refresh_token`.
    RefreshToken,
    /// `urn:ietf:params:oauth:token-type:id_token`.
    IdToken,
    /// `urn:ietf:params:oauth:token-type:jwt`.
    Jwt,
}

impl TokenTypeUri {
    /// Every type.
    pub const ALL: &'static [TokenTypeUri] = &[
        Self::AccessToken,
        Self::RefreshToken,
        Self::IdToken,
        Self::Jwt,
    ];

    /// The URI.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "urn:ietf:params:oauth:token-type:access_token",
            Self::RefreshToken => "urn:ietf:params:oauth:token-type:refresh_token",
            Self::IdToken => "urn:ietf:params:oauth:token-type:id_token",
            Self::Jwt => "urn:ietf:params:oauth:token-type:jwt",
        }
    }

    /// The type of a URI, or `None` for one not in RFC 8693 §3.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for t in TokenTypeUri::ALL {
            assert_eq!(TokenTypeUri::parse(t.as_str()), Some(*t));
        }
        assert_eq!(TokenTypeUri::parse("access_token"), None);
    }
}
