//! Users of a server's built-in login: their admin-API bodies and validation, and the
//! OpenID Connect standard claims (OIDC Core §5.1) they carry, released by scope (§5.4).
//!
//! Usernames compare case-insensitively: they are stored lowercased. Passwords are hashed with
//! argon2id and never stored, shown or logged.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::ids::{ServerId, TenantId, UserId};
use crate::model::Invalid;
use crate::scope::Scopes;
use crate::secrets::Password;

/// Shortest password accepted (NIST SP 800-63B §5.1.1.2).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes: bounds the work one login can cause.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest username, in characters.
pub const MAX_USERNAME_CHARS: usize = 128;
/// A username as an ECMA-262 pattern: printable, neither starting nor ending with Unicode
/// `White_Space` (spelt out, so that every regex dialect reads it alike). With `maxLength`
/// [`MAX_USERNAME_CHARS`] it is what [`normalize_username`] accepts (a property test holds
/// them equal).
pub const USERNAME_PATTERN: &str =
    "^[^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]\
    ([^\\u0000-\\u001f\\u007f-\\u009f]*\
    [^\\u0000-\\u0020\\u007f-\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000])?$";
/// Longest text claim, in characters.
pub const MAX_TEXT_CLAIM_CHARS: usize = 2048;
/// Largest claims object, serialised.
pub const MAX_CLAIMS_BYTES: usize = 16 * 1024;

/// A user as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Owning server.
    pub server_id: ServerId,
    /// The user id: the `sub` of their tokens.
    pub id: UserId,
    /// Login name, lowercased.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// OIDC standard claims.
    pub claims: Map<String, Value>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("tenant_id", &self.tenant_id)
            .field("server_id", &self.server_id)
            .field("id", &self.id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A user as the admin API shows it (never the password or its hash).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    /// The user id, used as `sub`.
    pub id: UserId,
    /// Login name (lowercased).
    pub username: String,
    /// OIDC standard claims.
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            claims: u.claims.clone(),
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// Body of `POST …/users`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login name, 1–128 characters; compared case-insensitively.
    pub username: String,
    /// At least 8 characters, at most 1024 bytes.
    #[schema(value_type = String, format = Password)]
    pub password: Password,
    /// OIDC standard claims (`name`, `email`, `email_verified`, …).
    #[schema(value_type = Option<Object>)]
    pub claims: Option<Map<String, Value>>,
}

/// Body of `PATCH …/users/{user_id}`: only the fields present change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New login name.
    pub username: Option<String>,
    /// New password.
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<Password>,
    /// Replaces the claims.
    #[schema(value_type = Option<Object>)]
    pub claims: Option<Map<String, Value>>,
}

/// A user's remembered consent to a client: the scopes granted so far. A later request for
/// scopes within this set is not asked again (unless `prompt=consent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Consent {
    /// Owning tenant.
    #[serde(skip)]
    pub tenant_id: TenantId,
    /// Owning server.
    #[serde(skip)]
    pub server_id: ServerId,
    /// The user.
    #[serde(skip)]
    pub user_id: UserId,
    /// The client consented to.
    pub client_id: crate::ids::ClientId,
    /// Granted scopes, space-delimited.
    pub scope: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Normalises and checks a username: trimmed of nothing (leading or trailing spaces are
/// refused), 1–128 characters, no control characters; returned lowercased.
///
/// # Errors
/// Names the field.
pub fn normalize_username(raw: &str) -> Result<String, Invalid> {
    let len = raw.chars().count();
    if len == 0 || len > MAX_USERNAME_CHARS {
        return Err(Invalid::request(
            "username",
            format!("must be 1 to {MAX_USERNAME_CHARS} characters"),
        ));
    }
    if raw.trim() != raw || raw.chars().any(char::is_control) {
        return Err(Invalid::request(
            "username",
            "must not start or end with spaces or contain control characters",
        ));
    }
    Ok(raw.to_lowercase())
}

/// Checks a new password's length.
///
/// # Errors
/// Names the field.
pub fn validate_password(p: &Password) -> Result<(), Invalid> {
    let s = p.expose();
    if s.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Invalid::request(
            "password",
            format!("must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    if s.len() > MAX_PASSWORD_BYTES {
        return Err(Invalid::request(
            "password",
            format!("must be at most {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// The kind of value a standard claim holds.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Bool,
    Number,
    Object,
}

/// OIDC Core §5.1 standard claims (less `sub`, which is the user id), the scope that releases
/// each (§5.4), and its type.
const STANDARD_CLAIMS: &[(&str, &str, Kind)] = &[
    ("name", "profile", Kind::Text),
    ("family_name", "profile", Kind::Text),
    ("given_name", "profile", Kind::Text),
    ("middle_name", "profile", Kind::Text),
    ("nickname", "profile", Kind::Text),
    ("preferred_username", "profile", Kind::Text),
    ("profile", "profile", Kind::Text),
    ("picture", "profile", Kind::Text),
    ("website", "profile", Kind::Text),
    ("gender", "profile", Kind::Text),
    ("birthdate", "profile", Kind::Text),
    ("zoneinfo", "profile", Kind::Text),
    ("locale", "profile", Kind::Text),
    ("updated_at", "profile", Kind::Number),
    ("email", "email", Kind::Text),
    ("email_verified", "email", Kind::Bool),
    ("address", "address", Kind::Object),
    ("phone_number", "phone", Kind::Text),
    ("phone_number_verified", "phone", Kind::Bool),
];

/// Every claim name a user may carry, for discovery's `claims_supported`.
pub fn claim_names() -> impl Iterator<Item = &'static str> {
    STANDARD_CLAIMS.iter().map(|(n, _, _)| *n)
}

/// The JSON Schema of a `claims` object, from the table the validator checks: the standard
/// claims only, each of its type (text claims at most [`MAX_TEXT_CLAIM_CHARS`] characters).
/// [`MAX_CLAIMS_BYTES`] (the serialised size) is beyond JSON Schema; the document says it.
#[must_use]
pub fn claims_schema() -> Value {
    let properties: Map<String, Value> = STANDARD_CLAIMS
        .iter()
        .map(|(name, _, kind)| {
            let schema = match kind {
                Kind::Text => serde_json::json!({"type": "string", "maxLength": MAX_TEXT_CLAIM_CHARS}),
                Kind::Bool => serde_json::json!({"type": "boolean"}),
                Kind::Number => serde_json::json!({"type": "integer"}),
                Kind::Object => serde_json::json!({"type": "object", "additionalProperties": {"type": "string"}}),
            };
            ((*name).to_owned(), schema)
        })
        .collect();
    serde_json::json!({"type": "object", "properties": properties, "additionalProperties": false})
}

/// Checks a claims object: only OIDC standard claims, each of its type, at most 16 KiB.
///
/// # Errors
/// Names the field and the offending claim.
pub fn validate_claims(claims: &Map<String, Value>) -> Result<(), Invalid> {
    let size = serde_json::to_vec(claims).map_or(usize::MAX, |v| v.len());
    if size > MAX_CLAIMS_BYTES {
        return Err(Invalid::request(
            "claims",
            format!("must be at most {MAX_CLAIMS_BYTES} bytes of JSON"),
        ));
    }
    for (name, value) in claims {
        let shown: String = name
            .chars()
            .filter(char::is_ascii_graphic)
            .take(64)
            .collect();
        let Some((_, _, kind)) = STANDARD_CLAIMS.iter().find(|(n, _, _)| n == name) else {
            return Err(Invalid::request(
                "claims",
                format!("`{shown}` is not an OpenID Connect standard claim"),
            ));
        };
        let ok = match kind {
            Kind::Text => value
                .as_str()
                .is_some_and(|s| s.chars().count() <= MAX_TEXT_CLAIM_CHARS),
            Kind::Bool => value.is_boolean(),
            Kind::Number => value.is_i64() || value.is_u64(),
            Kind::Object => value
                .as_object()
                .is_some_and(|o| o.values().all(Value::is_string)),
        };
        if !ok {
            let want = match kind {
                Kind::Text => "a string of at most 2048 characters",
                Kind::Bool => "a boolean",
                Kind::Number => "an integer",
                Kind::Object => "an object of strings",
            };
            return Err(Invalid::request(
                "claims",
                format!("`{shown}` must be {want}"),
            ));
        }
    }
    Ok(())
}

/// The claims the granted `scopes` release (OIDC Core §5.4), without `sub`.
#[must_use]
pub fn claims_for_scopes(claims: &Map<String, Value>, scopes: &Scopes) -> Map<String, Value> {
    claims
        .iter()
        .filter(|(name, _)| {
            STANDARD_CLAIMS
                .iter()
                .any(|(n, scope, _)| n == name && scopes.contains(scope))
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(
            normalize_username("Alice@Example.COM").unwrap(),
            "alice@example.com"
        );
        for bad in ["", " a", "a ", "a\nb", &"x".repeat(129)] {
            assert_eq!(
                normalize_username(bad).unwrap_err().field,
                "username",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn passwords_have_bounds() {
        assert!(validate_password(&Password::new("12345678".into())).is_ok());
        assert!(validate_password(&Password::new("1234567".into())).is_err());
        assert!(validate_password(&Password::new("x".repeat(1025))).is_err());
        assert_eq!(
            format!("{:?}", Password::new("hunter22".into())),
            "[redacted]"
        );
    }

    #[test]
    fn only_standard_claims_of_their_type() {
        assert!(validate_claims(&obj(json!({
            "name": "Alice", "email": "a@example.com", "email_verified": true,
            "updated_at": 1_700_000_000, "address": {"country": "FR"}
        })))
        .is_ok());
        for bad in [
            json!({"sub": "x"}),
            json!({"role": "admin"}),
            json!({"email_verified": "yes"}),
            json!({"name": 1}),
            json!({"address": "Paris"}),
        ] {
            let shown = bad.to_string();
            assert!(validate_claims(&obj(bad)).is_err(), "{shown}");
        }
    }

    #[test]
    fn scopes_release_their_claims_only() {
        let claims = obj(json!({"name": "A", "email": "a@x", "phone_number": "+1"}));
        let scopes = Scopes::parse("openid email").unwrap();
        let out = claims_for_scopes(&claims, &scopes);
        assert_eq!(Value::Object(out), json!({"email": "a@x"}));
    }
}

#[cfg(test)]
mod schema_tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The OpenAPI document's `username` pattern and `maxLength` accept exactly what
        /// `normalize_username` does.
        #[test]
        fn username_pattern_is_the_validator(s in "\\PC{0,130}|[ a\\t\\u{a0}\\u{3000}\\u{85}]{0,4}|\\PC{125,130}") {
            let pattern = regex::Regex::new(USERNAME_PATTERN).unwrap();
            let fits = pattern.is_match(&s) && s.chars().count() <= MAX_USERNAME_CHARS;
            prop_assert_eq!(fits, normalize_username(&s).is_ok(), "{:?}", s);
        }

        /// A claims object fits `claims_schema` when the validator accepts it (its byte
        /// limit aside).
        #[test]
        fn claims_schema_names_every_claim_the_validator_takes(name in "[a-z_]{1,20}", text in "\\PC{0,10}") {
            let schema = claims_schema();
            let claims = obj(serde_json::json!({ name.clone(): text }));
            let declared = &schema["properties"][&name];
            let ok = validate_claims(&claims).is_ok();
            prop_assert_eq!(ok, declared["type"] == "string", "{}", name);
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        }
    }
}
