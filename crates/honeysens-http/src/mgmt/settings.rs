//! The settings endpoints.

use crate::server::AppState;
use utoipa_axum::router::OpenApiRouter;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
