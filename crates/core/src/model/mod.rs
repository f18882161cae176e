//! The entities Tollgate stores and the rules their admin request bodies must obey: tenants,
//! authorization servers (with their rate-limit settings), clients (RFC 7591 metadata), users,
//! admin credentials, and the RFC 4514 subject names clients register. Validation errors
//! ([`Invalid`]) live here, beside the types they judge.
//!
//! This layer knows the protocol vocabulary (`crate::oauth`) and the ids, nothing above them:
//! no store, no cache, no application state.

pub mod ceilings;
pub mod client;
pub mod credential;
pub mod dn;
pub mod rate_limits;
pub mod server;
pub mod tenant;
pub mod trusted_issuer;
pub mod users;

/// Text of printable characters (no `char::is_control`, Unicode `Cc`) as an ECMA-262 pattern:
/// what the admin API's free-text fields accept, with their `minLength` 1 and `maxLength`. The
/// OpenAPI document states it; property tests hold it equal to the validators.
pub const PRINTABLE_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// An input that breaks a rule, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Error code: `invalid_request`, or RFC 7591's `invalid_client_metadata` /
    /// `invalid_redirect_uri` for client metadata.
    pub code: &'static str,
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl Invalid {
    /// A general invalid field.
    pub fn request(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: "invalid_request",
            field,
            message: message.into(),
        }
    }
    /// RFC 7591 `invalid_client_metadata`.
    pub fn client_metadata(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: "invalid_client_metadata",
            field,
            message: message.into(),
        }
    }
    /// RFC 7591 `invalid_redirect_uri`.
    pub fn redirect_uri(message: impl Into<String>) -> Self {
        Self {
            code: "invalid_redirect_uri",
            field: "redirect_uris",
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}
