//! A client certificate as the gateway received it (TLS handshake or trusted proxy header).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;

/// A client certificate: the end-entity DER and any intermediates that came with it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// End-entity certificate, DER.
    pub der: Vec<u8>,
    /// Intermediates, DER, in the order presented.
    pub chain: Vec<Vec<u8>>,
    /// Whether it came from a trusted proxy's header rather than our own TLS handshake.
    pub via_proxy: bool,
}

/// Why a PEM client certificate (from a proxy header) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// No `CERTIFICATE` PEM section, or broken PEM.
    #[error("not a PEM certificate")]
    NotPem,
    /// The first certificate is not a well-formed X.509 certificate.
    #[error("not an X.509 certificate")]
    NotX509,
    /// More certificates than any real chain has.
    #[error("too many certificates")]
    TooMany,
}

/// Most certificates taken from one PEM text (end-entity plus intermediates).
const MAX_CHAIN: usize = 8;

impl ClientCertificate {
    /// Reads a PEM text: the first certificate is the client's, any others its intermediates.
    ///
    /// # Errors
    /// When there is no well-formed certificate.
    pub fn from_pem(pem: &[u8], via_proxy: bool) -> Result<Self, CertificateError> {
        let mut certs = Vec::new();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|_| CertificateError::NotPem)?;
            if certs.len() == MAX_CHAIN {
                return Err(CertificateError::TooMany);
            }
            certs.push(cert.to_vec());
        }
        if certs.is_empty() {
            return Err(CertificateError::NotPem);
        }
        let der = certs.remove(0);
        if !matches!(x509_parser::parse_x509_certificate(&der), Ok((rest, _)) if rest.is_empty()) {
            return Err(CertificateError::NotX509);
        }
        Ok(Self {
            der,
            chain: certs,
            via_proxy,
        })
    }

    /// Reads the value of a trusted proxy's client-certificate header: URL-encoded PEM (nginx
    /// `$ssl_client_escaped_cert`), surrounding whitespace ignored; an empty value means the
    /// client presented no certificate.
    ///
    /// # Errors
    /// When the value is not a well-formed certificate.
    pub fn from_header_value(value: &str) -> Result<Option<Self>, CertificateError> {
        let text = value.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let pem: Vec<u8> = percent_encoding::percent_decode_str(text).collect();
        Self::from_pem(&pem, true).map(Some)
    }

    /// RFC 8705 §3.1 `x5t#S256`: base64url SHA-256 of the DER certificate.
    #[must_use]
    pub fn thumbprint_s256(&self) -> String {
        URL_SAFE_NO_PAD
            .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.der).as_ref())
    }
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint_s256())
            .field("via_proxy", &self.via_proxy)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn reads_pem_with_intermediates_and_refuses_garbage() {
        let key = rcgen::KeyPair::generate().unwrap();
        let a = rcgen::CertificateParams::new(vec!["a.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let b = rcgen::CertificateParams::new(vec!["b.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let both = format!("{}{}", a.pem(), b.pem());
        let cert = ClientCertificate::from_pem(both.as_bytes(), true).unwrap();
        assert_eq!(cert.der, a.der().to_vec());
        assert_eq!(cert.chain, vec![b.der().to_vec()]);
        assert!(cert.via_proxy);

        let not_x509 = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(
            ClientCertificate::from_pem(not_x509.as_bytes(), true),
            Err(CertificateError::NotX509)
        );
        assert_eq!(
            ClientCertificate::from_pem(b"hello", true),
            Err(CertificateError::NotPem)
        );
        assert_eq!(
            ClientCertificate::from_pem(key.serialize_pem().as_bytes(), true),
            Err(CertificateError::NotPem)
        );
        let broken = a.pem().replace("-----END CERTIFICATE-----", "");
        assert_eq!(
            ClientCertificate::from_pem(broken.as_bytes(), true),
            Err(CertificateError::NotPem)
        );
    }

    #[test]
    fn debug_shows_the_thumbprint_not_the_certificate() {
        let cert = ClientCertificate {
            der: vec![1, 2, 3],
            chain: vec![],
            via_proxy: false,
        };
        let shown = format!("{cert:?}");
        assert!(shown.contains(&cert.thumbprint_s256()), "{shown}");
        assert!(!shown.contains("[1, 2, 3]"), "{shown}");
    }
}
