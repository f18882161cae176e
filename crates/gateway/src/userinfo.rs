//! `GET|POST /{tid}/{aid}/userinfo` (OpenID Connect Core §5.3): the Bearer token in the
//! `Authorization` header (RFC 6750 §2.1), or — for POST — in the form body (§2.2), never
//! both. Core names what is wrong with the token; `crate::error` answers it with the RFC
//! 6750 §3 challenge.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use tollgate_core::userinfo::{self, UserinfoError};
use tollgate_core::Tollgate;

use crate::error::GatewayError;
use crate::pages::field;
use crate::{body, server_ids};

/// The token of `Authorization: Bearer …`, if that is the scheme.
fn bearer(req: &HttpRequest) -> Result<Option<String>, UserinfoError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(v) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(UserinfoError::InvalidRequest(
            "more than one Authorization header",
        ));
    }
    let v = v
        .to_str()
        .map_err(|_| UserinfoError::InvalidRequest("malformed Authorization header"))?;
    match v.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim().to_owned()))
        }
        _ => Err(UserinfoError::InvalidRequest(
            "the Authorization header must use the Bearer scheme",
        )),
    }
}

async fn respond(
    app: &Tollgate,
    path: &(String, String),
    req: &HttpRequest,
    token: Result<Option<String>, UserinfoError>,
) -> Result<HttpResponse, GatewayError> {
    let (t, s) = server_ids(path)?;
    let server = app.server(&t, &s).await?;
    let token = token?.ok_or(UserinfoError::NoToken)?;
    let thumbprint = crate::client_cert::client_certificate(req)
        .ok()
        .flatten()
        .map(|c| c.thumbprint_s256());
    let claims = userinfo::userinfo(app, &server, &token, thumbprint.as_deref()).await?;
    let mut b = HttpResponse::Ok();
    b.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        ));
    Ok(b.json(claims))
}

/// `GET /{tid}/{aid}/userinfo`.
pub async fn userinfo_get(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, GatewayError> {
    let token = bearer(&req);
    respond(&app, &path, &req, token).await
}

/// `POST /{tid}/{aid}/userinfo`: the header, or `access_token` in a form body.
pub async fn userinfo_post(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, GatewayError> {
    let header_token = bearer(&req);
    let has_body = req.headers().contains_key(header::CONTENT_TYPE);
    let body_token = if has_body {
        match body::form(&req, payload, &app.options.limits).await {
            Ok(pairs) => field(&pairs, "access_token").filter(|v| !v.is_empty()),
            Err(e) => {
                return Err(UserinfoError::InvalidRequest(
                    if e.description.contains("Content-Type") {
                        "unsupported Content-Type: use application/x-www-form-urlencoded"
                    } else {
                        "the request body is not a readable form"
                    },
                )
                .into())
            }
        }
    } else {
        None
    };
    let token = match (header_token, body_token) {
        (Err(e), _) => Err(e),
        (Ok(Some(_)), Some(_)) => Err(UserinfoError::InvalidRequest(
            "the access token was sent in both the header and the body",
        )),
        (Ok(Some(t)), None) | (Ok(None), Some(t)) => Ok(Some(t)),
        (Ok(None), None) => Ok(None),
    };
    respond(&app, &path, &req, token).await
}
