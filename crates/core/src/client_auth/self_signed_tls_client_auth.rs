//! `self_signed_tls_client_auth`: a self-signed client certificate matching one registered in the client's jwks (RFC 8705 §2.2).
//!
//! The certificate's chain is not validated (§2.2): TLS proved possession of its private key,
//! and the client authenticates when the certificate is, byte for byte, one it registered as
//! the first `x5c` element (RFC 7517 §4.7) of a key in its inline `jwks`, and is valid now.
//! Registering through `jwks_uri` is not supported for this method yet.

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use super::{Authenticator, Failure, Presented};
use crate::app::Tollgate;
use crate::clock;
use crate::registry::{ClientRuntime, ServerRuntime};
use crate::server::AuthMethod;

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
        _: &Tollgate,
        _: &ServerRuntime,
        client: &ClientRuntime,
        presented: &Presented<'_>,
    ) -> Result<(), Failure> {
        let cert = presented.certificate.ok_or(Failure::NoCertificate)?;
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&cert.der) else {
            return Err(Failure::UntrustedCertificate);
        };
        let validity = parsed.validity();
        let now = clock::now();
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

/// The DER certificates a JWK Set registers: the first `x5c` element of each key that has one.
///
/// # Errors
/// When an `x5c` is not an array of base64 (not base64url) DER certificates, in words fit for
/// an admin.
pub(crate) fn registered_certificates(jwks: &Value) -> Result<Vec<Vec<u8>>, String> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("must be a JWK Set: an object with a `keys` array")?;
    let mut out = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let Some(x5c) = key.get("x5c") else { continue };
        let chain = x5c
            .as_array()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| format!("key {i}: `x5c` must be a non-empty array"))?;
        for (j, cert) in chain.iter().enumerate() {
            let der = cert
                .as_str()
                .and_then(|c| STANDARD.decode(c).ok())
                .ok_or_else(|| format!("key {i}: `x5c[{j}]` is not base64 (RFC 7517 §4.7)"))?;
            if !matches!(x509_parser::parse_x509_certificate(&der), Ok((rest, _)) if rest.is_empty())
            {
                return Err(format!("key {i}: `x5c[{j}]` is not an X.509 certificate"));
            }
            if j == 0 {
                out.push(der);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

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
