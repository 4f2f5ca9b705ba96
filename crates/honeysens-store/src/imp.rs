//! The store implementation shared by all backends.
//!
//! Written once as a macro and expanded per backend, so every query is checked against the
//! concrete sqlx driver types (no `sqlx::Any`). Each backend module supplies the few pieces that
//! differ between engines:
//!
//! - `sql(&'static str)`: the statement with `?` placeholders, rewritten for PostgreSQL;
//! - `sql_returning_id`, `fetch_id`: how an insert reports its new id;
//! - `begin_write`: a write transaction (SQLite takes the write lock up front);
//! - `insert_event_chunk`: idempotent bulk insert reporting ids of new rows (told whether the
//!   chunk's stored uids still need looking up, where the engine's insert cannot skip them, and
//!   whether it checks the events' sensors itself);
//! - `sensors_checked_by_insert`: whether a batch of that size leaves the sensor check to it;
//! - `returning_rows`: whether a multi-row `INSERT … RETURNING` is available;
//! - `LOCK_SKIP`: the row-locking suffix of the job-claim query;
//! - `LOCK_UPDATE`: the row-locking suffix of the incident lookup during ingest;
//! - `SOURCE_LOCK`: the upsert that locks a source's `incident_sources` row (none on SQLite);
//! - `INT_DIV`: integer division (`/` or MySQL's `DIV`) for timeline buckets;
//! - `UPSERT_SETTING`, `INIT_CA`, `UPSERT_ASSIGNMENT`: the engine's upsert spelling.

use honeysens_core::ids::DivisionId;
use honeysens_core::model::{
    Classification, EventData, EventStatus, NewEvent, Severity, StatsBucket, TimelinePoint,
    ip_from_key,
};
use std::collections::HashSet;

/// One event row to insert: the event, its division and status, and the incident it joins.
pub(crate) type EventIn<'a> = (&'a (NewEvent, DivisionId, EventStatus), Option<i64>);

/// The columns an event insert writes, in bind order (the SQLite bulk path binds the same list).
pub(crate) const EVENT_INSERT_COLUMNS: &str = "uid, sensor_id, division_id, service, ts, \
     received_at, source_ip, source_key, source_port, dest_ip, dest_port, protocol, type_code, \
     classification, severity, summary, status, comment, archived, details, packets, incident_id";

/// The rows of `chunk` whose uid is not among `stored` (uids an earlier lookup found).
pub(crate) fn unstored<'a>(chunk: &[EventIn<'a>], stored: Vec<(Vec<u8>,)>) -> Vec<EventIn<'a>> {
    let stored: HashSet<Vec<u8>> = stored.into_iter().map(|r| r.0).collect();
    chunk
        .iter()
        .copied()
        .filter(|(e, _)| !stored.contains(e.0.data.uid.as_bytes().as_slice()))
        .collect()
}

/// Rows per multi-row `INSERT` (keeps every engine under its bind-parameter limit).
pub(crate) const EVENT_CHUNK: usize = 1000;

/// Escapes `%`, `_` and the escape character itself for a `LIKE … ESCAPE '!'` pattern.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            out.push('!');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Attempts of an incident alert job (mail and webhooks retry on their own schedule).
pub(crate) const ALERT_ATTEMPTS: i32 = 3;
/// Attempts of a SIEM forwarding job.
pub(crate) const FORWARD_ATTEMPTS: i32 = 5;

/// A live incident as read (and locked) by the ingest lookup.
#[derive(sqlx::FromRow)]
pub(crate) struct LiveIncidentRow {
    id: i64,
    division_id: i64,
    source_key: Vec<u8>,
    source_ip: String,
    first_seen: i64,
    last_seen: i64,
    severity: String,
    classification: String,
    alert_pending: bool,
    last_alert_at: Option<i64>,
}

/// An incident being extended or created by one ingest; `id` 0 until it is inserted.
pub(crate) struct LiveIncident {
    pub id: i64,
    pub division: i64,
    pub key: Vec<u8>,
    pub source_ip: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub severity: Severity,
    pub classification: Classification,
    pub alert_pending: bool,
    pub last_alert_at: Option<i64>,
    /// Positions (in the batch's list of new events) of the events that join it.
    pub events: Vec<usize>,
}

impl TryFrom<LiveIncidentRow> for LiveIncident {
    type Error = honeysens_core::Error;
    fn try_from(r: LiveIncidentRow) -> honeysens_core::Result<Self> {
        let c = |e| crate::error::corrupt("incident", e);
        Ok(LiveIncident {
            id: r.id,
            division: r.division_id,
            key: r.source_key,
            source_ip: r.source_ip,
            first_seen: r.first_seen,
            last_seen: r.last_seen,
            severity: Severity::parse(&r.severity).map_err(c)?,
            classification: Classification::parse(&r.classification).map_err(c)?,
            alert_pending: r.alert_pending,
            last_alert_at: r.last_alert_at,
            events: Vec::new(),
        })
    }
}

impl LiveIncident {
    /// A new incident opened by the event `d` (event time `ts`).
    pub(crate) fn start(division: i64, key: [u8; 16], d: &EventData, ts: i64) -> Self {
        LiveIncident {
            id: 0,
            division,
            key: key.to_vec(),
            // Canonical text: an IPv4-mapped IPv6 source and its IPv4 form are one source.
            source_ip: ip_from_key(key).to_string(),
            first_seen: ts,
            last_seen: ts,
            severity: d.severity,
            classification: d.classification,
            alert_pending: false,
            last_alert_at: None,
            events: Vec::new(),
        }
    }

    /// Joins the batch's new event number `idx` (data `d`, event time `ts`).
    pub(crate) fn add(&mut self, d: &EventData, ts: i64, idx: usize) {
        self.first_seen = self.first_seen.min(ts);
        self.last_seen = self.last_seen.max(ts);
        if d.severity > self.severity {
            self.severity = d.severity;
            self.classification = d.classification;
        }
        self.events.push(idx);
    }
}

/// Microseconds of one timeline bucket (months are built from days).
pub(crate) fn bucket_micros(bucket: StatsBucket) -> i64 {
    const HOUR: i64 = 3_600_000_000;
    match bucket {
        StatsBucket::Hour => HOUR,
        StatsBucket::Day | StatsBucket::Month => 24 * HOUR,
    }
}

/// Sums day buckets (start micros, count) into calendar months (UTC), ascending.
pub(crate) fn months_of(days: &[(i64, u64)]) -> Vec<TimelinePoint> {
    use chrono::{Datelike, NaiveDate};
    let mut months: std::collections::BTreeMap<(i32, u32), u64> = Default::default();
    for (start, n) in days {
        let d = honeysens_core::time::from_micros(*start);
        *months.entry((d.year(), d.month())).or_default() += n;
    }
    months
        .into_iter()
        .filter_map(|((y, m), count)| {
            let start = NaiveDate::from_ymd_opt(y, m, 1)?
                .and_hms_opt(0, 0, 0)?
                .and_utc();
            Some(TimelinePoint { start, count })
        })
        .collect()
}

#[macro_export]
#[doc(hidden)]
macro_rules! impl_store {
    ($store:ident, $db:ty, $backend:expr, $migrator:expr) => {
        mod generated {
            use super::*;
            use async_trait::async_trait;
            use honeysens_core::ids::*;
            use honeysens_core::model::*;
            use honeysens_core::store::*;
            use honeysens_core::time::{from_micros, now, to_micros, Timestamp};
            use honeysens_core::{Error, Result};
            use sqlx::QueryBuilder;
            use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
            use std::time::Duration;
            use $crate::error::{corrupt, delete_err, is_ingest_race, is_retryable, read_err, write_err};
            use $crate::imp::{
                bucket_micros, like_pattern, months_of, EventIn, LiveIncident, LiveIncidentRow,
                ALERT_ATTEMPTS, EVENT_CHUNK, EVENT_INSERT_COLUMNS, FORWARD_ATTEMPTS,
            };
            use $crate::rows::*;

            type Qb = QueryBuilder<$db>;

            const USER_COLUMNS: &str =
                "id, name, full_name, email, role, must_change_password, created_at";
            const CONTACT_COLUMNS: &str = "id, division_id, kind, address, user_id, \
                critical_events, all_events, sensor_timeouts, weekly_summary, secret";
            const SENSOR_COLUMNS: &str = "id, name, location, division_id, config, \
                update_interval, firmware_id, auth_mode, created_at, last_seen, last_state, offline";
            const FIRMWARE_COLUMNS: &str = "id, platform_id, version, description, changelog, \
                sha256, size, storage_key, created_at";
            const REVISION_COLUMNS: &str = "id, service_id, revision, architecture, description, \
                port_assignment, catch_all, raw_network_access, image_digest, created_at";
            const FILTER_COLUMNS: &str = "id, division_id, name, description, enabled, action, \
                conditions, hits, created_at";
            const CERT_COLUMNS: &str =
                "serial, sensor_id, fingerprint, not_before, not_after, cert_pem, revoked_at";
            const JOB_COLUMNS: &str = "id, kind, payload, state, attempts, max_attempts, run_at, \
                locked_by, locked_until, last_error, created_at";
            const STATUS_COLUMNS: &str = "sensor_id, sent_at, received_at, state, free_memory_mb, \
                disk_total_mb, disk_used_mb, agent_version, firmware_version, spool_depth, \
                addresses, services";

            const SESSION_COLUMNS: &str =
                "id, user_id, csrf_token, created_at, expires_at, last_seen_at";
            const TOKEN_COLUMNS: &str = "id, user_id, name, scope, created_at, expires_at, \
                revoked_at, last_used_at";
            const AUDIT_COLUMNS: &str = "id, at, user_id, actor, action, target, detail";

            fn push_in<T, I>(qb: &mut Qb, column: &str, values: I)
            where
                I: IntoIterator<Item = T>,
                T: for<'q> sqlx::Encode<'q, $db> + sqlx::Type<$db>,
            {
                let values: Vec<T> = values.into_iter().collect();
                if values.is_empty() {
                    qb.push(" AND 1 = 0");
                    return;
                }
                qb.push(" AND ").push(column).push(" IN (");
                let mut sep = qb.separated(", ");
                for v in values {
                    sep.push_bind(v);
                }
                qb.push(")");
            }

            /// Appends `AND …` for every set condition of `q`.
            fn push_event_conditions(qb: &mut Qb, q: &EventQuery) {
                if let Some(divs) = &q.divisions {
                    push_in(qb, "division_id", divs.iter().map(|d| d.0));
                }
                if !q.sensors.is_empty() {
                    push_in(qb, "sensor_id", q.sensors.iter().map(|s| s.0));
                }
                if !q.classifications.is_empty() {
                    push_in(qb, "classification", q.classifications.iter().map(|c| c.as_str()));
                }
                if !q.type_codes.is_empty() {
                    push_in(qb, "type_code", q.type_codes.iter().map(String::as_str));
                }
                if !q.statuses.is_empty() {
                    push_in(qb, "status", q.statuses.iter().map(|s| s.as_str()));
                }
                if let Some(from) = q.from {
                    qb.push(" AND ts >= ").push_bind(to_micros(from));
                }
                if let Some(until) = q.until {
                    qb.push(" AND ts < ").push_bind(to_micros(until));
                }
                if let Some(archived) = q.archived {
                    qb.push(" AND archived = ").push_bind(archived);
                }
                if let Some(source) = &q.source {
                    let (lo, hi) = source.key_range();
                    qb.push(" AND source_key BETWEEN ")
                        .push_bind(lo.to_vec())
                        .push(" AND ")
                        .push_bind(hi.to_vec());
                }
                if let Some(port) = q.dest_port {
                    qb.push(" AND dest_port = ").push_bind(i32::from(port));
                }
                if let Some(proto) = q.protocol {
                    qb.push(" AND protocol = ").push_bind(proto.as_str());
                }
                if let Some(incident) = q.incident {
                    qb.push(" AND incident_id = ").push_bind(incident.0);
                }
                if !q.severities.is_empty() {
                    push_in(qb, "severity", q.severities.iter().map(|s| s.as_str()));
                }
                if let Some(text) = &q.text {
                    let pattern = like_pattern(text);
                    qb.push(" AND (LOWER(source_ip) LIKE ")
                        .push_bind(pattern.clone())
                        .push(" ESCAPE '!' OR LOWER(summary) LIKE ")
                        .push_bind(pattern.clone())
                        .push(" ESCAPE '!' OR LOWER(comment) LIKE ")
                        .push_bind(pattern)
                        .push(" ESCAPE '!')");
                }
            }

            /// Appends `AND …` for every set condition of an incident query.
            fn push_incident_conditions(qb: &mut Qb, q: &IncidentQuery) {
                if let Some(divs) = &q.divisions {
                    push_in(qb, "division_id", divs.iter().map(|d| d.0));
                }
                if !q.statuses.is_empty() {
                    push_in(qb, "status", q.statuses.iter().map(|s| s.as_str()));
                }
                if let Some(archived) = q.archived {
                    qb.push(" AND archived = ").push_bind(archived);
                }
                if let Some(from) = q.from {
                    qb.push(" AND last_seen >= ").push_bind(to_micros(from));
                }
                if let Some(until) = q.until {
                    qb.push(" AND last_seen < ").push_bind(to_micros(until));
                }
                if let Some(ip) = q.source_ip {
                    qb.push(" AND source_key = ").push_bind(ip_key(ip).to_vec());
                }
            }

            /// Appends the keyset condition after `page.after` and `ORDER BY time, id LIMIT
            /// limit + 1` (one more row tells whether there is a next page); `time` is the
            /// microsecond column the cursor's timestamp refers to.
            fn push_keyset_page(qb: &mut Qb, time: &str, page: &PageRequest) {
                let (cmp, dir) = match page.order {
                    SortOrder::Desc => ("<", "DESC"),
                    SortOrder::Asc => (">", "ASC"),
                };
                if let Some(after) = page.after {
                    // `t <= x AND (t < x OR id < y)`: same rows as `(t, id) < (x, y)`, but every
                    // engine turns the first conjunct into an index range.
                    let t = to_micros(after.timestamp);
                    let eq = if cmp == "<" { "<=" } else { ">=" };
                    qb.push(format_args!(" AND {time} {eq} "))
                        .push_bind(t)
                        .push(format_args!(" AND ({time} {cmp} "))
                        .push_bind(t)
                        .push(format_args!(" OR id {cmp} "))
                        .push_bind(after.id.0)
                        .push(")");
                }
                qb.push(format_args!(" ORDER BY {time} {dir}, id {dir} LIMIT "))
                    .push_bind(i64::from(page.limit) + 1);
            }

            fn push_selection(qb: &mut Qb, sel: &EventSelection) {
                if let Some(ids) = &sel.ids {
                    push_in(qb, "id", ids.iter().map(|i| i.0));
                }
                push_event_conditions(qb, &sel.query);
            }

            /// `NotFound` when a statement addressed by id touched no row.
            fn one_row(affected: u64, entity: &'static str) -> Result<()> {
                if affected == 0 { Err(Error::not_found(entity)) } else { Ok(()) }
            }

            impl $store {
                /// Deletes the events whose `column` is `id` (the cascade of a sensor or
                /// division, which `events` has no foreign key for on PostgreSQL and MariaDB).
                async fn delete_events_of(
                    tx: &mut sqlx::Transaction<'static, $db>,
                    column: &'static str,
                    id: i64,
                ) -> Result<()> {
                    let mut qb = Qb::new(format!("DELETE FROM events WHERE {column} = "));
                    qb.push_bind(id);
                    qb.build().execute(&mut **tx).await.map_err(read_err("event"))?;
                    Ok(())
                }

                /// One chunk as a multi-row `INSERT … VALUES` that skips stored uids and
                /// returns the new rows' ids: the small-chunk path of SQLite and PostgreSQL
                /// (MySQL has no `ON CONFLICT`; see `mysql.rs`).
                #[allow(dead_code)]
                pub(crate) async fn insert_event_values(
                    tx: &mut sqlx::Transaction<'static, $db>,
                    chunk: &[EventIn<'_>],
                    received_at: i64,
                ) -> Result<Vec<(Vec<u8>, i64)>> {
                    let mut qb = Self::event_insert_builder(chunk, received_at);
                    qb.push(" ON CONFLICT (uid) DO NOTHING RETURNING uid, id");
                    qb.build_query_as()
                        .fetch_all(&mut **tx)
                        .await
                        .map_err(write_err("event", "sensor"))
                }

                /// The `INSERT … VALUES` of one chunk of events, without a conflict clause.
                pub(crate) fn event_insert_builder(chunk: &[EventIn<'_>], received_at: i64) -> Qb {
                    let mut qb = Qb::new(format!("INSERT INTO events ({EVENT_INSERT_COLUMNS}) "));
                    qb.push_values(chunk, |mut b, ((ev, division, status), incident)| {
                        let d = &ev.data;
                        b.push_bind(d.uid.as_bytes().to_vec())
                            .push_bind(d.sensor_id.0)
                            .push_bind(division.0)
                            .push_bind(d.service.clone())
                            .push_bind(to_micros(d.timestamp))
                            .push_bind(received_at)
                            .push_bind(d.source_ip.to_string())
                            .push_bind(ip_key(d.source_ip).to_vec())
                            .push_bind(d.source_port.map(i32::from))
                            .push_bind(d.dest_ip.map(|ip| ip.to_string()))
                            .push_bind(d.dest_port.map(i32::from))
                            .push_bind(d.protocol.as_str())
                            .push_bind(d.type_code.clone())
                            .push_bind(d.classification.as_str())
                            .push_bind(d.severity.as_str())
                            .push_bind(d.summary.clone())
                            .push_bind(status.as_str())
                            .push_bind(None::<String>)
                            .push_bind(false)
                            .push_bind(json(&ev.details))
                            .push_bind(json(&ev.packets))
                            .push_bind(*incident);
                    });
                    qb
                }

                /// One attempt of [`EventStore::ingest_events`] on a batch without repeated uids.
                ///
                /// With grouping, the batch's already stored uids are looked up first, so the
                /// new events are grouped and their incidents written before the events are
                /// inserted with their `incident_id` (each row written once). Without grouping,
                /// `lookup` says whether the insert looks up stored uids itself; the first
                /// attempt does not (a new batch has none), and a stored uid then fails it as an
                /// `IngestRace`.
                async fn ingest_once(
                    &self,
                    fresh: &[&(NewEvent, DivisionId, EventStatus)],
                    options: &IngestOptions,
                    lookup: bool,
                ) -> Result<IngestReport> {
                    let mut report = IngestReport::default();
                    let at = now();
                    let now_us = to_micros(at);
                    let mut tx = self.begin_write().await.map_err(read_err("event"))?;
                    let window = options
                        .incident_window
                        .filter(|_| fresh.iter().any(|e| e.2 == EventStatus::New));
                    // Grouping writes incidents before the events: it needs the check first.
                    let insert_checks = window.is_none() && Self::sensors_checked_by_insert(fresh.len());
                    if !insert_checks {
                        Self::check_sensors(&mut tx, fresh).await?;
                    }
                    // The incident each row joins (all `None` without grouping).
                    let mut rows: Vec<EventIn<'_>> = Vec::with_capacity(fresh.len());
                    match window {
                        None => rows.extend(fresh.iter().map(|e| (*e, None))),
                        Some(window) => {
                            let mut stored: HashSet<Vec<u8>> = HashSet::new();
                            for chunk in fresh.chunks(EVENT_CHUNK) {
                                let mut qb = Qb::new("SELECT uid FROM events WHERE 1 = 1");
                                let uids = chunk.iter().map(|e| e.0.data.uid.as_bytes().to_vec());
                                push_in(&mut qb, "uid", uids);
                                let found: Vec<(Vec<u8>,)> = qb
                                    .build_query_as()
                                    .fetch_all(&mut *tx)
                                    .await
                                    .map_err(read_err("event"))?;
                                stored.extend(found.into_iter().map(|r| r.0));
                            }
                            let mut groups: BTreeMap<(i64, [u8; 16]), Vec<(&EventData, usize)>> =
                                BTreeMap::new();
                            for e in fresh.iter().copied() {
                                if stored.contains(e.0.data.uid.as_bytes().as_slice()) {
                                    // Reported as a duplicate below (not returned by the insert).
                                    continue;
                                }
                                if e.2 == EventStatus::New {
                                    groups
                                        .entry((e.1.0, ip_key(e.0.data.source_ip)))
                                        .or_default()
                                        .push((&e.0.data, rows.len()));
                                }
                                rows.push((e, None));
                            }
                            if !groups.is_empty() {
                                let n = rows.len();
                                let (touches, joins) = self
                                    .group_into_incidents(&mut tx, groups, n, window, options, now_us)
                                    .await?;
                                report.incidents = touches;
                                for (row, incident) in rows.iter_mut().zip(joins) {
                                    row.1 = incident;
                                }
                            }
                        }
                    }
                    // Grouping has just looked the stored uids up.
                    let lookup = lookup && window.is_none();
                    let mut ids: HashMap<Vec<u8>, i64> = HashMap::with_capacity(rows.len());
                    for chunk in rows.chunks(EVENT_CHUNK) {
                        ids.extend(
                            self.insert_event_chunk(&mut tx, chunk, now_us, lookup, insert_checks).await?,
                        );
                        // A concurrent ingest stored one of our grouped events after the lookup
                        // above: the incident counts are off, so run the transaction again.
                        let lost = chunk.iter().any(|(e, inc)| {
                            inc.is_some() && !ids.contains_key(e.0.data.uid.as_bytes().as_slice())
                        });
                        if lost {
                            return Err(Error::Storage(Box::new($crate::error::IngestRace)));
                        }
                    }
                    for e in fresh.iter().copied() {
                        let uid = e.0.data.uid;
                        match ids.get(uid.as_bytes().as_slice()) {
                            Some(id) => report.inserted.push((uid, EventId(*id))),
                            None => report.duplicates.push(uid),
                        }
                    }
                    if options.forward && !report.inserted.is_empty() {
                        let ids: Vec<i64> = report.inserted.iter().map(|(_, id)| id.0).collect();
                        Self::enqueue_in(
                            &mut tx,
                            FORWARD_JOB,
                            serde_json::json!({ "event_ids": ids }),
                            now_us,
                            FORWARD_ATTEMPTS,
                        )
                        .await?;
                    }
                    tx.commit().await.map_err(read_err("event"))?;
                    Ok(report)
                }

                /// Every event's sensor must exist and belong to the event's division: one
                /// lookup per batch instead of a foreign-key check per row (PostgreSQL and
                /// MariaDB have none on `events`; migration 0004). The sensors stay locked
                /// against deletion and moves until the batch commits, as a foreign key's
                /// check would keep them.
                pub(crate) async fn check_sensors(
                    tx: &mut sqlx::Transaction<'static, $db>,
                    fresh: &[&(NewEvent, DivisionId, EventStatus)],
                ) -> Result<()> {
                    let mut wanted: BTreeMap<i64, i64> = BTreeMap::new();
                    for e in fresh {
                        let division = *wanted.entry(e.0.data.sensor_id.0).or_insert(e.1.0);
                        if division != e.1.0 {
                            return Err(Error::conflict("event", "one sensor, two divisions"));
                        }
                    }
                    let ids: Vec<i64> = wanted.keys().copied().collect();
                    for chunk in ids.chunks(EVENT_CHUNK) {
                        let mut qb = Qb::new("SELECT id, division_id FROM sensors WHERE 1 = 1");
                        push_in(&mut qb, "id", chunk.iter().copied());
                        qb.push(" ORDER BY id").push(Self::LOCK_SHARE);
                        let found: Vec<(i64, i64)> = qb
                            .build_query_as()
                            .fetch_all(&mut **tx)
                            .await
                            .map_err(read_err("sensor"))?;
                        if found.len() != chunk.len() {
                            return Err(Error::not_found("sensor"));
                        }
                        if found.iter().any(|(id, division)| wanted.get(id) != Some(division)) {
                            return Err(Error::conflict("event", "the sensor is in another division"));
                        }
                    }
                    Ok(())
                }

                /// Enqueues a job inside an open transaction (so it exists iff the data does).
                async fn enqueue_in(
                    tx: &mut sqlx::Transaction<'static, $db>,
                    kind: &str,
                    payload: serde_json::Value,
                    run_at: i64,
                    max_attempts: i32,
                ) -> Result<()> {
                    sqlx::query(Self::sql(
                        "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, run_at, created_at) \
                         VALUES (?, ?, 'queued', 0, ?, ?, ?)",
                    ))
                    .bind(kind)
                    .bind(json(&payload))
                    .bind(max_attempts)
                    .bind(run_at)
                    .bind(to_micros(now()))
                    .execute(&mut **tx)
                    .await
                    .map_err(read_err("job"))?;
                    Ok(())
                }

                /// Joins each group's events (positions `0..count` of the batch's new events)
                /// to its newest live incident (locked for the rest of the transaction) or to
                /// new ones, writes the incidents and enqueues alerts: a few statements per
                /// chunk, not per incident. Returns the touches and each event's incident.
                async fn group_into_incidents(
                    &self,
                    tx: &mut sqlx::Transaction<'static, $db>,
                    groups: BTreeMap<(i64, [u8; 16]), Vec<(&EventData, usize)>>,
                    count: usize,
                    window: Duration,
                    options: &IngestOptions,
                    now_us: i64,
                ) -> Result<(Vec<IncidentTouch>, Vec<Option<i64>>)> {
                    let window_us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX / 4);
                    let interval_us =
                        i64::try_from(options.alert_interval.as_micros()).unwrap_or(i64::MAX / 4);
                    let min_ts = groups
                        .values()
                        .flatten()
                        .map(|(d, _)| to_micros(d.timestamp))
                        .min()
                        .unwrap_or(0);
                    let divisions: BTreeSet<i64> = groups.keys().map(|k| k.0).collect();
                    let keys: BTreeSet<[u8; 16]> = groups.keys().map(|k| k.1).collect();
                    // Serialise ingests per source first (keys in sorted order, so no lock cycles):
                    // without it two replicas could both find no live incident and open two.
                    if let Some(upsert) = Self::SOURCE_LOCK {
                        let keys: Vec<&(i64, [u8; 16])> = groups.keys().collect();
                        for chunk in keys.chunks(EVENT_CHUNK) {
                            let mut qb = Qb::new("INSERT INTO incident_sources (division_id, source_key) ");
                            qb.push_values(chunk, |mut b, (d, k)| {
                                b.push_bind(*d).push_bind(k.to_vec());
                            });
                            qb.push(upsert);
                            qb.build()
                                .execute(&mut **tx)
                                .await
                                .map_err(write_err("incident", "division"))?;
                        }
                    }
                    // One lookup for the whole batch; rows locked in id order so concurrent
                    // batches queue up instead of deadlocking.
                    let mut qb = Qb::new(
                        "SELECT id, division_id, source_key, source_ip, first_seen, last_seen, \
                         severity, classification, alert_pending, last_alert_at FROM incidents \
                         WHERE status IN ('new', 'in_progress') AND archived = ",
                    );
                    qb.push_bind(false);
                    push_in(&mut qb, "division_id", divisions);
                    push_in(&mut qb, "source_key", keys.into_iter().map(|k| k.to_vec()));
                    qb.push(" AND last_seen >= ")
                        .push_bind(min_ts.saturating_sub(window_us))
                        .push(" ORDER BY id")
                        .push(Self::LOCK_UPDATE);
                    let rows: Vec<LiveIncidentRow> = qb
                        .build_query_as()
                        .fetch_all(&mut **tx)
                        .await
                        .map_err(read_err("incident"))?;
                    let mut newest: HashMap<(i64, Vec<u8>), LiveIncident> = HashMap::new();
                    for row in rows {
                        let live = LiveIncident::try_from(row)?;
                        let key = (live.division, live.key.clone());
                        let newer = newest
                            .get(&key)
                            .is_none_or(|cur| (cur.last_seen, cur.id) < (live.last_seen, live.id));
                        if newer {
                            newest.insert(key, live);
                        }
                    }
                    let mut touched: Vec<LiveIncident> = Vec::new();
                    for ((division, key), mut evs) in groups {
                        // Batch position = insertion order = id order, as before.
                        evs.sort_by_key(|(d, idx)| (to_micros(d.timestamp), *idx));
                        let mut current = newest.remove(&(division, key.to_vec()));
                        for (d, idx) in evs {
                            let ts = to_micros(d.timestamp);
                            let joins = current
                                .as_ref()
                                .is_some_and(|c| c.last_seen >= ts.saturating_sub(window_us));
                            if !joins {
                                if let Some(c) = current.take().filter(|c| !c.events.is_empty()) {
                                    touched.push(c);
                                }
                                current = Some(LiveIncident::start(division, key, d, ts));
                            }
                            if let Some(c) = current.as_mut() {
                                c.add(d, ts, idx);
                            }
                        }
                        if let Some(c) = current.filter(|c| !c.events.is_empty()) {
                            touched.push(c);
                        }
                    }
                    // Whether each touched incident gets an alert job (decided on its state
                    // before this batch).
                    let alerts: Vec<bool> =
                        touched.iter().map(|inc| options.alerts && !inc.alert_pending).collect();
                    let mut ids: Vec<i64> = touched.iter().map(|inc| inc.id).collect();
                    let (created, updated): (Vec<usize>, Vec<usize>) =
                        (0..touched.len()).partition(|&i| touched[i].id == 0);

                    let incident_columns = "INSERT INTO incidents (division_id, source_ip, source_key, \
                         first_seen, last_seen, event_count, severity, classification, status, \
                         archived, alert_pending, created_at) ";
                    if self.returning_rows() {
                        // Two new incidents of one source in a batch lie more than a window apart,
                        // so (division, source, first_seen) names each: RETURNING order is not
                        // promised by every engine.
                        for chunk in created.chunks(EVENT_CHUNK) {
                            let mut qb = Qb::new(incident_columns);
                            qb.push_values(chunk, |mut b, &i| {
                                let inc = &touched[i];
                                b.push_bind(inc.division)
                                    .push_bind(inc.source_ip.clone())
                                    .push_bind(inc.key.clone())
                                    .push_bind(inc.first_seen)
                                    .push_bind(inc.last_seen)
                                    .push_bind(i64_of(inc.events.len() as u64))
                                    .push_bind(inc.severity.as_str())
                                    .push_bind(inc.classification.as_str())
                                    .push("'new'")
                                    .push_bind(false)
                                    .push_bind(alerts[i])
                                    .push_bind(now_us);
                            });
                            qb.push(" RETURNING id, division_id, source_key, first_seen");
                            let back: Vec<(i64, i64, Vec<u8>, i64)> = qb
                                .build_query_as()
                                .fetch_all(&mut **tx)
                                .await
                                .map_err(write_err("incident", "division"))?;
                            let by_key: HashMap<(i64, Vec<u8>, i64), i64> =
                                back.into_iter().map(|(id, d, k, f)| ((d, k, f), id)).collect();
                            for &i in chunk {
                                let inc = &touched[i];
                                let key = (inc.division, inc.key.clone(), inc.first_seen);
                                ids[i] = by_key.get(&key).copied().ok_or_else(|| {
                                    corrupt("incident", "insert returned no id for a new incident")
                                })?;
                            }
                        }
                    } else {
                        // MySQL 8: no RETURNING; one insert per new incident.
                        for &i in &created {
                            let inc = &touched[i];
                            let q = sqlx::query(Self::sql_returning_id(
                                "INSERT INTO incidents (division_id, source_ip, source_key, first_seen, \
                                 last_seen, event_count, severity, classification, status, archived, \
                                 alert_pending, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'new', ?, ?, ?)",
                            ))
                            .bind(inc.division)
                            .bind(inc.source_ip.clone())
                            .bind(inc.key.clone())
                            .bind(inc.first_seen)
                            .bind(inc.last_seen)
                            .bind(i64_of(inc.events.len() as u64))
                            .bind(inc.severity.as_str())
                            .bind(inc.classification.as_str())
                            .bind(false)
                            .bind(alerts[i])
                            .bind(now_us);
                            ids[i] = Self::fetch_id(q, &mut **tx)
                                .await
                                .map_err(write_err("incident", "division"))?;
                        }
                    }
                    // Extended incidents: one `UPDATE … SET col = CASE id WHEN … END` per chunk
                    // (portable to all three engines).
                    for chunk in updated.chunks(EVENT_CHUNK) {
                        let mut qb = Qb::new("UPDATE incidents SET ");
                        type Value<'v> = &'v dyn Fn(&mut Qb, usize);
                        let set = |qb: &mut Qb, column: &str, add: bool, value: Value<'_>| {
                            qb.push(column).push(" = ");
                            if add {
                                qb.push(column).push(" + ");
                            }
                            qb.push("CASE id");
                            for &i in chunk {
                                qb.push(" WHEN ").push_bind(touched[i].id).push(" THEN ");
                                value(qb, i);
                            }
                            qb.push(" END");
                        };
                        set(&mut qb, "first_seen", false, &|qb, i| {
                            qb.push_bind(touched[i].first_seen);
                        });
                        qb.push(", ");
                        set(&mut qb, "last_seen", false, &|qb, i| {
                            qb.push_bind(touched[i].last_seen);
                        });
                        qb.push(", ");
                        set(&mut qb, "event_count", true, &|qb, i| {
                            qb.push_bind(i64_of(touched[i].events.len() as u64));
                        });
                        qb.push(", ");
                        set(&mut qb, "severity", false, &|qb, i| {
                            qb.push_bind(touched[i].severity.as_str());
                        });
                        qb.push(", ");
                        set(&mut qb, "classification", false, &|qb, i| {
                            qb.push_bind(touched[i].classification.as_str());
                        });
                        qb.push(", ");
                        set(&mut qb, "alert_pending", false, &|qb, i| {
                            qb.push_bind(touched[i].alert_pending || alerts[i]);
                        });
                        qb.push(" WHERE 1 = 1");
                        push_in(&mut qb, "id", chunk.iter().map(|&i| touched[i].id));
                        qb.build().execute(&mut **tx).await.map_err(read_err("incident"))?;
                    }
                    // Alert jobs of the batch, in the order of the touches.
                    let created_at = to_micros(now());
                    let due: Vec<usize> = (0..touched.len()).filter(|&i| alerts[i]).collect();
                    for chunk in due.chunks(EVENT_CHUNK) {
                        let mut qb = Qb::new(
                            "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, run_at, \
                             created_at) ",
                        );
                        qb.push_values(chunk, |mut b, &i| {
                            let run_at = touched[i]
                                .last_alert_at
                                .map_or(now_us, |t| t.saturating_add(interval_us).max(now_us));
                            b.push_bind(ALERT_JOB)
                                .push_bind(json(&serde_json::json!({ "incident_id": ids[i] })))
                                .push("'queued'")
                                .push("0")
                                .push_bind(ALERT_ATTEMPTS)
                                .push_bind(run_at)
                                .push_bind(created_at);
                        });
                        qb.build().execute(&mut **tx).await.map_err(read_err("job"))?;
                    }
                    let mut joins: Vec<Option<i64>> = vec![None; count];
                    let mut out = Vec::with_capacity(touched.len());
                    for (i, inc) in touched.iter().enumerate() {
                        for &idx in &inc.events {
                            if let Some(slot) = joins.get_mut(idx) {
                                *slot = Some(ids[i]);
                            }
                        }
                        out.push(IncidentTouch {
                            id: IncidentId(ids[i]),
                            created: inc.id == 0,
                            events: inc.events.len() as u64,
                            alert_enqueued: alerts[i],
                        });
                    }
                    Ok((out, joins))
                }

                /// Sensor counts of incidents (distinct sensors among their events).
                async fn incident_sensor_counts(&self, ids: &[i64]) -> Result<HashMap<i64, u64>> {
                    if ids.is_empty() {
                        return Ok(HashMap::new());
                    }
                    let mut qb = Qb::new(
                        "SELECT incident_id, COUNT(DISTINCT sensor_id) FROM events WHERE 1 = 1",
                    );
                    push_in(&mut qb, "incident_id", ids.iter().copied());
                    qb.push(" GROUP BY incident_id");
                    let rows: Vec<(i64, i64)> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("incident"))?;
                    Ok(rows.into_iter().map(|(i, n)| (i, u64::try_from(n).unwrap_or(0))).collect())
                }

                async fn incidents_of(&self, rows: Vec<IncidentRow>) -> Result<Vec<Incident>> {
                    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                    let counts = self.incident_sensor_counts(&ids).await?;
                    rows.into_iter()
                        .map(|r| {
                            let n = counts.get(&r.id).copied().unwrap_or(0);
                            r.into_incident(n)
                        })
                        .collect()
                }

                /// Counts of `GROUP BY` over the events matching `query` (`select` yields the
                /// key and `COUNT(*)`, `tail` follows the conditions).
                async fn stats_counts<K>(
                    &self,
                    select: &str,
                    query: &EventQuery,
                    extra: &str,
                    tail: &str,
                    limit: Option<u32>,
                ) -> Result<Vec<(K, i64)>>
                where
                    K: for<'r> sqlx::Decode<'r, $db> + sqlx::Type<$db> + Send + Unpin,
                {
                    let mut qb = Qb::new(format!("SELECT {select}, COUNT(*) FROM events WHERE 1 = 1"));
                    push_event_conditions(&mut qb, query);
                    qb.push(extra).push(" GROUP BY 1").push(tail);
                    if let Some(limit) = limit {
                        qb.push(" LIMIT ").push_bind(i64::from(limit));
                    }
                    qb.build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("event"))
                }

                async fn claim_jobs_once(
                    &self,
                    worker: &str,
                    kinds: Option<&[String]>,
                    limit: u32,
                    lease: Duration,
                ) -> Result<Vec<Job>> {
                    if limit == 0 {
                        return Ok(Vec::new());
                    }
                    let at = now();
                    let now_us = to_micros(at);
                    let lease_us = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX / 4);
                    let mut tx = self.begin_write().await.map_err(read_err("job"))?;
                    let mut qb = Qb::new(
                        "SELECT id, attempts, max_attempts FROM jobs WHERE \
                         ((state = 'queued' AND run_at <= ",
                    );
                    qb.push_bind(now_us)
                        .push(") OR (state = 'running' AND locked_until < ")
                        .push_bind(now_us)
                        .push("))");
                    if let Some(kinds) = kinds {
                        push_in(&mut qb, "kind", kinds.iter().map(String::as_str));
                    }
                    qb.push(" ORDER BY run_at, id LIMIT ")
                        .push_bind(i64::from(limit))
                        .push(Self::LOCK_SKIP);
                    let candidates: Vec<(i64, i32, i32)> = qb
                        .build_query_as()
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(read_err("job"))?;
                    // A lease that expired on the last allowed attempt ends the job instead.
                    let (exhausted, claim): (Vec<_>, Vec<_>) =
                        candidates.into_iter().partition(|(_, attempts, max)| attempts >= max);
                    if !exhausted.is_empty() {
                        let mut qb = Qb::new(
                            "UPDATE jobs SET state = 'failed', locked_by = NULL, locked_until = NULL, \
                             last_error = 'lease expired on the last attempt' WHERE 1 = 1",
                        );
                        push_in(&mut qb, "id", exhausted.iter().map(|c| c.0));
                        qb.build().execute(&mut *tx).await.map_err(read_err("job"))?;
                    }
                    if claim.is_empty() {
                        tx.commit().await.map_err(read_err("job"))?;
                        return Ok(Vec::new());
                    }
                    let mut qb = Qb::new("UPDATE jobs SET state = 'running', attempts = attempts + 1, locked_by = ");
                    qb.push_bind(worker)
                        .push(", locked_until = ")
                        .push_bind(now_us.saturating_add(lease_us))
                        .push(" WHERE 1 = 1");
                    push_in(&mut qb, "id", claim.iter().map(|c| c.0));
                    qb.build().execute(&mut *tx).await.map_err(read_err("job"))?;
                    let mut qb = Qb::new(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1"));
                    push_in(&mut qb, "id", claim.iter().map(|c| c.0));
                    qb.push(" ORDER BY run_at, id");
                    let rows: Vec<JobRow> = qb
                        .build_query_as()
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(read_err("job"))?;
                    tx.commit().await.map_err(read_err("job"))?;
                    rows.into_iter().map(Job::try_from).collect()
                }

                /// One row selected by a key (`prefix` ends in `WHERE column = `); `NotFound` as
                /// `entity` when there is none.
                async fn row_by<R, K>(&self, prefix: String, key: K, entity: &'static str) -> Result<R>
                where
                    R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
                    K: for<'q> sqlx::Encode<'q, $db> + sqlx::Type<$db> + Send,
                {
                    let mut qb = Qb::new(prefix);
                    qb.push_bind(key);
                    qb.build_query_as().fetch_one(&self.pool).await.map_err(read_err(entity))
                }

                async fn user_divisions(&self, user: Option<i64>) -> Result<HashMap<i64, Vec<DivisionId>>> {
                    let rows: Vec<(i64, i64)> = match user {
                        Some(id) => sqlx::query_as(Self::sql(
                            "SELECT user_id, division_id FROM user_divisions WHERE user_id = ? \
                             ORDER BY division_id",
                        ))
                        .bind(id)
                        .fetch_all(&self.pool)
                        .await,
                        None => sqlx::query_as(Self::sql(
                            "SELECT user_id, division_id FROM user_divisions \
                             ORDER BY user_id, division_id",
                        ))
                        .fetch_all(&self.pool)
                        .await,
                    }
                    .map_err(read_err("user"))?;
                    let mut map: HashMap<i64, Vec<DivisionId>> = HashMap::new();
                    for (u, d) in rows {
                        map.entry(u).or_default().push(DivisionId(d));
                    }
                    Ok(map)
                }

                async fn session_exists(&self, id_hash: &str) -> Result<bool> {
                    let n: i64 = sqlx::query_scalar(Self::sql("SELECT COUNT(*) FROM sessions WHERE id = ?"))
                        .bind(id_hash)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(read_err("session"))?;
                    Ok(n > 0)
                }

                async fn exists(&self, table_sql: &'static str, id: i64) -> Result<bool> {
                    let n: i64 = sqlx::query_scalar(Self::sql(table_sql))
                        .bind(id)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(read_err("record"))?;
                    Ok(n > 0)
                }
            }

            #[async_trait]
            impl DirectoryStore for $store {
                async fn create_division(&self, spec: &DivisionSpec) -> Result<Division> {
                    let created = now();
                    let q = sqlx::query(Self::sql_returning_id(
                        "INSERT INTO divisions (name, created_at) VALUES (?, ?)",
                    ))
                    .bind(&spec.name)
                    .bind(to_micros(created));
                    let id = Self::fetch_id(q, &self.pool).await.map_err(write_err("division", "division"))?;
                    Ok(Division { id: DivisionId(id), name: spec.name.clone(), created_at: created })
                }

                async fn get_division(&self, id: DivisionId) -> Result<Division> {
                    sqlx::query_as::<_, DivisionRow>(Self::sql(
                        "SELECT id, name, created_at FROM divisions WHERE id = ?",
                    ))
                    .bind(id.0)
                    .fetch_one(&self.pool)
                    .await
                    .map(Division::from)
                    .map_err(read_err("division"))
                }

                async fn list_divisions(&self) -> Result<Vec<Division>> {
                    let rows = sqlx::query_as::<_, DivisionRow>(Self::sql(
                        "SELECT id, name, created_at FROM divisions ORDER BY name",
                    ))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err("division"))?;
                    Ok(rows.into_iter().map(Division::from).collect())
                }

                async fn update_division(&self, id: DivisionId, spec: &DivisionSpec) -> Result<Division> {
                    let done = sqlx::query(Self::sql("UPDATE divisions SET name = ? WHERE id = ?"))
                        .bind(&spec.name)
                        .bind(id.0)
                        .execute(&self.pool)
                        .await
                        .map_err(write_err("division", "division"))?;
                    if done.rows_affected() == 0 {
                        return Err(Error::not_found("division"));
                    }
                    self.get_division(id).await
                }

                async fn delete_division(&self, id: DivisionId) -> Result<()> {
                    let mut tx = self.begin_write().await.map_err(read_err("division"))?;
                    // The division row first: it fails while sensors are in the division, and
                    // once it is gone no ingest can add events for it (see `check_sensors`).
                    let done = sqlx::query(Self::sql("DELETE FROM divisions WHERE id = ?"))
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(delete_err("division"))?;
                    one_row(done.rows_affected(), "division")?;
                    // Events of sensors that moved to another division since.
                    Self::delete_events_of(&mut tx, "division_id", id.0).await?;
                    tx.commit().await.map_err(read_err("division"))
                }

                async fn create_user(&self, spec: &UserSpec, password_hash: &str) -> Result<User> {
                    let created = now();
                    let mut tx = self.begin_write().await.map_err(read_err("user"))?;
                    let q = sqlx::query(Self::sql_returning_id(
                        "INSERT INTO users (name, full_name, email, role, password_hash, \
                         must_change_password, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    ))
                    .bind(&spec.name)
                    .bind(&spec.full_name)
                    .bind(&spec.email)
                    .bind(spec.role.as_str())
                    .bind(password_hash)
                    .bind(false)
                    .bind(to_micros(created));
                    let id = Self::fetch_id(q, &mut *tx).await.map_err(write_err("user", "division"))?;
                    let mut divisions = spec.divisions.clone();
                    divisions.sort();
                    divisions.dedup();
                    for d in &divisions {
                        sqlx::query(Self::sql(
                            "INSERT INTO user_divisions (user_id, division_id) VALUES (?, ?)",
                        ))
                        .bind(id)
                        .bind(d.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(write_err("user", "division"))?;
                    }
                    tx.commit().await.map_err(read_err("user"))?;
                    Ok(User {
                        id: UserId(id),
                        spec: UserSpec { divisions, ..spec.clone() },
                        must_change_password: false,
                        created_at: created,
                    })
                }

                async fn get_user(&self, id: UserId) -> Result<User> {
                    let row = sqlx::query_as::<_, UserRow>(Self::sql(
                        "SELECT id, name, full_name, email, role, must_change_password, created_at \
                         FROM users WHERE id = ?",
                    ))
                    .bind(id.0)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(read_err("user"))?;
                    let mut divs = self.user_divisions(Some(id.0)).await?;
                    row.into_user(divs.remove(&id.0).unwrap_or_default())
                }

                async fn get_user_credentials(&self, name: &str) -> Result<(User, String)> {
                    let (id, hash): (i64, String) = sqlx::query_as(Self::sql(
                        "SELECT id, password_hash FROM users WHERE name = ?",
                    ))
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(read_err("user"))?;
                    Ok((self.get_user(UserId(id)).await?, hash))
                }

                async fn list_users(&self, division: Option<DivisionId>) -> Result<Vec<User>> {
                    let mut qb = Qb::new(format!("SELECT {USER_COLUMNS} FROM users"));
                    if let Some(d) = division {
                        qb.push(" WHERE id IN (SELECT user_id FROM user_divisions WHERE division_id = ")
                            .push_bind(d.0)
                            .push(")");
                    }
                    qb.push(" ORDER BY name");
                    let rows: Vec<UserRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("user"))?;
                    let mut divs = self.user_divisions(None).await?;
                    rows.into_iter()
                        .map(|r| {
                            let d = divs.remove(&r.id).unwrap_or_default();
                            r.into_user(d)
                        })
                        .collect()
                }

                async fn update_user(&self, id: UserId, spec: &UserSpec) -> Result<User> {
                    let mut tx = self.begin_write().await.map_err(read_err("user"))?;
                    let done = sqlx::query(Self::sql(
                        "UPDATE users SET name = ?, full_name = ?, email = ?, role = ? WHERE id = ?",
                    ))
                    .bind(&spec.name)
                    .bind(&spec.full_name)
                    .bind(&spec.email)
                    .bind(spec.role.as_str())
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(write_err("user", "user"))?;
                    if done.rows_affected() == 0 {
                        return Err(Error::not_found("user"));
                    }
                    sqlx::query(Self::sql("DELETE FROM user_divisions WHERE user_id = ?"))
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(read_err("user"))?;
                    let mut divisions = spec.divisions.clone();
                    divisions.sort();
                    divisions.dedup();
                    for d in &divisions {
                        sqlx::query(Self::sql(
                            "INSERT INTO user_divisions (user_id, division_id) VALUES (?, ?)",
                        ))
                        .bind(id.0)
                        .bind(d.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(write_err("user", "division"))?;
                    }
                    tx.commit().await.map_err(read_err("user"))?;
                    self.get_user(id).await
                }

                async fn set_password_hash(&self, id: UserId, hash: &str, must_change: bool) -> Result<()> {
                    let done = sqlx::query(Self::sql(
                        "UPDATE users SET password_hash = ?, must_change_password = ? WHERE id = ?",
                    ))
                    .bind(hash)
                    .bind(must_change)
                    .bind(id.0)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("user"))?;
                    one_row(done.rows_affected(), "user")
                }

                async fn delete_user(&self, id: UserId) -> Result<()> {
                    let done = sqlx::query(Self::sql("DELETE FROM users WHERE id = ?"))
                        .bind(id.0)
                        .execute(&self.pool)
                        .await
                        .map_err(delete_err("user"))?;
                    one_row(done.rows_affected(), "user")
                }

                async fn count_users(&self) -> Result<u64> {
                    let n: i64 = sqlx::query_scalar(Self::sql("SELECT COUNT(*) FROM users"))
                        .fetch_one(&self.pool)
                        .await
                        .map_err(read_err("user"))?;
                    Ok(u64::try_from(n).unwrap_or(0))
                }

                async fn create_contact(&self, spec: &ContactSpec) -> Result<Contact> {
                    if let ContactTarget::User { user_id } = spec.target {
                        if !self.exists("SELECT COUNT(*) FROM users WHERE id = ?", user_id.0).await? {
                            return Err(Error::not_found("user"));
                        }
                    }
                    let (kind, address, user_id, secret) = contact_columns(&spec.target);
                    let q = sqlx::query(Self::sql_returning_id(
                        "INSERT INTO contacts (division_id, kind, address, user_id, critical_events, \
                         all_events, sensor_timeouts, weekly_summary, secret) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    ))
                    .bind(spec.division_id.0)
                    .bind(kind)
                    .bind(address)
                    .bind(user_id)
                    .bind(spec.notify.critical_events)
                    .bind(spec.notify.all_events)
                    .bind(spec.notify.sensor_timeouts)
                    .bind(spec.notify.weekly_summary)
                    .bind(secret);
                    let id = Self::fetch_id(q, &self.pool).await.map_err(write_err("contact", "division"))?;
                    Ok(Contact { id: ContactId(id), spec: spec.clone() })
                }

                async fn get_contact(&self, id: ContactId) -> Result<Contact> {
                    let row: ContactRow = self
                        .row_by(format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = "), id.0, "contact")
                        .await?;
                    Contact::try_from(row)
                }

                async fn list_contacts(&self, division: Option<DivisionId>) -> Result<Vec<Contact>> {
                    let mut qb = Qb::new(format!("SELECT {CONTACT_COLUMNS} FROM contacts WHERE 1 = 1"));
                    if let Some(d) = division {
                        qb.push(" AND division_id = ").push_bind(d.0);
                    }
                    qb.push(" ORDER BY id");
                    let rows: Vec<ContactRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("contact"))?;
                    rows.into_iter().map(Contact::try_from).collect()
                }

                async fn update_contact(&self, id: ContactId, spec: &ContactSpec) -> Result<Contact> {
                    if let ContactTarget::User { user_id } = spec.target {
                        if !self.exists("SELECT COUNT(*) FROM users WHERE id = ?", user_id.0).await? {
                            return Err(Error::not_found("user"));
                        }
                    }
                    let (kind, address, user_id, secret) = contact_columns(&spec.target);
                    let done = sqlx::query(Self::sql(
                        "UPDATE contacts SET division_id = ?, kind = ?, address = ?, user_id = ?, \
                         critical_events = ?, all_events = ?, sensor_timeouts = ?, weekly_summary = ?, \
                         secret = ? WHERE id = ?",
                    ))
                    .bind(spec.division_id.0)
                    .bind(kind)
                    .bind(address)
                    .bind(user_id)
                    .bind(spec.notify.critical_events)
                    .bind(spec.notify.all_events)
                    .bind(spec.notify.sensor_timeouts)
                    .bind(spec.notify.weekly_summary)
                    .bind(secret)
                    .bind(id.0)
                    .execute(&self.pool)
                    .await
                    .map_err(write_err("contact", "division"))?;
                    if done.rows_affected() == 0 {
                        return Err(Error::not_found("contact"));
                    }
                    Ok(Contact { id, spec: spec.clone() })
                }

                async fn delete_contact(&self, id: ContactId) -> Result<()> {
                    let done = sqlx::query(Self::sql("DELETE FROM contacts WHERE id = ?"))
                        .bind(id.0)
                        .execute(&self.pool)
                        .await
                        .map_err(delete_err("contact"))?;
                    one_row(done.rows_affected(), "contact")
                }
            }

            #[async_trait]
            impl SensorStore for $store {
                async fn create_sensor(&self, spec: &SensorSpec) -> Result<Sensor> {
                    if let Some(fw) = spec.firmware_id {
                        if !self.exists("SELECT COUNT(*) FROM firmware_revisions WHERE id = ?", fw.0).await? {
                            return Err(Error::not_found("firmware"));
                        }
                    }
                    let created = now();
                    let q = sqlx::query(Self::sql_returning_id(
                        "INSERT INTO sensors (name, location, division_id, config, update_interval, \
                         firmware_id, auth_mode, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    ))
                    .bind(&spec.name)
                    .bind(&spec.location)
                    .bind(spec.division_id.0)
                    .bind(SensorConfigJson::of(spec))
                    .bind(spec.update_interval.map(|i| i32::try_from(i).unwrap_or(i32::MAX)))
                    .bind(spec.firmware_id.map(|f| f.0))
                    .bind(spec.auth.as_str())
                    .bind(to_micros(created));
                    let id = Self::fetch_id(q, &self.pool).await.map_err(write_err("sensor", "division"))?;
                    Ok(Sensor {
                        id: SensorId(id),
                        spec: spec.clone(),
                        created_at: created,
                        last_seen: None,
                        last_state: None,
                        offline: false,
                    })
                }

                async fn get_sensor(&self, id: SensorId) -> Result<Sensor> {
                    let row: SensorRow = self
                        .row_by(format!("SELECT {SENSOR_COLUMNS} FROM sensors WHERE id = "), id.0, "sensor")
                        .await?;
                    Sensor::try_from(row)
                }

                async fn list_sensors(&self, divisions: Option<&[DivisionId]>) -> Result<Vec<Sensor>> {
                    let mut qb = Qb::new(format!("SELECT {SENSOR_COLUMNS} FROM sensors WHERE 1 = 1"));
                    if let Some(divs) = divisions {
                        push_in(&mut qb, "division_id", divs.iter().map(|d| d.0));
                    }
                    qb.push(" ORDER BY name, id");
                    let rows: Vec<SensorRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("sensor"))?;
                    rows.into_iter().map(Sensor::try_from).collect()
                }

                async fn update_sensor(&self, id: SensorId, spec: &SensorSpec) -> Result<Sensor> {
                    if let Some(fw) = spec.firmware_id {
                        if !self.exists("SELECT COUNT(*) FROM firmware_revisions WHERE id = ?", fw.0).await? {
                            return Err(Error::not_found("firmware"));
                        }
                    }
                    let done = sqlx::query(Self::sql(
                        "UPDATE sensors SET name = ?, location = ?, division_id = ?, config = ?, \
                         update_interval = ?, firmware_id = ?, auth_mode = ? WHERE id = ?",
                    ))
                    .bind(&spec.name)
                    .bind(&spec.location)
                    .bind(spec.division_id.0)
                    .bind(SensorConfigJson::of(spec))
                    .bind(spec.update_interval.map(|i| i32::try_from(i).unwrap_or(i32::MAX)))
                    .bind(spec.firmware_id.map(|f| f.0))
                    .bind(spec.auth.as_str())
                    .bind(id.0)
                    .execute(&self.pool)
                    .await
                    .map_err(write_err("sensor", "division"))?;
                    if done.rows_affected() == 0 {
                        return Err(Error::not_found("sensor"));
                    }
                    self.get_sensor(id).await
                }

                async fn delete_sensor(&self, id: SensorId) -> Result<()> {
                    let mut tx = self.begin_write().await.map_err(read_err("sensor"))?;
                    sqlx::query(Self::sql(
                        "UPDATE certificates SET revoked_at = ? WHERE sensor_id = ? AND revoked_at IS NULL",
                    ))
                    .bind(to_micros(now()))
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(read_err("sensor"))?;
                    // The sensor row first: that waits for ingests holding it (see
                    // `check_sensors`), so the delete below also sees their events.
                    let done = sqlx::query(Self::sql("DELETE FROM sensors WHERE id = ?"))
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(delete_err("sensor"))?;
                    if done.rows_affected() == 0 {
                        return Err(Error::not_found("sensor"));
                    }
                    Self::delete_events_of(&mut tx, "sensor_id", id.0).await?;
                    tx.commit().await.map_err(read_err("sensor"))
                }

                async fn record_status(&self, r: &StatusReport) -> Result<()> {
                    self.record_statuses(std::slice::from_ref(r)).await
                }

                async fn record_statuses(&self, reports: &[StatusReport]) -> Result<()> {
                    let mut tx = self.begin_write().await.map_err(read_err("sensor"))?;
                    for r in reports {
                        let received = to_micros(r.received_at);
                        sqlx::query(Self::sql(
                            "INSERT INTO sensor_status (sensor_id, sent_at, received_at, state, \
                             free_memory_mb, disk_total_mb, disk_used_mb, agent_version, \
                             firmware_version, spool_depth, addresses, services) \
                             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        ))
                        .bind(r.sensor_id.0)
                        .bind(to_micros(r.timestamp))
                        .bind(received)
                        .bind(r.state.as_str())
                        .bind(i64_of(r.free_memory_mb))
                        .bind(i64_of(r.disk_total_mb))
                        .bind(i64_of(r.disk_used_mb))
                        .bind(&r.agent_version)
                        .bind(&r.firmware_version)
                        .bind(i64_of(r.spool_depth))
                        .bind(json(&r.addresses))
                        .bind(json(&r.services))
                        .execute(&mut *tx)
                        .await
                        .map_err(write_err("status", "sensor"))?;
                        // A late-arriving older report must not move `last_seen` backwards.
                        sqlx::query(Self::sql(
                            "UPDATE sensors SET last_seen = ?, last_state = ? \
                             WHERE id = ? AND (last_seen IS NULL OR last_seen <= ?)",
                        ))
                        .bind(received)
                        .bind(r.state.as_str())
                        .bind(r.sensor_id.0)
                        .bind(received)
                        .execute(&mut *tx)
                        .await
                        .map_err(read_err("sensor"))?;
                    }
                    tx.commit().await.map_err(read_err("sensor"))
                }

                async fn list_status(&self, id: SensorId, limit: u32) -> Result<Vec<StatusReport>> {
                    if !self.exists("SELECT COUNT(*) FROM sensors WHERE id = ?", id.0).await? {
                        return Err(Error::not_found("sensor"));
                    }
                    let mut qb = Qb::new(format!("SELECT {STATUS_COLUMNS} FROM sensor_status WHERE sensor_id = "));
                    qb.push_bind(id.0)
                        .push(" ORDER BY received_at DESC, id DESC LIMIT ")
                        .push_bind(i64::from(limit));
                    let rows: Vec<StatusRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("status"))?;
                    rows.into_iter().map(StatusReport::try_from).collect()
                }

                async fn prune_status(&self, before: Timestamp) -> Result<u64> {
                    let done = sqlx::query(Self::sql("DELETE FROM sensor_status WHERE received_at < ?"))
                        .bind(to_micros(before))
                        .execute(&self.pool)
                        .await
                        .map_err(read_err("status"))?;
                    Ok(done.rows_affected())
                }

                async fn set_sensor_offline(&self, id: SensorId, offline: bool) -> Result<bool> {
                    // Conditional, so of several replicas racing only one sees the change.
                    let done = sqlx::query(Self::sql(
                        "UPDATE sensors SET offline = ? WHERE id = ? AND offline <> ?",
                    ))
                    .bind(offline)
                    .bind(id.0)
                    .bind(offline)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("sensor"))?;
                    if done.rows_affected() > 0 {
                        return Ok(true);
                    }
                    if !self.exists("SELECT COUNT(*) FROM sensors WHERE id = ?", id.0).await? {
                        return Err(Error::not_found("sensor"));
                    }
                    Ok(false)
                }

                async fn set_sensor_secret(&self, id: SensorId, secret: Option<&str>) -> Result<()> {
                    let mut tx = self.begin_write().await.map_err(read_err("sensor"))?;
                    sqlx::query(Self::sql("DELETE FROM sensor_secrets WHERE sensor_id = ?"))
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(read_err("sensor"))?;
                    if let Some(secret) = secret {
                        sqlx::query(Self::sql(
                            "INSERT INTO sensor_secrets (sensor_id, secret, created_at) VALUES (?, ?, ?)",
                        ))
                        .bind(id.0)
                        .bind(secret)
                        .bind(to_micros(now()))
                        .execute(&mut *tx)
                        .await
                        .map_err(write_err("sensor", "sensor"))?;
                    } else if !self.exists("SELECT COUNT(*) FROM sensors WHERE id = ?", id.0).await? {
                        return Err(Error::not_found("sensor"));
                    }
                    tx.commit().await.map_err(read_err("sensor"))
                }

                async fn get_sensor_secret(&self, id: SensorId) -> Result<Option<String>> {
                    let secret: Option<String> = sqlx::query_scalar(Self::sql(
                        "SELECT secret FROM sensor_secrets WHERE sensor_id = ?",
                    ))
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err("sensor"))?;
                    if secret.is_none() && !self.exists("SELECT COUNT(*) FROM sensors WHERE id = ?", id.0).await? {
                        return Err(Error::not_found("sensor"));
                    }
                    Ok(secret)
                }
            }

            #[async_trait]
            impl PlatformStore for $store {
                async fn create_platform(&self, spec: &PlatformSpec) -> Result<Platform> {
                    let q = sqlx::query(Self::sql_returning_id(
                        "INSERT INTO platforms (name, title, description) VALUES (?, ?, ?)",
                    ))
                    .bind(&spec.name)
                    .bind(&spec.title)
                    .bind(&spec.description);
                    let id = Self::fetch_id(q, &self.pool).await.map_err(write_err("platform", "platform"))?;
                    Ok(Platform { id: PlatformId(id), spec: spec.clone(), default_firmware: None })
                }

                async fn get_platform(&self, id: PlatformId) -> Result<Platform> {
                    sqlx::query_as::<_, PlatformRow>(Self::sql(
                        "SELECT id, name, title, description, default_firmware_id FROM platforms WHERE id = ?",
                    ))
                    .bind(id.0)
                    .fetch_one(&self.pool)
                    .await
                    .map(Platform::from)
                    .map_err(read_err("platform"))
                }

                async fn list_platforms(&self) -> Result<Vec<Platform>> {
                    let rows = sqlx::query_as::<_, PlatformRow>(Self::sql(
                        "SELECT id, name, title, description, default_firmware_id FROM platforms ORDER BY name",
                    ))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err("platform"))?;
                    Ok(rows.into_iter().map(Platform::from).collect())
                }

                async fn add_firmware(&self, spec: &FirmwareSpec) -> Result<FirmwareRevision> {
                    let created = now();
                    let q = sqlx::query(Self::sql_returning_id(
                        "INSERT INTO firmware_revisions (platform_id, version, description, changelog, \
                         sha256, size, storage_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    ))
                    .bind(spec.platform_id.0)
                    .bind(&spec.version)
                    .bind(&spec.description)
                    .bind(json(&spec.changelog))
                    .bind(&spec.sha256)
                    .bind(i64_of(spec.size))
                    .bind(&spec.storage_key)
                    .bind(to_micros(created));
                    let id = Self::fetch_id(q, &self.pool).await.map_err(write_err("firmware", "platform"))?;
                    Ok(FirmwareRevision { id: FirmwareId(id), spec: spec.clone(), created_at: created })
                }

                async fn get_firmware(&self, id: FirmwareId) -> Result<FirmwareRevision> {
                    let row: FirmwareRow = self
                        .row_by(format!("SELECT {FIRMWARE_COLUMNS} FROM firmware_revisions WHERE id = "), id.0, "firmware")
                        .await?;
                    FirmwareRevision::try_from(row)
                }

                async fn list_firmware(&self, platform: PlatformId) -> Result<Vec<FirmwareRevision>> {
                    if !self.exists("SELECT COUNT(*) FROM platforms WHERE id = ?", platform.0).await? {
                        return Err(Error::not_found("platform"));
                    }
                    let mut qb = Qb::new(format!(
                        "SELECT {FIRMWARE_COLUMNS} FROM firmware_revisions WHERE platform_id = "
                    ));
                    qb.push_bind(platform.0).push(" ORDER BY created_at DESC, id DESC");
                    let rows: Vec<FirmwareRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("firmware"))?;
                    rows.into_iter().map(FirmwareRevision::try_from).collect()
                }

                async fn set_default_firmware(&self, id: FirmwareId) -> Result<()> {
                    let mut tx = self.begin_write().await.map_err(read_err("firmware"))?;
                    let platform: i64 = sqlx::query_scalar(Self::sql(
                        "SELECT platform_id FROM firmware_revisions WHERE id = ?",
                    ))
                    .bind(id.0)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(read_err("firmware"))?;
                    sqlx::query(Self::sql("UPDATE platforms SET default_firmware_id = ? WHERE id = ?"))
                        .bind(id.0)
                        .bind(platform)
                        .execute(&mut *tx)
                        .await
                        .map_err(read_err("platform"))?;
                    tx.commit().await.map_err(read_err("firmware"))
                }

                async fn delete_firmware(&self, id: FirmwareId) -> Result<()> {
                    let mut tx = self.begin_write().await.map_err(read_err("firmware"))?;
                    sqlx::query(Self::sql(
                        "UPDATE platforms SET default_firmware_id = NULL WHERE default_firmware_id = ?",
                    ))
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(read_err("platform"))?;
                    // Sensors pinned to this revision fall back to their platform's default.
                    sqlx::query(Self::sql("UPDATE sensors SET firmware_id = NULL WHERE firmware_id = ?"))
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(read_err("sensor"))?;
                    let done = sqlx::query(Self::sql("DELETE FROM firmware_revisions WHERE id = ?"))
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .map_err(delete_err("firmware"))?;
                    if done.rows_affected() == 0 {
                        return Err(Error::not_found("firmware"));
                    }
                    tx.commit().await.map_err(read_err("firmware"))
                }
            }

            #[async_trait]
            impl ServiceStore for $store {
                async fn create_service(&self, spec: &ServiceSpec) -> Result<Service> {
                    let created = now();
                    let q = sqlx::query(Self::sql_returning_id(
                        "INSERT INTO services (name, repository, description, created_at) VALUES (?, ?, ?, ?)",
                    ))
                    .bind(&spec.name)
                    .bind(&spec.repository)
                    .bind(&spec.description)
                    .bind(to_micros(created));
                    let id = Self::fetch_id(q, &self.pool).await.map_err(write_err("service", "service"))?;
                    Ok(Service { id: ServiceId(id), spec: spec.clone(), created_at: created })
                }

                async fn get_service(&self, id: ServiceId) -> Result<Service> {
                    sqlx::query_as::<_, ServiceRow>(Self::sql(
                        "SELECT id, name, repository, description, created_at FROM services WHERE id = ?",
                    ))
                    .bind(id.0)
                    .fetch_one(&self.pool)
                    .await
                    .map(Service::from)
                    .map_err(read_err("service"))
                }

                async fn list_services(&self) -> Result<Vec<Service>> {
                    let rows = sqlx::query_as::<_, ServiceRow>(Self::sql(
                        "SELECT id, name, repository, description, created_at FROM services ORDER BY name",
                    ))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(read_err("service"))?;
                    Ok(rows.into_iter().map(Service::from).collect())
                }

                async fn delete_service(&self, id: ServiceId) -> Result<()> {
                    let done = sqlx::query(Self::sql("DELETE FROM services WHERE id = ?"))
                        .bind(id.0)
                        .execute(&self.pool)
                        .await
                        .map_err(delete_err("service"))?;
                    one_row(done.rows_affected(), "service")
                }

                async fn add_service_revision(&self, spec: &ServiceRevisionSpec) -> Result<ServiceRevision> {
                    let created = now();
                    let q = sqlx::query(Self::sql_returning_id(
                        "INSERT INTO service_revisions (service_id, revision, architecture, description, \
                         port_assignment, catch_all, raw_network_access, image_digest, created_at) \
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    ))
                    .bind(spec.service_id.0)
                    .bind(&spec.revision)
                    .bind(spec.architecture.as_str())
                    .bind(&spec.description)
                    .bind(json(&spec.port_assignment))
                    .bind(spec.catch_all)
                    .bind(spec.raw_network_access)
                    .bind(&spec.image_digest)
                    .bind(to_micros(created));
                    let id = Self::fetch_id(q, &self.pool)
                        .await
                        .map_err(write_err("service_revision", "service"))?;
                    Ok(ServiceRevision { id: ServiceRevisionId(id), spec: spec.clone(), created_at: created })
                }

                async fn list_service_revisions(&self, service: ServiceId) -> Result<Vec<ServiceRevision>> {
                    if !self.exists("SELECT COUNT(*) FROM services WHERE id = ?", service.0).await? {
                        return Err(Error::not_found("service"));
                    }
                    let mut qb = Qb::new(format!(
                        "SELECT {REVISION_COLUMNS} FROM service_revisions WHERE service_id = "
                    ));
                    qb.push_bind(service.0).push(" ORDER BY created_at DESC, id DESC");
                    let rows: Vec<ServiceRevisionRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("service_revision"))?;
                    rows.into_iter().map(ServiceRevision::try_from).collect()
                }

                async fn delete_service_revision(&self, id: ServiceRevisionId) -> Result<()> {
                    let done = sqlx::query(Self::sql("DELETE FROM service_revisions WHERE id = ?"))
                        .bind(id.0)
                        .execute(&self.pool)
                        .await
                        .map_err(delete_err("service_revision"))?;
                    one_row(done.rows_affected(), "service_revision")
                }

                async fn assign_service(&self, a: &ServiceAssignment) -> Result<()> {
                    if !self.exists("SELECT COUNT(*) FROM sensors WHERE id = ?", a.sensor_id.0).await? {
                        return Err(Error::not_found("sensor"));
                    }
                    sqlx::query(Self::sql(Self::UPSERT_ASSIGNMENT))
                        .bind(a.sensor_id.0)
                        .bind(a.service_id.0)
                        .bind(&a.revision)
                        .execute(&self.pool)
                        .await
                        .map_err(write_err("assignment", "service"))?;
                    Ok(())
                }

                async fn unassign_service(&self, sensor: SensorId, service: ServiceId) -> Result<()> {
                    let done = sqlx::query(Self::sql(
                        "DELETE FROM service_assignments WHERE sensor_id = ? AND service_id = ?",
                    ))
                    .bind(sensor.0)
                    .bind(service.0)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("assignment"))?;
                    one_row(done.rows_affected(), "assignment")
                }

                async fn list_assignments(&self, sensor: Option<SensorId>) -> Result<Vec<ServiceAssignment>> {
                    let mut qb = Qb::new(
                        "SELECT sensor_id, service_id, revision FROM service_assignments WHERE 1 = 1",
                    );
                    if let Some(s) = sensor {
                        qb.push(" AND sensor_id = ").push_bind(s.0);
                    }
                    qb.push(" ORDER BY sensor_id, service_id");
                    let rows: Vec<AssignmentRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("assignment"))?;
                    Ok(rows.into_iter().map(ServiceAssignment::from).collect())
                }
            }

            #[async_trait]
            impl EventStore for $store {
                async fn insert_events(
                    &self,
                    events: &[(NewEvent, DivisionId, EventStatus)],
                ) -> Result<InsertReport> {
                    let r = self.ingest_events(events, &IngestOptions::PLAIN).await?;
                    Ok(InsertReport { inserted: r.inserted, duplicates: r.duplicates })
                }

                async fn ingest_events(
                    &self,
                    events: &[(NewEvent, DivisionId, EventStatus)],
                    options: &IngestOptions,
                ) -> Result<IngestReport> {
                    let mut duplicates = Vec::new();
                    let mut seen = HashSet::with_capacity(events.len());
                    let mut fresh = Vec::with_capacity(events.len());
                    for e in events {
                        if seen.insert(e.0.data.uid) {
                            fresh.push(e);
                        } else {
                            duplicates.push(e.0.data.uid);
                        }
                    }
                    if fresh.is_empty() {
                        return Ok(IngestReport { duplicates, ..Default::default() });
                    }
                    // Concurrent ingests for one source can deadlock on PostgreSQL/MariaDB (row
                    // locks on incidents and their parent-key checks); the whole transaction
                    // rolled back, so running it again is safe.
                    // The first attempt assumes the batch is new (an upload sent once); one
                    // with stored events (a retried upload) fails fast and runs again at once,
                    // looking its stored uids up.
                    let mut attempt = 0;
                    let mut lookup = false;
                    loop {
                        match self.ingest_once(&fresh, options, lookup).await {
                            Ok(mut r) => {
                                duplicates.append(&mut r.duplicates);
                                r.duplicates = duplicates;
                                return Ok(r);
                            }
                            Err(e) if !lookup && is_ingest_race(&e) => lookup = true,
                            Err(e) if attempt < 5 && is_retryable(&e) => {
                                attempt += 1;
                                tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }

                async fn get_event(&self, id: EventId) -> Result<Event> {
                    let row: EventRow = self
                        .row_by(format!("SELECT {EVENT_COLUMNS} FROM events WHERE id = "), id.0, "event")
                        .await?;
                    Event::try_from(row)
                }

                async fn get_event_payload(&self, id: EventId) -> Result<EventPayload> {
                    sqlx::query_as::<_, PayloadRow>(Self::sql(
                        "SELECT details, packets FROM events WHERE id = ?",
                    ))
                    .bind(id.0)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(read_err("event"))
                    .and_then(EventPayload::try_from)
                }

                async fn list_events(&self, query: &EventQuery, page: &PageRequest) -> Result<Page<Event>> {
                    query.validate()?;
                    page.validate()?;
                    // A source range is read from the source index in address order and sorted
                    // by time; where the engine fetches every match's row before it sorts
                    // (MariaDB), the page's ids are found first (index only) and joined to rows.
                    let late = Self::LATE_ROW_LOOKUP && query.source.is_some();
                    let mut qb = if late {
                        Qb::new(format!(
                            "SELECT {EVENT_COLUMNS} FROM events JOIN (SELECT id FROM events WHERE 1 = 1"
                        ))
                    } else {
                        Qb::new(format!("SELECT {EVENT_COLUMNS} FROM events WHERE 1 = 1"))
                    };
                    push_event_conditions(&mut qb, query);
                    push_keyset_page(&mut qb, "ts", page);
                    if late {
                        let dir = match page.order {
                            SortOrder::Desc => "DESC",
                            SortOrder::Asc => "ASC",
                        };
                        qb.push(format_args!(") page USING (id) ORDER BY ts {dir}, id {dir}"));
                    }
                    let rows: Vec<EventRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("event"))?;
                    let mut items = rows.into_iter().map(Event::try_from).collect::<Result<Vec<_>>>()?;
                    let more = items.len() > page.limit as usize;
                    items.truncate(page.limit as usize);
                    let next = if more {
                        items.last().map(|e| EventCursor { timestamp: e.data.timestamp, id: e.id })
                    } else {
                        None
                    };
                    Ok(Page { items, next })
                }

                async fn count_events(&self, query: &EventQuery) -> Result<u64> {
                    query.validate()?;
                    let mut qb = Qb::new("SELECT COUNT(*) FROM events WHERE 1 = 1");
                    push_event_conditions(&mut qb, query);
                    let n: i64 = qb
                        .build_query_scalar()
                        .fetch_one(&self.pool)
                        .await
                        .map_err(read_err("event"))?;
                    Ok(u64::try_from(n).unwrap_or(0))
                }

                async fn update_events(&self, sel: &EventSelection, update: &EventUpdate) -> Result<u64> {
                    update.validate()?;
                    sel.query.validate()?;
                    let mut qb = Qb::new("UPDATE events SET ");
                    {
                        let mut set = qb.separated(", ");
                        if let Some(status) = update.status {
                            set.push("status = ").push_bind_unseparated(status.as_str());
                        }
                        if let Some(comment) = &update.comment {
                            set.push("comment = ").push_bind_unseparated(comment.clone());
                        }
                        if let Some(archived) = update.archived {
                            set.push("archived = ").push_bind_unseparated(archived);
                        }
                    }
                    qb.push(" WHERE 1 = 1");
                    push_selection(&mut qb, sel);
                    let done = qb.build().execute(&self.pool).await.map_err(read_err("event"))?;
                    Ok(done.rows_affected())
                }

                async fn delete_events(&self, sel: &EventSelection) -> Result<u64> {
                    sel.query.validate()?;
                    let mut qb = Qb::new("DELETE FROM events WHERE 1 = 1");
                    push_selection(&mut qb, sel);
                    let done = qb.build().execute(&self.pool).await.map_err(read_err("event"))?;
                    Ok(done.rows_affected())
                }

                async fn event_stats(
                    &self,
                    query: &EventQuery,
                    bucket: StatsBucket,
                    top: u32,
                ) -> Result<EventStats> {
                    query.validate()?;
                    if top == 0 || top > MAX_STATS_TOP {
                        return Err(Error::invalid(
                            "top",
                            "out_of_range",
                            format!("top must be 1 to {MAX_STATS_TOP}"),
                        ));
                    }
                    let n = |c: i64| u64::try_from(c).unwrap_or(0);
                    let total = self.count_events(query).await?;
                    let mut by_status = self
                        .stats_counts::<String>("status", query, "", " ORDER BY 1", None)
                        .await?
                        .into_iter()
                        .map(|(k, c)| {
                            let key = EventStatus::parse(&k).map_err(|e| corrupt("event", e))?;
                            Ok(Count { key, count: n(c) })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let mut by_classification = self
                        .stats_counts::<String>("classification", query, "", " ORDER BY 1", None)
                        .await?
                        .into_iter()
                        .map(|(k, c)| {
                            let key = Classification::parse(&k).map_err(|e| corrupt("event", e))?;
                            Ok(Count { key, count: n(c) })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    // Declaration order, not the database collation's order of the names.
                    by_status.sort_by_key(|c| c.key);
                    by_classification.sort_by_key(|c| c.key);
                    // Integer division in SQL keeps the timeline one indexed scan; months have
                    // uneven lengths, so they are summed from days here.
                    let width = bucket_micros(bucket);
                    let select = format!("ts {} {width}", Self::INT_DIV);
                    let buckets: Vec<(i64, u64)> = self
                        .stats_counts::<i64>(&select, query, "", " ORDER BY 1", None)
                        .await?
                        .into_iter()
                        .map(|(b, c)| (b.saturating_mul(width), n(c)))
                        .collect();
                    let timeline = match bucket {
                        StatsBucket::Month => months_of(&buckets),
                        StatsBucket::Hour | StatsBucket::Day => buckets
                            .into_iter()
                            .map(|(start, count)| TimelinePoint { start: from_micros(start), count })
                            .collect(),
                    };
                    let top_sources = self
                        .stats_counts::<Vec<u8>>("source_key", query, "", " ORDER BY 2 DESC, 1", Some(top))
                        .await?
                        .into_iter()
                        .map(|(k, c)| {
                            let key: [u8; 16] = k
                                .try_into()
                                .map_err(|_| corrupt("event", "source key is not 16 bytes"))?;
                            Ok(Count { key: ip_from_key(key), count: n(c) })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let top_ports = self
                        .stats_counts::<i32>(
                            "dest_port",
                            query,
                            " AND dest_port IS NOT NULL",
                            " ORDER BY 2 DESC, 1",
                            Some(top),
                        )
                        .await?
                        .into_iter()
                        .map(|(p, c)| {
                            let key = u16::try_from(p).map_err(|e| corrupt("event", e))?;
                            Ok(Count { key, count: n(c) })
                        })
                        .collect::<Result<Vec<_>>>()?;
                    let by_sensor = self
                        .stats_counts::<i64>("sensor_id", query, "", " ORDER BY 2 DESC, 1", Some(top))
                        .await?
                        .into_iter()
                        .map(|(id, c)| Count { key: SensorId(id), count: n(c) })
                        .collect();
                    Ok(EventStats {
                        total,
                        by_status,
                        by_classification,
                        timeline,
                        top_sources,
                        top_ports,
                        by_sensor,
                    })
                }

                async fn create_filter(&self, spec: &EventFilterSpec) -> Result<EventFilter> {
                    let created = now();
                    let q = sqlx::query(Self::sql_returning_id(
                        "INSERT INTO event_filters (division_id, name, description, enabled, action, \
                         conditions, hits, created_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
                    ))
                    .bind(spec.division_id.0)
                    .bind(&spec.name)
                    .bind(&spec.description)
                    .bind(spec.enabled)
                    .bind(spec.action.as_str())
                    .bind(json(&spec.conditions))
                    .bind(to_micros(created));
                    let id = Self::fetch_id(q, &self.pool).await.map_err(write_err("filter", "division"))?;
                    Ok(EventFilter { id: FilterId(id), spec: spec.clone(), hits: 0, created_at: created })
                }

                async fn get_filter(&self, id: FilterId) -> Result<EventFilter> {
                    let row: FilterRow = self
                        .row_by(format!("SELECT {FILTER_COLUMNS} FROM event_filters WHERE id = "), id.0, "filter")
                        .await?;
                    EventFilter::try_from(row)
                }

                async fn list_filters(&self, divisions: Option<&[DivisionId]>) -> Result<Vec<EventFilter>> {
                    let mut qb = Qb::new(format!("SELECT {FILTER_COLUMNS} FROM event_filters WHERE 1 = 1"));
                    if let Some(divs) = divisions {
                        push_in(&mut qb, "division_id", divs.iter().map(|d| d.0));
                    }
                    qb.push(" ORDER BY division_id, name, id");
                    let rows: Vec<FilterRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("filter"))?;
                    rows.into_iter().map(EventFilter::try_from).collect()
                }

                async fn update_filter(&self, id: FilterId, spec: &EventFilterSpec) -> Result<EventFilter> {
                    let done = sqlx::query(Self::sql(
                        "UPDATE event_filters SET division_id = ?, name = ?, description = ?, \
                         enabled = ?, action = ?, conditions = ? WHERE id = ?",
                    ))
                    .bind(spec.division_id.0)
                    .bind(&spec.name)
                    .bind(&spec.description)
                    .bind(spec.enabled)
                    .bind(spec.action.as_str())
                    .bind(json(&spec.conditions))
                    .bind(id.0)
                    .execute(&self.pool)
                    .await
                    .map_err(write_err("filter", "division"))?;
                    if done.rows_affected() == 0 {
                        return Err(Error::not_found("filter"));
                    }
                    self.get_filter(id).await
                }

                async fn delete_filter(&self, id: FilterId) -> Result<()> {
                    let done = sqlx::query(Self::sql("DELETE FROM event_filters WHERE id = ?"))
                        .bind(id.0)
                        .execute(&self.pool)
                        .await
                        .map_err(delete_err("filter"))?;
                    one_row(done.rows_affected(), "filter")
                }

                async fn add_filter_hits(&self, id: FilterId, hits: u64) -> Result<()> {
                    let done = sqlx::query(Self::sql("UPDATE event_filters SET hits = hits + ? WHERE id = ?"))
                        .bind(i64_of(hits))
                        .bind(id.0)
                        .execute(&self.pool)
                        .await
                        .map_err(read_err("filter"))?;
                    one_row(done.rows_affected(), "filter")
                }

                async fn reset_filter_hits(&self, id: FilterId) -> Result<()> {
                    // Existence first: MySQL reports 0 affected rows when hits already were 0.
                    self.get_filter(id).await?;
                    sqlx::query(Self::sql("UPDATE event_filters SET hits = 0 WHERE id = ?"))
                        .bind(id.0)
                        .execute(&self.pool)
                        .await
                        .map_err(read_err("filter"))?;
                    Ok(())
                }
            }

            #[async_trait]
            impl IncidentStore for $store {
                async fn get_incident(&self, id: IncidentId) -> Result<Incident> {
                    let row: IncidentRow = self
                        .row_by(format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = "), id.0, "incident")
                        .await?;
                    let mut list = self.incidents_of(vec![row]).await?;
                    list.pop().ok_or_else(|| Error::not_found("incident"))
                }

                async fn list_incidents(
                    &self,
                    query: &IncidentQuery,
                    page: &PageRequest,
                ) -> Result<Page<Incident>> {
                    page.validate()?;
                    let mut qb = Qb::new(format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE 1 = 1"));
                    push_incident_conditions(&mut qb, query);
                    push_keyset_page(&mut qb, "last_seen", page);
                    let mut rows: Vec<IncidentRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("incident"))?;
                    let more = rows.len() > page.limit as usize;
                    rows.truncate(page.limit as usize);
                    let items = self.incidents_of(rows).await?;
                    // The cursor type is shared with events; its id carries the incident id.
                    let next = if more {
                        items.last().map(|i| EventCursor { timestamp: i.last_seen, id: EventId(i.id.0) })
                    } else {
                        None
                    };
                    Ok(Page { items, next })
                }

                async fn update_incidents(
                    &self,
                    ids: &[IncidentId],
                    query: &IncidentQuery,
                    update: &IncidentUpdate,
                ) -> Result<u64> {
                    update.validate()?;
                    if ids.is_empty() {
                        return Ok(0);
                    }
                    let mut tx = self.begin_write().await.map_err(read_err("incident"))?;
                    let mut qb = Qb::new("SELECT id FROM incidents WHERE 1 = 1");
                    push_in(&mut qb, "id", ids.iter().map(|i| i.0));
                    push_incident_conditions(&mut qb, query);
                    qb.push(" ORDER BY id").push(Self::LOCK_UPDATE);
                    let matched: Vec<i64> = qb
                        .build_query_scalar()
                        .fetch_all(&mut *tx)
                        .await
                        .map_err(read_err("incident"))?;
                    if matched.is_empty() {
                        return Ok(0);
                    }
                    let mut qb = Qb::new("UPDATE incidents SET ");
                    {
                        let mut set = qb.separated(", ");
                        if let Some(status) = update.status {
                            set.push("status = ").push_bind_unseparated(status.as_str());
                        }
                        if let Some(comment) = &update.comment {
                            set.push("comment = ").push_bind_unseparated(comment.clone());
                        }
                        if let Some(archived) = update.archived {
                            set.push("archived = ").push_bind_unseparated(archived);
                        }
                    }
                    qb.push(" WHERE 1 = 1");
                    push_in(&mut qb, "id", matched.iter().copied());
                    qb.build().execute(&mut *tx).await.map_err(read_err("incident"))?;
                    // Workflow state is the incident's; its events follow so event lists agree.
                    if update.status.is_some() || update.archived.is_some() {
                        let mut qb = Qb::new("UPDATE events SET ");
                        {
                            let mut set = qb.separated(", ");
                            if let Some(status) = update.status {
                                set.push("status = ").push_bind_unseparated(status.as_str());
                            }
                            if let Some(archived) = update.archived {
                                set.push("archived = ").push_bind_unseparated(archived);
                            }
                        }
                        qb.push(" WHERE 1 = 1");
                        push_in(&mut qb, "incident_id", matched.iter().copied());
                        qb.build().execute(&mut *tx).await.map_err(read_err("event"))?;
                    }
                    tx.commit().await.map_err(read_err("incident"))?;
                    // Matched rather than rows_affected: MySQL counts only rows whose values
                    // changed, the other engines every matched row.
                    Ok(matched.len() as u64)
                }

                async fn begin_incident_alert(&self, id: IncidentId, at: Timestamp) -> Result<Incident> {
                    let mut tx = self.begin_write().await.map_err(read_err("incident"))?;
                    let mut qb = Qb::new(format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = "));
                    qb.push_bind(id.0).push(Self::LOCK_UPDATE);
                    let row: IncidentRow = qb
                        .build_query_as()
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(read_err("incident"))?;
                    sqlx::query(Self::sql(
                        "UPDATE incidents SET alert_pending = ?, last_alert_at = ? WHERE id = ?",
                    ))
                    .bind(false)
                    .bind(to_micros(at))
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(read_err("incident"))?;
                    tx.commit().await.map_err(read_err("incident"))?;
                    let mut list = self.incidents_of(vec![row]).await?;
                    list.pop().ok_or_else(|| Error::not_found("incident"))
                }

                async fn prune_incidents(&self, before: Timestamp) -> Result<u64> {
                    let done = sqlx::query(Self::sql(
                        "DELETE FROM incidents WHERE archived = ? AND last_seen < ? \
                         AND NOT EXISTS (SELECT 1 FROM events WHERE events.incident_id = incidents.id)",
                    ))
                    .bind(true)
                    .bind(to_micros(before))
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("incident"))?;
                    // Lock rows of sources without incidents are only kept for serialisation;
                    // the next ingest of such a source creates its row again.
                    sqlx::query(Self::sql(
                        "DELETE FROM incident_sources WHERE NOT EXISTS (SELECT 1 FROM incidents \
                         WHERE incidents.division_id = incident_sources.division_id \
                         AND incidents.source_key = incident_sources.source_key)",
                    ))
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("incident"))?;
                    Ok(done.rows_affected())
                }
            }

            #[async_trait]
            impl SettingsStore for $store {
                async fn get_settings(&self) -> Result<Settings> {
                    let value: Option<String> = sqlx::query_scalar(Self::sql(
                        "SELECT value FROM settings WHERE name = 'settings'",
                    ))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err("settings"))?;
                    match value {
                        Some(v) => from_json("settings", &v),
                        None => Ok(Settings::default()),
                    }
                }

                async fn put_settings(&self, settings: &Settings) -> Result<()> {
                    sqlx::query(Self::sql(Self::UPSERT_SETTING))
                        .bind("settings")
                        .bind(json(settings))
                        .execute(&self.pool)
                        .await
                        .map_err(read_err("settings"))?;
                    Ok(())
                }
            }

            #[async_trait]
            impl CertificateStore for $store {
                async fn get_ca(&self) -> Result<Option<CaRecord>> {
                    let row: Option<CaRow> = sqlx::query_as(Self::sql(
                        "SELECT cert_pem, key_pem, created_at FROM ca WHERE id = 1",
                    ))
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(read_err("ca"))?;
                    Ok(row.map(CaRecord::from))
                }

                async fn init_ca(&self, ca: &CaRecord) -> Result<CaRecord> {
                    sqlx::query(Self::sql(Self::INIT_CA))
                        .bind(&ca.cert_pem)
                        .bind(&ca.key_pem)
                        .bind(to_micros(ca.created_at))
                        .execute(&self.pool)
                        .await
                        .map_err(read_err("ca"))?;
                    self.get_ca().await?.ok_or_else(|| corrupt("ca", "CA missing after insert"))
                }

                async fn record_certificate(&self, c: &IssuedCertificate) -> Result<()> {
                    sqlx::query(Self::sql(
                        "INSERT INTO certificates (serial, sensor_id, fingerprint, not_before, \
                         not_after, cert_pem, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    ))
                    .bind(&c.serial)
                    .bind(c.sensor_id.map(|s| s.0))
                    .bind(&c.fingerprint)
                    .bind(to_micros(c.not_before))
                    .bind(to_micros(c.not_after))
                    .bind(&c.cert_pem)
                    .bind(c.revoked_at.map(to_micros))
                    .execute(&self.pool)
                    .await
                    .map_err(write_err("certificate", "sensor"))?;
                    Ok(())
                }

                async fn get_certificate_by_fingerprint(&self, fingerprint: &str) -> Result<IssuedCertificate> {
                    let row: CertRow = self
                        .row_by(format!("SELECT {CERT_COLUMNS} FROM certificates WHERE fingerprint = "), fingerprint, "certificate")
                        .await?;
                    Ok(row.into())
                }

                async fn list_certificates(&self, sensor: SensorId) -> Result<Vec<IssuedCertificate>> {
                    let mut qb = Qb::new(format!("SELECT {CERT_COLUMNS} FROM certificates WHERE sensor_id = "));
                    qb.push_bind(sensor.0).push(" ORDER BY not_before DESC, serial");
                    let rows: Vec<CertRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("certificate"))?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn revoke_certificate(&self, serial: &str, at: Timestamp) -> Result<()> {
                    let done = sqlx::query(Self::sql(
                        "UPDATE certificates SET revoked_at = ? WHERE serial = ? AND revoked_at IS NULL",
                    ))
                    .bind(to_micros(at))
                    .bind(serial)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("certificate"))?;
                    if done.rows_affected() == 0 {
                        let n: i64 = sqlx::query_scalar(Self::sql("SELECT COUNT(*) FROM certificates WHERE serial = ?"))
                            .bind(serial)
                            .fetch_one(&self.pool)
                            .await
                            .map_err(read_err("certificate"))?;
                        if n == 0 {
                            return Err(Error::not_found("certificate"));
                        }
                    }
                    Ok(())
                }

                async fn list_revoked(&self, at: Timestamp) -> Result<Vec<IssuedCertificate>> {
                    let mut qb = Qb::new(format!(
                        "SELECT {CERT_COLUMNS} FROM certificates WHERE revoked_at IS NOT NULL AND not_after > "
                    ));
                    qb.push_bind(to_micros(at)).push(" ORDER BY serial");
                    let rows: Vec<CertRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("certificate"))?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }
            }

            #[async_trait]
            impl JobStore for $store {
                async fn enqueue_job(&self, job: &NewJob) -> Result<JobId> {
                    job.validate()?;
                    let q = sqlx::query(Self::sql_returning_id(
                        "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, run_at, created_at) \
                         VALUES (?, ?, 'queued', 0, ?, ?, ?)",
                    ))
                    .bind(&job.kind)
                    .bind(json(&job.payload))
                    .bind(i32::try_from(job.max_attempts).unwrap_or(i32::MAX))
                    .bind(to_micros(job.run_at))
                    .bind(to_micros(now()));
                    let id = Self::fetch_id(q, &self.pool).await.map_err(read_err("job"))?;
                    Ok(JobId(id))
                }

                async fn enqueue_job_once(&self, job: &NewJob, key: &str) -> Result<Option<JobId>> {
                    job.validate()?;
                    let q = sqlx::query(Self::sql_returning_id(
                        "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, run_at, created_at, once_key) \
                         VALUES (?, ?, 'queued', 0, ?, ?, ?, ?)",
                    ))
                    .bind(&job.kind)
                    .bind(json(&job.payload))
                    .bind(i32::try_from(job.max_attempts).unwrap_or(i32::MAX))
                    .bind(to_micros(job.run_at))
                    .bind(to_micros(now()))
                    .bind(key);
                    // The unique key is the whole point: a second enqueue is a no-op.
                    match Self::fetch_id(q, &self.pool).await.map_err(write_err("job", "job")) {
                        Ok(id) => Ok(Some(JobId(id))),
                        Err(Error::Conflict { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                }

                async fn claim_jobs(
                    &self,
                    worker: &str,
                    kinds: Option<&[String]>,
                    limit: u32,
                    lease: Duration,
                ) -> Result<Vec<Job>> {
                    let mut attempt = 0;
                    loop {
                        match self.claim_jobs_once(worker, kinds, limit, lease).await {
                            Err(e) if attempt < 5 && is_retryable(&e) => {
                                attempt += 1;
                                tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                            }
                            other => return other,
                        }
                    }
                }

                async fn complete_job(&self, id: JobId, worker: &str) -> Result<()> {
                    let done = sqlx::query(Self::sql(
                        "UPDATE jobs SET state = 'done', locked_by = NULL, locked_until = NULL \
                         WHERE id = ? AND state = 'running' AND locked_by = ?",
                    ))
                    .bind(id.0)
                    .bind(worker)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("job"))?;
                    if done.rows_affected() == 0 {
                        self.get_job(id).await?;
                        return Err(Error::conflict("job", "job is not held by this worker"));
                    }
                    Ok(())
                }

                async fn fail_job(
                    &self,
                    id: JobId,
                    worker: &str,
                    error: &str,
                    retry_at: Option<Timestamp>,
                ) -> Result<()> {
                    let error: String = error.chars().take(4096).collect();
                    let done = sqlx::query(Self::sql(
                        "UPDATE jobs SET \
                         state = CASE WHEN attempts < max_attempts AND ? THEN 'queued' ELSE 'failed' END, \
                         run_at = ?, last_error = ?, locked_by = NULL, locked_until = NULL \
                         WHERE id = ? AND state = 'running' AND locked_by = ?",
                    ))
                    .bind(retry_at.is_some())
                    .bind(to_micros(retry_at.unwrap_or_else(now)))
                    .bind(error)
                    .bind(id.0)
                    .bind(worker)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("job"))?;
                    if done.rows_affected() == 0 {
                        self.get_job(id).await?;
                        return Err(Error::conflict("job", "job is not held by this worker"));
                    }
                    Ok(())
                }

                async fn get_job(&self, id: JobId) -> Result<Job> {
                    let row: JobRow = self
                        .row_by(format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = "), id.0, "job")
                        .await?;
                    Job::try_from(row)
                }

                async fn purge_jobs(&self, before: Timestamp) -> Result<u64> {
                    let done = sqlx::query(Self::sql(
                        "DELETE FROM jobs WHERE state IN ('done', 'failed') AND created_at < ?",
                    ))
                    .bind(to_micros(before))
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("job"))?;
                    Ok(done.rows_affected())
                }
            }

            #[async_trait]
            impl AccessStore for $store {
                async fn create_session(&self, sn: &Session) -> Result<()> {
                    sqlx::query(Self::sql(
                        "INSERT INTO sessions (id, user_id, csrf_token, created_at, expires_at, \
                         last_seen_at) VALUES (?, ?, ?, ?, ?, ?)",
                    ))
                    .bind(&sn.id_hash)
                    .bind(sn.user_id.0)
                    .bind(&sn.csrf_token)
                    .bind(to_micros(sn.created_at))
                    .bind(to_micros(sn.expires_at))
                    .bind(to_micros(sn.last_seen_at))
                    .execute(&self.pool)
                    .await
                    .map_err(write_err("session", "user"))?;
                    Ok(())
                }

                async fn get_session(&self, id_hash: &str) -> Result<Session> {
                    let mut qb = Qb::new(format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = "));
                    qb.push_bind(id_hash).push(" AND expires_at > ").push_bind(to_micros(now()));
                    let row: SessionRow = qb
                        .build_query_as()
                        .fetch_one(&self.pool)
                        .await
                        .map_err(read_err("session"))?;
                    Ok(row.into())
                }

                async fn touch_session(
                    &self,
                    id_hash: &str,
                    last_seen_at: Timestamp,
                    expires_at: Timestamp,
                ) -> Result<()> {
                    let done = sqlx::query(Self::sql(
                        "UPDATE sessions SET last_seen_at = ?, expires_at = ? WHERE id = ?",
                    ))
                    .bind(to_micros(last_seen_at))
                    .bind(to_micros(expires_at))
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("session"))?;
                    if done.rows_affected() == 0 {
                        // MySQL reports 0 for an unchanged row; a repeated touch in the same
                        // microsecond is not a missing session.
                        if !self.session_exists(id_hash).await? {
                            return Err(Error::not_found("session"));
                        }
                    }
                    Ok(())
                }

                async fn delete_session(&self, id_hash: &str) -> Result<()> {
                    sqlx::query(Self::sql("DELETE FROM sessions WHERE id = ?"))
                        .bind(id_hash)
                        .execute(&self.pool)
                        .await
                        .map_err(read_err("session"))?;
                    Ok(())
                }

                async fn delete_user_sessions(&self, user: UserId, keep: Option<&str>) -> Result<u64> {
                    let mut qb = Qb::new("DELETE FROM sessions WHERE user_id = ");
                    qb.push_bind(user.0);
                    if let Some(keep) = keep {
                        qb.push(" AND id <> ").push_bind(keep);
                    }
                    let done = qb
                        .build()
                        .execute(&self.pool)
                        .await
                        .map_err(read_err("session"))?;
                    Ok(done.rows_affected())
                }

                async fn create_api_token(&self, t: &NewApiToken) -> Result<ApiToken> {
                    let created = now();
                    let q = sqlx::query(Self::sql_returning_id(
                        "INSERT INTO api_tokens (user_id, name, token_hash, scope, created_at, \
                         expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                    ))
                    .bind(t.user_id.0)
                    .bind(&t.name)
                    .bind(&t.token_hash)
                    .bind(t.scope.as_str())
                    .bind(to_micros(created))
                    .bind(t.expires_at.map(to_micros));
                    let id = Self::fetch_id(q, &self.pool).await.map_err(write_err("api_token", "user"))?;
                    Ok(ApiToken {
                        id: ApiTokenId(id),
                        user_id: t.user_id,
                        name: t.name.clone(),
                        scope: t.scope,
                        created_at: created,
                        expires_at: t.expires_at,
                        revoked_at: None,
                        last_used_at: None,
                    })
                }

                async fn get_api_token(&self, id: ApiTokenId) -> Result<ApiToken> {
                    let row: ApiTokenRow = self
                        .row_by(format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = "), id.0, "api_token")
                        .await?;
                    ApiToken::try_from(row)
                }

                async fn get_api_token_by_hash(&self, token_hash: &str) -> Result<ApiToken> {
                    let row: ApiTokenRow = self
                        .row_by(format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE token_hash = "), token_hash, "api_token")
                        .await?;
                    ApiToken::try_from(row)
                }

                async fn list_api_tokens(&self, user: Option<UserId>) -> Result<Vec<ApiToken>> {
                    let mut qb = Qb::new(format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE 1 = 1"));
                    if let Some(u) = user {
                        qb.push(" AND user_id = ").push_bind(u.0);
                    }
                    qb.push(" ORDER BY id");
                    let rows: Vec<ApiTokenRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("api_token"))?;
                    rows.into_iter().map(ApiToken::try_from).collect()
                }

                async fn revoke_api_token(&self, id: ApiTokenId, at: Timestamp) -> Result<()> {
                    let done = sqlx::query(Self::sql(
                        "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                    ))
                    .bind(to_micros(at))
                    .bind(id.0)
                    .execute(&self.pool)
                    .await
                    .map_err(read_err("api_token"))?;
                    if done.rows_affected() == 0 {
                        self.get_api_token(id).await?;
                    }
                    Ok(())
                }

                async fn touch_api_token(&self, id: ApiTokenId, at: Timestamp) -> Result<()> {
                    let done = sqlx::query(Self::sql("UPDATE api_tokens SET last_used_at = ? WHERE id = ?"))
                        .bind(to_micros(at))
                        .bind(id.0)
                        .execute(&self.pool)
                        .await
                        .map_err(read_err("api_token"))?;
                    if done.rows_affected() == 0 {
                        // MySQL counts only changed rows: tell "unchanged" from "missing".
                        self.get_api_token(id).await?;
                    }
                    Ok(())
                }

                async fn append_audit(&self, e: &NewAuditEntry) -> Result<AuditEntry> {
                    let at = now();
                    let q = sqlx::query(Self::sql_returning_id(
                        "INSERT INTO audit_log (at, user_id, actor, action, target, detail) \
                         VALUES (?, ?, ?, ?, ?, ?)",
                    ))
                    .bind(to_micros(at))
                    .bind(e.user_id.map(|u| u.0))
                    .bind(&e.actor)
                    .bind(&e.action)
                    .bind(&e.target)
                    .bind(json(&e.detail));
                    let id = Self::fetch_id(q, &self.pool).await.map_err(write_err("audit", "user"))?;
                    Ok(AuditEntry {
                        id: AuditId(id),
                        at,
                        user_id: e.user_id,
                        actor: e.actor.clone(),
                        action: e.action.clone(),
                        target: e.target.clone(),
                        detail: e.detail.clone(),
                    })
                }

                async fn list_audit(&self, limit: u32, before: Option<AuditId>) -> Result<Vec<AuditEntry>> {
                    if limit == 0 {
                        return Ok(Vec::new());
                    }
                    let mut qb = Qb::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1"));
                    if let Some(b) = before {
                        qb.push(" AND id < ").push_bind(b.0);
                    }
                    qb.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(limit));
                    let rows: Vec<AuditRow> = qb
                        .build_query_as()
                        .fetch_all(&self.pool)
                        .await
                        .map_err(read_err("audit"))?;
                    rows.into_iter().map(AuditEntry::try_from).collect()
                }
            }

            #[async_trait]
            impl Store for $store {
                fn backend(&self) -> Backend {
                    $backend
                }

                async fn migrate(&self) -> Result<()> {
                    $migrator
                        .run(&self.pool)
                        .await
                        .map_err(|e| Error::from($crate::OpenError::Migrate(e)))
                }

                async fn ping(&self) -> Result<()> {
                    sqlx::query("SELECT 1")
                        .execute(&self.pool)
                        .await
                        .map(|_| ())
                        .map_err(read_err("database"))
                }

                async fn close(&self) {
                    self.pool.close().await;
                    self.close_writer().await;
                }
            }
        }
    };
}
