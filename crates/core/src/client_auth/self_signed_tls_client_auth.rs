//! `self_signed_tls_client_auth`: a self-signed client certificate matching one registered in the client's jwks (RFC 8705 §2.2).
//!
//! The certificate's chain is not validated (§2.2): TLS proved possession of its private key,
//! and the client authenticates when the certificate is, byte for byte, one it registered as
//! the first `x5c` element (RFC 7517 §4.7) of a key in its inline `jwks`, and is valid now.
//! Registering through `jwks_uri` is not supported for this method yet.

use async_trait::async_trait;

use super::{Authenticator, ClientAuth, Failure, Presented};
use crate::client_keys::registered_certificates;
use crate::model::server::AuthMethod;
use crate::registry::{ClientRuntime, ServerRuntime};

/// The authenticator.
#[derive(Debug)]
pub(super) struct SelfSignedTlsClientAuth;

#[async_trait]
impl Authenticator for SelfSignedTlsClientAuth {
    fn method(&self) -> AuthMethod {
        AuthMethod::SelfSignedTlsClientAuth
    }

    async fn verify(
        &self,
        ctx: &ClientAuth<'_>,
        _: &ServerRuntime,
        client: &ClientRuntime,
        presented: &Presented<'_>,
    ) -> Result<(), Failure> {
        let cert = presented.certificate.ok_or(Failure::NoCertificate)?;
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&cert.der) else {
            return Err(Failure::UntrustedCertificate);
        };
        let validity = parsed.validity();
        let now = ctx.clock.now();
        if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
            tracing::info!(
                client_id = %client.client.client_id,
                x5t_s256 = %cert.thumbprint_s256(),
                via_proxy = cert.via_proxy,
                "client certificate rejected: outside its validity period"
            );
            return Err(Failure::UntrustedCertificate);
        }
        let registered = client
            .client
            .metadata
            .jwks
            .as_ref()
            .map(|jwks| registered_certificates(jwks).unwrap_or_default())
            .unwrap_or_default();
        if registered.contains(&cert.der) {
            Ok(())
        } else {
            tracing::info!(
                client_id = %client.client.client_id,
                x5t_s256 = %cert.thumbprint_s256(),
                via_proxy = cert.via_proxy,
                "client certificate rejected: it is not one the client registered"
            );
            Err(Failure::CertificateMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    use super::*;

    fn cert() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["self.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec()
    }

    #[test]
    fn reads_the_first_x5c_element_of_each_key() {
        let (a, b) = (cert(), cert());
        let jwks = serde_json::json!({"keys": [
            {"kty": "EC", "x5c": [STANDARD.encode(&a), STANDARD.encode(&b)]},
            {"kty": "EC"},
            {"kty": "EC", "x5c": [STANDARD.encode(&b)]},
        ]});
        assert_eq!(registered_certificates(&jwks).unwrap(), vec![a, b]);
    }

    #[test]
    fn refuses_malformed_x5c() {
        let good = STANDARD.encode(cert());
        for (jwks, why) in [
            (serde_json::json!({}), "keys"),
            (serde_json::json!({"keys": [{"x5c": []}]}), "non-empty"),
            (serde_json::json!({"keys": [{"x5c": good}]}), "non-empty"),
            (serde_json::json!({"keys": [{"x5c": ["!!"]}]}), "base64"),
            (
                serde_json::json!({"keys": [{"x5c": [STANDARD.encode(b"not a cert")]}]}),
                "X.509",
            ),
            (serde_json::json!({"keys": [{"x5c": [good, 1]}]}), "x5c[1]"),
        ] {
            let e = registered_certificates(&jwks).unwrap_err();
            assert!(e.contains(why), "{jwks}: {e}");
        }
    }
}
