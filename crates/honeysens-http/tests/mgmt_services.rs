//! Services, service revisions and the sensor × service assignment matrix through the typed
//! management client. (Per-role status codes of every endpoint are in tests/role_matrix.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::TestServer;
use honeysens_core::ids::{DivisionId, SensorId, ServiceId, ServiceRevisionId};
use honeysens_core::model::{
    Architecture, Role, SensorSpec, ServiceAssignment, ServiceRevisionSpec, ServiceSpec,
};
use honeysens_http::client::ClientError;
use honeysens_http::mgmt::directory::AuditQuery;
use honeysens_http::mgmt::page::PageQuery;
use honeysens_http::mgmt::services::AssignmentQuery;
use honeysens_http::mgmt_client::ManagementClient;
use reqwest::Method;

/// Status and code of a failed call.
fn err<T: std::fmt::Debug>(r: Result<T, ClientError>) -> (u16, String) {
    match r.unwrap_err() {
        ClientError::Api { status, code, .. } => (status, code),
        other => panic!("not an API error: {other:?}"),
    }
}

async fn service(srv: &TestServer, name: &str) -> ServiceId {
    srv.store
        .create_service(&ServiceSpec {
            name: name.into(),
            repository: format!("honeysens/{name}"),
            description: format!("the {name} honeypot"),
        })
        .await
        .unwrap()
        .id
}

async fn revision(
    srv: &TestServer,
    service_id: ServiceId,
    label: &str,
    architecture: Architecture,
) -> ServiceRevisionId {
    srv.store
        .add_service_revision(&ServiceRevisionSpec {
            service_id,
            revision: label.into(),
            architecture,
            description: String::new(),
            port_assignment: [("2222/tcp".to_owned(), 22)].into_iter().collect(),
            catch_all: false,
            raw_network_access: false,
            image_digest: format!("sha256:{}", "0f".repeat(32)),
        })
        .await
        .unwrap()
        .id
}

async fn sensor(srv: &TestServer, name: &str, division: DivisionId) -> SensorId {
    srv.store
        .create_sensor(&SensorSpec::new(name, division))
        .await
        .unwrap()
        .id
}

struct Fixture {
    srv: TestServer,
    admin: ManagementClient,
    manager: ManagementClient,
    observer: ManagementClient,
    own_sensor: SensorId,
    other_sensor: SensorId,
    ssh: ServiceId,
    recon: ServiceId,
}

async fn fixture() -> Fixture {
    let srv = TestServer::start(&[]).await;
    let own = srv.division("own").await;
    let other = srv.division("other").await;
    srv.user("admin", Role::Admin, vec![]).await;
    srv.user("manager", Role::Manager, vec![own]).await;
    srv.user("observer", Role::Observer, vec![own]).await;
    let own_sensor = sensor(&srv, "own-1", own).await;
    let other_sensor = sensor(&srv, "other-1", other).await;
    let ssh = service(&srv, "ssh").await;
    let recon = service(&srv, "recon").await;
    Fixture {
        admin: srv.login("admin").await,
        manager: srv.login("manager").await,
        observer: srv.login("observer").await,
        srv,
        own_sensor,
        other_sensor,
        ssh,
        recon,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_get_services_and_revisions() {
    let f = fixture().await;
    let r1 = revision(&f.srv, f.ssh, "1.0", Architecture::Amd64).await;
    let r2 = revision(&f.srv, f.ssh, "1.1", Architecture::Amd64).await;

    for c in [&f.admin, &f.manager, &f.observer] {
        let page = c.list_services(&PageQuery::default()).await.unwrap();
        let names: Vec<_> = page.items.iter().map(|s| s.spec.name.as_str()).collect();
        // Pages are ordered by id.
        assert_eq!(names, ["ssh", "recon"]);
        assert_eq!(page.next, None);
        let s = c.get_service(f.ssh).await.unwrap();
        assert_eq!(s.spec.repository, "honeysens/ssh");
        let revs = c.list_service_revisions(f.ssh).await.unwrap();
        let ids: Vec<_> = revs.iter().map(|r| r.id).collect();
        assert_eq!(ids, [r2, r1], "newest first");
        assert_eq!(revs[0].spec.port_assignment["2222/tcp"], 22);
    }

    let page = f
        .observer
        .list_services(&PageQuery {
            limit: Some(1),
            after: None,
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.next, Some(f.ssh.0));

    assert_eq!(
        err(f.admin.get_service(ServiceId(424242)).await),
        (404, "service.not_found".into())
    );
    assert_eq!(
        err(f.admin.list_service_revisions(ServiceId(424242)).await),
        (404, "service.not_found".into())
    );
    let bad_limit = f
        .admin
        .list_services(&PageQuery {
            limit: Some(0),
            after: None,
        })
        .await;
    assert_eq!(err(bad_limit), (422, "validation.failed".into()));
    let r = f
        .admin
        .raw(Method::GET, "/api/services/not-a-number", None)
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    f.srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_pin_and_unassign() {
    let f = fixture().await;
    revision(&f.srv, f.ssh, "1.0", Architecture::Amd64).await;
    revision(&f.srv, f.ssh, "1.0", Architecture::Arm64).await;

    // Unpinned, then pinned (re-assigning changes the pin).
    let a = f
        .manager
        .assign_service(f.own_sensor, f.ssh, None)
        .await
        .unwrap();
    assert_eq!(a.revision, None);
    let a = f
        .manager
        .assign_service(f.own_sensor, f.ssh, Some("1.0"))
        .await
        .unwrap();
    assert_eq!(
        a,
        ServiceAssignment {
            sensor_id: f.own_sensor,
            service_id: f.ssh,
            revision: Some("1.0".into()),
        }
    );
    let stored = f
        .srv
        .store
        .list_assignments(Some(f.own_sensor))
        .await
        .unwrap();
    assert_eq!(stored, std::slice::from_ref(&a));

    // A pin must name a revision of that service.
    let e = f
        .manager
        .assign_service(f.own_sensor, f.recon, Some("1.0"))
        .await
        .unwrap_err();
    match e {
        ClientError::Api {
            status,
            code,
            fields,
            ..
        } => {
            assert_eq!((status, code.as_str()), (422, "validation.failed"));
            assert_eq!(fields[0].field, "revision");
            assert_eq!(fields[0].code, "unknown_revision");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err(f
            .manager
            .assign_service(f.own_sensor, ServiceId(424242), None)
            .await),
        (404, "service.not_found".into())
    );
    assert_eq!(
        err(f
            .manager
            .assign_service(SensorId(424242), f.ssh, None)
            .await),
        (404, "sensor.not_found".into())
    );
    // Another division's sensor looks exactly like a missing one to a manager.
    assert_eq!(
        err(f.manager.assign_service(f.other_sensor, f.ssh, None).await),
        (404, "sensor.not_found".into())
    );
    assert_eq!(
        err(f.manager.unassign_service(f.other_sensor, f.ssh).await),
        (404, "sensor.not_found".into())
    );
    // Observers may not change anything, not even on their own division.
    assert_eq!(
        err(f.observer.assign_service(f.own_sensor, f.recon, None).await),
        (403, "auth.forbidden".into())
    );
    assert_eq!(
        err(f.observer.unassign_service(f.own_sensor, f.ssh).await),
        (403, "auth.forbidden".into())
    );
    // Admins assign anywhere.
    f.admin
        .assign_service(f.other_sensor, f.recon, None)
        .await
        .unwrap();

    f.manager
        .unassign_service(f.own_sensor, f.ssh)
        .await
        .unwrap();
    assert_eq!(
        err(f.manager.unassign_service(f.own_sensor, f.ssh).await),
        (404, "assignment.not_found".into())
    );
    let r = f
        .manager
        .raw(
            Method::PUT,
            &format!("/api/sensors/{}/services/{}", f.own_sensor, f.ssh),
            Some((b"{".to_vec(), "application/json")),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);

    let audit = f.admin.list_audit(&AuditQuery::default()).await.unwrap();
    let actions: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str(), e.target.as_str()))
        .collect();
    let own = format!("sensor:{}", f.own_sensor);
    let other = format!("sensor:{}", f.other_sensor);
    assert!(actions.contains(&("manager", "service.assign", own.as_str())));
    assert!(actions.contains(&("manager", "service.unassign", own.as_str())));
    assert!(actions.contains(&("admin", "service.assign", other.as_str())));
    let pinned = audit
        .iter()
        .find(|e| e.action == "service.assign" && e.detail["revision"] == "1.0")
        .expect("audit of the pin");
    assert_eq!(pinned.detail["service"], "ssh");
    // Refused attempts change nothing and are not audited.
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.action.starts_with("service."))
            .count(),
        4
    );
    f.srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matrix_shows_only_visible_sensors() {
    let f = fixture().await;
    f.admin
        .assign_service(f.own_sensor, f.ssh, None)
        .await
        .unwrap();
    f.admin
        .assign_service(f.other_sensor, f.ssh, None)
        .await
        .unwrap();
    f.admin
        .assign_service(f.other_sensor, f.recon, None)
        .await
        .unwrap();

    let m = f
        .admin
        .list_assignments(&AssignmentQuery::default())
        .await
        .unwrap();
    let sensors: Vec<_> = m.sensors.iter().map(|s| s.id).collect();
    assert_eq!(sensors, [f.own_sensor, f.other_sensor]);
    let services: Vec<_> = m.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(services, ["recon", "ssh"], "by name");
    assert_eq!(m.assignments.len(), 3);

    for c in [&f.manager, &f.observer] {
        let m = c
            .list_assignments(&AssignmentQuery::default())
            .await
            .unwrap();
        assert_eq!(m.sensors.len(), 1);
        assert_eq!(m.sensors[0].id, f.own_sensor);
        assert_eq!(m.sensors[0].name, "own-1");
        // Every service is a column, even one with no visible assignment.
        assert_eq!(m.services.len(), 2);
        assert_eq!(
            m.assignments,
            [ServiceAssignment {
                sensor_id: f.own_sensor,
                service_id: f.ssh,
                revision: None,
            }]
        );
        let one = c
            .list_assignments(&AssignmentQuery {
                sensor_id: Some(f.own_sensor.0),
            })
            .await
            .unwrap();
        assert_eq!(one.sensors.len(), 1);
        assert_eq!(one.assignments.len(), 1);
        assert_eq!(
            err(c
                .list_assignments(&AssignmentQuery {
                    sensor_id: Some(f.other_sensor.0),
                })
                .await),
            (404, "sensor.not_found".into())
        );
    }
    let one = f
        .admin
        .list_assignments(&AssignmentQuery {
            sensor_id: Some(f.other_sensor.0),
        })
        .await
        .unwrap();
    assert_eq!(one.sensors[0].id, f.other_sensor);
    assert_eq!(one.assignments.len(), 2);
    let r = f
        .admin
        .raw(Method::GET, "/api/assignments?sensor_id=x", None)
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    f.srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_revisions_and_services() {
    let f = fixture().await;
    let old = revision(&f.srv, f.ssh, "1.0", Architecture::Amd64).await;
    let new = revision(&f.srv, f.ssh, "1.1", Architecture::Amd64).await;
    let new_arm = revision(&f.srv, f.ssh, "1.1", Architecture::Arm64).await;
    let recon_rev = revision(&f.srv, f.recon, "1.0", Architecture::Amd64).await;
    f.manager
        .assign_service(f.own_sensor, f.ssh, Some("1.1"))
        .await
        .unwrap();
    f.admin
        .assign_service(f.other_sensor, f.ssh, None)
        .await
        .unwrap();
    f.admin
        .assign_service(f.other_sensor, f.recon, None)
        .await
        .unwrap();

    // Only admins; only revisions of the named service.
    assert_eq!(
        err(f.manager.delete_service_revision(f.ssh, old).await),
        (403, "auth.forbidden".into())
    );
    assert_eq!(
        err(f.admin.delete_service_revision(f.ssh, recon_rev).await),
        (404, "service_revision.not_found".into())
    );
    assert_eq!(
        err(f
            .admin
            .delete_service_revision(f.ssh, ServiceRevisionId(424242))
            .await),
        (404, "service_revision.not_found".into())
    );
    f.admin.delete_service_revision(f.ssh, old).await.unwrap();
    // 1.1 is pinned: one of its two architectures may go, the last one may not.
    f.admin
        .delete_service_revision(f.ssh, new_arm)
        .await
        .unwrap();
    assert_eq!(
        err(f.admin.delete_service_revision(f.ssh, new).await),
        (409, "service_revision.conflict".into())
    );
    let left: Vec<_> = f
        .observer
        .list_service_revisions(f.ssh)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, [new]);
    // Unpinned, the last revision can go.
    f.manager
        .assign_service(f.own_sensor, f.ssh, None)
        .await
        .unwrap();
    f.admin.delete_service_revision(f.ssh, new).await.unwrap();

    // Deleting a service takes its assignments along, and only its own.
    assert_eq!(
        err(f.manager.delete_service(f.ssh).await),
        (403, "auth.forbidden".into())
    );
    f.admin.delete_service(f.ssh).await.unwrap();
    assert_eq!(
        err(f.admin.get_service(f.ssh).await),
        (404, "service.not_found".into())
    );
    assert_eq!(
        err(f.admin.delete_service(f.ssh).await),
        (404, "service.not_found".into())
    );
    let m = f
        .admin
        .list_assignments(&AssignmentQuery::default())
        .await
        .unwrap();
    assert_eq!(
        m.assignments,
        [ServiceAssignment {
            sensor_id: f.other_sensor,
            service_id: f.recon,
            revision: None,
        }]
    );
    assert_eq!(m.services.len(), 1);

    let audit = f.admin.list_audit(&AuditQuery::default()).await.unwrap();
    let deleted = audit
        .iter()
        .find(|e| e.action == "service.delete")
        .expect("audit of the service deletion");
    assert_eq!(deleted.target, format!("service:{}", f.ssh));
    assert_eq!(deleted.detail["name"], "ssh");
    assert_eq!(
        deleted.detail["unassigned_sensors"],
        serde_json::json!([f.own_sensor, f.other_sensor])
    );
    let revs: Vec<_> = audit
        .iter()
        .filter(|e| e.action == "service_revision.delete")
        .map(|e| e.target.clone())
        .collect();
    assert_eq!(
        revs,
        [
            format!("service_revision:{new}"),
            format!("service_revision:{new_arm}"),
            format!("service_revision:{old}"),
        ],
        "newest first"
    );
    f.srv.stop().await;
}
