//! The OpenAPI 3.1 description of the admin API, generated from the handlers' annotations
//! and the core types' schemas, and served at `GET /admin/openapi.json` without a token.
//!
//! Every constraint the server enforces on a field is stated from the constant the validator
//! checks with (one source): the ids' schemas come with their types (`tollgate_core::ids`),
//! the other fields' are filled in here ([`Constraints`]), and property tests beside each
//! validator hold its pattern equal to it. What JSON Schema cannot say (a time in the future,
//! a length in bytes, rules across fields) is in the field's description. Every create
//! operation's `201` carries OpenAPI links to the operations on what it created ([`Links`]),
//! so that a client generator or a stateful fuzzer can follow them.

use actix_web::HttpResponse;
use serde_json::{json, Map, Value};
use tollgate_core::model::users as user_model;
use tollgate_core::model::{
    client, rate_limits, server, tenant, trusted_issuer as trusted, PRINTABLE_PATTERN,
};
use tollgate_core::scope::{MAX_SCOPE_LEN, SCOPE_PATTERN};
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
    modifiers(&Security, &Constraints),
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

/// Applies `f` to the document as JSON (the shape the rules below are written against).
fn edit_json(doc: &mut utoipa::openapi::OpenApi, f: impl FnOnce(&mut Value)) {
    let Ok(mut value) = serde_json::to_value(&*doc) else {
        return;
    };
    f(&mut value);
    if let Ok(edited) = serde_json::from_value(value) {
        *doc = edited;
    }
}

/// A text of printable characters, 1 to `max` characters long.
fn printable(max: usize) -> Value {
    json!({"minLength": 1, "maxLength": max, "pattern": PRINTABLE_PATTERN})
}

/// An `http` or `https` URI of at most `max` bytes (bytes: beyond JSON Schema, so described).
fn http_uri(scheme: &str, max: usize) -> Value {
    json!({
        "format": "uri",
        "pattern": scheme,
        "maxLength": max,
        "description": format!("An absolute URI, at most {max} bytes."),
    })
}

/// The constraints of each body field, from the validators' constants: `(schemas, property,
/// keywords merged into the property's schema)`.
fn field_rules(doc: &Value) -> Vec<(&'static [&'static str], &'static str, Value)> {
    let name = json!({"minLength": 1, "maxLength": tenant::MAX_NAME_CHARS, "pattern": tenant::NAME_PATTERN});
    let signing_algs = doc["components"]["schemas"]["SigningAlg"]["enum"].clone();
    let grant_types: Vec<_> = tollgate_core::oauth::GrantType::ALL
        .iter()
        .map(|g| g.as_str())
        .collect();
    let assertion_algs: Vec<_> = tollgate_core::client_keys::AssertionAlg::HMAC_NAMES
        .iter()
        .chain(tollgate_core::client_keys::AssertionAlg::KEY_NAMES)
        .collect();
    let rate = |min: u32| json!({"minimum": min, "maximum": rate_limits::MAX_SETTING});
    let https = "^[Hh][Tt][Tt][Pp][Ss]://";
    let http_or_https = "^[Hh][Tt][Tt][Pp][Ss]?://";
    const TENANT_BODIES: &[&str] = &["NewTenant", "TenantPatch"];
    const SERVER_BODIES: &[&str] = &["NewServer", "ServerPatch"];
    const TRUSTED_ISSUER: &[&str] = &["TrustedIssuer"];
    const RATE_LIMITS: &[&str] = &["RateLimits", "RateLimitsPatch"];
    const USER_BODIES: &[&str] = &["NewUser", "UserPatch"];
    const METADATA: &[&str] = &["ClientMetadata"];
    vec![
        (TENANT_BODIES, "name", name.clone()),
        (SERVER_BODIES, "name", name.clone()),
        (&["NewCredential"], "name", name),
        (
            &["NewCredential"],
            "expires_at",
            json!({"description": "When the credential stops working: Unix seconds, later than \
                the server's clock when the request arrives (else `400` naming `expires_at`); \
                absent or `null`: never."}),
        ),
        (
            SERVER_BODIES,
            "access_token_ttl",
            json!({"minimum": server::MIN_TOKEN_TTL, "maximum": server::MAX_ACCESS_TOKEN_TTL}),
        ),
        (
            SERVER_BODIES,
            "refresh_token_ttl",
            json!({"minimum": server::MIN_TOKEN_TTL, "maximum": server::MAX_REFRESH_TOKEN_TTL}),
        ),
        (
            SERVER_BODIES,
            "key_rotation_period",
            json!({"minimum": server::MIN_KEY_ROTATION_PERIOD, "maximum": server::MAX_KEY_ROTATION_PERIOD}),
        ),
        (
            SERVER_BODIES,
            "default_audience",
            printable(server::MAX_AUDIENCE_CHARS),
        ),
        (
            SERVER_BODIES,
            "logo_uri",
            http_uri(https, server::MAX_LOGO_URI_BYTES),
        ),
        (
            SERVER_BODIES,
            "brand_color",
            json!({"pattern": server::BRAND_COLOR_PATTERN}),
        ),
        (
            SERVER_BODIES,
            "allowed_token_endpoint_auth_methods",
            json!({"minItems": 1, "description": "Methods clients of this server may register \
                (duplicates are dropped). The two TLS methods only where the gateway receives \
                client certificates; others are `400`."}),
        ),
        (
            SERVER_BODIES,
            "tls_client_ca",
            json!({"maxLength": tollgate_core::client_cert::MAX_CLIENT_CA_BYTES,
                "description": format!("PEM bundle of at most {} CA certificates (`CERTIFICATE` \
                    sections only, each a CA), at most {} bytes, that this server's \
                    `tls_client_auth` certificates must chain to; `null`: the operator's \
                    `--tls-client-ca`.", tollgate_core::client_cert::MAX_CLIENT_CAS,
                    tollgate_core::client_cert::MAX_CLIENT_CA_BYTES)}),
        ),
        (
            SERVER_BODIES,
            "pushed_authorization_request_ttl",
            json!({"minimum": server::MIN_PAR_TTL, "maximum": server::MAX_PAR_TTL}),
        ),
        (
            SERVER_BODIES,
            "introspection_clients",
            json!({"maxItems": server::MAX_INTROSPECTION_CLIENTS}),
        ),
        (
            SERVER_BODIES,
            "trusted_issuers",
            json!({"maxItems": trusted::MAX_TRUSTED_ISSUERS,
                "description": "Issuers whose JWTs the JWT bearer grant (RFC 7523) and token \
                    exchange (RFC 8693) accept. Each names exactly one of `jwks` (a JWK Set of \
                    public RS256/PS256/ES256/EdDSA keys) and `jwks_uri` (https, public address, \
                    fetched like a client's); issuers are unique."}),
        ),
        (
            TRUSTED_ISSUER,
            "issuer",
            json!({"minLength": 1, "maxLength": trusted::MAX_ISSUER_CHARS, "pattern": PRINTABLE_PATTERN}),
        ),
        (
            TRUSTED_ISSUER,
            "jwks_uri",
            json!({"maxLength": trusted::MAX_ISSUER_CHARS,
                "description": "https URL of the issuer's JWK Set (plain http and loopback only \
                    with --outbound-allow-loopback); exclusive with `jwks`."}),
        ),
        (
            TRUSTED_ISSUER,
            "subjects",
            json!({"maxItems": trusted::MAX_SUBJECTS,
                "items": {"type": "string", "minLength": 1, "maxLength": trusted::MAX_ISSUER_CHARS,
                    "pattern": PRINTABLE_PATTERN}}),
        ),
        (
            TRUSTED_ISSUER,
            "scope",
            json!({"maxLength": MAX_SCOPE_LEN, "pattern": SCOPE_PATTERN}),
        ),
        (RATE_LIMITS, "client_per_second", rate(0)),
        (RATE_LIMITS, "client_burst", rate(1)),
        (RATE_LIMITS, "address_per_second", rate(0)),
        (RATE_LIMITS, "address_burst", rate(1)),
        (
            USER_BODIES,
            "username",
            json!({"minLength": 1, "maxLength": user_model::MAX_USERNAME_CHARS, "pattern": user_model::USERNAME_PATTERN}),
        ),
        (
            USER_BODIES,
            "password",
            json!({"minLength": user_model::MIN_PASSWORD_CHARS, "description": format!(
                "At least {} characters and at most {} bytes of UTF-8.",
                user_model::MIN_PASSWORD_CHARS, user_model::MAX_PASSWORD_BYTES)}),
        ),
        (USER_BODIES, "claims", {
            let mut claims = user_model::claims_schema();
            claims["description"] = json!(format!(
                "OpenID Connect standard claims, at most {} bytes of JSON.",
                user_model::MAX_CLAIMS_BYTES
            ));
            claims
        }),
        (
            METADATA,
            "redirect_uris",
            json!({"maxItems": client::MAX_REDIRECT_URIS, "items": {
                "format": "uri", "maxLength": client::MAX_URI_BYTES, "pattern": "^[^#]*$",
                "description": format!("An absolute URI without a fragment, at most {} bytes.", client::MAX_URI_BYTES)}}),
        ),
        (
            METADATA,
            "grant_types",
            json!({"items": {"enum": grant_types}}),
        ),
        (
            METADATA,
            "response_types",
            json!({"items": {"enum": client::RESPONSE_TYPES}}),
        ),
        (
            METADATA,
            "client_name",
            printable(client::MAX_CLIENT_NAME_CHARS),
        ),
        (
            METADATA,
            "software_id",
            printable(client::MAX_CLIENT_NAME_CHARS),
        ),
        (
            METADATA,
            "software_version",
            printable(client::MAX_SOFTWARE_VERSION_CHARS),
        ),
        (
            METADATA,
            "client_uri",
            http_uri(http_or_https, client::MAX_URI_BYTES),
        ),
        (
            METADATA,
            "logo_uri",
            http_uri(http_or_https, client::MAX_URI_BYTES),
        ),
        (
            METADATA,
            "tos_uri",
            http_uri(http_or_https, client::MAX_URI_BYTES),
        ),
        (
            METADATA,
            "policy_uri",
            http_uri(http_or_https, client::MAX_URI_BYTES),
        ),
        (
            METADATA,
            "jwks_uri",
            http_uri(http_or_https, client::MAX_URI_BYTES),
        ),
        (
            METADATA,
            "post_logout_redirect_uris",
            json!({"maxItems": client::MAX_REDIRECT_URIS, "items": http_uri(http_or_https, client::MAX_URI_BYTES)}),
        ),
        (
            METADATA,
            "backchannel_logout_uri",
            http_uri(http_or_https, client::MAX_URI_BYTES),
        ),
        (
            METADATA,
            "frontchannel_logout_uri",
            http_uri(http_or_https, client::MAX_URI_BYTES),
        ),
        (
            METADATA,
            "scope",
            json!({"maxLength": MAX_SCOPE_LEN, "pattern": SCOPE_PATTERN}),
        ),
        (
            METADATA,
            "contacts",
            json!({"maxItems": client::MAX_CONTACTS, "items": printable(client::MAX_CONTACT_CHARS)}),
        ),
        (
            METADATA,
            "audience",
            json!({"maxItems": client::MAX_AUDIENCES, "items": printable(client::MAX_AUDIENCE_CHARS)}),
        ),
        (
            METADATA,
            "id_token_signed_response_alg",
            json!({"enum": signing_algs}),
        ),
        (
            METADATA,
            "token_endpoint_auth_signing_alg",
            json!({"enum": assertion_algs}),
        ),
        (
            METADATA,
            "request_object_signing_alg",
            json!({"enum": assertion_algs, "description": "The one JWS alg of the client's \
                request objects (RFC 9101): HS256, HS384 or HS512 for a client_secret_jwt client, a \
                public-key alg for a client with `jwks` or `jwks_uri`; `none` is never accepted."}),
        ),
        (
            METADATA,
            "authorization_signed_response_alg",
            json!({"enum": signing_algs, "description": "JARM: the alg of the client's \
                JWT-secured authorization responses, one the server signs ID tokens with; default RS256."}),
        ),
        (
            METADATA,
            "jwks",
            json!({"required": ["keys"], "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
                "description": "The client's JWK Set (public keys only), inline; mutually exclusive with `jwks_uri`."}),
        ),
    ]
}

/// Merges `keywords` into `schema`, keeping `null` allowed where it was: into the non-null
/// branch of a `oneOf`, and with `null` added to an `enum` of a nullable type.
fn merge(schema: &mut Value, keywords: &Value) {
    if let Some(branches) = schema.get_mut("oneOf").and_then(Value::as_array_mut) {
        for branch in branches.iter_mut().filter(|b| b["type"] != "null") {
            merge(branch, keywords);
        }
        return;
    }
    let nullable = schema["type"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "null"));
    let (Some(target), Some(keywords)) = (schema.as_object_mut(), keywords.as_object()) else {
        return;
    };
    for (key, value) in keywords {
        let mut value = value.clone();
        if key == "enum" && nullable {
            if let Some(values) = value.as_array_mut() {
                values.push(Value::Null);
            }
        }
        if key == "type" && nullable {
            continue;
        }
        match (target.get_mut(key), &value) {
            (Some(existing @ Value::Object(_)), Value::Object(_)) => merge(existing, &value),
            _ => {
                target.insert(key.clone(), value);
            }
        }
    }
}

/// The properties of a component schema (also those inside an `allOf`).
fn properties<'a>(doc: &'a mut Value, schema: &str) -> Vec<&'a mut Map<String, Value>> {
    // `get_mut`, not indexing: indexing a missing key would insert a `null`.
    let Some(root) = doc
        .get_mut("components")
        .and_then(|c| c.get_mut("schemas"))
        .and_then(|s| s.get_mut(schema))
    else {
        return Vec::new();
    };
    if root.get("allOf").is_some() {
        root["allOf"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .filter_map(|part| part.get_mut("properties").and_then(Value::as_object_mut))
            .collect()
    } else {
        root.get_mut("properties")
            .and_then(Value::as_object_mut)
            .into_iter()
            .collect()
    }
}

/// States each body field's constraints ([`field_rules`]). A rule naming a schema or field
/// that is not in the document is a bug the `every_rule_names_a_field` test catches.
struct Constraints;

impl Modify for Constraints {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        edit_json(doc, |doc| {
            for (schemas, field, keywords) in field_rules(doc) {
                for schema in schemas {
                    for props in properties(doc, schema) {
                        if let Some(property) = props.get_mut(field) {
                            merge(property, &keywords);
                        }
                    }
                }
            }
        });
    }
}

impl ApiDoc {
    /// The document as served: [`ApiDoc::openapi`] with the OpenAPI links added ([`links`];
    /// on the JSON, since utoipa 5 serialises a `Link`'s `operationId` as `operation_id`).
    #[must_use]
    pub fn document() -> Value {
        let mut doc = serde_json::to_value(Self::openapi()).unwrap_or(Value::Null);
        links(&mut doc);
        empty_means_absent(&mut doc);
        doc
    }
}

/// The path parameters of a path template, in order.
fn path_params(template: &str) -> Vec<&str> {
    template
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

/// Optional query parameters that the server reads as absent when empty (`?cursor=`): they
/// say so with `allowEmptyValue` (the audit and paging tests parse each one empty).
pub(crate) const EMPTY_IS_ABSENT: &[&str] = &[
    "cursor",
    "action",
    "actor",
    "resource",
    "client_id",
    "since",
    "until",
];

fn empty_means_absent(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut())
    {
        let params = op.get_mut("parameters").and_then(Value::as_array_mut);
        for p in params.into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or_default();
            if p["in"] == "query" && EMPTY_IS_ABSENT.contains(&name) {
                p["allowEmptyValue"] = Value::Bool(true);
            }
        }
    }
}

/// Adds OpenAPI links to every create operation's `201`: to each operation on the created
/// resource or below it whose path parameters are the create's own plus the new id, taken
/// from the response body (`id`, or `client_id` for clients).
fn links(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object().cloned() else {
        return;
    };
    for (create_path, item) in &paths {
        if item["post"]["responses"].get("201").is_none() {
            continue;
        }
        let own = path_params(create_path);
        let mut links = Map::new();
        for (target_path, target) in &paths {
            let Some(rest) = target_path.strip_prefix(&format!("{create_path}/")) else {
                continue;
            };
            let Some(new_id) = rest
                .split('/')
                .next()
                .and_then(|s| s.strip_prefix('{')?.strip_suffix('}'))
            else {
                continue;
            };
            let params = path_params(target_path);
            if params.iter().any(|p| *p != new_id && !own.contains(p)) {
                continue;
            }
            let field = if new_id == "client_id" {
                "client_id"
            } else {
                "id"
            };
            for op in target.as_object().into_iter().flat_map(Map::values) {
                let Some(operation_id) = op["operationId"].as_str() else {
                    continue;
                };
                let parameters: Map<String, Value> = params
                    .iter()
                    .map(|p| {
                        let from = if *p == new_id {
                            format!("$response.body#/{field}")
                        } else {
                            format!("$request.path.{p}")
                        };
                        ((*p).to_owned(), Value::String(from))
                    })
                    .collect();
                links.insert(
                    operation_id.to_owned(),
                    json!({"operationId": operation_id, "parameters": parameters}),
                );
            }
        }
        if !links.is_empty() {
            doc["paths"][create_path]["post"]["responses"]["201"]["links"] = Value::Object(links);
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
    HttpResponse::Ok().json(ApiDoc::document())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_names_a_field() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for (schemas, field, _) in field_rules(&doc) {
            let mut doc = doc.clone();
            let found = schemas.iter().any(|schema| {
                properties(&mut doc, schema)
                    .iter()
                    .any(|p| p.contains_key(field))
            });
            assert!(found, "no field {field} in {schemas:?}");
        }
    }

    #[test]
    fn path_parameters_carry_the_id_grammar() {
        let doc = ApiDoc::document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for op in item.as_object().unwrap().values() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    if p["in"] == "path" {
                        let schema = p["schema"]["$ref"].as_str().unwrap_or_default();
                        assert!(schema.ends_with("Id"), "{path} {}: {schema}", p["name"]);
                    }
                }
            }
        }
        assert_eq!(
            doc["components"]["schemas"]["TenantId"]["pattern"],
            tollgate_core::ids::SLUG_PATTERN
        );
    }

    #[test]
    fn the_served_document_is_the_generated_one_plus_links_and_empty_values() {
        let mut served = ApiDoc::document();
        // Strip what `document` adds; the rest must be untouched (no stray `null`s).
        for item in served["paths"].as_object_mut().unwrap().values_mut() {
            for op in item.as_object_mut().unwrap().values_mut() {
                if let Some(r) = op["responses"].get_mut("201") {
                    r.as_object_mut().unwrap().remove("links");
                }
                if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                    for p in params {
                        p.as_object_mut().unwrap().remove("allowEmptyValue");
                    }
                }
            }
        }
        assert_eq!(served, serde_json::to_value(ApiDoc::openapi()).unwrap());
    }

    #[test]
    fn every_create_links_to_what_it_created() {
        let doc = ApiDoc::document();
        let links = |path: &str| doc["paths"][path]["post"]["responses"]["201"]["links"].clone();
        let rows = [
            ("/admin/tenants", "get_tenant", "tid", "$response.body#/id"),
            (
                "/admin/tenants",
                "delete_tenant",
                "tid",
                "$response.body#/id",
            ),
            (
                "/admin/tenants/{tid}/servers",
                "patch_server",
                "aid",
                "$response.body#/id",
            ),
            (
                "/admin/tenants/{tid}/servers",
                "patch_server",
                "tid",
                "$request.path.tid",
            ),
            (
                "/admin/tenants/{tid}/servers/{aid}/clients",
                "replace_client",
                "client_id",
                "$response.body#/client_id",
            ),
            (
                "/admin/tenants/{tid}/servers/{aid}/clients",
                "rotate_client_secret",
                "client_id",
                "$response.body#/client_id",
            ),
            (
                "/admin/tenants/{tid}/servers/{aid}/users",
                "delete_user",
                "user_id",
                "$response.body#/id",
            ),
            (
                "/admin/tenants/{tid}/credentials",
                "revoke_credential",
                "credential_id",
                "$response.body#/id",
            ),
        ];
        for (create, target, param, from) in rows {
            let link = &links(create)[target];
            assert_eq!(link["operationId"], target, "{create} -> {target}");
            assert_eq!(link["parameters"][param], from, "{create} -> {target}");
        }
        // Every create operation has links.
        for (path, item) in doc["paths"].as_object().unwrap() {
            if item["post"]["responses"].get("201").is_some() {
                assert!(
                    links(path).as_object().is_some_and(|l| !l.is_empty()),
                    "{path}"
                );
            }
        }
    }
}
