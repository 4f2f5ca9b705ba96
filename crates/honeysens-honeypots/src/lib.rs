//! # honeysens-honeypots
//!
//! The honeypots HoneySens ships (written in Rust, run as `FROM scratch` images or directly by
//! the agent's process runtime) and adapters that translate the logs of well-known upstream
//! honeypots into HoneySens events. Everything here reports through an [`sink::EventSink`] to
//! the sensor agent's intake, using the type codes of `honeysens_core::taxonomy`.
//!
//! Built-in honeypots, each a module with a config struct and
//! `run(config, sink, shutdown) -> Result<(), Error>`: [`recon`] (catch-all: packet capture
//! and redirected connections, aggregated into `conn.attempt` / `scan.host` / `icmp.echo`),
//! [`ssh`] (russh server: logins, optional fake shell), [`http`] (login page, scanner
//! fingerprints), [`redis`] (RESP: AUTH and commands). See `docs/honeypots.md`.
//!
//! ```no_run
//! use honeysens_honeypots::sink::{EventSink, IntakeAddr};
//! use honeysens_core::protocol::IntakeEvent;
//! use honeysens_core::model::Protocol;
//!
//! # async fn demo() -> Result<(), honeysens_honeypots::Error> {
//! let sink = EventSink::connect(IntakeAddr::parse("unix:/var/lib/honeysens/intake.sock")?);
//! sink.send(IntakeEvent::new("192.0.2.9".parse().unwrap(), Protocol::Tcp, "conn.attempt",
//!     "connection to port 23")).await?;
//! # Ok(()) }
//! ```

pub mod adapters;
pub mod error;
pub mod event;
pub mod http;
pub mod recon;
pub mod redis;
pub mod sink;
pub mod ssh;

pub use error::Error;

/// How a honeypot is told to stop: cancel the token, then await its `run` future.
pub type Shutdown = tokio_util::sync::CancellationToken;

/// The next connection on `listener`, or `None` once `shutdown` fires; accept errors (e.g. out
/// of file descriptors) are logged and retried after a pause instead of ending the honeypot.
pub(crate) async fn accept_until(
    listener: &tokio::net::TcpListener,
    shutdown: &Shutdown,
    name: &str,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            a = listener.accept() => match a {
                Ok(a) => return Some(a),
                Err(e) => {
                    tracing::warn!(error = %e, "{name}: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
}
