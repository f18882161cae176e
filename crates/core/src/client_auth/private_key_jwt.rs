//! `private_key_jwt`: an assertion signed with the client's private key, verified with its registered jwks or jwks_uri (RFC 7523 §2.2, §3).

use async_trait::async_trait;

use super::{Authenticator, Failure, Presented};
use crate::app::Tollgate;
use crate::registry::{ClientRuntime, ServerRuntime};
use crate::server::AuthMethod;

/// The authenticator.
#[derive(Debug)]
pub(super) struct PrivateKeyJwt;

#[async_trait]
impl Authenticator for PrivateKeyJwt {
    fn method(&self) -> AuthMethod {
        AuthMethod::PrivateKeyJwt
    }

    async fn verify(&self, _: &Tollgate, _: &ServerRuntime, _: &ClientRuntime, _: &Presented<'_>) -> Result<(), Failure> {
        // Implementation in progress (issue 3); until then the method is refused.
        Err(Failure::Unsupported)
    }
}
