//! Messages of the sensor protocol (version [`PROTOCOL_VERSION`]), shared by server and agent.
//!
//! Every message ignores unknown fields, so older agents keep working with newer servers and the
//! other way round; fields added later carry `#[serde(default)]`.

use crate::ids::{DivisionId, FirmwareId, SensorId};
use crate::model::{
    Architecture, NetworkConfig, ProxyConfig, SensorAuthMode, SensorState, ServerEndpoint,
    ServiceStatus,
};
use crate::time::Timestamp;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Version of the sensor protocol described here.
pub const PROTOCOL_VERSION: u32 = 1;

/// `GET /api/sensors/self`: who the server thinks the caller is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorSelf {
    /// The authenticated sensor.
    pub sensor_id: SensorId,
    /// Its name.
    pub name: String,
    /// Its division.
    pub division_id: DivisionId,
    /// How it authenticated.
    pub auth: SensorAuthMode,
}

/// `POST /api/sensors/status`: a sensor's periodic report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRequest {
    /// Sensor clock at sending.
    pub timestamp: Timestamp,
    /// Overall state.
    pub state: SensorState,
    /// Interface addresses.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Free memory, MiB.
    #[serde(default)]
    pub free_memory_mb: u64,
    /// Disk size, MiB.
    #[serde(default)]
    pub disk_total_mb: u64,
    /// Disk used, MiB.
    #[serde(default)]
    pub disk_used_mb: u64,
    /// Agent version.
    pub agent_version: String,
    /// Firmware version.
    #[serde(default)]
    pub firmware_version: Option<String>,
    /// Per-service status.
    #[serde(default)]
    pub services: Vec<ServiceStatus>,
    /// Events waiting in the spool.
    #[serde(default)]
    pub spool_depth: u64,
    /// A PEM certificate signing request, for sensors that keep their own key, used when the
    /// server decides to renew the sensor's certificate.
    #[serde(default)]
    pub csr: Option<String>,
}

/// A certificate handed to a sensor (on renewal).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateBundle {
    /// The new certificate, PEM.
    pub cert_pem: String,
    /// Its key, PEM — absent when the sensor sent a CSR and keeps its own key.
    #[serde(default)]
    pub key_pem: Option<String>,
    /// End of validity.
    pub not_after: Timestamp,
}

impl std::fmt::Debug for CertificateBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateBundle")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &self.key_pem.as_ref().map(|_| "<redacted>"))
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// The answer to a status report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// Protocol version the server speaks.
    pub protocol: u32,
    /// The sensor.
    pub sensor_id: SensorId,
    /// Server clock when answering.
    pub server_time: Timestamp,
    /// Sensor clock minus server clock in ms; reported, never a reason to refuse.
    pub clock_skew_ms: i64,
    /// Poll interval in minutes.
    pub update_interval: u32,
    /// A renewed client certificate, sent ahead of expiry.
    #[serde(default)]
    pub certificate: Option<CertificateBundle>,
    /// The sensor's whole desired state (absent only from servers older than this field).
    #[serde(default)]
    pub config: Option<DesiredState>,
}

/// Everything a sensor should be doing, sent with every poll answer; the agent applies what
/// differs from its current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DesiredState {
    /// Interface configuration.
    #[serde(default)]
    pub network: NetworkConfig,
    /// MAC address override.
    #[serde(default)]
    pub mac: Option<String>,
    /// Proxy towards the server.
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
    /// Where to reach the server from now on (`None`: where it is reaching it now).
    #[serde(default)]
    pub server: Option<ServerEndpoint>,
    /// Network for honeypot containers.
    pub service_network: Ipv4Net,
    /// Firmware the sensor should run, if one is set for it.
    #[serde(default)]
    pub firmware: Option<FirmwareTarget>,
    /// Honeypot services to run: one entry per service and architecture; the agent runs those
    /// of its own architecture and stops everything else.
    #[serde(default)]
    pub services: Vec<ServiceTarget>,
}

/// A firmware revision a sensor should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareTarget {
    /// Revision id (download: `GET /api/sensors/firmware/{id}`).
    pub id: FirmwareId,
    /// Version string.
    pub version: String,
    /// SHA-256 of the image.
    pub sha256: String,
    /// Image size in bytes.
    pub size: u64,
}

/// One honeypot service revision a sensor should run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTarget {
    /// Service name (also the container name suffix).
    pub name: String,
    /// Image repository in the server's registry (`/v2/<repository>/…`).
    #[serde(default)]
    pub repository: String,
    /// Revision label.
    pub revision: String,
    /// Architecture of this image.
    pub architecture: Architecture,
    /// Image digest in the server's registry.
    pub image_digest: String,
    /// Container port (`"2222/tcp"`) → sensor port.
    #[serde(default)]
    pub port_assignment: BTreeMap<String, u16>,
    /// Receives every connection no other service takes.
    #[serde(default)]
    pub catch_all: bool,
    /// Runs with host networking.
    #[serde(default)]
    pub raw_network_access: bool,
}

/// Most events in one upload.
pub const MAX_UPLOAD_EVENTS: usize = 1000;

/// `POST /api/sensors/events`: a batch of events, each a JSON object in the event schema
/// ([`crate::model::NewEvent`]). Each is validated on its own: a malformed one is rejected
/// alone, never with its batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventUpload {
    /// The events.
    pub events: Vec<serde_json::Value>,
}

/// The answer to an [`EventUpload`]: every event is in exactly one of the three lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventUploadResult {
    /// Stored now.
    #[serde(default)]
    pub accepted: Vec<Uuid>,
    /// Already stored by an earlier (retried) upload; not stored again.
    #[serde(default)]
    pub duplicates: Vec<Uuid>,
    /// Refused; retrying them will not help.
    #[serde(default)]
    pub rejected: Vec<RejectedEvent>,
}

/// An event the server refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedEvent {
    /// Position in the upload.
    pub index: usize,
    /// Its uid, when it had a readable one.
    #[serde(default)]
    pub uid: Option<Uuid>,
    /// Stable code, e.g. `validation.failed`, `event.malformed`, `event.wrong_sensor`.
    pub code: String,
    /// What is wrong.
    pub message: String,
}

/// How an agent talks to its server: HTTPS in production
/// (`honeysens_http::client::SensorClient`), in-process when agent and server are embedded in
/// one program (`honeysens_http::inprocess::InProcessTransport`).
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// Sends a status report; the answer carries the desired state.
    async fn poll(&self, status: &StatusRequest) -> Result<StatusResponse, TransportError>;
    /// Uploads events, each one serialised JSON object in the event schema.
    async fn upload_events(&self, events: &[Vec<u8>]) -> Result<EventUploadResult, TransportError>;

    /// Downloads `GET <path>` (a sensor API path such as `/v2/<repository>/blobs/<digest>`)
    /// into `dest`, streamed, asking for one of the `accept` media types (none: anything).
    /// The caller checks what it got (digest, size): downloads are content-addressed.
    /// Transports without file downloads answer [`TransportError::Unsupported`].
    async fn download(
        &self,
        path: &str,
        accept: &[&str],
        dest: &std::path::Path,
    ) -> Result<Downloaded, TransportError> {
        let _ = (accept, dest);
        Err(TransportError::Unsupported(format!("download of {path}")))
    }
}

/// What [`Transport::download`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The answer's `Content-Type`, if it had one.
    pub content_type: Option<String>,
    /// Bytes written.
    pub size: u64,
}

/// Why a [`Transport`] call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The server could not be reached or failed transiently; retry later.
    #[error("server unavailable: {0}")]
    Unavailable(String),
    /// The server refused the request (authentication, protocol); retrying as is will not help.
    #[error("refused by the server ({status}): {code}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
    },
    /// The answer could not be understood.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// This transport cannot do that (e.g. file downloads in process).
    #[error("not supported by this transport: {0}")]
    Unsupported(String),
    /// A local file could not be written.
    #[error("local I/O: {0}")]
    Io(String),
}

/// Version of the [`SensorBundle`] format.
pub const BUNDLE_VERSION: u32 = 1;

/// A sensor's configuration bundle: everything its agent needs to start
/// (`honeysens-sensor run --config <bundle>`). Downloaded by an operator from
/// `GET /api/sensors/{id}/config`; it carries the sensor's secret credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SensorBundle {
    /// Bundle format version ([`BUNDLE_VERSION`]).
    pub format: u32,
    /// The sensor.
    pub sensor_id: SensorId,
    /// Its name.
    pub name: String,
    /// Where the server is.
    pub server: ServerEndpoint,
    /// The HoneySens CA, PEM: the only authority the agent trusts for the server.
    pub ca_pem: String,
    /// How the agent authenticates.
    pub credentials: SensorCredentials,
    /// Proxy to reach the server through.
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
    /// Interface configuration, needed before the first poll can reach the server.
    #[serde(default)]
    pub network: NetworkConfig,
    /// MAC address override.
    #[serde(default)]
    pub mac: Option<String>,
    /// Poll interval in minutes.
    pub update_interval: u32,
}

impl std::fmt::Debug for SensorBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SensorBundle")
            .field("format", &self.format)
            .field("sensor_id", &self.sensor_id)
            .field("name", &self.name)
            .field("server", &self.server)
            .field("credentials", &self.credentials)
            .field("update_interval", &self.update_interval)
            .finish_non_exhaustive()
    }
}

/// A sensor's secret credentials.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum SensorCredentials {
    /// A client certificate with its key.
    Certificate {
        /// Certificate, PEM.
        cert_pem: String,
        /// Private key, PEM (PKCS#8).
        key_pem: String,
        /// End of validity.
        #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
        not_after: Timestamp,
    },
    /// The shared HMAC secret.
    Hmac {
        /// The secret.
        secret: String,
    },
}

impl std::fmt::Debug for SensorCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SensorCredentials::Certificate { not_after, .. } => f
                .debug_struct("Certificate")
                .field("not_after", not_after)
                .finish_non_exhaustive(),
            SensorCredentials::Hmac { .. } => f.write_str("Hmac(<redacted>)"),
        }
    }
}

// ---- Honeypot → agent (intake) ----
//
// One JSON line per event to the agent's Unix socket or TCP intake; one `IntakeAck` line back,
// in order. Shared here so honeypots need nothing but this crate.

/// An event as a honeypot service reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeEvent {
    /// Id making the upload idempotent; generated when absent.
    #[serde(default)]
    pub uid: Option<uuid::Uuid>,
    /// Reporting service.
    #[serde(default)]
    pub service: Option<String>,
    /// When it happened; arrival time when absent.
    #[serde(default)]
    pub timestamp: Option<Timestamp>,
    /// Attacker address.
    pub source_ip: std::net::IpAddr,
    /// Attacker port.
    #[serde(default)]
    pub source_port: Option<u16>,
    /// Address attacked.
    #[serde(default)]
    pub dest_ip: Option<std::net::IpAddr>,
    /// Port attacked.
    #[serde(default)]
    pub dest_port: Option<u16>,
    /// Transport protocol.
    pub protocol: crate::model::Protocol,
    /// Stable type code, e.g. `ssh.login.failed`.
    pub type_code: String,
    /// Classification; from the taxonomy when absent (`unknown` for unknown codes).
    #[serde(default)]
    pub classification: Option<crate::model::Classification>,
    /// Severity; from the taxonomy when absent (`low` for unknown codes).
    #[serde(default)]
    pub severity: Option<crate::model::Severity>,
    /// One-line summary.
    pub summary: String,
    /// Detail lines.
    #[serde(default)]
    pub details: Vec<crate::model::EventDetail>,
    /// Captured packets.
    #[serde(default)]
    pub packets: Vec<crate::model::EventPacket>,
}

impl IntakeEvent {
    /// An event with the required fields; everything else defaults (uid, timestamp,
    /// classification and severity are filled in by the agent).
    pub fn new(
        source_ip: std::net::IpAddr,
        protocol: crate::model::Protocol,
        type_code: impl Into<String>,
        summary: impl Into<String>,
    ) -> Self {
        IntakeEvent {
            uid: None,
            service: None,
            timestamp: None,
            source_ip,
            source_port: None,
            dest_ip: None,
            dest_port: None,
            protocol,
            type_code: type_code.into(),
            classification: None,
            severity: None,
            summary: summary.into(),
            details: Vec::new(),
            packets: Vec::new(),
        }
    }

    /// The full event of `sensor`, validated.
    pub fn into_event(self, sensor: SensorId) -> crate::Result<crate::model::NewEvent> {
        let known = crate::taxonomy::lookup(&self.type_code);
        let event = crate::model::NewEvent {
            data: crate::model::EventData {
                uid: self.uid.unwrap_or_else(uuid::Uuid::now_v7),
                sensor_id: sensor,
                service: self.service,
                timestamp: self.timestamp.unwrap_or_else(crate::time::now),
                source_ip: self.source_ip,
                source_port: self.source_port,
                dest_ip: self.dest_ip,
                dest_port: self.dest_port,
                protocol: self.protocol,
                type_code: self.type_code,
                classification: self
                    .classification
                    .or(known.map(|t| t.classification))
                    .unwrap_or(crate::model::Classification::Unknown),
                severity: self
                    .severity
                    .or(known.map(|t| t.severity))
                    .unwrap_or(crate::model::Severity::Low),
                summary: self.summary,
            },
            details: self.details,
            packets: self.packets,
        };
        event.validate()?;
        Ok(event)
    }
}

/// The answer to one intake line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeAck {
    /// Whether the event is durable in the spool.
    pub ok: bool,
    /// Its uid, when taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<uuid::Uuid>,
    /// Why not, when refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Details, when refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Classification, Protocol, Severity};

    #[test]
    fn intake_fills_classification_and_severity_from_the_taxonomy() {
        let ip = "192.0.2.1".parse().unwrap();
        let known = IntakeEvent::new(ip, Protocol::Tcp, "scan.host", "scan")
            .into_event(SensorId(1))
            .unwrap();
        assert_eq!(
            (known.data.classification, known.data.severity),
            (Classification::PortScan, Severity::Medium)
        );
        let unknown = IntakeEvent::new(ip, Protocol::Tcp, "acme.poke", "x")
            .into_event(SensorId(1))
            .unwrap();
        assert_eq!(
            (unknown.data.classification, unknown.data.severity),
            (Classification::Unknown, Severity::Low)
        );
        let explicit = IntakeEvent {
            severity: Some(Severity::High),
            ..IntakeEvent::new(ip, Protocol::Tcp, "acme.poke", "x")
        }
        .into_event(SensorId(1))
        .unwrap();
        assert_eq!(explicit.data.severity, Severity::High);
        assert!(
            IntakeEvent::new(ip, Protocol::Tcp, "Bad Code", "x")
                .into_event(SensorId(1))
                .is_err()
        );
    }

    /// Old agents must keep working with newer servers: unknown fields are ignored and fields
    /// added later are optional.
    #[test]
    fn messages_ignore_unknown_fields_and_tolerate_missing_new_ones() {
        let answer: StatusResponse = serde_json::from_value(serde_json::json!({
            "protocol": 2, "sensor_id": 7, "server_time": "2026-11-27T03:00:00Z",
            "clock_skew_ms": -5, "update_interval": 5, "some_future_field": {"x": 1}
        }))
        .unwrap();
        assert_eq!(answer.sensor_id, SensorId(7));
        assert!(answer.config.is_none() && answer.certificate.is_none());
        let desired: DesiredState = serde_json::from_value(serde_json::json!({
            "service_network": "10.10.10.0/24",
            "services": [{"name": "ssh", "revision": "1", "architecture": "amd64",
                          "image_digest": "sha256:x", "future": true}],
            "future": []
        }))
        .unwrap();
        assert_eq!(desired.network, NetworkConfig::Dhcp);
        assert_eq!(desired.services[0].port_assignment.len(), 0);
        let result: EventUploadResult =
            serde_json::from_value(serde_json::json!({ "accepted": [], "new_list": [] })).unwrap();
        assert!(result.rejected.is_empty());
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let bundle = SensorBundle {
            format: BUNDLE_VERSION,
            sensor_id: SensorId(1),
            name: "s".into(),
            server: ServerEndpoint {
                host: "h".into(),
                port: 1,
            },
            ca_pem: String::new(),
            credentials: SensorCredentials::Hmac {
                secret: "topsecret".into(),
            },
            proxy: Some(ProxyConfig {
                host: "p".into(),
                port: 3128,
                user: Some("u".into()),
                password: Some("proxypass".into()),
            }),
            network: NetworkConfig::Dhcp,
            mac: None,
            update_interval: 5,
        };
        let text = format!("{bundle:?}");
        assert!(
            !text.contains("topsecret") && !text.contains("proxypass"),
            "{text}"
        );
    }
}
