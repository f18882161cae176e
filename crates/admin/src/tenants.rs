//! `/admin/tenants` and `/admin/tenants/{tid}`.

use actix_web::{web, HttpResponse};
use tollgate_core::ids::TenantId;
use tollgate_core::manage;
use tollgate_core::model::tenant::{NewTenant, Tenant, TenantPatch};
use tollgate_core::Tollgate;

use crate::body::JsonBody;
use crate::error::{AdminError, ErrorBody};
use crate::paging::{ListQuery, ListResponse, Paging};
use crate::paths::{RootOnly, TenantPath, TenantsPath};
use crate::reply;

/// List tenants
///
/// Ordered by id, one page at a time. A tenant-scoped credential sees its own tenant only.
#[utoipa::path(
    get, path = "/admin/tenants", tag = "tenants", operation_id = "list_tenants",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of tenants", body = ListResponse<Tenant>),
        (status = 400, description = "Bad `limit` or `cursor`", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    app: web::Data<Tollgate>,
    at: TenantsPath,
    paging: Paging,
) -> Result<HttpResponse, AdminError> {
    let page = manage::list_tenants(&app, at.scope.only(), paging.cursor(), paging.limit).await?;
    Ok(reply::ok(&ListResponse::from(page)))
}

/// Create a tenant
///
/// Root token only.
#[utoipa::path(
    post, path = "/admin/tenants", tag = "tenants", operation_id = "create_tenant",
    request_body = NewTenant,
    responses(
        (status = 201, description = "The created tenant", body = Tenant),
        (status = 400, description = "Invalid body, naming the field", body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
        (status = 413, description = "Body over the size limit (--max-admin-body-bytes, default 256 KiB)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    app: web::Data<Tollgate>,
    at: TenantsPath,
    JsonBody(input): JsonBody<NewTenant>,
) -> Result<HttpResponse, AdminError> {
    let tenant = manage::create_tenant(&app, &at.by, input).await?;
    Ok(reply::created(&tenant))
}

/// Get a tenant
#[utoipa::path(
    get, path = "/admin/tenants/{tid}", tag = "tenants", operation_id = "get_tenant",
    params(("tid" = TenantId, Path, description = "Tenant id")),
    responses(
        (status = 200, description = "The tenant", body = Tenant),
        (status = 400, description = "Malformed tenant id", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    app: web::Data<Tollgate>,
    at: TenantPath,
) -> Result<HttpResponse, AdminError> {
    let tenant = manage::get_tenant(&app, &at.tenant).await?;
    Ok(reply::ok(&tenant))
}

/// Update a tenant
///
/// Only the fields present change.
#[utoipa::path(
    patch, path = "/admin/tenants/{tid}", tag = "tenants", operation_id = "patch_tenant",
    params(("tid" = TenantId, Path, description = "Tenant id")),
    request_body = TenantPatch,
    responses(
        (status = 200, description = "The updated tenant", body = Tenant),
        (status = 400, description = "Invalid body, naming the field", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 413, description = "Body over the size limit (--max-admin-body-bytes, default 256 KiB)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
    )
)]
pub(crate) async fn patch(
    app: web::Data<Tollgate>,
    at: TenantPath,
    JsonBody(patch): JsonBody<TenantPatch>,
) -> Result<HttpResponse, AdminError> {
    let tenant = manage::patch_tenant(&app, &at.by, &at.tenant, patch).await?;
    Ok(reply::ok(&tenant))
}

/// Delete a tenant
///
/// Deletes its servers, clients, keys and credentials with it (not its audit trail). Root
/// token only.
#[utoipa::path(
    delete, path = "/admin/tenants/{tid}", tag = "tenants", operation_id = "delete_tenant",
    params(("tid" = TenantId, Path, description = "Tenant id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed tenant id", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    app: web::Data<Tollgate>,
    at: TenantPath,
    _: RootOnly,
) -> Result<HttpResponse, AdminError> {
    manage::delete_tenant(&app, &at.by, &at.tenant).await?;
    Ok(reply::no_content())
}
