//! The mapping, one row per kind of error, and the invariant that the headers it owns are
//! set nowhere else in the gateway.

use std::path::Path;

use actix_web::body::to_bytes;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use tollgate_core::authorize::{AuthorizeError, LoginView, RedirectError};
use tollgate_core::oauth::{ErrorCode, OAuthError};
use tollgate_core::userinfo::UserinfoError;

use super::{GatewayError, OAuthResponse};
use crate::pages::{DrawError, Site};

/// Status, headers and body of an error's response, after checking that `status_code`
/// agrees with it.
async fn render(e: &GatewayError) -> (StatusCode, HeaderMap, String) {
    let res = e.error_response();
    assert_eq!(res.status(), e.status_code(), "{e:?}");
    let (status, headers) = (res.status(), res.headers().clone());
    let body = to_bytes(res.into_body()).await.unwrap_or_default();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn get<'h>(headers: &'h HeaderMap, name: &header::HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The headers this module owns: `WWW-Authenticate`, `Allow`, `Retry-After`.
fn owned(headers: &HeaderMap) -> [Option<&str>; 3] {
    [
        get(headers, &header::WWW_AUTHENTICATE),
        get(headers, &header::ALLOW),
        get(headers, &header::RETRY_AFTER),
    ]
}

#[actix_web::test]
async fn oauth_errors_are_json_with_their_headers() {
    const BASIC: &str = "Basic realm=\"tollgate\", charset=\"UTF-8\"";
    let rows: Vec<(OAuthError, u16, &str, [Option<&str>; 3])> = vec![
        (
            OAuthError::invalid_request("bad"),
            400,
            "invalid_request",
            [None; 3],
        ),
        (
            OAuthError::invalid_client("who").with_basic_challenge(true),
            401,
            "invalid_client",
            [Some(BASIC), None, None],
        ),
        (
            OAuthError::invalid_client("who"),
            401,
            "invalid_client",
            [None; 3],
        ),
        // A challenge answers a 401 only.
        (
            OAuthError::invalid_request("bad").with_basic_challenge(true),
            400,
            "invalid_request",
            [None; 3],
        ),
        (
            OAuthError::unknown_server(),
            404,
            "invalid_request",
            [None; 3],
        ),
        (
            OAuthError::method_not_allowed("GET, POST"),
            405,
            "invalid_request",
            [None, Some("GET, POST"), None],
        ),
        (
            OAuthError::headers_too_large(16_384),
            431,
            "invalid_request",
            [None; 3],
        ),
        (
            OAuthError::too_many_requests(7),
            429,
            "too_many_requests",
            [None, None, Some("7")],
        ),
        (OAuthError::server_error(), 500, "server_error", [None; 3]),
        (
            OAuthError::temporarily_unavailable(),
            503,
            "temporarily_unavailable",
            [None, None, Some("5")],
        ),
    ];
    for (e, status, code, headers) in rows {
        let expected = serde_json::json!({"error": code, "error_description": e.description});
        let public = OAuthResponse(e.clone()).error_response();
        assert_eq!(public.extensions().get::<ErrorCode>(), Some(&e.code), "{e}");
        let (got, h, body) = render(&GatewayError::OAuth(e.clone())).await;
        assert_eq!(got.as_u16(), status, "{e}");
        assert_eq!(owned(&h), headers, "{e}");
        assert_eq!(get(&h, &header::CACHE_CONTROL), Some("no-store"), "{e}");
        assert_eq!(get(&h, &header::PRAGMA), Some("no-cache"), "{e}");
        assert_eq!(
            get(&h, &header::CONTENT_TYPE),
            Some("application/json"),
            "{e}"
        );
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body, expected, "{e}");
        // The public wrapper answers alike.
        assert_eq!(public.status().as_u16(), status, "{e}");
        assert_eq!(owned(public.headers()), headers, "{e}");
    }
}

#[actix_web::test]
async fn bearer_errors_carry_the_rfc_6750_challenge() {
    let rows: Vec<(UserinfoError, u16, [Option<&str>; 3], &str)> = vec![
        (
            UserinfoError::NoToken,
            401,
            [Some("Bearer realm=\"tollgate\""), None, None],
            r#"{"error":"invalid_request","error_description":"an access token is required"}"#,
        ),
        (
            UserinfoError::InvalidRequest("more than one Authorization header"),
            400,
            [
                Some(
                    "Bearer realm=\"tollgate\", error=\"invalid_request\", \
                     error_description=\"more than one Authorization header\"",
                ),
                None,
                None,
            ],
            r#"{"error":"invalid_request","error_description":"more than one Authorization header"}"#,
        ),
        (
            UserinfoError::InvalidToken("the user no longer exists"),
            401,
            [
                Some(
                    "Bearer realm=\"tollgate\", error=\"invalid_token\", \
                     error_description=\"the user no longer exists\"",
                ),
                None,
                None,
            ],
            r#"{"error":"invalid_token","error_description":"the user no longer exists"}"#,
        ),
        (
            UserinfoError::InsufficientScope,
            403,
            [
                Some(
                    "Bearer realm=\"tollgate\", error=\"insufficient_scope\", \
                     error_description=\"the access token lacks the `openid` scope\"",
                ),
                None,
                None,
            ],
            r#"{"error":"insufficient_scope","error_description":"the access token lacks the `openid` scope"}"#,
        ),
        (
            UserinfoError::Unavailable,
            503,
            [None, None, Some("5")],
            r#"{"error":"temporarily_unavailable","error_description":"a backing store is unavailable; retry later"}"#,
        ),
    ];
    for (e, status, headers, body) in rows {
        let (got, h, got_body) = render(&GatewayError::Bearer(e.clone())).await;
        assert_eq!(got.as_u16(), status, "{e:?}");
        assert_eq!(owned(&h), headers, "{e:?}");
        assert_eq!(get(&h, &header::CACHE_CONTROL), Some("no-store"), "{e:?}");
        assert_eq!(get(&h, &header::PRAGMA), None, "{e:?}");
        assert_eq!(
            get(&h, &header::CONTENT_TYPE),
            Some("application/json"),
            "{e:?}"
        );
        assert_eq!(got_body, body, "{e:?}");
    }
}

fn login_view() -> LoginView {
    LoginView {
        request_id: "r1".to_owned(),
        csrf: "c1".to_owned(),
        client_name: "App".to_owned(),
        username: Some("alice".to_owned()),
        error: Some("Too many attempts."),
        redirect_source: "https://app.example".to_owned(),
    }
}

#[actix_web::test]
async fn page_errors_are_pages_with_their_status_and_retry_after() {
    let redirect = RedirectError {
        redirect_uri: "https://app.example/cb".to_owned(),
        error: "access_denied",
        description: "the user said no".to_owned(),
        state: Some("s1".to_owned()),
        issuer: "https://id.example/t1/s1".to_owned(),
        client_id: tollgate_core::ids::ClientId::parse("c1").unwrap(),
        mode: tollgate_core::oauth::ResponseMode::Query,
    };
    let location = redirect.location();
    // (error, status, Retry-After, what the page says)
    let rows: Vec<(AuthorizeError, u16, Option<&str>, &str)> = vec![
        (
            AuthorizeError::page(400, "the redirect_uri is not registered"),
            400,
            None,
            "the redirect_uri is not registered",
        ),
        (
            AuthorizeError::page(503, "down"),
            503,
            Some("5"),
            "Temporarily unavailable",
        ),
        (
            AuthorizeError::Unavailable,
            503,
            Some("5"),
            "The service is temporarily unavailable. Try again in a moment.",
        ),
        (
            AuthorizeError::RateLimited { retry_after: 4 },
            429,
            Some("4"),
            "Too many requests from here. Wait a moment and try again.",
        ),
        (
            AuthorizeError::Throttled {
                retry_after: 9,
                view: Box::new(login_view()),
            },
            429,
            Some("9"),
            "Too many attempts.",
        ),
        (AuthorizeError::Redirect(Box::new(redirect)), 303, None, ""),
    ];
    let site = Site::for_test(true);
    for (e, status, retry_after, says) in rows {
        let (got, h, body) = render(&GatewayError::page(&site, e.clone())).await;
        assert_eq!(got.as_u16(), status, "{e:?}");
        assert_eq!(owned(&h), [None, None, retry_after], "{e:?}");
        assert_eq!(get(&h, &header::CACHE_CONTROL), Some("no-store"), "{e:?}");
        assert_eq!(get(&h, &header::X_FRAME_OPTIONS), Some("DENY"), "{e:?}");
        assert!(h.contains_key(header::STRICT_TRANSPORT_SECURITY), "{e:?}");
        if status == 303 {
            assert_eq!(get(&h, &header::LOCATION), Some(location.as_str()));
            assert!(body.is_empty());
        } else {
            assert_eq!(
                get(&h, &header::CONTENT_TYPE),
                Some("text/html; charset=utf-8"),
                "{e:?}"
            );
            assert!(h.contains_key(header::CONTENT_SECURITY_POLICY), "{e:?}");
            assert!(body.contains(says), "{e:?}: {body}");
        }
    }
    // Without HTTPS, no HSTS.
    let (_, h, _) = render(&GatewayError::page(
        &Site::for_test(false),
        AuthorizeError::Unavailable,
    ))
    .await;
    assert!(!h.contains_key(header::STRICT_TRANSPORT_SECURITY));
}

#[actix_web::test]
async fn an_undrawable_page_is_a_bare_500() {
    let (status, h, body) = render(&GatewayError::Draw(DrawError::Location)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(h.is_empty(), "{h:?}");
    assert!(body.is_empty());
}

#[test]
fn gateway_errors_pass_through_to_json() {
    let e: GatewayError = OAuthResponse(OAuthError::unknown_server()).into();
    assert!(matches!(e, GatewayError::OAuth(ref o) if o.status == 404));
    let _: HttpResponse = e.error_response();
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_error_module_sets_challenge_allow_and_retry_after() {
    // The header constants, and their names as literals in any case (`HeaderName::from_static`,
    // `HeaderName::from_bytes`).
    const CONSTANTS: &[&str] = &["RETRY_AFTER", "WWW_AUTHENTICATE", "header::ALLOW"];
    const NAMES: &[&str] = &["\"retry-after\"", "\"www-authenticate\"", "\"allow\""];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 5, "no sources found under {}", src.display());
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(src.join("error"))) {
        let text = std::fs::read_to_string(file).unwrap();
        // A file's unit tests may look at these headers.
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in code.lines().enumerate() {
            let lower = line.to_ascii_lowercase();
            let hits = CONSTANTS.iter().filter(|c| line.contains(**c));
            for needle in hits.chain(NAMES.iter().filter(|l| lower.contains(**l))) {
                found.push(format!("{}:{}: {needle}", file.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "these headers belong to src/error/ only:\n{}",
        found.join("\n")
    );
}
