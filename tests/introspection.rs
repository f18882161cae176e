//! Introspection (RFC 7662) and revocation (RFC 7009) against the real binary, on both
//! backends: active tokens show their claims; revoked, malformed, foreign and other tenants'
//! tokens are inactive; revocation is recorded where every replica sees it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use serde_json::{json, Value};
use support::{basic, Backend, Server};

struct Setup {
    tid: String,
    id: String,
    secret: String,
    other_id: String,
    other_secret: String,
}

async fn setup(server: &Server) -> Setup {
    let tid = support::unique("intro");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let meta = json!({"grant_types": ["client_credentials"], "scope": "read write"});
    let (id, secret) = server.client(&tid, "main", meta.clone()).await;
    let (other_id, other_secret) = server.client(&tid, "main", meta).await;
    // `other` is the resource server: it may introspect every token of the server.
    let (status, body) = server
        .admin_call(
            reqwest::Method::PATCH,
            &format!("/admin/tenants/{tid}/servers/main"),
            Some(&json!({"introspection_clients": [other_id]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["introspection_clients"], json!([other_id]));
    Setup {
        tid,
        id,
        secret,
        other_id,
        other_secret,
    }
}

async fn post(
    server: &Server,
    tid: &str,
    endpoint: &str,
    auth: &str,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let res = server
        .http
        .post(format!("{}/{tid}/main/oauth2/{endpoint}", server.gateway))
        .header("authorization", auth)
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert_eq!(res.headers()["cache-control"], "no-store", "{endpoint}");
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn issue(server: &Server, tid: &str, id: &str, secret: &str) -> String {
    let (s, body) = post(
        server,
        tid,
        "token",
        &basic(id, secret),
        &[("grant_type", "client_credentials"), ("scope", "read")],
    )
    .await;
    assert_eq!(s, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn introspection_shows_claims_of_active_tokens_only(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let token = issue(&server, &s.tid, &s.id, &s.secret).await;
    let issuer = format!("{}/{}/main", server.gateway, s.tid);

    // The resource server (another client of the same server) introspects it.
    let (status, body) = post(
        &server,
        &s.tid,
        "introspect",
        &basic(&s.other_id, &s.other_secret),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["client_id"], s.id.as_str());
    assert_eq!(body["sub"], s.id.as_str());
    assert_eq!(body["scope"], "read");
    assert_eq!(body["iss"], issuer);
    assert_eq!(body["aud"], issuer);
    assert!(body["exp"].as_i64().unwrap() > body["iat"].as_i64().unwrap());
    assert!(body["jti"].is_string());
    assert!(body.get("cnf").is_none(), "not certificate-bound");

    // With a token_type_hint, and as JSON, the same answer.
    let res = server.http.post(format!("{issuer}/oauth2/introspect"))
        .json(&json!({"token": token, "token_type_hint": "access_token", "client_id": s.other_id, "client_secret": "x"}))
        .send().await.unwrap();
    assert_eq!(
        res.status(),
        401,
        "a basic client may not switch to client_secret_post"
    );

    // Inactive: malformed, tampered, unknown-key, and another tenant's tokens.
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let b = setup(&server).await;
    let foreign = issue(&server, &b.tid, &b.id, &b.secret).await;
    for (name, t) in [
        ("garbage", "not-a-token"),
        ("three dots", "a.b.c"),
        ("tampered", tampered.as_str()),
        ("other tenant", foreign.as_str()),
    ] {
        let (status, body) = post(
            &server,
            &s.tid,
            "introspect",
            &basic(&s.id, &s.secret),
            &[("token", t)],
        )
        .await;
        assert_eq!((status, &body), (200, &json!({"active": false})), "{name}");
    }

    // Client authentication is required, with the same rules as the token endpoint.
    let (status, body) = post(
        &server,
        &s.tid,
        "introspect",
        &basic(&s.id, "wrong"),
        &[("token", &token)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = post(
        &server,
        &b.tid,
        "introspect",
        &basic(&s.id, &s.secret),
        &[("token", &token)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "a client of tenant A is unknown at tenant B"
    );
    let (status, body) = post(&server, &s.tid, "introspect", &basic(&s.id, &s.secret), &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

async fn revocation_deactivates_tokens(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let token = issue(&server, &s.tid, &s.id, &s.secret).await;
    let other = issue(&server, &s.tid, &s.other_id, &s.other_secret).await;
    let owner = basic(&s.id, &s.secret);

    // Another client may not revoke this client's token.
    let (status, body) = post(
        &server,
        &s.tid,
        "revoke",
        &basic(&s.other_id, &s.other_secret),
        &[("token", &token)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );

    let (status, _) = post(
        &server,
        &s.tid,
        "revoke",
        &owner,
        &[("token", &token), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = post(&server, &s.tid, "introspect", &owner, &[("token", &token)]).await;
    assert_eq!(body, json!({"active": false}));
    // The other client's token is untouched.
    let (_, body) = post(
        &server,
        &s.tid,
        "introspect",
        &basic(&s.other_id, &s.other_secret),
        &[("token", &other)],
    )
    .await;
    assert_eq!(body["active"], true);

    // Revoking again, garbage, or an unknown hint is still 200 (RFC 7009 §2.2).
    for form in [
        vec![("token", token.as_str())],
        vec![("token", "garbage")],
        vec![
            ("token", token.as_str()),
            ("token_type_hint", "something_else"),
        ],
    ] {
        let (status, _) = post(&server, &s.tid, "revoke", &owner, &form).await;
        assert_eq!(status, 200);
    }
    let (status, body) = post(&server, &s.tid, "revoke", &owner, &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body) = post(
        &server,
        &s.tid,
        "revoke",
        &basic(&s.id, "nope"),
        &[("token", &other)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    let printed = server.printed();
    assert!(
        !printed.contains(&token) && !printed.contains(&other),
        "tokens never reach the logs"
    );
}

/// RFC 7662 §4: a client learns only about tokens issued to it or naming it in `aud`, unless
/// the server lists it in `introspection_clients`; any other token is `{"active": false}`.
async fn introspection_tells_a_client_only_about_its_tokens(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let (bystander, bystander_secret) = server
        .client(
            &s.tid,
            "main",
            json!({"grant_types": ["client_credentials"]}),
        )
        .await;
    let (api, api_secret) = server
        .client(
            &s.tid,
            "main",
            json!({"grant_types": ["client_credentials"]}),
        )
        .await;
    let (caller, caller_secret) = server
        .client(
            &s.tid,
            "main",
            json!({"grant_types": ["client_credentials"], "audience": [api]}),
        )
        .await;
    let token = issue(&server, &s.tid, &s.id, &s.secret).await;
    let (status, body) = post(
        &server,
        &s.tid,
        "token",
        &basic(&caller, &caller_secret),
        &[("grant_type", "client_credentials"), ("audience", &api)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let for_api = body["access_token"].as_str().unwrap().to_owned();
    let ask = |id: &str, secret: &str, token: &str| {
        let (auth, token) = (basic(id, secret), token.to_owned());
        let server = &server;
        let tid = s.tid.clone();
        async move {
            let (status, body) =
                post(server, &tid, "introspect", &auth, &[("token", &token)]).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };
    // Another client of the same server, not a listed resource server: nothing to learn.
    assert_eq!(
        ask(&bystander, &bystander_secret, &token).await,
        json!({"active": false})
    );
    assert_eq!(
        ask(&bystander, &bystander_secret, &for_api).await,
        json!({"active": false})
    );
    // The client it was issued to, and the audience it names.
    assert_eq!(ask(&s.id, &s.secret, &token).await["active"], true);
    assert_eq!(ask(&caller, &caller_secret, &for_api).await["active"], true);
    let seen = ask(&api, &api_secret, &for_api).await;
    assert_eq!(
        (seen["active"].clone(), seen["aud"].clone()),
        (json!(true), json!(api))
    );
    assert_eq!(
        ask(&api, &api_secret, &token).await,
        json!({"active": false})
    );
    // The listed resource server learns about every token of the server.
    assert_eq!(
        ask(&s.other_id, &s.other_secret, &token).await["active"],
        true
    );
    assert_eq!(
        ask(&s.other_id, &s.other_secret, &for_api).await["active"],
        true
    );

    // The list is validated: client ids only, at most 50.
    let path = format!("/admin/tenants/{}/servers/main", s.tid);
    let too_many: Vec<String> = (0..51).map(|i| format!("rs-{i}")).collect();
    for bad in [json!(["not a client id"]), json!(too_many), json!("rs")] {
        let (status, body) = server
            .admin_call(
                reqwest::Method::PATCH,
                &path,
                Some(&json!({"introspection_clients": bad})),
            )
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("introspection_clients"),
            "{body}"
        );
    }
}

/// Revocation recorded by one process is honoured by another sharing Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_every_replica() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    // Replicas share one public URL, hence one issuer.
    let url = format!("https://{}.example", support::unique("replicas"));
    let a = Server::start_with(&backend, &["--public-url", &url]).await;
    let b = Server::start_with(&backend, &["--public-url", &url]).await;
    let s = setup(&a).await;
    let token = issue(&a, &s.tid, &s.id, &s.secret).await;
    let (_, body) = post(
        &b,
        &s.tid,
        "introspect",
        &basic(&s.id, &s.secret),
        &[("token", &token)],
    )
    .await;
    assert_eq!(body["active"], true, "replica B verifies A's token");
    let (status, _) = post(
        &a,
        &s.tid,
        "revoke",
        &basic(&s.id, &s.secret),
        &[("token", &token)],
    )
    .await;
    assert_eq!(status, 200);
    let (_, body) = post(
        &b,
        &s.tid,
        "introspect",
        &basic(&s.id, &s.secret),
        &[("token", &token)],
    )
    .await;
    assert_eq!(body, json!({"active": false}));
}

both_backends! {
    introspection_shows_claims_of_active_tokens_only => introspection_shows_claims_of_active_tokens_only;
    revocation_deactivates_tokens => revocation_deactivates_tokens;
    introspection_tells_a_client_only_about_its_tokens => introspection_tells_a_client_only_about_its_tokens;
}
