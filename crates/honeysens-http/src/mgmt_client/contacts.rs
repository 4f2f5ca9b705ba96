//! Contacts.

use super::ManagementClient;
use crate::client::ClientError;
use crate::mgmt::contacts::ContactQuery;
use crate::mgmt::page::Paged;
use honeysens_core::ids::ContactId;
use honeysens_core::model::{Contact, ContactSpec};
use reqwest::Method;

impl ManagementClient {
    /// `GET /api/contacts`.
    pub async fn list_contacts(&self, query: &ContactQuery) -> Result<Paged<Contact>, ClientError> {
        self.get_query("/api/contacts", query).await
    }

    /// `POST /api/contacts`.
    pub async fn create_contact(&self, spec: &ContactSpec) -> Result<Contact, ClientError> {
        self.json(Method::POST, "/api/contacts", spec).await
    }

    /// `GET /api/contacts/{id}`.
    pub async fn get_contact(&self, id: ContactId) -> Result<Contact, ClientError> {
        self.get(&format!("/api/contacts/{id}")).await
    }

    /// `PUT /api/contacts/{id}`.
    pub async fn update_contact(
        &self,
        id: ContactId,
        spec: &ContactSpec,
    ) -> Result<Contact, ClientError> {
        self.json(Method::PUT, &format!("/api/contacts/{id}"), spec)
            .await
    }

    /// `DELETE /api/contacts/{id}`.
    pub async fn delete_contact(&self, id: ContactId) -> Result<(), ClientError> {
        self.delete(&format!("/api/contacts/{id}")).await
    }
}
