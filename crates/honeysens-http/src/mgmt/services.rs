//! Honeypot services, their revisions and the sensor × service assignment matrix.
//!
//! Services are global: every logged-in user reads them; only admins remove services and
//! revisions (uploads: [`super::packages`]); the image blobs of deleted revisions go when no
//! other revision uses them. Assignments are division-scoped through
//! their sensor: admins change any, managers those of sensors of their divisions; everybody
//! reads the assignments of the sensors they can see. Role is checked first (403), then the
//! sensor's division (404 `sensor.not_found` for non-members, as for a missing sensor).

use super::openapi::ErrorResponses;
use super::page::{PageQuery, Paged, QueryParams};
use super::principal::{Principal, require_role};
use super::{JsonBody, audit, parse_id};
use crate::error::ApiError;
use crate::server::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use honeysens_core::Error;
use honeysens_core::ids::{DivisionId, SensorId, ServiceId, ServiceRevisionId};
use honeysens_core::model::{Role, Sensor, Service, ServiceAssignment, ServiceRevision};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_services))
        .routes(routes!(get_service, delete_service))
        .routes(routes!(list_service_revisions))
        .routes(routes!(delete_service_revision))
        .routes(routes!(list_assignments))
        .routes(routes!(assign_service, unassign_service))
}

/// `GET /api/services` (any user).
#[utoipa::path(get, path = "/api/services", tag = "services", params(PageQuery), responses((status = 200, description = "Services", body = Paged<Service>), ErrorResponses))]
pub async fn list_services(
    State(st): State<AppState>,
    _p: Principal,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Json<Paged<Service>>, ApiError> {
    Ok(Json(
        page.apply(st.store.list_services().await?, |s| s.id.0)?,
    ))
}

/// `GET /api/services/{id}` (any user).
#[utoipa::path(get, path = "/api/services/{id}", tag = "services", params(("id" = i64, Path, description = "service id")), responses((status = 200, description = "The service", body = Service), ErrorResponses))]
pub async fn get_service(
    State(st): State<AppState>,
    _p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<Service>, ApiError> {
    let id = ServiceId(parse_id(&raw, "service")?);
    Ok(Json(st.store.get_service(id).await?))
}

/// `DELETE /api/services/{id}` (admin): the service with its revisions and assignments.
#[utoipa::path(delete, path = "/api/services/{id}", tag = "services", params(("id" = i64, Path, description = "service id")), responses((status = 204, description = "Deleted, with its revisions and assignments"), ErrorResponses))]
pub async fn delete_service(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_role(&p, Role::Admin)?;
    let id = ServiceId(parse_id(&raw, "service")?);
    let service = st.store.get_service(id).await?;
    // Recorded so the audit log says which sensors lost the service (the store cascades).
    let sensors: Vec<SensorId> = st
        .store
        .list_assignments(None)
        .await?
        .into_iter()
        .filter(|a| a.service_id == id)
        .map(|a| a.sensor_id)
        .collect();
    let images: Vec<String> = st
        .store
        .list_service_revisions(id)
        .await?
        .into_iter()
        .map(|r| r.spec.image_digest)
        .collect();
    st.store.delete_service(id).await?;
    super::packages::release_images(&st, &images).await;
    audit(
        &st,
        &p,
        "service.delete",
        format!("service:{id}"),
        serde_json::json!({ "name": service.spec.name, "unassigned_sensors": sensors }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/services/{id}/revisions` (any user): newest first.
#[utoipa::path(get, path = "/api/services/{id}/revisions", tag = "services", params(("id" = i64, Path, description = "service id")), responses((status = 200, description = "Revisions, newest first", body = Vec<ServiceRevision>), ErrorResponses))]
pub async fn list_service_revisions(
    State(st): State<AppState>,
    _p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<Vec<ServiceRevision>>, ApiError> {
    let id = ServiceId(parse_id(&raw, "service")?);
    Ok(Json(st.store.list_service_revisions(id).await?))
}

/// `DELETE /api/services/{id}/revisions/{revision_id}` (admin). 404 unless the revision
/// belongs to the service; 409 while assignments pin its label and no other architecture's
/// revision carries that label (they would pin a revision that no longer exists).
#[utoipa::path(delete, path = "/api/services/{id}/revisions/{revision_id}", tag = "services", params(("id" = i64, Path, description = "service id"), ("revision_id" = i64, Path, description = "service revision id")), responses((status = 204, description = "Deleted"), ErrorResponses))]
pub async fn delete_service_revision(
    State(st): State<AppState>,
    p: Principal,
    Path((raw, raw_revision)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require_role(&p, Role::Admin)?;
    let id = ServiceId(parse_id(&raw, "service")?);
    let revision_id = ServiceRevisionId(parse_id(&raw_revision, "service_revision")?);
    let revisions = st.store.list_service_revisions(id).await?;
    let Some(revision) = revisions.iter().find(|r| r.id == revision_id) else {
        return Err(Error::not_found("service_revision").into());
    };
    let label = &revision.spec.revision;
    let label_remains = revisions
        .iter()
        .any(|r| r.id != revision_id && &r.spec.revision == label);
    if !label_remains {
        let pinned = st
            .store
            .list_assignments(None)
            .await?
            .iter()
            .filter(|a| a.service_id == id && a.revision.as_ref() == Some(label))
            .count();
        if pinned > 0 {
            return Err(Error::conflict(
                "service_revision",
                format!("{pinned} sensor(s) are pinned to revision {label}; unpin them first"),
            )
            .into());
        }
    }
    st.store.delete_service_revision(revision_id).await?;
    super::packages::release_images(&st, std::slice::from_ref(&revision.spec.image_digest)).await;
    audit(
        &st,
        &p,
        "service_revision.delete",
        format!("service_revision:{revision_id}"),
        serde_json::json!({
            "service_id": id,
            "revision": label,
            "architecture": revision.spec.architecture,
        }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/assignments` query.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AssignmentQuery {
    /// Only this sensor (404 `sensor.not_found` if the caller cannot see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor_id: Option<i64>,
}

/// A sensor as a row of the assignment matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MatrixSensor {
    /// The sensor.
    pub id: SensorId,
    /// Its name.
    pub name: String,
    /// Its division.
    pub division_id: DivisionId,
}

/// A service as a column of the assignment matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MatrixService {
    /// The service.
    pub id: ServiceId,
    /// Its name.
    pub name: String,
}

/// `GET /api/assignments` answer: everything a console needs to draw the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssignmentMatrix {
    /// The sensors the caller can see (or the one asked for), by id.
    pub sensors: Vec<MatrixSensor>,
    /// Every service, by name.
    pub services: Vec<MatrixService>,
    /// Assignments of those sensors, by sensor and service.
    pub assignments: Vec<ServiceAssignment>,
}

/// `GET /api/assignments` (any user): the matrix of the sensors the caller can see.
#[utoipa::path(get, path = "/api/assignments", tag = "services", params(AssignmentQuery), responses((status = 200, description = "Visible sensors, all services and their assignments", body = AssignmentMatrix), ErrorResponses))]
pub async fn list_assignments(
    State(st): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<AssignmentQuery>,
) -> Result<Json<AssignmentMatrix>, ApiError> {
    let mut sensors = match q.sensor_id {
        Some(raw) => vec![visible_sensor(&st, &p, SensorId(raw)).await?],
        None if p.all_divisions => st.store.list_sensors(None).await?,
        None => st.store.list_sensors(Some(&p.divisions)).await?,
    };
    // Defence in depth: the store filter and the rule of `Principal::sees` must agree.
    sensors.retain(|s| p.sees(s.spec.division_id));
    sensors.sort_by_key(|s| s.id);
    let visible: std::collections::HashSet<SensorId> = sensors.iter().map(|s| s.id).collect();
    let mut assignments = st.store.list_assignments(q.sensor_id.map(SensorId)).await?;
    assignments.retain(|a| visible.contains(&a.sensor_id));
    let services = st
        .store
        .list_services()
        .await?
        .into_iter()
        .map(|s| MatrixService {
            id: s.id,
            name: s.spec.name,
        })
        .collect();
    let sensors = sensors
        .into_iter()
        .map(|s| MatrixSensor {
            id: s.id,
            name: s.spec.name,
            division_id: s.spec.division_id,
        })
        .collect();
    Ok(Json(AssignmentMatrix {
        sensors,
        services,
        assignments,
    }))
}

/// `PUT /api/sensors/{id}/services/{service_id}` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AssignService {
    /// Revision label to pin; `null` runs the newest revision. Must be a revision of the
    /// service (422 `validation.failed` otherwise).
    #[serde(default)]
    pub revision: Option<String>,
}

/// `PUT /api/sensors/{id}/services/{service_id}` (admin; manager of the sensor's division):
/// assigns the service or changes its pinned revision.
#[utoipa::path(put, path = "/api/sensors/{id}/services/{service_id}", tag = "services", params(("id" = i64, Path, description = "sensor id"), ("service_id" = i64, Path, description = "service id")), request_body = AssignService, responses((status = 200, description = "Assigned", body = ServiceAssignment), ErrorResponses))]
pub async fn assign_service(
    State(st): State<AppState>,
    p: Principal,
    Path((raw, raw_service)): Path<(String, String)>,
    JsonBody(req): JsonBody<AssignService>,
) -> Result<Json<ServiceAssignment>, ApiError> {
    require_role(&p, Role::Manager)?;
    let sensor = visible_sensor(&st, &p, SensorId(parse_id(&raw, "sensor")?)).await?;
    let service_id = ServiceId(parse_id(&raw_service, "service")?);
    let service = st.store.get_service(service_id).await?;
    if let Some(label) = &req.revision {
        let known = st
            .store
            .list_service_revisions(service_id)
            .await?
            .iter()
            .any(|r| &r.spec.revision == label);
        if !known {
            return Err(Error::invalid(
                "revision",
                "unknown_revision",
                "the service has no revision with this label",
            )
            .into());
        }
    }
    let assignment = ServiceAssignment {
        sensor_id: sensor.id,
        service_id,
        revision: req.revision,
    };
    st.store.assign_service(&assignment).await?;
    audit(
        &st,
        &p,
        "service.assign",
        format!("sensor:{}", sensor.id),
        serde_json::json!({
            "service_id": service_id,
            "service": service.spec.name,
            "revision": assignment.revision,
        }),
    )
    .await?;
    Ok(Json(assignment))
}

/// `DELETE /api/sensors/{id}/services/{service_id}` (admin; manager of the sensor's
/// division); 404 `assignment.not_found` when the service is not assigned.
#[utoipa::path(delete, path = "/api/sensors/{id}/services/{service_id}", tag = "services", params(("id" = i64, Path, description = "sensor id"), ("service_id" = i64, Path, description = "service id")), responses((status = 204, description = "Unassigned"), ErrorResponses))]
pub async fn unassign_service(
    State(st): State<AppState>,
    p: Principal,
    Path((raw, raw_service)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require_role(&p, Role::Manager)?;
    let sensor = visible_sensor(&st, &p, SensorId(parse_id(&raw, "sensor")?)).await?;
    let service_id = ServiceId(parse_id(&raw_service, "service")?);
    st.store.unassign_service(sensor.id, service_id).await?;
    audit(
        &st,
        &p,
        "service.unassign",
        format!("sensor:{}", sensor.id),
        serde_json::json!({ "service_id": service_id }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Loads a sensor the caller may see; a sensor of another division answers exactly like a
/// missing one (404 `sensor.not_found`). `require_division` is not used because it names the
/// entity `division`, which would tell the caller the sensor exists.
async fn visible_sensor(st: &AppState, p: &Principal, id: SensorId) -> Result<Sensor, ApiError> {
    let sensor = st.store.get_sensor(id).await?;
    if p.sees(sensor.spec.division_id) {
        Ok(sensor)
    } else {
        Err(Error::not_found("sensor").into())
    }
}
