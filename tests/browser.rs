//! The authorization-code flow driven by a real headless browser (Debian's chromium through
//! chromedriver, over WebDriver with fantoccini), on both backends: open the authorize URL,
//! log in, consent, land on the client's redirect URI with `code` and `state`, exchange the
//! code with the client's registered authentication method, call `/userinfo`, refresh, and
//! check the ID token with jsonwebtoken. Screenshots of the login and consent pages are kept
//! in `tests/artifacts/`.
//!
//! chromium and chromedriver come from Debian (`scripts/test` installs them). Without them
//! the test skips with a note — or fails when `TOLLGATE_REQUIRE_BACKENDS=1` (CI).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::too_many_lines)]

#[allow(dead_code)]
mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use fantoccini::{Client, ClientBuilder, Locator};
use jsonwebtoken::{decode, decode_header, jwk::JwkSet, DecodingKey, Validation};
use serde_json::{json, Value};
use support::flow::{authorize_url, pkce, query_param, user};
use support::{basic, Backend, Server};

const PASSWORD: &str = "a long browser password";

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A chromedriver process, killed on drop.
struct Driver {
    child: Child,
    url: String,
    profile: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Starts chromedriver, or `None` (with a note) when Chromium is not installed and CI does
/// not require it.
async fn driver() -> Option<(Driver, PathBuf)> {
    let (Some(chromedriver), Some(chromium)) = (which("chromedriver"), which("chromium")) else {
        assert!(
            std::env::var("TOLLGATE_REQUIRE_BACKENDS").as_deref() != Ok("1"),
            "chromium / chromedriver are missing but TOLLGATE_REQUIRE_BACKENDS=1: run scripts/test"
        );
        eprintln!("SKIPPED: chromium and chromedriver are not installed; run scripts/test");
        return None;
    };
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let profile =
        std::env::temp_dir().join(format!("tollgate-chrome-{}", uuid::Uuid::new_v4().simple()));
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        profile,
    };
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(res) = http.get(format!("{}/status", driver.url)).send().await {
            if res.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some((driver, chromium))
}

async fn browser(driver: &Driver, chromium: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1024,900",
                format!("--user-data-dir={}", driver.profile.display()),
            ]
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("WebDriver session")
}

/// The client application's redirect endpoint: a page that says it got the code.
async fn callback_app() -> (String, actix_web::dev::ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new()
            .route(
                "/callback",
                actix_web::web::get().to(|| async {
                    actix_web::HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .body("<!doctype html><title>Client</title><h1 id=\"done\">Back at the client</h1>")
                }),
            )
            // Form Post Response Mode: shows what was posted (URL-safe values only here).
            .route(
                "/callback",
                actix_web::web::post().to(|body: actix_web::web::Bytes| async move {
                    let fields: String = url::form_urlencoded::parse(&body)
                        .filter(|(_, v)| v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/".contains(&b)))
                        .map(|(k, v)| format!("<p id=\"{k}\">{v}</p>"))
                        .collect();
                    actix_web::HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .body(format!("<!doctype html><title>Client</title><h1 id=\"posted\">Posted to the client</h1>{fields}"))
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/callback"), handle)
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
}

async fn login_consent_code_tokens(backend: &Backend) {
    let Some((driver, chromium)) = driver().await else {
        return;
    };
    let server = Server::start(backend).await;
    let (redirect, app) = callback_app().await;
    let tid = support::unique("br");
    server
        .tenant_and_server(&tid, "main", json!({"brand_color": "#0b6e4f"}))
        .await;
    let issuer = format!("{}/{tid}/main", server.gateway);
    let (client_id, secret) = server
        .client(
            &tid,
            "main",
            json!({
                "client_name": "Browser Test App",
                "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": [redirect],
                "scope": "openid profile email",
                "token_endpoint_auth_method": "client_secret_basic"
            }),
        )
        .await;
    let user_id = user(
        &server,
        &tid,
        "main",
        "carol",
        PASSWORD,
        json!({"name": "Carol Chen", "email": "carol@example.com"}),
    )
    .await;
    let (verifier, challenge) = pkce();
    let url = authorize_url(
        &issuer,
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", &redirect),
            ("scope", "openid profile email"),
            ("state", "browser-state"),
            ("nonce", "browser-nonce"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );

    let c = browser(&driver, &chromium).await;
    c.goto(&url).await.unwrap();
    // The login page: labelled fields, the tenant's name.
    let username = wait_for(&c, "input#username").await;
    let html = c.source().await.unwrap();
    assert!(html.contains("<label for=\"username\">") && html.contains("<label for=\"password\">"));
    assert!(
        html.contains(&format!("Tenant {tid}")),
        "tenant name on the page"
    );
    assert!(html.contains("Browser Test App"));
    std::fs::write(
        artifacts().join(format!("login-{}.png", backend.name)),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    // A wrong password first: the page says so and keeps the username.
    username.send_keys("carol").await.unwrap();
    c.find(Locator::Css("input#password"))
        .await
        .unwrap()
        .send_keys("wrong password")
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let error = wait_for(&c, "p.error[role=alert]").await;
    assert!(error
        .text()
        .await
        .unwrap()
        .contains("Wrong username or password"));
    c.find(Locator::Css("input#password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The consent page names the client and each scope in words.
    let allow = wait_for(&c, "button[name=decision][value=allow]").await;
    let html = c.source().await.unwrap();
    for words in [
        "Browser Test App",
        "See your email address",
        "See your profile",
        "carol",
    ] {
        assert!(html.contains(words), "{words}");
    }
    std::fs::write(
        artifacts().join(format!("consent-{}.png", backend.name)),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    allow.click().await.unwrap();

    // Back at the client with code, state and iss.
    wait_for(&c, "h1#done").await;
    let landed = c.current_url().await.unwrap().to_string();
    assert!(landed.starts_with(&redirect), "{landed}");
    assert_eq!(
        query_param(&landed, "state").as_deref(),
        Some("browser-state")
    );
    assert_eq!(
        query_param(&landed, "iss").as_deref(),
        Some(issuer.as_str())
    );
    let code = query_param(&landed, "code").expect("code");

    // A second authorization in the same browser: session and consent remembered.
    c.goto(&url).await.unwrap();
    wait_for(&c, "h1#done").await;
    assert!(query_param(c.current_url().await.unwrap().as_ref(), "code").is_some());
    c.close().await.unwrap();

    // The client exchanges the code with its registered method (client_secret_basic).
    let res = server
        .http
        .post(format!("{issuer}/oauth2/token"))
        .header("Authorization", basic(&client_id, &secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let tokens: Value = res.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();

    // The ID token, checked with jsonwebtoken against the published JWKS.
    let jwks: JwkSet = server
        .http
        .get(format!("{issuer}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let header = decode_header(id_token).unwrap();
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[&issuer]);
    v.set_audience(&[&client_id]);
    let claims = decode::<Value>(
        id_token,
        &DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap(),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], user_id.as_str());
    assert_eq!(claims["nonce"], "browser-nonce");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access.as_bytes());
    assert_eq!(
        claims["at_hash"],
        URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16]).as_str()
    );

    // UserInfo, then a refresh.
    let info: Value = server
        .http
        .get(format!("{issuer}/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "carol@example.com");
    assert_eq!(info["name"], "Carol Chen");
    let res = server
        .http
        .post(format!("{issuer}/oauth2/token"))
        .header("Authorization", basic(&client_id, &secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let refreshed: Value = res.json().await.unwrap();
    assert_ne!(refreshed["refresh_token"], tokens["refresh_token"]);
    app.stop(false).await;
}

/// A pushed authorization request (RFC 9126) in the browser, then a `form_post` response
/// that the browser submits to the client by itself (the page's one script, allowed by its
/// CSP nonce).
async fn pushed_request_then_form_post(backend: &Backend) {
    let Some((driver, chromium)) = driver().await else {
        return;
    };
    let server = Server::start(backend).await;
    let (redirect, app) = callback_app().await;
    let tid = support::unique("brpar");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let issuer = format!("{}/{tid}/main", server.gateway);
    let (client_id, secret) = server
        .client(
            &tid,
            "main",
            json!({"client_name": "PAR Browser App", "grant_types": ["authorization_code"],
                   "redirect_uris": [redirect], "scope": "openid profile",
                   "token_endpoint_auth_method": "client_secret_basic"}),
        )
        .await;
    user(
        &server,
        &tid,
        "main",
        "dana",
        PASSWORD,
        json!({"name": "Dana"}),
    )
    .await;
    let exchange = |code: String, verifier: String| {
        let (server, issuer, client_id, secret, redirect) =
            (&server, &issuer, &client_id, &secret, &redirect);
        async move {
            let res = server
                .http
                .post(format!("{issuer}/oauth2/token"))
                .header("Authorization", basic(client_id, secret))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect.as_str()),
                    ("code_verifier", verifier.as_str()),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status().as_u16(), 200);
        }
    };

    // The client pushes the request; the browser carries only client_id and request_uri.
    let (verifier, challenge) = pkce();
    let pushed: Value = server
        .http
        .post(format!("{issuer}/oauth2/par"))
        .header("Authorization", basic(&client_id, &secret))
        .form(&[
            ("response_type", "code"),
            ("redirect_uri", redirect.as_str()),
            ("scope", "openid profile"),
            ("state", "pushed-state"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let request_uri = pushed["request_uri"].as_str().expect("request_uri");
    let c = browser(&driver, &chromium).await;
    c.goto(&authorize_url(
        &issuer,
        &[("client_id", &client_id), ("request_uri", request_uri)],
    ))
    .await
    .unwrap();
    wait_for(&c, "input#username")
        .await
        .send_keys("dana")
        .await
        .unwrap();
    c.find(Locator::Css("input#password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "button[name=decision][value=allow]")
        .await
        .click()
        .await
        .unwrap();
    wait_for(&c, "h1#done").await;
    let landed = c.current_url().await.unwrap().to_string();
    assert!(landed.starts_with(&redirect), "{landed}");
    assert_eq!(
        query_param(&landed, "state").as_deref(),
        Some("pushed-state")
    );
    exchange(query_param(&landed, "code").expect("code"), verifier).await;

    // response_mode=form_post, consent asked again: the consent answer is the self-posting
    // form, and the browser lands on the client's POST endpoint with the code.
    let (verifier, challenge) = pkce();
    let url = authorize_url(
        &issuer,
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", &redirect),
            ("scope", "openid"),
            ("state", "posted-state"),
            ("prompt", "consent"),
            ("response_mode", "form_post"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ],
    );
    c.goto(&url).await.unwrap();
    wait_for(&c, "button[name=decision][value=allow]")
        .await
        .click()
        .await
        .unwrap();
    wait_for(&c, "h1#posted").await;
    assert!(c
        .current_url()
        .await
        .unwrap()
        .as_str()
        .starts_with(&redirect));
    let state = c
        .find(Locator::Css("p#state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(state, "posted-state");
    let code = c
        .find(Locator::Css("p#code"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    c.close().await.unwrap();
    exchange(code, verifier).await;
    app.stop(false).await;
}

/// The device flow (RFC 8628): the device asks for codes, the user enters the code on
/// `/device` in Chromium, logs in and consents, and the polling device receives its tokens.
async fn device_code_entered_in_the_browser(backend: &Backend) {
    const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
    let Some((driver, chromium)) = driver().await else {
        return;
    };
    let server = Server::start_with(backend, &["--device-code-interval", "1"]).await;
    let tid = support::unique("bd");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let issuer = format!("{}/{tid}/main", server.gateway);
    let (tv, _) = server
        .client(
            &tid,
            "main",
            json!({"client_name": "Kitchen Display", "grant_types": [DEVICE_CODE, "refresh_token"],
                "scope": "openid profile", "token_endpoint_auth_method": "none"}),
        )
        .await;
    user(
        &server,
        &tid,
        "main",
        "dora",
        PASSWORD,
        json!({"name": "Dora"}),
    )
    .await;
    let started: Value = server
        .http
        .post(format!("{issuer}/oauth2/device_authorization"))
        .form(&[("client_id", tv.as_str())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device_code = started["device_code"].as_str().unwrap().to_owned();
    let poll = || async {
        let res = server
            .http
            .post(format!("{issuer}/oauth2/token"))
            .form(&[
                ("grant_type", DEVICE_CODE),
                ("device_code", device_code.as_str()),
                ("client_id", tv.as_str()),
            ])
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap())
    };
    assert_eq!(poll().await.1["error"], "authorization_pending");

    let c = browser(&driver, &chromium).await;
    c.goto(started["verification_uri"].as_str().unwrap())
        .await
        .unwrap();
    let code = wait_for(&c, "input#user_code").await;
    code.send_keys(&started["user_code"].as_str().unwrap().to_lowercase())
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&c, "input#username")
        .await
        .send_keys("dora")
        .await
        .unwrap();
    c.find(Locator::Css("input#password"))
        .await
        .unwrap()
        .send_keys(PASSWORD)
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let allow = wait_for(&c, "button[value=allow]").await;
    assert!(c.source().await.unwrap().contains("Kitchen Display"));
    allow.click().await.unwrap();
    wait_for(&c, "#device-done").await;
    std::fs::write(
        artifacts().join(format!("device-{}.png", backend.name)),
        c.screenshot().await.unwrap(),
    )
    .unwrap();
    c.close().await.unwrap();

    // The device polls at its interval until the tokens arrive.
    let deadline = Instant::now() + Duration::from_secs(20);
    let tokens = loop {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (status, body) = poll().await;
        if status == 200 {
            break body;
        }
        assert_eq!(body["error"], "authorization_pending", "{body}");
        assert!(Instant::now() < deadline, "no tokens in time");
    };
    assert!(
        tokens["id_token"].is_string() && tokens["refresh_token"].is_string(),
        "{tokens}"
    );
}

both_backends! {
    login_consent_code_tokens => login_consent_code_tokens;
    pushed_request_then_form_post => pushed_request_then_form_post;
    device_code_entered_in_the_browser => device_code_entered_in_the_browser;
}
