//! Pagination of management listings and the query-string extractor.
//!
//! Listings are ordered by id and paged by keyset: `?limit=100&after=<last id of the previous
//! page>`; the answer's `next` is the value to pass as `after` for the following page, absent
//! on the last page. (Events have their own, time-ordered pagination.)

use crate::error::ApiError;
use crate::server::AppState;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use honeysens_core::Error;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 100;
/// Largest page size.
pub const MAX_LIMIT: u32 = 1000;

/// `?limit=&after=` of a listing.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only objects with a larger id (the `next` of the previous page).
    #[serde(default)]
    pub after: Option<i64>,
}

/// `?division_id=&limit=&after=` of a listing of division-owned objects.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DivisionPageQuery {
    /// Only objects of this division.
    #[serde(default)]
    pub division_id: Option<i64>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default)]
    pub limit: Option<u32>,
    /// Only objects with a larger id (the `next` of the previous page).
    #[serde(default)]
    pub after: Option<i64>,
}

impl DivisionPageQuery {
    /// The paging part.
    pub fn page(&self) -> PageQuery {
        PageQuery {
            limit: self.limit,
            after: self.after,
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Paged<T> {
    /// The objects, by id.
    pub items: Vec<T>,
    /// Pass as `after` to get the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub next: Option<i64>,
}

impl PageQuery {
    /// Cuts one page out of `items` (any order) by their ids.
    pub fn apply<T>(
        &self,
        mut items: Vec<T>,
        id: impl Fn(&T) -> i64,
    ) -> Result<Paged<T>, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(Error::invalid(
                "limit",
                "out_of_range",
                format!("must be 1 to {MAX_LIMIT}"),
            )
            .into());
        }
        items.sort_by_key(|t| id(t));
        if let Some(after) = self.after {
            items.retain(|t| id(t) > after);
        }
        let limit = limit as usize;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(&id)
        } else {
            None
        };
        Ok(Paged { items, next })
    }
}

/// A query string whose parse errors answer 400 `request.malformed` in the API's error format.
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, st)
            .await
            .map(|Query(q)| QueryParams(q))
            .map_err(|e| ApiError::bad_request("request.malformed", e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_by_id_with_next_only_when_more_remain() {
        let ids = vec![5_i64, 1, 3, 2, 4];
        let q = PageQuery {
            limit: Some(2),
            after: None,
        };
        let p = q.apply(ids.clone(), |i| *i).unwrap();
        assert_eq!((p.items, p.next), (vec![1, 2], Some(2)));
        let q = PageQuery {
            limit: Some(2),
            after: Some(4),
        };
        let p = q.apply(ids.clone(), |i| *i).unwrap();
        assert_eq!((p.items, p.next), (vec![5], None));
        let q = PageQuery {
            limit: Some(5),
            after: None,
        };
        assert_eq!(q.apply(ids.clone(), |i| *i).unwrap().next, None);
        let q = PageQuery {
            limit: Some(0),
            after: None,
        };
        assert_eq!(q.apply(ids, |i| *i).unwrap_err().status, 422);
    }
}
