//! Secret values and what is done with them: generation, argon2id hashing at rest, and the
//! in-memory keyed digest that lets the steady-state token path skip argon2.
//!
//! Secret types have a redacted `Debug` and no `Display`; comparisons are constant-time.

use std::fmt;

use argon2::password_hash::{PasswordHash, SaltString};
use argon2::Argon2;
use aws_lc_rs::{digest, hmac, rand::SecureRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

/// The prefix of every tenant-scoped admin credential token (the root token's is `tga_`).
pub const CREDENTIAL_PREFIX: &str = "tgc_";

/// Fills `buf` from the operating system's CSPRNG.
///
/// # Panics
/// Only if the system random source fails, which leaves nothing safe to do.
pub fn random_bytes(buf: &mut [u8]) {
    #[allow(clippy::expect_used)]
    aws_lc_rs::rand::SystemRandom::new()
        .fill(buf)
        .expect("system random source failed");
}

/// `n` random bytes as unpadded base64url.
#[must_use]
pub fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    random_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(&buf)
}

macro_rules! secret_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(String);

        impl $name {
            /// Wraps a secret value received from outside.
            #[must_use]
            pub fn new(s: String) -> Self {
                Self(s)
            }

            /// The secret itself; call only where it is used or shown once to its owner.
            #[must_use]
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("[redacted]")
            }
        }
    };
}

secret_type!(
    /// A client secret (RFC 6749 §2.3.1).
    ClientSecret
);
secret_type!(
    /// A bearer token for the admin API.
    AdminToken
);
secret_type!(
    /// A user's password for the built-in login: hashed with argon2id, never stored or shown.
    Password
);

impl<'de> serde::Deserialize<'de> for Password {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(d).map(Self)
    }
}

/// base64url (no padding) of the SHA-256 of `value`: how opaque high-entropy values (codes,
/// refresh tokens, session ids) are keyed at rest, so a reader of the store cannot use them.
#[must_use]
pub fn sha256_b64(value: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, value.as_bytes()))
}

impl ClientSecret {
    /// A fresh secret: 32 random bytes (256 bits), base64url without padding.
    #[must_use]
    pub fn generate() -> Self {
        Self::random(32)
    }

    /// A fresh secret of `bytes` random bytes, base64url without padding (so `4 * bytes / 3`
    /// characters, rounded up).
    #[must_use]
    pub fn random(bytes: usize) -> Self {
        Self(random_token(bytes))
    }
}

impl AdminToken {
    /// A fresh root admin token: 32 random bytes, base64url, with a recognisable prefix.
    #[must_use]
    pub fn generate() -> Self {
        Self(format!("tga_{}", random_token(32)))
    }

    /// A fresh tenant-scoped admin credential token: 32 random bytes (256 bits), base64url,
    /// with the prefix [`CREDENTIAL_PREFIX`] (so it is recognisable, in a
    /// leaked file or a secret scanner, as a Tollgate credential).
    #[must_use]
    pub fn generate_credential() -> Self {
        Self(format!("{}{}", CREDENTIAL_PREFIX, random_token(32)))
    }

    /// The stored form: SHA-256, hex. The token carries 256 random bits, so a fast hash is
    /// as strong as a slow one here and keeps every admin request cheap.
    #[must_use]
    pub fn hash(&self) -> String {
        hex(digest::digest(&digest::SHA256, self.0.as_bytes()).as_ref())
    }

    /// Whether this token hashes to `stored`, compared in constant time.
    #[must_use]
    pub fn matches_hash(&self, stored: &str) -> bool {
        ct_eq(self.hash().as_bytes(), stored.as_bytes())
    }
}

/// Lower-case hex of `bytes`.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Constant-time equality of two byte strings (the length is not secret).
#[must_use]
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Errors from password hashing.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The stored hash is not a valid PHC string.
    #[error("stored password hash is malformed")]
    Malformed,
    /// Hashing itself failed.
    #[error("password hashing failed")]
    Failed,
}

/// Hashes a secret with argon2id (OWASP parameters: m = 19 MiB, t = 2, p = 1) into a PHC
/// string. CPU-heavy (about 20 ms): call it off the async runtime. Allocates its own work
/// area; the request paths use a [`Hasher`], which reuses them.
///
/// # Errors
/// When the hasher fails.
pub fn hash_secret(secret: &str) -> Result<String, HashError> {
    Hasher::default().hash(secret)
}

/// Verifies a secret against an argon2id PHC string. CPU-heavy: call it off the runtime.
///
/// # Errors
/// When the stored hash cannot be parsed.
pub fn verify_secret(secret: &str, phc: &str) -> Result<bool, HashError> {
    Hasher::default().verify(secret, phc)
}

/// Most argon2 work areas kept for reuse.
const POOLED_AREAS: usize = 4;

/// argon2id hashing and verification with reusable work areas. Each run needs 19 MiB; freed
/// after every run, that memory stays with the allocator's per-thread arenas (a process that
/// had hashed on a dozen threads held a dozen of them), so the areas are pooled instead and
/// the process's memory stays at a few of them, whatever the traffic. The hashes are standard
/// PHC strings, interchangeable with those of `argon2`'s own `PasswordHasher`.
#[derive(Default)]
pub struct Hasher {
    areas: std::sync::Mutex<Vec<Vec<argon2::Block>>>,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    /// Runs `f` with a work area of `blocks` blocks, taken from the pool (or made) and put back.
    fn with_area<T>(&self, blocks: usize, f: impl FnOnce(&mut [argon2::Block]) -> T) -> T {
        let pooled = self.areas.lock().ok().and_then(|mut pool| {
            let i = pool.iter().position(|a| a.len() == blocks)?;
            Some(pool.swap_remove(i))
        });
        let mut area = pooled.unwrap_or_else(|| vec![argon2::Block::default(); blocks]);
        let out = f(&mut area);
        if let Ok(mut pool) = self.areas.lock() {
            if pool.len() < POOLED_AREAS {
                pool.push(area);
            }
        }
        out
    }

    /// argon2 of `secret` with `salt` under `argon` into `out`.
    fn run(
        &self,
        argon: &Argon2<'_>,
        blocks: usize,
        secret: &[u8],
        salt: &[u8],
        out: &mut [u8],
    ) -> Result<(), HashError> {
        self.with_area(blocks, |area| {
            argon
                .hash_password_into_with_memory(secret, salt, out, area)
                .map_err(|_| HashError::Failed)
        })
    }

    /// Hashes a secret with argon2id (m = 19 MiB, t = 2, p = 1) into a PHC string. CPU-heavy
    /// (about 20 ms): call it off the async runtime.
    ///
    /// # Errors
    /// When the hasher fails.
    pub fn hash(&self, secret: &str) -> Result<String, HashError> {
        let params = argon2::Params::default();
        let argon = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params.clone(),
        );
        let mut salt = [0u8; 16];
        random_bytes(&mut salt);
        let salt_string = SaltString::encode_b64(&salt).map_err(|_| HashError::Failed)?;
        let mut out = [0u8; argon2::Params::DEFAULT_OUTPUT_LEN];
        self.run(
            &argon,
            params.block_count(),
            secret.as_bytes(),
            &salt,
            &mut out,
        )?;
        let phc = PasswordHash {
            algorithm: argon2::Algorithm::Argon2id.ident(),
            version: Some(argon2::Version::V0x13.into()),
            params: argon2::password_hash::ParamsString::try_from(&params)
                .map_err(|_| HashError::Failed)?,
            salt: Some(salt_string.as_salt()),
            hash: Some(argon2::password_hash::Output::new(&out).map_err(|_| HashError::Failed)?),
        };
        Ok(phc.to_string())
    }

    /// Verifies a secret against an argon2 PHC string (any of its parameters), comparing in
    /// constant time. CPU-heavy: call it off the runtime.
    ///
    /// # Errors
    /// When the stored hash cannot be parsed.
    pub fn verify(&self, secret: &str, phc: &str) -> Result<bool, HashError> {
        let parsed = PasswordHash::new(phc).map_err(|_| HashError::Malformed)?;
        let algorithm =
            argon2::Algorithm::try_from(parsed.algorithm).map_err(|_| HashError::Malformed)?;
        let version = parsed
            .version
            .map(argon2::Version::try_from)
            .transpose()
            .map_err(|_| HashError::Malformed)?
            .unwrap_or_default();
        let params = argon2::Params::try_from(&parsed).map_err(|_| HashError::Malformed)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(HashError::Malformed);
        };
        let mut salt_buf = [0u8; 64];
        let salt = salt
            .decode_b64(&mut salt_buf)
            .map_err(|_| HashError::Malformed)?;
        let expected = expected.as_bytes();
        let mut out = vec![0u8; expected.len()];
        let argon = Argon2::new(algorithm, version, params.clone());
        self.run(
            &argon,
            params.block_count(),
            secret.as_bytes(),
            salt,
            &mut out,
        )
        .map_err(|_| HashError::Malformed)?;
        Ok(ct_eq(&out, expected))
    }
}

/// Keyed digests of secrets under a key that lives only in this process's memory.
///
/// After a secret's first successful argon2 verification the gateway keeps its digest beside
/// the cached client and compares later requests against it, so the steady-state path costs
/// one HMAC instead of 20 ms of argon2. The key never leaves memory, so the digests are
/// useless to anyone who reads them elsewhere.
pub struct SecretDigester {
    key: hmac::Key,
}

impl fmt::Debug for SecretDigester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigester([redacted])")
    }
}

impl Default for SecretDigester {
    fn default() -> Self {
        Self::new()
    }
}

impl SecretDigester {
    /// A digester with a fresh process-random key.
    #[must_use]
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        random_bytes(&mut key);
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key),
        }
    }

    /// The keyed digest of `secret`.
    #[must_use]
    pub fn digest(&self, secret: &str) -> [u8; 32] {
        let tag = hmac::sign(&self.key, secret.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_carry_256_bits_url_safe() {
        let s = ClientSecret::generate();
        assert_eq!(s.expose().len(), 43);
        assert!(s
            .expose()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(s.expose(), ClientSecret::generate().expose());
    }

    #[test]
    fn debug_is_redacted() {
        let s = ClientSecret::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "[redacted]");
        let t = AdminToken::new("tok".into());
        assert!(!format!("{t:?}").contains("tok"));
    }

    #[test]
    fn argon2id_round_trip() {
        let h = hash_secret("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_secret("s3cret", &h).unwrap());
        assert!(!verify_secret("s3cret!", &h).unwrap());
        assert!(verify_secret("x", "not-a-hash").is_err());
    }

    #[test]
    fn pooled_hashes_interoperate_with_stock_argon2() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let hasher = Hasher::default();
        let ours = hasher.hash("correct horse").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        let mut salt = [0u8; 16];
        random_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).unwrap();
        let stock = Argon2::default()
            .hash_password(b"battery staple", &salt)
            .unwrap()
            .to_string();
        assert!(hasher.verify("battery staple", &stock).unwrap());
        assert!(!hasher.verify("battery stapler", &stock).unwrap());
        // Other parameters are read from the hash itself.
        let light = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8 * 1024, 1, 1, Some(24)).unwrap(),
        )
        .hash_password(b"light", &salt)
        .unwrap()
        .to_string();
        assert!(hasher.verify("light", &light).unwrap());
        // The work areas are reused, not piled up.
        for _ in 0..6 {
            hasher.hash("again").unwrap();
        }
        assert!(hasher.areas.lock().unwrap().len() <= POOLED_AREAS);
    }

    #[test]
    fn admin_token_hash_matches_only_itself() {
        let t = AdminToken::generate();
        let h = t.hash();
        assert!(t.matches_hash(&h));
        assert!(!AdminToken::generate().matches_hash(&h));
    }

    #[test]
    fn credential_tokens_carry_256_bits_with_their_prefix() {
        let t = AdminToken::generate_credential();
        let body = t.expose().strip_prefix("tgc_").unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(body).unwrap().len(), 32);
        assert_ne!(t.expose(), AdminToken::generate_credential().expose());
        assert!(AdminToken::generate().expose().starts_with("tga_"));
    }

    #[test]
    fn ct_eq_compares_whole_values() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn digests_are_keyed_per_process() {
        let a = SecretDigester::new();
        let b = SecretDigester::new();
        assert_eq!(a.digest("x"), a.digest("x"));
        assert_ne!(a.digest("x"), b.digest("x"));
        assert_ne!(a.digest("x"), a.digest("y"));
    }
}

/// `Debug` of every type that holds a secret, a token, a key or a digest of one prints none of
/// it: each is built here around a known value, formatted, and searched.
#[cfg(test)]
mod debug_redaction {
    use std::sync::OnceLock;

    use jsonwebtoken::DecodingKey;

    use super::*;
    use crate::client_auth::BasicCredentials;
    use crate::client_keys::AssertionKeyCache;
    use crate::ids::{ClientId, CredentialId, ServerId, TenantId};
    use crate::keys::{KeyRecord, KeyStatus, MasterKey};
    use crate::manage::ClientView;
    use crate::model::client::{Client, ClientMetadata, StoredSecret};
    use crate::model::credential::{AdminCredential, AdminRole};
    use crate::model::server::SigningAlg;
    use crate::oauth::TokenParams;
    use crate::registry::ClientRuntime;
    use crate::tokens::TokenResponse;

    const SECRET: &str = "known-secret-value-0123456789";

    fn client(secret: StoredSecret) -> Client {
        Client {
            tenant_id: TenantId::parse("acme").unwrap(),
            server_id: ServerId::parse("main").unwrap(),
            client_id: ClientId::parse("svc").unwrap(),
            metadata: ClientMetadata::default(),
            secret,
            secret_expires_at: 0,
            issued_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn every_secret_holding_type_debugs_redacted() {
        let (master, master_text) = MasterKey::generate();
        let t = TenantId::parse("acme").unwrap();
        let s = ServerId::parse("main").unwrap();
        let key =
            KeyRecord::generate(&master, &t, &s, SigningAlg::ES256, KeyStatus::Current, 1).unwrap();
        let signing = key.open(&master).unwrap();
        let sealed = master.seal("ctx", SECRET.as_bytes()).unwrap();
        let digester = SecretDigester::new();
        let digest = digester.digest(SECRET);
        let runtime = ClientRuntime {
            client: client(StoredSecret::Hash(SECRET.into())),
            verified_digest: OnceLock::from(digest),
            assertion_keys: AssertionKeyCache::default(),
        };
        let _ = runtime
            .assertion_keys
            .hmac
            .set(DecodingKey::from_secret(SECRET.as_bytes()));
        let params = TokenParams::from_pairs([
            ("client_secret".to_owned(), SECRET.to_owned()),
            ("client_assertion".to_owned(), format!("a.{SECRET}.b")),
            ("token".to_owned(), format!("t.{SECRET}.s")),
        ])
        .unwrap();
        let view = ClientView {
            client_id: ClientId::parse("svc").unwrap(),
            client_id_issued_at: 0,
            client_secret: Some(SECRET.into()),
            client_secret_expires_at: Some(0),
            metadata: ClientMetadata::default(),
        };
        let response = TokenResponse {
            access_token: format!("h.{SECRET}.s"),
            token_type: "Bearer",
            expires_in: 60,
            scope: None,
            refresh_token: Some(SECRET.into()),
            id_token: Some(SECRET.into()),
            issued_token_type: None,
        };
        let credential = AdminCredential {
            id: CredentialId::generate(),
            tenant_id: t,
            name: None,
            role: AdminRole::Admin,
            token_hash: SECRET.into(),
            created_by: "root".into(),
            created_at: 0,
            expires_at: None,
            revoked_at: None,
        };
        let printed = [
            format!("{:?}", ClientSecret::new(SECRET.into())),
            format!("{:?}", AdminToken::new(SECRET.into())),
            format!("{master:?}"),
            format!("{digester:?}"),
            format!("{:?}", StoredSecret::Hash(SECRET.into())),
            format!("{:?}", client(StoredSecret::Sealed(sealed.clone()))),
            format!("{key:?}"),
            format!("{signing:?}"),
            format!("{runtime:?}"),
            format!(
                "{:?}",
                BasicCredentials {
                    client_id: "svc".into(),
                    secret: ClientSecret::new(SECRET.into()),
                }
            ),
            format!("{params:?}"),
            format!("{view:?}"),
            format!("{response:?}"),
            format!("{credential:?}"),
        ];
        let digest_hex = hex(&digest);
        let digest_bytes = format!("{:?}", &digest[..4]);
        let sealed_bytes = format!("{:?}", &sealed[..4]);
        for text in &printed {
            for needle in [
                SECRET,
                master_text.as_str(),
                digest_hex.as_str(),
                digest_bytes.trim_matches(['[', ']']),
                sealed_bytes.trim_matches(['[', ']']),
            ] {
                assert!(!text.contains(needle), "{needle} in {text}");
            }
        }
        // Not by accident empty: the non-secret parts still show.
        assert!(printed[6].contains(&key.kid) && printed[8].contains("svc"));
    }
}
