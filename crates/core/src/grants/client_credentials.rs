//! The client credentials grant (RFC 6749 §4.4): a confidential client obtains an access
//! token for itself. No refresh token is issued (§4.4.3).

use super::{registered, requested_scope, Grants};
use crate::client_auth::Authenticated;
use crate::model::client::Client;
use crate::oauth::{AuthMethod, GrantType, OAuthError, TokenParams};
use crate::registry::ServerRuntime;
use crate::scope::Scopes;
use crate::tokens::{Subject, Target, TokenResponse};

/// A parsed client credentials request.
#[derive(Debug)]
pub struct ClientCredentials {
    /// The requested scope, if any (else the client's registered scope).
    scope: Option<Scopes>,
    /// The requested audiences.
    target: Target,
}

impl ClientCredentials {
    /// Whether `client` may use this grant.
    ///
    /// # Errors
    /// `unauthorized_client` for public clients and clients not registered for it.
    pub fn allowed(client: &Client) -> Result<(), OAuthError> {
        if client.auth_method() == AuthMethod::None {
            return Err(OAuthError::unauthorized_client(
                "public clients cannot use the client_credentials grant",
            ));
        }
        registered(client, GrantType::ClientCredentials)
    }

    /// Parses the request.
    ///
    /// # Errors
    /// `invalid_scope` for a malformed `scope`.
    pub fn parse(params: &TokenParams) -> Result<Self, OAuthError> {
        Ok(Self {
            scope: requested_scope(params)?,
            target: Target::of(params),
        })
    }

    /// Issues an access token to the client on `server`.
    ///
    /// # Errors
    /// `invalid_scope`, `invalid_target`, or `server_error` when signing fails.
    pub async fn issue(
        self,
        ctx: &Grants<'_>,
        server: &ServerRuntime,
        auth: &Authenticated,
    ) -> Result<TokenResponse, OAuthError> {
        let c = &auth.client.client;
        let allowed = c.scopes();
        let granted = match self.scope {
            Some(requested) => {
                if !requested.is_subset(&allowed) {
                    return Err(OAuthError::invalid_scope(
                        "requested scope exceeds the scope registered for the client",
                    ));
                }
                requested
            }
            None => allowed,
        };
        let scope = (!granted.is_empty()).then(|| granted.to_scope_string());
        let access = ctx
            .minter
            .access_token(
                server,
                auth,
                Subject::new(c.client_id.as_str(), None),
                scope.as_deref(),
                &self.target,
                &crate::revoked_subjects::new_jti(ctx.minter.clock),
            )
            .await?;
        Ok(TokenResponse {
            access_token: access.token,
            token_type: "Bearer",
            expires_in: server.server.access_token_ttl,
            scope,
            refresh_token: None,
            id_token: None,
            issued_token_type: None,
        })
    }
}
