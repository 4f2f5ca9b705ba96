//! # honeysens-honeypots
//!
//! The honeypots HoneySens ships (written in Rust, run as `FROM scratch` images or directly by
//! the agent's process runtime) and adapters that translate the logs of well-known upstream
//! honeypots into HoneySens events. Everything here reports through an [`sink::EventSink`] to
//! the sensor agent's intake, using the type codes of `honeysens_core::taxonomy`.
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
pub mod sink;

pub use error::Error;
