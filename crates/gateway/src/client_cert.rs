//! Where a request's client certificate comes from (RFC 8705 §2): the gateway's own TLS
//! handshake — the listener puts the peer's chain into the connection data as a
//! [`ConnectionCertificate`] — or, only when the peer is a trusted proxy, the configured header
//! carrying the URL-encoded PEM certificate (nginx `$ssl_client_escaped_cert`, Envoy/XFCC-style
//! single certificate). A header from any other peer is ignored, never believed. Its size is
//! bounded by the request-head limit (`--max-header-bytes`), like every header.

use std::net::IpAddr;
use std::sync::Arc;

use actix_web::http::header::HeaderName;
use actix_web::{web, HttpRequest};
use ipnet::IpNet;
use tollgate_core::client_auth::ClientCertificate;
use tollgate_core::oauth::OAuthError;

/// The client certificate chain of a TLS connection, as the listener found it.
#[derive(Debug, Clone)]
pub struct ConnectionCertificate(pub Arc<ClientCertificate>);

/// Which peers are trusted reverse proxies, and the header they pass client certificates in.
/// Added to the app as `web::Data<ProxyTrust>`; without it no header is believed.
#[derive(Debug, Clone, Default)]
pub struct ProxyTrust {
    proxies: Vec<IpNet>,
    client_cert_header: Option<HeaderName>,
}

impl ProxyTrust {
    /// Trusts `proxies`; takes client certificates from `client_cert_header` sent by them.
    #[must_use]
    pub fn new(proxies: Vec<IpNet>, client_cert_header: Option<HeaderName>) -> Self {
        Self {
            proxies,
            client_cert_header,
        }
    }

    /// Whether `ip` is one of the trusted proxies (IPv4-mapped IPv6 counts as IPv4).
    #[must_use]
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.proxies.iter().any(|net| net.contains(&ip))
    }

    /// The trusted proxies.
    #[must_use]
    pub fn proxies(&self) -> &[IpNet] {
        &self.proxies
    }

    /// The header carrying client certificates, if configured.
    #[must_use]
    pub fn client_cert_header(&self) -> Option<&HeaderName> {
        self.client_cert_header.as_ref()
    }
}

/// The client certificate that reached this request: from a trusted proxy's header when it
/// sent one, else from the TLS connection.
///
/// # Errors
/// `401 invalid_client` when a trusted proxy's header is not a certificate: the client's
/// credentials are unusable, so it failed to authenticate (RFC 8705 §2, RFC 6749 §5.2).
pub(crate) fn client_certificate(
    req: &HttpRequest,
) -> Result<Option<ClientCertificate>, OAuthError> {
    if let Some(cert) = from_proxy_header(req)? {
        return Ok(Some(cert));
    }
    Ok(req
        .conn_data::<ConnectionCertificate>()
        .map(|c| (*c.0).clone()))
}

fn from_proxy_header(req: &HttpRequest) -> Result<Option<ClientCertificate>, OAuthError> {
    let Some(trust) = req.app_data::<web::Data<ProxyTrust>>() else {
        return Ok(None);
    };
    let Some(name) = trust.client_cert_header() else {
        return Ok(None);
    };
    let mut values = req.headers().get_all(name);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let peer = req.peer_addr().map(|a| a.ip());
    if !peer.is_some_and(|ip| trust.trusts(ip)) {
        tracing::info!(
            peer = %peer.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
            header = %name,
            "ignored a client-certificate header from a peer outside --trusted-proxies"
        );
        return Ok(None);
    }
    let malformed = |why: &str| {
        tracing::info!(
            peer = %peer.map_or_else(String::new, |ip| ip.to_string()),
            header = %name,
            reason = "malformed_certificate_header",
            error = why,
            "client authentication failed"
        );
        OAuthError::invalid_client("the client certificate from the proxy is malformed")
    };
    if values.next().is_some() {
        return Err(malformed("the header is repeated"));
    }
    let text = value
        .to_str()
        .map_err(|_| malformed("the header is not ASCII"))?;
    // nginx sends an empty value when the client presented no certificate.
    ClientCertificate::from_header_value(text).map_err(|e| malformed(&e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn trusts_only_configured_networks() {
        let trust = ProxyTrust::new(
            vec!["127.0.0.1/32".parse().unwrap(), "fd00::/8".parse().unwrap()],
            None,
        );
        assert!(trust.trusts("127.0.0.1".parse().unwrap()));
        assert!(trust.trusts("::ffff:127.0.0.1".parse().unwrap()));
        assert!(trust.trusts("fd12::1".parse().unwrap()));
        assert!(!trust.trusts("127.0.0.2".parse().unwrap()));
        assert!(!trust.trusts("10.0.0.1".parse().unwrap()));
        assert!(!ProxyTrust::default().trusts("127.0.0.1".parse().unwrap()));
    }

    fn request(peer: &str, headers: &[&str]) -> HttpRequest {
        let trust = ProxyTrust::new(
            vec!["127.0.0.1/32".parse().unwrap()],
            Some(HeaderName::from_static("x-client-cert")),
        );
        let mut req = actix_web::test::TestRequest::default()
            .peer_addr(format!("{peer}:40000").parse().unwrap())
            .app_data(web::Data::new(trust));
        for h in headers {
            req = req.append_header(("x-client-cert", *h));
        }
        req.to_http_request()
    }

    #[test]
    fn header_rows() {
        let pem = "-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A";
        let rows: [(&str, &[&str], Result<(), u16>); 7] = [
            ("127.0.0.1", &[], Ok(())),
            ("127.0.0.1", &[""], Ok(())),
            ("10.1.2.3", &["garbage"], Ok(())),
            ("127.0.0.1", &["garbage"], Err(401)),
            ("127.0.0.1", &[pem], Err(401)),
            ("127.0.0.1", &["a", "b"], Err(401)),
            ("127.0.0.1", &["%FF%FE"], Err(401)),
        ];
        for (peer, headers, want) in rows {
            let got = client_certificate(&request(peer, headers));
            match want {
                Ok(()) => assert!(matches!(got, Ok(None)), "{peer} {headers:?}: {got:?}"),
                Err(status) => {
                    let e = got.unwrap_err();
                    assert_eq!(
                        (e.status, e.code.as_str()),
                        (status, "invalid_client"),
                        "{peer} {headers:?}"
                    );
                }
            }
        }
    }
}
