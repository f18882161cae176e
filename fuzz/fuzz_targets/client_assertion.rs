//! The client-assertion checker (RFC 7523): subject, header, signature and claim rules, for
//! an HMAC client and a public-key client. The first byte picks the shape: raw text, or a
//! header and claims (split at the first NUL) that are validly HMAC-signed, so that the claim
//! rules are reached with assertions whose signature verifies.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::client_auth::fuzz::{check_assertion, sign_hs256};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            let _ = check_assertion(text, true);
            let _ = check_assertion(text, false);
        }
    } else {
        let (header, claims) = match rest.iter().position(|b| *b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&br#"{"alg":"HS256"}"#[..], rest),
        };
        let jwt = sign_hs256(header, claims);
        let _ = check_assertion(&jwt, true);
    }
});
