//! The management API over real TLS on loopback: login, sessions, CSRF, throttling, API
//! tokens, password change. (The role × endpoint × division matrix is tests/role_matrix.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::TestServer;
use honeysens_core::ids::{DivisionId, UserId};
use honeysens_core::model::{DivisionSpec, NewApiToken, Role, TokenScope, UserSpec};
use honeysens_core::password::hash_password;
use honeysens_core::time::now;
use reqwest::Method;
use serde_json::{Value, json};
use std::net::IpAddr;

const PW: &str = "correct horse battery";

/// How a request authenticates.
#[derive(Clone, Debug)]
enum Auth {
    None,
    /// Session cookie; `csrf` is sent as `X-CSRF-Token` when present.
    Cookie {
        session: String,
        csrf: Option<String>,
    },
    Token(String),
}

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Resp {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

struct Api {
    url: String,
    http: reqwest::Client,
}

impl Api {
    fn new(srv: &TestServer, local: Option<IpAddr>) -> Api {
        Api {
            url: srv.url.clone(),
            http: srv.raw(local),
        }
    }

    async fn call(&self, method: Method, path: &str, auth: &Auth, body: Option<Value>) -> Resp {
        let mut rb = self.http.request(method, format!("{}{path}", self.url));
        match auth {
            Auth::None => {}
            Auth::Cookie { session, csrf } => {
                rb = rb.header("Cookie", format!("hs_session={session}"));
                if let Some(c) = csrf {
                    rb = rb.header("X-CSRF-Token", c);
                }
            }
            Auth::Token(t) => rb = rb.header("Authorization", format!("Bearer {t}")),
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let res = rb.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn login_raw(&self, user: &str, password: &str) -> Resp {
        self.call(
            Method::POST,
            "/api/auth/login",
            &Auth::None,
            Some(json!({ "username": user, "password": password })),
        )
        .await
    }

    /// Logs in and returns the cookie auth (with CSRF token).
    async fn login(&self, user: &str, password: &str) -> Auth {
        let r = self.login_raw(user, password).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let cookie = r.headers["set-cookie"].to_str().unwrap();
        let session = cookie
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("hs_session=")
            .unwrap()
            .to_owned();
        Auth::Cookie {
            session,
            csrf: Some(r.body["csrf_token"].as_str().unwrap().to_owned()),
        }
    }
}

async fn user(srv: &TestServer, name: &str, role: Role, divisions: Vec<DivisionId>) -> UserId {
    let spec = UserSpec {
        name: name.into(),
        full_name: None,
        email: None,
        role,
        divisions,
    };
    srv.store
        .create_user(&spec, &hash_password(PW).unwrap())
        .await
        .unwrap()
        .id
}

async fn division(srv: &TestServer, name: &str) -> DivisionId {
    srv.store
        .create_division(&DivisionSpec { name: name.into() })
        .await
        .unwrap()
        .id
}

fn without_csrf(a: &Auth) -> Auth {
    match a {
        Auth::Cookie { session, .. } => Auth::Cookie {
            session: session.clone(),
            csrf: None,
        },
        other => other.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_logout_and_cookie_flags() {
    let srv = TestServer::start(&[]).await;
    user(&srv, "alice", Role::Observer, vec![]).await;
    let api = Api::new(&srv, None);

    let r = api
        .call(Method::GET, "/api/users/me", &Auth::None, None)
        .await;
    assert_eq!((r.status, r.code()), (401, "auth.required"));

    let r = api.login_raw("alice", PW).await;
    assert_eq!(r.status, 200);
    let cookie = r.headers["set-cookie"].to_str().unwrap();
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing in {cookie}");
    }
    assert_eq!(r.body["user"]["name"], "alice");
    assert!(r.body["user"].get("password_hash").is_none());
    assert_eq!(r.body["csrf_token"].as_str().unwrap().len(), 43);
    let auth = api.login("alice", PW).await;

    let r = api.call(Method::GET, "/api/users/me", &auth, None).await;
    assert_eq!((r.status, r.body["name"].as_str()), (200, Some("alice")));
    let bogus = Auth::Cookie {
        session: "not-a-session".into(),
        csrf: None,
    };
    let r = api.call(Method::GET, "/api/users/me", &bogus, None).await;
    assert_eq!((r.status, r.code()), (401, "auth.required"));

    // Logout is an unsafe request: it needs the CSRF token too.
    let r = api
        .call(Method::POST, "/api/auth/logout", &without_csrf(&auth), None)
        .await;
    assert_eq!((r.status, r.code()), (403, "auth.csrf"));
    let r = api
        .call(Method::POST, "/api/auth/logout", &auth, None)
        .await;
    assert_eq!(r.status, 204);
    assert!(
        r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let r = api.call(Method::GET, "/api/users/me", &auth, None).await;
    assert_eq!((r.status, r.code()), (401, "auth.required"));

    // Wrong password and unknown user look the same.
    let r = api.login_raw("alice", "wrong password").await;
    assert_eq!((r.status, r.code()), (401, "auth.invalid_credentials"));
    let r = api.login_raw("nobody", PW).await;
    assert_eq!((r.status, r.code()), (401, "auth.invalid_credentials"));
    let r = api
        .call(
            Method::POST,
            "/api/auth/login",
            &Auth::None,
            Some(json!({ "username": 1 })),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "request.malformed"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_per_user_and_address() {
    let srv = TestServer::start(&[]).await;
    user(&srv, "alice", Role::Observer, vec![]).await;
    let api = Api::new(&srv, None);
    for _ in 0..5 {
        let r = api.login_raw("alice", "wrong password").await;
        assert_eq!((r.status, r.code()), (401, "auth.invalid_credentials"));
    }
    // Even the right password is refused now.
    let r = api.login_raw("alice", PW).await;
    assert_eq!((r.status, r.code()), (429, "auth.throttled"));
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    // Another address is not affected.
    let other = Api::new(&srv, Some("127.0.0.2".parse().unwrap()));
    other.login("alice", PW).await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csrf_is_required_for_cookie_writes_but_not_for_tokens() {
    let srv = TestServer::start(&[]).await;
    user(&srv, "root", Role::Admin, vec![]).await;
    let api = Api::new(&srv, None);
    let auth = api.login("root", PW).await;
    let body = || Some(json!({ "name": "lab" }));

    let r = api
        .call(Method::POST, "/api/divisions", &without_csrf(&auth), body())
        .await;
    assert_eq!((r.status, r.code()), (403, "auth.csrf"));
    let Auth::Cookie { session, .. } = &auth else {
        unreachable!()
    };
    let wrong = Auth::Cookie {
        session: session.clone(),
        csrf: Some("x".repeat(43)),
    };
    let r = api
        .call(Method::POST, "/api/divisions", &wrong, body())
        .await;
    assert_eq!((r.status, r.code()), (403, "auth.csrf"));
    // Reads need no CSRF token.
    let r = api
        .call(Method::GET, "/api/divisions", &without_csrf(&auth), None)
        .await;
    assert_eq!(r.status, 200);
    let r = api
        .call(Method::POST, "/api/divisions", &auth, body())
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    let r = api
        .call(
            Method::POST,
            "/api/tokens",
            &auth,
            Some(json!({ "name": "ci", "scope": "admin" })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let token = r.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("hst_"));
    let r = api
        .call(
            Method::POST,
            "/api/divisions",
            &Auth::Token(token),
            Some(json!({ "name": "lab 2" })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    // Validation and parse errors keep the API's error format.
    let r = api
        .call(
            Method::POST,
            "/api/divisions",
            &auth,
            Some(json!({ "name": "" })),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "validation.failed"));
    assert_eq!(r.body["error"]["fields"][0]["field"], "name");
    let r = api
        .call(
            Method::POST,
            "/api/divisions",
            &auth,
            Some(json!({ "name": "lab" })),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "division.conflict"));

    // Every change is in the audit log, newest first.
    let r = api.call(Method::GET, "/api/audit", &auth, None).await;
    assert_eq!(r.status, 200);
    let actions: Vec<&str> = r
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["division.create", "token.create", "division.create"]
    );
    assert_eq!(r.body[0]["actor"], "root");
    let r = api
        .call(Method::GET, "/api/audit?limit=1", &auth, None)
        .await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    let r = api
        .call(Method::GET, "/api/audit?limit=0", &auth, None)
        .await;
    assert_eq!((r.status, r.code()), (422, "validation.failed"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_scope_caps_the_role_and_revoked_or_expired_tokens_are_refused() {
    let srv = TestServer::start(&[]).await;
    let root = user(&srv, "root", Role::Admin, vec![]).await;
    user(&srv, "mgr", Role::Manager, vec![]).await;
    let api = Api::new(&srv, None);
    let auth = api.login("root", PW).await;

    let r = api
        .call(
            Method::POST,
            "/api/tokens",
            &auth,
            Some(json!({ "name": "reader", "scope": "read", "expires_in_days": 30 })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let read = Auth::Token(r.body["token"].as_str().unwrap().to_owned());
    let read_id = r.body["api_token"]["id"].as_i64().unwrap();

    // A read token of an admin reads but cannot write.
    let r = api.call(Method::GET, "/api/users", &read, None).await;
    assert_eq!((r.status, r.code()), (403, "auth.forbidden"));
    // Visibility follows the user: a read token of an admin sees every division.
    division(&srv, "somewhere").await;
    let r = api.call(Method::GET, "/api/divisions", &read, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let r = api
        .call(
            Method::POST,
            "/api/divisions",
            &read,
            Some(json!({ "name": "x" })),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "auth.forbidden"));
    // Nor mint a stronger token.
    let r = api
        .call(
            Method::POST,
            "/api/tokens",
            &read,
            Some(json!({ "name": "escalate", "scope": "admin" })),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "auth.forbidden"));
    let r = api
        .call(
            Method::POST,
            "/api/tokens",
            &auth,
            Some(json!({ "name": "bad", "scope": "read", "expires_in_days": 0 })),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "validation.failed"));

    // A manager cannot ask for an admin-scoped token.
    let mgr = api.login("mgr", PW).await;
    let r = api
        .call(
            Method::POST,
            "/api/tokens",
            &mgr,
            Some(json!({ "name": "x", "scope": "admin" })),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "auth.forbidden"));
    // And cannot see or revoke the admin's tokens.
    let r = api.call(Method::GET, "/api/tokens", &mgr, None).await;
    assert_eq!(r.body.as_array().unwrap().len(), 0);
    let r = api
        .call(
            Method::DELETE,
            &format!("/api/tokens/{read_id}"),
            &mgr,
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "api_token.not_found"));

    // Listing never shows secrets.
    let r = api.call(Method::GET, "/api/tokens", &auth, None).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    assert!(r.body[0].get("token").is_none());
    assert!(r.body[0].get("token_hash").is_none());

    let r = api
        .call(
            Method::DELETE,
            &format!("/api/tokens/{read_id}"),
            &auth,
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r = api.call(Method::GET, "/api/divisions", &read, None).await;
    assert_eq!((r.status, r.code()), (401, "auth.token_revoked"));

    // Expired (stored directly with a past expiry).
    let secret = format!("hst_{}", "e".repeat(43));
    srv.store
        .create_api_token(&NewApiToken {
            user_id: root,
            name: "old".into(),
            token_hash: honeysens_http::mgmt::principal::hash_secret(&secret),
            scope: TokenScope::Admin,
            expires_at: Some(now() - chrono::Duration::seconds(1)),
        })
        .await
        .unwrap();
    let r = api
        .call(Method::GET, "/api/divisions", &Auth::Token(secret), None)
        .await;
    assert_eq!((r.status, r.code()), (401, "auth.token_expired"));
    let r = api
        .call(
            Method::GET,
            "/api/divisions",
            &Auth::Token("hst_unknown".into()),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "auth.invalid_token"));
    let r = api
        .call(
            Method::GET,
            "/api/divisions",
            &Auth::Token("garbage".into()),
            None,
        )
        .await;
    assert_eq!((r.status, r.code()), (401, "auth.invalid_token"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_change_ends_other_sessions_and_clears_must_change() {
    let srv = TestServer::start(&[]).await;
    user(&srv, "root", Role::Admin, vec![]).await;
    let api = Api::new(&srv, None);
    let s1 = api.login("root", PW).await;
    let s2 = api.login("root", PW).await;

    let change = |current: &str, new: &str| Some(json!({ "current": current, "new": new }));
    let r = api
        .call(
            Method::POST,
            "/api/auth/password",
            &s1,
            change("wrong!!!!", "another good one"),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "auth.wrong_password"));
    let r = api
        .call(Method::POST, "/api/auth/password", &s1, change(PW, "short"))
        .await;
    assert_eq!((r.status, r.code()), (422, "validation.failed"));
    assert_eq!(r.body["error"]["fields"][0]["field"], "new");
    let r = api
        .call(
            Method::POST,
            "/api/auth/password",
            &s1,
            change(PW, "another good one"),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = api.call(Method::GET, "/api/users/me", &s2, None).await;
    assert_eq!((r.status, r.code()), (401, "auth.required"));
    let r = api.call(Method::GET, "/api/users/me", &s1, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(api.login_raw("root", PW).await.status, 401);
    let s1 = api.login("root", "another good one").await;

    // An account created by an admin must change the issued password before anything else.
    let r = api
        .call(
            Method::POST,
            "/api/users",
            &s1,
            Some(json!({ "name": "newbie", "role": "observer" })),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["user"]["must_change_password"], true);
    let issued = r.body["password"].as_str().unwrap().to_owned();
    let newbie = api.login("newbie", &issued).await;
    let r = api.call(Method::GET, "/api/divisions", &newbie, None).await;
    assert_eq!((r.status, r.code()), (403, "auth.password_change_required"));
    let r = api.call(Method::GET, "/api/users/me", &newbie, None).await;
    assert_eq!(r.status, 200);
    let r = api
        .call(
            Method::POST,
            "/api/auth/password",
            &newbie,
            change(&issued, "my own secret"),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = api.call(Method::GET, "/api/divisions", &newbie, None).await;
    assert_eq!(r.status, 200);
    let r = api.call(Method::GET, "/api/users/me", &newbie, None).await;
    assert_eq!(r.body["must_change_password"], false);

    // Tokens cannot change passwords.
    let r = api
        .call(
            Method::POST,
            "/api/tokens",
            &s1,
            Some(json!({ "name": "t", "scope": "admin" })),
        )
        .await;
    let token = Auth::Token(r.body["token"].as_str().unwrap().to_owned());
    let r = api
        .call(
            Method::POST,
            "/api/auth/password",
            &token,
            change("another good one", "x".repeat(12).as_str()),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "auth.session_required"));
    srv.stop().await;
}
