//! `GET|POST /{tid}/{aid}/userinfo` (OpenID Connect Core §5.3): the Bearer token in the
//! `Authorization` header (RFC 6750 §2.1), or — for POST — in the form body (§2.2), never
//! both; errors with the RFC 6750 §3 `WWW-Authenticate: Bearer` challenge.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use tollgate_core::userinfo::{self, UserinfoError};
use tollgate_core::Tollgate;

use crate::pages::field;
use crate::{body, server_ids, OAuthResponse};

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

fn answer(e: &UserinfoError) -> HttpResponse {
    let (status, code, description) = match e {
        UserinfoError::NoToken => (
            StatusCode::UNAUTHORIZED,
            None,
            "an access token is required",
        ),
        UserinfoError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, Some("invalid_request"), *d),
        UserinfoError::InvalidToken(d) => (StatusCode::UNAUTHORIZED, Some("invalid_token"), *d),
        UserinfoError::InsufficientScope => (
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            "the access token lacks the `openid` scope",
        ),
        UserinfoError::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("temporarily_unavailable"),
            "a backing store is unavailable; retry later",
        ),
    };
    let challenge = match code {
        Some(c) if status != StatusCode::SERVICE_UNAVAILABLE => {
            format!("Bearer realm=\"tollgate\", error=\"{c}\", error_description=\"{description}\"")
        }
        _ => "Bearer realm=\"tollgate\"".to_owned(),
    };
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    if status != StatusCode::SERVICE_UNAVAILABLE {
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            b.insert_header((header::WWW_AUTHENTICATE, v));
        }
    } else {
        b.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
    }
    match code {
        Some(c) => b.json(json!({"error": c, "error_description": description})),
        None => b.json(json!({"error": "invalid_request", "error_description": description})),
    }
}

async fn respond(
    app: &Tollgate,
    path: &(String, String),
    req: &HttpRequest,
    token: Result<Option<String>, UserinfoError>,
) -> Result<HttpResponse, OAuthResponse> {
    let (t, s) = server_ids(path)?;
    let server = app.server(&t, &s).await?;
    let token = match token {
        Ok(Some(t)) => t,
        Ok(None) => return Ok(answer(&UserinfoError::NoToken)),
        Err(e) => return Ok(answer(&e)),
    };
    let thumbprint = crate::client_cert::client_certificate(req)
        .ok()
        .flatten()
        .map(|c| c.thumbprint_s256());
    Ok(
        match userinfo::userinfo(app, &server, &token, thumbprint.as_deref()).await {
            Ok(claims) => {
                let mut b = HttpResponse::Ok();
                b.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
                    .insert_header((
                        header::ACCESS_CONTROL_ALLOW_ORIGIN,
                        HeaderValue::from_static("*"),
                    ));
                b.json(claims)
            }
            Err(e) => answer(&e),
        },
    )
}

/// `GET /{tid}/{aid}/userinfo`.
pub async fn userinfo_get(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, OAuthResponse> {
    let token = bearer(&req);
    respond(&app, &path, &req, token).await
}

/// `POST /{tid}/{aid}/userinfo`: the header, or `access_token` in a form body.
pub async fn userinfo_post(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let header_token = bearer(&req);
    let has_body = req.headers().contains_key(header::CONTENT_TYPE);
    let body_token = if has_body {
        match body::form(&req, payload, &app.options.limits).await {
            Ok(pairs) => field(&pairs, "access_token").filter(|v| !v.is_empty()),
            Err(e) => {
                return Ok(answer(&UserinfoError::InvalidRequest(
                    if e.description.contains("Content-Type") {
                        "unsupported Content-Type: use application/x-www-form-urlencoded"
                    } else {
                        "the request body is not a readable form"
                    },
                )))
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
