//! `tollgate serve` and `tollgate migrate`: open the stores, resolve the master key and the
//! root admin token, bind the listeners, and run until a shutdown signal, draining first.

use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, App, HttpServer};
use tollgate_admin::AdminAuth;
use tollgate_core::keys::MasterKey;
use tollgate_core::manage::{self, rotation};
use tollgate_core::secrets::AdminToken;
use tollgate_core::store::memory::MemoryStore;
use tollgate_core::store::sql::PostgresRepository;
use tollgate_core::store::{self, Repository, ShortLivedStore, StoreError};
use tollgate_core::{clock, invalidation, Tollgate, TollgateOptions};

use crate::config::{Config, MasterKeySource, Only, SecretArg, Serve};
use crate::telemetry::{self, Listener, Observe};
use crate::{health, lifecycle, Fatal};

const ROOT_TOKEN: &str = "root";

async fn open_repo(cfg: &Config, migrate: bool) -> Result<Arc<dyn Repository>, Fatal> {
    // A database server may still be starting (a pod beside it, a failover): wait for it,
    // boundedly. An embedded SQLite file either opens or does not.
    let database_url = cfg.database_url.expose();
    let wait = if database_url.starts_with("sqlite:") {
        Duration::ZERO
    } else {
        cfg.database_wait
    };
    let target = lifecycle::redact_url(database_url);
    let fatal = |e| {
        Fatal::option(
            "database-url",
            "TOLLGATE_DATABASE_URL",
            format!("cannot open the database at {target}: {e}"),
        )
    };
    if !wait.is_zero() {
        lifecycle::wait_for("the database", &target, wait, || {
            PostgresRepository::probe(database_url)
        })
        .await
        .map_err(fatal)?;
    }
    let repo = store::open_repository(database_url).await.map_err(fatal)?;
    if migrate {
        repo.migrate()
            .await
            .map_err(|e| Fatal::Runtime(format!("database migration failed: {e}")))?;
        tracing::info!(backend = repo.backend(), "database migrations applied");
    }
    Ok(repo)
}

/// `tollgate migrate`.
pub async fn migrate(cfg: &Config) -> Result<(), Fatal> {
    let repo = open_repo(cfg, true).await?;
    repo.close().await;
    println!("tollgate: migrations applied ({})", repo.backend());
    Ok(())
}

fn master_key(source: &MasterKeySource) -> Result<MasterKey, Fatal> {
    let flag = |m: String| Fatal::option("master-key", "TOLLGATE_MASTER_KEY", m);
    match source {
        MasterKeySource::Given(text) => {
            MasterKey::from_base64(text).map_err(|e| flag(e.to_string()))
        }
        MasterKeySource::Ephemeral => {
            tracing::warn!("TOLLGATE_MASTER_KEY is not set and the database is in memory: using a throwaway master key");
            Ok(MasterKey::generate().0)
        }
        MasterKeySource::File(path) => match std::fs::read_to_string(path) {
            Ok(text) => MasterKey::from_base64(&text)
                .map_err(|e| flag(format!("key file {} is unusable: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (key, text) = MasterKey::generate();
                write_private(path, &text)
                    .map_err(|e| flag(format!("cannot write key file {}: {e}", path.display())))?;
                tracing::warn!(
                    path = %path.display(),
                    "TOLLGATE_MASTER_KEY is not set: generated a master key into a file beside the database; \
                     back it up with the database, and set TOLLGATE_MASTER_KEY in production"
                );
                Ok(key)
            }
            Err(e) => Err(flag(format!(
                "cannot read key file {}: {e}",
                path.display()
            ))),
        },
    }
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// The root admin token's hash: from configuration, or generated once and stored.
async fn admin_auth(repo: &dyn Repository, configured: Option<&str>) -> Result<AdminAuth, Fatal> {
    if let Some(token) = configured {
        return Ok(AdminAuth::new(AdminToken::new(token.to_owned()).hash()));
    }
    let db_err = |e| {
        Fatal::Runtime(format!(
            "cannot read the admin token from the database: {e}"
        ))
    };
    if let Some(hash) = repo.admin_token_hash(ROOT_TOKEN).await.map_err(db_err)? {
        println!(
            "tollgate: admin API uses the root token generated at first start (only its hash is kept; \
             set TOLLGATE_ADMIN_TOKEN to use another)"
        );
        return Ok(AdminAuth::new(hash));
    }
    let token = AdminToken::generate();
    let hash = token.hash();
    if repo
        .set_admin_token_hash_if_absent(ROOT_TOKEN, &hash, clock::now())
        .await
        .map_err(db_err)?
    {
        println!(
            "tollgate: root admin token (shown once, only its hash is kept): {}",
            token.expose()
        );
        Ok(AdminAuth::new(hash))
    } else {
        // Another replica generated one first; it printed it.
        let hash = repo
            .admin_token_hash(ROOT_TOKEN)
            .await
            .map_err(db_err)?
            .ok_or_else(|| Fatal::Runtime("admin token vanished while starting".into()))?;
        Ok(AdminAuth::new(hash))
    }
}

fn bind(addr: std::net::SocketAddr, flag: &str, env: &str) -> Result<TcpListener, Fatal> {
    TcpListener::bind(addr)
        .map_err(|e| Fatal::option(flag, env, format!("cannot listen on {addr}: {e}")))
}

/// `tollgate serve`.
pub async fn serve(cfg: &Config, serve: &Serve) -> Result<(), Fatal> {
    let args = &serve.args;
    let run_gateway = args.only != Some(Only::Admin);
    let run_admin = args.only != Some(Only::Gateway);

    let master = master_key(&cfg.master_key)?;
    // TLS files are read before anything opens or listens, so a bad file is a config error.
    let tls = if run_gateway {
        crate::tls::load(&serve.tls)?
    } else {
        crate::tls::LoadedTls::default()
    };
    let scheme = if tls.server.is_some() {
        "https"
    } else {
        "http"
    };

    let repo = open_repo(cfg, !args.no_migrate).await?;
    let memory = MemoryStore::with_shares(args.shares());
    let short_lived: Arc<dyn ShortLivedStore> = match args.redis_url.as_ref().map(SecretArg::expose)
    {
        Some(url) => {
            let target = lifecycle::redact_url(url);
            let ca = serve.redis_ca.as_deref();
            lifecycle::wait_for("Redis", &target, cfg.database_wait, || {
                store::open_redis(url, ca, args.shares())
            })
            .await
            .map_err(|e| {
                // What retrying could not fix is said as it is, not as unreachable.
                let what = match e {
                    StoreError::Config(_) => format!("Redis at {target}: {e}"),
                    _ => format!("cannot reach Redis at {target}: {e}"),
                };
                Fatal::option("redis-url", "TOLLGATE_REDIS_URL", what)
            })?
        }
        None => Arc::new(memory.clone()),
    };
    let auth = if run_admin {
        Some(
            admin_auth(
                repo.as_ref(),
                args.admin_token.as_ref().map(SecretArg::expose),
            )
            .await?,
        )
    } else {
        None
    };

    let public = if run_gateway {
        Some(bind(
            serve.public_addr,
            "public-addr",
            "TOLLGATE_PUBLIC_ADDR",
        )?)
    } else {
        None
    };
    let admin = if run_admin {
        Some(bind(serve.admin_addr, "admin-addr", "TOLLGATE_ADMIN_ADDR")?)
    } else {
        None
    };
    let metrics_listener = serve
        .metrics_addr
        .map(|a| bind(a, "metrics-addr", "TOLLGATE_METRICS_ADDR"))
        .transpose()?;
    let public_url = match (&serve.public_url, &public) {
        (Some(u), _) => u.clone(),
        (None, Some(l)) => format!(
            "{scheme}://{}",
            l.local_addr().map_err(|e| Fatal::Runtime(e.to_string()))?
        ),
        (None, None) => format!("{scheme}://{}", serve.public_addr),
    };

    let invalidations = invalidation::for_database(cfg.database_url.expose())
        .map_err(|e| Fatal::option("database-url", "TOLLGATE_DATABASE_URL", e))?;
    let app = Arc::new(
        Tollgate::new(
            repo.clone(),
            short_lived,
            master,
            TollgateOptions {
                public_url,
                cache_ttl: serve.cache_ttl,
                assertions: args.assertion_options(),
                jwks_fetch: args.jwks_fetch_options(),
                outbound: serve.outbound.clone(),
                limits: args.limits(),
                rate_limits: args.rate_limit_defaults(),
                ceilings: args.ceilings(),
                client_certificates: serve.tls.client_certificates(),
                client_ca: tls.client_ca.clone(),
                code_ttl: Duration::from_secs(args.code_ttl),
                session_ttl: Duration::from_secs(args.session_ttl),
                device: tollgate_core::grants::device::DeviceOptions {
                    ttl: Duration::from_secs(args.device_code_ttl),
                    interval: args.device_code_interval,
                },
                trusted_proxies: serve.tls.trusted_proxies.clone(),
                ..TollgateOptions::default()
            },
        )
        .with_invalidations(invalidations),
    );
    let data = web::Data::from(app.clone());
    let shutdown = Duration::from_secs(args.shutdown_timeout);
    let tracing = telemetry::export_configured();

    let mut servers = Vec::new();
    if let Some(listener) = public {
        let addr = listener
            .local_addr()
            .map_err(|e| Fatal::Runtime(e.to_string()))?;
        let data = data.clone();
        let proxies = web::Data::new(serve.tls.proxy_trust());
        let metrics = app.metrics.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(proxies.clone())
                .wrap(actix_web::middleware::from_fn(
                    crate::limits::gateway_headers,
                ))
                .wrap(actix_web::middleware::from_fn(
                    lifecycle::close_when_draining,
                ))
                .wrap(Observe::new(Listener::Gateway, metrics.clone(), tracing))
                .configure(health::configure)
                .configure(tollgate_gateway::configure)
                .default_service(web::to(tollgate_gateway::not_found))
        })
        .on_connect(crate::tls::on_connect)
        .disable_signals()
        .shutdown_timeout(shutdown.as_secs());
        if let Some(w) = args.workers {
            server = server.workers(w);
        }
        let server = match tls.server {
            Some(config) => server.listen_rustls_0_23(listener, config),
            None => server.listen(listener),
        }
        .map_err(|e| Fatal::option("public-addr", "TOLLGATE_PUBLIC_ADDR", e))?
        .run();
        println!(
            "tollgate: gateway listening on {scheme}://{addr} (issuer base {})",
            app.options.public_url
        );
        servers.push(server);
    }
    if let (Some(listener), Some(auth)) = (admin, auth) {
        let addr = listener
            .local_addr()
            .map_err(|e| Fatal::Runtime(e.to_string()))?;
        let data = data.clone();
        let auth = web::Data::new(auth);
        let metrics = app.metrics.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(auth.clone())
                .wrap(actix_web::middleware::from_fn(crate::limits::admin_headers))
                .wrap(actix_web::middleware::from_fn(
                    lifecycle::close_when_draining,
                ))
                .wrap(Observe::new(Listener::Admin, metrics.clone(), tracing))
                .configure(health::configure)
                .configure(crate::metrics::configure)
                .configure(tollgate_admin::configure)
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(shutdown.as_secs())
        .listen(listener)
        .map_err(|e| Fatal::option("admin-addr", "TOLLGATE_ADMIN_ADDR", e))?
        .run();
        println!("tollgate: admin API listening on http://{addr}");
        servers.push(server);
    }
    if let Some(listener) = metrics_listener {
        servers.push(crate::metrics::serve(
            listener,
            data.clone(),
            shutdown,
            tracing,
        )?);
    }

    let handles: Vec<_> = servers.iter().map(actix_web::dev::Server::handle).collect();
    let sweeper = {
        let app = app.clone();
        let in_process = args.redis_url.is_none();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for n in 0u64.. {
                tick.tick().await;
                // Every 30 s: sweeping scans everything; the gauge is cheap.
                if n % 30 == 29 {
                    memory.sweep();
                    app.limiter.sweep();
                    app.registry.sweep();
                }
                if in_process {
                    app.metrics.set_short_lived_entries(memory.len());
                }
            }
        })
    };
    // Other processes' admin changes, announced through the database.
    let listener = tokio::spawn(app.clone().listen_for_invalidations());
    // Sampled client-authentication failures reach the audit trail from here, off the
    // request path: the only database writes a gateway-only process makes.
    let audit_writer = tokio::spawn(manage::audit::write_samples(app.clone()));
    // Scheduled key rotation runs where the admin API runs: gateway-only processes never
    // write to the database.
    let rotation = run_admin.then(|| tokio::spawn(rotation::run(app.clone())));
    let delay = Duration::from_secs(args.shutdown_delay);
    let signals = {
        let app = app.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!(
                delay_seconds = delay.as_secs(),
                timeout_seconds = shutdown.as_secs(),
                "shutdown signal received: draining"
            );
            app.draining.store(true, Ordering::Relaxed);
            let graceful = async {
                // /readyz answers 503 meanwhile, so load balancers stop sending traffic.
                tokio::time::sleep(delay).await;
                // Every listener stops accepting at once, then drains its connections.
                let stops: Vec<_> = handles.iter().map(|h| h.stop(true)).collect();
                for stop in stops {
                    stop.await;
                }
            };
            tokio::select! {
                () = graceful => {}
                () = wait_for_signal() => {
                    tracing::warn!("second shutdown signal: stopping without draining");
                    let stops: Vec<_> = handles.iter().map(|h| h.stop(false)).collect();
                    for stop in stops {
                        stop.await;
                    }
                }
            }
        })
    };
    let results = futures_join(servers).await;
    signals.abort();
    sweeper.abort();
    listener.abort();
    audit_writer.abort();
    if let Some(rotation) = rotation {
        rotation.abort();
    }
    repo.close().await;
    for r in results {
        r.map_err(|e| Fatal::Runtime(format!("server failed: {e}")))?;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn futures_join(servers: Vec<actix_web::dev::Server>) -> Vec<std::io::Result<()>> {
    let tasks: Vec<_> = servers.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(
            t.await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()))),
        );
    }
    out
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
