//! Logging: `tracing` to stdout as text or JSON. The request log line (request id, method,
//! path without the query, status, outcome) is written by `telemetry`'s middleware.

use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogFormat;
use crate::telemetry::{OtelLayer, REQUEST_SPAN_TARGET};

/// Installs the global subscriber (and the `log` bridge, for actix's own messages), with the
/// trace-export layer when there is one.
pub fn init(format: LogFormat, otel: Option<OtelLayer>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The per-request span is for trace export only: formatting its fields into every log
    // line would cost each request more than the rest of its logging.
    let not_request_span = filter_fn(|m| !(m.is_span() && m.target() == REQUEST_SPAN_TARGET));
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    let fmt = match format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_filter(not_request_span)
            .boxed(),
        LogFormat::Text => fmt.with_filter(not_request_span).boxed(),
    };
    let mut layers = vec![fmt];
    layers.extend(otel);
    // `EnvFilter` filters globally: as a per-layer filter it lost events of some callsites
    // (seen with the PostgreSQL backend: no "client authentication failed" lines at all).
    let _ = tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init();
}
