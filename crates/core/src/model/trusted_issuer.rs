//! Trusted issuers (a server's `trusted_issuers`): the other token issuers whose JWTs this
//! server accepts as RFC 7523 §2.1 assertions (the JWT bearer grant) and as RFC 8693 subject
//! or actor tokens (token exchange). Each names its keys (`jwks` inline or `jwks_uri`, fetched
//! through the guarded outbound client, exactly like a client's), and may limit the subjects
//! and the scope it can vouch for.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::Invalid;
use crate::client_keys::ClientKeySet;
use crate::scope::Scopes;

/// Most trusted issuers one server may name.
pub const MAX_TRUSTED_ISSUERS: usize = 20;
/// Most allowed subjects one trusted issuer may list.
pub const MAX_SUBJECTS: usize = 100;
/// Longest `issuer`, `jwks_uri` or subject, in characters.
pub const MAX_ISSUER_CHARS: usize = 2048;

/// One trusted issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuer {
    /// The `iss` its tokens carry, exactly.
    #[schema(min_length = 1, max_length = 2048)]
    pub issuer: String,
    /// Its public keys, a JWK Set (exclusive with `jwks_uri`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<Value>,
    /// Where its JWK Set is published (https; cached, refetched on an unknown `kid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_length = 2048)]
    pub jwks_uri: Option<String>,
    /// The `sub` values it may vouch for; absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 100)]
    pub subjects: Option<Vec<String>>,
    /// The most its tokens can be traded for, space-delimited like a client's `scope`;
    /// absent: no scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

fn bad(i: usize, what: &str, message: impl std::fmt::Display) -> Invalid {
    Invalid::request(
        "trusted_issuers",
        format!("trusted_issuers[{i}].{what}: {message}"),
    )
}

fn printable(s: &str) -> bool {
    let n = s.chars().count();
    n > 0 && n <= MAX_ISSUER_CHARS && !s.chars().any(char::is_control)
}

impl TrustedIssuer {
    /// The scope it may vouch for.
    #[must_use]
    pub fn scopes(&self) -> Scopes {
        self.scope
            .as_deref()
            .and_then(|s| Scopes::parse(s).ok())
            .unwrap_or_default()
    }

    /// Whether it may vouch for `sub`.
    #[must_use]
    pub fn allows_subject(&self, sub: &str) -> bool {
        self.subjects
            .as_ref()
            .is_none_or(|list| list.iter().any(|s| s == sub))
    }
}

/// Validates a server's list (the rules that need no process configuration; see
/// [`check_fetch_guards`] for `jwks_uri`).
///
/// # Errors
/// `invalid_request` naming `trusted_issuers` and, in the message, the entry and member.
pub fn validate(list: &[TrustedIssuer]) -> Result<(), Invalid> {
    if list.len() > MAX_TRUSTED_ISSUERS {
        return Err(Invalid::request(
            "trusted_issuers",
            format!("must name at most {MAX_TRUSTED_ISSUERS} issuers"),
        ));
    }
    for (i, t) in list.iter().enumerate() {
        if !printable(&t.issuer) {
            return Err(bad(
                i,
                "issuer",
                format!("must be 1 to {MAX_ISSUER_CHARS} printable characters"),
            ));
        }
        if list[..i].iter().any(|o| o.issuer == t.issuer) {
            return Err(bad(i, "issuer", "is listed twice"));
        }
        match (&t.jwks, &t.jwks_uri) {
            (Some(_), Some(_)) => {
                return Err(bad(
                    i,
                    "jwks",
                    "`jwks` and `jwks_uri` are mutually exclusive",
                ))
            }
            (None, None) => return Err(bad(i, "jwks", "one of `jwks` or `jwks_uri` is required")),
            (Some(jwks), None) => {
                ClientKeySet::from_registration(jwks).map_err(|e| bad(i, "jwks", e))?;
            }
            (None, Some(uri)) => {
                if !printable(uri) {
                    return Err(bad(
                        i,
                        "jwks_uri",
                        format!("must be a URL of at most {MAX_ISSUER_CHARS} characters"),
                    ));
                }
            }
        }
        if let Some(subjects) = &t.subjects {
            if subjects.len() > MAX_SUBJECTS {
                return Err(bad(
                    i,
                    "subjects",
                    format!("must list at most {MAX_SUBJECTS} subjects"),
                ));
            }
            if subjects.iter().any(|s| !printable(s)) {
                return Err(bad(
                    i,
                    "subjects",
                    format!("each must be 1 to {MAX_ISSUER_CHARS} printable characters"),
                ));
            }
        }
        if let Some(scope) = &t.scope {
            Scopes::parse(scope).map_err(|e| bad(i, "scope", e))?;
        }
    }
    Ok(())
}

/// Checks every `jwks_uri` against the outbound client's rules, as a client's `jwks_uri` is
/// checked, and every inline `jwks` against the size limit of a fetched document.
///
/// # Errors
/// `invalid_request` naming `trusted_issuers`.
pub fn check_fetch_guards(
    list: &[TrustedIssuer],
    outbound: &crate::outbound::OutboundOptions,
    max_jwks_bytes: usize,
) -> Result<(), Invalid> {
    use crate::outbound::{check_url, OutboundError};
    for (i, t) in list.iter().enumerate() {
        if let Some(jwks) = &t.jwks {
            if serde_json::to_vec(jwks).map_or(usize::MAX, |v| v.len()) > max_jwks_bytes {
                return Err(bad(
                    i,
                    "jwks",
                    format!("must be at most {max_jwks_bytes} bytes (the limit)"),
                ));
            }
        }
        if let Some(uri) = &t.jwks_uri {
            check_url(uri, outbound).map_err(|e| match e {
                OutboundError::Address(ip) => bad(
                    i,
                    "jwks_uri",
                    format!("{ip} is a loopback, private or special-purpose address (loopback is allowed only with --outbound-allow-loopback)"),
                ),
                other => bad(i, "jwks_uri", other),
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Vec<TrustedIssuer> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn rejects_what_cannot_be_trusted() {
        let key = json!({"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
        let ok = json!([{"issuer": "https://ci.example", "jwks": {"keys": [key]}, "scope": "deploy", "subjects": ["repo:a"]}]);
        assert!(validate(&parse(ok)).is_ok());
        let rows = [
            (json!([{"issuer": "", "jwks_uri": "https://x/j"}]), "issuer"),
            (json!([{"issuer": "a"}]), "one of"),
            (
                json!([{"issuer": "a", "jwks_uri": "https://x/j", "jwks": {"keys": [key]}}]),
                "mutually exclusive",
            ),
            (json!([{"issuer": "a", "jwks": {"keys": []}}]), "jwks"),
            (
                json!([{"issuer": "a", "jwks_uri": "https://x/j"}, {"issuer": "a", "jwks_uri": "https://y/j"}]),
                "listed twice",
            ),
            (
                json!([{"issuer": "a", "jwks_uri": "https://x/j", "scope": "a\"b"}]),
                "scope",
            ),
            (
                json!([{"issuer": "a", "jwks_uri": "https://x/j", "subjects": [""]}]),
                "subjects",
            ),
        ];
        for (body, needle) in rows {
            let e = validate(&parse(body.clone())).unwrap_err();
            assert_eq!(e.field, "trusted_issuers");
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
        assert!(serde_json::from_value::<Vec<TrustedIssuer>>(
            json!([{"issuer": "a", "jwks_uri": "https://x/j", "other": 1}])
        )
        .is_err());
    }

    #[test]
    fn subjects_absent_means_any() {
        let mut t = parse(json!([{"issuer": "a", "jwks_uri": "https://x/j"}])).remove(0);
        assert!(t.allows_subject("anyone"));
        t.subjects = Some(vec!["repo:a".into()]);
        assert!(t.allows_subject("repo:a") && !t.allows_subject("repo:b"));
    }
}
