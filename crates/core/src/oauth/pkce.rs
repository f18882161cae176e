//! Proof Key for Code Exchange (RFC 7636): the challenge sent to `/oauth2/authorize` and the
//! verifier later sent to the token endpoint. `S256` always; `plain` only where the server
//! allows it, and never for public clients (RFC 9700 §2.1.1).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::secrets::ct_eq;

/// A `code_challenge_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    /// `BASE64URL(SHA256(verifier))`.
    S256,
    /// The verifier itself.
    #[serde(rename = "plain")]
    Plain,
}

impl Method {
    /// Parses the parameter value.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "S256" => Some(Self::S256),
            "plain" => Some(Self::Plain),
            _ => None,
        }
    }

    /// The parameter value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S256 => "S256",
            Self::Plain => "plain",
        }
    }
}

/// Whether `s` has the RFC 7636 §4.1 shape shared by verifiers and challenges: 43–128
/// characters of `A-Z a-z 0-9 - . _ ~`.
#[must_use]
pub fn well_formed(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `verifier` answers `challenge` (RFC 7636 §4.6), compared in constant time.
#[must_use]
pub fn verify(method: Method, challenge: &str, verifier: &str) -> bool {
    if !well_formed(verifier) {
        return false;
    }
    match method {
        Method::S256 => {
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
            ct_eq(
                URL_SAFE_NO_PAD.encode(digest).as_bytes(),
                challenge.as_bytes(),
            )
        }
        Method::Plain => ct_eq(verifier.as_bytes(), challenge.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(verify(Method::S256, challenge, verifier));
        assert!(!verify(
            Method::S256,
            challenge,
            &verifier.replace('d', "e")
        ));
        assert!(!verify(Method::Plain, challenge, verifier));
        assert!(verify(Method::Plain, verifier, verifier));
    }

    #[test]
    fn shapes() {
        assert!(well_formed(&"a".repeat(43)));
        assert!(!well_formed(&"a".repeat(42)));
        assert!(!well_formed(&"a".repeat(129)));
        assert!(!well_formed(&format!("{}+", "a".repeat(43))));
        assert_eq!(Method::parse("S256"), Some(Method::S256));
        assert_eq!(Method::parse("s256"), None);
    }
}
