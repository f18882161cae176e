//! The process lifecycle around the listeners: waiting at start-up for PostgreSQL and Redis
//! (bounded, with backoff, saying what it waits for), and draining at shutdown (responses
//! close their connections once draining has begun, so keep-alive clients move elsewhere).

use std::future::Future;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web;
use tollgate_core::store::StoreError;
use tollgate_core::Tollgate;

/// First pause between attempts; doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Deadline for one attempt (the stores bound their own connects more tightly).
const ATTEMPT_DEADLINE: Duration = Duration::from_secs(10);

/// A URL fit for logs: scheme, host, port and path; never the user, password or query
/// (PostgreSQL accepts `?password=`).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{host}{port}{}", u.scheme(), u.path())
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

/// Runs `connect` until it succeeds, a non-transient error occurs, or `wait` has passed,
/// pausing with exponential backoff and logging each wait as
/// `waiting for {what} at {target} (attempt N, next in Xs)`. `wait` zero: one attempt.
///
/// # Errors
/// The last error once the time is up (or at once when it is not an outage).
pub async fn wait_for<T, F, Fut>(
    what: &str,
    target: &str,
    wait: Duration,
    mut connect: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + wait;
    let mut backoff = BACKOFF_MIN;
    let mut attempt = 1u32;
    loop {
        let result = match tokio::time::timeout(ATTEMPT_DEADLINE, connect()).await {
            Ok(r) => r,
            Err(_) => Err(StoreError::Unavailable(
                "connection attempt timed out".into(),
            )),
        };
        let error = match result {
            Ok(v) => {
                if attempt > 1 {
                    tracing::info!("{what} at {target} is reachable (attempt {attempt})");
                }
                return Ok(v);
            }
            // Only an outage is worth waiting out.
            Err(e @ StoreError::Unavailable(_)) => e,
            Err(e) => return Err(e),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(error);
        }
        let pause = backoff.min(left);
        tracing::warn!(
            attempt,
            error = %error,
            "waiting for {what} at {target} (attempt {attempt}, next in {:.1}s)",
            pause.as_secs_f64()
        );
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
        attempt += 1;
    }
}

/// Once shutdown has begun, every response asks the client to close its connection, so that
/// keep-alive clients reconnect (through the load balancer, to another replica) instead of
/// finding the connection closed under them.
pub async fn close_when_draining(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let draining = req
        .app_data::<web::Data<Tollgate>>()
        .is_some_and(|app| app.is_draining());
    let mut res = next.call(req).await?;
    if draining {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_no_credentials() {
        assert_eq!(
            redact_url(
                "postgres://tollgate:s3cret@db.internal:5432/tollgate?sslmode=require&password=x"
            ),
            "postgres://db.internal:5432/tollgate"
        );
        assert_eq!(
            redact_url("redis://:pw@cache:6379/0"),
            "redis://cache:6379/0"
        );
        assert_eq!(redact_url("not a url"), "(unparsable URL)");
    }

    #[tokio::test]
    async fn waits_with_backoff_until_reachable() {
        let mut calls = 0;
        let start = Instant::now();
        let v = wait_for("the database", "x", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(StoreError::Unavailable("refused".into()))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(v, 3);
        // 250 ms, then 500 ms.
        assert!(start.elapsed() >= Duration::from_millis(700));
    }

    #[tokio::test]
    async fn gives_up_at_the_deadline_or_at_once() {
        let start = Instant::now();
        let r: Result<(), _> =
            wait_for("the database", "x", Duration::from_millis(600), || async {
                Err(StoreError::Unavailable("refused".into()))
            })
            .await;
        assert!(r.is_err());
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(600) && took < Duration::from_secs(3),
            "{took:?}"
        );

        let mut calls = 0;
        let r: Result<(), _> = wait_for("the database", "x", Duration::ZERO, || {
            calls += 1;
            async { Err(StoreError::Unavailable("refused".into())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1, "no wait: one attempt");

        let mut calls = 0;
        let r: Result<(), _> = wait_for("the database", "x", Duration::from_secs(5), || {
            calls += 1;
            async { Err(StoreError::Migrate("bad".into())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1, "not an outage: no wait");
    }
}
