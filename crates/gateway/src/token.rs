//! `POST /{tid}/{aid}/oauth2/token` (RFC 6749 §3.2).

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use tollgate_core::{client_auth, grants, Tollgate};

use crate::{body, server_ids, OAuthResponse};

/// The token endpoint.
pub async fn token(
    app: web::Data<Tollgate>,
    path: web::Path<(String, String)>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthResponse> {
    let (t, s) = server_ids(&path)?;
    let server = app.server(&t, &s).await?;
    let basic = body::basic_credentials(&req)?;
    let params = body::token_params(&req, payload)
        .await
        .map_err(|e| e.with_basic_challenge(basic.is_some()))?;
    let endpoint_url = format!("{}/oauth2/token", server.issuer);
    let request = client_auth::Request {
        basic: basic.as_ref(),
        params: &params,
        certificate: None,
        endpoint_url: &endpoint_url,
    };
    let client = client_auth::authenticate(&app, &server, request).await?;
    let response = grants::issue(&app, &server, &client, &params).await?;
    tracing::debug!(
        tenant = %t,
        server = %s,
        client_id = %client.client.client.client_id,
        method = client.method.as_str(),
        grant = params.grant_type.as_deref().unwrap_or(""),
        "token issued"
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .json(response))
}
