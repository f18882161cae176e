//! `/admin/tenants/{tid}/credentials…`: tenant-scoped admin credentials, created (the token
//! shown once), listed (never the token) and revoked.

use actix_web::http::header::{CACHE_CONTROL, PRAGMA};
use actix_web::{web, HttpResponse};
use tollgate_core::ids::{CredentialId, TenantId};
use tollgate_core::manage::credentials;
use tollgate_core::model::credential::{CredentialView, NewCredential};
use tollgate_core::Tollgate;

use crate::body::JsonBody;
use crate::error::{AdminError, ErrorBody};
use crate::paging::{ListQuery, ListResponse, Paging};
use crate::paths::{CredentialPath, TenantPath};
use crate::reply;

/// List a tenant's admin credentials
///
/// Revoked and expired ones included; tokens are never listed.
#[utoipa::path(
    get, path = "/admin/tenants/{tid}/credentials", tag = "credentials", operation_id = "list_credentials",
    params(("tid" = TenantId, Path, description = "Tenant id"), ListQuery),
    responses(
        (status = 200, description = "A page of credentials", body = ListResponse<CredentialView>),
        (status = 400, description = "Malformed id, `limit` or `cursor`", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    app: web::Data<Tollgate>,
    at: TenantPath,
    paging: Paging,
) -> Result<HttpResponse, AdminError> {
    let page =
        credentials::list_credentials(&app, &at.tenant, paging.cursor(), paging.limit).await?;
    Ok(reply::ok(&ListResponse::from(page)))
}

/// Create an admin credential for a tenant
///
/// The response carries the bearer token (`tgc_…`), shown this once; only its SHA-256 is
/// kept. The credential reaches this tenant only: `admin` may do everything in it,
/// `read-only` may only `GET`.
#[utoipa::path(
    post, path = "/admin/tenants/{tid}/credentials", tag = "credentials", operation_id = "create_credential",
    params(("tid" = TenantId, Path, description = "Tenant id")),
    request_body = NewCredential,
    responses(
        (status = 201, description = "The credential, with its token", body = CredentialView),
        (status = 400, description = "Invalid body, naming the field", body = ErrorBody),
        (status = 404, description = "No such tenant", body = ErrorBody),
        (status = 413, description = "Body over 256 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    app: web::Data<Tollgate>,
    at: TenantPath,
    JsonBody(input): JsonBody<NewCredential>,
) -> Result<HttpResponse, AdminError> {
    let view = credentials::create_credential(&app, &at.by, &at.tenant, input).await?;
    // The token is in this response only: no cache may keep it.
    Ok(HttpResponse::Created()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
        .json(view))
}

/// Revoke an admin credential
///
/// Effective at once, on every replica.
#[utoipa::path(
    delete, path = "/admin/tenants/{tid}/credentials/{credential_id}", tag = "credentials", operation_id = "revoke_credential",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("credential_id" = CredentialId, Path, description = "Credential id"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such credential, or revoked already", body = ErrorBody),
    )
)]
pub(crate) async fn revoke(
    app: web::Data<Tollgate>,
    at: CredentialPath,
) -> Result<HttpResponse, AdminError> {
    credentials::revoke_credential(&app, &at.by, &at.tenant, &at.credential).await?;
    Ok(reply::no_content())
}
