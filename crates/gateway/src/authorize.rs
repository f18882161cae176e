//! The browser flow's endpoints: `GET|POST /oauth2/authorize` (RFC 6749 §4.1.1, OpenID
//! Connect Core §3.1.2.1 allows both), and the built-in login and consent pages
//! (`GET|POST /login`, `GET|POST /consent`). Each parses the request, calls one step of
//! `tollgate_core::authorize::flow`, and renders its answer through `pages`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use std::sync::Arc;
use tollgate_core::authorize::flow::{self, ConsentForm, ConsentStep, LoginForm};
use tollgate_core::authorize::{AuthorizeError, RawParams};
use tollgate_core::registry::ServerRuntime;
use tollgate_core::secrets::Password;
use tollgate_core::Tollgate;

use crate::pages::{self, field, BrowserRequest};
use crate::{body, server_ids, OAuthResponse};

async fn server(
    app: &Tollgate,
    path: &(String, String),
) -> Result<Arc<ServerRuntime>, OAuthResponse> {
    let (t, s) = server_ids(path)?;
    Ok(app.server(&t, &s).await?)
}

async fn authorize_with(
    app: &Tollgate,
    server: &ServerRuntime,
    req: &HttpRequest,
    pairs: Vec<(String, String)>,
) -> HttpResponse {
    let browser = BrowserRequest::of(req);
    let result = match RawParams::from_pairs(pairs, &app.options.limits) {
        Ok(raw) => flow::authorize(app, server, &raw, browser.browser()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        tracing::info!(tenant = %server.server.tenant_id, server = %server.server.id, outcome = e.outcome(), "authorization request refused");
    }
    pages::respond(app, server, result)
}

/// `GET /{tid}/{aid}/oauth2/authorize`.
pub async fn authorize_get(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, OAuthResponse> {
    let server = server(&app, &path).await?;
    let pairs = match body::query_pairs(&req) {
        Ok(p) => p,
        Err(e) => return Ok(pages::error(&app, &server, 400, &e.description)),
    };
    Ok(authorize_with(&app, &server, &req, pairs).await)
}

/// `POST /{tid}/{aid}/oauth2/authorize` (a form post).
pub async fn authorize_post(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let server = server(&app, &path).await?;
    let pairs = match body::form(&req, payload, &app.options.limits).await {
        Ok(p) => p,
        Err(e) => return Ok(pages::error(&app, &server, 400, &e.description)),
    };
    Ok(authorize_with(&app, &server, &req, pairs).await)
}

fn request_id(req: &HttpRequest) -> String {
    body::query_pairs(req)
        .ok()
        .and_then(|p| field(&p, "req"))
        .unwrap_or_default()
}

/// `GET /{tid}/{aid}/login?req=…`.
pub async fn login_get(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, OAuthResponse> {
    let server = server(&app, &path).await?;
    let browser = BrowserRequest::of(&req);
    Ok(
        match flow::login_page(&app, &server, &request_id(&req), browser.browser()).await {
            Ok(view) => pages::login(&app, &server, &view, StatusCode::OK),
            Err(e) => pages::fail(&app, &server, e),
        },
    )
}

/// `POST /{tid}/{aid}/login`: `req`, `csrf`, `username`, `password`.
pub async fn login_post(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let server = server(&app, &path).await?;
    let pairs = match body::form(&req, payload, &app.options.limits).await {
        Ok(p) => p,
        Err(e) => return Ok(pages::error(&app, &server, 400, &e.description)),
    };
    let form = LoginForm {
        request_id: field(&pairs, "req").unwrap_or_default(),
        csrf: field(&pairs, "csrf"),
        username: field(&pairs, "username").unwrap_or_default(),
        password: Password::new(field(&pairs, "password").unwrap_or_default()),
    };
    let browser = BrowserRequest::of(&req);
    let result = flow::login(&app, &server, form, browser.browser()).await;
    Ok(pages::respond(&app, &server, result))
}

/// `GET /{tid}/{aid}/consent?req=…`.
pub async fn consent_get(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, OAuthResponse> {
    let server = server(&app, &path).await?;
    let browser = BrowserRequest::of(&req);
    Ok(
        match flow::consent_page(&app, &server, &request_id(&req), browser.browser()).await {
            Ok(ConsentStep::Page(view)) => pages::consent(&app, &server, &view),
            Ok(ConsentStep::Continue(next)) => pages::respond(&app, &server, Ok(next)),
            Err(e) => pages::fail(&app, &server, e),
        },
    )
}

/// `POST /{tid}/{aid}/consent`: `req`, `csrf`, `decision=allow|deny`.
pub async fn consent_post(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let server = server(&app, &path).await?;
    let pairs = match body::form(&req, payload, &app.options.limits).await {
        Ok(p) => p,
        Err(e) => return Ok(pages::error(&app, &server, 400, &e.description)),
    };
    let form = ConsentForm {
        request_id: field(&pairs, "req").unwrap_or_default(),
        csrf: field(&pairs, "csrf"),
        decision: field(&pairs, "decision"),
    };
    let browser = BrowserRequest::of(&req);
    let result: Result<_, AuthorizeError> =
        flow::consent(&app, &server, form, browser.browser()).await;
    Ok(pages::respond(&app, &server, result))
}
