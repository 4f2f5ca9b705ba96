//! Sensors, their configuration and the status reports they send.

use crate::error::{Result, ValidationErrors};
use crate::ids::{DivisionId, FirmwareId, SensorId};
use crate::time::Timestamp;
use crate::validate;
use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// How the sensor configures its network interface.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum NetworkConfig {
    /// Address by DHCP.
    #[default]
    Dhcp,
    /// Fixed address.
    Static {
        /// Interface address with prefix length, e.g. `192.0.2.10/24`.
        #[cfg_attr(feature = "openapi", schema(value_type = String))]
        address: IpNet,
        /// Default gateway.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
        gateway: Option<IpAddr>,
        /// DNS servers, in order of preference.
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
        dns: Vec<IpAddr>,
    },
    /// The host manages the interface; the agent leaves it alone.
    Unconfigured,
}

/// An HTTP proxy the sensor reaches the server through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProxyConfig {
    /// Proxy host name or address.
    pub host: String,
    /// Proxy port.
    pub port: u16,
    /// User for Basic authentication.
    #[serde(default)]
    pub user: Option<String>,
    /// Password for Basic authentication; a secret sent only to the sensor.
    #[serde(default)]
    pub password: Option<String>,
}

/// The address the sensor uses to reach the server, when it differs from the global default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerEndpoint {
    /// Host name or address.
    pub host: String,
    /// HTTPS port.
    pub port: u16,
}

/// How a sensor authenticates to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SensorAuthMode {
    /// TLS client certificate issued by the internal CA.
    #[default]
    Certificate,
    /// Per-request HMAC, for networks whose proxies intercept TLS.
    Hmac,
}

impl SensorAuthMode {
    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            SensorAuthMode::Certificate => "certificate",
            SensorAuthMode::Hmac => "hmac",
        }
    }

    /// Parses the storage name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "certificate" => Ok(Self::Certificate),
            "hmac" => Ok(Self::Hmac),
            _ => Err(crate::Error::invalid(
                "auth",
                "unknown_value",
                "unknown auth mode",
            )),
        }
    }
}

/// The editable configuration of a [`Sensor`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SensorSpec {
    /// Display name, unique within its division.
    pub name: String,
    /// Free-text location, e.g. building and room.
    #[serde(default)]
    pub location: String,
    /// Owning division.
    pub division_id: DivisionId,
    /// Interface configuration.
    #[serde(default)]
    pub network: NetworkConfig,
    /// MAC address override for the sensor's interface.
    #[serde(default)]
    pub mac: Option<String>,
    /// Proxy to reach the server through.
    #[serde(default)]
    pub proxy: Option<ProxyConfig>,
    /// Server address override.
    #[serde(default)]
    pub server_endpoint: Option<ServerEndpoint>,
    /// Poll interval in minutes (1–60); `None` uses the global setting.
    #[serde(default)]
    pub update_interval: Option<u32>,
    /// Network for honeypot containers; `None` uses the global setting.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub service_network: Option<Ipv4Net>,
    /// Firmware revision override; `None` follows the platform default.
    #[serde(default)]
    pub firmware_id: Option<FirmwareId>,
    /// Authentication method towards the server.
    #[serde(default)]
    pub auth: SensorAuthMode,
}

impl SensorSpec {
    /// A sensor with defaults for everything but name and division.
    pub fn new(name: impl Into<String>, division_id: DivisionId) -> Self {
        SensorSpec {
            name: name.into(),
            location: String::new(),
            division_id,
            network: NetworkConfig::Dhcp,
            mac: None,
            proxy: None,
            server_endpoint: None,
            update_interval: None,
            service_network: None,
            firmware_id: None,
            auth: SensorAuthMode::Certificate,
        }
    }

    /// Checks every field and reports all failures at once.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        validate::name(&mut e, "name", &self.name);
        validate::text(&mut e, "location", &self.location, 1024);
        if let NetworkConfig::Static {
            address,
            gateway,
            dns,
        } = &self.network
        {
            if address.addr() == address.network()
                && address.prefix_len() < address.max_prefix_len() - 1
            {
                e.add(
                    "network.address",
                    "network_address",
                    "must be a host address, not the network",
                );
            }
            if let Some(gw) = gateway
                && !address.contains(gw)
            {
                e.add(
                    "network.gateway",
                    "unreachable",
                    "must lie inside the interface network",
                );
            }
            if dns.len() > 4 {
                e.add("network.dns", "too_many", "at most 4 DNS servers");
            }
        }
        if let Some(mac) = &self.mac {
            validate::mac(&mut e, "mac", mac);
        }
        if let Some(proxy) = &self.proxy {
            validate::host(&mut e, "proxy.host", &proxy.host);
            validate::port(&mut e, "proxy.port", proxy.port);
            if proxy.password.is_some() && proxy.user.is_none() {
                e.add("proxy.user", "required", "a proxy password needs a user");
            }
        }
        if let Some(ep) = &self.server_endpoint {
            validate::host(&mut e, "server_endpoint.host", &ep.host);
            validate::port(&mut e, "server_endpoint.port", ep.port);
        }
        if let Some(i) = self.update_interval {
            validate::update_interval(&mut e, "update_interval", i);
        }
        if let Some(net) = self.service_network
            && net.prefix_len() > 29
        {
            e.add(
                "service_network",
                "too_small",
                "needs at least a /29 for containers",
            );
        }
        e.into_result()
    }
}

/// What a sensor said it was doing in its last report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SensorState {
    /// Working normally.
    Running,
    /// Applying a firmware or service update.
    Updating,
    /// Something is broken; see the service statuses.
    Error,
}

impl SensorState {
    /// Stable storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            SensorState::Running => "running",
            SensorState::Updating => "updating",
            SensorState::Error => "error",
        }
    }

    /// Parses the storage name.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "running" => Ok(Self::Running),
            "updating" => Ok(Self::Updating),
            "error" => Ok(Self::Error),
            _ => Err(crate::Error::invalid(
                "state",
                "unknown_value",
                "unknown sensor state",
            )),
        }
    }
}

/// A registered sensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sensor {
    /// Server-assigned id; also the certificate's common name.
    pub id: SensorId,
    /// Editable configuration.
    #[serde(flatten)]
    pub spec: SensorSpec,
    /// Creation time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When the server last received a status report.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_seen: Option<Timestamp>,
    /// State from the last status report.
    pub last_state: Option<SensorState>,
    /// Missed its heartbeat (`update_interval + sensor_timeout_threshold`) and has not reported
    /// since; set and cleared by the server's heartbeat check.
    #[serde(default)]
    pub offline: bool,
}

/// State of one honeypot service on a sensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// The container or process is up.
    Running,
    /// Waiting to be started (image download, dependency).
    Scheduled,
    /// Failed; see the error text.
    Error,
}

/// Status of one service in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceStatus {
    /// Service name.
    pub name: String,
    /// Its state.
    pub state: ServiceState,
    /// Error text when failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// One status report ("poll") of a sensor, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusReport {
    /// Reporting sensor.
    pub sensor_id: SensorId,
    /// Sensor's own clock at sending.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub timestamp: Timestamp,
    /// Server's clock at arrival.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub received_at: Timestamp,
    /// Overall state.
    pub state: SensorState,
    /// Interface addresses.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Free memory in MiB.
    pub free_memory_mb: u64,
    /// Disk size in MiB.
    pub disk_total_mb: u64,
    /// Disk used in MiB.
    pub disk_used_mb: u64,
    /// Agent version.
    pub agent_version: String,
    /// Firmware version, when the sensor runs HoneySens firmware.
    #[serde(default)]
    pub firmware_version: Option<String>,
    /// Per-service status.
    #[serde(default)]
    pub services: Vec<ServiceStatus>,
    /// Events waiting in the sensor's spool.
    pub spool_depth: u64,
}

impl StatusReport {
    /// Sensor clock minus server clock, in milliseconds (positive: sensor is ahead).
    pub fn clock_skew_ms(&self) -> i64 {
        (self.timestamp - self.received_at).num_milliseconds()
    }
}
