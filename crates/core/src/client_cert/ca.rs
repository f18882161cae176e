//! The certificate authorities `tls_client_auth` certificates must chain to: the process-wide
//! bundle (`--tls-client-ca`, the operator's default) or a server's own `tls_client_ca`. A PEM
//! bundle is turned into a webpki verifier once, and used after the handshake, at client
//! authentication, for certificates from our own TLS connections and from trusted proxies
//! alike.

use std::fmt;
use std::sync::Arc;

use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{DistinguishedName, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::ClientCertificate;

/// Why a CA bundle is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientCaError {
    /// The PEM text is broken.
    #[error("not a PEM certificate bundle: {0}")]
    Pem(String),
    /// No `CERTIFICATE` section at all.
    #[error("contains no certificate")]
    Empty,
    /// A certificate that cannot be a trust anchor.
    #[error("certificate #{index} cannot be a trust anchor: {reason}")]
    Anchor {
        /// 1-based position in the bundle.
        index: usize,
        /// What webpki said.
        reason: String,
    },
    /// The verifier could not be built.
    #[error("{0}")]
    Verifier(String),
    /// A server's bundle is larger than [`MAX_CLIENT_CA_BYTES`].
    #[error("is larger than {MAX_CLIENT_CA_BYTES} bytes")]
    TooLarge,
    /// A server's bundle holds more than [`MAX_CLIENT_CAS`] certificates.
    #[error("holds more than {MAX_CLIENT_CAS} certificates")]
    TooMany,
    /// A server's bundle holds a PEM section other than `CERTIFICATE` (a private key, say).
    #[error("holds a PEM section that is not a CERTIFICATE")]
    NotCertificate,
    /// A certificate of a server's bundle is not a CA certificate (RFC 5280 §4.2.1.9
    /// `basicConstraints` with `cA` true).
    #[error("certificate #{index} is not a CA certificate (basicConstraints cA)")]
    NotCa {
        /// 1-based position in the bundle.
        index: usize,
    },
}

/// Largest PEM bundle a server may hold, bytes.
pub const MAX_CLIENT_CA_BYTES: usize = 64 * 1024;
/// Most CA certificates a server's bundle may hold.
pub const MAX_CLIENT_CAS: usize = 32;

/// The configured client CAs.
pub struct ClientCa {
    verifier: Arc<dyn ClientCertVerifier>,
    subjects: Vec<DistinguishedName>,
}

impl fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCa")
            .field("anchors", &self.subjects.len())
            .finish_non_exhaustive()
    }
}

impl ClientCa {
    /// Builds the trust store from a PEM bundle of CA certificates.
    ///
    /// # Errors
    /// When the bundle is broken, empty, or holds a certificate webpki cannot anchor to.
    pub fn from_pem(pem: &[u8]) -> Result<Self, ClientCaError> {
        let mut roots = RootCertStore::empty();
        for (i, cert) in CertificateDer::pem_slice_iter(pem).enumerate() {
            let cert = cert.map_err(|e| ClientCaError::Pem(e.to_string()))?;
            roots.add(cert).map_err(|e| ClientCaError::Anchor {
                index: i + 1,
                reason: e.to_string(),
            })?;
        }
        if roots.is_empty() {
            return Err(ClientCaError::Empty);
        }
        let subjects = roots.subjects();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| ClientCaError::Verifier(e.to_string()))?;
        Ok(Self { verifier, subjects })
    }

    /// Builds the trust store of one server (`tls_client_ca`), stricter than the operator's
    /// file: at most [`MAX_CLIENT_CA_BYTES`] and [`MAX_CLIENT_CAS`], nothing but `CERTIFICATE`
    /// sections (so a private key pasted by mistake is refused, not stored), and each one a
    /// CA certificate.
    ///
    /// # Errors
    /// Why the bundle is unusable, without quoting it.
    pub fn from_server_bundle(pem: &str) -> Result<Self, ClientCaError> {
        if pem.len() > MAX_CLIENT_CA_BYTES {
            return Err(ClientCaError::TooLarge);
        }
        let mut rest = pem.as_bytes();
        let mut count = 0;
        // The reader's own error can quote a line of the text: say only that it is broken.
        while let Some((kind, der)) = rustls_pki_types::pem::from_buf(&mut rest)
            .map_err(|_| ClientCaError::Pem("a section is malformed or not terminated".into()))?
        {
            if kind != rustls_pki_types::pem::SectionKind::Certificate {
                return Err(ClientCaError::NotCertificate);
            }
            count += 1;
            if count > MAX_CLIENT_CAS {
                return Err(ClientCaError::TooMany);
            }
            let is_ca = matches!(
                x509_parser::parse_x509_certificate(&der),
                Ok((tail, cert)) if tail.is_empty() && cert.is_ca()
            );
            if !is_ca {
                return Err(ClientCaError::NotCa { index: count });
            }
        }
        // Sections of unknown kinds are skipped by the reader above: count them here.
        if pem.matches("-----BEGIN ").count() != count {
            return Err(ClientCaError::NotCertificate);
        }
        Self::from_pem(pem.as_bytes()).map_err(|e| match e {
            ClientCaError::Pem(_) => {
                ClientCaError::Pem("a section is malformed or not terminated".into())
            }
            other => other,
        })
    }

    /// How many CAs the bundle holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.subjects.len()
    }

    /// Always false: an empty bundle is refused by [`ClientCa::from_pem`].
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty()
    }

    /// Checks that `cert` chains (through its intermediates) to one of the CAs, is valid at
    /// `now`, and may be used for TLS client authentication (RFC 5280 path validation, by
    /// webpki).
    ///
    /// # Errors
    /// webpki's reason, for the log.
    pub fn verify(&self, cert: &ClientCertificate, now: UnixTime) -> Result<(), rustls::Error> {
        let end_entity = CertificateDer::from(cert.der.as_slice());
        let intermediates: Vec<CertificateDer<'_>> = cert
            .chain
            .iter()
            .map(|c| CertificateDer::from(c.as_slice()))
            .collect();
        self.verifier
            .verify_client_cert(&end_entity, &intermediates, now)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    fn ca(name: &str) -> (rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, String) {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let issuer =
            rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
                .unwrap();
        let pem = issuer.pem();
        (issuer, pem)
    }

    fn client(issuer: &rcgen::Issuer<'_, rcgen::KeyPair>, expiry_year: i32) -> ClientCertificate {
        let mut params = rcgen::CertificateParams::new(vec!["client.example".into()]).unwrap();
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.not_after = rcgen::date_time_ymd(expiry_year, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, issuer).unwrap();
        ClientCertificate {
            der: cert.der().to_vec(),
            chain: vec![],
            via_proxy: false,
        }
    }

    #[test]
    fn verifies_chain_and_validity() {
        let (ours, ours_pem) = ca("Ours");
        let (theirs, _) = ca("Theirs");
        let store = ClientCa::from_pem(ours_pem.as_bytes()).unwrap();
        assert_eq!(store.len(), 1);
        let now = UnixTime::now();
        let far = 2200;
        assert!(store.verify(&client(&ours, far), now).is_ok());
        assert!(store.verify(&client(&theirs, far), now).is_err());
        let expired = client(&ours, 2001);
        assert!(store.verify(&expired, now).is_err());
        let later =
            UnixTime::since_unix_epoch(Duration::from_secs(now.as_secs() + 200 * 366 * 86_400));
        assert!(store.verify(&client(&ours, far), later).is_err());
    }

    #[test]
    fn refuses_unusable_bundles() {
        assert_eq!(ClientCa::from_pem(b"").unwrap_err(), ClientCaError::Empty);
        let key = rcgen::KeyPair::generate().unwrap();
        assert_eq!(
            ClientCa::from_pem(key.serialize_pem().as_bytes()).unwrap_err(),
            ClientCaError::Empty
        );
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n";
        assert!(matches!(
            ClientCa::from_pem(broken.as_bytes()).unwrap_err(),
            ClientCaError::Pem(_)
        ));
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            ClientCa::from_pem(garbage.as_bytes()).unwrap_err(),
            ClientCaError::Anchor { index: 1, .. }
        ));
    }

    #[test]
    fn server_bundles_hold_only_a_bounded_number_of_ca_certificates() {
        let (_, one) = ca("One");
        let (_, two) = ca("Two");
        let both = format!("{one}{two}");
        assert_eq!(ClientCa::from_server_bundle(&both).unwrap().len(), 2);
        let (leaf_issuer, _) = ca("Leaf issuer");
        let mut params = rcgen::CertificateParams::new(vec!["leaf.example".into()]).unwrap();
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        let leaf = params
            .signed_by(&rcgen::KeyPair::generate().unwrap(), &leaf_issuer)
            .unwrap()
            .pem();
        assert_eq!(
            ClientCa::from_server_bundle(&format!("{one}{leaf}")).unwrap_err(),
            ClientCaError::NotCa { index: 2 }
        );
        let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
        assert_eq!(
            ClientCa::from_server_bundle(&format!("{one}{key}")).unwrap_err(),
            ClientCaError::NotCertificate
        );
        let unknown = "-----BEGIN SOMETHING-----\nAAAA\n-----END SOMETHING-----\n";
        assert_eq!(
            ClientCa::from_server_bundle(&format!("{one}{unknown}")).unwrap_err(),
            ClientCaError::NotCertificate
        );
        assert_eq!(
            ClientCa::from_server_bundle("").unwrap_err(),
            ClientCaError::Empty
        );
        assert_eq!(
            ClientCa::from_server_bundle(&one.repeat(MAX_CLIENT_CAS + 1)).unwrap_err(),
            if one.len() * (MAX_CLIENT_CAS + 1) > MAX_CLIENT_CA_BYTES {
                ClientCaError::TooLarge
            } else {
                ClientCaError::TooMany
            }
        );
        assert_eq!(
            ClientCa::from_server_bundle(&" ".repeat(MAX_CLIENT_CA_BYTES + 1)).unwrap_err(),
            ClientCaError::TooLarge
        );
    }
}
