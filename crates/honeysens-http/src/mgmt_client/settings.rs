//! settings endpoints.
