//! Sensors: their configuration, credentials (configuration bundle) and status history.
//!
//! Everybody reads the sensors of their divisions (admins: all). Admins and managers of the
//! sensor's division create, change and download bundles; deleting also needs the setting
//! `managers_may_delete_sensors` for managers. Sensors of other divisions answer 404.
//!
//! These routes share `/api/sensors/…` with the sensor API (`/api/sensors/self`,
//! `/api/sensors/status`); sensor ids are numbers, so the two never collide.

use super::openapi::ErrorResponses;
use super::page::{DivisionPageQuery, Paged, QueryParams};
use super::principal::{Principal, require_role};
use super::{JsonBody, audit, parse_id};
use crate::error::ApiError;
use crate::server::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use honeysens_core::Error;
use honeysens_core::ids::{DivisionId, SensorId};
use honeysens_core::model::{
    Role, Sensor, SensorAuthMode, SensorSpec, ServerEndpoint, StatusReport,
};
use honeysens_core::pki;
use honeysens_core::protocol::{BUNDLE_VERSION, SensorBundle, SensorCredentials};
use honeysens_core::time::now;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Most status reports per request.
pub const MAX_STATUS_REPORTS: u32 = 1000;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sensors, create_sensor))
        .routes(routes!(get_sensor, update_sensor, delete_sensor))
        .routes(routes!(sensor_config))
        .routes(routes!(sensor_status))
}

/// `GET /api/sensors` query.
pub type SensorQuery = DivisionPageQuery;

/// `POST /api/sensors` answer: the sensor and its bundle, whose credentials are shown only here
/// and in later bundle downloads (which replace them).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedSensor {
    /// The new sensor.
    pub sensor: Sensor,
    /// Its configuration bundle.
    pub bundle: SensorBundle,
}

/// `GET /api/sensors/{id}/status` query.
#[derive(Debug, Default, Deserialize, Serialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// Newest reports to return, 1 to 1000 (default 20).
    #[param(minimum = 1, maximum = 1000)]
    #[serde(default)]
    pub limit: Option<u32>,
}

/// Proxy passwords are secrets for the sensor only: never in management answers.
fn redact(mut s: Sensor) -> Sensor {
    if let Some(p) = s.spec.proxy.as_mut() {
        p.password = None;
    }
    s
}

/// Loads a sensor the caller can see; others' sensors are "not found".
async fn visible_sensor(st: &AppState, p: &Principal, id: SensorId) -> Result<Sensor, ApiError> {
    let sensor = st.store.get_sensor(id).await?;
    if !p.sees(sensor.spec.division_id) {
        return Err(Error::not_found("sensor").into());
    }
    Ok(sensor)
}

/// A division the caller may put sensors into: admins any, managers their own.
fn writable_division(p: &Principal, division: DivisionId) -> Result<(), ApiError> {
    if p.sees(division) {
        Ok(())
    } else {
        Err(Error::invalid("division_id", "not_found", "no such division").into())
    }
}

/// `GET /api/sensors`.
#[utoipa::path(get, path = "/api/sensors", tag = "sensors", params(DivisionPageQuery), responses((status = 200, description = "The caller's sensors", body = Paged<Sensor>), ErrorResponses))]
pub async fn list_sensors(
    State(st): State<AppState>,
    p: Principal,
    QueryParams(q): QueryParams<SensorQuery>,
) -> Result<Json<Paged<Sensor>>, ApiError> {
    let visible: Vec<DivisionId> = match q.division_id.map(DivisionId) {
        Some(d) if p.sees(d) => vec![d],
        Some(_) => Vec::new(),
        None if p.all_divisions => Vec::new(),
        None => p.divisions.clone(),
    };
    let all = if q.division_id.is_none() && p.all_divisions {
        st.store.list_sensors(None).await?
    } else if visible.is_empty() {
        Vec::new()
    } else {
        st.store.list_sensors(Some(&visible)).await?
    };
    let mut paged = q.page().apply(all, |s| s.id.0)?;
    paged.items = paged.items.into_iter().map(redact).collect();
    Ok(Json(paged))
}

/// `POST /api/sensors` (admin; manager in their divisions): creates the sensor and issues its
/// credentials.
#[utoipa::path(post, path = "/api/sensors", tag = "sensors", request_body = SensorSpec, responses((status = 201, description = "Created, with the bundle", body = CreatedSensor), ErrorResponses))]
pub async fn create_sensor(
    State(st): State<AppState>,
    p: Principal,
    uri: Uri,
    headers: HeaderMap,
    JsonBody(spec): JsonBody<SensorSpec>,
) -> Result<(StatusCode, Json<CreatedSensor>), ApiError> {
    require_role(&p, Role::Manager)?;
    spec.validate()?;
    writable_division(&p, spec.division_id)?;
    let sensor = st.store.create_sensor(&spec).await?;
    let bundle = issue_bundle(&st, &sensor, &uri, &headers).await?;
    audit(
        &st,
        &p,
        "sensor.create",
        format!("sensor:{}", sensor.id),
        serde_json::json!({ "name": sensor.spec.name, "division_id": sensor.spec.division_id, "auth": sensor.spec.auth }),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSensor {
            sensor: redact(sensor),
            bundle,
        }),
    ))
}

/// `GET /api/sensors/{id}`.
#[utoipa::path(get, path = "/api/sensors/{id}", tag = "sensors", params(("id" = i64, Path, description = "sensor id")), responses((status = 200, description = "The sensor", body = Sensor), ErrorResponses))]
pub async fn get_sensor(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<Sensor>, ApiError> {
    let id = SensorId(parse_id(&raw, "sensor")?);
    Ok(Json(redact(visible_sensor(&st, &p, id).await?)))
}

/// `PUT /api/sensors/{id}` (admin; manager of its division, who may move it only into
/// another of their divisions). An absent proxy password keeps the stored one. Changes reach
/// the sensor with its next poll.
#[utoipa::path(put, path = "/api/sensors/{id}", tag = "sensors", params(("id" = i64, Path, description = "sensor id")), request_body = SensorSpec, responses((status = 200, description = "Updated", body = Sensor), ErrorResponses))]
pub async fn update_sensor(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
    JsonBody(mut spec): JsonBody<SensorSpec>,
) -> Result<Json<Sensor>, ApiError> {
    require_role(&p, Role::Manager)?;
    let id = SensorId(parse_id(&raw, "sensor")?);
    let old = visible_sensor(&st, &p, id).await?;
    spec.validate()?;
    writable_division(&p, spec.division_id)?;
    if let (Some(new), Some(old)) = (spec.proxy.as_mut(), old.spec.proxy.as_ref())
        && new.password.is_none()
        && new.user == old.user
    {
        new.password.clone_from(&old.password);
    }
    let sensor = st.store.update_sensor(id, &spec).await?;
    audit(
        &st,
        &p,
        "sensor.update",
        format!("sensor:{id}"),
        serde_json::json!({ "name": sensor.spec.name, "division_id": sensor.spec.division_id }),
    )
    .await?;
    Ok(Json(redact(sensor)))
}

/// `DELETE /api/sensors/{id}` (admin; manager of its division when the settings allow).
/// Revokes its certificates; its events go with it.
#[utoipa::path(delete, path = "/api/sensors/{id}", tag = "sensors", params(("id" = i64, Path, description = "sensor id")), responses((status = 204, description = "Deleted"), ErrorResponses))]
pub async fn delete_sensor(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_role(&p, Role::Manager)?;
    if p.role != Role::Admin && !st.store.get_settings().await?.managers_may_delete_sensors {
        return Err(ApiError::forbidden(
            "auth.forbidden",
            "only admins may delete sensors",
        ));
    }
    let id = SensorId(parse_id(&raw, "sensor")?);
    let sensor = visible_sensor(&st, &p, id).await?;
    st.store.delete_sensor(id).await?;
    reload_crl(&st).await;
    audit(
        &st,
        &p,
        "sensor.delete",
        format!("sensor:{id}"),
        serde_json::json!({ "name": sensor.spec.name }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/sensors/{id}/config` (admin; manager of its division): the configuration
/// bundle with fresh credentials. Each download replaces the sensor's credentials (earlier
/// certificates are revoked, an HMAC secret is replaced), so a lost bundle is disabled by
/// downloading a new one.
#[utoipa::path(get, path = "/api/sensors/{id}/config", tag = "sensors", params(("id" = i64, Path, description = "sensor id")), responses((status = 200, description = "The bundle (secret)", body = SensorBundle), ErrorResponses))]
pub async fn sensor_config(
    State(st): State<AppState>,
    p: Principal,
    uri: Uri,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Result<([(header::HeaderName, &'static str); 1], Json<SensorBundle>), ApiError> {
    require_role(&p, Role::Manager)?;
    let id = SensorId(parse_id(&raw, "sensor")?);
    let sensor = visible_sensor(&st, &p, id).await?;
    let earlier = st.store.list_certificates(id).await?;
    let bundle = issue_bundle(&st, &sensor, &uri, &headers).await?;
    let at = now();
    let mut revoked = 0;
    for cert in earlier.iter().filter(|c| c.revoked_at.is_none()) {
        st.store.revoke_certificate(&cert.serial, at).await?;
        revoked += 1;
    }
    // A GET that changes credentials: the middleware only invalidates after other methods.
    st.cache.invalidate();
    if revoked > 0 {
        reload_crl(&st).await;
    }
    audit(
        &st,
        &p,
        "sensor.credentials_issued",
        format!("sensor:{id}"),
        serde_json::json!({ "auth": sensor.spec.auth, "revoked_certificates": revoked }),
    )
    .await?;
    // A secret: keep it out of caches.
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(bundle)))
}

/// `GET /api/sensors/{id}/status`: the newest status reports, newest first.
#[utoipa::path(get, path = "/api/sensors/{id}/status", tag = "sensors", params(("id" = i64, Path, description = "sensor id"), StatusQuery), responses((status = 200, description = "Reports, newest first", body = Vec<StatusReport>), ErrorResponses))]
pub async fn sensor_status(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
    QueryParams(q): QueryParams<StatusQuery>,
) -> Result<Json<Vec<StatusReport>>, ApiError> {
    let id = SensorId(parse_id(&raw, "sensor")?);
    let limit = q.limit.unwrap_or(20);
    if !(1..=MAX_STATUS_REPORTS).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            "out_of_range",
            format!("must be 1 to {MAX_STATUS_REPORTS}"),
        )
        .into());
    }
    visible_sensor(&st, &p, id).await?;
    Ok(Json(st.store.list_status(id, limit).await?))
}

/// New credentials for `sensor` and the bundle carrying them.
async fn issue_bundle(
    st: &AppState,
    sensor: &Sensor,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<SensorBundle, ApiError> {
    let credentials = match sensor.spec.auth {
        SensorAuthMode::Certificate => {
            let issued = st
                .ca
                .issue_sensor(sensor.id, pki::SENSOR_CERT_DAYS)
                .map_err(Error::from)?;
            st.store.record_certificate(&issued.record).await?;
            SensorCredentials::Certificate {
                cert_pem: issued.cert_pem,
                key_pem: issued.key_pem,
                not_after: issued.record.not_after,
            }
        }
        SensorAuthMode::Hmac => {
            let secret = hex::encode(rand::random::<[u8; 32]>());
            st.store.set_sensor_secret(sensor.id, Some(&secret)).await?;
            SensorCredentials::Hmac { secret }
        }
    };
    let settings = st.store.get_settings().await?;
    let server = sensor
        .spec
        .server_endpoint
        .clone()
        .or_else(|| st.public_endpoint.clone())
        .unwrap_or_else(|| endpoint_from_request(uri, headers));
    Ok(SensorBundle {
        format: BUNDLE_VERSION,
        sensor_id: sensor.id,
        name: sensor.spec.name.clone(),
        server,
        ca_pem: st.ca.cert_pem().to_owned(),
        credentials,
        proxy: sensor.spec.proxy.clone(),
        network: sensor.spec.network.clone(),
        mac: sensor.spec.mac.clone(),
        update_interval: sensor
            .spec
            .update_interval
            .unwrap_or(settings.update_interval),
    })
}

/// The host and port the administrator reached us at, used when no public endpoint is
/// configured: the URI authority (HTTP/2) or the `Host` header (HTTP/1.1).
fn endpoint_from_request(uri: &Uri, headers: &HeaderMap) -> ServerEndpoint {
    let authority = uri.authority().cloned().or_else(|| {
        headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .and_then(|h| h.parse::<Authority>().ok())
    });
    match authority {
        Some(a) => ServerEndpoint {
            host: a.host().trim_matches(['[', ']']).to_owned(),
            port: a.port_u16().unwrap_or(443),
        },
        None => ServerEndpoint {
            host: "localhost".to_owned(),
            port: 443,
        },
    }
}

/// Rebuilds the CRL after revocations. Failure is logged, not fatal: every sensor request
/// also checks revocation in the store.
async fn reload_crl(st: &AppState) {
    if let Err(e) = st.tls.reload().await {
        tracing::warn!(error = %e, "CRL reload after revocation failed");
    }
}
