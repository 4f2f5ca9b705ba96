//! Sensors, contacts and settings through the typed management client against the real
//! server over TLS: the configuration bundle really lets an agent in, re-downloading it
//! replaces the credentials, status reports show up in the history, secrets never come back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::TestServer;
use honeysens_core::ids::SensorId;
use honeysens_core::model::{
    ContactSpec, ContactTarget, NotifyOn, ProxyConfig, Role, SensorAuthMode, SensorSpec,
    SensorState, Settings,
};
use honeysens_core::protocol::{SensorBundle, SensorCredentials, StatusRequest};
use honeysens_core::time::now;
use honeysens_http::client::{ClientError, Method, SensorAuth, SensorClient};
use honeysens_http::mgmt::sensors::SensorQuery;

fn agent(bundle: &SensorBundle) -> SensorClient {
    let url = format!("https://{}:{}", bundle.server.host, bundle.server.port);
    let auth = SensorAuth::from_credentials(bundle.sensor_id, &bundle.credentials);
    SensorClient::new(&url, &bundle.ca_pem, auth, None).unwrap()
}

fn report(agent_version: &str) -> StatusRequest {
    StatusRequest {
        timestamp: now(),
        state: SensorState::Running,
        addresses: vec!["192.0.2.7/24".into()],
        free_memory_mb: 200,
        disk_total_mb: 4000,
        disk_used_mb: 1000,
        agent_version: agent_version.into(),
        firmware_version: None,
        services: vec![],
        spool_depth: 3,
        csr: None,
    }
}

fn api(e: ClientError) -> (u16, String) {
    match e {
        ClientError::Api { status, code, .. } => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_lets_the_agent_in_and_redownload_replaces_credentials() {
    let srv = TestServer::start(&[]).await;
    let own = srv.division("own").await;
    let other = srv.division("other").await;
    srv.user("admin", Role::Admin, vec![]).await;
    srv.user("manager", Role::Manager, vec![own]).await;
    srv.user("observer", Role::Observer, vec![own]).await;
    let admin = srv.login("admin").await;
    let manager = srv.login("manager").await;
    let observer = srv.login("observer").await;

    let created = manager
        .create_sensor(&SensorSpec::new("lab-1", own))
        .await
        .unwrap();
    let id = created.sensor.id;
    let bundle = created.bundle;
    // The bundle points at the address the operator used and trusts only our CA.
    assert_eq!(bundle.server.host, "127.0.0.1");
    assert_eq!(bundle.server.port, srv.port);
    assert_eq!(bundle.ca_pem, srv.ca.cert_pem());
    assert_eq!(bundle.update_interval, Settings::default().update_interval);
    let first = agent(&bundle);
    assert_eq!(first.whoami().await.unwrap().sensor_id, id);

    // A poll lands in the status history.
    first.send_status(&report("agent-1")).await.unwrap();
    let history = observer.sensor_status(id, None).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].agent_version, "agent-1");
    assert_eq!(
        observer.get_sensor(id).await.unwrap().last_state,
        Some(SensorState::Running)
    );
    assert_eq!(
        api(observer.sensor_status(id, Some(0)).await.unwrap_err()).0,
        422
    );

    // Observers cannot fetch credentials; managers of other divisions do not see the sensor.
    assert_eq!(
        api(observer.sensor_config(id).await.unwrap_err()),
        (403, "auth.forbidden".into())
    );
    let elsewhere = admin
        .create_sensor(&SensorSpec::new("far", other))
        .await
        .unwrap()
        .sensor
        .id;
    assert_eq!(
        api(manager.get_sensor(elsewhere).await.unwrap_err()),
        (404, "sensor.not_found".into())
    );

    // A new bundle replaces the credentials: the old certificate is refused at once.
    let second = manager.sensor_config(id).await.unwrap();
    assert_ne!(second.credentials, bundle.credentials);
    assert_eq!(agent(&second).whoami().await.unwrap().sensor_id, id);
    assert_eq!(api(first.whoami().await.unwrap_err()).0, 401);

    // HMAC sensors get their secret in the bundle; a new bundle replaces it too.
    let hmac = manager
        .create_sensor(&SensorSpec {
            auth: SensorAuthMode::Hmac,
            ..SensorSpec::new("lab-hmac", own)
        })
        .await
        .unwrap();
    assert!(matches!(
        hmac.bundle.credentials,
        SensorCredentials::Hmac { .. }
    ));
    let hmac_agent = agent(&hmac.bundle);
    assert_eq!(hmac_agent.whoami().await.unwrap().sensor_id, hmac.sensor.id);
    let renewed = manager.sensor_config(hmac.sensor.id).await.unwrap();
    assert_eq!(api(hmac_agent.whoami().await.unwrap_err()).0, 401);
    assert_eq!(
        agent(&renewed).whoami().await.unwrap().sensor_id,
        hmac.sensor.id
    );

    // Every credential issue is audited, without the secrets.
    let audit = admin.list_audit(&Default::default()).await.unwrap();
    let issued = audit
        .iter()
        .filter(|e| e.action == "sensor.credentials_issued")
        .count();
    assert_eq!(issued, 2);
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains("PRIVATE KEY"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensor_updates_paging_proxy_secret_and_delete_policy() {
    let srv = TestServer::start(&[]).await;
    let own = srv.division("own").await;
    srv.user("admin", Role::Admin, vec![]).await;
    srv.user("manager", Role::Manager, vec![own]).await;
    let admin = srv.login("admin").await;
    let manager = srv.login("manager").await;

    let mut ids: Vec<SensorId> = Vec::new();
    for n in 0..3 {
        let s = manager
            .create_sensor(&SensorSpec::new(format!("s{n}"), own))
            .await
            .unwrap();
        ids.push(s.sensor.id);
    }
    let page = manager
        .list_sensors(&SensorQuery {
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        ids[..2]
    );
    let rest = manager
        .list_sensors(&SensorQuery {
            limit: Some(2),
            after: page.next,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|s| s.id).collect::<Vec<_>>(),
        ids[2..]
    );
    assert_eq!(rest.next, None);

    // Validation errors name the field.
    let mut bad = SensorSpec::new("s0", own);
    bad.update_interval = Some(90);
    match manager.update_sensor(ids[0], &bad).await.unwrap_err() {
        ClientError::Api { status, fields, .. } => {
            assert_eq!(status, 422);
            assert_eq!(fields[0].field, "update_interval");
        }
        other => panic!("{other:?}"),
    }

    // The proxy password is write-only and kept when an update leaves it out.
    let mut spec = SensorSpec::new("s0", own);
    spec.proxy = Some(ProxyConfig {
        host: "proxy.example.org".into(),
        port: 3128,
        user: Some("sensor".into()),
        password: Some("proxy-secret".into()),
    });
    let shown = manager.update_sensor(ids[0], &spec).await.unwrap();
    assert_eq!(shown.spec.proxy.as_ref().unwrap().password, None);
    spec.proxy.as_mut().unwrap().password = None;
    spec.location = "room 1".into();
    manager.update_sensor(ids[0], &spec).await.unwrap();
    let stored = srv.store.get_sensor(ids[0]).await.unwrap();
    assert_eq!(stored.spec.location, "room 1");
    assert_eq!(
        stored.spec.proxy.unwrap().password.as_deref(),
        Some("proxy-secret")
    );
    // The agent does get it.
    let bundle = manager.sensor_config(ids[0]).await.unwrap();
    assert_eq!(
        bundle.proxy.unwrap().password.as_deref(),
        Some("proxy-secret")
    );

    // Admins may forbid managers to delete sensors.
    let mut settings = admin.get_settings().await.unwrap().settings;
    settings.managers_may_delete_sensors = false;
    admin.put_settings(&settings).await.unwrap();
    assert_eq!(
        api(manager.delete_sensor(ids[1]).await.unwrap_err()),
        (403, "auth.forbidden".into())
    );
    admin.delete_sensor(ids[1]).await.unwrap();
    assert_eq!(api(admin.get_sensor(ids[1]).await.unwrap_err()).0, 404);

    // Wrong method: a JSON 405.
    let r = admin
        .raw(Method::DELETE, "/api/settings", None)
        .await
        .unwrap();
    assert_eq!(r.status, 405);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"]["code"], "route.method_not_allowed");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_scoped_and_settings_keep_the_smtp_password_secret() {
    let srv = TestServer::start(&[]).await;
    let own = srv.division("own").await;
    let other = srv.division("other").await;
    srv.user("admin", Role::Admin, vec![]).await;
    srv.user("manager", Role::Manager, vec![own]).await;
    let outsider = srv.user("outsider", Role::Observer, vec![other]).await;
    let colleague = srv.user("colleague", Role::Observer, vec![own]).await;
    let admin = srv.login("admin").await;
    let manager = srv.login("manager").await;

    let mail = ContactSpec {
        division_id: own,
        target: ContactTarget::Email {
            address: "soc@example.org".into(),
        },
        notify: NotifyOn {
            critical_events: true,
            sensor_timeouts: true,
            ..Default::default()
        },
    };
    let c = manager.create_contact(&mail).await.unwrap();
    assert_eq!(manager.get_contact(c.id).await.unwrap(), c);
    let hook = ContactSpec {
        target: ContactTarget::Webhook {
            url: "https://siem.example.org/hook".into(),
            secret: None,
        },
        ..mail.clone()
    };
    manager.create_contact(&hook).await.unwrap();
    let bad_url = ContactSpec {
        target: ContactTarget::Webhook {
            url: "ftp://x".into(),
            secret: None,
        },
        ..mail.clone()
    };
    assert_eq!(
        api(manager.create_contact(&bad_url).await.unwrap_err()).0,
        422
    );
    // Users of other divisions cannot be made contacts of this one.
    let to_outsider = ContactSpec {
        target: ContactTarget::User { user_id: outsider },
        ..mail.clone()
    };
    match manager.create_contact(&to_outsider).await.unwrap_err() {
        ClientError::Api { status, fields, .. } => {
            assert_eq!(status, 422);
            assert_eq!(fields[0].field, "target.user_id");
        }
        other => panic!("{other:?}"),
    }
    let to_colleague = ContactSpec {
        target: ContactTarget::User { user_id: colleague },
        ..mail.clone()
    };
    manager.create_contact(&to_colleague).await.unwrap();
    // An admin's contact in the other division stays invisible to the manager.
    let theirs = admin
        .create_contact(&ContactSpec {
            division_id: other,
            ..mail.clone()
        })
        .await
        .unwrap();
    let listed = manager.list_contacts(&Default::default()).await.unwrap();
    assert_eq!(listed.items.len(), 3);
    assert!(listed.items.iter().all(|c| c.spec.division_id == own));
    assert_eq!(
        api(manager.delete_contact(theirs.id).await.unwrap_err()),
        (404, "contact.not_found".into())
    );
    manager.delete_contact(c.id).await.unwrap();

    // Settings: the SMTP password is write-only, kept when left out, removed with "".
    let mut s = admin.get_settings().await.unwrap().settings;
    s.smtp.enabled = true;
    s.smtp.host = "mail.example.org".into();
    s.smtp.port = 587;
    s.smtp.from = "honeysens@example.org".into();
    s.smtp.user = Some("honeysens".into());
    s.smtp.password = Some("smtp-secret".into());
    s.update_interval = 2;
    let saved = admin.put_settings(&s).await.unwrap();
    assert!(saved.smtp_password_set);
    assert_eq!(saved.settings.smtp.password, None);
    assert_eq!(
        admin.get_settings().await.unwrap().settings.update_interval,
        2
    );
    s.smtp.password = None;
    assert!(admin.put_settings(&s).await.unwrap().smtp_password_set);
    assert_eq!(
        srv.store
            .get_settings()
            .await
            .unwrap()
            .smtp
            .password
            .as_deref(),
        Some("smtp-secret")
    );
    s.smtp.password = Some(String::new());
    assert!(!admin.put_settings(&s).await.unwrap().smtp_password_set);
    let mut invalid = s.clone();
    invalid.update_interval = 0;
    assert_eq!(api(admin.put_settings(&invalid).await.unwrap_err()).0, 422);
    let audit =
        serde_json::to_string(&admin.list_audit(&Default::default()).await.unwrap()).unwrap();
    assert!(audit.contains("settings.update"));
    assert!(!audit.contains("smtp-secret"));
    assert_eq!(
        api(manager.get_settings().await.unwrap_err()),
        (403, "auth.forbidden".into())
    );
    srv.stop().await;
}
