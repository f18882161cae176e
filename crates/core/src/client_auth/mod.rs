//! Client authentication (RFC 6749 §2.3): works out which method a request uses, finds the
//! client, insists the method is the one it registered, and hands over to that method's
//! [`Authenticator`]. One file per method. The same entry point serves every endpoint where
//! a client authenticates.

mod secret;
mod secret_basic;
mod secret_post;

use std::sync::Arc;

use async_trait::async_trait;

use crate::app::Tollgate;
use crate::grants::TokenParams;
use crate::ids::ClientId;
use crate::oauth::OAuthError;
use crate::registry::{ClientRuntime, ServerRuntime};
use crate::secrets::ClientSecret;
use crate::server::AuthMethod;

/// Credentials from an `Authorization: Basic` header, already form-decoded (§2.3.1).
#[derive(Debug, Clone)]
pub struct BasicCredentials {
    /// The decoded client id.
    pub client_id: String,
    /// The decoded secret.
    pub secret: ClientSecret,
}

/// What the request presented, after the method has been determined.
#[derive(Debug)]
pub struct Presented<'a> {
    /// The method the request's shape implies.
    pub method: AuthMethod,
    /// The client it names.
    pub client_id: &'a ClientId,
    /// The secret, for the secret methods.
    pub secret: Option<&'a ClientSecret>,
}

/// Why authentication failed; logged, never shown beyond `invalid_client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No such client on this server.
    UnknownClient,
    /// The request used a method other than the registered one.
    WrongMethod,
    /// The secret does not match.
    WrongSecret,
    /// The secret has expired.
    ExpiredSecret,
    /// The method is registered but this gateway cannot serve it.
    Unsupported,
}

impl Failure {
    /// Short reason for logs and metrics.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::UnknownClient => "unknown_client",
            Self::WrongMethod => "wrong_method",
            Self::WrongSecret => "wrong_secret",
            Self::ExpiredSecret => "expired_secret",
            Self::Unsupported => "unsupported_method",
        }
    }
}

/// One client-authentication method.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The registered method this authenticator checks.
    fn method(&self) -> AuthMethod;
    /// Checks the presented credentials against the client.
    async fn verify(&self, app: &Tollgate, client: &ClientRuntime, presented: &Presented<'_>) -> Result<(), Failure>;
}

fn authenticator(method: AuthMethod) -> Option<&'static dyn Authenticator> {
    match method {
        AuthMethod::ClientSecretBasic => Some(&secret_basic::SecretBasic),
        AuthMethod::ClientSecretPost => Some(&secret_post::SecretPost),
        _ => None,
    }
}

/// Identifies and authenticates the client of a request to `server`.
///
/// # Errors
/// `400 invalid_request` when several methods are used at once or the ids disagree;
/// `401 invalid_client` (with a Basic challenge when Basic was tried) otherwise.
pub async fn authenticate(
    app: &Tollgate,
    server: &ServerRuntime,
    basic: Option<&BasicCredentials>,
    params: &TokenParams,
) -> Result<Arc<ClientRuntime>, OAuthError> {
    let tried_basic = basic.is_some();
    let assertion = params.client_assertion.is_some() || params.client_assertion_type.is_some();
    let used = usize::from(tried_basic) + usize::from(params.client_secret.is_some()) + usize::from(assertion);
    if used > 1 {
        return Err(OAuthError::invalid_request(
            "the request uses more than one client authentication method",
        ));
    }
    let (method, raw_id, secret) = if let Some(b) = basic {
        if params.client_id.as_deref().is_some_and(|id| id != b.client_id) {
            return Err(OAuthError::invalid_request(
                "`client_id` differs from the client authenticated by HTTP Basic",
            ));
        }
        (AuthMethod::ClientSecretBasic, Some(b.client_id.as_str()), Some(&b.secret))
    } else if let Some(s) = &params.client_secret {
        (AuthMethod::ClientSecretPost, params.client_id.as_deref(), Some(s))
    } else if assertion {
        // RFC 7523 assertions: which of the two JWT methods is decided by the registration.
        (AuthMethod::PrivateKeyJwt, params.client_id.as_deref(), None)
    } else {
        (AuthMethod::None, params.client_id.as_deref(), None)
    };
    let fail = |reason: Failure, id: &str| {
        tracing::info!(
            tenant = %server.server.tenant_id,
            server = %server.server.id,
            client_id = %id.chars().filter(char::is_ascii_graphic).take(128).collect::<String>(),
            method = method.as_str(),
            reason = reason.reason(),
            "client authentication failed"
        );
        OAuthError::invalid_client(match reason {
            Failure::WrongMethod => "the client is registered for another authentication method",
            Failure::Unsupported => "the client's authentication method is not supported here",
            _ => "client authentication failed",
        })
        .with_basic_challenge(tried_basic)
    };
    let Some(raw_id) = raw_id else {
        return Err(OAuthError::invalid_client("client authentication is required").with_basic_challenge(tried_basic));
    };
    let Ok(client_id) = ClientId::parse(raw_id) else {
        return Err(fail(Failure::UnknownClient, raw_id));
    };
    let Some(client) = app.client(&server.server.tenant_id, &server.server.id, &client_id).await? else {
        return Err(fail(Failure::UnknownClient, raw_id));
    };
    let registered = client.client.auth_method();
    let method_matches = registered == method
        || (method == AuthMethod::PrivateKeyJwt && registered == AuthMethod::ClientSecretJwt);
    if !method_matches {
        return Err(fail(Failure::WrongMethod, raw_id));
    }
    let Some(auth) = authenticator(registered) else {
        return Err(fail(Failure::Unsupported, raw_id));
    };
    let presented = Presented { method: registered, client_id: &client_id, secret };
    auth.verify(app, &client, &presented)
        .await
        .map_err(|reason| fail(reason, raw_id))?;
    Ok(client)
}
