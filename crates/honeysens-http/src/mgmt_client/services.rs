//! services endpoints.
