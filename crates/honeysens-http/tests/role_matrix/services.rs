//! Matrix cases of the services endpoints.

use crate::{Body, Case, ROLES, World, case};
use honeysens_core::ids::{DivisionId, SensorId, ServiceId, ServiceRevisionId};
use honeysens_core::model::{
    Architecture, SensorSpec, ServiceAssignment, ServiceRevisionSpec, ServiceSpec,
};
use honeysens_core::package::{ImageSpec, PackageBuilder, PackageManifest, RootfsFile};
use reqwest::Method;
use serde_json::json;

async fn service(w: &World, name: &str) -> ServiceId {
    w.srv
        .store
        .create_service(&ServiceSpec {
            name: name.into(),
            repository: format!("honeysens/{name}"),
            description: String::new(),
        })
        .await
        .unwrap()
        .id
}

async fn revision(w: &World, service_id: ServiceId, label: &str) -> ServiceRevisionId {
    w.srv
        .store
        .add_service_revision(&ServiceRevisionSpec {
            service_id,
            revision: label.into(),
            architecture: Architecture::Amd64,
            description: String::new(),
            port_assignment: Default::default(),
            catch_all: false,
            raw_network_access: false,
            image_digest: format!("sha256:{}", "ab".repeat(32)),
        })
        .await
        .unwrap()
        .id
}

async fn sensor(w: &World, name: &str, division: DivisionId) -> SensorId {
    w.srv
        .store
        .create_sensor(&SensorSpec::new(name, division))
        .await
        .unwrap()
        .id
}

async fn assign(w: &World, sensor_id: SensorId, service_id: ServiceId) {
    w.srv
        .store
        .assign_service(&ServiceAssignment {
            sensor_id,
            service_id,
            revision: None,
        })
        .await
        .unwrap();
}

pub async fn cases(w: &World, i: usize, via: &str) -> Vec<Case> {
    let tag = format!("{via}-{}", ROLES[i]);
    // Fresh fixtures per call, so one role's successful change does not alter the next answer.
    let svc = service(w, &format!("svc-{tag}")).await;
    let rev = revision(w, svc, "1.0").await;
    let spare_rev = revision(w, svc, "0.9").await;
    let victim = service(w, &format!("victim-{tag}")).await;
    let own_sensor = sensor(w, &format!("svc-own-{tag}"), w.own).await;
    let other_sensor = sensor(w, &format!("svc-other-{tag}"), w.other).await;
    let own_assigned = sensor(w, &format!("svc-own-assigned-{tag}"), w.own).await;
    let other_assigned = sensor(w, &format!("svc-other-assigned-{tag}"), w.other).await;
    assign(w, own_assigned, svc).await;
    assign(w, other_assigned, svc).await;
    assign(w, own_sensor, victim).await;
    let other_svc = service(w, &format!("other-{tag}")).await;
    let other_rev = revision(w, other_svc, "2.0").await;

    let assign_path = |s: SensorId| format!("/api/sensors/{s}/services/{svc}");
    let tpl = "/api/sensors/{id}/services/{service_id}";
    let package = PackageBuilder::new(
        PackageManifest {
            name: format!("pkg-{tag}"),
            repository: format!("honeysens/pkg-{tag}"),
            description: String::new(),
            architectures: vec![Architecture::Amd64],
            revision: "1.0".into(),
            revision_description: String::new(),
            port_assignment: Default::default(),
            catch_all: false,
            raw_network_access: false,
        },
        vec![ImageSpec {
            architecture: Architecture::Amd64,
            files: vec![RootfsFile {
                path: "bin/x".into(),
                mode: 0o755,
                contents: b"x".to_vec(),
            }],
            entrypoint: vec!["/bin/x".into()],
            cmd: vec![],
            env: vec![],
            exposed_ports: vec![],
        }],
    )
    .write(Vec::new())
    .unwrap();

    vec![
        Case {
            method: Method::POST,
            template: "/api/services/packages",
            path: "/api/services/packages".into(),
            body: Body::Raw(package, "application/x-tar".into()),
            expect: [201, 403, 403],
        },
        case(
            Method::GET,
            "/api/services",
            "/api/services",
            None,
            [200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/services/{id}",
            format!("/api/services/{svc}"),
            None,
            [200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/services/{id}",
            "/api/services/424242",
            None,
            [404, 404, 404],
        ),
        case(
            Method::GET,
            "/api/services/{id}/revisions",
            format!("/api/services/{svc}/revisions"),
            None,
            [200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/services/{id}/revisions",
            "/api/services/424242/revisions",
            None,
            [404, 404, 404],
        ),
        // A revision of another service is not found under this one.
        case(
            Method::DELETE,
            "/api/services/{id}/revisions/{revision_id}",
            format!("/api/services/{svc}/revisions/{other_rev}"),
            None,
            [404, 403, 403],
        ),
        case(
            Method::DELETE,
            "/api/services/{id}/revisions/{revision_id}",
            format!("/api/services/{svc}/revisions/{spare_rev}"),
            None,
            [204, 403, 403],
        ),
        case(
            Method::GET,
            "/api/assignments",
            "/api/assignments",
            None,
            [200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/assignments",
            format!("/api/assignments?sensor_id={own_assigned}"),
            None,
            [200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/assignments",
            format!("/api/assignments?sensor_id={other_assigned}"),
            None,
            [200, 404, 404],
        ),
        case(
            Method::PUT,
            tpl,
            assign_path(own_sensor),
            Some(json!({ "revision": null })),
            [200, 200, 403],
        ),
        case(
            Method::PUT,
            tpl,
            assign_path(own_sensor),
            Some(json!({ "revision": "1.0" })),
            [200, 200, 403],
        ),
        case(
            Method::PUT,
            tpl,
            assign_path(own_sensor),
            Some(json!({ "revision": "9.9" })),
            [422, 422, 403],
        ),
        case(
            Method::PUT,
            tpl,
            assign_path(other_sensor),
            Some(json!({ "revision": null })),
            [200, 404, 403],
        ),
        case(
            Method::PUT,
            tpl,
            "/api/sensors/424242/services/1",
            Some(json!({ "revision": null })),
            [404, 404, 403],
        ),
        case(
            Method::DELETE,
            tpl,
            assign_path(own_assigned),
            None,
            [204, 204, 403],
        ),
        case(
            Method::DELETE,
            tpl,
            assign_path(other_assigned),
            None,
            [204, 404, 403],
        ),
        // Already unassigned by the case above (or never assigned).
        case(
            Method::DELETE,
            tpl,
            assign_path(own_assigned),
            None,
            [404, 404, 403],
        ),
        // Pinned: the last revision labelled 1.0 cannot go while the own sensor pins it.
        case(
            Method::DELETE,
            "/api/services/{id}/revisions/{revision_id}",
            format!("/api/services/{svc}/revisions/{rev}"),
            None,
            [409, 403, 403],
        ),
        case(
            Method::DELETE,
            "/api/services/{id}",
            format!("/api/services/{victim}"),
            None,
            [204, 403, 403],
        ),
        case(
            Method::DELETE,
            "/api/services/{id}",
            "/api/services/424242",
            None,
            [404, 403, 403],
        ),
    ]
}
