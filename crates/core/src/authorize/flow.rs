//! The steps of the browser flow, each one function the gateway's handlers call:
//! `/oauth2/authorize` → login → consent → back to the client with a code.
//!
//! A step answers with a [`Continue`]: where the browser goes next (or which page it sees)
//! and which cookies to set. Pages never carry anything but the pending request's id and its
//! CSRF token; the request itself stays in the short-lived store, bound to the browser.

use std::sync::Arc;

use super::code;
use super::request::{self, AuthorizeRequest, RawParams};
use super::session::{self, Browser, Session};
use super::AuthorizeError;
use crate::app::Tollgate;
use crate::model::users::{normalize_username, Consent, User};
use crate::rate_limit;
use crate::registry::{ClientRuntime, ServerRuntime};
use crate::scope::Scopes;
use crate::secrets::Password;

/// What the browser does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `303 See Other` to this URL.
    Redirect(String),
    /// The login page (again, with an error).
    Login(LoginView),
    /// The response, posted to the client by an auto-submitting form
    /// (`response_mode=form_post` or `form_post.jwt`).
    FormPost(super::response::FormPost),
}

/// A step's answer: the next step and the cookies to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continue {
    /// What the browser does next.
    pub step: Step,
    /// A new binding cookie for this browser.
    pub binding: Option<String>,
    /// A new session cookie (after a login).
    pub session: Option<String>,
    /// Whether to clear the session cookie (its session is gone).
    pub clear_session: bool,
}

impl Continue {
    fn redirect(location: String) -> Self {
        Self::to(Step::Redirect(location))
    }

    /// Goes on to `step`, setting no cookie.
    #[must_use]
    pub fn to(step: Step) -> Self {
        Self {
            step,
            binding: None,
            session: None,
            clear_session: false,
        }
    }
}

/// What the login page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginView {
    /// The pending request.
    pub request_id: String,
    /// Its CSRF token.
    pub csrf: String,
    /// The application asking.
    pub client_name: String,
    /// Pre-filled username (`login_hint`, or what was typed).
    pub username: Option<String>,
    /// Why the last attempt failed.
    pub error: Option<&'static str>,
    /// Where the form may lead (CSP `form-action`): the client's redirect URI origin.
    pub redirect_source: String,
}

/// One scope on the consent page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeItem {
    /// The scope token.
    pub name: String,
    /// What it allows, in words.
    pub description: String,
}

/// What the consent page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentView {
    /// The pending request.
    pub request_id: String,
    /// Its CSRF token.
    pub csrf: String,
    /// The application asking.
    pub client_name: String,
    /// Its home page, when registered.
    pub client_uri: Option<String>,
    /// Who is logged in.
    pub username: String,
    /// What the application asks for.
    pub scopes: Vec<ScopeItem>,
    /// Where the form may lead (CSP `form-action`): the client's redirect URI origin.
    pub redirect_source: String,
}

/// The consent page, or (the session being gone) a redirect to the login page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentStep {
    /// Show the page.
    Page(ConsentView),
    /// Log in first.
    Continue(Continue),
}

/// A scope in words for the consent page.
#[must_use]
pub fn describe_scope(scope: &str) -> String {
    match scope {
        "openid" => "Know who you are (your account identifier)".into(),
        "profile" => "See your profile: name, username, picture, locale".into(),
        "email" => "See your email address".into(),
        "address" => "See your postal address".into(),
        "phone" => "See your phone number".into(),
        "offline_access" => "Keep access while you are not using it".into(),
        other => format!("Access “{other}”"),
    }
}

fn client_name(client: &ClientRuntime) -> String {
    client
        .client
        .metadata
        .client_name
        .clone()
        .unwrap_or_else(|| client.client.client_id.to_string())
}

/// The Content-Security-Policy source of a redirect URI: its origin, or its scheme for the
/// private-use schemes of native apps (RFC 8252 §7.1).
#[must_use]
pub fn csp_source(redirect_uri: &str) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u.origin().ascii_serialization(),
        Ok(u) => format!("{}:", u.scheme()),
        Err(_) => "'none'".into(),
    }
}

fn login_url(server: &ServerRuntime, id: &str) -> String {
    super::with_query(&format!("{}/login", server.issuer), &[("req", id)])
}

fn consent_url(server: &ServerRuntime, id: &str) -> String {
    super::with_query(&format!("{}/consent", server.issuer), &[("req", id)])
}

/// `GET|POST /oauth2/authorize`: validates the request, then sends the browser to the login
/// page, the consent page, or straight back to the client with a code.
///
/// # Errors
/// An error page (bad client or redirect URI), an error for the client, or `503`.
pub async fn authorize(
    app: &Tollgate,
    server: &ServerRuntime,
    raw: &RawParams,
    browser: Browser<'_>,
) -> Result<Continue, AuthorizeError> {
    rate_limit::check_client_endpoint(
        &app.rate_limiter(),
        "authorize",
        &server.server,
        raw.client_id().as_ref(),
        browser.address,
    )
    .await
    .map_err(AuthorizeError::from_oauth)?;
    let (req, client) = request::validate(app, server, raw).await?;
    start(app, server, &client, req, browser).await
}

/// A validated request (from `/oauth2/authorize`, or a device's from `/device`): to the login
/// page without a live session, else on to consent or the end.
///
/// # Errors
/// `login_required` for `prompt=none` without a session; `503`.
pub(crate) async fn start(
    app: &Tollgate,
    server: &ServerRuntime,
    client: &ClientRuntime,
    req: AuthorizeRequest,
    browser: Browser<'_>,
) -> Result<Continue, AuthorizeError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let session = session::load_session(app, t, s, browser.session).await?;
    let now = app.clock.now();
    // OIDC Core §3.1.2.1: `max_age=0` is equivalent to `prompt=login`.
    let fresh_enough = |sess: &Session| {
        req.max_age
            .is_none_or(|m| m > 0 && now - sess.auth_time <= m)
    };
    let live = match session {
        Some(sess) if !req.prompt.login && fresh_enough(&sess) => app
            .repo
            .get_user(t, s, &sess.user_id)
            .await?
            .filter(|user| sess.holds(user))
            .map(|user| (sess, user)),
        _ => None,
    };
    let Some((sess, user)) = live else {
        if req.prompt.none {
            return Err(req.error(
                &server.issuer,
                "login_required",
                "the user is not logged in",
            ));
        }
        let (binding, new_binding) = session::binding_or_new(browser.binding);
        let id = session::save_pending(app, t, s, req, &binding).await?;
        let mut next = Continue::redirect(login_url(server, &id));
        next.binding = new_binding;
        return Ok(next);
    };
    proceed(
        app,
        server,
        client,
        req,
        &sess,
        &user,
        None,
        browser.binding,
    )
    .await
}

/// After login (or with a live session): straight back with a code when consent covers the
/// request, else to the consent page.
#[allow(clippy::too_many_arguments)]
async fn proceed(
    app: &Tollgate,
    server: &ServerRuntime,
    client: &ClientRuntime,
    req: AuthorizeRequest,
    sess: &Session,
    user: &User,
    pending_id: Option<&str>,
    binding: Option<&str>,
) -> Result<Continue, AuthorizeError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let consent = app
        .repo
        .get_consent(t, s, &user.id, &client.client.client_id)
        .await?;
    let covered = !req.prompt.consent
        && consent.is_some_and(|c| {
            Scopes::parse(&c.scope).is_ok_and(|granted| req.scopes().is_subset(&granted))
        });
    if covered {
        if let Some(id) = pending_id {
            session::take_pending(app, t, s, id).await?;
        }
        let step = code::issue(app, server, &req, sess).await?;
        tracing::info!(tenant = %t, server = %s, client_id = %req.client_id, "authorization code issued");
        return Ok(Continue::to(step));
    }
    if req.prompt.none {
        return Err(req.error(
            &server.issuer,
            "consent_required",
            "the user has not consented",
        ));
    }
    let mut new_binding = None;
    let id = match pending_id {
        Some(id) => id.to_owned(),
        None => {
            let (b, fresh) = session::binding_or_new(binding);
            new_binding = fresh;
            session::save_pending(app, t, s, req, &b).await?
        }
    };
    let mut next = Continue::redirect(consent_url(server, &id));
    next.binding = new_binding;
    Ok(next)
}

async fn pending_client(
    app: &Tollgate,
    server: &ServerRuntime,
    req: &AuthorizeRequest,
) -> Result<Arc<ClientRuntime>, AuthorizeError> {
    app.client(&server.server.tenant_id, &server.server.id, &req.client_id)
        .await
        .map_err(AuthorizeError::from_oauth)?
        .ok_or_else(|| {
            AuthorizeError::page(
                400,
                "The application is no longer registered with this server.",
            )
        })
}

/// `GET /login?req=…`: the login form of a pending request.
///
/// # Errors
/// An error page when the request is unknown, expired or another browser's.
pub async fn login_page(
    app: &Tollgate,
    server: &ServerRuntime,
    request_id: &str,
    browser: Browser<'_>,
) -> Result<LoginView, AuthorizeError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let pending = session::load_pending(app, t, s, request_id, browser.binding).await?;
    let client = pending_client(app, server, &pending.request).await?;
    Ok(LoginView {
        request_id: request_id.to_owned(),
        csrf: pending.csrf,
        client_name: client_name(&client),
        redirect_source: csp_source(&pending.request.redirect_uri),
        username: pending.request.login_hint,
        error: None,
    })
}

/// The login form's fields.
#[derive(Debug, Clone)]
pub struct LoginForm {
    /// `req`.
    pub request_id: String,
    /// `csrf`.
    pub csrf: Option<String>,
    /// `username`.
    pub username: String,
    /// `password`.
    pub password: Password,
}

/// `POST /login`: checks the password; on success starts a session and continues to
/// consent or back to the client.
///
/// # Errors
/// An error page for a stale form or a wrong CSRF token; `Throttled` when locked out.
pub async fn login(
    app: &Tollgate,
    server: &ServerRuntime,
    form: LoginForm,
    browser: Browser<'_>,
) -> Result<Continue, AuthorizeError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let pending = session::load_pending(app, t, s, &form.request_id, browser.binding).await?;
    session::check_csrf(&pending, form.csrf.as_deref())?;
    let client = pending_client(app, server, &pending.request).await?;
    let view = |error| LoginView {
        request_id: form.request_id.clone(),
        csrf: pending.csrf.clone(),
        client_name: client_name(&client),
        username: (!form.username.is_empty()).then(|| form.username.clone()),
        error: Some(error),
        redirect_source: csp_source(&pending.request.redirect_uri),
    };
    let failed = || Continue {
        step: Step::Login(view("Wrong username or password.")),
        binding: None,
        session: None,
        clear_session: false,
    };
    if let Err(e) = rate_limit::check_client_endpoint(
        &app.rate_limiter(),
        "login",
        &server.server,
        Some(&pending.request.client_id),
        browser.address,
    )
    .await
    {
        return Err(AuthorizeError::Throttled {
            retry_after: e.retry_after.unwrap_or(1),
            view: Box::new(view("Too many requests. Wait a moment and try again.")),
        });
    }
    let Ok(username) = normalize_username(&form.username) else {
        return Ok(failed());
    };
    if let Some(retry_after) = session::locked_out(app, t, s, &username, browser.address).await? {
        app.metrics.login("locked_out");
        return Err(AuthorizeError::Throttled {
            retry_after,
            view: Box::new(view(
                "Too many failed attempts. Wait a few minutes and try again.",
            )),
        });
    }
    let user = app.repo.find_user(t, s, &username).await?;
    if !session::verify_password(app, user.as_ref(), &form.password).await? {
        session::record_failure(app, t, s, &username, browser.address).await?;
        app.metrics.login(if user.is_some() {
            "wrong_password"
        } else {
            "unknown_user"
        });
        tracing::info!(tenant = %t, server = %s, reason = if user.is_some() { "wrong_password" } else { "unknown_user" }, "login failed");
        return Ok(failed());
    }
    let Some(user) = user else {
        return Ok(failed());
    };
    session::clear_failures(app, t, s, &username).await?;
    app.metrics.login("success");
    if let Some(old) = browser.session {
        session::end_session(app, t, s, old).await?;
    }
    let sess = Session {
        user_id: user.id.clone(),
        auth_time: app.clock.now(),
        amr: vec!["pwd".into()],
        password_stamp: Some(session::password_stamp(&user)),
        sid: Some(session::new_sid()),
    };
    let sid = session::create_session(app, t, s, &sess).await?;
    tracing::info!(tenant = %t, server = %s, user_id = %user.id, "user logged in");
    let mut next = proceed(
        app,
        server,
        &client,
        pending.request,
        &sess,
        &user,
        Some(&form.request_id),
        browser.binding,
    )
    .await?;
    next.session = Some(sid);
    Ok(next)
}

/// `GET /consent?req=…`: what the application asks for; to the login page when the session
/// has ended meanwhile.
///
/// # Errors
/// An error page when the request is unknown, expired or another browser's.
pub async fn consent_page(
    app: &Tollgate,
    server: &ServerRuntime,
    request_id: &str,
    browser: Browser<'_>,
) -> Result<ConsentStep, AuthorizeError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let pending = session::load_pending(app, t, s, request_id, browser.binding).await?;
    let Some((_, user)) = session_user(app, server, browser).await? else {
        let mut next = Continue::redirect(login_url(server, request_id));
        next.clear_session = browser.session.is_some();
        return Ok(ConsentStep::Continue(next));
    };
    let client = pending_client(app, server, &pending.request).await?;
    Ok(ConsentStep::Page(ConsentView {
        request_id: request_id.to_owned(),
        csrf: pending.csrf,
        client_name: client_name(&client),
        client_uri: client.client.metadata.client_uri.clone(),
        username: user.username,
        redirect_source: csp_source(&pending.request.redirect_uri),
        scopes: pending
            .request
            .scopes()
            .iter()
            .map(|s| ScopeItem {
                name: s.to_owned(),
                description: describe_scope(s),
            })
            .collect(),
    }))
}

async fn session_user(
    app: &Tollgate,
    server: &ServerRuntime,
    browser: Browser<'_>,
) -> Result<Option<(Session, User)>, AuthorizeError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let Some(sess) = session::load_session(app, t, s, browser.session).await? else {
        return Ok(None);
    };
    Ok(app
        .repo
        .get_user(t, s, &sess.user_id)
        .await?
        // A deleted user, or a password changed since the login, ends the session.
        .filter(|u| sess.holds(u))
        .map(|u| (sess, u)))
}

/// The consent form's fields.
#[derive(Debug, Clone, Default)]
pub struct ConsentForm {
    /// `req`.
    pub request_id: String,
    /// `csrf`.
    pub csrf: Option<String>,
    /// `decision`: `allow` or `deny`.
    pub decision: Option<String>,
}

/// `POST /consent`: `allow` remembers the consent and returns a code to the client; `deny`
/// returns `access_denied`.
///
/// # Errors
/// An error page for a stale form, a wrong CSRF token or a missing decision.
pub async fn consent(
    app: &Tollgate,
    server: &ServerRuntime,
    form: ConsentForm,
    browser: Browser<'_>,
) -> Result<Continue, AuthorizeError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let pending = session::load_pending(app, t, s, &form.request_id, browser.binding).await?;
    session::check_csrf(&pending, form.csrf.as_deref())?;
    let allow = match form.decision.as_deref() {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Err(AuthorizeError::page(400, "Choose Allow or Deny.")),
    };
    let Some((sess, user)) = session_user(app, server, browser).await? else {
        let mut next = Continue::redirect(login_url(server, &form.request_id));
        next.clear_session = browser.session.is_some();
        return Ok(next);
    };
    session::take_pending(app, t, s, &form.request_id).await?;
    let req = pending.request;
    if let Some(device) = &req.device {
        let location = super::device::decide(app, server, device, &sess, allow).await?;
        return Ok(Continue::redirect(location));
    }
    if !allow {
        tracing::info!(tenant = %t, server = %s, client_id = %req.client_id, "consent denied");
        return Err(req.error(
            &server.issuer,
            "access_denied",
            "the user denied the request",
        ));
    }
    let now = app.clock.now();
    let previous = app.repo.get_consent(t, s, &user.id, &req.client_id).await?;
    let mut granted = previous
        .as_ref()
        .and_then(|c| Scopes::parse(&c.scope).ok())
        .unwrap_or_default();
    granted.extend(&req.scopes());
    app.repo
        .put_consent(&Consent {
            tenant_id: t.clone(),
            server_id: s.clone(),
            user_id: user.id.clone(),
            client_id: req.client_id.clone(),
            scope: granted.to_scope_string(),
            created_at: previous.map_or(now, |c| c.created_at),
            updated_at: now,
        })
        .await?;
    let step = code::issue(app, server, &req, &sess).await?;
    tracing::info!(tenant = %t, server = %s, client_id = %req.client_id, "consent given; authorization code issued");
    Ok(Continue::to(step))
}
