//! Client authentication (RFC 6749 §2.3, RFC 7523, RFC 8705): works out which method a
//! request uses, finds the client, insists the method is the one it registered, and hands over
//! to that method's [`Authenticator`] — one file per method. The same entry point serves every
//! endpoint where a client authenticates (token, introspection, revocation).

mod assertion;
mod client_secret_jwt;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
mod none;
mod private_key_jwt;
pub mod request_object;
mod secret;
mod secret_basic;
mod secret_post;
mod self_signed_tls_client_auth;
mod tls_client_auth;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::Semaphore;

pub use crate::client_cert::{CertificateError, ClientCa, ClientCaError, ClientCertificate};

pub use assertion::{AssertionAudience, AssertionOptions};

use crate::audit::AuthFailureSampler;
use crate::client_keys::ClientKeys;
use crate::clock::Clock;
use crate::ids::ClientId;
use crate::keys::MasterKey;
use crate::metrics::Metrics;
use crate::oauth::AuthMethod;
use crate::oauth::{ClientEndpoint, OAuthError, TokenParams};
use crate::registry::{ClientRuntime, Directory, ServerRuntime};
use crate::secrets::ClientSecret;
use crate::secrets::{Hasher, SecretDigester};
use crate::store::ShortLivedStore;

/// What client authentication needs from the application: the narrow seam every method is
/// written against.
#[derive(Debug, Clone, Copy)]
pub struct ClientAuth<'a> {
    /// Finds the client a request names.
    pub directory: Directory<'a>,
    /// Keyed digests of secrets already verified (so argon2 runs once per secret).
    pub digester: &'a SecretDigester,
    /// argon2, run on the blocking pool.
    pub hasher: &'a Arc<Hasher>,
    /// Bounds the argon2 verifications running at once.
    pub hash_permits: &'a Semaphore,
    /// Opens sealed `client_secret_jwt` secrets.
    pub master: &'a MasterKey,
    /// Where spent assertion `jti`s are recorded.
    pub replay: &'a dyn ShortLivedStore,
    /// Fetches and caches clients' `jwks_uri`s.
    pub client_keys: &'a ClientKeys,
    /// RFC 7523 assertion rules.
    pub assertions: &'a AssertionOptions,
    /// The CAs `tls_client_auth` certificates must chain to.
    pub client_ca: Option<&'a ClientCa>,
    /// Whether client certificates can reach this gateway (the TLS methods are servable).
    pub client_certificates: bool,
    /// Counts failures.
    pub metrics: &'a Metrics,
    /// Samples failures into the audit trail.
    pub failures: &'a AuthFailureSampler,
    /// Judges expiry.
    pub clock: &'a dyn Clock,
}

/// RFC 7523 §2.2 `client_assertion_type` for JWT client assertions.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Credentials from an `Authorization: Basic` header, already form-decoded (§2.3.1).
#[derive(Debug, Clone)]
pub struct BasicCredentials {
    /// The decoded client id.
    pub client_id: String,
    /// The decoded secret.
    pub secret: ClientSecret,
}

/// Everything a request presented for client authentication, as the gateway extracted it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The `Authorization: Basic` credentials, if any.
    pub basic: Option<&'a BasicCredentials>,
    /// The body parameters.
    pub params: &'a TokenParams,
    /// The client certificate from the TLS connection or a trusted proxy, if any.
    pub certificate: Option<&'a ClientCertificate>,
    /// The endpoint receiving the request (its URL is an accepted assertion `aud`).
    pub endpoint: ClientEndpoint,
    /// The client's address (the peer, or what a trusted proxy reported), for the audit
    /// trail's sampled failures.
    pub address: Option<std::net::IpAddr>,
}

/// What an authenticator is given to check.
#[derive(Debug)]
pub struct Presented<'a> {
    /// The client's registered method (which the request's shape matched).
    pub method: AuthMethod,
    /// The client it names.
    pub client_id: &'a ClientId,
    /// The secret, for the two secret methods.
    pub secret: Option<&'a ClientSecret>,
    /// `client_assertion_type`, for the JWT methods.
    pub assertion_type: Option<&'a str>,
    /// `client_assertion`, for the JWT methods.
    pub assertion: Option<&'a ClientSecret>,
    /// The client certificate, if one was presented.
    pub certificate: Option<&'a ClientCertificate>,
    /// The URL of the endpoint receiving the request.
    pub endpoint_url: &'a str,
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
    /// The method is registered but this gateway cannot serve it now.
    Unsupported,
    /// The method is registered but the server no longer allows it (its
    /// `allowed_token_endpoint_auth_methods` was narrowed since).
    MethodNotAllowed,
    /// `client_assertion_type` is missing or not the JWT bearer URN.
    AssertionType,
    /// The assertion is not a well-formed JWS, or too large.
    MalformedAssertion,
    /// The assertion's `alg` is not allowed for this client (incl. `none` and confusion).
    AssertionAlgorithm,
    /// No registered key matches the assertion's `kid`/`alg`.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `iss`/`sub` do not name the client.
    AssertionSubject,
    /// `aud` names neither this endpoint nor the issuer.
    AssertionAudience,
    /// `exp` is missing, past, or too far ahead.
    AssertionExpiry(Expiry),
    /// `nbf` or `iat` is in the future.
    AssertionNotYetValid,
    /// `jti` is missing.
    AssertionJti,
    /// The `jti` was seen before.
    ReplayedAssertion,
    /// The client's `jwks_uri` could not be fetched.
    KeysUnavailable,
    /// The replay store could not record an assertion's `jti` (a 503, never a pass).
    StoreUnavailable,
    /// A certificate method without a certificate.
    NoCertificate,
    /// The certificate does not chain to a configured CA, or is not valid now.
    UntrustedCertificate,
    /// The certificate's subject or SAN does not match the registration.
    CertificateMismatch,
    /// A public client at an endpoint that needs authentication (introspection).
    PublicClient,
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
            Self::MethodNotAllowed => "method_not_allowed",
            Self::AssertionType => "assertion_type",
            Self::MalformedAssertion => "malformed_assertion",
            Self::AssertionAlgorithm => "assertion_algorithm",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::AssertionSubject => "assertion_subject",
            Self::AssertionAudience => "assertion_audience",
            Self::AssertionExpiry(_) => "assertion_expiry",
            Self::AssertionNotYetValid => "assertion_not_yet_valid",
            Self::AssertionJti => "assertion_jti",
            Self::ReplayedAssertion => "replayed_assertion",
            Self::KeysUnavailable => "keys_unavailable",
            Self::StoreUnavailable => "store_unavailable",
            Self::NoCertificate => "no_certificate",
            Self::UntrustedCertificate => "untrusted_certificate",
            Self::CertificateMismatch => "certificate_mismatch",
            Self::PublicClient => "public_client",
        }
    }
}

/// What is wrong with an assertion's `exp` (one metric reason, told apart in the error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No `exp`, or not a NumericDate.
    Missing,
    /// In the past, beyond the tolerated skew.
    Expired,
    /// Further ahead than the configured maximum lifetime (plus skew).
    TooFarAhead,
}

/// An authenticated client.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The client.
    pub client: Arc<ClientRuntime>,
    /// The method it authenticated with.
    pub method: AuthMethod,
    /// `x5t#S256` of the certificate, when it authenticated with one (RFC 8705 §3.1).
    pub certificate_thumbprint: Option<String>,
}

/// A request whose client did not authenticate: the answer, and what the rate limits count.
#[derive(Debug)]
pub struct Refused {
    /// The answer (`401 invalid_client`, `400`, or `503` for our own outage).
    pub error: OAuthError,
    /// Whether this was a failed attempt — credentials missing or wrong — rather than a
    /// malformed request or an outage of ours.
    pub failed: bool,
    /// The registered client the request named, if it named one.
    pub client: Option<ClientId>,
}

impl From<OAuthError> for Refused {
    fn from(error: OAuthError) -> Self {
        Self {
            error,
            failed: false,
            client: None,
        }
    }
}

impl From<Refused> for OAuthError {
    fn from(r: Refused) -> Self {
        r.error
    }
}

/// One client-authentication method.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The registered method this authenticator checks.
    fn method(&self) -> AuthMethod;
    /// Checks the presented credentials against the client.
    async fn verify(
        &self,
        ctx: &ClientAuth<'_>,
        server: &ServerRuntime,
        client: &ClientRuntime,
        presented: &Presented<'_>,
    ) -> Result<(), Failure>;
}

fn authenticator(method: AuthMethod) -> &'static dyn Authenticator {
    match method {
        AuthMethod::ClientSecretBasic => &secret_basic::SecretBasic,
        AuthMethod::ClientSecretPost => &secret_post::SecretPost,
        AuthMethod::ClientSecretJwt => &client_secret_jwt::ClientSecretJwt,
        AuthMethod::PrivateKeyJwt => &private_key_jwt::PrivateKeyJwt,
        AuthMethod::TlsClientAuth => &tls_client_auth::TlsClientAuth,
        AuthMethod::SelfSignedTlsClientAuth => {
            &self_signed_tls_client_auth::SelfSignedTlsClientAuth
        }
        AuthMethod::None => &none::PublicClient,
    }
}

/// The shape of a request's credentials; the registered method must be one the shape allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Basic,
    Post,
    Assertion,
    /// Only `client_id`: a public client, or one of the TLS methods.
    IdOnly,
}

impl Shape {
    fn accepts(self, registered: AuthMethod) -> bool {
        match self {
            Self::Basic => registered == AuthMethod::ClientSecretBasic,
            Self::Post => registered == AuthMethod::ClientSecretPost,
            Self::Assertion => matches!(
                registered,
                AuthMethod::ClientSecretJwt | AuthMethod::PrivateKeyJwt
            ),
            Self::IdOnly => matches!(
                registered,
                AuthMethod::None | AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth
            ),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Basic => "client_secret_basic",
            Self::Post => "client_secret_post",
            Self::Assertion => "jwt_assertion",
            Self::IdOnly => "client_id_only",
        }
    }
}

/// The client a request names, before anything is checked: the HTTP Basic user, else
/// `client_id`, else the subject of a client assertion. `None` when it names none, or nothing
/// that could be a client id. For rate limiting, which must happen before the (costly)
/// authentication it protects.
#[must_use]
pub fn presented_client_id(req: &Request<'_>) -> Option<ClientId> {
    let raw = match (
        req.basic,
        &req.params.client_id,
        &req.params.client_assertion,
    ) {
        (Some(b), _, _) => Some(b.client_id.clone()),
        (None, Some(id), _) => Some(id.clone()),
        (None, None, Some(a)) => assertion::subject(a.expose()),
        (None, None, None) => None,
    }?;
    ClientId::parse(&raw).ok()
}

/// Identifies and authenticates the client of a request to `server`.
///
/// # Errors
/// `400 invalid_request` when several methods are used at once or `client_id` disagrees with
/// the HTTP Basic user; `401 invalid_client` otherwise (with a Basic challenge when Basic was
/// tried), also for an assertion whose `iss` or `sub` is not the client it authenticates
/// (RFC 7521 §4.2.1); a `401` is marked as a failed attempt, with the registered client it
/// named.
pub async fn authenticate(
    ctx: &ClientAuth<'_>,
    server: &ServerRuntime,
    req: Request<'_>,
) -> Result<Authenticated, Refused> {
    let params = req.params;
    let tried_basic = req.basic.is_some();
    let assertion = params.client_assertion.is_some() || params.client_assertion_type.is_some();
    let used = usize::from(tried_basic)
        + usize::from(params.client_secret.is_some())
        + usize::from(assertion);
    if used > 1 {
        return Err(OAuthError::invalid_request(
            "the request uses more than one client authentication method",
        )
        .into());
    }
    let mut subject_mismatch = false;
    let (shape, raw_id, secret) = if let Some(b) = req.basic {
        if params
            .client_id
            .as_deref()
            .is_some_and(|id| id != b.client_id)
        {
            return Err(OAuthError::invalid_request(
                "`client_id` differs from the client authenticated by HTTP Basic",
            )
            .into());
        }
        (Shape::Basic, Some(b.client_id.clone()), Some(&b.secret))
    } else if let Some(s) = &params.client_secret {
        (Shape::Post, params.client_id.clone(), Some(s))
    } else if assertion {
        // RFC 7523 §3: `client_id` is optional; the assertion's `sub` names the client. The
        // signature is checked later against that client's keys.
        let from_assertion = params
            .client_assertion
            .as_ref()
            .and_then(|a| assertion::subject(a.expose()));
        // A `client_id` that differs from the assertion's `sub` names the client the request
        // authenticates as; the assertion then does not speak for it: `invalid_client`
        // (RFC 7521 §4.2.1, RFC 7523 §3), judged below once the client is known.
        subject_mismatch = matches!(
            (&params.client_id, &from_assertion),
            (Some(id), Some(sub)) if id != sub
        );
        (
            Shape::Assertion,
            params.client_id.clone().or(from_assertion),
            None,
        )
    } else {
        (Shape::IdOnly, params.client_id.clone(), None)
    };
    // The request span (see the CLI's telemetry): which client and method, never credentials.
    let span = tracing::Span::current();
    let endpoint = req.endpoint.path();
    let endpoint_url = req.endpoint.url(&server.issuer);
    // `method`: the registered method when the client is known, else the presented shape.
    // `known`: the client, when the id names a registered one (only those are put in the
    // audit trail: an unknown id may be a secret typed into the wrong field).
    let failure = |reason: Failure, id: &str, known: Option<&ClientId>, method: &'static str| {
        ctx.metrics.client_auth_failure(method, reason.reason());
        let sampled = ctx.failures.offer(
            &crate::audit::AuthFailure {
                tenant: &server.server.tenant_id,
                server: &server.server.id,
                client: known,
                reason: reason.reason(),
                method,
                endpoint,
                address: req.address,
            },
            ctx.clock.now(),
        );
        if sampled == crate::audit::Sampled::Dropped {
            ctx.metrics.audit_sample_dropped();
        }
        span.record("tollgate.auth_method", method);
        tracing::info!(
            tenant = %server.server.tenant_id,
            server = %server.server.id,
            client_id = %id.chars().filter(char::is_ascii_graphic).take(128).collect::<String>(),
            presented = shape.name(),
            reason = reason.reason(),
            "client authentication failed"
        );
        let description: std::borrow::Cow<'static, str> = match reason {
            Failure::WrongMethod => {
                "the client is registered for another authentication method".into()
            }
            Failure::Unsupported => {
                "the client's authentication method is not available on this gateway".into()
            }
            Failure::MethodNotAllowed => {
                "the client's authentication method is no longer allowed on this server".into()
            }
            Failure::ReplayedAssertion => "the client assertion was already used".into(),
            Failure::AssertionSubject => {
                "the client assertion's `iss` and `sub` must both be the client's id".into()
            }
            Failure::AssertionExpiry(Expiry::Missing) => "the client assertion has no `exp`".into(),
            Failure::AssertionExpiry(Expiry::Expired) => "the client assertion has expired".into(),
            Failure::AssertionExpiry(Expiry::TooFarAhead) => format!(
                "the client assertion's `exp` is too far ahead: at most {} seconds from now",
                ctx.assertions.max_lifetime.as_secs()
            )
            .into(),
            Failure::AssertionAudience => {
                "the client assertion's audience is not this server".into()
            }
            Failure::NoCertificate => "a client certificate is required".into(),
            Failure::PublicClient => {
                format!("public clients cannot use `{}`", req.endpoint.path()).into()
            }
            _ => "client authentication failed".into(),
        };
        OAuthError::invalid_client(description).with_basic_challenge(tried_basic)
    };
    let fail =
        |reason: Failure, id: &str, known: Option<&ClientId>, method: &'static str| Refused {
            error: failure(reason, id, known, method),
            failed: true,
            client: known.cloned(),
        };
    let Some(raw_id) = raw_id else {
        return Err(Refused {
            error: OAuthError::invalid_client("client authentication is required")
                .with_basic_challenge(tried_basic),
            failed: true,
            client: None,
        });
    };
    let Ok(client_id) = ClientId::parse(&raw_id) else {
        return Err(fail(Failure::UnknownClient, &raw_id, None, shape.name()));
    };
    let Some(client) = ctx
        .directory
        .client(&server.server.tenant_id, &server.server.id, &client_id)
        .await?
    else {
        return Err(fail(Failure::UnknownClient, &raw_id, None, shape.name()));
    };
    span.record("tollgate.client_id", client_id.as_str());
    let registered = client.client.auth_method();
    if subject_mismatch {
        return Err(fail(
            Failure::AssertionSubject,
            &raw_id,
            Some(&client_id),
            registered.as_str(),
        ));
    }
    if !shape.accepts(registered) {
        return Err(fail(
            Failure::WrongMethod,
            &raw_id,
            Some(&client_id),
            registered.as_str(),
        ));
    }
    // RFC 7662 §2.1: introspection needs authorization; a bare client id is none.
    if registered == AuthMethod::None && !req.endpoint.admits_public_clients() {
        return Err(fail(
            Failure::PublicClient,
            &raw_id,
            Some(&client_id),
            registered.as_str(),
        ));
    }
    // The server's list bounds registered clients too, not only new registrations: a
    // method taken off it stops the clients that use it at once.
    if !server
        .server
        .allowed_token_endpoint_auth_methods
        .contains(&registered)
    {
        return Err(fail(
            Failure::MethodNotAllowed,
            &raw_id,
            Some(&client_id),
            registered.as_str(),
        ));
    }
    if registered.needs_certificate() && !ctx.client_certificates {
        return Err(fail(
            Failure::Unsupported,
            &raw_id,
            Some(&client_id),
            registered.as_str(),
        ));
    }
    let presented = Presented {
        method: registered,
        client_id: &client_id,
        secret,
        assertion_type: params.client_assertion_type.as_deref(),
        assertion: params.client_assertion.as_ref(),
        certificate: req.certificate,
        endpoint_url: &endpoint_url,
    };
    authenticator(registered)
        .verify(ctx, server, &client, &presented)
        .await
        .map_err(|reason| match reason {
            // Our outage, not the client's fault: retryable, and the assertion was not accepted.
            Failure::StoreUnavailable => {
                ctx.metrics
                    .client_auth_failure(registered.as_str(), reason.reason());
                Refused::from(OAuthError::temporarily_unavailable())
            }
            _ => fail(reason, &raw_id, Some(&client_id), registered.as_str()),
        })?;
    span.record("tollgate.auth_method", registered.as_str());
    let certificate_thumbprint = registered
        .needs_certificate()
        .then(|| req.certificate.map(ClientCertificate::thumbprint_s256))
        .flatten();
    Ok(Authenticated {
        client,
        method: registered,
        certificate_thumbprint,
    })
}
