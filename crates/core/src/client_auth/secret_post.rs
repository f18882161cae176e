//! `client_secret_post`: `client_id` and `client_secret` in the request body (RFC 6749
//! §2.3.1).

use super::ClientAuth;
use async_trait::async_trait;

use super::{secret, Authenticator, Failure, Presented};
use crate::model::server::AuthMethod;
use crate::registry::{ClientRuntime, ServerRuntime};

/// The authenticator.
#[derive(Debug)]
pub(super) struct SecretPost;

#[async_trait]
impl Authenticator for SecretPost {
    fn method(&self) -> AuthMethod {
        AuthMethod::ClientSecretPost
    }

    async fn verify(
        &self,
        ctx: &ClientAuth<'_>,
        _: &ServerRuntime,
        client: &ClientRuntime,
        presented: &Presented<'_>,
    ) -> Result<(), Failure> {
        secret::verify(ctx, client, presented.secret).await
    }
}
