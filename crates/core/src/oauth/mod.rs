//! The protocol layer: the OAuth 2.0 / OpenID Connect vocabulary as typed values, below every
//! other part of the domain. Errors with their RFC codes ([`OAuthError`]), the grant types
//! ([`GrantType`]), the client-authentication methods and signing algorithms
//! ([`AuthMethod`], [`SigningAlg`]), the client-authenticating endpoints
//! ([`ClientEndpoint`]) and the token-request parameters ([`TokenParams`]). Each protocol
//! list is one enum with `as_str`/`parse`; nothing above this layer spells their names.

mod endpoint;
mod error;
mod grant_type;
mod methods;
mod params;
pub mod pkce;
mod response_mode;
mod token_type;

pub use endpoint::ClientEndpoint;
pub use error::{ErrorBody, ErrorCode, OAuthError};
pub use grant_type::{GrantType, UnknownGrantType};
pub use methods::{AuthMethod, SigningAlg};
pub use params::{form_pairs, TokenParams};
pub use response_mode::{Carrier, ResponseMode};
pub use token_type::TokenTypeUri;
