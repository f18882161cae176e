//! `none`: a public client (RFC 6749 §2.1). Nothing to verify here; what a public client may
//! do is restricted by the grants (authorization code with PKCE `S256` only).

use async_trait::async_trait;

use super::{Authenticator, ClientAuth, Failure, Presented};
use crate::model::server::AuthMethod;
use crate::registry::{ClientRuntime, ServerRuntime};

/// The authenticator.
#[derive(Debug)]
pub(super) struct PublicClient;

#[async_trait]
impl Authenticator for PublicClient {
    fn method(&self) -> AuthMethod {
        AuthMethod::None
    }

    async fn verify(
        &self,
        _: &ClientAuth<'_>,
        _: &ServerRuntime,
        _: &ClientRuntime,
        _: &Presented<'_>,
    ) -> Result<(), Failure> {
        Ok(())
    }
}
