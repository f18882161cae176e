//! OAuth clients: RFC 7591 metadata, its validation, and the stored client record.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::{ClientId, ServerId, TenantId};
use crate::manage::Invalid;
use crate::scope::Scopes;
use crate::server::{AuthMethod, Server};

/// Grant types a client may register.
pub const GRANT_TYPES: &[&str] = &["authorization_code", "refresh_token", "client_credentials"];
/// Response types a client may register.
pub const RESPONSE_TYPES: &[&str] = &["code"];

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
    /// JWS alg for ID tokens issued to this client.
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
}

/// Body of client creation: the metadata plus an optional caller-chosen `client_id`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct NewClient {
    /// Optional; generated (UUID) when absent.
    #[schema(value_type = Option<String>)]
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
    pub fn has_grant(&self, grant: &str) -> bool {
        self.metadata.grant_types.iter().any(|g| g == grant)
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

fn meta(field: &'static str, msg: impl Into<String>) -> Invalid {
    Invalid::client_metadata(field, msg)
}

fn check_https_or_http_url(field: &'static str, value: &str) -> Result<url::Url, Invalid> {
    if value.len() > 2048 {
        return Err(meta(field, "must be at most 2048 characters"));
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
            self.grant_types.push("authorization_code".into());
        }
        dedup(&mut self.grant_types);
        if let Some(g) = self
            .grant_types
            .iter()
            .find(|g| !GRANT_TYPES.contains(&g.as_str()))
        {
            return Err(meta("grant_types", format!("unsupported grant type `{g}`")));
        }
        let code_flow = self.grant_types.iter().any(|g| g == "authorization_code");
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
        if self.grant_types.iter().any(|g| g == "refresh_token") && !code_flow {
            return Err(meta(
                "grant_types",
                "refresh_token is only issued with the authorization_code grant",
            ));
        }
        if method == AuthMethod::None && self.grant_types.iter().any(|g| g == "client_credentials")
        {
            return Err(meta(
                "grant_types",
                "a public client (`none`) cannot use client_credentials",
            ));
        }
        self.validate_redirect_uris(code_flow)?;
        if let Some(scope) = &self.scope {
            let parsed = Scopes::parse(scope).map_err(|e| meta("scope", e.to_string()))?;
            self.scope = (!parsed.is_empty()).then(|| parsed.to_scope_string());
        }
        check_text("client_name", self.client_name.as_deref(), 200)?;
        check_text("software_id", self.software_id.as_deref(), 200)?;
        check_text("software_version", self.software_version.as_deref(), 64)?;
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
        if self.contacts.len() > 20 {
            return Err(meta("contacts", "at most 20 contacts"));
        }
        for c in &self.contacts {
            check_text("contacts", Some(c), 320)?;
        }
        if self.audience.len() > 50 {
            return Err(meta("audience", "at most 50 audiences"));
        }
        for a in &self.audience {
            check_text("audience", Some(a), 2048)?;
        }
        dedup(&mut self.audience);
        self.validate_method_fields(method)?;
        Ok(self)
    }

    fn validate_redirect_uris(&self, code_flow: bool) -> Result<(), Invalid> {
        if self.redirect_uris.len() > 50 {
            return Err(Invalid::redirect_uri("at most 50 redirect URIs"));
        }
        for uri in &self.redirect_uris {
            if uri.len() > 2048 {
                return Err(Invalid::redirect_uri("a redirect URI is longer than 2048"));
            }
            let parsed = url::Url::parse(uri)
                .map_err(|_| Invalid::redirect_uri("each redirect URI must be absolute"))?;
            if parsed.fragment().is_some() || uri.contains('#') {
                return Err(Invalid::redirect_uri(
                    "a redirect URI must not contain a fragment (RFC 6749 §3.1.2)",
                ));
            }
            if parsed.scheme() == "javascript" || parsed.scheme() == "data" {
                return Err(Invalid::redirect_uri("unsafe redirect URI scheme"));
            }
        }
        if code_flow && self.redirect_uris.is_empty() {
            return Err(Invalid::redirect_uri(
                "the authorization_code grant needs at least one redirect URI",
            ));
        }
        Ok(())
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
                return Err(meta("jwks", "must be a JWK Set: an object with a `keys` array"));
            }
            if serde_json::to_vec(jwks).map_or(0, |v| v.len()) > 64 * 1024 {
                return Err(meta("jwks", "must be at most 64 KiB"));
            }
        }
        if let Some(alg) = &self.token_endpoint_auth_signing_alg {
            if alg == "none" {
                return Err(meta("token_endpoint_auth_signing_alg", "`none` is not allowed"));
            }
            if !matches!(method, AuthMethod::ClientSecretJwt | AuthMethod::PrivateKeyJwt) {
                return Err(meta(
                    "token_endpoint_auth_signing_alg",
                    "applies only to client_secret_jwt and private_key_jwt",
                ));
            }
        }
        if let Some(alg) = &self.id_token_signed_response_alg {
            if crate::server::SigningAlg::parse(alg).is_none() {
                return Err(meta(
                    "id_token_signed_response_alg",
                    "must be one of ES256, RS256, PS256, EdDSA",
                ));
            }
        }
        Ok(())
    }
}

fn dedup(v: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(x.clone()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{SigningAlg, DEFAULT_ACCESS_TOKEN_TTL, DEFAULT_REFRESH_TOKEN_TTL};

    fn server() -> Server {
        Server {
            tenant_id: TenantId::parse("t").unwrap(),
            id: ServerId::parse("s").unwrap(),
            name: "S".into(),
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            refresh_token_ttl: DEFAULT_REFRESH_TOKEN_TTL,
            signing_alg: SigningAlg::ES256,
            default_audience: None,
            allowed_token_endpoint_auth_methods: AuthMethod::servable(false),
            tls_client_certificate_bound_access_tokens: false,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn parse(json: &str) -> Result<ClientMetadata, Invalid> {
        serde_json::from_str::<ClientMetadata>(json)
            .unwrap()
            .validated(&server(), &AuthMethod::servable(false))
    }

    #[test]
    fn applies_rfc7591_defaults() {
        let m = parse(r#"{"redirect_uris":["https://app/cb"]}"#).unwrap();
        assert_eq!(m.token_endpoint_auth_method, Some(AuthMethod::ClientSecretBasic));
        assert_eq!(m.grant_types, vec!["authorization_code"]);
        assert_eq!(m.response_types, vec!["code"]);
    }

    #[test]
    fn invalid_combinations_name_the_field() {
        let rows = [
            (r#"{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}"#, "grant_types"),
            (r#"{"grant_types":["password"]}"#, "grant_types"),
            (r#"{"grant_types":["authorization_code"],"redirect_uris":["https://a/cb#x"]}"#, "redirect_uris"),
            (r#"{"grant_types":["authorization_code"]}"#, "redirect_uris"),
            (r#"{"grant_types":["authorization_code"],"redirect_uris":["not a url"]}"#, "redirect_uris"),
            (r#"{"grant_types":["client_credentials"],"scope":"a\"b"}"#, "scope"),
            (r#"{"grant_types":["client_credentials"],"response_types":["code"]}"#, "response_types"),
            (r#"{"grant_types":["client_credentials"],"jwks":{"keys":[]},"jwks_uri":"https://x/j"}"#, "jwks"),
            (r#"{"grant_types":["client_credentials"],"client_uri":"ftp://x"}"#, "client_uri"),
            (r#"{"grant_types":["client_credentials"],"refresh_token":1,"client_name":""}"#, "client_name"),
        ];
        for (json, field) in rows {
            let err = parse(json).unwrap_err();
            assert_eq!(err.field, field, "{json}: {err:?}");
        }
    }

    #[test]
    fn scope_is_normalised() {
        let m = parse(r#"{"grant_types":["client_credentials"],"scope":"b a  a"}"#).unwrap();
        assert_eq!(m.scope.as_deref(), Some("a b"));
    }

    #[test]
    fn method_must_be_allowed_by_server() {
        let mut s = server();
        s.allowed_token_endpoint_auth_methods = vec![AuthMethod::ClientSecretPost];
        let m: ClientMetadata = serde_json::from_str(r#"{"grant_types":["client_credentials"]}"#).unwrap();
        assert_eq!(m.validated(&s, &AuthMethod::servable(false)).unwrap_err().field, "token_endpoint_auth_method");
    }
}
