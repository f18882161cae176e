//! Typed admin paths. Each extractor authenticates the caller (401), parses the ids in the
//! path (400 naming the parameter), and authorizes the caller for the tenant it names, in
//! that order; a handler that takes one cannot skip the check.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use tollgate_core::ids::{ClientId, IdError, ServerId, TenantId, UserId};

use crate::auth::Caller;
use crate::error::AdminError;

/// `/admin/tenants`: the tenant collection.
#[derive(Debug)]
pub(crate) struct TenantsPath;

/// `/admin/tenants/{tid}…`
#[derive(Debug)]
pub(crate) struct TenantPath {
    pub tenant: TenantId,
}

/// `/admin/tenants/{tid}/servers/{aid}…`
#[derive(Debug)]
pub(crate) struct ServerPath {
    pub tenant: TenantId,
    pub server: ServerId,
}

/// `/admin/tenants/{tid}/servers/{aid}/clients/{client_id}…`
#[derive(Debug)]
pub(crate) struct ClientPath {
    pub tenant: TenantId,
    pub server: ServerId,
    pub client: ClientId,
}

/// `/admin/tenants/{tid}/servers/{aid}/users/{user_id}…`
#[derive(Debug)]
pub(crate) struct UserPath {
    pub tenant: TenantId,
    pub server: ServerId,
    pub user: UserId,
}

/// `/admin/tenants/{tid}/servers/{aid}/users/{user_id}/consents/{client_id}`
#[derive(Debug)]
pub(crate) struct ConsentPath {
    pub tenant: TenantId,
    pub server: ServerId,
    pub user: UserId,
    pub client: ClientId,
}

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
fn tenant(req: &HttpRequest) -> Result<TenantId, AdminError> {
    let caller = Caller::authenticate(req)?;
    let tenant = param(req, "tid", TenantId::parse)?;
    caller.authorize_tenant(&tenant)?;
    Ok(tenant)
}

impl TenantsPath {
    fn extract(req: &HttpRequest) -> Result<Self, AdminError> {
        Caller::authenticate(req)?.authorize_tenants()?;
        Ok(Self)
    }
}

impl TenantPath {
    fn extract(req: &HttpRequest) -> Result<Self, AdminError> {
        Ok(Self {
            tenant: tenant(req)?,
        })
    }
}

impl ServerPath {
    fn extract(req: &HttpRequest) -> Result<Self, AdminError> {
        let tenant = tenant(req)?;
        Ok(Self {
            tenant,
            server: param(req, "aid", ServerId::parse)?,
        })
    }
}

impl ClientPath {
    fn extract(req: &HttpRequest) -> Result<Self, AdminError> {
        let tenant = tenant(req)?;
        Ok(Self {
            tenant,
            server: param(req, "aid", ServerId::parse)?,
            client: param(req, "client_id", ClientId::parse)?,
        })
    }
}

impl UserPath {
    fn extract(req: &HttpRequest) -> Result<Self, AdminError> {
        let tenant = tenant(req)?;
        Ok(Self {
            tenant,
            server: param(req, "aid", ServerId::parse)?,
            user: param(req, "user_id", UserId::parse)?,
        })
    }
}

impl ConsentPath {
    fn extract(req: &HttpRequest) -> Result<Self, AdminError> {
        let tenant = tenant(req)?;
        Ok(Self {
            tenant,
            server: param(req, "aid", ServerId::parse)?,
            user: param(req, "user_id", UserId::parse)?,
            client: param(req, "client_id", ClientId::parse)?,
        })
    }
}

macro_rules! from_request {
    ($($t:ty),*) => {$(
        impl FromRequest for $t {
            type Error = AdminError;
            type Future = Ready<Result<Self, AdminError>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                ready(Self::extract(req))
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
    ConsentPath
);
