//! Request objects (RFC 9101 §4, §6): the authorization request as a JWT the client signed,
//! verified with the keys that also verify its client assertions — its registered `jwks` or
//! `jwks_uri` (the same cache), or, for a `client_secret_jwt` client, its secret with HMAC.
//! `alg: none` and unknown algorithms are refused; `iss` must be the client, `aud` the
//! issuer, `exp` present and ahead; a `jti`, when present, is spent like an assertion's.
//! Every failure is `invalid_request_object` naming what was wrong, never the object itself.

use serde_json::{Map, Value};

use super::{assertion, client_secret_jwt, private_key_jwt, ClientAuth, Failure};
use crate::client_keys::AssertionAlg;
use crate::model::server::AuthMethod;
use crate::oauth::OAuthError;
use crate::registry::{ClientRuntime, ServerRuntime};
use crate::store::Owner;

fn refused(d: &'static str) -> OAuthError {
    OAuthError::invalid_request_object(d)
}

/// Verifies `jwt` as a request object of `client` for `server` and returns its claims: the
/// authorization request's parameters (RFC 9101 §4).
///
/// # Errors
/// `invalid_request_object` naming the problem; `503` when the replay store or the
/// client's `jwks_uri` cannot be reached.
pub async fn verify(
    ctx: &ClientAuth<'_>,
    server: &ServerRuntime,
    client: &ClientRuntime,
    jwt: &str,
) -> Result<Map<String, Value>, OAuthError> {
    let object = assertion::read_jws(jwt).map_err(|f| match f {
        Failure::AssertionAlgorithm => {
            refused("the request object's `alg` is not one we verify (`none` is never accepted)")
        }
        _ => refused("the request object is not a signed JWT (compact JWS)"),
    })?;
    let c = &client.client;
    if let Some(registered) = c.metadata.request_object_signing_alg.as_deref() {
        if AssertionAlg::parse(registered) != Some(object.alg) {
            return Err(refused(
                "the request object is not signed with the client's `request_object_signing_alg`",
            ));
        }
    }
    let verified = if object.alg.method() == AuthMethod::ClientSecretJwt {
        if c.auth_method() != AuthMethod::ClientSecretJwt {
            return Err(refused(
                "an HMAC-signed request object needs a client_secret_jwt client",
            ));
        }
        client_secret_jwt::hmac_key(ctx, client).and_then(|key| object.verify_signature(key))
    } else {
        private_key_jwt::verify_with_registered_keys(ctx, client, &object).await
    };
    match verified {
        Ok(()) => {}
        Err(Failure::KeysUnavailable)
            if c.metadata.jwks.is_none() && c.metadata.jwks_uri.is_none() =>
        {
            return Err(refused(
                "the client has registered no keys to verify a request object with",
            ))
        }
        Err(Failure::KeysUnavailable) => return Err(OAuthError::temporarily_unavailable()),
        Err(Failure::UnknownKey) => {
            return Err(refused(
                "no registered key of the client matches the request object's `kid` and `alg`",
            ))
        }
        Err(Failure::AssertionAlgorithm) => {
            return Err(refused(
                "the request object's `alg` does not fit the client's keys",
            ))
        }
        Err(_) => return Err(refused("the request object's signature does not verify")),
    }
    let claims = object
        .claims()
        .map_err(|_| refused("the request object's payload is not a JSON object"))?;
    let jti = check_claims(&claims, c.client_id.as_str(), &server.issuer, ctx)?;
    if let Some(spend) = jti {
        let (t, s) = (&server.server.tenant_id, &server.server.id);
        let scope = format!("{t}/{s}/{}/request", c.client_id);
        assertion::spend_jti(ctx.replay, Owner::new(t, s), &scope, &spend)
            .await
            .map_err(|f| match f {
                Failure::ReplayedAssertion => {
                    refused("the request object's `jti` was used before (replay)")
                }
                _ => OAuthError::temporarily_unavailable(),
            })?;
    }
    Ok(claims)
}

/// RFC 9101 §4, §6.2 (and RFC 7519 §4.1): the claims that make the object this client's,
/// for this server, now. Returns the `jti` to spend, when there is one.
fn check_claims(
    claims: &Map<String, Value>,
    client_id: &str,
    issuer: &str,
    ctx: &ClientAuth<'_>,
) -> Result<Option<assertion::Spend>, OAuthError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(client_id) {
        return Err(refused("the request object's `iss` must be the client_id"));
    }
    if claims.contains_key("client_id") && text("client_id") != Some(client_id) {
        return Err(refused(
            "the request object's `client_id` differs from the request's",
        ));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == issuer,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(issuer)),
        _ => false,
    };
    if !aud_ok {
        return Err(refused("the request object's `aud` must be the issuer"));
    }
    let now = ctx.clock.now();
    let skew = i64::try_from(ctx.assertions.clock_skew.as_secs()).unwrap_or(i64::MAX);
    let lifetime = i64::try_from(ctx.assertions.max_lifetime.as_secs()).unwrap_or(i64::MAX);
    let exp = claims
        .get("exp")
        .and_then(assertion::numeric_date)
        .ok_or_else(|| refused("the request object has no `exp`"))?;
    if exp <= now.saturating_sub(skew) {
        return Err(refused("the request object has expired"));
    }
    if exp > now.saturating_add(lifetime).saturating_add(skew) {
        return Err(refused("the request object's `exp` is too far ahead"));
    }
    for name in ["nbf", "iat"] {
        if let Some(v) = claims.get(name) {
            match assertion::numeric_date(v) {
                Some(t) if t <= now.saturating_add(skew) => {}
                _ => {
                    return Err(refused(
                        "the request object is not valid yet (`nbf` or `iat` in the future)",
                    ))
                }
            }
        }
    }
    // RFC 9101 §4: a request object carries no request object.
    if claims.contains_key("request") || claims.contains_key("request_uri") {
        return Err(refused(
            "a request object must not contain `request` or `request_uri`",
        ));
    }
    match claims.get("jti") {
        None => Ok(None),
        Some(Value::String(j)) if !j.is_empty() && j.chars().count() <= 256 => {
            let ttl_secs = u64::try_from(exp.saturating_add(skew).saturating_sub(now))
                .unwrap_or(1)
                .max(1);
            Ok(Some(assertion::Spend {
                jti: j.clone(),
                ttl_secs,
            }))
        }
        Some(_) => Err(refused(
            "the request object's `jti` must be a string of 1 to 256 characters",
        )),
    }
}
