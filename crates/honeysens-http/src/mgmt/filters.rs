//! Event filters: a division's rules that drop or auto-resolve known noise.
//!
//! Everybody reads the filters of their divisions (with hit counts); admins and managers of
//! the division write. The setting `require_filter_description` makes a description
//! mandatory. `POST /api/filters/{id}/reset` sets the hit counter back to zero. Filters of
//! other divisions answer 404.

use super::openapi::ErrorResponses;
use super::page::{DivisionPageQuery, Paged, QueryParams};
use super::principal::{Principal, require_role};
use super::{JsonBody, audit, parse_id};
use crate::error::ApiError;
use crate::server::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use honeysens_core::Error;
use honeysens_core::ids::{DivisionId, FilterId};
use honeysens_core::model::{EventFilter, EventFilterSpec, Role};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_filters, create_filter))
        .routes(routes!(get_filter, update_filter, delete_filter))
        .routes(routes!(reset_filter))
}

/// `GET /api/filters` query.
pub type FilterQuery = DivisionPageQuery;

async fn visible_filter(
    st: &AppState,
    p: &Principal,
    id: FilterId,
) -> Result<EventFilter, ApiError> {
    let f = st.store.get_filter(id).await?;
    if !p.sees(f.spec.division_id) {
        return Err(Error::not_found("filter").into());
    }
    Ok(f)
}

/// A spec the caller may store: valid under the settings and in one of their divisions.
async fn check_spec(st: &AppState, p: &Principal, spec: &EventFilterSpec) -> Result<(), ApiError> {
    let settings = st.store.get_settings().await?;
    spec.validate(settings.require_filter_description)?;
    super::target_division(st, p, spec.division_id).await?;
    Ok(())
}

/// `GET /api/filters`: with hit counts.
#[utoipa::path(get, path = "/api/filters", tag = "filters", params(DivisionPageQuery), responses((status = 200, description = "The caller's divisions' filters", body = Paged<EventFilter>), ErrorResponses))]
pub async fn list_filters(
    State(st): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<FilterQuery>,
) -> Result<Json<Paged<EventFilter>>, ApiError> {
    let all = match q.division_id.map(DivisionId) {
        Some(d) if p.sees(d) => st.store.list_filters(Some(&[d])).await?,
        Some(_) => Vec::new(),
        None if p.all_divisions => st.store.list_filters(None).await?,
        None if p.divisions.is_empty() => Vec::new(),
        None => st.store.list_filters(Some(&p.divisions)).await?,
    };
    Ok(Json(q.page().apply(all, |f| f.id.0)?))
}

/// `POST /api/filters` (admin; manager of the division).
#[utoipa::path(post, path = "/api/filters", tag = "filters", request_body = EventFilterSpec, responses((status = 201, description = "Created", body = EventFilter), ErrorResponses))]
pub async fn create_filter(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(spec): JsonBody<EventFilterSpec>,
) -> Result<(StatusCode, Json<EventFilter>), ApiError> {
    require_role(&p, Role::Manager)?;
    check_spec(&st, &p, &spec).await?;
    let f = st.store.create_filter(&spec).await?;
    audit(
        &st,
        &p,
        "filter.create",
        format!("filter:{}", f.id),
        serde_json::json!({ "division_id": f.spec.division_id, "name": f.spec.name }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(f)))
}

/// `GET /api/filters/{id}`.
#[utoipa::path(get, path = "/api/filters/{id}", tag = "filters", params(("id" = i64, Path, description = "filter id")), responses((status = 200, description = "The filter", body = EventFilter), ErrorResponses))]
pub async fn get_filter(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<EventFilter>, ApiError> {
    let id = FilterId(parse_id(&raw, "filter")?);
    Ok(Json(visible_filter(&st, &p, id).await?))
}

/// `PUT /api/filters/{id}` (admin; manager of its division and of the target division).
#[utoipa::path(put, path = "/api/filters/{id}", tag = "filters", params(("id" = i64, Path, description = "filter id")), request_body = EventFilterSpec, responses((status = 200, description = "Updated (hits kept)", body = EventFilter), ErrorResponses))]
pub async fn update_filter(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
    JsonBody(spec): JsonBody<EventFilterSpec>,
) -> Result<Json<EventFilter>, ApiError> {
    require_role(&p, Role::Manager)?;
    let id = FilterId(parse_id(&raw, "filter")?);
    visible_filter(&st, &p, id).await?;
    check_spec(&st, &p, &spec).await?;
    let f = st.store.update_filter(id, &spec).await?;
    audit(
        &st,
        &p,
        "filter.update",
        format!("filter:{id}"),
        serde_json::json!({ "division_id": f.spec.division_id, "name": f.spec.name }),
    )
    .await?;
    Ok(Json(f))
}

/// `DELETE /api/filters/{id}` (admin; manager of its division).
#[utoipa::path(delete, path = "/api/filters/{id}", tag = "filters", params(("id" = i64, Path, description = "filter id")), responses((status = 204, description = "Deleted"), ErrorResponses))]
pub async fn delete_filter(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_role(&p, Role::Manager)?;
    let id = FilterId(parse_id(&raw, "filter")?);
    let f = visible_filter(&st, &p, id).await?;
    st.store.delete_filter(id).await?;
    audit(
        &st,
        &p,
        "filter.delete",
        format!("filter:{id}"),
        serde_json::json!({ "division_id": f.spec.division_id }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/filters/{id}/reset` (admin; manager of its division): hits back to zero.
#[utoipa::path(post, path = "/api/filters/{id}/reset", tag = "filters", params(("id" = i64, Path, description = "filter id")), responses((status = 200, description = "The filter with zero hits", body = EventFilter), ErrorResponses))]
pub async fn reset_filter(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<EventFilter>, ApiError> {
    require_role(&p, Role::Manager)?;
    let id = FilterId(parse_id(&raw, "filter")?);
    let before = visible_filter(&st, &p, id).await?;
    st.store.reset_filter_hits(id).await?;
    audit(
        &st,
        &p,
        "filter.reset",
        format!("filter:{id}"),
        serde_json::json!({ "division_id": before.spec.division_id, "hits_before": before.hits }),
    )
    .await?;
    Ok(Json(st.store.get_filter(id).await?))
}
