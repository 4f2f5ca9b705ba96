//! Matrix cases of the event, incident and event filter endpoints.

use crate::{Case, ROLES, World, case};
use honeysens_core::ids::{DivisionId, EventId, FilterId, IncidentId, SensorId};
use honeysens_core::model::{
    Classification, EventData, EventFilterSpec, EventStatus, FilterAction, FilterCondition,
    IngestOptions, NewEvent, Protocol, SensorSpec, Severity,
};
use honeysens_core::time::now;
use reqwest::Method;
use serde_json::json;

async fn sensor(w: &World, name: &str, division: DivisionId) -> SensorId {
    w.srv
        .store
        .create_sensor(&SensorSpec::new(name, division))
        .await
        .unwrap()
        .id
}

/// Stores one event (grouped into a new incident) and returns both ids.
async fn event(
    w: &World,
    sensor: SensorId,
    division: DivisionId,
    src: &str,
) -> (EventId, IncidentId) {
    let e = NewEvent {
        data: EventData {
            uid: uuid::Uuid::new_v4(),
            sensor_id: sensor,
            service: None,
            timestamp: now(),
            source_ip: src.parse().unwrap(),
            source_port: None,
            dest_ip: None,
            dest_port: Some(22),
            protocol: Protocol::Tcp,
            type_code: "ssh.login.failed".into(),
            classification: Classification::HoneypotInteraction,
            severity: Severity::High,
            summary: "matrix".into(),
        },
        details: vec![],
        packets: vec![],
    };
    let options = IngestOptions {
        incident_window: Some(std::time::Duration::from_secs(3600)),
        ..IngestOptions::PLAIN
    };
    let r = w
        .srv
        .store
        .ingest_events(&[(e, division, EventStatus::New)], &options)
        .await
        .unwrap();
    let ev = r.inserted[0].1;
    let inc = w
        .srv
        .store
        .get_event(ev)
        .await
        .unwrap()
        .incident_id
        .unwrap();
    (ev, inc)
}

async fn filter(w: &World, division: DivisionId) -> FilterId {
    let spec = EventFilterSpec {
        division_id: division,
        name: "f".into(),
        description: Some("matrix".into()),
        enabled: true,
        action: FilterAction::Drop,
        conditions: vec![FilterCondition::Protocol {
            value: Protocol::Udp,
        }],
    };
    w.srv.store.create_filter(&spec).await.unwrap().id
}

pub async fn cases(w: &World, i: usize, via: &str) -> Vec<Case> {
    let tag = format!("{via}-{}", ROLES[i]);
    let own_s = sensor(w, &format!("ev-own-{tag}"), w.own).await;
    let other_s = sensor(w, &format!("ev-other-{tag}"), w.other).await;
    // Distinct sources per role so every case gets its own incidents.
    let n = i + if via == "token" { 10 } else { 0 };
    let (mine, my_inc) = event(w, own_s, w.own, &format!("198.51.100.{n}")).await;
    let (theirs, their_inc) = event(w, other_s, w.other, &format!("198.51.100.{n}")).await;
    let (victim, _) = event(w, own_s, w.own, &format!("203.0.113.{n}")).await;
    let my_f = filter(w, w.own).await;
    let their_f = filter(w, w.other).await;
    let victim_f = filter(w, w.own).await;
    let fbody = |d: DivisionId| {
        Some(json!({
            "division_id": d, "name": "noise", "enabled": true, "action": "resolve",
            "conditions": [{ "field": "dest_port", "from": 1, "to": 1024 }]
        }))
    };
    let get = |template: &'static str, path: String, expect: [u16; 3]| {
        case(Method::GET, template, path, None, expect)
    };
    vec![
        get(
            "/api/events",
            "/api/events?status=new".into(),
            [200, 200, 200],
        ),
        get(
            "/api/events/{id}",
            format!("/api/events/{mine}"),
            [200, 200, 200],
        ),
        get(
            "/api/events/{id}",
            format!("/api/events/{theirs}"),
            [200, 404, 404],
        ),
        get(
            "/api/events/{id}/payload",
            format!("/api/events/{mine}/payload"),
            [200, 200, 200],
        ),
        get(
            "/api/events/{id}/payload",
            format!("/api/events/{theirs}/payload"),
            [200, 404, 404],
        ),
        get(
            "/api/events/stats",
            "/api/events/stats?bucket=hour".into(),
            [200, 200, 200],
        ),
        get(
            "/api/events/export",
            "/api/events/export?format=jsonl".into(),
            [200, 200, 200],
        ),
        case(
            Method::POST,
            "/api/events/bulk",
            "/api/events/bulk",
            Some(json!({ "ids": [mine], "update": { "status": "in_progress" } })),
            [200, 200, 403],
        ),
        case(
            Method::POST,
            "/api/events/delete",
            "/api/events/delete",
            Some(json!({ "ids": [victim] })),
            [200, 200, 403],
        ),
        get("/api/incidents", "/api/incidents".into(), [200, 200, 200]),
        get(
            "/api/incidents/{id}",
            format!("/api/incidents/{my_inc}"),
            [200, 200, 200],
        ),
        get(
            "/api/incidents/{id}",
            format!("/api/incidents/{their_inc}"),
            [200, 404, 404],
        ),
        get(
            "/api/incidents/{id}/events",
            format!("/api/incidents/{my_inc}/events"),
            [200, 200, 200],
        ),
        get(
            "/api/incidents/{id}/events",
            format!("/api/incidents/{their_inc}/events"),
            [200, 404, 404],
        ),
        case(
            Method::POST,
            "/api/incidents/bulk",
            "/api/incidents/bulk",
            Some(json!({ "ids": [my_inc], "update": { "status": "in_progress" } })),
            [200, 200, 403],
        ),
        get("/api/filters", "/api/filters".into(), [200, 200, 200]),
        case(
            Method::POST,
            "/api/filters",
            "/api/filters",
            fbody(w.own),
            [201, 201, 403],
        ),
        case(
            Method::POST,
            "/api/filters",
            "/api/filters",
            fbody(w.other),
            [201, 422, 403],
        ),
        get(
            "/api/filters/{id}",
            format!("/api/filters/{my_f}"),
            [200, 200, 200],
        ),
        get(
            "/api/filters/{id}",
            format!("/api/filters/{their_f}"),
            [200, 404, 404],
        ),
        case(
            Method::PUT,
            "/api/filters/{id}",
            format!("/api/filters/{my_f}"),
            fbody(w.own),
            [200, 200, 403],
        ),
        case(
            Method::PUT,
            "/api/filters/{id}",
            format!("/api/filters/{their_f}"),
            fbody(w.other),
            [200, 404, 403],
        ),
        case(
            Method::POST,
            "/api/filters/{id}/reset",
            format!("/api/filters/{my_f}/reset"),
            None,
            [200, 200, 403],
        ),
        case(
            Method::POST,
            "/api/filters/{id}/reset",
            format!("/api/filters/{their_f}/reset"),
            None,
            [200, 404, 403],
        ),
        case(
            Method::DELETE,
            "/api/filters/{id}",
            format!("/api/filters/{their_f}"),
            None,
            [204, 404, 403],
        ),
        case(
            Method::DELETE,
            "/api/filters/{id}",
            format!("/api/filters/{victim_f}"),
            None,
            [204, 204, 403],
        ),
    ]
}
