//! Matrix cases of the contact endpoints.

use crate::{Case, ROLES, World, case};
use honeysens_core::ids::{ContactId, DivisionId};
use honeysens_core::model::{ContactSpec, ContactTarget, NotifyOn};
use reqwest::Method;
use serde_json::json;

async fn contact(w: &World, division: DivisionId) -> ContactId {
    let spec = ContactSpec {
        division_id: division,
        target: ContactTarget::Email {
            address: "soc@example.org".into(),
        },
        notify: NotifyOn::default(),
    };
    w.srv.store.create_contact(&spec).await.unwrap().id
}

pub async fn cases(w: &World, i: usize, _via: &str) -> Vec<Case> {
    let _ = ROLES[i];
    let mine = contact(w, w.own).await;
    let theirs = contact(w, w.other).await;
    let victim = contact(w, w.own).await;
    let body = |d: DivisionId| {
        Some(json!({
            "division_id": d,
            "target": { "kind": "email", "address": "cert@example.org" },
            "notify": { "critical_events": true, "sensor_timeouts": true }
        }))
    };
    vec![
        case(
            Method::GET,
            "/api/contacts",
            "/api/contacts",
            None,
            [200, 200, 200],
        ),
        case(
            Method::POST,
            "/api/contacts",
            "/api/contacts",
            body(w.own),
            [201, 201, 403],
        ),
        case(
            Method::POST,
            "/api/contacts",
            "/api/contacts",
            body(w.other),
            [201, 422, 403],
        ),
        case(
            Method::GET,
            "/api/contacts/{id}",
            format!("/api/contacts/{mine}"),
            None,
            [200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/contacts/{id}",
            format!("/api/contacts/{theirs}"),
            None,
            [200, 404, 404],
        ),
        case(
            Method::PUT,
            "/api/contacts/{id}",
            format!("/api/contacts/{mine}"),
            body(w.own),
            [200, 200, 403],
        ),
        case(
            Method::PUT,
            "/api/contacts/{id}",
            format!("/api/contacts/{theirs}"),
            body(w.other),
            [200, 404, 403],
        ),
        case(
            Method::DELETE,
            "/api/contacts/{id}",
            format!("/api/contacts/{theirs}"),
            None,
            [204, 404, 403],
        ),
        case(
            Method::DELETE,
            "/api/contacts/{id}",
            format!("/api/contacts/{victim}"),
            None,
            [204, 204, 403],
        ),
    ]
}
