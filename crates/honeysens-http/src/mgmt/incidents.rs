//! Incidents: events of one source grouped across sensors, listed newest first, with their
//! events, and changed in bulk (status and archive flag cascade to their events).
//!
//! Visibility and roles as for events: everybody reads their divisions' incidents, admins and
//! managers change them, incidents of other divisions are "not found".

use super::events::{CursorPage, EventPaging, check_bulk_ids, check_comment_rule, parse_time};
use super::openapi::ErrorResponses;
use super::page::QueryParams;
use super::principal::{Principal, require_role};
use super::{JsonBody, audit, parse_id};
use crate::error::ApiError;
use crate::server::AppState;
use axum::Json;
use axum::extract::{Path, State};
use honeysens_core::Error;
use honeysens_core::error::ValidationErrors;
use honeysens_core::ids::{DivisionId, IncidentId};
use honeysens_core::model::{Event, EventQuery, EventStatus, Incident, IncidentQuery, Role};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_incidents))
        .routes(routes!(bulk_update_incidents))
        .routes(routes!(get_incident))
        .routes(routes!(incident_events))
}

/// `GET /api/incidents` conditions (lists comma-separated).
#[derive(Debug, Clone, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentParams {
    /// Division ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub division: Option<String>,
    /// Statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// `false` (default): live incidents; `true`: archived ones; `all`: both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived: Option<String>,
    /// Latest event at or after (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Latest event before (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Source address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl IncidentParams {
    /// The store query within the caller's scope; `None` when the caller sees none of it.
    fn to_query(&self, p: &Principal) -> Result<Option<IncidentQuery>, ApiError> {
        let mut e = ValidationErrors::default();
        let mut divisions = Vec::new();
        let mut statuses = Vec::new();
        for part in self.division.iter().flat_map(|s| s.split(',')) {
            match part.trim().parse() {
                Ok(d) => divisions.push(DivisionId(d)),
                Err(_) => e.add("division", "invalid_value", "must be division ids"),
            }
        }
        for part in self.status.iter().flat_map(|s| s.split(',')) {
            match EventStatus::parse(part.trim()) {
                Ok(s) => statuses.push(s),
                Err(_) => e.add(
                    "status",
                    "invalid_value",
                    format!("unknown status {part:?}"),
                ),
            }
        }
        let archived = match self.archived.as_deref() {
            None | Some("false") => Some(false),
            Some("true") => Some(true),
            Some("all") => None,
            Some(_) => {
                e.add("archived", "invalid_value", "must be true, false or all");
                None
            }
        };
        let source_ip = match self.source.as_deref() {
            None => None,
            Some(s) => match s.trim().parse() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    e.add("source", "invalid_value", "must be an IP address");
                    None
                }
            },
        };
        let from = parse_time(&mut e, "from", &self.from);
        let until = parse_time(&mut e, "until", &self.until);
        e.into_result()?;
        let divisions = if p.all_divisions {
            (!divisions.is_empty()).then_some(divisions)
        } else {
            let allowed: Vec<DivisionId> = if divisions.is_empty() {
                p.divisions.clone()
            } else {
                divisions.into_iter().filter(|d| p.sees(*d)).collect()
            };
            if allowed.is_empty() {
                return Ok(None);
            }
            Some(allowed)
        };
        Ok(Some(IncidentQuery {
            divisions,
            statuses,
            archived,
            from,
            until,
            source_ip,
        }))
    }
}

async fn visible_incident(
    st: &AppState,
    p: &Principal,
    id: IncidentId,
) -> Result<Incident, ApiError> {
    let i = st.store.get_incident(id).await?;
    if !p.sees(i.division_id) {
        return Err(Error::not_found("incident").into());
    }
    Ok(i)
}

/// `GET /api/incidents`: newest activity first (by `last_seen`).
#[utoipa::path(get, path = "/api/incidents", tag = "incidents", params(IncidentParams, EventPaging), responses((status = 200, description = "One page of the caller's incidents", body = CursorPage<Incident>), ErrorResponses))]
pub async fn list_incidents(
    State(st): State<AppState>,
    p: Principal,
    QueryParams(f): QueryParams<IncidentParams>,
    QueryParams(paging): QueryParams<EventPaging>,
) -> Result<Json<CursorPage<Incident>>, ApiError> {
    let page = paging.request()?;
    let Some(q) = f.to_query(&p)? else {
        return Ok(Json(CursorPage::empty()));
    };
    Ok(Json(st.store.list_incidents(&q, &page).await?.into()))
}

/// `GET /api/incidents/{id}`.
#[utoipa::path(get, path = "/api/incidents/{id}", tag = "incidents", params(("id" = i64, Path, description = "incident id")), responses((status = 200, description = "The incident", body = Incident), ErrorResponses))]
pub async fn get_incident(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<Incident>, ApiError> {
    let id = IncidentId(parse_id(&raw, "incident")?);
    Ok(Json(visible_incident(&st, &p, id).await?))
}

/// `GET /api/incidents/{id}/events`: its events (archived or not), paged like `/api/events`.
#[utoipa::path(get, path = "/api/incidents/{id}/events", tag = "incidents", params(("id" = i64, Path, description = "incident id"), EventPaging), responses((status = 200, description = "One page of its events", body = CursorPage<Event>), ErrorResponses))]
pub async fn incident_events(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
    QueryParams(paging): QueryParams<EventPaging>,
) -> Result<Json<CursorPage<Event>>, ApiError> {
    let id = IncidentId(parse_id(&raw, "incident")?);
    let page = paging.request()?;
    let inc = visible_incident(&st, &p, id).await?;
    let q = EventQuery {
        divisions: Some(vec![inc.division_id]),
        incident: Some(id),
        ..Default::default()
    };
    Ok(Json(st.store.list_events(&q, &page).await?.into()))
}

/// `POST /api/incidents/bulk` body.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
pub struct BulkIncidentUpdate {
    /// The incidents.
    pub ids: Vec<IncidentId>,
    /// The change.
    pub update: honeysens_core::model::EventUpdate,
}

/// How many incidents changed.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
pub struct IncidentsUpdated {
    /// Changed incidents.
    pub updated: u64,
}

/// `POST /api/incidents/bulk` (admin, manager): status and archive flag cascade to the
/// incidents' events.
#[utoipa::path(post, path = "/api/incidents/bulk", tag = "incidents", request_body = BulkIncidentUpdate, responses((status = 200, description = "How many incidents changed", body = IncidentsUpdated), ErrorResponses))]
pub async fn bulk_update_incidents(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(body): JsonBody<BulkIncidentUpdate>,
) -> Result<Json<IncidentsUpdated>, ApiError> {
    require_role(&p, Role::Manager)?;
    body.update.validate()?;
    check_bulk_ids(body.ids.len())?;
    if body.ids.is_empty() {
        return Err(Error::invalid("ids", "required", "name at least one incident").into());
    }
    check_comment_rule(&st, body.update.status.is_some(), &body.update.comment).await?;
    let query = IncidentQuery {
        divisions: (!p.all_divisions).then(|| p.divisions.clone()),
        ..Default::default()
    };
    let updated = if query.divisions.as_ref().is_some_and(Vec::is_empty) {
        0
    } else {
        st.store
            .update_incidents(&body.ids, &query, &body.update)
            .await?
    };
    audit(
        &st,
        &p,
        "incident.bulk_update",
        "incidents".into(),
        serde_json::json!({
            "count": updated,
            "ids": body.ids,
            "status": body.update.status,
            "archived": body.update.archived,
            "comment_changed": body.update.comment.is_some(),
        }),
    )
    .await?;
    Ok(Json(IncidentsUpdated { updated }))
}
