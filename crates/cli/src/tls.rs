//! HTTPS and client certificates for the gateway listener (RFC 8705 §2): the TLS options
//! validated together, the rustls server configuration (aws-lc-rs), a handshake verifier that
//! requests — never requires — client certificates, and the `on_connect` hook that hands the
//! peer's chain to the request. Chains are checked later, per authentication method and per
//! server, in core: a self-signed certificate must get through the handshake for
//! `self_signed_tls_client_auth`, and one from a tenant's own CA for that tenant's
//! `tls_client_auth`.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::http::header::HeaderName;
use actix_web::rt::net::TcpStream;
use ipnet::IpNet;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tollgate_core::client_auth::{ClientCa, ClientCertificate};
use tollgate_gateway::{ConnectionCertificate, ProxyTrust};

use crate::config::ServeArgs;
use crate::Fatal;

const CERT: (&str, &str) = ("tls-cert", "TOLLGATE_TLS_CERT");
const KEY: (&str, &str) = ("tls-key", "TOLLGATE_TLS_KEY");
const CLIENT_CA: (&str, &str) = ("tls-client-ca", "TOLLGATE_TLS_CLIENT_CA");
const HEADER: (&str, &str) = ("client-cert-header", "TOLLGATE_CLIENT_CERT_HEADER");
const PROXIES: (&str, &str) = ("trusted-proxies", "TOLLGATE_TRUSTED_PROXIES");

fn bad(option: (&str, &str), msg: impl std::fmt::Display) -> Fatal {
    Fatal::option(option.0, option.1, msg)
}

/// The TLS and client-certificate options, checked against each other.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// Certificate chain and private key: the gateway serves HTTPS.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// CAs for `tls_client_auth`.
    pub client_ca: Option<PathBuf>,
    /// Header a trusted proxy passes the client certificate in.
    pub client_cert_header: Option<HeaderName>,
    /// Peers whose client-certificate header is believed.
    pub trusted_proxies: Vec<IpNet>,
}

impl TlsSettings {
    /// Validates the options. Client certificates need the CA bundle and a way to arrive
    /// (our own TLS, or the proxy header); the header needs the proxies it is believed from.
    ///
    /// # Errors
    /// A configuration error naming the option.
    pub fn from_args(args: &ServeArgs) -> Result<Self, Fatal> {
        let path = |p: &Option<PathBuf>| p.clone().filter(|p| !p.as_os_str().is_empty());
        let cert_and_key = match (path(&args.tls_cert), path(&args.tls_key)) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => return Err(bad(KEY, "is required with --tls-cert")),
            (None, Some(_)) => return Err(bad(CERT, "is required with --tls-key")),
        };
        let client_cert_header = match args.client_cert_header.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(name) => Some(
                HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| bad(HEADER, format!("`{name}` is not a header name")))?,
            ),
        };
        let trusted_proxies = parse_proxies(args.trusted_proxies.as_deref().unwrap_or(""))?;
        let client_ca = path(&args.tls_client_ca);
        if client_ca.is_some() && cert_and_key.is_none() && client_cert_header.is_none() {
            return Err(bad(
                CLIENT_CA,
                "needs --tls-cert/--tls-key or --client-cert-header: client certificates have no way to arrive",
            ));
        }
        if client_cert_header.is_some() {
            if client_ca.is_none() {
                return Err(bad(
                    HEADER,
                    "requires --tls-client-ca: proxied certificates are checked against those CAs",
                ));
            }
            if trusted_proxies.is_empty() {
                return Err(bad(
                    HEADER,
                    "requires --trusted-proxies: the header is believed only from them",
                ));
            }
        }
        Ok(Self {
            cert_and_key,
            client_ca,
            client_cert_header,
            trusted_proxies,
        })
    }

    /// Whether client certificates can reach the gateway: the two TLS methods are servable.
    #[must_use]
    pub fn client_certificates(&self) -> bool {
        self.client_ca.is_some()
    }

    /// Who may pass client certificates in a header.
    #[must_use]
    pub fn proxy_trust(&self) -> ProxyTrust {
        ProxyTrust::new(
            self.trusted_proxies.clone(),
            self.client_cert_header.clone(),
        )
    }
}

/// Comma-separated CIDRs; a bare address means just that host.
fn parse_proxies(list: &str) -> Result<Vec<IpNet>, Fatal> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    bad(
                        PROXIES,
                        format!("`{s}` is not a CIDR (e.g. 10.0.0.0/8) or an IP address"),
                    )
                })
        })
        .collect()
}

/// What the TLS files hold, ready to use.
#[derive(Debug, Default)]
pub struct LoadedTls {
    /// The gateway's rustls configuration, when it serves HTTPS.
    pub server: Option<ServerConfig>,
    /// The client CAs.
    pub client_ca: Option<Arc<ClientCa>>,
}

/// Reads the PEM files and builds the TLS configuration.
///
/// # Errors
/// A configuration error naming the option whose file is unreadable or unusable.
pub fn load(settings: &TlsSettings) -> Result<LoadedTls, Fatal> {
    let client_ca = match &settings.client_ca {
        Some(path) => {
            let pem = read(path, CLIENT_CA)?;
            let ca = ClientCa::from_pem(&pem)
                .map_err(|e| bad(CLIENT_CA, format!("{}: {e}", path.display())))?;
            tracing::info!(cas = ca.len(), "client certificate authorities loaded");
            Some(Arc::new(ca))
        }
        None => None,
    };
    let Some((cert_path, key_path)) = &settings.cert_and_key else {
        return Ok(LoadedTls {
            server: None,
            client_ca,
        });
    };
    let certs = CertificateDer::pem_slice_iter(&read(cert_path, CERT)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            bad(
                CERT,
                format!("{}: not a PEM certificate chain: {e}", cert_path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(bad(
            CERT,
            format!("{}: contains no certificate", cert_path.display()),
        ));
    }
    // The key's own error text never includes key material.
    let key = PrivateKeyDer::from_pem_slice(&read(key_path, KEY)?).map_err(|e| {
        bad(
            KEY,
            format!("{}: no usable PEM private key: {e}", key_path.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let algs = provider.signature_verification_algorithms;
    let builder = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Fatal::Runtime(format!("TLS setup failed: {e}")))?;
    let builder = match &client_ca {
        // Only with the CA bundle do we ask for certificates; a gateway serving HTTPS
        // without it serves none of the certificate methods.
        Some(_) => builder.with_client_cert_verifier(Arc::new(RequestClientCertificate { algs })),
        None => builder.with_no_client_auth(),
    };
    let server = builder.with_single_cert(certs, key).map_err(|e| {
        bad(
            KEY,
            format!(
                "{}: does not fit the --tls-cert certificate: {e}",
                key_path.display()
            ),
        )
    })?;
    Ok(LoadedTls {
        server: Some(server),
        client_ca,
    })
}

fn read(path: &Path, option: (&str, &str)) -> Result<Vec<u8>, Fatal> {
    std::fs::read(path).map_err(|e| bad(option, format!("cannot read {}: {e}", path.display())))
}

/// Requests a client certificate, never requires one, and accepts any chain at handshake
/// time: the handshake still proves the client holds the certificate's private key (the
/// signature check below), and client authentication checks the chain — against the CAs of
/// the server the request is for (its own `tls_client_ca`, else `--tls-client-ca`), which the
/// handshake cannot know: tenants share the listener and are told apart by the request path.
/// For the same reason no CA names are offered as hints (an empty `certificate_authorities`,
/// which RFC 8446 §4.2.4 and RFC 5246 §7.4.4 read as "any"): a list of the operator's CAs
/// would steer clients that choose their certificate by issuer away from a tenant's own CA,
/// and from the self-signed certificates of `self_signed_tls_client_auth`.
#[derive(Debug)]
struct RequestClientCertificate {
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RequestClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// `HttpServer::on_connect`: puts the TLS peer's certificate chain, if it sent one, into the
/// connection data, where the gateway finds it as a [`ConnectionCertificate`].
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    let Some(tls) = conn.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    let (_, session) = tls.get_ref();
    if let Some((end_entity, intermediates)) =
        session.peer_certificates().and_then(<[_]>::split_first)
    {
        ext.insert(ConnectionCertificate(Arc::new(ClientCertificate {
            der: end_entity.to_vec(),
            chain: intermediates.iter().map(|c| c.to_vec()).collect(),
            via_proxy: false,
        })));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser as _;

    use super::*;

    fn settings(args: &[&str]) -> Result<TlsSettings, String> {
        #[derive(clap::Parser)]
        struct Wrap {
            #[command(flatten)]
            args: ServeArgs,
        }
        let parsed =
            Wrap::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).unwrap();
        TlsSettings::from_args(&parsed.args).map_err(|e| match e {
            Fatal::Config(m) | Fatal::Runtime(m) => m,
        })
    }

    #[test]
    fn options_are_checked_together() {
        let rows: &[(&[&str], Option<&str>)] = &[
            (&[], None),
            (&["--tls-cert", "c.pem", "--tls-key", "k.pem"], None),
            (
                &[
                    "--tls-cert",
                    "c.pem",
                    "--tls-key",
                    "k.pem",
                    "--tls-client-ca",
                    "ca.pem",
                ],
                None,
            ),
            (
                &[
                    "--client-cert-header",
                    "X-Client-Cert",
                    "--trusted-proxies",
                    "127.0.0.1/32",
                    "--tls-client-ca",
                    "ca.pem",
                ],
                None,
            ),
            (&["--trusted-proxies", " 10.0.0.0/8, 192.0.2.7 ,::1 "], None),
            (&["--tls-cert", "c.pem"], Some("--tls-key")),
            (&["--tls-key", "k.pem"], Some("--tls-cert")),
            (&["--tls-client-ca", "ca.pem"], Some("--tls-client-ca")),
            (
                &[
                    "--client-cert-header",
                    "X-Client-Cert",
                    "--trusted-proxies",
                    "127.0.0.1/32",
                ],
                Some("--client-cert-header"),
            ),
            (
                &[
                    "--client-cert-header",
                    "X-Client-Cert",
                    "--tls-client-ca",
                    "ca.pem",
                ],
                Some("--client-cert-header"),
            ),
            (
                &[
                    "--client-cert-header",
                    "bad header",
                    "--tls-client-ca",
                    "ca.pem",
                    "--trusted-proxies",
                    "127.0.0.1",
                ],
                Some("--client-cert-header"),
            ),
            (
                &["--trusted-proxies", "10.0.0.0/33"],
                Some("--trusted-proxies"),
            ),
            (
                &["--trusted-proxies", "proxy.internal"],
                Some("--trusted-proxies"),
            ),
        ];
        for (args, want) in rows {
            let got = settings(args);
            match want {
                None => assert!(got.is_ok(), "{args:?}: {got:?}"),
                Some(flag) => {
                    let msg = got.unwrap_err();
                    assert!(
                        msg.starts_with(&format!("invalid {flag} (")),
                        "{args:?}: {msg}"
                    );
                }
            }
        }
        let s = settings(&["--trusted-proxies", "192.0.2.7,::1"]).unwrap();
        assert_eq!(
            s.trusted_proxies,
            vec![
                "192.0.2.7/32".parse::<IpNet>().unwrap(),
                "::1/128".parse().unwrap()
            ]
        );
    }
}
