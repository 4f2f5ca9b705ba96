//! sensors endpoints.
