//! Route handlers: system endpoints (unauthenticated) and the sensor API.

use crate::auth::{AuthMethod, SensorIdentity};
use crate::error::ApiError;
use crate::server::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use honeysens_core::model::StatusReport;
use honeysens_core::pki;
use honeysens_core::protocol::{
    CertificateBundle, PROTOCOL_VERSION, SensorSelf, StatusRequest, StatusResponse,
};
use honeysens_core::time::now;

/// `/api/system/*`: identify, health and the CA certificate.
pub fn system_routes() -> Router<AppState> {
    Router::new()
        .route("/api/system/identify", get(identify))
        .route("/api/system/health", get(health))
        .route("/api/system/ca", get(ca_certificate))
}

/// `/api/sensors/*`: everything a sensor calls; wrapped in [`crate::auth::sensor_auth`].
pub fn sensor_routes() -> Router<AppState> {
    Router::new()
        .route("/api/sensors/self", get(sensor_self))
        .route("/api/sensors/status", post(sensor_status))
}

/// Plain `HoneySens`: lets sensors behind odd proxies and container health checks find us.
async fn identify() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "HoneySens",
    )
}

async fn health(State(st): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    st.store.ping().await?;
    Ok(Json(serde_json::json!({ "status": "ok" })))
}

async fn ca_certificate(State(st): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        st.ca.cert_pem().to_owned(),
    )
}

/// JSON 404 for unknown routes.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "route.not_found", "no such endpoint")
}

/// JSON 405 for a known route called with a method it does not take. (axum still sets the
/// `Allow` header.)
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "route.method_not_allowed",
        "this endpoint does not take this method",
    )
}

async fn sensor_self(
    State(st): State<AppState>,
    Extension(id): Extension<SensorIdentity>,
) -> Result<Json<SensorSelf>, ApiError> {
    let sensor = st.store.get_sensor(id.sensor_id).await?;
    Ok(Json(SensorSelf {
        sensor_id: sensor.id,
        name: sensor.spec.name,
        division_id: sensor.spec.division_id,
        auth: sensor.spec.auth,
    }))
}

async fn sensor_status(
    State(st): State<AppState>,
    Extension(id): Extension<SensorIdentity>,
    body: axum::body::Bytes,
) -> Result<Json<StatusResponse>, ApiError> {
    let req: StatusRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("request.malformed", format!("invalid status report: {e}"))
    })?;
    let received = now();
    let report = StatusReport {
        sensor_id: id.sensor_id,
        timestamp: req.timestamp,
        received_at: received,
        state: req.state,
        addresses: req.addresses,
        free_memory_mb: req.free_memory_mb,
        disk_total_mb: req.disk_total_mb,
        disk_used_mb: req.disk_used_mb,
        agent_version: req.agent_version,
        firmware_version: req.firmware_version,
        services: req.services,
        spool_depth: req.spool_depth,
    };
    st.store.record_status(&report).await?;
    let sensor = st.store.get_sensor(id.sensor_id).await?;
    let settings = st.store.get_settings().await?;
    let certificate = match &id.method {
        AuthMethod::ClientCertificate { not_after, .. }
        | AuthMethod::ProxyCertificate { not_after, .. }
            if pki::needs_renewal(*not_after, received) =>
        {
            Some(renew(&st, &id, req.csr.as_deref()).await?)
        }
        _ => None,
    };
    Ok(Json(StatusResponse {
        protocol: PROTOCOL_VERSION,
        sensor_id: id.sensor_id,
        server_time: received,
        clock_skew_ms: report.clock_skew_ms(),
        update_interval: sensor
            .spec
            .update_interval
            .unwrap_or(settings.update_interval),
        certificate,
    }))
}

/// Issues the sensor's next certificate; the current one stays valid until it expires, so the
/// agent can switch over whenever it has stored the new one.
async fn renew(
    st: &AppState,
    id: &SensorIdentity,
    csr: Option<&str>,
) -> Result<CertificateBundle, ApiError> {
    let (record, key_pem) = match csr {
        Some(csr) => (
            st.ca
                .sign_sensor_csr(id.sensor_id, csr, pki::SENSOR_CERT_DAYS)
                .map_err(honeysens_core::Error::from)?,
            None,
        ),
        None => {
            let issued = st
                .ca
                .issue_sensor(id.sensor_id, pki::SENSOR_CERT_DAYS)
                .map_err(honeysens_core::Error::from)?;
            (issued.record, Some(issued.key_pem))
        }
    };
    st.store.record_certificate(&record).await?;
    tracing::info!(sensor = %id.sensor_id, serial = %record.serial, "renewed sensor certificate");
    Ok(CertificateBundle {
        cert_pem: record.cert_pem,
        key_pem,
        not_after: record.not_after,
    })
}
