//! Matrix cases of the sensor endpoints.

use crate::{Case, ROLES, World, case};
use honeysens_core::ids::{DivisionId, SensorId};
use honeysens_core::model::SensorSpec;
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

pub async fn cases(w: &World, i: usize, via: &str) -> Vec<Case> {
    let role = ROLES[i];
    let tag = format!("{via}-{role}");
    let mine = sensor(w, &format!("s-own-{tag}"), w.own).await;
    let theirs = sensor(w, &format!("s-other-{tag}"), w.other).await;
    let victim_own = sensor(w, &format!("v-own-{tag}"), w.own).await;
    let victim_other = sensor(w, &format!("v-other-{tag}"), w.other).await;
    let body = |name: &str, d: DivisionId| Some(json!({ "name": name, "division_id": d }));
    vec![
        case(
            Method::GET,
            "/api/sensors",
            "/api/sensors",
            None,
            [200, 200, 200],
        ),
        case(
            Method::POST,
            "/api/sensors",
            "/api/sensors",
            body(&format!("new-own-{tag}"), w.own),
            [201, 201, 403],
        ),
        case(
            Method::POST,
            "/api/sensors",
            "/api/sensors",
            body(&format!("new-other-{tag}"), w.other),
            [201, 422, 403],
        ),
        case(
            Method::GET,
            "/api/sensors/{id}",
            format!("/api/sensors/{mine}"),
            None,
            [200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/sensors/{id}",
            format!("/api/sensors/{theirs}"),
            None,
            [200, 404, 404],
        ),
        case(
            Method::PUT,
            "/api/sensors/{id}",
            format!("/api/sensors/{mine}"),
            body(&format!("s-own-{tag}"), w.own),
            [200, 200, 403],
        ),
        case(
            Method::PUT,
            "/api/sensors/{id}",
            format!("/api/sensors/{theirs}"),
            body(&format!("s-other-{tag}"), w.other),
            [200, 404, 403],
        ),
        // A manager cannot move their sensor into a division they do not manage.
        case(
            Method::PUT,
            "/api/sensors/{id}",
            format!("/api/sensors/{mine}"),
            body(&format!("s-own-{tag}"), w.other),
            [200, 422, 403],
        ),
        case(
            Method::GET,
            "/api/sensors/{id}/config",
            format!("/api/sensors/{mine}/config"),
            None,
            [200, 200, 403],
        ),
        case(
            Method::GET,
            "/api/sensors/{id}/config",
            format!("/api/sensors/{theirs}/config"),
            None,
            [200, 404, 403],
        ),
        case(
            Method::GET,
            "/api/sensors/{id}/status",
            format!("/api/sensors/{mine}/status"),
            None,
            [200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/sensors/{id}/status",
            format!("/api/sensors/{theirs}/status"),
            None,
            [200, 404, 404],
        ),
        case(
            Method::DELETE,
            "/api/sensors/{id}",
            format!("/api/sensors/{victim_other}"),
            None,
            [204, 404, 403],
        ),
        case(
            Method::DELETE,
            "/api/sensors/{id}",
            format!("/api/sensors/{victim_own}"),
            None,
            [204, 204, 403],
        ),
    ]
}
