//! Errors of the domain layer, shared by every store and transport.

use std::fmt;

/// What went wrong, in a form callers can branch on and APIs can map to stable codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Input failed validation.
    Invalid,
    /// The addressed object (or an object it refers to) does not exist.
    NotFound,
    /// The change collides with existing state (duplicate name, object still in use).
    Conflict,
    /// The storage backend failed; the detail is logged, never shown to clients.
    Storage,
}

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `network.address`.
    pub field: String,
    /// Stable machine-readable code, e.g. `out_of_range`.
    pub code: &'static str,
    /// Human-readable explanation, safe to show to clients.
    pub message: String,
}

/// The field errors of one validation run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl ValidationErrors {
    /// Records one failing field.
    pub fn add(
        &mut self,
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) {
        self.0.push(FieldError {
            field: field.into(),
            code,
            message: message.into(),
        });
    }

    /// `Ok(())` when nothing failed, otherwise [`Error::Invalid`].
    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid(self))
        }
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// The error type of `honeysens-core` and every [`crate::store::Store`] implementation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input failed validation; carries one entry per failing field.
    #[error("invalid input: {0}")]
    Invalid(ValidationErrors),
    /// The named entity (e.g. `sensor`) does not exist.
    #[error("{entity} not found")]
    NotFound {
        /// Entity name, used to build the stable error code `<entity>.not_found`.
        entity: &'static str,
    },
    /// The change conflicts with existing state.
    #[error("{entity} conflict: {reason}")]
    Conflict {
        /// Entity name, used to build the stable error code `<entity>.conflict`.
        entity: &'static str,
        /// Safe, human-readable reason.
        reason: String,
    },
    /// The storage backend failed. The source is for logs only.
    #[error("storage failure")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) => ErrorKind::Invalid,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Storage(_) => ErrorKind::Storage,
        }
    }

    /// Stable, dotted error code for APIs, e.g. `sensor.not_found` or `validation.failed`.
    pub fn code(&self) -> String {
        match self {
            Error::Invalid(_) => "validation.failed".to_owned(),
            Error::NotFound { entity } => format!("{entity}.not_found"),
            Error::Conflict { entity, .. } => format!("{entity}.conflict"),
            Error::Storage(_) => "storage.unavailable".to_owned(),
        }
    }

    /// Shorthand for a single-field validation error.
    pub fn invalid(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        let mut errors = ValidationErrors::default();
        errors.add(field, code, message);
        Error::Invalid(errors)
    }

    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(entity: &'static str) -> Self {
        Error::NotFound { entity }
    }

    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(entity: &'static str, reason: impl Into<String>) -> Self {
        Error::Conflict {
            entity,
            reason: reason.into(),
        }
    }
}

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
