//! System-wide settings, edited by admins.

use crate::error::{Result, ValidationErrors};
use crate::validate;
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain SMTP.
    None,
    /// Upgrade with STARTTLS.
    #[default]
    StartTls,
    /// TLS from the first byte.
    Tls,
}

/// Outgoing mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SmtpSettings {
    /// Send mail at all.
    pub enabled: bool,
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// Transport security.
    pub security: SmtpSecurity,
    /// Login user.
    #[serde(default)]
    pub user: Option<String>,
    /// Login password (secret).
    #[serde(default)]
    pub password: Option<String>,
    /// Sender address.
    pub from: String,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            enabled: false,
            host: "localhost".into(),
            port: 587,
            security: SmtpSecurity::StartTls,
            user: None,
            password: None,
            from: "honeysens@localhost.localdomain".into(),
        }
    }
}

/// Everything admins configure globally.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Settings {
    /// Mail delivery.
    pub smtp: SmtpSettings,
    /// Sensor poll interval in minutes (1–60).
    pub update_interval: u32,
    /// Network for honeypot containers on sensors.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub service_network: Ipv4Net,
    /// Minutes past the interval before a silent sensor counts as offline.
    pub sensor_timeout_threshold: u32,
    /// Move resolved/ignored events to the archive after this many days (0 = never).
    pub archive_after_days: u32,
    /// Delete archived events after this many days (0 = never).
    pub delete_archived_after_days: u32,
    /// A status change on an event needs a comment.
    pub require_event_comment: bool,
    /// Event filters need a description.
    pub require_filter_description: bool,
    /// Managers may delete events (otherwise they can only archive).
    pub managers_may_delete_events: bool,
    /// Managers may delete sensors.
    pub managers_may_delete_sensors: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            smtp: SmtpSettings::default(),
            update_interval: 5,
            service_network: Ipv4Net::new(std::net::Ipv4Addr::new(10, 10, 10, 0), 24)
                .unwrap_or_default(),
            sensor_timeout_threshold: 1,
            archive_after_days: 0,
            delete_archived_after_days: 0,
            require_event_comment: false,
            require_filter_description: false,
            managers_may_delete_events: true,
            managers_may_delete_sensors: true,
        }
    }
}

impl Settings {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        validate::update_interval(&mut e, "update_interval", self.update_interval);
        if self.sensor_timeout_threshold > 24 * 60 {
            e.add(
                "sensor_timeout_threshold",
                "out_of_range",
                "at most one day",
            );
        }
        if self.service_network.prefix_len() > 29 {
            e.add(
                "service_network",
                "too_small",
                "needs at least a /29 for containers",
            );
        }
        if self.smtp.enabled {
            validate::host(&mut e, "smtp.host", &self.smtp.host);
            validate::port(&mut e, "smtp.port", self.smtp.port);
            validate::email(&mut e, "smtp.from", &self.smtp.from);
        }
        e.into_result()
    }
}
