//! `tls_client_auth`: a client certificate chaining to one of the server's trusted CAs (its
//! own `tls_client_ca`, else the operator's `--tls-client-ca`) whose subject DN or SAN matches
//! the registration (RFC 8705 §2.1).

use super::ClientAuth;
use std::net::IpAddr;

use async_trait::async_trait;
use rustls_pki_types::UnixTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::{Authenticator, Failure, Presented};
use crate::model::client::ClientMetadata;
use crate::model::dn::DistinguishedName;
use crate::model::server::AuthMethod;
use crate::registry::{ClientRuntime, ServerRuntime};

/// The authenticator.
#[derive(Debug)]
pub(super) struct TlsClientAuth;

#[async_trait]
impl Authenticator for TlsClientAuth {
    fn method(&self) -> AuthMethod {
        AuthMethod::TlsClientAuth
    }

    async fn verify(
        &self,
        ctx: &ClientAuth<'_>,
        server: &ServerRuntime,
        client: &ClientRuntime,
        presented: &Presented<'_>,
    ) -> Result<(), Failure> {
        let cert = presented.certificate.ok_or(Failure::NoCertificate)?;
        // The server's own CAs, else the operator's: a DN registered by one tenant never
        // matches a certificate that only another tenant's CA vouches for.
        let Some(ca) = server.trusted_client_ca(ctx.client_ca) else {
            return Err(Failure::Unsupported);
        };
        if let Err(e) = ca.verify(cert, UnixTime::now()) {
            tracing::info!(
                client_id = %client.client.client_id,
                x5t_s256 = %cert.thumbprint_s256(),
                via_proxy = cert.via_proxy,
                error = %e,
                "client certificate rejected: it does not chain to a configured CA or is not valid now"
            );
            return Err(Failure::UntrustedCertificate);
        }
        let Ok((_, parsed)) = x509_parser::parse_x509_certificate(&cert.der) else {
            return Err(Failure::UntrustedCertificate);
        };
        if registered_subject_matches(&client.client.metadata, &parsed) {
            Ok(())
        } else {
            tracing::info!(
                client_id = %client.client.client_id,
                x5t_s256 = %cert.thumbprint_s256(),
                via_proxy = cert.via_proxy,
                "client certificate rejected: its subject does not match the registered one"
            );
            Err(Failure::CertificateMismatch)
        }
    }
}

/// Whether the certificate carries the one subject field the client registered (RFC 8705
/// §2.1.2): the subject DN, or one SAN entry of the registered type.
fn registered_subject_matches(m: &ClientMetadata, cert: &X509Certificate<'_>) -> bool {
    if let Some(dn) = &m.tls_client_auth_subject_dn {
        return DistinguishedName::parse(dn).is_ok_and(|dn| dn.matches(cert.subject()));
    }
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let names = &san.value.general_names;
    if let Some(want) = &m.tls_client_auth_san_dns {
        // DNS names compare case-insensitively (RFC 4343).
        return names
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName(d) if d.eq_ignore_ascii_case(want)));
    }
    if let Some(want) = &m.tls_client_auth_san_uri {
        return names
            .iter()
            .any(|n| matches!(n, GeneralName::URI(u) if u == want));
    }
    if let Some(want) = &m.tls_client_auth_san_ip {
        let Ok(want) = want.parse::<IpAddr>() else {
            return false;
        };
        let octets = match want {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        return names
            .iter()
            .any(|n| matches!(n, GeneralName::IPAddress(ip) if *ip == octets.as_slice()));
    }
    if let Some(want) = &m.tls_client_auth_san_email {
        return names
            .iter()
            .any(|n| matches!(n, GeneralName::RFC822Name(e) if email_eq(e, want)));
    }
    false
}

/// RFC 5280 §4.2.1.6 / §7.5: the local part is case-sensitive, the domain is not.
fn email_eq(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((la, da)), Some((lb, db))) => la == lb && da.eq_ignore_ascii_case(db),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn cert_with(sans: Vec<rcgen::SanType>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Acme");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "svc");
        params.subject_alt_names = sans;
        params
            .self_signed(&rcgen::KeyPair::generate().unwrap())
            .unwrap()
            .der()
            .to_vec()
    }

    fn meta(field: &str, value: &str) -> ClientMetadata {
        serde_json::from_value(serde_json::json!({ field: value })).unwrap()
    }

    #[test]
    fn matches_exactly_the_registered_field() {
        let der = cert_with(vec![
            rcgen::SanType::DnsName("svc.example.com".try_into().unwrap()),
            rcgen::SanType::URI("spiffe://example.com/svc".try_into().unwrap()),
            rcgen::SanType::IpAddress("2001:db8::1".parse().unwrap()),
            rcgen::SanType::Rfc822Name("Ops@Example.com".try_into().unwrap()),
        ]);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let rows = [
            ("tls_client_auth_subject_dn", "CN=svc,O=Acme", true),
            ("tls_client_auth_subject_dn", "CN=svc, O=Acme", true),
            ("tls_client_auth_subject_dn", "CN=svc,O=Other", false),
            ("tls_client_auth_subject_dn", "O=Acme,CN=svc", false),
            ("tls_client_auth_san_dns", "svc.example.com", true),
            ("tls_client_auth_san_dns", "SVC.Example.COM", true),
            ("tls_client_auth_san_dns", "other.example.com", false),
            ("tls_client_auth_san_uri", "spiffe://example.com/svc", true),
            ("tls_client_auth_san_uri", "spiffe://example.com/SVC", false),
            ("tls_client_auth_san_ip", "2001:db8::1", true),
            ("tls_client_auth_san_ip", "2001:0db8:0::1", true),
            ("tls_client_auth_san_ip", "192.0.2.1", false),
            ("tls_client_auth_san_email", "Ops@example.COM", true),
            ("tls_client_auth_san_email", "ops@Example.com", false),
            // A SAN value registered under another type does not match.
            ("tls_client_auth_san_dns", "spiffe://example.com/svc", false),
        ];
        for (field, value, want) in rows {
            assert_eq!(
                registered_subject_matches(&meta(field, value), &cert),
                want,
                "{field}={value}"
            );
        }
        assert!(!registered_subject_matches(
            &ClientMetadata::default(),
            &cert
        ));
    }

    #[test]
    fn san_fields_need_a_san_extension() {
        let der = cert_with(vec![]);
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(!registered_subject_matches(
            &meta("tls_client_auth_san_dns", "svc"),
            &cert
        ));
        assert!(registered_subject_matches(
            &meta("tls_client_auth_subject_dn", "CN=svc,O=Acme"),
            &cert
        ));
    }
}
