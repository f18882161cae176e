//! Every token dies with what it stands for (issue 10, items 5–7), against the real binary on
//! both backends: deleting a client or a user, or changing a user's password, ends their
//! refresh tokens and sessions at once and their access tokens through revocation
//! (introspection inactive, `/userinfo` 401); narrowing a server's authentication methods
//! stops the clients registered with one taken away; a refresh never brings back a scope the
//! client is no longer registered for; and however two exchanges of one code interleave, no
//! refresh token of that code works once the replay was seen.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

#[allow(dead_code)]
mod support;

use serde_json::{json, Value};
use support::flow::{authorize_url, user, Agent};
use support::{basic, Backend, Server};

const REDIRECT: &str = "https://app.example/callback";
const PASSWORD: &str = "correct horse battery";
const NEW_PASSWORD: &str = "tr0ub4dor & 3, but longer";

struct Setup {
    tid: String,
    issuer: String,
    user_id: String,
}

async fn setup(server: &Server) -> Setup {
    setup_with(server, json!({})).await
}

async fn setup_with(server: &Server, settings: Value) -> Setup {
    let tid = support::unique("td");
    server.tenant_and_server(&tid, "main", settings).await;
    let user_id = user(
        server,
        &tid,
        "main",
        "alice@example.com",
        PASSWORD,
        json!({"name": "Alice"}),
    )
    .await;
    Setup {
        issuer: format!("{}/{tid}/main", server.gateway),
        tid,
        user_id,
    }
}

fn web_metadata(id: &str, scope: &str) -> Value {
    json!({
        "client_id": id,
        "client_name": "Web",
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "redirect_uris": [REDIRECT],
        "scope": scope,
        "token_endpoint_auth_method": "client_secret_basic"
    })
}

async fn token(
    server: &Server,
    issuer: &str,
    auth: (&str, &str),
    form: &[(&str, &str)],
) -> (u16, Value) {
    let res = server
        .http
        .post(format!("{issuer}/oauth2/token"))
        .header("Authorization", basic(auth.0, auth.1))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn active(server: &Server, issuer: &str, auth: (&str, &str), t: &str) -> bool {
    let v: Value = server
        .http
        .post(format!("{issuer}/oauth2/introspect"))
        .header("Authorization", basic(auth.0, auth.1))
        .form(&[("token", t)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["active"] == json!(true)
}

async fn userinfo(server: &Server, issuer: &str, access: &str) -> u16 {
    server
        .http
        .get(format!("{issuer}/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn refresh(
    server: &Server,
    issuer: &str,
    auth: (&str, &str),
    rt: &str,
    scope: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    token(server, issuer, auth, &form).await
}

fn authorize(client: &str, scope: &str, issuer: &str) -> String {
    authorize_url(
        issuer,
        &[
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", "st"),
        ],
    )
}

/// A code for `client` (logging in with `password` and consenting as needed).
async fn code(agent: &Agent, s: &Setup, client: &str, scope: &str, password: &str) -> String {
    let (res, _) = agent
        .authorize(
            &s.issuer,
            &authorize(client, scope, &s.issuer),
            "alice@example.com",
            password,
            "allow",
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    res.location_param("code")
        .unwrap_or_else(|| panic!("no code in {:?}", res.location))
}

/// Access and refresh token of a fresh code exchange.
async fn tokens(
    server: &Server,
    agent: &Agent,
    s: &Setup,
    web: (&str, &str),
    scope: &str,
    password: &str,
) -> (String, String) {
    let code = code(agent, s, web.0, scope, password).await;
    let (status, body) = token(
        server,
        &s.issuer,
        web,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// Whether this browser's next `/authorize` is sent to the login page (its session ended).
async fn must_log_in(agent: &Agent, s: &Setup, client: &str) -> bool {
    let res = agent.get(&authorize(client, "openid", &s.issuer)).await;
    res.location
        .as_deref()
        .is_some_and(|l| l.starts_with(&format!("{}/login", s.issuer)))
}

fn clients_path(s: &Setup) -> String {
    format!("/admin/tenants/{}/servers/main/clients", s.tid)
}

async fn deleting_a_client_ends_its_tokens(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let (id, secret) = server
        .client(&s.tid, "main", web_metadata("web", "openid profile"))
        .await;
    let web = (id.as_str(), secret.as_str());
    let agent = Agent::new();
    let (access, rt) = tokens(&server, &agent, &s, web, "openid profile", PASSWORD).await;
    let (status, cc) = token(
        &server,
        &s.issuer,
        web,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{cc}");
    let own = cc["access_token"].as_str().unwrap().to_owned();
    assert!(active(&server, &s.issuer, web, &access).await);
    assert!(active(&server, &s.issuer, web, &own).await);
    assert_eq!(userinfo(&server, &s.issuer, &access).await, 200);

    let (status, _) = server
        .admin_call(
            reqwest::Method::DELETE,
            &format!("{}/{id}", clients_path(&s)),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(userinfo(&server, &s.issuer, &access).await, 401);

    // Registered again under the same id, the client inherits nothing of the deleted one.
    let (again, secret2) = server
        .client(&s.tid, "main", web_metadata("web", "openid profile"))
        .await;
    assert_eq!(again, id);
    let web2 = (id.as_str(), secret2.as_str());
    assert!(
        !active(&server, &s.issuer, web2, &access).await,
        "access token of the deleted client"
    );
    assert!(
        !active(&server, &s.issuer, web2, &own).await,
        "client_credentials token of the deleted client"
    );
    let (status, body) = refresh(&server, &s.issuer, web2, &rt, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    // What the new client is issued lives.
    let (status, cc) = token(
        &server,
        &s.issuer,
        web2,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{cc}");
    assert!(
        active(
            &server,
            &s.issuer,
            web2,
            cc["access_token"].as_str().unwrap()
        )
        .await
    );
}

async fn deleting_a_user_ends_their_tokens_and_sessions(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let (id, secret) = server
        .client(&s.tid, "main", web_metadata("web", "openid profile"))
        .await;
    let web = (id.as_str(), secret.as_str());
    let (code_only, code_secret) = server
        .client(
            &s.tid,
            "main",
            json!({
                "client_name": "No refresh",
                "grant_types": ["authorization_code"],
                "redirect_uris": [REDIRECT],
                "scope": "openid",
                "token_endpoint_auth_method": "client_secret_basic"
            }),
        )
        .await;
    let plain = (code_only.as_str(), code_secret.as_str());
    let agent = Agent::new();
    let (access, rt) = tokens(&server, &agent, &s, web, "openid", PASSWORD).await;
    // An access token with no refresh token beside it: nothing in the database names it.
    let c = code(&agent, &s, plain.0, "openid", PASSWORD).await;
    let (status, body) = token(
        &server,
        &s.issuer,
        plain,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let lone = body["access_token"].as_str().unwrap().to_owned();
    assert!(active(&server, &s.issuer, plain, &lone).await);
    assert!(!must_log_in(&agent, &s, web.0).await, "the session is live");

    let (status, _) = server
        .admin_call(
            reqwest::Method::DELETE,
            &format!("/admin/tenants/{}/servers/main/users/{}", s.tid, s.user_id),
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert!(!active(&server, &s.issuer, web, &access).await);
    assert!(!active(&server, &s.issuer, plain, &lone).await);
    assert_eq!(userinfo(&server, &s.issuer, &access).await, 401);
    assert_eq!(userinfo(&server, &s.issuer, &lone).await, 401);
    let (status, body) = refresh(&server, &s.issuer, web, &rt, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert!(
        must_log_in(&agent, &s, web.0).await,
        "the session ended with the user"
    );
}

async fn changing_a_password_ends_tokens_and_sessions(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let (id, secret) = server
        .client(&s.tid, "main", web_metadata("web", "openid profile"))
        .await;
    let web = (id.as_str(), secret.as_str());
    let agent = Agent::new();
    let (access, rt) = tokens(&server, &agent, &s, web, "openid", PASSWORD).await;
    // A code issued before the change, exchanged after it.
    let pending_code = code(&agent, &s, web.0, "openid", PASSWORD).await;
    assert!(active(&server, &s.issuer, web, &access).await);
    let user_path = format!("/admin/tenants/{}/servers/main/users/{}", s.tid, s.user_id);

    // A bad password changes nothing and revokes nothing.
    let (status, body) = server
        .admin_call(
            reqwest::Method::PATCH,
            &user_path,
            Some(&json!({"password": "short"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(active(&server, &s.issuer, web, &access).await);

    let (status, body) = server
        .admin_call(
            reqwest::Method::PATCH,
            &user_path,
            Some(&json!({"password": NEW_PASSWORD})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("password").is_none() && body.get("password_hash").is_none());
    assert!(
        !active(&server, &s.issuer, web, &access).await,
        "access token of the old password"
    );
    assert_eq!(userinfo(&server, &s.issuer, &access).await, 401);
    let (status, body) = refresh(&server, &s.issuer, web, &rt, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    let (status, body) = token(
        &server,
        &s.issuer,
        web,
        &[
            ("grant_type", "authorization_code"),
            ("code", &pending_code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert!(
        must_log_in(&agent, &s, web.0).await,
        "the session ended with the password"
    );

    // Logging in again at once, with the new password: those tokens live.
    let (access2, rt2) = tokens(&server, &agent, &s, web, "openid", NEW_PASSWORD).await;
    assert!(active(&server, &s.issuer, web, &access2).await);
    assert_eq!(userinfo(&server, &s.issuer, &access2).await, 200);
    let (status, body) = refresh(&server, &s.issuer, web, &rt2, None).await;
    assert_eq!(status, 200, "{body}");

    // The change is in the audit trail, the password is not.
    let (status, audit) = server
        .admin_call(
            reqwest::Method::GET,
            &format!("/admin/tenants/{}/audit", s.tid),
            None,
        )
        .await;
    assert_eq!(status, 200, "{audit}");
    let text = audit.to_string();
    assert!(text.contains("password_changed"), "{text}");
    assert!(!text.contains(NEW_PASSWORD));
}

async fn narrowing_auth_methods_stops_registered_clients(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let (post_id, post_secret) = server
        .client(
            &s.tid,
            "main",
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_post", "scope": "read"}),
        )
        .await;
    let (basic_id, basic_secret) = server
        .client(
            &s.tid,
            "main",
            json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "client_secret_basic", "scope": "read"}),
        )
        .await;
    let post = |path: &'static str| {
        server
            .http
            .post(format!("{}/oauth2/{path}", s.issuer))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", post_id.as_str()),
                ("client_secret", post_secret.as_str()),
                ("token", "x"),
            ])
            .send()
    };
    assert_eq!(post("token").await.unwrap().status(), 200);
    let (status, body) = server
        .admin_call(
            reqwest::Method::PATCH,
            &format!("/admin/tenants/{}/servers/main", s.tid),
            Some(&json!({"allowed_token_endpoint_auth_methods": ["client_secret_basic"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for path in ["token", "introspect", "revoke"] {
        let res = post(path).await.unwrap();
        assert_eq!(res.status(), 401, "{path}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{path}: {body}");
    }
    let (status, body) = token(
        &server,
        &s.issuer,
        (&basic_id, &basic_secret),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "an allowed method still works: {body}");
    // Allowed again, the client works again: nothing was lost but the permission.
    let (status, _) = server
        .admin_call(
            reqwest::Method::PATCH,
            &format!("/admin/tenants/{}/servers/main", s.tid),
            Some(&json!({"allowed_token_endpoint_auth_methods": ["client_secret_basic", "client_secret_post"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(post("token").await.unwrap().status(), 200);
}

fn jwt_scope(jwt: &str) -> String {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    claims["scope"].as_str().unwrap_or_default().to_owned()
}

async fn refresh_scope_is_bounded_by_the_registration(backend: &Backend) {
    let server = Server::start(backend).await;
    let s = setup(&server).await;
    let (id, secret) = server
        .client(
            &s.tid,
            "main",
            web_metadata("web", "openid profile orders:read"),
        )
        .await;
    let web = (id.as_str(), secret.as_str());
    let agent = Agent::new();
    let (_, rt) = tokens(&server, &agent, &s, web, "openid orders:read", PASSWORD).await;
    // The client loses `orders:read`.
    let mut metadata = web_metadata("web", "openid profile");
    metadata.as_object_mut().unwrap().remove("client_id");
    let (status, body) = server
        .admin_call(
            reqwest::Method::PUT,
            &format!("{}/{id}", clients_path(&s)),
            Some(&metadata),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for asked in ["orders:read", "openid orders:read"] {
        let (status, body) = refresh(&server, &s.issuer, web, &rt, Some(asked)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_scope")),
            "{asked}: {body}"
        );
    }
    // Refused before rotating: the refresh token still works, and without `scope` the grant
    // comes back without what the client no longer holds, saying so in `scope` (§3.3).
    let (status, body) = refresh(&server, &s.issuer, web, &rt, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "openid", "{body}");
    assert_eq!(jwt_scope(body["access_token"].as_str().unwrap()), "openid");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = refresh(&server, &s.issuer, web, &rt, Some("openid")).await;
    assert_eq!(status, 200, "{body}");
    // Given back to the client, the scope is still within what the user granted.
    let (status, _) = server
        .admin_call(
            reqwest::Method::PUT,
            &format!("{}/{id}", clients_path(&s)),
            Some(&web_metadata("web", "openid profile orders:read")),
        )
        .await;
    assert_eq!(status, 200);
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = refresh(&server, &s.issuer, web, &rt, Some("profile")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "never granted by the user: {body}"
    );
}

/// Concurrent exchanges of one code in every trial: whichever runs first, once the replay is
/// seen no refresh token (nor access token) of that code works.
async fn concurrent_code_exchanges_leave_nothing_usable(backend: &Backend) {
    const TRIALS: usize = 60;
    const RACERS: usize = 8;
    // Hundreds of token requests of one client in seconds: the operator's rate limits off,
    // so that only the race decides the answers.
    let server = Server::start_with(
        backend,
        &[
            "--rate-limit-client-per-second",
            "0",
            "--rate-limit-address-per-second",
            "0",
        ],
    )
    .await;
    // RS256 signs on the blocking pool: the winner's way from taking the code to storing its
    // refresh token is longer, so the replay gets in between more often (ES256 on SQLite and
    // the in-process store rarely lets it).
    let s = setup_with(&server, json!({"signing_alg": "RS256"})).await;
    let (id, secret) = server
        .client(&s.tid, "main", web_metadata("web", "openid"))
        .await;
    let agent = Agent::new();
    let mut leaked = Vec::new();
    for trial in 0..TRIALS {
        let code = code(&agent, &s, &id, "openid", PASSWORD).await;
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let (http, url, auth, code) = (
                    server.http.clone(),
                    format!("{}/oauth2/token", s.issuer),
                    basic(&id, &secret),
                    code.clone(),
                );
                tokio::spawn(async move {
                    let res = http
                        .post(url)
                        .header("Authorization", auth)
                        .form(&[
                            ("grant_type", "authorization_code"),
                            ("code", code.as_str()),
                            ("redirect_uri", REDIRECT),
                        ])
                        .send()
                        .await
                        .unwrap();
                    let status = res.status().as_u16();
                    (status, res.json::<Value>().await.unwrap_or(Value::Null))
                })
            })
            .collect();
        let mut won = Vec::new();
        let mut refused = 0;
        for r in racers {
            let (status, body) = r.await.unwrap();
            match status {
                200 => won.push(body),
                400 => {
                    assert_eq!(body["error"], "invalid_grant", "{body}");
                    refused += 1;
                }
                other => panic!("trial {trial}: {other} {body}"),
            }
        }
        assert!(won.len() <= 1, "trial {trial}: a code was exchanged twice");
        assert!(refused >= RACERS - 1, "trial {trial}: the replay was seen");
        for body in won {
            let rt = body["refresh_token"].as_str().unwrap();
            let (status, _) = refresh(&server, &s.issuer, (&id, &secret), rt, None).await;
            if status == 200 {
                leaked.push(trial);
            }
            assert!(
                !active(
                    &server,
                    &s.issuer,
                    (&id, &secret),
                    body["access_token"].as_str().unwrap()
                )
                .await,
                "trial {trial}: the access token survived the replay"
            );
        }
    }
    assert!(
        leaked.is_empty(),
        "a refresh token survived the replay in trials {leaked:?} of {TRIALS}"
    );
}

both_backends! {
    deleting_a_client_ends_its_tokens => deleting_a_client_ends_its_tokens;
    deleting_a_user_ends_their_tokens_and_sessions => deleting_a_user_ends_their_tokens_and_sessions;
    changing_a_password_ends_tokens_and_sessions => changing_a_password_ends_tokens_and_sessions;
    narrowing_auth_methods_stops_registered_clients => narrowing_auth_methods_stops_registered_clients;
    refresh_scope_is_bounded_by_the_registration => refresh_scope_is_bounded_by_the_registration;
    concurrent_code_exchanges_leave_nothing_usable => concurrent_code_exchanges_leave_nothing_usable;
}
