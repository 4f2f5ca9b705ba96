//! Global settings.

use super::ManagementClient;
use crate::client::ClientError;
use crate::mgmt::settings::SettingsView;
use honeysens_core::model::Settings;
use reqwest::Method;

impl ManagementClient {
    /// `GET /api/settings`.
    pub async fn get_settings(&self) -> Result<SettingsView, ClientError> {
        self.get("/api/settings").await
    }

    /// `PUT /api/settings`; a `None` SMTP password keeps the stored one.
    pub async fn put_settings(&self, settings: &Settings) -> Result<SettingsView, ClientError> {
        self.json(Method::PUT, "/api/settings", settings).await
    }
}
