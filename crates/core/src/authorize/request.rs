//! The authorization request (RFC 6749 §4.1.1, RFC 7636 §4.3, OpenID Connect Core §3.1.2.1):
//! its parameters, checked in the order RFC 6749 §4.1.2.1 prescribes — the client and its
//! redirect URI first, whose failures are shown to the user and never redirected (an
//! attacker could otherwise bounce the browser anywhere), then everything else, whose
//! failures go back to the client.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{AuthorizeError, RedirectError};
use crate::app::Tollgate;
use crate::ids::ClientId;
use crate::limits::Limits;
use crate::model::client::{insecure_redirect, loopback_http, UNSAFE_REDIRECT_SCHEMES};
use crate::model::server::AuthMethod;
use crate::oauth::pkce::{self, Method};
use crate::oauth::ResponseMode;
use crate::registry::{ClientRuntime, ServerRuntime};
use crate::scope::Scopes;

/// Longest `nonce` accepted.
const MAX_NONCE: usize = 512;
/// Longest `login_hint` accepted.
const MAX_LOGIN_HINT: usize = 256;
/// Largest `max_age` accepted: a year.
const MAX_MAX_AGE: i64 = 365 * 24 * 3600;

/// OIDC `prompt` values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::struct_excessive_bools)]
pub struct Prompt {
    /// `none`: no page may be shown.
    pub none: bool,
    /// `login`: authenticate again even with a session.
    pub login: bool,
    /// `consent`: ask again even when consent was given.
    pub consent: bool,
}

/// A validated authorization request, as kept while the user logs in and consents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    /// The client.
    pub client_id: ClientId,
    /// The registered redirect URI, exactly as sent.
    pub redirect_uri: String,
    /// The scopes to grant, space-delimited (the client's registered ones when none asked).
    pub scope: String,
    /// Returned untouched.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub state: Option<String>,
    /// Echoed in the ID token.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nonce: Option<String>,
    /// PKCE challenge.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code_challenge: Option<String>,
    /// PKCE method (with a challenge).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code_challenge_method: Option<Method>,
    /// `prompt`.
    #[serde(default)]
    pub prompt: Prompt,
    /// `max_age`, seconds.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub max_age: Option<i64>,
    /// `login_hint`, pre-filled on the login page.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub login_hint: Option<String>,
    /// How the response reaches the client (`query` unless the request chose another).
    #[serde(default)]
    pub response_mode: ResponseMode,
    /// For a device's request (RFC 8628 §3.3, entered on `/device`): the SHA-256 of its
    /// device code. The flow then ends in the device's decision, not a redirect with a code.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub device: Option<String>,
}

impl AuthorizeRequest {
    /// The scopes to grant.
    #[must_use]
    pub fn scopes(&self) -> Scopes {
        Scopes::parse(&self.scope).unwrap_or_default()
    }

    /// An error for this request, to be sent back to its redirect URI.
    #[must_use]
    pub fn error(
        &self,
        issuer: &str,
        code: &'static str,
        description: impl Into<String>,
    ) -> AuthorizeError {
        AuthorizeError::Redirect(Box::new(RedirectError {
            redirect_uri: self.redirect_uri.clone(),
            error: code,
            description: description.into(),
            state: self.state.clone(),
            issuer: issuer.to_owned(),
            client_id: self.client_id.clone(),
            mode: self.response_mode,
        }))
    }
}

/// The raw parameters, by name: repeated ones keep every value so the check can refuse them.
#[derive(Debug, Default)]
pub struct RawParams(BTreeMap<String, Vec<String>>);

impl RawParams {
    /// Collects name/value pairs from a query string or a form, within `limits`.
    ///
    /// # Errors
    /// An error page for too many or too long parameters: nothing is trusted yet.
    pub fn from_pairs<I>(pairs: I, limits: &Limits) -> Result<Self, AuthorizeError>
    where
        I: IntoIterator<Item = (String, String)>,
    {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (i, (name, value)) in pairs.into_iter().enumerate() {
            if i >= limits.max_params {
                return Err(AuthorizeError::page(
                    400,
                    format!(
                        "The request has more than {} parameters.",
                        limits.max_params
                    ),
                ));
            }
            if value.len() > limits.max_param_bytes {
                return Err(AuthorizeError::page(
                    400,
                    format!(
                        "A request parameter is longer than {} bytes.",
                        limits.max_param_bytes
                    ),
                ));
            }
            map.entry(name).or_default().push(value);
        }
        Ok(Self(map))
    }

    /// The parameters of a request object (RFC 9101 §4): its claims, but the JWT's own
    /// (`iss`, `aud`, `exp`, `nbf`, `iat`, `jti`); strings as they are, other values as
    /// JSON text; plus the `client_id` the request names.
    ///
    /// # Errors
    /// An error page for too many or too long parameters.
    pub fn from_claims(
        claims: &serde_json::Map<String, serde_json::Value>,
        client_id: &ClientId,
        limits: &Limits,
    ) -> Result<Self, AuthorizeError> {
        const JWT_CLAIMS: &[&str] = &["iss", "aud", "exp", "nbf", "iat", "jti", "client_id"];
        let pairs = claims
            .iter()
            .filter(|(name, _)| !JWT_CLAIMS.contains(&name.as_str()))
            .map(|(name, value)| {
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                (name.clone(), text)
            })
            .chain(std::iter::once((
                "client_id".to_owned(),
                client_id.to_string(),
            )));
        Self::from_pairs(pairs, limits)
    }

    /// One parameter: empty values count as absent (RFC 6749 §3.1); `Err` when repeated.
    pub(crate) fn one(&self, name: &str) -> Result<Option<&str>, ()> {
        match self.0.get(name).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([v]) => Ok((!v.is_empty()).then_some(v.as_str())),
            Some(_) => Err(()),
        }
    }

    /// The `client_id` the request names, if it names one well-formed (for rate limiting,
    /// before anything is validated).
    #[must_use]
    pub fn client_id(&self) -> Option<ClientId> {
        self.one("client_id")
            .ok()
            .flatten()
            .and_then(|c| ClientId::parse(c).ok())
    }

    /// Whether the parameter is present with a value.
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.0
            .get(name)
            .is_some_and(|v| v.iter().any(|x| !x.is_empty()))
    }
}

/// Whether `presented` matches a registered redirect URI: exactly, or — only for a native app,
/// a public client (RFC 8252 §7.3, §8.4; RFC 9700 §4.1.3) — a loopback IP literal with any
/// port. A plain `http` URI to a non-loopback host matches only while the server allows such
/// URIs (`allow_insecure_redirect_uris`), so turning that off stops the ones registered before.
fn redirect_matches(
    registered: &[String],
    presented: &str,
    native: bool,
    allow_insecure: bool,
) -> bool {
    let Ok(p) = url::Url::parse(presented) else {
        return false;
    };
    // What registration refuses never matches, even if stored before the rule existed.
    if UNSAFE_REDIRECT_SCHEMES.contains(&p.scheme())
        || !p.username().is_empty()
        || p.password().is_some()
        || (insecure_redirect(&p) && !allow_insecure)
    {
        return false;
    }
    if registered.iter().any(|r| r == presented) {
        return true;
    }
    let ip_loopback = |u: &url::Url| {
        loopback_http(u) && matches!(u.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)))
    };
    if !native || !ip_loopback(&p) {
        return false;
    }
    registered.iter().any(|r| {
        url::Url::parse(r).is_ok_and(|mut r| {
            if !ip_loopback(&r) {
                return false;
            }
            let mut p = p.clone();
            let _ = r.set_port(None);
            let _ = p.set_port(None);
            r == p
        })
    })
}

fn printable(s: &str, max: usize) -> bool {
    s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// Checks an authorization request for `server`: the client first; then a pushed request
/// (`request_uri`, RFC 9126 §4: the other parameters are ignored) is taken, or a request
/// object (`request`, RFC 9101 §6.3: only its parameters count) verified; then the redirect
/// URI (an error page on failure), then the rest (errors for the redirect URI).
///
/// # Errors
/// As above; `503` when the client cannot be read.
pub async fn validate(
    app: &Tollgate,
    server: &ServerRuntime,
    raw: &RawParams,
) -> Result<(AuthorizeRequest, std::sync::Arc<ClientRuntime>), AuthorizeError> {
    let client = requesting_client(app, server, raw).await?;
    if raw.has("request_uri") {
        if raw.has("request") {
            return Err(AuthorizeError::page(
                400,
                "invalid_request: the request has both `request` and `request_uri`.",
            ));
        }
        let uri = raw.one("request_uri").map_err(|()| {
            AuthorizeError::page(400, "invalid_request: the request repeats `request_uri`.")
        })?;
        let req =
            super::pushed::take(app, server, &client.client.client_id, uri.unwrap_or("")).await?;
        return Ok((req, client));
    }
    let object;
    let raw = match raw.one("request") {
        Ok(Some(jwt)) => {
            let claims = crate::client_auth::request_object::verify(
                &app.client_auth(),
                server,
                &client,
                jwt,
            )
            .await
            .map_err(|e| match e.code {
                crate::oauth::ErrorCode::InvalidRequestObject => {
                    AuthorizeError::page(400, format!("invalid_request_object: {}.", e.description))
                }
                _ => AuthorizeError::from_oauth(e),
            })?;
            object =
                RawParams::from_claims(&claims, &client.client.client_id, &app.options.limits)?;
            &object
        }
        Ok(None) => raw,
        Err(()) => {
            return Err(AuthorizeError::page(
                400,
                "invalid_request: the request repeats `request`.",
            ))
        }
    };
    let req = check(server, &client, raw, Origin::Browser)?;
    Ok((req, client))
}

/// Where an authorization request arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// At `/oauth2/authorize`, from the browser.
    Browser,
    /// Pushed by the client to `/oauth2/par` (RFC 9126).
    Pushed,
}

/// The client a request's `client_id` names on `server` (an error page when there is none).
async fn requesting_client(
    app: &Tollgate,
    server: &ServerRuntime,
    raw: &RawParams,
) -> Result<std::sync::Arc<ClientRuntime>, AuthorizeError> {
    let client_id = raw
        .one("client_id")
        .map_err(|()| AuthorizeError::page(400, "The request repeats `client_id`."))?
        .ok_or_else(|| AuthorizeError::page(400, "The request has no `client_id`."))?;
    let unknown = || {
        AuthorizeError::page(
            400,
            "The application that sent you here is not registered with this server.",
        )
    };
    let client_id = ClientId::parse(client_id).map_err(|_| unknown())?;
    app.client(&server.server.tenant_id, &server.server.id, &client_id)
        .await
        .map_err(AuthorizeError::from_oauth)?
        .ok_or_else(unknown)
}

/// Checks the parameters of an authorization request of `client` (whose `client_id` they
/// name), arrived from `origin`: the redirect URI first (an error page on failure), then the
/// rest in RFC 6749 §4.1.2.1 order (errors for the redirect URI).
///
/// # Errors
/// As above.
pub fn check(
    server: &ServerRuntime,
    client: &ClientRuntime,
    raw: &RawParams,
    origin: Origin,
) -> Result<AuthorizeRequest, AuthorizeError> {
    let client_id = client.client.client_id.clone();
    let redirect_uri = raw
        .one("redirect_uri")
        .map_err(|()| AuthorizeError::page(400, "The request repeats `redirect_uri`."))?
        .ok_or_else(|| AuthorizeError::page(400, "The request has no `redirect_uri`."))?;
    let native = client.client.auth_method() == AuthMethod::None;
    if !redirect_matches(
        &client.client.metadata.redirect_uris,
        redirect_uri,
        native,
        server.server.allow_insecure_redirect_uris,
    ) {
        return Err(AuthorizeError::page(
            400,
            "The `redirect_uri` is not registered for this application.",
        ));
    }
    // From here on the redirect URI is trusted: errors go back to the client with `state`.
    let state = raw.one("state").ok().flatten().map(str::to_owned);
    let mut req = AuthorizeRequest {
        client_id,
        redirect_uri: redirect_uri.to_owned(),
        scope: String::new(),
        state,
        nonce: None,
        code_challenge: None,
        code_challenge_method: None,
        prompt: Prompt::default(),
        max_age: None,
        login_hint: None,
        response_mode: ResponseMode::Query,
        device: None,
    };
    let issuer = server.issuer.as_str();
    let bad = |req: &AuthorizeRequest, d: String| req.error(issuer, "invalid_request", d);
    // Early, so that every later error travels the way the client asked.
    if let Ok(Some(mode)) = raw.one("response_mode") {
        match ResponseMode::parse(mode) {
            Some(m) => req.response_mode = m,
            None => {
                return Err(bad(
                    &req,
                    "unsupported `response_mode`: use query, fragment, form_post, jwt, \
                     query.jwt, fragment.jwt or form_post.jwt"
                        .into(),
                ))
            }
        }
    }
    for (name, values) in &raw.0 {
        if values.len() > 1 {
            let shown: String = name
                .chars()
                .filter(char::is_ascii_graphic)
                .take(64)
                .collect();
            return Err(bad(&req, format!("parameter `{shown}` is repeated")));
        }
    }
    // RFC 9126 §5: a server or client that requires pushed requests takes no other.
    let required = server.server.require_pushed_authorization_requests || c_requires_par(client);
    if origin == Origin::Browser && required {
        return Err(bad(
            &req,
            "pushed authorization requests are required: push the request to the \
             pushed_authorization_request_endpoint and send its `request_uri`"
                .into(),
        ));
    }
    // What validation resolved before: a request object or a pushed request holds neither.
    if raw.has("request") || raw.has("request_uri") {
        return Err(bad(
            &req,
            "`request` and `request_uri` cannot appear here".into(),
        ));
    }
    if raw.has("registration") {
        return Err(req.error(
            issuer,
            "registration_not_supported",
            "`registration` is not supported",
        ));
    }
    let one = |name: &str| raw.one(name).ok().flatten();
    match one("response_type") {
        None => return Err(bad(&req, "missing parameter `response_type`".into())),
        Some("code") => {}
        Some(_) => {
            return Err(req.error(
                issuer,
                "unsupported_response_type",
                "only `response_type=code` is supported",
            ))
        }
    }
    let c = &client.client;
    if !c.has_grant(crate::oauth::GrantType::AuthorizationCode) {
        return Err(req.error(
            issuer,
            "unauthorized_client",
            "the client is not registered for the authorization_code grant",
        ));
    }
    let allowed = c.scopes();
    let scopes = match one("scope") {
        Some(s) => {
            let s =
                Scopes::parse(s).map_err(|e| req.error(issuer, "invalid_scope", e.to_string()))?;
            if !s.is_subset(&allowed) {
                return Err(req.error(
                    issuer,
                    "invalid_scope",
                    "requested scope exceeds the scope registered for the client",
                ));
            }
            s
        }
        None => allowed,
    };
    req.scope = scopes.to_scope_string();
    // PKCE (RFC 7636 §4.3; RFC 9700 §2.1.1).
    let public = c.auth_method() == AuthMethod::None;
    let method = one("code_challenge_method");
    match (one("code_challenge"), method) {
        (None, Some(_)) => {
            return Err(bad(
                &req,
                "`code_challenge_method` without `code_challenge`".into(),
            ))
        }
        (None, None) => {
            if public {
                return Err(bad(
                    &req,
                    "public clients must use PKCE (`code_challenge` with S256)".into(),
                ));
            }
            if server.server.require_pkce {
                return Err(bad(
                    &req,
                    "this server requires PKCE (`code_challenge` with S256)".into(),
                ));
            }
        }
        (Some(challenge), method) => {
            // RFC 7636 §4.3: an absent method means `plain`.
            let Some(method) = method.map_or(Some(Method::Plain), Method::parse) else {
                return Err(bad(&req, "`code_challenge_method` must be S256".into()));
            };
            if method == Method::Plain && (public || !server.server.allow_plain_pkce) {
                return Err(bad(
                    &req,
                    "`code_challenge_method` must be S256 (plain is not allowed)".into(),
                ));
            }
            if !pkce::well_formed(challenge) {
                return Err(bad(
                    &req,
                    "`code_challenge` must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~".into(),
                ));
            }
            req.code_challenge = Some(challenge.to_owned());
            req.code_challenge_method = Some(method);
        }
    }
    if let Some(prompt) = one("prompt") {
        for value in prompt.split(' ').filter(|v| !v.is_empty()) {
            match value {
                "none" => req.prompt.none = true,
                "login" => req.prompt.login = true,
                "consent" => req.prompt.consent = true,
                // The one account a session holds is the selection.
                "select_account" => {}
                _ => {
                    return Err(bad(
                        &req,
                        "`prompt` may contain only none, login, consent and select_account".into(),
                    ))
                }
            }
        }
        if req.prompt.none
            && (req.prompt.login || req.prompt.consent || prompt.contains("select_account"))
        {
            return Err(bad(
                &req,
                "`prompt=none` cannot be combined with other values".into(),
            ));
        }
    }
    if let Some(max_age) = one("max_age") {
        match max_age.parse::<i64>() {
            Ok(v) if (0..=MAX_MAX_AGE).contains(&v) => req.max_age = Some(v),
            _ => return Err(bad(&req, "`max_age` must be a number of seconds".into())),
        }
    }
    if let Some(nonce) = one("nonce") {
        if !printable(nonce, MAX_NONCE) {
            return Err(bad(
                &req,
                format!("`nonce` must be at most {MAX_NONCE} printable characters"),
            ));
        }
        req.nonce = Some(nonce.to_owned());
    }
    if let Some(hint) = one("login_hint") {
        // A hint is only a convenience: an unusable one is dropped rather than refused.
        if printable(hint, MAX_LOGIN_HINT) {
            req.login_hint = Some(hint.to_owned());
        }
    }
    Ok(req)
}

fn c_requires_par(client: &ClientRuntime) -> bool {
    client
        .client
        .metadata
        .require_pushed_authorization_requests
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_match_exactly_or_by_loopback_port_for_native_apps() {
        let reg = vec![
            "https://app.example/cb".to_string(),
            "http://127.0.0.1/native".to_string(),
            "http://[::1]/v6".to_string(),
            "http://dev.example/cb".to_string(),
        ];
        for native in [true, false] {
            assert!(redirect_matches(
                &reg,
                "https://app.example/cb",
                native,
                false
            ));
            assert!(redirect_matches(
                &reg,
                "http://127.0.0.1/native",
                native,
                false
            ));
            for bad in [
                "https://app.example/cb/",
                "https://app.example/cb?x=1",
                "https://APP.example/cb",
                "https://app.example:443/cbx",
                "http://app.example/cb",
                "http://127.0.0.1:8080/other",
                "http://localhost:8080/native",
                "http://dev.example/cb",
            ] {
                assert!(!redirect_matches(&reg, bad, native, false), "{bad}");
            }
            // Stored before registration refused them: never matched.
            let old = vec![
                "vbscript:x".to_string(),
                "file:///tmp/x".to_string(),
                "https://u:p@app.example/cb".to_string(),
            ];
            for uri in &old {
                assert!(!redirect_matches(&old, uri, native, true), "{uri}");
            }
            // A registered plain-http URI works only while the server allows them.
            assert!(redirect_matches(
                &reg,
                "http://dev.example/cb",
                native,
                true
            ));
        }
        // RFC 8252 §7.3: any port, for native (public) clients only.
        for any_port in ["http://127.0.0.1:51234/native", "http://[::1]:8123/v6"] {
            assert!(redirect_matches(&reg, any_port, true, false), "{any_port}");
            assert!(
                !redirect_matches(&reg, any_port, false, false),
                "{any_port}"
            );
        }
    }

    #[test]
    fn repeated_and_empty_parameters() {
        let raw = RawParams::from_pairs(
            vec![
                ("a".to_string(), "1".to_string()),
                ("a".to_string(), "2".to_string()),
                ("b".to_string(), String::new()),
            ],
            &Limits::default(),
        )
        .unwrap();
        assert!(raw.one("a").is_err());
        assert_eq!(raw.one("b"), Ok(None));
        assert_eq!(raw.one("c"), Ok(None));
    }
}
