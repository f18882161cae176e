//! Tenants: the top-level isolation unit. Each holds authorization servers.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::TenantId;
use crate::model::Invalid;

/// A tenant as stored and as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tenant {
    /// 1–64 chars of `[a-z0-9-]`, not starting with `-`.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Body of `POST /admin/tenants`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// The tenant id.
    pub id: TenantId,
    /// Display name, 1–200 characters.
    pub name: String,
}

/// Body of `PATCH /admin/tenants/{tid}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    /// New display name.
    pub name: Option<String>,
}

/// Longest display name (tenants, servers, credentials), in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// A display name as an ECMA-262 pattern: printable (no control character) and not blank (at
/// least one character that is not Unicode `White_Space`, spelt out so that every regex
/// dialect reads it alike). With `maxLength` [`MAX_NAME_CHARS`] it is exactly what
/// [`validate_name`] accepts; a property test holds them equal.
pub const NAME_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*\
    [^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]\
    [^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// Checks a display name: 1–200 characters, no control characters.
///
/// # Errors
/// Names the field on failure.
pub fn validate_name(field: &'static str, name: &str) -> Result<(), Invalid> {
    let len = name.chars().count();
    if len == 0 || len > MAX_NAME_CHARS || name.trim().is_empty() {
        return Err(Invalid::request(
            field,
            format!("must be 1 to {MAX_NAME_CHARS} characters, not all blank"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(Invalid::request(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The OpenAPI document's `pattern` and `maxLength` for names accept exactly what
        /// `validate_name` does.
        #[test]
        fn name_pattern_is_the_validator(s in "\\PC{0,210}|[ \\t\\u{a0}\\u{3000}\\u{feff}\\u{85}\\u{1f}a]{0,4}|\\PC{195,205}") {
            let pattern = regex::Regex::new(NAME_PATTERN).unwrap();
            let fits = pattern.is_match(&s) && s.chars().count() <= MAX_NAME_CHARS;
            prop_assert_eq!(fits, validate_name("name", &s).is_ok(), "{:?}", s);
        }

        #[test]
        fn printable_pattern_means_no_control_characters(s in "\\PC{0,20}|[\\x00-\\x{a0}]{0,5}") {
            let pattern = regex::Regex::new(crate::model::PRINTABLE_PATTERN).unwrap();
            prop_assert_eq!(pattern.is_match(&s), !s.chars().any(char::is_control), "{:?}", s);
        }
    }
}
