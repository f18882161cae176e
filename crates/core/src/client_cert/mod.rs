//! Client certificates (RFC 8705) and the certificate authorities they chain to: the
//! certificate as the gateway received it (TLS handshake or trusted proxy header), and CA
//! bundles parsed once into verifiers — the process-wide `--tls-client-ca` and each server's
//! own `tls_client_ca`. Foundation: the model validates server bundles with it, the registry
//! caches the parsed ones, client authentication verifies with them.

mod ca;
mod certificate;

pub use ca::{ClientCa, ClientCaError, MAX_CLIENT_CAS, MAX_CLIENT_CA_BYTES};
pub use certificate::{CertificateError, ClientCertificate};
