//! Timestamps: UTC with microsecond precision, the precision every backend stores.

use chrono::{DateTime, SubsecRound, Utc};

/// A point in time as stored by HoneySens.
pub type Timestamp = DateTime<Utc>;

/// The current time, truncated to microseconds so it survives a round trip through any store.
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(6)
}

/// Microseconds since the Unix epoch; the storage representation.
pub fn to_micros(ts: Timestamp) -> i64 {
    ts.timestamp_micros()
}

/// Inverse of [`to_micros`]; out-of-range values clamp to the epoch rather than fail.
pub fn from_micros(micros: i64) -> Timestamp {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}
