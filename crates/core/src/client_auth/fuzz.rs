//! Entry points for the fuzz targets in `fuzz/` (compiled only with the `fuzzing` feature):
//! the client-assertion checker without the store, for an HMAC and a public-key client.
//! Every path a request can take through `assertion.rs` before the `jti` is spent is
//! reachable from here: reading the subject, the header, the signature, the claim rules.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use super::assertion::{self, Expect};
use super::{Failure, Presented, JWT_BEARER_ASSERTION};
use crate::client_auth::AssertionOptions;
use crate::ids::{ClientId, ServerId, TenantId};
use crate::model::client::{Client, ClientMetadata, StoredSecret};
use crate::secrets::ClientSecret;

const ISSUER: &str = "https://as.example/t/s";
const ENDPOINT: &str = "https://as.example/t/s/oauth2/token";
/// The HMAC key of the `client_secret_jwt` client.
pub const SECRET: &[u8] = b"fuzzing-client-secret-of-32-bytes!";
/// A fixed "now" for the claim rules.
pub const NOW: i64 = 1_700_000_000;
/// RFC 7515 Appendix A.3's P-256 public key, for the `private_key_jwt` client.
const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const EC_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

fn client(method: &str) -> Client {
    let metadata: ClientMetadata =
        serde_json::from_value(serde_json::json!({ "token_endpoint_auth_method": method }))
            .unwrap_or_default();
    Client {
        tenant_id: TenantId::parse("t").unwrap_or_else(|_| unreachable!()),
        server_id: ServerId::parse("s").unwrap_or_else(|_| unreachable!()),
        client_id: ClientId::parse("c1").unwrap_or_else(|_| unreachable!()),
        metadata,
        secret: StoredSecret::None,
        secret_expires_at: 0,
        issued_at: 0,
        updated_at: 0,
    }
}

/// Runs an assertion through the checker as the `client_secret_jwt` client (`hmac`) or the
/// `private_key_jwt` one: subject, header, signature, then — whether or not the signature
/// verified, so that the fuzzer reaches them — the claim rules.
///
/// # Errors
/// The first rule the assertion breaks.
pub fn check_assertion(text: &str, hmac: bool) -> Result<(), Failure> {
    let _ = assertion::subject(text);
    let (client, key) = if hmac {
        (
            client("client_secret_jwt"),
            DecodingKey::from_secret(SECRET),
        )
    } else {
        (
            client("private_key_jwt"),
            DecodingKey::from_ec_components(EC_X, EC_Y).map_err(|_| Failure::UnknownKey)?,
        )
    };
    let secret = ClientSecret::new(text.to_owned());
    let presented = Presented {
        method: client.auth_method(),
        client_id: &client.client_id,
        secret: None,
        assertion_type: Some(JWT_BEARER_ASSERTION),
        assertion: Some(&secret),
        certificate: None,
        endpoint_url: ENDPOINT,
    };
    let parsed = assertion::parse(&presented, &client)?;
    let signature = parsed.verify_signature(&key);
    let options = AssertionOptions::default();
    let expect = Expect {
        client_id: "c1",
        endpoint_url: ENDPOINT,
        issuer: ISSUER,
        options: &options,
        now: NOW,
    };
    assertion::check_claims(&parsed.claims()?, &expect)?;
    signature
}

/// A compact JWS over arbitrary header and claims bytes, validly HMAC-signed with [`SECRET`]
/// (HS256): lets a fuzzer reach the claim rules with assertions whose signature verifies.
#[must_use]
pub fn sign_hs256(header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let key = EncodingKey::from_secret(SECRET);
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap_or_default();
    format!("{input}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_hmac_assertion_passes_and_garbage_does_not() {
        let claims = serde_json::json!({"iss": "c1", "sub": "c1", "aud": ENDPOINT, "exp": NOW + 60, "jti": "j"});
        let jwt = sign_hs256(br#"{"alg":"HS256"}"#, claims.to_string().as_bytes());
        assert_eq!(check_assertion(&jwt, true), Ok(()));
        assert_eq!(
            check_assertion(&jwt, false),
            Err(Failure::AssertionAlgorithm)
        );
        assert!(check_assertion("a.b.c", true).is_err());
    }
}
