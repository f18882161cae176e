//! `/admin/tenants/{tid}/servers/{aid}/keys…`: a server's published signing keys and their
//! rotation.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use tollgate_core::ids::{ServerId, TenantId};
use tollgate_core::manage::{self, KeyView};
use tollgate_core::Tollgate;
use utoipa::ToSchema;

use crate::error::{AdminError, ErrorBody};
use crate::paths::ServerPath;
use crate::reply;

/// A server's published keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeySet {
    /// Public JWKs with their lifecycle `status` and `created_at`.
    pub keys: Vec<KeyView>,
}

/// List a server's signing keys
///
/// Public halves only, with their status: `current` signs, `retiring` stays published until
/// the tokens it signed expire.
#[utoipa::path(
    get, path = "/admin/tenants/{tid}/servers/{aid}/keys", tag = "keys", operation_id = "list_keys",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
    ),
    responses(
        (status = 200, description = "The published keys", body = KeySet),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such tenant or server", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    app: web::Data<Tollgate>,
    at: ServerPath,
) -> Result<HttpResponse, AdminError> {
    let keys = manage::list_keys(&app, &at.tenant, &at.server).await?;
    Ok(reply::ok(&KeySet { keys }))
}

/// Rotate a server's signing keys
///
/// A fresh key of each algorithm becomes current; the old ones become `retiring`.
#[utoipa::path(
    post, path = "/admin/tenants/{tid}/servers/{aid}/keys/rotate", tag = "keys", operation_id = "rotate_keys",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
    ),
    responses(
        (status = 200, description = "The published keys after rotation", body = KeySet),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such tenant or server", body = ErrorBody),
    )
)]
pub(crate) async fn rotate(
    app: web::Data<Tollgate>,
    at: ServerPath,
) -> Result<HttpResponse, AdminError> {
    let keys = manage::rotate_keys(&app, &at.by, &at.tenant, &at.server).await?;
    Ok(reply::ok(&KeySet { keys }))
}
