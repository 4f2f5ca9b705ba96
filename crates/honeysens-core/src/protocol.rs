//! Messages of the sensor protocol (version [`PROTOCOL_VERSION`]), shared by server and agent.
//!
//! Every message ignores unknown fields, so older agents keep working with newer servers and the
//! other way round; fields added later carry `#[serde(default)]`.

use crate::ids::{DivisionId, SensorId};
use crate::model::{SensorAuthMode, SensorState, ServiceStatus};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

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
}
