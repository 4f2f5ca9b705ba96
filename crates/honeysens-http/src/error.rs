//! API errors: a stable code, a safe message, never internal detail.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use honeysens_core::error::FieldError;
use serde::Serialize;

/// An error answer: `{"error": {"code": "sensor.not_found", "message": "…"}}`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable dotted code.
    pub code: String,
    /// Safe, human-readable message.
    pub message: String,
    /// Per-field validation failures.
    pub fields: Vec<FieldError>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    fields: &'a [FieldError],
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// 401: the caller is not (validly) authenticated.
    pub fn unauthorized(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 403: authenticated or not, this is not allowed.
    pub fn forbidden(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 500 with a generic message; the cause must already be logged.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server.internal",
            "internal server error",
        )
    }
}

impl From<honeysens_core::Error> for ApiError {
    fn from(e: honeysens_core::Error) -> Self {
        use honeysens_core::Error;
        let code = e.code();
        match e {
            Error::Invalid(fields) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code,
                message: "the request failed validation".into(),
                fields: fields.0,
            },
            Error::NotFound { entity } => {
                ApiError::new(StatusCode::NOT_FOUND, &code, format!("{entity} not found"))
            }
            Error::Conflict { reason, .. } => ApiError::new(StatusCode::CONFLICT, &code, reason),
            other => {
                // The source may carry SQL or driver text: logs only.
                tracing::error!(error = ?other, "storage failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &code,
                    "the database is unavailable",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: &self.code,
                message: &self.message,
                fields: &self.fields,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
