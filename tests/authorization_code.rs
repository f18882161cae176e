//! The authorization-code flow end to end against the real binary, on both backends, driven
//! over plain HTTP (the real-browser run is `tests/browser.rs`): authorize → login → consent →
//! code → tokens → userinfo → refresh, with PKCE, OpenID Connect ID tokens verified by
//! jsonwebtoken, and every failure the issue lists, each with its RFC error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

#[allow(dead_code)]
mod support;

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{decode, decode_header, jwk::JwkSet, DecodingKey, Validation};
use serde_json::{json, Value};
use support::flow::{authorize_url, hidden, pkce, user, Agent};
use support::{basic, Backend, Server};

const REDIRECT: &str = "https://app.example/callback";
const PASSWORD: &str = "correct horse battery";

struct Setup {
    tid: String,
    issuer: String,
    /// Confidential client (client_secret_basic) with refresh tokens.
    web: (String, String),
    /// Public client (`none`) with refresh tokens.
    spa: String,
    user_id: String,
}

async fn setup(server: &Server) -> Setup {
    let tid = support::unique("ac");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let (web, secret) = server
        .client(
            &tid,
            "main",
            json!({
                "client_name": "Web Shop",
                "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": [REDIRECT],
                "scope": "openid profile email orders:read",
                "token_endpoint_auth_method": "client_secret_basic"
            }),
        )
        .await;
    let (spa, _) = server
        .client(
            &tid,
            "main",
            json!({
                "client_name": "Single Page App",
                "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": [REDIRECT],
                "scope": "openid email",
                "token_endpoint_auth_method": "none"
            }),
        )
        .await;
    let user_id = user(
        server,
        &tid,
        "main",
        "Alice@Example.com",
        PASSWORD,
        json!({"name": "Alice Martin", "email": "alice@example.com", "email_verified": true, "phone_number": "+33 1 23 45 67 89"}),
    )
    .await;
    Setup {
        issuer: format!("{}/{tid}/main", server.gateway),
        tid,
        web: (web, secret),
        spa,
        user_id,
    }
}

async fn token(
    server: &Server,
    issuer: &str,
    auth: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = server
        .http
        .post(format!("{issuer}/oauth2/token"))
        .form(form);
    if let Some((id, secret)) = auth {
        req = req.header("Authorization", basic(id, secret));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn introspect(server: &Server, issuer: &str, web: &(String, String), t: &str) -> Value {
    server
        .http
        .post(format!("{issuer}/oauth2/introspect"))
        .header("Authorization", basic(&web.0, &web.1))
        .form(&[("token", t)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Verifies a JWT with the server's JWKS through jsonwebtoken, independent of Tollgate.
async fn verify(server: &Server, issuer: &str, jwt: &str, aud: &str) -> Value {
    let jwks: JwkSet = server
        .http
        .get(format!("{issuer}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = decode_header(jwt).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[aud]);
    decode::<Value>(jwt, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims
}

fn at_hash(access_token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d.as_ref()[..16])
}

/// A code for `client` (logging in and consenting as needed); `extra` adds parameters.
async fn code_for(
    agent: &Agent,
    s: &Setup,
    client: &str,
    scope: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", client),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "st-1"),
    ];
    params.extend_from_slice(extra);
    let (res, _) = agent
        .authorize(
            &s.issuer,
            &authorize_url(&s.issuer, &params),
            "alice@example.com",
            PASSWORD,
            "allow",
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    res.location_param("code")
        .unwrap_or_else(|| panic!("no code in {:?}", res.location))
}

async fn public_client_with_pkce_and_oidc(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let agent = Agent::new();
    let (verifier, challenge) = pkce();
    let url = authorize_url(
        &s.issuer,
        &[
            ("response_type", "code"),
            ("client_id", &s.spa),
            ("redirect_uri", REDIRECT),
            ("scope", "openid email"),
            ("state", "state-123"),
            ("nonce", "nonce-456"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    let (res, seen) = agent
        .authorize(&s.issuer, &url, "ALICE@example.com", PASSWORD, "allow")
        .await;
    assert_eq!(seen, ["login", "consent"]);
    assert_eq!(res.status, 303);
    let location = res.location.clone().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(res.location_param("state").as_deref(), Some("state-123"));
    assert_eq!(
        res.location_param("iss").as_deref(),
        Some(s.issuer.as_str()),
        "RFC 9207 iss"
    );
    let code = res.location_param("code").unwrap();

    let (status, body) = token(
        &server,
        &s.issuer,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &s.spa),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "email openid");
    let access = body["access_token"].as_str().unwrap();
    let at = verify(&server, &s.issuer, access, &s.issuer).await;
    assert_eq!(at["sub"], s.user_id.as_str());
    assert_eq!(at["client_id"], s.spa.as_str());
    assert!(at["auth_time"].is_i64());
    let id = verify(
        &server,
        &s.issuer,
        body["id_token"].as_str().unwrap(),
        &s.spa,
    )
    .await;
    assert_eq!(id["sub"], s.user_id.as_str());
    assert_eq!(id["nonce"], "nonce-456");
    assert_eq!(id["azp"], s.spa.as_str());
    assert_eq!(id["amr"], json!(["pwd"]));
    assert_eq!(id["at_hash"], at_hash(access).as_str());
    assert_eq!(id["auth_time"], at["auth_time"]);
    // OpenID Connect `sid`: the login session's public id (not its cookie).
    let sid = id["sid"].as_str().expect("ID token carries sid");
    assert!(sid.len() >= 16, "{sid}");
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();

    // UserInfo: claims by scope (email, not profile or phone).
    let info: Value = server
        .http
        .get(format!("{}/userinfo", s.issuer))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info,
        json!({"sub": s.user_id, "email": "alice@example.com", "email_verified": true})
    );

    // Refresh rotates; the new ID token keeps auth_time and has no nonce.
    let (status, body) = token(
        &server,
        &s.issuer,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &s.spa),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rotated = body["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, refresh);
    let id2 = verify(
        &server,
        &s.issuer,
        body["id_token"].as_str().unwrap(),
        &s.spa,
    )
    .await;
    assert_eq!(id2["auth_time"], id["auth_time"]);
    assert!(id2.get("nonce").is_none());

    // A public client cannot introspect, and discovery does not say it can; it can revoke
    // its own tokens (RFC 7009 §5), and discovery says so.
    let res = server
        .http
        .post(format!("{}/oauth2/introspect", s.issuer))
        .form(&[("token", access), ("client_id", s.spa.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client", "{body}");
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
        let listed = |name: &str| {
            d[name]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert!(
            !listed("introspection_endpoint_auth_methods_supported").contains(&"none".into()),
            "{doc}: {d}"
        );
        assert!(listed("introspection_endpoint_auth_methods_supported")
            .contains(&"client_secret_basic".into()));
        assert!(listed("revocation_endpoint_auth_methods_supported").contains(&"none".into()));
        assert!(listed("token_endpoint_auth_methods_supported").contains(&"none".into()));
    }
    let res = server
        .http
        .post(format!("{}/oauth2/revoke", s.issuer))
        .form(&[("token", rotated), ("client_id", s.spa.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200, "a public client revokes");
    let (status, body) = token(
        &server,
        &s.issuer,
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rotated),
            ("client_id", &s.spa),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "revoked by the public client: {body}"
    );
}

async fn consent_is_remembered_and_prompts_are_honoured(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let agent = Agent::new();
    let web = s.web.0.as_str();
    let base = [
        ("response_type", "code"),
        ("client_id", web),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile"),
        ("state", "s"),
    ];
    let run = |extra: Vec<(&'static str, &'static str)>| {
        let mut p = base.to_vec();
        p.extend(extra);
        authorize_url(&s.issuer, &p)
    };
    let (res, seen) = agent
        .authorize(
            &s.issuer,
            &run(vec![]),
            "alice@example.com",
            PASSWORD,
            "allow",
        )
        .await;
    assert_eq!(
        (res.status, seen.as_slice()),
        (303, &["login".to_owned(), "consent".to_owned()][..])
    );
    // Session and consent: straight back.
    let (res, seen) = agent
        .authorize(
            &s.issuer,
            &run(vec![]),
            "alice@example.com",
            PASSWORD,
            "allow",
        )
        .await;
    assert!(
        seen.is_empty() && res.location_param("code").is_some(),
        "{seen:?}"
    );
    // prompt=none works with both.
    let (res, seen) = agent
        .authorize(&s.issuer, &run(vec![("prompt", "none")]), "", "", "allow")
        .await;
    assert!(seen.is_empty() && res.location_param("code").is_some());
    // A wider scope asks again; prompt=none then says consent_required.
    let mut wider = base.to_vec();
    wider[3] = ("scope", "openid profile email");
    wider.push(("prompt", "none"));
    let (res, _) = agent
        .authorize(
            &s.issuer,
            &authorize_url(&s.issuer, &wider),
            "",
            "",
            "allow",
        )
        .await;
    assert_eq!(
        res.location_param("error").as_deref(),
        Some("consent_required")
    );
    assert_eq!(res.location_param("state").as_deref(), Some("s"));
    // prompt=consent and prompt=login force their page; max_age=0 forces a login.
    let (_, seen) = agent
        .authorize(
            &s.issuer,
            &run(vec![("prompt", "consent")]),
            "alice@example.com",
            PASSWORD,
            "allow",
        )
        .await;
    assert_eq!(seen, ["consent"]);
    let (_, seen) = agent
        .authorize(
            &s.issuer,
            &run(vec![("prompt", "login")]),
            "alice@example.com",
            PASSWORD,
            "allow",
        )
        .await;
    assert_eq!(seen, ["login"]);
    let (_, seen) = agent
        .authorize(
            &s.issuer,
            &run(vec![("max_age", "0")]),
            "alice@example.com",
            PASSWORD,
            "allow",
        )
        .await;
    assert_eq!(seen, ["login"]);

    // The admin API lists the consent and can withdraw it: the next authorization asks again.
    let path = format!(
        "/admin/tenants/{}/servers/main/users/{}/consents",
        s.tid, s.user_id
    );
    let (st, list) = server.admin_call(reqwest::Method::GET, &path, None).await;
    assert_eq!(st, 200);
    assert_eq!(list["items"][0]["client_id"], web);
    assert_eq!(list["items"][0]["scope"], "openid profile");
    let (st, _) = server
        .admin_call(reqwest::Method::DELETE, &format!("{path}/{web}"), None)
        .await;
    assert_eq!(st, 204);
    let (_, seen) = agent
        .authorize(
            &s.issuer,
            &run(vec![]),
            "alice@example.com",
            PASSWORD,
            "allow",
        )
        .await;
    assert_eq!(seen, ["consent"]);
    let (st, _) = server
        .admin_call(reqwest::Method::DELETE, &format!("{path}/{web}"), None)
        .await;
    assert_eq!(st, 204, "consent was given again");
    let (st, _) = server
        .admin_call(reqwest::Method::DELETE, &format!("{path}/{web}"), None)
        .await;
    assert_eq!(st, 404);
}

async fn confidential_exchange_refresh_and_reuse(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let agent = Agent::new();
    let web = (s.web.0.as_str(), s.web.1.as_str());
    let code = code_for(&agent, &s, web.0, "openid profile email orders:read", &[]).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
    ];
    let (status, first) = token(&server, &s.issuer, Some(web), &form).await;
    assert_eq!(status, 200, "{first}");
    let access = first["access_token"].as_str().unwrap().to_owned();
    let refresh = first["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        introspect(&server, &s.issuer, &s.web, &access).await["active"],
        true
    );
    let rt = introspect(&server, &s.issuer, &s.web, &refresh).await;
    assert_eq!(
        (rt["active"].clone(), rt["sub"].clone()),
        (json!(true), json!(s.user_id))
    );

    // Code reuse: refused, and what the first exchange issued is revoked.
    let (status, body) = token(&server, &s.issuer, Some(web), &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        introspect(&server, &s.issuer, &s.web, &access).await,
        json!({"active": false})
    );
    let (status, body) = token(
        &server,
        &s.issuer,
        Some(web),
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let res = server
        .http
        .get(format!("{}/userinfo", s.issuer))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);

    // Refresh rotation and reuse of a rotated token (RFC 9700 §4.14).
    let code = code_for(&agent, &s, web.0, "openid profile", &[]).await;
    let (_, body) = token(
        &server,
        &s.issuer,
        Some(web),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    let r1 = body["refresh_token"].as_str().unwrap().to_owned();
    // Narrowing the scope (§6) is allowed; widening is invalid_scope.
    let (status, body) = token(
        &server,
        &s.issuer,
        Some(web),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r1),
            ("scope", "openid profile email"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, body) = token(
        &server,
        &s.issuer,
        Some(web),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r1),
            ("scope", "profile"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "profile");
    assert!(body.get("id_token").is_none(), "no openid, no ID token");
    let r2 = body["refresh_token"].as_str().unwrap().to_owned();
    let a2 = body["access_token"].as_str().unwrap().to_owned();
    let (status, body) = token(
        &server,
        &s.issuer,
        Some(web),
        &[("grant_type", "refresh_token"), ("refresh_token", &r1)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "reuse of a rotated token"
    );
    // ...revoked the whole family: the newest token and its access token too.
    let (status, _) = token(
        &server,
        &s.issuer,
        Some(web),
        &[("grant_type", "refresh_token"), ("refresh_token", &r2)],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        introspect(&server, &s.issuer, &s.web, &a2).await["active"],
        false
    );

    // Revocation (RFC 7009) of a refresh token revokes its grant.
    let code = code_for(&agent, &s, web.0, "openid", &[]).await;
    let (_, body) = token(
        &server,
        &s.issuer,
        Some(web),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    let (r, a) = (
        body["refresh_token"].as_str().unwrap().to_owned(),
        body["access_token"].as_str().unwrap().to_owned(),
    );
    let res = server
        .http
        .post(format!("{}/oauth2/revoke", s.issuer))
        .header("Authorization", basic(web.0, web.1))
        .form(&[("token", r.as_str()), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        introspect(&server, &s.issuer, &s.web, &r).await["active"],
        false
    );
    assert_eq!(
        introspect(&server, &s.issuer, &s.web, &a).await["active"],
        false
    );
}

/// ID tokens are RS256 unless the client registered another algorithm the server signs with
/// (OpenID Connect Dynamic Client Registration §2), whatever the server's `signing_alg`;
/// access tokens keep the server's. PS256 uses the server's RSA key, published under its own
/// `kid` with `alg: PS256`; an algorithm the server cannot sign with is refused at
/// registration, and a `signing_alg` change that would strand a client's algorithm is refused.
async fn id_token_algorithms(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let agent = Agent::new();
    let clients = format!("/admin/tenants/{}/servers/main/clients", s.tid);
    let register = |alg: Option<&str>| {
        let mut body = json!({
            "grant_types": ["authorization_code"],
            "redirect_uris": [REDIRECT],
            "scope": "openid",
        });
        if let Some(alg) = alg {
            body["id_token_signed_response_alg"] = json!(alg);
        }
        body
    };
    let jwks: Value = server
        .http
        .get(format!("{}/.well-known/jwks.json", s.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published = |kid: &str| {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid)
            .cloned()
            .unwrap_or_else(|| panic!("kid {kid} not in {jwks}"))
    };
    for (alg, expected) in [
        (None, jsonwebtoken::Algorithm::RS256),
        (Some("RS256"), jsonwebtoken::Algorithm::RS256),
        (Some("PS256"), jsonwebtoken::Algorithm::PS256),
        (Some("ES256"), jsonwebtoken::Algorithm::ES256),
    ] {
        let (id, secret) = server.client(&s.tid, "main", register(alg)).await;
        let code = code_for(&agent, &s, &id, "openid", &[]).await;
        let (status, body) = token(
            &server,
            &s.issuer,
            Some((&id, &secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
            ],
        )
        .await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        let access = body["access_token"].as_str().unwrap();
        assert_eq!(
            decode_header(access).unwrap().alg,
            jsonwebtoken::Algorithm::ES256,
            "access tokens keep the server's signing_alg"
        );
        let id_token = body["id_token"].as_str().unwrap();
        let header = decode_header(id_token).unwrap();
        assert_eq!(header.alg, expected, "{alg:?}");
        // The key it names is published for that algorithm (libraries such as Nimbus use a
        // JWK only for the `alg` it names).
        let jwk = published(header.kid.as_deref().unwrap());
        assert_eq!(jwk["alg"], format!("{expected:?}"), "{jwk}");
        let claims = verify(&server, &s.issuer, id_token, &id).await;
        assert_eq!(claims["sub"], s.user_id.as_str());
        if expected == jsonwebtoken::Algorithm::PS256 {
            // The RSA key of the RS256 key, under its own kid.
            let rs256 = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .find(|k| k["alg"] == "RS256")
                .unwrap();
            assert_eq!((&jwk["n"], &jwk["e"]), (&rs256["n"], &rs256["e"]));
            assert_ne!(jwk["kid"], rs256["kid"]);
        }
    }

    // Registration refuses an algorithm the server does not sign ID tokens with.
    let (status, body) = server.admin_post(&clients, &register(Some("EdDSA"))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("id_token_signed_response_alg"),
        "{body}"
    );
    let (status, _) = server.admin_post(&clients, &register(Some("HS256"))).await;
    assert_eq!(status, 400);

    // Discovery says the same.
    let d: Value = server
        .http
        .get(format!("{}/.well-known/openid-configuration", s.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        json!(["RS256", "PS256", "ES256"])
    );

    // The ES256 client would be stranded by a move to EdDSA: refused, naming the field.
    let path = format!("/admin/tenants/{}/servers/main", s.tid);
    let (status, body) = server
        .admin_call(
            reqwest::Method::PATCH,
            &path,
            Some(&json!({"signing_alg": "EdDSA"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("signing_alg"),
        "{body}"
    );
    // An RS256 server signs ID tokens with RS256 and PS256 only: a move to RS256 strands it too.
    let (status, _) = server
        .admin_call(
            reqwest::Method::PATCH,
            &path,
            Some(&json!({"signing_alg": "RS256"})),
        )
        .await;
    assert_eq!(status, 400);
}

/// One failure of the flow: the response status and error the issue asks for.
async fn failures(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let agent = Agent::new();
    let web = (s.web.0.as_str(), s.web.1.as_str());

    // PKCE verifier mismatch; and a verifier without a challenge (downgrade).
    let (_, challenge) = pkce();
    let code = code_for(
        &agent,
        &s,
        &s.spa,
        "openid",
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    let (wrong, _) = pkce();
    let (status, body) = token(
        &server,
        &s.issuer,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &s.spa),
            ("code_verifier", &wrong),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "PKCE mismatch: {body}"
    );
    let code = code_for(&agent, &s, web.0, "openid", &[]).await;
    let (status, body) = token(
        &server,
        &s.issuer,
        Some(web),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &wrong),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "PKCE downgrade: {body}"
    );

    // redirect_uri mismatch at the token endpoint.
    let code = code_for(&agent, &s, web.0, "openid", &[]).await;
    let (status, body) = token(
        &server,
        &s.issuer,
        Some(web),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://app.example/other"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let code = code_for(&agent, &s, web.0, "openid", &[]).await;
    let (status, body) = token(
        &server,
        &s.issuer,
        Some(web),
        &[("grant_type", "authorization_code"), ("code", &code)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "missing redirect_uri"
    );

    // Another client of the same server presents the code; then a client of another tenant.
    let code = code_for(&agent, &s, web.0, "openid", &[]).await;
    let (status, body) = token(
        &server,
        &s.issuer,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &s.spa),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let other = setup(&server).await;
    let code = code_for(&agent, &s, web.0, "openid", &[]).await;
    let (status, body) = token(
        &server,
        &other.issuer,
        Some((&other.web.0, &other.web.1)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "another tenant's client: {body}"
    );
    // ...and this tenant's client with the other tenant's credentials is unknown here.
    let (status, body) = token(
        &server,
        &s.issuer,
        Some((&other.web.0, &other.web.1)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // redirect_uri mismatch at authorize: an error page, never a redirect.
    let res = agent
        .get(&authorize_url(
            &s.issuer,
            &[
                ("response_type", "code"),
                ("client_id", web.0),
                ("redirect_uri", "https://evil.example/cb"),
            ],
        ))
        .await;
    assert_eq!((res.status, res.location.is_none()), (400, true));
    assert!(res.body.contains("not registered"), "{}", res.body);

    // Consent denied: access_denied with state and iss.
    let fresh = Agent::new();
    let url = authorize_url(
        &s.issuer,
        &[
            ("response_type", "code"),
            ("client_id", web.0),
            ("redirect_uri", REDIRECT),
            ("scope", "openid email"),
            ("state", "deny-me"),
        ],
    );
    let (res, seen) = fresh
        .authorize(&s.issuer, &url, "alice@example.com", PASSWORD, "deny")
        .await;
    assert_eq!(seen, ["login", "consent"]);
    assert_eq!(
        res.location_param("error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(res.location_param("state").as_deref(), Some("deny-me"));
    assert_eq!(
        res.location_param("iss").as_deref(),
        Some(s.issuer.as_str())
    );

    // prompt=none without a session.
    let res = Agent::new()
        .get(&authorize_url(
            &s.issuer,
            &[
                ("response_type", "code"),
                ("client_id", web.0),
                ("redirect_uri", REDIRECT),
                ("prompt", "none"),
                ("state", "x"),
            ],
        ))
        .await;
    assert_eq!(
        res.location_param("error").as_deref(),
        Some("login_required")
    );

    // Wrong password: the login page again, no session.
    let browser = Agent::new();
    let res = browser.get(&url).await;
    let page = browser.get(res.location.as_deref().unwrap()).await;
    let again = browser
        .submit_login(&s.issuer, &page, "alice@example.com", "not the password")
        .await;
    assert_eq!(again.status, 200);
    assert!(again.body.contains("Wrong username or password"));
    assert!(!browser.has_cookie("tollgate_session"));
    // Unknown user: the same answer.
    let again = browser
        .submit_login(&s.issuer, &page, "mallory", "whatever123")
        .await;
    assert!(again.body.contains("Wrong username or password"));

    // CSRF token missing or wrong: refused.
    let req = hidden(&page.body, "req").unwrap();
    for csrf in [None, Some("forged")] {
        let mut form = vec![
            ("req", req.as_str()),
            ("username", "alice@example.com"),
            ("password", PASSWORD),
        ];
        if let Some(c) = csrf {
            form.push(("csrf", c));
        }
        let res = browser
            .post_form(&format!("{}/login", s.issuer), &form)
            .await;
        assert_eq!(res.status, 403, "csrf {csrf:?}: {}", res.body);
        assert!(!browser.has_cookie("tollgate_session"));
    }
    // The form from another browser (no binding cookie) is refused too.
    let csrf = hidden(&page.body, "csrf").unwrap();
    let res = Agent::new()
        .post_form(
            &format!("{}/login", s.issuer),
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("username", "alice@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(res.status, 400);

    // Expired code: a server whose codes live one second.
    // A second process on the same database: its own admin token (SQLite printed its
    // generated one only to the first).
    let short = Server::start_with_env(
        backend,
        &["--code-ttl", "1"],
        &[("TOLLGATE_ADMIN_TOKEN", "second-process-admin-token")],
    )
    .await;
    let issuer = format!("{}/{}/main", short.gateway, s.tid);
    let short_setup = Setup {
        issuer,
        tid: s.tid.clone(),
        web: s.web.clone(),
        spa: s.spa.clone(),
        user_id: s.user_id.clone(),
    };
    let code = code_for(&Agent::new(), &short_setup, web.0, "openid", &[]).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = token(
        &short,
        &short_setup.issuer,
        Some(web),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "expired code: {body}"
    );
}

/// Authorization requests that are refused: shown as a page when the client or its
/// redirect URI cannot be trusted, sent back to the client otherwise.
async fn authorize_request_errors(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let agent = Agent::new();
    let web = s.web.0.as_str();
    let spa = s.spa.as_str();
    let (_, challenge) = pkce();
    let pages: &[(&str, Vec<(&str, &str)>)] = &[
        (
            "no client_id",
            vec![("response_type", "code"), ("redirect_uri", REDIRECT)],
        ),
        (
            "unknown client",
            vec![
                ("response_type", "code"),
                ("client_id", "nobody"),
                ("redirect_uri", REDIRECT),
            ],
        ),
        (
            "malformed client",
            vec![
                ("response_type", "code"),
                ("client_id", "a b"),
                ("redirect_uri", REDIRECT),
            ],
        ),
        (
            "no redirect_uri",
            vec![("response_type", "code"), ("client_id", web)],
        ),
        (
            "unregistered redirect_uri",
            vec![
                ("response_type", "code"),
                ("client_id", web),
                ("redirect_uri", "https://app.example/callback/"),
            ],
        ),
        (
            "repeated redirect_uri",
            vec![
                ("response_type", "code"),
                ("client_id", web),
                ("redirect_uri", REDIRECT),
                ("redirect_uri", REDIRECT),
            ],
        ),
    ];
    for (name, params) in pages {
        let res = agent.get(&authorize_url(&s.issuer, params)).await;
        assert_eq!((res.status, res.location.as_deref()), (400, None), "{name}");
        assert!(
            res.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{name}"
        );
        assert!(
            res.headers.contains_key("content-security-policy"),
            "{name}"
        );
    }
    struct Row {
        name: &'static str,
        params: Vec<(&'static str, String)>,
        error: &'static str,
    }
    let row = |name, client: &str, extra: &[(&'static str, &str)], error| {
        let mut params = vec![
            ("client_id", client.to_owned()),
            ("redirect_uri", REDIRECT.to_owned()),
            ("state", "st".to_owned()),
        ];
        params.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        Row {
            name,
            params,
            error,
        }
    };
    let code = ("response_type", "code");
    let rows = [
        row("no response_type", web, &[], "invalid_request"),
        row(
            "implicit",
            web,
            &[("response_type", "token")],
            "unsupported_response_type",
        ),
        row(
            "scope not registered",
            web,
            &[code, ("scope", "openid admin")],
            "invalid_scope",
        ),
        row(
            "public client without PKCE",
            spa,
            &[code],
            "invalid_request",
        ),
        row(
            "plain PKCE",
            spa,
            &[
                code,
                ("code_challenge", &challenge),
                ("code_challenge_method", "plain"),
            ],
            "invalid_request",
        ),
        row(
            "PKCE method without challenge",
            web,
            &[code, ("code_challenge_method", "S256")],
            "invalid_request",
        ),
        row(
            "short challenge",
            web,
            &[
                code,
                ("code_challenge", "abc"),
                ("code_challenge_method", "S256"),
            ],
            "invalid_request",
        ),
        row(
            "prompt none with login",
            web,
            &[code, ("prompt", "none login")],
            "invalid_request",
        ),
        row(
            "unknown prompt",
            web,
            &[code, ("prompt", "create")],
            "invalid_request",
        ),
        row(
            "bad max_age",
            web,
            &[code, ("max_age", "-1")],
            "invalid_request",
        ),
        row(
            "repeated scope",
            web,
            &[code, ("scope", "openid"), ("scope", "email")],
            "invalid_request",
        ),
        // Request objects, request_uri and the other response modes: tests/par.rs.
        row(
            "unknown response_mode",
            web,
            &[code, ("response_mode", "web_message")],
            "invalid_request",
        ),
    ];
    for r in &rows {
        let params: Vec<(&str, &str)> = r.params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = agent.get(&authorize_url(&s.issuer, &params)).await;
        let name = r.name;
        assert_eq!(res.status, 303, "{name}: {}", res.body);
        assert!(
            res.location.as_deref().unwrap().starts_with(REDIRECT),
            "{name}"
        );
        assert_eq!(
            res.location_param("error").as_deref(),
            Some(r.error),
            "{name}"
        );
        assert_eq!(res.location_param("state").as_deref(), Some("st"), "{name}");
        assert_eq!(
            res.location_param("iss").as_deref(),
            Some(s.issuer.as_str()),
            "{name}"
        );
    }
    let base = [
        ("client_id", web),
        ("redirect_uri", REDIRECT),
        ("state", "st"),
    ];
    // The server setting requires PKCE of confidential clients too.
    let (st, _) = server
        .admin_call(
            reqwest::Method::PATCH,
            &format!("/admin/tenants/{}/servers/main", s.tid),
            Some(&json!({"require_pkce": true})),
        )
        .await;
    assert_eq!(st, 200);
    let res = agent
        .get(&authorize_url(&s.issuer, &[&base[..], &[code]].concat()))
        .await;
    assert_eq!(
        res.location_param("error").as_deref(),
        Some("invalid_request")
    );
    // POST /oauth2/authorize takes the same parameters as a form.
    let res = agent
        .post_form(
            &format!("{}/oauth2/authorize", s.issuer),
            &[
                &base[..],
                &[
                    code,
                    ("code_challenge", &challenge),
                    ("code_challenge_method", "S256"),
                ],
            ]
            .concat(),
        )
        .await;
    assert_eq!(res.status, 303);
    assert!(res
        .location
        .unwrap()
        .starts_with(&format!("{}/login?req=", s.issuer)));
    // Other methods are 405.
    let res = server
        .http
        .put(format!("{}/oauth2/authorize", s.issuer))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
}

async fn login_lockout(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let agent = Agent::new();
    let url = authorize_url(
        &s.issuer,
        &[
            ("response_type", "code"),
            ("client_id", &s.web.0),
            ("redirect_uri", REDIRECT),
        ],
    );
    let res = agent.get(&url).await;
    let page = agent.get(res.location.as_deref().unwrap()).await;
    for _ in 0..5 {
        let res = agent
            .submit_login(&s.issuer, &page, "alice@example.com", "wrong password")
            .await;
        assert_eq!(res.status, 200);
    }
    // Locked out now, even with the right password.
    let res = agent
        .submit_login(&s.issuer, &page, "ALICE@example.com", PASSWORD)
        .await;
    assert_eq!(res.status, 429, "{}", res.body);
    let retry: u64 = res.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(!agent.has_cookie("tollgate_session"));
    let metrics = server
        .http
        .get(format!("{}/metrics", server.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "tollgate_logins_total{result=\"wrong_password\"} 5",
        "tollgate_logins_total{result=\"locked_out\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

/// The authorize and login endpoints are rate limited per client and per address, like the
/// token endpoint: a page with `429` and `Retry-After`.
async fn authorize_and_login_are_rate_limited(backend: &Backend) {
    let server = Server::start_with(
        backend,
        &[
            "--rate-limit-address-per-second",
            "1",
            "--rate-limit-address-burst",
            "4",
        ],
    )
    .await;
    let s = setup(&server).await;
    let agent = Agent::new();
    let url = authorize_url(
        &s.issuer,
        &[
            ("response_type", "code"),
            ("client_id", &s.web.0),
            ("redirect_uri", REDIRECT),
        ],
    );
    let first = agent.get(&url).await;
    assert_eq!(first.status, 303);
    let page = agent.get(first.location.as_deref().unwrap()).await;
    let mut limited = None;
    for _ in 0..6 {
        let res = agent
            .submit_login(&s.issuer, &page, "alice@example.com", "wrong password")
            .await;
        if res.status == 429 {
            limited = Some(res);
            break;
        }
    }
    let res = limited.expect("the login form is rate limited");
    assert!(res.headers.contains_key("retry-after"));
    let mut limited = None;
    for _ in 0..6 {
        let res = agent.get(&url).await;
        if res.status == 429 {
            limited = Some(res);
            break;
        }
    }
    let res = limited.expect("authorize is rate limited");
    assert!(res.headers.contains_key("retry-after"));
    assert!(res.body.contains("Too many requests"), "{}", res.body);
}

async fn users_admin_api(backend: &Backend) {
    let server = Server::start(backend).await;
    let tid = support::unique("us");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let base = format!("/admin/tenants/{tid}/servers/main/users");
    let (st, created) = server
        .admin_post(
            &base,
            &json!({"username": "Bob", "password": "s3cret-pass", "claims": {"name": "Bob"}}),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(created["username"], "bob");
    assert!(created.get("password").is_none() && created.get("password_hash").is_none());
    assert!(!created.to_string().contains("s3cret-pass"));
    let id = created["id"].as_str().unwrap();
    let rows: &[(&str, Value, u16, &str)] = &[
        (
            "taken (case-insensitive)",
            json!({"username": "BOB", "password": "another-pass"}),
            409,
            "username",
        ),
        (
            "short password",
            json!({"username": "carol", "password": "short"}),
            400,
            "password",
        ),
        (
            "unknown field",
            json!({"username": "carol", "password": "long-enough", "role": "admin"}),
            400,
            "role",
        ),
        (
            "non-standard claim",
            json!({"username": "carol", "password": "long-enough", "claims": {"groups": ["x"]}}),
            400,
            "claims",
        ),
        (
            "password of another type",
            json!({"username": "carol", "password": 12_345_678}),
            400,
            "password",
        ),
        (
            "empty username",
            json!({"username": "", "password": "long-enough"}),
            400,
            "username",
        ),
    ];
    for (name, body, status, mentions) in rows {
        let (st, b) = server.admin_post(&base, body).await;
        assert_eq!(st, *status, "{name}: {b}");
        assert!(
            b["error_description"].as_str().unwrap().contains(mentions),
            "{name}: {b}"
        );
        assert!(
            !b.to_string().contains("12345678"),
            "{name}: a password is never echoed"
        );
    }
    let (st, list) = server.admin_call(reqwest::Method::GET, &base, None).await;
    assert_eq!((st, list["items"].as_array().unwrap().len()), (200, 1));
    let (st, got) = server
        .admin_call(reqwest::Method::GET, &format!("{base}/{id}"), None)
        .await;
    assert_eq!((st, got["claims"]["name"].as_str()), (200, Some("Bob")));
    let (st, patched) = server
        .admin_call(
            reqwest::Method::PATCH,
            &format!("{base}/{id}"),
            Some(&json!({"claims": {"email": "bob@example.com"}, "password": "new-password"})),
        )
        .await;
    assert_eq!(
        (st, patched["claims"]["email"].as_str()),
        (200, Some("bob@example.com"))
    );
    let (st, _) = server
        .admin_call(reqwest::Method::DELETE, &format!("{base}/{id}"), None)
        .await;
    assert_eq!(st, 204);
    let (st, _) = server
        .admin_call(reqwest::Method::GET, &format!("{base}/{id}"), None)
        .await;
    assert_eq!(st, 404);
    let (st, _) = server
        .admin_call(
            reqwest::Method::GET,
            &format!("/admin/tenants/{tid}/servers/nope/users"),
            None,
        )
        .await;
    assert_eq!(st, 404);
}

/// RFC 9068 §2.2: a client_credentials token's `sub` is the client id, so no client of a
/// server may take the id (the `sub`) of one of its users. User ids are generated, so the
/// only way to collide is an admin-chosen `client_id`: refused with 409 naming the field.
async fn client_ids_never_equal_a_users_sub(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let agent = Agent::new();
    let (verifier, challenge) = pkce();
    let code = code_for(
        &agent,
        &s,
        &s.spa,
        "openid",
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    let (status, body) = token(
        &server,
        &s.issuer,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &s.spa),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let user_sub = verify(
        &server,
        &s.issuer,
        body["id_token"].as_str().unwrap(),
        &s.spa,
    )
    .await["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(user_sub, s.user_id, "a user's `sub` is its id");

    let clients = format!("/admin/tenants/{}/servers/main/clients", s.tid);
    let (status, body) = server
        .admin_post(
            &clients,
            &json!({"client_id": user_sub, "grant_types": ["client_credentials"]}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"], "conflict");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("client_id"),
        "{body}"
    );
    // Nothing was created: no client_credentials token can carry the user's `sub`.
    let (status, _) = server
        .admin_call(reqwest::Method::GET, &format!("{clients}/{user_sub}"), None)
        .await;
    assert_eq!(status, 404);
    // On another server of the tenant the id is free: `sub`s are per issuer.
    let (status, body) = server
        .admin_post(
            &format!("/admin/tenants/{}/servers", s.tid),
            &json!({"id": "other", "name": "Other"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .admin_post(
            &format!("/admin/tenants/{}/servers/other/clients", s.tid),
            &json!({"client_id": user_sub, "grant_types": ["client_credentials"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // A chosen id that is no user's is fine; the client_credentials `sub` is that id.
    let (status, body) = server
        .admin_post(
            &clients,
            &json!({"client_id": "billing-service", "grant_types": ["client_credentials"]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let secret = body["client_secret"].as_str().unwrap().to_owned();
    let (status, body) = token(
        &server,
        &s.issuer,
        Some(("billing-service", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let claims = verify(
        &server,
        &s.issuer,
        body["access_token"].as_str().unwrap(),
        &s.issuer,
    )
    .await;
    assert_eq!(claims["sub"], "billing-service");
}

/// Redirect URIs (RFC 8252 §7.3, RFC 9700 §4.1, OAuth 2.1 §2.3.1): the any-port loopback rule
/// only for native (public) clients; never user information or the `javascript`, `data`,
/// `vbscript`, `file` schemes; plain `http` to other hosts only while the server's
/// `allow_insecure_redirect_uris` allows it.
async fn redirect_uri_rules(backend: &Backend) {
    let server = Server::start(backend).await;
    let tid = support::unique("ru");
    let created = server.tenant_and_server(&tid, "main", json!({})).await;
    assert_eq!(
        created["allow_insecure_redirect_uris"], false,
        "off by default"
    );
    let issuer = format!("{}/{tid}/main", server.gateway);
    let clients = format!("/admin/tenants/{tid}/servers/main/clients");
    let register = |uri: &str, method: &str| json!({"grant_types": ["authorization_code"], "redirect_uris": [uri], "token_endpoint_auth_method": method});
    for bad in [
        "javascript:alert(document.cookie)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "https://user:pass@app.example/cb",
        "https://user@app.example/cb",
        "http://app.example/cb",
    ] {
        let (status, body) = server
            .admin_post(&clients, &register(bad, "client_secret_basic"))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_redirect_uri")),
            "{bad}: {body}"
        );
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("redirect_uris"),
            "{body}"
        );
    }

    // Loopback: any port for the native (public) app, the exact URI for a confidential one.
    let loopback = "http://127.0.0.1/cb";
    let (native, _) = server
        .client(&tid, "main", register(loopback, "none"))
        .await;
    let (web, _) = server
        .client(&tid, "main", register(loopback, "client_secret_basic"))
        .await;
    let (_, challenge) = pkce();
    let agent = Agent::new();
    let authorize = |client: &str, redirect: &str| {
        authorize_url(
            &issuer,
            &[
                ("response_type", "code"),
                ("client_id", client),
                ("redirect_uri", redirect),
                ("state", "st"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
    };
    let to_login = |res: &support::flow::Resp| {
        res.status == 303
            && res
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with(&format!("{issuer}/login")))
    };
    let refused = |res: &support::flow::Resp| res.status == 400 && res.location.is_none();
    for (client, redirect, accepted) in [
        (&native, loopback, true),
        (&native, "http://127.0.0.1:51234/cb", true),
        (&web, loopback, true),
        (&web, "http://127.0.0.1:51234/cb", false),
        (&native, "http://127.0.0.1:51234/other", false),
    ] {
        let res = agent.get(&authorize(client, redirect)).await;
        let ok = if accepted {
            to_login(&res)
        } else {
            refused(&res)
        };
        assert!(
            ok,
            "{client} {redirect}: {} {:?} {}",
            res.status, res.location, res.body
        );
    }

    // Plain http elsewhere only while the server allows it, at registration and at authorize.
    let server_path = format!("/admin/tenants/{tid}/servers/main");
    let set_insecure = |on: bool| {
        let server = &server;
        let path = server_path.clone();
        async move {
            let (status, body) = server
                .admin_call(
                    reqwest::Method::PATCH,
                    &path,
                    Some(&json!({"allow_insecure_redirect_uris": on})),
                )
                .await;
            assert_eq!(
                (status, &body["allow_insecure_redirect_uris"]),
                (200, &json!(on)),
                "{body}"
            );
        }
    };
    set_insecure(true).await;
    let plain = "http://dev.example/cb";
    let (dev, _) = server
        .client(&tid, "main", register(plain, "client_secret_basic"))
        .await;
    assert!(to_login(&agent.get(&authorize(&dev, plain)).await));
    for still_bad in ["javascript:alert(1)", "https://u@app.example/cb"] {
        let (status, _) = server
            .admin_post(&clients, &register(still_bad, "none"))
            .await;
        assert_eq!(status, 400, "{still_bad}, whatever the setting");
    }
    set_insecure(false).await;
    assert!(
        refused(&agent.get(&authorize(&dev, plain)).await),
        "a plain-http URI registered while allowed stops working when the setting is turned off"
    );
    let (status, body) = server
        .admin_call(
            reqwest::Method::PATCH,
            &server_path,
            Some(&json!({"allow_insecure_redirect_uris": "yes"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("allow_insecure_redirect_uris"),
        "{body}"
    );
}

async fn userinfo_errors(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let url = format!("{}/userinfo", s.issuer);
    // No token: 401 with a bare challenge.
    let res = server.http.get(&url).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    // Garbage, and another scheme.
    let res = server
        .http
        .get(&url)
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("invalid_token"));
    let res = server
        .http
        .get(&url)
        .header("Authorization", "Basic eDp5")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    // A client's own token (client_credentials) is not a user's.
    let (cc, cs) = server
        .client(
            &s.tid,
            "main",
            json!({"grant_types": ["client_credentials"], "scope": "openid"}),
        )
        .await;
    let (_, body) = token(
        &server,
        &s.issuer,
        Some((&cc, &cs)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let res = server
        .http
        .get(&url)
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    // A user's token without `openid`: 403 insufficient_scope.
    let agent = Agent::new();
    let code = code_for(&agent, &s, &s.web.0, "orders:read", &[]).await;
    let (_, body) = token(
        &server,
        &s.issuer,
        Some((&s.web.0, &s.web.1)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert!(body.get("id_token").is_none());
    let res = server
        .http
        .get(&url)
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert!(res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    // POST with the token in the body works; in both places is 400; profile claims by scope.
    let code = code_for(&agent, &s, &s.web.0, "openid profile", &[]).await;
    let (_, body) = token(
        &server,
        &s.issuer,
        Some((&s.web.0, &s.web.1)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    let at = body["access_token"].as_str().unwrap();
    let info: Value = server
        .http
        .post(&url)
        .form(&[("access_token", at)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info,
        json!({"sub": s.user_id, "name": "Alice Martin", "preferred_username": "alice@example.com"})
    );
    let res = server
        .http
        .post(&url)
        .bearer_auth(at)
        .form(&[("access_token", at)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    // Tokens of another tenant's server are not valid here.
    let other = setup(&server).await;
    let other_url = format!("{}/userinfo", other.issuer);
    let res = server
        .http
        .get(&other_url)
        .bearer_auth(at)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    // Deleting the user ends it.
    let (st, _) = server
        .admin_call(
            reqwest::Method::DELETE,
            &format!("/admin/tenants/{}/servers/main/users/{}", s.tid, s.user_id),
            None,
        )
        .await;
    assert_eq!(st, 204);
    let res = server.http.get(&url).bearer_auth(at).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
}

async fn discovery_describes_the_flow(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let d: Value = server
        .http
        .get(format!("{}/.well-known/openid-configuration", s.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        d["authorization_endpoint"],
        format!("{}/oauth2/authorize", s.issuer)
    );
    assert_eq!(d["userinfo_endpoint"], format!("{}/userinfo", s.issuer));
    assert_eq!(d["response_types_supported"], json!(["code"]));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        d["grant_types_supported"],
        json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:jwt-bearer"
        ])
    );
    assert_eq!(d["subject_types_supported"], json!(["public"]));
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    for scope in ["openid", "profile", "email"] {
        assert!(d["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(scope)));
    }
    for claim in [
        "sub",
        "name",
        "email",
        "email_verified",
        "auth_time",
        "nonce",
    ] {
        assert!(
            d["claims_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(claim)),
            "{claim}"
        );
    }
    assert!(d["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("RS256")));
    // RFC 8414 metadata has the OAuth part only.
    let m: Value = server
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            s.issuer
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(m["authorization_endpoint"], d["authorization_endpoint"]);
    assert!(m.get("userinfo_endpoint").is_none());
}

both_backends! {
    public_client_with_pkce_and_oidc => public_client_with_pkce_and_oidc;
    consent_is_remembered_and_prompts_are_honoured => consent_is_remembered_and_prompts_are_honoured;
    confidential_exchange_refresh_and_reuse => confidential_exchange_refresh_and_reuse;
    failures => failures;
    authorize_request_errors => authorize_request_errors;
    login_lockout => login_lockout;
    authorize_and_login_are_rate_limited => authorize_and_login_are_rate_limited;
    users_admin_api => users_admin_api;
    client_ids_never_equal_a_users_sub => client_ids_never_equal_a_users_sub;
    redirect_uri_rules => redirect_uri_rules;
    userinfo_errors => userinfo_errors;
    discovery_describes_the_flow => discovery_describes_the_flow;
    id_tokens_are_rs256_by_default_and_honour_the_registered_alg => id_token_algorithms;
}
