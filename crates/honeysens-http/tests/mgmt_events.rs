//! Events, incidents and event filters through the management API over real TLS, with events
//! stored through the real store (`ingest_events`, incident grouping on): every filter narrows
//! as an independent predicate says, keyset pages cover everything once, division scoping,
//! bulk changes by ids and by filter with the settings' rules, statistics, and the streamed
//! CSV / JSON Lines export parsed back with a real CSV reader.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use common::{Backend, TestServer};
use honeysens_core::ids::{DivisionId, EventId, IncidentId, SensorId};
use honeysens_core::model::{
    Classification, Event, EventData, EventFilter, EventQuery, EventSelection, EventStats,
    EventStatus, EventUpdate, FilterAction, FilterCondition, Incident, IngestOptions, IpMatch,
    NewEvent, PageRequest, Protocol, Role, SensorSpec, Settings, Severity,
};
use honeysens_http::mgmt::events::{CSV_HEADER, CursorPage, EventFilterParams, ExportParams};
use honeysens_http::mgmt_client::ManagementClient;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

const INJECTION: &str = "=HYPERLINK(\"http://evil.example\",\"x\")";
const AWKWARD: &str = "He said \"hi\", then\nleft; a,b";

struct World {
    srv: TestServer,
    own: DivisionId,
    other: DivisionId,
    /// Sensors a, b (own division) and c (other division).
    sensors: [SensorId; 3],
    /// Stored event ids in the order of [`spec`].
    ids: Vec<EventId>,
    admin: ManagementClient,
    manager: ManagementClient,
    observer: ManagementClient,
}

/// Runs each scenario on SQLite, PostgreSQL and MariaDB (filters are evaluated in SQL, so
/// every backend must agree with the predicates here).
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::Postgres).await
            })*
        }
        mod mysql {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(super::Backend::MySql).await
            })*
        }
    };
}

on_every_backend!(
    every_filter_narrows_pages_cover_once_and_divisions_scope,
    bulk_changes_by_ids_and_filter_with_the_settings_rules,
    csv_export_round_trips_and_defuses_formulas,
    large_exports_stream_every_event_once,
    incidents_list_scope_and_cascade,
    filters_crud_scope_and_validation
);

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap()
}

struct Spec {
    sensor: usize,
    minutes: i64,
    src: &'static str,
    port: Option<u16>,
    proto: Protocol,
    code: &'static str,
    class: Classification,
    sev: Severity,
    summary: &'static str,
}

fn spec() -> Vec<Spec> {
    use Classification::*;
    use Protocol::{Tcp, Udp};
    use Severity::*;
    let s = |sensor, minutes, src, port, proto, code, class, sev, summary| Spec {
        sensor,
        minutes,
        src,
        port,
        proto,
        code,
        class,
        sev,
        summary,
    };
    vec![
        s(
            0,
            0,
            "10.0.0.9",
            Some(22),
            Tcp,
            "ssh.login.failed",
            HoneypotInteraction,
            High,
            INJECTION,
        ),
        s(
            0,
            5,
            "10.0.0.9",
            Some(22),
            Tcp,
            "ssh.login.failed",
            HoneypotInteraction,
            High,
            "login root",
        ),
        s(
            0,
            65,
            "10.0.0.10",
            Some(23),
            Tcp,
            "telnet.connect",
            ConnectionAttempt,
            Low,
            AWKWARD,
        ),
        s(
            1,
            120,
            "10.0.0.16",
            Some(80),
            Tcp,
            "http.request",
            HoneypotInteraction,
            Medium,
            "GET /admin",
        ),
        s(
            1,
            1500,
            "10.0.0.100",
            Some(53),
            Udp,
            "scan.udp",
            PortScan,
            Info,
            "udp sweep",
        ),
        s(
            1,
            1510,
            "192.168.1.5",
            None,
            Protocol::Icmp,
            "icmp.echo",
            Classification::Icmp,
            Info,
            "ping",
        ),
        s(
            2,
            10,
            "10.0.0.9",
            Some(22),
            Tcp,
            "ssh.login.failed",
            HoneypotInteraction,
            Critical,
            "other division",
        ),
        s(
            2,
            3000,
            "10.0.0.12",
            Some(8080),
            Tcp,
            "http.request",
            HoneypotInteraction,
            Medium,
            "GET /",
        ),
        s(
            0,
            2900,
            "2001:db8::1",
            Some(443),
            Tcp,
            "http.request",
            HoneypotInteraction,
            Medium,
            "v6 https",
        ),
    ]
}

fn new_event(sensor: SensorId, at: DateTime<Utc>, src: IpAddr, port: Option<u16>) -> NewEvent {
    NewEvent {
        data: EventData {
            uid: uuid::Uuid::new_v4(),
            sensor_id: sensor,
            service: Some("test".into()),
            timestamp: at,
            source_ip: src,
            source_port: Some(40000),
            dest_ip: Some("192.0.2.1".parse().unwrap()),
            dest_port: port,
            protocol: Protocol::Tcp,
            type_code: "scan.tcp".into(),
            classification: Classification::ConnectionAttempt,
            severity: Severity::Low,
            summary: "noise".into(),
        },
        details: vec![],
        packets: vec![],
    }
}

fn grouping() -> IngestOptions {
    IngestOptions {
        incident_window: Some(std::time::Duration::from_secs(3600)),
        ..IngestOptions::PLAIN
    }
}

async fn world(b: Backend) -> Option<World> {
    let srv = TestServer::start_backend(b).await?;
    let own = srv.division("own").await;
    let other = srv.division("other").await;
    srv.user("admin", Role::Admin, vec![]).await;
    srv.user("manager", Role::Manager, vec![own]).await;
    srv.user("observer", Role::Observer, vec![own]).await;
    let mut sensors = Vec::new();
    for (name, d) in [("a", own), ("b", own), ("c", other)] {
        sensors.push(
            srv.store
                .create_sensor(&SensorSpec::new(name, d))
                .await
                .unwrap()
                .id,
        );
    }
    let sensors: [SensorId; 3] = sensors.try_into().unwrap();
    let batch: Vec<_> = spec()
        .iter()
        .map(|s| {
            let mut e = new_event(
                sensors[s.sensor],
                base() + Duration::minutes(s.minutes),
                s.src.parse().unwrap(),
                s.port,
            );
            e.data.protocol = s.proto;
            e.data.type_code = s.code.into();
            e.data.classification = s.class;
            e.data.severity = s.sev;
            e.data.summary = s.summary.into();
            e.details.push(honeysens_core::model::EventDetail {
                timestamp: e.data.timestamp,
                kind: honeysens_core::model::DetailKind::Interaction,
                data: format!("detail of {}", s.summary),
            });
            let div = if s.sensor == 2 { other } else { own };
            (e, div, EventStatus::New)
        })
        .collect();
    let report = srv.store.ingest_events(&batch, &grouping()).await.unwrap();
    let ids: Vec<EventId> = report.inserted.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), batch.len());
    // Some workflow state to filter on: one resolved with a comment, one archived.
    let by_id = |i: usize| EventSelection {
        ids: Some(vec![ids[i]]),
        query: EventQuery::default(),
    };
    srv.store
        .update_events(
            &by_id(3),
            &EventUpdate {
                status: Some(EventStatus::Resolved),
                comment: Some(Some("known scanner".into())),
                archived: None,
            },
        )
        .await
        .unwrap();
    srv.store
        .update_events(
            &by_id(5),
            &EventUpdate {
                archived: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let admin = srv.login("admin").await;
    let manager = srv.login("manager").await;
    let observer = srv.login("observer").await;
    Some(World {
        srv,
        own,
        other,
        sensors,
        ids,
        admin,
        manager,
        observer,
    })
}

/// Every stored event, straight from the store (the oracle's input).
async fn all_events(w: &World) -> Vec<Event> {
    let q = EventQuery {
        archived: None,
        ..Default::default()
    };
    w.srv
        .store
        .list_events(&q, &PageRequest::first(512))
        .await
        .unwrap()
        .items
}

async fn call(
    c: &ManagementClient,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| (serde_json::to_vec(&b).unwrap(), "application/json"));
    let r = c.raw(method, path, body).await.unwrap();
    let v = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, v)
}

/// Walks every page of `/api/events?{qs}` and returns the ids in listing order; fails on a
/// repeated id.
async fn walk(c: &ManagementClient, qs: &str, limit: u32) -> Vec<EventId> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/api/events?limit={limit}");
        if !qs.is_empty() {
            path.push('&');
            path.push_str(qs);
        }
        if let Some(a) = &after {
            path.push_str(&format!("&after={a}"));
        }
        let (status, v) = call(c, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{path}: {v}");
        let page: CursorPage<Event> = serde_json::from_value(v).unwrap();
        assert!(page.items.len() <= limit as usize);
        for e in page.items {
            assert!(!out.contains(&e.id), "{qs}: event {} listed twice", e.id);
            out.push(e.id);
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

fn set(ids: impl IntoIterator<Item = EventId>) -> BTreeSet<EventId> {
    ids.into_iter().collect()
}

async fn every_filter_narrows_pages_cover_once_and_divisions_scope(b: Backend) {
    let Some(w) = world(b).await else { return };
    let all = all_events(&w).await;
    assert_eq!(all.len(), spec().len());
    let [a, b, _c] = w.sensors;
    let t = |m: i64| (base() + Duration::minutes(m)).to_rfc3339();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let incident0 = all
        .iter()
        .find(|e| e.id == w.ids[0])
        .unwrap()
        .incident_id
        .expect("ingest grouped the event");
    type Pred = Box<dyn Fn(&Event) -> bool>;
    let cases: Vec<(String, Pred)> = vec![
        (
            format!("division={}", w.own),
            Box::new(move |e: &Event| e.division_id == w.own),
        ),
        (
            format!("sensor={a},{b}"),
            Box::new(move |e: &Event| [a, b].contains(&e.data.sensor_id)),
        ),
        (
            "classification=port_scan,icmp".into(),
            Box::new(|e: &Event| {
                matches!(
                    e.data.classification,
                    Classification::PortScan | Classification::Icmp
                )
            }),
        ),
        (
            "type=ssh.login.failed".into(),
            Box::new(|e: &Event| e.data.type_code == "ssh.login.failed"),
        ),
        (
            "status=resolved".into(),
            Box::new(|e: &Event| e.status == EventStatus::Resolved),
        ),
        (
            "status=new,in_progress".into(),
            Box::new(|e: &Event| e.status == EventStatus::New),
        ),
        (
            "severity=high,critical".into(),
            Box::new(|e: &Event| e.data.severity >= Severity::High),
        ),
        (
            format!("from={}&until={}", urlenc(&t(60)), urlenc(&t(1505))),
            Box::new(move |e: &Event| {
                e.data.timestamp >= base() + Duration::minutes(60)
                    && e.data.timestamp < base() + Duration::minutes(1505)
            }),
        ),
        (
            "q=SCANNER".into(),
            Box::new(|e: &Event| e.comment.as_deref() == Some("known scanner")),
        ),
        (
            "q=admin".into(),
            Box::new(|e: &Event| e.data.summary.contains("admin")),
        ),
        (
            "q=10.0.0.1".into(),
            Box::new(|e: &Event| e.data.source_ip.to_string().contains("10.0.0.1")),
        ),
        // Numeric, not string, comparison: 10.0.0.10 is inside 10.0.0.8/29 although
        // "10.0.0.10" < "10.0.0.8" as text, and 10.0.0.100 is outside.
        (
            "source=10.0.0.8/29".into(),
            Box::new(move |e: &Event| {
                [ip("10.0.0.9"), ip("10.0.0.10"), ip("10.0.0.12")].contains(&e.data.source_ip)
            }),
        ),
        (
            "source=10.0.0.10-10.0.0.16".into(),
            Box::new(move |e: &Event| {
                [ip("10.0.0.10"), ip("10.0.0.12"), ip("10.0.0.16")].contains(&e.data.source_ip)
            }),
        ),
        (
            "source=10.0.0.9".into(),
            Box::new(move |e: &Event| e.data.source_ip == ip("10.0.0.9")),
        ),
        (
            format!("source={}", urlenc("2001:db8::/32")),
            Box::new(|e: &Event| e.data.source_ip.is_ipv6()),
        ),
        (
            "port=22".into(),
            Box::new(|e: &Event| e.data.dest_port == Some(22)),
        ),
        (
            "protocol=udp".into(),
            Box::new(|e: &Event| e.data.protocol == Protocol::Udp),
        ),
        (
            format!("incident={incident0}"),
            Box::new(move |e: &Event| e.incident_id == Some(incident0)),
        ),
    ];
    let live = all.iter().filter(|e| !e.archived).count();
    for (qs, pred) in &cases {
        let want = set(all.iter().filter(|e| !e.archived && pred(e)).map(|e| e.id));
        assert!(
            !want.is_empty() && want.len() < live,
            "case {qs} must narrow"
        );
        let got = set(walk(&w.admin, qs, 2).await);
        assert_eq!(got, want, "filter {qs}");
    }
    // The explicit CIDR expectation, independent of the predicate above.
    let cidr = set(walk(&w.admin, "source=10.0.0.8/29", 50).await);
    assert!(cidr.contains(&w.ids[2]), "10.0.0.10 is in 10.0.0.8/29");
    assert!(!cidr.contains(&w.ids[4]), "10.0.0.100 is not");
    assert!(!cidr.contains(&w.ids[3]), "10.0.0.16 is not");

    // Archive switch.
    assert_eq!(
        set(walk(&w.admin, "archived=true", 5).await),
        set([w.ids[5]])
    );
    assert_eq!(
        set(walk(&w.admin, "archived=all", 5).await),
        set(all.iter().map(|e| e.id))
    );

    // Keyset pages: every event once, in time order, both directions, any page size.
    for limit in [1, 2, 4, 512] {
        let desc = walk(&w.admin, "archived=all", limit).await;
        let asc = walk(&w.admin, "archived=all&order=asc", limit).await;
        assert_eq!(desc.len(), all.len());
        let mut rev = asc.clone();
        rev.reverse();
        assert_eq!(desc, rev, "limit {limit}");
        let ts = |id: &EventId| all.iter().find(|e| e.id == *id).unwrap().data.timestamp;
        assert!(asc.windows(2).all(|p| ts(&p[0]) <= ts(&p[1])));
    }

    // Bad parameters are 422 naming the field; page sizes are bounded.
    for (qs, field) in [
        ("source=10.0.0.300", "source"),
        ("status=bogus", "status"),
        ("from=yesterday", "from"),
        ("port=0", "port"),
        ("archived=maybe", "archived"),
        ("limit=513", "limit"),
        ("limit=0", "limit"),
        ("after=garbage", "cursor"),
        ("source=10.0.0.9-10.0.0.1", "source"),
    ] {
        let (status, v) = call(&w.admin, Method::GET, &format!("/api/events?{qs}"), None).await;
        assert_eq!(status, 422, "{qs}: {v}");
        assert_eq!(v["error"]["code"], "validation.failed");
        assert_eq!(v["error"]["fields"][0]["field"], field, "{qs}: {v}");
    }

    // Division scoping: manager and observer see only their division.
    let own_live = set(all
        .iter()
        .filter(|e| !e.archived && e.division_id == w.own)
        .map(|e| e.id));
    for c in [&w.manager, &w.observer] {
        assert_eq!(set(walk(c, "", 3).await), own_live);
        assert!(
            walk(c, &format!("division={}", w.other), 3)
                .await
                .is_empty()
        );
        assert_eq!(
            set(walk(c, &format!("division={},{}", w.own, w.other), 3).await),
            own_live
        );
        let theirs = w.ids[6];
        for path in [
            format!("/api/events/{theirs}"),
            format!("/api/events/{theirs}/payload"),
        ] {
            let (status, v) = call(c, Method::GET, &path, None).await;
            assert_eq!(
                (status, v["error"]["code"].as_str()),
                (404, Some("event.not_found"))
            );
        }
        let mine = c.get_event(w.ids[0]).await.unwrap();
        assert_eq!(mine.data.summary, INJECTION);
        let payload = c.get_event_payload(w.ids[0]).await.unwrap();
        assert_eq!(payload.details.len(), 1);
        assert_eq!(payload.details[0].data, format!("detail of {INJECTION}"));
    }
    let (status, _) = call(&w.admin, Method::GET, "/api/events/nope", None).await;
    assert_eq!(status, 404);

    // Statistics against counts computed here from the stored events.
    let stats: EventStats = serde_json::from_value(
        call(
            &w.admin,
            Method::GET,
            "/api/events/stats?archived=all&bucket=hour&top=3",
            None,
        )
        .await
        .1,
    )
    .unwrap();
    check_stats(&stats, &all, |t| {
        t.with_minute(0).unwrap().with_second(0).unwrap()
    });
    let day: EventStats = serde_json::from_value(
        call(
            &w.admin,
            Method::GET,
            "/api/events/stats?archived=all&bucket=day",
            None,
        )
        .await
        .1,
    )
    .unwrap();
    check_stats(&day, &all, |t| {
        t.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc()
    });
    let mgr: EventStats = serde_json::from_value(
        call(&w.manager, Method::GET, "/api/events/stats", None)
            .await
            .1,
    )
    .unwrap();
    let mine: Vec<Event> = all
        .iter()
        .filter(|e| !e.archived && e.division_id == w.own)
        .cloned()
        .collect();
    assert_eq!(mgr.total, mine.len() as u64);
    let (status, _) = call(&w.admin, Method::GET, "/api/events/stats?top=101", None).await;
    assert_eq!(status, 422);
    let (status, _) = call(&w.admin, Method::GET, "/api/events/stats?bucket=week", None).await;
    assert_eq!(status, 400);
    w.srv.stop().await;
}

fn urlenc(s: &str) -> String {
    s.replace(':', "%3A")
        .replace('+', "%2B")
        .replace('/', "%2F")
}

fn counts<K: Ord + Clone>(keys: impl Iterator<Item = K>) -> BTreeMap<K, u64> {
    let mut m = BTreeMap::new();
    for k in keys {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

fn check_stats(s: &EventStats, all: &[Event], bucket: impl Fn(DateTime<Utc>) -> DateTime<Utc>) {
    assert_eq!(s.total, all.len() as u64);
    let got = |v: &Vec<honeysens_core::model::Count<EventStatus>>| {
        v.iter()
            .map(|c| (c.key, c.count))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(got(&s.by_status), counts(all.iter().map(|e| e.status)));
    assert_eq!(
        s.by_classification
            .iter()
            .map(|c| (c.key, c.count))
            .collect::<BTreeMap<_, _>>(),
        counts(all.iter().map(|e| e.data.classification))
    );
    assert_eq!(
        s.by_sensor
            .iter()
            .map(|c| (c.key, c.count))
            .collect::<BTreeMap<_, _>>(),
        counts(all.iter().map(|e| e.data.sensor_id))
    );
    let timeline: Vec<(DateTime<Utc>, u64)> =
        s.timeline.iter().map(|p| (p.start, p.count)).collect();
    let want: Vec<(DateTime<Utc>, u64)> = counts(all.iter().map(|e| bucket(e.data.timestamp)))
        .into_iter()
        .collect();
    assert_eq!(timeline, want);
    // 10.0.0.9 (three events) and port 22 (three events) lead alone.
    let sources = counts(all.iter().map(|e| e.data.source_ip));
    let (top_ip, top_n) = sources.iter().max_by_key(|(_, n)| **n).unwrap();
    assert_eq!(
        (s.top_sources[0].key, s.top_sources[0].count),
        (*top_ip, *top_n)
    );
    let ports = counts(all.iter().filter_map(|e| e.data.dest_port));
    let (top_port, top_pn) = ports.iter().max_by_key(|(_, n)| **n).unwrap();
    assert_eq!(
        (s.top_ports[0].key, s.top_ports[0].count),
        (*top_port, *top_pn)
    );
    assert!(s.top_sources.windows(2).all(|p| p[0].count >= p[1].count));
}

async fn settings(w: &World, f: impl FnOnce(&mut Settings)) {
    let mut s = w.srv.store.get_settings().await.unwrap();
    f(&mut s);
    w.srv.store.put_settings(&s).await.unwrap();
}

async fn bulk_changes_by_ids_and_filter_with_the_settings_rules(b: Backend) {
    let Some(w) = world(b).await else { return };
    let ids = &w.ids;

    // By ids: only the caller's division changes.
    let (status, v) = call(
        &w.manager,
        Method::POST,
        "/api/events/bulk",
        Some(json!({ "ids": [ids[0], ids[6]], "update": { "status": "in_progress" } })),
    )
    .await;
    assert_eq!((status, v["updated"].as_u64()), (200, Some(1)), "{v}");
    assert_eq!(
        w.srv.store.get_event(ids[0]).await.unwrap().status,
        EventStatus::InProgress
    );
    assert_eq!(
        w.srv.store.get_event(ids[6]).await.unwrap().status,
        EventStatus::New
    );

    // By filter: every page, only matching events of the division.
    let all = all_events(&w).await;
    let net: IpMatch = IpMatch::Net {
        net: "10.0.0.8/29".parse().unwrap(),
    };
    let want = set(all
        .iter()
        .filter(|e| !e.archived && e.division_id == w.own && net.contains(e.data.source_ip))
        .map(|e| e.id));
    let n = w
        .manager
        .bulk_update_events(
            &serde_json::from_value(json!({
                "filter": { "source": "10.0.0.8/29" },
                "update": { "comment": "triaged" }
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(n, want.len() as u64);
    let triaged = set(all_events(&w)
        .await
        .into_iter()
        .filter(|e| e.comment.as_deref() == Some("triaged"))
        .map(|e| e.id));
    assert_eq!(triaged, want);

    // Selections that would resolve everything by accident are refused.
    for body in [
        json!({ "update": { "status": "resolved" } }),
        json!({ "filter": {}, "update": { "status": "resolved" } }),
    ] {
        let (status, v) = call(&w.admin, Method::POST, "/api/events/bulk", Some(body)).await;
        assert_eq!(status, 422, "{v}");
        assert_eq!(v["error"]["fields"][0]["field"], "filter");
    }
    let (status, v) = call(
        &w.admin,
        Method::POST,
        "/api/events/bulk",
        Some(json!({ "ids": [ids[1]], "update": {} })),
    )
    .await;
    assert_eq!(
        (status, v["error"]["fields"][0]["field"].as_str()),
        (422, Some("update"))
    );
    // all: true is the explicit way; a manager's "all" is still their division.
    let own_count = all_events(&w)
        .await
        .iter()
        .filter(|e| e.division_id == w.own)
        .count() as u64;
    let (status, v) = call(
        &w.manager,
        Method::POST,
        "/api/events/bulk",
        Some(json!({ "all": true, "update": { "comment": "seen" } })),
    )
    .await;
    assert_eq!(
        (status, v["updated"].as_u64()),
        (200, Some(own_count)),
        "{v}"
    );
    assert_ne!(
        w.srv
            .store
            .get_event(ids[6])
            .await
            .unwrap()
            .comment
            .as_deref(),
        Some("seen")
    );

    // Observers read only.
    let (status, v) = call(
        &w.observer,
        Method::POST,
        "/api/events/bulk",
        Some(json!({ "ids": [ids[1]], "update": { "status": "resolved", "comment": "x" } })),
    )
    .await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("auth.forbidden"))
    );

    // Comment requirement.
    settings(&w, |s| s.require_event_comment = true).await;
    let (status, v) = call(
        &w.manager,
        Method::POST,
        "/api/events/bulk",
        Some(json!({ "ids": [ids[1]], "update": { "status": "resolved" } })),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert_eq!(v["error"]["code"], "validation.failed");
    assert_eq!(v["error"]["fields"][0]["field"], "comment");
    assert_eq!(
        w.srv.store.get_event(ids[1]).await.unwrap().status,
        EventStatus::New
    );
    let (status, v) = call(
        &w.manager,
        Method::POST,
        "/api/events/bulk",
        Some(json!({ "ids": [ids[1]], "update": { "status": "resolved", "comment": "done" } })),
    )
    .await;
    assert_eq!((status, v["updated"].as_u64()), (200, Some(1)));
    // A comment alone needs no status rule.
    let (status, _) = call(
        &w.manager,
        Method::POST,
        "/api/events/bulk",
        Some(json!({ "ids": [ids[1]], "update": { "comment": "more" } })),
    )
    .await;
    assert_eq!(status, 200);

    // The audit log records the count.
    let audit = w.srv.store.list_audit(50, None).await.unwrap();
    let entry = audit
        .iter()
        .find(|a| a.action == "event.bulk_update" && a.detail["comment_changed"] == json!(true))
        .unwrap();
    assert!(entry.detail["count"].as_u64().is_some());

    // Deleting: managers only when the settings allow it.
    settings(&w, |s| s.managers_may_delete_events = false).await;
    let del = |i: usize| Some(json!({ "ids": [ids[i]] }));
    let (status, _) = call(&w.manager, Method::POST, "/api/events/delete", del(2)).await;
    assert_eq!(status, 403);
    let (status, _) = call(&w.observer, Method::POST, "/api/events/delete", del(2)).await;
    assert_eq!(status, 403);
    assert!(w.srv.store.get_event(ids[2]).await.is_ok());
    settings(&w, |s| s.managers_may_delete_events = true).await;
    let (status, v) = call(&w.manager, Method::POST, "/api/events/delete", del(2)).await;
    assert_eq!((status, v["deleted"].as_u64()), (200, Some(1)));
    let (status, v) = call(&w.manager, Method::POST, "/api/events/delete", del(7)).await;
    assert_eq!(
        (status, v["deleted"].as_u64()),
        (200, Some(0)),
        "other division untouched"
    );
    assert!(w.srv.store.get_event(ids[7]).await.is_ok());
    let (status, _) = call(
        &w.admin,
        Method::GET,
        &format!("/api/events/{}", ids[2]),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // By filter, admin.
    let n = w
        .admin
        .delete_events(&serde_json::from_value(json!({ "filter": { "protocol": "udp" } })).unwrap())
        .await
        .unwrap();
    assert_eq!(n, 1);
    let (status, _) = call(
        &w.admin,
        Method::POST,
        "/api/events/delete",
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 422);
    let many: Vec<i64> = (1..=10_001).collect();
    let (status, v) = call(
        &w.admin,
        Method::POST,
        "/api/events/bulk",
        Some(json!({ "ids": many, "update": { "comment": "x" } })),
    )
    .await;
    assert_eq!(
        (status, v["error"]["fields"][0]["field"].as_str()),
        (422, Some("ids"))
    );
    w.srv.stop().await;
}

async fn export(c: &ManagementClient, qs: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = c
        .raw(Method::GET, &format!("/api/events/export?{qs}"), None)
        .await
        .unwrap();
    (r.status, r.headers, r.body.to_vec())
}

fn parse_csv(body: &[u8]) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(body);
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap();
            header
                .iter()
                .cloned()
                .zip(rec.iter().map(str::to_owned))
                .collect()
        })
        .collect();
    (header, rows)
}

async fn csv_export_round_trips_and_defuses_formulas(b: Backend) {
    let Some(w) = world(b).await else { return };
    let all = all_events(&w).await;
    let (status, headers, body) = export(&w.admin, "format=csv&archived=all").await;
    assert_eq!(status, 200);
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let (header, rows) = parse_csv(&body);
    assert_eq!(header, CSV_HEADER);
    assert_eq!(rows.len(), all.len());
    let row = |id: EventId| {
        rows.iter()
            .find(|r| r["id"] == id.to_string())
            .unwrap_or_else(|| panic!("row {id}"))
    };
    assert_eq!(row(w.ids[0])["summary"], format!("'{INJECTION}"));
    assert_eq!(row(w.ids[2])["summary"], AWKWARD);
    assert_eq!(row(w.ids[2])["source_ip"], "10.0.0.10");
    assert_eq!(row(w.ids[3])["comment"], "known scanner");
    assert_eq!(row(w.ids[5])["archived"], "true");
    // Oldest first by default.
    let first = all.iter().min_by_key(|e| (e.data.timestamp, e.id)).unwrap();
    assert_eq!(rows[0]["id"], first.id.to_string());

    // Filters and scope apply to the export as to the listing.
    let (_, _, body) = export(&w.manager, "format=csv").await;
    let (_, rows) = parse_csv(&body);
    let want = set(all
        .iter()
        .filter(|e| !e.archived && e.division_id == w.own)
        .map(|e| e.id));
    assert_eq!(
        set(rows.iter().map(|r| EventId(r["id"].parse().unwrap()))),
        want
    );
    let (_, _, body) = export(&w.manager, &format!("format=csv&division={}", w.other)).await;
    let (header, rows) = parse_csv(&body);
    assert_eq!((header.len(), rows.len()), (CSV_HEADER.len(), 0));
    let (status, _, _) = export(&w.admin, "format=xml").await;
    assert_eq!(status, 400);
    w.srv.stop().await;
}

async fn large_exports_stream_every_event_once(b: Backend) {
    let Some(srv) = TestServer::start_backend(b).await else {
        return;
    };
    let d = srv.division("d").await;
    srv.user("admin", Role::Admin, vec![]).await;
    let s = srv
        .store
        .create_sensor(&SensorSpec::new("s", d))
        .await
        .unwrap()
        .id;
    const N: usize = 1234;
    let batch: Vec<_> = (0..N)
        .map(|i| {
            let src = IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8 + 1]);
            let mut e = new_event(s, base() + Duration::seconds(i as i64 / 2), src, Some(22));
            e.data.summary = format!("event {i}");
            (e, d, EventStatus::New)
        })
        .collect();
    for chunk in batch.chunks(400) {
        srv.store
            .ingest_events(chunk, &IngestOptions::PLAIN)
            .await
            .unwrap();
    }
    let admin = srv.login("admin").await;
    let mut out = Vec::new();
    let n = admin
        .export_events(
            &EventFilterParams::default(),
            &serde_json::from_value::<ExportParams>(json!({ "format": "jsonl" })).unwrap(),
            &mut out,
        )
        .await
        .unwrap();
    assert_eq!(n as usize, out.len());
    let text = String::from_utf8(out).unwrap();
    let events: Vec<Event> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), N);
    assert_eq!(set(events.iter().map(|e| e.id)).len(), N);
    assert!(
        events
            .windows(2)
            .all(|p| (p[0].data.timestamp, p[0].id) < (p[1].data.timestamp, p[1].id))
    );
    // CSV across page boundaries, newest first, narrowed by a filter.
    let mut out = Vec::new();
    admin
        .export_events(
            &serde_json::from_value(json!({ "source": "10.1.2.0/24" })).unwrap(),
            &serde_json::from_value(json!({ "format": "csv", "order": "desc" })).unwrap(),
            &mut out,
        )
        .await
        .unwrap();
    let (_, rows) = parse_csv(&out);
    let want = (0..N).filter(|i| i / 250 == 2).count();
    assert_eq!(rows.len(), want);
    assert!(rows.iter().all(|r| r["source_ip"].starts_with("10.1.2.")));
    srv.stop().await;
}

async fn incidents_list_scope_and_cascade(b: Backend) {
    let Some(w) = world(b).await else { return };
    let all = all_events(&w).await;
    let ev = |i: usize| all.iter().find(|e| e.id == w.ids[i]).unwrap().clone();
    let inc0 = ev(0).incident_id.unwrap();
    assert_eq!(
        ev(1).incident_id,
        Some(inc0),
        "same source within the window"
    );
    assert_ne!(
        ev(6).incident_id,
        Some(inc0),
        "another division is another incident"
    );
    let inc6 = ev(6).incident_id.unwrap();

    // Listing: every incident once over keyset pages; manager only their division.
    let walk_incidents = |c: ManagementClient, qs: &'static str| async move {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut path = format!("/api/incidents?limit=1&{qs}");
            if let Some(a) = &after {
                path.push_str(&format!("&after={a}"));
            }
            let (status, v) = call(&c, Method::GET, &path, None).await;
            assert_eq!(status, 200, "{v}");
            let page: CursorPage<Incident> = serde_json::from_value(v).unwrap();
            for i in page.items {
                assert!(!out.iter().any(|o: &Incident| o.id == i.id));
                out.push(i);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => return out,
            }
        }
    };
    let want: BTreeSet<IncidentId> = all.iter().filter_map(|e| e.incident_id).collect();
    let got = walk_incidents(w.admin.clone(), "archived=all").await;
    assert_eq!(got.iter().map(|i| i.id).collect::<BTreeSet<_>>(), want);
    assert!(got.windows(2).all(|p| p[0].last_seen >= p[1].last_seen));
    let i0 = got.iter().find(|i| i.id == inc0).unwrap();
    assert_eq!(i0.event_count, 2);
    assert_eq!(i0.source_ip, "10.0.0.9".parse::<IpAddr>().unwrap());
    let mine = walk_incidents(w.manager.clone(), "").await;
    assert!(!mine.is_empty());
    assert!(mine.iter().all(|i| i.division_id == w.own));
    assert!(mine.iter().any(|i| i.id == inc0));

    let (status, _) = call(
        &w.manager,
        Method::GET,
        &format!("/api/incidents/{inc6}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &w.observer,
        Method::GET,
        &format!("/api/incidents/{inc6}/events"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(w.observer.get_incident(inc0).await.unwrap().id, inc0);
    let evs = w
        .observer
        .incident_events(inc0, &Default::default())
        .await
        .unwrap();
    assert_eq!(
        set(evs.items.iter().map(|e| e.id)),
        set([w.ids[0], w.ids[1]])
    );

    // Bulk: observers 403, comment rule, cascade to events, other division untouched.
    let body = |ids: Vec<IncidentId>, update: Value| Some(json!({ "ids": ids, "update": update }));
    let (status, _) = call(
        &w.observer,
        Method::POST,
        "/api/incidents/bulk",
        body(vec![inc0], json!({ "status": "resolved", "comment": "x" })),
    )
    .await;
    assert_eq!(status, 403);
    settings(&w, |s| s.require_event_comment = true).await;
    let (status, v) = call(
        &w.manager,
        Method::POST,
        "/api/incidents/bulk",
        body(vec![inc0], json!({ "status": "resolved" })),
    )
    .await;
    assert_eq!(
        (status, v["error"]["fields"][0]["field"].as_str()),
        (422, Some("comment"))
    );
    let (status, v) = call(
        &w.manager,
        Method::POST,
        "/api/incidents/bulk",
        body(
            vec![inc0, inc6],
            json!({ "status": "resolved", "comment": "handled", "archived": true }),
        ),
    )
    .await;
    assert_eq!((status, v["updated"].as_u64()), (200, Some(1)), "{v}");
    for i in [0, 1] {
        let e = w.srv.store.get_event(w.ids[i]).await.unwrap();
        assert_eq!((e.status, e.archived), (EventStatus::Resolved, true));
    }
    let e6 = w.srv.store.get_event(w.ids[6]).await.unwrap();
    assert_eq!((e6.status, e6.archived), (EventStatus::New, false));
    let i0 = w.admin.get_incident(inc0).await.unwrap();
    assert_eq!(
        (i0.status, i0.archived, i0.comment.as_deref()),
        (EventStatus::Resolved, true, Some("handled"))
    );
    // Archived incidents leave the default listing.
    let live = walk_incidents(w.admin.clone(), "").await;
    assert!(!live.iter().any(|i| i.id == inc0));
    let (status, _) = call(
        &w.manager,
        Method::POST,
        "/api/incidents/bulk",
        body(vec![], json!({ "comment": "x" })),
    )
    .await;
    assert_eq!(status, 422);
    w.srv.stop().await;
}

async fn filters_crud_scope_and_validation(b: Backend) {
    let Some(w) = world(b).await else { return };
    let spec = |d: DivisionId, description: Option<&str>| {
        json!({
            "division_id": d,
            "name": "scanner",
            "description": description,
            "enabled": true,
            "action": "resolve",
            "conditions": [
                { "field": "source", "value": { "type": "net", "net": "10.0.0.8/29" } },
                { "field": "dest_port", "from": 22, "to": 23 }
            ]
        })
    };
    let (status, v) = call(
        &w.manager,
        Method::POST,
        "/api/filters",
        Some(spec(w.own, None)),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let f: EventFilter = serde_json::from_value(v).unwrap();
    assert_eq!(f.hits, 0);
    assert_eq!(f.spec.action, FilterAction::Resolve);
    assert!(matches!(
        f.spec.conditions[0],
        FilterCondition::Source { .. }
    ));
    let (status, v) = call(
        &w.manager,
        Method::POST,
        "/api/filters",
        Some(spec(w.other, None)),
    )
    .await;
    assert_eq!(
        (status, v["error"]["fields"][0]["field"].as_str()),
        (422, Some("division_id"))
    );
    let (status, _) = call(
        &w.observer,
        Method::POST,
        "/api/filters",
        Some(spec(w.own, None)),
    )
    .await;
    assert_eq!(status, 403);
    let theirs = w
        .admin
        .create_filter(&serde_json::from_value(spec(w.other, Some("x"))).unwrap())
        .await
        .unwrap();

    // Validation: no conditions, reversed port range, the description setting.
    let mut bad = spec(w.own, None);
    bad["conditions"] = json!([]);
    let (status, v) = call(&w.manager, Method::POST, "/api/filters", Some(bad)).await;
    assert_eq!(
        (status, v["error"]["fields"][0]["field"].as_str()),
        (422, Some("conditions"))
    );
    let mut bad = spec(w.own, None);
    bad["conditions"] = json!([{ "field": "dest_port", "from": 30, "to": 20 }]);
    let (status, _) = call(&w.manager, Method::POST, "/api/filters", Some(bad)).await;
    assert_eq!(status, 422);
    settings(&w, |s| s.require_filter_description = true).await;
    let (status, v) = call(
        &w.manager,
        Method::POST,
        "/api/filters",
        Some(spec(w.own, None)),
    )
    .await;
    assert_eq!(
        (status, v["error"]["fields"][0]["field"].as_str()),
        (422, Some("description"))
    );
    let (status, v) = call(
        &w.manager,
        Method::PUT,
        &format!("/api/filters/{}", f.id),
        Some(spec(w.own, None)),
    )
    .await;
    assert_eq!(
        (status, v["error"]["fields"][0]["field"].as_str()),
        (422, Some("description"))
    );

    // Hits show in the listing and survive an update.
    w.srv.store.add_filter_hits(f.id, 7).await.unwrap();
    let list = w.observer.list_filters(&Default::default()).await.unwrap();
    assert_eq!(
        list.items
            .iter()
            .map(|x| (x.id, x.hits))
            .collect::<Vec<_>>(),
        vec![(f.id, 7)]
    );
    let mut renamed = spec(w.own, Some("known scanner subnet"));
    renamed["name"] = json!("renamed");
    let updated = w
        .manager
        .update_filter(f.id, &serde_json::from_value(renamed).unwrap())
        .await
        .unwrap();
    assert_eq!((updated.spec.name.as_str(), updated.hits), ("renamed", 7));
    let (status, _) = call(
        &w.observer,
        Method::POST,
        &format!("/api/filters/{}/reset", f.id),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &w.manager,
        Method::POST,
        &format!("/api/filters/{}/reset", theirs.id),
        None,
    )
    .await;
    assert_eq!(status, 404);
    w.srv.store.add_filter_hits(theirs.id, 3).await.unwrap();
    assert_eq!(w.manager.reset_filter(f.id).await.unwrap().hits, 0);
    assert_eq!(w.srv.store.get_filter(f.id).await.unwrap().hits, 0);
    assert_eq!(w.srv.store.get_filter(theirs.id).await.unwrap().hits, 3);
    // Resetting a filter at zero is no error (MySQL reports no changed row).
    assert_eq!(w.manager.reset_filter(f.id).await.unwrap().hits, 0);
    let all = w.admin.list_filters(&Default::default()).await.unwrap();
    assert_eq!(all.items.len(), 2);

    // Other division: 404 for reads and writes.
    for (m, body) in [
        (Method::GET, None),
        (Method::PUT, Some(spec(w.other, Some("y")))),
        (Method::DELETE, None),
    ] {
        let (status, v) = call(
            &w.manager,
            m.clone(),
            &format!("/api/filters/{}", theirs.id),
            body,
        )
        .await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (404, Some("filter.not_found")),
            "{m}"
        );
    }
    let (status, _) = call(
        &w.observer,
        Method::DELETE,
        &format!("/api/filters/{}", f.id),
        None,
    )
    .await;
    assert_eq!(status, 403);
    w.manager.delete_filter(f.id).await.unwrap();
    let (status, _) = call(
        &w.manager,
        Method::GET,
        &format!("/api/filters/{}", f.id),
        None,
    )
    .await;
    assert_eq!(status, 404);
    w.srv.stop().await;
}
