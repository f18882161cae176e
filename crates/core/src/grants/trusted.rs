//! JWTs from a server's `trusted_issuers`, as the JWT bearer grant (RFC 7523 §2.1) and token
//! exchange (RFC 8693 subject and actor tokens) receive them: the issuer is found by `iss`
//! (read before anything is trusted, only to pick the keys), the signature is verified with
//! its keys (inline, or its `jwks_uri` through the shared cached fetcher, refetched on an
//! unknown `kid`), then `aud`, `exp`, `nbf`/`iat` and the allowed subjects are checked. The
//! token itself is never logged.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use super::Grants;
use crate::client_keys::{AssertionAlg, ClientKeySet, Selection};
use crate::model::trusted_issuer::TrustedIssuer;
use crate::oauth::{AuthMethod, OAuthError};
use crate::registry::ServerRuntime;

/// A verified JWT of a trusted issuer.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Its claims.
    pub claims: Map<String, Value>,
    /// The issuer that vouched for it.
    pub issuer: TrustedIssuer,
}

impl Verified {
    /// `sub` (checked present when verified).
    #[must_use]
    pub fn sub(&self) -> &str {
        self.claims.get("sub").and_then(Value::as_str).unwrap_or("")
    }
}

fn part(text: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// RFC 7519 NumericDate.
#[allow(clippy::cast_possible_truncation)]
fn date(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f.floor() as i64)
    })
}

/// What a trusted JWT must satisfy besides its signature.
#[derive(Debug, Clone, Copy)]
pub struct Expect<'a> {
    /// Accepted `aud` values (one must appear).
    pub audiences: &'a [&'a str],
    /// `exp` may lie at most this far ahead (seconds); `None`: no bound.
    pub max_lifetime: Option<i64>,
    /// What the error calls the token (`assertion`, `subject_token`, `actor_token`).
    pub name: &'a str,
}

/// Verifies `token` as a JWT of one of `server`'s trusted issuers.
///
/// # Errors
/// `invalid_grant` naming what failed (untrusted issuer, bad signature, audience, expiry,
/// subject), `503` when the store behind the cached keys is down is never the case here:
/// an unreachable `jwks_uri` is `invalid_grant` too (the token cannot be verified).
pub async fn verify(
    ctx: &Grants<'_>,
    server: &ServerRuntime,
    token: &str,
    expect: Expect<'_>,
) -> Result<Verified, OAuthError> {
    let name = expect.name;
    let malformed = || OAuthError::invalid_grant(format!("`{name}` is not a signed JWT"));
    if token.len() > crate::limits::ASSERTION_BYTES_CEILING {
        return Err(malformed());
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let header = part(h).ok_or_else(malformed)?;
    let claims = part(p).ok_or_else(malformed)?;
    if header.contains_key("crit") || sig.is_empty() {
        return Err(malformed());
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(AssertionAlg::parse)
        .filter(|a| a.method() == AuthMethod::PrivateKeyJwt)
        .ok_or_else(|| {
            OAuthError::invalid_grant(format!(
                "`{name}` must be signed with RS256, PS256, ES256 or EdDSA"
            ))
        })?;
    let kid = header.get("kid").and_then(Value::as_str);
    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    let Some(issuer) = server
        .server
        .trusted_issuers
        .iter()
        .find(|t| t.issuer == iss)
    else {
        return Err(OAuthError::invalid_grant(format!(
            "the issuer of `{name}` is not trusted by this server"
        )));
    };
    let keys = issuer_keys(ctx, server, issuer, alg, kid).await?;
    let key = match keys.select(alg, kid) {
        Selection::Found(k) => &k.key,
        _ => {
            return Err(OAuthError::invalid_grant(format!(
                "no key of the trusted issuer verifies `{name}`"
            )))
        }
    };
    let signing_input = &token[..h.len() + 1 + p.len()];
    if !jsonwebtoken::crypto::verify(sig, signing_input.as_bytes(), key, alg.algorithm())
        .unwrap_or(false)
    {
        return Err(OAuthError::invalid_grant(format!(
            "the signature of `{name}` does not verify"
        )));
    }
    check_claims(ctx, &claims, expect)?;
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or("");
    if sub.is_empty() {
        return Err(OAuthError::invalid_grant(format!("`{name}` has no `sub`")));
    }
    if !issuer.allows_subject(sub) {
        return Err(OAuthError::invalid_grant(format!(
            "the trusted issuer may not vouch for the subject of `{name}`"
        )));
    }
    Ok(Verified {
        claims,
        issuer: issuer.clone(),
    })
}

/// The issuer's keys: inline (parsed when the server was loaded), or fetched (and refetched
/// once when `kid` is unknown).
async fn issuer_keys(
    ctx: &Grants<'_>,
    server: &ServerRuntime,
    issuer: &TrustedIssuer,
    alg: AssertionAlg,
    kid: Option<&str>,
) -> Result<std::sync::Arc<ClientKeySet>, OAuthError> {
    let unusable = |e: &dyn std::fmt::Display| {
        tracing::warn!(error = %e, "trusted issuer keys unusable");
        OAuthError::invalid_grant("the trusted issuer's keys cannot be read")
    };
    if issuer.jwks.is_some() {
        return server
            .trusted_issuer_keys
            .get(&issuer.issuer)
            .cloned()
            .ok_or_else(|| unusable(&"the inline JWK Set does not parse"));
    }
    let Some(uri) = issuer.jwks_uri.as_deref() else {
        return Err(unusable(&"no keys"));
    };
    let keys = ctx.client_keys.get(uri).await.map_err(|e| unusable(&e))?;
    if matches!(keys.select(alg, kid), Selection::NoKey) {
        if let Some(newer) = ctx
            .client_keys
            .refetch(uri, &keys)
            .await
            .map_err(|e| unusable(&e))?
        {
            return Ok(newer);
        }
    }
    Ok(keys)
}

fn check_claims(
    ctx: &Grants<'_>,
    claims: &Map<String, Value>,
    expect: Expect<'_>,
) -> Result<(), OAuthError> {
    let name = expect.name;
    let accepted = |a: &Value| a.as_str().is_some_and(|a| expect.audiences.contains(&a));
    let aud_ok = match claims.get("aud") {
        Some(Value::Array(list)) => list.iter().any(accepted),
        Some(a) => accepted(a),
        None => false,
    };
    if !aud_ok {
        return Err(OAuthError::invalid_grant(format!(
            "`{name}` is not addressed to this server (`aud`)"
        )));
    }
    let now = ctx.minter.clock.now();
    let skew = i64::try_from(ctx.assertions.clock_skew.as_secs()).unwrap_or(30);
    let exp = claims
        .get("exp")
        .and_then(date)
        .ok_or_else(|| OAuthError::invalid_grant(format!("`{name}` has no `exp`")))?;
    if exp <= now - skew {
        return Err(OAuthError::invalid_grant(format!("`{name}` has expired")));
    }
    if let Some(max) = expect.max_lifetime {
        if exp > now + max + skew {
            return Err(OAuthError::invalid_grant(format!(
                "`{name}` expires too far ahead (at most {max} s)"
            )));
        }
    }
    for claim in ["nbf", "iat"] {
        if let Some(v) = claims.get(claim) {
            if date(v).is_none_or(|t| t > now + skew) {
                return Err(OAuthError::invalid_grant(format!(
                    "`{name}` is not valid yet (`{claim}`)"
                )));
            }
        }
    }
    Ok(())
}
