//! `GET /admin/tenants/{tid}/audit`: a tenant's audit trail, newest first, with filters, one
//! page at a time. The query is validated whole: an unknown parameter is a 400 (a misspelt
//! filter must not silently widen the answer).

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;
use tollgate_core::audit::{AuditEvent, AuditFilter};
use tollgate_core::ids::{ClientId, TenantId};
use tollgate_core::manage::audit;
use tollgate_core::Tollgate;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{AdminError, ErrorBody};
use crate::paging::{parse_limit, ListResponse};
use crate::paths::TenantPath;
use crate::reply;

/// Longest accepted `action`, `actor` and `resource` filters (the `max_length`s of
/// [`AuditQuery`] say the same; `documented_limits_are_the_checked_ones` holds them equal).
const MAX_ACTION: usize = 64;
const MAX_ACTOR: usize = 128;
const MAX_RESOURCE: usize = 512;

/// The audit listing's query string, as documented and as received.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Page size, 1–200; default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// `next_cursor` of the previous page; absent for the first page.
    #[param(value_type = Option<i64>, minimum = 1)]
    cursor: Option<String>,
    /// Only this action (`client.update`, `client.authentication_failed`, …).
    #[param(max_length = 64, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    action: Option<String>,
    /// Only this actor: `root`, `credential:{id}`, `scheduler` or `gateway`.
    #[param(max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    actor: Option<String>,
    /// Only this admin path or anything under it
    /// (`/admin/tenants/acme/servers/main`).
    #[param(max_length = 512, pattern = "^(/[^\\u0000-\\u001f\\u007f-\\u009f]*)?$")]
    resource: Option<String>,
    /// Only rows about this client.
    #[param(value_type = Option<ClientId>)]
    client_id: Option<String>,
    /// At or after this time (Unix seconds).
    #[param(value_type = Option<i64>)]
    since: Option<String>,
    /// Before this time (Unix seconds).
    #[param(value_type = Option<i64>)]
    until: Option<String>,
}

/// A validated audit query.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct AuditListing {
    filter: AuditFilter,
    before: Option<i64>,
    limit: Option<u32>,
}

fn bad(name: &str, why: &str) -> AdminError {
    AdminError::invalid_request(format!("{name}: {why}"))
}

fn bounded(name: &str, value: Option<String>, max: usize) -> Result<Option<String>, AdminError> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) if v.chars().count() > max || v.chars().any(char::is_control) => Err(bad(
            name,
            &format!("must be at most {max} characters, without control characters"),
        )),
        other => Ok(other),
    }
}

fn seconds(name: &str, value: Option<String>) -> Result<Option<i64>, AdminError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| bad(name, "must be Unix seconds (an integer)"))
        })
        .transpose()
}

impl AuditListing {
    fn parse(query: &str) -> Result<Self, AdminError> {
        let q = web::Query::<AuditQuery>::from_query(query)
            .map_err(|e| {
                AdminError::invalid_request(format!("the query string is not understood: {e}"))
            })?
            .into_inner();
        let before = q
            .cursor
            .filter(|c| !c.is_empty())
            .map(|c| match c.parse::<i64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad(
                    "cursor",
                    "must be a `next_cursor` from a previous page",
                )),
            })
            .transpose()?;
        let client_id = q
            .client_id
            .filter(|c| !c.is_empty())
            .map(|c| ClientId::parse(&c).map_err(|e| bad("client_id", &e.to_string())))
            .transpose()?;
        let resource = bounded("resource", q.resource, MAX_RESOURCE)?;
        if resource.as_ref().is_some_and(|r| !r.starts_with('/')) {
            return Err(bad(
                "resource",
                "must be an admin path such as /admin/tenants/acme",
            ));
        }
        Ok(Self {
            filter: AuditFilter {
                action: bounded("action", q.action, MAX_ACTION)?,
                actor: bounded("actor", q.actor, MAX_ACTOR)?,
                resource: resource.map(|r| r.trim_end_matches('/').to_owned()),
                client_id,
                since: seconds("since", q.since)?,
                until: seconds("until", q.until)?,
            },
            before,
            limit: parse_limit(q.limit.as_deref())?,
        })
    }
}

impl FromRequest for AuditListing {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AdminError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            Caller::authenticate(&req).await?;
            Self::parse(req.query_string())
        })
    }
}

/// A tenant's audit trail
///
/// Every admin change in the tenant — who (`root`, `credential:{id}`, `scheduler`), what
/// (action and resource), when, from which address, and the state before and after with
/// secrets removed — and sampled client-authentication failures at its gateway (actor
/// `gateway`, at most one per client, reason and minute). Newest first. A tenant-scoped
/// credential reads its own tenant's trail only; the trail outlives a deleted tenant.
#[utoipa::path(
    get, path = "/admin/tenants/{tid}/audit", tag = "audit", operation_id = "list_audit",
    params(("tid" = TenantId, Path, description = "Tenant id"), AuditQuery),
    responses(
        (status = 200, description = "A page of audit events, newest first", body = ListResponse<AuditEvent>),
        (status = 400, description = "Malformed id or query parameter, naming it", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    app: web::Data<Tollgate>,
    at: TenantPath,
    q: AuditListing,
) -> Result<HttpResponse, AdminError> {
    let page = audit::list(&app, &at.tenant, &q.filter, q.before, q.limit).await?;
    Ok(reply::ok(&ListResponse::from(page)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_limits_are_the_checked_ones() {
        let doc = crate::ApiDoc::document();
        let params = doc["paths"]["/admin/tenants/{tid}/audit"]["get"]["parameters"]
            .as_array()
            .unwrap();
        let max = |name: &str| {
            params.iter().find(|p| p["name"] == name).unwrap()["schema"]["maxLength"]
                .as_u64()
                .unwrap()
        };
        assert_eq!(max("action"), MAX_ACTION as u64);
        assert_eq!(max("actor"), MAX_ACTOR as u64);
        assert_eq!(max("resource"), MAX_RESOURCE as u64);
    }

    #[test]
    fn empty_parameters_are_absent_as_documented() {
        for name in crate::openapi::EMPTY_IS_ABSENT {
            assert_eq!(
                AuditListing::parse(&format!("{name}=")).unwrap(),
                AuditListing::default(),
                "{name}"
            );
        }
    }

    #[test]
    fn parses_filters() {
        let q = AuditListing::parse(
            "action=client.update&actor=credential%3Aabc&resource=%2Fadmin%2Ftenants%2Fa%2F\
             &client_id=svc&since=10&until=20&limit=5&cursor=99",
        )
        .unwrap();
        assert_eq!(
            q,
            AuditListing {
                filter: AuditFilter {
                    action: Some("client.update".into()),
                    actor: Some("credential:abc".into()),
                    resource: Some("/admin/tenants/a".into()),
                    client_id: Some(ClientId::parse("svc").unwrap()),
                    since: Some(10),
                    until: Some(20),
                },
                before: Some(99),
                limit: Some(5),
            }
        );
        assert_eq!(AuditListing::parse("").unwrap(), AuditListing::default());
        assert_eq!(
            AuditListing::parse("action=&cursor=").unwrap(),
            AuditListing::default()
        );
    }

    #[test]
    fn rejects_bad_parameters_naming_them() {
        let long = format!("action={}", "a".repeat(65));
        let rows: &[(&str, &str)] = &[
            ("cursor=abc", "cursor: "),
            ("cursor=-4", "cursor: "),
            ("since=yesterday", "since: "),
            ("until=1.5", "until: "),
            ("client_id=a%20b", "client_id: "),
            ("resource=tenants", "resource: "),
            (&long, "action: "),
            ("limit=0", "limit: "),
            ("actr=root", "actr"),
            ("action=a&action=b", "the query string"),
        ];
        for (query, want) in rows {
            match AuditListing::parse(query) {
                Err(AdminError::BadRequest { code, description }) => {
                    assert_eq!(code, "invalid_request", "{query}");
                    assert!(description.contains(want), "{query}: {description}");
                }
                other => panic!("{query}: {other:?}"),
            }
        }
    }
}
