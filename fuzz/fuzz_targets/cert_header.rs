//! The client-certificate header from a trusted proxy (URL-encoded PEM, RFC 8705 via nginx's
//! `$ssl_client_escaped_cert`), and the PEM reader beneath it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::client_auth::ClientCertificate;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(Some(cert)) = ClientCertificate::from_header_value(text) {
            assert!(cert.chain.len() < 8);
            let _ = cert.thumbprint_s256();
        }
    }
    let _ = ClientCertificate::from_pem(data, true);
});
