//! `client_secret_basic`: id and secret in an HTTP Basic header (RFC 6749 §2.3.1).

use super::ClientAuth;
use async_trait::async_trait;

use super::{secret, Authenticator, Failure, Presented};
use crate::model::server::AuthMethod;
use crate::registry::{ClientRuntime, ServerRuntime};

/// The authenticator.
#[derive(Debug)]
pub(super) struct SecretBasic;

#[async_trait]
impl Authenticator for SecretBasic {
    fn method(&self) -> AuthMethod {
        AuthMethod::ClientSecretBasic
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
