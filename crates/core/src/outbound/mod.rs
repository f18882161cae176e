//! [`Outbound`], the one guarded HTTP client every outbound call goes through (client
//! `jwks_uri`s today; client ID metadata documents, trusted issuers' keys and back-channel
//! logout as they arrive). It speaks only `https`, resolves host names itself and connects
//! only to the addresses it vetted (none of the IANA special-purpose registries, see
//! [`address`]; so no DNS-rebinding window between check and connect), follows no redirect,
//! and bounds every call's body size and total time. TLS is rustls with the platform's roots.
//!
//! Two development-only relaxations, both off by default and logged as a warning when on:
//! loopback targets (and plain `http` to them, `--outbound-allow-loopback`), and extra CAs
//! (`--outbound-ca-file`).

pub mod address;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

pub use address::{is_loopback, is_special};

/// How the outbound client behaves; the operator's configuration.
#[derive(Debug, Clone)]
pub struct OutboundOptions {
    /// Allow loopback targets, and plain `http` to them (development and tests only).
    pub allow_loopback: bool,
    /// Extra CAs trusted for outbound HTTPS, beside the platform's (development and tests).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// Deadline for one call, from connecting to the last byte of the body.
    pub timeout: Duration,
}

impl Default for OutboundOptions {
    fn default() -> Self {
        Self {
            allow_loopback: false,
            extra_roots: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Parses a PEM bundle of CA certificates (`--outbound-ca-file`).
///
/// # Errors
/// When the bundle holds no certificate or a certificate block that does not parse.
pub fn parse_ca_bundle(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    for cert in &certs {
        if x509_parser::parse_x509_certificate(cert).is_err() {
            return Err("holds a certificate that does not parse".into());
        }
    }
    Ok(certs)
}

/// Why an outbound call failed. The text is for logs (it never holds the URL's path or query).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The URL is not one the options allow.
    #[error("URI refused: {0}")]
    Uri(&'static str),
    /// The host is, or resolves only to, a refused address.
    #[error("address refused: {0}")]
    Address(String),
    /// Connecting or reading failed.
    #[error("request failed: {0}")]
    Http(String),
    /// Anything but `200` (redirects included: they are not followed).
    #[error("HTTP status {0}")]
    Status(u16),
    /// The body exceeded the caller's bound.
    #[error("document larger than {0} bytes")]
    TooLarge(usize),
    /// The deadline passed.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The HTTP client could not be built at start-up.
    #[error("HTTP client unavailable: {0}")]
    Client(String),
}

/// A `200` answer, its body read in full within the bound.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// `Cache-Control`, when present and readable.
    pub cache_control: Option<String>,
    /// `Content-Type`, when present and readable.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Which of the two clients a checked URL goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `https`: public addresses (and loopback when allowed).
    Https,
    /// Plain `http`, only with `allow_loopback`: loopback addresses only.
    LoopbackHttp,
}

/// Checks a URL an outbound call would fetch, without fetching it: absolute, `https` (plain
/// `http` only to a loopback host with `allow_loopback`), no credentials, and an address-literal
/// host must be allowed. Host names are vetted when resolved, at each call.
///
/// # Errors
/// Why the URL is refused.
pub fn check_url(uri: &str, options: &OutboundOptions) -> Result<url::Url, OutboundError> {
    checked(uri, options).map(|(url, _)| url)
}

fn checked(uri: &str, options: &OutboundOptions) -> Result<(url::Url, Route), OutboundError> {
    let url = url::Url::parse(uri).map_err(|_| OutboundError::Uri("not an absolute URL"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OutboundError::Uri("must not carry credentials"));
    }
    let literal = match url.host() {
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
        None => return Err(OutboundError::Uri("has no host")),
    };
    // An address literal never reaches the resolver: it is vetted here.
    if let Some(ip) = literal {
        if !allowed(ip, options.allow_loopback) {
            return Err(OutboundError::Address(ip.to_string()));
        }
    }
    let route = match url.scheme() {
        "https" => Route::Https,
        "http" if options.allow_loopback => {
            let loopback_host = match (literal, url.host_str()) {
                (Some(ip), _) => is_loopback(ip),
                (None, Some(name)) => is_localhost(name),
                (None, None) => false,
            };
            if !loopback_host {
                return Err(OutboundError::Uri(
                    "must be https (plain http only to a loopback host, with --outbound-allow-loopback)",
                ));
            }
            Route::LoopbackHttp
        }
        "http" => return Err(OutboundError::Uri("must be https")),
        _ => return Err(OutboundError::Uri("must be an https URL")),
    };
    Ok((url, route))
}

/// `localhost` and its subdomains (RFC 6761 §6.3); they still resolve through the vetting
/// resolver, which admits only loopback addresses for plain `http`.
fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

fn allowed(ip: IpAddr, allow_loopback: bool) -> bool {
    !is_special(ip) || (allow_loopback && is_loopback(ip))
}

/// The one guarded outbound HTTP client; one per process, shared by every fetcher.
#[derive(Debug)]
pub struct Outbound {
    https: Result<reqwest::Client, String>,
    /// Only with `allow_loopback`: plain `http`, resolving to loopback addresses only.
    loopback_http: Option<Result<reqwest::Client, String>>,
    options: OutboundOptions,
}

impl Outbound {
    /// A client with `options`. A failure to build the HTTP client is remembered and reported
    /// on each call rather than stopping the process (inline client keys still work).
    #[must_use]
    pub fn new(options: OutboundOptions) -> Self {
        if options.allow_loopback {
            tracing::warn!("outbound calls may reach loopback addresses, and plain http to them (--outbound-allow-loopback): for development and tests only");
        }
        if !options.extra_roots.is_empty() {
            tracing::warn!(
                cas = options.extra_roots.len(),
                "outbound HTTPS trusts extra CAs (--outbound-ca-file): for development and tests only"
            );
        }
        let https = build(&options, Route::Https);
        let loopback_http = options
            .allow_loopback
            .then(|| build(&options, Route::LoopbackHttp));
        for e in std::iter::once(&https)
            .chain(loopback_http.as_ref())
            .filter_map(|c| c.as_ref().err())
        {
            tracing::error!(error = %e, "cannot build the outbound HTTP client");
        }
        Self {
            https,
            loopback_http,
            options,
        }
    }

    /// The options it was built with.
    #[must_use]
    pub fn options(&self) -> &OutboundOptions {
        &self.options
    }

    /// Checks `uri` as a call would, without calling it (see [`check_url`]).
    ///
    /// # Errors
    /// Why the URL is refused.
    pub fn check_url(&self, uri: &str) -> Result<url::Url, OutboundError> {
        check_url(uri, &self.options)
    }

    /// `GET uri` with `Accept: accept`: the body of a `200`, at most `max_bytes`, within the
    /// deadline. Every other status is an error; redirects are not followed.
    ///
    /// # Errors
    /// Why the call was refused or failed.
    pub async fn get(
        &self,
        uri: &str,
        accept: &str,
        max_bytes: usize,
    ) -> Result<Fetched, OutboundError> {
        let (url, route) = checked(uri, &self.options)?;
        let client = match route {
            Route::Https => Some(&self.https),
            Route::LoopbackHttp => self.loopback_http.as_ref(),
        }
        .ok_or(OutboundError::Uri("must be https"))?
        .as_ref()
        .map_err(|e| OutboundError::Client(e.clone()))?;
        let timeout = self.options.timeout;
        let call = async {
            let mut res = client
                .get(url)
                .header(reqwest::header::ACCEPT, accept)
                .send()
                .await
                .map_err(|e| failed(e, timeout))?;
            if res.status() != reqwest::StatusCode::OK {
                return Err(OutboundError::Status(res.status().as_u16()));
            }
            if res.content_length().is_some_and(|n| n > max_bytes as u64) {
                return Err(OutboundError::TooLarge(max_bytes));
            }
            let header = |name| {
                res.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let cache_control = header(reqwest::header::CACHE_CONTROL);
            let content_type = header(reqwest::header::CONTENT_TYPE);
            let mut body = Vec::new();
            while let Some(chunk) = res.chunk().await.map_err(|e| failed(e, timeout))? {
                if body.len() + chunk.len() > max_bytes {
                    return Err(OutboundError::TooLarge(max_bytes));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Fetched {
                cache_control,
                content_type,
                body,
            })
        };
        tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| OutboundError::Timeout(timeout))?
    }
}

/// A reqwest error as ours: its own deadline (the same as ours) is a timeout.
fn failed(e: reqwest::Error, timeout: Duration) -> OutboundError {
    if e.is_timeout() {
        OutboundError::Timeout(timeout)
    } else {
        OutboundError::Http(error_chain(&e.without_url()))
    }
}

fn build(options: &OutboundOptions, route: Route) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(options.timeout)
        .timeout(options.timeout)
        // A proxy would resolve and connect on its own, past the address checks.
        .no_proxy()
        .dns_resolver(VettingResolver {
            allow_loopback: options.allow_loopback,
            loopback_only: route == Route::LoopbackHttp,
        })
        .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")));
    if route == Route::Https {
        builder = builder.https_only(true);
        let extra = options
            .extra_roots
            .iter()
            .map(|c| reqwest::Certificate::from_der(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| error_chain(&e))?;
        if !extra.is_empty() {
            builder = builder.tls_certs_merge(extra);
        }
    }
    builder.build().map_err(|e| error_chain(&e))
}

/// Resolves names itself and hands the connector only addresses it allowed, so the address
/// checked is the address connected to (no DNS-rebinding window).
#[derive(Debug, Clone, Copy)]
struct VettingResolver {
    allow_loopback: bool,
    /// Plain `http`: loopback addresses only.
    loopback_only: bool,
}

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let Self {
            allow_loopback,
            loopback_only,
        } = *self;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ok = |ip: IpAddr| {
                if loopback_only {
                    is_loopback(ip)
                } else {
                    allowed(ip, allow_loopback)
                }
            };
            let usable: Vec<SocketAddr> = resolved.iter().copied().filter(|a| ok(a.ip())).collect();
            if usable.is_empty() {
                let shown: Vec<String> = resolved.iter().map(|a| a.ip().to_string()).collect();
                let e = OutboundError::Address(format!(
                    "{host} resolves only to refused addresses [{}]",
                    shown.join(", ")
                ));
                return Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// An error and its causes on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    fn dev() -> OutboundOptions {
        OutboundOptions {
            allow_loopback: true,
            timeout: Duration::from_millis(500),
            ..OutboundOptions::default()
        }
    }

    #[test]
    fn url_rules() {
        let strict = OutboundOptions::default();
        let rows = [
            ("https://example.com/jwks", true, true),
            ("http://example.com/jwks", false, false),
            ("ftp://example.com/jwks", false, false),
            ("https://u:p@example.com/jwks", false, false),
            ("https://127.0.0.1/jwks", false, true),
            ("https://[::1]/jwks", false, true),
            ("http://127.0.0.1:8080/jwks", false, true),
            ("http://[::ffff:127.0.0.1]:8080/jwks", false, true),
            ("http://localhost:8080/jwks", false, true),
            ("http://keys.localhost:8080/jwks", false, true),
            ("https://localhost/jwks", true, true), // a name: vetted when resolved
            ("https://10.0.0.1/jwks", false, false),
            ("https://[::ffff:10.0.0.1]/jwks", false, false),
            ("https://[2001:db8::1]/jwks", false, false),
            ("https://[2001::1]/jwks", false, false),
            ("http://10.0.0.1/jwks", false, false),
            ("https://[2606:4700::1111]/jwks", true, true),
            ("not a url", false, false),
        ];
        for (uri, strict_ok, dev_ok) in rows {
            assert_eq!(check_url(uri, &strict).is_ok(), strict_ok, "{uri} (strict)");
            assert_eq!(
                check_url(uri, &dev()).is_ok(),
                dev_ok,
                "{uri} (loopback allowed)"
            );
        }
        assert!(matches!(
            check_url("https://127.0.0.1/jwks", &strict),
            Err(OutboundError::Address(_))
        ));
    }

    /// ARCHITECTURE.md's invariant: no other HTTP client in the workspace's sources, but the
    /// CLI's OTLP exporter (which posts to the operator's own collector).
    #[test]
    fn every_outbound_call_goes_through_this_client() {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = Vec::new();
        for krate in ["core", "gateway", "admin", "cli"] {
            walk(&crates.join(krate).join("src"), &mut files);
        }
        let allowed = [
            std::path::Path::new("core/src/outbound/mod.rs"),
            std::path::Path::new("cli/src/telemetry.rs"),
        ];
        let builders: Vec<String> = files
            .iter()
            .filter(|f| {
                let text = std::fs::read_to_string(f).unwrap();
                ["reqwest::Client", "reqwest::ClientBuilder", "reqwest::get("]
                    .iter()
                    .any(|needle| text.contains(needle))
            })
            .filter(|f| !allowed.iter().any(|a| f.ends_with(a)))
            .map(|f| f.display().to_string())
            .collect();
        assert!(files.len() > 50, "the sources were found");
        assert!(
            builders.is_empty(),
            "HTTP clients outside outbound: {builders:?}"
        );
    }

    #[test]
    fn ca_bundles_are_checked() {
        assert!(parse_ca_bundle(b"").is_err());
        assert!(parse_ca_bundle(b"not pem").is_err());
        assert!(
            parse_ca_bundle(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .is_err()
        );
        let ca = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap();
        assert_eq!(parse_ca_bundle(ca.cert.pem().as_bytes()).unwrap().len(), 1);
    }

    /// Answers every connection with `response` after `delay`; counts requests.
    async fn serve_raw(response: String, delay: Duration) -> (String, Arc<AtomicUsize>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (response, h) = (response.clone(), h.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = sock.read(&mut buf).await;
                    h.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    let _ = sock.write_all(response.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        (base, hits)
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nCache-Control: max-age=60\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    #[tokio::test]
    async fn bounded_in_size_and_time_and_follows_no_redirect() {
        let max = 1024;
        let big = "x".repeat(max + 1);
        let rows = [
            (ok(&big), "larger than"),
            // No Content-Length: the bound applies while streaming.
            (
                format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{big}"),
                "larger than",
            ),
            (
                "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n"
                    .to_owned(),
                "302",
            ),
            (
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_owned(),
                "500",
            ),
        ];
        let outbound = Outbound::new(dev());
        for (response, expected) in rows {
            let (base, _) = serve_raw(response, Duration::ZERO).await;
            let err = outbound
                .get(&format!("{base}/doc"), "*/*", max)
                .await
                .unwrap_err();
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
        let (base, _) = serve_raw(ok("{}"), Duration::ZERO).await;
        let fetched = outbound
            .get(&format!("{base}/doc"), "*/*", max)
            .await
            .unwrap();
        assert_eq!(fetched.body, b"{}");
        assert_eq!(fetched.cache_control.as_deref(), Some("max-age=60"));

        let (base, _) = serve_raw(ok("{}"), Duration::from_secs(5)).await;
        let started = Instant::now();
        let err = outbound
            .get(&format!("{base}/doc"), "*/*", max)
            .await
            .unwrap_err();
        assert!(matches!(err, OutboundError::Timeout(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2), "{err}");
    }

    #[tokio::test]
    async fn refuses_loopback_by_name_and_literal_unless_allowed() {
        let (base, hits) = serve_raw(ok("{}"), Duration::ZERO).await;
        let port = base.rsplit(':').next().unwrap().to_owned();
        let strict = Outbound::new(OutboundOptions::default());
        // A name resolving to loopback passes the URL check and is refused when resolved.
        let err = strict
            .get(&format!("https://localhost:{port}/doc"), "*/*", 1024)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refused addresses"), "{err}");
        let err = strict
            .get(&format!("https://127.0.0.1:{port}/doc"), "*/*", 1024)
            .await
            .unwrap_err();
        assert!(matches!(err, OutboundError::Address(_)), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached loopback");

        let dev = Outbound::new(dev());
        for host in ["127.0.0.1", "localhost"] {
            let fetched = dev
                .get(&format!("http://{host}:{port}/doc"), "*/*", 1024)
                .await
                .unwrap();
            assert_eq!(fetched.body, b"{}");
        }
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }
}
