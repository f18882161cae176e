//! Authorization servers: create (with their first signing keys), read, list, patch
//! (a new `signing_alg` rotates to a key of that algorithm), delete.

use crate::app::Tollgate;
use crate::audit::{AuditRecord, Origin, Resource};
use crate::ids::{ServerId, TenantId};
use crate::invalidation::Invalidation;
use crate::keys::{KeyRecord, KeyStatus};
use crate::model::server::{AuthMethod, NewServer, Server, ServerPatch, SigningAlg};
use crate::model::Invalid;
use crate::store::{Page, SigningAlgChange, StoreError};

use super::{blocking, get_tenant, page_limit, ManageError};
async fn require_tenant(app: &Tollgate, t: &TenantId) -> Result<(), ManageError> {
    get_tenant(app, t).await.map(|_| ())
}

/// Generates the keys a server signs with: one for `alg`, plus an RS256 key for ID tokens
/// when `alg` is not RS256 (OpenID Connect requires RS256 to be available).
async fn generate_keys(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    algs: Vec<SigningAlg>,
) -> Result<Vec<KeyRecord>, ManageError> {
    let master = app.master.clone();
    let (t, s) = (t.clone(), s.clone());
    let now = app.clock.now();
    blocking(move || {
        algs.into_iter()
            .map(|alg| KeyRecord::generate(&master, &t, &s, alg, KeyStatus::Current, now))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?
    .map_err(|e| ManageError::Internal(e.to_string()))
}

/// When a key that stops signing at `now` may leave the JWKS: once every token it signed has
/// expired (the longer of the access-token lifetime and one hour, which covers ID tokens).
pub(crate) fn retire_at(server: &Server, now: i64) -> i64 {
    now + server.access_token_ttl.max(3600)
}

pub(crate) fn key_algs(primary: SigningAlg) -> Vec<SigningAlg> {
    if primary == SigningAlg::RS256 {
        vec![primary]
    } else {
        vec![primary, SigningAlg::RS256]
    }
}

fn dedup_methods(mut v: Vec<AuthMethod>) -> Vec<AuthMethod> {
    let mut seen = Vec::new();
    v.retain(|m| {
        if seen.contains(m) {
            false
        } else {
            seen.push(*m);
            true
        }
    });
    v
}

/// Creates an authorization server and its signing keys.
///
/// # Errors
/// Invalid settings, tenant not found, id taken, or failure.
pub async fn create_server(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    input: NewServer,
) -> Result<Server, ManageError> {
    require_tenant(app, t).await?;
    let now = app.clock.now();
    let given = (
        input.access_token_ttl.is_some(),
        input.refresh_token_ttl.is_some(),
    );
    let mut server = input.into_server(t, &app.servable_methods(), now);
    app.options.ceilings.lower_defaults(&mut server, given);
    server.validate(&app.servable_methods())?;
    crate::model::trusted_issuer::check_fetch_guards(
        &server.trusted_issuers,
        &app.options.outbound,
        app.options.jwks_fetch.max_bytes,
    )?;
    app.options.ceilings.check(&server, None)?;
    let keys = generate_keys(app, t, &server.id, key_algs(server.signing_alg)).await?;
    let audit =
        AuditRecord::new(by, "server.create", Resource::server(t, &server.id)).after(&server);
    app.repo
        .create_server(&server, &keys, &audit)
        .await
        .map_err(|e| match e {
            // The tenant may have been deleted in between: the foreign key then fails.
            StoreError::Conflict => ManageError::Conflict("server"),
            other => ManageError::Store(other),
        })?;
    app.invalidate(Invalidation::server(t, &server.id)).await;
    Ok(server)
}

/// One server.
///
/// # Errors
/// Not found or store failure.
pub async fn get_server(app: &Tollgate, t: &TenantId, s: &ServerId) -> Result<Server, ManageError> {
    app.repo
        .get_server(t, s)
        .await?
        .ok_or(ManageError::NotFound("server"))
}

/// A page of a tenant's servers.
///
/// # Errors
/// Tenant not found or store failure.
pub async fn list_servers(
    app: &Tollgate,
    t: &TenantId,
    cursor: Option<&str>,
    l: Option<u32>,
) -> Result<Page<Server>, ManageError> {
    require_tenant(app, t).await?;
    Ok(app.repo.list_servers(t, cursor, page_limit(l)).await?)
}

/// Applies a patch; a new `signing_alg` rotates to a fresh key of that algorithm.
///
/// # Errors
/// Invalid settings, not found, or failure.
pub async fn patch_server(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    s: &ServerId,
    patch: ServerPatch,
) -> Result<Server, ManageError> {
    let before = get_server(app, t, s).await?;
    let mut server = before.clone();
    let old_alg = server.signing_alg;
    if let Some(v) = patch.name {
        server.name = v;
    }
    if let Some(v) = patch.access_token_ttl {
        server.access_token_ttl = v;
    }
    if let Some(v) = patch.refresh_token_ttl {
        server.refresh_token_ttl = v;
    }
    if let Some(v) = patch.signing_alg {
        server.signing_alg = v;
    }
    if let Some(v) = patch.default_audience {
        server.default_audience = v;
    }
    if let Some(v) = patch.allowed_token_endpoint_auth_methods {
        server.allowed_token_endpoint_auth_methods = dedup_methods(v);
    }
    if let Some(v) = patch.tls_client_certificate_bound_access_tokens {
        server.tls_client_certificate_bound_access_tokens = v;
    }
    if let Some(v) = patch.key_rotation_period {
        server.key_rotation_period = v;
    }
    if let Some(v) = patch.require_pkce {
        server.require_pkce = v;
    }
    if let Some(v) = patch.allow_plain_pkce {
        server.allow_plain_pkce = v;
    }
    if let Some(v) = patch.logo_uri {
        server.logo_uri = v;
    }
    if let Some(v) = patch.brand_color {
        server.brand_color = v.map(|c| c.to_ascii_lowercase());
    }
    if let Some(v) = patch.rate_limits {
        server.rate_limits = v.map_or_else(Default::default, |p| server.rate_limits.merged(&p));
    }
    if let Some(v) = patch.tls_client_ca {
        server.tls_client_ca = v;
    }
    if let Some(v) = patch.introspection_clients {
        server.introspection_clients = crate::model::server::dedup_ids(v);
    }
    if let Some(v) = patch.allow_insecure_redirect_uris {
        server.allow_insecure_redirect_uris = v;
    }
    if let Some(v) = patch.require_pushed_authorization_requests {
        server.require_pushed_authorization_requests = v;
    }
    if let Some(v) = patch.pushed_authorization_request_ttl {
        server.pushed_authorization_request_ttl = v;
    }
    if let Some(v) = patch.trusted_issuers {
        server.trusted_issuers = v;
    }
    server.validate(&app.servable_methods())?;
    crate::model::trusted_issuer::check_fetch_guards(
        &server.trusted_issuers,
        &app.options.outbound,
        app.options.jwks_fetch.max_bytes,
    )?;
    app.options.ceilings.check(&server, Some(&before))?;
    if server.signing_alg != old_alg {
        refuse_orphaned_id_token_alg(app, &server, old_alg).await?;
    }
    server.updated_at = app.clock.now();
    let keys = if server.signing_alg == old_alg {
        None
    } else {
        let now = server.updated_at;
        let has_key = app
            .repo
            .list_keys(t, s)
            .await?
            .iter()
            .any(|k| k.alg == server.signing_alg && k.status == KeyStatus::Current);
        let new_key = if has_key {
            None
        } else {
            Some(
                generate_keys(app, t, s, vec![server.signing_alg])
                    .await?
                    .remove(0),
            )
        };
        Some(SigningAlgChange {
            new_key,
            // The old algorithm's key stops signing; RS256 stays, ID tokens need it.
            retire_alg: (old_alg != SigningAlg::RS256).then_some(old_alg),
            retire_at: retire_at(&server, now),
            now,
        })
    };
    let audit = AuditRecord::new(by, "server.update", Resource::server(t, s))
        .before(&before)
        .after(&server);
    if !app
        .repo
        .update_server(&server, keys.as_ref(), &audit)
        .await?
    {
        return Err(ManageError::NotFound("server"));
    }
    app.invalidate(Invalidation::server(t, s)).await;
    Ok(server)
}

/// A new `signing_alg` retires the old algorithm's key; when the server then no longer signs
/// ID tokens with that algorithm (ES256, EdDSA), a client that registered it as its
/// `id_token_signed_response_alg` would get none: the change is refused, naming a client.
async fn refuse_orphaned_id_token_alg(
    app: &Tollgate,
    server: &Server,
    old_alg: SigningAlg,
) -> Result<(), ManageError> {
    if server.id_token_algs().contains(&old_alg) {
        return Ok(());
    }
    let (t, s) = (&server.tenant_id, &server.id);
    let mut after: Option<String> = None;
    loop {
        let page = app.repo.list_clients(t, s, after.as_deref(), 500).await?;
        if let Some(c) = page
            .items
            .iter()
            .find(|c| c.metadata.id_token_signed_response_alg.as_deref() == Some(old_alg.as_str()))
        {
            return Err(Invalid::request(
                "signing_alg",
                format!(
                    "client `{}` registered id_token_signed_response_alg {}, which the server \
                     would no longer sign with; change that client first",
                    c.client_id,
                    old_alg.as_str()
                ),
            )
            .into());
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

/// Deletes a server with its clients and keys.
///
/// # Errors
/// Not found or store failure.
pub async fn delete_server(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    s: &ServerId,
) -> Result<(), ManageError> {
    let before = get_server(app, t, s).await?;
    let audit = AuditRecord::new(by, "server.delete", Resource::server(t, s)).before(&before);
    let deleted = app.repo.delete_server(t, s, &audit).await?;
    app.invalidate(Invalidation::server(t, s)).await;
    if deleted {
        Ok(())
    } else {
        Err(ManageError::NotFound("server"))
    }
}
