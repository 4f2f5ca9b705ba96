//! Errors of the honeypots crate.

/// What can go wrong running a honeypot or an adapter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An intake address was not `unix:<path>` or `tcp:<host:port>`.
    #[error("invalid intake address {0:?}: use unix:<path> or tcp:<host:port>")]
    InvalidIntake(String),
    /// The agent refused an event (invalid, or its spool is full).
    #[error("the agent refused the event: {code}: {message}")]
    Refused {
        /// Stable code from the agent.
        code: String,
        /// Its explanation.
        message: String,
    },
    /// The sink was closed.
    #[error("the event sink is closed")]
    Closed,
    /// A listening socket could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(std::net::SocketAddr, #[source] std::io::Error),
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The SSH host key could not be loaded, generated or stored.
    #[error("SSH host key {path}: {message}")]
    HostKey {
        /// The key file.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Socket or file I/O failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}
