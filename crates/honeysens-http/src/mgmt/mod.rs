//! The management API used by the console, scripts and the Python bindings.
//!
//! Every handler takes a [`Principal`] (session cookie or API token) and authorises with
//! [`require_role`] / [`require_division`]. Every change is recorded in the audit log.

pub mod access;
pub mod contacts;
pub mod directory;
pub mod events;
pub mod filters;
pub mod incidents;
pub mod notifications;
pub mod openapi;
pub mod packages;
pub mod page;
pub mod platforms;
pub mod principal;
pub mod sensors;
pub mod services;
pub mod settings;
pub mod throttle;

pub use principal::{Principal, require_division, require_role};

use crate::error::ApiError;
use crate::server::AppState;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use honeysens_core::model::NewAuditEntry;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Largest management request body.
pub const MAX_BODY: usize = 1024 * 1024;

/// Every management route, with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(access::router())
        .merge(directory::router())
        .merge(contacts::router())
        .merge(sensors::router())
        .merge(platforms::router())
        .merge(services::router())
        .merge(packages::router())
        .merge(settings::router())
        .merge(events::router())
        .merge(incidents::router())
        .merge(filters::router())
        .merge(notifications::router())
}

/// The OpenAPI document of the management API (as served at `/api/openapi.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

/// A JSON request body whose parse errors answer 400 `request.malformed` in the API's error
/// format (axum's own rejection is plain text).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _st: &AppState) -> Result<Self, ApiError> {
        let body = axum::body::to_bytes(req.into_body(), MAX_BODY)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request.too_large",
                    "request body too large",
                )
            })?;
        serde_json::from_slice(&body)
            .map(JsonBody)
            .map_err(|e| ApiError::bad_request("request.malformed", format!("invalid JSON: {e}")))
    }
}

/// Parses a numeric path id; anything else is "no such object" (404 `<entity>.not_found`).
pub fn parse_id(raw: &str, entity: &'static str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| honeysens_core::Error::not_found(entity).into())
}

/// Checks that `p` may put objects into `division` and that it exists; both failures read as
/// the same invalid `division_id` (other divisions do not exist for the caller).
pub(crate) async fn target_division(
    st: &AppState,
    p: &Principal,
    division: honeysens_core::ids::DivisionId,
) -> Result<(), ApiError> {
    use honeysens_core::Error;
    let missing = || Error::invalid("division_id", "not_found", "no such division");
    if !p.sees(division) {
        return Err(missing().into());
    }
    match st.store.get_division(division).await {
        Ok(_) => Ok(()),
        Err(Error::NotFound { .. }) => Err(missing().into()),
        Err(other) => Err(other.into()),
    }
}

/// Records a change made by `p`. A failure to record fails the request: a change that cannot
/// be audited must be visible to the caller. (The change itself is already done; the caller
/// sees 503 and can check.)
pub async fn audit(
    st: &AppState,
    p: &Principal,
    action: &str,
    target: String,
    detail: serde_json::Value,
) -> Result<(), ApiError> {
    st.store
        .append_audit(&NewAuditEntry {
            user_id: Some(p.user_id),
            actor: p.name.clone(),
            action: action.to_owned(),
            target,
            detail,
        })
        .await?;
    Ok(())
}
