//! Pushed authorization requests (RFC 9126), request objects (RFC 9101) and the response
//! modes (Form Post, JARM) against the real binary, on both backends: PAR → authorize →
//! login → consent → code → token with each of the seven client-authentication methods at
//! PAR; a request object by value at `/oauth2/authorize` and inside a PAR body; every
//! `response_mode`, the JWT-secured ones verified with the server's JWKS by jsonwebtoken; and
//! a table of every RFC 9126 §2.3 / RFC 9101 §6 error. Keys and certificates are made here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

#[allow(dead_code)]
mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::decode_header;
use serde_json::{json, Value};
use support::flow::{authorize_url, hidden, pkce, query_param, user, Agent, Resp};
use support::material::{hs256_assertion, now, self_signed, Cert, ClientCa, ClientKey, JWT_BEARER};
use support::{basic, Backend, Server};

const REDIRECT: &str = "https://app.example/callback";
const PASSWORD: &str = "correct horse battery";
const USER: &str = "alice@example.com";
const HEADER: &str = "X-Client-Cert";
const SCOPE: &str = "openid profile";

/// How a client authenticates, with what it holds.
enum Cred {
    Basic(String, String),
    Post(String, String),
    SecretJwt(String, String),
    KeyJwt(String, ClientKey),
    Tls(String, Cert),
    SelfSigned(String, Cert),
    Public(String),
}

impl Cred {
    fn id(&self) -> &str {
        match self {
            Self::Basic(id, _)
            | Self::Post(id, _)
            | Self::SecretJwt(id, _)
            | Self::KeyJwt(id, _)
            | Self::Tls(id, _)
            | Self::SelfSigned(id, _)
            | Self::Public(id) => id,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Basic(..) => "client_secret_basic",
            Self::Post(..) => "client_secret_post",
            Self::SecretJwt(..) => "client_secret_jwt",
            Self::KeyJwt(..) => "private_key_jwt",
            Self::Tls(..) => "tls_client_auth",
            Self::SelfSigned(..) => "self_signed_tls_client_auth",
            Self::Public(..) => "none",
        }
    }

    /// POSTs `form` to `url` authenticated this way; assertions name `aud`.
    async fn post(
        &self,
        server: &Server,
        url: &str,
        aud: &str,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut form: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut req = server.http.post(url);
        let claims = || support::material::assertion_claims(self.id(), aud);
        match self {
            Self::Basic(id, secret) => req = req.header("Authorization", basic(id, secret)),
            Self::Post(id, secret) => {
                form.push(("client_id".into(), id.clone()));
                form.push(("client_secret".into(), secret.clone()));
            }
            Self::SecretJwt(_, secret) => {
                form.push(("client_assertion_type".into(), JWT_BEARER.into()));
                form.push((
                    "client_assertion".into(),
                    hs256_assertion(secret, &claims()),
                ));
            }
            Self::KeyJwt(_, key) => {
                form.push(("client_assertion_type".into(), JWT_BEARER.into()));
                form.push(("client_assertion".into(), key.sign(&claims())));
            }
            Self::Tls(id, cert) | Self::SelfSigned(id, cert) => {
                form.push(("client_id".into(), id.clone()));
                req = req.header(HEADER, cert.escaped());
            }
            Self::Public(id) => form.push(("client_id".into(), id.clone())),
        }
        let res = req.form(&form).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

struct Setup {
    tid: String,
    issuer: String,
    creds: Vec<Cred>,
    _ca: ClientCa,
}

impl Setup {
    fn par_url(&self) -> String {
        format!("{}/oauth2/par", self.issuer)
    }
    fn cred(&self, method: &str) -> &Cred {
        self.creds.iter().find(|c| c.name() == method).unwrap()
    }
}

async fn start(backend: &Backend, ca: &ClientCa) -> Server {
    Server::start_with(
        backend,
        &[
            "--client-cert-header",
            HEADER,
            "--trusted-proxies",
            "127.0.0.1/32",
            "--tls-client-ca",
            &ca.pem_path(),
            "--rate-limit-failures-burst",
            "1000",
        ],
    )
    .await
}

async fn setup(server: &Server, ca: ClientCa, server_extra: Value) -> Setup {
    let tid = support::unique("par");
    server.tenant_and_server(&tid, "main", server_extra).await;
    let base = |method: &str| {
        json!({"grant_types": ["authorization_code"], "redirect_uris": [REDIRECT],
               "scope": SCOPE, "token_endpoint_auth_method": method})
    };
    let with = |method: &str, extra: Value| {
        let mut b = base(method);
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let mut creds = Vec::new();
    let (id, secret) = server
        .client(&tid, "main", base("client_secret_basic"))
        .await;
    creds.push(Cred::Basic(id, secret));
    let (id, secret) = server
        .client(&tid, "main", base("client_secret_post"))
        .await;
    creds.push(Cred::Post(id, secret));
    let (id, secret) = server.client(&tid, "main", base("client_secret_jwt")).await;
    creds.push(Cred::SecretJwt(id, secret));
    let key = ClientKey::es256("k1");
    let (id, _) = server
        .client(
            &tid,
            "main",
            with("private_key_jwt", json!({"jwks": key.jwks()})),
        )
        .await;
    creds.push(Cred::KeyJwt(id, key));
    let cert = ca.issue("par-device");
    let (id, _) = server
        .client(
            &tid,
            "main",
            with(
                "tls_client_auth",
                json!({"tls_client_auth_subject_dn": "CN=par-device"}),
            ),
        )
        .await;
    creds.push(Cred::Tls(id, cert));
    let own = self_signed("par-self");
    let (id, _) = server
        .client(
            &tid,
            "main",
            with("self_signed_tls_client_auth", json!({"jwks": own.jwks()})),
        )
        .await;
    creds.push(Cred::SelfSigned(id, own));
    let (id, _) = server.client(&tid, "main", base("none")).await;
    creds.push(Cred::Public(id));
    user(
        server,
        &tid,
        "main",
        USER,
        PASSWORD,
        json!({"name": "Alice"}),
    )
    .await;
    Setup {
        issuer: format!("{}/{tid}/main", server.gateway),
        tid,
        creds,
        _ca: ca,
    }
}

/// The authorization request's own parameters, with a fresh PKCE pair.
fn request_params(state: &str) -> (String, Vec<(String, String)>) {
    let (verifier, challenge) = pkce();
    let params = vec![
        ("response_type".to_owned(), "code".to_owned()),
        ("redirect_uri".to_owned(), REDIRECT.to_owned()),
        ("scope".to_owned(), SCOPE.to_owned()),
        ("state".to_owned(), state.to_owned()),
        ("code_challenge".to_owned(), challenge),
        ("code_challenge_method".to_owned(), "S256".to_owned()),
    ];
    (verifier, params)
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

async fn push(server: &Server, s: &Setup, cred: &Cred, form: &[(&str, &str)]) -> (u16, Value) {
    cred.post(server, &s.par_url(), &s.par_url(), form).await
}

/// Runs the browser part from an authorize URL to the redirect back to the client.
async fn browse(agent: &Agent, s: &Setup, url: &str) -> Resp {
    let (res, _) = agent
        .authorize(&s.issuer, url, USER, PASSWORD, "allow")
        .await;
    res
}

async fn exchange(server: &Server, s: &Setup, cred: &Cred, code: &str, verifier: &str) -> Value {
    let token_url = format!("{}/oauth2/token", s.issuer);
    let (status, body) = cred
        .post(
            server,
            &token_url,
            &token_url,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
        )
        .await;
    assert_eq!(status, 200, "{}: {body}", cred.name());
    body
}

async fn par_with_every_client_authentication_method(backend: &Backend) {
    let ca = ClientCa::new("PAR test CA");
    let server = start(backend, &ca).await;
    let s = setup(&server, ca, json!({})).await;
    let agent = Agent::new();
    for cred in &s.creds {
        let (verifier, params) = request_params(cred.name());
        let (status, body) = push(&server, &s, cred, &pairs(&params)).await;
        assert_eq!(status, 201, "{}: {body}", cred.name());
        let request_uri = body["request_uri"].as_str().unwrap();
        assert!(
            request_uri.starts_with("urn:ietf:params:oauth:request_uri:"),
            "{body}"
        );
        assert_eq!(body["expires_in"], 60, "{body}");
        // RFC 9126 §4: only client_id and request_uri count; the rest is ignored.
        let url = authorize_url(
            &s.issuer,
            &[
                ("client_id", cred.id()),
                ("request_uri", request_uri),
                ("redirect_uri", "https://evil.example/steal"),
                ("state", "from-the-query"),
            ],
        );
        let res = browse(&agent, &s, &url).await;
        assert_eq!(res.status, 303, "{}: {}", cred.name(), res.body);
        let location = res.location.clone().unwrap();
        assert!(location.starts_with(REDIRECT), "{location}");
        assert_eq!(res.location_param("state").as_deref(), Some(cred.name()));
        let code = res.location_param("code").unwrap();
        let tokens = exchange(&server, &s, cred, &code, &verifier).await;
        assert!(tokens["access_token"].is_string(), "{tokens}");
        assert!(tokens["id_token"].is_string(), "{tokens}");
        // Single-use: the same request_uri again is an error page, never a redirect.
        let again = agent.get(&url).await;
        assert_eq!(again.status, 400, "{}", again.body);
        assert!(again.body.contains("invalid_request_uri"), "{}", again.body);
    }
}

fn object_claims(client_id: &str, issuer: &str, params: &[(String, String)]) -> Value {
    let mut claims = json!({"iss": client_id, "aud": issuer, "exp": now() + 120,
        "nbf": now() - 5, "iat": now(), "jti": uuid::Uuid::new_v4().to_string(),
        "client_id": client_id});
    for (k, v) in params {
        claims[k] = json!(v);
    }
    claims
}

async fn request_objects_by_value_and_inside_par(backend: &Backend) {
    let ca = ClientCa::new("PAR test CA");
    let server = start(backend, &ca).await;
    let s = setup(&server, ca, json!({})).await;
    let agent = Agent::new();
    // By value at /oauth2/authorize, signed ES256 with the private_key_jwt client's key; only
    // the object's parameters count (RFC 9101 §6.3): the query's state and scope are ignored.
    let Cred::KeyJwt(id, key) = s.cred("private_key_jwt") else {
        unreachable!()
    };
    let (verifier, params) = request_params("inside-the-object");
    let object = key.sign(&object_claims(id, &s.issuer, &params));
    let url = authorize_url(
        &s.issuer,
        &[
            ("client_id", id),
            ("request", &object),
            ("response_type", "code"),
            ("scope", "openid"),
            ("state", "from-the-query"),
        ],
    );
    let res = browse(&agent, &s, &url).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(
        res.location_param("state").as_deref(),
        Some("inside-the-object")
    );
    let code = res.location_param("code").unwrap();
    let tokens = exchange(&server, &s, s.cred("private_key_jwt"), &code, &verifier).await;
    assert_eq!(tokens["scope"], SCOPE, "{tokens}");
    // The same object again: its jti is spent.
    let replay = agent.get(&url).await;
    assert_eq!(replay.status, 400, "{}", replay.body);
    assert!(
        replay.body.contains("invalid_request_object"),
        "{}",
        replay.body
    );

    // Inside a PAR body, HS256 with the client_secret_jwt client's secret.
    let cred = s.cred("client_secret_jwt");
    let Cred::SecretJwt(id, secret) = cred else {
        unreachable!()
    };
    let (verifier, params) = request_params("pushed-object");
    let object = hs256_assertion(secret, &object_claims(id, &s.issuer, &params));
    let (status, body) = push(&server, &s, cred, &[("request", &object)]).await;
    assert_eq!(status, 201, "{body}");
    let url = authorize_url(
        &s.issuer,
        &[
            ("client_id", id),
            ("request_uri", body["request_uri"].as_str().unwrap()),
        ],
    );
    let res = browse(&agent, &s, &url).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(
        res.location_param("state").as_deref(),
        Some("pushed-object")
    );
    let code = res.location_param("code").unwrap();
    exchange(&server, &s, cred, &code, &verifier).await;
}

/// Verifies a JARM response with the server's JWKS (RS256 unless the client chose).
async fn jarm_claims(server: &Server, issuer: &str, jwt: &str, aud: &str) -> Value {
    assert_eq!(
        decode_header(jwt).unwrap().alg,
        jsonwebtoken::Algorithm::RS256,
        "JARM default alg"
    );
    support::flow::verify_with_jwks(server, issuer, jwt, aud).await
}

fn fragment_param(url: &str, name: &str) -> Option<String> {
    let fragment = url::Url::parse(url).ok()?.fragment()?.to_owned();
    url::form_urlencoded::parse(fragment.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The parameters a response carried, whatever its mode.
async fn response_params(
    server: &Server,
    s: &Setup,
    client_id: &str,
    mode: &str,
    res: &Resp,
) -> Value {
    let get = |name: &str| -> Option<String> {
        if mode.starts_with("form_post") {
            assert_eq!(res.status, 200, "{mode}: {}", res.body);
            hidden(&res.body, name)
        } else {
            assert_eq!(res.status, 303, "{mode}: {}", res.body);
            let loc = res.location.as_deref().unwrap();
            assert!(loc.starts_with(REDIRECT), "{loc}");
            if mode.starts_with("fragment") {
                fragment_param(loc, name)
            } else {
                query_param(loc, name)
            }
        }
    };
    if mode.contains("jwt") {
        let jwt = get("response").unwrap_or_else(|| panic!("{mode}: no response"));
        assert!(get("code").is_none(), "{mode}: only `response`");
        jarm_claims(server, &s.issuer, &jwt, client_id).await
    } else {
        json!({"code": get("code"), "state": get("state"), "error": get("error")})
    }
}

async fn every_response_mode(backend: &Backend) {
    let ca = ClientCa::new("PAR test CA");
    let server = start(backend, &ca).await;
    let s = setup(&server, ca, json!({})).await;
    let cred = s.cred("client_secret_basic");
    let agent = Agent::new();
    for mode in [
        "query",
        "fragment",
        "form_post",
        "jwt",
        "query.jwt",
        "fragment.jwt",
        "form_post.jwt",
    ] {
        let (verifier, mut params) = request_params(mode);
        params.push(("response_mode".into(), mode.into()));
        let (status, body) = push(&server, &s, cred, &pairs(&params)).await;
        assert_eq!(status, 201, "{mode}: {body}");
        let url = authorize_url(
            &s.issuer,
            &[
                ("client_id", cred.id()),
                ("request_uri", body["request_uri"].as_str().unwrap()),
            ],
        );
        let res = browse(&agent, &s, &url).await;
        if mode.starts_with("form_post") {
            let csp = res.headers["content-security-policy"].to_str().unwrap();
            assert!(csp.contains("script-src 'nonce-"), "{csp}");
            assert!(
                csp.contains("form-action 'self' https://app.example"),
                "{csp}"
            );
            assert!(
                res.body.contains(&format!("action=\"{REDIRECT}\"")),
                "{}",
                res.body
            );
            assert!(
                res.body.contains("<button type=\"submit\""),
                "works without JavaScript"
            );
        }
        let p = response_params(&server, &s, cred.id(), mode, &res).await;
        assert_eq!(p["state"], mode, "{mode}: {p}");
        if mode.contains("jwt") {
            assert!(p["exp"].as_i64().unwrap() > now(), "{p}");
        }
        let code = p["code"].as_str().unwrap_or_else(|| panic!("{mode}: {p}"));
        exchange(&server, &s, cred, code, &verifier).await;
    }
    // Errors travel the same way: prompt=none without a session, JWT-secured.
    for mode in ["query.jwt", "form_post", "fragment"] {
        let (_, mut params) = request_params("err");
        params.push(("response_mode".into(), mode.into()));
        params.push(("prompt".into(), "none".into()));
        params.push(("client_id".into(), cred.id().into()));
        let fresh = Agent::new();
        let res = fresh.get(&authorize_url(&s.issuer, &pairs(&params))).await;
        let p = response_params(&server, &s, cred.id(), mode, &res).await;
        assert_eq!(p["error"], "login_required", "{mode}: {p}");
        assert_eq!(p["state"], "err", "{mode}: {p}");
    }
    // A client's own alg: ES256 is the server's signing_alg here.
    let (id, _) = server
        .client(
            &s.tid,
            "main",
            json!({"grant_types": ["authorization_code"], "redirect_uris": [REDIRECT],
            "scope": SCOPE, "authorization_signed_response_alg": "PS256"}),
        )
        .await;
    let (_, mut params) = request_params("ps");
    params.push(("response_mode".into(), "query.jwt".into()));
    params.push(("prompt".into(), "none".into()));
    params.push(("client_id".into(), id.clone()));
    let res = Agent::new()
        .get(&authorize_url(&s.issuer, &pairs(&params)))
        .await;
    let jwt = query_param(res.location.as_deref().unwrap(), "response").unwrap();
    assert_eq!(
        decode_header(&jwt).unwrap().alg,
        jsonwebtoken::Algorithm::PS256
    );
}

/// `params` with `name` set to `value`.
fn replaced(params: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    params
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k == name {
                    value.to_owned()
                } else {
                    v.clone()
                },
            )
        })
        .collect()
}

/// One row of the PAR error table: what, who pushes, the body, status, error.
type Row<'a> = (&'a str, &'a Cred, Vec<(String, String)>, u16, &'a str);

fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    format!("{header}.{payload}.")
}

async fn every_error_of_rfc_9126_and_rfc_9101(backend: &Backend) {
    let ca = ClientCa::new("PAR test CA");
    let server = start(backend, &ca).await;
    let s = setup(&server, ca, json!({})).await;
    let Cred::KeyJwt(key_id, key) = s.cred("private_key_jwt") else {
        unreachable!()
    };
    let basic_cred = s.cred("client_secret_basic");
    let public = s.cred("none");
    let (_, good) = request_params("s");
    let good_claims = object_claims(key_id, &s.issuer, &good);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good_claims.clone();
        f(&mut c);
        key.sign(&c)
    };
    let stranger = ClientKey::es256("k1");
    let replayed = with(&|_| {});
    let wrong_secret = Cred::Basic(basic_cred.id().into(), "wrong".into());
    // (what, who pushes, body, status, error)
    let rows: Vec<Row<'_>> = vec![
        (
            "request_uri in the body",
            basic_cred,
            [
                good.clone(),
                vec![(
                    "request_uri".into(),
                    "urn:ietf:params:oauth:request_uri:x".into(),
                )],
            ]
            .concat(),
            400,
            "invalid_request",
        ),
        (
            "unregistered redirect_uri",
            basic_cred,
            replaced(&good, "redirect_uri", "https://evil.example/cb"),
            400,
            "invalid_request",
        ),
        (
            "scope beyond the registration",
            basic_cred,
            replaced(&good, "scope", "openid admin"),
            400,
            "invalid_scope",
        ),
        (
            "response_type token",
            basic_cred,
            replaced(&good, "response_type", "token"),
            400,
            "unsupported_response_type",
        ),
        (
            "public client without PKCE",
            public,
            good.iter()
                .filter(|(k, _)| !k.starts_with("code_challenge"))
                .cloned()
                .collect(),
            400,
            "invalid_request",
        ),
        (
            "unknown response_mode",
            basic_cred,
            [
                good.clone(),
                vec![("response_mode".into(), "web_message".into())],
            ]
            .concat(),
            400,
            "invalid_request",
        ),
        (
            "unsigned request object",
            s.cred("private_key_jwt"),
            vec![("request".into(), unsigned(&good_claims))],
            400,
            "invalid_request_object",
        ),
        (
            "wrongly signed request object",
            s.cred("private_key_jwt"),
            vec![("request".into(), stranger.sign(&good_claims))],
            400,
            "invalid_request_object",
        ),
        (
            "request object for another audience",
            s.cred("private_key_jwt"),
            vec![(
                "request".into(),
                with(&|c| c["aud"] = json!("https://other.example")),
            )],
            400,
            "invalid_request_object",
        ),
        (
            "expired request object",
            s.cred("private_key_jwt"),
            vec![("request".into(), with(&|c| c["exp"] = json!(now() - 600)))],
            400,
            "invalid_request_object",
        ),
        (
            "request object without exp",
            s.cred("private_key_jwt"),
            vec![(
                "request".into(),
                with(&|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
            )],
            400,
            "invalid_request_object",
        ),
        (
            "request object from another iss",
            s.cred("private_key_jwt"),
            vec![(
                "request".into(),
                with(&|c| c["iss"] = json!("someone-else")),
            )],
            400,
            "invalid_request_object",
        ),
        (
            "request object not yet valid",
            s.cred("private_key_jwt"),
            vec![("request".into(), with(&|c| c["nbf"] = json!(now() + 3600)))],
            400,
            "invalid_request_object",
        ),
        (
            "request object first use",
            s.cred("private_key_jwt"),
            vec![("request".into(), replayed.clone())],
            201,
            "",
        ),
        (
            "replayed request object jti",
            s.cred("private_key_jwt"),
            vec![("request".into(), replayed.clone())],
            400,
            "invalid_request_object",
        ),
        (
            "HMAC object from a key client",
            s.cred("private_key_jwt"),
            vec![(
                "request".into(),
                hs256_assertion("x".repeat(32).as_str(), &good_claims),
            )],
            400,
            "invalid_request_object",
        ),
        (
            "wrong client secret",
            &wrong_secret,
            good.clone(),
            401,
            "invalid_client",
        ),
    ];
    for (what, cred, body, status, error) in rows {
        let (got, reply) = push(&server, &s, cred, &pairs(&body)).await;
        assert_eq!(got, status, "{what}: {reply}");
        if !error.is_empty() {
            assert_eq!(reply["error"], error, "{what}: {reply}");
            assert!(reply["error_description"].is_string(), "{what}: {reply}");
        }
    }

    // At /oauth2/authorize (RFC 9126 §4): used, foreign, unknown request_uris are pages.
    let (status, pushed) = push(&server, &s, basic_cred, &pairs(&good)).await;
    assert_eq!(status, 201, "{pushed}");
    let request_uri = pushed["request_uri"].as_str().unwrap();
    let agent = Agent::new();
    let other = s.cred("client_secret_post").id();
    let page_rows = [
        (
            "another client's request_uri",
            other,
            request_uri.to_owned(),
        ),
        (
            "unknown request_uri",
            basic_cred.id(),
            "urn:ietf:params:oauth:request_uri:nothing".to_owned(),
        ),
        (
            "not a request_uri URN",
            basic_cred.id(),
            "https://app.example/request.jwt".to_owned(),
        ),
    ];
    for (what, client_id, uri) in &page_rows {
        let res = agent
            .get(&authorize_url(
                &s.issuer,
                &[("client_id", client_id), ("request_uri", uri)],
            ))
            .await;
        assert_eq!(res.status, 400, "{what}: {}", res.body);
        assert!(res.location.is_none(), "{what}: never a redirect");
        assert!(
            res.body.contains("invalid_request_uri"),
            "{what}: {}",
            res.body
        );
    }
    // The foreign attempt did not consume it: its own client still runs it, once.
    let url = authorize_url(
        &s.issuer,
        &[("client_id", basic_cred.id()), ("request_uri", request_uri)],
    );
    let res = browse(&agent, &s, &url).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(res.location_param("code").is_some());
    let reused = agent.get(&url).await;
    assert_eq!(reused.status, 400, "reused: {}", reused.body);
    assert!(reused.body.contains("invalid_request_uri"));

    // Another tenant's server, with a client of the same id, finds nothing.
    let other_tid = support::unique("par2");
    server
        .tenant_and_server(&other_tid, "main", json!({}))
        .await;
    let (status, b) = server
        .admin_post(
            &format!("/admin/tenants/{other_tid}/servers/main/clients"),
            &json!({"client_id": basic_cred.id(), "grant_types": ["authorization_code"], "redirect_uris": [REDIRECT], "scope": SCOPE}),
        )
        .await;
    assert_eq!(status, 201, "{b}");
    let (status, pushed) = push(&server, &s, basic_cred, &pairs(&good)).await;
    assert_eq!(status, 201);
    let other_issuer = format!("{}/{other_tid}/main", server.gateway);
    let res = agent
        .get(&authorize_url(
            &other_issuer,
            &[
                ("client_id", basic_cred.id()),
                ("request_uri", pushed["request_uri"].as_str().unwrap()),
            ],
        ))
        .await;
    assert_eq!(res.status, 400, "{}", res.body);

    // A request object by value at /oauth2/authorize that does not verify: a page.
    let res = agent
        .get(&authorize_url(
            &s.issuer,
            &[("client_id", key_id), ("request", &unsigned(&good_claims))],
        ))
        .await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(res.body.contains("invalid_request_object"), "{}", res.body);

    // PAR required, by the server and by a client: an authorization request that was not
    // pushed is refused (to the registered redirect URI); a pushed one runs.
    let direct = |client_id: &str| {
        let mut p = good.clone();
        p.push(("client_id".into(), client_id.into()));
        authorize_url(&s.issuer, &pairs(&p))
    };
    let (id, _) = server
        .client(
            &s.tid,
            "main",
            json!({"grant_types": ["authorization_code"], "redirect_uris": [REDIRECT],
            "scope": SCOPE, "require_pushed_authorization_requests": true}),
        )
        .await;
    let res = agent.get(&direct(&id)).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(
        res.location_param("error").as_deref(),
        Some("invalid_request")
    );
    assert!(res
        .location_param("error_description")
        .unwrap()
        .contains("pushed"));
    let res = agent.get(&direct(basic_cred.id())).await;
    assert!(
        res.location_param("code").is_some(),
        "not required for others: {:?}",
        res.location
    );
    let (status, b) = server
        .admin_call(
            reqwest::Method::PATCH,
            &format!("/admin/tenants/{}/servers/main", s.tid),
            Some(&json!({"require_pushed_authorization_requests": true})),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    let res = agent.get(&direct(basic_cred.id())).await;
    assert_eq!(
        res.location_param("error").as_deref(),
        Some("invalid_request"),
        "{:?}",
        res.location
    );
    let (status, pushed) = push(&server, &s, basic_cred, &pairs(&good)).await;
    assert_eq!(status, 201, "{pushed}");
    let res = agent
        .get(&authorize_url(
            &s.issuer,
            &[
                ("client_id", basic_cred.id()),
                ("request_uri", pushed["request_uri"].as_str().unwrap()),
            ],
        ))
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(res.location_param("code").is_some(), "{:?}", res.location);
}

async fn discovery_and_admin_fields(backend: &Backend) {
    let ca = ClientCa::new("PAR test CA");
    let server = start(backend, &ca).await;
    let s = setup(
        &server,
        ca,
        json!({"pushed_authorization_request_ttl": 120}),
    )
    .await;
    for doc in ["openid-configuration", "oauth-authorization-server"] {
        let d: Value = server
            .http
            .get(format!("{}/.well-known/{doc}", s.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            d["pushed_authorization_request_endpoint"],
            format!("{}/oauth2/par", s.issuer),
            "{doc}"
        );
        assert_eq!(d["require_pushed_authorization_requests"], false, "{doc}");
        assert_eq!(d["request_parameter_supported"], true, "{doc}");
        let algs = d["request_object_signing_alg_values_supported"]
            .as_array()
            .unwrap();
        assert!(
            algs.contains(&json!("ES256")) && !algs.contains(&json!("none")),
            "{doc}"
        );
        let modes = d["response_modes_supported"].as_array().unwrap();
        for m in [
            "query",
            "form_post",
            "jwt",
            "query.jwt",
            "form_post.jwt",
            "fragment.jwt",
        ] {
            assert!(modes.contains(&json!(m)), "{doc}: {m}");
        }
        assert!(d["authorization_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("RS256")));
        assert!(
            d["pushed_authorization_request_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&json!("none"))
        );
    }
    let (_, body) = push(
        &server,
        &s,
        s.cred("client_secret_basic"),
        &pairs(&request_params("t").1),
    )
    .await;
    assert_eq!(body["expires_in"], 120, "{body}");
    let path = format!("/admin/tenants/{}/servers/main", s.tid);
    for (bad, field) in [
        (
            json!({"pushed_authorization_request_ttl": 5}),
            "pushed_authorization_request_ttl",
        ),
        (
            json!({"pushed_authorization_request_ttl": 601}),
            "pushed_authorization_request_ttl",
        ),
        (
            json!({"require_pushed_authorization_requests": "yes"}),
            "require_pushed_authorization_requests",
        ),
    ] {
        let (status, b) = server
            .admin_call(reqwest::Method::PATCH, &path, Some(&bad))
            .await;
        assert_eq!(status, 400, "{bad}: {b}");
        assert!(
            b["error_description"].as_str().unwrap().contains(field),
            "{bad}: {b}"
        );
    }
    let clients = format!("{path}/clients");
    for (bad, field) in [
        (
            json!({"request_object_signing_alg": "none"}),
            "request_object_signing_alg",
        ),
        (
            json!({"request_object_signing_alg": "ES256"}),
            "request_object_signing_alg",
        ),
        (
            json!({"request_object_signing_alg": "HS256"}),
            "request_object_signing_alg",
        ),
        (
            json!({"authorization_signed_response_alg": "HS256"}),
            "authorization_signed_response_alg",
        ),
        (
            json!({"authorization_signed_response_alg": "EdDSA"}),
            "authorization_signed_response_alg",
        ),
    ] {
        let mut body = json!({"grant_types": ["authorization_code"], "redirect_uris": [REDIRECT]});
        body.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let (status, b) = server.admin_post(&clients, &body).await;
        assert_eq!(status, 400, "{bad}: {b}");
        assert!(
            b["error_description"].as_str().unwrap().contains(field),
            "{bad}: {b}"
        );
    }
    // A registered request_object_signing_alg is the only one accepted.
    let key = ClientKey::es256("k9");
    let (status, b) = server
        .admin_post(&clients, &json!({"grant_types": ["authorization_code"], "redirect_uris": [REDIRECT], "scope": SCOPE,
            "token_endpoint_auth_method": "private_key_jwt", "jwks": key.jwks(), "request_object_signing_alg": "ES256",
            "require_pushed_authorization_requests": true, "authorization_signed_response_alg": "PS256"}))
        .await;
    assert_eq!(status, 201, "{b}");
    assert_eq!(b["request_object_signing_alg"], "ES256");
    assert_eq!(b["require_pushed_authorization_requests"], true);
    assert_eq!(b["authorization_signed_response_alg"], "PS256");
}

/// PAR is rate-limited like the token endpoint: the client's bucket, once authenticated.
async fn par_is_rate_limited_per_client(backend: &Backend) {
    let ca = ClientCa::new("PAR test CA");
    let server = start(backend, &ca).await;
    let s = setup(
        &server,
        ca,
        json!({"rate_limits": {"client_per_second": 1, "client_burst": 2}}),
    )
    .await;
    let (a, b) = (s.cred("client_secret_basic"), s.cred("client_secret_post"));
    let form = request_params("rl").1;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(push(&server, &s, a, &pairs(&form)).await.0);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(statuses[0], 201, "{statuses:?}");
    // Another client of the same server has its own bucket.
    assert_eq!(push(&server, &s, b, &pairs(&form)).await.0, 201);
}

both_backends! {
    par_is_rate_limited_per_client => par_is_rate_limited_per_client;
    par_with_every_client_authentication_method => par_with_every_client_authentication_method;
    request_objects_by_value_and_inside_par => request_objects_by_value_and_inside_par;
    every_response_mode => every_response_mode;
    every_error_of_rfc_9126_and_rfc_9101 => every_error_of_rfc_9126_and_rfc_9101;
    discovery_and_admin_fields => discovery_and_admin_fields;
}
