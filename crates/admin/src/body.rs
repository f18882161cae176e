//! JSON request bodies: the media-type check (415), the size cap (413, `--max-admin-body-bytes`),
//! the nesting cap (400, `--max-json-depth`), and parsing whose errors name the offending
//! field (400). Actix's own `Json` extractor is not used: its
//! errors are plain text and do not say where in the document the problem is.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::error::Category;
use tollgate_core::ids::ClientId;
use tollgate_core::limits::{json_depth, Limits};
use tollgate_core::model::client::{ClientMetadata, NewClient};
use tollgate_core::model::credential::NewCredential;
use tollgate_core::model::server::{NewServer, ServerPatch};
use tollgate_core::model::tenant::{NewTenant, TenantPatch};
use tollgate_core::model::users::{NewUser, UserPatch};

use crate::auth::Caller;
use crate::error::AdminError;

/// A request body type and how it is read from JSON.
pub(crate) trait AdminBody: Sized {
    /// Parses the body, naming the field on failure.
    fn from_json(bytes: &[u8]) -> Result<Self, AdminError>;
}

/// Bodies that deserialize directly. Tenant and server bodies reject unknown fields (their
/// types say so); a field that does not deserialize is `invalid_request`.
macro_rules! plain_body {
    ($($t:ty),*) => {$(
        impl AdminBody for $t {
            fn from_json(bytes: &[u8]) -> Result<Self, AdminError> {
                parse(bytes, "invalid_request")
            }
        }
    )*};
}

plain_body!(
    NewTenant,
    TenantPatch,
    NewServer,
    ServerPatch,
    NewUser,
    UserPatch,
    NewCredential
);

/// The `client_id` member of a client body.
#[derive(Deserialize)]
struct ClientIdMember {
    #[serde(default)]
    client_id: Option<ClientId>,
}

impl AdminBody for NewClient {
    /// RFC 7591 metadata: unknown fields are ignored, and a bad field is
    /// `invalid_client_metadata`. `NewClient` flattens its metadata, and serde buffers
    /// flattened fields, which loses the path of a bad one; so the two parts are read
    /// separately from the same document.
    fn from_json(bytes: &[u8]) -> Result<Self, AdminError> {
        const CODE: &str = "invalid_client_metadata";
        let metadata: ClientMetadata = parse(bytes, CODE)?;
        let ClientIdMember { client_id } = parse(bytes, CODE)?;
        Ok(Self {
            client_id,
            metadata,
        })
    }
}

/// Parses one JSON document of type `T`; a field that does not deserialize is reported with
/// `field_code` and its path (`redirect_uris: invalid type: …`).
fn parse<T: DeserializeOwned>(bytes: &[u8], field_code: &'static str) -> Result<T, AdminError> {
    // serde would also read a struct from a JSON array of its fields in order; only objects
    // are meant.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(AdminError::invalid_request(
                "the request body is empty; expected a JSON object",
            ))
        }
        Some(b'{') => {}
        Some(_) => {
            return Err(AdminError::invalid_request(
                "the request body must be a JSON object",
            ))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => value,
        // JSON Schema (and so OpenAPI 3.1) counts `3600.0` as an integer; serde does not.
        Err(e)
            if e.inner()
                .to_string()
                .contains("invalid type: floating point") =>
        {
            return parse_with_integral_floats(bytes, field_code)
        }
        Err(e) => return Err(describe(&e.path().to_string(), e.inner(), field_code)),
    };
    // Trailing data after the document is a syntax error too.
    de.end().map_err(|e| describe(".", &e, field_code))?;
    Ok(value)
}

/// Parses `T` from a document whose integral floats (`3600.0`) are read as the integers they
/// are; any other fraction still fails where an integer is meant.
fn parse_with_integral_floats<T: DeserializeOwned>(
    bytes: &[u8],
    field_code: &'static str,
) -> Result<T, AdminError> {
    fn integral(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) => {
                #[allow(clippy::cast_possible_truncation, clippy::float_cmp)]
                if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0 && n.is_f64()) {
                    if (-9_007_199_254_740_992.0..=9_007_199_254_740_992.0).contains(&f) {
                        *n = serde_json::Number::from(f as i64);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(integral),
            serde_json::Value::Object(members) => members.values_mut().for_each(integral),
            _ => {}
        }
    }
    let mut doc: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| describe(".", &e, field_code))?;
    integral(&mut doc);
    serde_path_to_error::deserialize(doc)
        .map_err(|e| describe(&e.path().to_string(), e.inner(), field_code))
}

/// Body fields whose values must not appear in error texts.
const SECRET_FIELDS: &[&str] = &["password", "client_secret"];

fn describe(path: &str, e: &serde_json::Error, field_code: &'static str) -> AdminError {
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => AdminError::invalid_request(format!(
            "invalid JSON at line {} column {}",
            e.line(),
            e.column()
        )),
        Category::Data => {
            // serde quotes the offending value; a secret field's value is never echoed.
            let message = if SECRET_FIELDS.contains(&path) {
                "must be a string (the value is not shown)".to_owned()
            } else {
                without_position(e)
            };
            let description = if path == "." {
                message
            } else {
                format!("{path}: {message}")
            };
            AdminError::BadRequest {
                code: field_code,
                description,
            }
        }
    }
}

/// The error's message without serde_json's " at line L column C" suffix.
fn without_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_owned()
}

/// Checks the media type: `application/json` (or a `+json` type), parameters allowed, and
/// UTF-8 if a charset is named (RFC 8259 §8.1).
fn check_media_type(req: &HttpRequest) -> Result<(), AdminError> {
    const EXPECTED: &str = "the request body must be JSON with Content-Type: application/json";
    let Some(value) = req.headers().get(CONTENT_TYPE) else {
        return Err(AdminError::UnsupportedMediaType(EXPECTED));
    };
    let mime: actix_web::mime::Mime = value
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or(AdminError::UnsupportedMediaType(EXPECTED))?;
    let json = mime.type_() == actix_web::mime::APPLICATION
        && (mime.subtype() == actix_web::mime::JSON
            || mime.suffix() == Some(actix_web::mime::JSON));
    if !json {
        return Err(AdminError::UnsupportedMediaType(EXPECTED));
    }
    match mime.get_param(actix_web::mime::CHARSET) {
        Some(charset) if !charset.as_str().eq_ignore_ascii_case("utf-8") => Err(
            AdminError::UnsupportedMediaType("JSON bodies must be encoded as UTF-8"),
        ),
        _ => Ok(()),
    }
}

/// A JSON request body of type `T`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<T: AdminBody + 'static> FromRequest for JsonBody<T> {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AdminError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let media_type = check_media_type(req);
        let limits = req
            .app_data::<web::Data<tollgate_core::Tollgate>>()
            .map_or_else(Limits::default, |app| app.options.limits.clone());
        let body = web::Payload::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            // Who is asking is settled before what they sent is judged (401/403 before 4xx).
            Caller::authenticate(&req).await?;
            media_type?;
            let max = limits.max_admin_body_bytes;
            let body = body
                .await
                .map_err(|_| AdminError::invalid_request("the request body could not be read"))?;
            let bytes = body
                .to_bytes_limited(max)
                .await
                .map_err(|_| AdminError::PayloadTooLarge(max))?
                .map_err(|e| match e.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => AdminError::PayloadTooLarge(max),
                    _ => AdminError::invalid_request("the request body could not be read"),
                })?;
            // Before parsing: a deeply nested document costs the parser, not us.
            if json_depth(&bytes) > limits.max_json_depth {
                return Err(AdminError::invalid_request(format!(
                    "the JSON body is nested deeper than {} levels (the limit)",
                    limits.max_json_depth
                )));
            }
            T::from_json(&bytes).map(Self)
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn described<T: AdminBody + std::fmt::Debug>(json: &str) -> (&'static str, String) {
        match T::from_json(json.as_bytes()) {
            Err(AdminError::BadRequest { code, description }) => (code, description),
            other => panic!("{json}: {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_field() {
        let rows: &[(&str, &str)] = &[
            (
                r#"{"id":"a","name":"b","foo":1}"#,
                "foo: unknown field `foo`, expected `id` or `name`",
            ),
            (r#"{"name":"b"}"#, "missing field `id`"),
            (
                r#"{"id":"Acme!","name":"b"}"#,
                "id: may contain only a-z, 0-9 and '-'",
            ),
            (
                r#"{"id":5,"name":"b"}"#,
                "id: invalid type: integer `5`, expected a string",
            ),
            ("[]", "the request body must be a JSON object"),
            (
                r#"["acme","Acme"]"#,
                "the request body must be a JSON object",
            ),
            ("\"acme\"", "the request body must be a JSON object"),
            ("", "the request body is empty; expected a JSON object"),
            (
                "{\"id\":\"a\",\n\"name\":}",
                "invalid JSON at line 2 column 8",
            ),
            (
                r#"{"id":"a","name":"b"} x"#,
                "invalid JSON at line 1 column 23",
            ),
        ];
        for (json, want) in rows {
            let (code, got) = described::<NewTenant>(json);
            assert_eq!((code, got.as_str()), ("invalid_request", *want), "{json}");
        }
    }

    #[test]
    fn server_errors_name_nested_fields() {
        let (_, got) = described::<NewServer>(
            r#"{"id":"a","name":"b","allowed_token_endpoint_auth_methods":["basic"]}"#,
        );
        assert!(
            got.starts_with("allowed_token_endpoint_auth_methods[0]: unknown variant `basic`"),
            "{got}"
        );
        let (_, got) = described::<ServerPatch>(r#"{"access_token_ttl":"5"}"#);
        assert_eq!(
            got,
            "access_token_ttl: invalid type: string \"5\", expected i64"
        );
    }

    #[test]
    fn nested_settings_must_be_objects() {
        let (_, got) = described::<ServerPatch>(r#"{"rate_limits":[null,5]}"#);
        assert!(
            got.starts_with("rate_limits: invalid type: sequence"),
            "{got}"
        );
        let (_, got) = described::<NewServer>(r#"{"id":"a","name":"b","rate_limits":[1]}"#);
        assert!(
            got.starts_with("rate_limits: invalid type: sequence"),
            "{got}"
        );
        let patch = ServerPatch::from_json(br#"{"rate_limits":{"client_burst":5}}"#).unwrap();
        assert_eq!(
            patch.rate_limits.unwrap().unwrap().client_burst,
            Some(Some(5))
        );
        let reset = ServerPatch::from_json(br#"{"rate_limits":null}"#).unwrap();
        assert!(matches!(reset.rate_limits, Some(None)));
    }

    #[test]
    fn integral_floats_are_integers_as_json_schema_counts() {
        let patch = ServerPatch::from_json(
            br#"{"access_token_ttl":3600.0,"rate_limits":{"client_burst":7.0}}"#,
        )
        .unwrap();
        assert_eq!(patch.access_token_ttl, Some(3600));
        assert_eq!(
            patch.rate_limits.unwrap().unwrap().client_burst,
            Some(Some(7))
        );
        let (_, got) = described::<ServerPatch>(r#"{"access_token_ttl":3600.5}"#);
        assert!(
            got.starts_with("access_token_ttl: invalid type: floating point"),
            "{got}"
        );
    }

    #[test]
    fn client_bodies_name_the_field_and_ignore_unknown_ones() {
        let rows: &[(&str, &str)] = &[
            (
                r#"{"redirect_uris":"https://a"}"#,
                "redirect_uris: invalid type: string \"https://a\", expected a sequence",
            ),
            (
                r#"{"grant_types":[1]}"#,
                "grant_types[0]: invalid type: integer `1`, expected a string",
            ),
            (
                r#"{"client_id":"a b"}"#,
                "client_id: may contain only A-Z, a-z, 0-9 and '-', '.', '_', '~'",
            ),
        ];
        for (json, want) in rows {
            assert_eq!(
                described::<NewClient>(json),
                ("invalid_client_metadata", (*want).to_owned()),
                "{json}"
            );
        }
        let ok =
            NewClient::from_json(br#"{"client_id":"svc","client_name":"S","frobnicate":true}"#);
        let ok = ok.unwrap_or_default();
        assert_eq!(ok.client_id.as_ref().map(ClientId::as_str), Some("svc"));
        assert_eq!(ok.metadata.client_name.as_deref(), Some("S"));
    }

    #[test]
    fn media_type_must_be_json() {
        let rows: &[(Option<&str>, bool)] = &[
            (Some("application/json"), true),
            (Some("application/json; charset=utf-8"), true),
            (Some("Application/JSON; charset=UTF-8"), true),
            (Some("application/merge-patch+json"), true),
            (Some("application/json; charset=latin1"), false),
            (Some("text/plain"), false),
            (Some("application/x-www-form-urlencoded"), false),
            (Some("json"), false),
            (None, false),
        ];
        for (ct, ok) in rows {
            let mut req = TestRequest::default();
            if let Some(ct) = ct {
                req = req.insert_header((CONTENT_TYPE, *ct));
            }
            let got = check_media_type(&req.to_http_request());
            assert_eq!(got.is_ok(), *ok, "{ct:?}: {got:?}");
            if let Err(e) = got {
                assert!(matches!(e, AdminError::UnsupportedMediaType(_)), "{ct:?}");
            }
        }
    }
}
