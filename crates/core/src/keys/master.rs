//! The master key: AES-256-GCM under which signing keys and `client_secret_jwt` secrets are
//! sealed at rest. Each sealed value is `nonce || ciphertext || tag`, with the owning record's
//! identity as associated data so a sealed blob cannot be moved to another record.

use std::fmt;

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Why a master key or sealed value was refused.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    /// Not base64 of exactly 32 bytes.
    #[error("must be base64 of exactly 32 random bytes")]
    Format,
    /// Decryption failed: wrong master key, or the value was tampered with.
    #[error("sealed value cannot be opened with this master key")]
    Open,
    /// Encryption failed.
    #[error("sealing failed")]
    Seal,
}

/// A 256-bit master key held in memory.
pub struct MasterKey {
    key: RandomizedNonceKey,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([redacted])")
    }
}

impl MasterKey {
    /// Parses base64 (standard alphabet, padding optional) of 32 bytes.
    ///
    /// # Errors
    /// When the text is not base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, MasterKeyError> {
        let trimmed = text.trim();
        let bytes = STANDARD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|_| MasterKeyError::Format)?;
        Self::from_bytes(&bytes)
    }

    /// Wraps 32 raw bytes.
    ///
    /// # Errors
    /// When the length is not 32.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MasterKeyError> {
        if bytes.len() != 32 {
            return Err(MasterKeyError::Format);
        }
        let key =
            RandomizedNonceKey::new(&AES_256_GCM, bytes).map_err(|_| MasterKeyError::Format)?;
        Ok(Self { key })
    }

    /// A fresh random key and its base64 text (for writing the embedded default's key file).
    #[must_use]
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        crate::secrets::random_bytes(&mut bytes);
        let text = STANDARD.encode(bytes);
        #[allow(clippy::expect_used)]
        let key = Self::from_bytes(&bytes).expect("32 bytes is a valid AES-256 key");
        (key, text)
    }

    /// Encrypts `plaintext`, binding it to `context`.
    ///
    /// # Errors
    /// When the cipher fails.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| MasterKeyError::Seal)?;
        let mut out = Vec::with_capacity(NONCE_LEN + in_out.len());
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// Decrypts a value sealed by [`MasterKey::seal`] with the same `context`.
    ///
    /// # Errors
    /// Wrong key, wrong context, or tampering.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, MasterKeyError> {
        if sealed.len() < NONCE_LEN {
            return Err(MasterKeyError::Open);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| MasterKeyError::Open)?;
        let mut in_out = ct.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut in_out)
            .map_err(|_| MasterKeyError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_bound_to_context() {
        let (k, text) = MasterKey::generate();
        let sealed = k.seal("t/s/kid", b"private").unwrap();
        assert_ne!(&sealed[NONCE_LEN..], b"private");
        assert_eq!(k.open("t/s/kid", &sealed).unwrap(), b"private");
        assert!(k.open("t/s/other", &sealed).is_err());
        let again = MasterKey::from_base64(&text).unwrap();
        assert_eq!(again.open("t/s/kid", &sealed).unwrap(), b"private");
        let (other, _) = MasterKey::generate();
        assert!(other.open("t/s/kid", &sealed).is_err());
    }

    #[test]
    fn rejects_wrong_length_keys() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }
}
