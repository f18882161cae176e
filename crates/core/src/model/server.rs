//! Authorization servers (workspaces) inside a tenant, their settings, and the enumerations
//! they are configured with: signing algorithms and client-authentication methods.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::rate_limits::{RateLimits, RateLimitsPatch};
pub use super::trusted_issuer::TrustedIssuer;
use super::Invalid;
use crate::client_cert::ClientCa;
use crate::ids::{ClientId, ServerId, TenantId};
pub use crate::oauth::{AuthMethod, SigningAlg};

/// Default access-token lifetime, seconds.
pub const DEFAULT_ACCESS_TOKEN_TTL: i64 = 3600;
/// Default refresh-token lifetime, seconds (30 days).
pub const DEFAULT_REFRESH_TOKEN_TTL: i64 = 30 * 24 * 3600;
/// Shortest automatic key-rotation period, seconds (one hour).
pub const MIN_KEY_ROTATION_PERIOD: i64 = 3600;
/// Longest automatic key-rotation period, seconds (365 days).
pub const MAX_KEY_ROTATION_PERIOD: i64 = 365 * 24 * 3600;

/// Shortest access- or refresh-token lifetime, seconds.
pub const MIN_TOKEN_TTL: i64 = 60;
/// Longest access-token lifetime, seconds (one day).
pub const MAX_ACCESS_TOKEN_TTL: i64 = 86_400;
/// Longest refresh-token lifetime, seconds (365 days).
pub const MAX_REFRESH_TOKEN_TTL: i64 = 31_536_000;
/// Longest `default_audience`, in characters.
pub const MAX_AUDIENCE_CHARS: usize = 2048;
/// Longest `logo_uri`, in bytes.
pub const MAX_LOGO_URI_BYTES: usize = 2048;
/// `brand_color` as an ECMA-262 pattern (held equal to the validator by a property test).
pub const BRAND_COLOR_PATTERN: &str = "^#[0-9A-Fa-f]{6}$";

/// An authorization server as stored and as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Server {
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Server id, unique within the tenant.
    pub id: ServerId,
    /// Display name.
    pub name: String,
    /// Access-token lifetime, seconds.
    pub access_token_ttl: i64,
    /// Refresh-token lifetime, seconds.
    pub refresh_token_ttl: i64,
    /// Algorithm for access tokens (and, by default, ID tokens).
    pub signing_alg: SigningAlg,
    /// `aud` of tokens whose request names no resource; `None` means the issuer.
    pub default_audience: Option<String>,
    /// Methods clients of this server may register; what discovery lists.
    pub allowed_token_endpoint_auth_methods: Vec<AuthMethod>,
    /// RFC 8705 §3: bind access tokens to the client certificate when the client presented
    /// one (`cnf.x5t#S256`).
    pub tls_client_certificate_bound_access_tokens: bool,
    /// Seconds between automatic signing-key rotations; `None`: rotated only through the
    /// admin API.
    pub key_rotation_period: Option<i64>,
    /// PKCE (RFC 7636) required of every client at `/oauth2/authorize`, not only of public
    /// clients (RFC 9700 §2.1.1 recommends it).
    pub require_pkce: bool,
    /// Accept the `plain` PKCE method (off by default: RFC 9700 §2.1.1 asks for `S256`).
    pub allow_plain_pkce: bool,
    /// An `https` logo shown on the login and consent pages.
    pub logo_uri: Option<String>,
    /// Accent colour of the login and consent pages, `#rrggbb`.
    pub brand_color: Option<String>,
    /// Rate limits of the token, introspection and revocation endpoints; `null` members take
    /// the process defaults (`--rate-limit-…`).
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// PEM bundle of the CAs the `tls_client_auth` certificates of this server's clients must
    /// chain to (RFC 8705 §2.1); `None`: the operator's process-wide bundle
    /// (`--tls-client-ca`). A server's own bundle replaces that default, it does not add to it.
    #[serde(default)]
    #[schema(max_length = 65536)]
    pub tls_client_ca: Option<String>,
    /// Clients (resource servers) of this server that may introspect any of its tokens; every
    /// other client learns only about tokens issued to it or naming it in `aud` (RFC 7662 §4).
    #[serde(default)]
    #[schema(max_items = 50)]
    pub introspection_clients: Vec<ClientId>,
    /// Accept plain `http` redirect URIs to hosts other than loopback (off by default, as
    /// OAuth 2.1 asks; for development servers only).
    #[serde(default)]
    pub allow_insecure_redirect_uris: bool,
    /// Refuse authorization requests that were not pushed (RFC 9126 §5), for every client.
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// How long a pushed request's `request_uri` lives, seconds (RFC 9126 §2.2 `expires_in`).
    #[serde(default = "default_par_ttl")]
    pub pushed_authorization_request_ttl: i64,
    /// Issuers whose JWTs the JWT bearer grant and token exchange accept (at most 20).
    #[serde(default)]
    #[schema(max_items = 20)]
    pub trusted_issuers: Vec<TrustedIssuer>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Body of `POST /admin/tenants/{tid}/servers`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewServer {
    /// Server id.
    pub id: ServerId,
    /// Display name.
    pub name: String,
    /// Seconds, 60–86400; default 3600.
    pub access_token_ttl: Option<i64>,
    /// Seconds, 60–31536000; default 2592000.
    pub refresh_token_ttl: Option<i64>,
    /// Default `ES256`.
    pub signing_alg: Option<SigningAlg>,
    /// Default: the issuer.
    pub default_audience: Option<String>,
    /// Default: every method the gateway serves.
    pub allowed_token_endpoint_auth_methods: Option<Vec<AuthMethod>>,
    /// RFC 8705 certificate-bound access tokens; default false.
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// Seconds between automatic signing-key rotations, at least 3600; absent or `null`:
    /// rotate only through the admin API.
    pub key_rotation_period: Option<i64>,
    /// Require PKCE of every client; default false (public clients always need it).
    pub require_pkce: Option<bool>,
    /// Accept the `plain` PKCE method; default false.
    pub allow_plain_pkce: Option<bool>,
    /// An `https` logo for the login and consent pages.
    pub logo_uri: Option<String>,
    /// Accent colour of the login and consent pages, `#rrggbb`.
    pub brand_color: Option<String>,
    /// Rate limits; absent or `null` members: the process defaults.
    #[serde(default, deserialize_with = "super::rate_limits::object_or_null")]
    pub rate_limits: Option<RateLimits>,
    /// PEM bundle (at most 65536 bytes, 32 CA certificates, nothing else) of the CAs this
    /// server's `tls_client_auth` certificates must chain to; absent or `null`: the operator's
    /// `--tls-client-ca`.
    #[schema(max_length = 65536)]
    pub tls_client_ca: Option<String>,
    /// Client ids (at most 50) that may introspect any token of this server; default none.
    #[schema(max_items = 50)]
    pub introspection_clients: Option<Vec<ClientId>>,
    /// Accept plain `http` redirect URIs to non-loopback hosts; default false.
    pub allow_insecure_redirect_uris: Option<bool>,
    /// Refuse authorization requests that were not pushed (RFC 9126 §5); default false.
    pub require_pushed_authorization_requests: Option<bool>,
    /// Lifetime of a pushed request's `request_uri`, seconds; default 60.
    pub pushed_authorization_request_ttl: Option<i64>,
    /// Issuers whose JWTs the JWT bearer grant and token exchange accept; default none.
    #[schema(max_items = 20)]
    pub trusted_issuers: Option<Vec<TrustedIssuer>>,
}

/// Body of `PATCH /admin/tenants/{tid}/servers/{aid}`: only the fields present change.
/// Changing `signing_alg` rotates to a fresh key of the new algorithm.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerPatch {
    /// Display name.
    pub name: Option<String>,
    /// Seconds.
    pub access_token_ttl: Option<i64>,
    /// Seconds.
    pub refresh_token_ttl: Option<i64>,
    /// New algorithm (rotates the signing key).
    pub signing_alg: Option<SigningAlg>,
    /// `null` resets to the issuer.
    #[serde(default, deserialize_with = "double_option")]
    pub default_audience: Option<Option<String>>,
    /// Replaces the list.
    pub allowed_token_endpoint_auth_methods: Option<Vec<AuthMethod>>,
    /// RFC 8705 certificate-bound access tokens.
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// Seconds between automatic key rotations (at least 3600); `null` turns them off.
    #[serde(default, deserialize_with = "double_option")]
    pub key_rotation_period: Option<Option<i64>>,
    /// Require PKCE of every client.
    pub require_pkce: Option<bool>,
    /// Accept the `plain` PKCE method.
    pub allow_plain_pkce: Option<bool>,
    /// `null` removes the logo.
    #[serde(default, deserialize_with = "double_option")]
    pub logo_uri: Option<Option<String>>,
    /// `null` restores the default colour.
    #[serde(default, deserialize_with = "double_option")]
    pub brand_color: Option<Option<String>>,
    /// Merged into the rate limits (a member's `null` resets it to the default); `null`
    /// resets them all.
    #[serde(default, deserialize_with = "super::rate_limits::patch_object")]
    #[schema(value_type = Option<RateLimitsPatch>)]
    pub rate_limits: Option<Option<RateLimitsPatch>>,
    /// Replaces the server's CA bundle; `null` returns to the operator's `--tls-client-ca`.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 65536)]
    pub tls_client_ca: Option<Option<String>>,
    /// Replaces the list of clients that may introspect any token.
    #[schema(max_items = 50)]
    pub introspection_clients: Option<Vec<ClientId>>,
    /// Accept plain `http` redirect URIs to non-loopback hosts.
    pub allow_insecure_redirect_uris: Option<bool>,
    /// Refuse authorization requests that were not pushed (RFC 9126 §5).
    pub require_pushed_authorization_requests: Option<bool>,
    /// Lifetime of a pushed request's `request_uri`, seconds.
    pub pushed_authorization_request_ttl: Option<i64>,
    /// Replaces the list of trusted issuers.
    #[schema(max_items = 20)]
    pub trusted_issuers: Option<Vec<TrustedIssuer>>,
}

impl NewServer {
    /// The server this body describes in tenant `tenant_id` at `now`, with the defaults for
    /// what it leaves out (`servable`: the methods allowed when it names none). Not yet
    /// validated: see [`Server::validate`].
    #[must_use]
    pub fn into_server(self, tenant_id: &TenantId, servable: &[AuthMethod], now: i64) -> Server {
        let mut methods = self
            .allowed_token_endpoint_auth_methods
            .unwrap_or_else(|| servable.to_vec());
        let mut seen = Vec::new();
        methods.retain(|m| {
            let first = !seen.contains(m);
            seen.push(*m);
            first
        });
        Server {
            tenant_id: tenant_id.clone(),
            id: self.id,
            name: self.name,
            access_token_ttl: self.access_token_ttl.unwrap_or(DEFAULT_ACCESS_TOKEN_TTL),
            refresh_token_ttl: self.refresh_token_ttl.unwrap_or(DEFAULT_REFRESH_TOKEN_TTL),
            signing_alg: self.signing_alg.unwrap_or(SigningAlg::ES256),
            default_audience: self.default_audience,
            allowed_token_endpoint_auth_methods: methods,
            tls_client_certificate_bound_access_tokens: self
                .tls_client_certificate_bound_access_tokens
                .unwrap_or(false),
            key_rotation_period: self.key_rotation_period,
            require_pkce: self.require_pkce.unwrap_or(false),
            allow_plain_pkce: self.allow_plain_pkce.unwrap_or(false),
            logo_uri: self.logo_uri,
            brand_color: self.brand_color.map(|c| c.to_ascii_lowercase()),
            rate_limits: self.rate_limits.unwrap_or_default(),
            tls_client_ca: self.tls_client_ca,
            introspection_clients: dedup_ids(self.introspection_clients.unwrap_or_default()),
            allow_insecure_redirect_uris: self.allow_insecure_redirect_uris.unwrap_or(false),
            require_pushed_authorization_requests: self
                .require_pushed_authorization_requests
                .unwrap_or(false),
            pushed_authorization_request_ttl: self
                .pushed_authorization_request_ttl
                .unwrap_or(DEFAULT_PAR_TTL),
            trusted_issuers: self.trusted_issuers.unwrap_or_default(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// The list without repeats, first occurrence kept.
#[must_use]
pub fn dedup_ids(mut ids: Vec<ClientId>) -> Vec<ClientId> {
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    ids
}

/// Default lifetime of a pushed request's `request_uri`, seconds (RFC 9126 §2.2's example).
pub const DEFAULT_PAR_TTL: i64 = 60;
/// Shortest `pushed_authorization_request_ttl`.
pub const MIN_PAR_TTL: i64 = 10;
/// Longest `pushed_authorization_request_ttl` (the contract's bound).
pub const MAX_PAR_TTL: i64 = 600;

fn default_par_ttl() -> i64 {
    DEFAULT_PAR_TTL
}

/// Most clients [`Server::introspection_clients`] may name.
pub const MAX_INTROSPECTION_CLIENTS: usize = 50;

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[cfg(test)]
impl Server {
    /// A server of tenant `tenant_id` with every setting at its default, for unit tests.
    pub(crate) fn example(tenant_id: TenantId, id: ServerId) -> Self {
        Self {
            tenant_id,
            id,
            name: "S".into(),
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            signing_alg: SigningAlg::ES256,
            default_audience: None,
            allowed_token_endpoint_auth_methods: AuthMethod::servable(false),
            tls_client_certificate_bound_access_tokens: false,
            key_rotation_period: None,
            require_pkce: false,
            allow_plain_pkce: false,
            logo_uri: None,
            brand_color: None,
            rate_limits: RateLimits::default(),
            tls_client_ca: None,
            introspection_clients: Vec::new(),
            allow_insecure_redirect_uris: false,
            require_pushed_authorization_requests: false,
            pushed_authorization_request_ttl: DEFAULT_PAR_TTL,
            trusted_issuers: Vec::new(),
            created_at: 0,
            updated_at: 0,
        }
    }
}

impl Server {
    /// The algorithms this server signs ID tokens with, the default first: RS256 (OpenID
    /// Connect Dynamic Client Registration §2; every server holds an RS256 key), PS256 (with
    /// that RSA key, or the server's own PS256 key), and the server's `signing_alg` when it is
    /// neither. A client's `id_token_signed_response_alg` must be one of them; discovery's
    /// `id_token_signing_alg_values_supported` lists them.
    #[must_use]
    pub fn id_token_algs(&self) -> Vec<SigningAlg> {
        let mut algs = vec![SigningAlg::RS256, SigningAlg::PS256];
        if !algs.contains(&self.signing_alg) {
            algs.push(self.signing_alg);
        }
        algs
    }

    /// Validates every setting against what the gateway can serve; called after create and
    /// after applying a patch.
    ///
    /// # Errors
    /// Names the first field that is out of range.
    pub fn validate(&self, servable: &[AuthMethod]) -> Result<(), Invalid> {
        super::tenant::validate_name("name", &self.name)?;
        if !(MIN_TOKEN_TTL..=MAX_ACCESS_TOKEN_TTL).contains(&self.access_token_ttl) {
            return Err(Invalid::request(
                "access_token_ttl",
                format!("must be between {MIN_TOKEN_TTL} and {MAX_ACCESS_TOKEN_TTL} seconds"),
            ));
        }
        if !(MIN_TOKEN_TTL..=MAX_REFRESH_TOKEN_TTL).contains(&self.refresh_token_ttl) {
            return Err(Invalid::request(
                "refresh_token_ttl",
                format!("must be between {MIN_TOKEN_TTL} and {MAX_REFRESH_TOKEN_TTL} seconds"),
            ));
        }
        if let Some(aud) = &self.default_audience {
            // Characters, as the message says (and as the OpenAPI `maxLength` counts).
            let len = aud.chars().count();
            if len == 0 || len > MAX_AUDIENCE_CHARS || aud.chars().any(char::is_control) {
                return Err(Invalid::request(
                    "default_audience",
                    format!("must be 1 to {MAX_AUDIENCE_CHARS} printable characters"),
                ));
            }
        }
        if let Some(period) = self.key_rotation_period {
            if !(MIN_KEY_ROTATION_PERIOD..=MAX_KEY_ROTATION_PERIOD).contains(&period) {
                return Err(Invalid::request(
                    "key_rotation_period",
                    format!(
                        "must be between {MIN_KEY_ROTATION_PERIOD} and {MAX_KEY_ROTATION_PERIOD} seconds, or null"
                    ),
                ));
            }
        }
        if let Some(logo) = &self.logo_uri {
            let ok = logo.len() <= MAX_LOGO_URI_BYTES
                && url::Url::parse(logo).is_ok_and(|u| u.scheme() == "https" && u.has_host());
            if !ok {
                return Err(Invalid::request(
                    "logo_uri",
                    format!("must be an https URL of at most {MAX_LOGO_URI_BYTES} bytes"),
                ));
            }
        }
        if let Some(color) = &self.brand_color {
            let ok = color.len() == 7
                && color.starts_with('#')
                && color[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(Invalid::request(
                    "brand_color",
                    "must be a colour `#rrggbb`",
                ));
            }
        }
        self.rate_limits.validate()?;
        if let Some(pem) = &self.tls_client_ca {
            ClientCa::from_server_bundle(pem).map_err(|e| {
                Invalid::request(
                    "tls_client_ca",
                    format!("must be a PEM bundle of CA certificates: {e}"),
                )
            })?;
        }
        if self.introspection_clients.len() > MAX_INTROSPECTION_CLIENTS {
            return Err(Invalid::request(
                "introspection_clients",
                format!("must name at most {MAX_INTROSPECTION_CLIENTS} clients"),
            ));
        }
        if !(MIN_PAR_TTL..=MAX_PAR_TTL).contains(&self.pushed_authorization_request_ttl) {
            return Err(Invalid::request(
                "pushed_authorization_request_ttl",
                format!("must be between {MIN_PAR_TTL} and {MAX_PAR_TTL} seconds"),
            ));
        }
        super::trusted_issuer::validate(&self.trusted_issuers)?;
        let methods = &self.allowed_token_endpoint_auth_methods;
        if methods.is_empty() {
            return Err(Invalid::request(
                "allowed_token_endpoint_auth_methods",
                "must name at least one method",
            ));
        }
        if let Some(m) = methods.iter().find(|m| !servable.contains(m)) {
            return Err(Invalid::request(
                "allowed_token_endpoint_auth_methods",
                format!("`{}` is not served by this gateway", m.as_str()),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The OpenAPI document's `brand_color` pattern accepts exactly what `validate` does.
        #[test]
        fn brand_color_pattern_is_the_validator(s in "#[0-9a-zA-Z]{5,7}|\\PC{0,8}") {
            let pattern = regex::Regex::new(BRAND_COLOR_PATTERN).unwrap();
            // Built from JSON, so that fields added later need no change here.
            let mut server = serde_json::from_value::<NewServer>(serde_json::json!({"id": "s", "name": "S"}))
                .unwrap()
            .into_server(&TenantId::parse("t").unwrap(), &[AuthMethod::ClientSecretBasic], 0);
            server.brand_color = Some(s.clone());
            let ok = server.validate(&[AuthMethod::ClientSecretBasic]).is_ok();
            prop_assert_eq!(pattern.is_match(&s), ok, "{:?}", s);
        }
    }
}
