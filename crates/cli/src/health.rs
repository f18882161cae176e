//! `/healthz` (the process is alive) and `/readyz` (database and short-lived store reachable,
//! not draining; also whether other replicas' changes are being heard), on both listeners.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;
use tollgate_core::Tollgate;

const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Registers both probes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn check<F, E>(f: F) -> Result<(), String>
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    match tokio::time::timeout(PING_TIMEOUT, f).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

async fn readyz(app: web::Data<Tollgate>) -> HttpResponse {
    let (db, store) = tokio::join!(check(app.repo.ping()), check(app.short_lived.ping()));
    let draining = app.is_draining();
    let word = |r: &Result<(), String>| if r.is_ok() { "ok" } else { "unavailable" };
    let body = json!({
        "status": if db.is_ok() && store.is_ok() && !draining { "ready" } else { "not_ready" },
        "database": word(&db),
        "store": word(&store),
        "draining": draining,
        // Informational: without a listener, other replicas' changes still arrive within
        // --cache-ttl, so this does not decide readiness.
        "invalidations": match app.invalidations.is_listening() {
            None => "none",
            Some(true) => "listening",
            Some(false) => "reconnecting",
        },
    });
    if let Err(e) = &db {
        tracing::warn!(backend = app.repo.backend(), error = %e, "readiness: database unavailable");
    }
    if let Err(e) = &store {
        tracing::warn!(backend = app.short_lived.backend(), error = %e, "readiness: short-lived store unavailable");
    }
    if db.is_ok() && store.is_ok() && !draining {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
