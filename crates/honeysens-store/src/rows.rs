//! Row types shared by all backends and their conversion into domain types.
//!
//! Columns hold only portable types: `i64`/`i32`, `bool`, text, bytes. Nested configuration is
//! JSON text; enums are their stable names.

use crate::error::corrupt;
use honeysens_core::Result;
use honeysens_core::ids::*;
use honeysens_core::model::*;
use honeysens_core::time::from_micros;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

pub(crate) fn json<T: Serialize>(v: &T) -> String {
    // Serialising our own plain data types cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

pub(crate) fn from_json<T: for<'de> Deserialize<'de>>(entity: &'static str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| corrupt(entity, e))
}

pub(crate) fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(crate) fn i64_of(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn port_of(entity: &'static str, v: Option<i32>) -> Result<Option<u16>> {
    v.map(|p| u16::try_from(p).map_err(|e| corrupt(entity, e)))
        .transpose()
}

#[derive(sqlx::FromRow)]
pub(crate) struct DivisionRow {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
}

impl From<DivisionRow> for Division {
    fn from(r: DivisionRow) -> Self {
        Division {
            id: DivisionId(r.id),
            name: r.name,
            created_at: from_micros(r.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub id: i64,
    pub name: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub role: String,
    pub must_change_password: bool,
    pub created_at: i64,
}

impl UserRow {
    pub fn into_user(self, divisions: Vec<DivisionId>) -> Result<User> {
        Ok(User {
            id: UserId(self.id),
            spec: UserSpec {
                name: self.name,
                full_name: self.full_name,
                email: self.email,
                role: self.role.parse().map_err(|e| corrupt("user", e))?,
                divisions,
            },
            must_change_password: self.must_change_password,
            created_at: from_micros(self.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ContactRow {
    pub id: i64,
    pub division_id: i64,
    pub kind: String,
    pub address: Option<String>,
    pub user_id: Option<i64>,
    pub critical_events: bool,
    pub all_events: bool,
    pub sensor_timeouts: bool,
    pub weekly_summary: bool,
    pub secret: Option<String>,
}

/// The `kind`, `address`, `user_id` and `secret` columns of a contact target.
pub(crate) type ContactColumns = (&'static str, Option<String>, Option<i64>, Option<String>);

/// Splits a contact target into its columns.
pub(crate) fn contact_columns(t: &ContactTarget) -> ContactColumns {
    match t {
        ContactTarget::Email { address } => ("email", Some(address.clone()), None, None),
        ContactTarget::Webhook { url, secret } => {
            ("webhook", Some(url.clone()), None, secret.clone())
        }
        ContactTarget::User { user_id } => ("user", None, Some(user_id.0), None),
    }
}

impl TryFrom<ContactRow> for Contact {
    type Error = honeysens_core::Error;
    fn try_from(r: ContactRow) -> Result<Self> {
        let target = match (r.kind.as_str(), r.address, r.user_id) {
            ("email", Some(address), _) => ContactTarget::Email { address },
            ("webhook", Some(url), _) => ContactTarget::Webhook {
                url,
                secret: r.secret,
            },
            ("user", _, Some(id)) => ContactTarget::User {
                user_id: UserId(id),
            },
            (kind, _, _) => return Err(corrupt("contact", format!("bad target kind {kind}"))),
        };
        Ok(Contact {
            id: ContactId(r.id),
            spec: ContactSpec {
                division_id: DivisionId(r.division_id),
                target,
                notify: NotifyOn {
                    critical_events: r.critical_events,
                    all_events: r.all_events,
                    sensor_timeouts: r.sensor_timeouts,
                    weekly_summary: r.weekly_summary,
                },
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PlatformRow {
    pub id: i64,
    pub name: String,
    pub title: String,
    pub description: String,
    pub default_firmware_id: Option<i64>,
}

impl From<PlatformRow> for Platform {
    fn from(r: PlatformRow) -> Self {
        Platform {
            id: PlatformId(r.id),
            spec: PlatformSpec {
                name: r.name,
                title: r.title,
                description: r.description,
            },
            default_firmware: r.default_firmware_id.map(FirmwareId),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct FirmwareRow {
    pub id: i64,
    pub platform_id: i64,
    pub version: String,
    pub description: String,
    pub changelog: String,
    pub sha256: String,
    pub size: i64,
    pub storage_key: String,
    pub created_at: i64,
}

impl TryFrom<FirmwareRow> for FirmwareRevision {
    type Error = honeysens_core::Error;
    fn try_from(r: FirmwareRow) -> Result<Self> {
        Ok(FirmwareRevision {
            id: FirmwareId(r.id),
            spec: FirmwareSpec {
                platform_id: PlatformId(r.platform_id),
                version: r.version,
                description: r.description,
                changelog: from_json("firmware", &r.changelog)?,
                sha256: r.sha256,
                size: u64_of(r.size),
                storage_key: r.storage_key,
            },
            created_at: from_micros(r.created_at),
        })
    }
}

/// The sensor configuration kept as one JSON column (it is only ever read whole).
#[derive(Serialize, Deserialize)]
pub(crate) struct SensorConfigJson {
    pub network: NetworkConfig,
    pub mac: Option<String>,
    pub proxy: Option<ProxyConfig>,
    pub server_endpoint: Option<ServerEndpoint>,
    pub service_network: Option<ipnet::Ipv4Net>,
}

impl SensorConfigJson {
    pub fn of(s: &SensorSpec) -> String {
        json(&SensorConfigJson {
            network: s.network.clone(),
            mac: s.mac.clone(),
            proxy: s.proxy.clone(),
            server_endpoint: s.server_endpoint.clone(),
            service_network: s.service_network,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SensorRow {
    pub id: i64,
    pub name: String,
    pub location: String,
    pub division_id: i64,
    pub config: String,
    pub update_interval: Option<i32>,
    pub firmware_id: Option<i64>,
    pub auth_mode: String,
    pub created_at: i64,
    pub last_seen: Option<i64>,
    pub last_state: Option<String>,
    pub offline: bool,
}

impl TryFrom<SensorRow> for Sensor {
    type Error = honeysens_core::Error;
    fn try_from(r: SensorRow) -> Result<Self> {
        let cfg: SensorConfigJson = from_json("sensor", &r.config)?;
        Ok(Sensor {
            id: SensorId(r.id),
            spec: SensorSpec {
                name: r.name,
                location: r.location,
                division_id: DivisionId(r.division_id),
                network: cfg.network,
                mac: cfg.mac,
                proxy: cfg.proxy,
                server_endpoint: cfg.server_endpoint,
                update_interval: r.update_interval.and_then(|i| u32::try_from(i).ok()),
                service_network: cfg.service_network,
                firmware_id: r.firmware_id.map(FirmwareId),
                auth: SensorAuthMode::parse(&r.auth_mode).map_err(|e| corrupt("sensor", e))?,
            },
            created_at: from_micros(r.created_at),
            last_seen: r.last_seen.map(from_micros),
            last_state: r
                .last_state
                .map(|s| SensorState::parse(&s))
                .transpose()
                .map_err(|e| corrupt("sensor", e))?,
            offline: r.offline,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct StatusRow {
    pub sensor_id: i64,
    pub sent_at: i64,
    pub received_at: i64,
    pub state: String,
    pub free_memory_mb: i64,
    pub disk_total_mb: i64,
    pub disk_used_mb: i64,
    pub agent_version: String,
    pub firmware_version: Option<String>,
    pub spool_depth: i64,
    pub addresses: String,
    pub services: String,
}

impl TryFrom<StatusRow> for StatusReport {
    type Error = honeysens_core::Error;
    fn try_from(r: StatusRow) -> Result<Self> {
        Ok(StatusReport {
            sensor_id: SensorId(r.sensor_id),
            timestamp: from_micros(r.sent_at),
            received_at: from_micros(r.received_at),
            state: SensorState::parse(&r.state).map_err(|e| corrupt("status", e))?,
            addresses: from_json("status", &r.addresses)?,
            free_memory_mb: u64_of(r.free_memory_mb),
            disk_total_mb: u64_of(r.disk_total_mb),
            disk_used_mb: u64_of(r.disk_used_mb),
            agent_version: r.agent_version,
            firmware_version: r.firmware_version,
            services: from_json("status", &r.services)?,
            spool_depth: u64_of(r.spool_depth),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ServiceRow {
    pub id: i64,
    pub name: String,
    pub repository: String,
    pub description: String,
    pub created_at: i64,
}

impl From<ServiceRow> for Service {
    fn from(r: ServiceRow) -> Self {
        Service {
            id: ServiceId(r.id),
            spec: ServiceSpec {
                name: r.name,
                repository: r.repository,
                description: r.description,
            },
            created_at: from_micros(r.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ServiceRevisionRow {
    pub id: i64,
    pub service_id: i64,
    pub revision: String,
    pub architecture: String,
    pub description: String,
    pub port_assignment: String,
    pub catch_all: bool,
    pub raw_network_access: bool,
    pub image_digest: String,
    pub created_at: i64,
}

impl TryFrom<ServiceRevisionRow> for ServiceRevision {
    type Error = honeysens_core::Error;
    fn try_from(r: ServiceRevisionRow) -> Result<Self> {
        Ok(ServiceRevision {
            id: ServiceRevisionId(r.id),
            spec: ServiceRevisionSpec {
                service_id: ServiceId(r.service_id),
                revision: r.revision,
                architecture: Architecture::parse(&r.architecture)
                    .map_err(|e| corrupt("service_revision", e))?,
                description: r.description,
                port_assignment: from_json("service_revision", &r.port_assignment)?,
                catch_all: r.catch_all,
                raw_network_access: r.raw_network_access,
                image_digest: r.image_digest,
            },
            created_at: from_micros(r.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AssignmentRow {
    pub sensor_id: i64,
    pub service_id: i64,
    pub revision: Option<String>,
}

impl From<AssignmentRow> for ServiceAssignment {
    fn from(r: AssignmentRow) -> Self {
        ServiceAssignment {
            sensor_id: SensorId(r.sensor_id),
            service_id: ServiceId(r.service_id),
            revision: r.revision,
        }
    }
}

/// Columns of an event listing (no details or packets).
pub(crate) const EVENT_COLUMNS: &str = "id, uid, sensor_id, division_id, service, ts, received_at, \
     source_ip, source_port, dest_ip, dest_port, protocol, type_code, classification, severity, \
     summary, status, comment, archived, incident_id";

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    pub id: i64,
    pub uid: Vec<u8>,
    pub sensor_id: i64,
    pub division_id: i64,
    pub service: Option<String>,
    pub ts: i64,
    pub received_at: i64,
    pub source_ip: String,
    pub source_port: Option<i32>,
    pub dest_ip: Option<String>,
    pub dest_port: Option<i32>,
    pub protocol: String,
    pub type_code: String,
    pub classification: String,
    pub severity: String,
    pub summary: String,
    pub status: String,
    pub comment: Option<String>,
    pub archived: bool,
    pub incident_id: Option<i64>,
}

impl TryFrom<EventRow> for Event {
    type Error = honeysens_core::Error;
    fn try_from(r: EventRow) -> Result<Self> {
        let c = |e| corrupt("event", e);
        let uid = uuid::Uuid::from_slice(&r.uid).map_err(|e| corrupt("event", e))?;
        Ok(Event {
            id: EventId(r.id),
            division_id: DivisionId(r.division_id),
            received_at: from_micros(r.received_at),
            status: EventStatus::parse(&r.status).map_err(c)?,
            comment: r.comment,
            archived: r.archived,
            incident_id: r.incident_id.map(IncidentId),
            data: EventData {
                uid,
                sensor_id: SensorId(r.sensor_id),
                service: r.service,
                timestamp: from_micros(r.ts),
                source_ip: r
                    .source_ip
                    .parse::<IpAddr>()
                    .map_err(|e| corrupt("event", e))?,
                source_port: port_of("event", r.source_port)?,
                dest_ip: r
                    .dest_ip
                    .map(|s| s.parse::<IpAddr>())
                    .transpose()
                    .map_err(|e| corrupt("event", e))?,
                dest_port: port_of("event", r.dest_port)?,
                protocol: Protocol::parse(&r.protocol).map_err(c)?,
                type_code: r.type_code,
                classification: Classification::parse(&r.classification).map_err(c)?,
                severity: Severity::parse(&r.severity).map_err(c)?,
                summary: r.summary,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct PayloadRow {
    pub details: String,
    pub packets: String,
}

impl TryFrom<PayloadRow> for EventPayload {
    type Error = honeysens_core::Error;
    fn try_from(r: PayloadRow) -> Result<Self> {
        Ok(EventPayload {
            details: from_json("event", &r.details)?,
            packets: from_json("event", &r.packets)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct FilterRow {
    pub id: i64,
    pub division_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub action: String,
    pub conditions: String,
    pub hits: i64,
    pub created_at: i64,
}

impl TryFrom<FilterRow> for EventFilter {
    type Error = honeysens_core::Error;
    fn try_from(r: FilterRow) -> Result<Self> {
        Ok(EventFilter {
            id: FilterId(r.id),
            spec: EventFilterSpec {
                division_id: DivisionId(r.division_id),
                name: r.name,
                description: r.description,
                enabled: r.enabled,
                action: FilterAction::parse(&r.action).map_err(|e| corrupt("filter", e))?,
                conditions: from_json("filter", &r.conditions)?,
            },
            hits: u64_of(r.hits),
            created_at: from_micros(r.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CaRow {
    pub cert_pem: String,
    pub key_pem: String,
    pub created_at: i64,
}

impl From<CaRow> for CaRecord {
    fn from(r: CaRow) -> Self {
        CaRecord {
            cert_pem: r.cert_pem,
            key_pem: r.key_pem,
            created_at: from_micros(r.created_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CertRow {
    pub serial: String,
    pub sensor_id: Option<i64>,
    pub fingerprint: String,
    pub not_before: i64,
    pub not_after: i64,
    pub cert_pem: String,
    pub revoked_at: Option<i64>,
}

impl From<CertRow> for IssuedCertificate {
    fn from(r: CertRow) -> Self {
        IssuedCertificate {
            serial: r.serial,
            sensor_id: r.sensor_id.map(SensorId),
            fingerprint: r.fingerprint,
            not_before: from_micros(r.not_before),
            not_after: from_micros(r.not_after),
            cert_pem: r.cert_pem,
            revoked_at: r.revoked_at.map(from_micros),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    pub id: i64,
    pub kind: String,
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_at: i64,
    pub locked_by: Option<String>,
    pub locked_until: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
}

impl TryFrom<JobRow> for Job {
    type Error = honeysens_core::Error;
    fn try_from(r: JobRow) -> Result<Self> {
        Ok(Job {
            id: JobId(r.id),
            kind: r.kind,
            payload: from_json("job", &r.payload)?,
            state: JobState::parse(&r.state).map_err(|e| corrupt("job", e))?,
            attempts: u32::try_from(r.attempts).unwrap_or(0),
            max_attempts: u32::try_from(r.max_attempts).unwrap_or(0),
            run_at: from_micros(r.run_at),
            locked_by: r.locked_by,
            locked_until: r.locked_until.map(from_micros),
            last_error: r.last_error,
            created_at: from_micros(r.created_at),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SessionRow {
    pub id: String,
    pub user_id: i64,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_seen_at: i64,
}

impl From<SessionRow> for Session {
    fn from(r: SessionRow) -> Self {
        Session {
            id_hash: r.id,
            user_id: UserId(r.user_id),
            csrf_token: r.csrf_token,
            created_at: from_micros(r.created_at),
            expires_at: from_micros(r.expires_at),
            last_seen_at: from_micros(r.last_seen_at),
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ApiTokenRow {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl TryFrom<ApiTokenRow> for ApiToken {
    type Error = honeysens_core::Error;
    fn try_from(r: ApiTokenRow) -> Result<Self> {
        Ok(ApiToken {
            id: ApiTokenId(r.id),
            user_id: UserId(r.user_id),
            name: r.name,
            scope: r.scope.parse().map_err(|e| corrupt("api_token", e))?,
            created_at: from_micros(r.created_at),
            expires_at: r.expires_at.map(from_micros),
            revoked_at: r.revoked_at.map(from_micros),
            last_used_at: r.last_used_at.map(from_micros),
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub user_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

impl TryFrom<AuditRow> for AuditEntry {
    type Error = honeysens_core::Error;
    fn try_from(r: AuditRow) -> Result<Self> {
        Ok(AuditEntry {
            id: AuditId(r.id),
            at: from_micros(r.at),
            user_id: r.user_id.map(UserId),
            actor: r.actor,
            action: r.action,
            target: r.target,
            detail: from_json("audit", &r.detail)?,
        })
    }
}

/// Columns of an incident row (its sensor count is computed from its events).
pub(crate) const INCIDENT_COLUMNS: &str = "id, division_id, source_ip, first_seen, last_seen, \
     event_count, severity, classification, status, comment, archived, last_alert_at, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct IncidentRow {
    pub id: i64,
    pub division_id: i64,
    pub source_ip: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub event_count: i64,
    pub severity: String,
    pub classification: String,
    pub status: String,
    pub comment: Option<String>,
    pub archived: bool,
    pub last_alert_at: Option<i64>,
    pub created_at: i64,
}

impl IncidentRow {
    pub fn into_incident(self, sensor_count: u64) -> Result<Incident> {
        let c = |e| corrupt("incident", e);
        Ok(Incident {
            id: IncidentId(self.id),
            division_id: DivisionId(self.division_id),
            source_ip: self
                .source_ip
                .parse::<IpAddr>()
                .map_err(|e| corrupt("incident", e))?,
            first_seen: from_micros(self.first_seen),
            last_seen: from_micros(self.last_seen),
            event_count: u64_of(self.event_count),
            sensor_count,
            severity: Severity::parse(&self.severity).map_err(c)?,
            classification: Classification::parse(&self.classification).map_err(c)?,
            status: EventStatus::parse(&self.status).map_err(c)?,
            comment: self.comment,
            archived: self.archived,
            last_alert_at: self.last_alert_at.map(from_micros),
            created_at: from_micros(self.created_at),
        })
    }
}
