//! Incidents (events of one source grouped across sensors and services), the ingest options
//! that create them, and event statistics.

use crate::ids::{DivisionId, EventId, IncidentId, SensorId};
use crate::model::event::{Classification, EventStatus, Severity};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::time::Duration;

/// Events from one source address in one division, close together in time.
///
/// A host scanning the network hits many sensors; all of it lands in one incident, which is
/// alerted on once (then at most once per alert interval).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Incident {
    /// Server-assigned id.
    pub id: IncidentId,
    /// Division of the sensors that saw it.
    pub division_id: DivisionId,
    /// The attacker.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub source_ip: IpAddr,
    /// Event time of its first event.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub first_seen: Timestamp,
    /// Event time of its latest event.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub last_seen: Timestamp,
    /// Events grouped into it.
    pub event_count: u64,
    /// Distinct sensors among its events.
    pub sensor_count: u64,
    /// Highest severity among its events.
    pub severity: Severity,
    /// Classification of its most severe event.
    pub classification: Classification,
    /// Workflow state.
    pub status: EventStatus,
    /// Analyst comment.
    pub comment: Option<String>,
    /// Moved to the archive.
    pub archived: bool,
    /// When the last alert for it went out.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_alert_at: Option<Timestamp>,
    /// Creation time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// Conditions on incidents; every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IncidentQuery {
    /// Restrict to these divisions (authorisation scope); `None` means all.
    #[serde(default)]
    pub divisions: Option<Vec<DivisionId>>,
    /// Any of these statuses.
    #[serde(default)]
    pub statuses: Vec<EventStatus>,
    /// Archived or live; `None` means both.
    #[serde(default)]
    pub archived: Option<bool>,
    /// Latest event at or after.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub from: Option<Timestamp>,
    /// Latest event before.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub until: Option<Timestamp>,
    /// This source address.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub source_ip: Option<IpAddr>,
}

/// How [`crate::store::EventStore::ingest_events`] groups and fans out a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestOptions {
    /// Group stored events with status `new` into incidents by (division, source address):
    /// an event joins the newest live (new / in progress, not archived) incident of its source
    /// whose `last_seen` is at most this long before the event; otherwise a new incident starts.
    /// `None` stores events without incidents.
    pub incident_window: Option<Duration>,
    /// Minimum gap between two alerts of one incident.
    pub alert_interval: Duration,
    /// In the same transaction, enqueue an [`ALERT_JOB`] job for every incident that received
    /// events and has none pending, due at `last_alert_at + alert_interval` (or now).
    pub alerts: bool,
    /// In the same transaction, enqueue one [`FORWARD_JOB`] job carrying the ids of the stored
    /// events (SIEM output).
    pub forward: bool,
}

impl IngestOptions {
    /// Plain storage: no incidents, no jobs.
    pub const PLAIN: IngestOptions = IngestOptions {
        incident_window: None,
        alert_interval: Duration::ZERO,
        alerts: false,
        forward: false,
    };
}

/// Job kind of an incident alert; payload `{"incident_id": <id>}`.
pub const ALERT_JOB: &str = "alert.incident";
/// Job kind of SIEM forwarding; payload `{"event_ids": [<id>, …]}`.
pub const FORWARD_JOB: &str = "events.forward";

/// What an ingest did to one incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentTouch {
    /// The incident.
    pub id: IncidentId,
    /// Whether this batch created it.
    pub created: bool,
    /// Events of this batch that joined it.
    pub events: u64,
    /// Whether this batch enqueued its alert job.
    pub alert_enqueued: bool,
}

/// What [`crate::store::EventStore::ingest_events`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestReport {
    /// Newly stored events with their ids, in submission order.
    pub inserted: Vec<(uuid::Uuid, EventId)>,
    /// Events whose uid was already stored; not stored again.
    pub duplicates: Vec<uuid::Uuid>,
    /// Incidents created or extended.
    pub incidents: Vec<IncidentTouch>,
}

/// A change to incidents: the same fields as an event change. Status and archive flag are
/// applied to the incident's events too; the comment only to the incident.
pub type IncidentUpdate = crate::model::event::EventUpdate;

/// Width of one timeline bucket of [`EventStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StatsBucket {
    /// One hour (UTC).
    Hour,
    /// One day (UTC).
    #[default]
    Day,
    /// One calendar month (UTC).
    Month,
}

/// A count under a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Count<K> {
    /// The key.
    pub key: K,
    /// How many events.
    pub count: u64,
}

/// Events per time bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelinePoint {
    /// Start of the bucket (UTC).
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub start: Timestamp,
    /// Events in it.
    pub count: u64,
}

/// Aggregates over the events matching a query.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventStats {
    /// Matching events.
    pub total: u64,
    /// Per status (only statuses that occur).
    pub by_status: Vec<Count<EventStatus>>,
    /// Per classification (only those that occur).
    pub by_classification: Vec<Count<Classification>>,
    /// Per bucket, ascending; empty buckets left out.
    pub timeline: Vec<TimelinePoint>,
    /// Most frequent source addresses, most first.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Count<String>>))]
    pub top_sources: Vec<Count<IpAddr>>,
    /// Most frequent destination ports, most first.
    pub top_ports: Vec<Count<u16>>,
    /// Per sensor, most first.
    pub by_sensor: Vec<Count<SensorId>>,
}

/// Largest `top` of a stats request.
pub const MAX_STATS_TOP: u32 = 100;
