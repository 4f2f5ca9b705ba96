//! Errors: setup problems ([`NotifyError`]) and failed deliveries ([`DeliveryError`]).

/// A problem with configuration or templates, found before anything is sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    /// A template does not compile or does not render; `field` names it as in the settings
    /// (e.g. `templates.alert_body`).
    #[error("{field}: {message}")]
    Template {
        /// Settings field of the template.
        field: &'static str,
        /// What is wrong, with line information from the template engine.
        message: String,
    },
    /// An address or other setting cannot be used.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A PEM certificate cannot be read or the TLS setup failed.
    #[error("TLS setup: {0}")]
    Tls(String),
}

/// A delivery that did not happen. [`DeliveryError::is_retryable`] tells the job queue whether
/// trying again later can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The receiver could not be reached or the connection broke (retryable).
    #[error("connection failed: {0}")]
    Connect(String),
    /// The receiver did not answer in time (retryable).
    #[error("timed out: {0}")]
    Timeout(String),
    /// A webhook answered with a non-success HTTP status; 429 and 5xx are retryable.
    #[error("webhook answered HTTP {status}")]
    Status {
        /// The HTTP status code.
        status: u16,
    },
    /// The mail server refused temporarily (4xx reply; retryable).
    #[error("mail server refused temporarily: {0}")]
    Transient(String),
    /// The mail server refused for good (5xx reply other than authentication; permanent).
    #[error("mail server rejected the message: {0}")]
    Rejected(String),
    /// The login was refused (permanent until the settings change).
    #[error("authentication rejected: {0}")]
    Auth(String),
    /// A recipient, sender or URL is not usable (permanent).
    #[error("bad address: {0}")]
    Address(String),
    /// TLS negotiation failed, e.g. an untrusted certificate (permanent until the settings
    /// change).
    #[error("TLS failed: {0}")]
    Tls(String),
    /// The message could not be built (permanent).
    #[error("cannot build message: {0}")]
    Build(String),
}

impl DeliveryError {
    /// Whether a later attempt may succeed: connection problems, timeouts, HTTP 429 and 5xx,
    /// and temporary SMTP refusals are; everything else needs a change of settings or data.
    pub fn is_retryable(&self) -> bool {
        match self {
            DeliveryError::Connect(_) | DeliveryError::Timeout(_) | DeliveryError::Transient(_) => {
                true
            }
            DeliveryError::Status { status } => *status == 429 || (500..600).contains(status),
            DeliveryError::Rejected(_)
            | DeliveryError::Auth(_)
            | DeliveryError::Address(_)
            | DeliveryError::Tls(_)
            | DeliveryError::Build(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_status_classification() {
        for (status, retry) in [
            (500, true),
            (503, true),
            (429, true),
            (400, false),
            (401, false),
            (404, false),
            (301, false),
        ] {
            assert_eq!(
                DeliveryError::Status { status }.is_retryable(),
                retry,
                "{status}"
            );
        }
    }
}
