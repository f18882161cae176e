//! `tls_client_auth`: a client certificate chaining to a configured CA whose subject DN or SAN matches the registration (RFC 8705 §2.1).

use async_trait::async_trait;

use super::{Authenticator, Failure, Presented};
use crate::app::Tollgate;
use crate::registry::{ClientRuntime, ServerRuntime};
use crate::server::AuthMethod;

/// The authenticator.
#[derive(Debug)]
pub(super) struct TlsClientAuth;

#[async_trait]
impl Authenticator for TlsClientAuth {
    fn method(&self) -> AuthMethod {
        AuthMethod::TlsClientAuth
    }

    async fn verify(&self, _: &Tollgate, _: &ServerRuntime, _: &ClientRuntime, _: &Presented<'_>) -> Result<(), Failure> {
        // Implementation in progress (issue 3); until then the method is refused.
        Err(Failure::Unsupported)
    }
}
