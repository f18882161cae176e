//! The device code grant at the token endpoint (RFC 8628 §3.4–3.5): the device polls with its
//! `device_code` and hears `authorization_pending` until the user decides on `/device`,
//! `slow_down` when it polls faster than its interval (which then grows by 5 s, for this and
//! every later poll), `access_denied`, `expired_token`, or the tokens — refresh and ID
//! tokens as for the authorization code grant. The decision is taken once.

use super::device::{decision_key, device_key, Decision, DeviceGrant};
use super::{required, user_tokens, Grants, UserGrant};
use crate::client_auth::Authenticated;
use crate::oauth::{ErrorCode, OAuthError, TokenParams};
use crate::registry::ServerRuntime;
use crate::secrets::{sha256_b64, ClientSecret};
use crate::store::{store_failure, to_json, Owner};
use crate::tokens::{Target, TokenResponse};

/// How much a `slow_down` adds to the interval (RFC 8628 §3.5).
const SLOW_DOWN_STEP: u64 = 5;

/// A parsed device token request.
#[derive(Debug)]
pub struct DeviceCode {
    /// The device code (kept out of `Debug`).
    device_code: ClientSecret,
    /// The requested audiences.
    target: Target,
}

fn invalid() -> OAuthError {
    OAuthError::invalid_grant("the device code is invalid")
}

impl DeviceCode {
    /// Parses the request.
    ///
    /// # Errors
    /// `invalid_request` without `device_code`.
    pub fn parse(params: &TokenParams) -> Result<Self, OAuthError> {
        Ok(Self {
            device_code: required(params.device_code.as_ref(), "device_code")?.clone(),
            target: Target::of(params),
        })
    }

    /// One poll.
    ///
    /// # Errors
    /// The RFC 8628 §3.5 answers; `invalid_grant` for an unknown code or another client's;
    /// `503`.
    pub async fn issue(
        self,
        ctx: &Grants<'_>,
        server: &ServerRuntime,
        auth: &Authenticated,
    ) -> Result<TokenResponse, OAuthError> {
        let c = &auth.client.client;
        let (t, s) = (&server.server.tenant_id, &server.server.id);
        let owner = Owner::new(t, s);
        let code = self.device_code.expose();
        if code.len() > 128 {
            return Err(invalid());
        }
        let hash = sha256_b64(code);
        let key = device_key(t, s, &hash);
        let fail = |e: crate::store::StoreError| store_failure(&e);
        let Some(mut grant) = ctx
            .short_lived
            .get(&key)
            .await
            .map_err(fail)?
            .and_then(|b| serde_json::from_slice::<DeviceGrant>(&b).ok())
        else {
            return Err(invalid());
        };
        if grant.client_id != c.client_id.as_str() {
            return Err(invalid());
        }
        let now = ctx.minter.clock.now();
        if grant.expires_at <= now {
            return Err(OAuthError::device(
                ErrorCode::ExpiredToken,
                "the device code has expired; start again",
            ));
        }
        let interval = i64::try_from(grant.interval).unwrap_or(i64::MAX);
        let too_soon = grant.last_poll.is_some_and(|last| now - last < interval);
        if too_soon {
            grant.interval += SLOW_DOWN_STEP;
        }
        grant.last_poll = Some(now);
        let left = std::time::Duration::from_secs(
            u64::try_from(grant.expires_at - now).unwrap_or(1).max(1) + 600,
        );
        ctx.short_lived
            .put(owner, &key, &to_json(&grant).map_err(fail)?, left)
            .await
            .map_err(fail)?;
        if too_soon {
            return Err(OAuthError::device(
                ErrorCode::SlowDown,
                format!("polling too fast; wait {} s between polls", grant.interval),
            ));
        }
        let decision = ctx
            .short_lived
            .take(owner, &decision_key(t, s, &hash))
            .await
            .map_err(fail)?
            .and_then(|b| serde_json::from_slice::<Decision>(&b).ok());
        let Some(decision) = decision else {
            return Err(OAuthError::device(
                ErrorCode::AuthorizationPending,
                "the user has not yet approved the device",
            ));
        };
        // Decided: the device code is spent whatever the decision.
        ctx.short_lived.remove(owner, &key).await.map_err(fail)?;
        let Decision::Approved {
            user_id,
            auth_time,
            amr,
        } = decision
        else {
            return Err(OAuthError::device(
                ErrorCode::AccessDenied,
                "the user denied the device",
            ));
        };
        user_tokens(
            ctx,
            server,
            auth,
            UserGrant {
                user_id: &user_id,
                auth_time,
                amr: &amr,
                scope: &grant.scope,
                nonce: None,
                // The device's decision does not carry the login session yet (issue 15).
                sid: None,
                access_jti: crate::revoked_subjects::new_jti(ctx.minter.clock),
                family_id: uuid::Uuid::new_v4().to_string(),
            },
            &self.target,
        )
        .await
    }
}
