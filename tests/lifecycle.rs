//! The process lifecycle against the real binary: SIGTERM during load (every accepted request
//! answered in full, `/readyz` 503 while draining, new connections refused, exit 0 within the
//! grace period), and start-up waiting, boundedly, for a database and Redis that are not there
//! yet, saying what it waits for and never printing a password.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{basic, command, Backend, Server};

/// What one request of the load saw.
#[derive(Debug)]
enum Outcome {
    /// A complete 200 with an access token.
    Token,
    /// Any other status.
    Status(u16, String),
    /// Headers arrived but the body did not (or was not a token response).
    Partial(String),
    /// No response: the connection was refused or closed before an answer.
    NoResponse(String),
}

fn addr_of(url: &str) -> SocketAddr {
    url.trim_start_matches("http://").parse().unwrap()
}

fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

async fn one_request(http: &reqwest::Client, url: &str, auth: &str) -> Outcome {
    let res = match http
        .post(url)
        .header(reqwest::header::AUTHORIZATION, auth)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
    {
        Ok(res) => res,
        Err(e) => return Outcome::NoResponse(format!("{e:?}")),
    };
    let status = res.status().as_u16();
    match res.bytes().await {
        Ok(body) if status == 200 => match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v["access_token"].is_string() => Outcome::Token,
            _ => Outcome::Partial(String::from_utf8_lossy(&body).into_owned()),
        },
        Ok(body) => Outcome::Status(status, String::from_utf8_lossy(&body).into_owned()),
        Err(e) => Outcome::Partial(format!("{status}: {e:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_load_answers_every_accepted_request() {
    const DELAY: Duration = Duration::from_secs(1);
    const GRACE: Duration = Duration::from_secs(10);
    let backend = Backend::sqlite();
    let mut server = Server::start_with(
        &backend,
        &[
            "--shutdown-delay",
            &DELAY.as_secs().to_string(),
            "--shutdown-timeout",
            &GRACE.as_secs().to_string(),
            "--workers",
            "2",
            // One client at full speed: what is measured is draining, not the limiter.
            "--rate-limit-client-per-second",
            "0",
            "--rate-limit-address-per-second",
            "0",
        ],
    )
    .await;
    server.tenant_and_server("drain", "main", json!({})).await;
    let (id, secret) = server
        .client(
            "drain",
            "main",
            json!({"grant_types": ["client_credentials"]}),
        )
        .await;
    let url = server.token_url("drain", "main");
    let auth = basic(&id, &secret);
    // Warm the caches (the one argon2 verification) before the clock starts.
    let warm = reqwest::Client::new();
    assert!(matches!(
        one_request(&warm, &url, &auth).await,
        Outcome::Token
    ));

    let start = Instant::now();
    let load_for = Duration::from_millis(2500);
    // 8 clients with keep-alive connections, sending token requests back to back.
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (url, auth) = (url.clone(), auth.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .unwrap();
                let mut seen = Vec::new();
                while start.elapsed() < load_for {
                    let sent = Instant::now();
                    seen.push((sent, one_request(&http, &url, &auth).await));
                }
                seen
            })
        })
        .collect();
    // A separate task polls /readyz on the gateway until the listener refuses it.
    let readiness = {
        let url = format!("{}/readyz", server.gateway);
        tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            let mut seen = Vec::new();
            loop {
                // Stamped when the answer arrives: a probe sent just before the signal may
                // rightly be answered while draining.
                match http.get(&url).send().await {
                    Ok(res) => seen.push((Instant::now(), Some(res.status().as_u16()))),
                    Err(_) => {
                        seen.push((Instant::now(), None));
                        break;
                    }
                }
                if start.elapsed() > Duration::from_secs(30) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        })
    };

    tokio::time::sleep(Duration::from_millis(1000)).await;
    let signal_at = Instant::now();
    sigterm(server.pid());

    let mut outcomes = Vec::new();
    for task in load {
        outcomes.extend(task.await.unwrap());
    }
    let readiness = readiness.await.unwrap();

    // The process exits by itself, successfully, within the delay plus the grace period.
    let exited = loop {
        if let Some(status) = server.exit_status() {
            break (status, signal_at.elapsed());
        }
        assert!(
            signal_at.elapsed() < DELAY + GRACE + Duration::from_secs(5),
            "still running long after SIGTERM:\n{}",
            server.printed()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(exited.0.success(), "exit status {:?}", exited.0);
    assert!(exited.1 <= DELAY + GRACE, "took {:?}", exited.1);
    // New connections are refused once it has stopped.
    assert!(TcpStream::connect_timeout(&addr_of(&server.gateway), Duration::from_secs(1)).is_err());
    assert!(TcpStream::connect_timeout(&addr_of(&server.admin), Duration::from_secs(1)).is_err());

    let before = outcomes.iter().filter(|(at, _)| *at < signal_at).count();
    let after_ok = outcomes
        .iter()
        .filter(|(at, o)| *at >= signal_at && matches!(o, Outcome::Token))
        .count();
    let total_ok = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Token))
        .count();
    let no_response = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::NoResponse(_)))
        .count();
    println!(
        "{} requests: {total_ok} tokens ({before} sent before SIGTERM, {after_ok} answered after it), \
         {no_response} without a response (after the listeners closed); exit after {:?}",
        outcomes.len(),
        exited.1
    );
    for (at, o) in &outcomes {
        match o {
            Outcome::Token => {}
            Outcome::Status(s, body) => panic!("a request was answered {s}: {body}"),
            Outcome::Partial(e) => panic!("a request got a partial response: {e}"),
            // Refused or closed before an answer: only once shutdown had begun.
            Outcome::NoResponse(e) => {
                assert!(*at >= signal_at, "a request failed before the signal: {e}");
            }
        }
    }
    assert!(before > 50, "the load ran before the signal ({before})");
    assert!(after_ok > 0, "requests were served while draining");

    // /readyz: ready before the signal, 503 while draining, then the listener is gone.
    assert!(readiness
        .iter()
        .any(|(at, s)| *at < signal_at && *s == Some(200)));
    assert!(
        readiness
            .iter()
            .any(|(at, s)| *at >= signal_at && *s == Some(503)),
        "{readiness:?}"
    );
    assert!(
        readiness
            .iter()
            .all(|(at, s)| *at >= signal_at || *s == Some(200)),
        "not ready before the signal: {:?}",
        readiness
            .iter()
            .filter(|(at, s)| *at < signal_at && *s != Some(200))
            .collect::<Vec<_>>()
    );
    assert_eq!(readiness.last().map(|(_, s)| *s), Some(None));
    let printed = server.printed();
    assert!(printed.contains("shutdown signal received: draining"));
    assert!(!printed.contains("panicked"));
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// After `after`, accepts connections on `port` and forwards them to `target`: a database
/// that "appears" late. Runs on plain threads so that it cannot be starved by the test's
/// runtime, and stops accepting when `stop` is set.
fn forward_later(port: u16, target: SocketAddr, after: Duration, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("rebind the reserved port");
        listener.set_nonblocking(true).unwrap();
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((client, _)) => {
                    client.set_nonblocking(false).unwrap();
                    let Ok(upstream) = TcpStream::connect(target) else {
                        continue;
                    };
                    for (mut from, mut to) in [
                        (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                        (upstream, client),
                    ] {
                        std::thread::spawn(move || {
                            let mut buf = [0u8; 16 * 1024];
                            while let Ok(n) = from.read(&mut buf) {
                                if n == 0 || to.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                            let _ = to.shutdown(std::net::Shutdown::Both);
                        });
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
}

fn socket_of(url: &reqwest::Url) -> SocketAddr {
    format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap()
    )
    .parse()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_waits_for_a_database_and_redis_that_appear_later() {
    let Some(backend) = Backend::postgres() else {
        return;
    };
    let real_pg = reqwest::Url::parse(&backend.database_url).unwrap();
    let real_redis = reqwest::Url::parse(backend.redis_url.as_deref().unwrap()).unwrap();
    let (pg_port, redis_port) = (free_port(), free_port());
    // The same database through a port nobody listens on yet, with a password (ignored by the
    // test cluster's trust authentication) that must never be printed.
    let mut late_pg = real_pg.clone();
    late_pg.set_port(Some(pg_port)).unwrap();
    late_pg.set_password(Some("s3cret-pw")).unwrap();
    let mut late_redis = real_redis.clone();
    late_redis.set_port(Some(redis_port)).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let appear_after = Duration::from_secs(2);
    forward_later(pg_port, socket_of(&real_pg), appear_after, stop.clone());
    forward_later(
        redis_port,
        socket_of(&real_redis),
        appear_after,
        stop.clone(),
    );

    let token = format!("test-admin-{}", uuid::Uuid::new_v4().simple());
    let mut cmd = command();
    cmd.arg("serve")
        .args([
            "--public-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--database-wait",
            "30",
        ])
        .env("TOLLGATE_DATABASE_URL", late_pg.as_str())
        .env("TOLLGATE_REDIS_URL", late_redis.as_str())
        .env("TOLLGATE_MASTER_KEY", support::shared_master_key())
        .env("TOLLGATE_ADMIN_TOKEN", &token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let server = Server::spawn(cmd, Some(token)).await;
    let took = started.elapsed();
    assert!(
        took >= appear_after,
        "listened after {took:?}, before the database appeared"
    );

    let printed = server.printed();
    let pg_target = format!(
        "waiting for the database at postgres://127.0.0.1:{pg_port}{}",
        real_pg.path()
    );
    assert!(printed.contains(&pg_target), "{pg_target}:\n{printed}");
    assert!(printed.contains("next in"), "{printed}");
    assert!(
        !printed.contains("s3cret-pw"),
        "password printed:\n{printed}"
    );
    // Redis is waited for the same way once the database is there (it appeared at the same
    // time here, so the wait may have been nil).
    let tid = support::unique("late");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let (id, secret) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"]}))
        .await;
    let res = server
        .http
        .post(server.token_url(&tid, "main"))
        .header(reqwest::header::AUTHORIZATION, basic(&id, &secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    drop(server);
    stop.store(true, Ordering::Relaxed);
}

#[test]
fn start_up_gives_up_after_database_wait_with_one_line_naming_the_option() {
    let port = free_port();
    let started = Instant::now();
    let out = command()
        .arg("serve")
        .args(["--database-wait", "2"])
        .env(
            "TOLLGATE_DATABASE_URL",
            format!("postgres://tollgate:s3cret-pw@127.0.0.1:{port}/db?password=s3cret-pw"),
        )
        .env("TOLLGATE_MASTER_KEY", support::master_key())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(took >= Duration::from_secs(2), "gave up after {took:?}");
    assert!(took < Duration::from_secs(20), "gave up after {took:?}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("tollgate: error"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("--database-url"), "{}", errors[0]);
    assert!(stdout.contains(&format!(
        "waiting for the database at postgres://127.0.0.1:{port}/db (attempt 1, next in"
    )));
    assert!(stdout.contains("attempt 2"), "{stdout}");
    assert!(
        !stdout.contains("s3cret-pw") && !stderr.contains("s3cret-pw"),
        "password printed:\n{stdout}\n{stderr}"
    );
}
