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

    /// `POST /api/notifications/test`: sends a test message now; `Err` with code
    /// `notification.failed` when the receiver refused or was unreachable.
    pub async fn test_notification(
        &self,
        target: &crate::mgmt::notifications::TestTarget,
    ) -> Result<crate::mgmt::notifications::TestResult, ClientError> {
        self.json(Method::POST, "/api/notifications/test", target)
            .await
    }
}
