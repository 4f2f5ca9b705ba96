//! Honeypot services, their per-architecture revisions and where they run.

use crate::error::{Result, ValidationErrors};
use crate::ids::{SensorId, ServiceId, ServiceRevisionId};
use crate::model::event::Protocol;
use crate::time::Timestamp;
use crate::validate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A honeypot service (e.g. `recon`, `ssh`, `cowrie`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Service {
    /// Server-assigned id.
    pub id: ServiceId,
    /// Editable fields.
    #[serde(flatten)]
    pub spec: ServiceSpec,
    /// Creation time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// The editable part of a [`Service`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceSpec {
    /// Unique name; also the container name on sensors.
    pub name: String,
    /// Image repository in the server's registry, e.g. `honeysens/recon`.
    pub repository: String,
    /// Description.
    #[serde(default)]
    pub description: String,
}

impl ServiceSpec {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        validate::login(&mut e, "name", &self.name);
        let repo_ok = !self.repository.is_empty()
            && self.repository.len() <= 255
            && self.repository.split('/').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
            });
        if !repo_ok {
            e.add(
                "repository",
                "invalid_repository",
                "must be a lowercase image repository path",
            );
        }
        validate::text(&mut e, "description", &self.description, 4096);
        e.into_result()
    }
}

/// A CPU architecture images are built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// x86-64.
    Amd64,
    /// 64-bit ARM.
    Arm64,
    /// 32-bit ARM with hardware float.
    Armhf,
}

impl Architecture {
    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::Amd64 => "amd64",
            Architecture::Arm64 => "arm64",
            Architecture::Armhf => "armhf",
        }
    }

    /// Parses the storage name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "amd64" => Ok(Self::Amd64),
            "arm64" => Ok(Self::Arm64),
            "armhf" => Ok(Self::Armhf),
            _ => Err(crate::Error::invalid(
                "architecture",
                "unknown_value",
                "unknown architecture",
            )),
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One revision of a service for one architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceRevision {
    /// Server-assigned id.
    pub id: ServiceRevisionId,
    /// Editable fields.
    #[serde(flatten)]
    pub spec: ServiceRevisionSpec,
    /// Upload time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// Metadata of one uploaded service image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceRevisionSpec {
    /// Owning service.
    pub service_id: ServiceId,
    /// Revision label, unique per service and architecture.
    pub revision: String,
    /// Architecture of the image.
    pub architecture: Architecture,
    /// Description of this revision.
    #[serde(default)]
    pub description: String,
    /// `"2222/tcp" → 22`: container port 2222/tcp is reachable on sensor port 22.
    #[serde(default)]
    pub port_assignment: BTreeMap<String, u16>,
    /// Receives every inbound connection no other service takes.
    #[serde(default)]
    pub catch_all: bool,
    /// Runs in the host's network namespace.
    #[serde(default)]
    pub raw_network_access: bool,
    /// Digest of the image manifest in the registry (`sha256:…`).
    pub image_digest: String,
}

/// Parses a `portAssignment` key like `2222/tcp` into port and protocol.
pub fn parse_container_port(key: &str) -> Option<(u16, Protocol)> {
    let (port, proto) = key.split_once('/')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let proto = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return None,
    };
    Some((port, proto))
}

impl ServiceRevisionSpec {
    /// Checks every field, including that no two container ports map to one sensor port.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        validate::name(&mut e, "revision", &self.revision);
        validate::text(&mut e, "description", &self.description, 4096);
        let mut seen = std::collections::HashSet::new();
        for (key, host_port) in &self.port_assignment {
            match parse_container_port(key) {
                None => e.add(
                    format!("port_assignment.{key}"),
                    "invalid_port",
                    "keys must look like 2222/tcp or 53/udp",
                ),
                Some((_, proto)) => {
                    validate::port(&mut e, &format!("port_assignment.{key}"), *host_port);
                    if !seen.insert((proto, *host_port)) {
                        e.add(
                            format!("port_assignment.{key}"),
                            "duplicate_port",
                            "two container ports map to the same sensor port",
                        );
                    }
                }
            }
        }
        let digest_ok = self
            .image_digest
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()));
        if !digest_ok {
            e.add("image_digest", "invalid_digest", "must be sha256:<64 hex>");
        }
        e.into_result()
    }
}

/// A service assigned to a sensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceAssignment {
    /// The sensor.
    pub sensor_id: SensorId,
    /// The service.
    pub service_id: ServiceId,
    /// Pinned revision label; `None` runs the newest revision.
    #[serde(default)]
    pub revision: Option<String>,
}
