//! The authorization code grant at the token endpoint (RFC 6749 §4.1.3, RFC 7636 §4.6,
//! OpenID Connect Core §3.1.3): one atomic take of the code from the short-lived store, the
//! checks that bind it to this client, redirect URI and PKCE verifier, then the tokens. A
//! second use of a code revokes what its first use issued (RFC 6749 §4.1.2).

use super::{new_refresh_family, registered, required, user_response, Grants, UserGrant};
use crate::client_auth::Authenticated;
use crate::grants::code::{self, CodeGrant};
use crate::ids::{ClientId, UserId};
use crate::model::client::Client;
use crate::oauth::pkce;
use crate::oauth::{GrantType, OAuthError, TokenParams};
use crate::registry::ServerRuntime;
use crate::revoked_subjects::{self, Subject as Revoked};
use crate::scope::Scopes;
use crate::secrets::ClientSecret;
use crate::store::store_failure;
use crate::tokens::{Subject, Target, TokenResponse};

/// A parsed code exchange.
#[derive(Debug)]
pub struct AuthorizationCode {
    /// The code (kept out of `Debug`).
    code: ClientSecret,
    /// Must repeat the authorization request's.
    redirect_uri: String,
    /// RFC 7636 `code_verifier` (kept out of `Debug`).
    code_verifier: Option<ClientSecret>,
    /// The requested audiences.
    target: Target,
}

impl AuthorizationCode {
    /// Whether `client` may use this grant.
    ///
    /// # Errors
    /// `unauthorized_client` for a client not registered for it.
    pub fn allowed(client: &Client) -> Result<(), OAuthError> {
        registered(client, GrantType::AuthorizationCode)
    }

    /// Parses the request.
    ///
    /// # Errors
    /// `invalid_request` without `code` or `redirect_uri`.
    pub fn parse(params: &TokenParams) -> Result<Self, OAuthError> {
        let code = required(params.code.as_ref(), "code")?.clone();
        let redirect_uri = required(params.redirect_uri.as_deref(), "redirect_uri")?.to_owned();
        Ok(Self {
            code,
            redirect_uri,
            code_verifier: params.code_verifier.clone(),
            target: Target::of(params),
        })
    }

    /// Exchanges the code for tokens.
    ///
    /// # Errors
    /// `invalid_grant` (unknown, expired, reused code; another client's; wrong redirect URI;
    /// PKCE failure), `503` when a store is down.
    pub async fn issue(
        self,
        ctx: &Grants<'_>,
        server: &ServerRuntime,
        auth: &Authenticated,
    ) -> Result<TokenResponse, OAuthError> {
        let c = &auth.client.client;
        let (t, s) = (&server.server.tenant_id, &server.server.id);
        let grant = match code::take(ctx.short_lived, ctx.minter.clock, t, s, self.code.expose())
            .await
            .map_err(|e| store_failure(&e))?
        {
            Ok(grant) => grant,
            Err(issued) => {
                if let Some(issued) = issued {
                    // A replay: whoever holds the code may hold the tokens too (RFC 6749 §4.1.2).
                    tracing::warn!(tenant = %t, server = %s, client_id = %c.client_id, "authorization code reused; revoking what it issued");
                    // Marked first, so that an exchange still storing the family sees it
                    // (`code::mark_replayed` says why the order makes the race harmless).
                    code::mark_replayed(ctx.short_lived, t, s, &issued.family_id)
                        .await
                        .map_err(|e| store_failure(&e))?;
                    let revocations = ctx.revocations();
                    revocations
                        .revoke_access_token(t, s, &issued.access_jti, issued.access_exp)
                        .await?;
                    revocations.revoke_family(t, s, &issued.family_id).await?;
                }
                return Err(OAuthError::invalid_grant(
                    "the authorization code is invalid, expired or already used",
                ));
            }
        };
        check(
            &grant,
            auth,
            &self.redirect_uri,
            self.code_verifier.as_ref().map(ClientSecret::expose),
        )?;
        revoked_since_issued(ctx, t, s, &grant).await?;
        let scopes = Scopes::parse(&grant.scope).unwrap_or_default();
        let scope = (!scopes.is_empty()).then(|| scopes.to_scope_string());
        let access = ctx
            .minter
            .access_token(
                server,
                auth,
                Subject::new(&grant.user_id, Some(grant.auth_time)),
                scope.as_deref(),
                &self.target,
                &grant.access_jti,
            )
            .await?;
        let user = UserGrant {
            user_id: &grant.user_id,
            auth_time: grant.auth_time,
            amr: &grant.amr,
            scope: &grant.scope,
            nonce: grant.nonce.as_deref(),
            sid: grant.sid.as_deref(),
            access_jti: grant.access_jti.clone(),
            family_id: grant.family_id.clone(),
        };
        let refresh_token = if c.has_grant(GrantType::RefreshToken) {
            let user_id = UserId::parse(&grant.user_id)
                .map_err(|_| OAuthError::invalid_grant("the authorization code is invalid"))?;
            let token = new_refresh_family(ctx, server, c, &user, user_id, access.exp).await?;
            // A replay that ran before the family was stored revoked nothing in the
            // database; its mark says so, and the family is revoked here instead.
            if code::was_replayed(ctx.short_lived, t, s, &grant.family_id)
                .await
                .map_err(|e| store_failure(&e))?
            {
                ctx.revocations()
                    .revoke_family(t, s, &grant.family_id)
                    .await?;
                return Err(OAuthError::invalid_grant(
                    "the authorization code was used twice; every token of its grant is revoked",
                ));
            }
            Some(token)
        } else {
            None
        };
        user_response(ctx, server, c, &user, &scopes, scope, access, refresh_token).await
    }
}

/// Refuses a code whose user or client was revoked after it was issued (deleted, or the
/// password changed): the code stands for that authentication, and its tokens would
/// otherwise outlive it. The code is dated by the `jti` chosen when it was issued.
async fn revoked_since_issued(
    ctx: &Grants<'_>,
    t: &crate::ids::TenantId,
    s: &crate::ids::ServerId,
    grant: &CodeGrant,
) -> Result<(), OAuthError> {
    let (revoked, _) = ctx
        .registry
        .revoked_subjects(ctx.repo, t, s)
        .await
        .map_err(|e| store_failure(&e))?;
    if revoked.is_empty() {
        return Ok(());
    }
    let issued = revoked_subjects::jti_millis(&grant.access_jti).unwrap_or(0);
    let client = ClientId::parse(&grant.client_id).ok().map(Revoked::Client);
    let user = UserId::parse(&grant.user_id).ok().map(Revoked::User);
    if [client, user]
        .iter()
        .flatten()
        .any(|subject| revoked.revokes(subject, issued))
    {
        return Err(OAuthError::invalid_grant(
            "the authorization code is invalid, expired or already used",
        ));
    }
    Ok(())
}

/// The checks that bind a taken code to this exchange.
fn check(
    grant: &CodeGrant,
    auth: &Authenticated,
    redirect_uri: &str,
    verifier: Option<&str>,
) -> Result<(), OAuthError> {
    if grant.client_id != auth.client.client.client_id.as_str() {
        return Err(OAuthError::invalid_grant(
            "the authorization code was issued to another client",
        ));
    }
    if grant.redirect_uri != redirect_uri {
        return Err(OAuthError::invalid_grant(
            "`redirect_uri` differs from the one in the authorization request",
        ));
    }
    match (&grant.code_challenge, grant.code_challenge_method, verifier) {
        (Some(challenge), Some(method), Some(verifier)) => {
            if !pkce::verify(method, challenge, verifier) {
                return Err(OAuthError::invalid_grant(
                    "`code_verifier` does not match the code challenge",
                ));
            }
        }
        (Some(_), _, None) => {
            return Err(OAuthError::invalid_grant(
                "missing `code_verifier`: the authorization request used PKCE",
            ))
        }
        // RFC 9700 §2.1.1: a verifier without a challenge is a PKCE downgrade attempt.
        (None, _, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "`code_verifier` sent, but the authorization request had no code challenge",
            ))
        }
        (Some(_), None, Some(_)) | (None, _, None) => {}
    }
    Ok(())
}
