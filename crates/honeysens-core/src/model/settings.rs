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

/// Transport of the SIEM syslog output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SyslogTransport {
    /// One datagram per message (RFC 5426).
    #[default]
    Udp,
    /// Octet-counted frames over TCP (RFC 6587).
    Tcp,
    /// Octet-counted frames over TLS (RFC 5425).
    Tls,
}

/// Payload format of syslog messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SyslogFormat {
    /// The event as JSON.
    #[default]
    Json,
    /// ArcSight Common Event Format.
    Cef,
    /// IBM QRadar Log Event Extended Format 2.0.
    Leef,
}

/// Forwarding of every stored event to a SIEM over syslog (RFC 5424).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SyslogSettings {
    /// Forward at all.
    pub enabled: bool,
    /// Collector host.
    pub host: String,
    /// Collector port.
    pub port: u16,
    /// Transport.
    pub transport: SyslogTransport,
    /// Payload format.
    pub format: SyslogFormat,
    /// PEM CA certificates trusted for TLS; the system roots when empty.
    #[serde(default)]
    pub ca_pem: Option<String>,
    /// Syslog facility number (0–23); 10 (authpriv) by default.
    #[serde(default = "default_facility")]
    pub facility: u8,
}

fn default_facility() -> u8 {
    10
}

impl Default for SyslogSettings {
    fn default() -> Self {
        SyslogSettings {
            enabled: false,
            host: "localhost".into(),
            port: 514,
            transport: SyslogTransport::Udp,
            format: SyslogFormat::Json,
            ca_pem: None,
            facility: default_facility(),
        }
    }
}

/// Editable notification templates (minijinja syntax); `None` uses the built-in text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct Templates {
    /// Subject of incident alerts.
    pub alert_subject: Option<String>,
    /// Body of incident alerts.
    pub alert_body: Option<String>,
    /// Subject of sensor timeout and recovery notices.
    pub sensor_subject: Option<String>,
    /// Body of sensor timeout and recovery notices.
    pub sensor_body: Option<String>,
    /// Subject of the weekly summary.
    pub summary_subject: Option<String>,
    /// Body of the weekly summary.
    pub summary_body: Option<String>,
    /// Subject of CA expiry warnings.
    pub ca_expiry_subject: Option<String>,
    /// Body of CA expiry warnings.
    pub ca_expiry_body: Option<String>,
}

/// How events become incidents and alerts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct AlertSettings {
    /// Events of one source within this many seconds of the incident's last event join it.
    pub incident_window_secs: u32,
    /// At most one alert per incident within this many seconds; later events are summed up
    /// in the next alert.
    pub alert_interval_secs: u32,
    /// Webhook deliveries and mails are retried this many times with exponential backoff.
    pub max_attempts: u32,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            incident_window_secs: 3600,
            alert_interval_secs: 300,
            max_attempts: 8,
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
    /// Incident grouping and alert rate limits.
    pub alerts: AlertSettings,
    /// SIEM output.
    pub syslog: SyslogSettings,
    /// Notification texts.
    pub templates: Templates,
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
            alerts: AlertSettings::default(),
            syslog: SyslogSettings::default(),
            templates: Templates::default(),
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
        if self.alerts.incident_window_secs == 0 || self.alerts.incident_window_secs > 7 * 86400 {
            e.add(
                "alerts.incident_window_secs",
                "out_of_range",
                "between 1 second and 7 days",
            );
        }
        if self.alerts.alert_interval_secs > 86400 {
            e.add(
                "alerts.alert_interval_secs",
                "out_of_range",
                "at most one day",
            );
        }
        if self.alerts.max_attempts == 0 || self.alerts.max_attempts > 100 {
            e.add("alerts.max_attempts", "out_of_range", "between 1 and 100");
        }
        if self.syslog.enabled {
            validate::host(&mut e, "syslog.host", &self.syslog.host);
            validate::port(&mut e, "syslog.port", self.syslog.port);
        }
        if self.syslog.facility > 23 {
            e.add("syslog.facility", "out_of_range", "between 0 and 23");
        }
        for (field, t) in [
            ("templates.alert_subject", &self.templates.alert_subject),
            ("templates.alert_body", &self.templates.alert_body),
            ("templates.sensor_subject", &self.templates.sensor_subject),
            ("templates.sensor_body", &self.templates.sensor_body),
            ("templates.summary_subject", &self.templates.summary_subject),
            ("templates.summary_body", &self.templates.summary_body),
            (
                "templates.ca_expiry_subject",
                &self.templates.ca_expiry_subject,
            ),
            ("templates.ca_expiry_body", &self.templates.ca_expiry_body),
        ] {
            if let Some(t) = t {
                validate::text(&mut e, field, t, 64 * 1024);
            }
        }
        if self.smtp.enabled {
            validate::host(&mut e, "smtp.host", &self.smtp.host);
            validate::port(&mut e, "smtp.port", self.smtp.port);
            validate::email(&mut e, "smtp.from", &self.smtp.from);
        }
        e.into_result()
    }
}
