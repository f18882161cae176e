//! OAuth clients: RFC 7591 metadata, its validation, and the stored client record.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{ClientId, ServerId, TenantId};
use crate::model::server::Server;
use crate::model::Invalid;
use crate::oauth::{AuthMethod, GrantType};
use crate::scope::Scopes;

/// Response types a client may register.
pub const RESPONSE_TYPES: &[&str] = &["code"];
/// Longest `client_name` and `software_id`, in characters.
pub const MAX_CLIENT_NAME_CHARS: usize = 200;
/// Longest `software_version`, in characters.
pub const MAX_SOFTWARE_VERSION_CHARS: usize = 64;
/// Most `contacts`.
pub const MAX_CONTACTS: usize = 20;
/// Longest contact, in characters.
pub const MAX_CONTACT_CHARS: usize = 320;
/// Most `audience` entries.
pub const MAX_AUDIENCES: usize = 50;
/// Longest `audience` entry, in characters.
pub const MAX_AUDIENCE_CHARS: usize = 2048;
/// Most `redirect_uris`.
pub const MAX_REDIRECT_URIS: usize = 50;
/// Longest URI (`redirect_uris`, `client_uri`, `logo_uri`, `tos_uri`, `policy_uri`,
/// `jwks_uri`), in bytes.
pub const MAX_URI_BYTES: usize = 2048;

/// RFC 7591 §2 client metadata. Unknown fields in a request are ignored and not stored, as
/// §2 requires. `audience` is an extension: the audiences (RFC 8707 resources) the client
/// may request tokens for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClientMetadata {
    /// Redirection URIs for the authorization code flow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// Default `client_secret_basic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<AuthMethod>,
    /// Default `["authorization_code"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types: Vec<String>,
    /// Default `["code"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_types: Vec<String>,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Home page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// Logo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// Space-delimited scopes the client may request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Contact e-mail addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// Terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    /// Privacy policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// URL of the client's JWK Set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The client's JWK Set, inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Software identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// Software version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// JWS alg the client uses for assertions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_signing_alg: Option<String>,
    /// JWS alg for ID tokens issued to this client: `RS256` (the default), `PS256`, or the
    /// server's `signing_alg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
    /// RFC 8705 subject DN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_subject_dn: Option<String>,
    /// RFC 8705 SAN dNSName.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    /// RFC 8705 SAN URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
    /// RFC 8705 SAN IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
    /// RFC 8705 SAN rfc822Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_email: Option<String>,
    /// Extension: audiences the client may request with `resource` or `audience`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audience: Vec<String>,
    /// RFC 9126 §6: the client's authorization requests must be pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_pushed_authorization_requests: Option<bool>,
    /// RFC 9101 §10.5 (OpenID Connect Dynamic Client Registration §2): the only JWS alg its
    /// request objects may be signed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_object_signing_alg: Option<String>,
    /// JARM §4: the JWS alg its JWT-secured authorization responses are signed with
    /// (default RS256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_signed_response_alg: Option<String>,
    /// OpenID Connect RP-Initiated Logout: where `/oauth2/logout` may send the browser back,
    /// matched exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// OpenID Connect Back-Channel Logout: where logout tokens are POSTed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// Whether the logout token must carry `sid` (default `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_session_required: Option<bool>,
    /// OpenID Connect Front-Channel Logout: the page the signed-out page loads in an iframe;
    /// same scheme, host and port as one of the `redirect_uris`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontchannel_logout_uri: Option<String>,
    /// Whether `iss` and `sid` are added to `frontchannel_logout_uri` (default `false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontchannel_logout_session_required: Option<bool>,
}

/// Body of client creation: the metadata plus an optional caller-chosen `client_id`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct NewClient {
    /// Optional; generated (UUID) when absent.
    pub client_id: Option<ClientId>,
    /// RFC 7591 metadata.
    #[serde(flatten)]
    pub metadata: ClientMetadata,
}

/// How a client's secret is held at rest.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredSecret {
    /// No secret (key- or certificate-based methods, public clients).
    None,
    /// An argon2id PHC string.
    Hash(String),
    /// The secret sealed under the master key (`client_secret_jwt`: the server needs the
    /// HMAC key itself).
    Sealed(Vec<u8>),
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Hash(_) => "Hash([redacted])",
            Self::Sealed(_) => "Sealed([redacted])",
        })
    }
}

/// A registered client as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Owning server.
    pub server_id: ServerId,
    /// The client id.
    pub client_id: ClientId,
    /// Validated, normalised metadata.
    pub metadata: ClientMetadata,
    /// The secret at rest.
    pub secret: StoredSecret,
    /// 0 = never (RFC 7591).
    pub secret_expires_at: i64,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

impl Client {
    /// The registered method (defaults applied at validation, so always present).
    #[must_use]
    pub fn auth_method(&self) -> AuthMethod {
        self.metadata
            .token_endpoint_auth_method
            .unwrap_or(AuthMethod::ClientSecretBasic)
    }

    /// Whether the client registered `grant`.
    #[must_use]
    pub fn has_grant(&self, grant: GrantType) -> bool {
        self.metadata
            .grant_types
            .iter()
            .any(|g| g == grant.as_str())
    }

    /// The client's registered scopes.
    #[must_use]
    pub fn scopes(&self) -> Scopes {
        self.metadata
            .scope
            .as_deref()
            .and_then(|s| Scopes::parse(s).ok())
            .unwrap_or_default()
    }
}

/// The largest inline `jwks` any configuration accepts (the top of `--max-jwks-bytes`).
const JWKS_BYTES_CEILING: usize = 1024 * 1024;

/// The size of a JWK Set as compact JSON.
fn jwks_size(jwks: &serde_json::Value) -> usize {
    serde_json::to_vec(jwks).map_or(usize::MAX, |v| v.len())
}

fn meta(field: &'static str, msg: impl Into<String>) -> Invalid {
    Invalid::client_metadata(field, msg)
}

fn check_https_or_http_url(field: &'static str, value: &str) -> Result<url::Url, Invalid> {
    if value.len() > MAX_URI_BYTES {
        return Err(meta(
            field,
            format!("must be at most {MAX_URI_BYTES} bytes"),
        ));
    }
    let url = url::Url::parse(value).map_err(|_| meta(field, "must be an absolute URL"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(meta(field, "must be an http or https URL"));
    }
    Ok(url)
}

fn check_text(field: &'static str, value: Option<&str>, max: usize) -> Result<(), Invalid> {
    if let Some(v) = value {
        if v.is_empty() || v.chars().count() > max || v.chars().any(char::is_control) {
            return Err(meta(
                field,
                format!("must be 1 to {max} printable characters"),
            ));
        }
    }
    Ok(())
}

/// Redirect URI schemes that run code or read local files in the browser; never registered.
pub const UNSAFE_REDIRECT_SCHEMES: [&str; 4] = ["javascript", "data", "vbscript", "file"];

/// A plain `http` redirect URI to a loopback host (`127.0.0.0/8`, `[::1]`, `localhost`): what
/// native apps listen on (RFC 8252 §7.3, §8.3), allowed without TLS.
#[must_use]
pub fn loopback_http(u: &url::Url) -> bool {
    u.scheme() == "http"
        && match u.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        }
}

/// A plain `http` redirect URI to any other host: allowed only where the server's
/// `allow_insecure_redirect_uris` says so.
#[must_use]
pub fn insecure_redirect(u: &url::Url) -> bool {
    u.scheme() == "http" && !loopback_http(u)
}

impl ClientMetadata {
    /// Applies RFC 7591 defaults and checks every field and their combinations against the
    /// owning server's policy. Returns the normalised metadata.
    ///
    /// # Errors
    /// `invalid_client_metadata` or `invalid_redirect_uri`, naming the field.
    pub fn validated(mut self, server: &Server, servable: &[AuthMethod]) -> Result<Self, Invalid> {
        let method = *self
            .token_endpoint_auth_method
            .get_or_insert(AuthMethod::ClientSecretBasic);
        if !servable.contains(&method) {
            return Err(meta(
                "token_endpoint_auth_method",
                format!("`{}` is not supported by this gateway", method.as_str()),
            ));
        }
        if !server.allowed_token_endpoint_auth_methods.contains(&method) {
            return Err(meta(
                "token_endpoint_auth_method",
                format!(
                    "`{}` is not allowed by this authorization server",
                    method.as_str()
                ),
            ));
        }
        if self.grant_types.is_empty() {
            self.grant_types
                .push(GrantType::AuthorizationCode.as_str().into());
        }
        dedup(&mut self.grant_types);
        if let Some(g) = self
            .grant_types
            .iter()
            .find(|g| GrantType::parse(g).is_none())
        {
            return Err(meta("grant_types", format!("unsupported grant type `{g}`")));
        }
        let has = |grant: GrantType| self.grant_types.iter().any(|g| g == grant.as_str());
        let code_flow = has(GrantType::AuthorizationCode);
        if self.response_types.is_empty() && code_flow {
            self.response_types.push("code".into());
        }
        dedup(&mut self.response_types);
        if let Some(r) = self
            .response_types
            .iter()
            .find(|r| !RESPONSE_TYPES.contains(&r.as_str()))
        {
            return Err(meta(
                "response_types",
                format!("unsupported response type `{r}`"),
            ));
        }
        if !self.response_types.is_empty() && !code_flow {
            return Err(meta(
                "response_types",
                "`code` requires the authorization_code grant type (RFC 7591 §2.1)",
            ));
        }
        let user_login = GrantType::ALL
            .iter()
            .any(|g| g.involves_user_login() && has(*g));
        if has(GrantType::RefreshToken) && !user_login {
            return Err(meta(
                "grant_types",
                "refresh_token is only issued with the authorization_code or device_code grant",
            ));
        }
        if method == AuthMethod::None {
            if let Some(g) = GrantType::ALL
                .iter()
                .find(|g| !g.open_to_public_clients() && has(**g))
            {
                return Err(meta(
                    "grant_types",
                    format!("a public client (`none`) cannot use {g}"),
                ));
            }
        }
        self.validate_redirect_uris(code_flow, server)?;
        if let Some(scope) = &self.scope {
            let parsed = Scopes::parse(scope).map_err(|e| meta("scope", e.to_string()))?;
            self.scope = (!parsed.is_empty()).then(|| parsed.to_scope_string());
        }
        check_text(
            "client_name",
            self.client_name.as_deref(),
            MAX_CLIENT_NAME_CHARS,
        )?;
        check_text(
            "software_id",
            self.software_id.as_deref(),
            MAX_CLIENT_NAME_CHARS,
        )?;
        check_text(
            "software_version",
            self.software_version.as_deref(),
            MAX_SOFTWARE_VERSION_CHARS,
        )?;
        for (field, value) in [
            ("client_uri", &self.client_uri),
            ("logo_uri", &self.logo_uri),
            ("tos_uri", &self.tos_uri),
            ("policy_uri", &self.policy_uri),
        ] {
            if let Some(v) = value {
                check_https_or_http_url(field, v)?;
            }
        }
        if self.contacts.len() > MAX_CONTACTS {
            return Err(meta("contacts", format!("at most {MAX_CONTACTS} contacts")));
        }
        for c in &self.contacts {
            check_text("contacts", Some(c), MAX_CONTACT_CHARS)?;
        }
        if self.audience.len() > MAX_AUDIENCES {
            return Err(meta(
                "audience",
                format!("at most {MAX_AUDIENCES} audiences"),
            ));
        }
        for a in &self.audience {
            check_text("audience", Some(a), MAX_AUDIENCE_CHARS)?;
        }
        dedup(&mut self.audience);
        self.validate_method_fields(method)?;
        self.validate_id_token_alg(server)?;
        self.validate_request_fields(method, server)?;
        self.validate_logout_uris(server)?;
        Ok(self)
    }

    /// `request_object_signing_alg` must be one the client can sign with that we can verify
    /// (HMAC with the secret for `client_secret_jwt`; a public-key alg with registered keys),
    /// never `none`; `authorization_signed_response_alg` one the server signs with.
    fn validate_request_fields(&self, method: AuthMethod, server: &Server) -> Result<(), Invalid> {
        use crate::client_keys::AssertionAlg;
        if let Some(alg) = self.request_object_signing_alg.as_deref() {
            let ok = match AssertionAlg::parse(alg) {
                Some(a) if a.method() == AuthMethod::ClientSecretJwt => {
                    method == AuthMethod::ClientSecretJwt
                }
                Some(_) => self.jwks.is_some() || self.jwks_uri.is_some(),
                None => false,
            };
            if !ok {
                return Err(meta(
                    "request_object_signing_alg",
                    "must be HS256, HS384 or HS512 for a client_secret_jwt client, or RS256, \
                     PS256, ES256 or EdDSA for a client with `jwks` or `jwks_uri` (never none)",
                ));
            }
        }
        if let Some(alg) = &self.authorization_signed_response_alg {
            let offered = server.id_token_algs();
            if !crate::oauth::SigningAlg::parse(alg).is_some_and(|a| offered.contains(&a)) {
                let names: Vec<&str> = offered.iter().map(|a| a.as_str()).collect();
                return Err(meta(
                    "authorization_signed_response_alg",
                    format!("must be one this server signs with: {}", names.join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// RP-Initiated, Back-Channel and Front-Channel Logout 1.0 metadata: absolute http(s)
    /// URLs without a fragment or user information; plain `http` only to loopback hosts
    /// unless the server's `allow_insecure_redirect_uris` allows it; a front-channel URI on
    /// the origin of one of the `redirect_uris` (Front-Channel Logout §2).
    fn validate_logout_uris(&self, server: &Server) -> Result<(), Invalid> {
        let check = |field: &'static str, uri: &str| -> Result<url::Url, Invalid> {
            let url = check_https_or_http_url(field, uri)?;
            if url.fragment().is_some() || uri.contains('#') {
                return Err(meta(field, "must not contain a fragment"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(meta(field, "must not contain user information"));
            }
            if insecure_redirect(&url) && !server.allow_insecure_redirect_uris {
                return Err(meta(
                    field,
                    "plain `http` is allowed only to loopback hosts; the server's `allow_insecure_redirect_uris` allows it elsewhere",
                ));
            }
            Ok(url)
        };
        if self.post_logout_redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(meta(
                "post_logout_redirect_uris",
                format!("at most {MAX_REDIRECT_URIS} URIs"),
            ));
        }
        for uri in &self.post_logout_redirect_uris {
            check("post_logout_redirect_uris", uri)?;
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            check("backchannel_logout_uri", uri)?;
        }
        if let Some(uri) = &self.frontchannel_logout_uri {
            let origin = check("frontchannel_logout_uri", uri)?.origin();
            let registered = self
                .redirect_uris
                .iter()
                .filter_map(|r| url::Url::parse(r).ok())
                .any(|r| r.origin() == origin);
            if !registered {
                return Err(meta(
                    "frontchannel_logout_uri",
                    "must have the scheme, host and port of one of the `redirect_uris`",
                ));
            }
        }
        Ok(())
    }

    /// `id_token_signed_response_alg` must be an algorithm the server signs ID tokens with:
    /// an ID token is never signed with another one than the client registered.
    fn validate_id_token_alg(&self, server: &Server) -> Result<(), Invalid> {
        let Some(alg) = &self.id_token_signed_response_alg else {
            return Ok(());
        };
        let offered = server.id_token_algs();
        if crate::oauth::SigningAlg::parse(alg).is_some_and(|a| offered.contains(&a)) {
            return Ok(());
        }
        let names: Vec<&str> = offered.iter().map(|a| a.as_str()).collect();
        Err(meta(
            "id_token_signed_response_alg",
            format!(
                "must be one this server signs ID tokens with: {} (a server signs with ES256 or \
                 EdDSA only when that is its signing_alg)",
                names.join(", ")
            ),
        ))
    }

    fn validate_redirect_uris(&self, code_flow: bool, server: &Server) -> Result<(), Invalid> {
        if self.redirect_uris.len() > MAX_REDIRECT_URIS {
            return Err(Invalid::redirect_uri(format!(
                "at most {MAX_REDIRECT_URIS} redirect URIs"
            )));
        }
        for uri in &self.redirect_uris {
            if uri.len() > MAX_URI_BYTES {
                return Err(Invalid::redirect_uri(format!(
                    "a redirect URI is longer than {MAX_URI_BYTES} bytes"
                )));
            }
            let parsed = url::Url::parse(uri)
                .map_err(|_| Invalid::redirect_uri("each redirect URI must be absolute"))?;
            if parsed.fragment().is_some() || uri.contains('#') {
                return Err(Invalid::redirect_uri(
                    "a redirect URI must not contain a fragment (RFC 6749 §3.1.2)",
                ));
            }
            if UNSAFE_REDIRECT_SCHEMES.contains(&parsed.scheme()) {
                return Err(Invalid::redirect_uri(format!(
                    "the redirect URI scheme `{}` is not allowed",
                    parsed.scheme()
                )));
            }
            if !parsed.username().is_empty() || parsed.password().is_some() {
                return Err(Invalid::redirect_uri(
                    "a redirect URI must not contain user information (RFC 9700 §4.1.1)",
                ));
            }
            if insecure_redirect(&parsed) && !server.allow_insecure_redirect_uris {
                return Err(Invalid::redirect_uri(
                    "plain `http` redirect URIs are allowed only to loopback hosts (OAuth 2.1 §2.3.1); the server's `allow_insecure_redirect_uris` allows them elsewhere",
                ));
            }
        }
        if code_flow && self.redirect_uris.is_empty() {
            return Err(Invalid::redirect_uri(
                "the authorization_code grant needs at least one redirect URI",
            ));
        }
        Ok(())
    }

    /// RFC 7523 / RFC 7591 rules for the JWT methods: `private_key_jwt` registers exactly one
    /// of `jwks` (public keys it can verify with) and `jwks_uri`; `client_secret_jwt` registers
    /// neither; `token_endpoint_auth_signing_alg` is one of the method's algorithms. No method
    /// may register private key material.
    fn validate_jwt_fields(&self, method: AuthMethod) -> Result<(), Invalid> {
        use crate::client_keys::{has_private_members, AssertionAlg, ClientKeySet};
        if let Some(keys) = self
            .jwks
            .as_ref()
            .and_then(|j| j.get("keys"))
            .and_then(serde_json::Value::as_array)
        {
            if keys.iter().any(has_private_members) {
                return Err(meta(
                    "jwks",
                    "must hold public keys only (found a private or symmetric key member)",
                ));
            }
        }
        let alg = self.token_endpoint_auth_signing_alg.as_deref();
        match method {
            AuthMethod::ClientSecretJwt => {
                if self.jwks.is_some() {
                    return Err(meta(
                        "jwks",
                        "client_secret_jwt signs with the client secret; register no `jwks`",
                    ));
                }
                if self.jwks_uri.is_some() {
                    return Err(meta(
                        "jwks_uri",
                        "client_secret_jwt signs with the client secret; register no `jwks_uri`",
                    ));
                }
                if alg.is_some_and(|a| !AssertionAlg::HMAC_NAMES.contains(&a)) {
                    return Err(meta(
                        "token_endpoint_auth_signing_alg",
                        "for client_secret_jwt must be HS256, HS384 or HS512",
                    ));
                }
            }
            AuthMethod::PrivateKeyJwt => {
                if alg.is_some_and(|a| !AssertionAlg::KEY_NAMES.contains(&a)) {
                    return Err(meta(
                        "token_endpoint_auth_signing_alg",
                        "for private_key_jwt must be RS256, PS256, ES256 or EdDSA (Ed25519)",
                    ));
                }
                match (&self.jwks, &self.jwks_uri) {
                    (None, None) => {
                        return Err(meta(
                            "jwks",
                            "private_key_jwt requires `jwks` or `jwks_uri`",
                        ))
                    }
                    (Some(jwks), _) => {
                        let keys =
                            ClientKeySet::from_registration(jwks).map_err(|e| meta("jwks", e))?;
                        if let Some(alg) = alg.and_then(AssertionAlg::parse) {
                            if !keys.keys.iter().any(|k| k.fits(alg)) {
                                return Err(meta(
                                    "jwks",
                                    format!("holds no key usable with {}", alg.as_str()),
                                ));
                            }
                        }
                    }
                    (None, Some(_)) => {}
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Checks `jwks_uri` against the outbound client's rules (https; plain http and loopback
    /// address literals only with `--outbound-allow-loopback`; never another special-purpose
    /// address literal). Separate from [`Self::validated`] because it depends on process
    /// configuration, not on the server's policy.
    ///
    /// Also checks an inline `jwks` against the configured size limit (`--max-jwks-bytes`,
    /// the same limit a fetched document must respect).
    ///
    /// # Errors
    /// `invalid_client_metadata` naming `jwks_uri` or `jwks`.
    pub fn check_jwks_uri(
        &self,
        outbound: &crate::outbound::OutboundOptions,
        max_jwks_bytes: usize,
    ) -> Result<(), Invalid> {
        use crate::outbound::{check_url, OutboundError};
        if let Some(jwks) = &self.jwks {
            if jwks_size(jwks) > max_jwks_bytes {
                return Err(meta(
                    "jwks",
                    format!("must be at most {max_jwks_bytes} bytes (the limit)"),
                ));
            }
        }
        let Some(uri) = &self.jwks_uri else {
            return Ok(());
        };
        check_url(uri, outbound).map(|_| ()).map_err(|e| match e {
            OutboundError::Address(ip) => meta(
                "jwks_uri",
                format!("{ip} is a loopback, private or special-purpose address (loopback is allowed only with --outbound-allow-loopback)"),
            ),
            other => meta("jwks_uri", other.to_string()),
        })
    }

    fn validate_method_fields(&self, method: AuthMethod) -> Result<(), Invalid> {
        if self.jwks.is_some() && self.jwks_uri.is_some() {
            return Err(meta("jwks", "`jwks` and `jwks_uri` are mutually exclusive"));
        }
        if let Some(uri) = &self.jwks_uri {
            check_https_or_http_url("jwks_uri", uri)?;
        }
        if let Some(jwks) = &self.jwks {
            let keys = jwks.get("keys").and_then(serde_json::Value::as_array);
            if keys.is_none() {
                return Err(meta(
                    "jwks",
                    "must be a JWK Set: an object with a `keys` array",
                ));
            }
            // The configured limit (`--max-jwks-bytes`) is checked with the process's
            // options in `check_jwks_uri`; this is the ceiling any configuration allows.
            if jwks_size(jwks) > JWKS_BYTES_CEILING {
                return Err(meta(
                    "jwks",
                    format!("must be at most {JWKS_BYTES_CEILING} bytes"),
                ));
            }
        }
        if let Some(alg) = &self.token_endpoint_auth_signing_alg {
            if alg == "none" {
                return Err(meta(
                    "token_endpoint_auth_signing_alg",
                    "`none` is not allowed",
                ));
            }
            if !matches!(
                method,
                AuthMethod::ClientSecretJwt | AuthMethod::PrivateKeyJwt
            ) {
                return Err(meta(
                    "token_endpoint_auth_signing_alg",
                    "applies only to client_secret_jwt and private_key_jwt",
                ));
            }
        }
        self.validate_jwt_fields(method)?;
        self.validate_tls_fields(method)
    }

    /// RFC 8705 §2.1.2 / §2.2.2: `tls_client_auth` registers exactly one subject field, which
    /// must be well-formed; `self_signed_tls_client_auth` registers its certificates as `x5c`
    /// in an inline `jwks`. The subject fields belong to `tls_client_auth` only.
    fn validate_tls_fields(&self, method: AuthMethod) -> Result<(), Invalid> {
        let subject_fields = [
            (
                "tls_client_auth_subject_dn",
                &self.tls_client_auth_subject_dn,
            ),
            ("tls_client_auth_san_dns", &self.tls_client_auth_san_dns),
            ("tls_client_auth_san_uri", &self.tls_client_auth_san_uri),
            ("tls_client_auth_san_ip", &self.tls_client_auth_san_ip),
            ("tls_client_auth_san_email", &self.tls_client_auth_san_email),
        ];
        let mut given = subject_fields
            .iter()
            .filter_map(|(f, v)| v.as_deref().map(|v| (*f, v)));
        if method != AuthMethod::TlsClientAuth {
            if let Some((field, _)) = given.next() {
                return Err(meta(field, "applies only to tls_client_auth"));
            }
        } else {
            let Some((field, value)) = given.next() else {
                return Err(meta(
                    "tls_client_auth_subject_dn",
                    "tls_client_auth requires exactly one of tls_client_auth_subject_dn, \
                     tls_client_auth_san_dns, tls_client_auth_san_uri, tls_client_auth_san_ip, \
                     tls_client_auth_san_email",
                ));
            };
            if let Some((second, _)) = given.next() {
                return Err(meta(
                    second,
                    format!("tls_client_auth takes exactly one subject field; `{field}` is already given"),
                ));
            }
            check_text(field, Some(value), 1024)?;
            match field {
                "tls_client_auth_subject_dn" => {
                    crate::model::dn::DistinguishedName::parse(value).map_err(|e| {
                        meta(field, format!("is not an RFC 4514 distinguished name: {e}"))
                    })?;
                }
                "tls_client_auth_san_ip" => {
                    value
                        .parse::<std::net::IpAddr>()
                        .map_err(|_| meta(field, "must be an IPv4 or IPv6 address"))?;
                }
                "tls_client_auth_san_uri" => {
                    url::Url::parse(value).map_err(|_| meta(field, "must be an absolute URI"))?;
                }
                "tls_client_auth_san_email" => {
                    if !value
                        .split_once('@')
                        .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
                    {
                        return Err(meta(field, "must be an e-mail address"));
                    }
                }
                _ => {
                    if value.contains(' ') {
                        return Err(meta(field, "must be a DNS name"));
                    }
                }
            }
        }
        if method == AuthMethod::SelfSignedTlsClientAuth {
            if self.jwks_uri.is_some() {
                return Err(meta(
                    "jwks_uri",
                    "self_signed_tls_client_auth takes its certificates from an inline `jwks` (x5c)",
                ));
            }
            let Some(jwks) = &self.jwks else {
                return Err(meta("jwks", "self_signed_tls_client_auth requires `jwks` holding the client's certificates (x5c)"));
            };
            let certs =
                crate::client_keys::registered_certificates(jwks).map_err(|e| meta("jwks", e))?;
            if certs.is_empty() {
                return Err(meta("jwks", "self_signed_tls_client_auth requires at least one key with an `x5c` certificate"));
            }
        }
        Ok(())
    }
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

/// Associated data binding a sealed `client_secret_jwt` secret to its client.
#[must_use]
pub fn client_secret_context(t: &TenantId, s: &ServerId, id: &ClientId) -> String {
    format!("client-secret/{t}/{s}/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> Server {
        Server::example(TenantId::parse("t").unwrap(), ServerId::parse("s").unwrap())
    }

    fn parse(json: &str) -> Result<ClientMetadata, Invalid> {
        serde_json::from_str::<ClientMetadata>(json)
            .unwrap()
            .validated(&server(), &AuthMethod::servable(false))
    }

    #[test]
    fn applies_rfc7591_defaults() {
        let m = parse(r#"{"redirect_uris":["https://app/cb"]}"#).unwrap();
        assert_eq!(
            m.token_endpoint_auth_method,
            Some(AuthMethod::ClientSecretBasic)
        );
        assert_eq!(m.grant_types, vec!["authorization_code"]);
        assert_eq!(m.response_types, vec!["code"]);
    }

    #[test]
    fn invalid_combinations_name_the_field() {
        let rows = [
            (
                r#"{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}"#,
                "grant_types",
            ),
            (r#"{"grant_types":["password"]}"#, "grant_types"),
            (
                r#"{"grant_types":["authorization_code"],"redirect_uris":["https://a/cb#x"]}"#,
                "redirect_uris",
            ),
            (r#"{"grant_types":["authorization_code"]}"#, "redirect_uris"),
            (
                r#"{"grant_types":["authorization_code"],"redirect_uris":["not a url"]}"#,
                "redirect_uris",
            ),
            (
                r#"{"grant_types":["client_credentials"],"scope":"a\"b"}"#,
                "scope",
            ),
            (
                r#"{"grant_types":["client_credentials"],"response_types":["code"]}"#,
                "response_types",
            ),
            (
                r#"{"grant_types":["client_credentials"],"jwks":{"keys":[]},"jwks_uri":"https://x/j"}"#,
                "jwks",
            ),
            (
                r#"{"grant_types":["client_credentials"],"client_uri":"ftp://x"}"#,
                "client_uri",
            ),
            (
                r#"{"grant_types":["client_credentials"],"refresh_token":1,"client_name":""}"#,
                "client_name",
            ),
        ];
        for (json, field) in rows {
            let err = parse(json).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err:?}");
        }
    }

    #[test]
    fn logout_metadata_is_validated() {
        let ok = parse(
            r#"{"redirect_uris":["https://app.example/cb"],
                "post_logout_redirect_uris":["https://app.example/bye","http://127.0.0.1:9/bye"],
                "backchannel_logout_uri":"https://app.example/bc?x=1",
                "backchannel_logout_session_required":true,
                "frontchannel_logout_uri":"https://app.example/fc",
                "frontchannel_logout_session_required":true}"#,
        )
        .unwrap();
        assert_eq!(ok.post_logout_redirect_uris.len(), 2);
        assert_eq!(ok.backchannel_logout_session_required, Some(true));
        let rows = [
            (
                r#""post_logout_redirect_uris":["/bye"]"#,
                "post_logout_redirect_uris",
            ),
            (
                r#""post_logout_redirect_uris":["https://a/b#c"]"#,
                "post_logout_redirect_uris",
            ),
            (
                r#""post_logout_redirect_uris":["javascript:alert(1)"]"#,
                "post_logout_redirect_uris",
            ),
            (
                r#""post_logout_redirect_uris":["http://app.example/bye"]"#,
                "post_logout_redirect_uris",
            ),
            (
                r#""post_logout_redirect_uris":["https://u:p@app.example/bye"]"#,
                "post_logout_redirect_uris",
            ),
            (
                r#""backchannel_logout_uri":"https://app.example/bc#f""#,
                "backchannel_logout_uri",
            ),
            (
                r#""backchannel_logout_uri":"ftp://app.example/bc""#,
                "backchannel_logout_uri",
            ),
            (
                r#""frontchannel_logout_uri":"https://other.example/fc""#,
                "frontchannel_logout_uri",
            ),
            (
                r#""frontchannel_logout_uri":"https://app.example:8443/fc""#,
                "frontchannel_logout_uri",
            ),
        ];
        for (field_json, field) in rows {
            let json = format!(r#"{{"redirect_uris":["https://app.example/cb"],{field_json}}}"#);
            let err = parse(&json).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err:?}");
            assert_eq!(err.code, "invalid_client_metadata", "{json}");
        }
    }

    #[test]
    fn redirect_uris_refuse_unsafe_schemes_userinfo_and_insecure_http() {
        let check = |uri: &str, allow_insecure: bool| {
            let mut s = server();
            s.allow_insecure_redirect_uris = allow_insecure;
            serde_json::from_value::<ClientMetadata>(serde_json::json!({"redirect_uris": [uri]}))
                .unwrap()
                .validated(&s, &AuthMethod::servable(false))
                .map(|_| ())
                .map_err(|e| (e.code, e.field))
        };
        let refused = Err(("invalid_redirect_uri", "redirect_uris"));
        for uri in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "data:text/html,hi",
            "vbscript:msgbox",
            "file:///etc/passwd",
            "https://user@app.example/cb",
            "https://user:pw@app.example/cb",
            "https://:pw@app.example/cb",
            "http://user@127.0.0.1/cb",
        ] {
            assert_eq!(check(uri, false), refused, "{uri}");
            assert_eq!(
                check(uri, true),
                refused,
                "{uri} (never, whatever the setting)"
            );
        }
        for uri in [
            "http://app.example/cb",
            "http://192.0.2.1:8080/cb",
            "http://localhost.example/cb",
        ] {
            assert_eq!(check(uri, false), refused, "{uri}");
            assert_eq!(
                check(uri, true),
                Ok(()),
                "{uri} with allow_insecure_redirect_uris"
            );
        }
        for uri in [
            "https://app.example/cb",
            "http://127.0.0.1/cb",
            "http://127.0.0.2:9000/cb",
            "http://[::1]/cb",
            "http://localhost:8080/cb",
            "com.example.app:/oauth2redirect",
        ] {
            assert_eq!(check(uri, false), Ok(()), "{uri}");
        }
    }

    #[test]
    fn scope_is_normalised() {
        let m = parse(r#"{"grant_types":["client_credentials"],"scope":"b a  a"}"#).unwrap();
        assert_eq!(m.scope.as_deref(), Some("a b"));
    }

    fn parse_tls(json: serde_json::Value) -> Result<ClientMetadata, Invalid> {
        let mut s = server();
        s.allowed_token_endpoint_auth_methods = AuthMethod::servable(true);
        let mut json = json;
        json["grant_types"] = serde_json::json!(["client_credentials"]);
        serde_json::from_value::<ClientMetadata>(json)
            .unwrap()
            .validated(&s, &AuthMethod::servable(true))
    }

    fn x5c_jwks() -> serde_json::Value {
        use base64::Engine as _;
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["c.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        serde_json::json!({"keys": [{"kty": "EC", "x5c": [base64::engine::general_purpose::STANDARD.encode(cert.der())]}]})
    }

    #[test]
    fn tls_methods_validate_their_fields() {
        use serde_json::json;
        let tls = "tls_client_auth";
        let ss = "self_signed_tls_client_auth";
        let ok = [
            json!({"token_endpoint_auth_method": tls, "tls_client_auth_subject_dn": "CN=svc,O=Acme\\, Inc.,C=US"}),
            json!({"token_endpoint_auth_method": tls, "tls_client_auth_san_dns": "svc.example.com"}),
            json!({"token_endpoint_auth_method": tls, "tls_client_auth_san_uri": "spiffe://example.com/svc"}),
            json!({"token_endpoint_auth_method": tls, "tls_client_auth_san_ip": "2001:db8::1"}),
            json!({"token_endpoint_auth_method": tls, "tls_client_auth_san_email": "ops@example.com"}),
            json!({"token_endpoint_auth_method": ss, "jwks": x5c_jwks()}),
        ];
        for body in ok {
            assert!(
                parse_tls(body.clone()).is_ok(),
                "{body}: {:?}",
                parse_tls(body.clone())
            );
        }
        let rows = [
            (
                json!({"token_endpoint_auth_method": tls}),
                "tls_client_auth_subject_dn",
            ),
            (
                json!({"token_endpoint_auth_method": tls, "tls_client_auth_san_dns": "a", "tls_client_auth_san_ip": "192.0.2.1"}),
                "tls_client_auth_san_ip",
            ),
            (
                json!({"token_endpoint_auth_method": tls, "tls_client_auth_subject_dn": "not a dn"}),
                "tls_client_auth_subject_dn",
            ),
            (
                json!({"token_endpoint_auth_method": tls, "tls_client_auth_subject_dn": "CN=a;O=b"}),
                "tls_client_auth_subject_dn",
            ),
            (
                json!({"token_endpoint_auth_method": tls, "tls_client_auth_subject_dn": ""}),
                "tls_client_auth_subject_dn",
            ),
            (
                json!({"token_endpoint_auth_method": tls, "tls_client_auth_san_ip": "10.0.0.300"}),
                "tls_client_auth_san_ip",
            ),
            (
                json!({"token_endpoint_auth_method": tls, "tls_client_auth_san_uri": "not a uri"}),
                "tls_client_auth_san_uri",
            ),
            (
                json!({"token_endpoint_auth_method": tls, "tls_client_auth_san_email": "nobody"}),
                "tls_client_auth_san_email",
            ),
            (
                json!({"token_endpoint_auth_method": tls, "tls_client_auth_san_dns": "a b"}),
                "tls_client_auth_san_dns",
            ),
            (
                json!({"token_endpoint_auth_method": "client_secret_basic", "tls_client_auth_san_dns": "a"}),
                "tls_client_auth_san_dns",
            ),
            (
                json!({"token_endpoint_auth_method": ss, "tls_client_auth_subject_dn": "CN=a", "jwks": x5c_jwks()}),
                "tls_client_auth_subject_dn",
            ),
            (json!({"token_endpoint_auth_method": ss}), "jwks"),
            (
                json!({"token_endpoint_auth_method": ss, "jwks_uri": "https://c.example/jwks"}),
                "jwks_uri",
            ),
            (
                json!({"token_endpoint_auth_method": ss, "jwks": {"keys": [{"kty": "EC"}]}}),
                "jwks",
            ),
            (
                json!({"token_endpoint_auth_method": ss, "jwks": {"keys": [{"kty": "EC", "x5c": ["AAAA"]}]}}),
                "jwks",
            ),
        ];
        for (body, field) in rows {
            let err = parse_tls(body.clone()).unwrap_err();
            assert_eq!(err.field, field, "{body}: {err:?}");
        }
    }

    #[test]
    fn method_must_be_allowed_by_server() {
        let mut s = server();
        s.allowed_token_endpoint_auth_methods = vec![AuthMethod::ClientSecretPost];
        let m: ClientMetadata =
            serde_json::from_str(r#"{"grant_types":["client_credentials"]}"#).unwrap();
        assert_eq!(
            m.validated(&s, &AuthMethod::servable(false))
                .unwrap_err()
                .field,
            "token_endpoint_auth_method"
        );
    }
}

/// The JWT methods' registration rules (`client_secret_jwt`, `private_key_jwt`).
#[cfg(test)]
mod jwt_method_tests {
    #![allow(clippy::unwrap_used)]

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use serde_json::{json, Value};

    use super::*;
    use crate::outbound::OutboundOptions;

    fn server() -> Server {
        Server::example(TenantId::parse("t").unwrap(), ServerId::parse("s").unwrap())
    }

    fn validate(mut body: Value) -> Result<ClientMetadata, Invalid> {
        body["grant_types"] = json!(["client_credentials"]);
        serde_json::from_value::<ClientMetadata>(body)
            .unwrap()
            .validated(&server(), &AuthMethod::servable(false))
    }

    fn ec_key() -> Value {
        json!({"kty": "EC", "crv": "P-256", "kid": "k1",
               "x": URL_SAFE_NO_PAD.encode([1u8; 32]), "y": URL_SAFE_NO_PAD.encode([2u8; 32])})
    }

    #[test]
    fn accepts_valid_jwt_registrations() {
        let rows = [
            json!({"token_endpoint_auth_method": "client_secret_jwt"}),
            json!({"token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": "HS512"}),
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [ec_key()]}}),
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [ec_key()]}, "token_endpoint_auth_signing_alg": "ES256"}),
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://c.example/jwks.json", "token_endpoint_auth_signing_alg": "Ed25519"}),
        ];
        for body in rows {
            assert!(validate(body.clone()).is_ok(), "{body}");
        }
    }

    #[test]
    fn refuses_invalid_jwt_registrations_naming_the_field() {
        let pkj = "private_key_jwt";
        let csj = "client_secret_jwt";
        let private_ec = {
            let mut k = ec_key();
            k["d"] = json!(URL_SAFE_NO_PAD.encode([3u8; 32]));
            k
        };
        let rows = [
            (json!({"token_endpoint_auth_method": pkj}), "jwks"),
            (
                json!({"token_endpoint_auth_method": pkj, "jwks": {"keys": [ec_key()]}, "jwks_uri": "https://c.example/j"}),
                "jwks",
            ),
            (
                json!({"token_endpoint_auth_method": pkj, "jwks": {"keys": []}}),
                "jwks",
            ),
            (
                json!({"token_endpoint_auth_method": pkj, "jwks": {"keys": [&private_ec]}}),
                "jwks",
            ),
            (
                json!({"token_endpoint_auth_method": "client_secret_basic", "jwks": {"keys": [&private_ec]}}),
                "jwks",
            ),
            (
                json!({"token_endpoint_auth_method": pkj, "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
                "jwks",
            ),
            (
                json!({"token_endpoint_auth_method": pkj, "jwks": {"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]}}),
                "jwks",
            ),
            (
                json!({"token_endpoint_auth_method": pkj, "jwks": {"keys": [ec_key()]}, "token_endpoint_auth_signing_alg": "RS256"}),
                "jwks",
            ),
            (
                json!({"token_endpoint_auth_method": pkj, "jwks": {"keys": [ec_key()]}, "token_endpoint_auth_signing_alg": "HS256"}),
                "token_endpoint_auth_signing_alg",
            ),
            (
                json!({"token_endpoint_auth_method": pkj, "jwks": {"keys": [ec_key()]}, "token_endpoint_auth_signing_alg": "none"}),
                "token_endpoint_auth_signing_alg",
            ),
            (
                json!({"token_endpoint_auth_method": pkj, "jwks_uri": "not a url"}),
                "jwks_uri",
            ),
            (
                json!({"token_endpoint_auth_method": csj, "token_endpoint_auth_signing_alg": "ES256"}),
                "token_endpoint_auth_signing_alg",
            ),
            (
                json!({"token_endpoint_auth_method": csj, "jwks": {"keys": [ec_key()]}}),
                "jwks",
            ),
            (
                json!({"token_endpoint_auth_method": csj, "jwks_uri": "https://c.example/j"}),
                "jwks_uri",
            ),
            (
                json!({"token_endpoint_auth_method": "client_secret_post", "token_endpoint_auth_signing_alg": "HS256"}),
                "token_endpoint_auth_signing_alg",
            ),
        ];
        for (body, field) in rows {
            let err = validate(body.clone()).unwrap_err();
            assert_eq!(
                (err.code, err.field),
                ("invalid_client_metadata", field),
                "{body}: {err:?}"
            );
        }
    }

    #[test]
    fn jwks_uri_follows_the_outbound_options() {
        let strict = OutboundOptions::default();
        let dev = OutboundOptions {
            allow_loopback: true,
            ..OutboundOptions::default()
        };
        let rows = [
            ("https://c.example/jwks", true, true),
            ("http://c.example/jwks", false, false),
            ("https://127.0.0.1/jwks", false, true),
            ("http://[::1]:8080/jwks", false, true),
            ("https://10.0.0.1/jwks", false, false),
            ("https://[2001:db8::1]/jwks", false, false),
            ("https://user:pw@c.example/jwks", false, false),
        ];
        for (uri, strict_ok, dev_ok) in rows {
            let m =
                validate(json!({"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri}))
                    .unwrap();
            assert_eq!(
                m.check_jwks_uri(&strict, 65_536).is_ok(),
                strict_ok,
                "{uri} (strict)"
            );
            assert_eq!(
                m.check_jwks_uri(&dev, 65_536).is_ok(),
                dev_ok,
                "{uri} (loopback allowed)"
            );
            if let Err(e) = m.check_jwks_uri(&strict, 65_536) {
                assert_eq!(e.field, "jwks_uri");
            }
        }
    }
}

#[cfg(test)]
mod schema_tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Free-text metadata is what the OpenAPI document says: printable, 1 to its
        /// `maxLength` characters.
        #[test]
        fn free_text_is_printable_within_its_length(s in "\\PC{0,70}|[a\\x00-\\x1f\\u{7f}-\\u{a0}]{0,4}") {
            let pattern = regex::Regex::new(crate::model::PRINTABLE_PATTERN).unwrap();
            let len = s.chars().count();
            let fits = pattern.is_match(&s) && (1..=MAX_SOFTWARE_VERSION_CHARS).contains(&len);
            let ok = check_text("software_version", Some(&s), MAX_SOFTWARE_VERSION_CHARS).is_ok();
            prop_assert_eq!(fits, ok, "{:?}", s);
        }
    }
}
