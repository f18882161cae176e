//! Observability against the real binary: spans exported over OTLP/HTTP to a receiver inside
//! the test (with the incoming W3C trace context as parent, and no secret anywhere in the
//! export), spans flushed on SIGTERM, Prometheus metrics on the admin listener that move with
//! traffic, and the metrics-only listener of gateway-only processes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use support::otlp::{attr, hex_id, otel_env, receiver};
use support::{basic, command, Backend, Server};

async fn start_traced(backend: &Backend, env: &[(&'static str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with_env(backend, &[], &env).await
}

async fn token_with_traceparent(
    server: &Server,
    tid: &str,
    authorization: &str,
    traceparent: &str,
) -> (u16, Value) {
    let res = server
        .http
        .post(server.token_url(tid, "main"))
        .header("authorization", authorization)
        .header("traceparent", traceparent)
        .form(&[("grant_type", "client_credentials"), ("scope", "read")])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

// ---------------------------------------------------------------------------------------------
// Tracing
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_request_span_reaches_the_otlp_receiver_without_secrets() {
    let otlp = receiver().await;
    let backend = Backend::sqlite();
    let server = start_traced(&backend, &otel_env(&otlp.endpoint)).await;
    let tid = support::unique("otel");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let (id, secret) = server
        .client(
            &tid,
            "main",
            json!({"grant_types": ["client_credentials"], "scope": "read"}),
        )
        .await;

    // A successful token request, inside the caller's trace.
    let (trace, parent) = (hex_id(16), hex_id(8));
    let authorization = basic(&id, &secret);
    let (status, body) = token_with_traceparent(
        &server,
        &tid,
        &authorization,
        &format!("00-{trace}-{parent}-01"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let access_token = body["access_token"].as_str().unwrap().to_owned();

    // A wrong secret, inside another trace.
    let wrong_secret = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let wrong_authorization = basic(&id, &wrong_secret);
    let failed_trace = hex_id(16);
    let (status, _) = token_with_traceparent(
        &server,
        &tid,
        &wrong_authorization,
        &format!("00-{failed_trace}-{}-01", hex_id(8)),
    )
    .await;
    assert_eq!(status, 401);

    let (resource, span) = otlp.span_of_trace(&trace).await;
    assert_eq!(span["parentSpanId"], parent.as_str(), "{span}");
    assert_eq!(span["name"], "POST /{tid}/{aid}/oauth2/token", "{span}");
    assert_eq!(span["kind"], 2, "a server span: {span}");
    assert_eq!(
        attr(&resource, "service.name").as_deref(),
        Some("tollgate-test")
    );
    for (key, want) in [
        ("http.request.method", "POST"),
        ("http.route", "/{tid}/{aid}/oauth2/token"),
        ("http.response.status_code", "200"),
        ("tollgate.tenant", tid.as_str()),
        ("tollgate.server", "main"),
        ("tollgate.client_id", id.as_str()),
        ("tollgate.grant_type", "client_credentials"),
        ("tollgate.auth_method", "client_secret_basic"),
        ("tollgate.outcome", "success"),
    ] {
        assert_eq!(attr(&span, key).as_deref(), Some(want), "{key} in {span}");
    }
    let request_id = attr(&span, "request_id").expect("request_id");
    assert!(!request_id.is_empty());

    let (_, failed) = otlp.span_of_trace(&failed_trace).await;
    for (key, want) in [
        ("http.response.status_code", "401"),
        ("tollgate.outcome", "invalid_client"),
        ("tollgate.client_id", id.as_str()),
        ("tollgate.auth_method", "client_secret_basic"),
    ] {
        assert_eq!(
            attr(&failed, key).as_deref(),
            Some(want),
            "{key} in {failed}"
        );
    }

    // Nothing secret anywhere in anything exported: not in an attribute, event or resource.
    let exports = otlp.exports();
    assert!(exports
        .iter()
        .all(|e| e.head.starts_with("post /v1/traces ")
            && e.head.contains("content-type: application/json")));
    let everything: String = exports
        .iter()
        .map(|e| String::from_utf8_lossy(&e.body).into_owned())
        .collect();
    for (what, secret) in [
        ("client secret", secret.as_str()),
        ("wrong secret", wrong_secret.as_str()),
        ("access token", access_token.as_str()),
        ("Basic header", authorization.trim_start_matches("Basic ")),
        (
            "wrong Basic header",
            wrong_authorization.trim_start_matches("Basic "),
        ),
    ] {
        assert!(!everything.contains(secret), "the {what} was exported");
    }

    // The request's log line carries the trace id.
    assert!(
        server.wait_printed(&format!("\"trace_id\":\"{trace}\"")),
        "{}",
        server.printed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_spans_are_exported_on_sigterm() {
    let otlp = receiver().await;
    let backend = Backend::sqlite();
    let mut env = otel_env(&otlp.endpoint);
    // Never on a timer within this test: only the shutdown flush can deliver the span.
    env.retain(|(k, _)| *k != "OTEL_BSP_SCHEDULE_DELAY");
    env.push(("OTEL_BSP_SCHEDULE_DELAY", "600000".to_owned()));
    let server = start_traced(&backend, &env).await;
    let trace = hex_id(16);
    let res = server
        .http
        .get(format!(
            "{}/nobody/main/.well-known/jwks.json",
            server.gateway
        ))
        .header("traceparent", format!("00-{trace}-{}-01", hex_id(8)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        otlp.spans().is_empty(),
        "exported before shutdown: the batch delay was not honoured"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (_, span) = otlp.span_of_trace(&trace).await;
    assert_eq!(
        attr(&span, "http.route").as_deref(),
        Some("/{tid}/{aid}/.well-known/jwks.json")
    );
    assert_eq!(
        attr(&span, "tollgate.outcome").as_deref(),
        Some("invalid_request"),
        "the OAuth code of the 404: {span}"
    );
    assert_eq!(
        attr(&span, "http.response.status_code").as_deref(),
        Some("404")
    );
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// Scrapes `{base}/metrics`: the text and its samples by series.
async fn scrape(http: &reqwest::Client, base: &str) -> (String, HashMap<String, f64>) {
    let res = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = res.text().await.unwrap();
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect();
    (text, samples)
}

fn get(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// Sum of every sample whose series starts with `prefix`.
fn sum(samples: &HashMap<String, f64>, prefix: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

async fn metrics_move_with_traffic(backend: &Backend) {
    let server = Server::start(backend).await;
    let tid = support::unique("metrics");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let (id, secret) = server
        .client(
            &tid,
            "main",
            json!({"grant_types": ["client_credentials"], "scope": "read"}),
        )
        .await;
    let (_, before) = scrape(&server.http, &server.admin).await;

    let post = |endpoint: &str, auth: String, form: Vec<(&'static str, String)>| {
        server
            .http
            .post(format!("{}/{tid}/main/oauth2/{endpoint}", server.gateway))
            .header("authorization", auth)
            .form(&form)
            .send()
    };
    let res = post(
        "token",
        basic(&id, &secret),
        vec![("grant_type", "client_credentials".into())],
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let res = post(
        "token",
        basic(&id, &wrong),
        vec![("grant_type", "client_credentials".into())],
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let res = post(
        "introspect",
        basic(&id, &secret),
        vec![("token", token.clone())],
    )
    .await
    .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["active"], true);

    let (text, after) = scrape(&server.http, &server.admin).await;
    let delta = |series: &str| get(&after, series) - get(&before, series);
    let token_route = r#"listener="gateway",endpoint="/{tid}/{aid}/oauth2/token""#;
    for (series, want) in [
        (
            format!(r#"tollgate_http_requests_total{{{token_route},method="POST",status="200"}}"#),
            1.0,
        ),
        (
            format!(r#"tollgate_http_requests_total{{{token_route},method="POST",status="401"}}"#),
            1.0,
        ),
        (
            r#"tollgate_http_requests_total{listener="gateway",endpoint="/{tid}/{aid}/oauth2/introspect",method="POST",status="200"}"#.to_owned(),
            1.0,
        ),
        (
            format!("tollgate_http_request_duration_seconds_count{{{token_route}}}"),
            2.0,
        ),
        (
            format!(r#"tollgate_http_request_duration_seconds_bucket{{{token_route},le="+Inf"}}"#),
            2.0,
        ),
        (
            r#"tollgate_tokens_issued_total{grant_type="client_credentials",auth_method="client_secret_basic"}"#.to_owned(),
            1.0,
        ),
        (
            r#"tollgate_client_auth_failures_total{method="client_secret_basic",reason="wrong_secret"}"#.to_owned(),
            1.0,
        ),
        (r#"tollgate_introspections_total{active="true"}"#.to_owned(), 1.0),
        (r#"tollgate_introspections_total{active="false"}"#.to_owned(), 0.0),
        ("tollgate_revocations_total".to_owned(), 0.0),
    ] {
        assert_eq!(delta(&series), want, "{series}:\n{text}");
    }
    assert!(
        get(
            &after,
            &format!("tollgate_http_request_duration_seconds_sum{{{token_route}}}")
        ) > 0.0
    );
    // Three client-authenticated requests: three lookups in each cache, hits or misses.
    for cache in ["server", "client"] {
        let series = |result: &str| {
            format!(r#"tollgate_cache_lookups_total{{cache="{cache}",result="{result}"}}"#)
        };
        assert!(after.contains_key(&series("hit")) && after.contains_key(&series("miss")));
        let looked_up = delta(&series("hit")) + delta(&series("miss"));
        assert_eq!(looked_up, 3.0, "{cache} cache:\n{text}");
    }
    // Store calls are timed under the backend that served them.
    let (db, short_lived) = match backend.name {
        "sqlite" => ("sqlite", "memory"),
        _ => ("postgres", "redis"),
    };
    assert!(
        get(
            &after,
            &format!(
                r#"tollgate_store_operation_duration_seconds_count{{store="database",backend="{db}",operation="get_client"}}"#
            )
        ) >= 1.0,
        "{text}"
    );
    assert!(
        delta(&format!(
            r#"tollgate_store_operation_duration_seconds_count{{store="short_lived",backend="{short_lived}",operation="get"}}"#
        )) >= 1.0,
        "the introspection read the revocation list:\n{text}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        after.iter().any(|(k, v)| k
            .starts_with(&format!(r#"tollgate_build_info{{version="{version}""#))
            && *v == 1.0),
        "{text}"
    );
    assert!(text.contains("# TYPE tollgate_http_request_duration_seconds histogram"));
    // Route patterns, never paths; and nothing secret.
    for (what, needle) in [
        ("tenant id (a raw path)", tid.as_str()),
        ("client secret", secret.as_str()),
        ("wrong secret", wrong.as_str()),
        ("access token", token.as_str()),
    ] {
        assert!(!text.contains(needle), "the {what} is in /metrics");
    }
    assert!(sum(&after, "tollgate_http_requests_total{listener=\"admin\"") >= 1.0);

    // /metrics is never on the public listener.
    let res = server
        .http
        .get(format!("{}/metrics", server.gateway))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
}

both_backends! {
    metrics_move_with_traffic => metrics_move_with_traffic;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_only_process_serves_metrics_on_its_own_listener() {
    let backend = Backend::sqlite();
    let mut cmd = command();
    cmd.arg("serve")
        .args([
            "--only",
            "gateway",
            "--public-addr",
            "127.0.0.1:0",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env("TOLLGATE_DATABASE_URL", &backend.database_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let gw = Server::spawn_expecting(cmd, None, true, false).await;
    let metrics = gw.metrics_url().expect("metrics listening on …");
    assert_ne!(metrics, gw.gateway);

    let res = gw
        .http
        .get(format!("{}/healthz", gw.gateway))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let (text, samples) = scrape(&gw.http, &metrics).await;
    assert_eq!(
        get(
            &samples,
            r#"tollgate_http_requests_total{listener="gateway",endpoint="/healthz",method="GET",status="200"}"#
        ),
        1.0,
        "{text}"
    );
    for probe in ["/healthz", "/readyz"] {
        let res = gw
            .http
            .get(format!("{metrics}{probe}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{probe}");
    }
    // Only those three paths: no admin API, no gateway endpoints.
    for path in ["/admin/tenants", "/t/main/.well-known/jwks.json"] {
        let res = gw
            .http
            .get(format!("{metrics}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 404, "{path}");
    }
    let res = gw
        .http
        .get(format!("{}/metrics", gw.gateway))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 404);
}

#[tokio::test]
async fn bad_observability_settings_are_configuration_errors() {
    let backend = Backend::sqlite();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = command();
        cmd.arg("serve")
            .args([
                "--public-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
            ])
            .args(args)
            .envs(env.iter().copied())
            .env("TOLLGATE_DATABASE_URL", &backend.database_url)
            .stdin(Stdio::null());
        cmd.output().unwrap()
    };
    let out = run(&["--metrics-addr", "not-an-address"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--metrics-addr") && err.contains("TOLLGATE_METRICS_ADDR"),
        "{err}"
    );

    let out = run(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("OTEL_EXPORTER_OTLP_PROTOCOL"), "{err}");
}
