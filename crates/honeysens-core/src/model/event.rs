//! Events reported by sensors, how they are queried and how they are updated.

use crate::error::{Error, Result, ValidationErrors};
use crate::ids::{DivisionId, EventId, IncidentId, SensorId};
use crate::time::Timestamp;
use crate::validate;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv6Addr};
use uuid::Uuid;

macro_rules! str_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $s:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $s)] $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// Stable storage and API name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $s,)* }
            }

            /// Parses the storage name.
            pub fn parse(s: &str) -> Result<Self> {
                match s {
                    $($s => Ok($name::$variant),)*
                    _ => Err(Error::invalid(stringify!($name), "unknown_value", format!("unknown value {s:?}"))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum! {
    /// Transport protocol of the traffic behind an event.
    Protocol {
        /// TCP.
        Tcp = "tcp",
        /// UDP.
        Udp = "udp",
        /// ICMP or ICMPv6.
        Icmp = "icmp",
        /// Anything else or not known.
        Unknown = "unknown",
    }
}

str_enum! {
    /// What kind of activity an event represents; assigned on the server.
    Classification {
        /// Not classified.
        Unknown = "unknown",
        /// ICMP traffic (ping sweeps).
        Icmp = "icmp",
        /// A few packets or a handshake with no further interaction.
        ConnectionAttempt = "connection_attempt",
        /// Interaction with a honeypot (logins, commands, requests).
        HoneypotInteraction = "honeypot_interaction",
        /// A port or network scan.
        PortScan = "port_scan",
    }
}

str_enum! {
    /// Workflow state of an event.
    EventStatus {
        /// Nobody looked at it yet.
        New = "new",
        /// Someone is working on it.
        InProgress = "in_progress",
        /// Handled.
        Resolved = "resolved",
        /// Judged harmless.
        Ignored = "ignored",
    }
}

str_enum! {
    /// How urgent an event is; derived from its type code.
    Severity {
        /// For the record.
        Info = "info",
        /// Worth a look.
        Low = "low",
        /// Likely hostile.
        Medium = "medium",
        /// Hostile interaction.
        High = "high",
        /// Act now.
        Critical = "critical",
    }
}

str_enum! {
    /// Kind of a detail line.
    DetailKind {
        /// A generic note.
        Generic = "generic",
        /// Something the attacker sent or did.
        Interaction = "interaction",
    }
}

/// A timestamped line of detail, e.g. one command typed into a fake shell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventDetail {
    /// When it happened.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub timestamp: Timestamp,
    /// What kind of line.
    pub kind: DetailKind,
    /// The content; not truncated.
    pub data: String,
}

/// A captured packet belonging to an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPacket {
    /// Capture time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub timestamp: Timestamp,
    /// Protocol.
    pub protocol: Protocol,
    /// Destination port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Header fields (e.g. TCP flags), free-form.
    #[serde(default)]
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// Payload, base64.
    #[serde(default)]
    pub payload: Option<String>,
}

/// The part of an event a sensor reports and a store keeps verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventData {
    /// Client-supplied id; makes uploads idempotent.
    pub uid: Uuid,
    /// Reporting sensor.
    pub sensor_id: SensorId,
    /// Honeypot service that saw it.
    #[serde(default)]
    pub service: Option<String>,
    /// When it happened (first packet), sensor clock; never overwritten later.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub timestamp: Timestamp,
    /// Attacker address.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub source_ip: IpAddr,
    /// Attacker port.
    #[serde(default)]
    pub source_port: Option<u16>,
    /// Address attacked.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub dest_ip: Option<IpAddr>,
    /// Port attacked.
    #[serde(default)]
    pub dest_port: Option<u16>,
    /// Transport protocol.
    pub protocol: Protocol,
    /// Stable type code from the taxonomy, e.g. `ssh.login.failed`.
    pub type_code: String,
    /// Classification.
    pub classification: Classification,
    /// Severity.
    pub severity: Severity,
    /// One-line summary.
    pub summary: String,
}

/// Longest summary accepted.
pub const MAX_SUMMARY_LEN: usize = 1024;
/// Longest detail line accepted.
pub const MAX_DETAIL_LEN: usize = 64 * 1024;
/// Most details and most packets per event.
pub const MAX_DETAILS: usize = 1024;

impl EventData {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        self.validate_into(&mut e);
        e.into_result()
    }

    fn validate_into(&self, e: &mut ValidationErrors) {
        if !valid_type_code(&self.type_code) {
            e.add(
                "type_code",
                "invalid_type_code",
                "must be lowercase dotted segments like ssh.login.failed",
            );
        }
        if self.summary.is_empty() {
            e.add("summary", "required", "must not be empty");
        }
        validate::text(e, "summary", &self.summary, MAX_SUMMARY_LEN);
        if let Some(service) = &self.service {
            validate::name(e, "service", service);
        }
        if self.source_port == Some(0) {
            e.add("source_port", "out_of_range", "must be between 1 and 65535");
        }
    }
}

/// Whether `code` is a well-formed type code: 1–8 dot-separated `[a-z0-9_]` segments, ≤ 64 bytes.
pub fn valid_type_code(code: &str) -> bool {
    code.len() <= 64
        && code.split('.').count() <= 8
        && code.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

/// An event as a sensor submits it: data plus details and packets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewEvent {
    /// The reported fields.
    #[serde(flatten)]
    pub data: EventData,
    /// Detail lines.
    #[serde(default)]
    pub details: Vec<EventDetail>,
    /// Captured packets.
    #[serde(default)]
    pub packets: Vec<EventPacket>,
}

impl NewEvent {
    /// Checks every field, including detail and packet bounds.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        self.data.validate_into(&mut e);
        if self.details.len() > MAX_DETAILS {
            e.add(
                "details",
                "too_many",
                format!("at most {MAX_DETAILS} details"),
            );
        }
        if self.packets.len() > MAX_DETAILS {
            e.add(
                "packets",
                "too_many",
                format!("at most {MAX_DETAILS} packets"),
            );
        }
        for (i, d) in self.details.iter().enumerate() {
            validate::text(
                &mut e,
                &format!("details.{i}.data"),
                &d.data,
                MAX_DETAIL_LEN,
            );
        }
        e.into_result()
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Server-assigned id.
    pub id: EventId,
    /// Division of the sensor at arrival.
    pub division_id: DivisionId,
    /// Arrival time at the server.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub received_at: Timestamp,
    /// Workflow state.
    pub status: EventStatus,
    /// Analyst comment.
    pub comment: Option<String>,
    /// Moved to the archive.
    pub archived: bool,
    /// The incident grouping this event with others from the same source, if any.
    #[serde(default)]
    pub incident_id: Option<IncidentId>,
    /// Reported fields.
    #[serde(flatten)]
    pub data: EventData,
}

/// Details and packets of a stored event, fetched separately from listings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPayload {
    /// Detail lines.
    pub details: Vec<EventDetail>,
    /// Captured packets.
    pub packets: Vec<EventPacket>,
}

/// Matches an address: one address, a CIDR network or an inclusive range — compared as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum IpMatch {
    /// Exactly this address.
    Addr {
        /// The address.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        addr: IpAddr,
    },
    /// Any address in this network.
    Net {
        /// The network.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        net: IpNet,
    },
    /// Any address from `start` to `end`, inclusive.
    Range {
        /// First address.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        start: IpAddr,
        /// Last address.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        end: IpAddr,
    },
}

/// Maps an address into one 128-bit space (IPv4 as `::ffff:a.b.c.d`) so ranges compare numerically.
pub fn ip_key(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Inverse of [`ip_key`].
pub fn ip_from_key(key: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(key);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

impl IpMatch {
    /// The inclusive key range this matcher covers (see [`ip_key`]).
    pub fn key_range(&self) -> ([u8; 16], [u8; 16]) {
        match *self {
            IpMatch::Addr { addr } => (ip_key(addr), ip_key(addr)),
            IpMatch::Net { net } => (ip_key(net.network()), ip_key(net.broadcast())),
            IpMatch::Range { start, end } => (ip_key(start), ip_key(end)),
        }
    }

    /// Whether `ip` is matched.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (lo, hi) = self.key_range();
        let k = ip_key(ip);
        lo <= k && k <= hi
    }

    /// Checks that a range is not reversed.
    pub fn validate(&self, field: &str) -> Result<()> {
        let (lo, hi) = self.key_range();
        if lo > hi {
            return Err(Error::invalid(
                field,
                "reversed_range",
                "range start must not exceed its end",
            ));
        }
        Ok(())
    }
}

/// Direction of a listing by event time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SortOrder {
    /// Newest first.
    #[default]
    Desc,
    /// Oldest first.
    Asc,
}

/// Conditions on events; every set field must match. Empty lists mean "any".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventQuery {
    /// Restrict to these divisions (authorisation scope); `None` means all.
    #[serde(default)]
    pub divisions: Option<Vec<DivisionId>>,
    /// Any of these sensors.
    #[serde(default)]
    pub sensors: Vec<SensorId>,
    /// Any of these classifications.
    #[serde(default)]
    pub classifications: Vec<Classification>,
    /// Any of these type codes.
    #[serde(default)]
    pub type_codes: Vec<String>,
    /// Any of these statuses.
    #[serde(default)]
    pub statuses: Vec<EventStatus>,
    /// Event time at or after.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub from: Option<Timestamp>,
    /// Event time before.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub until: Option<Timestamp>,
    /// Archived or live; `None` means both.
    #[serde(default)]
    pub archived: Option<bool>,
    /// Source address match.
    #[serde(default)]
    pub source: Option<IpMatch>,
    /// Destination port.
    #[serde(default)]
    pub dest_port: Option<u16>,
    /// Protocol.
    #[serde(default)]
    pub protocol: Option<Protocol>,
    /// Case-insensitive substring of source address, summary or comment.
    #[serde(default)]
    pub text: Option<String>,
    /// Only events of this incident.
    #[serde(default)]
    pub incident: Option<IncidentId>,
    /// Any of these severities.
    #[serde(default)]
    pub severities: Vec<Severity>,
}

impl EventQuery {
    /// Checks bounds of the query itself.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        if let Some(source) = &self.source
            && let Err(Error::Invalid(inner)) = source.validate("source")
        {
            e.0.extend(inner.0);
        }
        if let Some(text) = &self.text {
            validate::text(&mut e, "text", text, 256);
        }
        if let (Some(from), Some(until)) = (self.from, self.until)
            && from > until
        {
            e.add("from", "reversed_range", "must not be after `until`");
        }
        e.into_result()
    }

    /// Whether a stored event matches, evaluated in memory (the stores evaluate it in SQL).
    pub fn matches(&self, ev: &Event) -> bool {
        let d = &ev.data;
        self.divisions
            .as_ref()
            .is_none_or(|v| v.contains(&ev.division_id))
            && (self.sensors.is_empty() || self.sensors.contains(&d.sensor_id))
            && (self.classifications.is_empty() || self.classifications.contains(&d.classification))
            && (self.type_codes.is_empty() || self.type_codes.contains(&d.type_code))
            && (self.statuses.is_empty() || self.statuses.contains(&ev.status))
            && self.from.is_none_or(|f| d.timestamp >= f)
            && self.until.is_none_or(|u| d.timestamp < u)
            && self.archived.is_none_or(|a| ev.archived == a)
            && self.source.is_none_or(|s| s.contains(d.source_ip))
            && self.dest_port.is_none_or(|p| d.dest_port == Some(p))
            && self.protocol.is_none_or(|p| d.protocol == p)
            && self.incident.is_none_or(|i| ev.incident_id == Some(i))
            && (self.severities.is_empty() || self.severities.contains(&d.severity))
            && self.text.as_ref().is_none_or(|t| {
                let t = t.to_lowercase();
                d.source_ip.to_string().contains(&t)
                    || d.summary.to_lowercase().contains(&t)
                    || ev
                        .comment
                        .as_ref()
                        .is_some_and(|c| c.to_lowercase().contains(&t))
            })
    }
}

/// Position in an event listing: the last row seen, by event time then id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventCursor {
    /// Event time of the last row.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub timestamp: Timestamp,
    /// Id of the last row.
    pub id: EventId,
}

impl EventCursor {
    /// Opaque text form for APIs.
    pub fn encode(&self) -> String {
        format!("{}.{}", crate::time::to_micros(self.timestamp), self.id.0)
    }

    /// Parses [`EventCursor::encode`] output.
    pub fn decode(s: &str) -> Result<Self> {
        let bad = || Error::invalid("cursor", "invalid_cursor", "malformed page cursor");
        let (ts, id) = s.split_once('.').ok_or_else(bad)?;
        let ts: i64 = ts.parse().map_err(|_| bad())?;
        let id: i64 = id.parse().map_err(|_| bad())?;
        Ok(EventCursor {
            timestamp: crate::time::from_micros(ts),
            id: EventId(id),
        })
    }
}

/// Largest page a listing returns.
pub const MAX_PAGE_SIZE: u32 = 512;

/// Which page of a listing to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PageRequest {
    /// Continue after this row.
    #[serde(default)]
    pub after: Option<EventCursor>,
    /// Rows per page, 1–512.
    pub limit: u32,
    /// Direction.
    #[serde(default)]
    pub order: SortOrder,
}

impl PageRequest {
    /// The first page of `limit` rows, newest first.
    pub fn first(limit: u32) -> Self {
        PageRequest {
            after: None,
            limit,
            order: SortOrder::Desc,
        }
    }

    /// Checks the page size.
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 || self.limit > MAX_PAGE_SIZE {
            return Err(Error::invalid(
                "limit",
                "out_of_range",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(())
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// Rows.
    pub items: Vec<T>,
    /// Cursor of the next page; `None` on the last page.
    pub next: Option<EventCursor>,
}

/// Which events a bulk change touches: `ids` (when given) and `query` must both match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventSelection {
    /// Only these events.
    #[serde(default)]
    pub ids: Option<Vec<EventId>>,
    /// And only events matching this query (carries the division scope).
    #[serde(default)]
    pub query: EventQuery,
}

/// A bulk change to events; unset fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventUpdate {
    /// New status.
    #[serde(default)]
    pub status: Option<EventStatus>,
    /// New comment; `Some(None)` clears it.
    #[serde(default)]
    pub comment: Option<Option<String>>,
    /// Archive or restore.
    #[serde(default)]
    pub archived: Option<bool>,
}

impl EventUpdate {
    /// Checks the comment length and that something changes.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        if self.status.is_none() && self.comment.is_none() && self.archived.is_none() {
            e.add("update", "empty", "nothing to change");
        }
        if let Some(Some(c)) = &self.comment {
            validate::text(&mut e, "comment", c, 16 * 1024);
        }
        e.into_result()
    }
}

/// What a bulk insert did with each submitted event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InsertReport {
    /// Newly stored events with their ids, in submission order.
    pub inserted: Vec<(Uuid, EventId)>,
    /// Events whose uid was already stored (a retried upload); not stored again.
    pub duplicates: Vec<Uuid>,
}
