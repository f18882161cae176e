//! Token-request reading: HTTP Basic credentials and the body, as
//! `application/x-www-form-urlencoded` (RFC 6749) or `application/json` (the vendor style),
//! bounded in size (`--max-body-bytes`) and time; core's `TokenParams` decodes it under the
//! other limits.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use percent_encoding::percent_decode_str;
use tollgate_core::client_auth::BasicCredentials;
use tollgate_core::limits::Limits;
use tollgate_core::oauth::OAuthError;
use tollgate_core::oauth::TokenParams;
use tollgate_core::secrets::ClientSecret;

/// How long a client may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

fn invalid_client_basic(msg: &'static str) -> OAuthError {
    OAuthError::invalid_client(msg).with_basic_challenge(true)
}

/// Decodes one form-encoded component of a Basic credential (RFC 6749 §2.3.1).
fn form_decode(s: &str) -> Result<String, OAuthError> {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| invalid_client_basic("malformed HTTP Basic credentials"))
}

/// Reads `Authorization: Basic`, if present. Other schemes are not client authentication
/// and are ignored here.
pub fn basic_credentials(req: &HttpRequest) -> Result<Option<BasicCredentials>, OAuthError> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::invalid_request(
            "more than one Authorization header",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| invalid_client_basic("malformed Authorization header"))?;
    let Some((scheme, rest)) = value.split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = STANDARD
        .decode(rest.trim())
        .map_err(|_| invalid_client_basic("malformed HTTP Basic credentials"))?;
    let decoded = String::from_utf8(decoded)
        .map_err(|_| invalid_client_basic("malformed HTTP Basic credentials"))?;
    let (id, secret) = decoded
        .split_once(':')
        .ok_or_else(|| invalid_client_basic("malformed HTTP Basic credentials"))?;
    Ok(Some(BasicCredentials {
        client_id: form_decode(id)?,
        secret: ClientSecret::new(form_decode(secret)?),
    }))
}

enum Format {
    Form,
    Json,
}

fn content_type(req: &HttpRequest) -> Result<Format, OAuthError> {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        return Err(OAuthError::invalid_request(
            "missing Content-Type: use application/x-www-form-urlencoded or application/json",
        ));
    };
    let essence = ct
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-www-form-urlencoded" => Ok(Format::Form),
        "application/json" => Ok(Format::Json),
        _ => Err(OAuthError::invalid_request(
            "unsupported Content-Type: use application/x-www-form-urlencoded or application/json",
        )),
    }
}

/// Reads and parses the body of a token request, within `limits` (the body size here, the
/// rest in [`TokenParams`]).
pub async fn token_params(
    req: &HttpRequest,
    payload: web::Payload,
    limits: &Limits,
) -> Result<TokenParams, OAuthError> {
    let format = content_type(req)?;
    let bytes = read(payload, limits).await?;
    match format {
        Format::Form => TokenParams::from_form(&bytes, limits),
        Format::Json => TokenParams::from_json(&bytes, limits),
    }
}

/// Reads an HTML form post (`application/x-www-form-urlencoded` only) into name/value pairs,
/// within `limits`.
pub async fn form(
    req: &HttpRequest,
    payload: web::Payload,
    limits: &Limits,
) -> Result<Vec<(String, String)>, OAuthError> {
    if !matches!(content_type(req)?, Format::Form) {
        return Err(OAuthError::invalid_request(
            "unsupported Content-Type: use application/x-www-form-urlencoded",
        ));
    }
    tollgate_core::oauth::form_pairs(&read(payload, limits).await?, limits)
}

/// Reads a body, bounded in size (`--max-body-bytes`) and time.
async fn read(payload: web::Payload, limits: &Limits) -> Result<web::Bytes, OAuthError> {
    let max = limits.max_body_bytes;
    match tokio::time::timeout(BODY_TIMEOUT, payload.to_bytes_limited(max)).await {
        Err(_) => Err(OAuthError::invalid_request(
            "request body was not received in time",
        )),
        Ok(Err(_)) => Err(OAuthError::invalid_request(format!(
            "request body is larger than {max} bytes (the limit)"
        ))),
        Ok(Ok(Err(_))) => Err(OAuthError::invalid_request(
            "request body could not be read",
        )),
        Ok(Ok(Ok(b))) => Ok(b),
    }
}

/// Name/value pairs of a URL query string.
pub fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, OAuthError> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
        .map_err(|_| OAuthError::invalid_request("the query string is not valid URL encoding"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn basic(value: &str) -> Result<Option<BasicCredentials>, OAuthError> {
        basic_credentials(
            &TestRequest::default()
                .insert_header((header::AUTHORIZATION, value))
                .to_http_request(),
        )
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let enc = STANDARD.encode("my%3Aclient:p%40ss+word");
        let c = basic(&format!("Basic {enc}")).unwrap().unwrap();
        assert_eq!(c.client_id, "my:client");
        assert_eq!(c.secret.expose(), "p@ss word");
        let c = basic(&format!("bAsIc {}", STANDARD.encode("a:b")))
            .unwrap()
            .unwrap();
        assert_eq!(c.client_id, "a");
    }

    #[test]
    fn malformed_basic_is_invalid_client_with_challenge() {
        for bad in [
            "Basic !!!",
            &format!("Basic {}", STANDARD.encode("nocolon")),
        ] {
            let e = basic(bad).unwrap_err();
            assert_eq!((e.status, e.basic_challenge), (401, true), "{bad}");
        }
        assert!(basic("Bearer abc").unwrap().is_none());
    }
}
