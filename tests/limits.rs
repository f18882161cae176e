//! Rate limits and input limits, end to end: per-client and per-address `429`s with
//! `Retry-After` (shared through Redis on the PostgreSQL backend), the per-server settings
//! in the admin API, `X-Forwarded-For` believed only from trusted proxies, and one row per
//! input limit with the status and the error that names it. Limits are configured small
//! through their flags, so each row is cheap to hit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::process::Stdio;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use support::{basic, command, Backend, Server};

const FORM: &str = "application/x-www-form-urlencoded";

/// A client_credentials request; returns status, `Retry-After`, body.
async fn token(
    server: &Server,
    tid: &str,
    auth: &str,
    xff: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut req = server
        .http
        .post(server.token_url(tid, "main"))
        .header("authorization", auth)
        .header("content-type", FORM)
        .body("grant_type=client_credentials");
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry, res.json().await.unwrap_or(Value::Null))
}

/// Sends token requests until one is refused (at most 30); returns how many were served
/// before, and the refusal.
async fn until_limited(
    server: &Server,
    tid: &str,
    auth: &str,
    xff: Option<&str>,
) -> (usize, (u16, Option<String>, Value)) {
    for served in 0..30 {
        let answer = token(server, tid, auth, xff).await;
        if answer.0 != 200 && answer.0 != 401 {
            return (served, answer);
        }
    }
    panic!("30 requests and no rate limit");
}

async fn metric(server: &Server, series: &str) -> f64 {
    let text = server
        .http
        .get(format!("{}/metrics", server.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

async fn rate_limits(backend: &Backend) {
    let server = Server::start_with(backend, &["--trusted-proxies", "10.9.9.9/32"]).await;
    let tid = support::unique("rl");
    let created = server
        .tenant_and_server(
            &tid,
            "main",
            json!({"rate_limits": {"client_per_second": 1, "client_burst": 3}}),
        )
        .await;
    assert_eq!(
        created["rate_limits"],
        json!({"client_per_second": 1, "client_burst": 3, "address_per_second": null, "address_burst": null})
    );
    let cc = json!({"grant_types": ["client_credentials"]});
    let (id, secret) = server.client(&tid, "main", cc.clone()).await;
    let auth = basic(&id, &secret);

    // A burst of three (plus whatever the rate refilled meanwhile: the clock runs), then
    // 429 with Retry-After and an RFC-style body.
    let (served, (status, retry, body)) = until_limited(&server, &tid, &auth, None).await;
    assert!(served >= 3, "only {served} served before the limit");
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "too_many_requests");
    assert!(body["error_description"]
        .as_str()
        .unwrap()
        .contains("retry after"));
    assert_eq!(retry.as_deref(), Some("1"));
    // The limit is per client: another client of the same server is served.
    let (other, other_secret) = server.client(&tid, "main", cc.clone()).await;
    let (status, _, body) = token(&server, &tid, &basic(&other, &other_secret), None).await;
    assert_eq!(status, 200, "{body}");
    // (Wrong secrets are counted apart from the client's requests: see
    // `wrong_secrets_never_lock_a_client_out`.)
    assert!(
        metric(
            &server,
            r#"tollgate_rate_limited_total{endpoint="token",limit="client"}"#
        )
        .await
            >= 1.0
    );

    // Per address: switch the client limit off, allow two per address.
    let path = format!("/admin/tenants/{tid}/servers/main");
    let (status, body) = server
        .admin_call(
            reqwest::Method::PATCH,
            &path,
            Some(&json!({"rate_limits": {"client_per_second": 0, "client_burst": null, "address_per_second": 1, "address_burst": 2}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["rate_limits"],
        json!({"client_per_second": 0, "client_burst": null, "address_per_second": 1, "address_burst": 2})
    );
    let (c1, s1) = server.client(&tid, "main", cc.clone()).await;
    let (c2, s2) = server.client(&tid, "main", cc.clone()).await;
    // Warm both clients' secrets (argon2 once each) through the same address's budget.
    let (served, (status, _, body)) = until_limited(&server, &tid, &basic(&c1, &s1), None).await;
    assert!(served >= 2, "only {served} served before the limit");
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_requests"))
    );
    // X-Forwarded-For from an untrusted peer (127.0.0.1 is not in --trusted-proxies) is
    // ignored: a client cannot pick a fresh address to escape its limit.
    let (status, _, _) = token(&server, &tid, &basic(&c2, &s2), Some("198.51.100.7")).await;
    assert_eq!(status, 429);
    assert!(
        metric(
            &server,
            r#"tollgate_rate_limited_total{endpoint="token",limit="address"}"#
        )
        .await
            >= 2.0
    );

    // `null` resets every setting to the defaults (generous): served again.
    let (status, body) = server
        .admin_call(
            reqwest::Method::PATCH,
            &path,
            Some(&json!({"rate_limits": null})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rate_limits"]["address_per_second"], Value::Null);
    assert_eq!(token(&server, &tid, &basic(&c1, &s1), None).await.0, 200);

    // Settings are validated, naming the field.
    let rows = [
        (json!({"client_burst": 0}), "rate_limits.client_burst"),
        (
            json!({"address_per_second": 2_000_000}),
            "rate_limits.address_per_second",
        ),
        (json!({"burst": 5}), "unknown field `burst`"),
        (
            json!({"client_per_second": -1}),
            "rate_limits.client_per_second",
        ),
    ];
    for (limits, names) in rows {
        for (method, p, body) in [
            (
                reqwest::Method::PATCH,
                path.clone(),
                json!({ "rate_limits": limits }),
            ),
            (
                reqwest::Method::POST,
                format!("/admin/tenants/{tid}/servers"),
                json!({"id": "other", "name": "Other", "rate_limits": limits}),
            ),
        ] {
            let (status, err) = server.admin_call(method, &p, Some(&body)).await;
            assert_eq!(status, 400, "{limits}: {err}");
            assert!(
                err["error_description"].as_str().unwrap().contains(names),
                "{limits}: {err}"
            );
        }
    }
}

/// `X-Forwarded-For` from a trusted proxy names the client: each forwarded address gets its
/// own bucket, and a client's own spoofed entry (left of the proxy's) changes nothing.
async fn forwarded_addresses(backend: &Backend) {
    let server = Server::start_with(backend, &["--trusted-proxies", "127.0.0.1/32"]).await;
    let tid = support::unique("xff");
    server
        .tenant_and_server(
            &tid,
            "main",
            json!({"rate_limits": {"client_per_second": 0, "address_per_second": 1, "address_burst": 1}}),
        )
        .await;
    let (id, secret) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"]}))
        .await;
    let auth = basic(&id, &secret);
    let a = Some("198.51.100.1");
    let (_, (status, _, _)) = until_limited(&server, &tid, &auth, a).await;
    assert_eq!(status, 429);
    // Right after a refusal (the wait is a second): a spoofed entry to the left of what the
    // proxy appended changes nothing; another forwarded address has its own bucket.
    assert_eq!(
        token(&server, &tid, &auth, Some("6.6.6.6, 198.51.100.1"))
            .await
            .0,
        429
    );
    assert_eq!(
        token(&server, &tid, &auth, Some("198.51.100.2")).await.0,
        200
    );
    // IPv6 addresses share a bucket per /64.
    let (_, (status, _, _)) = until_limited(&server, &tid, &auth, Some("2001:db8:0:1::1")).await;
    assert_eq!(status, 429);
    assert_eq!(
        token(&server, &tid, &auth, Some("2001:db8:0:1::2")).await.0,
        429
    );
    assert_eq!(
        token(&server, &tid, &auth, Some("2001:db8:0:2::1")).await.0,
        200
    );
}

/// Issue 10, item 2: requests that merely name a client, with wrong secrets, from addresses
/// well under their request limit, once ate the client's own bucket — and the client got 429.
/// Now failures are counted in buckets of their own (per address, per client) and only an
/// authenticated request is charged to the client: the guesser gets 429, the client 200.
async fn client_lockout(backend: &Backend) {
    let server = Server::start_with(
        backend,
        &[
            "--trusted-proxies",
            "127.0.0.1/32",
            "--rate-limit-failures-per-second",
            "1",
            "--rate-limit-failures-burst",
            "3",
        ],
    )
    .await;
    let tid = support::unique("lock");
    server
        .tenant_and_server(
            &tid,
            "main",
            json!({"rate_limits": {"client_per_second": 1, "client_burst": 5}}),
        )
        .await;
    let (id, secret) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"]}))
        .await;
    let (auth, wrong) = (basic(&id, &secret), basic(&id, "wrong"));
    let revoke = |auth: String, xff: String| {
        server
            .http
            .post(format!("{}/{tid}/main/oauth2/revoke", server.gateway))
            .header("authorization", auth)
            .header("content-type", FORM)
            .header("x-forwarded-for", xff)
            .body("token=not-a-token")
            .send()
    };

    // One guessing address: three failures answered 401, then 429 — and far more guesses
    // than the client's whole bucket (5) holds.
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(token(&server, &tid, &wrong, Some("198.51.100.66")).await.0);
    }
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    assert!((3..=5).contains(&unauthorized), "{statuses:?}");
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    // Many guessing addresses, one wrong secret each (at the revocation endpoint too).
    for i in 1..=20 {
        let xff = format!("192.0.2.{i}");
        assert_ne!(token(&server, &tid, &wrong, Some(&xff)).await.0, 200);
        assert_ne!(revoke(wrong.clone(), xff).await.unwrap().status(), 200);
    }
    // The client itself, authenticated, still has its whole bucket: five of five.
    for n in 0..5 {
        let (status, _, body) = token(&server, &tid, &auth, Some("203.0.113.7")).await;
        assert_eq!(status, 200, "request {n} of the real client: {body}");
    }
    let res = revoke(auth.clone(), "203.0.113.7".into()).await.unwrap();
    assert_eq!(res.status(), 200, "the client's revocation");
    // Its own limit still holds it.
    let (_, (status, _, body)) = until_limited(&server, &tid, &auth, Some("203.0.113.7")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("too_many_requests"))
    );
    // The failures show in the metrics: counted, and refused past their budgets.
    assert!(
        metric(
            &server,
            r#"tollgate_client_auth_failures_total{method="client_secret_basic",reason="wrong_secret"}"#
        )
        .await
            >= 20.0
    );
    for limit in ["address_failures", "client_failures", "client"] {
        let series = format!(r#"tollgate_rate_limited_total{{endpoint="token",limit="{limit}"}}"#);
        assert!(metric(&server, &series).await >= 1.0, "{series}");
    }
}

both_backends! {
    per_client_and_per_address_limits => rate_limits;
    forwarded_for_from_trusted_proxies => forwarded_addresses;
    wrong_secrets_never_lock_a_client_out => client_lockout;
}

/// One input limit broken, and what the answer must say.
struct Row {
    name: &'static str,
    listener: Listener,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    error: &'static str,
    says: &'static str,
}

#[derive(Clone, Copy)]
enum Listener {
    Gateway,
    Admin,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_input_limit_is_enforced_and_named() {
    let backend = Backend::sqlite();
    let server = Server::start_with(
        &backend,
        &[
            "--max-body-bytes",
            "2048",
            "--max-admin-body-bytes",
            "4096",
            "--max-header-bytes",
            "4096",
            "--max-params",
            "6",
            "--max-param-bytes",
            "300",
            "--max-assertion-bytes",
            "600",
            "--max-json-depth",
            "5",
            "--max-jwks-bytes",
            "2048",
        ],
    )
    .await;
    let tid = support::unique("lim");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let (id, secret) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"]}))
        .await;
    let token = format!("/{tid}/main/oauth2/token");
    let clients = format!("/admin/tenants/{tid}/servers/main/clients");
    let form = |extra: &str| format!("grant_type=client_credentials{extra}").into_bytes();
    let gw = |ct: &str| {
        vec![
            ("authorization", basic(&id, &secret)),
            ("content-type", ct.to_owned()),
        ]
    };
    let admin_json = vec![
        ("authorization", format!("Bearer {}", server.admin_token)),
        ("content-type", "application/json".to_owned()),
    ];
    // About 2.3 KB of valid keys: over --max-jwks-bytes, under --max-admin-body-bytes.
    let keys: Vec<Value> = (0..26)
        .map(|i| {
            let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
            json!({"kty": "OKP", "crv": "Ed25519", "kid": format!("k{i}"), "x": URL_SAFE_NO_PAD.encode(kp.public_key_raw())})
        })
        .collect();
    let big_jwks = json!({"token_endpoint_auth_method": "private_key_jwt", "grant_types": ["client_credentials"], "jwks": {"keys": keys}});
    let deep = format!("{}1{}", "[".repeat(6), "]".repeat(6));
    let row = |name, listener, path: &str, headers, body, status, error, says| Row {
        name,
        listener,
        path: path.to_owned(),
        headers,
        body,
        status,
        error,
        says,
    };
    let rows = vec![
        row(
            "gateway body",
            Listener::Gateway,
            &token,
            gw(FORM),
            form(&format!("&pad={}", "p".repeat(2100))),
            400,
            "invalid_request",
            "request body is larger than 2048 bytes (the limit)",
        ),
        row(
            "parameter count",
            Listener::Gateway,
            &token,
            gw(FORM),
            form("&a=1&b=2&c=3&d=4&e=5&f=6"),
            400,
            "invalid_request",
            "the request has more than 6 parameters (the limit)",
        ),
        row(
            "parameter length",
            Listener::Gateway,
            &token,
            gw(FORM),
            form(&format!("&scope={}", "s".repeat(301))),
            400,
            "invalid_request",
            "parameter `scope` is longer than 300 bytes (the limit)",
        ),
        row(
            "assertion length",
            Listener::Gateway,
            &token,
            vec![("content-type", FORM.to_owned())],
            form(&format!(
                "&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}",
                "a".repeat(601)
            )),
            400,
            "invalid_request",
            "parameter `client_assertion` is longer than 600 bytes (the limit)",
        ),
        row(
            "gateway JSON depth",
            Listener::Gateway,
            &token,
            gw("application/json"),
            format!(r#"{{"grant_type":"client_credentials","x":{deep}}}"#).into_bytes(),
            400,
            "invalid_request",
            "JSON request body is nested deeper than 5 levels (the limit)",
        ),
        row(
            "gateway headers",
            Listener::Gateway,
            &token,
            [gw(FORM), vec![("x-padding", "h".repeat(4100))]].concat(),
            form(""),
            431,
            "invalid_request",
            "request headers are larger than 4096 bytes (the limit)",
        ),
        row(
            "discovery headers",
            Listener::Gateway,
            &format!("/{tid}/main/.well-known/openid-configuration"),
            vec![("x-padding", "h".repeat(4100))],
            Vec::new(),
            431,
            "invalid_request",
            "request headers are larger than 4096 bytes (the limit)",
        ),
        row(
            "admin headers",
            Listener::Admin,
            &clients,
            [admin_json.clone(), vec![("x-padding", "h".repeat(4100))]].concat(),
            b"{}".to_vec(),
            431,
            "invalid_request",
            "request headers are larger than 4096 bytes (the limit)",
        ),
        row(
            "admin body",
            Listener::Admin,
            &clients,
            admin_json.clone(),
            format!(r#"{{"client_name":"{}"}}"#, "n".repeat(4100)).into_bytes(),
            413,
            "invalid_request",
            "request body is larger than 4096 bytes (the limit)",
        ),
        row(
            "admin JSON depth",
            Listener::Admin,
            &clients,
            admin_json.clone(),
            format!(r#"{{"jwks":{deep}}}"#).into_bytes(),
            400,
            "invalid_request",
            "the JSON body is nested deeper than 5 levels (the limit)",
        ),
        row(
            "jwks size",
            Listener::Admin,
            &clients,
            admin_json.clone(),
            big_jwks.to_string().into_bytes(),
            400,
            "invalid_client_metadata",
            "jwks: must be at most 2048 bytes (the limit)",
        ),
    ];
    for r in rows {
        let base = match r.listener {
            Listener::Gateway => &server.gateway,
            Listener::Admin => &server.admin,
        };
        let method = if r.body.is_empty() {
            reqwest::Method::GET
        } else {
            reqwest::Method::POST
        };
        let mut req = server.http.request(method, format!("{base}{}", r.path));
        for (k, v) in &r.headers {
            req = req.header(*k, v);
        }
        let res = req.body(r.body).send().await.unwrap();
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(status, r.status, "{}: {body}", r.name);
        assert_eq!(body["error"], r.error, "{}: {body}", r.name);
        assert_eq!(body["error_description"], r.says, "{}: {body}", r.name);
    }
    // Within every limit the same server answers normally.
    let res = server
        .http
        .post(server.token_url(&tid, "main"))
        .header("authorization", basic(&id, &secret))
        .header("content-type", FORM)
        .body(form("&scope="))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
}

#[test]
fn out_of_range_limits_are_configuration_errors() {
    let dir = std::env::temp_dir().join(format!("tollgate-lim-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
    let rows: [(&str, &str, &str); 6] = [
        (
            "--max-header-bytes",
            "200000",
            "--max-header-bytes (TOLLGATE_MAX_HEADER_BYTES): must be 1024 to 131072",
        ),
        ("--max-params", "0", "--max-params (TOLLGATE_MAX_PARAMS)"),
        (
            "--max-assertion-bytes",
            "70000",
            "--max-assertion-bytes (TOLLGATE_MAX_ASSERTION_BYTES)",
        ),
        (
            "--max-json-depth",
            "1000",
            "--max-json-depth (TOLLGATE_MAX_JSON_DEPTH)",
        ),
        (
            "--rate-limit-client-burst",
            "0",
            "--rate-limit-client-burst (TOLLGATE_RATE_LIMIT_CLIENT_BURST)",
        ),
        (
            "--rate-limit-address-per-second",
            "2000000",
            "--rate-limit-address-per-second (TOLLGATE_RATE_LIMIT_ADDRESS_PER_SECOND)",
        ),
    ];
    for (flag, value, says) in rows {
        let out = command()
            .args(["serve", flag, value])
            .env("TOLLGATE_DATABASE_URL", &sqlite)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
        assert!(stderr.contains(says), "{flag}: {stderr}");
        assert!(!stderr.contains("panicked"), "{flag}: {stderr}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
