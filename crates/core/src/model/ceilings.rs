//! The operator's ceilings on what a tenant admin may set for a server (`--max-…-ttl`,
//! `--rate-limit-…-max`): token lifetimes and rate-limit settings. An admin write that sets
//! a value above one is refused (`400` naming the field); a server stored before the operator
//! lowered a ceiling is clamped to it where it is used ([`Ceilings::clamp`], applied to the
//! runtime copy the gateway works with), so a ceiling holds from the moment it is configured.
//!
//! Together with the shares of the short-lived store (`store::Shares`) they bound what one
//! tenant can make the process hold and do: how long its entries live, how fast its clients
//! may call, how many entries it may keep.

use super::rate_limits::RateLimits;
use super::server::Server;
use super::Invalid;

/// The ceilings. A rate-limit ceiling of `None` sets none: tenant admins may then set any
/// value up to `MAX_SETTING`, or 0 (off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ceilings {
    /// Longest `access_token_ttl`, seconds.
    pub access_token_ttl: i64,
    /// Longest `refresh_token_ttl`, seconds.
    pub refresh_token_ttl: i64,
    /// Highest `rate_limits.client_per_second`; with a ceiling, 0 (off) is above it.
    pub client_per_second: Option<u32>,
    /// Highest `rate_limits.client_burst`.
    pub client_burst: Option<u32>,
    /// Highest `rate_limits.address_per_second`; with a ceiling, 0 (off) is above it.
    pub address_per_second: Option<u32>,
    /// Highest `rate_limits.address_burst`.
    pub address_burst: Option<u32>,
}

/// The longest access-token lifetime a server may have at all, seconds (one day).
pub const MAX_ACCESS_TOKEN_TTL: i64 = 86_400;
/// The longest refresh-token lifetime a server may have at all, seconds (365 days).
pub const MAX_REFRESH_TOKEN_TTL: i64 = 31_536_000;

impl Default for Ceilings {
    fn default() -> Self {
        Self {
            access_token_ttl: MAX_ACCESS_TOKEN_TTL,
            refresh_token_ttl: MAX_REFRESH_TOKEN_TTL,
            client_per_second: None,
            client_burst: None,
            address_per_second: None,
            address_burst: None,
        }
    }
}

/// One rate-limit setting judged: its field, the new value, the stored one, the ceiling, and
/// whether it is a rate (where 0, off, is above any ceiling) rather than a burst.
type Row = (&'static str, Option<u32>, Option<u32>, Option<u32>, bool);

/// A rate above `ceiling`: 0 (no limit) is above every ceiling.
fn rate_above(value: u32, ceiling: u32) -> bool {
    value == 0 || value > ceiling
}

impl Ceilings {
    /// Checks what an admin write sets against the ceilings; a field unchanged from `before`
    /// (the stored server, on an update) is not judged again, so a lowered ceiling does not
    /// block unrelated changes (it is clamped at use instead).
    ///
    /// # Errors
    /// Names the first field above its ceiling.
    pub fn check(&self, server: &Server, before: Option<&Server>) -> Result<(), Invalid> {
        let changed = |f: fn(&Server) -> Option<i64>| before.is_none_or(|b| f(b) != f(server));
        if server.access_token_ttl > self.access_token_ttl && changed(|s| Some(s.access_token_ttl))
        {
            return Err(Invalid::request(
                "access_token_ttl",
                format!(
                    "must be at most {} seconds on this deployment",
                    self.access_token_ttl
                ),
            ));
        }
        if server.refresh_token_ttl > self.refresh_token_ttl
            && changed(|s| Some(s.refresh_token_ttl))
        {
            return Err(Invalid::request(
                "refresh_token_ttl",
                format!(
                    "must be at most {} seconds on this deployment",
                    self.refresh_token_ttl
                ),
            ));
        }
        let old = before.map(|b| b.rate_limits);
        let (new, old) = (&server.rate_limits, old.as_ref());
        let rows: [Row; 4] = [
            (
                "rate_limits.client_per_second",
                new.client_per_second,
                old.and_then(|o| o.client_per_second),
                self.client_per_second,
                true,
            ),
            (
                "rate_limits.client_burst",
                new.client_burst,
                old.and_then(|o| o.client_burst),
                self.client_burst,
                false,
            ),
            (
                "rate_limits.address_per_second",
                new.address_per_second,
                old.and_then(|o| o.address_per_second),
                self.address_per_second,
                true,
            ),
            (
                "rate_limits.address_burst",
                new.address_burst,
                old.and_then(|o| o.address_burst),
                self.address_burst,
                false,
            ),
        ];
        for (field, value, was, ceiling, is_rate) in rows {
            let (Some(v), Some(c)) = (value, ceiling) else {
                continue;
            };
            if before.is_some() && was == Some(v) {
                continue;
            }
            let above = if is_rate { rate_above(v, c) } else { v > c };
            if above {
                let min = u32::from(!is_rate).max(1);
                return Err(Invalid::request(
                    field,
                    format!(
                        "must be between {min} and {c} on this deployment, or null for the default"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A new server's lifetimes that its body left to the defaults, lowered to the ceilings
    /// (`given`: whether the body named `access_token_ttl`, `refresh_token_ttl`): a default
    /// is never refused.
    pub fn lower_defaults(&self, server: &mut Server, given: (bool, bool)) {
        if !given.0 {
            server.access_token_ttl = server.access_token_ttl.min(self.access_token_ttl);
        }
        if !given.1 {
            server.refresh_token_ttl = server.refresh_token_ttl.min(self.refresh_token_ttl);
        }
    }

    /// Clamps a stored server's settings to the ceilings: what the gateway uses.
    pub fn clamp(&self, server: &mut Server) {
        server.access_token_ttl = server.access_token_ttl.min(self.access_token_ttl);
        server.refresh_token_ttl = server.refresh_token_ttl.min(self.refresh_token_ttl);
        clamp_limits(self, &mut server.rate_limits);
    }
}

fn clamp_limits(c: &Ceilings, r: &mut RateLimits) {
    let rate = |v: &mut Option<u32>, ceiling: Option<u32>| {
        if let (Some(x), Some(c)) = (v.as_mut(), ceiling) {
            if rate_above(*x, c) {
                *x = c;
            }
        }
    };
    let burst = |v: &mut Option<u32>, ceiling: Option<u32>| {
        if let (Some(x), Some(c)) = (v.as_mut(), ceiling) {
            *x = (*x).min(c);
        }
    };
    rate(&mut r.client_per_second, c.client_per_second);
    burst(&mut r.client_burst, c.client_burst);
    rate(&mut r.address_per_second, c.address_per_second);
    burst(&mut r.address_burst, c.address_burst);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::model::server::NewServer;

    fn server(body: serde_json::Value) -> Server {
        let input: NewServer = serde_json::from_value(body).unwrap();
        input.into_server(
            &crate::ids::TenantId::parse("acme").unwrap(),
            &[crate::model::server::AuthMethod::ClientSecretBasic],
            0,
        )
    }

    fn strict() -> Ceilings {
        Ceilings {
            access_token_ttl: 900,
            refresh_token_ttl: 86_400,
            client_per_second: Some(50),
            client_burst: Some(100),
            address_per_second: Some(100),
            address_burst: Some(200),
        }
    }

    #[test]
    fn settings_above_a_ceiling_are_refused_naming_the_field() {
        let rows = [
            (
                serde_json::json!({"access_token_ttl": 901}),
                "access_token_ttl",
            ),
            (
                serde_json::json!({"refresh_token_ttl": 86_401}),
                "refresh_token_ttl",
            ),
            (
                serde_json::json!({"rate_limits": {"client_per_second": 0}}),
                "rate_limits.client_per_second",
            ),
            (
                serde_json::json!({"rate_limits": {"client_per_second": 51}}),
                "rate_limits.client_per_second",
            ),
            (
                serde_json::json!({"rate_limits": {"client_burst": 101}}),
                "rate_limits.client_burst",
            ),
            (
                serde_json::json!({"rate_limits": {"address_per_second": 0}}),
                "rate_limits.address_per_second",
            ),
            (
                serde_json::json!({"rate_limits": {"address_burst": 201}}),
                "rate_limits.address_burst",
            ),
        ];
        for (extra, field) in rows {
            let mut body = serde_json::json!({"id": "main", "name": "Main",
                "access_token_ttl": 900, "refresh_token_ttl": 86_400});
            body.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let err = strict().check(&server(body), None).unwrap_err();
            assert_eq!(err.field, field);
        }
        let ok = server(serde_json::json!({
            "id": "main", "name": "Main", "access_token_ttl": 900, "refresh_token_ttl": 86_400,
            "rate_limits": {"client_per_second": 50, "client_burst": 100,
                            "address_per_second": 1, "address_burst": 200}
        }));
        assert_eq!(strict().check(&ok, None), Ok(()));
        // Without ceilings, off and the largest settings pass.
        let open = server(serde_json::json!({
            "id": "main", "name": "Main", "access_token_ttl": 86_400,
            "rate_limits": {"client_per_second": 0, "address_per_second": 1_000_000}
        }));
        assert_eq!(Ceilings::default().check(&open, None), Ok(()));
    }

    #[test]
    fn a_lowered_ceiling_clamps_at_use_and_blocks_only_what_changes() {
        let mut stored = server(serde_json::json!({
            "id": "main", "name": "Main", "access_token_ttl": 86_400,
            "rate_limits": {"client_per_second": 0, "client_burst": 5000}
        }));
        let mut renamed = stored.clone();
        renamed.name = "Renamed".into();
        assert_eq!(strict().check(&renamed, Some(&stored)), Ok(()));
        strict().clamp(&mut stored);
        assert_eq!(stored.access_token_ttl, 900);
        assert_eq!(stored.rate_limits.client_per_second, Some(50));
        assert_eq!(stored.rate_limits.client_burst, Some(100));
        assert_eq!(stored.rate_limits.address_per_second, None);
    }
}
