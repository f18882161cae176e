//! Secrets hygiene against the real binary, on both backends. One process, logging at
//! `RUST_LOG=debug` and exporting spans to an OTLP/HTTP receiver inside the test, is driven
//! through every endpoint that exists — the whole admin API (credentials and the audit trail
//! included) and, at the gateway, the token endpoint with every client-authentication method
//! that works without TLS (secret Basic and post, `client_secret_jwt`, `private_key_jwt`, both
//! certificate methods through a trusted proxy's header), introspection and revocation —
//! succeeding and failing, with known, distinctive secrets, tokens, assertions and passwords.
//! None of them (nor its base64 or URL-encoded form) may appear in the process's output, the
//! exported spans, `/metrics`, any error response, or the audit trail.
//!
//! A second, static test keeps secret comparisons constant-time: no `==` on an exposed
//! secret, a hash or a digest anywhere in the crates' sources.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reqwest::Method;
use serde_json::{json, Value};
use support::material::{
    assertion_claims, hs256_assertion, self_signed, ClientCa, ClientKey, JWT_BEARER,
};
use support::otlp::{hex_id, otel_env, receiver};
use support::{basic, Backend, Server};

/// Every secret the test used, each with the forms in which it could leak.
#[derive(Default)]
struct Secrets(Vec<(String, String)>);

impl Secrets {
    /// `value` and its URL-encoded and base64 forms.
    fn add(&mut self, what: &str, value: &str) {
        assert!(value.len() >= 12, "{what} is too short to search for");
        let encoded: String = url::form_urlencoded::byte_serialize(value.as_bytes()).collect();
        let forms = [
            ("", value.to_owned()),
            (" (form-encoded)", encoded),
            (" (base64)", STANDARD.encode(value)),
            (" (base64url)", URL_SAFE_NO_PAD.encode(value)),
        ];
        for (how, form) in forms {
            if !self.0.iter().any(|(_, v)| *v == form) {
                self.0.push((format!("{what}{how}"), form));
            }
        }
    }

    /// A client's secret, and the `Authorization: Basic` credentials made of it.
    fn add_client_secret(&mut self, what: &str, client_id: &str, secret: &str) {
        self.add(what, secret);
        self.add(
            &format!("{what} as HTTP Basic"),
            &format!("{client_id}:{secret}"),
        );
    }

    /// A JWT (token or assertion): whole, and its signature on its own.
    fn add_jwt(&mut self, what: &str, jwt: &str) {
        self.add(what, jwt);
        let signature = jwt.rsplit('.').next().unwrap();
        self.add(&format!("{what}'s signature"), signature);
    }

    /// Every form found in `text`, as failures naming `place`.
    fn find_in(&self, place: &str, text: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, v)| text.contains(v.as_str()))
            .map(|(what, _)| format!("{what} in {place}"))
            .collect()
    }
}

/// The process under test and everything it answered with an error.
struct Driver {
    server: Server,
    tid: String,
    error_bodies: Vec<String>,
}

impl Driver {
    async fn admin(
        &mut self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .server
            .http
            .request(method.clone(), format!("{}{path}", self.server.admin))
            .bearer_auth(token);
        if let Some(b) = &body {
            req = req.json(b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        if status >= 400 {
            self.error_bodies.push(format!("{method} {path}: {text}"));
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn root(&mut self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let token = self.server.admin_token.clone();
        self.admin(&token, method, path, body).await
    }

    /// A POST to the gateway endpoint `ep` of the test's server.
    async fn gateway(
        &mut self,
        ep: &str,
        headers: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let url = format!("{}/{}/main/oauth2/{ep}", self.server.gateway, self.tid);
        let mut req = self.server.http.post(url).form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.finish(ep, req).await
    }

    async fn gateway_json(&mut self, ep: &str, body: &Value) -> (u16, Value) {
        let url = format!("{}/{}/main/oauth2/{ep}", self.server.gateway, self.tid);
        let req = self.server.http.post(url).json(body);
        self.finish(ep, req).await
    }

    async fn finish(&mut self, ep: &str, req: reqwest::RequestBuilder) -> (u16, Value) {
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        if status >= 400 {
            self.error_bodies.push(format!("{ep}: {text}"));
        }
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn distinctive(what: &str) -> String {
    // Characters that change under form and URL encoding, so the encoded forms differ.
    format!("{what}-{}/+={}", uuid::Uuid::new_v4().simple(), hex_id(6))
}

const CERT_HEADER: &str = "x-client-cert";

#[allow(clippy::too_many_lines)] // One walk through every endpoint, then every place to look.
async fn no_secret_reaches_logs_spans_metrics_errors_or_the_audit_trail(backend: &Backend) {
    let otlp = receiver().await;
    let ca = ClientCa::new("Hygiene Client CA");
    let foreign_ca = ClientCa::new("Someone Else's CA");
    let mut secrets = Secrets::default();

    let root_token = format!("tga_{}", distinctive("root"));
    secrets.add("root admin token", &root_token);
    let master_key = if backend.redis_url.is_some() {
        // Processes sharing the test database must seal under one key.
        support::shared_master_key().to_owned()
    } else {
        support::master_key()
    };
    secrets.add("master key", &master_key);

    let mut cmd = support::command();
    cmd.env("RUST_LOG", "debug")
        .envs(otel_env(&otlp.endpoint))
        .env("TOLLGATE_DATABASE_URL", &backend.database_url)
        .env("TOLLGATE_MASTER_KEY", &master_key)
        .arg("serve")
        .args([
            "--public-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .args(["--admin-token", &root_token])
        .args(["--client-cert-header", CERT_HEADER])
        .args(["--trusted-proxies", "127.0.0.1/32"])
        .args(["--tls-client-ca", &ca.pem_path()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(redis) = &backend.redis_url {
        cmd.env("TOLLGATE_REDIS_URL", redis);
    }
    let server = Server::spawn(cmd, Some(root_token.clone())).await;
    let tid = support::unique("hygiene");
    let mut d = Driver {
        server,
        tid: tid.clone(),
        error_bodies: Vec::new(),
    };
    let issuer = format!("{}/{tid}/main", d.server.gateway);
    let token_url = format!("{issuer}/oauth2/token");

    // ---- admin: tenants, servers, clients (every method), keys ----
    let (s, _) = d
        .root(
            Method::POST,
            "/admin/tenants",
            Some(json!({"id": tid, "name": "Hygiene"})),
        )
        .await;
    assert_eq!(s, 201);
    let (s, _) = d
        .root(
            Method::POST,
            &format!("/admin/tenants/{tid}/servers"),
            // `rs`, the resource server, introspects the other clients' tokens.
            Some(json!({"id": "main", "name": "Main", "introspection_clients": ["rs"]})),
        )
        .await;
    assert_eq!(s, 201);
    let clients = format!("/admin/tenants/{tid}/servers/main/clients");
    // Metadata a client has no business sending: ignored, never stored or shown.
    let password = distinctive("password");
    let chosen_secret = distinctive("chosen-secret");
    secrets.add("password in client metadata", &password);
    secrets.add("client-chosen secret", &chosen_secret);
    let device = ca.issue("hygiene-device");
    let self_signed_device = self_signed("hygiene-self-signed");
    let client_key = ClientKey::es256("hygiene-key");
    secrets.add(
        "client private key",
        client_key.private_pem.lines().nth(1).unwrap(),
    );
    let registrations = [
        (
            "basic",
            json!({"token_endpoint_auth_method": "client_secret_basic", "password": password, "client_secret": chosen_secret}),
        ),
        (
            "post",
            json!({"token_endpoint_auth_method": "client_secret_post"}),
        ),
        (
            "hmac",
            json!({"token_endpoint_auth_method": "client_secret_jwt"}),
        ),
        (
            "signer",
            json!({"token_endpoint_auth_method": "private_key_jwt", "jwks": client_key.jwks()}),
        ),
        (
            "device",
            json!({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=hygiene-device"}),
        ),
        (
            "selfie",
            json!({"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": self_signed_device.jwks()}),
        ),
        (
            "rs",
            json!({"token_endpoint_auth_method": "client_secret_basic"}),
        ),
    ];
    let mut secret_of = std::collections::HashMap::new();
    for (id, extra) in registrations {
        let mut body =
            json!({"client_id": id, "grant_types": ["client_credentials"], "scope": "read"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (s, b) = d.root(Method::POST, &clients, Some(body)).await;
        assert_eq!(s, 201, "{id}: {b}");
        if let Some(secret) = b["client_secret"].as_str() {
            secrets.add_client_secret(&format!("{id}'s secret"), id, secret);
            secret_of.insert(id, secret.to_owned());
        }
    }
    for (method, path, body) in [
        (Method::GET, clients.clone(), None),
        (Method::GET, format!("{clients}/basic"), None),
        (
            Method::PUT,
            format!("{clients}/basic"),
            Some(
                json!({"client_id": "basic", "grant_types": ["client_credentials"], "scope": "read write", "password": password}),
            ),
        ),
        (
            Method::GET,
            format!("/admin/tenants/{tid}/servers/main/keys"),
            None,
        ),
        (
            Method::POST,
            format!("/admin/tenants/{tid}/servers/main/keys/rotate"),
            None,
        ),
        (
            Method::PATCH,
            format!("/admin/tenants/{tid}/servers/main"),
            Some(json!({"access_token_ttl": 900})),
        ),
        (
            Method::PATCH,
            format!("/admin/tenants/{tid}"),
            Some(json!({"name": "Hygiene Inc"})),
        ),
        (Method::GET, format!("/admin/tenants/{tid}/servers"), None),
        (Method::GET, "/admin/tenants".to_owned(), None),
    ] {
        let (s, b) = d.root(method.clone(), &path, body).await;
        assert_eq!(s, 200, "{method} {path}: {b}");
    }
    // Secret rotation: the old secret is one more thing to keep out of everything.
    let (s, b) = d
        .root(Method::POST, &format!("{clients}/post/secret"), None)
        .await;
    assert_eq!(s, 200, "{b}");
    let rotated = b["client_secret"].as_str().unwrap().to_owned();
    secrets.add_client_secret("post's rotated secret", "post", &rotated);
    let old_post = secret_of.insert("post", rotated).unwrap();

    // ---- admin: credentials, used, refused, revoked ----
    let credentials = format!("/admin/tenants/{tid}/credentials");
    let mut tokens = Vec::new();
    for role in ["admin", "read-only"] {
        let (s, b) = d
            .root(
                Method::POST,
                &credentials,
                Some(json!({"role": role, "name": role})),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let token = b["token"].as_str().unwrap().to_owned();
        secrets.add(&format!("{role} credential token"), &token);
        tokens.push((b["id"].as_str().unwrap().to_owned(), token));
    }
    let (admin_id, admin_token) = tokens[0].clone();
    let reader_token = tokens[1].1.clone();
    let (s, _) = d.root(Method::GET, &credentials, None).await;
    assert_eq!(s, 200);
    let (s, _) = d
        .admin(
            &admin_token,
            Method::GET,
            &format!("/admin/tenants/{tid}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = d
        .admin(
            &admin_token,
            Method::POST,
            &clients,
            Some(json!({"client_id": "made-by-credential", "grant_types": ["client_credentials"]})),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    secrets.add_client_secret(
        "a credential-made client's secret",
        "made-by-credential",
        b["client_secret"].as_str().unwrap(),
    );
    let (s, _) = d
        .admin(
            &reader_token,
            Method::DELETE,
            &format!("{clients}/made-by-credential"),
            None,
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = d
        .admin(
            &reader_token,
            Method::GET,
            "/admin/tenants/someone-else",
            None,
        )
        .await;
    assert_eq!(s, 403);
    let wrong_root = format!("tga_{}", distinctive("wrong-root"));
    let wrong_credential = format!("tgc_{}", distinctive("wrong-credential"));
    secrets.add("wrong root token", &wrong_root);
    secrets.add("wrong credential token", &wrong_credential);
    for wrong in [&wrong_root, &wrong_credential] {
        let (s, _) = d.admin(wrong, Method::GET, "/admin/tenants", None).await;
        assert_eq!(s, 401);
    }
    let (s, _) = d
        .root(Method::DELETE, &format!("{credentials}/{admin_id}"), None)
        .await;
    assert_eq!(s, 204);
    let (s, _) = d
        .admin(
            &admin_token,
            Method::GET,
            &format!("/admin/tenants/{tid}"),
            None,
        )
        .await;
    assert_eq!(s, 401, "revoked");
    let (s, _) = d
        .root(
            Method::POST,
            "/admin/tenants",
            Some(json!({"id": tid, "name": password})),
        )
        .await;
    assert_eq!(s, 409);

    // ---- gateway: every method, succeeding and failing ----
    let cc = [("grant_type", "client_credentials")];
    let mut access_tokens = Vec::new();
    let mut ok = |what: &str, (s, b): (u16, Value), secrets: &mut Secrets| {
        assert_eq!(s, 200, "{what}: {b}");
        let token = b["access_token"].as_str().unwrap().to_owned();
        secrets.add_jwt(&format!("access token ({what})"), &token);
        access_tokens.push(token);
    };
    let refused = |what: &str, (s, b): (u16, Value)| {
        assert_eq!(
            (s, b["error"].as_str()),
            (401, Some("invalid_client")),
            "{what}: {b}"
        );
    };
    let basic_secret = secret_of["basic"].clone();
    ok(
        "basic",
        d.gateway(
            "token",
            &[("authorization", &basic("basic", &basic_secret))],
            &cc,
        )
        .await,
        &mut secrets,
    );
    let wrong = distinctive("wrong-secret");
    secrets.add_client_secret("wrong secret", "basic", &wrong);
    refused(
        "wrong Basic secret",
        d.gateway("token", &[("authorization", &basic("basic", &wrong))], &cc)
            .await,
    );
    refused(
        "old Basic secret",
        d.gateway(
            "token",
            &[("authorization", &basic("post", &old_post))],
            &cc,
        )
        .await,
    );

    let post_secret = secret_of["post"].clone();
    ok(
        "post",
        d.gateway(
            "token",
            &[],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "post"),
                ("client_secret", &post_secret),
            ],
        )
        .await,
        &mut secrets,
    );
    refused(
        "wrong post secret",
        d.gateway(
            "token",
            &[],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "post"),
                ("client_secret", &wrong),
            ],
        )
        .await,
    );
    refused(
        "rotated-away post secret",
        d.gateway(
            "token",
            &[],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "post"),
                ("client_secret", &old_post),
            ],
        )
        .await,
    );
    let json_wrong = distinctive("json-wrong-secret");
    secrets.add("wrong secret in a JSON body", &json_wrong);
    refused(
        "wrong secret in a JSON body",
        d.gateway_json("token", &json!({"grant_type": "client_credentials", "client_id": "post", "client_secret": json_wrong})).await,
    );

    let hmac_secret = secret_of["hmac"].clone();
    let good_hmac = hs256_assertion(&hmac_secret, &assertion_claims("hmac", &token_url));
    secrets.add_jwt("client_secret_jwt assertion", &good_hmac);
    let jwt_form = |a: &str| {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_assertion_type", JWT_BEARER.to_owned()),
            ("client_assertion", a.to_owned()),
        ]
    };
    let as_refs =
        |f: &[(&'static str, String)]| f.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let form = as_refs(&jwt_form(&good_hmac));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ok(
        "client_secret_jwt",
        d.gateway("token", &[], &form).await,
        &mut secrets,
    );
    refused(
        "replayed client_secret_jwt",
        d.gateway("token", &[], &form).await,
    );
    let forged_hmac = hs256_assertion(&wrong, &assertion_claims("hmac", &token_url));
    secrets.add_jwt(
        "client_secret_jwt assertion under a wrong key",
        &forged_hmac,
    );
    let f = jwt_form(&forged_hmac);
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    refused(
        "client_secret_jwt under a wrong key",
        d.gateway("token", &[], &f).await,
    );

    let good_pk = client_key.sign(&assertion_claims("signer", &token_url));
    secrets.add_jwt("private_key_jwt assertion", &good_pk);
    let f = jwt_form(&good_pk);
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ok(
        "private_key_jwt",
        d.gateway("token", &[], &f).await,
        &mut secrets,
    );
    refused(
        "replayed private_key_jwt",
        d.gateway("token", &[], &f).await,
    );
    let other_key = ClientKey::es256("hygiene-key");
    let forged_pk = other_key.sign(&assertion_claims("signer", &token_url));
    secrets.add_jwt("private_key_jwt assertion under another key", &forged_pk);
    let f = jwt_form(&forged_pk);
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    refused(
        "private_key_jwt under another key",
        d.gateway("token", &[], &f).await,
    );

    let device_header = device.escaped();
    ok(
        "tls_client_auth",
        d.gateway(
            "token",
            &[(CERT_HEADER, &device_header)],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "device"),
            ],
        )
        .await,
        &mut secrets,
    );
    let stranger = foreign_ca.issue("hygiene-device");
    refused(
        "tls_client_auth with an untrusted certificate",
        d.gateway(
            "token",
            &[(CERT_HEADER, &stranger.escaped())],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "device"),
            ],
        )
        .await,
    );
    ok(
        "self_signed_tls_client_auth",
        d.gateway(
            "token",
            &[(CERT_HEADER, &self_signed_device.escaped())],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "selfie"),
            ],
        )
        .await,
        &mut secrets,
    );
    refused(
        "self_signed_tls_client_auth with another certificate",
        d.gateway(
            "token",
            &[(CERT_HEADER, &self_signed("impostor").escaped())],
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "selfie"),
            ],
        )
        .await,
    );

    // ---- introspection and revocation ----
    let rs = basic("rs", &secret_of["rs"]);
    let (s, b) = d
        .gateway(
            "introspect",
            &[("authorization", &rs)],
            &[("token", &access_tokens[0])],
        )
        .await;
    assert_eq!((s, &b["active"]), (200, &json!(true)), "{b}");
    let bogus = format!(
        "eyJhbGciOiJFUzI1NiJ9.{}.{}",
        distinctive("bogus-claims"),
        distinctive("bogus-signature")
    );
    secrets.add_jwt("bogus token", &bogus);
    let (s, b) = d
        .gateway(
            "introspect",
            &[("authorization", &rs)],
            &[("token", &bogus)],
        )
        .await;
    assert_eq!((s, &b["active"]), (200, &json!(false)), "{b}");
    refused(
        "introspection with a wrong secret",
        d.gateway(
            "introspect",
            &[("authorization", &basic("rs", &wrong))],
            &[("token", &access_tokens[0])],
        )
        .await,
    );
    let (s, b) = d
        .gateway(
            "revoke",
            &[],
            &[
                ("client_id", "post"),
                ("client_secret", &post_secret),
                ("token", &access_tokens[1]),
            ],
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = d
        .gateway(
            "introspect",
            &[("authorization", &rs)],
            &[("token", &access_tokens[1])],
        )
        .await;
    assert_eq!((s, &b["active"]), (200, &json!(false)), "revoked: {b}");
    refused(
        "revocation with a wrong secret",
        d.gateway(
            "revoke",
            &[],
            &[
                ("client_id", "post"),
                ("client_secret", &wrong),
                ("token", &access_tokens[2]),
            ],
        )
        .await,
    );
    let (s, _) = d
        .gateway("revoke", &[("authorization", &rs)], &[("token", &bogus)])
        .await;
    assert_eq!(s, 200);

    // Discovery and JWKS, for completeness of "every endpoint".
    for doc in [
        ".well-known/openid-configuration",
        ".well-known/oauth-authorization-server",
        ".well-known/jwks.json",
    ] {
        let res = d
            .server
            .http
            .get(format!("{issuer}/{doc}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{doc}");
    }

    // ---- the authorization-code flow: users, login, consent, codes, refresh, userinfo ----
    let user_password = distinctive("user-password");
    let wrong_password = distinctive("wrong-password");
    secrets.add("user password", &user_password);
    secrets.add("wrong user password", &wrong_password);
    let (s, user) = d
        .root(
            Method::POST,
            &format!("/admin/tenants/{tid}/servers/main/users"),
            Some(json!({"username": "hygiene-user", "password": user_password})),
        )
        .await;
    assert_eq!(s, 201, "{user}");
    let user_id = user["id"].as_str().unwrap().to_owned();
    let new_password = distinctive("new-user-password");
    secrets.add("changed user password", &new_password);
    let (s, _) = d
        .root(
            Method::PATCH,
            &format!("/admin/tenants/{tid}/servers/main/users/{user_id}"),
            Some(json!({"password": new_password})),
        )
        .await;
    assert_eq!(s, 200);
    let (s, web) = d
        .root(
            Method::POST,
            &clients,
            Some(json!({
                "client_id": "web",
                "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": ["https://app.example/cb"],
                "scope": "openid profile",
                "token_endpoint_auth_method": "client_secret_post"
            })),
        )
        .await;
    assert_eq!(s, 201, "{web}");
    let web_secret = web["client_secret"].as_str().unwrap().to_owned();
    secrets.add_client_secret("web client secret", "web", &web_secret);
    let (verifier, challenge) = support::flow::pkce();
    secrets.add("PKCE verifier", &verifier);
    let browser = support::flow::Agent::new();
    let authorize = support::flow::authorize_url(
        &issuer,
        &[
            ("response_type", "code"),
            ("client_id", "web"),
            ("redirect_uri", "https://app.example/cb"),
            ("scope", "openid profile"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let to_login = browser.get(&authorize).await;
    let login_page = browser.get(to_login.location.as_deref().unwrap()).await;
    let csrf = support::flow::hidden(&login_page.body, "csrf").unwrap();
    secrets.add("CSRF token", &csrf);
    let failed = browser
        .submit_login(&issuer, &login_page, "hygiene-user", &wrong_password)
        .await;
    assert!(failed.body.contains("Wrong username or password"));
    let (done, seen) = browser
        .authorize(&issuer, &authorize, "hygiene-user", &new_password, "allow")
        .await;
    assert_eq!(seen, ["login", "consent"]);
    let code = done.location_param("code").unwrap();
    secrets.add("authorization code", &code);
    let cc_form = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_owned()),
            ("client_id", "web".to_owned()),
            ("client_secret", web_secret.clone()),
            ("code", code.to_owned()),
            ("redirect_uri", "https://app.example/cb".to_owned()),
            ("code_verifier", verifier.clone()),
        ]
    };
    let owned = cc_form(&code);
    let form: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, tokens) = d.gateway("token", &[], &form).await;
    assert_eq!(s, 200, "{tokens}");
    let (access, refresh, id_token) = (
        tokens["access_token"].as_str().unwrap().to_owned(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
        tokens["id_token"].as_str().unwrap().to_owned(),
    );
    secrets.add_jwt("code-flow access token", &access);
    secrets.add_jwt("ID token", &id_token);
    secrets.add("refresh token", &refresh);
    let (s, b) = d.gateway("token", &[], &form).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "a reused code"
    );
    let info = d
        .server
        .http
        .get(format!("{issuer}/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 401, "the reused code revoked it");
    d.error_bodies
        .push(format!("userinfo: {}", info.text().await.unwrap()));
    let (again, _) = browser
        .authorize(&issuer, &authorize, "hygiene-user", &new_password, "allow")
        .await;
    let code2 = again.location_param("code").unwrap();
    secrets.add("second authorization code", &code2);
    let owned2 = cc_form(&code2);
    let form2: Vec<(&str, &str)> = owned2.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (s, tokens) = d.gateway("token", &[], &form2).await;
    assert_eq!(s, 200, "{tokens}");
    let refresh2 = tokens["refresh_token"].as_str().unwrap().to_owned();
    secrets.add("second refresh token", &refresh2);
    secrets.add_jwt(
        "second access token",
        tokens["access_token"].as_str().unwrap(),
    );
    let refresh_form = [
        ("grant_type", "refresh_token"),
        ("client_id", "web"),
        ("client_secret", web_secret.as_str()),
        ("refresh_token", refresh2.as_str()),
    ];
    let (s, rotated) = d.gateway("token", &[], &refresh_form).await;
    assert_eq!(s, 200, "{rotated}");
    secrets.add(
        "rotated refresh token",
        rotated["refresh_token"].as_str().unwrap(),
    );
    secrets.add_jwt(
        "refreshed access token",
        rotated["access_token"].as_str().unwrap(),
    );
    let (s, b) = d.gateway("token", &[], &refresh_form).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_grant")),
        "a reused refresh token"
    );
    let (s, _) = d
        .gateway(
            "revoke",
            &[],
            &[
                ("client_id", "web"),
                ("client_secret", web_secret.as_str()),
                ("token", rotated["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(s, 200);
    for cookie in ["tollgate_session", "tollgate_browser"] {
        assert!(browser.has_cookie(cookie), "{cookie}");
    }
    for value in browser.cookie_values() {
        secrets.add("a flow cookie", &value);
    }
    let (s, _) = d
        .root(
            Method::DELETE,
            &format!("/admin/tenants/{tid}/servers/main/users/{user_id}/consents/web"),
            None,
        )
        .await;
    assert_eq!(s, 204);

    // ---- wait for what arrives asynchronously: spans, and the sampled failures ----
    let trace = hex_id(16);
    let (s, _) = d
        .gateway(
            "token",
            &[
                ("authorization", &basic("basic", &wrong)),
                ("traceparent", &format!("00-{trace}-{}-01", hex_id(8))),
            ],
            &cc,
        )
        .await;
    assert_eq!(s, 401);
    otlp.span_of_trace(&trace).await;
    let audit_path = format!("/admin/tenants/{tid}/audit");
    let deadline = Instant::now() + Duration::from_secs(10);
    let audit = loop {
        let mut pages = Vec::new();
        let mut cursor = String::new();
        loop {
            let (s, b) = d
                .root(
                    Method::GET,
                    &format!("{audit_path}?limit=200{cursor}"),
                    None,
                )
                .await;
            assert_eq!(s, 200, "{b}");
            pages.push(b.to_string());
            match b["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        let audit = pages.join("\n");
        let reasons = [
            "wrong_secret",
            "replayed_assertion",
            "bad_signature",
            "untrusted_certificate",
            "certificate_mismatch",
        ];
        if reasons
            .iter()
            .all(|r| audit.contains(&format!("\"reason\":\"{r}\"")))
        {
            break audit;
        }
        assert!(
            Instant::now() < deadline,
            "sampled failures missing from the trail: {audit}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for action in [
        "tenant.create",
        "client.create",
        "client.update",
        "client.secret_rotate",
        "key.rotate",
        "server.update",
        "credential.create",
        "credential.revoke",
        "user.create",
        "user.update",
        "consent.revoke",
    ] {
        assert!(
            audit.contains(&format!("\"action\":\"{action}\"")),
            "{action} not audited"
        );
    }
    let metrics = d
        .server
        .http
        .get(format!("{}/metrics", d.server.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("tollgate_client_auth_failures_total"),
        "{metrics}"
    );
    let logs = d.server.printed();
    assert!(logs.contains("client authentication failed") && logs.contains("\"level\":\"DEBUG\""));
    let spans = otlp.everything();
    assert!(!spans.is_empty());
    assert!(d.error_bodies.len() >= 15, "{:?}", d.error_bodies);

    // The search itself finds what it looks for, in every form it could take.
    let wrong_form = format!(
        "client_id=basic&client_secret={}",
        url::form_urlencoded::byte_serialize(wrong.as_bytes()).collect::<String>()
    );
    for (sample, form) in [
        (basic("basic", &basic_secret), "Basic header"),
        (wrong_form, "form-encoded body"),
        (
            format!("sig={}", good_pk.rsplit('.').next().unwrap()),
            "JWT signature",
        ),
        (STANDARD.encode(&root_token), "base64 token"),
    ] {
        assert!(
            !secrets.find_in("", &sample).is_empty(),
            "{form} not detected"
        );
    }

    let mut failures = Vec::new();
    failures.extend(secrets.find_in("the process output", &logs));
    failures.extend(secrets.find_in("the exported spans", &spans));
    failures.extend(secrets.find_in("/metrics", &metrics));
    failures.extend(secrets.find_in("an error response", &d.error_bodies.join("\n")));
    failures.extend(secrets.find_in("the audit trail", &audit));
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

both_backends! {
    no_secret_reaches_logs_spans_metrics_errors_or_the_audit_trail => no_secret_reaches_logs_spans_metrics_errors_or_the_audit_trail;
}

/// Secrets, hashes and digests are compared with `tollgate_core::secrets::ct_eq` (or inside a
/// crypto library's own verification), never with `==`: an early-exit comparison tells a
/// patient attacker how much of a guess was right.
#[test]
fn secret_comparisons_are_constant_time() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let suspicious = [
        "expose() ==",
        "expose() !=",
        "== secret",
        "!= secret",
        "token_hash ==",
        "token_hash !=",
        "digest ==",
        "digest !=",
        "== digest",
        "hash() ==",
        "hash() !=",
        "== hash",
        "csrf ==",
        "== csrf",
        ".eq(secret",
    ];
    let mut found = Vec::new();
    let mut files = 0;
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.components().any(|c| c.as_os_str() == "src")
            {
                files += 1;
                let text = std::fs::read_to_string(&path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or_default();
                    if suspicious.iter().any(|s| code.contains(s)) {
                        found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(files > 50, "the sources were found");
    assert!(
        found.is_empty(),
        "use secrets::ct_eq:\n{}",
        found.join("\n")
    );
}
