//! The OpenAPI 3.1 description of the admin API, generated from the handlers' annotations
//! and the core types' schemas, and served at `GET /admin/openapi.json` without a token.

use actix_web::HttpResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;
use crate::{audit, clients, credentials, keys, servers, tenants, users};

/// Name of the bearer security scheme in the document.
const BEARER: &str = "admin_token";

/// The admin API's OpenAPI document.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Tollgate admin API",
        description = "Manage tenants, their authorization servers, OAuth clients, signing keys and the users of the built-in login; \
            tenant-scoped admin credentials; and read the audit trail. \
            Every operation but this document needs `Authorization: Bearer <token>`: the root \
            admin token, or a tenant-scoped credential (`tgc_…`), which reaches its own tenant \
            only (`403` elsewhere) and, when `read-only`, may only `GET`."
    ),
    paths(
        document,
        tenants::list, tenants::create, tenants::get, tenants::patch, tenants::delete,
        servers::list, servers::create, servers::get, servers::patch, servers::delete,
        clients::list, clients::create, clients::get, clients::replace, clients::delete,
        clients::rotate_secret,
        keys::list, keys::rotate,
        users::list, users::create, users::get, users::patch, users::delete,
        users::consents, users::revoke_consent,
        credentials::list, credentials::create, credentials::revoke,
        audit::list,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Security),
    security(("admin_token" = [])),
    tags(
        (name = "tenants", description = "Tenants: the top-level isolation unit"),
        (name = "servers", description = "Authorization servers (workspaces) inside a tenant"),
        (name = "clients", description = "OAuth clients of a server (RFC 7591 / RFC 7592)"),
        (name = "keys", description = "A server's signing keys"),
        (name = "users", description = "Users of a server's built-in login, and their consents"),
        (name = "credentials", description = "Tenant-scoped admin credentials"),
        (name = "audit", description = "The audit trail of a tenant"),
        (name = "meta", description = "This document"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer scheme, and to every operation that needs it the error answers every
/// authenticated operation can give.
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                BEARER,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "The root admin token (`TOLLGATE_ADMIN_TOKEN`), or a tenant-scoped \
                             credential (`tgc_…`, created at `/admin/tenants/{tid}/credentials`).",
                        ))
                        .build(),
                ),
            );
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            // Operations that set their own `security` opt out of the token.
            for op in operations
                .into_iter()
                .flatten()
                .filter(|op| op.security.is_none())
            {
                let responses = &mut op.responses.responses;
                responses.insert(
                    "401".into(),
                    error("Missing, wrong, expired or revoked bearer token").into(),
                );
                responses.insert(
                    "403".into(),
                    error(
                        "The credential does not reach this tenant, the operation needs the root \
                         token, or a read-only credential tried to change something",
                    )
                    .into(),
                );
                responses.insert(
                    "503".into(),
                    error("The database is unavailable; retry later").into(),
                );
            }
        }
    }
}

/// The OpenAPI document
///
/// Needs no token.
#[utoipa::path(
    get, path = "/admin/openapi.json", tag = "meta", operation_id = "openapi",
    security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json"))
)]
pub(crate) async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
