//! Request telemetry: the middleware every listener wraps (request id, one `tracing` span per
//! request, the request log line, HTTP metrics), and the OpenTelemetry trace export, which is
//! on only when `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set.
//!
//! The span carries the route, method, status, tenant, server, client id, grant type,
//! authentication method, outcome and request id (handlers and core record theirs through
//! `Span::current()`); never a secret, token, assertion, certificate or password. It is seen
//! only by the OpenTelemetry layer: with export off it is disabled and costs nothing.

use std::fmt;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{SpanExporter, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tollgate_core::metrics::Metrics;
use tollgate_core::oauth::ErrorCode;
use tracing::field::Empty;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::{Layer, Registry};

use crate::Fatal;

/// Target of the per-request span; the log formatter leaves it out (see `logging::init`).
pub const REQUEST_SPAN_TARGET: &str = "tollgate::request";

/// Largest collector response body read (OTLP answers are a few bytes).
const MAX_EXPORT_RESPONSE: usize = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// OpenTelemetry export
// ---------------------------------------------------------------------------------------------

/// Trace export, when configured: the provider to flush at shutdown.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// The tracing layer that feeds spans to the exporter.
pub type OtelLayer = Box<dyn Layer<Registry> + Send + Sync>;

fn env_set(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Whether trace export is configured: an OTLP endpoint is set, and neither
/// `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` turns it off.
#[must_use]
pub fn export_configured() -> bool {
    let endpoint = env_set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| env_set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .is_some();
    let disabled = env_set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env_set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    endpoint && !disabled
}

/// The exporter's timeout: `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or `OTEL_EXPORTER_OTLP_TIMEOUT`
/// (milliseconds), default 10 s.
fn export_timeout() -> Duration {
    env_set("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        .or_else(|| env_set("OTEL_EXPORTER_OTLP_TIMEOUT"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

fn otel_error(var: &str, e: impl fmt::Display) -> Fatal {
    Fatal::Config(format!("invalid {var}: {e}"))
}

impl Telemetry {
    /// Sets up OTLP/HTTP trace export when configured (see [`export_configured`]), with
    /// requests sent by `runtime`. Returns the layer to install and the handle to flush.
    ///
    /// # Errors
    /// A bad OTLP endpoint or protocol: a configuration error naming the variable.
    pub fn init(runtime: &tokio::runtime::Handle) -> Result<(Self, Option<OtelLayer>), Fatal> {
        if !export_configured() {
            return Ok((Self::default(), None));
        }
        if let Some(p) = env_set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| env_set("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            if !matches!(p.trim(), "http/protobuf" | "http/json") {
                return Err(otel_error(
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    format!("`{p}` is not supported: use http/protobuf (default) or http/json"),
                ));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(export_timeout())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| otel_error("OTEL_EXPORTER_OTLP_ENDPOINT", e))?;
        let exporter = SpanExporter::builder()
            .with_http()
            .with_http_client(ExportClient {
                http,
                runtime: runtime.clone(),
            })
            .build()
            .map_err(|e| otel_error("OTEL_EXPORTER_OTLP_ENDPOINT", e))?;
        // The builder reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; without either
        // naming the service, it is `tollgate` rather than the SDK's `unknown_service`.
        let named = env_set("OTEL_SERVICE_NAME").is_some()
            || env_set("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| {
                a.split(',')
                    .any(|kv| kv.trim_start().starts_with("service.name="))
            });
        let mut resource = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ));
        if !named {
            resource = resource.with_service_name("tollgate");
        }
        let resource = resource.build();
        // The batch processor exports from its own thread; sampling follows OTEL_TRACES_SAMPLER
        // (default: parent-based, always on) and batching the OTEL_BSP_* variables.
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("tollgate"))
            .with_location(false)
            .with_threads(false)
            // Tollgate's own spans and events only: no driver or framework internals.
            .with_filter(
                Targets::new()
                    .with_target("tollgate", LevelFilter::INFO)
                    .with_default(LevelFilter::OFF),
            )
            .boxed();
        Ok((
            Self {
                provider: Some(provider),
            },
            Some(layer),
        ))
    }

    /// Exports what is still buffered and stops the exporter (bounded by its timeout).
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // Blocking: waits for the export thread, whose requests run on this runtime.
        let done = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match done {
            Ok(Ok(())) => tracing::info!("trace export flushed"),
            Ok(Err(e)) => tracing::warn!(error = %e, "trace export did not flush cleanly"),
            Err(e) => tracing::warn!(error = %e, "trace export shutdown failed"),
        }
    }
}

/// The exporter's HTTP client: the workspace's reqwest (rustls, aws-lc-rs), driven on the
/// process's tokio runtime. The batch processor awaits it from its own thread, where no
/// runtime is entered, so each request is spawned onto the runtime and its handle awaited.
#[derive(Debug)]
struct ExportClient {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for ExportClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let http = self.http.clone();
        let (status, body) = self
            .runtime
            .spawn(async move {
                let mut res = http.execute(request).await?;
                let status = res.status();
                let mut body = Vec::new();
                while let Some(chunk) = res.chunk().await? {
                    if body.len() + chunk.len() > MAX_EXPORT_RESPONSE {
                        break;
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok::<_, reqwest::Error>((status, body))
            })
            .await??;
        Ok(Response::builder().status(status).body(Bytes::from(body))?)
    }
}

/// W3C trace context from an actix header map.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Request middleware
// ---------------------------------------------------------------------------------------------

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Which listener a request arrived on (the `listener` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The public gateway.
    Gateway,
    /// The admin API.
    Admin,
    /// The metrics-only listener (`--metrics-addr`).
    Metrics,
}

impl Listener {
    fn label(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Admin => "admin",
            Self::Metrics => "metrics",
        }
    }
}

#[derive(Debug)]
struct Shared {
    listener: &'static str,
    metrics: Arc<Metrics>,
    tracing: bool,
    propagator: TraceContextPropagator,
}

/// The request middleware: request id, span, log line and metrics for every request.
#[derive(Debug, Clone)]
pub struct Observe(Rc<Shared>);

impl Observe {
    /// For `listener`; `tracing` says whether spans are exported.
    #[must_use]
    pub fn new(listener: Listener, metrics: Arc<Metrics>, tracing: bool) -> Self {
        Self(Rc::new(Shared {
            listener: listener.label(),
            metrics,
            tracing,
            propagator: TraceContextPropagator::new(),
        }))
    }
}

impl<S, B> Transform<S, ServiceRequest> for Observe
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = ObserveService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ObserveService {
            service: Rc::new(service),
            shared: self.0.clone(),
        }))
    }
}

/// The service [`Observe`] wraps around each listener's app.
#[derive(Debug)]
pub struct ObserveService<S> {
    service: Rc<S>,
    shared: Rc<Shared>,
}

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

impl<S, B> Service<ServiceRequest> for ObserveService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let start = Instant::now();
        let shared = self.shared.clone();
        let id = request_id(req.headers());
        let method = method_label(req.method());
        let path: String = req.path().chars().take(256).collect();
        let (span, route) = if shared.tracing && !is_probe(&path) {
            // Before routing the pattern is found by matching the path again; only traced
            // requests pay for that (the span's name must be known when it starts).
            let route = req.match_pattern();
            let span = request_span(method, route.as_deref(), &id);
            let parent = shared.propagator.extract(&Headers(req.headers()));
            // Fails only when the span is disabled (filtered out): nothing to link then.
            let _ = span.set_parent(parent);
            (span, route)
        } else {
            (tracing::Span::none(), None)
        };
        let fut = span.in_scope(|| self.service.call(req));
        Box::pin(async move {
            let mut result = fut.instrument(span.clone()).await;
            let elapsed = start.elapsed();
            let finished = match &mut result {
                Ok(res) => {
                    if let Ok(v) = HeaderValue::from_str(&id) {
                        res.headers_mut().insert(REQUEST_ID, v);
                    }
                    Finished {
                        status: res.status().as_u16(),
                        code: res
                            .response()
                            .extensions()
                            .get::<ErrorCode>()
                            .map(|c| c.as_str()),
                        // After routing this is an index walk, not a match.
                        route: route.or_else(|| res.request().match_pattern()),
                    }
                }
                Err(e) => Finished {
                    status: e.as_response_error().status_code().as_u16(),
                    code: None,
                    route,
                },
            };
            finished.record(&shared, &span, method, elapsed, &id, &path);
            result
        })
    }
}

/// How a request ended.
struct Finished {
    status: u16,
    /// The OAuth error code, when the gateway answered with one.
    code: Option<&'static str>,
    route: Option<String>,
}

impl Finished {
    fn outcome(&self) -> &'static str {
        match (self.code, self.status) {
            (Some(code), _) => code,
            (None, 0..=399) => "success",
            (None, 400..=499) => "client_error",
            (None, _) => "server_error",
        }
    }

    fn record(
        self,
        shared: &Shared,
        span: &tracing::Span,
        method: &'static str,
        elapsed: Duration,
        id: &str,
        path: &str,
    ) {
        let status = self.status;
        let outcome = self.outcome();
        // Route patterns only: a raw path would make the label set unbounded.
        let endpoint = self.route.unwrap_or_else(|| "unmatched".to_owned());
        shared
            .metrics
            .observe_http(shared.listener, endpoint, method, status, elapsed);
        let trace_id = if span.is_disabled() {
            None
        } else {
            span.record("http.response.status_code", status);
            span.record("tollgate.outcome", outcome);
            if status >= 500 {
                span.record("otel.status_code", "ERROR");
            }
            let cx = span.context();
            let sc = cx.span().span_context().clone();
            sc.is_valid().then(|| sc.trace_id().to_string())
        };
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        // `trace_id` is left out of the line when there is none (an absent `Option`).
        let trace_id = trace_id.as_deref();
        if status >= 500 {
            tracing::warn!(request_id = %id, trace_id, %method, %path, status, micros, outcome, "request");
        } else {
            tracing::info!(request_id = %id, trace_id, %method, %path, status, micros, outcome, "request");
        }
    }
}

/// The span of one request. Fields are declared here (`Empty` until recorded) because
/// `tracing` only records fields a span was created with.
fn request_span(method: &'static str, route: Option<&str>, id: &str) -> tracing::Span {
    tracing::info_span!(
        target: REQUEST_SPAN_TARGET,
        "request",
        otel.name = %SpanName(method, route),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = Empty,
        tollgate.tenant = Empty,
        tollgate.server = Empty,
        tollgate.client_id = Empty,
        tollgate.grant_type = Empty,
        tollgate.auth_method = Empty,
        tollgate.outcome = Empty,
        request_id = %id,
    )
}

/// `{method} {route}` (OpenTelemetry HTTP server span name), or the method alone.
struct SpanName<'a>(&'static str, Option<&'a str>);

impl fmt::Display for SpanName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(route) => write!(f, "{} {route}", self.0),
            None => f.write_str(self.0),
        }
    }
}

/// Probes and scrapes are counted but not traced: they would drown the requests that matter.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// A bounded method label.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The caller's `X-Request-Id` when it is short printable ASCII, else a fresh one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| tollgate_core::secrets::random_token(12), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_prefers_the_oauth_code() {
        let f = |status, code| Finished {
            status,
            code,
            route: None,
        };
        assert_eq!(f(200, None).outcome(), "success");
        assert_eq!(f(404, None).outcome(), "client_error");
        assert_eq!(f(503, None).outcome(), "server_error");
        assert_eq!(f(401, Some("invalid_client")).outcome(), "invalid_client");
    }

    #[test]
    fn span_name_is_method_and_route() {
        assert_eq!(
            SpanName("POST", Some("/{tid}/{aid}/oauth2/token")).to_string(),
            "POST /{tid}/{aid}/oauth2/token"
        );
        assert_eq!(SpanName("GET", None).to_string(), "GET");
    }

    #[test]
    fn unknown_methods_share_one_label() {
        let m = Method::from_bytes(b"BREW").unwrap_or(Method::GET);
        assert_eq!(method_label(&m), "other");
        assert_eq!(method_label(&Method::POST), "POST");
    }
}
