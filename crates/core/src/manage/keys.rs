//! A server's signing keys as the admin API lists them, and manual rotation.

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::Tollgate;
use crate::audit::Origin;
use crate::ids::{ServerId, TenantId};
use crate::keys::KeyStatus;

use super::{get_server, ManageError};
/// A published key as the admin API lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyView {
    /// The public JWK.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub jwk: serde_json::Value,
    /// `current`, `next` or `retiring`.
    pub status: KeyStatus,
    /// Unix seconds.
    pub created_at: i64,
    /// When a retiring key is unpublished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<i64>,
}

/// The server's published keys (public halves only), as the JWKS publishes them: an RS256
/// key also as its PS256 view (`{kid}-PS256`), with the same status.
///
/// # Errors
/// Not found or store failure.
pub async fn list_keys(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
) -> Result<Vec<KeyView>, ManageError> {
    get_server(app, t, s).await?;
    let now = app.clock.now();
    Ok(app
        .repo
        .list_keys(t, s)
        .await?
        .into_iter()
        .filter(|k| k.retire_at.is_none_or(|r| r > now))
        .flat_map(|k| {
            k.published_jwks().into_iter().map(move |jwk| KeyView {
                jwk,
                status: k.status,
                created_at: k.created_at,
                retire_at: k.retire_at,
            })
        })
        .collect())
}

/// Rotates every current key: a fresh key of each algorithm becomes current; the old ones
/// stay published (retiring) until the tokens they signed have expired. The same
/// conditional path as scheduled rotation: when another process rotates at the same moment,
/// one of the two rotations happens, not both.
///
/// # Errors
/// Not found or failure.
pub async fn rotate_keys(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    s: &ServerId,
) -> Result<Vec<KeyView>, ManageError> {
    let server = get_server(app, t, s).await?;
    crate::manage::rotation::rotate(app, by, &server, app.clock.now()).await?;
    list_keys(app, t, s).await
}
