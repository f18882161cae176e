//! The one guarded outbound client, seen through client `jwks_uri`s against the real binary:
//! loopback is refused unless `--outbound-allow-loopback` (or its environment variable) is
//! set, and then only loopback; redirects are not followed; bodies over the bound are refused;
//! a slow server times out, bounded; HTTPS to a private CA works only with
//! `--outbound-ca-file`. Every server the tests fetch from listens on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::material::{assertion_claims, ClientKey, JWT_BEARER};
use support::tls_server::ServerPki;
use support::{Backend, Server};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Answers every request on 127.0.0.1 with `response` after `delay`; counts requests.
async fn serve_raw(response: String, delay: Duration) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (response, h) = (response.clone(), h.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                h.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (base, hits)
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn port_of(base: &str) -> &str {
    base.rsplit(':').next().unwrap()
}

struct Tenant {
    tid: String,
    token_url: String,
}

async fn tenant(server: &Server, prefix: &str) -> Tenant {
    let tid = support::unique(prefix);
    server.tenant_and_server(&tid, "main", json!({})).await;
    Tenant {
        token_url: server.token_url(&tid, "main"),
        tid,
    }
}

async fn register(server: &Server, t: &Tenant, jwks_uri: &str) -> (u16, Value) {
    server
        .admin_post(
            &format!("/admin/tenants/{}/servers/main/clients", t.tid),
            &json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": jwks_uri}),
        )
        .await
}

/// Registers a client with `jwks_uri` and asks for a token with `key`: the status.
async fn token_with(server: &Server, t: &Tenant, jwks_uri: &str, key: &ClientKey) -> u16 {
    let (status, body) = register(server, t, jwks_uri).await;
    assert_eq!(status, 201, "{jwks_uri}: {body}");
    let id = body["client_id"].as_str().unwrap().to_owned();
    let assertion = key.sign(&assertion_claims(&id, &t.token_url));
    let res = server
        .http
        .post(&t.token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .unwrap();
    res.status().as_u16()
}

fn printed_since(server: &Server, mark: usize, needle: &str) -> bool {
    server.printed()[mark..].contains(needle)
}

#[tokio::test]
async fn loopback_is_refused_without_the_flag_and_allowed_with_it() {
    let key = ClientKey::es256("k");
    let (base, hits) = serve_raw(ok(&key.jwks().to_string()), Duration::ZERO).await;
    let backend = Backend::sqlite();

    // Default: a loopback literal is refused at registration; a name that resolves to
    // loopback is refused when resolved, and nothing reaches the address.
    let strict = Server::start(&backend).await;
    let t = tenant(&strict, "strict").await;
    for uri in [
        format!("{base}/jwks"),
        format!("https://127.0.0.1:{}/jwks", port_of(&base)),
        "https://[::1]/jwks".to_owned(),
        "https://[2001:db8::1]/jwks".to_owned(),
        "https://[2001::1]/jwks".to_owned(),
        "https://[::ffff:10.0.0.1]/jwks".to_owned(),
    ] {
        let (status, body) = register(&strict, &t, &uri).await;
        assert_eq!(status, 400, "{uri}: {body}");
        assert_eq!(body["error"], "invalid_client_metadata");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("jwks_uri"),
            "{body}"
        );
    }
    let mark = strict.printed().len();
    let uri = format!("https://localhost:{}/jwks", port_of(&base));
    assert_eq!(token_with(&strict, &t, &uri, &key).await, 401);
    assert!(
        printed_since(&strict, mark, "refused addresses"),
        "{}",
        &strict.printed()[mark..]
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached loopback");
    assert!(!strict.printed().contains("outbound-allow-loopback"));
    drop(strict);

    // With TOLLGATE_OUTBOUND_ALLOW_LOOPBACK=1: loopback, and plain http to it, work (and the
    // process says so); other special-purpose addresses stay refused.
    // (A fresh database: the first one printed its generated admin token already.)
    let backend = Backend::sqlite();
    let dev =
        Server::start_with_env(&backend, &[], &[("TOLLGATE_OUTBOUND_ALLOW_LOOPBACK", "1")]).await;
    assert!(
        dev.wait_printed("--outbound-allow-loopback"),
        "a warning is logged"
    );
    let t = tenant(&dev, "dev").await;
    assert_eq!(
        token_with(&dev, &t, &format!("{base}/jwks"), &key).await,
        200
    );
    let by_name = format!("http://localhost:{}/jwks", port_of(&base));
    assert_eq!(token_with(&dev, &t, &by_name, &key).await, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    for uri in [
        "http://example.com/jwks",
        "https://10.0.0.1/jwks",
        "https://[2001:db8::1]/jwks",
        "https://169.254.169.254/jwks",
    ] {
        let (status, body) = register(&dev, &t, uri).await;
        assert_eq!(status, 400, "{uri}: {body}");
    }
}

#[tokio::test]
async fn redirects_large_bodies_and_slow_servers_fail_within_bounds() {
    let key = ClientKey::es256("k");
    let (target, target_hits) = serve_raw(ok(&key.jwks().to_string()), Duration::ZERO).await;
    let backend = Backend::sqlite();
    let server = Server::start_with(
        &backend,
        &["--outbound-allow-loopback", "--max-jwks-bytes", "4096"],
    )
    .await;
    let t = tenant(&server, "bounds").await;

    let redirect = format!(
        "HTTP/1.1 302 Found\r\nLocation: {target}/jwks\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let padded = json!({"keys": key.jwks()["keys"], "pad": "x".repeat(8192)}).to_string();
    let streamed = format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{padded}");
    let rows = [
        (redirect, "HTTP status 302"),
        (ok(&padded), "larger than 4096 bytes"),
        (streamed, "larger than 4096 bytes"),
    ];
    for (response, logged) in rows {
        let (base, hits) = serve_raw(response, Duration::ZERO).await;
        let mark = server.printed().len();
        assert_eq!(
            token_with(&server, &t, &format!("{base}/jwks"), &key).await,
            401,
            "{logged}"
        );
        assert!(
            printed_since(&server, mark, logged),
            "{logged}: {}",
            &server.printed()[mark..]
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
    assert_eq!(
        target_hits.load(Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );

    // A server that never answers: the fetch gives up at its deadline (5 s), not the
    // client's.
    let (slow, _) = serve_raw(ok(&key.jwks().to_string()), Duration::from_secs(60)).await;
    let mark = server.printed().len();
    let started = Instant::now();
    assert_eq!(
        token_with(&server, &t, &format!("{slow}/jwks"), &key).await,
        401
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(9), "{took:?}");
    assert!(
        printed_since(&server, mark, "timed out"),
        "{}",
        &server.printed()[mark..]
    );
}

#[tokio::test]
async fn https_to_a_private_ca_needs_the_outbound_ca_file() {
    let key = ClientKey::es256("k");
    let pki = ServerPki::new("Outbound Test CA");
    let (base, hits) = pki.serve_https(key.jwks().to_string());
    let uri = format!("{base}/jwks");
    let backend = Backend::sqlite();

    let untrusting = Server::start_with(&backend, &["--outbound-allow-loopback"]).await;
    let t = tenant(&untrusting, "noca").await;
    let mark = untrusting.printed().len();
    assert_eq!(token_with(&untrusting, &t, &uri, &key).await, 401);
    assert!(
        printed_since(&untrusting, mark, "client jwks_uri fetch failed"),
        "{}",
        &untrusting.printed()[mark..]
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the handshake failed");
    drop(untrusting);

    let backend = Backend::sqlite();
    let trusting = Server::start_with(
        &backend,
        &[
            "--outbound-allow-loopback",
            "--outbound-ca-file",
            &pki.ca_path,
        ],
    )
    .await;
    assert!(
        trusting.wait_printed("--outbound-ca-file"),
        "a warning is logged"
    );
    let t = tenant(&trusting, "ca").await;
    assert_eq!(token_with(&trusting, &t, &uri, &key).await, 200);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[test]
fn a_bad_outbound_ca_file_is_a_configuration_error() {
    let dir = std::env::temp_dir().join(format!("tollgate-ca-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    for (path, says) in [
        (dir.join("missing.pem"), "cannot read"),
        (not_pem, "no PEM certificate"),
    ] {
        let out = support::command()
            .args(["serve", "--outbound-ca-file"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("--outbound-ca-file (TOLLGATE_OUTBOUND_CA_FILE)")
                && stderr.contains(says),
            "{stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
