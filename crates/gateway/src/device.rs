//! The device flow's endpoints (RFC 8628): `POST /oauth2/device_authorization`, where a
//! client authenticates exactly as at the token endpoint and receives its codes, and the
//! user's `/device` page (`GET` shows the code form or an outcome, `POST` checks the code and
//! leads on to the built-in login and consent).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use tollgate_core::authorize::device::{self, DeviceForm, DeviceStep, Done};
use tollgate_core::grants::device as grant;
use tollgate_core::oauth::ClientEndpoint;
use tollgate_core::Tollgate;

use crate::authorize::{answer, server, unreadable};
use crate::error::GatewayError;
use crate::pages::{self, field, BrowserRequest};
use crate::{body, client_request, no_store, OAuthResponse};

/// `POST /{tid}/{aid}/oauth2/device_authorization` (RFC 8628 §3.1–3.2).
pub async fn device_authorization(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let r = client_request::authenticate(
        &app,
        &path,
        &req,
        payload,
        ClientEndpoint::DeviceAuthorization,
    )
    .await?;
    let response = grant::authorize(
        app.short_lived.as_ref(),
        app.clock.as_ref(),
        &app.options.device,
        &r.server,
        &r.client,
        &r.params,
    )
    .await?;
    Ok(no_store().json(response))
}

/// `GET /{tid}/{aid}/device[?user_code=…|?done=…]`.
pub async fn device_get(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, GatewayError> {
    let (server, site) = server(&app, &path).await?;
    let pairs = body::query_pairs(&req).map_err(|e| unreadable(&site, e))?;
    let done = field(&pairs, "done").as_deref().and_then(Done::parse);
    let browser = BrowserRequest::of(&req);
    let prefill = field(&pairs, "user_code");
    let view = device::page(&app, &server, prefill.as_deref(), None, browser.browser())
        .await
        .map_err(|e| GatewayError::page(&site, e))?;
    Ok(pages::device(&site, &view, done, StatusCode::OK)?)
}

/// `POST /{tid}/{aid}/device`: `csrf`, `user_code`.
pub async fn device_post(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, GatewayError> {
    let (server, site) = server(&app, &path).await?;
    let pairs = body::form(&req, payload, &app.options.limits)
        .await
        .map_err(|e| unreadable(&site, e))?;
    let form = DeviceForm {
        csrf: field(&pairs, "csrf"),
        user_code: field(&pairs, "user_code").unwrap_or_default(),
    };
    let browser = BrowserRequest::of(&req);
    match device::submit(&app, &server, form, browser.browser()).await {
        Ok(DeviceStep::Page(view)) => {
            Ok(pages::device(&site, &view, None, StatusCode::BAD_REQUEST)?)
        }
        Ok(DeviceStep::Continue(next)) => answer(&app, &server, &site, Ok(next)).await,
        Err(e) => Err(GatewayError::page(&site, e)),
    }
}
