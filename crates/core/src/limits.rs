//! Input limits: how large a request may be, in every dimension an attacker controls (body,
//! headers, parameter count and length, JSON nesting, client assertions, client JWK Sets).
//! One value, [`Limits`], configured once by the CLI (`--max-…` flags) and read wherever input
//! is taken apart, so the gateway, the admin API and core's parsers cannot disagree.
//!
//! Each limit is also bounded from above ([`Limits::validate`]) by what the code beneath it
//! can hold: the HTTP parser's own head limit, the assertion checker's hard cap.

/// The configurable input limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest body of a gateway request (token, introspection, revocation), in bytes.
    pub max_body_bytes: usize,
    /// Largest body of an admin API request, in bytes.
    pub max_admin_body_bytes: usize,
    /// Largest request head (all header names and values together), in bytes.
    pub max_header_bytes: usize,
    /// Most parameters in one gateway request body.
    pub max_params: usize,
    /// Longest value of one parameter (other than `client_assertion`), in bytes.
    pub max_param_bytes: usize,
    /// Longest `client_assertion`, in bytes.
    pub max_assertion_bytes: usize,
    /// Deepest nesting of a JSON body (objects and arrays), gateway and admin API alike.
    pub max_json_depth: usize,
    /// Largest client JWK Set, inline (`jwks`) or fetched (`jwks_uri`), in bytes.
    pub max_jwks_bytes: usize,
}

/// The HTTP/1 parser refuses request heads beyond this on its own (actix-http's buffer).
pub const HEADER_BYTES_CEILING: usize = 128 * 1024;
/// The assertion checker refuses assertions beyond this whatever the configuration.
pub const ASSERTION_BYTES_CEILING: usize = 64 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            max_admin_body_bytes: 256 * 1024,
            max_header_bytes: 16 * 1024,
            max_params: 32,
            max_param_bytes: 8 * 1024,
            max_assertion_bytes: 8 * 1024,
            max_json_depth: 32,
            max_jwks_bytes: 64 * 1024,
        }
    }
}

/// A limit whose configured value is out of its range: `(name, allowed range)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLimit {
    /// The field of [`Limits`].
    pub name: &'static str,
    /// Smallest allowed value.
    pub min: usize,
    /// Largest allowed value.
    pub max: usize,
}

impl std::fmt::Display for BadLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "must be {} to {}", self.min, self.max)
    }
}

impl Limits {
    /// Checks every limit against its range; the first one outside is the error.
    ///
    /// # Errors
    /// Names the limit and its range.
    pub fn validate(&self) -> Result<(), BadLimit> {
        let rows: [(&'static str, usize, usize, usize); 8] = [
            (
                "max_body_bytes",
                self.max_body_bytes,
                1024,
                16 * 1024 * 1024,
            ),
            (
                "max_admin_body_bytes",
                self.max_admin_body_bytes,
                1024,
                16 * 1024 * 1024,
            ),
            (
                "max_header_bytes",
                self.max_header_bytes,
                1024,
                HEADER_BYTES_CEILING,
            ),
            ("max_params", self.max_params, 4, 1024),
            ("max_param_bytes", self.max_param_bytes, 256, 1024 * 1024),
            (
                "max_assertion_bytes",
                self.max_assertion_bytes,
                256,
                ASSERTION_BYTES_CEILING,
            ),
            ("max_json_depth", self.max_json_depth, 2, 128),
            ("max_jwks_bytes", self.max_jwks_bytes, 1024, 1024 * 1024),
        ];
        for (name, value, min, max) in rows {
            if !(min..=max).contains(&value) {
                return Err(BadLimit { name, min, max });
            }
        }
        Ok(())
    }
}

/// How deeply `json` nests objects and arrays, counted without parsing it (a byte scan that
/// skips string contents): cheap enough to run before the parser, so a document nested a
/// million deep is refused before it costs anything. Malformed text still gets a number; the
/// parser reports what is wrong with it.
#[must_use]
pub fn json_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Limits::default().validate(), Ok(()));
    }

    #[test]
    fn out_of_range_limits_are_named() {
        let rows: [(Limits, &str); 3] = [
            (
                Limits {
                    max_header_bytes: HEADER_BYTES_CEILING + 1,
                    ..Limits::default()
                },
                "max_header_bytes",
            ),
            (
                Limits {
                    max_params: 0,
                    ..Limits::default()
                },
                "max_params",
            ),
            (
                Limits {
                    max_assertion_bytes: ASSERTION_BYTES_CEILING + 1,
                    ..Limits::default()
                },
                "max_assertion_bytes",
            ),
        ];
        for (limits, name) in rows {
            assert_eq!(limits.validate().map_err(|e| e.name), Err(name));
        }
    }

    #[test]
    fn depth_counts_nesting_outside_strings() {
        let rows: [(&str, usize); 8] = [
            ("", 0),
            ("1", 0),
            ("{}", 1),
            (r#"{"a":[1,{"b":[]}]}"#, 4),
            (r#"{"a":"[[[[{{{{"}"#, 1),
            (r#"{"a":"\"[[[["}"#, 1),
            (r#"{"a":"\\"}"#, 1),
            ("]]]][[", 2),
        ];
        for (json, want) in rows {
            assert_eq!(json_depth(json.as_bytes()), want, "{json}");
        }
        assert_eq!(json_depth("[".repeat(100_000).as_bytes()), 100_000);
    }
}
