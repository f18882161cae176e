//! The secret check shared by `client_secret_basic` and `client_secret_post`: argon2id on
//! first use, then a keyed in-memory digest, so steady-state requests cost one HMAC.

use std::sync::Arc;

use super::ClientAuth;
use crate::model::client::StoredSecret;
use crate::registry::ClientRuntime;
use crate::secrets::{ct_eq, ClientSecret};

use super::Failure;

/// Checks `presented` against the client's stored secret.
pub(super) async fn verify(
    ctx: &ClientAuth<'_>,
    client: &ClientRuntime,
    presented: Option<&ClientSecret>,
) -> Result<(), Failure> {
    let presented = presented.ok_or(Failure::WrongSecret)?;
    let c = &client.client;
    if c.secret_expires_at != 0 && c.secret_expires_at <= ctx.clock.now() {
        return Err(Failure::ExpiredSecret);
    }
    let digest = ctx.digester.digest(presented.expose());
    if let Some(known) = client.verified_digest.get() {
        // The stored hash belongs to exactly one secret; once we know its digest, any other
        // value is wrong without running argon2 again.
        return if ct_eq(known, &digest) {
            Ok(())
        } else {
            Err(Failure::WrongSecret)
        };
    }
    let StoredSecret::Hash(phc) = &c.secret else {
        return Err(Failure::WrongSecret);
    };
    let ok = {
        let _permit = ctx
            .hash_permits
            .acquire()
            .await
            .map_err(|_| Failure::WrongSecret)?;
        let (phc, secret) = (phc.clone(), presented.clone());
        let hasher = Arc::clone(ctx.hasher);
        tokio::task::spawn_blocking(move || hasher.verify(secret.expose(), &phc))
            .await
            .map_err(|_| Failure::WrongSecret)?
    };
    match ok {
        Ok(true) => {
            let _ = client.verified_digest.set(digest);
            Ok(())
        }
        Ok(false) => Err(Failure::WrongSecret),
        Err(e) => {
            tracing::error!(client_id = %c.client_id, error = %e, "stored client secret hash is unusable");
            Err(Failure::WrongSecret)
        }
    }
}
