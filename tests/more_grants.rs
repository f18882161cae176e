//! The second round's grants end to end against the real binary, on both backends: the JWT
//! bearer grant (RFC 7523 §2.1), token exchange (RFC 8693) and the device flow (RFC 8628)
//! driven over plain HTTP (the real-browser run is in `tests/browser.rs`), with a second
//! tenant present, and `trusted_issuers` in the admin API.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::too_many_lines,
    clippy::type_complexity,
    clippy::needless_pass_by_value
)]

#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use support::flow::{hidden, user, Agent};
use support::material::{now, ClientKey};
use support::{basic, Backend, Server};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const CI: &str = "https://ci.example";
const API: &str = "https://api.example";
const PASSWORD: &str = "correct horse battery";

fn claims_of(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

struct Setup {
    tid: String,
    issuer: String,
    ci: ClientKey,
    /// Confidential: jwt-bearer, token-exchange, client_credentials; audience API.
    svc: (String, String),
    /// Another confidential client with the same grants.
    other: (String, String),
}

async fn setup(server: &Server) -> Setup {
    let tid = support::unique("mg");
    let ci = ClientKey::es256("ci-1");
    server
        .tenant_and_server(
            &tid,
            "main",
            json!({"trusted_issuers": [{"issuer": CI, "jwks": ci.jwks(), "subjects": ["repo:acme/app", "svc-b"], "scope": "deploy read"}]}),
        )
        .await;
    let meta = json!({
        "grant_types": [JWT_BEARER, TOKEN_EXCHANGE, "client_credentials"],
        "scope": "deploy read admin",
        "audience": [API],
        "token_endpoint_auth_method": "client_secret_basic"
    });
    let svc = server.client(&tid, "main", meta.clone()).await;
    let other = server.client(&tid, "main", meta).await;
    Setup {
        issuer: format!("{}/{tid}/main", server.gateway),
        tid,
        ci,
        svc,
        other,
    }
}

async fn post(
    server: &Server,
    url: &str,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = server.http.post(url).form(form);
    if let Some((id, secret)) = auth {
        req = req.header("authorization", basic(id, secret));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn token(
    server: &Server,
    s: &Setup,
    who: &(String, String),
    form: &[(&str, &str)],
) -> (u16, Value) {
    post(
        server,
        &format!("{}/oauth2/token", s.issuer),
        Some((&who.0, &who.1)),
        form,
    )
    .await
}

fn assertion(s: &Setup, key: &ClientKey, patch: Value) -> String {
    let mut c = json!({"iss": CI, "sub": "repo:acme/app", "aud": s.issuer, "exp": now() + 300, "iat": now(), "jti": uuid::Uuid::new_v4().to_string()});
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    key.sign(&c)
}

async fn active(server: &Server, s: &Setup, token: &str) -> bool {
    let (status, body) = post(
        server,
        &format!("{}/oauth2/introspect", s.issuer),
        Some((&s.svc.0, &s.svc.1)),
        &[("token", token)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["active"] == true
}

async fn jwt_bearer_good_expired_replayed_untrusted(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    // A second tenant trusting the same issuer: its assertions are not ours, nor its jtis.
    let b = setup(&server).await;

    let good = assertion(&s, &s.ci, json!({}));
    let (status, body) = token(
        &server,
        &s,
        &s.svc,
        &[("grant_type", JWT_BEARER), ("assertion", &good)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let at = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(at["sub"], "repo:acme/app");
    assert_eq!(at["client_id"], s.svc.0.as_str());
    assert_eq!(
        body["scope"], "deploy read",
        "the issuer's scope within the client's"
    );
    assert!(body.get("refresh_token").is_none());
    assert!(active(&server, &s, body["access_token"].as_str().unwrap()).await);

    // Replayed: the jti is spent.
    let (status, body) = token(
        &server,
        &s,
        &s.svc,
        &[("grant_type", JWT_BEARER), ("assertion", &good)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("already used"));
    // The same assertion (same jti) addressed to the other tenant is judged there alone.
    let to_b = assertion(&b, &b.ci, json!({}));
    let (status, body) = token(
        &server,
        &b,
        &b.svc,
        &[("grant_type", JWT_BEARER), ("assertion", &to_b)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // Tenant A's assertion at tenant B: addressed elsewhere.
    let a_only = assertion(&s, &s.ci, json!({}));
    let (status, body) = token(
        &server,
        &b,
        &b.svc,
        &[("grant_type", JWT_BEARER), ("assertion", &a_only)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    let stranger = ClientKey::es256("ci-1");
    let rows: Vec<(&str, String, &[(&str, &str)], u16, &str)> = vec![
        (
            "expired",
            assertion(&s, &s.ci, json!({"exp": now() - 120})),
            &[],
            400,
            "invalid_grant",
        ),
        (
            "too far ahead",
            assertion(&s, &s.ci, json!({"exp": now() + 7 * 3600})),
            &[],
            400,
            "invalid_grant",
        ),
        (
            "no exp",
            assertion(&s, &s.ci, json!({"exp": null})),
            &[],
            400,
            "invalid_grant",
        ),
        (
            "no jti",
            assertion(&s, &s.ci, json!({"jti": null})),
            &[],
            400,
            "invalid_grant",
        ),
        (
            "untrusted issuer",
            assertion(&s, &s.ci, json!({"iss": "https://evil.example"})),
            &[],
            400,
            "invalid_grant",
        ),
        (
            "signed by another key",
            assertion(&s, &stranger, json!({})),
            &[],
            400,
            "invalid_grant",
        ),
        (
            "another audience",
            assertion(&s, &s.ci, json!({"aud": "https://elsewhere.example"})),
            &[],
            400,
            "invalid_grant",
        ),
        (
            "subject not allowed",
            assertion(&s, &s.ci, json!({"sub": "repo:acme/other"})),
            &[],
            400,
            "invalid_grant",
        ),
        ("not a JWT", "abc.def".to_owned(), &[], 400, "invalid_grant"),
        (
            "scope beyond the issuer's",
            assertion(&s, &s.ci, json!({})),
            &[("scope", "admin")],
            400,
            "invalid_scope",
        ),
    ];
    for (name, a, extra, want_status, want) in rows {
        let mut form = vec![("grant_type", JWT_BEARER), ("assertion", a.as_str())];
        form.extend_from_slice(extra);
        let (status, body) = token(&server, &s, &s.svc, &form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (want_status, Some(want)),
            "{name}: {body}"
        );
    }
    let (status, body) = token(&server, &s, &s.svc, &[("grant_type", JWT_BEARER)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    // The token endpoint URL is an accepted audience too (RFC 7523 §3).
    let to_endpoint = assertion(
        &s,
        &s.ci,
        json!({"aud": format!("{}/oauth2/token", s.issuer)}),
    );
    let (status, body) = token(
        &server,
        &s,
        &s.svc,
        &[
            ("grant_type", JWT_BEARER),
            ("assertion", &to_endpoint),
            ("scope", "deploy"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (200, Some("deploy")),
        "{body}"
    );
    // A client not registered for the grant.
    let (cc, cc_secret) = server
        .client(&s.tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"}))
        .await;
    let a = assertion(&s, &s.ci, json!({}));
    let (status, body) = token(
        &server,
        &s,
        &(cc, cc_secret),
        &[("grant_type", JWT_BEARER), ("assertion", &a)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );
}

async fn token_exchange_impersonation_delegation_chains(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let _b = setup(&server).await;
    let url = |p: &str| format!("{}{p}", s.issuer);
    // A subject token of this server, issued to the exchanging client.
    let a = assertion(&s, &s.ci, json!({}));
    let (status, body) = token(
        &server,
        &s,
        &s.svc,
        &[("grant_type", JWT_BEARER), ("assertion", &a)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let subject = body["access_token"].as_str().unwrap().to_owned();

    // Impersonation, down-scoped, for an allowed audience.
    let (status, body) = token(
        &server,
        &s,
        &s.svc,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &subject),
            ("subject_token_type", AT),
            ("scope", "read"),
            ("audience", API),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], AT);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read");
    let imp = body["access_token"].as_str().unwrap().to_owned();
    let c = claims_of(&imp);
    assert_eq!(
        (c["sub"].as_str(), c["aud"].as_str()),
        (Some("repo:acme/app"), Some(API))
    );
    assert!(c.get("act").is_none(), "impersonation carries no act: {c}");

    // Delegation: the client acts with its own token as actor.
    let (status, body) = token(
        &server,
        &s,
        &s.svc,
        &[("grant_type", "client_credentials"), ("scope", "read")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let actor = body["access_token"].as_str().unwrap().to_owned();
    let (status, body) = token(
        &server,
        &s,
        &s.svc,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &subject),
            ("subject_token_type", AT),
            ("actor_token", &actor),
            ("actor_token_type", AT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let delegated = body["access_token"].as_str().unwrap().to_owned();
    let c = claims_of(&delegated);
    assert_eq!(c["sub"], "repo:acme/app");
    assert_eq!(c["act"], json!({"sub": s.svc.0}));
    assert_eq!(
        body["scope"], "deploy read",
        "no scope: what the subject held"
    );

    // A chain: the delegated token exchanged again, with a trusted issuer's actor.
    let svc_b = assertion(&s, &s.ci, json!({"sub": "svc-b"}));
    let (status, body) = token(
        &server,
        &s,
        &s.svc,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &delegated),
            ("subject_token_type", AT),
            ("actor_token", &svc_b),
            ("actor_token_type", JWT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let chained = body["access_token"].as_str().unwrap().to_owned();
    let c = claims_of(&chained);
    assert_eq!(
        c["act"],
        json!({"sub": "svc-b", "iss": CI, "act": {"sub": s.svc.0}})
    );

    // A subject JWT of a trusted issuer, addressed to this server.
    let subject_jwt = assertion(&s, &s.ci, json!({"scope": "read"}));
    let (status, body) = token(
        &server,
        &s,
        &s.svc,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &subject_jwt),
            ("subject_token_type", JWT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["scope"], "read",
        "never more than the subject token had"
    );
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["sub"],
        "repo:acme/app"
    );

    let untrusted = assertion(
        &s,
        &ClientKey::es256("x"),
        json!({"iss": "https://evil.example"}),
    );
    let not_for_us = assertion(&s, &s.ci, json!({"aud": "https://elsewhere.example"}));
    let (_, other_body) = token(
        &server,
        &s,
        &s.other,
        &[("grant_type", "client_credentials")],
    )
    .await;
    let others = other_body["access_token"].as_str().unwrap().to_owned();
    let rows: Vec<(&str, Vec<(&str, &str)>, &str)> = vec![
        (
            "scope beyond the subject's",
            vec![
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("scope", "admin"),
            ],
            "invalid_scope",
        ),
        (
            "forbidden audience",
            vec![
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("audience", "https://evil.example"),
            ],
            "invalid_target",
        ),
        (
            "forbidden resource",
            vec![
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("resource", "https://evil.example/x"),
            ],
            "invalid_target",
        ),
        (
            "untrusted issuer",
            vec![("subject_token", &untrusted), ("subject_token_type", JWT)],
            "invalid_request",
        ),
        (
            "JWT for another audience",
            vec![("subject_token", &not_for_us), ("subject_token_type", JWT)],
            "invalid_request",
        ),
        (
            "another client's token",
            vec![("subject_token", &others), ("subject_token_type", AT)],
            "invalid_request",
        ),
        (
            "a JWT passed as our access token",
            vec![("subject_token", &subject_jwt), ("subject_token_type", AT)],
            "invalid_request",
        ),
        (
            "no subject_token_type",
            vec![("subject_token", &subject)],
            "invalid_request",
        ),
        (
            "no subject_token",
            vec![("subject_token_type", AT)],
            "invalid_request",
        ),
        (
            "unknown token type",
            vec![("subject_token", &subject), ("subject_token_type", "urn:x")],
            "invalid_request",
        ),
        (
            "actor type without actor",
            vec![
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("actor_token_type", AT),
            ],
            "invalid_request",
        ),
        (
            "actor without type",
            vec![
                ("subject_token", &subject),
                ("subject_token_type", AT),
                ("actor_token", &actor),
            ],
            "invalid_request",
        ),
        (
            "refresh token requested",
            vec![
                ("subject_token", &subject),
                ("subject_token_type", AT),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:refresh_token",
                ),
            ],
            "invalid_request",
        ),
    ];
    for (name, params, want) in rows {
        let mut form = vec![("grant_type", TOKEN_EXCHANGE)];
        form.extend(params);
        let (status, body) = token(&server, &s, &s.svc, &form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(want)),
            "{name}: {body}"
        );
    }

    // Revoking the subject token revokes what was exchanged from it, down the chain.
    assert!(active(&server, &s, &imp).await && active(&server, &s, &chained).await);
    let (status, _) = post(
        &server,
        &url("/oauth2/revoke"),
        Some((&s.svc.0, &s.svc.1)),
        &[("token", &subject)],
    )
    .await;
    assert_eq!(status, 200);
    for (name, t) in [
        ("impersonation", &imp),
        ("delegation", &delegated),
        ("chain", &chained),
    ] {
        assert!(
            !active(&server, &s, t).await,
            "{name} survived its subject's revocation"
        );
    }
    let (status, body) = token(
        &server,
        &s,
        &s.svc,
        &[
            ("grant_type", TOKEN_EXCHANGE),
            ("subject_token", &subject),
            ("subject_token_type", AT),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "revoked subject: {body}"
    );

    // Public clients cannot hold the grant.
    let (status, body) = server
        .admin_post(
            &format!("/admin/tenants/{}/servers/main/clients", s.tid),
            &json!({"grant_types": [TOKEN_EXCHANGE], "token_endpoint_auth_method": "none"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

async fn trusted_issuers_are_validated(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let path = format!("/admin/tenants/{}/servers/main", s.tid);
    let rows = [
        json!([{"issuer": CI}]),
        json!([{"issuer": CI, "jwks_uri": "http://keys.example/jwks"}]),
        json!([{"issuer": CI, "jwks_uri": "https://10.0.0.1/jwks"}]),
        json!([{"issuer": CI, "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}]),
        json!([{"issuer": "", "jwks": s.ci.jwks()}]),
        json!([{"issuer": CI, "jwks": s.ci.jwks(), "unknown": 1}]),
        json!([{"issuer": CI, "jwks": s.ci.jwks()}, {"issuer": CI, "jwks": s.ci.jwks()}]),
    ];
    for bad in rows {
        let (status, body) = server
            .admin_call(
                reqwest::Method::PATCH,
                &path,
                Some(&json!({"trusted_issuers": bad})),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("trusted_issuers"),
            "{body}"
        );
    }
    let (status, body) = server
        .admin_call(reqwest::Method::PATCH, &path, Some(&json!({"trusted_issuers": [{"issuer": CI, "jwks_uri": "https://keys.example/jwks", "scope": "read"}]})))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["trusted_issuers"][0]["jwks_uri"],
        "https://keys.example/jwks"
    );
    let (status, body) = server.admin_call(reqwest::Method::GET, &path, None).await;
    assert_eq!(
        (status, body["trusted_issuers"][0]["scope"].as_str()),
        (200, Some("read"))
    );
    let disco: Value = server
        .http
        .get(format!("{}/.well-known/openid-configuration", s.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        disco["device_authorization_endpoint"],
        format!("{}/oauth2/device_authorization", s.issuer)
    );
    for g in [JWT_BEARER, TOKEN_EXCHANGE, DEVICE_CODE] {
        assert!(
            disco["grant_types_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(g)),
            "{g}"
        );
    }
}

struct Device {
    tid: String,
    issuer: String,
    tv: String,
}

async fn device_setup(server: &Server) -> Device {
    let tid = support::unique("dv");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let (tv, _) = server
        .client(&tid, "main", json!({"client_name": "Living Room TV", "grant_types": [DEVICE_CODE, "refresh_token"], "scope": "openid profile", "token_endpoint_auth_method": "none"}))
        .await;
    user(
        server,
        &tid,
        "main",
        "alice",
        PASSWORD,
        json!({"name": "Alice"}),
    )
    .await;
    Device {
        issuer: format!("{}/{tid}/main", server.gateway),
        tid,
        tv,
    }
}

async fn start_device(server: &Server, d: &Device, scope: Option<&str>) -> Value {
    let mut form = vec![("client_id", d.tv.as_str())];
    if let Some(sc) = scope {
        form.push(("scope", sc));
    }
    let (status, body) = post(
        server,
        &format!("{}/oauth2/device_authorization", d.issuer),
        None,
        &form,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn poll(server: &Server, d: &Device, device_code: &str) -> (u16, Value) {
    post(
        server,
        &format!("{}/oauth2/token", d.issuer),
        None,
        &[
            ("grant_type", DEVICE_CODE),
            ("device_code", device_code),
            ("client_id", &d.tv),
        ],
    )
    .await
}

/// Polls like a well-behaved device (waiting its interval) until the answer is not
/// `authorization_pending`, within a deadline.
async fn poll_until_decided(
    server: &Server,
    d: &Device,
    device_code: &str,
    interval: u64,
) -> (u16, Value) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(interval * 1000 + 100)).await;
        let (status, body) = poll(server, d, device_code).await;
        if body["error"] != "authorization_pending" || Instant::now() > deadline {
            return (status, body);
        }
    }
}

/// The user's side over HTTP: enter the code on /device, log in, answer consent.
async fn enter_code(agent: &Agent, d: &Device, typed: &str, decision: &str) -> String {
    agent
        .enter_device_code(
            &d.issuer,
            typed,
            "Living Room TV",
            "alice",
            PASSWORD,
            decision,
        )
        .await
}

async fn device_flow_and_every_polling_answer(backend: &Backend) {
    let server = Server::start_with(
        backend,
        &[
            "--device-code-interval",
            "1",
            "--rate-limit-failures-burst",
            "1000",
        ],
    )
    .await;
    let d = device_setup(&server).await;
    let other = device_setup(&server).await;

    let started = start_device(&server, &d, Some("openid profile")).await;
    assert_eq!(started["verification_uri"], format!("{}/device", d.issuer));
    assert_eq!(started["interval"], 1);
    assert!(started["expires_in"].as_u64().unwrap() > 0);
    let user_code = started["user_code"].as_str().unwrap().to_owned();
    assert!(
        user_code.len() == 9
            && user_code
                .chars()
                .all(|c| c == '-' || "BCDFGHJKLMNPQRSTVWXZ".contains(c)),
        "{user_code}"
    );
    assert_eq!(
        started["verification_uri_complete"],
        format!("{}/device?user_code={user_code}", d.issuer)
    );
    let device_code = started["device_code"].as_str().unwrap().to_owned();

    let (status, body) = poll(&server, &d, &device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending")),
        "{body}"
    );
    // The same device code at another tenant names nothing there.
    let (status, body) = post(
        &server,
        &format!("{}/oauth2/token", other.issuer),
        None,
        &[
            ("grant_type", DEVICE_CODE),
            ("device_code", &device_code),
            ("client_id", &other.tv),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );

    // Typed loosely: lower case, no hyphen.
    let agent = Agent::new();
    let done = enter_code(
        &agent,
        &d,
        &user_code.replace('-', "").to_lowercase(),
        "allow",
    )
    .await;
    assert!(done.ends_with("/device?done=approved"), "{done}");
    let (status, body) = poll_until_decided(&server, &d, &device_code, 1).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["refresh_token"].is_string() && body["id_token"].is_string(),
        "{body}"
    );
    let at = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(at["client_id"], d.tv.as_str());
    assert_eq!(body["scope"], "openid profile");
    // Taken once.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = poll(&server, &d, &device_code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    // The refresh token works like the code flow's.
    let rt = body_rt(&server, &d, &agent).await;
    assert!(!rt.is_empty());

    // slow_down: polling faster than the interval, which then grows by 5 s.
    let started = start_device(&server, &d, None).await;
    let code2 = started["device_code"].as_str().unwrap().to_owned();
    assert_eq!(
        poll(&server, &d, &code2).await.1["error"],
        "authorization_pending"
    );
    let (status, body) = poll(&server, &d, &code2).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("slow_down")),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, body) = poll(&server, &d, &code2).await;
    assert_eq!(
        body["error"], "slow_down",
        "the interval grew past 1 s: {body}"
    );

    // access_denied.
    let started = start_device(&server, &d, None).await;
    let code3 = started["device_code"].as_str().unwrap().to_owned();
    let done = enter_code(&agent, &d, started["user_code"].as_str().unwrap(), "deny").await;
    assert!(done.ends_with("done=denied"), "{done}");
    let (status, body) = poll_until_decided(&server, &d, &code3, 1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("access_denied")),
        "{body}"
    );

    // Wrong, unknown and malformed input.
    let (status, body) = poll(&server, &d, "not-a-code").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let (status, body) = post(
        &server,
        &format!("{}/oauth2/token", d.issuer),
        None,
        &[("grant_type", DEVICE_CODE), ("client_id", &d.tv)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    let (status, body) = post(
        &server,
        &format!("{}/oauth2/device_authorization", d.issuer),
        None,
        &[("client_id", &d.tv), ("scope", "admin")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{body}"
    );
    let (status, _) = post(
        &server,
        &format!("{}/nope/main/oauth2/device_authorization", server.gateway),
        None,
        &[("client_id", &d.tv)],
    )
    .await;
    assert_eq!(status, 404);
    let (cc, secret) = server.client(&d.tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic"})).await;
    let (status, body) = post(
        &server,
        &format!("{}/oauth2/device_authorization", d.issuer),
        Some((&cc, &secret)),
        &[],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );
    let (status, body) = post(
        &server,
        &format!("{}/oauth2/device_authorization", d.issuer),
        Some((&cc, "wrong")),
        &[],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );

    // The page: a wrong CSRF token, then wrong codes until the address's budget is spent.
    let page = agent.get(&format!("{}/device", d.issuer)).await;
    let res = agent
        .post_form(
            &format!("{}/device", d.issuer),
            &[("csrf", "forged"), ("user_code", "BCDF-GHJK")],
        )
        .await;
    assert_eq!(res.status, 403, "{}", res.body);
    let mut csrf = hidden(&page.body, "csrf").unwrap();
    let mut last = 0;
    for _ in 0..25 {
        let res = agent
            .post_form(
                &format!("{}/device", d.issuer),
                &[("csrf", &csrf), ("user_code", "BCDF-GHJK")],
            )
            .await;
        last = res.status;
        if res.status == 429 {
            break;
        }
        assert_eq!(res.status, 400, "{}", res.body);
        assert!(res.body.contains("not valid"), "{}", res.body);
        csrf = hidden(&res.body, "csrf").unwrap();
    }
    assert_eq!(last, 429, "guessing is bounded per address");
}

/// A refresh with the device flow's refresh token (fetched anew, since the first poll's body
/// is consumed above).
async fn body_rt(server: &Server, d: &Device, agent: &Agent) -> String {
    let started = start_device(server, d, Some("openid")).await;
    enter_code(agent, d, started["user_code"].as_str().unwrap(), "allow").await;
    let (status, body) =
        poll_until_decided(server, d, started["device_code"].as_str().unwrap(), 1).await;
    assert_eq!(status, 200, "{body}");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = post(
        server,
        &format!("{}/oauth2/token", d.issuer),
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", &d.tv),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["refresh_token"].as_str().unwrap().to_owned()
}

async fn device_codes_expire(backend: &Backend) {
    let server = Server::start_with(
        backend,
        &["--device-code-interval", "1", "--device-code-ttl", "2"],
    )
    .await;
    let d = device_setup(&server).await;
    let started = start_device(&server, &d, None).await;
    let code = started["device_code"].as_str().unwrap().to_owned();
    let (status, body) = poll_until_decided(&server, &d, &code, 1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("expired_token")),
        "{body}"
    );
    // The user code expired with it.
    let agent = Agent::new();
    let page = agent.get(&format!("{}/device", d.issuer)).await;
    let csrf = hidden(&page.body, "csrf").unwrap();
    let res = agent
        .post_form(
            &format!("{}/device", d.issuer),
            &[
                ("csrf", &csrf),
                ("user_code", started["user_code"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(res.status, 400, "{}", res.body);
}

both_backends! {
    jwt_bearer_good_expired_replayed_untrusted => jwt_bearer_good_expired_replayed_untrusted;
    token_exchange_impersonation_delegation_chains => token_exchange_impersonation_delegation_chains;
    trusted_issuers_are_validated => trusted_issuers_are_validated;
    device_flow_and_every_polling_answer => device_flow_and_every_polling_answer;
    device_codes_expire => device_codes_expire;
}
