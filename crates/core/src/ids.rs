//! Validated identifiers. Every id is parsed once at the edge; a bare `&str` never travels
//! where an id is meant.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Empty or longer than the limit.
    #[error("must be 1 to {max} characters long")]
    Length {
        /// The limit that was exceeded.
        max: usize,
    },
    /// A character outside the allowed set.
    #[error("{0}")]
    Charset(&'static str),
}

/// Longest tenant, server or credential id.
pub const SLUG_MAX_LEN: usize = 64;
/// The tenant / server / credential id grammar as an ECMA-262 pattern (the OpenAPI document's
/// `pattern`, with `minLength` 1 and `maxLength` [`SLUG_MAX_LEN`]); a property test holds it
/// equal to what [`TenantId::parse`] accepts.
pub const SLUG_PATTERN: &str = "^[a-z0-9][a-z0-9-]*$";
/// Longest client or user id.
pub const URL_SAFE_MAX_LEN: usize = 128;
/// The client / user id grammar (URL-unreserved characters) as an ECMA-262 pattern, with
/// `minLength` 1 and `maxLength` [`URL_SAFE_MAX_LEN`]; held equal to [`ClientId::parse`] by a
/// property test.
pub const URL_SAFE_PATTERN: &str = "^[A-Za-z0-9._~-]+$";

/// Checks the tenant / server id grammar: 1–64 chars of `[a-z0-9-]`, not starting with `-`.
fn parse_slug(s: &str) -> Result<(), IdError> {
    if s.is_empty() || s.len() > SLUG_MAX_LEN {
        return Err(IdError::Length { max: SLUG_MAX_LEN });
    }
    if s.starts_with('-') {
        return Err(IdError::Charset("must not start with '-'"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(IdError::Charset("may contain only a-z, 0-9 and '-'"));
    }
    Ok(())
}

/// Checks the client / user id grammar: 1–128 URL-unreserved characters.
fn parse_url_safe(s: &str) -> Result<(), IdError> {
    if s.is_empty() || s.len() > URL_SAFE_MAX_LEN {
        return Err(IdError::Length {
            max: URL_SAFE_MAX_LEN,
        });
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(IdError::Charset(
            "may contain only A-Z, a-z, 0-9 and '-', '.', '_', '~'",
        ));
    }
    Ok(())
}

/// The OpenAPI schema of an id: a string of the grammar `pattern`, 1 to `max` characters.
fn id_schema(
    description: &str,
    pattern: &str,
    max: usize,
    example: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(pattern))
        .examples([example])
        .into()
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $check:expr, schema($what:literal, $pattern:expr, $max:expr, $example:literal)) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an identifier.
            ///
            /// # Errors
            /// When the text breaks the identifier grammar.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                let check: fn(&str) -> Result<(), IdError> = $check;
                check(s)?;
                Ok(Self(s.to_owned()))
            }

            /// The identifier as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        /// The grammar [`Self::parse`] checks, stated with the constants it checks with.
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                id_schema($what, $pattern, $max, $example)
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

id_type!(
    /// A tenant id: 1–64 chars of `[a-z0-9-]`, not starting with `-`.
    TenantId,
    parse_slug,
    schema(
        "A tenant id: 1–64 characters of `a-z`, `0-9` and `-`, not starting with `-`.",
        SLUG_PATTERN,
        SLUG_MAX_LEN,
        "acme"
    )
);
id_type!(
    /// An authorization server (workspace) id inside a tenant; same grammar as [`TenantId`].
    ServerId,
    parse_slug,
    schema(
        "An authorization server id, unique in its tenant: 1–64 characters of `a-z`, `0-9` \
         and `-`, not starting with `-`.",
        SLUG_PATTERN,
        SLUG_MAX_LEN,
        "main"
    )
);
id_type!(
    /// An OAuth client id: 1–128 URL-unreserved characters (`A-Z a-z 0-9 - . _ ~`), so it
    /// round-trips through form encoding and needs no escaping in HTTP Basic or URL paths.
    ClientId,
    parse_url_safe,
    schema(
        "An OAuth client id: 1–128 URL-unreserved characters (`A-Z a-z 0-9 - . _ ~`).",
        URL_SAFE_PATTERN,
        URL_SAFE_MAX_LEN,
        "svc-api"
    )
);

id_type!(
    /// A tenant-scoped admin credential's id (not its token): same grammar as [`TenantId`];
    /// generated as a UUID v4.
    CredentialId,
    parse_slug,
    schema(
        "An admin credential's id (not its token): a UUID when generated; 1–64 characters \
         of `a-z`, `0-9` and `-`, not starting with `-`.",
        SLUG_PATTERN,
        SLUG_MAX_LEN,
        "3f2c1a9e-5b7d-4c1e-9a2b-6d8e0f1a2b3c"
    )
);

impl CredentialId {
    /// A fresh random credential id (a UUID v4 in its hyphenated form).
    #[must_use]
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

impl ClientId {
    /// A fresh random client id (a UUID v4 in its hyphenated form).
    #[must_use]
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

id_type!(
    /// A user of a server's built-in login, and the `sub` of the tokens issued for them: a
    /// UUID v4 when generated; 1–128 URL-unreserved characters, like [`ClientId`].
    UserId,
    parse_url_safe,
    schema(
        "A user id, the `sub` of their tokens: a UUID when generated; 1–128 URL-unreserved \
         characters (`A-Z a-z 0-9 - . _ ~`).",
        URL_SAFE_PATTERN,
        URL_SAFE_MAX_LEN,
        "0b6f2d3e-8c4a-4f5b-9e1d-2a3b4c5d6e7f"
    )
);

impl UserId {
    /// A fresh random user id (a UUID v4 in its hyphenated form).
    #[must_use]
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_contract_tenant_ids() {
        for ok in ["a", "acme", "acme-2", "0", &"x".repeat(64)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_tenant_ids() {
        for bad in ["", "-a", "Acme", "a_b", "a/b", "a b", "é", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
            assert!(ServerId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn client_ids_are_url_safe() {
        assert!(ClientId::parse("svc.api_1~x-y").is_ok());
        for bad in ["", "a:b", "a b", "a%20", "a/b", &"c".repeat(129)] {
            assert!(ClientId::parse(bad).is_err(), "{bad}");
        }
        assert!(ClientId::parse(ClientId::generate().as_str()).is_ok());
    }

    #[test]
    fn generated_ids_fit_their_grammar() {
        assert!(CredentialId::parse(CredentialId::generate().as_str()).is_ok());
        assert!(UserId::parse(UserId::generate().as_str()).is_ok());
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<TenantId>("\"ok\"").is_ok());
        assert!(serde_json::from_str::<TenantId>("\"NO\"").is_err());
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;

        /// The grammar, restated independently of the parser.
        fn slug_ok(s: &str) -> bool {
            (1..=64).contains(&s.len())
                && !s.starts_with('-')
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        }

        fn client_id_ok(s: &str) -> bool {
            (1..=128).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        }

        /// Whether `s` is valid under `T`'s OpenAPI schema.
        fn fits<T: utoipa::PartialSchema>(s: &str) -> bool {
            let schema = serde_json::to_value(T::schema()).unwrap();
            let pattern = regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
            let len = s.chars().count() as u64;
            pattern.is_match(s)
                && schema["minLength"].as_u64().is_some_and(|min| len >= min)
                && schema["maxLength"].as_u64().is_some_and(|max| len <= max)
        }

        proptest! {
            #[test]
            fn any_text_parses_exactly_when_it_fits_the_grammar(s in "\\PC{0,70}|[a-z0-9-]{0,70}") {
                prop_assert_eq!(TenantId::parse(&s).is_ok(), slug_ok(&s));
                prop_assert_eq!(ServerId::parse(&s).is_ok(), slug_ok(&s));
            }

            #[test]
            fn valid_slugs_round_trip(s in "[a-z0-9][a-z0-9-]{0,63}") {
                let id = TenantId::parse(&s).unwrap();
                prop_assert_eq!(id.as_str(), s.as_str());
                prop_assert_eq!(id.to_string(), s);
                let json = serde_json::to_string(&id).unwrap();
                prop_assert_eq!(serde_json::from_str::<TenantId>(&json).unwrap(), id);
            }

            #[test]
            fn client_ids_parse_exactly_when_url_safe(s in "\\PC{0,140}|[A-Za-z0-9._~-]{0,140}") {
                prop_assert_eq!(ClientId::parse(&s).is_ok(), client_id_ok(&s));
                if let Ok(id) = ClientId::parse(&s) {
                    // Form encoding round-trips it (WHATWG serializers escape `~` as `%7E`:
                    // found by this test, so "unchanged" would be too strong), and no
                    // character of it needs escaping in a URL path or HTTP Basic.
                    let encoded: String = url::form_urlencoded::byte_serialize(id.as_str().as_bytes()).collect();
                    let decoded: String = url::form_urlencoded::parse(format!("x={encoded}").as_bytes())
                        .map(|(_, v)| v.into_owned())
                        .collect();
                    prop_assert_eq!(decoded, s.clone());
                    prop_assert!(!s.contains(':') && !s.contains('/') && !s.contains('%'));
                }
            }

            /// The OpenAPI document states exactly the grammar the parsers check: a text
            /// fits the schema's `pattern`, `minLength` and `maxLength` (code points, as JSON
            /// Schema counts) exactly when `parse` accepts it.
            #[test]
            fn schemas_state_exactly_what_parsing_accepts(
                s in "\\PC{0,140}|[A-Za-z0-9._~-]{0,140}|[a-z0-9-]{0,70}|[a-z0-9-]{60,70}|[A-Za-z0-9._~-]{120,135}"
            ) {
                prop_assert_eq!(fits::<TenantId>(&s), TenantId::parse(&s).is_ok(), "{:?}", s);
                prop_assert_eq!(fits::<ServerId>(&s), ServerId::parse(&s).is_ok(), "{:?}", s);
                prop_assert_eq!(fits::<CredentialId>(&s), CredentialId::parse(&s).is_ok(), "{:?}", s);
                prop_assert_eq!(fits::<ClientId>(&s), ClientId::parse(&s).is_ok(), "{:?}", s);
                prop_assert_eq!(fits::<UserId>(&s), UserId::parse(&s).is_ok(), "{:?}", s);
            }

            #[test]
            fn deserializing_agrees_with_parsing(s in "\\PC{0,70}") {
                let json = serde_json::to_string(&s).unwrap();
                prop_assert_eq!(serde_json::from_str::<ServerId>(&json).is_ok(), ServerId::parse(&s).is_ok());
                prop_assert_eq!(serde_json::from_str::<ClientId>(&json).is_ok(), ClientId::parse(&s).is_ok());
            }
        }
    }
}
