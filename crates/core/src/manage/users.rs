//! Users of the built-in login, and the consents they gave.

use crate::app::Tollgate;
use crate::audit::{AuditRecord, Origin, Resource};
use crate::ids::{ClientId, ServerId, TenantId, UserId};
use crate::model::users::{
    normalize_username, validate_claims, validate_password, Consent, NewUser, User, UserPatch,
    UserView,
};
use crate::revoked_subjects::Subject;
use crate::secrets::Password;
use crate::store::{Page, StoreError};

use super::{blocking, conflict, page_limit, require_server, ManageError};
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
    let now = app.clock.now();
    let user = User {
        tenant_id: t.clone(),
        server_id: s.clone(),
        id: unused_subject(app, t, s).await?,
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

/// A fresh user id that is no client's id on this server: the user's `sub` must never be a
/// client_credentials token's `sub` (RFC 9068 §2.2). A random UUID colliding with a client
/// id is only possible if someone registered that UUID as a client id; draw again then.
async fn unused_subject(app: &Tollgate, t: &TenantId, s: &ServerId) -> Result<UserId, ManageError> {
    for _ in 0..4 {
        let id = UserId::generate();
        let as_client = ClientId::parse(id.as_str())
            .map_err(|e| ManageError::Internal(format!("a user id is not a client id: {e}")))?;
        if app.repo.get_client(t, s, &as_client).await?.is_none() {
            return Ok(id);
        }
    }
    Err(ManageError::Internal(
        "no user id free of client ids after four draws".into(),
    ))
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
    user.updated_at = app.clock.now();
    if password_changed {
        // What was obtained with the old password ends with it: the access tokens now
        // (by watermark), the refresh tokens below, the sessions at their next use (each
        // carries a digest of the password hash it was opened with).
        super::revoke_subject(app, t, s, &Subject::User(id.clone())).await?;
    }
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
    if password_changed {
        let revoked = app
            .repo
            .revoke_refresh_tokens_of_user(t, s, id, app.clock.now())
            .await?;
        tracing::info!(tenant = %t, server = %s, user_id = %id, refresh_tokens = revoked, "password changed; the user's tokens and sessions are revoked");
    }
    Ok(view)
}

/// Deletes a user with their consents and refresh tokens (the database cascades); every
/// access token issued for them is revoked by a watermark (`crate::revoked_subjects`), and
/// their sessions end at their next use (the user is gone).
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
    super::revoke_subject(app, t, s, &Subject::User(id.clone())).await?;
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
        app.revocations()
            .revoke_access_token(t, s, &jti, exp)
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
        .revoke_refresh_tokens_of(t, s, id, client, app.clock.now())
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
