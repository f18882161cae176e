//! How an authorization response reaches the client: the OAuth 2.0 response modes (Multiple
//! Response Type Encoding Practices §2.1, Form Post Response Mode) and their JWT-secured forms
//! (JARM, the `.jwt` modes). One list for request validation, discovery and delivery.

use serde::{Deserialize, Serialize};

/// A response mode, as the authorization request names it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResponseMode {
    /// Parameters in the redirect URI's query (the default for `response_type=code`).
    #[default]
    #[serde(rename = "query")]
    Query,
    /// Parameters in the redirect URI's fragment.
    #[serde(rename = "fragment")]
    Fragment,
    /// An auto-submitting HTML form posting the parameters to the redirect URI.
    #[serde(rename = "form_post")]
    FormPost,
    /// JARM: one signed `response` parameter in the query (`jwt` means this for `code`).
    #[serde(rename = "query.jwt")]
    QueryJwt,
    /// JARM: one signed `response` parameter in the fragment.
    #[serde(rename = "fragment.jwt")]
    FragmentJwt,
    /// JARM: one signed `response` parameter, form-posted.
    #[serde(rename = "form_post.jwt")]
    FormPostJwt,
}

impl ResponseMode {
    /// The names discovery lists in `response_modes_supported`.
    pub const NAMES: &'static [&'static str] = &[
        "query",
        "fragment",
        "form_post",
        "jwt",
        "query.jwt",
        "fragment.jwt",
        "form_post.jwt",
    ];

    /// The mode a `response_mode` value names, for `response_type=code` (where the JARM
    /// `jwt` shorthand means `query.jwt`).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "query" => Self::Query,
            "fragment" => Self::Fragment,
            "form_post" => Self::FormPost,
            "jwt" | "query.jwt" => Self::QueryJwt,
            "fragment.jwt" => Self::FragmentJwt,
            "form_post.jwt" => Self::FormPostJwt,
            _ => return None,
        })
    }

    /// The mode's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Fragment => "fragment",
            Self::FormPost => "form_post",
            Self::QueryJwt => "query.jwt",
            Self::FragmentJwt => "fragment.jwt",
            Self::FormPostJwt => "form_post.jwt",
        }
    }

    /// Whether the response is one signed JWT (JARM).
    #[must_use]
    pub fn is_jwt(self) -> bool {
        matches!(self, Self::QueryJwt | Self::FragmentJwt | Self::FormPostJwt)
    }

    /// How the parameters travel once encoded.
    #[must_use]
    pub fn carrier(self) -> Carrier {
        match self {
            Self::Query | Self::QueryJwt => Carrier::Query,
            Self::Fragment | Self::FragmentJwt => Carrier::Fragment,
            Self::FormPost | Self::FormPostJwt => Carrier::FormPost,
        }
    }
}

/// Where a response's parameters travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// The redirect URI's query.
    Query,
    /// The redirect URI's fragment.
    Fragment,
    /// A form posted to the redirect URI.
    FormPost,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in ResponseMode::NAMES {
            let mode = ResponseMode::parse(name).unwrap();
            if *name != "jwt" {
                assert_eq!(mode.as_str(), *name);
                let json = serde_json::to_string(&mode).unwrap();
                assert_eq!(json, format!("\"{name}\""));
            }
        }
        assert_eq!(ResponseMode::parse("jwt"), Some(ResponseMode::QueryJwt));
        assert_eq!(ResponseMode::parse("web_message"), None);
        assert!(ResponseMode::FormPostJwt.is_jwt() && !ResponseMode::FormPost.is_jwt());
    }
}
