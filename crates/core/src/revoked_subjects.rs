//! Revocation by what a token stands for: when a client is deleted, or a user is deleted or
//! changes password, every access token issued to them before that moment is revoked at once,
//! without knowing its `jti`. The change writes a watermark ("tokens of this client, or of
//! this user, issued at or before W are revoked") to the database; every process caches a
//! server's watermarks (`registry.rs`) and drops them when the change is announced, so the
//! token path checks them in memory.
//!
//! A token's issue time is read at millisecond precision from its `jti` (a UUIDv7 made from
//! the application's clock, [`new_jti`]), so a token issued the moment after a password change
//! (the user logging in again) lives, and one issued the moment before does not. A `jti` that
//! is not a UUIDv7 (an older release's) falls back to `iat`, counted as the start of its
//! second: such a token issued in the very second of the change is revoked too.

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::ids::{ClientId, UserId};

/// How long a watermark must be kept: longer than any access token can live (the top of
/// `access_token_ttl`), after which every token it revokes has expired anyway.
pub const KEEP_SECONDS: i64 = 86_400 + 60;

/// Whose tokens a watermark revokes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Every token issued to this client (`client_id`).
    Client(ClientId),
    /// Every token issued for this user (`sub`).
    User(UserId),
}

impl Subject {
    /// The stored kind.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Client(_) => "client",
            Self::User(_) => "user",
        }
    }

    /// The stored id.
    #[must_use]
    pub fn id(&self) -> &str {
        match self {
            Self::Client(c) => c.as_str(),
            Self::User(u) => u.as_str(),
        }
    }

    /// From the stored kind and id; `None` for a row this release does not understand.
    #[must_use]
    pub fn from_stored(kind: &str, id: &str) -> Option<Self> {
        match kind {
            "client" => ClientId::parse(id).ok().map(Self::Client),
            "user" => UserId::parse(id).ok().map(Self::User),
            _ => None,
        }
    }
}

/// The live watermarks of one server: for each subject, the Unix milliseconds at or before
/// which its tokens were issued to be revoked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevokedSubjects(HashMap<Subject, i64>);

impl RevokedSubjects {
    /// From stored rows.
    #[must_use]
    pub fn new(rows: impl IntoIterator<Item = (Subject, i64)>) -> Self {
        let mut map = HashMap::new();
        for (subject, before) in rows {
            let e = map.entry(subject).or_insert(before);
            *e = (*e).max(before);
        }
        Self(map)
    }

    /// How many subjects have a watermark.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether something issued for `subject` at `issued_ms` is revoked.
    #[must_use]
    pub fn revokes(&self, subject: &Subject, issued_ms: i64) -> bool {
        self.0.get(subject).is_some_and(|w| issued_ms <= *w)
    }

    /// Whether the access token with these (verified) claims is revoked: its client's or its
    /// user's watermark is at or after its issue time.
    #[must_use]
    pub fn revokes_token(&self, claims: &Map<String, Value>) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let issued = issued_at_millis(claims);
        let client = claims
            .get("client_id")
            .and_then(Value::as_str)
            .and_then(|c| ClientId::parse(c).ok())
            .map(Subject::Client);
        let user = claims
            .get("sub")
            .and_then(Value::as_str)
            .and_then(|u| UserId::parse(u).ok())
            .map(Subject::User);
        [client, user]
            .iter()
            .flatten()
            .any(|subject| self.revokes(subject, issued))
    }
}

/// A fresh `jti`: a UUIDv7 whose timestamp is the application clock's now, in milliseconds
/// (RFC 9562 §5.7: 48 bits of time, 74 random bits, so still unguessable and unique).
#[must_use]
pub fn new_jti(clock: &dyn Clock) -> String {
    let ms = u64::try_from(clock.now_millis()).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        ms / 1000,
        u32::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
    );
    uuid::Uuid::new_v7(ts).to_string()
}

/// When a token (or a code, by the `jti` it will issue) was issued, in Unix milliseconds: the
/// timestamp of a UUIDv7 `jti`, else the start of the `iat` second, else 0 (revoked by any
/// watermark: what cannot be dated is not trusted).
#[must_use]
pub fn issued_at_millis(claims: &Map<String, Value>) -> i64 {
    if let Some(ms) = claims
        .get("jti")
        .and_then(Value::as_str)
        .and_then(jti_millis)
    {
        return ms;
    }
    claims
        .get("iat")
        .and_then(Value::as_i64)
        .map_or(0, |iat| iat.saturating_mul(1000))
}

/// The millisecond timestamp of a UUIDv7 `jti`.
#[must_use]
pub fn jti_millis(jti: &str) -> Option<i64> {
    let id = uuid::Uuid::parse_str(jti).ok()?;
    if id.get_version_num() != 7 {
        return None;
    }
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    i64::try_from(secs)
        .ok()?
        .checked_mul(1000)?
        .checked_add(i64::from(nanos / 1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn claims(jti: &str, iat: i64, client: &str, sub: &str) -> Map<String, Value> {
        serde_json::json!({"jti": jti, "iat": iat, "client_id": client, "sub": sub})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn a_jti_carries_its_issue_time_in_milliseconds() {
        let clock = ManualClock::new(1_800_000_000);
        let jti = new_jti(&clock);
        assert_eq!(jti_millis(&jti), Some(1_800_000_000_000));
        assert_ne!(jti, new_jti(&clock), "random beyond the timestamp");
        assert_eq!(jti_millis("4b1f4a64-5b0e-4c47-9a3c-0d6c1b3f7e21"), None);
        assert_eq!(jti_millis("not a uuid"), None);
    }

    #[test]
    fn a_watermark_revokes_what_was_issued_at_or_before_it() {
        let clock = ManualClock::new(1_800_000_000);
        let old = new_jti(&clock);
        let user = UserId::parse("6d3c0a8e-1111-4222-8333-944455556666").unwrap();
        let w = RevokedSubjects::new([(Subject::User(user.clone()), clock.now_millis())]);
        clock.advance(1);
        let fresh = new_jti(&clock);
        let u = user.as_str();
        assert!(w.revokes_token(&claims(&old, 1_800_000_000, "web", u)));
        assert!(!w.revokes_token(&claims(&fresh, 1_800_000_001, "web", u)));
        assert!(!w.revokes_token(&claims(&old, 1_800_000_000, "web", "someone-else")));
        // An older release's jti: dated by `iat`, the start of its second.
        let v4 = "4b1f4a64-5b0e-4c47-9a3c-0d6c1b3f7e21";
        assert!(w.revokes_token(&claims(v4, 1_800_000_000, "web", u)));
        assert!(!w.revokes_token(&claims(v4, 1_800_000_001, "web", u)));
        let c = RevokedSubjects::new([(
            Subject::Client(ClientId::parse("web").unwrap()),
            1_800_000_000_000,
        )]);
        assert!(c.revokes_token(&claims(&old, 1_800_000_000, "web", u)));
        assert!(!c.revokes_token(&claims(&old, 1_800_000_000, "api", u)));
    }
}
