//! Minting: the access and ID tokens every grant issues. A [`Minter`] is the narrow seam a
//! grant signs through: the [`Signer`] (which keeps RSA signatures off the async workers) and
//! the clock that dates the tokens.

use super::{AccessTokenClaims, Audience, Confirmation, IdTokenClaims};
use crate::client_auth::Authenticated;
use crate::clock::Clock;
use crate::keys::{KeyError, Signer, TokenType};
use crate::model::client::Client;
use crate::oauth::{OAuthError, SigningAlg, TokenParams};
use crate::registry::ServerRuntime;

/// What minting needs: a signer and a clock.
#[derive(Debug, Clone, Copy)]
pub struct Minter<'a> {
    /// Signs, off the async workers when the algorithm is slow.
    pub signer: &'a Signer,
    /// Dates the tokens (`iat`, `nbf`, `exp`).
    pub clock: &'a dyn Clock,
}

/// Who an access token is about.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// `sub`: the user, or the client itself.
    pub sub: &'a str,
    /// When the user authenticated, for tokens issued to a user.
    pub auth_time: Option<i64>,
    /// RFC 8693 §4.1 `act`: who acts for the subject (token exchange's delegation).
    pub act: Option<&'a serde_json::Value>,
    /// The `jti`s of the tokens this one was exchanged from (RFC 8693), nearest first.
    pub exchanged_from: &'a [String],
}

impl<'a> Subject<'a> {
    /// A subject with nothing but its `sub` and `auth_time`.
    #[must_use]
    pub fn new(sub: &'a str, auth_time: Option<i64>) -> Self {
        Self {
            sub,
            auth_time,
            act: None,
            exchanged_from: &[],
        }
    }
}

/// A signed access token and its expiry.
#[derive(Debug)]
pub struct AccessToken {
    /// The JWT.
    pub token: String,
    /// Unix seconds.
    pub exp: i64,
}

/// The audiences a token request names: RFC 8707 `resource`s and the vendor `audience`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// RFC 8707 `resource`, possibly several.
    pub resource: Vec<String>,
    /// `audience` (space-delimited).
    pub audience: Option<String>,
}

impl Target {
    /// The target a token request names.
    #[must_use]
    pub fn of(params: &TokenParams) -> Self {
        Self {
            resource: params.resource.clone(),
            audience: params.audience.clone(),
        }
    }
}

impl Minter<'_> {
    /// Signs an RFC 9068 access token for `subject`, with the audience `target` names (or the
    /// server's default), bound to the client certificate when the server asks for it.
    ///
    /// # Errors
    /// `invalid_target`, or `server_error` when signing fails.
    pub async fn access_token(
        &self,
        server: &ServerRuntime,
        auth: &Authenticated,
        subject: Subject<'_>,
        scope: Option<&str>,
        target: &Target,
        jti: &str,
    ) -> Result<AccessToken, OAuthError> {
        let c = &auth.client.client;
        let aud = audience(server, &c.metadata.audience, target)?;
        let now = self.clock.now();
        let exp = now + server.server.access_token_ttl;
        let cnf = auth
            .certificate_thumbprint
            .as_deref()
            .filter(|_| server.server.tls_client_certificate_bound_access_tokens)
            .map(|x5t| Confirmation { x5t_s256: x5t });
        let claims = AccessTokenClaims {
            iss: &server.issuer,
            sub: subject.sub,
            aud: &aud,
            exp,
            iat: now,
            nbf: now,
            jti,
            client_id: c.client_id.as_str(),
            scope,
            cnf,
            auth_time: subject.auth_time,
            act: subject.act,
            exchanged_from: subject.exchanged_from,
        };
        let token = self
            .signer
            .sign(&server.signing_key, TokenType::AccessToken, &claims)
            .await
            .map_err(|e| signing_failed(&e))?;
        Ok(AccessToken { token, exp })
    }

    /// An OpenID Connect ID token for `client` about `sub`, signed with the algorithm the
    /// client registered (`id_token_signed_response_alg`), by default RS256 (OpenID Connect
    /// Dynamic Client Registration §2) — never with another one.
    ///
    /// # Errors
    /// `server_error` when signing fails, or when the server holds no key of that algorithm
    /// (registration refuses such an algorithm; logged if it happens anyway).
    #[allow(clippy::too_many_arguments)]
    pub async fn id_token(
        &self,
        server: &ServerRuntime,
        client: &Client,
        sub: &str,
        auth_time: i64,
        amr: &[String],
        nonce: Option<&str>,
        sid: Option<&str>,
        access_token: &str,
    ) -> Result<String, OAuthError> {
        let registered = client.metadata.id_token_signed_response_alg.as_deref();
        let Some(key) = server.id_token_key(registered) else {
            tracing::error!(
                tenant = %server.server.tenant_id,
                server = %server.server.id,
                client_id = %client.client_id,
                alg = registered.unwrap_or(SigningAlg::RS256.as_str()),
                "no current key for the client's ID token algorithm; no ID token issued"
            );
            return Err(OAuthError::server_error());
        };
        let now = self.clock.now();
        let claims = IdTokenClaims {
            iss: &server.issuer,
            sub,
            aud: client.client_id.as_str(),
            exp: now + server.server.access_token_ttl,
            iat: now,
            auth_time,
            nonce,
            sid,
            at_hash: super::at_hash(key.alg, access_token),
            amr,
            azp: client.client_id.as_str(),
        };
        self.signer
            .sign(key, TokenType::Jwt, &claims)
            .await
            .map_err(|e| signing_failed(&e))
    }
}

/// Signing failed: our fault, logged, never detailed to the client.
fn signing_failed(e: &KeyError) -> OAuthError {
    tracing::error!(error = %e, "signing failed");
    OAuthError::server_error()
}

/// `aud`: the requested `resource`s (RFC 8707) or `audience`, each of which must be one the
/// client registered; otherwise the server's default audience, or the issuer.
fn audience(
    server: &ServerRuntime,
    registered: &[String],
    target: &Target,
) -> Result<Audience, OAuthError> {
    let mut requested: Vec<String> = target.resource.clone();
    if let Some(a) = &target.audience {
        requested.extend(a.split(' ').filter(|s| !s.is_empty()).map(str::to_owned));
    }
    for r in &target.resource {
        let ok = url::Url::parse(r).is_ok_and(|u| u.fragment().is_none());
        if !ok {
            return Err(OAuthError::invalid_target(
                "`resource` must be an absolute URI without a fragment (RFC 8707 §2)",
            ));
        }
    }
    if requested.is_empty() {
        let default = server
            .server
            .default_audience
            .clone()
            .unwrap_or_else(|| server.issuer.clone());
        return Ok(Audience::One(default));
    }
    requested.dedup();
    if let Some(bad) = requested.iter().find(|r| !registered.contains(r)) {
        let shown: String = bad.chars().filter(|c| !c.is_control()).take(200).collect();
        return Err(OAuthError::invalid_target(format!(
            "the client may not request tokens for `{shown}`"
        )));
    }
    Ok(if requested.len() == 1 {
        Audience::One(requested.remove(0))
    } else {
        Audience::Many(requested)
    })
}
