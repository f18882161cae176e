//! `private_key_jwt`: an assertion signed with the client's private key, verified with its
//! registered `jwks` (parsed once per cached client) or `jwks_uri` (fetched through
//! [`crate::client_keys::ClientKeys`], refetched once per cooldown when an unknown `kid`
//! arrives, which is how key rotation reaches us) — RFC 7523 §2.2, §3.

use super::ClientAuth;
use std::sync::Arc;

use async_trait::async_trait;

use super::{assertion, Authenticator, Failure, Presented};
use crate::client_keys::{ClientKeySet, Selection};
use crate::model::server::AuthMethod;
use crate::registry::{ClientRuntime, ServerRuntime};

/// The authenticator.
#[derive(Debug)]
pub(super) struct PrivateKeyJwt;

fn verify_with(keys: &ClientKeySet, assertion: &assertion::Assertion<'_>) -> Result<(), Failure> {
    match keys.select(assertion.alg, assertion.kid.as_deref()) {
        Selection::Found(key) => assertion.verify_signature(&key.key),
        Selection::NoKey | Selection::Ambiguous => Err(Failure::UnknownKey),
        Selection::WrongType => Err(Failure::AssertionAlgorithm),
    }
}

/// Verifies a JWS with the client's registered keys: its inline `jwks` (parsed once per
/// cached client), or its `jwks_uri` (cached; refetched once per cooldown on an unknown key).
pub(super) async fn verify_with_registered_keys(
    ctx: &ClientAuth<'_>,
    client: &ClientRuntime,
    assertion: &assertion::Assertion<'_>,
) -> Result<(), Failure> {
    let metadata = &client.client.metadata;
    if let Some(jwks) = &metadata.jwks {
        let keys = client
            .assertion_keys
            .inline
            .get_or_init(|| Arc::new(ClientKeySet::from_document(jwks).unwrap_or_default()));
        verify_with(keys, assertion)
    } else if let Some(uri) = &metadata.jwks_uri {
        let keys = ctx
            .client_keys
            .get(uri)
            .await
            .map_err(|_| Failure::KeysUnavailable)?;
        match verify_with(&keys, assertion) {
            // Perhaps the client rotated its keys: look again, at most once per cooldown.
            Err(Failure::UnknownKey) => {
                let newer = ctx
                    .client_keys
                    .refetch(uri, &keys)
                    .await
                    .map_err(|_| Failure::KeysUnavailable)?;
                verify_with(newer.as_deref().unwrap_or(&keys), assertion)
            }
            other => other,
        }
    } else {
        tracing::error!(client_id = %client.client.client_id, "client has neither jwks nor jwks_uri");
        Err(Failure::KeysUnavailable)
    }
}

#[async_trait]
impl Authenticator for PrivateKeyJwt {
    fn method(&self) -> AuthMethod {
        AuthMethod::PrivateKeyJwt
    }

    async fn verify(
        &self,
        ctx: &ClientAuth<'_>,
        server: &ServerRuntime,
        client: &ClientRuntime,
        presented: &Presented<'_>,
    ) -> Result<(), Failure> {
        let assertion = assertion::parse(presented, &client.client)?;
        verify_with_registered_keys(ctx, client, &assertion).await?;
        assertion::accept(ctx, server, presented, &assertion).await
    }
}
