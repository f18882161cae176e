//! Token-request parsing: HTTP Basic credentials and the body, as
//! `application/x-www-form-urlencoded` (RFC 6749) or `application/json` (the vendor style),
//! bounded in size and time.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use percent_encoding::percent_decode_str;
use serde_json::Value;
use tollgate_core::client_auth::BasicCredentials;
use tollgate_core::grants::TokenParams;
use tollgate_core::oauth::OAuthError;
use tollgate_core::secrets::ClientSecret;

/// Largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;
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

/// Reads and parses the body of a token request.
pub async fn token_params(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<TokenParams, OAuthError> {
    let format = content_type(req)?;
    let bytes = read(payload).await?;
    let pairs = match format {
        Format::Form => form_pairs(&bytes)?,
        Format::Json => json_pairs(&bytes)?,
    };
    TokenParams::from_pairs(pairs)
}

/// Reads an HTML form post (`application/x-www-form-urlencoded` only) into name/value pairs.
pub async fn form(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<Vec<(String, String)>, OAuthError> {
    if !matches!(content_type(req)?, Format::Form) {
        return Err(OAuthError::invalid_request(
            "unsupported Content-Type: use application/x-www-form-urlencoded",
        ));
    }
    form_pairs(&read(payload).await?)
}

/// Reads a body, bounded in size and time.
async fn read(payload: web::Payload) -> Result<web::Bytes, OAuthError> {
    match tokio::time::timeout(BODY_TIMEOUT, payload.to_bytes_limited(MAX_BODY)).await {
        Err(_) => Err(OAuthError::invalid_request(
            "request body was not received in time",
        )),
        Ok(Err(_)) => Err(OAuthError::invalid_request(format!(
            "request body is larger than {} KiB",
            MAX_BODY / 1024
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

fn form_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(OAuthError::invalid_request(
            "request body is not valid UTF-8",
        ));
    }
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .map_err(|_| OAuthError::invalid_request("request body is not valid form encoding"))
}

fn json_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, OAuthError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        OAuthError::invalid_request(format!(
            "request body is not valid JSON (line {} column {})",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(map) = value else {
        return Err(OAuthError::invalid_request(
            "JSON request body must be an object",
        ));
    };
    let mut pairs = Vec::with_capacity(map.len());
    for (name, value) in map {
        match value {
            Value::String(s) => pairs.push((name, s)),
            Value::Null => {}
            Value::Array(items) if name == "resource" => {
                for item in items {
                    let Value::String(s) = item else {
                        return Err(OAuthError::invalid_request(
                            "`resource` must be a string or an array of strings",
                        ));
                    };
                    pairs.push((name.clone(), s));
                }
            }
            _ => {
                let shown: String = name
                    .chars()
                    .filter(char::is_ascii_graphic)
                    .take(64)
                    .collect();
                return Err(OAuthError::invalid_request(format!(
                    "parameter `{shown}` must be a string"
                )));
            }
        }
    }
    Ok(pairs)
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

    #[test]
    fn json_bodies_take_strings_only() {
        assert_eq!(
            json_pairs(br#"{"grant_type":"client_credentials","scope":null}"#)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            json_pairs(br#"{"resource":["https://a","https://b"]}"#)
                .unwrap()
                .len(),
            2
        );
        for bad in [
            &br#"{"grant_type":1}"#[..],
            b"[]",
            b"{",
            br#"{"scope":{"a":1}}"#,
        ] {
            assert_eq!(json_pairs(bad).unwrap_err().status, 400);
        }
    }

    #[test]
    fn form_bodies_must_be_utf8() {
        assert!(form_pairs(b"grant_type=client_credentials&scope=a+b").is_ok());
        assert!(form_pairs(b"scope=\xff").is_err());
    }
}
