//! Background jobs in a durable queue: notifications, retention, timeout checks.

use crate::error::{Result, ValidationErrors};
use crate::ids::JobId;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Lifecycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for `run_at`.
    Queued,
    /// Claimed by a worker whose lease has not expired.
    Running,
    /// Finished successfully.
    Done,
    /// Gave up after `max_attempts`.
    Failed,
}

impl JobState {
    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    /// Parses the storage name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "done" => Ok(Self::Done),
            "failed" => Ok(Self::Failed),
            _ => Err(crate::Error::invalid(
                "state",
                "unknown_value",
                "unknown job state",
            )),
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    /// Job type, e.g. `notify.email`.
    pub kind: String,
    /// Job input.
    pub payload: serde_json::Value,
    /// Earliest start.
    pub run_at: Timestamp,
    /// Attempts before the job is marked failed (≥ 1).
    pub max_attempts: u32,
}

impl NewJob {
    /// A job due now with three attempts.
    pub fn now(kind: impl Into<String>, payload: serde_json::Value) -> Self {
        NewJob {
            kind: kind.into(),
            payload,
            run_at: crate::time::now(),
            max_attempts: 3,
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        if !crate::model::event::valid_type_code(&self.kind) {
            e.add("kind", "invalid_kind", "must be lowercase dotted segments");
        }
        if self.max_attempts == 0 || self.max_attempts > 100 {
            e.add("max_attempts", "out_of_range", "must be between 1 and 100");
        }
        e.into_result()
    }
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Server-assigned id.
    pub id: JobId,
    /// Job type.
    pub kind: String,
    /// Job input.
    pub payload: serde_json::Value,
    /// Lifecycle state.
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempt limit.
    pub max_attempts: u32,
    /// Earliest (next) start.
    pub run_at: Timestamp,
    /// Worker holding the lease.
    pub locked_by: Option<String>,
    /// Lease expiry; after it another worker may claim the job.
    pub locked_until: Option<Timestamp>,
    /// Error of the last failed attempt.
    pub last_error: Option<String>,
    /// Enqueue time.
    pub created_at: Timestamp,
}
