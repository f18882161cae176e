//! The `tollgate` command line: help text, configuration errors (one line, naming the option,
//! exit code 2), `migrate`, `--only`, and the embedded default's first-start behaviour (the
//! generated root token printed once and kept as a hash, the generated master key file).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::net::TcpListener;
use std::process::Stdio;

use serde_json::{json, Value};
use support::{basic, command, Backend, Server};

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
        let out = command()
            .arg("serve")
            .args(&args)
            .envs(env)
            .stdin(Stdio::null())
            .output()
            .unwrap();
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
