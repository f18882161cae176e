//! Tollgate's domain: identifiers, tenants, authorization servers, clients, signing keys,
//! client authentication, token issuance, and the storage seams they rest on.
//!
//! Nothing here knows about HTTP frameworks: the gateway and admin crates parse requests into
//! the typed values defined here, call one function, and map the result to a response.

pub mod app;
pub mod audit;
pub mod authorize;
pub mod claims_policy;
pub mod client_auth;
pub mod client_cert;
pub mod client_keys;
pub mod clock;
pub mod grants;
pub mod ids;
pub mod introspection;
pub mod invalidation;
pub mod keys;
pub mod limits;
pub mod manage;
pub mod metrics;
pub mod model;
pub mod oauth;
pub mod outbound;
pub mod peer;
pub mod rate_limit;
pub mod refresh;
pub mod registry;
pub mod revocation;
pub mod revoked_subjects;
pub mod scope;
pub mod secrets;
pub mod store;
pub mod tokens;
pub mod userinfo;

pub use app::{Tollgate, TollgateOptions};
