//! The admin API's body validation: tenant, server and client bodies as JSON, then the
//! domain rules (`validate_name`, `Server::validate`, `ClientMetadata::validated`, the
//! process-dependent `check_jwks_uri`), for every kind of body from the same input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::client_keys::JwksFetchOptions;
use tollgate_core::outbound::OutboundOptions;
use tollgate_core::model::client::NewClient;
use tollgate_core::ids::TenantId;
use tollgate_core::model::rate_limits::RateLimits;
use tollgate_core::model::server::{AuthMethod, NewServer, ServerPatch};
use tollgate_core::model::tenant::{validate_name, NewTenant, TenantPatch};

fuzz_target!(|data: &[u8]| {
    // The admin API refuses deeper documents before parsing them.
    if tollgate_core::limits::json_depth(data) > 32 {
        return;
    }
    let Ok(tenant) = TenantId::parse("fuzz") else {
        return;
    };
    for certificates in [false, true] {
        let servable = AuthMethod::servable(certificates);
        if let Ok(t) = serde_json::from_slice::<NewTenant>(data) {
            let _ = validate_name("name", &t.name);
        }
        if let Ok(p) = serde_json::from_slice::<TenantPatch>(data) {
            let _ = p.name.map(|n| validate_name("name", &n));
        }
        let server = match serde_json::from_slice::<NewServer>(data) {
            Ok(s) => {
                let server = s.into_server(&tenant, &servable, 1_700_000_000);
                let _ = server.validate(&servable);
                server
            }
            Err(_) => serde_json::from_value::<NewServer>(
                serde_json::json!({"id": "main", "name": "Main"}),
            )
            .map(|s| s.into_server(&tenant, &servable, 1_700_000_000))
            .unwrap_or_else(|_| unreachable!()),
        };
        let _ = serde_json::from_slice::<ServerPatch>(data);
        if let Ok(r) = serde_json::from_slice::<RateLimits>(data) {
            let _ = r.validate();
        }
        if let Ok(c) = serde_json::from_slice::<NewClient>(data) {
            if let Ok(m) = c.metadata.validated(&server, &servable) {
                let _ = m.check_jwks_uri(
                    &OutboundOptions::default(),
                    JwksFetchOptions::default().max_bytes,
                );
                let _ = m.scope.as_deref().map(tollgate_core::scope::Scopes::parse);
            }
        }
    }
});
