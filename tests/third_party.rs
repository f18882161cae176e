//! A third-party client library drives Tollgate: openid-client (npm, pinned exactly in
//! tests/third_party/package-lock.json, installed by this test under the target directory)
//! runs the device flow (RFC 8628) and a down-scoped token exchange (RFC 8693) against the
//! real binary, on both backends. The user's side — entering the code on /device, logging in,
//! consenting — is driven over HTTP here while the library polls.
//!
//! Without node/npm (or when the install fails) the test skips loudly, unless
//! `TOLLGATE_REQUIRE_BACKENDS=1` or `CI=true`, where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::flow::{user, verify_with_jwks, Agent};
use support::{Backend, Server};

const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
const API: &str = "https://api.example";
const PASSWORD: &str = "correct horse battery";
/// The script and the pinned package manifest.
const SOURCES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/third_party");
const FILES: [&str; 3] = [
    "package.json",
    "package-lock.json",
    "device_and_exchange.mjs",
];

fn required() -> bool {
    support::require_backends() || std::env::var("CI").as_deref() == Ok("true")
}

/// Runs `cmd` to completion within `limit`, killing it after; `Err` names what went wrong.
fn run_bounded(mut cmd: Command, what: &str, limit: Duration) -> Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot run ({e})"))?;
    let output = Arc::new(Mutex::new(String::new()));
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let out = output.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(pipe).read_to_string(&mut text);
            out.lock().unwrap().push_str(&text);
        });
    }
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().map_err(|e| format!("{what}: {e}"))? {
            // The pumps finish right after the pipes close.
            std::thread::sleep(Duration::from_millis(50));
            return if status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{what} failed ({status}):\n{}",
                    output.lock().unwrap()
                ))
            };
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} did not finish within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Copies the script and manifest under the target directory and installs the locked
/// packages there (`npm ci`), once per test process.
fn install() -> Result<PathBuf, String> {
    for tool in ["node", "npm"] {
        let mut cmd = Command::new(tool);
        cmd.arg("--version");
        run_bounded(cmd, tool, Duration::from_secs(30))?;
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("third-party-node");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for f in FILES {
        std::fs::copy(Path::new(SOURCES).join(f), dir.join(f)).map_err(|e| format!("{f}: {e}"))?;
    }
    let mut cmd = Command::new("npm");
    cmd.args([
        "ci",
        "--ignore-scripts",
        "--no-audit",
        "--no-fund",
        "--prefer-offline",
    ])
    .current_dir(&dir);
    run_bounded(cmd, "npm ci (openid-client)", Duration::from_secs(300))?;
    Ok(dir)
}

/// The installed folder, or `None` (skipped, loudly) when node/npm are unusable here and
/// nothing requires them.
fn node_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match DIR.get_or_init(install) {
        Ok(dir) => Some(dir),
        Err(e) => {
            assert!(
                !required(),
                "openid-client is required (TOLLGATE_REQUIRE_BACKENDS=1 or CI=true): {e}"
            );
            eprintln!("SKIPPED: openid-client unavailable: {e}");
            None
        }
    }
}

/// The running script: its stdout lines as they come, stderr kept for failure messages.
struct Script {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Script {
    fn start(dir: &Path, args: &[&str]) -> Self {
        let mut child = Command::new("node")
            .arg(dir.join("device_and_exchange.mjs"))
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn node");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut e = err.lock().unwrap();
                e.push_str(&line);
                e.push('\n');
            }
        });
        Self {
            child,
            lines,
            stderr,
        }
    }

    /// The rest of the next stdout line starting with `prefix`, within 60 s.
    async fn line(&mut self, prefix: &str) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Ok(None) => {
                    // Closed stdout: the script ended; let its stderr pump catch up.
                    let status = self.child.wait().unwrap();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    panic!(
                        "the script ended ({status}) before printing {prefix:?}:\n{}",
                        self.stderr.lock().unwrap()
                    );
                }
                Err(_) => panic!(
                    "no {prefix:?} line within 60 s:\n{}",
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }
}

async fn openid_client_device_flow_and_token_exchange(backend: &Backend) {
    let Some(dir) = node_dir() else { return };
    let server = Server::start_with(backend, &["--device-code-interval", "1"]).await;
    let tid = support::unique("tp");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let (client_id, secret) = server
        .client(
            &tid,
            "main",
            json!({
                "client_name": "Kitchen CLI",
                "grant_types": [DEVICE_CODE, TOKEN_EXCHANGE, "refresh_token"],
                "scope": "openid profile read write",
                "audience": [API],
                "token_endpoint_auth_method": "client_secret_basic"
            }),
        )
        .await;
    let alice = user(
        &server,
        &tid,
        "main",
        "alice",
        PASSWORD,
        json!({"name": "Alice"}),
    )
    .await;
    let issuer = format!("{}/{tid}/main", server.gateway);

    let mut script = Script::start(
        dir,
        &[
            &issuer,
            &client_id,
            &secret,
            "openid profile read write",
            "read",
            API,
        ],
    );
    let user_code = script.line("USER_CODE ").await;
    // The library is polling now; the user approves on /device.
    let done = Agent::new()
        .enter_device_code(
            &issuer,
            &user_code,
            "Kitchen CLI",
            "alice",
            PASSWORD,
            "allow",
        )
        .await;
    assert!(done.ends_with("/device?done=approved"), "{done}");
    let result: Value = serde_json::from_str(&script.line("RESULT ").await).unwrap();
    let status = script.child.wait().unwrap();
    assert!(status.success(), "{status}");

    assert_eq!(result["verification_uri"], format!("{issuer}/device"));
    let device = &result["device"];
    // oauth4webapi lower-cases token_type; the server sends `Bearer`.
    assert!(
        device["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{device}"
    );
    assert_eq!(device["scope"], "openid profile read write");
    assert!(device["refresh_token"]
        .as_str()
        .is_some_and(|t| !t.is_empty()));
    let id = &device["id_token_claims"];
    assert_eq!(
        (id["iss"].as_str(), id["aud"].as_str(), id["sub"].as_str()),
        (
            Some(issuer.as_str()),
            Some(client_id.as_str()),
            Some(alice.as_str())
        ),
        "{id}"
    );

    let exchanged = &result["exchanged"];
    assert_eq!(exchanged["issued_token_type"], AT, "{exchanged}");
    assert!(
        exchanged["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{exchanged}"
    );
    assert_eq!(exchanged["scope"], "read", "down-scoped: {exchanged}");
    assert!(exchanged["expires_in"].as_u64().is_some_and(|s| s > 0));
    assert_eq!(exchanged["refresh_token"], Value::Null, "access token only");
    // The exchanged JWT verifies against the published JWKS, for the requested audience,
    // about the same user, with the narrowed scope; impersonation carries no `act`.
    let claims = verify_with_jwks(
        &server,
        &issuer,
        exchanged["access_token"].as_str().unwrap(),
        API,
    )
    .await;
    assert_eq!(claims["sub"], alice.as_str(), "{claims}");
    assert_eq!(claims["scope"], "read");
    assert_eq!(claims["client_id"], client_id.as_str());
    assert!(claims.get("act").is_none(), "{claims}");
    assert_ne!(exchanged["access_token"], device["access_token"]);
}

both_backends! {
    openid_client_device_flow_and_token_exchange => openid_client_device_flow_and_token_exchange;
}
