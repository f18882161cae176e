//! The HTML side of the browser flow: askama templates (HTML-escaped, checked at compile
//! time), the security headers every page carries — a strict Content-Security-Policy with a
//! per-response nonce for the one inline stylesheet, no framing, no referrer — and the
//! flow's cookies (`HttpOnly`, `SameSite=Lax`, `Secure` over HTTPS, scoped to the server's
//! path so each authorization server has its own session).

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use askama::Template;
use tollgate_core::authorize::flow::{ConsentView, Continue, LoginView, Step};
use tollgate_core::authorize::session::{BROWSER_COOKIE, SESSION_COOKIE};
use tollgate_core::authorize::{AuthorizeError, Browser};
use tollgate_core::registry::ServerRuntime;
use tollgate_core::secrets::random_token;
use tollgate_core::Tollgate;

/// Default accent colour: dark enough for white text at WCAG AA.
const DEFAULT_ACCENT: &str = "#1f5fbf";

/// What every page shows of the tenant.
pub(crate) struct Brand {
    name: String,
    logo: Option<String>,
    accent: String,
    on_accent: &'static str,
}

impl Brand {
    fn of(server: &ServerRuntime) -> Self {
        let accent = server
            .server
            .brand_color
            .clone()
            .unwrap_or_else(|| DEFAULT_ACCENT.to_owned());
        Self {
            name: server.tenant_name.clone(),
            logo: server.server.logo_uri.clone(),
            on_accent: text_on(&accent),
            accent,
        }
    }
}

/// Black or white, whichever contrasts more with `#rrggbb` (WCAG 2 relative luminance).
fn text_on(hex: &str) -> &'static str {
    let channel = |i: usize| {
        let v = f64::from(u8::from_str_radix(hex.get(i..i + 2).unwrap_or("00"), 16).unwrap_or(0))
            / 255.0;
        if v <= 0.040_45 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    let l = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
    // Contrast with white is 1.05 / (l + 0.05); with black (l + 0.05) / 0.05.
    if 1.05 / (l + 0.05) >= (l + 0.05) / 0.05 {
        "#ffffff"
    } else {
        "#000000"
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    brand: &'a Brand,
    nonce: &'a str,
    action: &'a str,
    view: &'a LoginView,
    username: &'a str,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    brand: &'a Brand,
    nonce: &'a str,
    action: &'a str,
    view: &'a ConsentView,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    brand: &'a Brand,
    nonce: &'a str,
    title: &'a str,
    message: &'a str,
}

/// Whether the gateway is reached over HTTPS (cookies are then `Secure`).
fn https(app: &Tollgate) -> bool {
    app.options.public_url.starts_with("https://")
}

/// The cookies and address of a browser request.
pub(crate) struct BrowserRequest {
    session: Option<String>,
    binding: Option<String>,
    address: Option<std::net::IpAddr>,
}

impl BrowserRequest {
    pub(crate) fn of(req: &HttpRequest) -> Self {
        Self {
            session: req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()),
            binding: req.cookie(BROWSER_COOKIE).map(|c| c.value().to_owned()),
            address: crate::client_addr::client_address(req),
        }
    }

    pub(crate) fn browser(&self) -> Browser<'_> {
        Browser {
            session: self.session.as_deref(),
            binding: self.binding.as_deref(),
            address: self.address,
        }
    }
}

fn page(
    app: &Tollgate,
    status: StatusCode,
    nonce: &str,
    form_source: Option<&str>,
    html: Result<String, askama::Error>,
) -> HttpResponse {
    let html = match html {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "page rendering failed");
            return HttpResponse::InternalServerError().finish();
        }
    };
    let form_action = form_source.map_or_else(|| "'self'".to_owned(), |s| format!("'self' {s}"));
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; img-src https: data:; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let mut b = HttpResponse::build(status);
    secure_headers(app, &mut b);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        b.insert_header((header::CONTENT_SECURITY_POLICY, v));
    }
    b.content_type("text/html; charset=utf-8").body(html)
}

/// The headers every response of the browser flow carries.
fn secure_headers(app: &Tollgate, b: &mut HttpResponseBuilder) {
    b.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")))
        .insert_header((header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .insert_header((
            header::HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ));
    if https(app) {
        b.insert_header((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
}

/// The login page.
pub(crate) fn login(
    app: &Tollgate,
    server: &ServerRuntime,
    view: &LoginView,
    status: StatusCode,
) -> HttpResponse {
    let brand = Brand::of(server);
    let nonce = random_token(16);
    let action = format!("{}/login", server.issuer);
    let html = LoginPage {
        brand: &brand,
        nonce: &nonce,
        action: &action,
        view,
        username: view.username.as_deref().unwrap_or(""),
    }
    .render();
    page(app, status, &nonce, Some(&view.redirect_source), html)
}

/// The consent page.
pub(crate) fn consent(app: &Tollgate, server: &ServerRuntime, view: &ConsentView) -> HttpResponse {
    let brand = Brand::of(server);
    let nonce = random_token(16);
    let action = format!("{}/consent", server.issuer);
    let html = ConsentPage {
        brand: &brand,
        nonce: &nonce,
        action: &action,
        view,
    }
    .render();
    page(
        app,
        StatusCode::OK,
        &nonce,
        Some(&view.redirect_source),
        html,
    )
}

/// An error page.
pub(crate) fn error(
    app: &Tollgate,
    server: &ServerRuntime,
    status: u16,
    message: &str,
) -> HttpResponse {
    let brand = Brand::of(server);
    let nonce = random_token(16);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let title = match status.as_u16() {
        429 => "Too many attempts",
        503 => "Temporarily unavailable",
        s if s >= 500 => "Something went wrong",
        _ => "This request cannot be completed",
    };
    let html = ErrorPage {
        brand: &brand,
        nonce: &nonce,
        title,
        message,
    }
    .render();
    let mut res = page(app, status, &nonce, None, html);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    res
}

fn cookie<'c>(
    app: &Tollgate,
    server: &ServerRuntime,
    name: &'c str,
    value: String,
    max_age: Option<CookieDuration>,
) -> Cookie<'c> {
    let mut c = Cookie::build(name, value)
        .path(format!(
            "/{}/{}/",
            server.server.tenant_id, server.server.id
        ))
        .http_only(true)
        .secure(https(app))
        .same_site(SameSite::Lax)
        .finish();
    if let Some(age) = max_age {
        c.set_max_age(age);
    }
    c
}

/// Answers a step of the flow: a `303` (with cookies), the login page again, an error page,
/// or an error sent back to the client.
pub(crate) fn respond(
    app: &Tollgate,
    server: &ServerRuntime,
    result: Result<Continue, AuthorizeError>,
) -> HttpResponse {
    match result {
        Ok(next) => {
            let mut res = match &next.step {
                Step::Redirect(location) => see_other(app, location),
                Step::Login(view) => login(app, server, view, StatusCode::OK),
            };
            let session_age = CookieDuration::seconds(
                i64::try_from(app.options.session_ttl.as_secs()).unwrap_or(i64::MAX),
            );
            let mut cookies = Vec::new();
            if let Some(b) = next.binding {
                cookies.push(cookie(app, server, BROWSER_COOKIE, b, None));
            }
            if let Some(s) = next.session {
                cookies.push(cookie(app, server, SESSION_COOKIE, s, Some(session_age)));
            } else if next.clear_session {
                cookies.push(cookie(
                    app,
                    server,
                    SESSION_COOKIE,
                    String::new(),
                    Some(CookieDuration::ZERO),
                ));
            }
            for c in cookies {
                if let Err(e) = res.add_cookie(&c) {
                    tracing::error!(error = %e, "could not set a cookie");
                }
            }
            res
        }
        Err(e) => fail(app, server, e),
    }
}

/// Answers a failed step.
pub(crate) fn fail(app: &Tollgate, server: &ServerRuntime, e: AuthorizeError) -> HttpResponse {
    match e {
        AuthorizeError::Page { status, message } => error(app, server, status, &message),
        AuthorizeError::Redirect(r) => see_other(app, &r.location()),
        AuthorizeError::Throttled { retry_after, view } => {
            let mut res = login(app, server, &view, StatusCode::TOO_MANY_REQUESTS);
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        AuthorizeError::RateLimited { retry_after } => {
            let mut res = error(
                app,
                server,
                429,
                "Too many requests from here. Wait a moment and try again.",
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                res.headers_mut().insert(header::RETRY_AFTER, v);
            }
            res
        }
        AuthorizeError::Unavailable => error(
            app,
            server,
            503,
            "The service is temporarily unavailable. Try again in a moment.",
        ),
    }
}

fn see_other(app: &Tollgate, location: &str) -> HttpResponse {
    let mut b = HttpResponse::SeeOther();
    secure_headers(app, &mut b);
    match HeaderValue::from_str(location) {
        Ok(v) => b.insert_header((header::LOCATION, v)).finish(),
        Err(_) => HttpResponse::InternalServerError().finish(),
    }
}

/// The first value of a form or query field.
pub(crate) fn field(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accent_text_keeps_contrast() {
        assert_eq!(text_on("#1f5fbf"), "#ffffff");
        assert_eq!(text_on("#ffcc00"), "#000000");
        assert_eq!(text_on("#000000"), "#ffffff");
        assert_eq!(text_on("#ffffff"), "#000000");
    }
}
