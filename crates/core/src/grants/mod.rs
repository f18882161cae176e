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
pub mod device;
pub mod device_code;
pub mod jwt_bearer;
pub mod refresh_token;
pub mod token_exchange;
pub mod trusted;

use crate::client_auth::{AssertionOptions, Authenticated};
use crate::client_keys::ClientKeys;
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
    /// The trusted issuers' `jwks_uri` documents, cached (JWT bearer, token exchange).
    pub client_keys: &'a ClientKeys,
    /// Clock skew and lifetime bounds of assertions, shared with client assertions.
    pub assertions: &'a AssertionOptions,
    /// The device flow's lifetimes and polling interval.
    pub device: &'a device::DeviceOptions,
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
    /// RFC 8628 §3.4.
    DeviceCode(device_code::DeviceCode),
    /// RFC 8693.
    TokenExchange(token_exchange::TokenExchange),
    /// RFC 7523 §2.1.
    JwtBearer(jwt_bearer::JwtBearer),
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
            GrantType::DeviceCode => {
                registered(client, GrantType::DeviceCode)?;
                Self::DeviceCode(device_code::DeviceCode::parse(params)?)
            }
            GrantType::TokenExchange => {
                confidential(client, GrantType::TokenExchange)?;
                Self::TokenExchange(token_exchange::TokenExchange::parse(params)?)
            }
            GrantType::JwtBearer => {
                confidential(client, GrantType::JwtBearer)?;
                Self::JwtBearer(jwt_bearer::JwtBearer::parse(params)?)
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
            Self::DeviceCode(_) => GrantType::DeviceCode,
            Self::TokenExchange(_) => GrantType::TokenExchange,
            Self::JwtBearer(_) => GrantType::JwtBearer,
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
            Self::DeviceCode(g) => g.issue(ctx, server, client).await?,
            Self::TokenExchange(g) => g.issue(ctx, server, client).await?,
            Self::JwtBearer(g) => g.issue(ctx, server, client).await?,
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

/// `unauthorized_client` for a public client (RFC 6749 §2.1: the grants that trade a token
/// or an assertion are for confidential clients), or one not registered for `grant`.
fn confidential(client: &Client, grant: GrantType) -> Result<(), OAuthError> {
    if client.auth_method() == crate::oauth::AuthMethod::None {
        return Err(OAuthError::unauthorized_client(format!(
            "public clients cannot use the {grant} grant"
        )));
    }
    registered(client, grant)
}

/// The scope to grant: the requested one, which must lie within `held` (`invalid_scope`
/// otherwise), or all of `held`; `None` when empty.
fn granted_scope(requested: Option<Scopes>, held: &Scopes) -> Result<Option<String>, OAuthError> {
    let granted = match requested {
        Some(r) if !r.is_subset(held) => {
            return Err(OAuthError::invalid_scope(
                "requested scope exceeds what may be granted",
            ))
        }
        Some(r) => r,
        None => held.clone(),
    };
    Ok((!granted.is_empty()).then(|| granted.to_scope_string()))
}

/// The answer of a grant that issues an access token alone.
fn access_only(
    access: crate::tokens::AccessToken,
    server: &ServerRuntime,
    scope: Option<String>,
    issued_token_type: Option<&'static str>,
) -> TokenResponse {
    TokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: server.server.access_token_ttl,
        scope,
        refresh_token: None,
        id_token: None,
        issued_token_type,
    }
}

/// What a grant that involves a user's login issues tokens for (the device grant; the
/// authorization code grant keeps its own replay rules around the same steps).
#[derive(Debug)]
struct UserGrant<'a> {
    user_id: &'a str,
    auth_time: i64,
    amr: &'a [String],
    scope: &'a str,
    nonce: Option<&'a str>,
    /// The login session the grant came from (OIDC `sid`), when it is known.
    sid: Option<&'a str>,
    access_jti: String,
    family_id: String,
}

/// The tokens of a user's grant: the access token; a refresh token when the client is
/// registered for the refresh grant (a new family in the database); an ID token with `openid`.
async fn user_tokens(
    ctx: &Grants<'_>,
    server: &ServerRuntime,
    auth: &Authenticated,
    grant: UserGrant<'_>,
    target: &crate::tokens::Target,
) -> Result<TokenResponse, OAuthError> {
    let c = &auth.client.client;
    let scopes = Scopes::parse(grant.scope).unwrap_or_default();
    let scope = (!scopes.is_empty()).then(|| scopes.to_scope_string());
    let access = ctx
        .minter
        .access_token(
            server,
            auth,
            crate::tokens::Subject::new(grant.user_id, Some(grant.auth_time)),
            scope.as_deref(),
            target,
            &grant.access_jti,
        )
        .await?;
    let refresh_token = if c.has_grant(GrantType::RefreshToken) {
        let user_id = crate::ids::UserId::parse(grant.user_id)
            .map_err(|_| OAuthError::invalid_grant("the grant names no valid user"))?;
        Some(new_refresh_family(ctx, server, c, &grant, user_id, access.exp).await?)
    } else {
        None
    };
    user_response(
        ctx,
        server,
        c,
        &grant,
        &scopes,
        scope,
        access,
        refresh_token,
    )
    .await
}

/// Stores the first refresh token of a user's grant (a new family) and returns its value.
async fn new_refresh_family(
    ctx: &Grants<'_>,
    server: &ServerRuntime,
    c: &crate::model::client::Client,
    grant: &UserGrant<'_>,
    user_id: crate::ids::UserId,
    access_exp: i64,
) -> Result<String, OAuthError> {
    let (token, token_hash) = crate::refresh::generate();
    let now = ctx.minter.clock.now();
    ctx.repo
        .insert_refresh_token(&crate::refresh::RefreshRecord {
            token_hash,
            tenant_id: server.server.tenant_id.clone(),
            server_id: server.server.id.clone(),
            client_id: c.client_id.clone(),
            user_id,
            family_id: grant.family_id.clone(),
            scope: grant.scope.to_owned(),
            auth_time: grant.auth_time,
            amr: grant.amr.join(" "),
            access_jti: grant.access_jti.clone(),
            access_exp,
            created_at: now,
            expires_at: now + server.server.refresh_token_ttl,
            rotated_at: None,
            revoked_at: None,
        })
        .await
        .map_err(|e| crate::store::store_failure(&e))?;
    Ok(token)
}

/// The token response of a user's grant: its access and refresh tokens, and an ID token when
/// `openid` was granted.
#[allow(clippy::too_many_arguments)]
async fn user_response(
    ctx: &Grants<'_>,
    server: &ServerRuntime,
    c: &crate::model::client::Client,
    grant: &UserGrant<'_>,
    scopes: &Scopes,
    scope: Option<String>,
    access: crate::tokens::AccessToken,
    refresh_token: Option<String>,
) -> Result<TokenResponse, OAuthError> {
    let id_token = if scopes.contains("openid") {
        Some(
            ctx.minter
                .id_token(
                    server,
                    c,
                    grant.user_id,
                    grant.auth_time,
                    grant.amr,
                    grant.nonce,
                    grant.sid,
                    &access.token,
                )
                .await?,
        )
    } else {
        None
    };
    Ok(TokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: server.server.access_token_ttl,
        scope,
        refresh_token,
        id_token,
        issued_token_type: None,
    })
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
