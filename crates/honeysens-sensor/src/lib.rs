//! # honeysens-sensor
//!
//! The sensor agent: it takes events from honeypot services on a local JSON-lines endpoint
//! ([`intake`]) into a durable on-disk spool ([`spool`]) before acknowledging them, pushes
//! them to the server within moments ([`uploader`]; retried with backoff, rejected ones to a
//! dead-letter file, never lost or duplicated), polls the server with its status and applies
//! the desired state from the answer ([`poller`]: network settings through netlink
//! ([`netconf`]), server address, proxy, certificate renewal). It talks to the server through
//! a [`honeysens_core::protocol::Transport`]: HTTPS from `honeysens-http` in the reference
//! binary, or in-process when embedded. The honeypot services the server assigns run through
//! a [`runtime::ContainerRuntime`] (Docker: [`runtime::docker`]; catch-all rules:
//! [`runtime::firewall`]), reconciled after every poll.
//!
//! ```no_run
//! # async fn demo(bundle: honeysens_core::protocol::SensorBundle,
//! #     factory: std::sync::Arc<dyn honeysens_sensor::agent::TransportFactory>) -> Result<(), Box<dyn std::error::Error>> {
//! use honeysens_sensor::agent::{AgentConfig, start};
//!
//! let agent = start(AgentConfig::new(bundle, "/var/lib/honeysens"), factory).await?;
//! // Honeypots write JSON lines to /var/lib/honeysens/intake.sock …
//! agent.shutdown().await;
//! # Ok(()) }
//! ```

pub mod agent;
pub mod intake;
#[cfg(target_os = "linux")]
pub mod netconf;
pub mod poller;
pub mod runtime;
pub mod spool;
pub mod uploader;

pub use honeysens_core as core;
