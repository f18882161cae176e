//! The audit trail: who changed what, when, from where, with the state before and after.
//!
//! Every admin change builds one [`AuditRecord`] and hands it to the repository write that
//! makes the change; the repository inserts it in the same database transaction, so the change
//! and its audit row commit together or not at all. To audit a new kind of change:
//!
//! ```ignore
//! let audit = AuditRecord::new(by, "user.create", Resource::server(t, s).child("users", &id))
//!     .after(&view);
//! app.repo.create_user(&user, &audit).await?;   // INSERT … ; insert_audit(&mut tx, audit)
//! ```
//!
//! Secrets stay out by construction — records are built from the public *view* types the
//! admin API answers with — and a [`redact`] pass over every before/after document replaces
//! anything that looks like a secret anyway, in case a view ever grows one.
//!
//! Client-authentication failures at the gateway are sampled in too ([`AuthFailureSampler`]):
//! at most one row per client, reason and minute, queued on a bounded channel and written by
//! a background task, so the token path never waits for the database.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;
use utoipa::ToSchema;

use crate::clock;
use crate::ids::{ClientId, CredentialId, ServerId, TenantId};

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The holder of the root admin token.
    Root,
    /// A tenant-scoped admin credential.
    Credential(CredentialId),
    /// The process itself, on a schedule (key rotation).
    Scheduler,
    /// The gateway (sampled client-authentication failures).
    Gateway,
}

impl Actor {
    /// The stored and filterable form: `root`, `credential:{id}`, `scheduler`, `gateway`.
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::Root => "root".into(),
            Self::Credential(id) => format!("credential:{id}"),
            Self::Scheduler => "scheduler".into(),
            Self::Gateway => "gateway".into(),
        }
    }
}

/// Who is making a change and from which address: handed to every `manage` write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Who.
    pub actor: Actor,
    /// The client's address (see [`crate::peer::client_address`]), when known.
    pub address: Option<IpAddr>,
}

impl Origin {
    /// A change by `actor` from `address`.
    #[must_use]
    pub fn new(actor: Actor, address: Option<IpAddr>) -> Self {
        Self { actor, address }
    }

    /// A change the process makes on its own (scheduled key rotation).
    #[must_use]
    pub fn scheduler() -> Self {
        Self::new(Actor::Scheduler, None)
    }
}

/// What a change touched: its tenant (every row has one, for tenant-scoped reading), server
/// and client when there are ones (for filtering), and the admin path that names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    tenant: TenantId,
    server: Option<ServerId>,
    client: Option<ClientId>,
    path: String,
}

impl Resource {
    /// `/admin/tenants/{tid}`.
    #[must_use]
    pub fn tenant(t: &TenantId) -> Self {
        Self {
            tenant: t.clone(),
            server: None,
            client: None,
            path: format!("/admin/tenants/{t}"),
        }
    }

    /// `/admin/tenants/{tid}/servers/{aid}`.
    #[must_use]
    pub fn server(t: &TenantId, s: &ServerId) -> Self {
        Self {
            server: Some(s.clone()),
            ..Self::tenant(t).child("servers", s)
        }
    }

    /// `/admin/tenants/{tid}/servers/{aid}/clients/{client_id}`.
    #[must_use]
    pub fn client(t: &TenantId, s: &ServerId, c: &ClientId) -> Self {
        Self {
            client: Some(c.clone()),
            ..Self::server(t, s).child("clients", c)
        }
    }

    /// `/admin/tenants/{tid}/credentials/{id}`.
    #[must_use]
    pub fn credential(t: &TenantId, id: &CredentialId) -> Self {
        Self::tenant(t).child("credentials", id)
    }

    /// This resource's path extended by `/{collection}/{id}` (say, `users/alice`).
    #[must_use]
    pub fn child(mut self, collection: &str, id: &impl fmt::Display) -> Self {
        self.path = format!("{}/{collection}/{id}", self.path);
        self
    }

    /// This resource's path extended by `/{segment}` (say, `keys`).
    #[must_use]
    pub fn segment(mut self, segment: &str) -> Self {
        self.path = format!("{}/{segment}", self.path);
        self
    }

    /// The admin path.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// One audit row, as written with the change it describes and as listed.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditRecord {
    /// Unix seconds.
    pub at: i64,
    /// The tenant the change belongs to.
    pub tenant_id: TenantId,
    /// The server, when the change is inside one.
    pub server_id: Option<ServerId>,
    /// The client, when the change is about one.
    pub client_id: Option<ClientId>,
    /// `root`, `credential:{id}`, `scheduler` or `gateway`.
    #[schema(example = "credential:5f0c…")]
    pub actor: String,
    /// `tenant.create`, `client.secret_rotate`, `client.authentication_failed`, …
    #[schema(example = "client.update")]
    pub action: String,
    /// The admin path of what changed.
    #[schema(example = "/admin/tenants/acme/servers/main/clients/svc")]
    pub resource: String,
    /// The caller's address, when known.
    pub address: Option<String>,
    /// The state before the change (public view, secrets removed); absent for creations.
    #[schema(value_type = Option<Object>)]
    pub before: Option<Value>,
    /// The state after the change (public view, secrets removed); absent for deletions.
    #[schema(value_type = Option<Object>)]
    pub after: Option<Value>,
    /// More about the event (for sampled failures: reason, method, endpoint).
    #[schema(value_type = Option<Object>)]
    pub detail: Option<Value>,
}

impl AuditRecord {
    /// A record of `action` on `resource` by `by`, now.
    #[must_use]
    pub fn new(by: &Origin, action: &str, resource: Resource) -> Self {
        Self {
            at: clock::now(),
            tenant_id: resource.tenant,
            server_id: resource.server,
            client_id: resource.client,
            actor: by.actor.label(),
            action: action.to_owned(),
            resource: resource.path,
            address: by.address.map(|a| a.to_string()),
            before: None,
            after: None,
            detail: None,
        }
    }

    /// With the state before the change (redacted).
    #[must_use]
    pub fn before(mut self, state: &impl Serialize) -> Self {
        self.before = Some(document(state));
        self
    }

    /// With the state after the change (redacted).
    #[must_use]
    pub fn after(mut self, state: &impl Serialize) -> Self {
        self.after = Some(document(state));
        self
    }

    /// With details (redacted).
    #[must_use]
    pub fn detail(mut self, detail: &impl Serialize) -> Self {
        self.detail = Some(document(detail));
        self
    }
}

fn document(state: &impl Serialize) -> Value {
    let mut v = serde_json::to_value(state).unwrap_or(Value::Null);
    redact(&mut v);
    v
}

/// A stored audit row: its id (the paging cursor) and the record.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AuditEvent {
    /// Increases with every row written.
    pub id: i64,
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// Which audit rows to list (all given conditions hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Exactly this action.
    pub action: Option<String>,
    /// Exactly this actor label.
    pub actor: Option<String>,
    /// This admin path or anything under it.
    pub resource: Option<String>,
    /// Rows about this client.
    pub client_id: Option<ClientId>,
    /// At or after (Unix seconds).
    pub since: Option<i64>,
    /// Before (Unix seconds).
    pub until: Option<i64>,
}

/// The replacement of a redacted value.
pub const REDACTED: &str = "[redacted]";

/// Member names whose values are secrets wherever they appear.
const SECRET_NAMES: &[&str] = &[
    "client_secret",
    "secret",
    "secret_hash",
    "token",
    "token_hash",
    "access_token",
    "refresh_token",
    "id_token",
    "client_assertion",
    "password",
    "password_hash",
    "private_key",
    "sealed_private",
    "secret_sealed",
    "master_key",
    "code",
];

/// Private members of a JWK (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC 8037 §2).
const PRIVATE_JWK_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Replaces every secret-looking value in `v` with [`REDACTED`]: members named like secrets
/// (any case, anywhere in the document), and the private members of anything that is a JWK
/// (an object with `kty`). Defence in depth: audit documents are built from public views.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let is_jwk = map.contains_key("kty");
            for (name, value) in map.iter_mut() {
                let lower = name.to_ascii_lowercase();
                if SECRET_NAMES.contains(&lower.as_str())
                    || (is_jwk && PRIVATE_JWK_MEMBERS.contains(&name.as_str()))
                {
                    *value = Value::String(REDACTED.into());
                } else {
                    redact(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// A root-made record of `action` on tenant `t`, for tests that write through the repository.
#[cfg(test)]
pub(crate) fn test_record(t: &TenantId, action: &str) -> AuditRecord {
    AuditRecord::new(&Origin::new(Actor::Root, None), action, Resource::tenant(t))
}

// ---- sampled client-authentication failures ----

/// Queue length between the gateway and the writer; beyond it samples are dropped.
const QUEUE: usize = 256;
/// Most samples taken per window, whatever the spread of clients and reasons.
const MAX_PER_WINDOW: usize = 600;
/// The sampling window.
const WINDOW_SECS: i64 = 60;

/// A client-authentication failure as the gateway saw it. Holds nothing secret: the client is
/// named only when it is registered (an unknown id may be a secret pasted in the wrong field).
#[derive(Debug, Clone)]
pub struct AuthFailure<'a> {
    /// The server.
    pub tenant: &'a TenantId,
    /// The server.
    pub server: &'a ServerId,
    /// The registered client, when the id named one.
    pub client: Option<&'a ClientId>,
    /// The failure's reason code (`wrong_secret`, …).
    pub reason: &'static str,
    /// The registered (or, for an unknown client, the presented) method.
    pub method: &'static str,
    /// The endpoint below the issuer (`oauth2/token`).
    pub endpoint: &'a str,
    /// The client's address.
    pub address: Option<IpAddr>,
}

type SampleKey = (TenantId, ServerId, Option<ClientId>, &'static str);

/// What became of an offered failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampled {
    /// Queued for the audit trail.
    Queued,
    /// This window already has a sample of this client and reason.
    Repeat,
    /// Dropped: the queue was full or the window's cap reached.
    Dropped,
}

#[derive(Debug, Default)]
struct Window {
    started: i64,
    seen: HashSet<SampleKey>,
}

/// Samples client-authentication failures into the audit trail: the first failure per
/// client (or, for unknown clients, per server), reason and minute is queued for writing;
/// the rest are only counted (by `tollgate_client_auth_failures_total`). Offering never
/// blocks and never touches the database.
pub struct AuthFailureSampler {
    window: Mutex<Window>,
    tx: mpsc::Sender<AuditRecord>,
    rx: Mutex<Option<mpsc::Receiver<AuditRecord>>>,
    dropped: AtomicU64,
}

impl fmt::Debug for AuthFailureSampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthFailureSampler")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for AuthFailureSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl AuthFailureSampler {
    /// A sampler with an empty queue; [`AuthFailureSampler::take_queue`] hands the receiving
    /// end to the writer.
    #[must_use]
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        Self {
            window: Mutex::new(Window::default()),
            tx,
            rx: Mutex::new(Some(rx)),
            dropped: AtomicU64::new(0),
        }
    }

    /// Offers a failure at `now`: queued as this window's sample of its client and reason, a
    /// repeat of one already queued, or dropped (queue full, or the window's cap reached).
    pub fn offer(&self, failure: &AuthFailure<'_>, now: i64) -> Sampled {
        let key: SampleKey = (
            failure.tenant.clone(),
            failure.server.clone(),
            failure.client.cloned(),
            failure.reason,
        );
        {
            let Ok(mut w) = self.window.lock() else {
                return Sampled::Dropped;
            };
            if now - w.started >= WINDOW_SECS || now < w.started {
                w.started = now - now.rem_euclid(WINDOW_SECS);
                w.seen.clear();
            }
            if w.seen.contains(&key) {
                return Sampled::Repeat;
            }
            if w.seen.len() >= MAX_PER_WINDOW {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return Sampled::Dropped;
            }
            w.seen.insert(key);
        }
        let resource = match failure.client {
            Some(c) => Resource::client(failure.tenant, failure.server, c),
            None => Resource::server(failure.tenant, failure.server),
        };
        let mut record = AuditRecord::new(
            &Origin::new(Actor::Gateway, failure.address),
            "client.authentication_failed",
            resource,
        )
        .detail(&serde_json::json!({
            "reason": failure.reason,
            "method": failure.method,
            "endpoint": failure.endpoint,
        }));
        record.at = now;
        if self.tx.try_send(record).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Sampled::Dropped;
        }
        Sampled::Queued
    }

    /// Samples dropped because the queue was full or the window's cap was reached.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The receiving end of the queue, once.
    pub fn take_queue(&self) -> Option<mpsc::Receiver<AuditRecord>> {
        self.rx.lock().ok().and_then(|mut rx| rx.take())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn redaction_replaces_secret_members_and_private_jwk_members() {
        let mut v = json!({
            "client_id": "svc",
            "client_secret": "s3cret",
            "Token": "tok-1",
            "nested": [{"password": "pw-1", "name": "ok"}],
            "jwks": {"keys": [
                {"kty": "EC", "crv": "P-256", "x": "X", "y": "Y", "d": "PRIVATE"},
                {"kty": "oct", "k": "HMACKEY"},
                {"kty": "RSA", "n": "N", "e": "AQAB", "p": "P-val", "q": "Q-val", "dp": "1", "dq": "2", "qi": "3"}
            ]},
            // Not a JWK: a member called `d` is left alone.
            "d": 4,
        });
        redact(&mut v);
        let text = v.to_string();
        for secret in [
            "s3cret", "tok-1", "pw-1", "PRIVATE", "HMACKEY", "P-val", "Q-val",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(v["client_id"], "svc");
        assert_eq!(v["nested"][0]["name"], "ok");
        assert_eq!(v["jwks"]["keys"][0]["x"], "X");
        assert_eq!(v["jwks"]["keys"][2]["n"], "N");
        assert_eq!(v["d"], 4);
        assert_eq!(v["client_secret"], REDACTED);
    }

    #[test]
    fn records_name_actor_resource_and_address() {
        let t = TenantId::parse("acme").unwrap();
        let s = ServerId::parse("main").unwrap();
        let c = ClientId::parse("svc").unwrap();
        let id = CredentialId::parse("c-1").unwrap();
        let by = Origin::new(
            Actor::Credential(id.clone()),
            Some("198.51.100.4".parse().unwrap()),
        );
        let r = AuditRecord::new(&by, "client.update", Resource::client(&t, &s, &c))
            .before(&json!({"client_secret": "x", "scope": "a"}))
            .after(&json!({"scope": "b"}));
        assert_eq!(r.actor, "credential:c-1");
        assert_eq!(r.resource, "/admin/tenants/acme/servers/main/clients/svc");
        assert_eq!(
            (
                r.server_id.as_ref().map(ServerId::as_str),
                r.client_id.as_ref().map(ClientId::as_str)
            ),
            (Some("main"), Some("svc"))
        );
        assert_eq!(r.address.as_deref(), Some("198.51.100.4"));
        assert_eq!(
            r.before,
            Some(json!({"client_secret": REDACTED, "scope": "a"}))
        );
        assert_eq!(
            Resource::server(&t, &s).segment("keys").path(),
            "/admin/tenants/acme/servers/main/keys"
        );
        assert_eq!(
            Resource::credential(&t, &id).path(),
            "/admin/tenants/acme/credentials/c-1"
        );
        assert_eq!(
            Resource::server(&t, &s).child("users", &"alice").path(),
            "/admin/tenants/acme/servers/main/users/alice"
        );
    }

    #[test]
    fn samples_one_failure_per_client_reason_and_minute() {
        let sampler = AuthFailureSampler::new();
        let mut queue = sampler.take_queue().unwrap();
        assert!(sampler.take_queue().is_none(), "one writer");
        let t = TenantId::parse("acme").unwrap();
        let s = ServerId::parse("main").unwrap();
        let (a, b) = (ClientId::parse("a").unwrap(), ClientId::parse("b").unwrap());
        let failure = |client, reason| AuthFailure {
            tenant: &t,
            server: &s,
            client,
            reason,
            method: "client_secret_basic",
            endpoint: "oauth2/token",
            address: Some("203.0.113.1".parse().unwrap()),
        };
        let minute = 1_800_000_020 - 1_800_000_020 % 60;
        let rows: &[(Option<&ClientId>, &str, i64, bool)] = &[
            (Some(&a), "wrong_secret", minute, true),
            (Some(&a), "wrong_secret", minute + 59, false),
            (Some(&a), "expired_secret", minute + 1, true),
            (Some(&b), "wrong_secret", minute + 2, true),
            (None, "unknown_client", minute + 3, true),
            (None, "unknown_client", minute + 4, false),
            (Some(&a), "wrong_secret", minute + 60, true),
        ];
        for (client, reason, now, sampled) in rows {
            assert_eq!(
                sampler.offer(&failure(*client, reason), *now) == Sampled::Queued,
                *sampled,
                "{client:?} {reason} {now}"
            );
        }
        let first = queue.try_recv().unwrap();
        assert_eq!(first.action, "client.authentication_failed");
        assert_eq!(first.actor, "gateway");
        assert_eq!(first.resource, "/admin/tenants/acme/servers/main/clients/a");
        assert_eq!(first.address.as_deref(), Some("203.0.113.1"));
        assert_eq!(
            first.detail,
            Some(
                json!({"reason": "wrong_secret", "method": "client_secret_basic", "endpoint": "oauth2/token"})
            )
        );
        let mut n = 1;
        while queue.try_recv().is_ok() {
            n += 1;
        }
        assert_eq!(n, 5);
    }

    #[test]
    fn sampling_is_bounded_and_never_blocks() {
        let sampler = AuthFailureSampler::new();
        let t = TenantId::parse("acme").unwrap();
        let s = ServerId::parse("main").unwrap();
        let ids: Vec<ClientId> = (0..2 * MAX_PER_WINDOW)
            .map(|i| ClientId::parse(&format!("c{i}")).unwrap())
            .collect();
        let queued = ids
            .iter()
            .filter(|c| {
                Sampled::Queued
                    == sampler.offer(
                        &AuthFailure {
                            tenant: &t,
                            server: &s,
                            client: Some(c),
                            reason: "wrong_secret",
                            method: "client_secret_post",
                            endpoint: "oauth2/token",
                            address: None,
                        },
                        120,
                    )
            })
            .count();
        // Nobody reads the queue here: it fills, and the rest are dropped, not waited for.
        assert_eq!(queued, QUEUE);
        assert_eq!(sampler.dropped(), (2 * MAX_PER_WINDOW - QUEUE) as u64);
    }
}
