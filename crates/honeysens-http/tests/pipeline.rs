//! The event pipeline on the real server: filters on ingest (drop, auto-resolve, hit
//! counters, enable/disable, cache voided by management changes), incidents and their jobs,
//! the sensor heartbeat (timeout and recovery exactly once) and retention.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::TestServer;
use honeysens_core::ids::{DivisionId, SensorId};
use honeysens_core::model::{
    ALERT_JOB, Classification, EventData, EventFilterSpec, EventQuery, EventStatus, FilterAction,
    FilterCondition, IncidentQuery, IpMatch, NewEvent, PageRequest, Protocol, SensorSpec,
    SensorState, Settings, Severity, StatusReport,
};
use honeysens_core::time::now;
use honeysens_http::auth::{AuthMethod, SensorIdentity};
use honeysens_http::pipeline::heartbeat;
use std::net::IpAddr;
use std::time::Duration;

async fn sensor(srv: &TestServer, division: DivisionId, name: &str) -> SensorIdentity {
    let s = srv
        .store
        .create_sensor(&SensorSpec::new(name, division))
        .await
        .unwrap();
    SensorIdentity {
        sensor_id: s.id,
        method: AuthMethod::InProcess,
        sensor: s,
    }
}

fn event(sensor: SensorId, source: &str, code: &str, port: u16) -> serde_json::Value {
    let ev = NewEvent {
        data: EventData {
            uid: uuid::Uuid::now_v7(),
            sensor_id: sensor,
            service: Some("ssh".into()),
            timestamp: now(),
            source_ip: source.parse().unwrap(),
            source_port: Some(40000),
            dest_ip: Some("10.0.0.1".parse().unwrap()),
            dest_port: Some(port),
            protocol: Protocol::Tcp,
            type_code: code.into(),
            // Deliberately wrong: the server classifies from the taxonomy.
            classification: Classification::Unknown,
            severity: Severity::Info,
            summary: format!("{code} from {source}"),
        },
        details: vec![],
        packets: vec![],
    };
    serde_json::to_value(ev).unwrap()
}

async fn events(srv: &TestServer, q: EventQuery) -> Vec<honeysens_core::model::Event> {
    srv.store
        .list_events(&q, &PageRequest::first(512))
        .await
        .unwrap()
        .items
}

/// Workers off: the test looks at the queued jobs itself.
async fn quiet_server() -> TestServer {
    TestServer::start_with(&[], |o| o.pipeline.workers = false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_drop_and_resolve_on_ingest_and_count_hits() {
    let srv = quiet_server().await;
    let div = srv.division("d").await;
    let other = srv.division("other").await;
    let id = sensor(&srv, div, "s1").await;
    let mk = |name: &str, action, conditions| EventFilterSpec {
        division_id: div,
        name: name.into(),
        description: Some("test".into()),
        enabled: true,
        action,
        conditions,
    };
    // Compared as addresses: 10.0.0.9 is in 10.0.0.8/29, 10.0.0.10 too, 10.0.0.16 not —
    // a string prefix match would get this wrong.
    let drop = srv
        .store
        .create_filter(&mk(
            "scanner",
            FilterAction::Drop,
            vec![FilterCondition::Source {
                value: IpMatch::Net {
                    net: "10.0.0.8/29".parse().unwrap(),
                },
            }],
        ))
        .await
        .unwrap();
    let resolve = srv
        .store
        .create_filter(&mk(
            "monitoring",
            FilterAction::Resolve,
            vec![
                FilterCondition::TypeCode {
                    value: "conn.*".into(),
                },
                FilterCondition::DestPort { from: 80, to: 443 },
            ],
        ))
        .await
        .unwrap();
    // Another division's filter never applies here.
    srv.store
        .create_filter(&EventFilterSpec {
            division_id: other,
            ..mk(
                "foreign",
                FilterAction::Drop,
                vec![FilterCondition::Protocol {
                    value: Protocol::Tcp,
                }],
            )
        })
        .await
        .unwrap();
    let batch = vec![
        event(id.sensor_id, "10.0.0.9", "ssh.login.failed", 22),
        event(id.sensor_id, "10.0.0.10", "ssh.login.failed", 22),
        event(id.sensor_id, "10.0.0.16", "ssh.login.failed", 22),
        event(id.sensor_id, "10.0.1.1", "conn.attempt", 443),
        event(id.sensor_id, "10.0.1.1", "conn.attempt", 8080),
        serde_json::json!({"uid": uuid::Uuid::now_v7().to_string(), "garbage": true}),
    ];
    let r = honeysens_http::api::upload_events(&srv.state, &id, batch)
        .await
        .unwrap();
    // Dropped events count as accepted (the sensor must not resend them); the malformed one
    // is rejected alone.
    assert_eq!(r.accepted.len(), 5);
    assert_eq!(r.rejected.len(), 1);
    assert_eq!(r.rejected[0].index, 5);
    let stored = events(&srv, EventQuery::default()).await;
    assert_eq!(stored.len(), 3, "two dropped");
    let by_src = |ip: &str, port: u16| {
        stored
            .iter()
            .find(|e| {
                e.data.source_ip == ip.parse::<IpAddr>().unwrap() && e.data.dest_port == Some(port)
            })
            .unwrap()
    };
    let kept = by_src("10.0.0.16", 22);
    assert_eq!(kept.status, EventStatus::New);
    assert_eq!(
        kept.data.classification,
        Classification::HoneypotInteraction
    );
    assert!(kept.incident_id.is_some(), "new events join an incident");
    let auto = by_src("10.0.1.1", 443);
    assert_eq!(auto.status, EventStatus::Resolved);
    assert!(
        auto.incident_id.is_none(),
        "resolved events raise no incident"
    );
    assert_eq!(by_src("10.0.1.1", 8080).status, EventStatus::New);
    assert_eq!(srv.store.get_filter(drop.id).await.unwrap().hits, 2);
    assert_eq!(srv.store.get_filter(resolve.id).await.unwrap().hits, 1);

    // Disabled: applies to the next upload once the cache is voided (every management
    // write voids it; an out-of-band store change like this one is seen within the TTL).
    let mut spec = srv.store.get_filter(drop.id).await.unwrap().spec;
    spec.enabled = false;
    srv.store.update_filter(drop.id, &spec).await.unwrap();
    srv.state.cache.invalidate();
    let r = honeysens_http::api::upload_events(
        &srv.state,
        &id,
        vec![event(id.sensor_id, "10.0.0.9", "ssh.login.failed", 22)],
    )
    .await
    .unwrap();
    assert_eq!(r.accepted.len(), 1);
    assert_eq!(events(&srv, EventQuery::default()).await.len(), 4);
    assert_eq!(srv.store.get_filter(drop.id).await.unwrap().hits, 2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_across_sensors_is_one_incident_with_one_alert_job() {
    let srv = quiet_server().await;
    let div = srv.division("d").await;
    let a = sensor(&srv, div, "a").await;
    let b = sensor(&srv, div, "b").await;
    for (s, port) in [(&a, 22), (&b, 23), (&a, 80), (&b, 445)] {
        honeysens_http::api::upload_events(
            &srv.state,
            s,
            vec![event(s.sensor_id, "10.9.9.9", "conn.attempt", port)],
        )
        .await
        .unwrap();
    }
    honeysens_http::api::upload_events(
        &srv.state,
        &a,
        vec![event(a.sensor_id, "10.7.7.7", "ssh.login.failed", 22)],
    )
    .await
    .unwrap();
    let incidents = srv
        .store
        .list_incidents(&IncidentQuery::default(), &PageRequest::first(10))
        .await
        .unwrap()
        .items;
    assert_eq!(incidents.len(), 2);
    let scan = incidents
        .iter()
        .find(|i| i.source_ip == "10.9.9.9".parse::<IpAddr>().unwrap())
        .unwrap();
    assert_eq!(scan.event_count, 4);
    assert_eq!(scan.sensor_count, 2);
    // One alert job per incident while it is pending, however many uploads came.
    let jobs = srv
        .store
        .claim_jobs(
            "t",
            Some(&[ALERT_JOB.to_owned()]),
            100,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(jobs.len(), 2, "{jobs:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_raises_timeout_and_recovery_once() {
    let srv = quiet_server().await;
    let div = srv.division("d").await;
    let id = sensor(&srv, div, "hb").await;
    let settings = Settings {
        update_interval: 1,
        sensor_timeout_threshold: 1,
        ..Settings::default()
    };
    srv.store.put_settings(&settings).await.unwrap();
    srv.state.cache.invalidate();
    // Never polled: cannot time out.
    assert_eq!(heartbeat::check_sensors(&srv.state).await.unwrap(), 0);
    let report = |minutes_ago: i64| StatusReport {
        sensor_id: id.sensor_id,
        timestamp: now(),
        received_at: now() - chrono::Duration::minutes(minutes_ago),
        state: SensorState::Running,
        addresses: vec![],
        free_memory_mb: 100,
        disk_total_mb: 100,
        disk_used_mb: 1,
        agent_version: "test".into(),
        firmware_version: None,
        services: vec![],
        spool_depth: 0,
    };
    srv.store.record_status(&report(3)).await.unwrap();
    assert_eq!(heartbeat::check_sensors(&srv.state).await.unwrap(), 1);
    assert!(srv.store.get_sensor(id.sensor_id).await.unwrap().offline);
    // A second pass (or another replica) raises nothing more.
    assert_eq!(heartbeat::check_sensors(&srv.state).await.unwrap(), 0);
    let codes = |evs: Vec<honeysens_core::model::Event>| {
        evs.into_iter()
            .map(|e| e.data.type_code)
            .collect::<Vec<_>>()
    };
    let q = EventQuery {
        sensors: vec![id.sensor_id],
        ..Default::default()
    };
    assert_eq!(codes(events(&srv, q.clone()).await), ["sensor.timeout"]);
    srv.store.record_status(&report(0)).await.unwrap();
    assert_eq!(heartbeat::check_sensors(&srv.state).await.unwrap(), 1);
    assert!(!srv.store.get_sensor(id.sensor_id).await.unwrap().offline);
    let mut got = codes(events(&srv, q).await);
    got.sort();
    assert_eq!(got, ["sensor.recovered", "sensor.timeout"]);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_archives_finished_and_deletes_archived() {
    let srv = quiet_server().await;
    let div = srv.division("d").await;
    let id = sensor(&srv, div, "r").await;
    let old = |code: &str, days: i64| {
        let mut v = event(id.sensor_id, "10.1.1.1", code, 22);
        v["timestamp"] = serde_json::json!(now() - chrono::Duration::days(days));
        v
    };
    honeysens_http::api::upload_events(
        &srv.state,
        &id,
        vec![
            old("ssh.connect", 40),
            old("ssh.connect", 10),
            old("ssh.connect", 1),
        ],
    )
    .await
    .unwrap();
    let all = events(&srv, EventQuery::default()).await;
    assert_eq!(all.len(), 3);
    // Everything resolved; older than 7 days goes to the archive, archived older than 30 is
    // deleted.
    srv.store
        .update_events(
            &Default::default(),
            &honeysens_core::model::EventUpdate {
                status: Some(EventStatus::Resolved),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    srv.store
        .put_settings(&Settings {
            archive_after_days: 7,
            delete_archived_after_days: 30,
            ..Settings::default()
        })
        .await
        .unwrap();
    srv.state.cache.invalidate();
    heartbeat::retention(&srv.state).await.unwrap();
    let left = events(&srv, EventQuery::default()).await;
    assert_eq!(left.len(), 2, "the 40-day-old event is gone");
    let archived: Vec<bool> = {
        let mut l = left.clone();
        l.sort_by_key(|e| e.data.timestamp);
        l.iter().map(|e| e.archived).collect()
    };
    assert_eq!(archived, [true, false]);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_on_two_sensors_is_recorded_as_one_network_scan() {
    // Workers on: the alert job notices the second sensor and records `scan.network` once.
    let srv = TestServer::start(&[]).await;
    let div = srv.division("d").await;
    let a = sensor(&srv, div, "a").await;
    let b = sensor(&srv, div, "b").await;
    let src = "10.66.0.1";
    // Both sensors' events in one transaction, so the first alert already sees two sensors
    // (with separate uploads the worker may alert in between; the scan is then recorded with
    // the incident's next alert).
    let rows: Vec<_> = [&a, &b]
        .iter()
        .map(|s| {
            let mut e: NewEvent =
                serde_json::from_value(event(s.sensor_id, src, "conn.attempt", 445)).unwrap();
            honeysens_core::taxonomy::classify(&mut e.data);
            (e, div, EventStatus::New)
        })
        .collect();
    let options = honeysens_http::pipeline::ingest_options(&Settings::default());
    srv.store.ingest_events(&rows, &options).await.unwrap();
    srv.state.pipeline.wake.notify_one();
    let scans = EventQuery {
        type_codes: vec!["scan.network".into()],
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let scan = loop {
        if let Some(e) = events(&srv, scans.clone()).await.pop() {
            break e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scan.network event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(scan.data.source_ip, src.parse::<IpAddr>().unwrap());
    assert_eq!(scan.data.classification, Classification::PortScan);
    assert_eq!(scan.data.severity, Severity::High);
    let incident = srv
        .store
        .get_incident(scan.incident_id.expect("joins the incident"))
        .await
        .unwrap();
    assert_eq!(incident.sensor_count, 2);
    assert_eq!(
        incident.severity,
        Severity::High,
        "the scan raises the incident"
    );
    // More of the same source: still one scan.network event in the incident.
    honeysens_http::api::upload_events(
        &srv.state,
        &a,
        vec![event(a.sensor_id, src, "conn.attempt", 139)],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(events(&srv, scans).await.len(), 1);
    srv.stop().await;
}

/// A fresh server has no week to summarise: the first weekly summary is the one for the week
/// it was installed in, due the next Monday; scheduling it again enqueues nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_weekly_summary_covers_the_week_of_installation() {
    use honeysens_http::pipeline::worker::SUMMARY_JOB;
    let srv = quiet_server().await;
    let summaries = || async {
        srv.store
            .claim_jobs(
                "test",
                Some(&[SUMMARY_JOB.to_owned()]),
                10,
                Duration::from_secs(60),
            )
            .await
            .unwrap()
    };
    let at = now();
    heartbeat::schedule(&srv.state, at).await.unwrap();
    assert!(
        summaries().await.is_empty(),
        "a summary of the week before installation"
    );
    let next_week = at + chrono::Duration::days(7);
    heartbeat::schedule(&srv.state, next_week).await.unwrap();
    heartbeat::schedule(&srv.state, next_week).await.unwrap();
    let jobs = summaries().await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let (due, _) = heartbeat::summary_slot(next_week);
    let from: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(jobs[0].payload["from"].clone()).unwrap();
    let until: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(jobs[0].payload["until"].clone()).unwrap();
    assert_eq!(until, due);
    assert!(from <= at && at < until, "{from} .. {until} must hold {at}");
    srv.stop().await;
}
