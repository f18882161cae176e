//! The browser flow's endpoints: `GET|POST /oauth2/authorize` (RFC 6749 §4.1.1, OpenID
//! Connect Core §3.1.2.1 allows both), and the built-in login and consent pages
//! (`GET|POST /login`, `GET|POST /consent`). Each parses the request, calls one step of
//! `tollgate_core::authorize::flow`, and renders its answer through `pages`; a failed step
//! is a [`GatewayError::Page`], answered in `crate::error`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use std::sync::Arc;
use tollgate_core::authorize::flow::{self, ConsentForm, ConsentStep, Continue, LoginForm};
use tollgate_core::authorize::{response, AuthorizeError, RawParams};
use tollgate_core::registry::ServerRuntime;
use tollgate_core::secrets::Password;
use tollgate_core::Tollgate;

use crate::error::GatewayError;
use crate::pages::{self, field, BrowserRequest, Site};
use crate::{body, server_ids, OAuthResponse};

/// The server a request is for, and how its pages look. An unknown server has no pages:
/// that error is JSON.
pub(crate) async fn server(
    app: &Tollgate,
    path: &(String, String),
) -> Result<(Arc<ServerRuntime>, Site), OAuthResponse> {
    let (t, s) = server_ids(path)?;
    let server = app.server(&t, &s).await?;
    let site = Site::of(app, &server);
    Ok((server, site))
}

/// A body or query the flow cannot read: an error page.
pub(crate) fn unreadable(site: &Site, e: tollgate_core::oauth::OAuthError) -> GatewayError {
    GatewayError::page(site, AuthorizeError::page(400, e.description))
}

/// Answers a step of the flow: where it goes next, with its cookies, or why it failed (an
/// error for the client travels in the request's response mode).
pub(crate) async fn answer(
    app: &Tollgate,
    server: &ServerRuntime,
    site: &Site,
    result: Result<Continue, AuthorizeError>,
) -> Result<HttpResponse, GatewayError> {
    let next = response::settle(app, server, result)
        .await
        .map_err(|e| GatewayError::page(site, e))?;
    Ok(pages::proceed(site, app.options.session_ttl, next)?)
}

async fn authorize_with(
    app: &Tollgate,
    server: &ServerRuntime,
    site: &Site,
    req: &HttpRequest,
    pairs: Vec<(String, String)>,
) -> Result<HttpResponse, GatewayError> {
    let browser = BrowserRequest::of(req);
    let result = match RawParams::from_pairs(pairs, &app.options.limits) {
        Ok(raw) => flow::authorize(app, server, &raw, browser.browser()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        tracing::info!(tenant = %server.server.tenant_id, server = %server.server.id, outcome = e.outcome(), "authorization request refused");
    }
    answer(app, server, site, result).await
}

/// `GET /{tid}/{aid}/oauth2/authorize`.
pub async fn authorize_get(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, GatewayError> {
    let (server, site) = server(&app, &path).await?;
    let pairs = body::query_pairs(&req).map_err(|e| unreadable(&site, e))?;
    authorize_with(&app, &server, &site, &req, pairs).await
}

/// `POST /{tid}/{aid}/oauth2/authorize` (a form post).
pub async fn authorize_post(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, GatewayError> {
    let (server, site) = server(&app, &path).await?;
    let pairs = body::form(&req, payload, &app.options.limits)
        .await
        .map_err(|e| unreadable(&site, e))?;
    authorize_with(&app, &server, &site, &req, pairs).await
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
) -> Result<HttpResponse, GatewayError> {
    let (server, site) = server(&app, &path).await?;
    let browser = BrowserRequest::of(&req);
    let view = flow::login_page(&app, &server, &request_id(&req), browser.browser())
        .await
        .map_err(|e| GatewayError::page(&site, e))?;
    Ok(pages::login(&site, &view, StatusCode::OK)?)
}

/// `POST /{tid}/{aid}/login`: `req`, `csrf`, `username`, `password`.
pub async fn login_post(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, GatewayError> {
    let (server, site) = server(&app, &path).await?;
    let pairs = body::form(&req, payload, &app.options.limits)
        .await
        .map_err(|e| unreadable(&site, e))?;
    let form = LoginForm {
        request_id: field(&pairs, "req").unwrap_or_default(),
        csrf: field(&pairs, "csrf"),
        username: field(&pairs, "username").unwrap_or_default(),
        password: Password::new(field(&pairs, "password").unwrap_or_default()),
    };
    let browser = BrowserRequest::of(&req);
    let result = flow::login(&app, &server, form, browser.browser()).await;
    answer(&app, &server, &site, result).await
}

/// `GET /{tid}/{aid}/consent?req=…`.
pub async fn consent_get(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, GatewayError> {
    let (server, site) = server(&app, &path).await?;
    let browser = BrowserRequest::of(&req);
    match flow::consent_page(&app, &server, &request_id(&req), browser.browser()).await {
        Ok(ConsentStep::Page(view)) => Ok(pages::consent(&site, &view)?),
        Ok(ConsentStep::Continue(next)) => answer(&app, &server, &site, Ok(next)).await,
        Err(e) => Err(GatewayError::page(&site, e)),
    }
}

/// `POST /{tid}/{aid}/consent`: `req`, `csrf`, `decision=allow|deny`.
pub async fn consent_post(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, GatewayError> {
    let (server, site) = server(&app, &path).await?;
    let pairs = body::form(&req, payload, &app.options.limits)
        .await
        .map_err(|e| unreadable(&site, e))?;
    let form = ConsentForm {
        request_id: field(&pairs, "req").unwrap_or_default(),
        csrf: field(&pairs, "csrf"),
        decision: field(&pairs, "decision"),
    };
    let browser = BrowserRequest::of(&req);
    let result = flow::consent(&app, &server, form, browser.browser()).await;
    answer(&app, &server, &site, result).await
}
