//! Shared handling of RFC 7523 JWT client assertions, for `client_secret_jwt` and
//! `private_key_jwt`: reading the subject to find the client; reading the JOSE header (only
//! `alg` and `kid`, because jsonwebtoken refuses the `Ed25519` name the contract accepts);
//! verifying the signature with jsonwebtoken; checking the RFC 7523 §3 claims; and, last,
//! spending the `jti` in the short-lived store so the assertion cannot be replayed on any
//! replica. The assertion itself is never logged.

use super::ClientAuth;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};

use super::{Expiry, Failure, Presented, JWT_BEARER_ASSERTION};
use crate::client_keys::AssertionAlg;
use crate::model::client::Client;
use crate::registry::ServerRuntime;
use crate::store::{Owner, ShortLivedStore};

/// Which `aud` values a client assertion may carry (RFC 7523 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionAudience {
    /// The URL of the endpoint receiving it, or the issuer (default).
    EndpointOrIssuer,
    /// Only the issuer (the stricter reading of draft-ietf-oauth-rfc7523bis).
    IssuerOnly,
}

/// RFC 7523 client-assertion rules.
#[derive(Debug, Clone)]
pub struct AssertionOptions {
    /// How far ahead `exp` may be (default 60 minutes: common client libraries, Authlib's
    /// `PrivateKeyJWT` and `ClientSecretJWT` among them, sign assertions valid for an hour).
    pub max_lifetime: Duration,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default 30 s).
    pub clock_skew: Duration,
    /// Accepted audiences.
    pub audience: AssertionAudience,
}

impl Default for AssertionOptions {
    fn default() -> Self {
        Self {
            max_lifetime: Duration::from_secs(3600),
            clock_skew: Duration::from_secs(30),
            audience: AssertionAudience::EndpointOrIssuer,
        }
    }
}

/// Largest assertion accepted, in bytes, whatever the configuration: the request parser
/// enforces the configured limit (`--max-assertion-bytes`, at most this) with a clear error;
/// this is the checker's own guard.
pub(super) const MAX_ASSERTION_LEN: usize = crate::limits::ASSERTION_BYTES_CEILING;
/// Longest `jti` accepted, in characters.
const MAX_JTI_CHARS: usize = 256;

/// The assertion's `sub`, read without verifying anything: only to find which client's keys
/// to verify it with. Nothing is trusted until the signature and claims are checked.
pub(super) fn subject(assertion: &str) -> Option<String> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return None;
    }
    let mut parts = assertion.split('.');
    let (_, payload) = (parts.next()?, parts.next()?);
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}

/// A compact JWS whose header was read; nothing in it is trusted yet.
#[derive(Debug)]
pub(super) struct Assertion<'a> {
    /// The header's `alg`, already allowed for the client.
    pub(super) alg: AssertionAlg,
    /// The header's `kid`.
    pub(super) kid: Option<String>,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn decode_json_object(part: &str) -> Result<Map<String, Value>, Failure> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Failure::MalformedAssertion)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Failure::MalformedAssertion),
    }
}

/// Reads what a request presented for a JWT method: the assertion type, the size and shape
/// of the assertion, and its header's `alg`, which must belong to `method` (HMAC for
/// `client_secret_jwt`, public-key algorithms for `private_key_jwt`) and equal the client's
/// registered `token_endpoint_auth_signing_alg`, if any. `none` never passes.
pub(super) fn parse<'a>(
    presented: &Presented<'a>,
    client: &Client,
) -> Result<Assertion<'a>, Failure> {
    if presented.assertion_type != Some(JWT_BEARER_ASSERTION) {
        return Err(Failure::AssertionType);
    }
    let text = presented
        .assertion
        .ok_or(Failure::MalformedAssertion)?
        .expose();
    let assertion = read_jws(text)?;
    if assertion.alg.method() != client.auth_method() {
        return Err(Failure::AssertionAlgorithm);
    }
    if let Some(registered) = client.metadata.token_endpoint_auth_signing_alg.as_deref() {
        if AssertionAlg::parse(registered) != Some(assertion.alg) {
            return Err(Failure::AssertionAlgorithm);
        }
    }
    Ok(assertion)
}

/// Reads a compact JWS: its shape and size, and its header's `alg` (one we verify: `none`
/// never passes) and `kid`. Shared by client assertions and request objects (RFC 9101).
pub(super) fn read_jws(text: &str) -> Result<Assertion<'_>, Failure> {
    if text.len() > MAX_ASSERTION_LEN {
        return Err(Failure::MalformedAssertion);
    }
    let mut parts = text.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Failure::MalformedAssertion);
    };
    if header.is_empty() || payload.is_empty() {
        return Err(Failure::MalformedAssertion);
    }
    let fields = decode_json_object(header)?;
    // RFC 7515 §4.1.11: extensions we do not understand must not be ignored.
    if fields.contains_key("crit") {
        return Err(Failure::MalformedAssertion);
    }
    let alg = fields
        .get("alg")
        .and_then(Value::as_str)
        .and_then(AssertionAlg::parse)
        .ok_or(Failure::AssertionAlgorithm)?;
    let kid = match fields.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(Failure::MalformedAssertion),
    };
    // Checked after `alg`, so that an unsigned `alg: none` token is named for what it is.
    if signature.is_empty() {
        return Err(Failure::MalformedAssertion);
    }
    let signing_input = &text[..header.len() + 1 + payload.len()];
    Ok(Assertion {
        alg,
        kid,
        signing_input,
        payload,
        signature,
    })
}

impl Assertion<'_> {
    /// Verifies the signature with jsonwebtoken (constant-time for HMAC). The key's family
    /// must match the algorithm; jsonwebtoken refuses it otherwise.
    pub(super) fn verify_signature(&self, key: &DecodingKey) -> Result<(), Failure> {
        match jsonwebtoken::crypto::verify(
            self.signature,
            self.signing_input.as_bytes(),
            key,
            self.alg.algorithm(),
        ) {
            Ok(true) => Ok(()),
            Ok(false) | Err(_) => Err(Failure::BadSignature),
        }
    }

    pub(super) fn claims(&self) -> Result<Map<String, Value>, Failure> {
        decode_json_object(self.payload)
    }
}

/// What the claims are checked against.
#[derive(Debug, Clone, Copy)]
pub(super) struct Expect<'a> {
    /// The client id `iss` and `sub` must equal.
    pub(super) client_id: &'a str,
    /// The URL of the endpoint receiving the assertion (the token endpoint's is accepted at
    /// every endpoint).
    pub(super) endpoint_url: &'a str,
    /// The server's issuer.
    pub(super) issuer: &'a str,
    /// Lifetime, skew and audience rules.
    pub(super) options: &'a AssertionOptions,
    /// Unix seconds.
    pub(super) now: i64,
}

/// A `jti` to spend, and how long it must be remembered.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Spend {
    pub(super) jti: String,
    pub(super) ttl_secs: u64,
}

/// RFC 7519 NumericDate: a JSON number of seconds, possibly fractional.
#[allow(clippy::cast_possible_truncation)]
pub(super) fn numeric_date(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f.floor() as i64)
    })
}

/// The RFC 7523 §3 claim rules; returns the `jti` to spend.
pub(super) fn check_claims(
    claims: &Map<String, Value>,
    expect: &Expect<'_>,
) -> Result<Spend, Failure> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(expect.client_id) || text("sub") != Some(expect.client_id) {
        return Err(Failure::AssertionSubject);
    }
    // The issuer; or the endpoint receiving the assertion, or the token endpoint, which OIDC
    // Core §9 names as the audience and many clients use at every endpoint.
    let accepted = |aud: &str| {
        aud == expect.issuer
            || (expect.options.audience == AssertionAudience::EndpointOrIssuer
                && (aud == expect.endpoint_url
                    || aud.strip_prefix(expect.issuer) == Some("/oauth2/token")))
    };
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => accepted(a),
        Some(Value::Array(list)) => {
            // The stricter reading allows only the issuer, alone.
            let single =
                expect.options.audience == AssertionAudience::EndpointOrIssuer || list.len() == 1;
            single && list.iter().any(|a| a.as_str().is_some_and(accepted))
        }
        _ => false,
    };
    if !aud_ok {
        return Err(Failure::AssertionAudience);
    }
    let skew = i64::try_from(expect.options.clock_skew.as_secs()).unwrap_or(i64::MAX);
    let lifetime = i64::try_from(expect.options.max_lifetime.as_secs()).unwrap_or(i64::MAX);
    let now = expect.now;
    let exp = claims
        .get("exp")
        .and_then(numeric_date)
        .ok_or(Failure::AssertionExpiry(Expiry::Missing))?;
    if exp <= now.saturating_sub(skew) {
        return Err(Failure::AssertionExpiry(Expiry::Expired));
    }
    if exp > now.saturating_add(lifetime).saturating_add(skew) {
        return Err(Failure::AssertionExpiry(Expiry::TooFarAhead));
    }
    for name in ["nbf", "iat"] {
        match claims.get(name) {
            None => {}
            Some(v) => match numeric_date(v) {
                Some(t) if t <= now.saturating_add(skew) => {}
                _ => return Err(Failure::AssertionNotYetValid),
            },
        }
    }
    let jti = match claims.get("jti") {
        Some(Value::String(j)) if !j.is_empty() && j.chars().count() <= MAX_JTI_CHARS => j.clone(),
        _ => return Err(Failure::AssertionJti),
    };
    // Remembered for as long as the assertion could still be accepted.
    let ttl_secs = u64::try_from(exp.saturating_add(skew).saturating_sub(now))
        .unwrap_or(1)
        .max(1);
    Ok(Spend { jti, ttl_secs })
}

/// Spends a `jti`: one `SET NX` with expiry, shared by every replica. A store failure refuses
/// the assertion (a replay must never slip through an outage).
pub(super) async fn spend_jti(
    store: &dyn ShortLivedStore,
    owner: Owner<'_>,
    scope: &str,
    spend: &Spend,
) -> Result<(), Failure> {
    let key = format!("jti:{scope}/{}", spend.jti);
    match store
        .put_if_absent(
            owner,
            &key,
            b"1",
            std::time::Duration::from_secs(spend.ttl_secs),
        )
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(Failure::ReplayedAssertion),
        Err(e) => {
            tracing::warn!(error = %e, "assertion replay check failed; refusing the assertion");
            Err(Failure::StoreUnavailable)
        }
    }
}

/// After the signature verified: checks the claims, then spends the `jti` — last, so that a
/// forged or invalid assertion can never burn a genuine one's `jti`.
pub(super) async fn accept(
    ctx: &ClientAuth<'_>,
    server: &ServerRuntime,
    presented: &Presented<'_>,
    assertion: &Assertion<'_>,
) -> Result<(), Failure> {
    let claims = assertion.claims()?;
    let expect = Expect {
        client_id: presented.client_id.as_str(),
        endpoint_url: presented.endpoint_url,
        issuer: &server.issuer,
        options: ctx.assertions,
        now: ctx.clock.now(),
    };
    let spend = check_claims(&claims, &expect)?;
    let scope = format!(
        "{}/{}/{}",
        server.server.tenant_id, server.server.id, presented.client_id
    );
    let owner = Owner::new(&server.server.tenant_id, &server.server.id);
    spend_jti(ctx.replay, owner, &scope, &spend).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::store::test_owner;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
    };
    use jsonwebtoken::{Algorithm, EncodingKey};
    use serde_json::json;

    use super::*;
    use crate::ids::{ClientId, ServerId, TenantId};
    use crate::model::client::{ClientMetadata, StoredSecret};
    use crate::secrets::ClientSecret;
    use crate::store::memory::MemoryStore;
    use crate::store::StoreError;

    const ISSUER: &str = "https://as.example/t/s";
    const ENDPOINT: &str = "https://as.example/t/s/oauth2/token";
    const NOW: i64 = 1_700_000_000;

    /// A compact JWS over `header` and `claims`, signed by jsonwebtoken with `alg`.
    fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
        format!("{input}.{sig}")
    }

    /// A fresh P-256 key pair: (signing key, verification key).
    fn es256_pair() -> (EncodingKey, DecodingKey) {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        (
            EncodingKey::from_ec_der(pkcs8.as_ref()),
            DecodingKey::from_ec_der(pair.public_key().as_ref()),
        )
    }

    fn ed25519_pair() -> (EncodingKey, DecodingKey) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        (
            EncodingKey::from_ed_der(pkcs8.as_ref()),
            DecodingKey::from_ed_der(pair.public_key().as_ref()),
        )
    }

    fn client(method: &str, alg: Option<&str>) -> Client {
        let metadata: ClientMetadata = serde_json::from_value(json!({
            "token_endpoint_auth_method": method,
            "token_endpoint_auth_signing_alg": alg,
        }))
        .unwrap();
        Client {
            tenant_id: TenantId::parse("t").unwrap(),
            server_id: ServerId::parse("s").unwrap(),
            client_id: ClientId::parse("c1").unwrap(),
            metadata,
            secret: StoredSecret::None,
            secret_expires_at: 0,
            issued_at: 0,
            updated_at: 0,
        }
    }

    fn good_claims() -> Value {
        json!({"iss": "c1", "sub": "c1", "aud": ENDPOINT, "exp": NOW + 60, "iat": NOW, "jti": "j-1"})
    }

    fn with(mut base: Value, patch: &Value) -> Value {
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                base.as_object_mut().unwrap().remove(k);
            } else {
                base[k] = v.clone();
            }
        }
        base
    }

    /// Everything an authenticator does, with explicit key, store and time.
    async fn verify(
        store: &MemoryStore,
        client: &Client,
        key: &DecodingKey,
        assertion_type: &str,
        assertion: &str,
        options: &AssertionOptions,
    ) -> Result<(), Failure> {
        let id = ClientId::parse("c1").unwrap();
        let secret = ClientSecret::new(assertion.to_owned());
        let presented = Presented {
            method: client.auth_method(),
            client_id: &id,
            secret: None,
            assertion_type: Some(assertion_type),
            assertion: Some(&secret),
            certificate: None,
            endpoint_url: ENDPOINT,
        };
        let parsed = parse(&presented, client)?;
        parsed.verify_signature(key)?;
        let expect = Expect {
            client_id: "c1",
            endpoint_url: ENDPOINT,
            issuer: ISSUER,
            options,
            now: NOW,
        };
        let spend = check_claims(&parsed.claims()?, &expect)?;
        spend_jti(store, test_owner(), "t/s/c1", &spend).await
    }

    #[tokio::test]
    async fn claim_rules_name_each_failure() {
        let (enc, dec) = es256_pair();
        let c = client("private_key_jwt", None);
        let h = json!({"alg": "ES256", "typ": "JWT"});
        let opts = AssertionOptions::default();
        let rows: Vec<(&str, Value, Result<(), Failure>)> = vec![
            ("valid", json!({}), Ok(())),
            (
                "aud as array",
                json!({"aud": ["https://other", ENDPOINT]}),
                Ok(()),
            ),
            ("aud = issuer", json!({"aud": ISSUER}), Ok(())),
            (
                "fractional exp",
                json!({"exp": (NOW + 60) as f64 + 0.5}),
                Ok(()),
            ),
            (
                "iss differs",
                json!({"iss": "c2"}),
                Err(Failure::AssertionSubject),
            ),
            (
                "sub differs",
                json!({"sub": "c2"}),
                Err(Failure::AssertionSubject),
            ),
            (
                "no iss",
                json!({"iss": null}),
                Err(Failure::AssertionSubject),
            ),
            (
                "wrong aud",
                json!({"aud": "https://elsewhere"}),
                Err(Failure::AssertionAudience),
            ),
            (
                "no aud",
                json!({"aud": null}),
                Err(Failure::AssertionAudience),
            ),
            (
                "aud not a string",
                json!({"aud": 7}),
                Err(Failure::AssertionAudience),
            ),
            (
                "no exp",
                json!({"exp": null}),
                Err(Failure::AssertionExpiry(Expiry::Missing)),
            ),
            (
                "exp as text",
                json!({"exp": "1700000060"}),
                Err(Failure::AssertionExpiry(Expiry::Missing)),
            ),
            (
                "expired beyond skew",
                json!({"exp": NOW - 31}),
                Err(Failure::AssertionExpiry(Expiry::Expired)),
            ),
            (
                "an hour ahead (common client libraries)",
                json!({"exp": NOW + 3600}),
                Ok(()),
            ),
            (
                "exp too far ahead",
                json!({"exp": NOW + 3600 + 31}),
                Err(Failure::AssertionExpiry(Expiry::TooFarAhead)),
            ),
            (
                "future nbf",
                json!({"nbf": NOW + 31}),
                Err(Failure::AssertionNotYetValid),
            ),
            (
                "future iat",
                json!({"iat": NOW + 31}),
                Err(Failure::AssertionNotYetValid),
            ),
            (
                "iat not a number",
                json!({"iat": "now"}),
                Err(Failure::AssertionNotYetValid),
            ),
            ("no jti", json!({"jti": null}), Err(Failure::AssertionJti)),
            ("empty jti", json!({"jti": ""}), Err(Failure::AssertionJti)),
            (
                "long jti",
                json!({"jti": "x".repeat(257)}),
                Err(Failure::AssertionJti),
            ),
            (
                "jti not a string",
                json!({"jti": 5}),
                Err(Failure::AssertionJti),
            ),
        ];
        for (i, (name, patch, expected)) in rows.into_iter().enumerate() {
            let store = MemoryStore::new();
            let claims = with(
                with(good_claims(), &json!({"jti": format!("row-{i}")})),
                &patch,
            );
            let jwt = sign(&h, &claims, &enc, Algorithm::ES256);
            let got = verify(&store, &c, &dec, JWT_BEARER_ASSERTION, &jwt, &opts).await;
            assert_eq!(got, expected, "{name}");
        }
    }

    #[tokio::test]
    async fn skew_is_tolerated_at_the_edges() {
        let (enc, dec) = es256_pair();
        let c = client("private_key_jwt", None);
        let opts = AssertionOptions::default();
        for patch in [
            json!({"exp": NOW - 29}),
            json!({"exp": NOW + 3630}),
            json!({"nbf": NOW + 30, "iat": NOW + 30}),
        ] {
            let jwt = sign(
                &json!({"alg": "ES256"}),
                &with(good_claims(), &patch),
                &enc,
                Algorithm::ES256,
            );
            assert_eq!(
                verify(
                    &MemoryStore::new(),
                    &c,
                    &dec,
                    JWT_BEARER_ASSERTION,
                    &jwt,
                    &opts
                )
                .await,
                Ok(()),
                "{patch}"
            );
        }
    }

    #[test]
    fn other_endpoints_accept_their_own_url_the_token_endpoint_and_the_issuer() {
        let opts = AssertionOptions::default();
        let introspect = format!("{ISSUER}/oauth2/introspect");
        let expect = Expect {
            client_id: "c1",
            endpoint_url: &introspect,
            issuer: ISSUER,
            options: &opts,
            now: NOW,
        };
        let rows = [
            (json!(introspect), true),
            (json!(ENDPOINT), true),
            (json!(ISSUER), true),
            (json!(format!("{ISSUER}/oauth2/revoke")), false),
            (json!(format!("{ENDPOINT}/x")), false),
            (json!("https://as.example/t/sx/oauth2/token"), false),
        ];
        for (aud, ok) in rows {
            let claims = with(good_claims(), &json!({ "aud": aud }));
            let got = check_claims(claims.as_object().unwrap(), &expect);
            assert_eq!(got.is_ok(), ok, "{aud}: {got:?}");
        }
    }

    #[tokio::test]
    async fn issuer_only_audience_refuses_the_endpoint() {
        let (enc, dec) = es256_pair();
        let c = client("private_key_jwt", None);
        let opts = AssertionOptions {
            audience: AssertionAudience::IssuerOnly,
            ..AssertionOptions::default()
        };
        let rows = [
            (json!({"aud": ISSUER}), Ok(())),
            (json!({"aud": [ISSUER]}), Ok(())),
            (json!({"aud": ENDPOINT}), Err(Failure::AssertionAudience)),
            (
                json!({"aud": [ISSUER, "https://other"]}),
                Err(Failure::AssertionAudience),
            ),
        ];
        for (patch, expected) in rows {
            let jwt = sign(
                &json!({"alg": "ES256"}),
                &with(good_claims(), &patch),
                &enc,
                Algorithm::ES256,
            );
            assert_eq!(
                verify(
                    &MemoryStore::new(),
                    &c,
                    &dec,
                    JWT_BEARER_ASSERTION,
                    &jwt,
                    &opts
                )
                .await,
                expected,
                "{patch}"
            );
        }
    }

    #[tokio::test]
    async fn rejects_replayed_jti() {
        let (enc, dec) = es256_pair();
        let c = client("private_key_jwt", None);
        let store = MemoryStore::new();
        let opts = AssertionOptions::default();
        let jwt = sign(
            &json!({"alg": "ES256"}),
            &good_claims(),
            &enc,
            Algorithm::ES256,
        );
        assert_eq!(
            verify(&store, &c, &dec, JWT_BEARER_ASSERTION, &jwt, &opts).await,
            Ok(())
        );
        assert_eq!(
            verify(&store, &c, &dec, JWT_BEARER_ASSERTION, &jwt, &opts).await,
            Err(Failure::ReplayedAssertion)
        );
    }

    #[tokio::test]
    async fn forged_assertion_does_not_burn_the_jti() {
        let (enc, dec) = es256_pair();
        let (other, _) = es256_pair();
        let c = client("private_key_jwt", None);
        let store = MemoryStore::new();
        let opts = AssertionOptions::default();
        let forged = sign(
            &json!({"alg": "ES256"}),
            &good_claims(),
            &other,
            Algorithm::ES256,
        );
        assert_eq!(
            verify(&store, &c, &dec, JWT_BEARER_ASSERTION, &forged, &opts).await,
            Err(Failure::BadSignature)
        );
        let bad_claims = sign(
            &json!({"alg": "ES256"}),
            &with(good_claims(), &json!({"aud": "x"})),
            &enc,
            Algorithm::ES256,
        );
        assert_eq!(
            verify(&store, &c, &dec, JWT_BEARER_ASSERTION, &bad_claims, &opts).await,
            Err(Failure::AssertionAudience)
        );
        let genuine = sign(
            &json!({"alg": "ES256"}),
            &good_claims(),
            &enc,
            Algorithm::ES256,
        );
        assert_eq!(
            verify(&store, &c, &dec, JWT_BEARER_ASSERTION, &genuine, &opts).await,
            Ok(())
        );
    }

    /// A replay store that is down.
    #[derive(Debug)]
    struct DownStore;

    #[async_trait::async_trait]
    impl ShortLivedStore for DownStore {
        async fn put_if_absent(
            &self,
            _: Owner<'_>,
            _: &str,
            _: &[u8],
            _: std::time::Duration,
        ) -> Result<bool, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn put(
            &self,
            _: Owner<'_>,
            _: &str,
            _: &[u8],
            _: std::time::Duration,
        ) -> Result<(), StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn take(&self, _: Owner<'_>, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn remove(&self, _: Owner<'_>, _: &str) -> Result<bool, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn incr(
            &self,
            _: Owner<'_>,
            _: &str,
            _: std::time::Duration,
        ) -> Result<u64, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn rate_limit(
            &self,
            _: &[crate::store::RateCheck<'_>],
            _: u32,
        ) -> Result<crate::store::RateDecision, StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Err(StoreError::Unavailable("down".into()))
        }
        fn backend(&self) -> &'static str {
            "down"
        }
    }

    #[tokio::test]
    async fn a_store_outage_refuses_the_assertion() {
        let spend = Spend {
            jti: "j".into(),
            ttl_secs: 60,
        };
        assert_eq!(
            spend_jti(&DownStore, test_owner(), "t/s/c1", &spend).await,
            Err(Failure::StoreUnavailable)
        );
        assert_eq!(
            spend_jti(&MemoryStore::new(), test_owner(), "t/s/c1", &spend).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn jti_ttl_covers_the_acceptance_window() {
        let opts = AssertionOptions::default();
        let expect = Expect {
            client_id: "c1",
            endpoint_url: ENDPOINT,
            issuer: ISSUER,
            options: &opts,
            now: NOW,
        };
        let claims = good_claims();
        let spend = check_claims(claims.as_object().unwrap(), &expect).unwrap();
        assert_eq!(
            spend,
            Spend {
                jti: "j-1".into(),
                ttl_secs: 60 + 30
            }
        );
    }

    #[tokio::test]
    async fn header_and_algorithm_rules() {
        let (enc, dec) = es256_pair();
        let (ed_enc, ed_dec) = ed25519_pair();
        let pkj = client("private_key_jwt", None);
        let opts = AssertionOptions::default();
        let store = MemoryStore::new();
        let claims = |jti: &str| with(good_claims(), &json!({"jti": jti}));
        let es = |jti: &str| {
            sign(
                &json!({"alg": "ES256"}),
                &claims(jti),
                &enc,
                Algorithm::ES256,
            )
        };

        // The alg name `Ed25519` is a synonym of `EdDSA`.
        let ed = sign(
            &json!({"alg": "Ed25519"}),
            &claims("ed"),
            &ed_enc,
            Algorithm::EdDSA,
        );
        assert_eq!(
            verify(&store, &pkj, &ed_dec, JWT_BEARER_ASSERTION, &ed, &opts).await,
            Ok(())
        );
        let ed = sign(
            &json!({"alg": "EdDSA"}),
            &claims("ed2"),
            &ed_enc,
            Algorithm::EdDSA,
        );
        assert_eq!(
            verify(&store, &pkj, &ed_dec, JWT_BEARER_ASSERTION, &ed, &opts).await,
            Ok(())
        );

        // `alg: none`, with or without a signature part.
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(claims("n").to_string())
        );
        assert_eq!(
            verify(
                &store,
                &pkj,
                &dec,
                JWT_BEARER_ASSERTION,
                &format!("{input}."),
                &opts
            )
            .await,
            Err(Failure::AssertionAlgorithm)
        );
        assert_eq!(
            verify(
                &store,
                &pkj,
                &dec,
                JWT_BEARER_ASSERTION,
                &format!("{input}.AAAA"),
                &opts
            )
            .await,
            Err(Failure::AssertionAlgorithm)
        );

        // HMAC keyed with the public key bytes, against a private_key_jwt client.
        let confused = sign(
            &json!({"alg": "HS256"}),
            &claims("c"),
            &EncodingKey::from_secret(dec.as_bytes()),
            Algorithm::HS256,
        );
        assert_eq!(
            verify(&store, &pkj, &dec, JWT_BEARER_ASSERTION, &confused, &opts).await,
            Err(Failure::AssertionAlgorithm)
        );
        // And an ES256 assertion for a client_secret_jwt client.
        let csj = client("client_secret_jwt", None);
        assert_eq!(
            verify(&store, &csj, &dec, JWT_BEARER_ASSERTION, &es("x"), &opts).await,
            Err(Failure::AssertionAlgorithm)
        );

        // The registered alg is enforced.
        let es_only = client("private_key_jwt", Some("ES256"));
        let ed = sign(
            &json!({"alg": "EdDSA"}),
            &claims("ed3"),
            &ed_enc,
            Algorithm::EdDSA,
        );
        assert_eq!(
            verify(&store, &es_only, &ed_dec, JWT_BEARER_ASSERTION, &ed, &opts).await,
            Err(Failure::AssertionAlgorithm)
        );
        assert_eq!(
            verify(
                &store,
                &es_only,
                &dec,
                JWT_BEARER_ASSERTION,
                &es("reg"),
                &opts
            )
            .await,
            Ok(())
        );

        // Wrong assertion type, shape and size.
        assert_eq!(
            verify(&store, &pkj, &dec, "urn:other", &es("t"), &opts).await,
            Err(Failure::AssertionType)
        );
        assert_eq!(
            verify(&store, &pkj, &dec, JWT_BEARER_ASSERTION, "a.b", &opts).await,
            Err(Failure::MalformedAssertion)
        );
        assert_eq!(
            verify(&store, &pkj, &dec, JWT_BEARER_ASSERTION, "a.b.c.d", &opts).await,
            Err(Failure::MalformedAssertion)
        );
        assert_eq!(
            verify(&store, &pkj, &dec, JWT_BEARER_ASSERTION, "!!.b.c", &opts).await,
            Err(Failure::MalformedAssertion)
        );
        let big = sign(
            &json!({"alg": "ES256"}),
            &with(
                claims("big"),
                &json!({"pad": "x".repeat(MAX_ASSERTION_LEN)}),
            ),
            &enc,
            Algorithm::ES256,
        );
        assert_eq!(
            verify(&store, &pkj, &dec, JWT_BEARER_ASSERTION, &big, &opts).await,
            Err(Failure::MalformedAssertion)
        );
        let crit = sign(
            &json!({"alg": "ES256", "crit": ["exp"]}),
            &claims("crit"),
            &enc,
            Algorithm::ES256,
        );
        assert_eq!(
            verify(&store, &pkj, &dec, JWT_BEARER_ASSERTION, &crit, &opts).await,
            Err(Failure::MalformedAssertion)
        );

        // A signature by another key, and a tampered payload.
        let (other, _) = es256_pair();
        let forged = sign(
            &json!({"alg": "ES256"}),
            &claims("f"),
            &other,
            Algorithm::ES256,
        );
        assert_eq!(
            verify(&store, &pkj, &dec, JWT_BEARER_ASSERTION, &forged, &opts).await,
            Err(Failure::BadSignature)
        );
        let genuine = es("tamper");
        let mut parts: Vec<&str> = genuine.split('.').collect();
        let tampered_claims = URL_SAFE_NO_PAD.encode(
            with(
                claims("tamper"),
                &json!({"sub": "c1", "iss": "c1", "exp": NOW + 200}),
            )
            .to_string(),
        );
        parts[1] = &tampered_claims;
        assert_eq!(
            verify(
                &store,
                &pkj,
                &dec,
                JWT_BEARER_ASSERTION,
                &parts.join("."),
                &opts
            )
            .await,
            Err(Failure::BadSignature)
        );
    }

    #[tokio::test]
    async fn rsa_assertions_verify_through_the_registered_jwk() {
        use crate::client_keys::ClientKey;
        use aws_lc_rs::signature::{
            RsaKeyPair, RsaPublicKeyComponents, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
        };
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let jwk = json!({"kty": "RSA", "kid": "r", "n": URL_SAFE_NO_PAD.encode(&public.n), "e": URL_SAFE_NO_PAD.encode(&public.e)});
        let key = ClientKey::from_jwk(&jwk).unwrap();
        let c = client("private_key_jwt", None);
        let store = MemoryStore::new();
        let opts = AssertionOptions::default();
        for (name, padding) in [("RS256", &RSA_PKCS1_SHA256), ("PS256", &RSA_PSS_SHA256)] {
            let claims = with(good_claims(), &json!({"jti": name}));
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(json!({"alg": name, "kid": "r"}).to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let mut sig = vec![0; pair.public_modulus_len()];
            pair.sign(padding, &SystemRandom::new(), input.as_bytes(), &mut sig)
                .unwrap();
            let jwt = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
            assert_eq!(
                verify(&store, &c, &key.key, JWT_BEARER_ASSERTION, &jwt, &opts).await,
                Ok(()),
                "{name}"
            );
            // The same signature under the other RSA algorithm's name does not verify.
            let other = if name == "RS256" { "PS256" } else { "RS256" };
            let relabelled = format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(json!({"alg": other, "kid": "r"}).to_string()),
                URL_SAFE_NO_PAD.encode(
                    with(claims, &json!({"jti": format!("{name}-relabelled")})).to_string()
                ),
                URL_SAFE_NO_PAD.encode(&sig)
            );
            assert_eq!(
                verify(
                    &store,
                    &c,
                    &key.key,
                    JWT_BEARER_ASSERTION,
                    &relabelled,
                    &opts
                )
                .await,
                Err(Failure::BadSignature)
            );
        }
    }

    #[tokio::test]
    async fn hmac_assertions_verify_with_the_secret() {
        let c = client("client_secret_jwt", None);
        let opts = AssertionOptions::default();
        let store = MemoryStore::new();
        let secret = b"a-client-secret-of-sufficient-length-0123";
        for (i, alg) in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]
            .into_iter()
            .enumerate()
        {
            let name = format!("{alg:?}");
            let jwt = sign(
                &json!({"alg": name}),
                &with(good_claims(), &json!({"jti": format!("h{i}")})),
                &EncodingKey::from_secret(secret),
                alg,
            );
            assert_eq!(
                verify(
                    &store,
                    &c,
                    &DecodingKey::from_secret(secret),
                    JWT_BEARER_ASSERTION,
                    &jwt,
                    &opts
                )
                .await,
                Ok(()),
                "{name}"
            );
        }
        let jwt = sign(
            &json!({"alg": "HS256"}),
            &with(good_claims(), &json!({"jti": "wrong"})),
            &EncodingKey::from_secret(b"another secret"),
            Algorithm::HS256,
        );
        assert_eq!(
            verify(
                &store,
                &c,
                &DecodingKey::from_secret(secret),
                JWT_BEARER_ASSERTION,
                &jwt,
                &opts
            )
            .await,
            Err(Failure::BadSignature)
        );
    }
}
