//! The role × endpoint × division matrix: every management endpoint called by an admin, a
//! manager and an observer (through a session and through an API token of the strongest
//! scope each may hold), including objects of a division the caller does not belong to.
//! A final check proves that every operation of the OpenAPI document was exercised.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "../common/mod.rs"]
mod common;

mod contacts;
mod directory;
mod events;
mod platforms;
mod sensors;
mod services;
mod settings;

use common::TestServer;
use honeysens_core::ids::{DivisionId, UserId};
use honeysens_core::model::Role;
use honeysens_http::mgmt::access::CreateToken;
use honeysens_http::mgmt_client::ManagementClient;
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeSet;

/// Everyone and everything the cases refer to.
pub struct World {
    pub srv: TestServer,
    /// The division the manager and observer belong to.
    pub own: DivisionId,
    /// A division they do not belong to.
    pub other: DivisionId,
    pub admin: UserId,
}

/// A request body.
pub enum Body {
    None,
    Json(Value),
    /// Raw bytes with their content type (uploads).
    Raw(Vec<u8>, String),
}

/// One request and the expected status per role (admin, manager, observer).
pub struct Case {
    pub method: Method,
    /// The OpenAPI path template, e.g. `/api/sensors/{id}`.
    pub template: &'static str,
    pub path: String,
    pub body: Body,
    pub expect: [u16; 3],
}

pub fn case(
    method: Method,
    template: &'static str,
    path: impl Into<String>,
    body: Option<Value>,
    expect: [u16; 3],
) -> Case {
    Case {
        method,
        template,
        path: path.into(),
        body: body.map_or(Body::None, Body::Json),
        expect,
    }
}

pub const ROLES: [&str; 3] = ["admin", "manager", "observer"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_matrix() {
    let srv = TestServer::start(&[]).await;
    let own = srv.division("own").await;
    let other = srv.division("other").await;
    let admin = srv.user("admin", Role::Admin, vec![]).await;
    srv.user("manager", Role::Manager, vec![own]).await;
    srv.user("observer", Role::Observer, vec![own]).await;
    let w = World {
        srv,
        own,
        other,
        admin,
    };
    let mut sessions = Vec::new();
    for r in ROLES {
        sessions.push(w.srv.login(r).await);
    }
    let mut tokens = Vec::new();
    for (i, scope) in ["admin", "manager", "read"].iter().enumerate() {
        let t = sessions[i]
            .create_token(
                &serde_json::from_value::<CreateToken>(
                    serde_json::json!({ "name": "matrix", "scope": scope }),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        tokens.push(w.srv.client().with_token(t.token));
    }

    let mut covered = BTreeSet::new();
    for (via, clients) in [("session", &sessions), ("token", &tokens)] {
        for (i, role) in ROLES.iter().enumerate() {
            let mut cases = Vec::new();
            cases.extend(directory::cases(&w, i, via).await);
            cases.extend(contacts::cases(&w, i, via).await);
            cases.extend(sensors::cases(&w, i, via).await);
            cases.extend(platforms::cases(&w, i, via).await);
            cases.extend(services::cases(&w, i, via).await);
            cases.extend(settings::cases(&w, i, via).await);
            cases.extend(events::cases(&w, i, via).await);
            for c in cases {
                let body = match c.body {
                    Body::None => None,
                    Body::Json(v) => Some((serde_json::to_vec(&v).unwrap(), "application/json")),
                    Body::Raw(ref b, ref t) => Some((b.clone(), t.as_str())),
                };
                let r = run(&clients[i], c.method.clone(), &c.path, body).await;
                assert_eq!(
                    r.0, c.expect[i],
                    "{via} {role} {} {} -> {} {}",
                    c.method, c.path, r.0, r.1
                );
                if r.0 == 403 {
                    assert_eq!(r.1["error"]["code"], "auth.forbidden");
                }
                covered.insert((c.method.as_str().to_ascii_lowercase(), c.template));
            }
            directory::after(&w, i, &clients[i]).await;
        }
    }

    // Every documented operation is in the matrix (login is anonymous by design; logout and
    // password change are exercised in tests/management.rs because they end sessions).
    let doc = serde_json::to_value(honeysens_http::mgmt::openapi()).unwrap();
    let mut missing = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let exempt = matches!(
                path.as_str(),
                "/api/auth/login" | "/api/auth/logout" | "/api/auth/password"
            );
            if !exempt && !covered.iter().any(|(m, t)| m == method && t == path) {
                missing.push(format!("{method} {path}"));
            }
        }
    }
    assert!(missing.is_empty(), "not in the role matrix: {missing:?}");
    w.srv.stop().await;
}

async fn run(
    c: &ManagementClient,
    method: Method,
    path: &str,
    body: Option<(Vec<u8>, &str)>,
) -> (u16, Value) {
    let r = c.raw(method, path, body).await.unwrap();
    let v = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&r.body).unwrap_or(Value::Null)
    };
    (r.status, v)
}
