//! Administrative operations on tenants, servers, clients and keys: validation, persistence,
//! key and secret generation, and cache invalidation so a change takes effect on this
//! process's gateway before the call returns. The admin crate's handlers call exactly one of
//! these each.
//!
//! Every change takes the [`Origin`] of the request (who, from where) and hands the
//! repository an [`AuditRecord`] built from the public views before and after, which the
//! repository writes in the change's own transaction.

use std::sync::Arc;

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::Tollgate;
use crate::audit::{AuditRecord, Origin, Resource};
use crate::client::{Client, ClientMetadata, NewClient, StoredSecret};
use crate::clock;
use crate::ids::{ClientId, ServerId, TenantId, UserId};
use crate::invalidation::Invalidation;
use crate::keys::{KeyRecord, KeyStatus};
use crate::secrets::{ClientSecret, Password};
use crate::server::{AuthMethod, NewServer, Server, ServerPatch, SigningAlg};
use crate::store::{Page, SigningAlgChange, StoreError};
use crate::tenant::{validate_name, NewTenant, Tenant, TenantPatch};
use crate::users::{
    normalize_username, validate_claims, validate_password, Consent, NewUser, User, UserPatch,
    UserView,
};

/// An input that breaks a rule, naming the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Error code: `invalid_request`, or RFC 7591's `invalid_client_metadata` /
    /// `invalid_redirect_uri` for client metadata.
    pub code: &'static str,
    /// The offending field.
    pub field: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl Invalid {
    /// A general invalid field.
    pub fn request(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: "invalid_request",
            field,
            message: message.into(),
        }
    }
    /// RFC 7591 `invalid_client_metadata`.
    pub fn client_metadata(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            code: "invalid_client_metadata",
            field,
            message: message.into(),
        }
    }
    /// RFC 7591 `invalid_redirect_uri`.
    pub fn redirect_uri(message: impl Into<String>) -> Self {
        Self {
            code: "invalid_redirect_uri",
            field: "redirect_uris",
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why an administrative operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    /// Bad input (400).
    #[error("{0}")]
    Invalid(Invalid),
    /// The named thing does not exist (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The id is taken (409).
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database failed (503 when unreachable, else 500).
    #[error(transparent)]
    Store(StoreError),
    /// Key generation, sealing or hashing failed (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<Invalid> for ManageError {
    fn from(i: Invalid) -> Self {
        Self::Invalid(i)
    }
}

impl From<StoreError> for ManageError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn conflict(what: &'static str) -> impl Fn(StoreError) -> ManageError {
    move |e| match e {
        StoreError::Conflict => ManageError::Conflict(what),
        other => ManageError::Store(other),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ManageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ManageError::Internal(e.to_string()))
}

/// Page size bounds for listings.
pub const MAX_PAGE: u32 = 200;

/// A page size: the requested one within bounds, else 50.
pub(crate) fn page_limit(l: Option<u32>) -> u32 {
    l.unwrap_or(50).clamp(1, MAX_PAGE)
}

// ---- tenants ----

/// Creates a tenant.
///
/// # Errors
/// Invalid name, id taken, or store failure.
pub async fn create_tenant(
    app: &Tollgate,
    by: &Origin,
    input: NewTenant,
) -> Result<Tenant, ManageError> {
    validate_name("name", &input.name)?;
    let now = clock::now();
    let t = Tenant {
        id: input.id,
        name: input.name,
        created_at: now,
        updated_at: now,
    };
    let audit = AuditRecord::new(by, "tenant.create", Resource::tenant(&t.id)).after(&t);
    app.repo
        .create_tenant(&t, &audit)
        .await
        .map_err(conflict("tenant"))?;
    app.invalidate(Invalidation::tenant(&t.id)).await;
    Ok(t)
}

/// One tenant.
///
/// # Errors
/// Not found or store failure.
pub async fn get_tenant(app: &Tollgate, id: &TenantId) -> Result<Tenant, ManageError> {
    app.repo
        .get_tenant(id)
        .await?
        .ok_or(ManageError::NotFound("tenant"))
}

/// A page of tenants: every tenant, or with `only`, that one alone (what a tenant-scoped
/// credential may see).
///
/// # Errors
/// Store failure.
pub async fn list_tenants(
    app: &Tollgate,
    only: Option<&TenantId>,
    cursor: Option<&str>,
    l: Option<u32>,
) -> Result<Page<Tenant>, ManageError> {
    let Some(only) = only else {
        return Ok(app.repo.list_tenants(cursor, page_limit(l)).await?);
    };
    // The one-tenant list pages like any other: the tenant, unless the cursor is past it.
    let items = match app.repo.get_tenant(only).await? {
        Some(t) if cursor.is_none_or(|c| t.id.as_str() > c) => vec![t],
        _ => Vec::new(),
    };
    Ok(Page { items, next: None })
}

/// Applies a patch to a tenant.
///
/// # Errors
/// Invalid name, not found, or store failure.
pub async fn patch_tenant(
    app: &Tollgate,
    by: &Origin,
    id: &TenantId,
    patch: TenantPatch,
) -> Result<Tenant, ManageError> {
    let before = get_tenant(app, id).await?;
    let mut t = before.clone();
    if let Some(name) = patch.name {
        validate_name("name", &name)?;
        t.name = name;
    }
    t.updated_at = clock::now();
    let audit = AuditRecord::new(by, "tenant.update", Resource::tenant(id))
        .before(&before)
        .after(&t);
    if !app.repo.update_tenant(&t, &audit).await? {
        return Err(ManageError::NotFound("tenant"));
    }
    app.invalidate(Invalidation::tenant(id)).await;
    Ok(t)
}

/// Deletes a tenant with its servers, clients and keys.
///
/// # Errors
/// Not found or store failure.
pub async fn delete_tenant(app: &Tollgate, by: &Origin, id: &TenantId) -> Result<(), ManageError> {
    let before = get_tenant(app, id).await?;
    let audit = AuditRecord::new(by, "tenant.delete", Resource::tenant(id)).before(&before);
    let deleted = app.repo.delete_tenant(id, &audit).await?;
    app.invalidate(Invalidation::tenant(id)).await;
    if deleted {
        Ok(())
    } else {
        Err(ManageError::NotFound("tenant"))
    }
}

// ---- servers ----

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
    let now = clock::now();
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
    let now = clock::now();
    let server = input.into_server(t, &app.servable_methods(), now);
    server.validate(&app.servable_methods())?;
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
    server.validate(&app.servable_methods())?;
    server.updated_at = clock::now();
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

// ---- keys ----

/// A published key as the admin API lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyView {
    /// The public JWK.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub jwk: serde_json::Value,
    /// `current`, `next` or `retiring`.
    pub status: KeyStatus,
    /// Unix seconds.
    pub created_at: i64,
    /// When a retiring key is unpublished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<i64>,
}

/// The server's published keys (public halves only).
///
/// # Errors
/// Not found or store failure.
pub async fn list_keys(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
) -> Result<Vec<KeyView>, ManageError> {
    get_server(app, t, s).await?;
    let now = clock::now();
    Ok(app
        .repo
        .list_keys(t, s)
        .await?
        .into_iter()
        .filter(|k| k.retire_at.is_none_or(|r| r > now))
        .map(|k| KeyView {
            jwk: k.public_jwk,
            status: k.status,
            created_at: k.created_at,
            retire_at: k.retire_at,
        })
        .collect())
}

/// Rotates every current key: a fresh key of each algorithm becomes current; the old ones
/// stay published (retiring) until the tokens they signed have expired. The same
/// conditional path as scheduled rotation: when another process rotates at the same moment,
/// one of the two rotations happens, not both.
///
/// # Errors
/// Not found or failure.
pub async fn rotate_keys(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    s: &ServerId,
) -> Result<Vec<KeyView>, ManageError> {
    let server = get_server(app, t, s).await?;
    crate::keys::rotation::rotate(app, by, &server, clock::now()).await?;
    list_keys(app, t, s).await
}

// ---- clients ----

/// A client as the admin API returns it: RFC 7591 §3.2.1 response fields and the metadata.
#[derive(Clone, Serialize, ToSchema)]
pub struct ClientView {
    /// The client id.
    #[schema(value_type = String)]
    pub client_id: ClientId,
    /// Unix seconds.
    pub client_id_issued_at: i64,
    /// Present only in the response that created or rotated it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// 0 = never; present for secret-based methods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<i64>,
    /// RFC 7591 metadata.
    #[serde(flatten)]
    pub metadata: ClientMetadata,
}

impl std::fmt::Debug for ClientView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientView")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl ClientView {
    fn new(c: Client, secret: Option<&ClientSecret>) -> Self {
        let uses_secret = c.auth_method().uses_secret();
        Self {
            client_id: c.client_id,
            client_id_issued_at: c.issued_at,
            client_secret: secret.map(|s| s.expose().to_owned()),
            client_secret_expires_at: uses_secret.then_some(c.secret_expires_at),
            metadata: c.metadata,
        }
    }
}

async fn require_server(app: &Tollgate, t: &TenantId, s: &ServerId) -> Result<Server, ManageError> {
    get_server(app, t, s).await
}

/// Produces the at-rest form of a fresh secret for `method`.
async fn store_secret(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    id: &ClientId,
    method: AuthMethod,
    secret: &ClientSecret,
) -> Result<StoredSecret, ManageError> {
    match method {
        AuthMethod::ClientSecretJwt => app
            .master
            .seal(&client_secret_context(t, s, id), secret.expose().as_bytes())
            .map(StoredSecret::Sealed)
            .map_err(|e| ManageError::Internal(e.to_string())),
        _ => {
            let plain = secret.clone();
            let hasher = app.hasher.clone();
            let phc = blocking(move || hasher.hash(plain.expose()))
                .await?
                .map_err(|e| ManageError::Internal(e.to_string()))?;
            Ok(StoredSecret::Hash(phc))
        }
    }
}

/// Associated data binding a sealed `client_secret_jwt` secret to its client.
#[must_use]
pub fn client_secret_context(t: &TenantId, s: &ServerId, id: &ClientId) -> String {
    format!("client-secret/{t}/{s}/{id}")
}

/// Registers a client; returns it with its secret (shown this once) for secret methods.
///
/// # Errors
/// Invalid metadata, server not found, id taken, or failure.
pub async fn create_client(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    s: &ServerId,
    input: NewClient,
) -> Result<ClientView, ManageError> {
    let server = require_server(app, t, s).await?;
    let metadata = input.metadata.validated(&server, &app.servable_methods())?;
    metadata.check_jwks_uri(&app.options.jwks_fetch)?;
    let client_id = input.client_id.unwrap_or_else(ClientId::generate);
    let method = metadata
        .token_endpoint_auth_method
        .unwrap_or(AuthMethod::ClientSecretBasic);
    let secret = method.uses_secret().then(ClientSecret::generate);
    let stored = match &secret {
        Some(sec) => store_secret(app, t, s, &client_id, method, sec).await?,
        None => StoredSecret::None,
    };
    let now = clock::now();
    let client = Client {
        tenant_id: t.clone(),
        server_id: s.clone(),
        client_id,
        metadata,
        secret: stored,
        secret_expires_at: 0,
        issued_at: now,
        updated_at: now,
    };
    let audit = AuditRecord::new(
        by,
        "client.create",
        Resource::client(t, s, &client.client_id),
    )
    .after(&ClientView::new(client.clone(), None));
    app.repo
        .create_client(&client, &audit)
        .await
        .map_err(conflict("client"))?;
    app.invalidate(Invalidation::client(t, s, &client.client_id))
        .await;
    Ok(ClientView::new(client, secret.as_ref()))
}

async fn load_client(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    id: &ClientId,
) -> Result<Client, ManageError> {
    app.repo
        .get_client(t, s, id)
        .await?
        .ok_or(ManageError::NotFound("client"))
}

/// One client (never with its secret).
///
/// # Errors
/// Not found or store failure.
pub async fn get_client(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    id: &ClientId,
) -> Result<ClientView, ManageError> {
    Ok(ClientView::new(load_client(app, t, s, id).await?, None))
}

/// A page of a server's clients.
///
/// # Errors
/// Server not found or store failure.
pub async fn list_clients(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    cursor: Option<&str>,
    l: Option<u32>,
) -> Result<Page<ClientView>, ManageError> {
    require_server(app, t, s).await?;
    let page = app.repo.list_clients(t, s, cursor, page_limit(l)).await?;
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(|c| ClientView::new(c, None))
            .collect(),
        next: page.next,
    })
}

/// Replaces a client's metadata (RFC 7592 §2.2). When the new method needs a secret the old
/// one cannot serve (none before, or a hash where the HMAC key itself is needed), a new
/// secret is issued and returned once.
///
/// # Errors
/// Invalid metadata, not found, or failure.
pub async fn replace_client(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    s: &ServerId,
    id: &ClientId,
    input: NewClient,
) -> Result<ClientView, ManageError> {
    if input.client_id.as_ref().is_some_and(|c| c != id) {
        return Err(
            Invalid::client_metadata("client_id", "must match the client in the path").into(),
        );
    }
    let server = require_server(app, t, s).await?;
    let mut client = load_client(app, t, s, id).await?;
    let before = ClientView::new(client.clone(), None);
    let metadata = input.metadata.validated(&server, &app.servable_methods())?;
    metadata.check_jwks_uri(&app.options.jwks_fetch)?;
    let method = metadata
        .token_endpoint_auth_method
        .unwrap_or(AuthMethod::ClientSecretBasic);
    let reusable = match (&client.secret, method) {
        (StoredSecret::Hash(_), AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost)
        | (StoredSecret::Sealed(_), AuthMethod::ClientSecretJwt) => true,
        (_, m) => !m.uses_secret(),
    };
    let mut secret = None;
    if !reusable {
        let fresh = ClientSecret::generate();
        client.secret = store_secret(app, t, s, id, method, &fresh).await?;
        client.secret_expires_at = 0;
        secret = Some(fresh);
    } else if !method.uses_secret() {
        client.secret = StoredSecret::None;
    }
    client.metadata = metadata;
    client.updated_at = clock::now();
    let audit = AuditRecord::new(by, "client.update", Resource::client(t, s, id))
        .before(&before)
        .after(&ClientView::new(client.clone(), None))
        .detail(&serde_json::json!({"new_secret_issued": secret.is_some()}));
    if !app.repo.update_client(&client, &audit).await? {
        return Err(ManageError::NotFound("client"));
    }
    app.invalidate(Invalidation::client(t, s, id)).await;
    Ok(ClientView::new(client, secret.as_ref()))
}

/// Deletes a client.
///
/// # Errors
/// Not found or store failure.
pub async fn delete_client(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    s: &ServerId,
    id: &ClientId,
) -> Result<(), ManageError> {
    let before = ClientView::new(load_client(app, t, s, id).await?, None);
    let audit = AuditRecord::new(by, "client.delete", Resource::client(t, s, id)).before(&before);
    let deleted = app.repo.delete_client(t, s, id, &audit).await?;
    app.invalidate(Invalidation::client(t, s, id)).await;
    if deleted {
        Ok(())
    } else {
        Err(ManageError::NotFound("client"))
    }
}

/// Issues a new secret, replacing the old one at once; returns it this once.
///
/// # Errors
/// Not found, a method without secrets (400), or failure.
pub async fn rotate_client_secret(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    s: &ServerId,
    id: &ClientId,
) -> Result<ClientView, ManageError> {
    let mut client = load_client(app, t, s, id).await?;
    let before = ClientView::new(client.clone(), None);
    let method = client.auth_method();
    if !method.uses_secret() {
        return Err(Invalid::request(
            "token_endpoint_auth_method",
            format!("`{}` clients have no secret", method.as_str()),
        )
        .into());
    }
    let fresh = ClientSecret::generate();
    client.secret = store_secret(app, t, s, id, method, &fresh).await?;
    client.secret_expires_at = 0;
    client.updated_at = clock::now();
    let audit = AuditRecord::new(by, "client.secret_rotate", Resource::client(t, s, id))
        .before(&before)
        .after(&ClientView::new(client.clone(), None));
    if !app.repo.update_client(&client, &audit).await? {
        return Err(ManageError::NotFound("client"));
    }
    app.invalidate(Invalidation::client(t, s, id)).await;
    Ok(ClientView::new(client, Some(&fresh)))
}

// ---- users ----

/// Hashes a new password with argon2id off the runtime.
async fn hash_password(app: &Tollgate, password: &Password) -> Result<String, ManageError> {
    let plain = password.clone();
    let hasher = app.hasher.clone();
    blocking(move || hasher.hash(plain.expose()))
        .await?
        .map_err(|e| ManageError::Internal(e.to_string()))
}

/// Creates a user of a server's built-in login.
///
/// # Errors
/// Invalid username, password or claims; server not found; username taken; failure.
pub async fn create_user(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    s: &ServerId,
    input: NewUser,
) -> Result<UserView, ManageError> {
    require_server(app, t, s).await?;
    let username = normalize_username(&input.username)?;
    validate_password(&input.password)?;
    let claims = input.claims.unwrap_or_default();
    validate_claims(&claims)?;
    let now = clock::now();
    let user = User {
        tenant_id: t.clone(),
        server_id: s.clone(),
        id: UserId::generate(),
        username,
        password_hash: hash_password(app, &input.password).await?,
        claims,
        created_at: now,
        updated_at: now,
    };
    let view = UserView::from(&user);
    let audit = AuditRecord::new(by, "user.create", user_resource(t, s, &user.id)).after(&view);
    app.repo
        .create_user(&user, &audit)
        .await
        .map_err(conflict("user"))?;
    Ok(view)
}

async fn load_user(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    id: &UserId,
) -> Result<User, ManageError> {
    require_server(app, t, s).await?;
    app.repo
        .get_user(t, s, id)
        .await?
        .ok_or(ManageError::NotFound("user"))
}

/// One user.
///
/// # Errors
/// Not found or store failure.
pub async fn get_user(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    id: &UserId,
) -> Result<UserView, ManageError> {
    load_user(app, t, s, id).await.map(|u| UserView::from(&u))
}

/// A page of a server's users, by id.
///
/// # Errors
/// Server not found or store failure.
pub async fn list_users(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    cursor: Option<&str>,
    l: Option<u32>,
) -> Result<Page<UserView>, ManageError> {
    require_server(app, t, s).await?;
    let page = app.repo.list_users(t, s, cursor, page_limit(l)).await?;
    Ok(Page {
        items: page.items.iter().map(UserView::from).collect(),
        next: page.next,
    })
}

/// Changes a user's username, password or claims.
///
/// # Errors
/// Invalid input, not found, username taken, or failure.
pub async fn patch_user(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    s: &ServerId,
    id: &UserId,
    patch: UserPatch,
) -> Result<UserView, ManageError> {
    let mut user = load_user(app, t, s, id).await?;
    let before = UserView::from(&user);
    let password_changed = patch.password.is_some();
    if let Some(name) = patch.username {
        user.username = normalize_username(&name)?;
    }
    if let Some(claims) = patch.claims {
        validate_claims(&claims)?;
        user.claims = claims;
    }
    if let Some(password) = patch.password {
        validate_password(&password)?;
        user.password_hash = hash_password(app, &password).await?;
    }
    user.updated_at = clock::now();
    let view = UserView::from(&user);
    let mut audit = AuditRecord::new(by, "user.update", user_resource(t, s, id))
        .before(&before)
        .after(&view);
    if password_changed {
        // That the password changed is worth knowing; the password itself never is.
        audit = audit.detail(&serde_json::json!({"password_changed": true}));
    }
    if !app
        .repo
        .update_user(&user, &audit)
        .await
        .map_err(conflict("user"))?
    {
        return Err(ManageError::NotFound("user"));
    }
    Ok(view)
}

/// Deletes a user with their consents and refresh tokens; their sessions end at their next
/// use, and the access tokens issued from their refresh tokens are revoked.
///
/// # Errors
/// Not found or store failure.
pub async fn delete_user(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    s: &ServerId,
    id: &UserId,
) -> Result<(), ManageError> {
    let user = load_user(app, t, s, id).await?;
    let now = clock::now();
    for consent in app.repo.list_consents(t, s, id).await? {
        let access = app
            .repo
            .revoke_refresh_tokens_of(t, s, id, &consent.client_id, now)
            .await?;
        revoke_access_tokens(app, t, s, access).await?;
    }
    let audit =
        AuditRecord::new(by, "user.delete", user_resource(t, s, id)).before(&UserView::from(&user));
    if app.repo.delete_user(t, s, id, &audit).await? {
        Ok(())
    } else {
        Err(ManageError::NotFound("user"))
    }
}

async fn revoke_access_tokens(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    access: Vec<(String, i64)>,
) -> Result<(), ManageError> {
    for (jti, exp) in access {
        crate::refresh::revoke_access_token(app, t, s, &jti, exp)
            .await
            .map_err(|_| ManageError::Store(StoreError::Unavailable("short-lived store".into())))?;
    }
    Ok(())
}

/// The clients a user has consented to, with the scopes.
///
/// # Errors
/// Not found or store failure.
pub async fn list_consents(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    id: &UserId,
) -> Result<Vec<Consent>, ManageError> {
    load_user(app, t, s, id).await?;
    Ok(app.repo.list_consents(t, s, id).await?)
}

/// Withdraws a user's consent to a client: the next authorization asks again, and the
/// refresh tokens the user granted that client (with their access tokens) are revoked.
///
/// # Errors
/// Not found or store failure.
pub async fn revoke_consent(
    app: &Tollgate,
    by: &Origin,
    t: &TenantId,
    s: &ServerId,
    id: &UserId,
    client: &ClientId,
) -> Result<(), ManageError> {
    load_user(app, t, s, id).await?;
    let consent = app.repo.get_consent(t, s, id, client).await?;
    let audit = AuditRecord::new(
        by,
        "consent.revoke",
        user_resource(t, s, id).child("consents", client),
    )
    .before(&consent);
    let deleted = app.repo.delete_consent(t, s, id, client, &audit).await?;
    let access = app
        .repo
        .revoke_refresh_tokens_of(t, s, id, client, clock::now())
        .await?;
    revoke_access_tokens(app, t, s, access).await?;
    if deleted {
        Ok(())
    } else {
        Err(ManageError::NotFound("consent"))
    }
}

fn user_resource(t: &TenantId, s: &ServerId, id: &UserId) -> Resource {
    Resource::server(t, s).child("users", id)
}

/// Shared handle type used by the admin and gateway crates.
pub type App = Arc<Tollgate>;
