//! `self_signed_tls_client_auth`: a self-signed client certificate matching one registered in the client's jwks (RFC 8705 §2.2).

use async_trait::async_trait;

use super::{Authenticator, Failure, Presented};
use crate::app::Tollgate;
use crate::registry::{ClientRuntime, ServerRuntime};
use crate::server::AuthMethod;

/// The authenticator.
#[derive(Debug)]
pub(super) struct SelfSignedTlsClientAuth;

#[async_trait]
impl Authenticator for SelfSignedTlsClientAuth {
    fn method(&self) -> AuthMethod {
        AuthMethod::SelfSignedTlsClientAuth
    }

    async fn verify(&self, _: &Tollgate, _: &ServerRuntime, _: &ClientRuntime, _: &Presented<'_>) -> Result<(), Failure> {
        // Implementation in progress (issue 3); until then the method is refused.
        Err(Failure::Unsupported)
    }
}
