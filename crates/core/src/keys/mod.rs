//! Signing keys: generation for each supported algorithm, their public JWKs, sealing at rest,
//! and compact JWS signing with keys parsed once and held in memory.

pub mod master;

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaEncoding, RsaKeyPair,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::ids::{ServerId, TenantId};
use crate::oauth::SigningAlg;
pub use master::{MasterKey, MasterKeyError};

/// Why a key could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Key generation failed in the crypto backend.
    #[error("key generation failed")]
    Generate,
    /// A stored private key could not be parsed.
    #[error("stored private key is invalid")]
    Parse,
    /// Signing failed.
    #[error("signing failed")]
    Sign,
    /// Sealing or opening failed.
    #[error(transparent)]
    Master(#[from] MasterKeyError),
}

/// Lifecycle of a published key (`GET .../keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyStatus {
    /// Signs new tokens.
    Current,
    /// Published ahead of a rotation.
    Next,
    /// No longer signs; stays published until tokens it signed expire.
    Retiring,
}

impl KeyStatus {
    /// Stored name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Next => "next",
            Self::Retiring => "retiring",
        }
    }

    /// Parses the stored name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "current" => Some(Self::Current),
            "next" => Some(Self::Next),
            "retiring" => Some(Self::Retiring),
            _ => None,
        }
    }
}

/// A signing key as stored: the private half sealed under the master key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Owning server.
    pub server_id: ServerId,
    /// RFC 7638 thumbprint of the public key.
    pub kid: String,
    /// Algorithm.
    pub alg: SigningAlg,
    /// Lifecycle state.
    pub status: KeyStatus,
    /// PKCS#8 DER sealed under the master key with [`KeyRecord::seal_context`].
    pub sealed_private: Vec<u8>,
    /// The public JWK (with `kid`, `alg`, `use`).
    pub public_jwk: Value,
    /// Unix seconds.
    pub created_at: i64,
    /// When a retiring key stops being published (Unix seconds).
    pub retire_at: Option<i64>,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("tenant_id", &self.tenant_id)
            .field("server_id", &self.server_id)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl KeyRecord {
    /// Associated data that binds a sealed private key to its record.
    #[must_use]
    pub fn seal_context(tenant: &TenantId, server: &ServerId, kid: &str) -> String {
        format!("signing-key/{tenant}/{server}/{kid}")
    }

    /// Generates a key of `alg`, seals its private half, and returns the record. CPU-heavy for
    /// RSA (tens to hundreds of milliseconds): call it off the async runtime.
    ///
    /// # Errors
    /// When generation or sealing fails.
    pub fn generate(
        master: &MasterKey,
        tenant: &TenantId,
        server: &ServerId,
        alg: SigningAlg,
        status: KeyStatus,
        now: i64,
    ) -> Result<Self, KeyError> {
        let pkcs8 = generate_pkcs8(alg)?;
        let key = SigningKey::from_pkcs8(alg, "", &pkcs8)?;
        let public_jwk = key.public_jwk();
        let sealed_private = master.seal(&Self::seal_context(tenant, server, &key.kid), &pkcs8)?;
        Ok(Self {
            tenant_id: tenant.clone(),
            server_id: server.clone(),
            kid: key.kid,
            alg,
            status,
            sealed_private,
            public_jwk,
            created_at: now,
            retire_at: None,
        })
    }

    /// Opens the private key and parses it for signing.
    ///
    /// # Errors
    /// Wrong master key, tampering, or a corrupt key.
    pub fn open(&self, master: &MasterKey) -> Result<SigningKey, KeyError> {
        let ctx = Self::seal_context(&self.tenant_id, &self.server_id, &self.kid);
        let pkcs8 = master.open(&ctx, &self.sealed_private)?;
        SigningKey::from_pkcs8(self.alg, &self.kid, &pkcs8)
    }

    /// Opens the key for signing, and for an RS256 key also its PS256 view (see
    /// [`pss_view_kid`]).
    ///
    /// # Errors
    /// Wrong master key, tampering, or a corrupt key.
    pub fn open_with_view(
        &self,
        master: &MasterKey,
    ) -> Result<(SigningKey, Option<SigningKey>), KeyError> {
        let ctx = Self::seal_context(&self.tenant_id, &self.server_id, &self.kid);
        let pkcs8 = master.open(&ctx, &self.sealed_private)?;
        let key = SigningKey::from_pkcs8(self.alg, &self.kid, &pkcs8)?;
        let view = match self.alg {
            SigningAlg::RS256 => Some(SigningKey::from_pkcs8(
                SigningAlg::PS256,
                &pss_view_kid(&self.kid),
                &pkcs8,
            )?),
            _ => None,
        };
        Ok((key, view))
    }

    /// The JWKs this key publishes: its own, and for an RS256 key also its PS256 view (the
    /// same RSA public key under its own `kid`, with `alg: PS256`), so that a PS256 ID token
    /// verifies with libraries that only use a key for the `alg` it names (Nimbus).
    #[must_use]
    pub fn published_jwks(&self) -> Vec<Value> {
        let mut jwks = vec![self.public_jwk.clone()];
        if self.alg == SigningAlg::RS256 {
            let mut view = self.public_jwk.clone();
            if let Some(map) = view.as_object_mut() {
                map.insert("kid".into(), Value::String(pss_view_kid(&self.kid)));
                map.insert(
                    "alg".into(),
                    Value::String(SigningAlg::PS256.as_str().into()),
                );
                jwks.push(view);
            }
        }
        jwks
    }
}

/// The `kid` of the PS256 view of the RS256 key `kid`: every server holds an RS256 key (for
/// ID tokens), and signs PS256 ID tokens with the same RSA key, published a second time under
/// this `kid` with `alg: PS256` (a JWK names one algorithm, RFC 7517 §4.4).
#[must_use]
pub fn pss_view_kid(kid: &str) -> String {
    format!("{kid}-PS256")
}

fn generate_pkcs8(alg: SigningAlg) -> Result<Vec<u8>, KeyError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    match alg {
        SigningAlg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError::Generate),
        SigningAlg::RS256 | SigningAlg::PS256 => {
            let kp = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
            kp.as_der()
                .map(|d| d.as_ref().to_vec())
                .map_err(|_| KeyError::Generate)
        }
        SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| KeyError::Generate),
    }
}

enum Inner {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn RsaEncoding),
    Ed(Ed25519KeyPair),
}

/// A private key parsed once and held in memory, ready to sign.
pub struct SigningKey {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// Algorithm.
    pub alg: SigningAlg,
    inner: Inner,
    /// base64url of the `at+jwt` JOSE header, computed once.
    at_header: String,
    /// base64url of the plain `JWT` JOSE header, computed once.
    jwt_header: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The JOSE `typ` of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// RFC 9068 access token (`at+jwt`).
    AccessToken,
    /// A plain JWT (ID tokens).
    Jwt,
}

impl SigningKey {
    /// Parses PKCS#8 DER. An empty `kid` is replaced by the key's RFC 7638 thumbprint.
    ///
    /// # Errors
    /// When the DER does not hold a key of `alg`.
    pub fn from_pkcs8(alg: SigningAlg, kid: &str, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let inner = match alg {
            SigningAlg::ES256 => Inner::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                    .map_err(|_| KeyError::Parse)?,
            ),
            SigningAlg::RS256 => Inner::Rsa(
                RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| KeyError::Parse)?,
                &signature::RSA_PKCS1_SHA256,
            ),
            SigningAlg::PS256 => Inner::Rsa(
                RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| KeyError::Parse)?,
                &signature::RSA_PSS_SHA256,
            ),
            SigningAlg::EdDSA => {
                Inner::Ed(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| KeyError::Parse)?)
            }
        };
        let mut key = Self {
            kid: kid.to_owned(),
            alg,
            inner,
            at_header: String::new(),
            jwt_header: String::new(),
        };
        if key.kid.is_empty() {
            key.kid = key.thumbprint();
        }
        key.at_header = b64(&header_json(alg, &key.kid, "at+jwt"));
        key.jwt_header = b64(&header_json(alg, &key.kid, "JWT"));
        Ok(key)
    }

    /// The RFC 7638 required members, which are also the public JWK's key material.
    fn required_members(&self) -> Value {
        match &self.inner {
            Inner::Ec(k) => {
                // Uncompressed SEC1 point: 0x04 || X (32) || Y (32).
                let p = k.public_key().as_ref();
                json!({"crv": "P-256", "kty": "EC", "x": b64(&p[1..33]), "y": b64(&p[33..65])})
            }
            Inner::Rsa(k, _) => {
                let pk = k.public_key();
                json!({
                    "e": b64(pk.exponent().big_endian_without_leading_zero()),
                    "kty": "RSA",
                    "n": b64(pk.modulus().big_endian_without_leading_zero()),
                })
            }
            Inner::Ed(k) => {
                json!({"crv": "Ed25519", "kty": "OKP", "x": b64(k.public_key().as_ref())})
            }
        }
    }

    /// RFC 7638 JWK thumbprint (SHA-256, base64url).
    #[must_use]
    pub fn thumbprint(&self) -> String {
        // serde_json's map is ordered by key, which is the lexicographic order RFC 7638 asks for.
        let canonical = self.required_members().to_string();
        b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// The public JWK with `kid`, `alg` and `use: sig`.
    #[must_use]
    pub fn public_jwk(&self) -> Value {
        let mut jwk = self.required_members();
        if let Some(map) = jwk.as_object_mut() {
            map.insert("kid".into(), Value::String(self.kid.clone()));
            map.insert("alg".into(), Value::String(self.alg.as_str().into()));
            map.insert("use".into(), Value::String("sig".into()));
        }
        jwk
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match &self.inner {
            Inner::Ec(k) => k
                .sign(&rng, msg)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Inner::Rsa(k, enc) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(*enc, &rng, msg, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
            Inner::Ed(k) => Ok(k.sign(msg).as_ref().to_vec()),
        }
    }

    /// Serialises `claims` and signs them as a compact JWS (RFC 7515 §7.1) with this key.
    ///
    /// # Errors
    /// When serialisation or signing fails.
    pub fn sign_jws<C: Serialize>(&self, typ: TokenType, claims: &C) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        self.sign_payload(typ, &payload)
    }

    /// Signs an already serialised claims set as a compact JWS.
    fn sign_payload(&self, typ: TokenType, payload: &[u8]) -> Result<String, KeyError> {
        let header = match typ {
            TokenType::AccessToken => &self.at_header,
            TokenType::Jwt => &self.jwt_header,
        };
        let mut out = String::with_capacity(header.len() + payload.len() * 4 / 3 + 400);
        out.push_str(header);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut out);
        let sig = self.sign(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut out);
        Ok(out)
    }
}

/// Signs tokens without blocking the async workers. ES256 and EdDSA signatures take tens of
/// microseconds and are made in place; an RSA signature (RS256, PS256) takes about 0.7 ms, so
/// it runs on the blocking pool, at most `max_concurrent` at once: a burst of RSA-signed
/// tokens queues there instead of stalling every other request of the runtime.
#[derive(Debug)]
pub struct Signer {
    permits: Arc<tokio::sync::Semaphore>,
}

impl Default for Signer {
    fn default() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
    }
}

impl Signer {
    /// A signer running at most `max_concurrent` slow signatures at once.
    #[must_use]
    pub fn new(max_concurrent: usize) -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(max_concurrent.max(1))),
        }
    }

    /// Serialises `claims` and signs them with `key` as a compact JWS.
    ///
    /// # Errors
    /// When serialisation or signing fails, or the blocking pool is gone (shutdown).
    pub async fn sign<C: Serialize>(
        &self,
        key: &Arc<SigningKey>,
        typ: TokenType,
        claims: &C,
    ) -> Result<String, KeyError> {
        if !matches!(key.alg, SigningAlg::RS256 | SigningAlg::PS256) {
            return key.sign_jws(typ, claims);
        }
        let payload = serde_json::to_vec(claims).map_err(|_| KeyError::Sign)?;
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| KeyError::Sign)?;
        let key = Arc::clone(key);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            key.sign_payload(typ, &payload)
        })
        .await
        .map_err(|_| KeyError::Sign)?
    }
}

fn header_json(alg: SigningAlg, kid: &str, typ: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Header<'a> {
        alg: &'a str,
        kid: &'a str,
        typ: &'a str,
    }
    serde_json::to_vec(&Header {
        alg: alg.as_str(),
        kid,
        typ,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};

    fn ids() -> (TenantId, ServerId) {
        (TenantId::parse("t").unwrap(), ServerId::parse("s").unwrap())
    }

    #[test]
    fn every_alg_signs_tokens_that_jsonwebtoken_verifies() {
        let (master, _) = MasterKey::generate();
        let (t, s) = ids();
        for (alg, jwt_alg) in [
            (SigningAlg::ES256, Algorithm::ES256),
            (SigningAlg::RS256, Algorithm::RS256),
            (SigningAlg::PS256, Algorithm::PS256),
            (SigningAlg::EdDSA, Algorithm::EdDSA),
        ] {
            let rec = KeyRecord::generate(&master, &t, &s, alg, KeyStatus::Current, 1).unwrap();
            let key = rec.open(&master).unwrap();
            assert_eq!(key.kid, rec.kid);
            let token = key
                .sign_jws(
                    TokenType::AccessToken,
                    &json!({"sub": "x", "exp": 4_000_000_000_i64}),
                )
                .unwrap();
            let header = decode_header(&token).unwrap();
            assert_eq!(header.alg, jwt_alg);
            assert_eq!(header.kid.as_deref(), Some(rec.kid.as_str()));
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(rec.public_jwk.clone()).unwrap();
            let dk = DecodingKey::from_jwk(&jwk).unwrap();
            let mut v = Validation::new(jwt_alg);
            v.validate_aud = false;
            v.required_spec_claims.clear();
            let data = decode::<Value>(&token, &dk, &v).unwrap();
            assert_eq!(data.claims["sub"], "x");
        }
    }

    #[test]
    fn an_rs256_key_also_signs_ps256_under_its_published_view() {
        let (master, _) = MasterKey::generate();
        let (t, s) = ids();
        let rec =
            KeyRecord::generate(&master, &t, &s, SigningAlg::RS256, KeyStatus::Current, 1).unwrap();
        let (key, view) = rec.open_with_view(&master).unwrap();
        let view = view.expect("an RS256 key has a PS256 view");
        assert_eq!((key.alg, view.alg), (SigningAlg::RS256, SigningAlg::PS256));
        assert_eq!(view.kid, pss_view_kid(&rec.kid));
        let published = rec.published_jwks();
        assert_eq!(published.len(), 2);
        assert_eq!(published[0], rec.public_jwk);
        assert_eq!(published[1]["kid"], view.kid.as_str());
        assert_eq!(published[1]["alg"], "PS256");
        assert_eq!(
            (&published[1]["n"], &published[1]["e"]),
            (&rec.public_jwk["n"], &rec.public_jwk["e"])
        );
        let token = view
            .sign_jws(
                TokenType::Jwt,
                &json!({"sub": "x", "exp": 4_000_000_000_i64}),
            )
            .unwrap();
        let header = decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::PS256);
        assert_eq!(header.kid.as_deref(), Some(view.kid.as_str()));
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(published[1].clone()).unwrap();
        let mut v = Validation::new(Algorithm::PS256);
        v.validate_aud = false;
        v.required_spec_claims.clear();
        decode::<Value>(&token, &DecodingKey::from_jwk(&jwk).unwrap(), &v).unwrap();
        // Other algorithms have no view.
        let es =
            KeyRecord::generate(&master, &t, &s, SigningAlg::ES256, KeyStatus::Current, 1).unwrap();
        assert!(es.open_with_view(&master).unwrap().1.is_none());
        let own = es.public_jwk.clone();
        assert_eq!(es.published_jwks(), vec![own]);
    }

    #[test]
    fn private_key_is_sealed_and_bound_to_its_record() {
        let (master, _) = MasterKey::generate();
        let (t, s) = ids();
        let mut rec =
            KeyRecord::generate(&master, &t, &s, SigningAlg::ES256, KeyStatus::Current, 1).unwrap();
        let (other, _) = MasterKey::generate();
        assert!(rec.open(&other).is_err());
        rec.server_id = ServerId::parse("elsewhere").unwrap();
        assert!(rec.open(&master).is_err());
    }

    #[test]
    fn kid_is_the_rfc7638_thumbprint() {
        // RFC 7638 §3.1 example key and thumbprint.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let members = json!({"e": "AQAB", "kty": "RSA", "n": n}).to_string();
        let tp =
            b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, members.as_bytes()).as_ref());
        assert_eq!(tp, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }
}
