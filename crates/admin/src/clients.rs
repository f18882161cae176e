//! `/admin/tenants/{tid}/servers/{aid}/clients…`: RFC 7591 registration and RFC 7592
//! management of OAuth clients, and secret rotation.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use tollgate_core::ids::{ClientId, ServerId, TenantId};
use tollgate_core::manage::{self, ClientView};
use tollgate_core::model::client::NewClient;
use tollgate_core::Tollgate;

use crate::body::JsonBody;
use crate::error::{AdminError, ErrorBody};
use crate::paging::{ListQuery, ListResponse, Paging};
use crate::paths::{ClientPath, ServerPath};
use crate::reply;

/// List a server's clients
///
/// Secrets are never listed.
#[utoipa::path(
    get, path = "/admin/tenants/{tid}/servers/{aid}/clients", tag = "clients", operation_id = "list_clients",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
        ListQuery,
    ),
    responses(
        (status = 200, description = "A page of clients", body = ListResponse<ClientView>),
        (status = 400, description = "Malformed id, `limit` or `cursor`", body = ErrorBody),
        (status = 404, description = "No such tenant or server", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    app: web::Data<Tollgate>,
    at: ServerPath,
    paging: Paging,
) -> Result<HttpResponse, AdminError> {
    let page =
        manage::list_clients(&app, &at.tenant, &at.server, paging.cursor(), paging.limit).await?;
    Ok(reply::ok(&ListResponse::from(page)))
}

/// Register a client (RFC 7591)
///
/// Unknown metadata fields are ignored and not stored. For the secret-based methods the
/// response carries `client_secret`, shown this once.
#[utoipa::path(
    post, path = "/admin/tenants/{tid}/servers/{aid}/clients", tag = "clients", operation_id = "create_client",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
    ),
    request_body = NewClient,
    responses(
        (status = 201, description = "The registered client, with its secret", body = ClientView),
        (status = 400, description = "`invalid_client_metadata` or `invalid_redirect_uri`, naming the field", body = ErrorBody),
        (status = 404, description = "No such tenant or server", body = ErrorBody),
        (status = 409, description = "The client id is taken, or is the id (`sub`) of a user of this server (RFC 9068 §2.2)", body = ErrorBody),
        (status = 413, description = "Body over the size limit (--max-admin-body-bytes, default 256 KiB)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    app: web::Data<Tollgate>,
    at: ServerPath,
    JsonBody(input): JsonBody<NewClient>,
) -> Result<HttpResponse, AdminError> {
    let client = manage::create_client(&app, &at.by, &at.tenant, &at.server, input).await?;
    Ok(reply::client(StatusCode::CREATED, &client))
}

/// Get a client (RFC 7592 §2.1)
///
/// Never includes the secret.
#[utoipa::path(
    get, path = "/admin/tenants/{tid}/servers/{aid}/clients/{client_id}", tag = "clients", operation_id = "get_client",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
        ("client_id" = ClientId, Path, description = "Client id"),
    ),
    responses(
        (status = 200, description = "The client", body = ClientView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such tenant, server or client", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    app: web::Data<Tollgate>,
    at: ClientPath,
) -> Result<HttpResponse, AdminError> {
    let client = manage::get_client(&app, &at.tenant, &at.server, &at.client).await?;
    Ok(reply::client(StatusCode::OK, &client))
}

/// Replace a client's metadata (RFC 7592 §2.2)
///
/// Fields left out are reset to their defaults. When the new method needs a secret the old
/// one cannot serve, a new secret is issued and returned this once.
#[utoipa::path(
    put, path = "/admin/tenants/{tid}/servers/{aid}/clients/{client_id}", tag = "clients", operation_id = "replace_client",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
        ("client_id" = ClientId, Path, description = "Client id"),
    ),
    request_body = NewClient,
    responses(
        (status = 200, description = "The updated client", body = ClientView),
        (status = 400, description = "`invalid_client_metadata` or `invalid_redirect_uri`, naming the field", body = ErrorBody),
        (status = 404, description = "No such tenant, server or client", body = ErrorBody),
        (status = 413, description = "Body over the size limit (--max-admin-body-bytes, default 256 KiB)", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
    )
)]
pub(crate) async fn replace(
    app: web::Data<Tollgate>,
    at: ClientPath,
    JsonBody(input): JsonBody<NewClient>,
) -> Result<HttpResponse, AdminError> {
    let client =
        manage::replace_client(&app, &at.by, &at.tenant, &at.server, &at.client, input).await?;
    Ok(reply::client(StatusCode::OK, &client))
}

/// Delete a client (RFC 7592 §2.3)
#[utoipa::path(
    delete, path = "/admin/tenants/{tid}/servers/{aid}/clients/{client_id}", tag = "clients", operation_id = "delete_client",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
        ("client_id" = ClientId, Path, description = "Client id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such tenant, server or client", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    app: web::Data<Tollgate>,
    at: ClientPath,
) -> Result<HttpResponse, AdminError> {
    manage::delete_client(&app, &at.by, &at.tenant, &at.server, &at.client).await?;
    Ok(reply::no_content())
}

/// Rotate a client's secret
///
/// The old secret stops working at once; the new one is returned this once.
#[utoipa::path(
    post, path = "/admin/tenants/{tid}/servers/{aid}/clients/{client_id}/secret", tag = "clients", operation_id = "rotate_client_secret",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
        ("client_id" = ClientId, Path, description = "Client id"),
    ),
    responses(
        (status = 200, description = "The client with its new secret", body = ClientView),
        (status = 400, description = "Malformed id, or a method without a secret", body = ErrorBody),
        (status = 404, description = "No such tenant, server or client", body = ErrorBody),
    )
)]
pub(crate) async fn rotate_secret(
    app: web::Data<Tollgate>,
    at: ClientPath,
) -> Result<HttpResponse, AdminError> {
    let client =
        manage::rotate_client_secret(&app, &at.by, &at.tenant, &at.server, &at.client).await?;
    Ok(reply::client(StatusCode::OK, &client))
}
