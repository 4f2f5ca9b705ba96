//! Storage traits, split by aggregate and combined into [`Store`].
//!
//! Implementations live in `honeysens-store` (SQLite, PostgreSQL, MySQL/MariaDB). Callers
//! validate specs first (`spec.validate()`); stores check only query shapes (page sizes,
//! ranges, job kinds) and what the schema enforces, mapping constraint failures to
//! [`crate::Error::Conflict`] and [`crate::Error::NotFound`].

use crate::error::Result;
use crate::ids::*;
use crate::model::*;
use crate::time::Timestamp;
use async_trait::async_trait;
use std::time::Duration;

/// Divisions, users and contacts.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Creates a division; `Conflict` if the name is taken.
    async fn create_division(&self, spec: &DivisionSpec) -> Result<Division>;
    /// One division.
    async fn get_division(&self, id: DivisionId) -> Result<Division>;
    /// All divisions by name.
    async fn list_divisions(&self) -> Result<Vec<Division>>;
    /// Renames a division.
    async fn update_division(&self, id: DivisionId, spec: &DivisionSpec) -> Result<Division>;
    /// Deletes a division with its contacts and filters; `Conflict` while it still owns sensors.
    async fn delete_division(&self, id: DivisionId) -> Result<()>;

    /// Creates a user with an already hashed password; `Conflict` if the name is taken.
    async fn create_user(&self, spec: &UserSpec, password_hash: &str) -> Result<User>;
    /// One user.
    async fn get_user(&self, id: UserId) -> Result<User>;
    /// A user by login name, with the password hash for verification.
    async fn get_user_credentials(&self, name: &str) -> Result<(User, String)>;
    /// All users by name; with a division, only its members.
    async fn list_users(&self, division: Option<DivisionId>) -> Result<Vec<User>>;
    /// Replaces a user's editable fields and division memberships.
    async fn update_user(&self, id: UserId, spec: &UserSpec) -> Result<User>;
    /// Replaces the password hash; `must_change` forces a change at next login.
    async fn set_password_hash(&self, id: UserId, hash: &str, must_change: bool) -> Result<()>;
    /// Deletes a user.
    async fn delete_user(&self, id: UserId) -> Result<()>;
    /// Number of users; zero means first start.
    async fn count_users(&self) -> Result<u64>;

    /// Creates a contact.
    async fn create_contact(&self, spec: &ContactSpec) -> Result<Contact>;
    /// One contact.
    async fn get_contact(&self, id: ContactId) -> Result<Contact>;
    /// Contacts; with a division, only its contacts.
    async fn list_contacts(&self, division: Option<DivisionId>) -> Result<Vec<Contact>>;
    /// Replaces a contact.
    async fn update_contact(&self, id: ContactId, spec: &ContactSpec) -> Result<Contact>;
    /// Deletes a contact.
    async fn delete_contact(&self, id: ContactId) -> Result<()>;
}

/// Sensors and their status reports.
#[async_trait]
pub trait SensorStore: Send + Sync {
    /// Creates a sensor; `NotFound` if the division or firmware is missing, `Conflict` on a
    /// duplicate name in the division.
    async fn create_sensor(&self, spec: &SensorSpec) -> Result<Sensor>;
    /// One sensor.
    async fn get_sensor(&self, id: SensorId) -> Result<Sensor>;
    /// Sensors by name; with divisions, only theirs.
    async fn list_sensors(&self, divisions: Option<&[DivisionId]>) -> Result<Vec<Sensor>>;
    /// Replaces a sensor's configuration.
    async fn update_sensor(&self, id: SensorId, spec: &SensorSpec) -> Result<Sensor>;
    /// Deletes a sensor and, in the same transaction, revokes its certificates.
    async fn delete_sensor(&self, id: SensorId) -> Result<()>;
    /// Stores a status report and updates the sensor's `last_seen`/`last_state`.
    async fn record_status(&self, report: &StatusReport) -> Result<()>;
    /// Stores several status reports in one transaction (all or none): the server
    /// group-commits concurrent polls through this.
    async fn record_statuses(&self, reports: &[StatusReport]) -> Result<()>;
    /// The newest `limit` reports of a sensor, newest first.
    async fn list_status(&self, id: SensorId, limit: u32) -> Result<Vec<StatusReport>>;
    /// Deletes reports received before `before`; returns how many.
    async fn prune_status(&self, before: Timestamp) -> Result<u64>;
    /// Sets the sensor's `offline` flag; returns whether it changed (so exactly one of several
    /// replicas raises the timeout or recovery event). `NotFound` if the sensor does not exist.
    async fn set_sensor_offline(&self, id: SensorId, offline: bool) -> Result<bool>;
    /// Sets (or with `None` removes) the sensor's HMAC secret.
    async fn set_sensor_secret(&self, id: SensorId, secret: Option<&str>) -> Result<()>;
    /// The sensor's HMAC secret, if it has one; `NotFound` if the sensor does not exist.
    async fn get_sensor_secret(&self, id: SensorId) -> Result<Option<String>>;
}

/// Platforms and firmware revisions.
#[async_trait]
pub trait PlatformStore: Send + Sync {
    /// Creates a platform; `Conflict` if the name is taken.
    async fn create_platform(&self, spec: &PlatformSpec) -> Result<Platform>;
    /// One platform.
    async fn get_platform(&self, id: PlatformId) -> Result<Platform>;
    /// All platforms.
    async fn list_platforms(&self) -> Result<Vec<Platform>>;
    /// Adds a firmware revision; `Conflict` on a duplicate version for the platform.
    async fn add_firmware(&self, spec: &FirmwareSpec) -> Result<FirmwareRevision>;
    /// One firmware revision.
    async fn get_firmware(&self, id: FirmwareId) -> Result<FirmwareRevision>;
    /// A platform's revisions, newest first.
    async fn list_firmware(&self, platform: PlatformId) -> Result<Vec<FirmwareRevision>>;
    /// Makes a revision its platform's default.
    async fn set_default_firmware(&self, id: FirmwareId) -> Result<()>;
    /// Removes a revision; sensors that targeted it and a platform default pointing at it are reset.
    async fn delete_firmware(&self, id: FirmwareId) -> Result<()>;
}

/// Honeypot services, revisions and the sensor × service matrix.
#[async_trait]
pub trait ServiceStore: Send + Sync {
    /// Creates a service; `Conflict` if the name is taken.
    async fn create_service(&self, spec: &ServiceSpec) -> Result<Service>;
    /// One service.
    async fn get_service(&self, id: ServiceId) -> Result<Service>;
    /// All services by name.
    async fn list_services(&self) -> Result<Vec<Service>>;
    /// Deletes a service with its revisions and assignments.
    async fn delete_service(&self, id: ServiceId) -> Result<()>;
    /// Adds a revision; `Conflict` on a duplicate (service, revision, architecture).
    async fn add_service_revision(&self, spec: &ServiceRevisionSpec) -> Result<ServiceRevision>;
    /// A service's revisions, newest first.
    async fn list_service_revisions(&self, service: ServiceId) -> Result<Vec<ServiceRevision>>;
    /// Removes one revision.
    async fn delete_service_revision(&self, id: ServiceRevisionId) -> Result<()>;
    /// Assigns (or re-pins) a service to a sensor.
    async fn assign_service(&self, assignment: &ServiceAssignment) -> Result<()>;
    /// Removes an assignment; `NotFound` if there was none.
    async fn unassign_service(&self, sensor: SensorId, service: ServiceId) -> Result<()>;
    /// Assignments, optionally of one sensor.
    async fn list_assignments(&self, sensor: Option<SensorId>) -> Result<Vec<ServiceAssignment>>;
}

/// Events and event filters.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Stores a batch in one transaction, skipping uids already stored. `division` is the
    /// division of the reporting sensors; `status` the initial status for each event (filters
    /// may auto-resolve). `NotFound` if a sensor does not exist.
    async fn insert_events(
        &self,
        events: &[(NewEvent, DivisionId, EventStatus)],
    ) -> Result<InsertReport>;
    /// Stores a batch like [`EventStore::insert_events`] and, in the same transaction, groups
    /// the new events into incidents and enqueues alert and forwarding jobs as `options` say.
    async fn ingest_events(
        &self,
        events: &[(NewEvent, DivisionId, EventStatus)],
        options: &IngestOptions,
    ) -> Result<IngestReport>;
    /// One event.
    async fn get_event(&self, id: EventId) -> Result<Event>;
    /// An event's details and packets.
    async fn get_event_payload(&self, id: EventId) -> Result<EventPayload>;
    /// A page of events matching `query`, ordered by event time then id (keyset pagination).
    async fn list_events(&self, query: &EventQuery, page: &PageRequest) -> Result<Page<Event>>;
    /// Number of events matching `query`.
    async fn count_events(&self, query: &EventQuery) -> Result<u64>;
    /// Applies `update` to the selected events; returns how many changed.
    async fn update_events(&self, selection: &EventSelection, update: &EventUpdate) -> Result<u64>;
    /// Deletes the selected events; returns how many.
    async fn delete_events(&self, selection: &EventSelection) -> Result<u64>;
    /// Aggregates over the events matching `query`: totals, a timeline in `bucket` steps and
    /// the `top` (1–[`MAX_STATS_TOP`]) sources, ports and sensors.
    async fn event_stats(
        &self,
        query: &EventQuery,
        bucket: StatsBucket,
        top: u32,
    ) -> Result<EventStats>;

    /// Creates a filter.
    async fn create_filter(&self, spec: &EventFilterSpec) -> Result<EventFilter>;
    /// One filter.
    async fn get_filter(&self, id: FilterId) -> Result<EventFilter>;
    /// Filters; with divisions, only theirs.
    async fn list_filters(&self, divisions: Option<&[DivisionId]>) -> Result<Vec<EventFilter>>;
    /// Replaces a filter's editable fields (hits are kept).
    async fn update_filter(&self, id: FilterId, spec: &EventFilterSpec) -> Result<EventFilter>;
    /// Deletes a filter.
    async fn delete_filter(&self, id: FilterId) -> Result<()>;
    /// Adds to a filter's hit counter atomically.
    async fn add_filter_hits(&self, id: FilterId, hits: u64) -> Result<()>;
    /// Sets a filter's hit counter back to zero; `NotFound` if the filter does not exist.
    async fn reset_filter_hits(&self, id: FilterId) -> Result<()>;
}

/// Incidents: events of one source grouped across sensors (created by
/// [`EventStore::ingest_events`]).
#[async_trait]
pub trait IncidentStore: Send + Sync {
    /// One incident.
    async fn get_incident(&self, id: IncidentId) -> Result<Incident>;
    /// A page of incidents matching `query`, ordered by `last_seen` then id (the cursor's
    /// timestamp is `last_seen`).
    async fn list_incidents(
        &self,
        query: &IncidentQuery,
        page: &PageRequest,
    ) -> Result<Page<Incident>>;
    /// Applies `update` to the incidents in `ids` that match `query` (division scope) and, for
    /// status and archive flag, to their events; returns how many incidents changed.
    async fn update_incidents(
        &self,
        ids: &[IncidentId],
        query: &IncidentQuery,
        update: &IncidentUpdate,
    ) -> Result<u64>;
    /// Starts sending an alert: clears the pending mark, sets `last_alert_at = now` and
    /// returns the incident as it was before (its `last_alert_at` is the previous alert).
    async fn begin_incident_alert(&self, id: IncidentId, now: Timestamp) -> Result<Incident>;
    /// Deletes archived incidents whose last event is before `before` and that no longer have
    /// events; returns how many.
    async fn prune_incidents(&self, before: Timestamp) -> Result<u64>;
}

/// Global settings.
#[async_trait]
pub trait SettingsStore: Send + Sync {
    /// Current settings; defaults when never saved.
    async fn get_settings(&self) -> Result<Settings>;
    /// Replaces the settings.
    async fn put_settings(&self, settings: &Settings) -> Result<()>;
}

/// The internal CA and issued certificates.
#[async_trait]
pub trait CertificateStore: Send + Sync {
    /// The CA, if one was created.
    async fn get_ca(&self) -> Result<Option<CaRecord>>;
    /// Stores `ca` unless a CA exists; returns the CA in force (first writer wins).
    async fn init_ca(&self, ca: &CaRecord) -> Result<CaRecord>;
    /// Records an issued certificate; `Conflict` on a duplicate serial or fingerprint.
    async fn record_certificate(&self, cert: &IssuedCertificate) -> Result<()>;
    /// A certificate by SHA-256 fingerprint.
    async fn get_certificate_by_fingerprint(&self, fingerprint: &str) -> Result<IssuedCertificate>;
    /// A sensor's certificates, newest first.
    async fn list_certificates(&self, sensor: SensorId) -> Result<Vec<IssuedCertificate>>;
    /// Revokes one certificate (idempotent; keeps the first revocation time).
    async fn revoke_certificate(&self, serial: &str, at: Timestamp) -> Result<()>;
    /// Every revoked certificate that has not yet expired (the CRL content).
    async fn list_revoked(&self, now: Timestamp) -> Result<Vec<IssuedCertificate>>;
}

/// The durable job queue. Each job is claimed by one worker at a time, also across replicas.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Enqueues a job.
    async fn enqueue_job(&self, job: &NewJob) -> Result<JobId>;
    /// Enqueues a job unless one with the same `key` was enqueued before (and not yet purged);
    /// `None` then. Replicas scheduling the same periodic job (`summary.weekly:2026-W48`)
    /// enqueue it once.
    async fn enqueue_job_once(&self, job: &NewJob, key: &str) -> Result<Option<JobId>>;
    /// Claims up to `limit` due jobs (optionally of the given kinds) for `worker`, leasing them
    /// for `lease`; expired leases of crashed workers are claimed again.
    async fn claim_jobs(
        &self,
        worker: &str,
        kinds: Option<&[String]>,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<Job>>;
    /// Marks a claimed job done; `Conflict` if `worker` no longer holds it.
    async fn complete_job(&self, id: JobId, worker: &str) -> Result<()>;
    /// Records a failed attempt: requeued for `retry_at`, or failed for good when no attempts
    /// remain or `retry_at` is `None`. `Conflict` if `worker` no longer holds it.
    async fn fail_job(
        &self,
        id: JobId,
        worker: &str,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<()>;
    /// One job.
    async fn get_job(&self, id: JobId) -> Result<Job>;
    /// Deletes done and failed jobs created before `before`; returns how many.
    async fn purge_jobs(&self, before: Timestamp) -> Result<u64>;
}

/// Sessions and API tokens of people, and the audit log.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// Stores a new session; `NotFound` if the user does not exist.
    async fn create_session(&self, session: &Session) -> Result<()>;
    /// A session by the hash of its token; `NotFound` if missing or expired.
    async fn get_session(&self, id_hash: &str) -> Result<Session>;
    /// Records activity: sets `last_seen_at` and moves `expires_at` (sliding expiry).
    async fn touch_session(
        &self,
        id_hash: &str,
        last_seen_at: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()>;
    /// Ends a session; ending one that does not exist is not an error (logout is idempotent).
    async fn delete_session(&self, id_hash: &str) -> Result<()>;
    /// Ends every session of `user` except `keep` (the caller's own); returns how many.
    async fn delete_user_sessions(&self, user: UserId, keep: Option<&str>) -> Result<u64>;

    /// Stores a new API token; `NotFound` if the user does not exist, `Conflict` on a duplicate
    /// hash.
    async fn create_api_token(&self, token: &NewApiToken) -> Result<ApiToken>;
    /// One token by id, whatever its state.
    async fn get_api_token(&self, id: ApiTokenId) -> Result<ApiToken>;
    /// A token by the hash of its secret, whatever its state (check [`ApiToken::is_usable`]).
    async fn get_api_token_by_hash(&self, token_hash: &str) -> Result<ApiToken>;
    /// Tokens by id; with a user, only theirs.
    async fn list_api_tokens(&self, user: Option<UserId>) -> Result<Vec<ApiToken>>;
    /// Revokes a token (idempotent; keeps the first revocation time); `NotFound` if missing.
    async fn revoke_api_token(&self, id: ApiTokenId, at: Timestamp) -> Result<()>;
    /// Records that the token authenticated a request at `at`.
    async fn touch_api_token(&self, id: ApiTokenId, at: Timestamp) -> Result<()>;

    /// Records a change; the store assigns id and time.
    async fn append_audit(&self, entry: &NewAuditEntry) -> Result<AuditEntry>;
    /// Up to `limit` entries, newest first; with `before`, only entries older than that id.
    async fn list_audit(&self, limit: u32, before: Option<AuditId>) -> Result<Vec<AuditEntry>>;
}

/// Which database engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    MySql,
}

/// Everything the server persists; use as `Arc<dyn Store>`.
#[async_trait]
pub trait Store:
    DirectoryStore
    + SensorStore
    + PlatformStore
    + ServiceStore
    + EventStore
    + IncidentStore
    + SettingsStore
    + CertificateStore
    + JobStore
    + AccessStore
    + Send
    + Sync
    + 'static
{
    /// The engine behind this store.
    fn backend(&self) -> Backend;
    /// Applies pending migrations; safe to call on every start.
    async fn migrate(&self) -> Result<()>;
    /// Checks the database answers.
    async fn ping(&self) -> Result<()>;
    /// Closes the connection pool.
    async fn close(&self);
}
