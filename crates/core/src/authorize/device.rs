//! The user's side of the device flow (RFC 8628 §3.3): `/device` asks for the user code
//! (a plain form with a CSRF token bound to this browser), then leads through the built-in
//! login and consent like an authorization request whose end is the device's decision
//! instead of a redirect with a code. Guessing is bounded: every submission counts against
//! the address's rate limit, and wrong codes against a failure budget per address and per
//! server.

use std::time::Duration;

use super::flow::{self, Continue};
use super::request::{AuthorizeRequest, Prompt};
use super::session::{self, Browser, Session};
use super::AuthorizeError;
use crate::app::Tollgate;
use crate::grants::device::{self, Decision, DeviceGrant};
use crate::ids::ClientId;
use crate::rate_limit;
use crate::registry::ServerRuntime;
use crate::secrets::{ct_eq, random_token, sha256_b64};
use crate::store::Owner;

/// Wrong user codes one address may enter per [`GUESS_WINDOW`].
pub const GUESSES_PER_ADDRESS: u64 = 20;
/// Wrong user codes one server accepts per [`GUESS_WINDOW`], from everyone together.
pub const GUESSES_PER_SERVER: u64 = 1000;
/// The window of the guess budgets.
pub const GUESS_WINDOW: Duration = Duration::from_secs(600);

/// What the `/device` page shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceView {
    /// The form's CSRF token.
    pub csrf: String,
    /// Pre-filled code (`verification_uri_complete`, or what was typed).
    pub user_code: Option<String>,
    /// Why the last attempt failed.
    pub error: Option<&'static str>,
    /// A new binding cookie for this browser.
    pub binding: Option<String>,
}

/// The outcome page after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// The device is connected.
    Approved,
    /// The user said no.
    Denied,
}

impl Done {
    /// The `done` query value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Denied => "denied",
        }
    }

    /// The value of a `done` query parameter.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "approved" => Some(Self::Approved),
            "denied" => Some(Self::Denied),
            _ => None,
        }
    }
}

/// What a submission leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStep {
    /// The form again (a wrong or expired code).
    Page(DeviceView),
    /// On to login or consent.
    Continue(Continue),
}

/// The `/device` form's fields.
#[derive(Debug, Clone, Default)]
pub struct DeviceForm {
    /// `csrf`.
    pub csrf: Option<String>,
    /// `user_code`.
    pub user_code: String,
}

fn form_key(server: &ServerRuntime, csrf: &str) -> String {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    format!("device-form:{t}/{s}/{}", sha256_b64(csrf))
}

fn guess_keys(server: &ServerRuntime, browser: Browser<'_>) -> Vec<(String, u64)> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let mut keys = vec![(format!("device-guess:{t}/{s}"), GUESSES_PER_SERVER)];
    if let Some(ip) = browser.address {
        keys.push((format!("device-guess:{t}/{s}/{ip}"), GUESSES_PER_ADDRESS));
    }
    keys
}

/// A counter as [`crate::store::ShortLivedStore::incr`] keeps it: decimal text (Redis), or
/// eight big-endian bytes (the in-process store).
fn counter_value(v: &[u8]) -> u64 {
    if let Ok(n) = std::str::from_utf8(v).unwrap_or("").parse::<u64>() {
        return n;
    }
    <[u8; 8]>::try_from(v).map_or(u64::MAX, u64::from_be_bytes)
}

/// `GET /device`: the form, with a fresh CSRF token bound to this browser.
///
/// # Errors
/// `503` when the short-lived store cannot keep the token.
pub async fn page(
    app: &Tollgate,
    server: &ServerRuntime,
    prefill: Option<&str>,
    error: Option<&'static str>,
    browser: Browser<'_>,
) -> Result<DeviceView, AuthorizeError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let (binding, fresh) = session::binding_or_new(browser.binding);
    let csrf = random_token(32);
    app.short_lived
        .put(
            Owner::new(t, s),
            &form_key(server, &csrf),
            sha256_b64(&binding).as_bytes(),
            session::PENDING_TTL,
        )
        .await?;
    Ok(DeviceView {
        csrf,
        user_code: prefill
            .filter(|c| c.len() <= 64)
            .map(|c| c.chars().filter(|c| !c.is_control()).collect()),
        error,
        binding: fresh,
    })
}

/// `POST /device`: checks the CSRF token and the guess budgets, then the code; a live code
/// starts the login and consent for its device.
///
/// # Errors
/// `403` for a missing or wrong CSRF token; `429` beyond a budget; `503`.
pub async fn submit(
    app: &Tollgate,
    server: &ServerRuntime,
    form: DeviceForm,
    browser: Browser<'_>,
) -> Result<DeviceStep, AuthorizeError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let owner = Owner::new(t, s);
    let bound = match form
        .csrf
        .as_deref()
        .filter(|c| !c.is_empty() && c.len() <= 64)
    {
        Some(csrf) => app.short_lived.take(owner, &form_key(server, csrf)).await?,
        None => None,
    };
    let presented = browser.binding.map(sha256_b64).unwrap_or_default();
    if !bound.is_some_and(|b| ct_eq(&b, presented.as_bytes())) {
        return Err(AuthorizeError::page(
            403,
            "The form could not be verified (missing or wrong CSRF token). Reload the page and enter the code again.",
        ));
    }
    rate_limit::check_client_endpoint(
        &app.rate_limiter(),
        "device",
        &server.server,
        None,
        browser.address,
    )
    .await
    .map_err(AuthorizeError::from_oauth)?;
    let budgets = guess_keys(server, browser);
    for (key, limit) in &budgets {
        let used = app
            .short_lived
            .get(key)
            .await?
            .map_or(0, |v| counter_value(&v));
        if used >= *limit {
            tracing::warn!(tenant = %t, server = %s, "user-code guess budget spent");
            return Err(AuthorizeError::RateLimited {
                retry_after: GUESS_WINDOW.as_secs(),
            });
        }
    }
    let now = app.clock.now();
    let found =
        device::find_by_user_code(app.short_lived.as_ref(), now, t, s, &form.user_code).await?;
    let Some((hash, grant)) = found else {
        for (key, _) in &budgets {
            app.short_lived.incr(owner, key, GUESS_WINDOW).await?;
        }
        app.metrics.login("wrong_user_code");
        let view = page(
            app,
            server,
            Some(&form.user_code),
            Some("That code is not valid or has expired. Check it and try again."),
            browser,
        )
        .await?;
        return Ok(DeviceStep::Page(view));
    };
    let client_id = ClientId::parse(&grant.client_id)
        .map_err(|_| AuthorizeError::page(400, "The device's application is unknown."))?;
    let client = app
        .client(t, s, &client_id)
        .await
        .map_err(AuthorizeError::from_oauth)?
        .ok_or_else(|| {
            AuthorizeError::page(400, "The device's application is no longer registered.")
        })?;
    let req = AuthorizeRequest {
        client_id,
        redirect_uri: format!("{}/device", server.issuer),
        scope: grant.scope,
        state: None,
        nonce: None,
        code_challenge: None,
        code_challenge_method: None,
        // The user always confirms a device: its code could have been typed from a phish.
        prompt: Prompt {
            consent: true,
            ..Prompt::default()
        },
        max_age: None,
        login_hint: None,
        response_mode: crate::oauth::ResponseMode::Query,
        device: Some(hash),
    };
    Ok(DeviceStep::Continue(
        flow::start(app, server, &client, req, browser).await?,
    ))
}

/// Records the consent page's decision for the device whose code has hash `hash`; the
/// location of the outcome page.
///
/// # Errors
/// An error page when the device code expired meanwhile, or was decided already; `503`.
pub(crate) async fn decide(
    app: &Tollgate,
    server: &ServerRuntime,
    hash: &str,
    sess: &Session,
    allow: bool,
) -> Result<String, AuthorizeError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let now = app.clock.now();
    let gone = || {
        AuthorizeError::page(
            400,
            "The device's code has expired. Start again on the device.",
        )
    };
    let grant = app
        .short_lived
        .get(&device::device_key(t, s, hash))
        .await?
        .and_then(|b| serde_json::from_slice::<DeviceGrant>(&b).ok())
        .filter(|g| g.expires_at > now)
        .ok_or_else(gone)?;
    let decision = if allow {
        Decision::Approved {
            user_id: sess.user_id.to_string(),
            auth_time: sess.auth_time,
            amr: sess.amr.clone(),
        }
    } else {
        Decision::Denied
    };
    if !device::decide(app.short_lived.as_ref(), t, s, hash, &grant, &decision, now).await? {
        return Err(AuthorizeError::page(
            400,
            "This device was already approved or denied.",
        ));
    }
    let done = if allow { Done::Approved } else { Done::Denied };
    tracing::info!(tenant = %t, server = %s, client_id = %grant.client_id, outcome = done.as_str(), "device decided");
    Ok(super::with_query(
        &format!("{}/device", server.issuer),
        &[("done", done.as_str())],
    ))
}
