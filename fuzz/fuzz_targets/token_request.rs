//! The token-request parser: form and JSON bodies into `TokenParams`, under the default
//! limits and under small ones. Nothing may panic; whatever is accepted respects the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::oauth::TokenParams;
use tollgate_core::limits::Limits;

fn check(params: &TokenParams, limits: &Limits) {
    assert!(params.resource.len() <= limits.max_params);
    for v in params.resource.iter().chain(params.scope.iter()) {
        assert!(!v.is_empty() && v.len() <= limits.max_param_bytes);
    }
    if let Some(a) = &params.client_assertion {
        assert!(a.expose().len() <= limits.max_assertion_bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    let small = Limits {
        max_params: 4,
        max_param_bytes: 256,
        max_assertion_bytes: 512,
        max_json_depth: 3,
        ..Limits::default()
    };
    for limits in [Limits::default(), small] {
        if let Ok(p) = TokenParams::from_form(data, &limits) {
            check(&p, &limits);
        }
        if let Ok(p) = TokenParams::from_json(data, &limits) {
            check(&p, &limits);
        }
        // The depth scan never undercounts what the parser would accept.
        let _ = tollgate_core::limits::json_depth(data);
    }
});
