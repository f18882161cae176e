//! Tenant isolation against the real binary, on both backends, with a second tenant present:
//! tenant B's admin credential is refused (403) at every documented admin path and method of
//! tenant A and lists only B; at A's gateway B's clients, secrets, assertions and tokens are
//! refused at every client endpoint (token and revocation `401`, introspection `401` or
//! `active: false`), a revocation at A does not touch B's token, and A's discovery and JWKS
//! show only A's keys. Failed client authentications at A are sampled into A's audit trail,
//! once per client, reason and minute, and never into B's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::material::{assertion_claims, hs256_assertion, ClientKey, JWT_BEARER};
use support::{basic, Backend, Server};

async fn admin_as(
    server: &Server,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = server
        .http
        .request(method, format!("{}{path}", server.admin))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn credential(server: &Server, tid: &str, role: &str) -> (String, String) {
    let (s, b) = server
        .admin_post(
            &format!("/admin/tenants/{tid}/credentials"),
            &json!({"role": role}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    (
        b["id"].as_str().unwrap().to_owned(),
        b["token"].as_str().unwrap().to_owned(),
    )
}

async fn admin_credentials_reach_their_tenant_only(backend: &Backend) {
    let server = Server::start(backend).await;
    let (a, b) = (support::unique("iso-a"), support::unique("iso-b"));
    for t in [&a, &b] {
        server.tenant_and_server(t, "main", json!({})).await;
        server
            .client(
                t,
                "main",
                json!({"client_id": "svc", "grant_types": ["client_credentials"]}),
            )
            .await;
    }
    let a_user = support::flow::user(
        &server,
        &a,
        "main",
        "user-of-a",
        "long enough password",
        json!({}),
    )
    .await;
    let (a_cred, _) = credential(&server, &a, "admin").await;
    let (_, b_admin) = credential(&server, &b, "admin").await;
    let (_, b_reader) = credential(&server, &b, "read-only").await;

    let doc: Value = server
        .http
        .get(format!("{}/admin/openapi.json", server.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut rows = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        if !template.contains("{tid}") {
            continue;
        }
        let path = template
            .replace("{tid}", &a)
            .replace("{aid}", "main")
            .replace("{client_id}", "svc")
            .replace("{credential_id}", &a_cred)
            .replace("{user_id}", &a_user);
        assert!(!path.contains('{'), "unfilled parameter in {template}");
        for method in item.as_object().unwrap().keys() {
            rows.push((
                Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap(),
                path.clone(),
            ));
        }
    }
    assert!(rows.len() >= 20, "{rows:?}");
    let body = json!({"name": "x", "role": "admin", "grant_types": ["client_credentials"]});
    let mut failures = Vec::new();
    for token in [&b_admin, &b_reader] {
        for (method, path) in &rows {
            let (status, reply) = admin_as(&server, token, method.clone(), path, Some(&body)).await;
            if (status, reply["error"].as_str()) != (403, Some("forbidden")) {
                failures.push(format!("{method} {path}: {status} {reply}"));
            }
        }
    }
    let (status, reply) = admin_as(&server, &b_admin, Method::GET, "/admin/tenants", None).await;
    let ids: Vec<_> = reply["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    if (status, ids.clone()) != (200, vec![json!(b)]) {
        failures.push(format!("GET /admin/tenants as B: {status} {ids:?}"));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));

    // Nothing in A changed; A's credentials and clients are as they were.
    let (status, reply) = server
        .admin_call(
            Method::GET,
            &format!("/admin/tenants/{a}/credentials"),
            None,
        )
        .await;
    assert_eq!(
        (status, reply["items"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let (status, _) = server
        .admin_call(
            Method::GET,
            &format!("/admin/tenants/{a}/servers/main/clients/svc"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    // And no change was audited in A but its own setup.
    let (_, audit) = server
        .admin_call(Method::GET, &format!("/admin/tenants/{a}/audit"), None)
        .await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "root"),
        "{audit}"
    );
}

/// One request to one of tenant A's client endpoints, and what it must get.
struct Row {
    name: &'static str,
    endpoint: &'static str,
    basic: Option<String>,
    form: Vec<(String, String)>,
    status: u16,
    /// The RFC error, or for a 200 the expected `active` of an introspection.
    expect: Value,
}

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn send(
    server: &Server,
    url: &str,
    basic: Option<&str>,
    form: &[(String, String)],
) -> (u16, Value) {
    let mut req = server.http.post(url).form(form);
    if let Some(b) = basic {
        req = req.header("authorization", b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn issue(server: &Server, tid: &str, id: &str, secret: &str) -> String {
    let (s, b) = send(
        server,
        &server.token_url(tid, "main"),
        Some(&basic(id, secret)),
        &form(&[("grant_type", "client_credentials")]),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    b["access_token"].as_str().unwrap().to_owned()
}

async fn introspect(server: &Server, tid: &str, auth: &str, token: &str) -> Value {
    let (s, b) = send(
        server,
        &format!("{}/{tid}/main/oauth2/introspect", server.gateway),
        Some(auth),
        &form(&[("token", token)]),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    b
}

async fn audit_rows(server: &Server, tid: &str, query: &str) -> Vec<Value> {
    let (s, b) = server
        .admin_call(
            Method::GET,
            &format!("/admin/tenants/{tid}/audit?limit=200&{query}"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["items"].as_array().unwrap().clone()
}

#[allow(clippy::too_many_lines)] // One table, its setup, and what it leaves behind.
async fn gateway_refuses_another_tenants_clients_tokens_and_assertions(backend: &Backend) {
    let server = Server::start(backend).await;
    let (a, b) = (support::unique("iso-a"), support::unique("iso-b"));
    let cc = |id: &str, method: &str| json!({"client_id": id, "grant_types": ["client_credentials"], "token_endpoint_auth_method": method});
    // A's resource server `rs` may introspect every token of A's server (RFC 7662 §4).
    server
        .tenant_and_server(&a, "main", json!({"introspection_clients": ["rs"]}))
        .await;
    server.tenant_and_server(&b, "main", json!({})).await;
    // The same client id in both tenants, with different secrets.
    let (_, a_svc) = server
        .client(&a, "main", cc("svc", "client_secret_basic"))
        .await;
    let (_, a_rs) = server
        .client(&a, "main", cc("rs", "client_secret_basic"))
        .await;
    let (_, b_svc) = server
        .client(&b, "main", cc("svc", "client_secret_basic"))
        .await;
    let (_, b_post) = server
        .client(&b, "main", cc("poster", "client_secret_post"))
        .await;
    let (_, b_jwt) = server
        .client(&b, "main", cc("hmac", "client_secret_jwt"))
        .await;
    let b_key = ClientKey::es256("b-key");
    let mut pk = cc("signer", "private_key_jwt");
    pk["jwks"] = b_key.jwks();
    server.client(&b, "main", pk).await;

    let a_token = issue(&server, &a, "svc", &a_svc).await;
    let b_token = issue(&server, &b, "svc", &b_svc).await;
    let a_url = |ep: &str| format!("{}/{a}/main/oauth2/{ep}", server.gateway);
    let a_rs_auth = basic("rs", &a_rs);
    let cc_form = form(&[("grant_type", "client_credentials")]);
    let with = |base: &[(String, String)], extra: &[(&str, String)]| {
        let mut f = base.to_vec();
        f.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        f
    };
    let assertion = |ep: &str, jwt: bool, id: &str| {
        let claims = assertion_claims(id, &a_url(ep));
        let signed = if jwt {
            hs256_assertion(&b_jwt, &claims)
        } else {
            b_key.sign(&claims)
        };
        vec![
            ("client_assertion_type", JWT_BEARER.to_owned()),
            ("client_assertion", signed),
        ]
    };
    let invalid_client = json!("invalid_client");

    let mut rows = Vec::new();
    for ep in ["token", "introspect", "revoke"] {
        let base = if ep == "token" {
            cc_form.clone()
        } else {
            form(&[("token", &b_token)])
        };
        rows.extend([
            Row {
                name: "B's secret for the client id both tenants use (Basic)",
                endpoint: ep,
                basic: Some(basic("svc", &b_svc)),
                form: base.clone(),
                status: 401,
                expect: invalid_client.clone(),
            },
            Row {
                name: "B's client_secret_post client",
                endpoint: ep,
                basic: None,
                form: with(
                    &base,
                    &[
                        ("client_id", "poster".into()),
                        ("client_secret", b_post.clone()),
                    ],
                ),
                status: 401,
                expect: invalid_client.clone(),
            },
            Row {
                name: "B's client_secret_jwt assertion addressed to A",
                endpoint: ep,
                basic: None,
                form: with(&base, &assertion(ep, true, "hmac")),
                status: 401,
                expect: invalid_client.clone(),
            },
            Row {
                name: "B's private_key_jwt assertion addressed to A",
                endpoint: ep,
                basic: None,
                form: with(&base, &assertion(ep, false, "signer")),
                status: 401,
                expect: invalid_client.clone(),
            },
            Row {
                name: "B's assertion naming A's client id",
                endpoint: ep,
                basic: None,
                form: with(&base, &assertion(ep, true, "svc")),
                status: 401,
                expect: invalid_client.clone(),
            },
        ]);
    }
    rows.extend([
        Row {
            name: "B's access token introspected by A's resource server",
            endpoint: "introspect",
            basic: Some(a_rs_auth.clone()),
            form: form(&[("token", &b_token)]),
            status: 200,
            expect: json!(false),
        },
        Row {
            name: "B's access token with a hint",
            endpoint: "introspect",
            basic: Some(a_rs_auth.clone()),
            form: form(&[("token", &b_token), ("token_type_hint", "access_token")]),
            status: 200,
            expect: json!(false),
        },
        Row {
            name: "B's access token revoked at A (RFC 7009: 200, and nothing happens)",
            endpoint: "revoke",
            basic: Some(a_rs_auth.clone()),
            form: form(&[("token", &b_token)]),
            status: 200,
            expect: Value::Null,
        },
    ]);

    let mut failures = Vec::new();
    for row in &rows {
        let (status, body) = send(
            &server,
            &a_url(row.endpoint),
            row.basic.as_deref(),
            &row.form,
        )
        .await;
        let got = if status == 200 {
            body.get("active").cloned().unwrap_or(Value::Null)
        } else {
            body["error"].clone()
        };
        if (status, &got) != (row.status, &row.expect) {
            failures.push(format!(
                "{} at {}: want {} {}, got {status} {body}",
                row.name, row.endpoint, row.status, row.expect
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));

    // The revocation at A did not touch B's token; A's own token is active at A.
    let b_introspection = introspect(&server, &b, &basic("svc", &b_svc), &b_token).await;
    assert_eq!(b_introspection["active"], true, "{b_introspection}");
    assert_eq!(
        introspect(&server, &a, &a_rs_auth, &a_token).await["active"],
        true
    );
    // Nor is A's token anything at B.
    assert_eq!(
        introspect(&server, &b, &basic("svc", &b_svc), &a_token).await["active"],
        false
    );

    // Discovery and JWKS: A's issuer, A's keys, none of B's.
    let kids = |tid: String| {
        let server = &server;
        async move {
            let (_, keys) = server
                .admin_call(
                    Method::GET,
                    &format!("/admin/tenants/{tid}/servers/main/keys"),
                    None,
                )
                .await;
            keys["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let (a_kids, b_kids) = (kids(a.clone()).await, kids(b.clone()).await);
    let issuer = format!("{}/{a}/main", server.gateway);
    for doc in [
        format!("{issuer}/.well-known/openid-configuration"),
        format!("{issuer}/.well-known/oauth-authorization-server"),
        format!(
            "{}/.well-known/oauth-authorization-server/{a}/main",
            server.gateway
        ),
    ] {
        let meta: Value = server
            .http
            .get(&doc)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(meta["issuer"], issuer.as_str(), "{doc}");
        assert_eq!(
            meta["jwks_uri"],
            format!("{issuer}/.well-known/jwks.json"),
            "{doc}"
        );
        assert!(!meta.to_string().contains(&b), "{doc}: {meta}");
    }
    let jwks: Value = server
        .http
        .get(format!("{issuer}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut published: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    published.sort();
    let mut want = a_kids.clone();
    want.sort();
    assert_eq!(published, want);
    assert!(b_kids.iter().all(|k| !published.contains(k)));

    // The failures at A are sampled into A's trail (written off the request path: poll),
    // once per client, reason and minute: the id both tenants use was refused three times
    // for its secret, and is one row. B's clients are unknown at A: rows for A's server,
    // naming no client. B's trail has no failure at all.
    let deadline = Instant::now() + Duration::from_secs(10);
    let sampled = loop {
        let rows = audit_rows(&server, &a, "action=client.authentication_failed").await;
        let has_unknown = rows
            .iter()
            .any(|r| r["detail"]["reason"] == "unknown_client");
        let has_svc = rows.iter().any(|r| r["client_id"] == "svc");
        if has_unknown && has_svc {
            break rows;
        }
        assert!(
            Instant::now() < deadline,
            "no sampled failures in A's trail: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let svc_rows: Vec<_> = sampled
        .iter()
        .filter(|r| r["client_id"] == "svc" && r["detail"]["reason"] == "wrong_secret")
        .collect();
    assert_eq!(svc_rows.len(), 1, "{sampled:?}");
    let row = svc_rows[0];
    assert_eq!(row["actor"], "gateway");
    assert_eq!(
        row["resource"],
        format!("/admin/tenants/{a}/servers/main/clients/svc")
    );
    assert_eq!(row["detail"]["method"], "client_secret_basic");
    assert_eq!(row["address"], "127.0.0.1");
    for r in &sampled {
        assert_eq!(r["tenant_id"], a.as_str(), "{r}");
        if r["detail"]["reason"] == "unknown_client" {
            assert!(
                r["client_id"].is_null(),
                "unknown ids are not recorded: {r}"
            );
        }
    }
    let text = serde_json::to_string(&sampled).unwrap();
    for secret in [&b_svc, &b_post, &b_jwt, &b_token] {
        assert!(
            !text.contains(secret.as_str()),
            "a secret in the trail: {text}"
        );
    }
    assert!(
        audit_rows(&server, &b, "action=client.authentication_failed")
            .await
            .is_empty()
    );
}

both_backends! {
    admin_credentials_reach_their_tenant_only => admin_credentials_reach_their_tenant_only;
    gateway_refuses_another_tenants_clients_tokens_and_assertions => gateway_refuses_another_tenants_clients_tokens_and_assertions;
}
