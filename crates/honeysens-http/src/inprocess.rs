//! [`InProcessTransport`]: an agent and the server in one program, talking without HTTP or
//! TLS (for embedding and for tests). The same handler code runs as for HTTPS requests.

use crate::api;
use crate::auth::{AuthMethod, SensorIdentity};
use crate::error::ApiError;
use crate::server::AppState;
use honeysens_core::ids::SensorId;
use honeysens_core::protocol::{
    EventUploadResult, StatusRequest, StatusResponse, Transport, TransportError,
};

/// A transport calling the server's handlers directly as one sensor.
#[derive(Clone)]
pub struct InProcessTransport {
    state: AppState,
    sensor: SensorId,
}

impl std::fmt::Debug for InProcessTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessTransport")
            .field("sensor", &self.sensor)
            .finish_non_exhaustive()
    }
}

impl InProcessTransport {
    /// Acts as `sensor` on the server whose state is `state` (see
    /// [`crate::server::Server::state`]). The caller vouches for the sensor's identity.
    pub fn new(state: AppState, sensor: SensorId) -> Self {
        InProcessTransport { state, sensor }
    }

    /// The identity for one call, with the sensor loaded as HTTPS authentication would: a
    /// deleted sensor is refused.
    async fn identity(&self) -> Result<SensorIdentity, TransportError> {
        let sensor = self
            .state
            .store
            .get_sensor(self.sensor)
            .await
            .map_err(|e| transport_error(e.into()))?;
        Ok(SensorIdentity {
            sensor_id: self.sensor,
            method: AuthMethod::InProcess,
            sensor,
        })
    }
}

fn transport_error(e: ApiError) -> TransportError {
    let status = e.status.as_u16();
    if status >= 500 {
        TransportError::Unavailable(e.message)
    } else {
        TransportError::Refused {
            status,
            code: e.code,
        }
    }
}

#[async_trait::async_trait]
impl Transport for InProcessTransport {
    async fn poll(&self, status: &StatusRequest) -> Result<StatusResponse, TransportError> {
        let identity = self.identity().await?;
        api::status(&self.state, &identity, status.clone())
            .await
            .map_err(transport_error)
    }

    async fn upload_events(&self, events: &[Vec<u8>]) -> Result<EventUploadResult, TransportError> {
        // An unreadable event becomes `null`, which the handler rejects on its own, as over
        // HTTPS a malformed element would be.
        let values = events
            .iter()
            .map(|e| serde_json::from_slice(e).unwrap_or(serde_json::Value::Null))
            .collect();
        let identity = self.identity().await?;
        api::upload_events(&self.state, &identity, values)
            .await
            .map_err(transport_error)
    }
}
