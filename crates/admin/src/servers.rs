//! `/admin/tenants/{tid}/servers` and `/admin/tenants/{tid}/servers/{aid}`.

use actix_web::{web, HttpResponse};
use tollgate_core::ids::{ServerId, TenantId};
use tollgate_core::manage;
use tollgate_core::model::server::{NewServer, Server, ServerPatch};
use tollgate_core::Tollgate;

use crate::body::JsonBody;
use crate::error::{AdminError, ErrorBody};
use crate::paging::{ListQuery, ListResponse, Paging};
use crate::paths::{ServerPath, TenantPath};
use crate::reply;

/// List a tenant's authorization servers
#[utoipa::path(
    get, path = "/admin/tenants/{tid}/servers", tag = "servers", operation_id = "list_servers",
    params(("tid" = TenantId, Path, description = "Tenant id"), ListQuery),
    responses(
        (status = 200, description = "A page of servers", body = ListResponse<Server>),
        (status = 400, description = "Malformed id, `limit` or `cursor`", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    app: web::Data<Tollgate>,
    at: TenantPath,
    paging: Paging,
) -> Result<HttpResponse, AdminError> {
    let page = manage::list_servers(&app, &at.tenant, paging.cursor(), paging.limit).await?;
    Ok(reply::ok(&ListResponse::from(page)))
}

/// Create an authorization server
///
/// Generates its signing keys: one for `signing_alg`, plus an RS256 key for ID tokens.
#[utoipa::path(
    post, path = "/admin/tenants/{tid}/servers", tag = "servers", operation_id = "create_server",
    params(("tid" = TenantId, Path, description = "Tenant id")),
    request_body = NewServer,
    responses(
        (status = 201, description = "The created server", body = Server),
        (status = 400, description = "Invalid body, naming the field", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 413, description = "Body over the size limit (--max-admin-body-bytes, default 256 KiB)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    app: web::Data<Tollgate>,
    at: TenantPath,
    JsonBody(input): JsonBody<NewServer>,
) -> Result<HttpResponse, AdminError> {
    let server = manage::create_server(&app, &at.by, &at.tenant, input).await?;
    Ok(reply::created(&server))
}

/// Get an authorization server
#[utoipa::path(
    get, path = "/admin/tenants/{tid}/servers/{aid}", tag = "servers", operation_id = "get_server",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
    ),
    responses(
        (status = 200, description = "The server", body = Server),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such tenant or server", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    app: web::Data<Tollgate>,
    at: ServerPath,
) -> Result<HttpResponse, AdminError> {
    let server = manage::get_server(&app, &at.tenant, &at.server).await?;
    Ok(reply::ok(&server))
}

/// Update an authorization server
///
/// Only the fields present change; a new `signing_alg` rotates to a fresh key of that
/// algorithm.
#[utoipa::path(
    patch, path = "/admin/tenants/{tid}/servers/{aid}", tag = "servers", operation_id = "patch_server",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
    ),
    request_body = ServerPatch,
    responses(
        (status = 200, description = "The updated server", body = Server),
        (status = 400, description = "Invalid body, naming the field", body = ErrorBody),
        (status = 404, description = "No such tenant or server", body = ErrorBody),
        (status = 413, description = "Body over the size limit (--max-admin-body-bytes, default 256 KiB)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
    )
)]
pub(crate) async fn patch(
    app: web::Data<Tollgate>,
    at: ServerPath,
    JsonBody(patch): JsonBody<ServerPatch>,
) -> Result<HttpResponse, AdminError> {
    let server = manage::patch_server(&app, &at.by, &at.tenant, &at.server, patch).await?;
    Ok(reply::ok(&server))
}

/// Delete an authorization server
///
/// Deletes its clients and keys with it.
#[utoipa::path(
    delete, path = "/admin/tenants/{tid}/servers/{aid}", tag = "servers", operation_id = "delete_server",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such tenant or server", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    app: web::Data<Tollgate>,
    at: ServerPath,
) -> Result<HttpResponse, AdminError> {
    manage::delete_server(&app, &at.by, &at.tenant, &at.server).await?;
    Ok(reply::no_content())
}
