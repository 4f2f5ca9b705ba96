//! # honeysens-sensor
//!
//! The sensor agent (arrives with the sensor-agent issue): it polls the server with its status
//! and receives its desired state, applies network settings through netlink, runs honeypot
//! services as Docker containers (bollard) or processes, takes their events on a local
//! JSON-lines endpoint into a durable on-disk spool and pushes them to the server within
//! moments, never losing one. The built-in Rust honeypots (recon catch-all, ssh, http, …) live
//! here too.
//!
//! Today it only re-exports the core types the agent is built on:
//!
//! ```
//! use honeysens_sensor::core::model::Architecture;
//! assert_eq!(Architecture::Amd64.as_str(), "amd64");
//! ```

pub use honeysens_core as core;

pub mod netconf;
pub mod spool;
