//! The parameters of a request to a client-authenticated endpoint (token, introspection,
//! revocation), decoded once from either body format with every input limit applied. The
//! grants and the client-authentication methods read the typed fields, never the raw body.

use serde_json::Value;

use super::OAuthError;
use crate::limits::{json_depth, Limits};
use crate::secrets::ClientSecret;

/// Parameters that RFC 8707 allows more than once.
const REPEATABLE: &[&str] = &["resource"];

/// Parameters that carry a signed token (an assertion, or a token to exchange): they hold
/// signatures and sometimes certificates, and have their own limit.
const TOKEN_VALUED: &[&str] = &[
    "client_assertion",
    "assertion",
    "subject_token",
    "actor_token",
];

/// The parameters of a request to the token, introspection or revocation endpoint. Empty
/// values count as absent (RFC 6749 §3.1); unknown parameters are ignored (§3.2); a repeated
/// parameter is refused (§3.1).
#[derive(Debug, Default, Clone)]
pub struct TokenParams {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// RFC 8707 `resource`, possibly several.
    pub resource: Vec<String>,
    /// `audience` (vendor form, space-delimited).
    pub audience: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `client_secret` (kept out of `Debug` by [`ClientSecret`]).
    pub client_secret: Option<ClientSecret>,
    /// RFC 7523 `client_assertion_type`.
    pub client_assertion_type: Option<String>,
    /// RFC 7523 `client_assertion`.
    pub client_assertion: Option<ClientSecret>,
    /// RFC 7662 / RFC 7009 `token` (kept out of `Debug`).
    pub token: Option<ClientSecret>,
    /// RFC 7662 / RFC 7009 `token_type_hint`.
    pub token_type_hint: Option<String>,
    /// RFC 6749 §4.1.3 `code` (kept out of `Debug`).
    pub code: Option<ClientSecret>,
    /// RFC 6749 §4.1.3 `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// RFC 7636 §4.5 `code_verifier` (kept out of `Debug`).
    pub code_verifier: Option<ClientSecret>,
    /// RFC 6749 §6 `refresh_token` (kept out of `Debug`).
    pub refresh_token: Option<ClientSecret>,
    /// RFC 8628 §3.4 `device_code` (kept out of `Debug`).
    pub device_code: Option<ClientSecret>,
    /// RFC 8693 §2.1 `subject_token` (kept out of `Debug`).
    pub subject_token: Option<ClientSecret>,
    /// RFC 8693 §2.1 `subject_token_type`.
    pub subject_token_type: Option<String>,
    /// RFC 8693 §2.1 `actor_token` (kept out of `Debug`).
    pub actor_token: Option<ClientSecret>,
    /// RFC 8693 §2.1 `actor_token_type`.
    pub actor_token_type: Option<String>,
    /// RFC 8693 §2.1 `requested_token_type`.
    pub requested_token_type: Option<String>,
    /// RFC 7523 §2.1 `assertion` (kept out of `Debug`).
    pub assertion: Option<ClientSecret>,
}

impl TokenParams {
    /// Builds the parameters from name/value pairs, under the default [`Limits`].
    ///
    /// # Errors
    /// `invalid_request` for repeated, oversized or too many parameters.
    pub fn from_pairs<I>(pairs: I) -> Result<Self, OAuthError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        Self::parse(pairs, &Limits::default())
    }

    /// Builds the parameters from name/value pairs, as decoded from a form or a JSON object.
    ///
    /// # Errors
    /// `invalid_request` for repeated parameters, or one that breaks a limit (named, with
    /// its value).
    pub fn parse<I>(pairs: I, limits: &Limits) -> Result<Self, OAuthError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut p = Self::default();
        let mut seen: Vec<String> = Vec::new();
        for (i, (name, value)) in pairs.into_iter().enumerate() {
            if i >= limits.max_params {
                return Err(OAuthError::invalid_request(format!(
                    "the request has more than {} parameters (the limit)",
                    limits.max_params
                )));
            }
            // Assertions carry signatures and sometimes certificates: their own limit.
            let max = if TOKEN_VALUED.contains(&name.as_str()) {
                limits.max_assertion_bytes
            } else {
                limits.max_param_bytes
            };
            if value.len() > max {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` is longer than {max} bytes (the limit)",
                    printable(&name)
                )));
            }
            if !REPEATABLE.contains(&name.as_str()) {
                if seen.contains(&name) {
                    return Err(OAuthError::invalid_request(format!(
                        "parameter `{}` is repeated",
                        printable(&name)
                    )));
                }
                seen.push(name.clone());
            }
            if value.is_empty() {
                continue;
            }
            match name.as_str() {
                "grant_type" => p.grant_type = Some(value),
                "scope" => p.scope = Some(value),
                "resource" => p.resource.push(value),
                "audience" => p.audience = Some(value),
                "client_id" => p.client_id = Some(value),
                "client_secret" => p.client_secret = Some(ClientSecret::new(value)),
                "client_assertion_type" => p.client_assertion_type = Some(value),
                "client_assertion" => {
                    p.client_assertion = Some(ClientSecret::new(value));
                }
                "token" => p.token = Some(ClientSecret::new(value)),
                "token_type_hint" => p.token_type_hint = Some(value),
                "code" => p.code = Some(ClientSecret::new(value)),
                "redirect_uri" => p.redirect_uri = Some(value),
                "code_verifier" => p.code_verifier = Some(ClientSecret::new(value)),
                "refresh_token" => p.refresh_token = Some(ClientSecret::new(value)),
                "device_code" => p.device_code = Some(ClientSecret::new(value)),
                "subject_token" => p.subject_token = Some(ClientSecret::new(value)),
                "subject_token_type" => p.subject_token_type = Some(value),
                "actor_token" => p.actor_token = Some(ClientSecret::new(value)),
                "actor_token_type" => p.actor_token_type = Some(value),
                "requested_token_type" => p.requested_token_type = Some(value),
                "assertion" => p.assertion = Some(ClientSecret::new(value)),
                _ => {}
            }
        }
        Ok(p)
    }

    /// Parses an `application/x-www-form-urlencoded` body (RFC 6749 §3.2).
    ///
    /// # Errors
    /// `invalid_request` for a body that is not UTF-8 form encoding, or breaks a limit.
    pub fn from_form(body: &[u8], limits: &Limits) -> Result<Self, OAuthError> {
        Self::parse(form_pairs(body, limits)?, limits)
    }

    /// Parses an `application/json` body: an object of string members (`resource` may be an
    /// array of strings; `null` members are absent), the vendor style.
    ///
    /// # Errors
    /// `invalid_request` for anything else, naming the member, or a broken limit.
    pub fn from_json(body: &[u8], limits: &Limits) -> Result<Self, OAuthError> {
        Self::parse(json_pairs(body, limits)?, limits)
    }
}

/// Decodes a form body into pairs, stopping at the parameter limit: a body of a million
/// `&`s costs no more than one of `max_params + 1` pairs.
pub fn form_pairs(body: &[u8], limits: &Limits) -> Result<Vec<(String, String)>, OAuthError> {
    if std::str::from_utf8(body).is_err() {
        return Err(OAuthError::invalid_request(
            "request body is not valid UTF-8",
        ));
    }
    let mut pairs = Vec::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        if pairs.len() > limits.max_params {
            break;
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Ok(pairs)
}

fn json_pairs(body: &[u8], limits: &Limits) -> Result<Vec<(String, String)>, OAuthError> {
    if json_depth(body) > limits.max_json_depth {
        return Err(OAuthError::invalid_request(format!(
            "JSON request body is nested deeper than {} levels (the limit)",
            limits.max_json_depth
        )));
    }
    let members = match serde_json::from_slice::<Members>(body) {
        Ok(Members(m)) => m,
        // Only the top level can have the wrong type: members may hold any value.
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(OAuthError::invalid_request(
                "JSON request body must be an object",
            ))
        }
        Err(e) => {
            return Err(OAuthError::invalid_request(format!(
                "request body is not valid JSON (line {} column {})",
                e.line(),
                e.column()
            )))
        }
    };
    // A member given twice is refused like a repeated form parameter (RFC 6749 §3.1), for
    // every member: serde_json's own map would silently keep the last one.
    let mut seen = std::collections::HashSet::with_capacity(members.len());
    if let Some((name, _)) = members.iter().find(|(name, _)| !seen.insert(name.as_str())) {
        return Err(OAuthError::invalid_request(format!(
            "member `{}` is repeated",
            printable(name)
        )));
    }
    let mut pairs = Vec::with_capacity(members.len());
    for (name, value) in members {
        match value {
            Value::String(s) => pairs.push((name, s)),
            Value::Null => {}
            Value::Array(items) if name == "resource" => {
                for item in items {
                    let Value::String(s) = item else {
                        return Err(OAuthError::invalid_request(
                            "`resource` must be a string or an array of strings",
                        ));
                    };
                    pairs.push((name.clone(), s));
                }
            }
            _ => {
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{}` must be a string",
                    printable(&name)
                )));
            }
        }
    }
    Ok(pairs)
}

/// A JSON object's members in document order, repeats included (a map would drop them).
struct Members(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some(member) = map.next_entry::<String, Value>()? {
                    members.push(member);
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// A parameter name made safe to echo in an error: at most 64 printable ASCII characters.
fn printable(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| ((*a).into(), (*b).into())).collect()
    }

    #[test]
    fn empty_values_are_absent_and_unknown_ignored() {
        let p = TokenParams::from_pairs(pairs(&[
            ("grant_type", "client_credentials"),
            ("scope", ""),
            ("x", "y"),
        ]))
        .unwrap();
        assert_eq!(p.grant_type.as_deref(), Some("client_credentials"));
        assert!(p.scope.is_none());
    }

    #[test]
    fn repeated_parameters_are_invalid_except_resource() {
        let e = TokenParams::from_pairs(pairs(&[("scope", "a"), ("scope", "b")])).unwrap_err();
        assert_eq!(e.code.as_str(), "invalid_request");
        let p = TokenParams::from_pairs(pairs(&[
            ("resource", "https://a"),
            ("resource", "https://b"),
        ]))
        .unwrap();
        assert_eq!(p.resource.len(), 2);
    }

    #[test]
    fn limits_are_enforced() {
        let limits = Limits::default();
        let many: Vec<_> = (0..=limits.max_params)
            .map(|i| (format!("p{i}"), "v".to_string()))
            .collect();
        assert!(TokenParams::from_pairs(many).is_err());
        let long = vec![("scope".to_string(), "a".repeat(limits.max_param_bytes + 1))];
        assert!(TokenParams::from_pairs(long).is_err());
    }

    #[test]
    fn assertions_have_their_own_limit() {
        let limits = Limits {
            max_param_bytes: 300,
            max_assertion_bytes: 600,
            ..Limits::default()
        };
        let assertion = |n: usize| vec![("client_assertion".to_string(), "a".repeat(n))];
        assert!(TokenParams::parse(assertion(600), &limits).is_ok());
        let e = TokenParams::parse(assertion(601), &limits).unwrap_err();
        assert_eq!(
            e.description,
            "parameter `client_assertion` is longer than 600 bytes (the limit)"
        );
        let e = TokenParams::parse(vec![("scope".into(), "a".repeat(301))], &limits).unwrap_err();
        assert_eq!(
            e.description,
            "parameter `scope` is longer than 300 bytes (the limit)"
        );
    }

    #[test]
    fn json_bodies_take_strings_only() {
        let limits = Limits::default();
        let p = TokenParams::from_json(
            br#"{"grant_type":"client_credentials","scope":null}"#,
            &limits,
        )
        .unwrap();
        assert_eq!(p.grant_type.as_deref(), Some("client_credentials"));
        assert!(p.scope.is_none());
        let p =
            TokenParams::from_json(br#"{"resource":["https://a","https://b"]}"#, &limits).unwrap();
        assert_eq!(p.resource.len(), 2);
        for bad in [
            &br#"{"grant_type":1}"#[..],
            b"[]",
            b"{",
            br#"{"scope":{"a":1}}"#,
            br#"{"resource":[1]}"#,
        ] {
            assert_eq!(
                TokenParams::from_json(bad, &limits).unwrap_err().status,
                400
            );
        }
    }

    #[test]
    fn repeated_json_members_are_refused() {
        let limits = Limits::default();
        for body in [
            &br#"{"grant_type":"client_credentials","scope":"a","scope":"b"}"#[..],
            br#"{"client_id":"a","client_id":"a"}"#,
            br#"{"scope":null,"scope":"b"}"#,
            br#"{"resource":"https://a","resource":"https://b"}"#,
            br#"{"resource":["https://a"],"resource":["https://b"]}"#,
        ] {
            let e = TokenParams::from_json(body, &limits).unwrap_err();
            assert_eq!(
                (e.status, e.code.as_str()),
                (400, "invalid_request"),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert!(e.description.contains("is repeated"), "{e}");
        }
        // Members are read in order and the body keeps working when nothing repeats.
        let p = TokenParams::from_json(br#"{"scope":"a","grant_type":"x"}"#, &limits).unwrap();
        assert_eq!(p.scope.as_deref(), Some("a"));
        let e = TokenParams::from_json(br#"{"a":1,"#, &limits).unwrap_err();
        assert!(e.description.contains("not valid JSON"), "{e}");
        for top in [&b"[]"[..], b"\"x\"", b"1", b"null"] {
            let e = TokenParams::from_json(top, &limits).unwrap_err();
            assert_eq!(e.description, "JSON request body must be an object");
        }
    }

    #[test]
    fn deep_json_is_refused_before_parsing() {
        let limits = Limits {
            max_json_depth: 4,
            ..Limits::default()
        };
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(10), "]".repeat(10));
        let e = TokenParams::from_json(deep.as_bytes(), &limits).unwrap_err();
        assert_eq!(
            e.description,
            "JSON request body is nested deeper than 4 levels (the limit)"
        );
    }

    #[test]
    fn form_bodies_must_be_utf8_and_stop_at_the_parameter_limit() {
        let limits = Limits::default();
        let p =
            TokenParams::from_form(b"grant_type=client_credentials&scope=a+b", &limits).unwrap();
        assert_eq!(p.scope.as_deref(), Some("a b"));
        assert!(TokenParams::from_form(b"scope=\xff", &limits).is_err());
        let flood =
            "&".repeat(1_000_000) + &(0..100).map(|i| format!("x{i}=1&")).collect::<String>();
        let e = TokenParams::from_form(flood.as_bytes(), &limits).unwrap_err();
        assert!(e.description.contains("more than 32 parameters"), "{e}");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let p = TokenParams::from_pairs(pairs(&[
            ("client_secret", "hunter2"),
            ("client_assertion", "eyJ.x.y"),
        ]))
        .unwrap();
        let dbg = format!("{p:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("eyJ"));
    }
}
