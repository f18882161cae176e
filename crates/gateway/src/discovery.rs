//! Discovery: OpenID Connect Discovery 1.0, RFC 8414 authorization server metadata (in both
//! the `/{tid}/{aid}/.well-known/…` and the RFC 8414 §3 `/.well-known/…/{tid}/{aid}` forms),
//! and the JWK Set (RFC 7517), public keys only.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};
use serde::Serialize;
use tollgate_core::model::server::{AuthMethod, SigningAlg};
use tollgate_core::oauth::{ClientEndpoint, GrantType, ResponseMode};
use tollgate_core::registry::ServerRuntime;
use tollgate_core::Tollgate;

use crate::{server_ids, OAuthResponse};

/// How long clients may cache discovery documents and keys.
const CACHE: &str = "public, max-age=60";

/// JWS algorithms accepted for client assertions (RFC 7523) at every client endpoint.
const ASSERTION_ALGS: &[&str] = &[
    "HS256", "HS384", "HS512", "RS256", "PS256", "ES256", "EdDSA", "Ed25519",
];

#[derive(Serialize)]
struct Metadata<'a> {
    issuer: &'a str,
    authorization_endpoint: String,
    token_endpoint: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    jwks_uri: String,
    grant_types_supported: Vec<&'static str>,
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    token_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    introspection_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    revocation_endpoint_auth_signing_alg_values_supported: &'static [&'static str],
    response_types_supported: [&'static str; 1],
    response_modes_supported: &'static [&'static str],
    code_challenge_methods_supported: Vec<&'static str>,
    /// RFC 9207.
    authorization_response_iss_parameter_supported: bool,
    scopes_supported: Vec<&'static str>,
    /// RFC 8705 §3.3.
    tls_client_certificate_bound_access_tokens: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_types_supported: Option<[&'static str; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token_signing_alg_values_supported: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    userinfo_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claims_supported: Option<Vec<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_values_supported: Option<[&'static str; 4]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claims_parameter_supported: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_uri_parameter_supported: Option<bool>,
    /// RFC 8628 §4.
    device_authorization_endpoint: String,
    #[serde(flatten)]
    authorization_requests: AuthorizationRequests,
}

/// What discovery says of pushed requests (RFC 9126 §5), request objects (RFC 9101 §10.5)
/// and JWT-secured responses (JARM §5), in both documents.
#[derive(Serialize)]
struct AuthorizationRequests {
    pushed_authorization_request_endpoint: String,
    require_pushed_authorization_requests: bool,
    pushed_authorization_request_endpoint_auth_methods_supported: Vec<&'static str>,
    request_parameter_supported: bool,
    request_object_signing_alg_values_supported: &'static [&'static str],
    authorization_signing_alg_values_supported: Vec<&'static str>,
}

/// Scopes every server understands: the OpenID Connect ones (OIDC Core §5.4). Clients'
/// own scopes are theirs to publish.
const STANDARD_SCOPES: &[&str] = &["openid", "profile", "email", "address", "phone"];

fn metadata<'a>(app: &Tollgate, server: &'a ServerRuntime, oidc: bool) -> Metadata<'a> {
    let servable = app.servable_methods();
    // What a client registered with each method can do at each endpoint: a public client
    // (`none`) cannot introspect, so introspection does not list it.
    let methods = |endpoint: ClientEndpoint| -> Vec<&'static str> {
        server
            .server
            .allowed_token_endpoint_auth_methods
            .iter()
            .filter(|m| servable.contains(m))
            .filter(|m| **m != AuthMethod::None || endpoint.admits_public_clients())
            .map(|m| m.as_str())
            .collect()
    };
    let id_algs: Vec<&'static str> = server
        .server
        .id_token_algs()
        .into_iter()
        .map(SigningAlg::as_str)
        .collect();
    let mut pkce = vec!["S256"];
    if server.server.allow_plain_pkce {
        pkce.push("plain");
    }
    let mut claims: Vec<&'static str> = vec![
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "amr",
        "azp",
        "at_hash",
    ];
    claims.extend(tollgate_core::model::users::claim_names());
    Metadata {
        issuer: &server.issuer,
        authorization_endpoint: format!("{}/oauth2/authorize", server.issuer),
        token_endpoint: ClientEndpoint::Token.url(&server.issuer),
        introspection_endpoint: ClientEndpoint::Introspection.url(&server.issuer),
        revocation_endpoint: ClientEndpoint::Revocation.url(&server.issuer),
        jwks_uri: format!("{}/.well-known/jwks.json", server.issuer),
        grant_types_supported: GrantType::ALL.iter().map(|g| g.as_str()).collect(),
        token_endpoint_auth_methods_supported: methods(ClientEndpoint::Token),
        token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGS,
        introspection_endpoint_auth_methods_supported: methods(ClientEndpoint::Introspection),
        introspection_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGS,
        revocation_endpoint_auth_methods_supported: methods(ClientEndpoint::Revocation),
        revocation_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGS,
        response_types_supported: ["code"],
        response_modes_supported: ResponseMode::NAMES,
        code_challenge_methods_supported: pkce,
        authorization_response_iss_parameter_supported: true,
        scopes_supported: STANDARD_SCOPES.to_vec(),
        // Only true where certificates can arrive at all.
        tls_client_certificate_bound_access_tokens: server
            .server
            .tls_client_certificate_bound_access_tokens
            && app.options.client_certificates,
        subject_types_supported: oidc.then_some(["public"]),
        id_token_signing_alg_values_supported: oidc.then(|| id_algs.clone()),
        userinfo_endpoint: oidc.then(|| format!("{}/userinfo", server.issuer)),
        claims_supported: oidc.then_some(claims),
        prompt_values_supported: oidc.then_some(["none", "login", "consent", "select_account"]),
        claims_parameter_supported: oidc.then_some(false),
        // Only pushed `request_uri`s, never one to fetch (OIDC Core §6.2's default is true).
        request_uri_parameter_supported: oidc.then_some(false),
        device_authorization_endpoint: ClientEndpoint::DeviceAuthorization.url(&server.issuer),
        authorization_requests: AuthorizationRequests {
            pushed_authorization_request_endpoint: ClientEndpoint::PushedAuthorization
                .url(&server.issuer),
            require_pushed_authorization_requests: server
                .server
                .require_pushed_authorization_requests,
            pushed_authorization_request_endpoint_auth_methods_supported: methods(
                ClientEndpoint::PushedAuthorization,
            ),
            request_parameter_supported: true,
            request_object_signing_alg_values_supported: ASSERTION_ALGS,
            authorization_signing_alg_values_supported: id_algs,
        },
    }
}

fn cacheable() -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::Ok();
    b.insert_header((header::CACHE_CONTROL, HeaderValue::from_static(CACHE)))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ));
    b
}

/// `GET /{tid}/{aid}/.well-known/openid-configuration`.
pub async fn openid_configuration(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, OAuthResponse> {
    let (t, s) = server_ids(&path)?;
    let server = app.server(&t, &s).await?;
    Ok(cacheable().json(metadata(&app, &server, true)))
}

/// `GET /{tid}/{aid}/.well-known/oauth-authorization-server` and its RFC 8414 §3 form.
pub async fn oauth_metadata(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, OAuthResponse> {
    let (t, s) = server_ids(&path)?;
    let server = app.server(&t, &s).await?;
    Ok(cacheable().json(metadata(&app, &server, false)))
}

/// `GET /{tid}/{aid}/.well-known/jwks.json`.
pub async fn jwks(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, OAuthResponse> {
    let (t, s) = server_ids(&path)?;
    let server = app.server(&t, &s).await?;
    Ok(cacheable()
        .content_type("application/jwk-set+json")
        .body(server.jwks.clone()))
}
