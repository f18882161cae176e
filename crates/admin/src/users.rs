//! `/admin/tenants/{tid}/servers/{aid}/users…`: the users of a server's built-in login, and
//! the consents they gave to clients.

use actix_web::{web, HttpResponse};
use tollgate_core::ids::{ClientId, ServerId, TenantId, UserId};
use tollgate_core::manage;
use tollgate_core::model::users::{Consent, NewUser, UserPatch, UserView};
use tollgate_core::store::Page;
use tollgate_core::Tollgate;

use crate::body::JsonBody;
use crate::error::{AdminError, ErrorBody};
use crate::paging::{ListQuery, ListResponse, Paging};
use crate::paths::{ConsentPath, ServerPath, UserPath};
use crate::reply;

/// List a server's users
///
/// Never shows passwords or their hashes.
#[utoipa::path(
    get, path = "/admin/tenants/{tid}/servers/{aid}/users", tag = "users", operation_id = "list_users",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
        ListQuery,
    ),
    responses(
        (status = 200, description = "A page of users", body = ListResponse<UserView>),
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
        manage::list_users(&app, &at.tenant, &at.server, paging.cursor(), paging.limit).await?;
    Ok(reply::ok(&ListResponse::from(page)))
}

/// Create a user
///
/// The password is hashed with argon2id and never shown again. `username` compares
/// case-insensitively; `claims` takes OpenID Connect standard claims, released to clients by
/// scope (`profile`, `email`, `address`, `phone`).
#[utoipa::path(
    post, path = "/admin/tenants/{tid}/servers/{aid}/users", tag = "users", operation_id = "create_user",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
    ),
    request_body = NewUser,
    responses(
        (status = 201, description = "The created user", body = UserView),
        (status = 400, description = "Invalid body, naming the field", body = ErrorBody),
        (status = 404, description = "No such tenant or server", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 413, description = "Body over 256 KiB", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    app: web::Data<Tollgate>,
    at: ServerPath,
    JsonBody(input): JsonBody<NewUser>,
) -> Result<HttpResponse, AdminError> {
    let user = manage::create_user(&app, &at.by, &at.tenant, &at.server, input).await?;
    Ok(reply::created(&user))
}

/// Get a user
#[utoipa::path(
    get, path = "/admin/tenants/{tid}/servers/{aid}/users/{user_id}", tag = "users", operation_id = "get_user",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
        ("user_id" = UserId, Path, description = "User id"),
    ),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such tenant, server or user", body = ErrorBody),
    )
)]
pub(crate) async fn get(
    app: web::Data<Tollgate>,
    at: UserPath,
) -> Result<HttpResponse, AdminError> {
    let user = manage::get_user(&app, &at.tenant, &at.server, &at.user).await?;
    Ok(reply::ok(&user))
}

/// Change a user's username, password or claims
#[utoipa::path(
    patch, path = "/admin/tenants/{tid}/servers/{aid}/users/{user_id}", tag = "users", operation_id = "patch_user",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
        ("user_id" = UserId, Path, description = "User id"),
    ),
    request_body = UserPatch,
    responses(
        (status = 200, description = "The updated user", body = UserView),
        (status = 400, description = "Invalid body, naming the field", body = ErrorBody),
        (status = 404, description = "No such tenant, server or user", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
    )
)]
pub(crate) async fn patch(
    app: web::Data<Tollgate>,
    at: UserPath,
    JsonBody(input): JsonBody<UserPatch>,
) -> Result<HttpResponse, AdminError> {
    let user = manage::patch_user(&app, &at.by, &at.tenant, &at.server, &at.user, input).await?;
    Ok(reply::ok(&user))
}

/// Delete a user
///
/// Also deletes their consents and revokes their refresh tokens (and the access tokens
/// issued with them).
#[utoipa::path(
    delete, path = "/admin/tenants/{tid}/servers/{aid}/users/{user_id}", tag = "users", operation_id = "delete_user",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
        ("user_id" = UserId, Path, description = "User id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such tenant, server or user", body = ErrorBody),
    )
)]
pub(crate) async fn delete(
    app: web::Data<Tollgate>,
    at: UserPath,
) -> Result<HttpResponse, AdminError> {
    manage::delete_user(&app, &at.by, &at.tenant, &at.server, &at.user).await?;
    Ok(reply::no_content())
}

/// List a user's consents
///
/// The clients the user allowed, with the scopes granted so far.
#[utoipa::path(
    get, path = "/admin/tenants/{tid}/servers/{aid}/users/{user_id}/consents", tag = "users", operation_id = "list_consents",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
        ("user_id" = UserId, Path, description = "User id"),
    ),
    responses(
        (status = 200, description = "Every consent of the user", body = ListResponse<Consent>),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such tenant, server or user", body = ErrorBody),
    )
)]
pub(crate) async fn consents(
    app: web::Data<Tollgate>,
    at: UserPath,
) -> Result<HttpResponse, AdminError> {
    let items = manage::list_consents(&app, &at.tenant, &at.server, &at.user).await?;
    Ok(reply::ok(&ListResponse::from(Page { items, next: None })))
}

/// Withdraw a user's consent to a client
///
/// The next authorization asks the user again; the refresh tokens the user granted this
/// client are revoked, with the access tokens issued with them.
#[utoipa::path(
    delete, path = "/admin/tenants/{tid}/servers/{aid}/users/{user_id}/consents/{client_id}", tag = "users", operation_id = "revoke_consent",
    params(
        ("tid" = TenantId, Path, description = "Tenant id"),
        ("aid" = ServerId, Path, description = "Server id"),
        ("user_id" = UserId, Path, description = "User id"),
        ("client_id" = ClientId, Path, description = "Client id"),
    ),
    responses(
        (status = 204, description = "Withdrawn"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such tenant, server, user or consent", body = ErrorBody),
    )
)]
pub(crate) async fn revoke_consent(
    app: web::Data<Tollgate>,
    at: ConsentPath,
) -> Result<HttpResponse, AdminError> {
    manage::revoke_consent(&app, &at.by, &at.tenant, &at.server, &at.user, &at.client).await?;
    Ok(reply::no_content())
}
