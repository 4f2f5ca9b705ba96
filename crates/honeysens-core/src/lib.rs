//! # honeysens-core
//!
//! The domain of HoneySens — a network of honeypot sensors that detects attackers inside an
//! organisation's network. This crate holds the model (divisions, users, contacts, sensors and
//! their status reports, platforms and firmware, honeypot services and their revisions, events,
//! event filters, settings, CA records, background jobs), the validation rules for every input,
//! and the storage traits that `honeysens-store` implements for SQLite, PostgreSQL and
//! MySQL/MariaDB, and the blob storage trait. It performs no I/O itself.
//!
//! ```
//! use honeysens_core::model::{SensorSpec, NetworkConfig};
//! use honeysens_core::ids::DivisionId;
//!
//! let mut sensor = SensorSpec::new("lab-1", DivisionId(1));
//! sensor.update_interval = Some(90); // minutes: outside 1–60
//! let err = sensor.validate().unwrap_err();
//! assert_eq!(err.code(), "validation.failed");
//! assert!(err.to_string().contains("update_interval"));
//! ```

pub mod blob;
pub mod error;
pub mod ids;
pub mod model;
pub mod package;
pub mod password;
pub mod pki;
pub mod protocol;
pub mod store;
pub mod taxonomy;
pub mod time;
pub mod validate;

pub use error::{Error, ErrorKind, Result};
pub use store::Store;
