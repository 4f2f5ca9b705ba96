//! Platforms and firmware revisions.

use super::ManagementClient;
use crate::client::ClientError;
use crate::mgmt::page::{PageQuery, Paged};
use crate::mgmt::platforms::FirmwareMetadata;
use honeysens_core::ids::{FirmwareId, PlatformId};
use honeysens_core::model::{FirmwareRevision, Platform, PlatformSpec};
use reqwest::Method;

impl ManagementClient {
    /// `GET /api/platforms`.
    pub async fn list_platforms(&self, page: &PageQuery) -> Result<Paged<Platform>, ClientError> {
        self.get_query("/api/platforms", page).await
    }

    /// `POST /api/platforms`.
    pub async fn create_platform(&self, spec: &PlatformSpec) -> Result<Platform, ClientError> {
        self.json(Method::POST, "/api/platforms", spec).await
    }

    /// `GET /api/platforms/{id}`.
    pub async fn get_platform(&self, id: PlatformId) -> Result<Platform, ClientError> {
        self.get(&format!("/api/platforms/{id}")).await
    }

    /// `GET /api/platforms/{id}/firmware`: newest first.
    pub async fn list_firmware(
        &self,
        platform: PlatformId,
    ) -> Result<Vec<FirmwareRevision>, ClientError> {
        self.get(&format!("/api/platforms/{platform}/firmware"))
            .await
    }

    /// `POST /api/platforms/{id}/firmware`: uploads `image` with its metadata.
    pub async fn upload_firmware(
        &self,
        platform: PlatformId,
        metadata: &FirmwareMetadata,
        image: Vec<u8>,
    ) -> Result<FirmwareRevision, ClientError> {
        let (body, content_type) = Self::firmware_form(metadata, &image)?;
        self.send(
            Method::POST,
            &format!("/api/platforms/{platform}/firmware"),
            Some((body, &content_type)),
        )
        .await
    }

    /// The `multipart/form-data` body of a firmware upload and its content type.
    pub fn firmware_form(
        metadata: &FirmwareMetadata,
        image: &[u8],
    ) -> Result<(Vec<u8>, String), ClientError> {
        let json = serde_json::to_vec(metadata).map_err(|e| ClientError::Decode(e.to_string()))?;
        // The boundary must not occur in any part; a random one practically never does, but
        // checking is cheap next to the upload.
        let boundary = loop {
            let b = format!("hs-{}", uuid::Uuid::new_v4().simple());
            let needle = b.as_bytes();
            let clash = |data: &[u8]| data.windows(needle.len()).any(|w| w == needle);
            if !clash(&json) && !clash(image) {
                break b;
            }
        };
        let mut body = Vec::with_capacity(image.len() + json.len() + 512);
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\
                 Content-Type: application/json\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&json);
        body.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; \
                 filename=\"image.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(image);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        Ok((body, format!("multipart/form-data; boundary={boundary}")))
    }

    /// `GET /api/firmware/{id}`.
    pub async fn get_firmware(&self, id: FirmwareId) -> Result<FirmwareRevision, ClientError> {
        self.get(&format!("/api/firmware/{id}")).await
    }

    /// `GET /api/firmware/{id}/image`: the image bytes.
    pub async fn download_firmware(&self, id: FirmwareId) -> Result<Vec<u8>, ClientError> {
        let res = self
            .raw(Method::GET, &format!("/api/firmware/{id}/image"), None)
            .await?;
        if !(200..300).contains(&res.status) {
            return Err(ClientError::from_answer(res.status, &res.body));
        }
        Ok(res.body.to_vec())
    }

    /// `PUT /api/firmware/{id}/default`.
    pub async fn set_default_firmware(&self, id: FirmwareId) -> Result<(), ClientError> {
        self.send(Method::PUT, &format!("/api/firmware/{id}/default"), None)
            .await
    }

    /// `DELETE /api/firmware/{id}`.
    pub async fn delete_firmware(&self, id: FirmwareId) -> Result<(), ClientError> {
        self.delete(&format!("/api/firmware/{id}")).await
    }
}
