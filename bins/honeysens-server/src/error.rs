//! The binary's error: a message for stderr and the exit code.

use std::fmt;

/// Exit code of a runtime failure.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a usage or configuration error (as clap uses for bad flags).
pub const EXIT_USAGE: u8 = 2;

/// A failure to report on stderr. The message must never contain secrets.
#[derive(Debug)]
pub struct AppError {
    /// Process exit code.
    pub exit_code: u8,
    /// What went wrong, for the operator.
    pub message: String,
}

impl AppError {
    /// A runtime failure (exit code 1).
    pub fn runtime(message: impl Into<String>) -> Self {
        AppError {
            exit_code: EXIT_FAILURE,
            message: message.into(),
        }
    }

    /// A usage or configuration error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        AppError {
            exit_code: EXIT_USAGE,
            message: message.into(),
        }
    }

    /// A runtime failure described by `context` and the error with its sources.
    pub fn with(context: impl fmt::Display, err: &(dyn std::error::Error + 'static)) -> Self {
        AppError::runtime(format!("{context}: {}", chain(err)))
    }

    /// Replaces `secret` (e.g. a database password) wherever it appears in the message.
    pub fn scrub(mut self, secret: Option<&str>) -> Self {
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            self.message = self.message.replace(secret, "***");
        }
        self
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<honeysens_core::Error> for AppError {
    fn from(e: honeysens_core::Error) -> Self {
        match e.kind() {
            honeysens_core::ErrorKind::Invalid => AppError::usage(e.to_string()),
            _ => AppError::runtime(chain(&e)),
        }
    }
}

/// An error and its sources, joined with `: `.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_and_scrubs() {
        let inner = std::io::Error::other("connect to db:5432 with pw hunter2 failed");
        let outer = honeysens_core::Error::Storage(Box::new(inner));
        let e = AppError::with("cannot open database", &outer).scrub(Some("hunter2"));
        assert_eq!(e.exit_code, EXIT_FAILURE);
        assert!(e.message.contains("storage failure"));
        assert!(e.message.contains("db:5432"));
        assert!(!e.message.contains("hunter2"));
        let e: AppError =
            honeysens_core::Error::invalid("name", "required", "must not be empty").into();
        assert_eq!(e.exit_code, EXIT_USAGE);
    }
}
