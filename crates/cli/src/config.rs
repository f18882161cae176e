//! Configuration: one typed struct parsed by clap, every option a flag and an environment
//! variable (the flag wins), validated before anything starts.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tollgate_core::client_auth::{AssertionAudience, AssertionOptions};
use tollgate_core::client_keys::JwksFetchOptions;
use tollgate_core::keys::MasterKey;
use tollgate_core::limits::Limits;
use tollgate_core::model::ceilings::Ceilings;
use tollgate_core::outbound::OutboundOptions;
use tollgate_core::rate_limit::RateLimitDefaults;
use tollgate_core::store::Shares;

use crate::Fatal;

/// Tollgate: a multi-tenant OAuth 2.0 / OpenID Connect authorization server.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about, long_about = None)]
pub struct Cli {
    /// Database: `sqlite://PATH?mode=rwc` (embedded default) or `postgres://…` (production).
    #[arg(
        long,
        env = "TOLLGATE_DATABASE_URL",
        default_value = "sqlite://tollgate.db?mode=rwc",
        global = true
    )]
    database_url: SecretArg,

    /// Base64 of 32 random bytes; encrypts signing keys and client_secret_jwt secrets at rest.
    /// Unset with SQLite: generated into a key file beside the database. Required with PostgreSQL.
    #[arg(
        long,
        env = "TOLLGATE_MASTER_KEY",
        hide_env_values = true,
        global = true
    )]
    master_key: Option<SecretArg>,

    /// Log format; default `text` on a terminal, else `json`. Levels via RUST_LOG (default info).
    #[arg(long, env = "TOLLGATE_LOG_FORMAT", value_enum, global = true)]
    log_format: Option<LogFormat>,

    /// Seconds to wait at start-up for PostgreSQL (and Redis, with --redis-url) to become
    /// reachable, retrying with exponential backoff; 0: fail at once.
    #[arg(
        long,
        env = "TOLLGATE_DATABASE_WAIT",
        default_value_t = 30,
        value_name = "SECONDS",
        global = true
    )]
    database_wait: u64,

    #[command(subcommand)]
    command: CliCommand,
}

// Parsed once at start and moved straight into `Command`; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum CliCommand {
    /// Run the gateway and admin listeners (applies migrations first unless --no-migrate).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
}

/// Options of `tollgate serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Redis for codes, assertion jtis and other short-lived state; unset: in-process store.
    #[arg(long, env = "TOLLGATE_REDIS_URL")]
    pub redis_url: Option<SecretArg>,

    /// Gateway listen address.
    #[arg(long, env = "TOLLGATE_PUBLIC_ADDR", default_value = "127.0.0.1:8080")]
    pub public_addr: String,

    /// Admin API listen address (keep it on a private network).
    #[arg(long, env = "TOLLGATE_ADMIN_ADDR", default_value = "127.0.0.1:8081")]
    pub admin_addr: String,

    /// Extra plain-HTTP listener serving only /metrics, /healthz and /readyz (for
    /// `--only gateway` pods, which have no admin listener); unset: none. Keep it private.
    #[arg(long, env = "TOLLGATE_METRICS_ADDR", value_name = "ADDR")]
    pub metrics_addr: Option<String>,

    /// External base URL used in issuers; default `http://{PUBLIC_ADDR}`.
    #[arg(long, env = "TOLLGATE_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Root admin bearer token (at least 16 characters). Unset: one is generated at first
    /// start, printed once, and kept only as a hash.
    #[arg(long, env = "TOLLGATE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<SecretArg>,

    /// Run only one listener, for split deployments.
    #[arg(long, env = "TOLLGATE_ONLY", value_enum)]
    pub only: Option<Only>,

    /// Do not apply database migrations at start.
    #[arg(long, env = "TOLLGATE_NO_MIGRATE")]
    pub no_migrate: bool,

    /// Seconds a cached server or client lives before it is re-read; bounds how long a change
    /// made through another replica takes to arrive here.
    #[arg(long, env = "TOLLGATE_CACHE_TTL", default_value_t = 30)]
    pub cache_ttl: u64,

    /// Seconds an authorization code stays valid, 1 to 60 (RFC 6749 §4.1.2 asks for short-lived
    /// codes).
    #[arg(long, env = "TOLLGATE_CODE_TTL", default_value_t = 60)]
    pub code_ttl: u64,

    /// Seconds a login session of the built-in login page lasts, 60 to 2592000.
    #[arg(long, env = "TOLLGATE_SESSION_TTL", default_value_t = 28_800)]
    pub session_ttl: u64,

    /// Seconds a device code and its user code stay valid (RFC 8628 `expires_in`), 1 to
    /// 1800.
    #[arg(long, env = "TOLLGATE_DEVICE_CODE_TTL", default_value_t = 600)]
    pub device_code_ttl: u64,

    /// Least seconds between two polls of a device (RFC 8628 `interval`; each `slow_down`
    /// adds 5), 1 to 60.
    #[arg(long, env = "TOLLGATE_DEVICE_CODE_INTERVAL", default_value_t = 5)]
    pub device_code_interval: u64,

    /// Gateway worker threads; default: one per CPU.
    #[arg(long, env = "TOLLGATE_WORKERS")]
    pub workers: Option<usize>,

    /// Seconds to finish in-flight requests after SIGTERM/SIGINT (a second signal stops at
    /// once).
    #[arg(long, env = "TOLLGATE_SHUTDOWN_TIMEOUT", default_value_t = 30)]
    pub shutdown_timeout: u64,

    /// Seconds to keep serving after SIGTERM/SIGINT, with /readyz answering 503, before the
    /// listeners close: time for load balancers that poll readiness to stop sending traffic.
    /// 0 on Kubernetes, where the chart's preStop pause does this.
    #[arg(
        long,
        env = "TOLLGATE_SHUTDOWN_DELAY",
        default_value_t = 0,
        value_name = "SECONDS"
    )]
    pub shutdown_delay: u64,

    /// PEM certificate chain: the gateway serves HTTPS (needs --tls-key). The admin listener
    /// never serves TLS.
    #[arg(long, env = "TOLLGATE_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, env = "TOLLGATE_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,

    /// PEM bundle of the CAs that tls_client_auth certificates must chain to, for every server
    /// that names no CAs of its own (admin API `tls_client_ca`). With --tls-cert the gateway
    /// then requests (does not require) client certificates; with --client-cert-header it
    /// checks proxied ones against the same CAs.
    #[arg(long, env = "TOLLGATE_TLS_CLIENT_CA", value_name = "PEM")]
    pub tls_client_ca: Option<PathBuf>,

    /// Header in which a TLS-terminating proxy passes the client certificate as URL-encoded
    /// PEM (nginx `$ssl_client_escaped_cert`); believed only from --trusted-proxies. Needs
    /// --tls-client-ca.
    #[arg(long, env = "TOLLGATE_CLIENT_CERT_HEADER", value_name = "NAME")]
    pub client_cert_header: Option<String>,

    /// Comma-separated CIDRs (or addresses) of reverse proxies whose client-certificate header
    /// and X-Forwarded-* headers are believed; default: none.
    #[arg(long, env = "TOLLGATE_TRUSTED_PROXIES", value_name = "CIDRS")]
    pub trusted_proxies: Option<String>,

    /// Client assertions (RFC 7523): how many seconds ahead `exp` may be (1 to 3600; default
    /// an hour, as common client libraries sign assertions valid for an hour).
    #[arg(
        long,
        env = "TOLLGATE_ASSERTION_MAX_LIFETIME",
        default_value_t = 3600,
        value_name = "SECONDS"
    )]
    pub assertion_max_lifetime: u64,

    /// Client assertions: clock skew tolerated on `exp`, `nbf` and `iat`, in seconds (0 to 300).
    #[arg(
        long,
        env = "TOLLGATE_ASSERTION_CLOCK_SKEW",
        default_value_t = 30,
        value_name = "SECONDS"
    )]
    pub assertion_clock_skew: u64,

    /// Client assertions: accepted `aud` values — the receiving endpoint's URL or the issuer,
    /// or only the issuer.
    #[arg(long, env = "TOLLGATE_ASSERTION_AUDIENCE", value_enum, default_value_t = AssertionAudienceArg::EndpointOrIssuer)]
    pub assertion_audience: AssertionAudienceArg,

    // ---- Outbound calls and Redis TLS -------------------------------------------------------
    /// Outbound calls (client jwks_uri fetches and the like) may reach loopback addresses, and
    /// plain http to them. Development and tests only; logs a warning. Every other
    /// special-purpose address stays refused.
    #[arg(
        long,
        env = "TOLLGATE_OUTBOUND_ALLOW_LOOPBACK",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub outbound_allow_loopback: bool,

    /// PEM file of extra CAs trusted for outbound HTTPS, beside the system's. Development and
    /// tests only; logs a warning.
    #[arg(long, env = "TOLLGATE_OUTBOUND_CA_FILE", value_name = "FILE")]
    pub outbound_ca_file: Option<PathBuf>,

    /// PEM file of the CAs a `rediss://` Redis certificate must chain to, instead of the
    /// system's (a managed Redis with a private CA). The certificate is always verified.
    #[arg(long, env = "TOLLGATE_REDIS_CA_FILE", value_name = "FILE")]
    pub redis_ca_file: Option<PathBuf>,
    // ---- end of outbound calls and Redis TLS ------------------------------------------------
    /// Rate limit per client at each of a server's token, introspection and revocation
    /// endpoints: requests per second, sustained (0: off). A server's `rate_limits` override it.
    #[arg(
        long,
        env = "TOLLGATE_RATE_LIMIT_CLIENT_PER_SECOND",
        default_value_t = 100,
        value_name = "N"
    )]
    pub rate_limit_client_per_second: u32,

    /// Requests per client allowed at once above the sustained rate (the bucket's size).
    #[arg(
        long,
        env = "TOLLGATE_RATE_LIMIT_CLIENT_BURST",
        default_value_t = 200,
        value_name = "N"
    )]
    pub rate_limit_client_burst: u32,

    /// Rate limit per source address (IPv6: per /64) at each of a server's token,
    /// introspection and revocation endpoints: requests per second, sustained (0: off). The
    /// address is the peer's, or X-Forwarded-For's from --trusted-proxies.
    #[arg(
        long,
        env = "TOLLGATE_RATE_LIMIT_ADDRESS_PER_SECOND",
        default_value_t = 300,
        value_name = "N"
    )]
    pub rate_limit_address_per_second: u32,

    /// Requests per source address allowed at once above the sustained rate.
    #[arg(
        long,
        env = "TOLLGATE_RATE_LIMIT_ADDRESS_BURST",
        default_value_t = 600,
        value_name = "N"
    )]
    pub rate_limit_address_burst: u32,

    /// Failed client authentications per second, sustained, allowed per client and per
    /// source address at each of a server's token, introspection and revocation endpoints
    /// (0: off). An address past it is refused before authentication; a failure past either
    /// is answered 429. Authenticated requests never count against it.
    #[arg(
        long,
        env = "TOLLGATE_RATE_LIMIT_FAILURES_PER_SECOND",
        default_value_t = 10,
        value_name = "N"
    )]
    pub rate_limit_failures_per_second: u32,

    /// Failed client authentications allowed at once above that rate.
    #[arg(
        long,
        env = "TOLLGATE_RATE_LIMIT_FAILURES_BURST",
        default_value_t = 20,
        value_name = "N"
    )]
    pub rate_limit_failures_burst: u32,

    /// Ceiling on a server's `rate_limits.client_per_second` that tenant admins may set, and
    /// on what the gateway applies (stored values above it are clamped); with a ceiling, a
    /// server cannot turn the limit off. 0: no ceiling.
    #[arg(
        long,
        env = "TOLLGATE_RATE_LIMIT_CLIENT_PER_SECOND_MAX",
        default_value_t = 0,
        value_name = "N"
    )]
    pub rate_limit_client_per_second_max: u32,

    /// Ceiling on a server's `rate_limits.client_burst`. 0: no ceiling.
    #[arg(
        long,
        env = "TOLLGATE_RATE_LIMIT_CLIENT_BURST_MAX",
        default_value_t = 0,
        value_name = "N"
    )]
    pub rate_limit_client_burst_max: u32,

    /// Ceiling on a server's `rate_limits.address_per_second`; with a ceiling, a server cannot
    /// turn the limit off. 0: no ceiling.
    #[arg(
        long,
        env = "TOLLGATE_RATE_LIMIT_ADDRESS_PER_SECOND_MAX",
        default_value_t = 0,
        value_name = "N"
    )]
    pub rate_limit_address_per_second_max: u32,

    /// Ceiling on a server's `rate_limits.address_burst`. 0: no ceiling.
    #[arg(
        long,
        env = "TOLLGATE_RATE_LIMIT_ADDRESS_BURST_MAX",
        default_value_t = 0,
        value_name = "N"
    )]
    pub rate_limit_address_burst_max: u32,

    /// Longest `access_token_ttl` a server may have, in seconds (60 to 86400); stored values
    /// above it are clamped. Also bounds how long a code's replay record is kept.
    #[arg(
        long,
        env = "TOLLGATE_MAX_ACCESS_TOKEN_TTL",
        default_value_t = 86_400,
        value_name = "SECONDS"
    )]
    pub max_access_token_ttl: i64,

    /// Longest `refresh_token_ttl` a server may have, in seconds (60 to 31536000).
    #[arg(
        long,
        env = "TOLLGATE_MAX_REFRESH_TOKEN_TTL",
        default_value_t = 31_536_000,
        value_name = "SECONDS"
    )]
    pub max_refresh_token_ttl: i64,

    /// Live entries of the short-lived store (codes, sessions, pending sign-ins, assertion
    /// `jti`s, revocations, rate-limit buckets, login counters) one tenant may hold, all its
    /// servers together; beyond, that tenant's requests needing a new entry get 429. In Redis
    /// and in process alike.
    #[arg(
        long,
        env = "TOLLGATE_SHORT_LIVED_TENANT_ENTRIES",
        default_value_t = 1_000_000,
        value_name = "N"
    )]
    pub short_lived_tenant_entries: u64,

    /// Live entries of the short-lived store one server may hold (at most its tenant's share).
    #[arg(
        long,
        env = "TOLLGATE_SHORT_LIVED_SERVER_ENTRIES",
        default_value_t = 1_000_000,
        value_name = "N"
    )]
    pub short_lived_server_entries: u64,

    /// Live entries the in-process short-lived store holds altogether (without --redis-url;
    /// Redis is bounded by its own maxmemory). Size it to the tenants' shares it must honour.
    #[arg(
        long,
        env = "TOLLGATE_SHORT_LIVED_MAX_ENTRIES",
        default_value_t = 4_000_000,
        value_name = "N"
    )]
    pub short_lived_max_entries: u64,

    /// Largest body of a token, introspection or revocation request, in bytes.
    #[arg(
        long,
        env = "TOLLGATE_MAX_BODY_BYTES",
        default_value_t = 65_536,
        value_name = "BYTES"
    )]
    pub max_body_bytes: usize,

    /// Largest body of an admin API request, in bytes.
    #[arg(
        long,
        env = "TOLLGATE_MAX_ADMIN_BODY_BYTES",
        default_value_t = 262_144,
        value_name = "BYTES"
    )]
    pub max_admin_body_bytes: usize,

    /// Largest request head (request target plus all headers), in bytes, on every listener
    /// (at most 131072, the HTTP parser's own limit).
    #[arg(
        long,
        env = "TOLLGATE_MAX_HEADER_BYTES",
        default_value_t = 16_384,
        value_name = "BYTES"
    )]
    pub max_header_bytes: usize,

    /// Most parameters in a token, introspection or revocation request.
    #[arg(
        long,
        env = "TOLLGATE_MAX_PARAMS",
        default_value_t = 32,
        value_name = "N"
    )]
    pub max_params: usize,

    /// Longest value of one request parameter, in bytes (client_assertion has its own limit).
    #[arg(
        long,
        env = "TOLLGATE_MAX_PARAM_BYTES",
        default_value_t = 8_192,
        value_name = "BYTES"
    )]
    pub max_param_bytes: usize,

    /// Longest client_assertion (RFC 7523), in bytes (at most 65536).
    #[arg(
        long,
        env = "TOLLGATE_MAX_ASSERTION_BYTES",
        default_value_t = 8_192,
        value_name = "BYTES"
    )]
    pub max_assertion_bytes: usize,

    /// Deepest nesting of objects and arrays in a JSON request body (gateway and admin API).
    #[arg(
        long,
        env = "TOLLGATE_MAX_JSON_DEPTH",
        default_value_t = 32,
        value_name = "N"
    )]
    pub max_json_depth: usize,

    /// Largest client JWK Set, registered inline (`jwks`) or fetched (`jwks_uri`), in bytes.
    #[arg(
        long,
        env = "TOLLGATE_MAX_JWKS_BYTES",
        default_value_t = 65_536,
        value_name = "BYTES"
    )]
    pub max_jwks_bytes: usize,
}

/// An option whose value is secret or may carry one (a token, a key, a URL with a password):
/// parsed as text, and `Debug` prints `[redacted]`, so no configuration dump shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretArg(String);

impl SecretArg {
    /// The value; call only where it is used.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Which listener `--only` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Only {
    /// The public gateway.
    Gateway,
    /// The admin API.
    Admin,
}

/// Which `aud` values a client assertion may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AssertionAudienceArg {
    /// The URL of the endpoint receiving it, or the issuer.
    EndpointOrIssuer,
    /// Only the issuer.
    Issuer,
}

impl ServeArgs {
    /// The client-assertion rules (RFC 7523), from validated flags.
    #[must_use]
    pub fn assertion_options(&self) -> AssertionOptions {
        AssertionOptions {
            max_lifetime: Duration::from_secs(self.assertion_max_lifetime),
            clock_skew: Duration::from_secs(self.assertion_clock_skew),
            audience: match self.assertion_audience {
                AssertionAudienceArg::EndpointOrIssuer => AssertionAudience::EndpointOrIssuer,
                AssertionAudienceArg::Issuer => AssertionAudience::IssuerOnly,
            },
        }
    }

    /// How client `jwks_uri`s are fetched.
    #[must_use]
    pub fn jwks_fetch_options(&self) -> JwksFetchOptions {
        JwksFetchOptions {
            max_bytes: self.max_jwks_bytes,
            ..JwksFetchOptions::default()
        }
    }

    /// The input limits, from the `--max-…` flags.
    #[must_use]
    pub fn limits(&self) -> Limits {
        Limits {
            max_body_bytes: self.max_body_bytes,
            max_admin_body_bytes: self.max_admin_body_bytes,
            max_header_bytes: self.max_header_bytes,
            max_params: self.max_params,
            max_param_bytes: self.max_param_bytes,
            max_assertion_bytes: self.max_assertion_bytes,
            max_json_depth: self.max_json_depth,
            max_jwks_bytes: self.max_jwks_bytes,
        }
    }

    /// The default rate limits, from the `--rate-limit-…` flags.
    #[must_use]
    pub fn rate_limit_defaults(&self) -> RateLimitDefaults {
        RateLimitDefaults {
            client_per_second: self.rate_limit_client_per_second,
            client_burst: self.rate_limit_client_burst,
            address_per_second: self.rate_limit_address_per_second,
            address_burst: self.rate_limit_address_burst,
            failures_per_second: self.rate_limit_failures_per_second,
            failures_burst: self.rate_limit_failures_burst,
        }
    }

    /// The operator's ceilings on servers, from the `--max-…-ttl` and `--rate-limit-…-max`
    /// flags.
    #[must_use]
    pub fn ceilings(&self) -> Ceilings {
        let ceiling = |v: u32| (v > 0).then_some(v);
        Ceilings {
            access_token_ttl: self.max_access_token_ttl,
            refresh_token_ttl: self.max_refresh_token_ttl,
            client_per_second: ceiling(self.rate_limit_client_per_second_max),
            client_burst: ceiling(self.rate_limit_client_burst_max),
            address_per_second: ceiling(self.rate_limit_address_per_second_max),
            address_burst: ceiling(self.rate_limit_address_burst_max),
        }
    }

    /// The shares of the short-lived store, from the `--short-lived-…-entries` flags.
    #[must_use]
    pub fn shares(&self) -> Shares {
        Shares {
            tenant_entries: self.short_lived_tenant_entries,
            server_entries: self.short_lived_server_entries,
            total_entries: self.short_lived_max_entries,
        }
    }

    /// Checks the ceilings and shares: in range, and the process defaults within the
    /// ceilings (a default above one would be clamped at every request).
    fn validate_ceiling_flags(&self) -> Result<(), Fatal> {
        use tollgate_core::model::ceilings::{MAX_ACCESS_TOKEN_TTL, MAX_REFRESH_TOKEN_TTL};
        let ttls = [
            (
                "max-access-token-ttl",
                "TOLLGATE_MAX_ACCESS_TOKEN_TTL",
                self.max_access_token_ttl,
                MAX_ACCESS_TOKEN_TTL,
            ),
            (
                "max-refresh-token-ttl",
                "TOLLGATE_MAX_REFRESH_TOKEN_TTL",
                self.max_refresh_token_ttl,
                MAX_REFRESH_TOKEN_TTL,
            ),
        ];
        for (flag, env, value, max) in ttls {
            if !(60..=max).contains(&value) {
                return Err(Fatal::option(
                    flag,
                    env,
                    format!("must be 60 to {max} seconds"),
                ));
            }
        }
        let max = tollgate_core::model::rate_limits::MAX_SETTING;
        let rates = [
            (
                "rate-limit-client-per-second-max",
                "TOLLGATE_RATE_LIMIT_CLIENT_PER_SECOND_MAX",
                self.rate_limit_client_per_second_max,
                "rate-limit-client-per-second",
                self.rate_limit_client_per_second,
                true,
            ),
            (
                "rate-limit-client-burst-max",
                "TOLLGATE_RATE_LIMIT_CLIENT_BURST_MAX",
                self.rate_limit_client_burst_max,
                "rate-limit-client-burst",
                self.rate_limit_client_burst,
                false,
            ),
            (
                "rate-limit-address-per-second-max",
                "TOLLGATE_RATE_LIMIT_ADDRESS_PER_SECOND_MAX",
                self.rate_limit_address_per_second_max,
                "rate-limit-address-per-second",
                self.rate_limit_address_per_second,
                true,
            ),
            (
                "rate-limit-address-burst-max",
                "TOLLGATE_RATE_LIMIT_ADDRESS_BURST_MAX",
                self.rate_limit_address_burst_max,
                "rate-limit-address-burst",
                self.rate_limit_address_burst,
                false,
            ),
        ];
        for (flag, env, ceiling, default_flag, default, is_rate) in rates {
            if ceiling > max {
                return Err(Fatal::option(
                    flag,
                    env,
                    format!("must be 0 (no ceiling) to {max}"),
                ));
            }
            if ceiling > 0 && (default > ceiling || (is_rate && default == 0)) {
                return Err(Fatal::option(
                    flag,
                    env,
                    format!("is below --{default_flag} ({default}; 0 is off, above any ceiling)"),
                ));
            }
        }
        let entries = [
            (
                "short-lived-tenant-entries",
                "TOLLGATE_SHORT_LIVED_TENANT_ENTRIES",
                self.short_lived_tenant_entries,
            ),
            (
                "short-lived-server-entries",
                "TOLLGATE_SHORT_LIVED_SERVER_ENTRIES",
                self.short_lived_server_entries,
            ),
            (
                "short-lived-max-entries",
                "TOLLGATE_SHORT_LIVED_MAX_ENTRIES",
                self.short_lived_max_entries,
            ),
        ];
        for (flag, env, value) in entries {
            if !(10..=1_000_000_000).contains(&value) {
                return Err(Fatal::option(flag, env, "must be 10 to 1000000000"));
            }
        }
        Ok(())
    }

    /// Checks the limit and rate-limit flags; the error names the flag.
    fn validate_limit_flags(&self) -> Result<(), Fatal> {
        // The name of a `Limits` field is its flag's, with dashes.
        self.limits().validate().map_err(|bad| {
            Fatal::option(
                &bad.name.replace('_', "-"),
                &format!("TOLLGATE_{}", bad.name.to_ascii_uppercase()),
                &bad,
            )
        })?;
        let max = tollgate_core::model::rate_limits::MAX_SETTING;
        let rows = [
            (
                "rate-limit-client-per-second",
                "TOLLGATE_RATE_LIMIT_CLIENT_PER_SECOND",
                self.rate_limit_client_per_second,
                0,
            ),
            (
                "rate-limit-client-burst",
                "TOLLGATE_RATE_LIMIT_CLIENT_BURST",
                self.rate_limit_client_burst,
                1,
            ),
            (
                "rate-limit-address-per-second",
                "TOLLGATE_RATE_LIMIT_ADDRESS_PER_SECOND",
                self.rate_limit_address_per_second,
                0,
            ),
            (
                "rate-limit-address-burst",
                "TOLLGATE_RATE_LIMIT_ADDRESS_BURST",
                self.rate_limit_address_burst,
                1,
            ),
            (
                "rate-limit-failures-per-second",
                "TOLLGATE_RATE_LIMIT_FAILURES_PER_SECOND",
                self.rate_limit_failures_per_second,
                0,
            ),
            (
                "rate-limit-failures-burst",
                "TOLLGATE_RATE_LIMIT_FAILURES_BURST",
                self.rate_limit_failures_burst,
                1,
            ),
        ];
        for (flag, env, value, min) in rows {
            if !(min..=max).contains(&value) {
                return Err(Fatal::option(flag, env, format!("must be {min} to {max}")));
            }
        }
        Ok(())
    }

    fn validate_assertion_flags(&self) -> Result<(), Fatal> {
        if !(1..=3600).contains(&self.assertion_max_lifetime) {
            return Err(Fatal::option(
                "assertion-max-lifetime",
                "TOLLGATE_ASSERTION_MAX_LIFETIME",
                "must be 1 to 3600 seconds",
            ));
        }
        if self.assertion_clock_skew > 300 {
            return Err(Fatal::option(
                "assertion-clock-skew",
                "TOLLGATE_ASSERTION_CLOCK_SKEW",
                "must be 0 to 300 seconds",
            ));
        }
        Ok(())
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// Validated serve options.
#[derive(Debug)]
pub struct Serve {
    /// Raw args (for the flags that need no validation).
    pub args: ServeArgs,
    /// Parsed gateway address.
    pub public_addr: SocketAddr,
    /// Parsed admin address.
    pub admin_addr: SocketAddr,
    /// Parsed metrics-only listener address, if any.
    pub metrics_addr: Option<SocketAddr>,
    /// Normalised public URL, if given.
    pub public_url: Option<String>,
    /// Cache lifetime.
    pub cache_ttl: Duration,
    /// TLS and client-certificate options.
    pub tls: crate::tls::TlsSettings,
    /// The guards of outbound calls (`--outbound-…`).
    pub outbound: OutboundOptions,
    /// `--redis-ca-file`, read: the PEM CAs a `rediss://` certificate must chain to.
    pub redis_ca: Option<Vec<u8>>,
}

/// Reads a PEM CA bundle named by an option; a missing file or one without a certificate is
/// a configuration error naming the option.
fn read_ca_file(
    flag: &str,
    env: &str,
    path: &std::path::Path,
) -> Result<(Vec<u8>, Vec<rustls_pki_types::CertificateDer<'static>>), Fatal> {
    let pem = std::fs::read(path)
        .map_err(|e| Fatal::option(flag, env, format!("cannot read {}: {e}", path.display())))?;
    let certs = tollgate_core::outbound::parse_ca_bundle(&pem)
        .map_err(|e| Fatal::option(flag, env, format!("{}: {e}", path.display())))?;
    Ok((pem, certs))
}

impl ServeArgs {
    /// The outbound and Redis TLS options, files read and checked.
    fn outbound_and_redis_tls(&self) -> Result<(OutboundOptions, Option<Vec<u8>>), Fatal> {
        let extra_roots = match &self.outbound_ca_file {
            Some(path) => read_ca_file("outbound-ca-file", "TOLLGATE_OUTBOUND_CA_FILE", path)?.1,
            None => Vec::new(),
        };
        let redis_ca = match &self.redis_ca_file {
            Some(path) => {
                let tls = self
                    .redis_url
                    .as_ref()
                    .is_some_and(|u| u.expose().starts_with("rediss://"));
                if !tls {
                    return Err(Fatal::option(
                        "redis-ca-file",
                        "TOLLGATE_REDIS_CA_FILE",
                        "needs a rediss:// --redis-url",
                    ));
                }
                Some(read_ca_file("redis-ca-file", "TOLLGATE_REDIS_CA_FILE", path)?.0)
            }
            None => None,
        };
        let outbound = OutboundOptions {
            allow_loopback: self.outbound_allow_loopback,
            extra_roots,
            ..OutboundOptions::default()
        };
        Ok((outbound, redis_ca))
    }
}

/// What to run.
#[derive(Debug)]
pub enum Command {
    /// `serve`.
    Serve(Box<Serve>),
    /// `migrate`.
    Migrate,
}

/// Where the master key comes from.
pub enum MasterKeySource {
    /// Given in configuration (base64 text, already checked to parse).
    Given(String),
    /// Read from, or generated into, this file (embedded default only).
    File(PathBuf),
    /// In-memory SQLite: a throwaway key.
    Ephemeral,
}

impl std::fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Given(_) => f.write_str("Given([redacted])"),
            Self::File(p) => write!(f, "File({})", p.display()),
            Self::Ephemeral => f.write_str("Ephemeral"),
        }
    }
}

/// The whole validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Database URL (it may carry a password).
    pub database_url: SecretArg,
    /// Master key source.
    pub master_key: MasterKeySource,
    /// Log format.
    pub log_format: LogFormat,
    /// How long start-up waits for the database and Redis.
    pub database_wait: Duration,
    /// Subcommand.
    pub command: Command,
}

fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        return None;
    }
    Some(PathBuf::from(path))
}

fn parse_addr(flag: &str, env: &str, s: &str) -> Result<SocketAddr, Fatal> {
    s.parse()
        .map_err(|_| Fatal::option(flag, env, format!("`{s}` is not an IP:port address")))
}

fn parse_public_url(s: &str) -> Result<String, Fatal> {
    let bad = |m: &str| Fatal::option("public-url", "TOLLGATE_PUBLIC_URL", m);
    let url = url::Url::parse(s).map_err(|e| bad(&format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http or https URL"));
    }
    if url.query().is_some() || url.fragment().is_some() || url.host_str().is_none() {
        return Err(bad("must be a base URL without query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

impl Cli {
    /// Validates every option; the first problem is the error.
    ///
    /// # Errors
    /// A [`Fatal::Config`] naming the option.
    pub fn validate(self) -> Result<Config, Fatal> {
        let db = self.database_url.expose().trim().to_owned();
        let is_pg = db.starts_with("postgres://") || db.starts_with("postgresql://");
        if !is_pg && !db.starts_with("sqlite:") {
            return Err(Fatal::option(
                "database-url",
                "TOLLGATE_DATABASE_URL",
                "must start with sqlite: or postgres://",
            ));
        }
        if is_pg && url::Url::parse(&db).is_err() {
            return Err(Fatal::option(
                "database-url",
                "TOLLGATE_DATABASE_URL",
                "not a valid PostgreSQL URL",
            ));
        }
        let master_key = match self.master_key.as_ref().map(SecretArg::expose) {
            Some(k) => {
                MasterKey::from_base64(k)
                    .map_err(|e| Fatal::option("master-key", "TOLLGATE_MASTER_KEY", e))?;
                MasterKeySource::Given(k.to_owned())
            }
            None if is_pg => {
                return Err(Fatal::option(
                    "master-key",
                    "TOLLGATE_MASTER_KEY",
                    "is required with PostgreSQL",
                ));
            }
            None => match sqlite_path(&db) {
                Some(p) => {
                    let mut name = p
                        .file_name()
                        .map(std::ffi::OsStr::to_os_string)
                        .unwrap_or_default();
                    name.push(".master.key");
                    MasterKeySource::File(p.with_file_name(name))
                }
                None => MasterKeySource::Ephemeral,
            },
        };
        let log_format = self
            .log_format
            .unwrap_or(if std::io::stdout().is_terminal() {
                LogFormat::Text
            } else {
                LogFormat::Json
            });
        let command = match self.command {
            CliCommand::Migrate => Command::Migrate,
            CliCommand::Serve(args) => {
                if let Some(url) = args.redis_url.as_ref().map(SecretArg::expose) {
                    let ok = url::Url::parse(url)
                        .is_ok_and(|u| matches!(u.scheme(), "redis" | "rediss"));
                    if !ok {
                        return Err(Fatal::option(
                            "redis-url",
                            "TOLLGATE_REDIS_URL",
                            "must be a redis:// or rediss:// URL",
                        ));
                    }
                    if url::Url::parse(url).is_ok_and(|u| u.fragment().is_some()) {
                        return Err(Fatal::option(
                            "redis-url",
                            "TOLLGATE_REDIS_URL",
                            "must have no #fragment: the certificate of rediss:// is always verified (#insecure is not supported; a private CA goes in --redis-ca-file)",
                        ));
                    }
                }
                if args
                    .admin_token
                    .as_ref()
                    .is_some_and(|t| t.expose().len() < 16)
                {
                    return Err(Fatal::option(
                        "admin-token",
                        "TOLLGATE_ADMIN_TOKEN",
                        "must be at least 16 characters",
                    ));
                }
                if !(1..=3600).contains(&args.cache_ttl) {
                    return Err(Fatal::option(
                        "cache-ttl",
                        "TOLLGATE_CACHE_TTL",
                        "must be 1 to 3600 seconds",
                    ));
                }
                if !(1..=60).contains(&args.code_ttl) {
                    return Err(Fatal::option(
                        "code-ttl",
                        "TOLLGATE_CODE_TTL",
                        "must be 1 to 60 seconds",
                    ));
                }
                if !(60..=2_592_000).contains(&args.session_ttl) {
                    return Err(Fatal::option(
                        "session-ttl",
                        "TOLLGATE_SESSION_TTL",
                        "must be 60 to 2592000 seconds",
                    ));
                }
                if !(1..=1800).contains(&args.device_code_ttl) {
                    return Err(Fatal::option(
                        "device-code-ttl",
                        "TOLLGATE_DEVICE_CODE_TTL",
                        "must be 1 to 1800 seconds",
                    ));
                }
                if !(1..=60).contains(&args.device_code_interval) {
                    return Err(Fatal::option(
                        "device-code-interval",
                        "TOLLGATE_DEVICE_CODE_INTERVAL",
                        "must be 1 to 60 seconds",
                    ));
                }
                args.validate_assertion_flags()?;
                args.validate_limit_flags()?;
                args.validate_ceiling_flags()?;
                if args.shutdown_delay > 300 {
                    return Err(Fatal::option(
                        "shutdown-delay",
                        "TOLLGATE_SHUTDOWN_DELAY",
                        "must be 0 to 300 seconds",
                    ));
                }
                let (outbound, redis_ca) = args.outbound_and_redis_tls()?;
                if args.workers == Some(0) {
                    return Err(Fatal::option(
                        "workers",
                        "TOLLGATE_WORKERS",
                        "must be at least 1",
                    ));
                }
                Command::Serve(Box::new(Serve {
                    public_addr: parse_addr(
                        "public-addr",
                        "TOLLGATE_PUBLIC_ADDR",
                        &args.public_addr,
                    )?,
                    admin_addr: parse_addr("admin-addr", "TOLLGATE_ADMIN_ADDR", &args.admin_addr)?,
                    metrics_addr: args
                        .metrics_addr
                        .as_deref()
                        .map(|a| parse_addr("metrics-addr", "TOLLGATE_METRICS_ADDR", a))
                        .transpose()?,
                    public_url: args
                        .public_url
                        .as_deref()
                        .map(parse_public_url)
                        .transpose()?,
                    cache_ttl: Duration::from_secs(args.cache_ttl),
                    tls: crate::tls::TlsSettings::from_args(&args)?,
                    outbound,
                    redis_ca,
                    args,
                }))
            }
        };
        Ok(Config {
            database_url: SecretArg(db),
            master_key,
            log_format,
            database_wait: Duration::from_secs(self.database_wait),
            command,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_key_file_sits_beside_the_database() {
        assert_eq!(
            sqlite_path("sqlite://tollgate.db?mode=rwc"),
            Some(PathBuf::from("tollgate.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:/var/lib/t.db"),
            Some(PathBuf::from("/var/lib/t.db"))
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
    }

    #[test]
    fn public_url_is_normalised() {
        assert_eq!(
            parse_public_url("https://auth.example.com/").unwrap(),
            "https://auth.example.com"
        );
        assert!(parse_public_url("ftp://x").is_err());
        assert!(parse_public_url("https://x/?a=b").is_err());
    }

    #[test]
    fn debug_of_the_configuration_shows_no_secret() {
        use clap::Parser as _;
        let cli = Cli::try_parse_from([
            "tollgate",
            "--database-url",
            "postgres://u:db-password-1@h/d",
            "--master-key",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "serve",
            "--admin-token",
            "root-token-secret-1",
            "--redis-url",
            "redis://:redis-password-1@h",
        ])
        .unwrap();
        let config = Cli::try_parse_from([
            "tollgate",
            "--database-url",
            "postgres://u:db-password-1@h/d",
            "--master-key",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "serve",
            "--admin-token",
            "root-token-secret-1",
            "--redis-url",
            "redis://:redis-password-1@h",
        ])
        .unwrap()
        .validate()
        .unwrap();
        for text in [format!("{cli:?}"), format!("{config:?}")] {
            for secret in [
                "db-password-1",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                "root-token-secret-1",
                "redis-password-1",
            ] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
    }
}
