//! The admin API end to end through `tollgate_admin::configure`, against a real `Tollgate` on
//! an in-memory SQLite database: CRUD, pagination, keys, the OpenAPI document, a table of bad
//! requests with the status and error code each must get; tenant-scoped credentials, tenant
//! isolation at every documented path and method, and the audit trail of every change.

use std::sync::Arc;

use actix_web::body::to_bytes;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::Method;
use actix_web::test::{self, TestRequest};
use actix_web::{web, App};
use serde_json::{json, Value};
use tollgate_admin::AdminAuth;
use tollgate_core::keys::MasterKey;
use tollgate_core::secrets::AdminToken;
use tollgate_core::store::{open_repository, open_short_lived};
use tollgate_core::{Tollgate, TollgateOptions};

const TOKEN: &str = "tga_test-root-token";

async fn state() -> Arc<Tollgate> {
    let repo = open_repository("sqlite::memory:")
        .await
        .expect("open sqlite");
    repo.migrate().await.expect("migrate");
    let short_lived = open_short_lived(None).await.expect("open memory store");
    Arc::new(Tollgate::new(
        repo,
        short_lived,
        MasterKey::generate().0,
        TollgateOptions::default(),
    ))
}

fn app(
    state: Arc<Tollgate>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::from(state))
        .app_data(web::Data::new(AdminAuth::new(
            AdminToken::new(TOKEN.to_owned()).hash(),
        )))
        .configure(tollgate_admin::configure)
}

/// A response, read whole.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn description(&self) -> &str {
        self.body["error_description"].as_str().unwrap_or_default()
    }
}

/// The app under test. `to_request` is `TestRequest::to_request`, kept as a function
/// pointer so that the request type need not be named.
struct Api<S, R> {
    svc: S,
    to_request: fn(TestRequest) -> R,
}

macro_rules! start {
    () => {
        start!(state().await)
    };
    ($state:expr) => {
        Api {
            svc: test::init_service(app($state)).await,
            to_request: TestRequest::to_request,
        }
    };
}

impl<S, R> Api<S, R>
where
    S: Service<R, Response = ServiceResponse, Error = actix_web::Error>,
{
    /// Sends `req` as is (no token added).
    async fn send(&self, req: TestRequest) -> Reply {
        let resp = self
            .svc
            .call((self.to_request)(req))
            .await
            .expect("the service answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = to_bytes(resp.into_body()).await.expect("read body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("the body is JSON")
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = authed(TestRequest::default().method(method).uri(path));
        if let Some(body) = body {
            req = req.set_json(body);
        }
        self.send(req).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    async fn post_empty(&self, path: &str) -> Reply {
        self.call(Method::POST, path, None).await
    }

    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// Creates what `path` + `body` describe and insists on 201.
    async fn create(&self, path: &str, body: Value) -> Value {
        let r = self.post(path, body).await;
        assert_eq!(r.status, 201, "POST {path}: {r:?}");
        r.body
    }
}

fn authed(req: TestRequest) -> TestRequest {
    req.insert_header((header::AUTHORIZATION, format!("Bearer {TOKEN}")))
}

#[actix_web::test]
async fn crud_happy_path_for_tenant_server_and_client() {
    let api = start!();

    // Tenant.
    let t = api
        .create("/admin/tenants", json!({"id": "acme", "name": "Acme"}))
        .await;
    assert_eq!(
        (t["id"].as_str(), t["name"].as_str()),
        (Some("acme"), Some("Acme"))
    );
    let r = api.get("/admin/tenants/acme").await;
    assert_eq!((r.status, &r.body), (200, &t));
    assert_eq!(r.header(header::CONTENT_TYPE), Some("application/json"));
    let r = api
        .patch("/admin/tenants/acme", json!({"name": "Acme Corp"}))
        .await;
    assert_eq!(
        (r.status, r.body["name"].as_str()),
        (200, Some("Acme Corp"))
    );

    // Server.
    let s = api
        .create(
            "/admin/tenants/acme/servers",
            json!({"id": "main", "name": "Main"}),
        )
        .await;
    assert_eq!(s["tenant_id"], "acme");
    assert_eq!(s["signing_alg"], "ES256");
    assert_eq!(s["access_token_ttl"], 3600);
    let r = api.get("/admin/tenants/acme/servers/main").await;
    assert_eq!((r.status, &r.body), (200, &s));
    let r = api
        .patch(
            "/admin/tenants/acme/servers/main",
            json!({"access_token_ttl": 600}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["access_token_ttl"].as_i64()),
        (200, Some(600))
    );
    assert_eq!(r.body["name"], "Main", "fields left out are unchanged");
    let r = api.get("/admin/tenants/acme/servers").await;
    assert_eq!(
        (r.status, r.body["items"][0]["id"].as_str()),
        (200, Some("main"))
    );

    // Client: the secret is shown on creation, never on reads.
    let clients = "/admin/tenants/acme/servers/main/clients";
    let r = api
        .post(
            clients,
            json!({
                "client_id": "svc",
                "client_name": "Service",
                "grant_types": ["client_credentials"],
                "scope": "read write",
                "not_a_metadata_field": true,
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    let c = r.body;
    assert_eq!(c["client_id"], "svc");
    assert_eq!(c["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(c["client_secret_expires_at"], 0);
    assert!(c["client_id_issued_at"].as_i64().is_some_and(|t| t > 0));
    assert!(
        c.get("not_a_metadata_field").is_none(),
        "unknown fields are not stored"
    );
    let first_secret = c["client_secret"]
        .as_str()
        .expect("secret on create")
        .to_owned();

    let r = api.get(&format!("{clients}/svc")).await;
    assert_eq!(r.status, 200);
    assert!(r.body.get("client_secret").is_none(), "{r:?}");
    assert_eq!(r.body["client_name"], "Service");
    assert_eq!(r.header(header::CACHE_CONTROL), None);
    let r = api.get(clients).await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1));
    assert!(r.body["items"][0].get("client_secret").is_none());

    // A generated client id.
    let generated = api
        .create(clients, json!({"grant_types": ["client_credentials"]}))
        .await;
    assert_eq!(generated["client_id"].as_str().map(str::len), Some(36));

    // PUT replaces the metadata: fields left out go back to their defaults.
    let r = api
        .put(
            &format!("{clients}/svc"),
            json!({
                "client_id": "svc",
                "client_name": "Service v2",
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_post",
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["client_name"], "Service v2");
    assert_eq!(r.body["token_endpoint_auth_method"], "client_secret_post");
    assert!(r.body.get("scope").is_none(), "replaced, not merged: {r:?}");
    assert!(
        r.body.get("client_secret").is_none(),
        "the hashed secret still serves"
    );

    // Rotation returns a new secret once.
    let r = api.post_empty(&format!("{clients}/svc/secret")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    let second = r.body["client_secret"]
        .as_str()
        .expect("secret on rotation");
    assert_ne!(second, first_secret);
    let r = api.get(&format!("{clients}/svc")).await;
    assert!(r.body.get("client_secret").is_none());

    // Deletes answer 204, then the object is gone.
    for path in [
        format!("{clients}/svc"),
        "/admin/tenants/acme/servers/main".to_owned(),
        "/admin/tenants/acme".to_owned(),
    ] {
        let r = api.delete(&path).await;
        assert_eq!((r.status, &r.body), (204, &Value::Null), "DELETE {path}");
        let r = api.get(&path).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (404, Some("not_found")),
            "GET {path}"
        );
        let r = api.delete(&path).await;
        assert_eq!(r.status, 404, "DELETE {path} again");
    }
}

#[actix_web::test]
async fn lists_page_by_page_with_a_cursor() {
    let api = start!();
    for id in ["t5", "t3", "t1", "t4", "t2"] {
        api.create("/admin/tenants", json!({"id": id, "name": id}))
            .await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/admin/tenants?limit=2&cursor={c}"),
            None => "/admin/tenants?limit=2".to_owned(),
        };
        let r = api.get(&path).await;
        assert_eq!(r.status, 200, "{r:?}");
        let items = r.body["items"].as_array().expect("items").clone();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .filter_map(|t| t["id"].as_str().map(str::to_owned)),
        );
        pages += 1;
        match &r.body["next_cursor"] {
            Value::Null => break,
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("next_cursor: {other}"),
        }
        assert!(pages < 5, "the walk ends");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["t1", "t2", "t3", "t4", "t5"]);

    // The default page holds them all and says so.
    let r = api.get("/admin/tenants").await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(r.body["next_cursor"], Value::Null);
}

#[actix_web::test]
async fn lists_and_rotates_keys() {
    let api = start!();
    api.create("/admin/tenants", json!({"id": "acme", "name": "Acme"}))
        .await;
    api.create(
        "/admin/tenants/acme/servers",
        json!({"id": "main", "name": "Main"}),
    )
    .await;
    let keys = "/admin/tenants/acme/servers/main/keys";

    let r = api.get(keys).await;
    assert_eq!(r.status, 200, "{r:?}");
    let before = r.body["keys"].as_array().expect("keys").clone();
    let mut algs: Vec<_> = before.iter().filter_map(|k| k["alg"].as_str()).collect();
    algs.sort_unstable();
    assert_eq!(
        algs,
        ["ES256", "PS256", "RS256"],
        "the signing key, the ID-token RS256 key and its PS256 view"
    );
    let rs256 = before.iter().find(|k| k["alg"] == "RS256").unwrap();
    let view = before.iter().find(|k| k["alg"] == "PS256").unwrap();
    assert_eq!(
        view["kid"],
        format!("{}-PS256", rs256["kid"].as_str().unwrap())
    );
    assert_eq!((&view["n"], &view["e"]), (&rs256["n"], &rs256["e"]));
    for k in &before {
        assert_eq!(k["status"], "current", "{k}");
        assert!(k["kid"].is_string() && k["created_at"].is_i64(), "{k}");
        assert!(k.get("d").is_none(), "public halves only: {k}");
    }

    let r = api.post_empty(&format!("{keys}/rotate")).await;
    assert_eq!(r.status, 200, "{r:?}");
    let after = r.body["keys"].as_array().expect("keys").clone();
    assert_eq!(after.len(), 6, "{after:?}");
    for old in &before {
        let k = after
            .iter()
            .find(|k| k["kid"] == old["kid"])
            .expect("old key still published");
        assert_eq!(k["status"], "retiring");
        assert!(k["retire_at"].is_i64());
    }
    let current: Vec<_> = after.iter().filter(|k| k["status"] == "current").collect();
    assert_eq!(current.len(), 3);
    assert!(current
        .iter()
        .all(|k| before.iter().all(|o| o["kid"] != k["kid"])));

    assert_eq!(api.get(keys).await.body["keys"], Value::Array(after));
}

#[actix_web::test]
async fn openapi_document_is_public_and_complete() {
    let api = start!();
    let r = api
        .send(TestRequest::get().uri("/admin/openapi.json"))
        .await;
    assert_eq!(r.status, 200, "needs no token");
    assert_eq!(r.header(header::CONTENT_TYPE), Some("application/json"));
    let doc = r.body;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/admin/tenants",
        "/admin/tenants/{tid}",
        "/admin/tenants/{tid}/servers",
        "/admin/tenants/{tid}/servers/{aid}",
        "/admin/tenants/{tid}/servers/{aid}/clients",
        "/admin/tenants/{tid}/servers/{aid}/clients/{client_id}",
        "/admin/tenants/{tid}/servers/{aid}/clients/{client_id}/secret",
        "/admin/tenants/{tid}/servers/{aid}/keys",
        "/admin/tenants/{tid}/servers/{aid}/keys/rotate",
        "/admin/tenants/{tid}/credentials",
        "/admin/tenants/{tid}/credentials/{credential_id}",
        "/admin/tenants/{tid}/audit",
        "/admin/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    for status in ["401", "403"] {
        assert!(doc["paths"]["/admin/tenants"]["get"]["responses"]
            .get(status)
            .is_some());
    }
    assert!(doc["paths"]["/admin/openapi.json"]["get"]["responses"]
        .get("401")
        .is_none());
    for schema in [
        "Tenant",
        "NewTenant",
        "Server",
        "NewServer",
        "ClientView",
        "NewClient",
        "KeyView",
        "ErrorBody",
        "NewCredential",
        "CredentialView",
        "AuditEvent",
        "RateLimits",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "{schema}"
        );
    }
}

/// One bad request and what it must get.
struct Row {
    name: &'static str,
    req: TestRequest,
    status: u16,
    error: &'static str,
    /// A piece of `error_description`, usually the field it names.
    mentions: &'static str,
}

fn row(
    name: &'static str,
    req: TestRequest,
    status: u16,
    error: &'static str,
    mentions: &'static str,
) -> Row {
    Row {
        name,
        req,
        status,
        error,
        mentions,
    }
}

/// An authenticated request with a raw JSON body.
fn json_req(method: Method, path: &str, body: &str) -> TestRequest {
    authed(TestRequest::default().method(method).uri(path))
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .set_payload(body.to_owned())
}

fn authed_get(path: &str) -> TestRequest {
    authed(TestRequest::get().uri(path))
}

#[actix_web::test]
#[allow(clippy::too_many_lines)] // One row per case reads best as one table.
async fn bad_requests_get_the_right_status_and_error() {
    let api = start!();
    for (tenant, client) in [("acme", true), ("other", false)] {
        api.create("/admin/tenants", json!({"id": tenant, "name": tenant}))
            .await;
        api.create(
            &format!("/admin/tenants/{tenant}/servers"),
            json!({"id": "main", "name": "Main"}),
        )
        .await;
        if client {
            api.create(
                &format!("/admin/tenants/{tenant}/servers/main/clients"),
                json!({"client_id": "svc", "grant_types": ["client_credentials"]}),
            )
            .await;
        }
    }
    let servers = "/admin/tenants/acme/servers";
    let clients = "/admin/tenants/acme/servers/main/clients";
    let oversized = format!(r#"{{"id":"big","name":"{}"}}"#, "x".repeat(256 * 1024));
    use Method as M;

    let rows = vec![
        // Authentication.
        row(
            "no token",
            TestRequest::get().uri("/admin/tenants"),
            401,
            "unauthorized",
            "bearer token",
        ),
        row(
            "wrong token",
            TestRequest::get()
                .uri("/admin/tenants")
                .insert_header((header::AUTHORIZATION, "Bearer tga_wrong")),
            401,
            "unauthorized",
            "not valid",
        ),
        row(
            "basic credentials",
            TestRequest::get()
                .uri("/admin/tenants")
                .insert_header((header::AUTHORIZATION, "Basic YTpi")),
            401,
            "unauthorized",
            "Bearer",
        ),
        row(
            "no token before a bad body",
            TestRequest::post()
                .uri("/admin/tenants")
                .insert_header((header::CONTENT_TYPE, "text/plain"))
                .set_payload("x"),
            401,
            "unauthorized",
            "",
        ),
        // Bodies.
        row(
            "non-JSON content type",
            authed(TestRequest::post().uri("/admin/tenants"))
                .insert_header((header::CONTENT_TYPE, "text/plain"))
                .set_payload(r#"{"id":"x","name":"X"}"#),
            415,
            "unsupported_media_type",
            "application/json",
        ),
        row(
            "no content type",
            authed(TestRequest::post().uri("/admin/tenants"))
                .set_payload(r#"{"id":"x","name":"X"}"#),
            415,
            "unsupported_media_type",
            "",
        ),
        row(
            "invalid JSON",
            json_req(M::POST, "/admin/tenants", r#"{"id":"#),
            400,
            "invalid_request",
            "invalid JSON at line 1 column 6",
        ),
        row(
            "empty body",
            json_req(M::POST, "/admin/tenants", ""),
            400,
            "invalid_request",
            "empty",
        ),
        row(
            "array body",
            json_req(M::POST, "/admin/tenants", r#"["x","X"]"#),
            400,
            "invalid_request",
            "JSON object",
        ),
        row(
            "unknown field in tenant body",
            json_req(
                M::POST,
                "/admin/tenants",
                r#"{"id":"x","name":"X","color":"red"}"#,
            ),
            400,
            "invalid_request",
            "color",
        ),
        row(
            "unknown field in tenant patch",
            json_req(M::PATCH, "/admin/tenants/acme", r#"{"id":"y"}"#),
            400,
            "invalid_request",
            "unknown field `id`",
        ),
        row(
            "missing id",
            json_req(M::POST, "/admin/tenants", r#"{"name":"X"}"#),
            400,
            "invalid_request",
            "missing field `id`",
        ),
        row(
            "bad tenant id in body",
            json_req(M::POST, "/admin/tenants", r#"{"id":"Acme!","name":"X"}"#),
            400,
            "invalid_request",
            "id: ",
        ),
        row(
            "bad tenant name",
            json_req(M::POST, "/admin/tenants", r#"{"id":"x","name":""}"#),
            400,
            "invalid_request",
            "name: ",
        ),
        row(
            "oversized body",
            json_req(M::POST, "/admin/tenants", &oversized),
            413,
            "invalid_request",
            "larger than 262144 bytes (the limit)",
        ),
        // Path parameters.
        row(
            "bad tenant id in path",
            authed_get("/admin/tenants/Acme!"),
            400,
            "invalid_request",
            "tid: ",
        ),
        row(
            "bad server id in path",
            authed_get("/admin/tenants/acme/servers/-main"),
            400,
            "invalid_request",
            "aid: ",
        ),
        row(
            "bad client id in path",
            authed_get(&format!("{clients}/a%20b")),
            400,
            "invalid_request",
            "client_id: ",
        ),
        // Lists.
        row(
            "limit zero",
            authed_get("/admin/tenants?limit=0"),
            400,
            "invalid_request",
            "limit",
        ),
        row(
            "limit too large",
            authed_get("/admin/tenants?limit=201"),
            400,
            "invalid_request",
            "limit",
        ),
        row(
            "limit not a number",
            authed_get(&format!("{clients}?limit=ten")),
            400,
            "invalid_request",
            "limit",
        ),
        row(
            "cursor too long",
            authed_get(&format!("/admin/tenants?cursor={}", "c".repeat(129))),
            400,
            "invalid_request",
            "cursor",
        ),
        // Existence.
        row(
            "duplicate tenant",
            json_req(M::POST, "/admin/tenants", r#"{"id":"acme","name":"Again"}"#),
            409,
            "conflict",
            "tenant with this id already exists",
        ),
        row(
            "duplicate server",
            json_req(M::POST, servers, r#"{"id":"main","name":"Again"}"#),
            409,
            "conflict",
            "server with this id already exists",
        ),
        row(
            "duplicate client",
            json_req(
                M::POST,
                clients,
                r#"{"client_id":"svc","grant_types":["client_credentials"]}"#,
            ),
            409,
            "conflict",
            "client with this id already exists",
        ),
        row(
            "unknown tenant",
            authed_get("/admin/tenants/nobody"),
            404,
            "not_found",
            "tenant not found",
        ),
        row(
            "server in unknown tenant",
            json_req(
                M::POST,
                "/admin/tenants/nobody/servers",
                r#"{"id":"main","name":"Main"}"#,
            ),
            404,
            "not_found",
            "tenant not found",
        ),
        row(
            "unknown server",
            authed_get("/admin/tenants/acme/servers/nope"),
            404,
            "not_found",
            "server not found",
        ),
        row(
            "client in unknown server",
            json_req(
                M::POST,
                "/admin/tenants/acme/servers/nope/clients",
                r#"{"grant_types":["client_credentials"]}"#,
            ),
            404,
            "not_found",
            "server not found",
        ),
        row(
            "keys of unknown server",
            authed_get("/admin/tenants/acme/servers/nope/keys"),
            404,
            "not_found",
            "server not found",
        ),
        row(
            "unknown client",
            authed_get(&format!("{clients}/nope")),
            404,
            "not_found",
            "client not found",
        ),
        row(
            "rotate secret of unknown client",
            authed(TestRequest::post().uri(&format!("{clients}/nope/secret"))),
            404,
            "not_found",
            "client not found",
        ),
        // Client metadata.
        row(
            "redirect URI with a fragment",
            json_req(
                M::POST,
                clients,
                r#"{"redirect_uris":["https://app.example/cb#frag"]}"#,
            ),
            400,
            "invalid_redirect_uri",
            "redirect_uris: ",
        ),
        // Refused today because core does not serve `none` yet (AuthMethod::SERVED); once
        // it does, the refusal must name `grant_types`.
        row(
            "public client with client_credentials",
            json_req(
                M::POST,
                clients,
                r#"{"token_endpoint_auth_method":"none","grant_types":["client_credentials"]}"#,
            ),
            400,
            "invalid_client_metadata",
            "",
        ),
        row(
            "redirect_uris of the wrong type",
            json_req(
                M::POST,
                clients,
                r#"{"redirect_uris":"https://app.example/cb"}"#,
            ),
            400,
            "invalid_client_metadata",
            "redirect_uris: invalid type: string",
        ),
        row(
            "unsupported grant type",
            json_req(M::POST, clients, r#"{"grant_types":["password"]}"#),
            400,
            "invalid_client_metadata",
            "grant_types: ",
        ),
        row(
            "PUT with another client_id",
            json_req(
                M::PUT,
                &format!("{clients}/svc"),
                r#"{"client_id":"other","grant_types":["client_credentials"]}"#,
            ),
            400,
            "invalid_client_metadata",
            "client_id: ",
        ),
        // Server settings.
        row(
            "signing_alg HS256",
            json_req(
                M::POST,
                servers,
                r#"{"id":"s2","name":"S","signing_alg":"HS256"}"#,
            ),
            400,
            "invalid_request",
            "signing_alg: ",
        ),
        row(
            "access_token_ttl 5",
            json_req(
                M::POST,
                servers,
                r#"{"id":"s2","name":"S","access_token_ttl":5}"#,
            ),
            400,
            "invalid_request",
            "access_token_ttl: ",
        ),
        row(
            "access_token_ttl 5 in a patch",
            json_req(
                M::PATCH,
                &format!("{servers}/main"),
                r#"{"access_token_ttl":5}"#,
            ),
            400,
            "invalid_request",
            "access_token_ttl: ",
        ),
        row(
            "unknown field in server body",
            json_req(M::POST, servers, r#"{"id":"s2","name":"S","ttl":60}"#),
            400,
            "invalid_request",
            "ttl",
        ),
        // Tenant isolation: `other` has a server `main` too, but not acme's client.
        row(
            "client of another tenant (GET)",
            authed_get("/admin/tenants/other/servers/main/clients/svc"),
            404,
            "not_found",
            "client not found",
        ),
        row(
            "client of another tenant (PUT)",
            json_req(
                M::PUT,
                "/admin/tenants/other/servers/main/clients/svc",
                r#"{"grant_types":["client_credentials"]}"#,
            ),
            404,
            "not_found",
            "client not found",
        ),
        row(
            "client of another tenant (secret)",
            authed(TestRequest::post().uri("/admin/tenants/other/servers/main/clients/svc/secret")),
            404,
            "not_found",
            "client not found",
        ),
        row(
            "client of another tenant (DELETE)",
            authed(TestRequest::delete().uri("/admin/tenants/other/servers/main/clients/svc")),
            404,
            "not_found",
            "client not found",
        ),
        // Routing.
        row(
            "unknown path",
            authed_get("/admin/nothing-here"),
            404,
            "not_found",
            "no admin endpoint",
        ),
        row(
            "unknown path, no token",
            TestRequest::get().uri("/admin/tenants/acme/servers/main/users/x/y"),
            404,
            "not_found",
            "",
        ),
        row(
            "wrong method",
            authed(TestRequest::delete().uri("/admin/tenants")),
            405,
            "method_not_allowed",
            "GET, POST",
        ),
        row(
            "wrong method on keys",
            authed(TestRequest::put().uri("/admin/tenants/acme/servers/main/keys")),
            405,
            "method_not_allowed",
            "GET",
        ),
    ];

    let mut failures = Vec::new();
    for Row {
        name,
        req,
        status,
        error,
        mentions,
    } in rows
    {
        let r = api.send(req).await;
        let ok = r.status == status
            && r.body["error"] == error
            && r.description().contains(mentions)
            && r.header(header::CONTENT_TYPE) == Some("application/json");
        if !ok {
            failures.push(format!(
                "{name}: want {status} {error} ~{mentions:?}, got {} {}",
                r.status, r.body
            ));
        }
        if status == 401
            && r.header(header::WWW_AUTHENTICATE) != Some("Bearer realm=\"tollgate-admin\"")
        {
            failures.push(format!(
                "{name}: WWW-Authenticate {:?}",
                r.header(header::WWW_AUTHENTICATE)
            ));
        }
        if status == 405 && r.header(header::ALLOW).is_none() {
            failures.push(format!("{name}: no Allow header"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));

    // None of that changed anything.
    let r = api.get(&format!("{clients}/svc")).await;
    assert_eq!(
        (r.status, r.body["grant_types"][0].as_str()),
        (200, Some("client_credentials"))
    );
    let r = api.get("/admin/tenants").await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(2));
}

// ---------------------------------------------------------------------------------------------
// Tenant-scoped credentials, tenant isolation and the audit trail
// ---------------------------------------------------------------------------------------------

/// A request with `token` instead of the root token, from `peer`.
fn with_token(method: Method, path: &str, token: &str, body: Option<&Value>) -> TestRequest {
    let mut req = TestRequest::default()
        .method(method)
        .uri(path)
        .peer_addr("192.0.2.10:40000".parse().expect("address"))
        .insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
    if let Some(b) = body {
        req = req.set_json(b);
    }
    req
}

/// Tenants `a` (with server `main`, client `svc`) and `b` (the same shape), and a
/// credential of each `role` for each tenant: `(tenant, role) -> token`.
async fn two_tenants<S, R>(api: &Api<S, R>) -> std::collections::HashMap<(String, String), Value>
where
    S: Service<R, Response = ServiceResponse, Error = actix_web::Error>,
{
    let mut creds = std::collections::HashMap::new();
    for t in ["a", "b"] {
        api.create("/admin/tenants", json!({"id": t, "name": t}))
            .await;
        api.create(
            &format!("/admin/tenants/{t}/servers"),
            json!({"id": "main", "name": "Main"}),
        )
        .await;
        api.create(
            &format!("/admin/tenants/{t}/servers/main/clients"),
            json!({"client_id": "svc", "grant_types": ["client_credentials"]}),
        )
        .await;
        let user = api
            .create(
                &format!("/admin/tenants/{t}/servers/main/users"),
                json!({"username": format!("user-of-{t}"), "password": "long enough password"}),
            )
            .await;
        creds.insert((t.to_owned(), "user".to_owned()), user);
        for role in ["admin", "read-only"] {
            let c = api
                .create(
                    &format!("/admin/tenants/{t}/credentials"),
                    json!({"name": format!("{t} {role}"), "role": role}),
                )
                .await;
            creds.insert((t.to_owned(), role.to_owned()), c);
        }
    }
    creds
}

fn token_of(c: &Value) -> String {
    c["token"]
        .as_str()
        .expect("token shown on creation")
        .to_owned()
}

#[actix_web::test]
async fn credentials_are_created_shown_once_listed_and_revoked() {
    let state = state().await;
    let api = start!(state.clone());
    api.create("/admin/tenants", json!({"id": "acme", "name": "Acme"}))
        .await;
    let path = "/admin/tenants/acme/credentials";

    let r = api
        .post(
            path,
            json!({"name": "ci", "role": "admin", "expires_at": 4_102_444_800_i64}),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.header(header::CACHE_CONTROL), Some("no-store"));
    let token = token_of(&r.body);
    assert!(token.starts_with("tgc_") && token.len() == 47, "{token}");
    let id = r.body["id"].as_str().expect("id").to_owned();
    assert_eq!(
        (
            r.body["role"].as_str(),
            r.body["tenant_id"].as_str(),
            r.body["created_by"].as_str()
        ),
        (Some("admin"), Some("acme"), Some("root"))
    );

    // The credential works on its tenant; the listing never shows a token.
    let r = api
        .send(with_token(Method::GET, "/admin/tenants/acme", &token, None))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = api.get(path).await;
    assert_eq!(r.body["items"].as_array().map(Vec::len), Some(1), "{r:?}");
    assert!(r.body["items"][0].get("token").is_none(), "{r:?}");
    assert!(!r.body.to_string().contains(&token));

    // Bad bodies name the field; unknown fields are refused.
    for (body, mentions) in [
        (json!({"role": "admin", "scope": "x"}), "scope"),
        (json!({"role": "owner"}), "role"),
        (json!({"name": "x"}), "role"),
        (json!({"role": "admin", "expires_at": 1}), "expires_at"),
        (json!({"role": "admin", "name": ""}), "name"),
    ] {
        let r = api.post(path, body.clone()).await;
        assert_eq!(
            (r.status, r.body["error"].as_str()),
            (400, Some("invalid_request")),
            "{body}: {r:?}"
        );
        assert!(r.description().contains(mentions), "{body}: {r:?}");
    }
    let r = api
        .post(
            "/admin/tenants/nobody/credentials",
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(r.status, 404, "{r:?}");

    // Revoked: 401 at once; revoking again is 404; the listing shows when.
    let r = api.delete(&format!("{path}/{id}")).await;
    assert_eq!(r.status, 204, "{r:?}");
    let r = api
        .send(with_token(Method::GET, "/admin/tenants/acme", &token, None))
        .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (401, Some("unauthorized")),
        "{r:?}"
    );
    assert_eq!(api.delete(&format!("{path}/{id}")).await.status, 404);
    assert!(api.get(path).await.body["items"][0]["revoked_at"].is_i64());

    // Expired: 401.
    let expired = AdminToken::generate_credential();
    let tenant = tollgate_core::ids::TenantId::parse("acme").expect("id");
    let cid = tollgate_core::ids::CredentialId::generate();
    state
        .repo
        .create_credential(
            &tollgate_core::model::credential::AdminCredential {
                id: cid.clone(),
                tenant_id: tenant.clone(),
                name: None,
                role: tollgate_core::model::credential::AdminRole::Admin,
                token_hash: expired.hash(),
                created_by: "root".into(),
                created_at: 1,
                expires_at: Some(2),
                revoked_at: None,
            },
            &tollgate_core::audit::AuditRecord::new(
                &tollgate_core::audit::Origin::new(tollgate_core::audit::Actor::Root, None),
                "credential.create",
                tollgate_core::audit::Resource::credential(&tenant, &cid),
            ),
        )
        .await
        .expect("insert");
    let r = api
        .send(with_token(
            Method::GET,
            "/admin/tenants/acme",
            expired.expose(),
            None,
        ))
        .await;
    assert_eq!(r.status, 401, "{r:?}");
    // A well-formed credential token nobody issued: 401 as well.
    let r = api
        .send(with_token(
            Method::GET,
            "/admin/tenants/acme",
            AdminToken::generate_credential().expose(),
            None,
        ))
        .await;
    assert_eq!(r.status, 401, "{r:?}");
}

/// Every documented admin operation on tenant `a`, with the ids of `a`'s objects filled in.
fn operations(doc: &Value, credential_id: &str, user_id: &str) -> Vec<(Method, String)> {
    let mut ops = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        if !template.contains("{tid}") {
            continue;
        }
        let path = template
            .replace("{tid}", "a")
            .replace("{aid}", "main")
            .replace("{client_id}", "svc")
            .replace("{credential_id}", credential_id)
            .replace("{user_id}", user_id);
        assert!(
            !path.contains('{'),
            "a path parameter the test does not fill: {template}"
        );
        for method in item.as_object().expect("operations").keys() {
            let m = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).expect("method");
            ops.push((m, path.clone()));
        }
    }
    ops
}

fn body_for(method: &Method) -> Option<Value> {
    (method == Method::POST || method == Method::PUT || method == Method::PATCH)
        .then(|| json!({"name": "x", "role": "admin", "grant_types": ["client_credentials"]}))
}

#[actix_web::test]
#[allow(clippy::too_many_lines)] // One table per kind of caller reads best together.
async fn a_tenant_credential_is_refused_at_every_path_of_another_tenant() {
    let api = start!();
    let creds = two_tenants(&api).await;
    let doc = api
        .send(TestRequest::get().uri("/admin/openapi.json"))
        .await
        .body;
    let a_credential = creds[&("a".to_owned(), "admin".to_owned())]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let a_user = creds[&("a".to_owned(), "user".to_owned())]["id"]
        .as_str()
        .expect("user id")
        .to_owned();
    let ops = operations(&doc, &a_credential, &a_user);
    // The table covers every route: tenant, servers, clients, secret, keys, rotation,
    // credentials, audit, with all their methods.
    assert!(ops.len() >= 20, "{ops:?}");

    let mut failures = Vec::new();
    for role in ["admin", "read-only"] {
        let token = token_of(&creds[&("b".to_owned(), role.to_owned())]);
        for (method, path) in &ops {
            let r = api
                .send(with_token(
                    method.clone(),
                    path,
                    &token,
                    body_for(method).as_ref(),
                ))
                .await;
            if (r.status, r.body["error"].as_str()) != (403, Some("forbidden")) {
                failures.push(format!(
                    "b {role}: {method} {path}: {} {}",
                    r.status, r.body
                ));
            }
        }
    }
    // The tenant collection: b sees only itself, and may not create tenants.
    let b_admin = token_of(&creds[&("b".to_owned(), "admin".to_owned())]);
    let r = api
        .send(with_token(Method::GET, "/admin/tenants", &b_admin, None))
        .await;
    let ids: Vec<_> = r.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    if (r.status, ids.as_slice()) != (200, ["b"].as_slice()) {
        failures.push(format!("GET /admin/tenants as b: {} {}", r.status, r.body));
    }
    let r = api
        .send(with_token(
            Method::GET,
            "/admin/tenants?cursor=b",
            &b_admin,
            None,
        ))
        .await;
    if r.body["items"] != json!([]) {
        failures.push(format!("the one-tenant list pages: {}", r.body));
    }
    for (method, path, body) in [
        (
            Method::POST,
            "/admin/tenants",
            Some(json!({"id": "c", "name": "C"})),
        ),
        (Method::DELETE, "/admin/tenants/b", None),
    ] {
        let r = api
            .send(with_token(method.clone(), path, &b_admin, body.as_ref()))
            .await;
        if r.status != 403 {
            failures.push(format!("b admin: {method} {path}: {} {}", r.status, r.body));
        }
    }
    // A read-only credential may GET its own tenant and nothing else.
    let a_reader = token_of(&creds[&("a".to_owned(), "read-only".to_owned())]);
    for (method, path) in &ops {
        let r = api
            .send(with_token(
                method.clone(),
                path,
                &a_reader,
                body_for(method).as_ref(),
            ))
            .await;
        let refused = (r.status, r.body["error"].as_str()) == (403, Some("forbidden"));
        if refused != (method != Method::GET) {
            failures.push(format!(
                "a read-only: {method} {path}: {} {}",
                r.status, r.body
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));

    // Nothing of a's changed, and a's own admin credential does reach a.
    let a_admin = token_of(&creds[&("a".to_owned(), "admin".to_owned())]);
    let r = api
        .send(with_token(
            Method::GET,
            "/admin/tenants/a/servers/main/clients/svc",
            &a_admin,
            None,
        ))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = api
        .send(with_token(
            Method::PATCH,
            "/admin/tenants/a",
            &a_admin,
            Some(&json!({"name": "A renamed"})),
        ))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        api.get("/admin/tenants/a/credentials").await.body["items"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
}

async fn trusting_state() -> Arc<Tollgate> {
    let repo = open_repository("sqlite::memory:")
        .await
        .expect("open sqlite");
    repo.migrate().await.expect("migrate");
    Arc::new(Tollgate::new(
        repo,
        open_short_lived(None).await.expect("open memory store"),
        MasterKey::generate().0,
        TollgateOptions {
            trusted_proxies: vec!["10.0.0.0/8".parse().expect("cidr")],
            ..TollgateOptions::default()
        },
    ))
}

#[actix_web::test]
#[allow(clippy::too_many_lines)] // A whole history, then the questions asked of it.
async fn every_change_is_audited_with_who_what_where_and_no_secret() {
    let api = start!(trusting_state().await);
    let from = |req: TestRequest, peer: &str, forwarded: Option<&str>| {
        let mut req = req.peer_addr(format!("{peer}:1234").parse().expect("address"));
        if let Some(f) = forwarded {
            req = req.insert_header(("x-forwarded-for", f));
        }
        req
    };
    let root = |method: Method, path: &str, body: Option<Value>| {
        let mut req = authed(TestRequest::default().method(method).uri(path));
        if let Some(b) = body {
            req = req.set_json(b);
        }
        req
    };
    // Through a trusted proxy: the forwarded address is the client's.
    let r = api
        .send(from(
            root(
                Method::POST,
                "/admin/tenants",
                Some(json!({"id": "acme", "name": "Acme"})),
            ),
            "10.1.2.3",
            Some("198.51.100.23"),
        ))
        .await;
    assert_eq!(r.status, 201);
    // From an untrusted peer: its X-Forwarded-For is ignored.
    let r = api
        .send(from(
            root(
                Method::POST,
                "/admin/tenants/acme/servers",
                Some(json!({"id": "main", "name": "Main"})),
            ),
            "203.0.113.9",
            Some("198.51.100.99"),
        ))
        .await;
    assert_eq!(r.status, 201);
    let clients = "/admin/tenants/acme/servers/main/clients";
    let created = api
        .create(
            clients,
            json!({"client_id": "svc", "grant_types": ["client_credentials"], "scope": "a"}),
        )
        .await;
    let mut secrets = vec![created["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned()];
    let r = api
        .put(
            &format!("{clients}/svc"),
            json!({"grant_types": ["client_credentials"], "scope": "a b",
                   "token_endpoint_auth_method": "client_secret_jwt"}),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    secrets.push(
        r.body["client_secret"]
            .as_str()
            .expect("new secret")
            .to_owned(),
    );
    let r = api.post_empty(&format!("{clients}/svc/secret")).await;
    secrets.push(
        r.body["client_secret"]
            .as_str()
            .expect("rotated")
            .to_owned(),
    );
    let r = api
        .post_empty("/admin/tenants/acme/servers/main/keys/rotate")
        .await;
    assert_eq!(r.status, 200);
    let cred = api
        .create(
            "/admin/tenants/acme/credentials",
            json!({"role": "admin", "name": "ops"}),
        )
        .await;
    let token = token_of(&cred);
    let cred_id = cred["id"].as_str().expect("id").to_owned();
    // A change by the credential.
    let r = api
        .send(with_token(
            Method::PATCH,
            "/admin/tenants/acme/servers/main",
            &token,
            Some(&json!({"access_token_ttl": 600})),
        ))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = api
        .send(with_token(
            Method::DELETE,
            &format!("{clients}/svc"),
            &token,
            None,
        ))
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    // Failures change nothing and are not audited.
    assert_eq!(api.delete(&format!("{clients}/svc")).await.status, 404);
    let r = api
        .send(with_token(
            Method::GET,
            "/admin/tenants/acme/audit",
            &token,
            None,
        ))
        .await;
    assert_eq!(
        r.status, 200,
        "a credential reads its tenant's trail: {r:?}"
    );

    let audit = api.get("/admin/tenants/acme/audit").await;
    assert_eq!(audit.status, 200, "{audit:?}");
    let text = audit.body.to_string();
    for secret in secrets.iter().chain([&token]) {
        assert!(
            !text.contains(secret.as_str()),
            "a secret in the trail: {text}"
        );
    }
    assert!(!text.contains("argon2"), "no hash in the trail: {text}");
    let rows = audit.body["items"].as_array().expect("items").clone();
    let summary: Vec<(String, String, String)> = rows
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_owned(),
                e["actor"].as_str().unwrap_or_default().to_owned(),
                e["resource"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let s = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    let by_cred = format!("credential:{cred_id}");
    assert_eq!(
        summary,
        vec![
            s("tenant.create", "root", "/admin/tenants/acme"),
            s("server.create", "root", "/admin/tenants/acme/servers/main"),
            s("client.create", "root", &format!("{clients}/svc")),
            s("client.update", "root", &format!("{clients}/svc")),
            s("client.secret_rotate", "root", &format!("{clients}/svc")),
            s(
                "key.rotate",
                "root",
                "/admin/tenants/acme/servers/main/keys"
            ),
            s(
                "key.rotate",
                "root",
                "/admin/tenants/acme/servers/main/keys"
            ),
            s(
                "credential.create",
                "root",
                &format!("/admin/tenants/acme/credentials/{cred_id}")
            ),
            s(
                "server.update",
                &by_cred,
                "/admin/tenants/acme/servers/main"
            ),
            s("client.delete", &by_cred, &format!("{clients}/svc")),
        ]
    );
    let oldest = &rows[rows.len() - 1];
    assert_eq!(oldest["address"], "198.51.100.23", "{oldest}");
    assert_eq!(oldest["after"]["name"], "Acme");
    assert!(oldest["before"].is_null());
    assert_eq!(rows[rows.len() - 2]["address"], "203.0.113.9");
    let update = &rows[rows.len() - 4];
    assert_eq!(update["before"]["scope"], "a");
    assert_eq!(update["after"]["scope"], "a b");
    assert_eq!(update["detail"]["new_secret_issued"], true);
    assert!(update["at"].is_i64() && update["id"].is_i64());
    let server_update = &rows[1];
    assert_eq!(
        (
            &server_update["before"]["access_token_ttl"],
            &server_update["after"]["access_token_ttl"]
        ),
        (&json!(3600), &json!(600))
    );
    assert_eq!(server_update["address"], "192.0.2.10");

    // Filters, and pages whose cursor walks back in time.
    let rows_of = |body: &Value| body["items"].as_array().map_or(0, Vec::len);
    for (query, want) in [
        ("action=key.rotate", 2),
        (&format!("actor=credential:{cred_id}") as &str, 2),
        ("client_id=svc", 4),
        ("resource=/admin/tenants/acme/servers/main", 8),
        ("resource=/admin/tenants/acme/servers/main/keys", 2),
        ("since=0&until=1", 0),
        ("action=client.delete&actor=root", 0),
    ] {
        let r = api.get(&format!("/admin/tenants/acme/audit?{query}")).await;
        assert_eq!((r.status, rows_of(&r.body)), (200, want), "{query}: {r:?}");
    }
    let mut seen = 0;
    let mut cursor = String::new();
    for _ in 0..10 {
        let r = api
            .get(&format!("/admin/tenants/acme/audit?limit=3{cursor}"))
            .await;
        seen += rows_of(&r.body);
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, 10);
    let r = api.get("/admin/tenants/acme/audit?actr=root").await;
    assert_eq!(r.status, 400, "a misspelt filter is refused: {r:?}");
}

#[actix_web::test]
async fn openapi_states_the_server_trust_settings_and_their_bounds() {
    let api = start!();
    let doc = api
        .send(TestRequest::get().uri("/admin/openapi.json"))
        .await
        .body;
    for schema in ["Server", "NewServer", "ServerPatch"] {
        let props = &doc["components"]["schemas"][schema]["properties"];
        assert_eq!(
            props["tls_client_ca"]["maxLength"], 65_536,
            "{schema}: {props}"
        );
        assert_eq!(
            props["introspection_clients"]["maxItems"], 50,
            "{schema}: {props}"
        );
        let flag = props["allow_insecure_redirect_uris"]["type"].to_string();
        assert!(flag.contains("boolean"), "{schema}: {flag}");
    }
}
