//! The JWT bearer grant (RFC 7523 §2.1): a confidential client trades a JWT from one of the
//! server's `trusted_issuers` (a Kubernetes service-account token, a CI system's OIDC token,
//! another IdP's) for an access token of this server about the assertion's `sub`. The
//! assertion is verified with the issuer's keys; `aud` must name this server (its issuer or
//! token endpoint, RFC 7523 §3); `exp` is required and bounded like a client assertion's;
//! its `jti` is required and spent once in the short-lived store (one round trip). The scope
//! is what the issuer may vouch for and the client is registered for.

use std::time::Duration;

use super::trusted::{self, Expect};
use super::{access_only, granted_scope, requested_scope, required, Grants};
use crate::client_auth::Authenticated;
use crate::oauth::{ClientEndpoint, OAuthError, TokenParams};
use crate::registry::ServerRuntime;
use crate::scope::Scopes;
use crate::secrets::{sha256_b64, ClientSecret};
use crate::store::{store_failure, Owner};
use crate::tokens::{Subject, Target, TokenResponse};

/// Longest `jti` accepted, in characters.
const MAX_JTI_CHARS: usize = 256;

/// A parsed JWT bearer request.
#[derive(Debug)]
pub struct JwtBearer {
    /// The assertion (kept out of `Debug`).
    assertion: ClientSecret,
    /// The requested scope.
    scope: Option<Scopes>,
    /// The requested audiences.
    target: Target,
}

impl JwtBearer {
    /// Parses the request.
    ///
    /// # Errors
    /// `invalid_request` without `assertion`; `invalid_scope` for a malformed `scope`.
    pub fn parse(params: &TokenParams) -> Result<Self, OAuthError> {
        Ok(Self {
            assertion: required(params.assertion.as_ref(), "assertion")?.clone(),
            scope: requested_scope(params)?,
            target: Target::of(params),
        })
    }

    /// Verifies the assertion, spends its `jti`, and issues an access token.
    ///
    /// # Errors
    /// `invalid_grant` for an assertion that does not verify, is expired, replayed, from an
    /// untrusted issuer or about a subject it may not vouch for; `invalid_scope`;
    /// `invalid_target`; `503`.
    pub async fn issue(
        self,
        ctx: &Grants<'_>,
        server: &ServerRuntime,
        auth: &Authenticated,
    ) -> Result<TokenResponse, OAuthError> {
        let token_endpoint = ClientEndpoint::Token.url(&server.issuer);
        let max_lifetime = i64::try_from(ctx.assertions.max_lifetime.as_secs()).ok();
        let verified = trusted::verify(
            ctx,
            server,
            self.assertion.expose(),
            Expect {
                audiences: &[&server.issuer, &token_endpoint],
                max_lifetime,
                name: "assertion",
            },
        )
        .await?;
        let held = verified
            .issuer
            .scopes()
            .intersection(&auth.client.client.scopes());
        let scope = granted_scope(self.scope, &held)?;
        spend_jti(ctx, server, &verified).await?;
        let access = ctx
            .minter
            .access_token(
                server,
                auth,
                Subject::new(verified.sub(), None),
                scope.as_deref(),
                &self.target,
                &crate::revoked_subjects::new_jti(ctx.minter.clock),
            )
            .await?;
        Ok(access_only(access, server, scope, None))
    }
}

/// Spends the assertion's `jti` for as long as the assertion could be accepted.
async fn spend_jti(
    ctx: &Grants<'_>,
    server: &ServerRuntime,
    verified: &trusted::Verified,
) -> Result<(), OAuthError> {
    let jti = match verified
        .claims
        .get("jti")
        .and_then(serde_json::Value::as_str)
    {
        Some(j) if !j.is_empty() && j.chars().count() <= MAX_JTI_CHARS => j,
        _ => {
            return Err(OAuthError::invalid_grant(
                "`assertion` needs a `jti` (of at most 256 characters)",
            ))
        }
    };
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let exp = verified
        .claims
        .get("exp")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    let skew = i64::try_from(ctx.assertions.clock_skew.as_secs()).unwrap_or(30);
    let ttl = u64::try_from(exp + skew - ctx.minter.clock.now())
        .unwrap_or(1)
        .max(1);
    let key = format!(
        "bearer-jti:{t}/{s}/{}/{}",
        sha256_b64(&verified.issuer.issuer),
        sha256_b64(jti)
    );
    let fresh = ctx
        .short_lived
        .put_if_absent(Owner::new(t, s), &key, b"1", Duration::from_secs(ttl))
        .await
        .map_err(|e| store_failure(&e))?;
    if fresh {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "`assertion` was already used (its `jti` is spent)",
        ))
    }
}
