//! Mutual-TLS client authentication (RFC 8705) against the real binary, on both backends:
//! the gateway serving HTTPS with client certificates requested (not required),
//! `tls_client_auth` by subject DN and by each SAN type, `self_signed_tls_client_auth` by a
//! registered `x5c`, certificate-bound access tokens (`cnf.x5t#S256`), discovery, the
//! trusted-proxy header, and the failures — each a `401 invalid_client` with a log line that
//! says why and carries no certificate. Every key and certificate is generated here.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
mod support;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, DnValue, ExtendedKeyUsagePurpose,
    IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::{json, Value};
use support::{basic, Backend, Server};

/// A client (or server) certificate with its key.
struct Cert {
    pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Cert {
    /// RFC 8705 §3.1 `x5t#S256`.
    fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD
            .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &self.der).as_ref())
    }

    /// The header value a proxy like nginx sends (`$ssl_client_escaped_cert`).
    fn escaped(&self) -> String {
        self.pem
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    /// A JWK Set registering this certificate (EC P-256 public key plus `x5c`).
    fn jwks(&self) -> Value {
        let key = KeyPair::from_pem(&self.key_pem).unwrap();
        let point = key.public_key_raw();
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            "x5c": [STANDARD.encode(&self.der)],
        }]})
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Subject attributes in ASN.1 order (the RFC 4514 string lists them reversed).
type Subject<'a> = &'a [(DnType, &'a str)];

fn params(subject: Subject<'_>, sans: Vec<SanType>, expired: bool) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (ty, value) in subject {
        params
            .distinguished_name
            .push(ty.clone(), DnValue::Utf8String((*value).to_owned()));
    }
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    params
}

fn issue(
    issuer: &Issuer<'_, KeyPair>,
    subject: Subject<'_>,
    sans: Vec<SanType>,
    expired: bool,
) -> Cert {
    let key = KeyPair::generate().unwrap();
    let cert = params(subject, sans, expired)
        .signed_by(&key, issuer)
        .unwrap();
    Cert {
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

fn self_signed(cn: &str, expired: bool) -> Cert {
    let key = KeyPair::generate().unwrap();
    let cert = params(&[(DnType::CommonName, cn)], vec![], expired)
        .self_signed(&key)
        .unwrap();
    Cert {
        pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

/// The test PKI: a client CA (written to `ca.pem`), another CA nobody trusts, and the
/// gateway's certificate for 127.0.0.1 from its own CA.
struct Pki {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    other_ca: CertifiedIssuer<'static, KeyPair>,
    server_ca_pem: String,
}

impl Pki {
    fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("tollgate-mtls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let (client_ca, other_ca, server_ca) = (
            ca("Tollgate Test Client CA"),
            ca("Someone Else's CA"),
            ca("Tollgate Test Server CA"),
        );
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = p.signed_by(&key, &server_ca).unwrap();
        std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.join("server.key"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("ca.pem"), client_ca.pem()).unwrap();
        Self {
            dir,
            ca: client_ca,
            other_ca,
            server_ca_pem: server_ca.pem(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `serve` arguments for HTTPS with client certificates requested.
    fn tls_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path("server.pem"),
            "--tls-key".into(),
            self.path("server.key"),
            "--tls-client-ca".into(),
            self.path("ca.pem"),
        ]
    }

    /// An HTTPS client trusting only the test server CA, presenting `identity` if given.
    fn https(&self, identity: Option<&Cert>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .tls_certs_only([
                reqwest::Certificate::from_pem(self.server_ca_pem.as_bytes()).unwrap(),
            ]);
        if let Some(c) = identity {
            b = b.identity(
                reqwest::Identity::from_pem(format!("{}{}", c.key_pem, c.pem).as_bytes()).unwrap(),
            );
        }
        b.build().unwrap()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start(backend: &Backend, args: &[String]) -> Server {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start_with(backend, &args).await
}

/// A client_credentials request naming `client_id` only (the TLS methods send no secret).
async fn token(
    http: &reqwest::Client,
    server: &Server,
    tid: &str,
    client_id: &str,
    header: Option<(&str, &str)>,
) -> (u16, Value) {
    let mut req = http.post(server.token_url(tid, "main")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
    ]);
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn claims(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn discovery(http: &reqwest::Client, server: &Server, tid: &str) -> Value {
    let res = http
        .get(format!(
            "{}/{tid}/main/.well-known/openid-configuration",
            server.gateway
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

/// Waits (bounded) for one output line holding every needle: a failure's log line.
fn logged(server: &Server, needles: &[&str]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if server
            .printed()
            .lines()
            .any(|l| needles.iter().all(|n| l.contains(n)))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// No certificate (PEM, escaped PEM or its base64 body) and no private key was ever printed.
fn assert_no_certificates_logged(server: &Server, certs: &[&Cert]) {
    let out = server.printed();
    for needle in ["BEGIN CERTIFICATE", "BEGIN%20CERTIFICATE", "PRIVATE KEY"] {
        assert!(!out.contains(needle), "the output holds `{needle}`:\n{out}");
    }
    for c in certs {
        let body = &STANDARD.encode(&c.der)[40..100];
        assert!(!out.contains(body), "the output holds a certificate");
    }
}

async fn assert_rejected(
    server: &Server,
    http: &reqwest::Client,
    tid: &str,
    client_id: &str,
    header: Option<(&str, &str)>,
    reason: &str,
) {
    let (status, body) = token(http, server, tid, client_id, header).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{client_id} ({reason}): {body}"
    );
    assert!(
        logged(
            server,
            &[
                "client authentication failed",
                client_id,
                &format!("\"reason\":\"{reason}\"")
            ]
        ),
        "no log line with reason {reason} for {client_id}:\n{}",
        server.printed()
    );
}

const DN: Subject<'static> = &[
    (DnType::CountryName, "US"),
    (DnType::OrganizationName, "Acme, Inc."),
    (DnType::CommonName, "billing"),
];
const DN_STRING: &str = "CN=billing,O=Acme\\, Inc.,C=US";

async fn pki_method_by_subject_dn_and_each_san(backend: &Backend) {
    let pki = Pki::new();
    let server = start(backend, &pki.tls_args()).await;
    assert!(server.gateway.starts_with("https://"), "{}", server.gateway);
    let tid = support::unique("mtls");
    server
        .tenant_and_server(
            &tid,
            "main",
            json!({"tls_client_certificate_bound_access_tokens": true}),
        )
        .await;
    let cc = |field: &str, value: &str| json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "tls_client_auth", field: value, "scope": "read"});
    let subject: Subject<'_> = &[(DnType::CommonName, "svc")];
    let rows = [
        (
            "tls_client_auth_subject_dn",
            DN_STRING,
            issue(&pki.ca, DN, vec![], false),
        ),
        (
            "tls_client_auth_san_dns",
            "svc.example.com",
            issue(
                &pki.ca,
                subject,
                vec![SanType::DnsName("svc.example.com".try_into().unwrap())],
                false,
            ),
        ),
        (
            "tls_client_auth_san_uri",
            "spiffe://example.com/svc",
            issue(
                &pki.ca,
                subject,
                vec![SanType::URI("spiffe://example.com/svc".try_into().unwrap())],
                false,
            ),
        ),
        (
            "tls_client_auth_san_ip",
            "192.0.2.10",
            issue(
                &pki.ca,
                subject,
                vec![SanType::IpAddress("192.0.2.10".parse().unwrap())],
                false,
            ),
        ),
        (
            "tls_client_auth_san_email",
            "svc@example.com",
            issue(
                &pki.ca,
                subject,
                vec![SanType::Rfc822Name("svc@example.com".try_into().unwrap())],
                false,
            ),
        ),
    ];
    for (field, value, cert) in &rows {
        let (id, secret) = server.client(&tid, "main", cc(field, value)).await;
        assert!(secret.is_empty(), "a TLS client gets no secret");
        let (status, body) = token(&pki.https(Some(cert)), &server, &tid, &id, None).await;
        assert_eq!(status, 200, "{field}: {body}");
        assert_eq!(
            claims(body["access_token"].as_str().unwrap())["cnf"]["x5t#S256"],
            cert.thumbprint(),
            "{field}"
        );
        // Another client's certificate, from the same CA, does not authenticate this one.
        let other = if *field == "tls_client_auth_subject_dn" {
            &rows[1].2
        } else {
            &rows[0].2
        };
        assert_rejected(
            &server,
            &pki.https(Some(other)),
            &tid,
            &id,
            None,
            "certificate_mismatch",
        )
        .await;
    }
    let certs: Vec<&Cert> = rows.iter().map(|r| &r.2).collect();
    assert_no_certificates_logged(&server, &certs);
}

async fn pki_method_failures(backend: &Backend) {
    let pki = Pki::new();
    let server = start(backend, &pki.tls_args()).await;
    let tid = support::unique("mtls");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let (id, _) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": DN_STRING}))
        .await;
    let good = issue(&pki.ca, DN, vec![], false);
    let (status, body) = token(&pki.https(Some(&good)), &server, &tid, &id, None).await;
    assert_eq!(status, 200, "{body}");

    let wrong_subject = issue(
        &pki.ca,
        &[
            (DnType::CountryName, "US"),
            (DnType::OrganizationName, "Acme, Inc."),
            (DnType::CommonName, "payroll"),
        ],
        vec![],
        false,
    );
    let foreign = issue(&pki.other_ca, DN, vec![], false);
    let expired = issue(&pki.ca, DN, vec![], true);
    let self_signed_same_subject = {
        let key = KeyPair::generate().unwrap();
        let cert = params(DN, vec![], false).self_signed(&key).unwrap();
        Cert {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    };
    assert_rejected(
        &server,
        &pki.https(Some(&wrong_subject)),
        &tid,
        &id,
        None,
        "certificate_mismatch",
    )
    .await;
    assert_rejected(
        &server,
        &pki.https(Some(&foreign)),
        &tid,
        &id,
        None,
        "untrusted_certificate",
    )
    .await;
    assert_rejected(
        &server,
        &pki.https(Some(&expired)),
        &tid,
        &id,
        None,
        "untrusted_certificate",
    )
    .await;
    assert!(
        logged(&server, &["not valid now", "certificate expired"]),
        "{}",
        server.printed()
    );
    assert_rejected(
        &server,
        &pki.https(Some(&self_signed_same_subject)),
        &tid,
        &id,
        None,
        "untrusted_certificate",
    )
    .await;
    assert_rejected(&server, &pki.https(None), &tid, &id, None, "no_certificate").await;
    let (_, body) = token(&pki.https(None), &server, &tid, &id, None).await;
    assert_eq!(
        body["error_description"],
        "a client certificate is required"
    );
    // Unknown clients fail the same way, with a certificate or without.
    assert_rejected(
        &server,
        &pki.https(Some(&good)),
        &tid,
        "no-such-client",
        None,
        "unknown_client",
    )
    .await;
    assert_no_certificates_logged(
        &server,
        &[
            &good,
            &wrong_subject,
            &foreign,
            &expired,
            &self_signed_same_subject,
        ],
    );
}

async fn self_signed_method(backend: &Backend) {
    let pki = Pki::new();
    let server = start(backend, &pki.tls_args()).await;
    let tid = support::unique("mtls");
    server
        .tenant_and_server(
            &tid,
            "main",
            json!({"tls_client_certificate_bound_access_tokens": true}),
        )
        .await;
    let registered = self_signed("device-1", false);
    let (id, secret) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": registered.jwks()}))
        .await;
    assert!(secret.is_empty());
    let (status, body) = token(&pki.https(Some(&registered)), &server, &tid, &id, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["cnf"]["x5t#S256"],
        registered.thumbprint()
    );

    // Same subject, another key: not the registered certificate.
    let impostor = self_signed("device-1", false);
    assert_rejected(
        &server,
        &pki.https(Some(&impostor)),
        &tid,
        &id,
        None,
        "certificate_mismatch",
    )
    .await;
    // A CA-issued certificate is not the registered one either: the chain does not matter.
    let issued = issue(&pki.ca, &[(DnType::CommonName, "device-1")], vec![], false);
    assert_rejected(
        &server,
        &pki.https(Some(&issued)),
        &tid,
        &id,
        None,
        "certificate_mismatch",
    )
    .await;
    assert_rejected(&server, &pki.https(None), &tid, &id, None, "no_certificate").await;
    // A registered certificate past its validity period.
    let old = self_signed("device-2", true);
    let (old_id, _) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": old.jwks()}))
        .await;
    assert_rejected(
        &server,
        &pki.https(Some(&old)),
        &tid,
        &old_id,
        None,
        "untrusted_certificate",
    )
    .await;
    assert!(
        logged(&server, &["outside its validity period", &old_id]),
        "{}",
        server.printed()
    );
    assert_no_certificates_logged(&server, &[&registered, &impostor, &issued, &old]);
}

async fn certificates_are_requested_not_required_and_binding_follows_the_setting(
    backend: &Backend,
) {
    let pki = Pki::new();
    let server = start(backend, &pki.tls_args()).await;
    let (bound, unbound) = (support::unique("bound"), support::unique("unbound"));
    server
        .tenant_and_server(
            &bound,
            "main",
            json!({"tls_client_certificate_bound_access_tokens": true}),
        )
        .await;
    server.tenant_and_server(&unbound, "main", json!({})).await;
    let cert = issue(&pki.ca, DN, vec![], false);
    let tls_client = json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": DN_STRING});
    for (tid, want_cnf) in [(&bound, true), (&unbound, false)] {
        // A secret client over HTTPS without a client certificate: certificates are optional.
        let (id, secret) = server
            .client(tid, "main", json!({"grant_types": ["client_credentials"]}))
            .await;
        let res = pki
            .https(None)
            .post(server.token_url(tid, "main"))
            .header("authorization", basic(&id, &secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert!(claims(body["access_token"].as_str().unwrap())
            .get("cnf")
            .is_none());

        let (id, _) = server.client(tid, "main", tls_client.clone()).await;
        let (status, body) = token(&pki.https(Some(&cert)), &server, tid, &id, None).await;
        assert_eq!(status, 200, "{body}");
        let access_token = body["access_token"].as_str().unwrap();
        let cnf = claims(access_token).get("cnf").cloned();
        assert_eq!(
            cnf,
            want_cnf.then(|| json!({"x5t#S256": cert.thumbprint()})),
            "{tid}"
        );
        // Introspection, with the same certificate authentication, shows the binding.
        let res = pki
            .https(Some(&cert))
            .post(format!("{}/{tid}/main/oauth2/introspect", server.gateway))
            .form(&[("token", access_token), ("client_id", id.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let intro: Value = res.json().await.unwrap();
        assert_eq!(intro["active"], true, "{intro}");
        assert_eq!(intro.get("cnf").cloned(), cnf, "{intro}");

        let meta = discovery(&pki.https(None), &server, tid).await;
        assert_eq!(
            meta["tls_client_certificate_bound_access_tokens"], want_cnf,
            "{meta}"
        );
        let methods = meta["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap();
        assert_eq!(methods.len(), 7, "{meta}");
        for m in ["tls_client_auth", "self_signed_tls_client_auth"] {
            assert!(methods.contains(&json!(m)), "{meta}");
        }
        assert_eq!(
            meta["token_endpoint"],
            format!("{}/{tid}/main/oauth2/token", server.gateway)
        );
    }
}

async fn plain_gateway_serves_no_certificate_methods(backend: &Backend) {
    let server = Server::start(backend).await;
    assert!(server.gateway.starts_with("http://"));
    let tid = support::unique("plain");
    server
        .tenant_and_server(
            &tid,
            "main",
            json!({"tls_client_certificate_bound_access_tokens": true}),
        )
        .await;
    let meta = discovery(&server.http, &server, &tid).await;
    let methods = meta["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert_eq!(methods.len(), 5, "{meta}");
    assert!(
        !methods.contains(&json!("tls_client_auth"))
            && !methods.contains(&json!("self_signed_tls_client_auth"))
    );
    assert_eq!(
        meta["tls_client_certificate_bound_access_tokens"], false,
        "{meta}"
    );
    let (status, body) = server
        .admin_post(
            &format!("/admin/tenants/{tid}/servers/main/clients"),
            &json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "a.example"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("token_endpoint_auth_method"),
        "{body}"
    );
}

async fn admin_validates_certificate_metadata(backend: &Backend) {
    let pki = Pki::new();
    let server = start(backend, &pki.tls_args()).await;
    let tid = support::unique("meta");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let cc = |extra: Value| {
        let mut m = json!({"grant_types": ["client_credentials"]});
        m.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        m
    };
    let rows = [
        (
            json!({"token_endpoint_auth_method": "tls_client_auth"}),
            "tls_client_auth_subject_dn",
        ),
        (
            json!({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=a", "tls_client_auth_san_dns": "a"}),
            "tls_client_auth_san_dns",
        ),
        (
            json!({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=a;O=b"}),
            "tls_client_auth_subject_dn",
        ),
        (
            json!({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": "not-an-ip"}),
            "tls_client_auth_san_ip",
        ),
        (
            json!({"token_endpoint_auth_method": "client_secret_basic", "tls_client_auth_san_uri": "https://a"}),
            "tls_client_auth_san_uri",
        ),
        (
            json!({"token_endpoint_auth_method": "self_signed_tls_client_auth"}),
            "jwks",
        ),
        (
            json!({"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": [{"kty": "EC", "x5c": ["bm90IGEgY2VydA=="]}]}}),
            "jwks",
        ),
    ];
    for (extra, field) in rows {
        let (status, body) = server
            .admin_post(
                &format!("/admin/tenants/{tid}/servers/{}/clients", "main"),
                &cc(extra.clone()),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_client_metadata")),
            "{extra}: {body}"
        );
        assert!(
            body["error_description"].as_str().unwrap().contains(field),
            "{extra}: {body}"
        );
    }
}

const HEADER: &str = "X-Client-Cert";

fn proxy_args(pki: &Pki, proxies: &str) -> Vec<String> {
    vec![
        "--client-cert-header".into(),
        HEADER.into(),
        "--trusted-proxies".into(),
        proxies.into(),
        "--tls-client-ca".into(),
        pki.path("ca.pem"),
    ]
}

async fn proxy_header_from_a_trusted_proxy(backend: &Backend) {
    let pki = Pki::new();
    let server = start(backend, &proxy_args(&pki, "127.0.0.1/32")).await;
    assert!(
        server.gateway.starts_with("http://"),
        "the header mode needs no TLS of its own"
    );
    let tid = support::unique("proxy");
    server
        .tenant_and_server(
            &tid,
            "main",
            json!({"tls_client_certificate_bound_access_tokens": true}),
        )
        .await;
    let (id, _) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": DN_STRING}))
        .await;
    let device = self_signed("device-9", false);
    let (ss_id, _) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": device.jwks()}))
        .await;
    let http = &server.http;
    let good = issue(&pki.ca, DN, vec![], false);
    let (status, body) = token(http, &server, &tid, &id, Some((HEADER, &good.escaped()))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        claims(body["access_token"].as_str().unwrap())["cnf"]["x5t#S256"],
        good.thumbprint()
    );
    let (status, body) = token(
        http,
        &server,
        &tid,
        &ss_id,
        Some((HEADER, &device.escaped())),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Checked exactly as a certificate from a TLS connection.
    let foreign = issue(&pki.other_ca, DN, vec![], false);
    assert_rejected(
        &server,
        http,
        &tid,
        &id,
        Some((HEADER, &foreign.escaped())),
        "untrusted_certificate",
    )
    .await;
    let wrong = issue(&pki.ca, &[(DnType::CommonName, "payroll")], vec![], false);
    assert_rejected(
        &server,
        http,
        &tid,
        &id,
        Some((HEADER, &wrong.escaped())),
        "certificate_mismatch",
    )
    .await;
    assert_rejected(
        &server,
        http,
        &tid,
        &id,
        Some((HEADER, "")),
        "no_certificate",
    )
    .await;
    assert_rejected(&server, http, &tid, &id, None, "no_certificate").await;

    // A header that is not a certificate: the client failed to authenticate (401).
    let one_line = good.pem.replace('\n', "");
    for bad in [
        "not-a-certificate",
        "-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----%0A",
        one_line.as_str(),
    ] {
        let (status, body) = token(http, &server, &tid, &id, Some((HEADER, bad))).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{bad}: {body}"
        );
    }
    assert!(
        logged(&server, &["\"reason\":\"malformed_certificate_header\""]),
        "{}",
        server.printed()
    );

    let meta = discovery(http, &server, &tid).await;
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .len(),
        7,
        "{meta}"
    );
    assert_no_certificates_logged(&server, &[&good, &device, &foreign, &wrong]);
}

async fn proxy_header_from_an_untrusted_address_is_ignored(backend: &Backend) {
    let pki = Pki::new();
    let server = start(backend, &proxy_args(&pki, "10.0.0.0/8")).await;
    let tid = support::unique("proxy");
    server.tenant_and_server(&tid, "main", json!({})).await;
    let (id, _) = server
        .client(&tid, "main", json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": DN_STRING}))
        .await;
    let good = issue(&pki.ca, DN, vec![], false);
    // The very header a trusted proxy would send, but from 127.0.0.1: never believed.
    assert_rejected(
        &server,
        &server.http,
        &tid,
        &id,
        Some((HEADER, &good.escaped())),
        "no_certificate",
    )
    .await;
    assert!(
        logged(
            &server,
            &[
                "ignored a client-certificate header from a peer outside --trusted-proxies",
                "127.0.0.1"
            ]
        ),
        "{}",
        server.printed()
    );
    // Even garbage in it is ignored rather than judged.
    assert_rejected(
        &server,
        &server.http,
        &tid,
        &id,
        Some((HEADER, "garbage")),
        "no_certificate",
    )
    .await;
    assert_no_certificates_logged(&server, &[&good]);
}

/// Issue 10: each server may trust its own client CAs (`tls_client_ca`), replacing the
/// operator's `--tls-client-ca` for its clients. Two tenants registering the same subject DN
/// under two CAs: each tenant's certificate authenticates only there, over TLS and through the
/// proxy header alike; a server without a bundle keeps the operator's default.
async fn per_server_client_cas_keep_tenants_apart(backend: &Backend) {
    let pki = Pki::new();
    let mut args = pki.tls_args();
    args.extend([
        "--client-cert-header".into(),
        HEADER.into(),
        "--trusted-proxies".into(),
        "127.0.0.1/32".into(),
    ]);
    let server = start(backend, &args).await;
    let (ca_a, ca_b) = (ca("Tenant A CA"), ca("Tenant B CA"));
    let (tid_a, tid_b, tid_c) = (
        support::unique("mtls-a"),
        support::unique("mtls-b"),
        support::unique("mtls-c"),
    );
    let a = server
        .tenant_and_server(&tid_a, "main", json!({"tls_client_ca": ca_a.pem()}))
        .await;
    assert_eq!(a["tls_client_ca"], ca_a.pem());
    server
        .tenant_and_server(&tid_b, "main", json!({"tls_client_ca": ca_b.pem()}))
        .await;
    let c = server.tenant_and_server(&tid_c, "main", json!({})).await;
    assert_eq!(
        c["tls_client_ca"],
        Value::Null,
        "default: the operator's CAs"
    );
    let meta = json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": DN_STRING});
    let (id_a, _) = server.client(&tid_a, "main", meta.clone()).await;
    let (id_b, _) = server.client(&tid_b, "main", meta.clone()).await;
    let (id_c, _) = server.client(&tid_c, "main", meta).await;
    // The same subject DN from three CAs.
    let cert_a = issue(&ca_a, DN, vec![], false);
    let cert_b = issue(&ca_b, DN, vec![], false);
    let cert_p = issue(&pki.ca, DN, vec![], false);

    let ok = |tid: String, id: String, cert: &Cert, via_header: bool| {
        let (http, header) = if via_header {
            (pki.https(None), Some(cert.escaped()))
        } else {
            (pki.https(Some(cert)), None)
        };
        let server = &server;
        async move {
            let header = header.as_deref().map(|v| (HEADER, v));
            token(&http, server, &tid, &id, header).await
        }
    };
    for via_header in [false, true] {
        let how = if via_header { "proxy header" } else { "TLS" };
        for (tid, id, good, bad) in [
            (&tid_a, &id_a, &cert_a, [&cert_b, &cert_p]),
            (&tid_b, &id_b, &cert_b, [&cert_a, &cert_p]),
            (&tid_c, &id_c, &cert_p, [&cert_a, &cert_b]),
        ] {
            let (status, body) = ok(tid.clone(), id.clone(), good, via_header).await;
            assert_eq!(status, 200, "{tid} over {how}: {body}");
            for cert in bad {
                let (http, header) = if via_header {
                    (pki.https(None), Some(cert.escaped()))
                } else {
                    (pki.https(Some(cert)), None)
                };
                let header = header.as_deref().map(|v| (HEADER, v));
                assert_rejected(&server, &http, tid, id, header, "untrusted_certificate").await;
            }
        }
    }

    // Back to the operator's default, at once (the parsed set is cached per server and
    // dropped with the server's entry).
    let path_a = format!("/admin/tenants/{tid_a}/servers/main");
    let (status, body) = server
        .admin_call(
            reqwest::Method::PATCH,
            &path_a,
            Some(&json!({"tls_client_ca": null})),
        )
        .await;
    assert_eq!(
        (status, &body["tls_client_ca"]),
        (200, &Value::Null),
        "{body}"
    );
    let (status, body) = ok(tid_a.clone(), id_a.clone(), &cert_p, false).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = ok(tid_a.clone(), id_a.clone(), &cert_a, false).await;
    assert_eq!(status, 401);
    let (status, body) = server
        .admin_call(
            reqwest::Method::PATCH,
            &path_a,
            Some(&json!({"tls_client_ca": format!("{}{}", ca_a.pem(), ca_b.pem())})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for cert in [&cert_a, &cert_b] {
        let (status, body) = ok(tid_a.clone(), id_a.clone(), cert, false).await;
        assert_eq!(status, 200, "a bundle of two CAs trusts both: {body}");
    }

    // Only a bounded bundle of CA certificates, nothing else; 400 naming the field.
    let leaf = issue(&ca_a, DN, vec![], false);
    let key = KeyPair::generate().unwrap().serialize_pem();
    let too_many = ca_a.pem().repeat(33);
    let too_large = format!("{}{}", ca_a.pem(), " ".repeat(65_536));
    for (why, bad) in [
        ("garbage", json!("not a certificate")),
        ("empty", json!("")),
        ("a leaf, not a CA", json!(leaf.pem)),
        ("a private key", json!(format!("{}{key}", ca_a.pem()))),
        ("broken PEM", json!("-----BEGIN CERTIFICATE-----\nAAAA\n")),
        ("too many", json!(too_many)),
        ("too large", json!(too_large)),
        ("not a string", json!(["x"])),
    ] {
        let (status, body) = server
            .admin_call(
                reqwest::Method::PATCH,
                &path_a,
                Some(&json!({"tls_client_ca": bad})),
            )
            .await;
        assert_eq!(status, 400, "{why}: {body}");
        let text = body["error_description"].as_str().unwrap();
        assert!(text.contains("tls_client_ca"), "{why}: {text}");
        assert!(
            !text.contains("PRIVATE") && !text.contains("AAAA"),
            "{why}: {text}"
        );
        let (status, body) = server
            .admin_post(
                &format!("/admin/tenants/{tid_c}/servers"),
                &json!({"id": "second", "name": "S", "tls_client_ca": bad}),
            )
            .await;
        assert_eq!(status, 400, "{why} at creation: {body}");
    }
    assert_no_certificates_logged(&server, &[&cert_a, &cert_b, &cert_p, &leaf]);
}

both_backends! {
    per_server_client_cas_keep_tenants_apart => per_server_client_cas_keep_tenants_apart;
    pki_method_by_subject_dn_and_each_san => pki_method_by_subject_dn_and_each_san;
    pki_method_failures => pki_method_failures;
    self_signed_method => self_signed_method;
    certificates_are_requested_not_required_and_binding_follows_the_setting => certificates_are_requested_not_required_and_binding_follows_the_setting;
    plain_gateway_serves_no_certificate_methods => plain_gateway_serves_no_certificate_methods;
    admin_validates_certificate_metadata => admin_validates_certificate_metadata;
    proxy_header_from_a_trusted_proxy => proxy_header_from_a_trusted_proxy;
    proxy_header_from_an_untrusted_address_is_ignored => proxy_header_from_an_untrusted_address_is_ignored;
}

#[test]
fn tls_configuration_errors_name_the_option() {
    let pki = Pki::new();
    let sqlite = format!("sqlite://{}?mode=rwc", pki.dir.join("t.db").display());
    std::fs::write(
        pki.dir.join("garbage.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let other_key = KeyPair::generate().unwrap();
    std::fs::write(pki.dir.join("other.key"), other_key.serialize_pem()).unwrap();
    let (cert, key, ca) = (
        pki.path("server.pem"),
        pki.path("server.key"),
        pki.path("ca.pem"),
    );
    let missing = pki.path("missing.pem");
    let garbage = pki.path("garbage.pem");
    let other = pki.path("other.key");
    let rows: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--tls-cert", &cert], "--tls-key"),
        (vec!["--tls-key", &key], "--tls-cert"),
        (vec!["--tls-client-ca", &ca], "--tls-client-ca"),
        (
            vec!["--tls-cert", &missing, "--tls-key", &key],
            "--tls-cert",
        ),
        (
            vec!["--tls-cert", &cert, "--tls-key", &garbage],
            "--tls-key",
        ),
        (vec!["--tls-cert", &cert, "--tls-key", &other], "--tls-key"),
        (
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--tls-client-ca",
                &garbage,
            ],
            "--tls-client-ca",
        ),
        (
            vec![
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--tls-client-ca",
                &key,
            ],
            "--tls-client-ca",
        ),
        (
            vec!["--client-cert-header", HEADER, "--tls-client-ca", &ca],
            "--client-cert-header",
        ),
        (
            vec![
                "--client-cert-header",
                HEADER,
                "--trusted-proxies",
                "127.0.0.1",
            ],
            "--client-cert-header",
        ),
        (
            vec!["--trusted-proxies", "10.0.0.0/8,not-a-cidr"],
            "--trusted-proxies",
        ),
    ];
    for (args, flag) in rows {
        let out = support::command()
            .arg("serve")
            .args([
                "--public-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
            ])
            .args(&args)
            .env("TOLLGATE_DATABASE_URL", &sqlite)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("tollgate: error"))
            .collect();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(errors.len(), 1, "{args:?}: {stderr}");
        assert!(
            errors[0].contains(&format!("invalid {flag} (")),
            "{args:?}: {}",
            errors[0]
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("PRIVATE KEY"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn help_documents_the_tls_options() {
    let out = support::command()
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for option in [
        "--tls-cert",
        "TOLLGATE_TLS_CERT",
        "--tls-key",
        "TOLLGATE_TLS_KEY",
        "--tls-client-ca",
        "TOLLGATE_TLS_CLIENT_CA",
        "--client-cert-header",
        "TOLLGATE_CLIENT_CERT_HEADER",
        "--trusted-proxies",
        "TOLLGATE_TRUSTED_PROXIES",
    ] {
        assert!(
            text.contains(option),
            "serve --help lacks {option}:\n{text}"
        );
    }
}
