//! Global settings (admins): SMTP, default poll interval, service network, sensor timeout
//! threshold, event retention and the policy switches.
//!
//! The SMTP password is write-only: answers carry `password: null` and `password_set`; a
//! `PUT` without a password keeps the stored one, an empty string removes it.

use super::openapi::ErrorResponses;
use super::principal::{Principal, require_role};
use super::{JsonBody, audit};
use crate::error::ApiError;
use crate::server::AppState;
use axum::Json;
use axum::extract::State;
use honeysens_core::model::{Role, Settings};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, put_settings))
}

/// The settings as answered: without the SMTP password.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SettingsView {
    /// The settings (`smtp.password` always null).
    #[serde(flatten)]
    pub settings: Settings,
    /// Whether an SMTP password is stored.
    pub smtp_password_set: bool,
}

fn view(mut settings: Settings) -> SettingsView {
    let set = settings.smtp.password.take().is_some();
    SettingsView {
        settings,
        smtp_password_set: set,
    }
}

/// `GET /api/settings` (admin).
#[utoipa::path(get, path = "/api/settings", tag = "settings", responses((status = 200, description = "Current settings", body = SettingsView), ErrorResponses))]
pub async fn get_settings(
    State(st): State<AppState>,
    p: Principal,
) -> Result<Json<SettingsView>, ApiError> {
    require_role(&p, Role::Admin)?;
    Ok(Json(view(st.store.get_settings().await?)))
}

/// `PUT /api/settings` (admin): replaces the settings.
#[utoipa::path(put, path = "/api/settings", tag = "settings", request_body = Settings, responses((status = 200, description = "Saved", body = SettingsView), ErrorResponses))]
pub async fn put_settings(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(mut new): JsonBody<Settings>,
) -> Result<Json<SettingsView>, ApiError> {
    require_role(&p, Role::Admin)?;
    new.validate()?;
    honeysens_notify::validate_templates(&new.templates).map_err(|e| {
        honeysens_core::Error::invalid("templates", "invalid_template", e.to_string())
    })?;
    match new.smtp.password.as_deref() {
        None => new.smtp.password = st.store.get_settings().await?.smtp.password,
        Some("") => new.smtp.password = None,
        Some(_) => {}
    }
    st.store.put_settings(&new).await?;
    // Never the password, not even hashed, in the audit log.
    let mut logged = serde_json::to_value(view(new.clone())).unwrap_or_default();
    if let Some(m) = logged.as_object_mut() {
        m.remove("smtp_password_set");
    }
    audit(&st, &p, "settings.update", "settings".to_owned(), logged).await?;
    Ok(Json(view(new)))
}
