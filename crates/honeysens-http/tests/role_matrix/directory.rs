//! Matrix cases of divisions, users, tokens and the audit log.

use crate::{Case, ROLES, World, case};
use honeysens_core::model::Role;
use honeysens_http::mgmt_client::ManagementClient;
use reqwest::Method;
use serde_json::json;

pub async fn cases(w: &World, i: usize, via: &str) -> Vec<Case> {
    let (own, other, admin) = (w.own, w.other, w.admin);
    let role = ROLES[i];
    // Fresh targets per role, so one role's successful delete does not change the next answer.
    let victim_div = w.srv.division(&format!("victim-{via}-{role}")).await;
    let victim_user = w
        .srv
        .user(&format!("victim-{via}-{role}"), Role::Observer, vec![])
        .await;
    let user_body = json!({ "name": format!("created-by-{via}-{role}"), "role": "observer", "password": common_pw() });
    vec![
        case(
            Method::GET,
            "/api/divisions",
            "/api/divisions",
            None,
            [200, 200, 200],
        ),
        case(
            Method::POST,
            "/api/divisions",
            "/api/divisions",
            Some(json!({ "name": format!("new-{via}-{role}") })),
            [201, 403, 403],
        ),
        case(
            Method::GET,
            "/api/divisions/{id}",
            format!("/api/divisions/{own}"),
            None,
            [200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/divisions/{id}",
            format!("/api/divisions/{other}"),
            None,
            [200, 404, 404],
        ),
        case(
            Method::GET,
            "/api/divisions/{id}",
            "/api/divisions/424242",
            None,
            [404, 404, 404],
        ),
        case(
            Method::PUT,
            "/api/divisions/{id}",
            format!("/api/divisions/{own}"),
            Some(json!({ "name": "own" })),
            [200, 403, 403],
        ),
        case(
            Method::PUT,
            "/api/divisions/{id}",
            format!("/api/divisions/{other}"),
            Some(json!({ "name": "other" })),
            [200, 403, 403],
        ),
        case(
            Method::DELETE,
            "/api/divisions/{id}",
            format!("/api/divisions/{victim_div}"),
            None,
            [204, 403, 403],
        ),
        case(
            Method::GET,
            "/api/users",
            "/api/users",
            None,
            [200, 403, 403],
        ),
        case(
            Method::POST,
            "/api/users",
            "/api/users",
            Some(user_body),
            [201, 403, 403],
        ),
        case(
            Method::GET,
            "/api/users/me",
            "/api/users/me",
            None,
            [200, 200, 200],
        ),
        case(
            Method::GET,
            "/api/users/{id}",
            format!("/api/users/{admin}"),
            None,
            [200, 403, 403],
        ),
        case(
            Method::PUT,
            "/api/users/{id}",
            format!("/api/users/{victim_user}"),
            Some(
                json!({ "name": format!("victim-{via}-{role}"), "role": "observer", "divisions": [own] }),
            ),
            [200, 403, 403],
        ),
        case(
            Method::DELETE,
            "/api/users/{id}",
            format!("/api/users/{victim_user}"),
            None,
            [204, 403, 403],
        ),
        // Admins cannot lock themselves out.
        case(
            Method::DELETE,
            "/api/users/{id}",
            format!("/api/users/{admin}"),
            None,
            [409, 403, 403],
        ),
        case(
            Method::GET,
            "/api/audit",
            "/api/audit",
            None,
            [200, 403, 403],
        ),
        case(
            Method::GET,
            "/api/tokens",
            "/api/tokens",
            None,
            [200, 200, 200],
        ),
        case(
            Method::POST,
            "/api/tokens",
            "/api/tokens",
            Some(json!({ "name": "mine", "scope": "read" })),
            [201, 201, 201],
        ),
        // Someone else's (or no) token: 404 for everybody but admins of existing tokens.
        case(
            Method::DELETE,
            "/api/tokens/{id}",
            "/api/tokens/999999",
            None,
            [404, 404, 404],
        ),
    ]
}

fn common_pw() -> &'static str {
    crate::common::PW
}

/// Listings are filtered to the caller's divisions.
pub async fn after(_w: &World, i: usize, c: &ManagementClient) {
    let names: Vec<String> = c
        .list_divisions(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|d| d.name)
        .collect();
    if i == 0 {
        assert!(names.iter().any(|n| n == "other"), "{names:?}");
    } else {
        assert_eq!(names, ["own"]);
    }
}
