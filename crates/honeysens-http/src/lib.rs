//! # honeysens-http
//!
//! The HTTPS face of HoneySens (arrives with the PKI/server issue and the management-API issue):
//! a hyper/axum server with its own tokio-rustls accept loop so sensor client certificates reach
//! the handlers as a `SensorIdentity`; the management API for people (sessions, API tokens,
//! roles, divisions); the sensor API (status poll, event upload); a read-only OCI registry for
//! honeypot images; the server-rendered web console; and a typed client for all of it.
//!
//! Today it only re-exports the core types the server is built on:
//!
//! ```
//! use honeysens_http::core::model::Role;
//! assert!(Role::Admin > Role::Observer);
//! ```

pub use honeysens_core as core;
