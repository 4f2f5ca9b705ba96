//! Sensors, their configuration bundles and status history.

use super::ManagementClient;
use crate::client::ClientError;
use crate::mgmt::page::Paged;
use crate::mgmt::sensors::{CreatedSensor, SensorQuery, StatusQuery};
use honeysens_core::ids::SensorId;
use honeysens_core::model::{Sensor, SensorSpec, StatusReport};
use honeysens_core::protocol::SensorBundle;
use reqwest::Method;

impl ManagementClient {
    /// `GET /api/sensors`.
    pub async fn list_sensors(&self, query: &SensorQuery) -> Result<Paged<Sensor>, ClientError> {
        self.get_query("/api/sensors", query).await
    }

    /// `POST /api/sensors`: creates the sensor and issues its credentials.
    pub async fn create_sensor(&self, spec: &SensorSpec) -> Result<CreatedSensor, ClientError> {
        self.json(Method::POST, "/api/sensors", spec).await
    }

    /// `GET /api/sensors/{id}`.
    pub async fn get_sensor(&self, id: SensorId) -> Result<Sensor, ClientError> {
        self.get(&format!("/api/sensors/{id}")).await
    }

    /// `PUT /api/sensors/{id}`.
    pub async fn update_sensor(
        &self,
        id: SensorId,
        spec: &SensorSpec,
    ) -> Result<Sensor, ClientError> {
        self.json(Method::PUT, &format!("/api/sensors/{id}"), spec)
            .await
    }

    /// `DELETE /api/sensors/{id}`.
    pub async fn delete_sensor(&self, id: SensorId) -> Result<(), ClientError> {
        self.delete(&format!("/api/sensors/{id}")).await
    }

    /// `GET /api/sensors/{id}/config`: a bundle with fresh credentials (replacing the
    /// sensor's earlier ones).
    pub async fn sensor_config(&self, id: SensorId) -> Result<SensorBundle, ClientError> {
        self.get(&format!("/api/sensors/{id}/config")).await
    }

    /// `GET /api/sensors/{id}/status`: newest reports first.
    pub async fn sensor_status(
        &self,
        id: SensorId,
        limit: Option<u32>,
    ) -> Result<Vec<StatusReport>, ClientError> {
        self.get_query(&format!("/api/sensors/{id}/status"), &StatusQuery { limit })
            .await
    }
}
