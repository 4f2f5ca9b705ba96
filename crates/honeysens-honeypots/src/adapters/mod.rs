//! Adapters for upstream honeypots: translate the JSON log lines of [cowrie] and [OpenCanary]
//! into [`IntakeEvent`]s with HoneySens type codes (`docs/events.md`), and [`follow`] a growing
//! log file, delivering each translated line to the agent through an [`EventSink`].
//!
//! Translation is stateless and per line: a line either becomes one event, is deliberately
//! skipped (`Ok(None)`: startup noise, key exchange details, session bookkeeping, …) or is
//! malformed (`Err`). Facts go into detail lines as `key: value`.
//!
//! [cowrie]: https://github.com/cowrie/cowrie
//! [OpenCanary]: https://github.com/thinkst/opencanary

pub mod cowrie;
mod follow;
pub mod opencanary;

pub use follow::{FollowOptions, FollowStats, follow, follow_with};

use honeysens_core::model::{DetailKind, EventDetail};
use honeysens_core::protocol::IntakeEvent;
use honeysens_core::time::Timestamp;
use std::net::IpAddr;

/// Why a log line could not be translated or a log file not followed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The line is not a JSON object.
    #[error("not a JSON object: {0}")]
    Json(#[from] serde_json::Error),
    /// A field the event needs is absent or has the wrong JSON type.
    #[error("field {0:?} missing or not of the expected type")]
    Missing(&'static str),
    /// A field has a value that cannot be used (bad address, port, timestamp).
    #[error("field {field:?} has an invalid value {value:?}")]
    Invalid {
        /// The field's name in the upstream log.
        field: &'static str,
        /// Its value, as found.
        value: String,
    },
    /// The format name is not one of the supported ones.
    #[error("unknown log format {0:?}: use cowrie or opencanary")]
    UnknownFormat(String),
    /// Reading the log or reading/writing the offset state file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: std::path::PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The offset state file exists but is not ours or is corrupt.
    #[error("offset state file {0} is corrupt; delete it to start from the beginning")]
    State(std::path::PathBuf),
    /// The event sink was closed, so nothing can be delivered any more.
    #[error("event sink: {0}")]
    Sink(#[from] crate::Error),
}

/// The upstream log formats understood here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// cowrie's `output_jsonlog` (`cowrie.json`).
    Cowrie,
    /// OpenCanary's JSON log (`logtype` codes).
    OpenCanary,
}

impl Format {
    /// The name used on command lines and in service metadata.
    pub fn name(self) -> &'static str {
        match self {
            Format::Cowrie => "cowrie",
            Format::OpenCanary => "opencanary",
        }
    }

    /// Translates one line of this format; see [`cowrie::translate`] and
    /// [`opencanary::translate`].
    pub fn translate(self, line: &str) -> Result<Option<IntakeEvent>, AdapterError> {
        match self {
            Format::Cowrie => cowrie::translate(line),
            Format::OpenCanary => opencanary::translate(line),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = AdapterError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cowrie" => Ok(Format::Cowrie),
            "opencanary" => Ok(Format::OpenCanary),
            other => Err(AdapterError::UnknownFormat(other.to_owned())),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Most bytes of a summary (the event schema's limit).
const SUMMARY_MAX: usize = 1024;

/// Cuts `s` to the summary limit on a character boundary.
pub(crate) fn summary(s: String) -> String {
    if s.len() <= SUMMARY_MAX {
        return s;
    }
    let mut end = SUMMARY_MAX - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// A `key: value` detail line; control characters in the value are escaped so that one
/// detail stays one line (attackers put `\r\n` into user names and commands).
pub(crate) fn detail(ts: Timestamp, kind: DetailKind, key: &str, value: &str) -> EventDetail {
    EventDetail {
        timestamp: ts,
        kind,
        data: format!("{key}: {}", escape(value)),
    }
}

/// Escapes control characters as `\n`, `\r`, `\t` or `\u{..}`; everything else stays.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Parses an address field.
pub(crate) fn ip(field: &'static str, value: &str) -> Result<IpAddr, AdapterError> {
    value.trim().parse().map_err(|_| AdapterError::Invalid {
        field,
        value: value.to_owned(),
    })
}

/// A port from a JSON number or a numeric string (OpenCanary's port-scan lines carry strings);
/// `-1`, 0 and absent mean "none" (OpenCanary writes -1 for internal messages).
pub(crate) fn port(
    field: &'static str,
    v: Option<&serde_json::Value>,
) -> Result<Option<u16>, AdapterError> {
    let invalid = |value: String| AdapterError::Invalid { field, value };
    let n = match v {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_i64().ok_or_else(|| invalid(n.to_string()))?,
        Some(serde_json::Value::String(s)) => {
            s.trim().parse::<i64>().map_err(|_| invalid(s.clone()))?
        }
        Some(other) => return Err(invalid(other.to_string())),
    };
    match n {
        -1 | 0 => Ok(None),
        p => u16::try_from(p)
            .map(Some)
            .map_err(|_| invalid(p.to_string())),
    }
}
