//! The README walk-through, end to end against the real binary, on both backends: tenant →
//! server → client → token → verify the token with the published JWKS using jsonwebtoken
//! (independent of Tollgate's signing code), plus the variations a user meets next.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use jsonwebtoken::{decode, decode_header, jwk::JwkSet, Algorithm, DecodingKey, Validation};
use reqwest::header;
use serde_json::{json, Value};
use support::{basic, Backend, Server};

fn ids(backend: &Backend, prefix: &str) -> String {
    // Shared PostgreSQL databases need unique tenants; a fresh SQLite file can use the
    // README's names.
    if backend.name == "sqlite" {
        prefix.to_owned()
    } else {
        support::unique(prefix)
    }
}

async fn token(
    server: &Server,
    url: &str,
    id: &str,
    secret: &str,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let res = server
        .http
        .post(url)
        .header(header::AUTHORIZATION, basic(id, secret))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.json().await.unwrap())
}

/// Verifies a JWT against the JWKS served at `jwks_uri`; returns header alg and claims.
async fn verify(
    server: &Server,
    jwks_uri: &str,
    jwt: &str,
    issuer: &str,
    aud: &str,
) -> (Algorithm, Value) {
    let jwks: JwkSet = server
        .http
        .get(jwks_uri)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = decode_header(jwt).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"), "RFC 9068 §2.1 typ");
    let kid = header.kid.clone().expect("kid in header");
    let jwk = jwks.find(&kid).expect("signing key published in the JWKS");
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[aud]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    let data = decode::<Value>(jwt, &DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .expect("token verifies");
    (header.alg, data.claims)
}

async fn readme_walkthrough(backend: &Backend) {
    let server = Server::start(backend).await;
    let tid = ids(backend, "acme");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let (client_id, secret) = server
        .client(
            &tid,
            "main",
            json!({
                "client_name": "billing-service",
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic",
                "scope": "invoices:read invoices:write"
            }),
        )
        .await;
    assert!(secret.len() >= 43, "secret carries at least 256 bits");

    // Discovery, in all three places.
    let issuer = format!("{}/{tid}/main", server.gateway);
    let oidc: Value = server
        .http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(oidc["issuer"], issuer);
    assert_eq!(oidc["token_endpoint"], format!("{issuer}/oauth2/token"));
    assert_eq!(oidc["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    // Without TLS client CAs or a proxy header, the two TLS methods are not offered.
    assert_eq!(
        oidc["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "client_secret_jwt",
            "private_key_jwt",
            "none"
        ])
    );
    assert!(oidc["grant_types_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("client_credentials")));
    assert_eq!(oidc["subject_types_supported"], json!(["public"]));
    let rfc8414: Value = server
        .http
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rfc8414_root: Value = server
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server/{tid}/main",
            server.gateway
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rfc8414, rfc8414_root);
    assert_eq!(rfc8414["issuer"], issuer);

    // The token.
    let (status, headers, body) = token(
        &server,
        oidc["token_endpoint"].as_str().unwrap(),
        &client_id,
        &secret,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::PRAGMA], "no-cache");
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "invoices:read invoices:write");
    assert!(
        body.get("refresh_token").is_none(),
        "never a refresh token for client_credentials"
    );

    let (alg, claims) = verify(
        &server,
        oidc["jwks_uri"].as_str().unwrap(),
        body["access_token"].as_str().unwrap(),
        &issuer,
        &issuer,
    )
    .await;
    assert_eq!(alg, Algorithm::ES256);
    assert_eq!(claims["sub"], client_id.as_str());
    assert_eq!(claims["client_id"], client_id.as_str());
    assert_eq!(claims["scope"], "invoices:read invoices:write");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    // A narrower scope; then a second token has a different jti.
    let (status, _, narrow) = token(
        &server,
        &server.token_url(&tid, "main"),
        &client_id,
        &secret,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "invoices:read"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(narrow["scope"], "invoices:read");
    let (_, c2) = verify(
        &server,
        oidc["jwks_uri"].as_str().unwrap(),
        narrow["access_token"].as_str().unwrap(),
        &issuer,
        &issuer,
    )
    .await;
    assert_ne!(c2["jti"], claims["jti"]);
}

async fn post_method_and_json_bodies(backend: &Backend) {
    let server = Server::start(backend).await;
    let tid = ids(backend, "post");
    server
        .tenant_and_server(
            &tid,
            "main",
            json!({"default_audience": "https://api.example.com"}),
        )
        .await;
    let (id, secret) = server
        .client(
            &tid,
            "main",
            json!({
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_post",
                "scope": "a b",
                "audience": ["https://orders.example.com", "https://stock.example.com"]
            }),
        )
        .await;
    let url = server.token_url(&tid, "main");
    let issuer = format!("{}/{tid}/main", server.gateway);
    let jwks = format!("{issuer}/.well-known/jwks.json");

    // Form body.
    let res = server
        .http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let (_, claims) = verify(
        &server,
        &jwks,
        body["access_token"].as_str().unwrap(),
        &issuer,
        "https://api.example.com",
    )
    .await;
    assert_eq!(
        claims["aud"], "https://api.example.com",
        "server default audience"
    );

    // JSON body, same names, with an RFC 8707 resource.
    let res = server.http.post(&url)
        .json(&json!({"grant_type": "client_credentials", "client_id": id, "client_secret": secret, "resource": "https://orders.example.com", "scope": "b"}))
        .send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["scope"], "b");
    let (_, claims) = verify(
        &server,
        &jwks,
        body["access_token"].as_str().unwrap(),
        &issuer,
        "https://orders.example.com",
    )
    .await;
    assert_eq!(claims["aud"], "https://orders.example.com");

    // Two resources give an array audience.
    let res = server
        .http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("resource", "https://orders.example.com"),
            ("resource", "https://stock.example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let (_, claims) = verify(
        &server,
        &jwks,
        body["access_token"].as_str().unwrap(),
        &issuer,
        "https://stock.example.com",
    )
    .await;
    assert_eq!(
        claims["aud"],
        json!(["https://orders.example.com", "https://stock.example.com"])
    );
}

async fn every_signing_alg_verifies(backend: &Backend) {
    let server = Server::start(backend).await;
    for (alg, expected) in [
        ("RS256", Algorithm::RS256),
        ("PS256", Algorithm::PS256),
        ("EdDSA", Algorithm::EdDSA),
        ("ES256", Algorithm::ES256),
    ] {
        let tid = support::unique(&alg.to_lowercase());
        server
            .tenant_and_server(
                &tid,
                "main",
                json!({"signing_alg": alg, "access_token_ttl": 300}),
            )
            .await;
        let (id, secret) = server
            .client(&tid, "main", json!({"grant_types": ["client_credentials"]}))
            .await;
        let (status, _, body) = token(
            &server,
            &server.token_url(&tid, "main"),
            &id,
            &secret,
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, 200, "{alg}: {body}");
        assert_eq!(body["expires_in"], 300);
        assert!(body.get("scope").is_none(), "no registered scope, no scope");
        let issuer = format!("{}/{tid}/main", server.gateway);
        let (got, _) = verify(
            &server,
            &format!("{issuer}/.well-known/jwks.json"),
            body["access_token"].as_str().unwrap(),
            &issuer,
            &issuer,
        )
        .await;
        assert_eq!(got, expected);
        // Every server also publishes an RS256 key for ID tokens.
        let jwks: Value = server
            .http
            .get(format!("{issuer}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let algs: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["alg"].as_str().unwrap())
            .collect();
        assert!(algs.contains(&"RS256") && algs.contains(&alg), "{algs:?}");
        assert!(
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .all(|k| k.get("d").is_none() && k.get("p").is_none()),
            "public keys only"
        );
    }
}

async fn admin_changes_take_effect_at_once(backend: &Backend) {
    let server = Server::start(backend).await;
    let tid = ids(backend, "live");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let (id, secret) = server
        .client(
            &tid,
            "main",
            json!({"grant_types": ["client_credentials"], "scope": "a b"}),
        )
        .await;
    let url = server.token_url(&tid, "main");
    let ok = |s: u16| assert_eq!(s, 200);
    ok(token(
        &server,
        &url,
        &id,
        &secret,
        &[("grant_type", "client_credentials")],
    )
    .await
    .0);

    // Secret rotation: the old secret stops working before the admin call returns.
    let (s, rotated) = server
        .admin_post(
            &format!("/admin/tenants/{tid}/servers/main/clients/{id}/secret"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{rotated}");
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(
        token(
            &server,
            &url,
            &id,
            &secret,
            &[("grant_type", "client_credentials")]
        )
        .await
        .0,
        401
    );
    ok(token(
        &server,
        &url,
        &id,
        new_secret,
        &[("grant_type", "client_credentials")],
    )
    .await
    .0);

    // Metadata replacement narrows the scope at once.
    let (s, b) = server
        .admin_call(
            reqwest::Method::PUT,
            &format!("/admin/tenants/{tid}/servers/main/clients/{id}"),
            Some(&json!({"grant_types": ["client_credentials"], "scope": "a"})),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        token(
            &server,
            &url,
            &id,
            new_secret,
            &[("grant_type", "client_credentials"), ("scope", "b")]
        )
        .await
        .2["error"],
        "invalid_scope"
    );

    // Key rotation: new tokens carry the new kid; the old key stays published.
    let before: Value = server
        .http
        .get(format!(
            "{}/{tid}/main/.well-known/jwks.json",
            server.gateway
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (s, keys) = server
        .admin_post(
            &format!("/admin/tenants/{tid}/servers/main/keys/rotate"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{keys}");
    let (_, _, body) = token(
        &server,
        &url,
        &id,
        new_secret,
        &[("grant_type", "client_credentials")],
    )
    .await;
    let kid = decode_header(body["access_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap();
    assert!(
        !before["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str()),
        "signed with a new key"
    );
    let after: Value = server
        .http
        .get(format!(
            "{}/{tid}/main/.well-known/jwks.json",
            server.gateway
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for k in before["keys"].as_array().unwrap() {
        assert!(
            after["keys"].as_array().unwrap().contains(k),
            "retiring key still published"
        );
    }

    // Deletion: the client is gone from the gateway at once.
    let (s, _) = server
        .admin_call(
            reqwest::Method::DELETE,
            &format!("/admin/tenants/{tid}/servers/main/clients/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_eq!(
        token(
            &server,
            &url,
            &id,
            new_secret,
            &[("grant_type", "client_credentials")]
        )
        .await
        .0,
        401
    );

    // Deleting the tenant takes its endpoints down.
    let (s, _) = server
        .admin_call(
            reqwest::Method::DELETE,
            &format!("/admin/tenants/{tid}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let res = server
        .http
        .get(format!(
            "{}/{tid}/main/.well-known/jwks.json",
            server.gateway
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

async fn probes_on_both_listeners(backend: &Backend) {
    let server = Server::start(backend).await;
    for base in [&server.gateway, &server.admin] {
        let h = server
            .http
            .get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(h.status(), 200);
        let r = server
            .http
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["database"], "ok");
        assert_eq!(body["store"], "ok");
    }
}

async fn secrets_stay_out_of_the_output(backend: &Backend) {
    let server = Server::start(backend).await;
    let tid = ids(backend, "quiet");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let (id, secret) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"]}))
        .await;
    let url = server.token_url(&tid, "main");
    let (_, _, ok) = token(
        &server,
        &url,
        &id,
        &secret,
        &[("grant_type", "client_credentials")],
    )
    .await;
    let wrong = "definitely-not-the-secret-0123456789";
    let (s, _, _) = token(
        &server,
        &url,
        &id,
        wrong,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(s, 401);
    assert!(
        server.wait_printed("wrong_secret"),
        "failures are logged with a reason"
    );
    let printed = server.printed();
    for needle in [secret.as_str(), wrong, ok["access_token"].as_str().unwrap()] {
        assert!(
            !printed.contains(needle),
            "a secret or token reached the output"
        );
    }
}

both_backends! {
    readme_walkthrough => readme_walkthrough;
    post_method_and_json_bodies => post_method_and_json_bodies;
    every_signing_alg_verifies => every_signing_alg_verifies;
    admin_changes_take_effect_at_once => admin_changes_take_effect_at_once;
    probes_on_both_listeners => probes_on_both_listeners;
    secrets_stay_out_of_the_output => secrets_stay_out_of_the_output;
}
