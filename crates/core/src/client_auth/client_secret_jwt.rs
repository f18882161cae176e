//! `client_secret_jwt`: an assertion HMAC-signed with the client's secret (RFC 7523 §2.2, §3).
//! The secret is the HMAC key, so it is held sealed under the master key rather than hashed;
//! it is opened once per cached client and kept as a jsonwebtoken key, so steady-state
//! requests run no AES.

use super::ClientAuth;
use async_trait::async_trait;
use jsonwebtoken::DecodingKey;

use super::{assertion, Authenticator, Failure, Presented};
use crate::model::client::client_secret_context;
use crate::model::client::StoredSecret;
use crate::model::server::AuthMethod;
use crate::registry::{ClientRuntime, ServerRuntime};

/// The authenticator.
#[derive(Debug)]
pub(super) struct ClientSecretJwt;

/// The client's HMAC key, opened from its sealed secret on first use.
pub(super) fn hmac_key<'a>(
    ctx: &ClientAuth<'_>,
    client: &'a ClientRuntime,
) -> Result<&'a DecodingKey, Failure> {
    if let Some(key) = client.assertion_keys.hmac.get() {
        return Ok(key);
    }
    let c = &client.client;
    let StoredSecret::Sealed(sealed) = &c.secret else {
        tracing::error!(client_id = %c.client_id, "client_secret_jwt client has no sealed secret");
        return Err(Failure::KeysUnavailable);
    };
    let context = client_secret_context(&c.tenant_id, &c.server_id, &c.client_id);
    let secret = ctx.master.open(&context, sealed).map_err(|e| {
        tracing::error!(client_id = %c.client_id, error = %e, "cannot open the client's sealed secret");
        Failure::KeysUnavailable
    })?;
    Ok(client
        .assertion_keys
        .hmac
        .get_or_init(|| DecodingKey::from_secret(&secret)))
}

#[async_trait]
impl Authenticator for ClientSecretJwt {
    fn method(&self) -> AuthMethod {
        AuthMethod::ClientSecretJwt
    }

    async fn verify(
        &self,
        ctx: &ClientAuth<'_>,
        server: &ServerRuntime,
        client: &ClientRuntime,
        presented: &Presented<'_>,
    ) -> Result<(), Failure> {
        let assertion = assertion::parse(presented, &client.client)?;
        let c = &client.client;
        if c.secret_expires_at != 0 && c.secret_expires_at <= ctx.clock.now() {
            return Err(Failure::ExpiredSecret);
        }
        assertion.verify_signature(hmac_key(ctx, client)?)?;
        assertion::accept(ctx, server, presented, &assertion).await
    }
}
