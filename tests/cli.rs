//! The `tollgate` command line: help text, configuration errors (one line, naming the option,
//! exit code 2), `migrate`, `--only`, and the embedded default's first-start behaviour (the
//! generated root token printed once and kept as a hash, the generated master key file).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::net::TcpListener;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::{basic, command, Backend, Server};

#[test]
fn help_says_what_tollgate_is() {
    let out = command().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let first = text.lines().next().unwrap_or("");
    assert!(
        first.contains("multi-tenant OAuth 2.0 / OpenID Connect authorization server"),
        "{text}"
    );
    assert!(!text.contains("The tollgate binary"), "{text}");
    for sub in ["serve", "migrate"] {
        assert!(text.contains(sub), "{text}");
    }
}

/// The container image ships a stripped binary: deploy/Dockerfile builds with a Cargo profile
/// that strips (the `release` profile keeps line tables for developers).
#[test]
fn the_container_image_builds_a_stripped_binary() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let dockerfile = std::fs::read_to_string(format!("{root}/deploy/Dockerfile")).unwrap();
    let manifest = std::fs::read_to_string(format!("{root}/Cargo.toml")).unwrap();
    let build = dockerfile
        .lines()
        .find(|l| l.contains("cargo build"))
        .expect("the Dockerfile runs cargo build");
    let profile = build
        .split_whitespace()
        .skip_while(|w| *w != "--profile")
        .nth(1)
        .expect("the image is built with --profile");
    assert!(
        dockerfile.contains(&format!("target/{profile}/tollgate")),
        "the image copies the {profile} binary"
    );
    let section: Vec<&str> = manifest
        .split("\n[")
        .filter(|s| s.starts_with(&format!("profile.{profile}]")))
        .collect();
    assert_eq!(section.len(), 1, "[profile.{profile}] in Cargo.toml");
    assert!(section[0].contains("strip = true"), "{}", section[0]);
    assert!(
        section[0].contains("inherits = \"release\""),
        "{}",
        section[0]
    );
}

#[test]
fn help_documents_every_option_with_its_environment_variable() {
    let out = command().arg("serve").arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for env in [
        "TOLLGATE_DATABASE_URL",
        "TOLLGATE_REDIS_URL",
        "TOLLGATE_PUBLIC_ADDR",
        "TOLLGATE_ADMIN_ADDR",
        "TOLLGATE_PUBLIC_URL",
        "TOLLGATE_ADMIN_TOKEN",
        "TOLLGATE_MASTER_KEY",
        "TOLLGATE_LOG_FORMAT",
        "--only",
        "--no-migrate",
    ] {
        assert!(text.contains(env), "serve --help lacks {env}:\n{text}");
    }
    for sub in [vec!["--help"], vec!["migrate", "--help"]] {
        let out = command().args(&sub).output().unwrap();
        assert!(out.status.success(), "{sub:?}");
        assert!(String::from_utf8(out.stdout)
            .unwrap()
            .contains("TOLLGATE_DATABASE_URL"));
    }
}

#[test]
fn bad_configuration_is_one_line_naming_the_option_and_exit_code_2() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_addr = busy.local_addr().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("tollgate-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
    let key = support::master_key();
    // (case, environment, arguments, the option the error must name)
    type Row<'a> = (&'a str, Vec<(&'a str, String)>, Vec<String>, &'a str);
    let rows: Vec<Row> = vec![
        (
            "unparsable database URL",
            vec![("TOLLGATE_DATABASE_URL", "mysql://x".into())],
            vec![],
            "--database-url",
        ),
        (
            "PostgreSQL without a master key",
            vec![(
                "TOLLGATE_DATABASE_URL",
                "postgres://u@127.0.0.1:1/db".into(),
            )],
            vec![],
            "--master-key",
        ),
        (
            "master key of the wrong length",
            vec![
                ("TOLLGATE_DATABASE_URL", sqlite.clone()),
                ("TOLLGATE_MASTER_KEY", "c2hvcnQ=".into()),
            ],
            vec![],
            "--master-key",
        ),
        (
            "unparsable listen address",
            vec![("TOLLGATE_DATABASE_URL", sqlite.clone())],
            vec!["--public-addr".into(), "nowhere".into()],
            "--public-addr",
        ),
        (
            "a rate ceiling below the process default",
            vec![("TOLLGATE_DATABASE_URL", sqlite.clone())],
            vec!["--rate-limit-client-per-second-max".into(), "50".into()],
            "--rate-limit-client-per-second-max",
        ),
        (
            "an access-token ceiling out of range",
            vec![("TOLLGATE_DATABASE_URL", sqlite.clone())],
            vec!["--max-access-token-ttl".into(), "90000".into()],
            "--max-access-token-ttl",
        ),
        (
            "a share too small",
            vec![("TOLLGATE_DATABASE_URL", sqlite.clone())],
            vec!["--short-lived-tenant-entries".into(), "0".into()],
            "--short-lived-tenant-entries",
        ),
        (
            "bad public URL",
            vec![("TOLLGATE_DATABASE_URL", sqlite.clone())],
            vec!["--public-url".into(), "ftp://x".into()],
            "--public-url",
        ),
        (
            "bad Redis URL",
            vec![("TOLLGATE_DATABASE_URL", sqlite.clone())],
            vec!["--redis-url".into(), "http://x".into()],
            "--redis-url",
        ),
        (
            "short admin token",
            vec![
                ("TOLLGATE_DATABASE_URL", sqlite.clone()),
                ("TOLLGATE_ADMIN_TOKEN", "short".into()),
            ],
            vec![],
            "--admin-token",
        ),
        (
            "unreachable database",
            vec![
                (
                    "TOLLGATE_DATABASE_URL",
                    "postgres://u@127.0.0.1:1/db".into(),
                ),
                ("TOLLGATE_MASTER_KEY", key),
            ],
            vec!["--database-wait".into(), "0".into()],
            "--database-url",
        ),
        (
            "PostgreSQL options the driver refuses (not waited for)",
            vec![
                (
                    "TOLLGATE_DATABASE_URL",
                    "postgres://u@127.0.0.1:1/db?sslmode=bogus".into(),
                ),
                ("TOLLGATE_MASTER_KEY", support::master_key()),
            ],
            vec!["--database-wait".into(), "30".into()],
            "--database-url",
        ),
        (
            "unreachable Redis",
            vec![("TOLLGATE_DATABASE_URL", sqlite.clone())],
            vec![
                "--redis-url".into(),
                "redis://127.0.0.1:1/".into(),
                "--database-wait".into(),
                "0".into(),
            ],
            "--redis-url",
        ),
        (
            "port in use",
            vec![("TOLLGATE_DATABASE_URL", sqlite)],
            vec![
                "--admin-addr".into(),
                "127.0.0.1:0".into(),
                "--public-addr".into(),
                busy_addr,
            ],
            "--public-addr",
        ),
    ];
    for (name, env, args, flag) in rows {
        let started = Instant::now();
        let out = command()
            .arg("serve")
            .args(&args)
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        // None of these is an outage worth waiting for (the longest wait asked for is 30 s).
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: ended at once"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        let err_lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("tollgate: error"))
            .collect();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: exit code; stderr:\n{stderr}"
        );
        assert_eq!(
            err_lines.len(),
            1,
            "{name}: one error line; stderr:\n{stderr}"
        );
        assert!(
            err_lines[0].contains(flag),
            "{name}: names {flag}: {}",
            err_lines[0]
        );
        assert!(!stderr.contains("panicked"), "{name}: panic");
    }
    drop(busy);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_start_generates_token_and_key_then_reuses_them() {
    let backend = Backend::sqlite();
    let dir = backend.dir.clone().unwrap();
    let first = Server::start(&backend).await;
    assert!(first.printed().contains("root admin token (shown once"));
    let token = first.admin_token.clone();
    let key_file = dir.join("tollgate.db.master.key");
    assert!(
        key_file.exists(),
        "master key generated beside the database"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    first.tenant_and_server("keep", "main", json!({})).await;
    let (id, secret) = first
        .client(
            "keep",
            "main",
            json!({"grant_types": ["client_credentials"]}),
        )
        .await;
    drop(first);

    // Second start: the token is not printed again, still works; data and keys survive.
    let mut cmd = command();
    cmd.arg("serve")
        .args([
            "--public-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .env("TOLLGATE_DATABASE_URL", &backend.database_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let second = Server::spawn(cmd, Some(token.clone())).await;
    assert!(
        !second.printed().contains(&token),
        "the token is shown only once"
    );
    let (s, _) = second
        .admin_call(reqwest::Method::GET, "/admin/tenants", None)
        .await;
    assert_eq!(s, 200);
    let res = second
        .http
        .get(format!("{}/admin/tenants", second.admin))
        .bearer_auth("tga_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = second
        .http
        .post(second.token_url("keep", "main"))
        .header("authorization", basic(&id, &secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "signing keys open with the persisted master key"
    );
    let db = std::fs::read(dir.join("tollgate.db")).unwrap();
    assert!(
        !db.windows(token.len()).any(|w| w == token.as_bytes()),
        "token kept only as a hash"
    );
    assert!(
        !db.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "secret kept only as a hash"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_then_serve_without_migrating() {
    let backend = Backend::sqlite();
    let out = command()
        .arg("migrate")
        .env("TOLLGATE_DATABASE_URL", &backend.database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    let server = Server::start_with(&backend, &["--no-migrate"]).await;
    let (s, b) = server
        .admin_post("/admin/tenants", &json!({"id": "m", "name": "M"}))
        .await;
    assert_eq!(s, 201, "{b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_runs_one_listener() {
    let backend = Backend::sqlite();
    let mut cmd = command();
    cmd.arg("serve")
        .args(["--only", "gateway", "--public-addr", "127.0.0.1:0"])
        .env("TOLLGATE_DATABASE_URL", &backend.database_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let gw = Server::spawn_expecting(cmd, None, true, false).await;
    let h: Value = gw
        .http
        .get(format!("{}/healthz", gw.gateway))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    assert!(!gw.printed().contains("admin API listening"));
    assert!(
        !gw.printed().contains("root admin token"),
        "a gateway-only process needs no admin token"
    );

    let mut cmd = command();
    cmd.arg("serve")
        .args(["--only", "admin", "--admin-addr", "127.0.0.1:0"])
        .env("TOLLGATE_DATABASE_URL", &backend.database_url)
        .env("TOLLGATE_ADMIN_TOKEN", "an-admin-token-of-some-length")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let admin = Server::spawn_expecting(
        cmd,
        Some("an-admin-token-of-some-length".into()),
        false,
        true,
    )
    .await;
    assert!(!admin.printed().contains("gateway listening"));
    let (s, b) = admin
        .admin_post("/admin/tenants", &json!({"id": "split", "name": "Split"}))
        .await;
    assert_eq!(s, 201, "{b}");
}

/// A `redis-server` speaking only TLS on a free loopback port, with `pki`'s certificate;
/// `None` (with a note) when `redis-server` is not installed and backends are not required.
struct TlsRedis {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl TlsRedis {
    fn start(pki: &support::tls_server::ServerPki) -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("tollgate-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = std::process::Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args([
                "--tls-cert-file",
                &pki.cert_path,
                "--tls-key-file",
                &pki.key_path,
            ])
            .args([
                "--tls-ca-cert-file",
                &pki.ca_path,
                "--tls-auth-clients",
                "no",
            ])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var("TOLLGATE_REQUIRE_BACKENDS").as_deref() != Ok("1"),
                    "redis-server is required: {e}"
                );
                eprintln!("SKIPPED: redis-server not available ({e})");
                return None;
            }
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Self { child, port, dir })
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_works_with_a_private_ca_and_verifies_the_certificate() {
    let pki = support::tls_server::ServerPki::new("Redis Test CA");
    let Some(redis) = TlsRedis::start(&pki) else {
        return;
    };
    let mut backend = Backend::sqlite();
    backend.redis_url = Some(format!("rediss://localhost:{}/", redis.port));
    let server = Server::start_with(&backend, &["--redis-ca-file", &pki.ca_path]).await;
    let ready = server
        .http
        .get(format!("{}/readyz", server.gateway))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // The short-lived store is the TLS Redis: client_credentials goes through its rate
    // limiter, and a token comes back.
    let tid = support::unique("rediss");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let (id, secret) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"]}))
        .await;
    let res = server
        .http
        .post(server.token_url(&tid, "main"))
        .header("Authorization", basic(&id, &secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// What retrying cannot fix ends start-up at once (well within --database-wait), with one
/// line naming the option; an outage is still waited for.
#[test]
fn redis_configuration_errors_end_start_up_at_once() {
    let pki = support::tls_server::ServerPki::new("Redis Test CA");
    let Some(redis) = TlsRedis::start(&pki) else {
        return;
    };
    let tls = format!("rediss://localhost:{}/", redis.port);
    let other_ca = support::tls_server::ServerPki::new("Another CA");
    let dir = std::env::temp_dir().join(format!("tollgate-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
    let rows: Vec<(&str, Vec<String>, &str, &str)> = vec![
        (
            "a URL redis-rs refuses",
            vec!["--redis-url".into(), "redis://127.0.0.1:1/not-a-db".into()],
            "--redis-url",
            "invalid Redis URL",
        ),
        (
            "certificate checks cannot be turned off",
            vec!["--redis-url".into(), format!("{tls}#insecure")],
            "--redis-url",
            "always verified",
        ),
        (
            "a certificate the system's roots do not vouch for",
            vec!["--redis-url".into(), tls.clone()],
            "--redis-url",
            "not trusted",
        ),
        (
            "a certificate the configured CA did not issue",
            vec![
                "--redis-url".into(),
                tls.clone(),
                "--redis-ca-file".into(),
                other_ca.ca_path.clone(),
            ],
            "--redis-url",
            "not trusted",
        ),
        (
            "a CA file without TLS",
            vec![
                "--redis-url".into(),
                format!("redis://localhost:{}/", redis.port),
                "--redis-ca-file".into(),
                pki.ca_path.clone(),
            ],
            "--redis-ca-file",
            "rediss://",
        ),
        (
            "a CA file that is not PEM",
            vec![
                "--redis-url".into(),
                tls,
                "--redis-ca-file".into(),
                pki.key_path.clone(),
            ],
            "--redis-ca-file",
            "no PEM certificate",
        ),
    ];
    for (name, args, flag, says) in rows {
        let started = Instant::now();
        let out = command()
            .arg("serve")
            .args(["--database-wait", "30", "--public-addr", "127.0.0.1:0"])
            .args(["--admin-addr", "127.0.0.1:0"])
            .args(&args)
            .env("TOLLGATE_DATABASE_URL", &sqlite)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let err_lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("tollgate: error"))
            .collect();
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(err_lines.len(), 1, "{name}: {stderr}");
        assert!(
            err_lines[0].contains(flag) && err_lines[0].contains(says),
            "{name}: {}",
            err_lines[0]
        );
        assert!(
            took < Duration::from_secs(10),
            "{name}: no retrying ({took:?})"
        );
        assert!(!stderr.contains("panicked"), "{name}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
