//! Credentials the end-to-end suites make for themselves: client key pairs and JWT client
//! assertions (RFC 7523), and a small PKI for the mutual-TLS methods (a client CA, certificates
//! it issues, self-signed certificates, and the URL-encoded PEM a TLS-terminating proxy sends).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::{json, Value};

/// RFC 7523 §2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Unix seconds now.
pub fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// RFC 7523 §3 claims for `client_id` with audience `aud`, a fresh `jti`, a minute to live.
pub fn assertion_claims(client_id: &str, aud: &str) -> Value {
    let now = now();
    json!({"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + 60,
           "jti": uuid::Uuid::new_v4().to_string()})
}

/// A `client_secret_jwt` assertion: HS256 with the client's secret as the key.
pub fn hs256_assertion(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// An ES256 client key pair: signs `private_key_jwt` assertions; its public JWK registers.
pub struct ClientKey {
    enc: EncodingKey,
    /// The public JWK, with `kid` and `use`.
    pub jwk: Value,
    /// The private key, PKCS#8 PEM (to check it never leaks).
    pub private_pem: String,
}

impl ClientKey {
    /// A fresh P-256 key named `kid`.
    pub fn es256(kid: &str) -> Self {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let enc = EncodingKey::from_ec_der(&kp.serialize_der());
        let mut jwk =
            serde_json::to_value(Jwk::from_encoding_key(&enc, Algorithm::ES256).unwrap()).unwrap();
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        Self {
            enc,
            jwk,
            private_pem: kp.serialize_pem(),
        }
    }

    /// `{"keys": [jwk]}`.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.jwk]})
    }

    /// A signed assertion with this key's `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = self.jwk["kid"].as_str().map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.enc).unwrap()
    }
}

/// A certificate with its key.
pub struct Cert {
    /// PEM.
    pub pem: String,
    /// DER.
    pub der: Vec<u8>,
    key: KeyPair,
}

impl Cert {
    /// The header value a proxy like nginx sends (`$ssl_client_escaped_cert`).
    pub fn escaped(&self) -> String {
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

    /// A JWK Set registering this certificate (its EC public key plus `x5c`), for
    /// `self_signed_tls_client_auth`.
    pub fn jwks(&self) -> Value {
        let point = self.key.public_key_raw();
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            "x5c": [STANDARD.encode(&self.der)],
        }]})
    }
}

fn client_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

/// A client CA written to `ca.pem` in its own folder (removed on drop).
pub struct ClientCa {
    dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl ClientCa {
    /// A fresh CA.
    pub fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("tollgate-ca-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Self { dir, ca }
    }

    /// The path of `ca.pem`, for `--tls-client-ca`.
    pub fn pem_path(&self) -> String {
        self.dir.join("ca.pem").display().to_string()
    }

    /// A client certificate for subject `CN={cn}` issued by this CA.
    pub fn issue(&self, cn: &str) -> Cert {
        let key = KeyPair::generate().unwrap();
        let cert = client_params(cn).signed_by(&key, &self.ca).unwrap();
        Cert {
            pem: cert.pem(),
            der: cert.der().to_vec(),
            key,
        }
    }
}

impl Drop for ClientCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A self-signed client certificate for subject `CN={cn}`.
pub fn self_signed(cn: &str) -> Cert {
    let key = KeyPair::generate().unwrap();
    let cert = client_params(cn).self_signed(&key).unwrap();
    Cert {
        pem: cert.pem(),
        der: cert.der().to_vec(),
        key,
    }
}
