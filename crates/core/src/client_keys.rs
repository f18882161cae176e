//! Client keys for JWT client assertions (RFC 7523 §2.2): the JWS algorithms an assertion may
//! use, JWK Sets parsed once into verification keys, and [`ClientKeys`], the one shared fetcher
//! of `jwks_uri` documents. Fetches go through the guarded [`Outbound`] client (https only,
//! vetted addresses, no redirects, bounded in size and time); documents are cached per URI
//! within bounds.

use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use dashmap::DashMap;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use crate::oauth::AuthMethod;
use crate::outbound::{Outbound, OutboundError};

/// How client `jwks_uri`s are fetched and cached (the guards of every fetch are the
/// [`Outbound`] client's).
#[derive(Debug, Clone)]
pub struct JwksFetchOptions {
    /// Largest document accepted.
    pub max_bytes: usize,
    /// Least time between two fetches of one URI caused by an unknown `kid`.
    pub refetch_cooldown: Duration,
    /// Bounds on the cache lifetime taken from the response's caching headers.
    pub min_cache: Duration,
    /// See `min_cache`.
    pub max_cache: Duration,
}

impl Default for JwksFetchOptions {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024,
            refetch_cooldown: Duration::from_secs(60),
            min_cache: Duration::from_secs(60),
            max_cache: Duration::from_secs(3600),
        }
    }
}

/// A JWS algorithm a client assertion may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssertionAlg {
    /// HMAC SHA-256 (`client_secret_jwt`).
    HS256,
    /// HMAC SHA-384 (`client_secret_jwt`).
    HS384,
    /// HMAC SHA-512 (`client_secret_jwt`).
    HS512,
    /// RSASSA-PKCS1-v1_5 SHA-256 (`private_key_jwt`).
    RS256,
    /// RSASSA-PSS SHA-256 (`private_key_jwt`).
    PS256,
    /// ECDSA P-256 SHA-256 (`private_key_jwt`).
    ES256,
    /// Ed25519, named `EdDSA` or, fully specified (RFC 9864), `Ed25519` (`private_key_jwt`).
    EdDSA,
}

impl AssertionAlg {
    /// Names accepted for `client_secret_jwt`.
    pub const HMAC_NAMES: &'static [&'static str] = &["HS256", "HS384", "HS512"];
    /// Random bytes in a `client_secret_jwt` secret: the secret is the HMAC key of every
    /// `HS*` algorithm the client may use, and RFC 7518 §3.2 wants a key at least as long as
    /// the hash, 64 bytes for HS512 (libraries such as Nimbus refuse shorter ones). 64 random
    /// bytes are 86 base64url characters.
    pub const HMAC_SECRET_BYTES: usize = 64;
    /// Names accepted for `private_key_jwt`.
    pub const KEY_NAMES: &'static [&'static str] = &["RS256", "PS256", "ES256", "EdDSA", "Ed25519"];

    /// Parses a JWS `alg` name; `none` and every other algorithm are `None`.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "HS256" => Self::HS256,
            "HS384" => Self::HS384,
            "HS512" => Self::HS512,
            "RS256" => Self::RS256,
            "PS256" => Self::PS256,
            "ES256" => Self::ES256,
            "EdDSA" | "Ed25519" => Self::EdDSA,
            _ => return None,
        })
    }

    /// The canonical name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HS256 => "HS256",
            Self::HS384 => "HS384",
            Self::HS512 => "HS512",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// The jsonwebtoken algorithm that verifies it.
    #[must_use]
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::HS256 => Algorithm::HS256,
            Self::HS384 => Algorithm::HS384,
            Self::HS512 => Algorithm::HS512,
            Self::RS256 => Algorithm::RS256,
            Self::PS256 => Algorithm::PS256,
            Self::ES256 => Algorithm::ES256,
            Self::EdDSA => Algorithm::EdDSA,
        }
    }

    /// The only client-authentication method that may use it: HMAC belongs to
    /// `client_secret_jwt`, everything else to `private_key_jwt`. This is what makes algorithm
    /// confusion impossible: a method never verifies with the other method's key material.
    #[must_use]
    pub fn method(self) -> AuthMethod {
        match self {
            Self::HS256 | Self::HS384 | Self::HS512 => AuthMethod::ClientSecretJwt,
            _ => AuthMethod::PrivateKeyJwt,
        }
    }

    /// The key type an asymmetric algorithm needs.
    #[must_use]
    pub fn key_kind(self) -> Option<KeyKind> {
        match self {
            Self::RS256 | Self::PS256 => Some(KeyKind::Rsa),
            Self::ES256 => Some(KeyKind::EcP256),
            Self::EdDSA => Some(KeyKind::Ed25519),
            Self::HS256 | Self::HS384 | Self::HS512 => None,
        }
    }
}

/// The public-key types `private_key_jwt` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// `kty: RSA`, 2048 to 8192 bits (RS256, PS256).
    Rsa,
    /// `kty: EC`, `crv: P-256` (ES256).
    EcP256,
    /// `kty: OKP`, `crv: Ed25519` (EdDSA).
    Ed25519,
}

/// One public key from a client's JWK Set, parsed once.
#[derive(Debug, Clone)]
pub struct ClientKey {
    /// `kid`, if the JWK has one.
    pub kid: Option<String>,
    /// Key type.
    pub kind: KeyKind,
    /// `alg`, if the JWK restricts itself to one.
    pub alg: Option<AssertionAlg>,
    /// The verification key.
    pub key: DecodingKey,
}

impl ClientKey {
    /// Whether this key may verify an assertion signed with `alg`.
    #[must_use]
    pub fn fits(&self, alg: AssertionAlg) -> bool {
        alg.key_kind() == Some(self.kind) && self.alg.is_none_or(|a| a == alg)
    }

    /// Parses one JWK (RFC 7517) into a verification key for client assertions.
    ///
    /// # Errors
    /// Why the JWK cannot verify assertions, in words fit for an admin.
    pub fn from_jwk(jwk: &Value) -> Result<Self, &'static str> {
        let obj = jwk.as_object().ok_or("each key must be a JSON object")?;
        if has_private_members(jwk) {
            return Err("must hold public keys only (found a private or symmetric key member)");
        }
        if obj.get("use").is_some_and(|u| u != "sig") {
            return Err("a key's `use` must be `sig`");
        }
        if let Some(ops) = obj.get("key_ops") {
            let verify = ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|o| o == "verify"));
            if !verify {
                return Err("a key's `key_ops` must include `verify`");
            }
        }
        let kid = match obj.get("kid") {
            None => None,
            Some(Value::String(k)) if !k.is_empty() && k.len() <= 256 => Some(k.clone()),
            Some(_) => return Err("a key's `kid` must be a string of 1 to 256 characters"),
        };
        let text = |name: &str| obj.get(name).and_then(Value::as_str);
        let b64 = |name: &'static str| -> Result<Vec<u8>, &'static str> {
            text(name)
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .ok_or("a key member is missing or not base64url")
        };
        let (kind, key) = match text("kty") {
            Some("RSA") => {
                let (n, e) = (b64("n")?, b64("e")?);
                let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
                if !(2048..=8192).contains(&bits) {
                    return Err("RSA keys must be 2048 to 8192 bits");
                }
                if e.is_empty() || e.len() > 8 {
                    return Err("the RSA exponent is not valid");
                }
                (KeyKind::Rsa, DecodingKey::from_rsa_raw_components(&n, &e))
            }
            Some("EC") => {
                if text("crv") != Some("P-256") {
                    return Err("EC keys must use the P-256 curve (ES256)");
                }
                let (x, y) = (b64("x")?, b64("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err("a P-256 key needs 32-byte `x` and `y`");
                }
                let point: Vec<u8> = std::iter::once(0x04).chain(x).chain(y).collect();
                (KeyKind::EcP256, DecodingKey::from_ec_der(&point))
            }
            Some("OKP") => {
                if text("crv") != Some("Ed25519") {
                    return Err("OKP keys must use the Ed25519 curve");
                }
                let x = b64("x")?;
                if x.len() != 32 {
                    return Err("an Ed25519 key needs a 32-byte `x`");
                }
                (KeyKind::Ed25519, DecodingKey::from_ed_der(&x))
            }
            _ => return Err("unsupported key type: use RSA, EC P-256 or OKP Ed25519"),
        };
        let alg = match obj.get("alg") {
            None => None,
            Some(a) => {
                let alg = a
                    .as_str()
                    .and_then(AssertionAlg::parse)
                    .filter(|a| a.key_kind() == Some(kind))
                    .ok_or(
                        "a key's `alg` must be RS256, PS256, ES256 or EdDSA, matching its type",
                    )?;
                Some(alg)
            }
        };
        Ok(Self {
            kid,
            kind,
            alg,
            key,
        })
    }
}

/// Whether a JWK carries private or symmetric key material (RFC 7518 §6.2.2, §6.3.2, §6.4).
#[must_use]
pub fn has_private_members(jwk: &Value) -> bool {
    ["d", "p", "q", "dp", "dq", "qi", "oth", "k"]
        .iter()
        .any(|m| jwk.get(m).is_some())
}

/// What [`ClientKeySet::select`] found for an assertion header.
#[derive(Debug)]
pub enum Selection<'a> {
    /// The key to verify with.
    Found(&'a ClientKey),
    /// No key has that `kid` (or, without `kid`, none fits the algorithm).
    NoKey,
    /// The key named by `kid` is of another type than the algorithm needs.
    WrongType,
    /// Without `kid`, several keys fit the algorithm.
    Ambiguous,
}

/// A client's JWK Set, parsed once into verification keys.
#[derive(Debug, Clone, Default)]
pub struct ClientKeySet {
    /// The usable keys, in document order.
    pub keys: Vec<ClientKey>,
}

impl ClientKeySet {
    /// The usable keys of a JWK Set document; keys this server cannot use (encryption keys,
    /// other curves) are skipped, as a published set may legitimately hold them.
    ///
    /// # Errors
    /// When the document is not a JWK Set (an object with a `keys` array).
    pub fn from_document(doc: &Value) -> Result<Self, &'static str> {
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("not a JWK Set: an object with a `keys` array")?;
        Ok(Self {
            keys: keys
                .iter()
                .filter_map(|k| ClientKey::from_jwk(k).ok())
                .collect(),
        })
    }

    /// Every key of a registered inline set, each of which must be usable (admin validation).
    ///
    /// # Errors
    /// The first problem, in words fit for an admin.
    pub fn from_registration(doc: &Value) -> Result<Self, String> {
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("must be a JWK Set: an object with a `keys` array")?;
        if keys.is_empty() {
            return Err("must hold at least one key".into());
        }
        let mut parsed = Vec::with_capacity(keys.len());
        for (i, k) in keys.iter().enumerate() {
            let key = ClientKey::from_jwk(k).map_err(|e| format!("key {i}: {e}"))?;
            if key.kid.is_some() && parsed.iter().any(|p: &ClientKey| p.kid == key.kid) {
                return Err(format!("key {i}: `kid` is not unique"));
            }
            parsed.push(key);
        }
        Ok(Self { keys: parsed })
    }

    /// The key for an assertion signed with `alg`, named by `kid` when the header has one.
    #[must_use]
    pub fn select(&self, alg: AssertionAlg, kid: Option<&str>) -> Selection<'_> {
        if let Some(kid) = kid {
            let mut named = self
                .keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .peekable();
            if named.peek().is_none() {
                return Selection::NoKey;
            }
            return named
                .find(|k| k.fits(alg))
                .map_or(Selection::WrongType, Selection::Found);
        }
        let mut fitting = self.keys.iter().filter(|k| k.fits(alg));
        match (fitting.next(), fitting.next()) {
            (None, _) => Selection::NoKey,
            (Some(k), None) => Selection::Found(k),
            (Some(_), Some(_)) => Selection::Ambiguous,
        }
    }
}

/// Verification keys of one cached client, derived on first use so the steady state neither
/// parses JSON nor opens sealed secrets.
#[derive(Debug, Default)]
pub struct AssertionKeyCache {
    /// `client_secret_jwt`: the HMAC key, opened from the sealed secret.
    pub hmac: OnceLock<DecodingKey>,
    /// `private_key_jwt` with inline `jwks`: the parsed set.
    pub inline: OnceLock<Arc<ClientKeySet>>,
}

/// Why a client's `jwks_uri` could not be used. The text is for logs; callers see
/// `invalid_client`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The outbound call was refused or failed.
    #[error(transparent)]
    Outbound(#[from] OutboundError),
    /// Not a JWK Set.
    #[error("{0}")]
    Invalid(&'static str),
    /// A fetch of this URI failed a moment ago; not retried yet.
    #[error("recent fetch failed: {0}")]
    Recent(Box<FetchError>),
}

/// After a failed fetch, requests for that URI fail at once for this long instead of each
/// starting another fetch.
const FAILURE_BACKOFF: Duration = Duration::from_secs(2);
/// Most URIs cached at once; the oldest entry is evicted beyond.
const MAX_URIS: usize = 10_000;

#[derive(Debug, Default)]
struct UriState {
    keys: Option<Arc<ClientKeySet>>,
    fresh_until: Option<Instant>,
    /// When the latest fetch finished, and its error if it failed.
    last_attempt: Option<(Instant, Option<FetchError>)>,
    /// When an unknown `kid` last caused a fetch.
    last_forced: Option<Instant>,
}

#[derive(Debug)]
struct UriEntry {
    created: Instant,
    /// Held while fetching: concurrent misses for one URI share one fetch.
    fetching: tokio::sync::Mutex<()>,
    state: RwLock<UriState>,
}

impl UriEntry {
    fn read<T>(&self, f: impl FnOnce(&UriState) -> T) -> T {
        f(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<T>(&self, f: impl FnOnce(&mut UriState) -> T) -> T {
        f(&mut self.state.write().unwrap_or_else(PoisonError::into_inner))
    }

    fn fresh(&self, now: Instant) -> Option<Arc<ClientKeySet>> {
        self.read(|s| {
            s.keys
                .clone()
                .filter(|_| s.fresh_until.is_some_and(|t| now < t))
        })
    }

    /// The error of a fetch that finished after `since`, or within the failure backoff.
    fn recent_failure(&self, since: Instant) -> Option<FetchError> {
        self.read(|s| match &s.last_attempt {
            Some((at, Some(e))) if *at >= since || at.elapsed() < FAILURE_BACKOFF => {
                Some(FetchError::Recent(Box::new(e.clone())))
            }
            _ => None,
        })
    }
}

/// Fetches and caches clients' `jwks_uri` documents; one per process, shared by all tenants
/// (the documents are public and keyed by their URI).
#[derive(Debug)]
pub struct ClientKeys {
    outbound: Arc<Outbound>,
    options: JwksFetchOptions,
    entries: DashMap<String, Arc<UriEntry>>,
}

impl ClientKeys {
    /// A fetcher with `options`, fetching through `outbound`.
    #[must_use]
    pub fn new(options: JwksFetchOptions, outbound: Arc<Outbound>) -> Self {
        Self {
            outbound,
            options,
            entries: DashMap::new(),
        }
    }

    fn entry(&self, uri: &str) -> Arc<UriEntry> {
        if let Some(e) = self.entries.get(uri) {
            return e.clone();
        }
        if self.entries.len() >= MAX_URIS {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|e| e.value().created)
                .map(|e| e.key().clone());
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
        self.entries
            .entry(uri.to_owned())
            .or_insert_with(|| {
                Arc::new(UriEntry {
                    created: Instant::now(),
                    fetching: tokio::sync::Mutex::new(()),
                    state: RwLock::new(UriState::default()),
                })
            })
            .clone()
    }

    /// The keys at `uri`: from the cache while fresh, else fetched (one fetch per URI at a
    /// time; requests arriving meanwhile wait for it and share its outcome).
    ///
    /// # Errors
    /// Why the document could not be fetched or used.
    pub async fn get(&self, uri: &str) -> Result<Arc<ClientKeySet>, FetchError> {
        let entry = self.entry(uri);
        let started = Instant::now();
        if let Some(keys) = entry.fresh(started) {
            return Ok(keys);
        }
        if let Some(e) = entry.recent_failure(started) {
            return Err(e);
        }
        let _fetching = entry.fetching.lock().await;
        if let Some(keys) = entry.fresh(Instant::now()) {
            return Ok(keys);
        }
        if let Some(e) = entry.recent_failure(started) {
            return Err(e);
        }
        self.fetch_into(&entry, uri).await
    }

    /// Refetches `uri` because an assertion named a `kid` missing from `seen`, at most once
    /// per `refetch_cooldown`. `Ok(None)`: no newer keys (cooling down).
    ///
    /// # Errors
    /// Why the document could not be fetched or used.
    pub async fn refetch(
        &self,
        uri: &str,
        seen: &Arc<ClientKeySet>,
    ) -> Result<Option<Arc<ClientKeySet>>, FetchError> {
        let entry = self.entry(uri);
        let cooldown = self.options.refetch_cooldown;
        let newer = |e: &UriEntry| e.read(|s| s.keys.clone().filter(|k| !Arc::ptr_eq(k, seen)));
        let cooling =
            |e: &UriEntry| e.read(|s| s.last_forced.is_some_and(|t| t.elapsed() < cooldown));
        if cooling(&entry) {
            return Ok(newer(&entry));
        }
        let _fetching = entry.fetching.lock().await;
        if let Some(keys) = newer(&entry) {
            return Ok(Some(keys));
        }
        if cooling(&entry) {
            return Ok(None);
        }
        // Counted before the fetch, so a failing URI is not hammered either.
        entry.write(|s| s.last_forced = Some(Instant::now()));
        self.fetch_into(&entry, uri).await.map(Some)
    }

    async fn fetch_into(
        &self,
        entry: &UriEntry,
        uri: &str,
    ) -> Result<Arc<ClientKeySet>, FetchError> {
        let outcome = self.download(uri).await.and_then(|(doc, ttl)| {
            let keys = ClientKeySet::from_document(&doc).map_err(FetchError::Invalid)?;
            Ok((Arc::new(keys), ttl))
        });
        let now = Instant::now();
        match outcome {
            Ok((keys, ttl)) => {
                entry.write(|s| {
                    s.keys = Some(keys.clone());
                    s.fresh_until = Some(now + ttl);
                    s.last_attempt = Some((now, None));
                });
                tracing::debug!(host = %host_of(uri), keys = keys.keys.len(), ttl_secs = ttl.as_secs(), "client jwks_uri fetched");
                Ok(keys)
            }
            Err(e) => {
                tracing::warn!(host = %host_of(uri), error = %e, "client jwks_uri fetch failed");
                entry.write(|s| s.last_attempt = Some((now, Some(e.clone()))));
                Err(e)
            }
        }
    }

    async fn download(&self, uri: &str) -> Result<(Value, Duration), FetchError> {
        let fetched = self
            .outbound
            .get(
                uri,
                "application/jwk-set+json, application/json",
                self.options.max_bytes,
            )
            .await?;
        let ttl = cache_lifetime(
            fetched.cache_control.as_deref(),
            self.options.min_cache,
            self.options.max_cache,
        );
        let doc: Value = serde_json::from_slice(&fetched.body)
            .map_err(|_| FetchError::Invalid("not a JSON document"))?;
        Ok((doc, ttl))
    }
}

/// The host of a URI, for logs (never the path or query, which may carry tokens).
fn host_of(uri: &str) -> String {
    url::Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "(unparsable)".into())
}

/// Cache lifetime from `Cache-Control`: `max-age` clamped to `[min, max]`; `no-store`,
/// `no-cache` or nothing means `min`.
fn cache_lifetime(header: Option<&str>, min: Duration, max: Duration) -> Duration {
    let mut age = None;
    for directive in header.unwrap_or("").split(',') {
        let d = directive.trim().to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return min;
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            age = v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age.unwrap_or(min).clamp(min, max.max(min))
}

/// The DER certificates a JWK Set registers: the first `x5c` element of each key that has one.
///
/// # Errors
/// When an `x5c` is not an array of base64 (not base64url) DER certificates, in words fit for
/// an admin.
pub fn registered_certificates(jwks: &Value) -> Result<Vec<Vec<u8>>, String> {
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
                .and_then(|c| base64::engine::general_purpose::STANDARD.decode(c).ok())
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
    use serde_json::json;

    #[test]
    fn cache_lifetime_is_clamped() {
        let (min, max) = (Duration::from_secs(60), Duration::from_secs(3600));
        assert_eq!(cache_lifetime(None, min, max), min);
        assert_eq!(
            cache_lifetime(Some("public, max-age=600"), min, max),
            Duration::from_secs(600)
        );
        assert_eq!(cache_lifetime(Some("max-age=5"), min, max), min);
        assert_eq!(cache_lifetime(Some("max-age=999999"), min, max), max);
        assert_eq!(cache_lifetime(Some("no-store, max-age=600"), min, max), min);
        assert_eq!(cache_lifetime(Some("max-age=junk"), min, max), min);
    }

    fn ec_jwk(kid: &str) -> Value {
        json!({"kty": "EC", "crv": "P-256", "kid": kid,
               "x": URL_SAFE_NO_PAD.encode([1u8; 32]), "y": URL_SAFE_NO_PAD.encode([2u8; 32])})
    }

    fn ed_jwk(kid: &str) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": URL_SAFE_NO_PAD.encode([3u8; 32])})
    }

    #[test]
    fn registration_refuses_unusable_keys() {
        let rsa_small =
            json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xffu8; 128]), "e": "AQAB"});
        let rows = [
            (json!({}), "keys"),
            (json!({"keys": []}), "at least one"),
            (
                json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
                "public keys only",
            ),
            (
                json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"}]}),
                "public keys only",
            ),
            (json!({"keys": [rsa_small]}), "2048"),
            (
                json!({"keys": [{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"}]}),
                "P-256",
            ),
            (
                json!({"keys": [{"kty": "OKP", "crv": "X25519", "x": "AA"}]}),
                "Ed25519",
            ),
            (json!({"keys": [ec_jwk("a"), ed_jwk("a")]}), "unique"),
            (
                json!({"keys": [{"use": "enc", "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([3u8; 32])}]}),
                "`use`",
            ),
            (
                json!({"keys": [{"alg": "ES256", "kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode([3u8; 32])}]}),
                "`alg`",
            ),
        ];
        for (doc, expected) in rows {
            let err = ClientKeySet::from_registration(&doc).unwrap_err();
            assert!(err.contains(expected), "{doc}: {err}");
        }
        assert_eq!(
            ClientKeySet::from_registration(&json!({"keys": [ec_jwk("a"), ed_jwk("b")]}))
                .unwrap()
                .keys
                .len(),
            2
        );
    }

    #[test]
    fn selects_by_kid_and_type() {
        let set = ClientKeySet::from_document(
            &json!({"keys": [ec_jwk("a"), ed_jwk("b"), {"kty": "oct", "k": "AA"}]}),
        )
        .unwrap();
        assert_eq!(set.keys.len(), 2, "the symmetric key is skipped");
        assert!(
            matches!(set.select(AssertionAlg::ES256, Some("a")), Selection::Found(k) if k.kind == KeyKind::EcP256)
        );
        assert!(matches!(
            set.select(AssertionAlg::ES256, Some("b")),
            Selection::WrongType
        ));
        assert!(matches!(
            set.select(AssertionAlg::ES256, Some("c")),
            Selection::NoKey
        ));
        assert!(
            matches!(set.select(AssertionAlg::EdDSA, None), Selection::Found(k) if k.kind == KeyKind::Ed25519)
        );
        assert!(matches!(
            set.select(AssertionAlg::RS256, None),
            Selection::NoKey
        ));
        let two =
            ClientKeySet::from_document(&json!({"keys": [ec_jwk("a"), ec_jwk("b")]})).unwrap();
        assert!(matches!(
            two.select(AssertionAlg::ES256, None),
            Selection::Ambiguous
        ));
    }

    /// Answers every connection with `response` after `delay`; counts requests.
    async fn serve_raw(
        response: String,
        delay: Duration,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (response, h) = (response.clone(), h.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = sock.read(&mut buf).await;
                    h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    let _ = sock.write_all(response.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        (base, hits)
    }

    fn ok(body: &str, extra: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// A fetcher that may reach the test servers on loopback.
    fn dev_keys() -> ClientKeys {
        let outbound = Outbound::new(crate::outbound::OutboundOptions {
            allow_loopback: true,
            timeout: Duration::from_millis(500),
            ..crate::outbound::OutboundOptions::default()
        });
        ClientKeys::new(JwksFetchOptions::default(), Arc::new(outbound))
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch_then_hit_the_cache() {
        let doc = json!({"keys": [ec_jwk("a")]}).to_string();
        let (base, hits) = serve_raw(
            ok(&doc, "Cache-Control: max-age=600\r\n"),
            Duration::from_millis(100),
        )
        .await;
        let keys = Arc::new(dev_keys());
        let uri = format!("{base}/jwks");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (keys, uri) = (keys.clone(), uri.clone());
                tokio::spawn(async move { keys.get(&uri).await.map(|k| k.keys.len()) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(1));
        }
        assert_eq!(keys.get(&uri).await.unwrap().keys.len(), 1);
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn refetch_happens_at_most_once_per_cooldown() {
        let doc = json!({"keys": [ec_jwk("a")]}).to_string();
        let (base, hits) = serve_raw(ok(&doc, ""), Duration::ZERO).await;
        let keys = dev_keys();
        let uri = format!("{base}/jwks");
        let seen = keys.get(&uri).await.unwrap();
        assert!(keys.refetch(&uri, &seen).await.unwrap().is_some());
        let newest = keys.get(&uri).await.unwrap();
        assert!(
            keys.refetch(&uri, &newest).await.unwrap().is_none(),
            "cooling down"
        );
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn refuses_oversized_redirected_failed_and_slow_responses() {
        let max = JwksFetchOptions::default().max_bytes;
        let big = format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(max));
        let rows = [
            (ok(&big, ""), "larger than"),
            // No Content-Length: the cap applies while streaming.
            (format!("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{big}"), "larger than"),
            ("HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n".to_owned(), "302"),
            ("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n".to_owned(), "500"),
            (ok("[1, 2]", ""), "not a JWK Set"),
            (ok("{", ""), "not a JSON document"),
        ];
        for (response, expected) in rows {
            let (base, _) = serve_raw(response, Duration::ZERO).await;
            let err = dev_keys().get(&format!("{base}/jwks")).await.unwrap_err();
            assert!(err.to_string().contains(expected), "{expected}: {err}");
        }
        let (base, _) = serve_raw(ok("{}", ""), Duration::from_secs(5)).await;
        let started = Instant::now();
        let err = dev_keys().get(&format!("{base}/jwks")).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(2), "{err}");
    }

    #[tokio::test]
    async fn refuses_loopback_without_the_flag() {
        let doc = json!({"keys": [ec_jwk("a")]}).to_string();
        let (base, hits) = serve_raw(ok(&doc, ""), Duration::ZERO).await;
        let port = base.rsplit(':').next().unwrap();
        let keys = ClientKeys::new(
            JwksFetchOptions::default(),
            Arc::new(Outbound::new(crate::outbound::OutboundOptions::default())),
        );
        let err = keys
            .get(&format!("https://localhost:{port}/jwks"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("refused addresses"), "{err}");
        let err = keys.get(&format!("{base}/jwks")).await.unwrap_err();
        assert!(
            matches!(err, FetchError::Outbound(OutboundError::Address(_))),
            "{err}"
        );
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    #[test]
    fn alg_names() {
        assert_eq!(AssertionAlg::parse("Ed25519"), Some(AssertionAlg::EdDSA));
        assert_eq!(AssertionAlg::parse("none"), None);
        assert_eq!(
            AssertionAlg::parse("HS256").map(AssertionAlg::method),
            Some(AssertionAlg::HS256.method())
        );
        assert_eq!(AssertionAlg::HS512.method(), AuthMethod::ClientSecretJwt);
        assert_eq!(AssertionAlg::ES256.method(), AuthMethod::PrivateKeyJwt);
    }
}
