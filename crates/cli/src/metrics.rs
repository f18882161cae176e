//! `GET /metrics`: Prometheus text, served without authentication on the admin listener and
//! on the optional metrics-only listener (`--metrics-addr`), both meant for private networks.
//! The metrics-only listener exists for `--only gateway` pods, which run no admin listener.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, App, HttpResponse, HttpServer};
use tollgate_core::metrics::CONTENT_TYPE;
use tollgate_core::Tollgate;

use crate::telemetry::{Listener, Observe};
use crate::{health, Fatal};

/// Registers `GET /metrics`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics));
}

async fn metrics(app: web::Data<Tollgate>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE)))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(app.metrics.render())
}

/// Starts the metrics-only listener (`/metrics`, `/healthz`, `/readyz`) on `listener` and
/// prints its address.
///
/// # Errors
/// The listener cannot be served.
pub fn serve(
    listener: TcpListener,
    data: web::Data<Tollgate>,
    shutdown: Duration,
    tracing: bool,
) -> Result<actix_web::dev::Server, Fatal> {
    let addr = listener
        .local_addr()
        .map_err(|e| Fatal::Runtime(e.to_string()))?;
    let metrics = data.metrics.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(Observe::new(Listener::Metrics, metrics.clone(), tracing))
            .configure(health::configure)
            .configure(configure)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(shutdown.as_secs())
    .listen(listener)
    .map_err(|e| Fatal::option("metrics-addr", "TOLLGATE_METRICS_ADDR", e))?
    .run();
    println!("tollgate: metrics listening on http://{addr}");
    Ok(server)
}
