//! Token-endpoint grants. [`GrantRequest`] is the token request parsed once into the grant it
//! names; each grant lives in its own file, which owns both its parsing (`parse`) and its
//! issuing (`issue`). This module only dispatches. Adding a grant is a [`GrantType`]
//! variant, a file here and a test.
//!
//! Grants are written against [`Grants`], the few things they use (the two stores, a minter,
//! the metrics), not against the whole application state.

pub mod authorization_code;
pub mod client_credentials;
pub mod code;
pub mod refresh_token;

use crate::client_auth::Authenticated;
use crate::metrics::Metrics;
use crate::model::client::Client;
use crate::oauth::{GrantType, OAuthError, TokenParams};
use crate::registry::Registry;
use crate::registry::ServerRuntime;
use crate::revocation::Revocations;
use crate::scope::Scopes;
use crate::store::{Repository, ShortLivedStore};
use crate::tokens::{Minter, TokenResponse};

/// What the grants need from the application: the narrow seam they are written against.
#[derive(Debug, Clone, Copy)]
pub struct Grants<'a> {
    /// Users' refresh tokens.
    pub repo: &'a dyn Repository,
    /// Codes, and the revoked access tokens.
    pub short_lived: &'a dyn ShortLivedStore,
    /// Signs and dates the tokens.
    pub minter: Minter<'a>,
    /// Counts the tokens issued.
    pub metrics: &'a Metrics,
    /// The cached revoked subjects, which a code exchange checks.
    pub registry: &'a Registry,
}

impl<'a> Grants<'a> {
    /// Revocation through the same stores and clock.
    #[must_use]
    pub fn revocations(&self) -> Revocations<'a> {
        Revocations {
            repo: self.repo,
            short_lived: self.short_lived,
            clock: self.minter.clock,
        }
    }
}

/// A token request, parsed into the grant it names.
#[derive(Debug)]
pub enum GrantRequest {
    /// RFC 6749 §4.1.3.
    AuthorizationCode(authorization_code::AuthorizationCode),
    /// RFC 6749 §6.
    RefreshToken(refresh_token::RefreshToken),
    /// RFC 6749 §4.4.
    ClientCredentials(client_credentials::ClientCredentials),
}

impl GrantRequest {
    /// Parses the request of an authenticated `client`, in the order RFC 6749 §5.2 implies: the
    /// grant type (missing: `invalid_request`; unknown: `unsupported_grant_type`), then whether
    /// this client may use it (`unauthorized_client`), then the grant's own parameters.
    ///
    /// # Errors
    /// As above, and each grant's parameter errors.
    pub fn parse(params: &TokenParams, client: &Client) -> Result<Self, OAuthError> {
        let grant = match params.grant_type.as_deref() {
            None => {
                return Err(OAuthError::invalid_request(
                    "missing parameter `grant_type`",
                ))
            }
            Some(name) => GrantType::parse(name).ok_or_else(|| {
                OAuthError::unsupported_grant_type(
                    "this grant type is not supported by the token endpoint",
                )
            })?,
        };
        Ok(match grant {
            GrantType::AuthorizationCode => {
                authorization_code::AuthorizationCode::allowed(client)?;
                Self::AuthorizationCode(authorization_code::AuthorizationCode::parse(params)?)
            }
            GrantType::RefreshToken => {
                refresh_token::RefreshToken::allowed(client)?;
                Self::RefreshToken(refresh_token::RefreshToken::parse(params)?)
            }
            GrantType::ClientCredentials => {
                client_credentials::ClientCredentials::allowed(client)?;
                Self::ClientCredentials(client_credentials::ClientCredentials::parse(params)?)
            }
        })
    }

    /// The grant type.
    #[must_use]
    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::AuthorizationCode(_) => GrantType::AuthorizationCode,
            Self::RefreshToken(_) => GrantType::RefreshToken,
            Self::ClientCredentials(_) => GrantType::ClientCredentials,
        }
    }

    /// Issues the tokens of this grant to `client` on `server`.
    ///
    /// # Errors
    /// The grant's RFC 6749 §5.2 errors.
    pub async fn issue(
        self,
        ctx: &Grants<'_>,
        server: &ServerRuntime,
        client: &Authenticated,
    ) -> Result<TokenResponse, OAuthError> {
        let grant = self.grant_type();
        let issued = match self {
            Self::AuthorizationCode(g) => g.issue(ctx, server, client).await?,
            Self::RefreshToken(g) => g.issue(ctx, server, client).await?,
            Self::ClientCredentials(g) => g.issue(ctx, server, client).await?,
        };
        ctx.metrics.token_issued(grant, client.method);
        Ok(issued)
    }
}

/// Parses and issues: what the token endpoint does once the client is authenticated.
///
/// # Errors
/// The grant's RFC 6749 §5.2 errors.
pub async fn issue(
    ctx: &Grants<'_>,
    server: &ServerRuntime,
    client: &Authenticated,
    params: &TokenParams,
) -> Result<TokenResponse, OAuthError> {
    GrantRequest::parse(params, &client.client.client)?
        .issue(ctx, server, client)
        .await
}

/// `required(value, name)`: a parameter a grant cannot do without.
fn required<T>(value: Option<T>, name: &str) -> Result<T, OAuthError> {
    value.ok_or_else(|| OAuthError::invalid_request(format!("missing parameter `{name}`")))
}

/// `unauthorized_client` unless `client` registered `grant`.
fn registered(client: &Client, grant: GrantType) -> Result<(), OAuthError> {
    if client.has_grant(grant) {
        Ok(())
    } else {
        Err(OAuthError::unauthorized_client(format!(
            "the client is not registered for the {grant} grant"
        )))
    }
}

/// The `scope` a request asks for, if any (`invalid_scope` when malformed).
fn requested_scope(params: &TokenParams) -> Result<Option<Scopes>, OAuthError> {
    params
        .scope
        .as_deref()
        .map(Scopes::parse)
        .transpose()
        .map_err(|e| OAuthError::invalid_scope(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(grants: &[GrantType], method: &str) -> Client {
        let grant_types: Vec<&str> = grants.iter().map(|g| g.as_str()).collect();
        let mut metadata: crate::model::client::ClientMetadata =
            serde_json::from_value(serde_json::json!({
                "grant_types": grant_types,
                "token_endpoint_auth_method": method,
                "redirect_uris": ["https://app.example/cb"],
            }))
            .unwrap();
        metadata.scope = Some("read".into());
        Client {
            tenant_id: crate::ids::TenantId::parse("t").unwrap(),
            server_id: crate::ids::ServerId::parse("s").unwrap(),
            client_id: crate::ids::ClientId::parse("c").unwrap(),
            metadata,
            secret: crate::model::client::StoredSecret::None,
            secret_expires_at: 0,
            issued_at: 0,
            updated_at: 0,
        }
    }

    fn params(pairs: &[(&str, &str)]) -> TokenParams {
        TokenParams::from_pairs(pairs.iter().map(|(a, b)| ((*a).into(), (*b).into()))).unwrap()
    }

    #[test]
    fn parse_checks_grant_type_then_client_then_parameters() {
        let cc = client(&[GrantType::ClientCredentials], "client_secret_basic");
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "invalid_request"),
            (&[("grant_type", "password")], "unsupported_grant_type"),
            (&[("grant_type", "refresh_token")], "unauthorized_client"),
            (
                &[("grant_type", "authorization_code")],
                "unauthorized_client",
            ),
            (
                &[("grant_type", "client_credentials"), ("scope", "a\"b")],
                "invalid_scope",
            ),
        ];
        for (pairs, code) in cases {
            let e = GrantRequest::parse(&params(pairs), &cc).unwrap_err();
            assert_eq!(e.code.as_str(), *code, "{pairs:?}");
        }
        let ok = GrantRequest::parse(&params(&[("grant_type", "client_credentials")]), &cc);
        assert_eq!(ok.unwrap().grant_type(), GrantType::ClientCredentials);

        let code = client(
            &[GrantType::AuthorizationCode, GrantType::RefreshToken],
            "client_secret_basic",
        );
        let e = GrantRequest::parse(&params(&[("grant_type", "authorization_code")]), &code)
            .unwrap_err();
        assert_eq!(e.description, "missing parameter `code`");
        let e =
            GrantRequest::parse(&params(&[("grant_type", "refresh_token")]), &code).unwrap_err();
        assert_eq!(e.description, "missing parameter `refresh_token`");
        let e = GrantRequest::parse(&params(&[("grant_type", "client_credentials")]), &code)
            .unwrap_err();
        assert_eq!(e.code.as_str(), "unauthorized_client");
    }
}
