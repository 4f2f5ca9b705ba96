//! # honeysens-py
//!
//! Python bindings (pyo3 + maturin, arrives after the management API): a sync and an async
//! client for the management API and typed event objects for analysts, shipped with `.pyi`
//! stubs. Today this crate only names the core types the bindings will wrap:
//!
//! ```
//! use honeysens_py::core::model::EventStatus;
//! assert_eq!(EventStatus::parse("resolved").unwrap(), EventStatus::Resolved);
//! ```

pub use honeysens_core as core;
