//! Typed admin paths. Each extractor authenticates the caller (401), parses the ids in the
//! path (400 naming the parameter), and authorizes the caller for the tenant it names and
//! for the kind of access the method asks (403), in that order; a handler that takes one
//! cannot skip the check. Each also carries the request's [`Origin`] (who, from where), which
//! the handler hands to the `manage` function so the change is audited.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use tollgate_core::audit::Origin;
use tollgate_core::ids::{ClientId, CredentialId, IdError, ServerId, TenantId, UserId};

use crate::auth::{origin, Access, Caller, TenantScope};
use crate::error::AdminError;

/// `/admin/tenants`: the tenant collection.
#[derive(Debug)]
pub(crate) struct TenantsPath {
    /// Which tenants the caller may see.
    pub scope: TenantScope,
    pub by: Origin,
}

/// `/admin/tenants/{tid}…`
#[derive(Debug)]
pub(crate) struct TenantPath {
    pub tenant: TenantId,
    pub by: Origin,
}

/// `/admin/tenants/{tid}/servers/{aid}…`
#[derive(Debug)]
pub(crate) struct ServerPath {
    pub tenant: TenantId,
    pub server: ServerId,
    pub by: Origin,
}

/// `/admin/tenants/{tid}/servers/{aid}/clients/{client_id}…`
#[derive(Debug)]
pub(crate) struct ClientPath {
    pub tenant: TenantId,
    pub server: ServerId,
    pub client: ClientId,
    pub by: Origin,
}

/// `/admin/tenants/{tid}/servers/{aid}/users/{user_id}…`
#[derive(Debug)]
pub(crate) struct UserPath {
    pub tenant: TenantId,
    pub server: ServerId,
    pub user: UserId,
    pub by: Origin,
}

/// `/admin/tenants/{tid}/servers/{aid}/users/{user_id}/consents/{client_id}`
#[derive(Debug)]
pub(crate) struct ConsentPath {
    pub tenant: TenantId,
    pub server: ServerId,
    pub user: UserId,
    pub client: ClientId,
    pub by: Origin,
}

/// `/admin/tenants/{tid}/credentials/{credential_id}`
#[derive(Debug)]
pub(crate) struct CredentialPath {
    pub tenant: TenantId,
    pub credential: CredentialId,
    pub by: Origin,
}

/// An operation only the root token may do (deleting a tenant), on top of its path's rules.
#[derive(Debug)]
pub(crate) struct RootOnly;

/// Parses the path parameter `name` with `parse`.
fn param<T>(
    req: &HttpRequest,
    name: &'static str,
    parse: fn(&str) -> Result<T, IdError>,
) -> Result<T, AdminError> {
    let raw = req.match_info().get(name).ok_or(AdminError::Misconfigured(
        "a route is missing the path parameter its extractor reads",
    ))?;
    parse(raw).map_err(|e| AdminError::invalid_request(format!("{name}: {e}")))
}

/// Authenticates, then parses the tenant id and authorizes the caller for it.
async fn tenant(req: &HttpRequest) -> Result<(TenantId, Origin), AdminError> {
    let caller = Caller::authenticate(req).await?;
    let tenant = param(req, "tid", TenantId::parse)?;
    caller.authorize_tenant(&tenant, Access::of(req.method()))?;
    Ok((tenant, origin(req, &caller)))
}

impl TenantsPath {
    async fn extract(req: HttpRequest) -> Result<Self, AdminError> {
        let caller = Caller::authenticate(&req).await?;
        let scope = caller.authorize_tenants(Access::of(req.method()))?;
        Ok(Self {
            scope,
            by: origin(&req, &caller),
        })
    }
}

impl TenantPath {
    async fn extract(req: HttpRequest) -> Result<Self, AdminError> {
        let (tenant, by) = tenant(&req).await?;
        Ok(Self { tenant, by })
    }
}

impl ServerPath {
    async fn extract(req: HttpRequest) -> Result<Self, AdminError> {
        let (tenant, by) = tenant(&req).await?;
        Ok(Self {
            tenant,
            server: param(&req, "aid", ServerId::parse)?,
            by,
        })
    }
}

impl ClientPath {
    async fn extract(req: HttpRequest) -> Result<Self, AdminError> {
        let (tenant, by) = tenant(&req).await?;
        Ok(Self {
            tenant,
            server: param(&req, "aid", ServerId::parse)?,
            client: param(&req, "client_id", ClientId::parse)?,
            by,
        })
    }
}

impl UserPath {
    async fn extract(req: HttpRequest) -> Result<Self, AdminError> {
        let (tenant, by) = tenant(&req).await?;
        Ok(Self {
            tenant,
            server: param(&req, "aid", ServerId::parse)?,
            user: param(&req, "user_id", UserId::parse)?,
            by,
        })
    }
}

impl ConsentPath {
    async fn extract(req: HttpRequest) -> Result<Self, AdminError> {
        let (tenant, by) = tenant(&req).await?;
        Ok(Self {
            tenant,
            server: param(&req, "aid", ServerId::parse)?,
            user: param(&req, "user_id", UserId::parse)?,
            client: param(&req, "client_id", ClientId::parse)?,
            by,
        })
    }
}

impl CredentialPath {
    async fn extract(req: HttpRequest) -> Result<Self, AdminError> {
        let (tenant, by) = tenant(&req).await?;
        Ok(Self {
            tenant,
            credential: param(&req, "credential_id", CredentialId::parse)?,
            by,
        })
    }
}

impl RootOnly {
    async fn extract(req: HttpRequest) -> Result<Self, AdminError> {
        Caller::authenticate(&req).await?.authorize_root()?;
        Ok(Self)
    }
}

macro_rules! from_request {
    ($($t:ty),*) => {$(
        impl FromRequest for $t {
            type Error = AdminError;
            type Future = Pin<Box<dyn Future<Output = Result<Self, AdminError>>>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                Box::pin(Self::extract(req.clone()))
            }
        }
    )*};
}

from_request!(
    TenantsPath,
    TenantPath,
    ServerPath,
    ClientPath,
    UserPath,
    ConsentPath,
    CredentialPath,
    RootOnly
);
