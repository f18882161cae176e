//! Clients: registration with its secret (shown once), read, list, replace (RFC 7592
//! §2.2), delete, secret rotation.

use serde::Serialize;
use utoipa::ToSchema;

use crate::app::Tollgate;
use crate::audit::{AuditRecord, Origin, Resource};
use crate::ids::{ClientId, ServerId, TenantId};
use crate::invalidation::Invalidation;
use crate::model::client::{Client, ClientMetadata, NewClient, StoredSecret};
use crate::model::server::{AuthMethod, Server};
use crate::revoked_subjects::Subject;
use crate::secrets::ClientSecret;
use crate::store::Page;

use super::{blocking, conflict, get_server, page_limit, ManageError};
use crate::model::client::client_secret_context;
use crate::model::Invalid;
/// A client as the admin API returns it: RFC 7591 §3.2.1 response fields and the metadata.
#[derive(Clone, Serialize, ToSchema)]
pub struct ClientView {
    /// The client id.
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

pub(super) async fn require_server(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
) -> Result<Server, ManageError> {
    get_server(app, t, s).await
}

/// A fresh secret for `method`: for `client_secret_jwt`, long enough to be the key of every
/// HMAC algorithm the client may sign with (HS512 included).
fn fresh_secret(method: AuthMethod) -> ClientSecret {
    if method == AuthMethod::ClientSecretJwt {
        ClientSecret::random(crate::client_keys::AssertionAlg::HMAC_SECRET_BYTES)
    } else {
        ClientSecret::generate()
    }
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
    metadata.check_jwks_uri(&app.options.outbound, app.options.jwks_fetch.max_bytes)?;
    let client_id = input.client_id.unwrap_or_else(ClientId::generate);
    refuse_user_subject(app, t, s, &client_id).await?;
    let method = metadata
        .token_endpoint_auth_method
        .unwrap_or(AuthMethod::ClientSecretBasic);
    let secret = method.uses_secret().then(|| fresh_secret(method));
    let stored = match &secret {
        Some(sec) => store_secret(app, t, s, &client_id, method, sec).await?,
        None => StoredSecret::None,
    };
    let now = app.clock.now();
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

/// RFC 9068 §2.2: a client_credentials token's `sub` is the client id, and must never be a
/// user's `sub` on the same server. User ids are generated, never chosen, so only a chosen
/// client id can collide: it is refused (409 naming `client_id`).
async fn refuse_user_subject(
    app: &Tollgate,
    t: &TenantId,
    s: &ServerId,
    client_id: &ClientId,
) -> Result<(), ManageError> {
    let Ok(as_user) = crate::ids::UserId::parse(client_id.as_str()) else {
        return Ok(());
    };
    if app.repo.get_user(t, s, &as_user).await?.is_some() {
        return Err(ManageError::Conflict("client_id"));
    }
    Ok(())
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
    metadata.check_jwks_uri(&app.options.outbound, app.options.jwks_fetch.max_bytes)?;
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
        let fresh = fresh_secret(method);
        client.secret = store_secret(app, t, s, id, method, &fresh).await?;
        client.secret_expires_at = 0;
        secret = Some(fresh);
    } else if !method.uses_secret() {
        client.secret = StoredSecret::None;
    }
    client.metadata = metadata;
    client.updated_at = app.clock.now();
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

/// Deletes a client, and what it holds: its refresh tokens go with it (the database
/// cascades), its access tokens are revoked by a watermark (`crate::revoked_subjects`), so a
/// client later registered under the same id does not inherit them.
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
    super::revoke_subject(app, t, s, &Subject::Client(id.clone())).await?;
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
    let fresh = fresh_secret(method);
    client.secret = store_secret(app, t, s, id, method, &fresh).await?;
    client.secret_expires_at = 0;
    client.updated_at = app.clock.now();
    let audit = AuditRecord::new(by, "client.secret_rotate", Resource::client(t, s, id))
        .before(&before)
        .after(&ClientView::new(client.clone(), None));
    if !app.repo.update_client(&client, &audit).await? {
        return Err(ManageError::NotFound("client"));
    }
    app.invalidate(Invalidation::client(t, s, id)).await;
    Ok(ClientView::new(client, Some(&fresh)))
}
