//! platforms endpoints.
