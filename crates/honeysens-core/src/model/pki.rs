//! Records of the internal certificate authority and the certificates it issued.

use crate::ids::SensorId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The CA's certificate and private key. The key is secret: never log or serialise it to clients.
#[derive(Clone, PartialEq, Eq)]
pub struct CaRecord {
    /// CA certificate, PEM.
    pub cert_pem: String,
    /// CA private key, PEM (PKCS#8).
    pub key_pem: String,
    /// When the CA was created.
    pub created_at: Timestamp,
}

impl std::fmt::Debug for CaRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaRecord")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A certificate the CA issued (to a sensor or to the server itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCertificate {
    /// Serial number, lowercase hex; unique.
    pub serial: String,
    /// Sensor it was issued to; `None` for server certificates or after the sensor was deleted.
    pub sensor_id: Option<SensorId>,
    /// SHA-256 of the DER certificate, lowercase hex; unique.
    pub fingerprint: String,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}
