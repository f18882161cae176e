//! The refresh token grant (RFC 6749 §6, RFC 9700 §4.14): every use rotates the token in one
//! round trip to the database; presenting a token that was already rotated revokes its whole
//! family, with the access tokens issued from it.

use super::{registered, requested_scope, required, Grants};
use crate::client_auth::Authenticated;
use crate::model::client::Client;
use crate::oauth::{GrantType, OAuthError, TokenParams};
use crate::refresh::{self, Successor};
use crate::registry::ServerRuntime;
use crate::revoked_subjects::{self, Subject as Revoked};
use crate::scope::Scopes;
use crate::secrets::ClientSecret;
use crate::store::store_failure;
use crate::tokens::{Subject, Target, TokenResponse};

fn invalid() -> OAuthError {
    OAuthError::invalid_grant("the refresh token is invalid, expired or revoked")
}

/// A parsed refresh request.
#[derive(Debug)]
pub struct RefreshToken {
    /// The presented token (kept out of `Debug`).
    presented: ClientSecret,
    /// A narrower scope, when asked for (§6).
    scope: Option<Scopes>,
    /// The requested audiences.
    target: Target,
}

impl RefreshToken {
    /// Whether `client` may use this grant.
    ///
    /// # Errors
    /// `unauthorized_client` for a client not registered for it.
    pub fn allowed(client: &Client) -> Result<(), OAuthError> {
        registered(client, GrantType::RefreshToken)
    }

    /// Parses the request.
    ///
    /// # Errors
    /// `invalid_request` without `refresh_token`, `invalid_grant` for one that cannot be
    /// ours, `invalid_scope` for a malformed `scope`.
    pub fn parse(params: &TokenParams) -> Result<Self, OAuthError> {
        let presented = required(params.refresh_token.as_ref(), "refresh_token")?;
        if !refresh::looks_like_refresh_token(presented.expose()) {
            return Err(invalid());
        }
        let scope = requested_scope(params)?;
        Ok(Self {
            presented: presented.clone(),
            scope,
            target: Target::of(params),
        })
    }

    /// Exchanges the refresh token for a new access token and a new refresh token.
    ///
    /// # Errors
    /// `invalid_scope`, `invalid_grant`, `503`.
    pub async fn issue(
        self,
        ctx: &Grants<'_>,
        server: &ServerRuntime,
        auth: &Authenticated,
    ) -> Result<TokenResponse, OAuthError> {
        let c = &auth.client.client;
        let (t, s) = (&server.server.tenant_id, &server.server.id);
        let old_hash = refresh::digest(self.presented.expose());
        let requested = self.scope;
        // What the client is registered for now: a grant never outlives the registration it
        // stands for (RFC 6749 §3.3), whatever the user once granted.
        let held = c.scopes();
        if let Some(requested) = &requested {
            if !requested.is_subset(&held) {
                return Err(OAuthError::invalid_scope(
                    "requested scope is not registered for the client",
                ));
            }
            // Narrowing (§6) must be checked before rotating: one extra read, only for requests
            // that ask for it.
            let current = ctx
                .repo
                .get_refresh_token(&old_hash)
                .await
                .map_err(|e| store_failure(&e))?;
            if let Some(rec) = current.filter(|r| r.usable(ctx.minter.clock.now())) {
                let granted = Scopes::parse(&rec.scope).unwrap_or_default();
                if !requested.is_subset(&granted) {
                    return Err(OAuthError::invalid_scope(
                        "requested scope exceeds the scope originally granted",
                    ));
                }
            }
        }
        let now = ctx.minter.clock.now();
        let (next_token, next_hash) = refresh::generate();
        let jti = crate::revoked_subjects::new_jti(ctx.minter.clock);
        let successor = Successor {
            token_hash: next_hash,
            access_jti: jti.clone(),
            access_exp: now + server.server.access_token_ttl,
            expires_at: now + server.server.refresh_token_ttl,
        };
        let rotated = ctx
            .repo
            .rotate_refresh_token(t, s, &c.client_id, &old_hash, &successor, now)
            .await
            .map_err(|e| store_failure(&e))?;
        let Some(rotated) = rotated else {
            return Err(refused(ctx, server, auth, &old_hash).await);
        };
        // A rotation that raced with its user's or client's revocation may have escaped the
        // statement that revoked their refresh tokens; the watermark catches it here.
        let (revoked, _) = ctx
            .registry
            .revoked_subjects(ctx.repo, t, s)
            .await
            .map_err(|e| store_failure(&e))?;
        let issued = revoked_subjects::jti_millis(&rotated.issued_jti).unwrap_or(0);
        if !revoked.is_empty()
            && (revoked.revokes(&Revoked::User(rotated.user_id.clone()), issued)
                || revoked.revokes(&Revoked::Client(c.client_id.clone()), issued))
        {
            ctx.revocations()
                .revoke_family(t, s, &rotated.family_id)
                .await?;
            return Err(invalid());
        }
        // Without `scope` the request means what was granted (§6), less any scope the client
        // is no longer registered for: dropped, and the response's `scope` says so (§3.3).
        let granted = Scopes::parse(&rotated.scope)
            .unwrap_or_default()
            .intersection(&held);
        // Checked above; intersected again so that nothing outside the grant is ever issued.
        let scopes = requested.map_or_else(|| granted.clone(), |r| r.intersection(&granted));
        let scope = (!scopes.is_empty()).then(|| scopes.to_scope_string());
        let access = ctx
            .minter
            .access_token(
                server,
                auth,
                Subject::new(rotated.user_id.as_str(), Some(rotated.auth_time)),
                scope.as_deref(),
                &self.target,
                &jti,
            )
            .await?;
        let id_token = if scopes.contains("openid") {
            let amr: Vec<String> = rotated
                .amr
                .split(' ')
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect();
            Some(
                ctx.minter
                    .id_token(
                        server,
                        c,
                        rotated.user_id.as_str(),
                        rotated.auth_time,
                        &amr,
                        None,
                        None,
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
            refresh_token: Some(next_token),
            id_token,
            issued_token_type: None,
        })
    }
}

/// Why a rotation found nothing to rotate; a rotated token of this client is a replay and
/// revokes its family.
async fn refused(
    ctx: &Grants<'_>,
    server: &ServerRuntime,
    auth: &Authenticated,
    old_hash: &str,
) -> OAuthError {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let rec = match ctx.repo.get_refresh_token(old_hash).await {
        Ok(r) => r,
        Err(e) => return store_failure(&e),
    };
    let Some(rec) = rec.filter(|r| {
        &r.tenant_id == t && &r.server_id == s && r.client_id == auth.client.client.client_id
    }) else {
        return invalid();
    };
    if rec.rotated_at.is_some() && rec.revoked_at.is_none() {
        tracing::warn!(tenant = %t, server = %s, client_id = %rec.client_id, "rotated refresh token reused; revoking its family");
        if let Err(e) = ctx.revocations().revoke_family(t, s, &rec.family_id).await {
            return e;
        }
        return OAuthError::invalid_grant(
            "the refresh token was already used; every token of its grant is now revoked",
        );
    }
    invalid()
}
