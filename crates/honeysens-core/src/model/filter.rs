//! Event filters: a division's rules that drop or auto-resolve known noise.

use crate::error::{Result, ValidationErrors};
use crate::ids::{DivisionId, FilterId, SensorId};
use crate::model::event::{Classification, EventData, IpMatch, Protocol};
use crate::time::Timestamp;
use crate::validate;
use serde::{Deserialize, Serialize};

/// What happens to an event a filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FilterAction {
    /// Not stored at all; only the hit counter records it.
    Drop,
    /// Stored with status `resolved`, so it raises no alert.
    Resolve,
}

impl FilterAction {
    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            FilterAction::Drop => "drop",
            FilterAction::Resolve => "resolve",
        }
    }

    /// Parses the storage name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "drop" => Ok(Self::Drop),
            "resolve" => Ok(Self::Resolve),
            _ => Err(crate::Error::invalid(
                "action",
                "unknown_value",
                "unknown filter action",
            )),
        }
    }
}

/// One condition of a filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "field", rename_all = "snake_case")]
pub enum FilterCondition {
    /// Classification equals.
    Classification {
        /// Expected classification.
        value: Classification,
    },
    /// Type code equals, or starts with `prefix.` when written as `prefix.*`.
    TypeCode {
        /// Code or `prefix.*`.
        value: String,
    },
    /// Source address matches (address, CIDR or range; compared numerically).
    Source {
        /// The matcher.
        value: IpMatch,
    },
    /// Destination port within `from..=to`.
    DestPort {
        /// First port.
        from: u16,
        /// Last port.
        to: u16,
    },
    /// Protocol equals.
    Protocol {
        /// Expected protocol.
        value: Protocol,
    },
    /// Reported by this sensor.
    Sensor {
        /// The sensor.
        value: SensorId,
    },
    /// Seen by this service.
    Service {
        /// Service name.
        value: String,
    },
}

impl FilterCondition {
    /// Whether the event satisfies this condition.
    pub fn matches(&self, ev: &EventData) -> bool {
        match self {
            FilterCondition::Classification { value } => ev.classification == *value,
            FilterCondition::TypeCode { value } => match value.strip_suffix(".*") {
                Some(prefix) => ev
                    .type_code
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.')),
                None => ev.type_code == *value,
            },
            FilterCondition::Source { value } => value.contains(ev.source_ip),
            FilterCondition::DestPort { from, to } => {
                ev.dest_port.is_some_and(|p| *from <= p && p <= *to)
            }
            FilterCondition::Protocol { value } => ev.protocol == *value,
            FilterCondition::Sensor { value } => ev.sensor_id == *value,
            FilterCondition::Service { value } => ev.service.as_deref() == Some(value.as_str()),
        }
    }
}

/// The editable part of an [`EventFilter`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventFilterSpec {
    /// Owning division; the filter applies to its sensors' events.
    pub division_id: DivisionId,
    /// Display name.
    pub name: String,
    /// Why this filter exists.
    #[serde(default)]
    pub description: Option<String>,
    /// Inactive filters match nothing.
    pub enabled: bool,
    /// What to do with matches.
    pub action: FilterAction,
    /// All must match; at least one.
    pub conditions: Vec<FilterCondition>,
}

impl EventFilterSpec {
    /// Checks every field; `require_description` comes from the settings.
    pub fn validate(&self, require_description: bool) -> Result<()> {
        let mut e = ValidationErrors::default();
        validate::name(&mut e, "name", &self.name);
        match &self.description {
            Some(d) => validate::text(&mut e, "description", d, 4096),
            None if require_description => {
                e.add("description", "required", "a description is required")
            }
            None => {}
        }
        if self.conditions.is_empty() {
            e.add("conditions", "required", "at least one condition");
        }
        for (i, c) in self.conditions.iter().enumerate() {
            match c {
                FilterCondition::Source { value } if value.validate("x").is_err() => {
                    e.add(
                        format!("conditions.{i}.value"),
                        "reversed_range",
                        "range start must not exceed its end",
                    );
                }
                FilterCondition::DestPort { from, to } if (*from == 0 || from > to) => {
                    e.add(
                        format!("conditions.{i}"),
                        "out_of_range",
                        "ports must satisfy 1 <= from <= to",
                    );
                }
                FilterCondition::TypeCode { value } => {
                    let code = value.strip_suffix(".*").unwrap_or(value);
                    if !crate::model::event::valid_type_code(code) {
                        e.add(
                            format!("conditions.{i}.value"),
                            "invalid_type_code",
                            "not a type code",
                        );
                    }
                }
                _ => {}
            }
        }
        e.into_result()
    }

    /// Whether the filter is enabled and every condition matches.
    pub fn matches(&self, ev: &EventData) -> bool {
        self.enabled && !self.conditions.is_empty() && self.conditions.iter().all(|c| c.matches(ev))
    }
}

/// A stored event filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventFilter {
    /// Server-assigned id.
    pub id: FilterId,
    /// Editable fields.
    #[serde(flatten)]
    pub spec: EventFilterSpec,
    /// How many events it matched.
    pub hits: u64,
    /// Creation time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}
