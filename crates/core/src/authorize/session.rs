//! Browser state of the flow: the login session, the pending request bound to the browser
//! that started it (with its CSRF token), and failed-login throttling. Cookies carry only
//! random ids; what they stand for lives in the short-lived store under their SHA-256, so a
//! reader of the store cannot replay them.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::request::AuthorizeRequest;
use super::AuthorizeError;
use crate::app::Tollgate;
use crate::ids::{ServerId, TenantId, UserId};
use crate::model::users::User;
use crate::secrets::{self, ct_eq, random_token, sha256_b64, Password};
use crate::store::{Owner, StoreError};

/// The session cookie: the logged-in user of this browser, per server (`Path=/{tid}/{aid}/`).
pub const SESSION_COOKIE: &str = "tollgate_session";
/// The binding cookie: ties a pending request (and its forms) to the browser that started it,
/// so a login form cannot be submitted from another browser (login CSRF).
pub const BROWSER_COOKIE: &str = "tollgate_browser";
/// How long a pending request waits for login and consent.
pub const PENDING_TTL: Duration = Duration::from_secs(600);

/// Failed logins of one user before a lockout.
const USER_FAILURES: u64 = 5;
/// Failed logins from one address (any user) before a lockout.
const ADDRESS_FAILURES: u64 = 50;
/// Window of the failure counters.
const FAILURE_WINDOW: Duration = Duration::from_secs(3600);
/// First lockout; each further failure doubles it, up to [`MAX_LOCKOUT`].
const FIRST_LOCKOUT: Duration = Duration::from_secs(60);
/// Longest lockout.
const MAX_LOCKOUT: Duration = Duration::from_secs(900);

/// What the browser presented.
#[derive(Debug, Clone, Copy, Default)]
pub struct Browser<'a> {
    /// The `tollgate_session` cookie.
    pub session: Option<&'a str>,
    /// The `tollgate_browser` cookie.
    pub binding: Option<&'a str>,
    /// The client's address (the peer, or a trusted proxy's `X-Forwarded-For`).
    pub address: Option<IpAddr>,
}

/// A logged-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Who.
    pub user_id: UserId,
    /// When they authenticated, Unix seconds.
    pub auth_time: i64,
    /// How (RFC 8176 `amr`).
    pub amr: Vec<String>,
    /// SHA-256 of the password hash the user logged in under ([`password_stamp`]): when the
    /// password changes, the session ends. A session without one (from an older release)
    /// is not trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_stamp: Option<String>,
    /// The public session id (OpenID Connect `sid`), carried by the ID tokens issued in this
    /// session. Distinct from the cookie value, which stays a secret of the browser; a
    /// session from an older release has none, and its ID tokens carry no `sid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// A fresh public session id (`sid`): random, unrelated to the cookie.
#[must_use]
pub fn new_sid() -> String {
    random_token(16)
}

/// What a session remembers of the password it was opened with: a digest of the stored
/// argon2 hash (salted, so it changes with every new password, even the same one typed
/// again), which says nothing about the password itself.
#[must_use]
pub fn password_stamp(user: &User) -> String {
    sha256_b64(&user.password_hash)
}

impl Session {
    /// Whether this session still belongs to `user` as they are now: opened under the
    /// password they have today.
    #[must_use]
    pub fn holds(&self, user: &User) -> bool {
        self.password_stamp
            .as_deref()
            .is_some_and(|p| ct_eq(p.as_bytes(), password_stamp(user).as_bytes()))
    }
}

fn session_key(t: &TenantId, s: &ServerId, sid: &str) -> String {
    format!("session:{t}/{s}/{}", sha256_b64(sid))
}

/// The session a cookie names, if it is live.
pub(crate) async fn load_session(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    sid: Option<&str>,
) -> Result<Option<Session>, StoreError> {
    let Some(sid) = sid.filter(|v| !v.is_empty() && v.len() <= 128) else {
        return Ok(None);
    };
    Ok(app
        .short_lived
        .get(&session_key(t, s, sid))
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok()))
}

/// Starts a session; returns the cookie value. A fresh id at every login (no fixation).
pub(crate) async fn create_session(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    session: &Session,
) -> Result<String, StoreError> {
    let sid = random_token(32);
    let value = crate::store::to_json(session)?;
    app.short_lived
        .put(
            Owner::new(t, s),
            &session_key(t, s, &sid),
            &value,
            app.options.session_ttl,
        )
        .await?;
    Ok(sid)
}

/// Ends a session (the user is gone, or logs in again).
pub(crate) async fn end_session(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    sid: &str,
) -> Result<(), StoreError> {
    app.short_lived
        .remove(Owner::new(t, s), &session_key(t, s, sid))
        .await
        .map(|_| ())
}

/// A request waiting for login and consent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// The validated request.
    pub request: AuthorizeRequest,
    /// The CSRF token its forms carry.
    pub csrf: String,
    /// SHA-256 of the binding cookie of the browser that started it.
    pub browser: String,
}

fn pending_key(t: &TenantId, s: &ServerId, id: &str) -> String {
    format!("authz:{t}/{s}/{id}")
}

/// Stores a pending request for `binding`; returns its id.
pub(crate) async fn save_pending(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    request: AuthorizeRequest,
    binding: &str,
) -> Result<String, StoreError> {
    let id = random_token(24);
    let pending = Pending {
        request,
        csrf: random_token(32),
        browser: sha256_b64(binding),
    };
    let value = crate::store::to_json(&pending)?;
    app.short_lived
        .put(
            Owner::new(t, s),
            &pending_key(t, s, &id),
            &value,
            PENDING_TTL,
        )
        .await?;
    Ok(id)
}

fn stale() -> AuthorizeError {
    AuthorizeError::page(
        400,
        "This sign-in page has expired or was opened in another browser. Go back to the application and start again.",
    )
}

fn check_browser(pending: &Pending, binding: Option<&str>) -> Result<(), AuthorizeError> {
    let presented = binding.map(sha256_b64).unwrap_or_default();
    if ct_eq(presented.as_bytes(), pending.browser.as_bytes()) {
        Ok(())
    } else {
        Err(stale())
    }
}

/// The pending request `id`, if this browser started it.
pub(crate) async fn load_pending(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    id: &str,
    binding: Option<&str>,
) -> Result<Pending, AuthorizeError> {
    if id.is_empty() || id.len() > 64 {
        return Err(stale());
    }
    let pending: Pending = app
        .short_lived
        .get(&pending_key(t, s, id))
        .await?
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(stale)?;
    check_browser(&pending, binding)?;
    Ok(pending)
}

/// Checks a form's CSRF token against its pending request.
pub(crate) fn check_csrf(pending: &Pending, csrf: Option<&str>) -> Result<(), AuthorizeError> {
    match csrf {
        Some(c) if ct_eq(c.as_bytes(), pending.csrf.as_bytes()) => Ok(()),
        _ => Err(AuthorizeError::page(
            403,
            "The form could not be verified (missing or wrong CSRF token). Go back to the application and start again.",
        )),
    }
}

/// Consumes a pending request at the last step, atomically: a form submitted twice
/// completes once.
pub(crate) async fn take_pending(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    id: &str,
) -> Result<(), AuthorizeError> {
    match app
        .short_lived
        .take(Owner::new(t, s), &pending_key(t, s, id))
        .await?
    {
        Some(_) => Ok(()),
        None => Err(stale()),
    }
}

/// The browser's binding-cookie value, or a fresh one (then also returned as the cookie to
/// set) when it has none usable.
pub(crate) fn binding_or_new(presented: Option<&str>) -> (String, Option<String>) {
    match presented {
        Some(b) if !b.is_empty() && b.len() <= 128 => (b.to_owned(), None),
        _ => {
            let b = random_token(32);
            (b.clone(), Some(b))
        }
    }
}

fn lock_key(kind: &str, t: &TenantId, s: &ServerId, who: &str) -> String {
    format!("login:lock:{kind}:{t}/{s}/{who}")
}

fn fail_key(kind: &str, t: &TenantId, s: &ServerId, who: &str) -> String {
    format!("login:fail:{kind}:{t}/{s}/{who}")
}

/// Who a login attempt counts against: the user (by the digest of the name typed, known or
/// not, so lockouts reveal nothing) and the address.
fn subjects(username: &str, address: Option<IpAddr>) -> Vec<(&'static str, String, u64)> {
    let mut v = vec![("user", sha256_b64(&username.to_lowercase()), USER_FAILURES)];
    if let Some(ip) = address {
        v.push(("addr", ip.to_string(), ADDRESS_FAILURES));
    }
    v
}

/// Seconds until the lockout of this username or address ends; `None` when not locked.
pub(crate) async fn locked_out(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    username: &str,
    address: Option<IpAddr>,
) -> Result<Option<u64>, StoreError> {
    for (kind, who, _) in subjects(username, address) {
        if let Some(until) = app.short_lived.get(&lock_key(kind, t, s, &who)).await? {
            let until = std::str::from_utf8(&until)
                .ok()
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0);
            let left = until - app.clock.now();
            return Ok(Some(u64::try_from(left).unwrap_or(0).max(1)));
        }
    }
    Ok(None)
}

/// Counts a failed login; past the threshold, locks the user or address out for a time that
/// doubles with every further failure.
pub(crate) async fn record_failure(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    username: &str,
    address: Option<IpAddr>,
) -> Result<(), StoreError> {
    for (kind, who, threshold) in subjects(username, address) {
        let n = app
            .short_lived
            .incr(
                Owner::new(t, s),
                &fail_key(kind, t, s, &who),
                FAILURE_WINDOW,
            )
            .await?;
        if n >= threshold {
            let doublings = u32::try_from(n - threshold).unwrap_or(u32::MAX).min(10);
            let lock = (FIRST_LOCKOUT * 2u32.saturating_pow(doublings)).min(MAX_LOCKOUT);
            let until = app.clock.now() + i64::try_from(lock.as_secs()).unwrap_or(0);
            app.short_lived
                .put(
                    Owner::new(t, s),
                    &lock_key(kind, t, s, &who),
                    until.to_string().as_bytes(),
                    lock,
                )
                .await?;
            tracing::warn!(tenant = %t, server = %s, kind, failures = n, lock_seconds = lock.as_secs(), "login locked out");
        }
    }
    Ok(())
}

/// Forgets a user's failures after a successful login.
pub(crate) async fn clear_failures(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    username: &str,
) -> Result<(), StoreError> {
    let who = sha256_b64(&username.to_lowercase());
    app.short_lived
        .remove(Owner::new(t, s), &fail_key("user", t, s, &who))
        .await?;
    Ok(())
}

/// A hash to verify against when the username is unknown, so that an unknown user costs
/// what a wrong password costs and the timing tells nothing.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| secrets::hash_secret(&random_token(16)).unwrap_or_default())
}

/// Checks a password against a user (or, when there is none, against a dummy hash), with
/// argon2 off the runtime and bounded by the hash permits.
pub(crate) async fn verify_password(
    app: &Tollgate,
    user: Option<&User>,
    password: &Password,
) -> Result<bool, StoreError> {
    let phc = user.map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
    let password = password.clone();
    let _permit = app
        .hash_permits
        .acquire()
        .await
        .map_err(|_| StoreError::Unavailable("shutting down".into()))?;
    let hasher = app.hasher.clone();
    let ok = tokio::task::spawn_blocking(move || hasher.verify(password.expose(), &phc))
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    Ok(user.is_some() && ok.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(hash: &str) -> User {
        User {
            tenant_id: TenantId::parse("t").unwrap(),
            server_id: ServerId::parse("s").unwrap(),
            id: UserId::generate(),
            username: "alice".into(),
            password_hash: hash.into(),
            claims: serde_json::Map::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_session_ends_when_the_password_changes() {
        let before = user("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA");
        let session = |stamp: Option<String>| Session {
            user_id: before.id.clone(),
            auth_time: 0,
            amr: vec!["pwd".into()],
            password_stamp: stamp,
            sid: None,
        };
        assert!(session(Some(password_stamp(&before))).holds(&before));
        let mut after = before.clone();
        after.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXI$aGFzaDI".into();
        assert!(!session(Some(password_stamp(&before))).holds(&after));
        // An older release's session, without a digest, is not trusted.
        assert!(!session(None).holds(&before));
        // The digest says nothing of the hash it was made from.
        assert!(!password_stamp(&before).contains("aGFzaA"));
    }
}
