//! Shared handling of RFC 7523 JWT client assertions: reading the subject to find the client,
//! and (with the two JWT methods) verifying signature and claims.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The assertion's `sub`, read without verifying anything: only to find which client's keys
/// to verify it with. Nothing is trusted until the signature and claims are checked.
pub(super) fn subject(assertion: &str) -> Option<String> {
    let mut parts = assertion.split('.');
    let (_, payload) = (parts.next()?, parts.next()?);
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub")?.as_str().map(str::to_owned)
}
