//! JWT client assertions (RFC 7523: `client_secret_jwt`, `private_key_jwt`) against the real
//! binary, on both backends: each method succeeds and the token verifies; every way an
//! assertion can be wrong is `401 invalid_client` (or `400 invalid_request` for a malformed
//! request) with a log line naming the reason and never the assertion; keys come inline or
//! from a `jwks_uri` served by the test (rotation picked up through an unknown `kid`); a `jti`
//! is single-use across two gateways sharing PostgreSQL + Redis. Every key is generated here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, EncodingKey, Validation};
use serde_json::{json, Value};
use support::{basic, Backend, Server};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A client key pair generated for the test: the signing key and the public JWK.
struct TestKey {
    enc: EncodingKey,
    alg: Algorithm,
    jwk: Value,
}

impl TestKey {
    fn es256(kid: &str) -> Self {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let enc = EncodingKey::from_ec_der(&kp.serialize_der());
        Self::from_encoding(enc, Algorithm::ES256, kid)
    }

    fn rsa(kid: &str, alg: Algorithm) -> Self {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
        let enc = EncodingKey::from_rsa_pem(kp.serialize_pem().as_bytes()).unwrap();
        Self::from_encoding(enc, alg, kid)
    }

    fn from_encoding(enc: EncodingKey, alg: Algorithm, kid: &str) -> Self {
        let mut jwk = serde_json::to_value(Jwk::from_encoding_key(&enc, alg).unwrap()).unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        // Not restricted to one alg: the RSA key signs both RS256 and PS256 below.
        jwk.as_object_mut().unwrap().remove("alg");
        Self { enc, alg, jwk }
    }

    fn ed25519(kid: &str) -> Self {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "x": b64(kp.public_key_raw())});
        Self {
            enc: EncodingKey::from_ed_der(&kp.serialize_der()),
            alg: Algorithm::EdDSA,
            jwk,
        }
    }

    fn kid(&self) -> &str {
        self.jwk["kid"].as_str().unwrap()
    }

    /// An assertion with this key's alg and kid.
    fn sign(&self, claims: &Value) -> String {
        let name = if self.alg == Algorithm::EdDSA {
            "EdDSA".to_owned()
        } else {
            format!("{:?}", self.alg)
        };
        sign(
            &json!({"alg": name, "kid": self.kid(), "typ": "JWT"}),
            claims,
            &self.enc,
            self.alg,
        )
    }
}

fn jwks(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()})
}

/// A compact JWS over any header (the test needs header names jsonwebtoken refuses).
fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

fn claims(client_id: &str, aud: &str) -> Value {
    let now = now();
    json!({"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60, "jti": uuid::Uuid::new_v4().to_string()})
}

/// `claims` with members replaced (`null` removes one).
fn with(mut base: Value, patch: &Value) -> Value {
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

fn assertion_form(assertion: &str) -> Vec<(String, String)> {
    vec![
        ("grant_type".into(), "client_credentials".into()),
        ("client_assertion_type".into(), JWT_BEARER.into()),
        ("client_assertion".into(), assertion.into()),
    ]
}

async fn post_token(server: &Server, url: &str, form: &[(String, String)]) -> (u16, Value) {
    let res = server.http.post(url).form(form).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// Waits until output printed after `mark` contains `needle`.
fn printed_since(server: &Server, mark: usize, needle: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if server
            .printed()
            .get(mark..)
            .is_some_and(|s| s.contains(needle))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Verifies an access token with the server's published JWKS (independently of Tollgate).
async fn verify_access_token(server: &Server, issuer: &str, token: &str, client_id: &str) {
    let jwks: JwkSet = server
        .http
        .get(format!("{issuer}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = decode_header(token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("signing key published");
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[issuer]);
    let data = decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("access token verifies");
    assert_eq!(data.claims["sub"], client_id);
    assert_eq!(data.claims["client_id"], client_id);
}

/// One failing request: what is sent, and the status, RFC error and logged reason expected.
struct Row {
    name: &'static str,
    form: Vec<(String, String)>,
    status: u16,
    error: &'static str,
    reason: Option<&'static str>,
    /// Words the `error_description` must contain.
    says: Option<&'static str>,
}

fn row(name: &'static str, form: Vec<(String, String)>, reason: &'static str) -> Row {
    Row {
        name,
        form,
        status: 401,
        error: "invalid_client",
        reason: Some(reason),
        says: None,
    }
}

impl Row {
    fn saying(self, says: &'static str) -> Self {
        Self {
            says: Some(says),
            ..self
        }
    }
}

/// Sends every row; checks status, error, the log line's reason, and that no assertion sent
/// ever reached the log.
async fn run_rows(server: &Server, url: &str, rows: Vec<Row>) {
    for r in &rows {
        let mark = server.printed().len();
        let (status, body) = post_token(server, url, &r.form).await;
        assert_eq!(
            (status, body["error"].as_str().unwrap_or("")),
            (r.status, r.error),
            "{}: {body}",
            r.name
        );
        if let Some(says) = r.says {
            let description = body["error_description"].as_str().unwrap_or("");
            assert!(description.contains(says), "{}: {body}", r.name);
        }
        if let Some(reason) = r.reason {
            assert!(
                printed_since(server, mark, &format!("\"reason\":\"{reason}\"")),
                "{}: no log line with reason {reason}:\n{}",
                r.name,
                &server.printed()[mark..]
            );
        }
    }
    let printed = server.printed();
    for r in &rows {
        for (name, value) in &r.form {
            if name == "client_assertion" {
                let signature = value.rsplit('.').next().unwrap_or(value);
                assert!(
                    signature.len() < 8 || !printed.contains(signature),
                    "{}: assertion in the log",
                    r.name
                );
                assert!(
                    value.len() < 16 || !printed.contains(value.as_str()),
                    "{}: assertion in the log",
                    r.name
                );
            }
        }
    }
}

fn ids(backend: &Backend, prefix: &str) -> String {
    if backend.name == "sqlite" {
        prefix.to_owned()
    } else {
        support::unique(prefix)
    }
}

async fn private_key_jwt(backend: &Backend) {
    // Every row below is a failed authentication from 127.0.0.1: room for all of them in the
    // address's failure budget, so the good requests between them are judged on their own.
    let server = Server::start_with(backend, &["--rate-limit-failures-burst", "1000"]).await;
    let tid = ids(backend, "pkj");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let url = server.token_url(&tid, "main");
    let issuer = format!("{}/{tid}/main", server.gateway);

    let es = TestKey::es256("es-1");
    let ed = TestKey::ed25519("ed-1");
    let ps = TestKey::rsa("rsa-1", Algorithm::PS256);
    let (id, secret) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&es, &ed, &ps])}))
        .await;
    assert!(secret.is_empty(), "no client_secret for private_key_jwt");
    let (pinned, _) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                                     "jwks": jwks(&[&es, &ed]), "token_endpoint_auth_signing_alg": "ES256"}))
        .await;
    let (basic_id, basic_secret) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"]}))
        .await;

    // Success with each key type, the token verifies; also the issuer as audience, the
    // `Ed25519` alg name, an RS256 signature with the same RSA key, and a JSON body.
    for (name, assertion) in [
        ("ES256", es.sign(&claims(&id, &url))),
        ("EdDSA", ed.sign(&claims(&id, &url))),
        ("PS256", ps.sign(&claims(&id, &url))),
        ("issuer as aud", es.sign(&claims(&id, &issuer))),
        (
            "alg name Ed25519",
            sign(
                &json!({"alg": "Ed25519", "kid": "ed-1"}),
                &claims(&id, &url),
                &ed.enc,
                Algorithm::EdDSA,
            ),
        ),
        (
            "RS256",
            sign(
                &json!({"alg": "RS256", "kid": "rsa-1"}),
                &claims(&id, &url),
                &ps.enc,
                Algorithm::RS256,
            ),
        ),
        (
            // Authlib's PrivateKeyJWT signs assertions valid for an hour.
            "exp an hour ahead",
            es.sign(&with(claims(&id, &url), &json!({"exp": now() + 3600}))),
        ),
        (
            "no kid, single ES256 key",
            sign(
                &json!({"alg": "ES256"}),
                &claims(&id, &url),
                &es.enc,
                Algorithm::ES256,
            ),
        ),
    ] {
        let (status, body) = post_token(&server, &url, &assertion_form(&assertion)).await;
        assert_eq!(status, 200, "{name}: {body}");
        verify_access_token(
            &server,
            &issuer,
            body["access_token"].as_str().unwrap(),
            &id,
        )
        .await;
    }
    let res = server
        .http
        .post(&url)
        .json(&json!({"grant_type": "client_credentials", "client_id": id, "client_assertion_type": JWT_BEARER, "client_assertion": es.sign(&claims(&id, &url))}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "JSON body");
    let (status, body) = post_token(
        &server,
        &url,
        &assertion_form(&es.sign(&claims(&pinned, &url))),
    )
    .await;
    assert_eq!(status, 200, "registered alg: {body}");

    // The same authentication at introspection and revocation, with their own URL as `aud`;
    // a jti spent at one endpoint is spent at every other. The token introspected is the
    // client's own (RFC 7662 §4: another client's would be `active: false`).
    let (status, body) =
        post_token(&server, &url, &assertion_form(&es.sign(&claims(&id, &url)))).await;
    assert_eq!(status, 200, "{body}");
    let access_token = body["access_token"].as_str().unwrap().to_owned();
    let introspect = format!("{issuer}/oauth2/introspect");
    let at_introspect = es.sign(&claims(&id, &introspect));
    let mut form = assertion_form(&at_introspect);
    form[0] = ("token".into(), access_token.clone());
    let (status, body) = post_token(&server, &introspect, &form).await;
    assert_eq!(
        (status, &body["active"]),
        (200, &json!(true)),
        "introspection: {body}"
    );
    let (status, body) = post_token(&server, &format!("{issuer}/oauth2/revoke"), &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "replayed at revocation: {body}"
    );
    // The token endpoint's URL is accepted as `aud` at every endpoint (OIDC Core §9).
    let mut form = assertion_form(&es.sign(&claims(&id, &url)));
    form[0] = ("token".into(), access_token);
    let (status, body) = post_token(&server, &introspect, &form).await;
    assert_eq!(
        (status, &body["active"]),
        (200, &json!(true)),
        "token endpoint aud at introspection: {body}"
    );

    let replayed = es.sign(&claims(&id, &url));
    let (status, _) = post_token(&server, &url, &assertion_form(&replayed)).await;
    assert_eq!(status, 200);

    let other = TestKey::es256("es-1");
    let c = || claims(&id, &url);
    let n = now();
    let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(c().to_string()));
    let public_bytes = es.jwk.to_string();
    let confused = sign(
        &json!({"alg": "HS256", "kid": "es-1"}),
        &c(),
        &EncodingKey::from_secret(public_bytes.as_bytes()),
        Algorithm::HS256,
    );
    let x = URL_SAFE_NO_PAD
        .decode(es.jwk["x"].as_str().unwrap())
        .unwrap();
    let confused_raw = sign(
        &json!({"alg": "HS256"}),
        &c(),
        &EncodingKey::from_secret(&x),
        Algorithm::HS256,
    );
    let oversized = es.sign(&with(c(), &json!({"pad": "x".repeat(9000)})));
    let mut with_secret = assertion_form(&es.sign(&c()));
    with_secret.push(("client_secret".into(), "anything".into()));
    let mut wrong_type = assertion_form(&es.sign(&c()));
    wrong_type[1].1 = "urn:ietf:params:oauth:client-assertion-type:saml2-bearer".into();
    let mut id_mismatch = assertion_form(&es.sign(&c()));
    id_mismatch.push(("client_id".into(), basic_id.clone()));

    let rows = vec![
        row(
            "signed by another key",
            assertion_form(&other.sign(&c())),
            "bad_signature",
        ),
        row(
            "unregistered kid",
            assertion_form(&sign(
                &json!({"alg": "ES256", "kid": "nope"}),
                &c(),
                &es.enc,
                Algorithm::ES256,
            )),
            "unknown_key",
        ),
        row(
            "expired",
            assertion_form(&es.sign(&with(c(), &json!({"exp": n - 120, "iat": n - 180})))),
            "assertion_expiry",
        )
        .saying("has expired"),
        row(
            "exp too far ahead",
            assertion_form(&es.sign(&with(c(), &json!({"exp": n + 3600 + 120})))),
            "assertion_expiry",
        )
        .saying("too far ahead: at most 3600 seconds"),
        row(
            "no exp",
            assertion_form(&es.sign(&with(c(), &json!({"exp": null})))),
            "assertion_expiry",
        )
        .saying("no `exp`"),
        row(
            "future nbf",
            assertion_form(&es.sign(&with(c(), &json!({"nbf": n + 120})))),
            "assertion_not_yet_valid",
        ),
        row(
            "future iat",
            assertion_form(&es.sign(&with(c(), &json!({"iat": n + 120})))),
            "assertion_not_yet_valid",
        ),
        row(
            "wrong aud",
            assertion_form(&es.sign(&with(
                c(),
                &json!({"aud": "https://elsewhere.example/token"}),
            ))),
            "assertion_audience",
        ),
        row(
            "iss differs from sub",
            assertion_form(&es.sign(&with(c(), &json!({"iss": basic_id})))),
            "assertion_subject",
        )
        .saying("`iss` and `sub`"),
        row(
            "missing jti",
            assertion_form(&es.sign(&with(c(), &json!({"jti": null})))),
            "assertion_jti",
        ),
        row(
            "replayed jti",
            assertion_form(&replayed),
            "replayed_assertion",
        ),
        row("alg none", assertion_form(&none), "assertion_algorithm"),
        row(
            "HS256 keyed with the public JWK",
            assertion_form(&confused),
            "assertion_algorithm",
        ),
        row(
            "HS256 keyed with the public key bytes",
            assertion_form(&confused_raw),
            "assertion_algorithm",
        ),
        row("wrong client_assertion_type", wrong_type, "assertion_type"),
        row(
            "not a JWS",
            [
                assertion_form("not.a-jws"),
                vec![("client_id".into(), id.clone())],
            ]
            .concat(),
            "malformed_assertion",
        ),
        row(
            "registered alg enforced",
            assertion_form(&ed.sign(&claims(&pinned, &url))),
            "assertion_algorithm",
        ),
        row(
            "assertion for a client_secret_basic client",
            assertion_form(&es.sign(&claims(&basic_id, &url))),
            "wrong_method",
        ),
        Row {
            name: "oversized assertion",
            form: assertion_form(&oversized),
            status: 400,
            error: "invalid_request",
            reason: None,
            says: None,
        },
        Row {
            name: "assertion plus client_secret",
            form: with_secret,
            status: 400,
            error: "invalid_request",
            reason: None,
            says: None,
        },
        // RFC 7521 §4.2.1, RFC 7523 §3: the assertion does not speak for the client named.
        row(
            "client_id differs from sub",
            id_mismatch,
            "assertion_subject",
        )
        .saying("`iss` and `sub`"),
        row(
            "sub names another client, client_id this one",
            [
                assertion_form(&es.sign(&with(c(), &json!({"sub": basic_id})))),
                vec![("client_id".into(), id.clone())],
            ]
            .concat(),
            "assertion_subject",
        ),
    ];
    run_rows(&server, &url, rows).await;

    // Basic with a secret still works beside them; the basic client cannot use an assertion.
    let res = server
        .http
        .post(&url)
        .header("authorization", basic(&basic_id, &basic_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn client_secret_jwt(backend: &Backend) {
    // Every row below is a failed authentication from 127.0.0.1: room for all of them in the
    // address's failure budget, so the good requests between them are judged on their own.
    let server = Server::start_with(backend, &["--rate-limit-failures-burst", "1000"]).await;
    let tid = ids(backend, "csj");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let url = server.token_url(&tid, "main");
    let issuer = format!("{}/{tid}/main", server.gateway);
    let (id, secret) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_jwt"}))
        .await;
    // RFC 7518 §3.2: an HMAC key at least as long as the hash, for HS512 too (64 bytes of
    // entropy, 86 base64url characters); Nimbus refuses to sign with less.
    assert!(
        secret.len() >= 86,
        "an HS512-sized secret is issued: {secret}"
    );
    let (pinned, pinned_secret) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_jwt", "token_endpoint_auth_signing_alg": "HS512"}))
        .await;
    let (post_id, post_secret) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"}))
        .await;
    assert!(pinned_secret.len() >= 86);
    // So are the secrets of a rotation, and of a client replaced into client_secret_jwt.
    let clients = format!("/admin/tenants/{tid}/servers/main/clients");
    let (rotated_id, _) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_jwt"}))
        .await;
    let (status, body) = server
        .admin_post(&format!("{clients}/{rotated_id}/secret"), &json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    let rotated = body["client_secret"].as_str().unwrap().to_owned();
    assert!(rotated.len() >= 86, "rotated: {rotated}");
    let (basic_id, _) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"]}))
        .await;
    let (status, body) = server
        .admin_call(
            reqwest::Method::PUT,
            &format!("{clients}/{basic_id}"),
            Some(&json!({"client_id": basic_id, "grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_jwt"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["client_secret"].as_str().unwrap().len() >= 86,
        "{body}"
    );
    let hs = |secret: &str, alg: Algorithm, claims: &Value| {
        sign(
            &json!({"alg": format!("{alg:?}"), "typ": "JWT"}),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
            alg,
        )
    };

    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let (status, body) = post_token(
            &server,
            &url,
            &assertion_form(&hs(&secret, alg, &claims(&id, &url))),
        )
        .await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        verify_access_token(
            &server,
            &issuer,
            body["access_token"].as_str().unwrap(),
            &id,
        )
        .await;
    }
    let (status, _) = post_token(
        &server,
        &url,
        &assertion_form(&hs(
            &pinned_secret,
            Algorithm::HS512,
            &claims(&pinned, &url),
        )),
    )
    .await;
    assert_eq!(status, 200, "registered alg");
    // Authlib's ClientSecretJWT signs assertions valid for an hour.
    let (status, body) = post_token(
        &server,
        &url,
        &assertion_form(&hs(
            &secret,
            Algorithm::HS256,
            &with(claims(&id, &url), &json!({"exp": now() + 3600})),
        )),
    )
    .await;
    assert_eq!(status, 200, "exp an hour ahead: {body}");
    let (status, body) = post_token(
        &server,
        &url,
        &assertion_form(&hs(&rotated, Algorithm::HS512, &claims(&rotated_id, &url))),
    )
    .await;
    assert_eq!(status, 200, "HS512 with the rotated secret: {body}");

    let replayed = hs(&secret, Algorithm::HS256, &claims(&id, &url));
    assert_eq!(
        post_token(&server, &url, &assertion_form(&replayed))
            .await
            .0,
        200
    );

    let es = TestKey::es256("k");
    let c = || claims(&id, &url);
    let n = now();
    let good = |claims: &Value| assertion_form(&hs(&secret, Algorithm::HS256, claims));
    let none = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64(c().to_string()));
    let mut with_secret = good(&c());
    with_secret.push(("client_secret".into(), secret.clone()));
    let mut wrong_type = good(&c());
    wrong_type[1].1 = "urn:example:other".into();
    let oversized = good(&with(c(), &json!({"pad": "x".repeat(9000)})));

    let rows = vec![
        row(
            "wrong secret",
            assertion_form(&hs("not-the-secret", Algorithm::HS256, &c())),
            "bad_signature",
        ),
        row(
            "another client's secret",
            assertion_form(&hs(&pinned_secret, Algorithm::HS256, &c())),
            "bad_signature",
        ),
        row(
            "expired",
            good(&with(c(), &json!({"exp": n - 120}))),
            "assertion_expiry",
        )
        .saying("has expired"),
        row(
            "exp too far ahead",
            good(&with(c(), &json!({"exp": n + 3600 + 120}))),
            "assertion_expiry",
        )
        .saying("too far ahead"),
        row(
            "future nbf",
            good(&with(c(), &json!({"nbf": n + 120}))),
            "assertion_not_yet_valid",
        ),
        row(
            "future iat",
            good(&with(c(), &json!({"iat": n + 120}))),
            "assertion_not_yet_valid",
        ),
        row(
            "wrong aud",
            good(&with(c(), &json!({"aud": format!("{issuer}/other")}))),
            "assertion_audience",
        ),
        row(
            "iss differs from sub",
            good(&with(c(), &json!({"iss": "someone-else"}))),
            "assertion_subject",
        ),
        row(
            "client_id differs from sub",
            [
                good(&claims(&post_id, &url)),
                vec![("client_id".into(), id.clone())],
            ]
            .concat(),
            "assertion_subject",
        )
        .saying("`iss` and `sub`"),
        row(
            "missing jti",
            good(&with(c(), &json!({"jti": null}))),
            "assertion_jti",
        ),
        row(
            "replayed jti",
            assertion_form(&replayed),
            "replayed_assertion",
        ),
        row("alg none", assertion_form(&none), "assertion_algorithm"),
        row(
            "ES256 assertion for an HMAC client",
            assertion_form(&es.sign(&c())),
            "assertion_algorithm",
        ),
        row(
            "registered alg enforced",
            assertion_form(&hs(
                &pinned_secret,
                Algorithm::HS256,
                &claims(&pinned, &url),
            )),
            "assertion_algorithm",
        ),
        row("wrong client_assertion_type", wrong_type, "assertion_type"),
        row(
            "assertion for a client_secret_post client",
            assertion_form(&hs(&post_secret, Algorithm::HS256, &claims(&post_id, &url))),
            "wrong_method",
        ),
        Row {
            name: "oversized assertion",
            form: oversized,
            status: 400,
            error: "invalid_request",
            reason: None,
            says: None,
        },
        Row {
            name: "assertion plus client_secret",
            form: with_secret,
            status: 400,
            error: "invalid_request",
            reason: None,
            says: None,
        },
    ];
    run_rows(&server, &url, rows).await;
    assert!(
        !server.printed().contains(&secret),
        "the client secret is never logged"
    );
}

/// A tiny HTTP server on 127.0.0.1 serving a JWK Set the test can change, counting requests.
struct JwksServer {
    url: String,
    doc: Arc<Mutex<String>>,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    async fn start(doc: &Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let doc = Arc::new(Mutex::new(doc.to_string()));
        let hits = Arc::new(AtomicUsize::new(0));
        let (d, h) = (doc.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (d, h) = (d.clone(), h.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let body = d.lock().unwrap().clone();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/jwk-set+json\r\nCache-Control: max-age=300\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(body.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Self {
            url,
            doc,
            hits,
            task,
        }
    }

    fn set(&self, doc: &Value) {
        *self.doc.lock().unwrap() = doc.to_string();
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn jwks_uri_keys_and_rotation(backend: &Backend) {
    let first = TestKey::es256("2024-01");
    let jwks_server = JwksServer::start(&jwks(&[&first])).await;
    // The JWKS server listens on loopback: outbound calls may reach it only with the flag.
    let server = Server::start_with(backend, &["--outbound-allow-loopback"]).await;
    let tid = ids(backend, "uri");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let url = server.token_url(&tid, "main");
    let issuer = format!("{}/{tid}/main", server.gateway);
    let (id, _) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": jwks_server.url}))
        .await;

    let (status, body) = post_token(
        &server,
        &url,
        &assertion_form(&first.sign(&claims(&id, &url))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    verify_access_token(
        &server,
        &issuer,
        body["access_token"].as_str().unwrap(),
        &id,
    )
    .await;
    let (status, _) = post_token(
        &server,
        &url,
        &assertion_form(&first.sign(&claims(&id, &url))),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        jwks_server.hits(),
        1,
        "the document is cached per its max-age"
    );

    // The client rotates: the new key appears at the URI; the first assertion naming it makes
    // the gateway look again, once.
    let second = TestKey::es256("2024-02");
    jwks_server.set(&jwks(&[&second]));
    let (status, body) = post_token(
        &server,
        &url,
        &assertion_form(&second.sign(&claims(&id, &url))),
    )
    .await;
    assert_eq!(status, 200, "rotated key picked up: {body}");
    assert_eq!(jwks_server.hits(), 2);
    // The old key is gone; a still-unknown kid does not refetch again within the cooldown.
    let mark = server.printed().len();
    let (status, _) = post_token(
        &server,
        &url,
        &assertion_form(&first.sign(&claims(&id, &url))),
    )
    .await;
    assert_eq!(status, 401);
    assert!(printed_since(&server, mark, "\"reason\":\"unknown_key\""));
    let (status, _) = post_token(
        &server,
        &url,
        &assertion_form(&sign(
            &json!({"alg": "ES256", "kid": "2099-01"}),
            &claims(&id, &url),
            &second.enc,
            Algorithm::ES256,
        )),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(jwks_server.hits(), 2, "refetch at most once per cooldown");

    // An unreachable jwks_uri: 401, and a log line naming the host and the error.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/jwks.json", dead.local_addr().unwrap());
    drop(dead);
    let (dead_id, _) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": dead_url}))
        .await;
    let mark = server.printed().len();
    let started = Instant::now();
    let (status, body) = post_token(
        &server,
        &url,
        &assertion_form(&first.sign(&claims(&dead_id, &url))),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "bounded by the fetch timeout"
    );
    assert!(printed_since(&server, mark, "client jwks_uri fetch failed"));
    assert!(printed_since(&server, mark, "\"host\":\"127.0.0.1\""));
    assert!(printed_since(
        &server,
        mark,
        "\"reason\":\"keys_unavailable\""
    ));
}

async fn jwks_uri_is_guarded_by_default(backend: &Backend) {
    let jwks_server = JwksServer::start(&jwks(&[&TestKey::es256("k")])).await;
    // Defaults: https only, no private addresses.
    let strict = Server::start(backend).await;
    let tid = ids(backend, "guard");
    strict.tenant_and_server(&tid, "main", json!({})).await;
    let path = format!("/admin/tenants/{tid}/servers/main/clients");
    for uri in [
        jwks_server.url.clone(),
        "https://127.0.0.1/jwks.json".to_owned(),
        "https://[::ffff:10.0.0.1]/jwks.json".to_owned(),
    ] {
        let (status, body) = strict
            .admin_post(&path, &json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": uri}))
            .await;
        assert_eq!(status, 400, "{uri}: {body}");
        assert_eq!(body["error"], "invalid_client_metadata");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("jwks_uri"),
            "{body}"
        );
    }
}

async fn jwks_uri_resolving_to_private_addresses_is_refused(backend: &Backend) {
    let key = TestKey::es256("k");
    let jwks_server = JwksServer::start(&jwks(&[&key])).await;
    // Without --outbound-allow-loopback, a name resolving to loopback passes registration,
    // and is refused when fetched, since the gateway vets the resolved address itself and
    // connects only to what it vetted.
    let server = Server::start(backend).await;
    let tid = ids(backend, "private");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let url = server.token_url(&tid, "main");
    let port = jwks_server
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let (id, _) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": format!("https://localhost:{port}/jwks.json")}))
        .await;
    let mark = server.printed().len();
    let (status, _) = post_token(
        &server,
        &url,
        &assertion_form(&key.sign(&claims(&id, &url))),
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        printed_since(&server, mark, "refused addresses"),
        "{}",
        &server.printed()[mark..]
    );
    assert_eq!(jwks_server.hits(), 0, "nothing reached the private address");
}

async fn assertion_options_from_flags(backend: &Backend) {
    let server = Server::start_with(
        backend,
        &[
            "--assertion-audience",
            "issuer",
            "--assertion-max-lifetime",
            "60",
            "--assertion-clock-skew",
            "0",
        ],
    )
    .await;
    let tid = ids(backend, "flags");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let url = server.token_url(&tid, "main");
    let issuer = format!("{}/{tid}/main", server.gateway);
    let key = TestKey::es256("k");
    let (id, _) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&key])}))
        .await;
    let n = now();
    let rows = [
        (
            "issuer",
            with(claims(&id, &issuer), &json!({"exp": n + 50})),
            200,
        ),
        ("endpoint URL refused", claims(&id, &url), 401),
        (
            "exp beyond the configured lifetime",
            with(claims(&id, &issuer), &json!({"exp": n + 120})),
            401,
        ),
    ];
    for (name, c, expected) in rows {
        let (status, body) = post_token(&server, &url, &assertion_form(&key.sign(&c))).await;
        assert_eq!(status, expected, "{name}: {body}");
    }
}

both_backends! {
    private_key_jwt_succeeds_and_refuses_each_bad_assertion => private_key_jwt;
    client_secret_jwt_succeeds_and_refuses_each_bad_assertion => client_secret_jwt;
    jwks_uri_keys_are_fetched_cached_and_rotated => jwks_uri_keys_and_rotation;
    jwks_uri_is_https_and_public_by_default => jwks_uri_is_guarded_by_default;
    jwks_uri_resolving_to_private_addresses_is_refused => jwks_uri_resolving_to_private_addresses_is_refused;
    assertion_rules_follow_the_flags => assertion_options_from_flags;
}

/// A `jti` spent at one gateway is refused at another sharing PostgreSQL + Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_jti_is_refused_across_two_gateways() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let a = Server::start(&backend).await;
    let b = Server::start(&backend).await;
    let tid = support::unique("replay");
    a.tenant_and_server(&tid, "main", json!({})).await;
    let key = TestKey::es256("k");
    let (pkj, _) = a
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks(&[&key])}))
        .await;
    let (csj, secret) = a
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_jwt"}))
        .await;
    // Both gateways are reached through their own URLs; the audience is each one's issuer.
    for (id, signer) in [
        (
            pkj.as_str(),
            Box::new(|c: &Value| key.sign(c)) as Box<dyn Fn(&Value) -> String>,
        ),
        (
            csj.as_str(),
            Box::new(|c: &Value| {
                sign(
                    &json!({"alg": "HS256"}),
                    c,
                    &EncodingKey::from_secret(secret.as_bytes()),
                    Algorithm::HS256,
                )
            }),
        ),
    ] {
        let claims = json!({"iss": id, "sub": id, "aud": [format!("{}/{tid}/main", a.gateway), format!("{}/{tid}/main", b.gateway)],
                            "exp": now() + 60, "jti": uuid::Uuid::new_v4().to_string()});
        let assertion = signer(&claims);
        let (status, body) =
            post_token(&a, &a.token_url(&tid, "main"), &assertion_form(&assertion)).await;
        assert_eq!(status, 200, "{id} at gateway A: {body}");
        let mark = b.printed().len();
        let (status, body) =
            post_token(&b, &b.token_url(&tid, "main"), &assertion_form(&assertion)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{id} replayed at gateway B"
        );
        assert!(printed_since(&b, mark, "\"reason\":\"replayed_assertion\""));
    }
}

/// Bad values of the assertion flags: one line naming the flag, exit code 2.
#[test]
fn bad_assertion_flags_name_the_flag() {
    let dir =
        std::env::temp_dir().join(format!("tollgate-flags-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
    type Row<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let rows: [Row; 4] = [
        (
            &["--assertion-max-lifetime", "0"],
            &[],
            "--assertion-max-lifetime",
        ),
        (
            &[],
            &[("TOLLGATE_ASSERTION_MAX_LIFETIME", "3601")],
            "--assertion-max-lifetime",
        ),
        (
            &["--assertion-clock-skew", "301"],
            &[],
            "--assertion-clock-skew",
        ),
        (
            &["--assertion-audience", "anyone"],
            &[],
            "--assertion-audience",
        ),
    ];
    for (args, env, flag) in rows {
        let out = support::command()
            .arg("serve")
            .args(args)
            .envs(env.iter().copied())
            .env("TOLLGATE_DATABASE_URL", &sqlite)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or("");
        assert!(first.contains(flag), "{args:?} {env:?}: {stderr}");
        assert!(!stderr.contains("panicked"));
    }
    let _ = std::fs::remove_dir_all(dir);
}
