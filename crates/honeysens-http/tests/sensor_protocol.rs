//! The sensor protocol beyond authentication: the desired state in the poll answer, event
//! uploads with per-event rejection and idempotency, over HTTPS and in-process alike.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::TestServer;
use honeysens_core::ids::{DivisionId, SensorId};
use honeysens_core::model::{
    Architecture, SensorSpec, SensorState, ServiceAssignment, ServiceRevisionSpec, ServiceSpec,
};
use honeysens_core::protocol::{StatusRequest, Transport};
use honeysens_core::time::now;
use honeysens_http::client::{SensorAuth, SensorClient};
use honeysens_http::inprocess::InProcessTransport;
use std::collections::BTreeMap;

fn report() -> StatusRequest {
    StatusRequest {
        timestamp: now() + chrono::Duration::seconds(90),
        state: SensorState::Running,
        addresses: vec![],
        free_memory_mb: 1,
        disk_total_mb: 1,
        disk_used_mb: 0,
        agent_version: "t".into(),
        firmware_version: None,
        services: vec![],
        spool_depth: 0,
        csr: None,
    }
}

fn event(sensor: SensorId, n: u16) -> serde_json::Value {
    serde_json::json!({
        "uid": uuid::Uuid::new_v4(),
        "sensor_id": sensor,
        "timestamp": now(),
        "source_ip": "192.0.2.10",
        "source_port": 50000 + n,
        "dest_port": 22,
        "protocol": "tcp",
        "type_code": "conn.attempt",
        "classification": "connection_attempt",
        "severity": "low",
        "summary": format!("attempt {n}")
    })
}

async fn sensor(srv: &TestServer, division: DivisionId, name: &str) -> (SensorId, SensorClient) {
    let id = srv
        .store
        .create_sensor(&SensorSpec::new(name, division))
        .await
        .unwrap()
        .id;
    let issued = srv.ca.issue_sensor(id, 30).unwrap();
    srv.store.record_certificate(&issued.record).await.unwrap();
    let client = SensorClient::new(
        &srv.url,
        srv.ca.cert_pem(),
        SensorAuth::Certificate {
            cert_pem: issued.cert_pem,
            key_pem: issued.key_pem,
        },
        None,
    )
    .unwrap();
    (id, client)
}

async fn check_transport(t: &dyn Transport, me: SensorId, other: SensorId) {
    let valid: Vec<serde_json::Value> = (0..3).map(|n| event(me, n)).collect();
    let mut invalid_port = event(me, 9);
    invalid_port["dest_port"] = serde_json::json!(70000);
    let mut batch: Vec<Vec<u8>> = valid
        .iter()
        .map(|v| serde_json::to_vec(v).unwrap())
        .collect();
    batch.insert(1, serde_json::to_vec(&invalid_port).unwrap());
    batch.push(serde_json::to_vec(&event(other, 1)).unwrap());
    batch.push(br#"{"summary": "no fields"}"#.to_vec());
    let r = t.upload_events(&batch).await.unwrap();
    // The valid ones are stored; each bad one is rejected alone, with its position.
    assert_eq!(r.accepted.len(), 3);
    let rejected: Vec<(usize, &str)> = r
        .rejected
        .iter()
        .map(|x| (x.index, x.code.as_str()))
        .collect();
    assert_eq!(
        rejected,
        [
            (1, "event.malformed"),
            (4, "event.wrong_sensor"),
            (5, "event.malformed")
        ]
    );
    // A retry after a lost answer stores nothing twice.
    let again = t.upload_events(&batch).await.unwrap();
    assert!(again.accepted.is_empty());
    assert_eq!(again.duplicates.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_reject_bad_events_alone_and_are_idempotent() {
    let srv = TestServer::start(&[]).await;
    let div = srv.division("d").await;
    let (me, https) = sensor(&srv, div, "a").await;
    let (other, _) = sensor(&srv, div, "b").await;
    check_transport(&https, me, other).await;
    let inproc = InProcessTransport::new(srv.state.clone(), other);
    check_transport(&inproc, other, me).await;

    // Too many events at once: refused as a whole, with a stable code.
    let many: Vec<Vec<u8>> = (0..1001)
        .map(|n| serde_json::to_vec(&event(me, n)).unwrap())
        .collect();
    let e = https.upload_events(&many).await.unwrap_err();
    assert!(e.to_string().contains("request.too_large"), "{e}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_classifies_known_type_codes() {
    let srv = TestServer::start(&[]).await;
    let div = srv.division("d").await;
    let (me, https) = sensor(&srv, div, "a").await;
    // A sensor claiming the wrong classification and severity for a known code is corrected;
    // an unknown (third-party) code keeps what the sensor said.
    let mut known = event(me, 1);
    known["type_code"] = "ssh.login.failed".into();
    known["classification"] = "unknown".into();
    known["severity"] = "critical".into();
    let mut foreign = event(me, 2);
    foreign["type_code"] = "acme.widget.poke".into();
    foreign["classification"] = "honeypot_interaction".into();
    foreign["severity"] = "high".into();
    let batch = [known, foreign].map(|v| serde_json::to_vec(&v).unwrap());
    assert_eq!(https.upload_events(&batch).await.unwrap().accepted.len(), 2);
    let page = srv
        .store
        .list_events(
            &honeysens_core::model::EventQuery::default(),
            &honeysens_core::model::PageRequest::first(10),
        )
        .await
        .unwrap();
    let got: BTreeMap<String, (String, String)> = page
        .items
        .iter()
        .map(|e| {
            (
                e.data.type_code.clone(),
                (
                    e.data.classification.to_string(),
                    e.data.severity.to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(
        got["ssh.login.failed"],
        ("honeypot_interaction".into(), "medium".into())
    );
    assert_eq!(
        got["acme.widget.poke"],
        ("honeypot_interaction".into(), "high".into())
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_answer_carries_the_whole_desired_state() {
    let srv = TestServer::start(&[]).await;
    let div = srv.division("d").await;
    let (me, https) = sensor(&srv, div, "a").await;
    let svc = |name: &str| ServiceSpec {
        name: name.into(),
        repository: format!("honeysens/{name}"),
        description: String::new(),
    };
    let ssh = srv.store.create_service(&svc("ssh")).await.unwrap();
    let web = srv.store.create_service(&svc("web")).await.unwrap();
    let rev = |service, revision: &str, architecture| ServiceRevisionSpec {
        service_id: service,
        revision: revision.into(),
        architecture,
        description: String::new(),
        port_assignment: BTreeMap::from([("2222/tcp".to_owned(), 22)]),
        catch_all: false,
        raw_network_access: false,
        image_digest: format!("sha256:{}", "a".repeat(64)),
    };
    for (s, r, a) in [
        (ssh.id, "1.0", Architecture::Amd64),
        (ssh.id, "1.1", Architecture::Amd64),
        (ssh.id, "1.0", Architecture::Arm64),
        (web.id, "2.0", Architecture::Amd64),
        (web.id, "2.1", Architecture::Amd64),
    ] {
        srv.store.add_service_revision(&rev(s, r, a)).await.unwrap();
    }
    srv.store
        .assign_service(&ServiceAssignment {
            sensor_id: me,
            service_id: ssh.id,
            revision: None,
        })
        .await
        .unwrap();
    srv.store
        .assign_service(&ServiceAssignment {
            sensor_id: me,
            service_id: web.id,
            revision: Some("2.0".into()),
        })
        .await
        .unwrap();
    let mut spec = srv.store.get_sensor(me).await.unwrap().spec;
    spec.update_interval = Some(3);
    spec.service_network = Some("10.99.0.0/24".parse().unwrap());
    srv.store.update_sensor(me, &spec).await.unwrap();

    for t in [
        Box::new(https) as Box<dyn Transport>,
        Box::new(InProcessTransport::new(srv.state.clone(), me)),
    ] {
        let answer = t.poll(&report()).await.unwrap();
        // A sensor clock 90 s ahead is reported, not refused.
        assert!(
            (85_000..95_000).contains(&answer.clock_skew_ms),
            "{}",
            answer.clock_skew_ms
        );
        assert_eq!(answer.update_interval, 3);
        let desired = answer.config.unwrap();
        assert_eq!(desired.service_network.to_string(), "10.99.0.0/24");
        let mut got: Vec<(String, String, Architecture)> = desired
            .services
            .iter()
            .map(|s| (s.name.clone(), s.revision.clone(), s.architecture))
            .collect();
        got.sort();
        // Newest per architecture unless pinned.
        assert_eq!(
            got,
            [
                ("ssh".into(), "1.0".into(), Architecture::Arm64),
                ("ssh".into(), "1.1".into(), Architecture::Amd64),
                ("web".into(), "2.0".into(), Architecture::Amd64),
            ]
        );
    }
    srv.stop().await;
}
