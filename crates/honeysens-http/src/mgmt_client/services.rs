//! Honeypot services, their revisions and the sensor × service assignment matrix.

use super::ManagementClient;
use crate::client::ClientError;
use crate::mgmt::packages::PackageUploaded;
use crate::mgmt::page::{PageQuery, Paged};
use crate::mgmt::services::{AssignService, AssignmentMatrix, AssignmentQuery};
use honeysens_core::ids::{SensorId, ServiceId, ServiceRevisionId};
use honeysens_core::model::{Service, ServiceAssignment, ServiceRevision};
use reqwest::Method;

impl ManagementClient {
    /// `GET /api/services`.
    pub async fn list_services(&self, page: &PageQuery) -> Result<Paged<Service>, ClientError> {
        self.get_query("/api/services", page).await
    }

    /// `POST /api/services/packages`: imports a service package (tar or tar.gz, see
    /// `docs/services.md`), creating the service or adding a revision.
    pub async fn upload_service_package(
        &self,
        package: Vec<u8>,
    ) -> Result<PackageUploaded, ClientError> {
        self.send(
            Method::POST,
            "/api/services/packages",
            Some((package, "application/x-tar")),
        )
        .await
    }

    /// `GET /api/services/{id}`.
    pub async fn get_service(&self, id: ServiceId) -> Result<Service, ClientError> {
        self.get(&format!("/api/services/{id}")).await
    }

    /// `DELETE /api/services/{id}`.
    pub async fn delete_service(&self, id: ServiceId) -> Result<(), ClientError> {
        self.delete(&format!("/api/services/{id}")).await
    }

    /// `GET /api/services/{id}/revisions`.
    pub async fn list_service_revisions(
        &self,
        id: ServiceId,
    ) -> Result<Vec<ServiceRevision>, ClientError> {
        self.get(&format!("/api/services/{id}/revisions")).await
    }

    /// `DELETE /api/services/{id}/revisions/{revision_id}`.
    pub async fn delete_service_revision(
        &self,
        id: ServiceId,
        revision: ServiceRevisionId,
    ) -> Result<(), ClientError> {
        self.delete(&format!("/api/services/{id}/revisions/{revision}"))
            .await
    }

    /// `GET /api/assignments`.
    pub async fn list_assignments(
        &self,
        query: &AssignmentQuery,
    ) -> Result<AssignmentMatrix, ClientError> {
        self.get_query("/api/assignments", query).await
    }

    /// `PUT /api/sensors/{id}/services/{service_id}`; `revision: None` runs the newest.
    pub async fn assign_service(
        &self,
        sensor: SensorId,
        service: ServiceId,
        revision: Option<&str>,
    ) -> Result<ServiceAssignment, ClientError> {
        let body = AssignService {
            revision: revision.map(str::to_owned),
        };
        self.json(
            Method::PUT,
            &format!("/api/sensors/{sensor}/services/{service}"),
            &body,
        )
        .await
    }

    /// `DELETE /api/sensors/{id}/services/{service_id}`.
    pub async fn unassign_service(
        &self,
        sensor: SensorId,
        service: ServiceId,
    ) -> Result<(), ClientError> {
        self.delete(&format!("/api/sensors/{sensor}/services/{service}"))
            .await
    }
}
