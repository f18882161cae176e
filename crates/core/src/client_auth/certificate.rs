//! A client certificate as the gateway received it (TLS handshake or trusted proxy header).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

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

impl ClientCertificate {
    /// RFC 8705 §3.1 `x5t#S256`: base64url SHA-256 of the DER certificate.
    #[must_use]
    pub fn thumbprint_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.der).as_ref())
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
