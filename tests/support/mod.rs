//! Shared harness for the end-to-end suites: starts the real `tollgate` binary on free ports
//! against a chosen backend, reads the addresses it prints, and offers small HTTP helpers.
//!
//! Backends: SQLite + in-process store always; PostgreSQL + Redis when scripts/test exported
//! `TOLLGATE_TEST_POSTGRES_URL` and `TOLLGATE_TEST_REDIS_URL`. Under `CI=true` scripts/test
//! sets `TOLLGATE_REQUIRE_BACKENDS=1`, and a missing backend fails instead of skipping.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::missing_panics_doc)]

pub mod flow;
pub mod material;
pub mod otlp;
pub mod tls_server;

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};

/// Where a test's server keeps its data.
#[derive(Debug, Clone)]
pub struct Backend {
    /// `sqlite` or `postgres`.
    pub name: &'static str,
    /// `TOLLGATE_DATABASE_URL`.
    pub database_url: String,
    /// `TOLLGATE_REDIS_URL`.
    pub redis_url: Option<String>,
    /// Folder removed when the backend is dropped (SQLite).
    pub dir: Option<PathBuf>,
}

/// Whether a missing backend or test tool fails the test instead of skipping it
/// (`TOLLGATE_REQUIRE_BACKENDS=1`, which scripts/test exports under `CI=true`).
pub fn require_backends() -> bool {
    std::env::var("TOLLGATE_REQUIRE_BACKENDS").as_deref() == Ok("1")
}

impl Backend {
    /// A fresh SQLite database file in its own temporary folder, with the in-process store.
    pub fn sqlite() -> Self {
        let dir =
            std::env::temp_dir().join(format!("tollgate-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            name: "sqlite",
            database_url: format!("sqlite://{}?mode=rwc", dir.join("tollgate.db").display()),
            redis_url: None,
            dir: Some(dir),
        }
    }

    /// PostgreSQL + Redis from the environment; `None` (with a loud note) when absent and
    /// not required.
    pub fn postgres() -> Option<Self> {
        let pg = std::env::var("TOLLGATE_TEST_POSTGRES_URL")
            .ok()
            .filter(|v| !v.is_empty());
        let redis = std::env::var("TOLLGATE_TEST_REDIS_URL")
            .ok()
            .filter(|v| !v.is_empty());
        match (pg, redis) {
            (Some(pg), Some(redis)) => Some(Self {
                name: "postgres",
                database_url: pg,
                redis_url: Some(redis),
                dir: None,
            }),
            _ => {
                assert!(
                    !require_backends(),
                    "TOLLGATE_TEST_POSTGRES_URL / TOLLGATE_TEST_REDIS_URL are not set but TOLLGATE_REQUIRE_BACKENDS=1"
                );
                eprintln!("SKIPPED: PostgreSQL/Redis backend not configured; run scripts/test to include it");
                None
            }
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A running `tollgate serve`.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT` of the gateway.
    pub gateway: String,
    /// `http://127.0.0.1:PORT` of the admin API.
    pub admin: String,
    /// The root admin token (configured or generated).
    pub admin_token: String,
    /// Everything the process printed so far (stdout and stderr).
    pub output: Arc<Mutex<String>>,
    /// HTTP client.
    pub http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_tollgate")
}

/// A `tollgate` command with a clean environment for the contract's variables.
pub fn command() -> Command {
    let mut cmd = Command::new(binary());
    for (k, _) in std::env::vars() {
        if (k.starts_with("TOLLGATE_") && !k.starts_with("TOLLGATE_TEST_"))
            || k.starts_with("OTEL_")
        {
            cmd.env_remove(k);
        }
    }
    cmd.env("TOLLGATE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info");
    cmd
}

fn pump(
    reader: impl std::io::Read + Send + 'static,
    out: Arc<Mutex<String>>,
    lines: Option<std::sync::mpsc::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            out.lock().unwrap().push_str(&line);
            out.lock().unwrap().push('\n');
            if let Some(tx) = &lines {
                let _ = tx.send(line);
            }
        }
    });
}

/// A base64 master key, fresh per call (two random UUIDs' bytes: 244 random bits).
pub fn master_key() -> String {
    let k: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| *u.as_bytes())
        .collect();
    STANDARD.encode(k)
}

impl Server {
    /// Starts `tollgate serve` on free ports against `backend`.
    pub async fn start(backend: &Backend) -> Self {
        Self::start_with(backend, &[]).await
    }

    /// Starts with extra `serve` arguments.
    pub async fn start_with(backend: &Backend, extra: &[&str]) -> Self {
        Self::start_with_env(backend, extra, &[]).await
    }

    /// Starts with extra `serve` arguments and environment variables.
    pub async fn start_with_env(backend: &Backend, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = command();
        cmd.envs(env.iter().copied());
        cmd.arg("serve")
            .args([
                "--public-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
            ])
            .env("TOLLGATE_DATABASE_URL", &backend.database_url)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut configured_token = env
            .iter()
            .find(|(k, _)| *k == "TOLLGATE_ADMIN_TOKEN")
            .map(|(_, v)| (*v).to_owned());
        if let Some(redis) = &backend.redis_url {
            // A shared database keeps its first generated token; give each process its own.
            let token = configured_token
                .clone()
                .unwrap_or_else(|| format!("test-admin-{}", uuid::Uuid::new_v4().simple()));
            cmd.env("TOLLGATE_REDIS_URL", redis)
                .env("TOLLGATE_MASTER_KEY", shared_master_key())
                .env("TOLLGATE_ADMIN_TOKEN", &token);
            configured_token = Some(token);
        }
        Self::spawn(cmd, configured_token).await
    }

    /// Spawns a prepared command and waits (bounded) for both listeners.
    pub async fn spawn(cmd: Command, configured_token: Option<String>) -> Self {
        Self::spawn_expecting(cmd, configured_token, true, true).await
    }

    /// Spawns and waits for the listeners `--only` leaves running.
    pub async fn spawn_expecting(
        mut cmd: Command,
        configured_token: Option<String>,
        want_gateway: bool,
        want_admin: bool,
    ) -> Self {
        let mut child = cmd.spawn().expect("spawn tollgate");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        pump(child.stdout.take().unwrap(), output.clone(), Some(tx));
        pump(child.stderr.take().unwrap(), output.clone(), None);
        let (mut gateway, mut admin, mut token) = (None, None, configured_token);
        let deadline = Instant::now() + Duration::from_secs(60);
        while (want_gateway && gateway.is_none()) || (want_admin && admin.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok(line) => {
                    if let Some(url) = after(&line, "gateway listening on ") {
                        gateway = Some(url);
                    } else if let Some(url) = after(&line, "admin API listening on ") {
                        admin = Some(url);
                    } else if let Some(t) =
                        line.split("(shown once, only its hash is kept): ").nth(1)
                    {
                        token = Some(t.trim().to_owned());
                    }
                }
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!(
                            "tollgate exited early ({status}):\n{}",
                            output.lock().unwrap()
                        );
                    }
                    if Instant::now() >= deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "tollgate did not start in time:\n{}",
                            output.lock().unwrap()
                        );
                    }
                }
            }
        }
        let admin_token = match (want_admin, token) {
            (true, Some(t)) => t,
            (true, None) => {
                // No orphan process when the test fails here.
                let _ = child.kill();
                let _ = child.wait();
                panic!("no admin token configured or printed")
            }
            (false, _) => String::new(),
        };
        Self {
            child,
            gateway: gateway.unwrap_or_default(),
            admin: admin.unwrap_or_default(),
            admin_token,
            output,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    /// `{gateway}/{tid}/{aid}/oauth2/token`.
    pub fn token_url(&self, tid: &str, aid: &str) -> String {
        format!("{}/{tid}/{aid}/oauth2/token", self.gateway)
    }

    /// POST JSON to the admin API with the root token; returns status and body.
    pub async fn admin_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.admin))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Any admin call with the root token.
    pub async fn admin_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(&self.admin_token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Creates a tenant and a server (ES256 unless `extra` says otherwise).
    pub async fn tenant_and_server(&self, tid: &str, aid: &str, extra: Value) -> Value {
        let (s, b) = self
            .admin_post(
                "/admin/tenants",
                &json!({"id": tid, "name": format!("Tenant {tid}")}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let mut body = json!({"id": aid, "name": "Main"});
        if let (Some(o), Value::Object(e)) = (body.as_object_mut(), extra) {
            o.extend(e);
        }
        let (s, b) = self
            .admin_post(&format!("/admin/tenants/{tid}/servers"), &body)
            .await;
        assert_eq!(s, 201, "{b}");
        b
    }

    /// Registers a client; returns `(client_id, client_secret)`.
    pub async fn client(&self, tid: &str, aid: &str, metadata: Value) -> (String, String) {
        let (s, b) = self
            .admin_post(
                &format!("/admin/tenants/{tid}/servers/{aid}/clients"),
                &metadata,
            )
            .await;
        assert_eq!(s, 201, "{b}");
        (
            b["client_id"].as_str().unwrap().to_owned(),
            b["client_secret"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Waits (at most 10 s) until the output contains `needle`; the log pump runs on its own
    /// thread, so a line can arrive just after the response that caused it.
    pub fn wait_printed(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.output.lock().unwrap().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Everything printed so far.
    pub fn printed(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// `http://127.0.0.1:PORT` of the metrics-only listener (`--metrics-addr`), once printed.
    pub fn metrics_url(&self) -> Option<String> {
        if !self.wait_printed("metrics listening on ") {
            return None;
        }
        self.printed()
            .lines()
            .find_map(|l| after(l, "metrics listening on "))
    }

    /// The process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status once the process has exited, without waiting.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

fn after(line: &str, marker: &str) -> Option<String> {
    line.split(marker)
        .nth(1)
        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
}

/// One master key for every process that shares the PostgreSQL test database.
pub fn shared_master_key() -> &'static str {
    // Fixed for the shared test database only: keys sealed by one test process must open in
    // another. Generated per run by scripts/test when it sets TOLLGATE_TEST_MASTER_KEY.
    static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        std::env::var("TOLLGATE_TEST_MASTER_KEY").unwrap_or_else(|_| STANDARD.encode([7u8; 32]))
    })
}

/// A unique lowercase id for tenants in shared databases.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    )
}

/// `Authorization: Basic` value for a client (RFC 6749 §2.3.1 form-encoding is a no-op for
/// Tollgate's URL-safe ids and secrets).
pub fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// Runs `f` against SQLite, then against PostgreSQL + Redis when available.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident => $body:ident;)+) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let backend = $crate::support::Backend::sqlite();
                    super::$body(&backend).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(backend) = $crate::support::Backend::postgres() {
                        super::$body(&backend).await;
                    }
                }
            )+
        }
    };
}
