//! Listing pages: the `?limit=&cursor=` query and the `{items, next_cursor}` answer.
//!
//! The cursor is opaque to callers; it is the id of the last item of the previous page,
//! which the store lists after.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use serde::{Deserialize, Serialize};
use tollgate_core::manage::MAX_PAGE;
use tollgate_core::store::Page;
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::AdminError;

/// Longest accepted cursor: the longest id (a client id) is 128 characters.
const MAX_CURSOR: usize = 128;

/// The query string of a listing, as documented and as received (validated into [`Paging`]).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Page size, 1–200; default 50.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200)]
    limit: Option<String>,
    /// `next_cursor` of the previous page; absent for the first page.
    #[param(max_length = 128)]
    cursor: Option<String>,
}

/// A validated page request.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Paging {
    /// List after this id.
    pub cursor: Option<String>,
    /// Page size; `None` means the default.
    pub limit: Option<u32>,
}

impl Paging {
    /// The cursor as the store takes it.
    pub(crate) fn cursor(&self) -> Option<&str> {
        self.cursor.as_deref()
    }

    fn parse(query: &str) -> Result<Self, AdminError> {
        let q = web::Query::<ListQuery>::from_query(query)
            .map_err(|_| AdminError::invalid_request("the query string is malformed"))?
            .into_inner();
        let limit = parse_limit(q.limit.as_deref())?;
        let cursor = q.cursor.filter(|c| !c.is_empty());
        if cursor
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_CURSOR)
        {
            return Err(AdminError::invalid_request(format!(
                "cursor: must be at most {MAX_CURSOR} characters"
            )));
        }
        Ok(Self { cursor, limit })
    }
}

/// The `limit` query parameter: 1 to [`MAX_PAGE`].
pub(crate) fn parse_limit(limit: Option<&str>) -> Result<Option<u32>, AdminError> {
    limit
        .map(|l| match l.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
            _ => Err(AdminError::invalid_request(format!(
                "limit: must be an integer from 1 to {MAX_PAGE}"
            ))),
        })
        .transpose()
}

impl FromRequest for Paging {
    type Error = AdminError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AdminError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            // Authentication answers before a bad query does.
            Caller::authenticate(&req).await?;
            Self::parse(req.query_string())
        })
    }
}

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ListResponse<T> {
    /// The objects, ordered by id.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

impl<T> From<Page<T>> for ListResponse<T> {
    fn from(page: Page<T>) -> Self {
        Self {
            items: page.items,
            next_cursor: page.next,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limit_and_cursor() {
        let rows: &[(&str, Option<u32>, Option<&str>)] = &[
            ("", None, None),
            ("limit=1", Some(1), None),
            ("limit=200&cursor=acme", Some(200), Some("acme")),
            ("cursor=", None, None),
            ("cursor=a%2Db&other=1", None, Some("a-b")),
        ];
        for (query, limit, cursor) in rows {
            let p = Paging::parse(query);
            assert!(p.is_ok(), "{query}: {p:?}");
            let p = p.unwrap_or_default();
            assert_eq!((p.limit, p.cursor()), (*limit, *cursor), "{query}");
        }
    }

    #[test]
    fn rejects_bad_limits_and_cursors() {
        let long = format!("cursor={}", "c".repeat(129));
        let rows: &[(&str, &str)] = &[
            ("limit=0", "limit: must be an integer from 1 to 200"),
            ("limit=201", "limit: must be an integer from 1 to 200"),
            ("limit=-1", "limit: must be an integer from 1 to 200"),
            ("limit=ten", "limit: must be an integer from 1 to 200"),
            ("limit=", "limit: must be an integer from 1 to 200"),
            (&long, "cursor: must be at most 128 characters"),
            ("limit=1&limit=2", "the query string is malformed"),
        ];
        for (query, want) in rows {
            match Paging::parse(query) {
                Err(AdminError::BadRequest { code, description }) => {
                    assert_eq!(
                        (code, description.as_str()),
                        ("invalid_request", *want),
                        "{query}"
                    );
                }
                other => panic!("{query}: {other:?}"),
            }
        }
    }
}
