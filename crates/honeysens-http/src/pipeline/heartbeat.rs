//! Sensor heartbeat and housekeeping.
//!
//! A sensor that has not polled for its interval plus the admins' threshold gets a
//! `sensor.timeout` event and its contacts a notice; when it polls again, `sensor.recovered`.
//! The store's conditional `set_sensor_offline` makes exactly one replica raise each. The
//! same loop applies retention: resolved and ignored events (and incidents) move to the archive
//! after `archive_after_days`, archived ones are deleted after `delete_archived_after_days`.

use super::worker::{division_name, notify_contacts};
use super::{ingest, settings};
use crate::server::AppState;
use honeysens_core::model::{
    Classification, EventData, EventQuery, EventSelection, EventStatus, EventUpdate, IncidentQuery,
    IncidentUpdate, NewEvent, Protocol, Sensor, Settings, Severity,
};
use honeysens_core::time::{Timestamp, now};
use honeysens_notify::{Message, SensorNotice, SensorNoticeKind};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

/// How often retention runs (it is cheap when nothing is due, but needs no minute precision).
const RETENTION_EVERY: Duration = Duration::from_secs(600);
/// Finished jobs are kept this long for inspection.
const JOB_HISTORY: chrono::Duration = chrono::Duration::days(7);

/// Runs the heartbeat check every `period` until the task is dropped.
pub async fn run(st: AppState) {
    let mut tick = tokio::time::interval(st.pipeline.options.heartbeat);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_retention: Option<Instant> = None;
    loop {
        tick.tick().await;
        if let Err(e) = check_sensors(&st).await {
            tracing::warn!(error = %e, "sensor heartbeat check failed");
        }
        if let Err(e) = schedule(&st, now()).await {
            tracing::warn!(error = %e, "scheduling periodic notices failed");
        }
        if last_retention.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
            last_retention = Some(Instant::now());
            if let Err(e) = retention(&st).await {
                tracing::warn!(error = %e, "retention failed");
            }
        }
    }
}

/// The weekly summary goes out on Mondays from this hour (UTC) on.
const SUMMARY_HOUR: u32 = 7;
/// CA expiry warnings start this many days before the CA certificate expires (daily).
pub const CA_WARN_DAYS: i64 = 30;

/// The start of the weekly summary period `at` falls into, and its ISO week key.
pub fn summary_slot(at: Timestamp) -> (Timestamp, String) {
    use chrono::{Datelike, TimeZone};
    let date = at.date_naive();
    let monday = date - chrono::Duration::days(i64::from(date.weekday().num_days_from_monday()));
    let mut due = chrono::Utc.from_utc_datetime(
        &monday
            .and_hms_opt(SUMMARY_HOUR, 0, 0)
            .unwrap_or_else(|| monday.and_time(chrono::NaiveTime::MIN)),
    );
    if at < due {
        due -= chrono::Duration::days(7);
    }
    let week = due.iso_week();
    (due, format!("{}-W{:02}", week.year(), week.week()))
}

/// Enqueues the weekly summary and CA expiry warnings when due, once across replicas. A summary
/// covers the week before its Monday; a week that ended before the server's CA was made (its
/// installation) has none, so a fresh server does not report last week right away.
pub async fn schedule(st: &AppState, at: Timestamp) -> honeysens_core::Result<()> {
    let (due, week) = summary_slot(at);
    let ca = honeysens_core::pki::inspect(st.ca.cert_der()).ok();
    if ca.as_ref().is_none_or(|info| info.not_before < due) {
        let payload = serde_json::json!({ "from": due - chrono::Duration::days(7), "until": due });
        let job = honeysens_core::model::NewJob::now(super::worker::SUMMARY_JOB, payload);
        if st
            .store
            .enqueue_job_once(&job, &format!("{}:{week}", super::worker::SUMMARY_JOB))
            .await?
            .is_some()
        {
            st.pipeline.wake.notify_one();
        }
    }
    if let Some(info) = ca {
        let days_left = (info.not_after - at).num_days();
        if days_left <= CA_WARN_DAYS {
            let payload =
                serde_json::json!({ "not_after": info.not_after, "days_left": days_left });
            let job = honeysens_core::model::NewJob::now(super::worker::CA_EXPIRY_JOB, payload);
            let key = format!("{}:{}", super::worker::CA_EXPIRY_JOB, at.date_naive());
            if st.store.enqueue_job_once(&job, &key).await?.is_some() {
                st.pipeline.wake.notify_one();
            }
        }
    }
    Ok(())
}

/// When a sensor counts as timed out: its interval plus the threshold after its last poll.
pub fn deadline(sensor: &Sensor, settings: &Settings) -> Option<Timestamp> {
    let minutes = sensor
        .spec
        .update_interval
        .unwrap_or(settings.update_interval)
        + settings.sensor_timeout_threshold;
    sensor
        .last_seen
        .map(|t| t + chrono::Duration::minutes(i64::from(minutes)))
}

/// One pass over all sensors; returns how many changed state.
pub async fn check_sensors(st: &AppState) -> honeysens_core::Result<usize> {
    check_sensors_at(st, now()).await
}

/// [`check_sensors`] as if it were `at` (tests look into the future instead of waiting).
pub async fn check_sensors_at(st: &AppState, at: Timestamp) -> honeysens_core::Result<usize> {
    let settings = settings(st).await?;
    let mut changed = 0;
    for sensor in st.store.list_sensors(None).await? {
        // A sensor that never polled was never up; it cannot time out.
        let Some(deadline) = deadline(&sensor, &settings) else {
            continue;
        };
        let overdue = at > deadline;
        if overdue == sensor.offline {
            continue;
        }
        if !st.store.set_sensor_offline(sensor.id, overdue).await? {
            continue; // another replica got there first
        }
        changed += 1;
        let kind = if overdue {
            SensorNoticeKind::Timeout
        } else {
            SensorNoticeKind::Recovered
        };
        raise(st, &settings, &sensor, kind, at).await?;
    }
    Ok(changed)
}

async fn raise(
    st: &AppState,
    settings: &Settings,
    sensor: &Sensor,
    kind: SensorNoticeKind,
    at: Timestamp,
) -> honeysens_core::Result<()> {
    let (code, summary) = match kind {
        SensorNoticeKind::Timeout => (
            "sensor.timeout",
            format!("sensor {} missed its heartbeat", sensor.spec.name),
        ),
        _ => (
            "sensor.recovered",
            format!("sensor {} reports again", sensor.spec.name),
        ),
    };
    let mut data = EventData {
        uid: uuid::Uuid::new_v4(),
        sensor_id: sensor.id,
        service: None,
        timestamp: at,
        // No attacker: the unspecified address marks a server-raised event.
        source_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        source_port: None,
        dest_ip: None,
        dest_port: None,
        protocol: Protocol::Unknown,
        type_code: code.to_owned(),
        classification: Classification::Unknown,
        severity: Severity::Info,
        summary,
    };
    honeysens_core::taxonomy::classify(&mut data);
    let ev = NewEvent {
        data,
        details: Vec::new(),
        packets: Vec::new(),
    };
    // Through the normal path: filters may silence a flapping sensor; the SIEM sees it.
    ingest(st, sensor.spec.division_id, vec![ev]).await?;
    let msg = Message::Sensor(SensorNotice {
        sensor_id: sensor.id,
        sensor_name: sensor.spec.name.clone(),
        division: division_name(st, sensor.spec.division_id).await,
        kind,
        last_seen: sensor.last_seen,
        at,
    });
    notify_contacts(st, settings, sensor.spec.division_id, &msg, |n| {
        n.sensor_timeouts
    })
    .await?;
    Ok(())
}

/// Archives and deletes by the retention settings; prunes finished jobs.
pub async fn retention(st: &AppState) -> honeysens_core::Result<()> {
    let settings = settings(st).await?;
    let at = now();
    if settings.archive_after_days > 0 {
        let cutoff = at - chrono::Duration::days(i64::from(settings.archive_after_days));
        let done = vec![EventStatus::Resolved, EventStatus::Ignored];
        let n = st
            .store
            .update_events(
                &EventSelection {
                    ids: None,
                    query: EventQuery {
                        statuses: done.clone(),
                        until: Some(cutoff),
                        archived: Some(false),
                        ..EventQuery::default()
                    },
                },
                &EventUpdate {
                    archived: Some(true),
                    ..EventUpdate::default()
                },
            )
            .await?;
        let incidents = archive_incidents(st, done, cutoff).await?;
        if n + incidents > 0 {
            tracing::info!(events = n, incidents, "archived by retention");
        }
    }
    if settings.delete_archived_after_days > 0 {
        let cutoff = at - chrono::Duration::days(i64::from(settings.delete_archived_after_days));
        let n = st
            .store
            .delete_events(&EventSelection {
                ids: None,
                query: EventQuery {
                    until: Some(cutoff),
                    archived: Some(true),
                    ..EventQuery::default()
                },
            })
            .await?;
        let incidents = st.store.prune_incidents(cutoff).await?;
        if n + incidents > 0 {
            tracing::info!(events = n, incidents, "deleted by retention");
        }
    }
    st.store.purge_jobs(at - JOB_HISTORY).await?;
    Ok(())
}

/// Archives finished incidents whose last event is older than `cutoff`, page by page.
async fn archive_incidents(
    st: &AppState,
    statuses: Vec<EventStatus>,
    cutoff: Timestamp,
) -> honeysens_core::Result<u64> {
    let query = IncidentQuery {
        statuses,
        archived: Some(false),
        until: Some(cutoff),
        ..IncidentQuery::default()
    };
    let update = IncidentUpdate {
        archived: Some(true),
        ..IncidentUpdate::default()
    };
    let mut total = 0;
    loop {
        let page = st
            .store
            .list_incidents(&query, &honeysens_core::model::PageRequest::first(500))
            .await?;
        if page.items.is_empty() {
            return Ok(total);
        }
        let ids: Vec<_> = page.items.iter().map(|i| i.id).collect();
        let n = st.store.update_incidents(&ids, &query, &update).await?;
        total += n;
        if n == 0 {
            return Ok(total); // nothing moved: do not loop on the same page
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn summary_slot_is_the_last_monday_morning() {
        // Friday 2026-11-27: the slot started Monday 2026-11-23 07:00 (ISO week 48).
        let (due, key) = summary_slot(ts("2026-11-27T12:00:00Z"));
        assert_eq!(due, ts("2026-11-23T07:00:00Z"));
        assert_eq!(key, "2026-W48");
        // Monday before 07:00 still belongs to the previous week's slot.
        let (due, key) = summary_slot(ts("2026-11-30T06:59:59Z"));
        assert_eq!(due, ts("2026-11-23T07:00:00Z"));
        assert_eq!(key, "2026-W48");
        let (due, key) = summary_slot(ts("2026-11-30T07:00:00Z"));
        assert_eq!(due, ts("2026-11-30T07:00:00Z"));
        assert_eq!(key, "2026-W49");
        // Across the year boundary the ISO year counts: Monday 2026-12-28 is 2026-W53.
        assert_eq!(summary_slot(ts("2027-01-02T00:00:00Z")).1, "2026-W53");
    }
}
