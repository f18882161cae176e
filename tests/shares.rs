//! One tenant cannot fill the short-lived store for the others (issue 10, item 1), against the
//! real binary on both backends (in-process store with SQLite, Redis with PostgreSQL). With a
//! small per-tenant share, tenant A — long token lifetimes, rate limits off — floods its own
//! `/oauth2/authorize` with silent `prompt=none` logins (each keeps a code) and with
//! unauthenticated requests (each keeps a pending sign-in) until it is refused (`429`, with
//! `Retry-After`); tenant B, in the same process, keeps getting its authorize redirects (a
//! code, or its login page) and `client_secret_jwt` tokens throughout, never a 429 or 503, and
//! tenant C's strict rate limit still refuses what is over it (the limiter did not fail open).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use serde_json::json;
use support::flow::{authorize_url, user, Agent};
use support::material::{assertion_claims, hs256_assertion, JWT_BEARER};
use support::{Backend, Server};

const REDIRECT: &str = "https://app.example/cb";
const PASSWORD: &str = "correct horse battery";
/// The share of each tenant (and server) in this test.
const SHARE: usize = 100;

struct Tenant {
    tid: String,
    issuer: String,
    agent: Agent,
    jwt: (String, String),
}

/// A tenant with a web client, a `client_secret_jwt` client, a user whose browser is logged
/// in and has consented; `server_extra` are its server settings.
async fn tenant(server: &Server, prefix: &str, server_extra: serde_json::Value) -> Tenant {
    let tid = support::unique(prefix);
    server.tenant_and_server(&tid, "main", server_extra).await;
    server
        .client(
            &tid,
            "main",
            json!({"client_id": "web", "grant_types": ["authorization_code"],
                   "redirect_uris": [REDIRECT], "scope": "openid",
                   "token_endpoint_auth_method": "client_secret_basic"}),
        )
        .await;
    let jwt = server
        .client(
            &tid,
            "main",
            json!({"client_id": "hmac", "grant_types": ["client_credentials"],
                   "token_endpoint_auth_method": "client_secret_jwt"}),
        )
        .await;
    user(server, &tid, "main", "alice", PASSWORD, json!({})).await;
    let issuer = format!("{}/{tid}/main", server.gateway);
    let agent = Agent::new();
    let (res, seen) = agent
        .authorize(
            &issuer,
            &code_request(&issuer, false),
            "alice",
            PASSWORD,
            "allow",
        )
        .await;
    assert!(res.location_param("code").is_some(), "{seen:?} {res:?}");
    Tenant {
        tid,
        issuer,
        agent,
        jwt,
    }
}

fn code_request(issuer: &str, silent: bool) -> String {
    let mut p = vec![
        ("response_type", "code"),
        ("client_id", "web"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid"),
        ("state", "s"),
    ];
    if silent {
        p.push(("prompt", "none"));
    }
    authorize_url(issuer, &p)
}

/// A silent login: the browser has a session and consent, so the answer is a redirect with a
/// code (one code and its replay record kept).
async fn silent(t: &Tenant) -> support::flow::Resp {
    t.agent.get(&code_request(&t.issuer, true)).await
}

/// An unauthenticated request: a fresh browser, so a pending sign-in is kept and the answer
/// is a redirect to the login page.
async fn anonymous(t: &Tenant) -> support::flow::Resp {
    Agent::new().get(&code_request(&t.issuer, false)).await
}

async fn jwt_token(server: &Server, t: &Tenant) -> (u16, serde_json::Value) {
    let url = server.token_url(&t.tid, "main");
    let assertion = hs256_assertion(&t.jwt.1, &assertion_claims(&t.jwt.0, &url));
    let res = server
        .http
        .post(&url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
        ])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

/// B is served as if A were not there.
async fn b_is_served(server: &Server, b: &Tenant, when: &str) {
    let res = silent(b).await;
    assert!(
        res.status == 303 && res.location_param("code").is_some(),
        "{when}: B's silent login: {res:?}"
    );
    let res = anonymous(b).await;
    assert!(
        matches!(res.status, 302 | 303)
            && res
                .location
                .as_deref()
                .is_some_and(|l| l.starts_with(&format!("{}/login", b.issuer))),
        "{when}: B's sign-in: {res:?}"
    );
    let (status, body) = jwt_token(server, b).await;
    assert_eq!(status, 200, "{when}: B's client_secret_jwt token: {body}");
}

async fn one_tenant_cannot_fill_the_store_for_another(backend: &Backend) {
    let share = SHARE.to_string();
    let server = Server::start_with(
        backend,
        &[
            "--short-lived-tenant-entries",
            &share,
            "--short-lived-server-entries",
            &share,
        ],
    )
    .await;
    // A: the longest lifetimes and no rate limits; B: a strict client rate limit.
    let a = tenant(
        &server,
        "share-a",
        json!({"access_token_ttl": 86_400, "refresh_token_ttl": 31_536_000,
               "rate_limits": {"client_per_second": 0, "address_per_second": 0}}),
    )
    .await;
    let b = tenant(&server, "share-b", json!({})).await;
    // C: a strict client rate limit, to see the limiter still refusing while A is full.
    let c_tid = support::unique("share-c");
    server
        .tenant_and_server(
            &c_tid,
            "main",
            json!({"rate_limits": {"client_per_second": 1, "client_burst": 2}}),
        )
        .await;
    let c_jwt = server
        .client(
            &c_tid,
            "main",
            json!({"client_id": "hmac", "grant_types": ["client_credentials"],
                   "token_endpoint_auth_method": "client_secret_jwt"}),
        )
        .await;
    b_is_served(&server, &b, "before the flood").await;

    // A floods both ways until refused; B is asked between A's requests all along.
    for (way, kind) in [("silent logins", true), ("pending sign-ins", false)] {
        let mut refused = None;
        for i in 0..(SHARE * 3) {
            let res = if kind {
                silent(&a).await
            } else {
                anonymous(&a).await
            };
            match res.status {
                302 | 303 => {}
                429 => {
                    assert!(res.headers.contains_key("retry-after"), "{res:?}");
                    refused = Some(i);
                    break;
                }
                other => panic!("A's {way}: unexpected {other}: {}", res.body),
            }
            if i % 10 == 0 {
                let res = silent(&b).await;
                assert_eq!(res.status, 303, "B during A's {way}: {res:?}");
            }
        }
        assert!(refused.is_some(), "A's {way} were never refused");
    }
    // A is refused both ways now; B is not, on any path.
    assert_eq!(silent(&a).await.status, 429);
    assert_eq!(anonymous(&a).await.status, 429);
    for _ in 0..3 {
        b_is_served(&server, &b, "with A over its share").await;
    }
    // C's rate limit still refuses what is over it: the limiter did not fail open.
    let c = Tenant {
        issuer: format!("{}/{c_tid}/main", server.gateway),
        tid: c_tid,
        agent: Agent::new(),
        jwt: c_jwt,
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(jwt_token(&server, &c).await.0);
    }
    assert!(
        statuses[0] == 200 && statuses.contains(&429) && !statuses.contains(&503),
        "C's rate limit: {statuses:?}"
    );
}

async fn ceilings_bound_what_a_tenant_admin_sets(backend: &Backend) {
    let server = Server::start_with(
        backend,
        &[
            "--max-access-token-ttl",
            "900",
            "--rate-limit-client-per-second-max",
            "50",
            "--rate-limit-client-per-second",
            "20",
        ],
    )
    .await;
    let tid = support::unique("ceil");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let rows = [
        (json!({"access_token_ttl": 901}), "access_token_ttl"),
        (
            json!({"rate_limits": {"client_per_second": 0}}),
            "rate_limits.client_per_second",
        ),
        (
            json!({"rate_limits": {"client_per_second": 51}}),
            "rate_limits.client_per_second",
        ),
    ];
    for (patch, field) in rows {
        let (status, body) = server
            .admin_call(
                reqwest::Method::PATCH,
                &format!("/admin/tenants/{tid}/servers/main"),
                Some(&patch),
            )
            .await;
        assert_eq!(status, 400, "{patch}: {body}");
        assert!(body.to_string().contains(field), "{patch}: {body}");
    }
    let (status, body) = server
        .admin_call(
            reqwest::Method::PATCH,
            &format!("/admin/tenants/{tid}/servers/main"),
            Some(&json!({"access_token_ttl": 900, "rate_limits": {"client_per_second": 50}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

both_backends! {
    one_tenant_cannot_fill_the_store_for_another => one_tenant_cannot_fill_the_store_for_another;
    ceilings_bound_what_a_tenant_admin_sets => ceilings_bound_what_a_tenant_admin_sets;
}
