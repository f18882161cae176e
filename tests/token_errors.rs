//! Every error path of the token endpoint and discovery, table-driven: one row per bad
//! request, with the RFC error code and HTTP status it must get. None may be a 500.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use reqwest::header;
use serde_json::{json, Value};
use support::{basic, Backend, Server};

/// One bad request.
struct Row {
    name: &'static str,
    method: reqwest::Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    status: u16,
    error: &'static str,
}

fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
    serde_urlencoded::to_string(pairs).unwrap().into_bytes()
}

const FORM: &str = "application/x-www-form-urlencoded";

async fn token_error_table(backend: &Backend) {
    let server = Server::start(backend).await;
    let a = support::unique("ta");
    let b = support::unique("tb");
    server.tenant_and_server(&a, "main", json!({})).await;
    server.tenant_and_server(&b, "main", json!({})).await;
    let (id, secret) = server.client(&a, "main", json!({"grant_types": ["client_credentials"], "scope": "read write", "audience": ["https://api.a"]})).await;
    let (post_id, post_secret) = server.client(&a, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post"})).await;
    let (code_id, code_secret) = server.client(&a, "main", json!({"grant_types": ["authorization_code"], "redirect_uris": ["https://app.example/cb"]})).await;
    let (b_id, b_secret) = server
        .client(&b, "main", json!({"grant_types": ["client_credentials"]}))
        .await;
    let (public_id, _) = server
        .client(&a, "main", json!({"grant_types": ["authorization_code"], "redirect_uris": ["https://spa.example/cb"], "token_endpoint_auth_method": "none"}))
        .await;
    let ta = format!("/{a}/main/oauth2/token");
    let tb = format!("/{b}/main/oauth2/token");
    let good = basic(&id, &secret);
    let cc = form(&[("grant_type", "client_credentials")]);
    let auth = |v: &str| {
        vec![
            ("authorization", v.to_owned()),
            ("content-type", FORM.to_owned()),
        ]
    };
    let ct = |v: &str| {
        vec![
            ("authorization", good.clone()),
            ("content-type", v.to_owned()),
        ]
    };
    let post = reqwest::Method::POST;
    let row = |name, path: &str, headers, body, status, error| Row {
        name,
        method: post.clone(),
        path: path.to_owned(),
        headers,
        body,
        status,
        error,
    };

    let rows = vec![
        row(
            "wrong secret",
            &ta,
            auth(&basic(&id, "wrong-secret")),
            cc.clone(),
            401,
            "invalid_client",
        ),
        row(
            "unknown client",
            &ta,
            auth(&basic("no-such-client", &secret)),
            cc.clone(),
            401,
            "invalid_client",
        ),
        row(
            "client of tenant B at tenant A",
            &ta,
            auth(&basic(&b_id, &b_secret)),
            cc.clone(),
            401,
            "invalid_client",
        ),
        row(
            "client of tenant A at tenant B",
            &tb,
            auth(&good),
            cc.clone(),
            401,
            "invalid_client",
        ),
        row(
            "no client authentication",
            &ta,
            vec![("content-type", FORM.into())],
            cc.clone(),
            401,
            "invalid_client",
        ),
        row(
            "malformed Basic header",
            &ta,
            auth("Basic !!!not-base64"),
            cc.clone(),
            401,
            "invalid_client",
        ),
        row(
            "Basic client registered for post",
            &ta,
            auth(&basic(&post_id, &post_secret)),
            cc.clone(),
            401,
            "invalid_client",
        ),
        row(
            "post credentials for a Basic client",
            &ta,
            vec![("content-type", FORM.into())],
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ]),
            401,
            "invalid_client",
        ),
        row(
            "two authentication methods at once",
            &ta,
            auth(&good),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ]),
            400,
            "invalid_request",
        ),
        row(
            "client_id differs from Basic",
            &ta,
            auth(&good),
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &post_id),
            ]),
            400,
            "invalid_request",
        ),
        row(
            "unsupported grant type",
            &ta,
            auth(&good),
            form(&[
                ("grant_type", "password"),
                ("username", "u"),
                ("password", "p"),
            ]),
            400,
            "unsupported_grant_type",
        ),
        row(
            "missing grant_type",
            &ta,
            auth(&good),
            form(&[("scope", "read")]),
            400,
            "invalid_request",
        ),
        row(
            "client not registered for the grant",
            &ta,
            auth(&basic(&code_id, &code_secret)),
            cc.clone(),
            400,
            "unauthorized_client",
        ),
        row(
            "public client with client_credentials",
            &ta,
            vec![("content-type", FORM.into())],
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &public_id),
            ]),
            400,
            "unauthorized_client",
        ),
        row(
            "client secret for a public client",
            &ta,
            vec![("content-type", FORM.into())],
            form(&[
                ("grant_type", "client_credentials"),
                ("client_id", &public_id),
                ("client_secret", "guess"),
            ]),
            401,
            "invalid_client",
        ),
        row(
            "introspection at an unknown tenant",
            "/no-such-tenant/main/oauth2/introspect",
            auth(&good),
            form(&[("token", "x")]),
            404,
            "invalid_request",
        ),
        row(
            "revocation without a token",
            &format!("/{a}/main/oauth2/revoke"),
            auth(&good),
            form(&[("token_type_hint", "access_token")]),
            400,
            "invalid_request",
        ),
        row(
            "scope outside the registered scope",
            &ta,
            auth(&good),
            form(&[
                ("grant_type", "client_credentials"),
                ("scope", "read admin"),
            ]),
            400,
            "invalid_scope",
        ),
        row(
            "malformed scope",
            &ta,
            auth(&good),
            form(&[("grant_type", "client_credentials"), ("scope", "re\"ad")]),
            400,
            "invalid_scope",
        ),
        row(
            "unregistered resource",
            &ta,
            auth(&good),
            form(&[
                ("grant_type", "client_credentials"),
                ("resource", "https://api.other"),
            ]),
            400,
            "invalid_target",
        ),
        row(
            "resource with a fragment",
            &ta,
            auth(&good),
            form(&[
                ("grant_type", "client_credentials"),
                ("resource", "https://api.a#x"),
            ]),
            400,
            "invalid_target",
        ),
        row(
            "repeated parameter",
            &ta,
            auth(&good),
            form(&[
                ("grant_type", "client_credentials"),
                ("scope", "read"),
                ("scope", "write"),
            ]),
            400,
            "invalid_request",
        ),
        row(
            "form body not UTF-8",
            &ta,
            auth(&good),
            b"grant_type=client_credentials&scope=\xff".to_vec(),
            400,
            "invalid_request",
        ),
        row(
            "malformed JSON",
            &ta,
            ct("application/json"),
            b"{\"grant_type\":".to_vec(),
            400,
            "invalid_request",
        ),
        row(
            "JSON array body",
            &ta,
            ct("application/json"),
            b"[1,2]".to_vec(),
            400,
            "invalid_request",
        ),
        // A repeated member is refused like a repeated form parameter (serde_json alone
        // would keep the last one), at every endpoint that takes JSON.
        row(
            "JSON repeated member",
            &ta,
            ct("application/json"),
            br#"{"grant_type":"client_credentials","scope":"read","scope":"write"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        row(
            "JSON repeated grant_type",
            &ta,
            ct("application/json"),
            br#"{"grant_type":"authorization_code","grant_type":"client_credentials"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        row(
            "JSON repeated resource member",
            &ta,
            ct("application/json"),
            br#"{"grant_type":"client_credentials","resource":"https://api.a","resource":"https://api.a"}"#
                .to_vec(),
            400,
            "invalid_request",
        ),
        row(
            "JSON repeated member at introspection",
            &format!("/{a}/main/oauth2/introspect"),
            ct("application/json"),
            br#"{"token":"a","token":"b"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        row(
            "JSON repeated member at revocation",
            &format!("/{a}/main/oauth2/revoke"),
            ct("application/json"),
            br#"{"token":"a","token":"b"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        row(
            "JSON repeated client_secret",
            &ta,
            vec![("content-type", "application/json".to_owned())],
            format!(
                r#"{{"grant_type":"client_credentials","client_id":"{post_id}","client_secret":"wrong","client_secret":"{post_secret}"}}"#
            )
            .into_bytes(),
            400,
            "invalid_request",
        ),
        row(
            "JSON non-string value",
            &ta,
            ct("application/json"),
            br#"{"grant_type":{"x":1}}"#.to_vec(),
            400,
            "invalid_request",
        ),
        row(
            "deeply nested JSON",
            &ta,
            ct("application/json"),
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
            400,
            "invalid_request",
        ),
        row(
            "oversized body",
            &ta,
            auth(&good),
            format!(
                "grant_type=client_credentials&pad={}",
                "x".repeat(200 * 1024)
            )
            .into_bytes(),
            400,
            "invalid_request",
        ),
        row(
            "oversized parameter",
            &ta,
            auth(&good),
            format!("grant_type=client_credentials&scope={}", "x".repeat(9000)).into_bytes(),
            400,
            "invalid_request",
        ),
        row(
            "wrong content type",
            &ta,
            ct("text/plain"),
            cc.clone(),
            400,
            "invalid_request",
        ),
        row(
            "multipart content type",
            &ta,
            ct("multipart/form-data; boundary=x"),
            cc.clone(),
            400,
            "invalid_request",
        ),
        row(
            "missing content type",
            &ta,
            vec![("authorization", good.clone())],
            cc.clone(),
            400,
            "invalid_request",
        ),
        row(
            "unknown tenant",
            "/no-such-tenant/main/oauth2/token",
            auth(&good),
            cc.clone(),
            404,
            "invalid_request",
        ),
        row(
            "unknown server",
            &format!("/{a}/other/oauth2/token"),
            auth(&good),
            cc.clone(),
            404,
            "invalid_request",
        ),
        row(
            "tenant id off-grammar",
            "/ACME!/main/oauth2/token",
            auth(&good),
            cc.clone(),
            404,
            "invalid_request",
        ),
        row(
            "tenant id too long",
            &format!("/{}/main/oauth2/token", "a".repeat(65)),
            auth(&good),
            cc.clone(),
            404,
            "invalid_request",
        ),
        Row {
            name: "GET on the token endpoint",
            method: reqwest::Method::GET,
            path: ta.clone(),
            headers: vec![],
            body: vec![],
            status: 405,
            error: "invalid_request",
        },
        Row {
            name: "discovery of an unknown tenant",
            method: reqwest::Method::GET,
            path: "/nobody/main/.well-known/openid-configuration".into(),
            headers: vec![],
            body: vec![],
            status: 404,
            error: "invalid_request",
        },
        Row {
            name: "JWKS of an unknown server",
            method: reqwest::Method::GET,
            path: format!("/{a}/nope/.well-known/jwks.json"),
            headers: vec![],
            body: vec![],
            status: 404,
            error: "invalid_request",
        },
        Row {
            name: "GET on introspection",
            method: reqwest::Method::GET,
            path: format!("/{a}/main/oauth2/introspect"),
            headers: vec![],
            body: vec![],
            status: 405,
            error: "invalid_request",
        },
        Row {
            name: "POST to discovery",
            method: post.clone(),
            path: format!("/{a}/main/.well-known/jwks.json"),
            headers: vec![],
            body: vec![],
            status: 405,
            error: "invalid_request",
        },
        Row {
            name: "unknown path",
            method: reqwest::Method::GET,
            path: "/nothing/here".into(),
            headers: vec![],
            body: vec![],
            status: 404,
            error: "invalid_request",
        },
    ];

    let mut failures = Vec::new();
    for r in rows {
        let mut req = server
            .http
            .request(r.method.clone(), format!("{}{}", server.gateway, r.path))
            .body(r.body.clone());
        for (k, v) in &r.headers {
            req = req.header(*k, v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status != r.status
            || body["error"] != r.error
            || body["error_description"].as_str().is_none_or(str::is_empty)
        {
            failures.push(format!(
                "{}: got {status} {text}, want {} {}",
                r.name, r.status, r.error
            ));
            continue;
        }
        if !headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.to_str().unwrap().starts_with("application/json"))
        {
            failures.push(format!("{}: error without a JSON content type", r.name));
        }
        if status == 401 {
            let tried_basic = r
                .headers
                .iter()
                .any(|(k, v)| *k == "authorization" && v.starts_with("Basic"));
            if headers.contains_key(header::WWW_AUTHENTICATE) != tried_basic {
                failures.push(format!(
                    "{}: WWW-Authenticate must accompany a 401 exactly when Basic was tried",
                    r.name
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(!server.printed().contains("panicked"), "no panic");
}

both_backends! {
    token_error_table => token_error_table;
}
