//! Route handlers: system endpoints (unauthenticated) and the sensor API.

use crate::auth::{AuthMethod, SensorIdentity};
use crate::error::ApiError;
use crate::server::AppState;
use axum::extract::Path;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use honeysens_core::ids::FirmwareId;
use honeysens_core::model::{NewEvent, Sensor, Settings, StatusReport};
use honeysens_core::pki;
use honeysens_core::protocol::{
    CertificateBundle, DesiredState, EventUpload, EventUploadResult, FirmwareTarget,
    MAX_UPLOAD_EVENTS, PROTOCOL_VERSION, RejectedEvent, SensorSelf, ServiceTarget, StatusRequest,
    StatusResponse,
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
        .route("/api/sensors/events", post(sensor_events))
        .route("/api/sensors/firmware/{id}", get(sensor_firmware))
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

async fn sensor_self(Extension(id): Extension<SensorIdentity>) -> Json<SensorSelf> {
    let sensor = id.sensor;
    Json(SensorSelf {
        sensor_id: sensor.id,
        name: sensor.spec.name,
        division_id: sensor.spec.division_id,
        auth: sensor.spec.auth,
    })
}

async fn sensor_status(
    State(st): State<AppState>,
    Extension(id): Extension<SensorIdentity>,
    body: axum::body::Bytes,
) -> Result<Json<StatusResponse>, ApiError> {
    let req: StatusRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("request.malformed", format!("invalid status report: {e}"))
    })?;
    Ok(Json(status(&st, &id, req).await?))
}

/// Handles a status report: stores it and answers with the desired state (and a renewed
/// certificate when the current one nears expiry). Shared by HTTPS and in-process transports.
pub async fn status(
    st: &AppState,
    id: &SensorIdentity,
    req: StatusRequest,
) -> Result<StatusResponse, ApiError> {
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
    let skew = report.clock_skew_ms();
    st.status_writer.record(report).await?;
    let sensor = &id.sensor;
    let settings = crate::pipeline::settings(st).await?;
    let certificate = match &id.method {
        AuthMethod::ClientCertificate { not_after, .. }
        | AuthMethod::ProxyCertificate { not_after, .. }
            if pki::needs_renewal(*not_after, received) =>
        {
            Some(renew(st, id, req.csr.as_deref()).await?)
        }
        _ => None,
    };
    let config = desired_state(st, sensor, &settings).await?;
    Ok(StatusResponse {
        protocol: PROTOCOL_VERSION,
        sensor_id: id.sensor_id,
        server_time: received,
        clock_skew_ms: skew,
        update_interval: sensor
            .spec
            .update_interval
            .unwrap_or(settings.update_interval),
        certificate,
        config: Some(config),
    })
}

/// What the sensor should be doing: its configuration with global defaults filled in, its
/// firmware target and the services assigned to it (the pinned revision, else the newest, for
/// every architecture the service has).
async fn desired_state(
    st: &AppState,
    sensor: &Sensor,
    settings: &Settings,
) -> Result<DesiredState, ApiError> {
    let firmware = match sensor.spec.firmware_id {
        Some(fid) => match st.store.get_firmware(fid).await {
            Ok(fw) => Some(FirmwareTarget {
                id: fw.id,
                version: fw.spec.version,
                sha256: fw.spec.sha256,
                size: fw.spec.size,
            }),
            // Deleted meanwhile: the store resets the override; nothing to target.
            Err(honeysens_core::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let mut services = Vec::new();
    for a in st.store.list_assignments(Some(sensor.id)).await? {
        let service = st.store.get_service(a.service_id).await?;
        let mut seen = std::collections::BTreeSet::new();
        // Newest first: the first revision per architecture (matching the pin) wins.
        for rev in st.store.list_service_revisions(a.service_id).await? {
            let r = rev.spec;
            if a.revision.as_ref().is_some_and(|pin| *pin != r.revision)
                || !seen.insert(r.architecture)
            {
                continue;
            }
            services.push(ServiceTarget {
                name: service.spec.name.clone(),
                repository: service.spec.repository.clone(),
                revision: r.revision,
                architecture: r.architecture,
                image_digest: r.image_digest,
                port_assignment: r.port_assignment,
                catch_all: r.catch_all,
                raw_network_access: r.raw_network_access,
            });
        }
    }
    Ok(DesiredState {
        network: sensor.spec.network.clone(),
        mac: sensor.spec.mac.clone(),
        proxy: sensor.spec.proxy.clone(),
        server: sensor.spec.server_endpoint.clone(),
        service_network: sensor
            .spec
            .service_network
            .unwrap_or(settings.service_network),
        firmware,
        services,
    })
}

async fn sensor_events(
    State(st): State<AppState>,
    Extension(id): Extension<SensorIdentity>,
    body: axum::body::Bytes,
) -> Result<Json<EventUploadResult>, ApiError> {
    let upload: EventUpload = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("request.malformed", format!("invalid event upload: {e}"))
    })?;
    Ok(Json(upload_events(&st, &id, upload.events).await?))
}

/// Validates each event on its own and passes the valid ones as one batch through the event
/// pipeline (filters, store, incidents, alerts; idempotent on the event uid). Events a filter
/// drops count as accepted: the sensor must not send them again. Shared by HTTPS and
/// in-process transports.
pub async fn upload_events(
    st: &AppState,
    id: &SensorIdentity,
    events: Vec<serde_json::Value>,
) -> Result<EventUploadResult, ApiError> {
    if events.len() > MAX_UPLOAD_EVENTS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request.too_large",
            format!("at most {MAX_UPLOAD_EVENTS} events per upload"),
        ));
    }
    let division = id.sensor.spec.division_id;
    let mut result = EventUploadResult::default();
    let mut batch = Vec::with_capacity(events.len());
    for (index, value) in events.into_iter().enumerate() {
        let uid = value
            .get("uid")
            .and_then(|u| u.as_str())
            .and_then(|u| u.parse::<uuid::Uuid>().ok());
        let reject = |code: &str, message: String| RejectedEvent {
            index,
            uid,
            code: code.to_owned(),
            message,
        };
        let mut event: NewEvent = match serde_json::from_value(value) {
            Ok(e) => e,
            Err(e) => {
                result
                    .rejected
                    .push(reject("event.malformed", e.to_string()));
                continue;
            }
        };
        if event.data.sensor_id != id.sensor_id {
            result.rejected.push(reject(
                "event.wrong_sensor",
                "sensor_id is not the authenticated sensor".to_owned(),
            ));
            continue;
        }
        if let Err(e) = event.validate() {
            result.rejected.push(reject(&e.code(), e.to_string()));
            continue;
        }
        honeysens_core::taxonomy::classify(&mut event.data);
        batch.push(event);
    }
    if !batch.is_empty() {
        let out = crate::pipeline::ingest(st, division, batch).await?;
        result.accepted = out
            .report
            .inserted
            .into_iter()
            .map(|(uid, _)| uid)
            .collect();
        result.accepted.extend(out.dropped);
        result.duplicates = out.report.duplicates;
    }
    Ok(result)
}

/// `GET /api/sensors/firmware/{id}`: a firmware image for the sensor to install.
async fn sensor_firmware(
    State(st): State<AppState>,
    Path(raw): Path<String>,
) -> Result<axum::response::Response, ApiError> {
    let id = FirmwareId(crate::mgmt::parse_id(&raw, "firmware")?);
    let fw = st.store.get_firmware(id).await?;
    crate::mgmt::platforms::firmware_response(&st, &fw).await
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
