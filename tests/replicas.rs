//! Two `tollgate serve` processes on one PostgreSQL database, as two replicas behind a load
//! balancer would be: an admin change made through one reaches the other's caches at once,
//! through `LISTEN`/`NOTIFY`. Both run with `--cache-ttl 3600`, so cache expiry cannot explain
//! what the second one sees within the few seconds allowed. PostgreSQL only (SQLite is one
//! process's database).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{basic, Backend, Server};

/// How long a change may take to reach the other replica in this test.
const BOUND: Duration = Duration::from_secs(5);

async fn token(server: &Server, url: &str, id: &str, secret: &str) -> (u16, Value) {
    let res = server
        .http
        .post(url)
        .header(reqwest::header::AUTHORIZATION, basic(id, secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn kid(body: &Value) -> String {
    jsonwebtoken::decode_header(body["access_token"].as_str().unwrap())
        .unwrap()
        .kid
        .unwrap()
}

/// Polls `check` until it holds; returns how long that took, failing after [`BOUND`].
async fn within_bound<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            let took = start.elapsed();
            println!("{what}: {took:?}");
            return took;
        }
        assert!(start.elapsed() < BOUND, "not within {BOUND:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_changes_reach_another_replica_at_once() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let args = [
        "--cache-ttl",
        "3600",
        "--public-url",
        "https://auth.replicas.test",
    ];
    let a = Server::start_with(&backend, &args).await;
    let b = Server::start_with(&backend, &args).await;
    // Both subscribe at start; /readyz says when B hears announcements.
    let readyz = format!("{}/readyz", b.gateway);
    within_bound("B listening for announcements", || async {
        let body: Value = b
            .http
            .get(&readyz)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["invalidations"] == "listening"
    })
    .await;

    let tid = support::unique("replicas");
    a.tenant_and_server(&tid, "main", json!({})).await;
    let meta = json!({"grant_types": ["client_credentials"]});
    let (doomed, doomed_secret) = a.client(&tid, "main", meta.clone()).await;
    let (rotated, old_secret) = a.client(&tid, "main", meta).await;
    let (url_a, url_b) = (a.token_url(&tid, "main"), b.token_url(&tid, "main"));

    // Warm both replicas' caches: servers, keys, clients, verified secrets.
    for (server, url) in [(&a, &url_a), (&b, &url_b)] {
        assert_eq!(token(server, url, &doomed, &doomed_secret).await.0, 200);
        assert_eq!(token(server, url, &rotated, &old_secret).await.0, 200);
    }
    let (_, body) = token(&b, &url_b, &rotated, &old_secret).await;
    let old_kid = kid(&body);

    // 1. A client deleted through A stops working on B.
    let (s, _) = a
        .admin_call(
            reqwest::Method::DELETE,
            &format!("/admin/tenants/{tid}/servers/main/clients/{doomed}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let deleted = within_bound("client deletion reached B", || async {
        token(&b, &url_b, &doomed, &doomed_secret).await.0 == 401
    })
    .await;

    // 2. A secret rotated through A: B refuses the old one and accepts the new one.
    let (s, body) = a
        .admin_post(
            &format!("/admin/tenants/{tid}/servers/main/clients/{rotated}/secret"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let new_secret = body["client_secret"].as_str().unwrap().to_owned();
    let secret = within_bound("secret rotation reached B", || async {
        token(&b, &url_b, &rotated, &old_secret).await.0 == 401
    })
    .await;
    assert_eq!(token(&b, &url_b, &rotated, &new_secret).await.0, 200);

    // 3. Keys rotated through A: B signs with the new key and publishes it.
    let (s, keys) = a
        .admin_post(
            &format!("/admin/tenants/{tid}/servers/main/keys/rotate"),
            &json!({}),
        )
        .await;
    assert_eq!(s, 200, "{keys}");
    let current: Vec<String> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["status"] == "current")
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert!(!current.contains(&old_kid));
    let rotation = within_bound("key rotation reached B", || async {
        let (s, body) = token(&b, &url_b, &rotated, &new_secret).await;
        s == 200 && current.contains(&kid(&body))
    })
    .await;
    let jwks: Value = b
        .http
        .get(format!("{}/{tid}/main/.well-known/jwks.json", b.gateway))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        published.contains(&old_kid.as_str()),
        "the old key stays published"
    );
    assert!(current.iter().all(|k| published.contains(&k.as_str())));

    // 4. A tenant deleted through A disappears from B.
    let (s, _) = a
        .admin_call(
            reqwest::Method::DELETE,
            &format!("/admin/tenants/{tid}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let tenant = within_bound("tenant deletion reached B", || async {
        token(&b, &url_b, &rotated, &new_secret).await.0 == 404
    })
    .await;

    println!(
        "propagation to the other replica (cache TTL 3600 s): deletion {deleted:?}, secret {secret:?}, \
         keys {rotation:?}, tenant {tenant:?}"
    );
    for p in [&a, &b] {
        assert!(!p.printed().contains("panicked"));
    }
}

/// A password changed through A revokes, on B, the access token B issued before: the
/// watermark reaches B's cache through the announcement, not through cache expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_by_subject_reach_another_replica_at_once() {
    use support::flow::{authorize_url, user, Agent};
    const REDIRECT: &str = "https://app.example/callback";
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let args = ["--cache-ttl", "3600"];
    let a = Server::start_with(&backend, &args).await;
    let b = Server::start_with(&backend, &args).await;
    let readyz = format!("{}/readyz", b.gateway);
    within_bound("B listening for announcements", || async {
        let body: Value = b
            .http
            .get(&readyz)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["invalidations"] == "listening"
    })
    .await;
    let tid = support::unique("replicas");
    a.tenant_and_server(&tid, "main", json!({})).await;
    let (web, secret) = a
        .client(
            &tid,
            "main",
            json!({"grant_types": ["authorization_code"], "redirect_uris": [REDIRECT], "scope": "openid"}),
        )
        .await;
    let user_id = user(&a, &tid, "main", "bob", "a long enough password", json!({})).await;
    let issuer_b = format!("{}/{tid}/main", b.gateway);
    let agent = Agent::new();
    let (res, _) = agent
        .authorize(
            &issuer_b,
            &authorize_url(
                &issuer_b,
                &[
                    ("response_type", "code"),
                    ("client_id", &web),
                    ("redirect_uri", REDIRECT),
                    ("scope", "openid"),
                ],
            ),
            "bob",
            "a long enough password",
            "allow",
        )
        .await;
    let code = res.location_param("code").expect("a code");
    let res: Value = b
        .http
        .post(format!("{issuer_b}/oauth2/token"))
        .header(reqwest::header::AUTHORIZATION, basic(&web, &secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = res["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    let active = || async {
        let v: Value = b
            .http
            .post(format!("{issuer_b}/oauth2/introspect"))
            .header(reqwest::header::AUTHORIZATION, basic(&web, &secret))
            .form(&[("token", access.as_str())])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["active"] == json!(true)
    };
    // B has cached the server's (empty) watermarks, for an hour.
    assert!(active().await);
    let (s, body) = a
        .admin_call(
            reqwest::Method::PATCH,
            &format!("/admin/tenants/{tid}/servers/main/users/{user_id}"),
            Some(&json!({"password": "another long password"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let took = within_bound("password change revoked B's token", || async {
        !active().await
    })
    .await;
    println!("revocation by subject reached the other replica in {took:?}");
}
