//! The HTML side of the browser flow: askama templates (HTML-escaped, checked at compile
//! time), the security headers every page carries — a strict Content-Security-Policy with a
//! per-response nonce for the one inline stylesheet, no framing, no referrer — and the
//! flow's cookies (`HttpOnly`, `SameSite=Lax`, `Secure` over HTTPS, scoped to the server's
//! path so each authorization server has its own session). What a failed step looks like
//! is decided in `crate::error`, which draws its pages here.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use askama::Template;
use std::time::Duration;
use tollgate_core::authorize::device::{DeviceView, Done};
use tollgate_core::authorize::flow::{ConsentView, Continue, LoginView, Step};
use tollgate_core::authorize::response::FormPost;
use tollgate_core::authorize::session::{BROWSER_COOKIE, SESSION_COOKIE};
use tollgate_core::authorize::Browser;
use tollgate_core::registry::ServerRuntime;
use tollgate_core::secrets::random_token;
use tollgate_core::Tollgate;

/// Default accent colour: dark enough for white text at WCAG AA.
const DEFAULT_ACCENT: &str = "#1f5fbf";

/// What every page shows of the tenant.
#[derive(Debug, Clone)]
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
#[template(path = "form_post.html")]
struct FormPostPage<'a> {
    brand: &'a Brand,
    nonce: &'a str,
    post: &'a FormPost,
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    brand: &'a Brand,
    nonce: &'a str,
    action: &'a str,
    view: &'a DeviceView,
    user_code: &'a str,
    done: Option<Done>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    brand: &'a Brand,
    nonce: &'a str,
    title: &'a str,
    message: &'a str,
}

/// What a server's browser-flow responses are drawn with. Owned, so that an error can carry
/// it to `crate::error`, where it becomes its response.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    brand: Brand,
    /// Forms post to `{issuer}/login` and `{issuer}/consent`.
    issuer: String,
    /// The flow's cookies belong to `/{tid}/{aid}/`.
    cookie_path: String,
    /// Whether the gateway is reached over HTTPS (cookies are then `Secure`, and HSTS is sent).
    https: bool,
}

impl Site {
    /// How `server`'s pages look, served at `app`'s public URL.
    pub(crate) fn of(app: &Tollgate, server: &ServerRuntime) -> Self {
        Self {
            brand: Brand::of(server),
            issuer: server.issuer.clone(),
            cookie_path: format!("/{}/{}/", server.server.tenant_id, server.server.id),
            https: app.options.public_url.starts_with("https://"),
        }
    }

    /// A site with the default look, for tests that need a page without a server.
    #[cfg(test)]
    pub(crate) fn for_test(https: bool) -> Self {
        Self {
            brand: Brand {
                name: "Example".to_owned(),
                logo: None,
                accent: DEFAULT_ACCENT.to_owned(),
                on_accent: text_on(DEFAULT_ACCENT),
            },
            issuer: "https://id.example/t1/s1".to_owned(),
            cookie_path: "/t1/s1/".to_owned(),
            https,
        }
    }
}

/// Why a page could not be drawn; `crate::error` answers a bare `500`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DrawError {
    /// The template failed to render.
    #[error("page rendering failed: {0}")]
    Template(#[from] askama::Error),
    /// A redirect's location is not a valid header value.
    #[error("the redirect location is not a valid header value")]
    Location,
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
    site: &Site,
    status: StatusCode,
    nonce: &str,
    form_source: Option<&str>,
    html: Result<String, askama::Error>,
) -> Result<HttpResponse, DrawError> {
    page_with(site, status, nonce, form_source, false, html)
}

/// A page; `script`: its one inline script (the form post's submit) runs, by the nonce.
fn page_with(
    site: &Site,
    status: StatusCode,
    nonce: &str,
    form_source: Option<&str>,
    script: bool,
    html: Result<String, askama::Error>,
) -> Result<HttpResponse, DrawError> {
    let html = html?;
    let form_action = form_source.map_or_else(|| "'self'".to_owned(), |s| format!("'self' {s}"));
    let script_src = if script {
        format!("script-src 'nonce-{nonce}'; ")
    } else {
        String::new()
    };
    let csp = format!(
        "default-src 'none'; {script_src}style-src 'nonce-{nonce}'; img-src https: data:; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'"
    );
    let mut b = HttpResponse::build(status);
    secure_headers(site, &mut b);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        b.insert_header((header::CONTENT_SECURITY_POLICY, v));
    }
    Ok(b.content_type("text/html; charset=utf-8").body(html))
}

/// The headers every response of the browser flow carries.
fn secure_headers(site: &Site, b: &mut HttpResponseBuilder) {
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
    if site.https {
        b.insert_header((
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
}

/// The login page.
pub(crate) fn login(
    site: &Site,
    view: &LoginView,
    status: StatusCode,
) -> Result<HttpResponse, DrawError> {
    let nonce = random_token(16);
    let action = format!("{}/login", site.issuer);
    let html = LoginPage {
        brand: &site.brand,
        nonce: &nonce,
        action: &action,
        view,
        username: view.username.as_deref().unwrap_or(""),
    }
    .render();
    page(site, status, &nonce, Some(&view.redirect_source), html)
}

/// The consent page.
pub(crate) fn consent(site: &Site, view: &ConsentView) -> Result<HttpResponse, DrawError> {
    let nonce = random_token(16);
    let action = format!("{}/consent", site.issuer);
    let html = ConsentPage {
        brand: &site.brand,
        nonce: &nonce,
        action: &action,
        view,
    }
    .render();
    page(
        site,
        StatusCode::OK,
        &nonce,
        Some(&view.redirect_source),
        html,
    )
}

/// The form post of a response (Form Post Response Mode §2): it submits itself, and works
/// without JavaScript through its button; only the client's redirect URI may receive it.
pub(crate) fn form_post(site: &Site, post: &FormPost) -> Result<HttpResponse, DrawError> {
    let nonce = random_token(16);
    let html = FormPostPage {
        brand: &site.brand,
        nonce: &nonce,
        post,
    }
    .render();
    page_with(
        site,
        StatusCode::OK,
        &nonce,
        Some(&post.redirect_source),
        true,
        html,
    )
}

/// The `/device` page (RFC 8628 §3.3): the user-code form, or the outcome after a decision;
/// with the browser's binding cookie when it was new.
pub(crate) fn device(
    site: &Site,
    view: &DeviceView,
    done: Option<Done>,
    status: StatusCode,
) -> Result<HttpResponse, DrawError> {
    let nonce = random_token(16);
    let action = format!("{}/device", site.issuer);
    let html = DevicePage {
        brand: &site.brand,
        nonce: &nonce,
        action: &action,
        view,
        user_code: view.user_code.as_deref().unwrap_or(""),
        done,
    }
    .render();
    let mut res = page(site, status, &nonce, None, html)?;
    if let Some(b) = &view.binding {
        if let Err(e) = res.add_cookie(&cookie(site, BROWSER_COOKIE, b.clone(), None)) {
            tracing::error!(error = %e, "could not set a cookie");
        }
    }
    Ok(res)
}

/// An error page, titled by its status.
pub(crate) fn error_page(
    site: &Site,
    status: StatusCode,
    message: &str,
) -> Result<HttpResponse, DrawError> {
    let nonce = random_token(16);
    let title = match status.as_u16() {
        429 => "Too many attempts",
        503 => "Temporarily unavailable",
        s if s >= 500 => "Something went wrong",
        _ => "This request cannot be completed",
    };
    let html = ErrorPage {
        brand: &site.brand,
        nonce: &nonce,
        title,
        message,
    }
    .render();
    page(site, status, &nonce, None, html)
}

fn cookie<'c>(
    site: &Site,
    name: &'c str,
    value: String,
    max_age: Option<CookieDuration>,
) -> Cookie<'c> {
    let mut c = Cookie::build(name, value)
        .path(site.cookie_path.clone())
        .http_only(true)
        .secure(site.https)
        .same_site(SameSite::Lax)
        .finish();
    if let Some(age) = max_age {
        c.set_max_age(age);
    }
    c
}

/// Answers a step of the flow that went on: a `303` or the login page, with the cookies the
/// step set (a session lives `session_ttl`).
pub(crate) fn proceed(
    site: &Site,
    session_ttl: Duration,
    next: Continue,
) -> Result<HttpResponse, DrawError> {
    let mut res = match &next.step {
        Step::Redirect(location) => see_other(site, location)?,
        Step::Login(view) => login(site, view, StatusCode::OK)?,
        Step::FormPost(post) => form_post(site, post)?,
    };
    let session_age =
        CookieDuration::seconds(i64::try_from(session_ttl.as_secs()).unwrap_or(i64::MAX));
    let mut cookies = Vec::new();
    if let Some(b) = next.binding {
        cookies.push(cookie(site, BROWSER_COOKIE, b, None));
    }
    if let Some(s) = next.session {
        cookies.push(cookie(site, SESSION_COOKIE, s, Some(session_age)));
    } else if next.clear_session {
        cookies.push(cookie(
            site,
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
    Ok(res)
}

/// A `303` to `location`, with the flow's security headers.
pub(crate) fn see_other(site: &Site, location: &str) -> Result<HttpResponse, DrawError> {
    let location = HeaderValue::from_str(location).map_err(|_| DrawError::Location)?;
    let mut b = HttpResponse::SeeOther();
    secure_headers(site, &mut b);
    Ok(b.insert_header((header::LOCATION, location)).finish())
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
