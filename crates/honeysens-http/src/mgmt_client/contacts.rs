//! contacts endpoints.
