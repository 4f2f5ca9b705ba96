//! Backend-independent behaviour every `Store` must show. Each function gets a store on a
//! freshly migrated, empty database.

use chrono::Duration as ChronoDuration;
use honeysens_core::ids::*;
use honeysens_core::model::*;
use honeysens_core::store::Backend;
use honeysens_core::time::{from_micros, now, to_micros};
use honeysens_core::{ErrorKind, Store};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

type S = Arc<dyn Store>;

fn assert_kind<T: std::fmt::Debug>(r: honeysens_core::Result<T>, kind: ErrorKind, code: &str) {
    let err = r.expect_err("expected an error");
    assert_eq!(err.kind(), kind, "{err:?}");
    assert_eq!(err.code(), code, "{err:?}");
}

async fn division(s: &S, name: &str) -> DivisionId {
    s.create_division(&DivisionSpec { name: name.into() })
        .await
        .unwrap()
        .id
}

async fn sensor(s: &S, div: DivisionId, name: &str) -> SensorId {
    s.create_sensor(&SensorSpec::new(name, div))
        .await
        .unwrap()
        .id
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn event(sensor: SensorId, ts: i64, source: &str, port: u16) -> NewEvent {
    NewEvent {
        data: EventData {
            uid: Uuid::new_v4(),
            sensor_id: sensor,
            service: Some("recon".into()),
            timestamp: from_micros(ts),
            source_ip: ip(source),
            source_port: Some(40000 + port % 1000),
            dest_ip: Some(ip("192.0.2.10")),
            dest_port: Some(port),
            protocol: Protocol::Tcp,
            type_code: "conn.attempt".into(),
            classification: Classification::ConnectionAttempt,
            severity: Severity::Low,
            summary: format!("Connection attempt from {source} to port {port}"),
        },
        details: vec![],
        packets: vec![],
    }
}

pub async fn migrations_from_empty(s: S) {
    // The harness opened (and so migrated) an empty database; migrating again is a no-op.
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    s.ping().await.unwrap();
    assert!(matches!(
        s.backend(),
        Backend::Sqlite | Backend::Postgres | Backend::MySql
    ));
    assert_eq!(s.count_users().await.unwrap(), 0);
    assert!(s.list_divisions().await.unwrap().is_empty());
    assert_eq!(s.get_settings().await.unwrap(), Settings::default());
    assert!(s.get_ca().await.unwrap().is_none());
}

pub async fn divisions_crud(s: S) {
    let b = s
        .create_division(&DivisionSpec {
            name: "Branch B".into(),
        })
        .await
        .unwrap();
    let a = s
        .create_division(&DivisionSpec {
            name: "Admin A".into(),
        })
        .await
        .unwrap();
    assert_eq!(s.get_division(b.id).await.unwrap(), b);
    let names: Vec<_> = s
        .list_divisions()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["Admin A", "Branch B"]);
    // Names compare exactly on every backend: case differs, so no conflict.
    s.create_division(&DivisionSpec {
        name: "admin a".into(),
    })
    .await
    .unwrap();
    assert_kind(
        s.create_division(&DivisionSpec {
            name: "Branch B".into(),
        })
        .await,
        ErrorKind::Conflict,
        "division.conflict",
    );
    assert_kind(
        s.update_division(
            a.id,
            &DivisionSpec {
                name: "Branch B".into(),
            },
        )
        .await,
        ErrorKind::Conflict,
        "division.conflict",
    );
    let renamed = s
        .update_division(
            a.id,
            &DivisionSpec {
                name: "Amt A".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "Amt A");
    assert_eq!(renamed.created_at, a.created_at);
    assert_kind(
        s.get_division(DivisionId(999_999)).await,
        ErrorKind::NotFound,
        "division.not_found",
    );
    assert_kind(
        s.update_division(DivisionId(999_999), &DivisionSpec { name: "x".into() })
            .await,
        ErrorKind::NotFound,
        "division.not_found",
    );
    s.delete_division(b.id).await.unwrap();
    assert_kind(
        s.delete_division(b.id).await,
        ErrorKind::NotFound,
        "division.not_found",
    );
    assert_kind(
        s.get_division(b.id).await,
        ErrorKind::NotFound,
        "division.not_found",
    );
}

pub async fn division_delete_is_blocked_by_sensors(s: S) {
    let d = division(&s, "D").await;
    let sn = sensor(&s, d, "s1").await;
    let contact = s
        .create_contact(&ContactSpec {
            division_id: d,
            target: ContactTarget::Email {
                address: "soc@example.org".into(),
            },
            notify: NotifyOn::default(),
        })
        .await
        .unwrap();
    let filter = s
        .create_filter(&EventFilterSpec {
            division_id: d,
            name: "f".into(),
            description: None,
            enabled: true,
            action: FilterAction::Drop,
            conditions: vec![FilterCondition::Protocol {
                value: Protocol::Udp,
            }],
        })
        .await
        .unwrap();
    assert_kind(
        s.delete_division(d).await,
        ErrorKind::Conflict,
        "division.conflict",
    );
    s.delete_sensor(sn).await.unwrap();
    s.delete_division(d).await.unwrap();
    assert_kind(
        s.get_contact(contact.id).await,
        ErrorKind::NotFound,
        "contact.not_found",
    );
    assert_kind(
        s.get_filter(filter.id).await,
        ErrorKind::NotFound,
        "filter.not_found",
    );
}

pub async fn users_crud(s: S) {
    let d1 = division(&s, "one").await;
    let d2 = division(&s, "two").await;
    let spec = UserSpec {
        name: "alice".into(),
        full_name: Some("Alice Ärger".into()),
        email: Some("alice@example.org".into()),
        role: Role::Manager,
        divisions: vec![d2, d1, d2],
    };
    let alice = s.create_user(&spec, "$argon2id$hash-a").await.unwrap();
    assert_eq!(alice.spec.divisions, vec![d1, d2]);
    assert_eq!(s.get_user(alice.id).await.unwrap(), alice);
    let (by_name, hash) = s.get_user_credentials("alice").await.unwrap();
    assert_eq!(by_name.id, alice.id);
    assert_eq!(hash, "$argon2id$hash-a");
    assert_kind(
        s.get_user_credentials("ALICE").await,
        ErrorKind::NotFound,
        "user.not_found",
    );
    assert_kind(
        s.create_user(&spec, "h").await,
        ErrorKind::Conflict,
        "user.conflict",
    );
    let bad = UserSpec {
        name: "bob".into(),
        divisions: vec![DivisionId(424_242)],
        ..spec.clone()
    };
    assert_kind(
        s.create_user(&bad, "h").await,
        ErrorKind::NotFound,
        "division.not_found",
    );
    assert_kind(
        s.get_user_credentials("bob").await,
        ErrorKind::NotFound,
        "user.not_found",
    );

    let bob = s
        .create_user(
            &UserSpec {
                name: "bob".into(),
                full_name: None,
                email: None,
                role: Role::Observer,
                divisions: vec![d2],
            },
            "h",
        )
        .await
        .unwrap();
    assert_eq!(s.count_users().await.unwrap(), 2);
    let in_d1: Vec<_> = s
        .list_users(Some(d1))
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(in_d1, vec![alice.id]);
    let all = s.list_users(None).await.unwrap();
    assert_eq!(
        all.iter().map(|u| u.spec.name.as_str()).collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert_eq!(all[1].spec.divisions, vec![d2]);

    let updated = s
        .update_user(
            alice.id,
            &UserSpec {
                role: Role::Admin,
                divisions: vec![d2],
                email: None,
                ..spec.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.spec.role, Role::Admin);
    assert_eq!(updated.spec.divisions, vec![d2]);
    assert_eq!(updated.spec.email, None);
    assert_kind(
        s.update_user(
            alice.id,
            &UserSpec {
                name: "bob".into(),
                ..spec.clone()
            },
        )
        .await,
        ErrorKind::Conflict,
        "user.conflict",
    );
    s.set_password_hash(alice.id, "$argon2id$hash-b", true)
        .await
        .unwrap();
    let (u, hash) = s.get_user_credentials("alice").await.unwrap();
    assert_eq!(hash, "$argon2id$hash-b");
    assert!(u.must_change_password);
    assert_kind(
        s.set_password_hash(UserId(777_777), "x", false).await,
        ErrorKind::NotFound,
        "user.not_found",
    );
    s.delete_user(bob.id).await.unwrap();
    assert_kind(
        s.delete_user(bob.id).await,
        ErrorKind::NotFound,
        "user.not_found",
    );
    assert_eq!(s.count_users().await.unwrap(), 1);
}

pub async fn contacts_crud(s: S) {
    let d = division(&s, "d").await;
    let other = division(&s, "other").await;
    let user = s
        .create_user(
            &UserSpec {
                name: "carol".into(),
                full_name: None,
                email: Some("c@example.org".into()),
                role: Role::Observer,
                divisions: vec![d],
            },
            "h",
        )
        .await
        .unwrap();
    let notify = NotifyOn {
        critical_events: true,
        all_events: false,
        sensor_timeouts: true,
        weekly_summary: false,
    };
    let mail = s
        .create_contact(&ContactSpec {
            division_id: d,
            target: ContactTarget::Email {
                address: "soc@example.org".into(),
            },
            notify,
        })
        .await
        .unwrap();
    let hook = s
        .create_contact(&ContactSpec {
            division_id: other,
            target: ContactTarget::Webhook {
                url: "https://siem.example.org/hook".into(),
                secret: Some("hook-key-1".into()),
            },
            notify: NotifyOn {
                all_events: true,
                ..NotifyOn::default()
            },
        })
        .await
        .unwrap();
    let by_user = s
        .create_contact(&ContactSpec {
            division_id: d,
            target: ContactTarget::User { user_id: user.id },
            notify,
        })
        .await
        .unwrap();
    assert_eq!(s.get_contact(mail.id).await.unwrap(), mail);
    assert_eq!(s.get_contact(hook.id).await.unwrap(), hook);
    assert_eq!(s.get_contact(by_user.id).await.unwrap(), by_user);
    assert_eq!(
        s.list_contacts(Some(d)).await.unwrap(),
        vec![mail.clone(), by_user.clone()]
    );
    assert_eq!(s.list_contacts(None).await.unwrap().len(), 3);
    assert_kind(
        s.create_contact(&ContactSpec {
            division_id: d,
            target: ContactTarget::User {
                user_id: UserId(31337),
            },
            notify,
        })
        .await,
        ErrorKind::NotFound,
        "user.not_found",
    );
    assert_kind(
        s.create_contact(&ContactSpec {
            division_id: DivisionId(31337),
            target: ContactTarget::Email {
                address: "a@b.org".into(),
            },
            notify,
        })
        .await,
        ErrorKind::NotFound,
        "division.not_found",
    );
    let changed = ContactSpec {
        division_id: other,
        target: ContactTarget::Email {
            address: "new@example.org".into(),
        },
        notify: NotifyOn::default(),
    };
    assert_eq!(
        s.update_contact(mail.id, &changed).await.unwrap().spec,
        changed
    );
    assert_eq!(s.get_contact(mail.id).await.unwrap().spec, changed);
    assert_kind(
        s.update_contact(ContactId(31337), &changed).await,
        ErrorKind::NotFound,
        "contact.not_found",
    );
    // Deleting the user removes contacts that point at them.
    s.delete_user(user.id).await.unwrap();
    assert_kind(
        s.get_contact(by_user.id).await,
        ErrorKind::NotFound,
        "contact.not_found",
    );
    // The webhook secret round-trips through update, including its removal.
    let rekeyed = ContactSpec {
        target: ContactTarget::Webhook {
            url: "https://siem.example.org/hook2".into(),
            secret: Some("hook-key-2".into()),
        },
        ..hook.spec.clone()
    };
    s.update_contact(hook.id, &rekeyed).await.unwrap();
    assert_eq!(s.get_contact(hook.id).await.unwrap().spec, rekeyed);
    let unkeyed = ContactSpec {
        target: ContactTarget::Webhook {
            url: "https://siem.example.org/hook2".into(),
            secret: None,
        },
        ..hook.spec.clone()
    };
    s.update_contact(hook.id, &unkeyed).await.unwrap();
    assert_eq!(s.get_contact(hook.id).await.unwrap().spec, unkeyed);
    s.delete_contact(hook.id).await.unwrap();
    assert_kind(
        s.delete_contact(hook.id).await,
        ErrorKind::NotFound,
        "contact.not_found",
    );
}

fn full_sensor_spec(div: DivisionId) -> SensorSpec {
    SensorSpec {
        name: "Sensor Zentrale 1".into(),
        location: "Raum 2.17".into(),
        division_id: div,
        network: NetworkConfig::Static {
            address: "192.0.2.10/24".parse().unwrap(),
            gateway: Some(ip("192.0.2.1")),
            dns: vec![ip("192.0.2.53"), ip("2001:db8::53")],
        },
        mac: Some("02:00:5e:10:00:01".into()),
        proxy: Some(ProxyConfig {
            host: "proxy.example.org".into(),
            port: 3128,
            user: Some("hs".into()),
            password: Some("pässwörd".into()),
        }),
        server_endpoint: Some(ServerEndpoint {
            host: "honeysens.example.org".into(),
            port: 8443,
        }),
        update_interval: Some(7),
        service_network: Some("10.20.0.0/24".parse().unwrap()),
        firmware_id: None,
        auth: SensorAuthMode::Hmac,
    }
}

pub async fn sensors_crud(s: S) {
    let d1 = division(&s, "d1").await;
    let d2 = division(&s, "d2").await;
    let spec = full_sensor_spec(d1);
    spec.validate().unwrap();
    let created = s.create_sensor(&spec).await.unwrap();
    let got = s.get_sensor(created.id).await.unwrap();
    assert_eq!(got, created);
    assert_eq!(got.spec, spec);
    assert_eq!(got.last_seen, None);
    assert_kind(
        s.create_sensor(&spec).await,
        ErrorKind::Conflict,
        "sensor.conflict",
    );
    // The same name in another division is fine.
    let other = s
        .create_sensor(&SensorSpec {
            division_id: d2,
            ..spec.clone()
        })
        .await
        .unwrap();
    let third = sensor(&s, d1, "A first by name").await;
    assert_kind(
        s.create_sensor(&SensorSpec::new("x", DivisionId(99_999)))
            .await,
        ErrorKind::NotFound,
        "division.not_found",
    );
    assert_kind(
        s.create_sensor(&SensorSpec {
            firmware_id: Some(FirmwareId(99_999)),
            ..SensorSpec::new("y", d1)
        })
        .await,
        ErrorKind::NotFound,
        "firmware.not_found",
    );
    let in_d1: Vec<_> = s
        .list_sensors(Some(&[d1]))
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(in_d1, vec![third, created.id]);
    assert_eq!(s.list_sensors(None).await.unwrap().len(), 3);
    assert!(s.list_sensors(Some(&[])).await.unwrap().is_empty());

    let mut changed = spec.clone();
    changed.network = NetworkConfig::Unconfigured;
    changed.proxy = None;
    changed.update_interval = None;
    changed.auth = SensorAuthMode::Certificate;
    changed.division_id = d2;
    changed.name = "moved".into();
    let updated = s.update_sensor(created.id, &changed).await.unwrap();
    assert_eq!(updated.spec, changed);
    assert_eq!(updated.created_at, created.created_at);
    assert_kind(
        s.update_sensor(
            other.id,
            &SensorSpec {
                name: "moved".into(),
                ..other.spec.clone()
            },
        )
        .await,
        ErrorKind::Conflict,
        "sensor.conflict",
    );
    assert_kind(
        s.update_sensor(SensorId(99_999), &changed).await,
        ErrorKind::NotFound,
        "sensor.not_found",
    );
    s.delete_sensor(created.id).await.unwrap();
    assert_kind(
        s.get_sensor(created.id).await,
        ErrorKind::NotFound,
        "sensor.not_found",
    );
    assert_kind(
        s.delete_sensor(created.id).await,
        ErrorKind::NotFound,
        "sensor.not_found",
    );
}

fn report(sensor: SensorId, sent: i64, received: i64, state: SensorState) -> StatusReport {
    StatusReport {
        sensor_id: sensor,
        timestamp: from_micros(sent),
        received_at: from_micros(received),
        state,
        addresses: vec!["192.0.2.10/24".into()],
        free_memory_mb: 312,
        disk_total_mb: 3800,
        disk_used_mb: 1200,
        agent_version: "0.1.0".into(),
        firmware_version: Some("2.4.0".into()),
        services: vec![
            ServiceStatus {
                name: "recon".into(),
                state: ServiceState::Running,
                error: None,
            },
            ServiceStatus {
                name: "ssh".into(),
                state: ServiceState::Error,
                error: Some("image pull failed: 503".into()),
            },
        ],
        spool_depth: 17,
    }
}

pub async fn sensor_status_batches(s: S) {
    let d = division(&s, "d").await;
    let (a, b) = (sensor(&s, d, "a").await, sensor(&s, d, "b").await);
    let base = to_micros(now());
    let batch = vec![
        report(a, base, base, SensorState::Running),
        report(b, base, base + 1, SensorState::Error),
        report(a, base + 5, base + 5, SensorState::Updating),
    ];
    s.record_statuses(&batch).await.unwrap();
    assert_eq!(
        s.list_status(a, 10).await.unwrap(),
        vec![batch[2].clone(), batch[0].clone()]
    );
    assert_eq!(s.list_status(b, 10).await.unwrap(), vec![batch[1].clone()]);
    assert_eq!(
        s.get_sensor(a).await.unwrap().last_state,
        Some(SensorState::Updating)
    );
    // All or nothing: one unknown sensor fails the batch and stores none of it.
    let bad = vec![
        report(a, base + 10, base + 10, SensorState::Error),
        report(SensorId(99_999), base, base, SensorState::Running),
    ];
    assert_kind(
        s.record_statuses(&bad).await,
        ErrorKind::NotFound,
        "sensor.not_found",
    );
    assert_eq!(s.list_status(a, 10).await.unwrap().len(), 2);
    assert_eq!(
        s.get_sensor(a).await.unwrap().last_state,
        Some(SensorState::Updating)
    );
}

pub async fn sensor_status_reports(s: S) {
    let d = division(&s, "d").await;
    let sn = sensor(&s, d, "s").await;
    let base = to_micros(now());
    let r1 = report(sn, base - 2_000_000, base - 2_000_000, SensorState::Running);
    // Sensor clock 5 minutes ahead: stored as reported, skew computable.
    let r2 = report(sn, base + 300_000_000, base, SensorState::Error);
    s.record_status(&r1).await.unwrap();
    s.record_status(&r2).await.unwrap();
    assert_eq!(r2.clock_skew_ms(), 300_000);
    let list = s.list_status(sn, 10).await.unwrap();
    assert_eq!(list, vec![r2.clone(), r1.clone()]);
    assert_eq!(s.list_status(sn, 1).await.unwrap(), vec![r2.clone()]);
    let got = s.get_sensor(sn).await.unwrap();
    assert_eq!(got.last_seen, Some(from_micros(base)));
    assert_eq!(got.last_state, Some(SensorState::Error));
    // A report that arrives late with an older receive time does not move last_seen back.
    s.record_status(&report(
        sn,
        base - 9_000_000,
        base - 9_000_000,
        SensorState::Updating,
    ))
    .await
    .unwrap();
    let got = s.get_sensor(sn).await.unwrap();
    assert_eq!(got.last_seen, Some(from_micros(base)));
    assert_eq!(got.last_state, Some(SensorState::Error));
    assert_kind(
        s.record_status(&report(SensorId(99_999), base, base, SensorState::Running))
            .await,
        ErrorKind::NotFound,
        "sensor.not_found",
    );
    assert_kind(
        s.list_status(SensorId(99_999), 5).await,
        ErrorKind::NotFound,
        "sensor.not_found",
    );
    assert_eq!(
        s.prune_status(from_micros(base - 1_000_000)).await.unwrap(),
        2
    );
    assert_eq!(s.list_status(sn, 10).await.unwrap(), vec![r2]);
    // Reports go with their sensor.
    s.delete_sensor(sn).await.unwrap();
    assert_eq!(
        s.prune_status(from_micros(base + 1_000_000_000))
            .await
            .unwrap(),
        0
    );
}

fn firmware(platform: PlatformId, version: &str) -> FirmwareSpec {
    FirmwareSpec {
        platform_id: platform,
        version: version.into(),
        description: "Release".into(),
        changelog: vec!["Fix A".into(), "Add B".into()],
        sha256: "ab".repeat(32),
        size: 123_456_789,
        storage_key: format!("firmware/{version}.img"),
    }
}

pub async fn platforms_and_firmware(s: S) {
    let spec = PlatformSpec {
        name: "docker_x86".into(),
        title: "Docker (x86-64)".into(),
        description: String::new(),
    };
    let p = s.create_platform(&spec).await.unwrap();
    assert_kind(
        s.create_platform(&spec).await,
        ErrorKind::Conflict,
        "platform.conflict",
    );
    let bbb = s
        .create_platform(&PlatformSpec {
            name: "bbb".into(),
            title: "BeagleBone Black".into(),
            description: "ARM".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        s.list_platforms().await.unwrap(),
        vec![bbb.clone(), p.clone()]
    );
    let f1 = s.add_firmware(&firmware(p.id, "2.3.0")).await.unwrap();
    let f2 = s.add_firmware(&firmware(p.id, "2.4.0")).await.unwrap();
    s.add_firmware(&firmware(bbb.id, "2.4.0")).await.unwrap();
    assert_kind(
        s.add_firmware(&firmware(p.id, "2.4.0")).await,
        ErrorKind::Conflict,
        "firmware.conflict",
    );
    assert_kind(
        s.add_firmware(&firmware(PlatformId(9999), "1")).await,
        ErrorKind::NotFound,
        "platform.not_found",
    );
    assert_eq!(s.get_firmware(f1.id).await.unwrap(), f1);
    let ids: Vec<_> = s
        .list_firmware(p.id)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, vec![f2.id, f1.id]);
    assert_kind(
        s.list_firmware(PlatformId(9999)).await,
        ErrorKind::NotFound,
        "platform.not_found",
    );

    s.set_default_firmware(f1.id).await.unwrap();
    assert_eq!(
        s.get_platform(p.id).await.unwrap().default_firmware,
        Some(f1.id)
    );
    s.set_default_firmware(f2.id).await.unwrap();
    assert_eq!(
        s.get_platform(p.id).await.unwrap().default_firmware,
        Some(f2.id)
    );
    assert_kind(
        s.set_default_firmware(FirmwareId(9999)).await,
        ErrorKind::NotFound,
        "firmware.not_found",
    );

    let d = division(&s, "d").await;
    let pinned = s
        .create_sensor(&SensorSpec {
            firmware_id: Some(f2.id),
            ..SensorSpec::new("pinned", d)
        })
        .await
        .unwrap();
    let other = s
        .create_sensor(&SensorSpec {
            firmware_id: Some(f1.id),
            ..SensorSpec::new("other", d)
        })
        .await
        .unwrap();
    // Removing a revision resets sensors that targeted it and a default pointing at it.
    s.delete_firmware(f2.id).await.unwrap();
    assert_eq!(
        s.get_sensor(pinned.id).await.unwrap().spec.firmware_id,
        None
    );
    assert_eq!(
        s.get_sensor(other.id).await.unwrap().spec.firmware_id,
        Some(f1.id)
    );
    assert_eq!(s.get_platform(p.id).await.unwrap().default_firmware, None);
    assert_kind(
        s.get_firmware(f2.id).await,
        ErrorKind::NotFound,
        "firmware.not_found",
    );
    assert_kind(
        s.delete_firmware(f2.id).await,
        ErrorKind::NotFound,
        "firmware.not_found",
    );
}

fn revision(service: ServiceId, rev: &str, arch: Architecture) -> ServiceRevisionSpec {
    ServiceRevisionSpec {
        service_id: service,
        revision: rev.into(),
        architecture: arch,
        description: "first".into(),
        port_assignment: BTreeMap::from([
            ("2222/tcp".to_owned(), 22u16),
            ("8080/tcp".to_owned(), 80),
        ]),
        catch_all: false,
        raw_network_access: false,
        image_digest: format!("sha256:{}", "0f".repeat(32)),
    }
}

pub async fn services_revisions_assignments(s: S) {
    let spec = ServiceSpec {
        name: "ssh".into(),
        repository: "honeysens/ssh".into(),
        description: "SSH honeypot".into(),
    };
    let ssh = s.create_service(&spec).await.unwrap();
    assert_kind(
        s.create_service(&spec).await,
        ErrorKind::Conflict,
        "service.conflict",
    );
    let recon = s
        .create_service(&ServiceSpec {
            name: "recon".into(),
            repository: "honeysens/recon".into(),
            description: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        s.list_services().await.unwrap(),
        vec![recon.clone(), ssh.clone()]
    );
    assert_eq!(s.get_service(ssh.id).await.unwrap(), ssh);
    let r1 = s
        .add_service_revision(&revision(ssh.id, "1.0", Architecture::Amd64))
        .await
        .unwrap();
    let r2 = s
        .add_service_revision(&revision(ssh.id, "1.0", Architecture::Armhf))
        .await
        .unwrap();
    assert_kind(
        s.add_service_revision(&revision(ssh.id, "1.0", Architecture::Amd64))
            .await,
        ErrorKind::Conflict,
        "service_revision.conflict",
    );
    assert_kind(
        s.add_service_revision(&revision(ServiceId(999), "1.0", Architecture::Amd64))
            .await,
        ErrorKind::NotFound,
        "service.not_found",
    );
    let revs = s.list_service_revisions(ssh.id).await.unwrap();
    assert_eq!(revs, vec![r2.clone(), r1.clone()]);
    assert_eq!(revs[1].spec.port_assignment.get("2222/tcp"), Some(&22));
    s.delete_service_revision(r2.id).await.unwrap();
    assert_kind(
        s.delete_service_revision(r2.id).await,
        ErrorKind::NotFound,
        "service_revision.not_found",
    );

    let d = division(&s, "d").await;
    let s1 = sensor(&s, d, "s1").await;
    let s2 = sensor(&s, d, "s2").await;
    s.assign_service(&ServiceAssignment {
        sensor_id: s1,
        service_id: ssh.id,
        revision: None,
    })
    .await
    .unwrap();
    s.assign_service(&ServiceAssignment {
        sensor_id: s1,
        service_id: recon.id,
        revision: None,
    })
    .await
    .unwrap();
    s.assign_service(&ServiceAssignment {
        sensor_id: s2,
        service_id: ssh.id,
        revision: None,
    })
    .await
    .unwrap();
    // Assigning again re-pins the revision instead of failing.
    s.assign_service(&ServiceAssignment {
        sensor_id: s1,
        service_id: ssh.id,
        revision: Some("1.0".into()),
    })
    .await
    .unwrap();
    let mine = s.list_assignments(Some(s1)).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert!(mine.contains(&ServiceAssignment {
        sensor_id: s1,
        service_id: ssh.id,
        revision: Some("1.0".into())
    }));
    assert_eq!(s.list_assignments(None).await.unwrap().len(), 3);
    assert_kind(
        s.assign_service(&ServiceAssignment {
            sensor_id: SensorId(999),
            service_id: ssh.id,
            revision: None,
        })
        .await,
        ErrorKind::NotFound,
        "sensor.not_found",
    );
    assert_kind(
        s.assign_service(&ServiceAssignment {
            sensor_id: s1,
            service_id: ServiceId(999),
            revision: None,
        })
        .await,
        ErrorKind::NotFound,
        "service.not_found",
    );
    s.unassign_service(s1, recon.id).await.unwrap();
    assert_kind(
        s.unassign_service(s1, recon.id).await,
        ErrorKind::NotFound,
        "assignment.not_found",
    );
    // Deleting a service removes its revisions and assignments.
    s.delete_service(ssh.id).await.unwrap();
    assert!(s.list_assignments(None).await.unwrap().is_empty());
    assert_kind(
        s.list_service_revisions(ssh.id).await,
        ErrorKind::NotFound,
        "service.not_found",
    );
    assert_kind(
        s.delete_service(ssh.id).await,
        ErrorKind::NotFound,
        "service.not_found",
    );
}

pub async fn events_insert_is_idempotent(s: S) {
    let d = division(&s, "d").await;
    let sn = sensor(&s, d, "s").await;
    let base = to_micros(now());
    let mut batch: Vec<_> = (0..10)
        .map(|i| (event(sn, base + i, "10.1.2.3", 22), d, EventStatus::New))
        .collect();
    // Details are stored whole (the old system cut them to 255 characters) and in any script.
    let long = format!("{}ünïcødé ✓ {}", "x".repeat(300), "'\"\\%_");
    batch[0].0.details = vec![
        EventDetail {
            timestamp: from_micros(base),
            kind: DetailKind::Interaction,
            data: long.clone(),
        },
        EventDetail {
            timestamp: from_micros(base + 5),
            kind: DetailKind::Generic,
            data: "client SSH-2.0-Go".into(),
        },
    ];
    batch[0].0.packets = vec![EventPacket {
        timestamp: from_micros(base + 1),
        protocol: Protocol::Tcp,
        port: Some(22),
        headers: serde_json::json!({"flags": "S"})
            .as_object()
            .unwrap()
            .clone(),
        payload: Some("U1NILTIuMC0=".into()),
    }];
    batch[1].0.data.source_ip = ip("2001:db8::dead:beef");
    batch[1].0.data.dest_ip = None;
    batch[1].0.data.source_port = None;
    batch[1].0.data.service = None;
    let first = s.insert_events(&batch).await.unwrap();
    assert_eq!(first.inserted.len(), 10);
    assert!(first.duplicates.is_empty());
    // Ids come back in submission order and identify the stored rows.
    for ((uid, id), (ev, _, _)) in first.inserted.iter().zip(&batch) {
        assert_eq!(*uid, ev.data.uid);
        let stored = s.get_event(*id).await.unwrap();
        assert_eq!(stored.data, ev.data);
        assert_eq!(stored.division_id, d);
        assert_eq!(stored.status, EventStatus::New);
        assert!(!stored.archived);
        assert_eq!(stored.comment, None);
    }
    let payload = s.get_event_payload(first.inserted[0].1).await.unwrap();
    assert_eq!(payload.details, batch[0].0.details);
    assert_eq!(payload.details[0].data, long);
    assert_eq!(payload.packets, batch[0].0.packets);

    // A retried upload: the first ten are duplicates, five new ones are stored, and a uid
    // repeated inside one batch counts once.
    let mut retry = batch.clone();
    let fresh: Vec<_> = (0..5)
        .map(|i| {
            (
                event(sn, base + 100 + i, "10.1.2.4", 80),
                d,
                EventStatus::Resolved,
            )
        })
        .collect();
    retry.extend(fresh.iter().cloned());
    retry.push(fresh[0].clone());
    let second = s.insert_events(&retry).await.unwrap();
    assert_eq!(second.inserted.len(), 5);
    assert_eq!(second.duplicates.len(), 11);
    let inserted: HashSet<_> = second.inserted.iter().map(|(u, _)| *u).collect();
    assert_eq!(inserted, fresh.iter().map(|e| e.0.data.uid).collect());
    assert_eq!(s.count_events(&EventQuery::default()).await.unwrap(), 15);
    assert_eq!(
        s.get_event(second.inserted[0].1).await.unwrap().status,
        EventStatus::Resolved
    );
    assert_eq!(s.insert_events(&[]).await.unwrap(), InsertReport::default());

    // An unknown sensor fails the batch as a whole and stores nothing of it.
    let bad = vec![
        (event(sn, base, "10.9.9.9", 1), d, EventStatus::New),
        (
            event(SensorId(424_242), base, "10.9.9.9", 1),
            d,
            EventStatus::New,
        ),
    ];
    assert_kind(
        s.insert_events(&bad).await,
        ErrorKind::NotFound,
        "sensor.not_found",
    );
    assert_eq!(s.count_events(&EventQuery::default()).await.unwrap(), 15);
    assert_kind(
        s.get_event(EventId(987_654)).await,
        ErrorKind::NotFound,
        "event.not_found",
    );
    assert_kind(
        s.get_event_payload(EventId(987_654)).await,
        ErrorKind::NotFound,
        "event.not_found",
    );
}

/// Every event belongs to an existing sensor and carries that sensor's division; deleting a
/// sensor or a division deletes its events (the store checks and cascades itself where the
/// backend has no foreign keys on `events`).
pub async fn events_follow_their_sensor_and_division(s: S) {
    let d1 = division(&s, "one").await;
    let d2 = division(&s, "two").await;
    let s1 = sensor(&s, d1, "s1").await;
    let s2 = sensor(&s, d1, "s2").await;
    let base = to_micros(now()) - 3_600_000_000;
    let batch = |sn: SensorId, d: DivisionId, n: i64| -> Vec<(NewEvent, DivisionId, EventStatus)> {
        (0..n)
            .map(|i| (event(sn, base + i, "10.7.0.1", 22), d, EventStatus::New))
            .collect()
    };
    let count = |q: EventQuery| {
        let s = s.clone();
        async move { s.count_events(&q).await.unwrap() }
    };
    let of_sensor = |sn: SensorId| EventQuery {
        sensors: vec![sn],
        ..Default::default()
    };
    let of_division = |d: DivisionId| EventQuery {
        divisions: Some(vec![d]),
        ..Default::default()
    };

    // Another division's events cannot be filed under a sensor, alone or next to good ones.
    for bad in [
        batch(s1, d2, 1),
        [batch(s1, d1, 2), batch(s1, d2, 1)].concat(),
        [batch(s1, d1, 2), batch(s2, d2, 1)].concat(),
        // Big enough for the bulk insert paths.
        [batch(s1, d1, 40), batch(s2, d2, 1), batch(s2, d1, 40)].concat(),
    ] {
        assert_kind(
            s.insert_events(&bad).await,
            ErrorKind::Conflict,
            "event.conflict",
        );
    }
    assert_eq!(count(EventQuery::default()).await, 0);

    s.insert_events(&batch(s1, d1, 3)).await.unwrap();
    s.insert_events(&batch(s2, d1, 4)).await.unwrap();
    // A moved sensor's events stay in the division they were reported in; new ones go to the
    // sensor's new division only.
    let mut moved = s.get_sensor(s2).await.unwrap();
    moved.spec.division_id = d2;
    s.update_sensor(s2, &moved.spec).await.unwrap();
    assert_kind(
        s.insert_events(&batch(s2, d1, 1)).await,
        ErrorKind::Conflict,
        "event.conflict",
    );
    s.insert_events(&batch(s2, d2, 5)).await.unwrap();
    assert_eq!(count(of_division(d1)).await, 7);
    assert_eq!(count(of_division(d2)).await, 5);

    // A sensor's events go with it, nobody else's.
    s.delete_sensor(s1).await.unwrap();
    assert_eq!(count(of_sensor(s1)).await, 0);
    assert_eq!(count(of_sensor(s2)).await, 9);
    for unknown in [
        batch(s1, d1, 1),
        [batch(s2, d2, 30), batch(s1, d1, 1)].concat(),
    ] {
        assert_kind(
            s.insert_events(&unknown).await,
            ErrorKind::NotFound,
            "sensor.not_found",
        );
    }
    assert_eq!(count(EventQuery::default()).await, 9);
    // A division's events go with it, also those of a sensor that has moved away since.
    s.delete_division(d1).await.unwrap();
    assert_eq!(count(of_division(d1)).await, 0);
    assert_eq!(count(of_sensor(s2)).await, 5);
    assert_eq!(count(EventQuery::default()).await, 5);
}

/// A sensor deleted while its batches are being stored leaves no events behind: each batch
/// either commits before the delete (and its events go with the sensor) or fails as
/// `sensor.not_found`. Batches of one and of bulk size, with and without grouping.
pub async fn events_sensor_deleted_during_ingest(s: S) {
    let d = division(&s, "d").await;
    let base = to_micros(now()) - 3_600_000_000;
    for (round, size) in [1usize, 40, 40, 200].into_iter().enumerate() {
        let sn = sensor(&s, d, &format!("s{round}")).await;
        let group = round == 2;
        let writers: Vec<_> = (0..3)
            .map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    for b in 0..25i64 {
                        let batch: Vec<_> = (0..size as i64)
                            .map(|i| {
                                let at = base + (w * 100_000 + b * 1000 + i);
                                (event(sn, at, "10.9.0.1", 22), d, EventStatus::New)
                            })
                            .collect();
                        let r = if group {
                            let opts = IngestOptions {
                                incident_window: Some(Duration::from_secs(600)),
                                ..IngestOptions::PLAIN
                            };
                            s.ingest_events(&batch, &opts).await.map(|_| ())
                        } else {
                            s.insert_events(&batch).await.map(|_| ())
                        };
                        match r {
                            Ok(()) => {}
                            Err(e) if e.code() == "sensor.not_found" => return,
                            Err(e) => panic!("unexpected ingest error: {e:?}"),
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        s.delete_sensor(sn).await.unwrap();
        for w in writers {
            w.await.unwrap();
        }
        let left = EventQuery {
            sensors: vec![sn],
            ..Default::default()
        };
        assert_eq!(s.count_events(&left).await.unwrap(), 0, "batches of {size}");
    }
    assert_eq!(s.count_events(&EventQuery::default()).await.unwrap(), 0);
}

/// The same batch uploaded several times at once (a sensor retrying while its first upload is
/// still being stored) is stored exactly once, without grouping too.
pub async fn events_concurrent_duplicate_inserts(s: S) {
    let d = division(&s, "d").await;
    let sn = sensor(&s, d, "s").await;
    let base = to_micros(now()) - 3_600_000_000;
    let batch: Vec<_> = (0..40i64)
        .map(|i| (event(sn, base + i, "10.8.0.1", 22), d, EventStatus::New))
        .collect();
    let batch = Arc::new(batch);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (s, batch) = (s.clone(), batch.clone());
            tokio::spawn(async move { s.insert_events(&batch).await.unwrap() })
        })
        .collect();
    let mut stored = HashSet::new();
    let mut duplicates = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.inserted.len() + r.duplicates.len(), 40, "{r:?}");
        duplicates += r.duplicates.len();
        for (uid, id) in r.inserted {
            assert!(stored.insert(uid), "{uid} reported inserted twice");
            assert_eq!(s.get_event(id).await.unwrap().data.uid, uid);
        }
    }
    assert_eq!(stored.len(), 40);
    assert_eq!(duplicates, 5 * 40);
    assert_eq!(s.count_events(&EventQuery::default()).await.unwrap(), 40);
}

pub async fn events_large_batch_spans_chunks(s: S) {
    let d = division(&s, "d").await;
    let sn = sensor(&s, d, "s").await;
    let base = to_micros(now());
    let batch: Vec<_> = (0..2500)
        .map(|i| {
            (
                event(sn, base + i, "10.0.0.1", (i % 60000 + 1) as u16),
                d,
                EventStatus::New,
            )
        })
        .collect();
    let r = s.insert_events(&batch).await.unwrap();
    assert_eq!(r.inserted.len(), 2500);
    let ids: HashSet<_> = r.inserted.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), 2500);
    assert_eq!(s.count_events(&EventQuery::default()).await.unwrap(), 2500);
    let again = s.insert_events(&batch[1990..2010]).await.unwrap();
    assert_eq!((again.inserted.len(), again.duplicates.len()), (0, 20));
    // A retried upload big enough for the bulk paths, stored and new events mixed: the new ones
    // are stored and reported with their ids, the stored ones as duplicates.
    let mut mixed: Vec<_> = (0..30)
        .map(|i| {
            (
                event(sn, base + 5000 + i, "10.0.0.2", 443),
                d,
                EventStatus::New,
            )
        })
        .collect();
    mixed.splice(10..10, batch[100..120].iter().cloned());
    let r = s.insert_events(&mixed).await.unwrap();
    assert_eq!((r.inserted.len(), r.duplicates.len()), (30, 20));
    let stored: HashSet<_> = batch[100..120].iter().map(|e| e.0.data.uid).collect();
    assert_eq!(r.duplicates.iter().copied().collect::<HashSet<_>>(), stored);
    for (uid, id) in &r.inserted {
        assert!(!stored.contains(uid));
        assert_eq!(s.get_event(*id).await.unwrap().data.uid, *uid);
    }
    assert_eq!(s.count_events(&EventQuery::default()).await.unwrap(), 2530);
}

/// Inserts a varied set of events and returns them as stored.
async fn corpus(
    s: &S,
) -> (
    Vec<Event>,
    DivisionId,
    DivisionId,
    SensorId,
    SensorId,
    SensorId,
) {
    let d1 = division(s, "d1").await;
    let d2 = division(s, "d2").await;
    let s1 = sensor(s, d1, "s1").await;
    let s2 = sensor(s, d1, "s2").await;
    let s3 = sensor(s, d2, "s3").await;
    let base = to_micros(now()) - 3_600_000_000;
    let sources = [
        "10.0.0.5",
        "10.0.255.255",
        "10.1.0.0",
        "192.168.1.20",
        "9.255.255.255",
        "2001:db8::1",
        "2001:db8:1::1",
        "::ffff:10.0.0.7",
    ];
    let kinds = [
        (
            "conn.attempt",
            Classification::ConnectionAttempt,
            Protocol::Tcp,
        ),
        ("scan.port", Classification::PortScan, Protocol::Tcp),
        (
            "ssh.login.failed",
            Classification::HoneypotInteraction,
            Protocol::Tcp,
        ),
        ("icmp.echo", Classification::Icmp, Protocol::Icmp),
        ("dns.query", Classification::Unknown, Protocol::Udp),
    ];
    let statuses = [
        EventStatus::New,
        EventStatus::InProgress,
        EventStatus::Resolved,
        EventStatus::Ignored,
    ];
    let mut batch = Vec::new();
    for i in 0..120i64 {
        let sn = [s1, s2, s3][(i % 3) as usize];
        let div = if sn == s3 { d2 } else { d1 };
        let (code, class, proto) = kinds[(i % 5) as usize];
        let mut e = event(
            sn,
            base + (i / 2) * 1_000_000,
            sources[(i % 8) as usize],
            [22u16, 80, 445, 3389][(i % 4) as usize],
        );
        e.data.type_code = code.into();
        e.data.classification = class;
        e.data.protocol = proto;
        if i % 7 == 0 {
            e.data.summary = format!("Probe 100%_done #{i}");
        }
        if i % 11 == 0 {
            e.data.summary = format!("Login ROOT attempt #{i}");
        }
        batch.push((e, div, statuses[(i % 4) as usize]));
    }
    let r = s.insert_events(&batch).await.unwrap();
    let ids: Vec<_> = r.inserted.iter().map(|(_, id)| *id).collect();
    // Comments and archive flags for the text and archive filters.
    s.update_events(
        &EventSelection {
            ids: Some(ids.iter().copied().step_by(5).collect()),
            query: EventQuery::default(),
        },
        &EventUpdate {
            comment: Some(Some("Known Scanner at NOC".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.update_events(
        &EventSelection {
            ids: Some(ids.iter().copied().step_by(9).collect()),
            query: EventQuery::default(),
        },
        &EventUpdate {
            archived: Some(true),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut all = Vec::new();
    for id in ids {
        all.push(s.get_event(id).await.unwrap());
    }
    (all, d1, d2, s1, s2, s3)
}

async fn list_all(s: &S, q: &EventQuery) -> Vec<EventId> {
    let mut out = Vec::new();
    let mut page = PageRequest::first(7);
    loop {
        let p = s.list_events(q, &page).await.unwrap();
        out.extend(p.items.iter().map(|e| e.id));
        match p.next {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    out
}

pub async fn events_query_matches_domain_filter(s: S) {
    let (all, d1, d2, s1, _s2, s3) = corpus(&s).await;
    let t0 = all.iter().map(|e| e.data.timestamp).min().unwrap();
    let queries = vec![
        EventQuery::default(),
        EventQuery {
            divisions: Some(vec![d1]),
            ..Default::default()
        },
        EventQuery {
            divisions: Some(vec![d1, d2]),
            statuses: vec![EventStatus::New, EventStatus::InProgress],
            ..Default::default()
        },
        EventQuery {
            divisions: Some(vec![]),
            ..Default::default()
        },
        EventQuery {
            sensors: vec![s1, s3],
            ..Default::default()
        },
        EventQuery {
            classifications: vec![Classification::PortScan],
            divisions: Some(vec![d2]),
            ..Default::default()
        },
        EventQuery {
            type_codes: vec!["ssh.login.failed".into(), "icmp.echo".into()],
            ..Default::default()
        },
        EventQuery {
            from: Some(t0 + ChronoDuration::seconds(10)),
            until: Some(t0 + ChronoDuration::seconds(40)),
            ..Default::default()
        },
        EventQuery {
            archived: Some(true),
            ..Default::default()
        },
        EventQuery {
            archived: Some(false),
            statuses: vec![EventStatus::Resolved],
            ..Default::default()
        },
        // Address matching is numeric: 10.0.255.255 is inside 10.0.0.0/16, 10.1.0.0 and 9.255.255.255 are not.
        EventQuery {
            source: Some(IpMatch::Net {
                net: "10.0.0.0/16".parse().unwrap(),
            }),
            ..Default::default()
        },
        EventQuery {
            source: Some(IpMatch::Range {
                start: ip("9.255.255.255"),
                end: ip("10.0.255.255"),
            }),
            ..Default::default()
        },
        EventQuery {
            source: Some(IpMatch::Addr {
                addr: ip("2001:db8::1"),
            }),
            ..Default::default()
        },
        EventQuery {
            source: Some(IpMatch::Net {
                net: "2001:db8::/48".parse().unwrap(),
            }),
            ..Default::default()
        },
        EventQuery {
            dest_port: Some(445),
            protocol: Some(Protocol::Tcp),
            ..Default::default()
        },
        EventQuery {
            protocol: Some(Protocol::Udp),
            ..Default::default()
        },
        // Free text: case-insensitive over source, summary and comment; % and _ are literal.
        EventQuery {
            text: Some("root".into()),
            ..Default::default()
        },
        EventQuery {
            text: Some("100%_".into()),
            ..Default::default()
        },
        EventQuery {
            text: Some("0%".into()),
            ..Default::default()
        },
        EventQuery {
            text: Some("noc".into()),
            divisions: Some(vec![d1]),
            ..Default::default()
        },
        EventQuery {
            text: Some("192.168".into()),
            ..Default::default()
        },
    ];
    for q in &queries {
        let mut expected: Vec<&Event> = all.iter().filter(|e| q.matches(e)).collect();
        expected.sort_by_key(|e| std::cmp::Reverse((e.data.timestamp, e.id)));
        let expected: Vec<EventId> = expected.iter().map(|e| e.id).collect();
        assert_eq!(list_all(&s, q).await, expected, "query {q:?}");
        assert_eq!(
            s.count_events(q).await.unwrap(),
            expected.len() as u64,
            "count {q:?}"
        );
    }
    // Sanity: the filters are not vacuous on this corpus.
    assert!(all.iter().filter(|e| queries[10].matches(e)).count() > 0);
    assert!(all.iter().filter(|e| queries[17].matches(e)).count() > 0);
    assert!(all.iter().filter(|e| queries[18].matches(e)).count() < all.len());
    let reversed = EventQuery {
        source: Some(IpMatch::Range {
            start: ip("10.0.0.9"),
            end: ip("10.0.0.1"),
        }),
        ..Default::default()
    };
    assert_kind(
        s.list_events(&reversed, &PageRequest::first(5)).await,
        ErrorKind::Invalid,
        "validation.failed",
    );
}

pub async fn events_keyset_pagination(s: S) {
    let d = division(&s, "d").await;
    let sn = sensor(&s, d, "s").await;
    let base = to_micros(now());
    // Many events share a timestamp, so ordering must fall back to the id.
    let batch: Vec<_> = (0..137)
        .map(|i| {
            (
                event(sn, base + (i / 10) * 1000, "10.0.0.1", 22),
                d,
                EventStatus::New,
            )
        })
        .collect();
    s.insert_events(&batch).await.unwrap();
    // Unfiltered, and by source range (MariaDB pages those through a join of found ids).
    let by_source = EventQuery {
        source: Some(IpMatch::Net {
            net: "10.0.0.0/24".parse().unwrap(),
        }),
        ..Default::default()
    };
    for (q, order) in [
        (EventQuery::default(), SortOrder::Desc),
        (EventQuery::default(), SortOrder::Asc),
        (by_source.clone(), SortOrder::Desc),
        (by_source, SortOrder::Asc),
    ] {
        let mut seen = Vec::new();
        let mut page = PageRequest {
            after: None,
            limit: 10,
            order,
        };
        let mut pages = 0;
        loop {
            let p = s.list_events(&q, &page).await.unwrap();
            pages += 1;
            assert!(p.items.len() <= 10);
            seen.extend(p.items.iter().map(|e| (e.data.timestamp, e.id)));
            match p.next {
                Some(c) => {
                    assert_eq!(p.items.len(), 10);
                    assert_eq!(EventCursor::decode(&c.encode()).unwrap(), c);
                    page.after = Some(c);
                }
                None => break,
            }
        }
        assert_eq!(pages, 14);
        assert_eq!(seen.len(), 137);
        let mut sorted = seen.clone();
        sorted.sort();
        if order == SortOrder::Desc {
            sorted.reverse();
        }
        assert_eq!(seen, sorted, "{order:?}");
        assert_eq!(seen.iter().map(|x| x.1).collect::<HashSet<_>>().len(), 137);
    }
    let q = EventQuery::default();
    let exact = s.list_events(&q, &PageRequest::first(137)).await.unwrap();
    assert_eq!((exact.items.len(), exact.next), (137, None));
    assert_kind(
        s.list_events(&q, &PageRequest::first(0)).await,
        ErrorKind::Invalid,
        "validation.failed",
    );
    assert_kind(
        s.list_events(&q, &PageRequest::first(513)).await,
        ErrorKind::Invalid,
        "validation.failed",
    );
    assert!(EventCursor::decode("garbage").is_err());
}

pub async fn events_bulk_update_and_delete(s: S) {
    let (all, d1, d2, _s1, _s2, _s3) = corpus(&s).await;
    let d2_ids: Vec<EventId> = all
        .iter()
        .filter(|e| e.division_id == d2)
        .map(|e| e.id)
        .collect();
    let d1_ids: Vec<EventId> = all
        .iter()
        .filter(|e| e.division_id == d1)
        .map(|e| e.id)
        .collect();
    // By ids, within a division scope: ids outside the scope are not touched.
    let mixed: Vec<EventId> = d1_ids
        .iter()
        .take(3)
        .chain(d2_ids.iter().take(3))
        .copied()
        .collect();
    let sel = EventSelection {
        ids: Some(mixed.clone()),
        query: EventQuery {
            divisions: Some(vec![d1]),
            ..Default::default()
        },
    };
    let n = s
        .update_events(
            &sel,
            &EventUpdate {
                status: Some(EventStatus::Ignored),
                comment: Some(Some("benign".into())),
                archived: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(n, 3);
    for id in &mixed[..3] {
        let e = s.get_event(*id).await.unwrap();
        assert_eq!(
            (e.status, e.comment.as_deref()),
            (EventStatus::Ignored, Some("benign"))
        );
    }
    for id in &mixed[3..] {
        assert_ne!(
            s.get_event(*id).await.unwrap().comment.as_deref(),
            Some("benign")
        );
    }
    // By filter, across all pages: archive every resolved event of division 2.
    let q = EventQuery {
        divisions: Some(vec![d2]),
        statuses: vec![EventStatus::Resolved],
        ..Default::default()
    };
    let expected = s.count_events(&q).await.unwrap();
    assert!(expected > 0);
    let n = s
        .update_events(
            &EventSelection {
                ids: None,
                query: q.clone(),
            },
            &EventUpdate {
                archived: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(n, expected);
    assert_eq!(
        s.count_events(&EventQuery {
            archived: Some(true),
            ..q.clone()
        })
        .await
        .unwrap(),
        expected
    );
    // Clearing a comment.
    s.update_events(
        &EventSelection {
            ids: Some(vec![mixed[0]]),
            query: EventQuery::default(),
        },
        &EventUpdate {
            comment: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(s.get_event(mixed[0]).await.unwrap().comment, None);
    assert_kind(
        s.update_events(&EventSelection::default(), &EventUpdate::default())
            .await,
        ErrorKind::Invalid,
        "validation.failed",
    );
    // Empty id list selects nothing.
    assert_eq!(
        s.update_events(
            &EventSelection {
                ids: Some(vec![]),
                query: EventQuery::default()
            },
            &EventUpdate {
                archived: Some(false),
                ..Default::default()
            }
        )
        .await
        .unwrap(),
        0
    );
    // Delete by filter and by ids.
    let before = s.count_events(&EventQuery::default()).await.unwrap();
    let gone = s
        .delete_events(&EventSelection {
            ids: None,
            query: EventQuery {
                divisions: Some(vec![d2]),
                ..Default::default()
            },
        })
        .await
        .unwrap();
    assert_eq!(gone as usize, d2_ids.len());
    let gone2 = s
        .delete_events(&EventSelection {
            ids: Some(d1_ids[..4].to_vec()),
            query: EventQuery::default(),
        })
        .await
        .unwrap();
    assert_eq!(gone2, 4);
    assert_eq!(
        s.count_events(&EventQuery::default()).await.unwrap(),
        before - gone - 4
    );
    assert_kind(
        s.get_event(d1_ids[0]).await,
        ErrorKind::NotFound,
        "event.not_found",
    );
}

pub async fn filters_crud_and_hits(s: S) {
    let d1 = division(&s, "d1").await;
    let d2 = division(&s, "d2").await;
    let spec = EventFilterSpec {
        division_id: d1,
        name: "Vulnerability scanner".into(),
        description: Some("Nessus in the NOC".into()),
        enabled: true,
        action: FilterAction::Resolve,
        conditions: vec![
            FilterCondition::Source {
                value: IpMatch::Net {
                    net: "10.10.0.0/16".parse().unwrap(),
                },
            },
            FilterCondition::DestPort { from: 1, to: 1024 },
            FilterCondition::TypeCode {
                value: "scan.*".into(),
            },
            FilterCondition::Classification {
                value: Classification::PortScan,
            },
            FilterCondition::Sensor { value: SensorId(1) },
            FilterCondition::Service {
                value: "recon".into(),
            },
            FilterCondition::Protocol {
                value: Protocol::Tcp,
            },
        ],
    };
    spec.validate(true).unwrap();
    let f = s.create_filter(&spec).await.unwrap();
    assert_eq!(f.hits, 0);
    assert_eq!(s.get_filter(f.id).await.unwrap(), f);
    let g = s
        .create_filter(&EventFilterSpec {
            division_id: d2,
            name: "other".into(),
            description: None,
            enabled: false,
            action: FilterAction::Drop,
            conditions: vec![FilterCondition::Protocol {
                value: Protocol::Udp,
            }],
        })
        .await
        .unwrap();
    assert_eq!(s.list_filters(Some(&[d1])).await.unwrap(), vec![f.clone()]);
    assert_eq!(s.list_filters(None).await.unwrap().len(), 2);
    assert_kind(
        s.create_filter(&EventFilterSpec {
            division_id: DivisionId(999),
            ..spec.clone()
        })
        .await,
        ErrorKind::NotFound,
        "division.not_found",
    );
    // Concurrent hit counting loses no increments.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let s = s.clone();
        let id = f.id;
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                s.add_filter_hits(id, 3).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.get_filter(f.id).await.unwrap().hits, 300);
    let mut changed = spec.clone();
    changed.enabled = false;
    changed.conditions.truncate(1);
    let updated = s.update_filter(f.id, &changed).await.unwrap();
    assert_eq!(updated.spec, changed);
    assert_eq!(updated.hits, 300);
    assert_kind(
        s.add_filter_hits(FilterId(999), 1).await,
        ErrorKind::NotFound,
        "filter.not_found",
    );
    assert_kind(
        s.update_filter(FilterId(999), &changed).await,
        ErrorKind::NotFound,
        "filter.not_found",
    );
    s.delete_filter(g.id).await.unwrap();
    assert_kind(
        s.delete_filter(g.id).await,
        ErrorKind::NotFound,
        "filter.not_found",
    );
}

pub async fn settings_roundtrip(s: S) {
    assert_eq!(s.get_settings().await.unwrap(), Settings::default());
    let mut st = Settings {
        update_interval: 1,
        ..Settings::default()
    };
    st.smtp.enabled = true;
    st.smtp.host = "mail.example.org".into();
    st.smtp.password = Some("sécret".into());
    st.service_network = "172.31.0.0/24".parse().unwrap();
    st.require_event_comment = true;
    st.validate().unwrap();
    s.put_settings(&st).await.unwrap();
    assert_eq!(s.get_settings().await.unwrap(), st);
    st.archive_after_days = 30;
    s.put_settings(&st).await.unwrap();
    assert_eq!(s.get_settings().await.unwrap(), st);
}

fn cert(serial: &str, sensor: Option<SensorId>, not_after_offset_s: i64) -> IssuedCertificate {
    let t = now();
    IssuedCertificate {
        serial: serial.into(),
        sensor_id: sensor,
        fingerprint: format!("{serial:0>64}"),
        not_before: t,
        not_after: t + ChronoDuration::seconds(not_after_offset_s),
        cert_pem: format!("-----BEGIN CERTIFICATE-----\n{serial}\n-----END CERTIFICATE-----\n"),
        revoked_at: None,
    }
}

pub async fn certificates_and_revocation(s: S) {
    assert!(s.get_ca().await.unwrap().is_none());
    let ca = CaRecord {
        cert_pem: "CA CERT".into(),
        key_pem: "CA KEY".into(),
        created_at: now(),
    };
    assert_eq!(s.init_ca(&ca).await.unwrap(), ca);
    // First writer wins: a second server starting concurrently adopts the stored CA.
    let other = CaRecord {
        cert_pem: "OTHER".into(),
        key_pem: "OTHER KEY".into(),
        created_at: now(),
    };
    assert_eq!(s.init_ca(&other).await.unwrap(), ca);
    assert_eq!(s.get_ca().await.unwrap(), Some(ca));
    assert!(!format!("{other:?}").contains("OTHER KEY"));

    let d = division(&s, "d").await;
    let s1 = sensor(&s, d, "s1").await;
    let s2 = sensor(&s, d, "s2").await;
    let c1 = cert("0a01", Some(s1), 3600);
    let c2 = cert("0a02", Some(s1), 7200);
    let c3 = cert("0a03", Some(s2), 3600);
    let expired = cert("0a04", Some(s2), -10);
    for c in [&c1, &c2, &c3, &expired] {
        s.record_certificate(c).await.unwrap();
    }
    assert_kind(
        s.record_certificate(&c1).await,
        ErrorKind::Conflict,
        "certificate.conflict",
    );
    assert_kind(
        s.record_certificate(&IssuedCertificate {
            serial: "ff".into(),
            ..c1.clone()
        })
        .await,
        ErrorKind::Conflict,
        "certificate.conflict",
    );
    assert_kind(
        s.record_certificate(&cert("0a05", Some(SensorId(999)), 10))
            .await,
        ErrorKind::NotFound,
        "sensor.not_found",
    );
    assert_eq!(
        s.get_certificate_by_fingerprint(&c2.fingerprint)
            .await
            .unwrap(),
        c2
    );
    assert_kind(
        s.get_certificate_by_fingerprint("nope").await,
        ErrorKind::NotFound,
        "certificate.not_found",
    );
    assert_eq!(s.list_certificates(s1).await.unwrap().len(), 2);

    let t = now();
    s.revoke_certificate("0a01", t).await.unwrap();
    s.revoke_certificate("0a01", t + ChronoDuration::seconds(60))
        .await
        .unwrap();
    assert_eq!(
        s.get_certificate_by_fingerprint(&c1.fingerprint)
            .await
            .unwrap()
            .revoked_at,
        Some(t)
    );
    assert_kind(
        s.revoke_certificate("beef", t).await,
        ErrorKind::NotFound,
        "certificate.not_found",
    );
    s.revoke_certificate("0a04", t).await.unwrap();
    // The CRL holds revoked certificates that have not expired yet.
    let crl: Vec<_> = s
        .list_revoked(now())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.serial)
        .collect();
    assert_eq!(crl, vec!["0a01"]);
    // Deleting a sensor revokes its certificates at once and keeps the records.
    s.delete_sensor(s2).await.unwrap();
    let c3_after = s
        .get_certificate_by_fingerprint(&c3.fingerprint)
        .await
        .unwrap();
    assert!(c3_after.revoked_at.is_some());
    assert_eq!(c3_after.sensor_id, None);
    let crl: Vec<_> = s
        .list_revoked(now())
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.serial)
        .collect();
    assert_eq!(crl, vec!["0a01", "0a03"]);
}

pub async fn jobs_enqueued_once_per_key(s: S) {
    let job = NewJob::now("summary.weekly", serde_json::json!({"week": 48}));
    let first = s
        .enqueue_job_once(&job, "summary.weekly:2026-W48")
        .await
        .unwrap()
        .expect("first enqueue creates the job");
    // Concurrent schedulers (replicas) racing for the same key: none gets a second job.
    let racers: Vec<_> = (0..6)
        .map(|_| {
            let s = s.clone();
            let job = job.clone();
            tokio::spawn(async move { s.enqueue_job_once(&job, "summary.weekly:2026-W48").await })
        })
        .collect();
    for r in racers {
        assert_eq!(r.await.unwrap().unwrap(), None);
    }
    // Done jobs still hold their key until purged.
    let claimed = s
        .claim_jobs(
            "w",
            Some(&["summary.weekly".to_owned()]),
            10,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), [first]);
    s.complete_job(first, "w").await.unwrap();
    assert_eq!(
        s.enqueue_job_once(&job, "summary.weekly:2026-W48")
            .await
            .unwrap(),
        None
    );
    // Another key, and ordinary jobs, are unaffected.
    assert!(
        s.enqueue_job_once(&job, "summary.weekly:2026-W49")
            .await
            .unwrap()
            .is_some()
    );
    s.enqueue_job(&job).await.unwrap();
    s.enqueue_job(&job).await.unwrap();
    assert_eq!(
        s.purge_jobs(now() + ChronoDuration::seconds(1))
            .await
            .unwrap(),
        1
    );
    assert!(
        s.enqueue_job_once(&job, "summary.weekly:2026-W48")
            .await
            .unwrap()
            .is_some(),
        "a purged key can be used again"
    );
}

pub async fn jobs_lifecycle(s: S) {
    let due = s
        .enqueue_job(&NewJob::now(
            "notify.email",
            serde_json::json!({"to": "soc@example.org"}),
        ))
        .await
        .unwrap();
    let later = s
        .enqueue_job(&NewJob {
            run_at: now() + ChronoDuration::hours(1),
            ..NewJob::now("notify.webhook", serde_json::json!([1, 2]))
        })
        .await
        .unwrap();
    let other_kind = s
        .enqueue_job(&NewJob::now("retention.archive", serde_json::Value::Null))
        .await
        .unwrap();
    assert_kind(
        s.enqueue_job(&NewJob::now("Bad Kind", serde_json::Value::Null))
            .await,
        ErrorKind::Invalid,
        "validation.failed",
    );

    let kinds = vec!["notify.email".to_owned(), "notify.webhook".to_owned()];
    let claimed = s
        .claim_jobs("w1", Some(&kinds), 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), vec![due]);
    let j = &claimed[0];
    assert_eq!(
        (j.state, j.attempts, j.locked_by.as_deref()),
        (JobState::Running, 1, Some("w1"))
    );
    assert_eq!(j.payload, serde_json::json!({"to": "soc@example.org"}));
    // Nothing else is due for these kinds; a running job is not handed out twice.
    assert!(
        s.claim_jobs("w2", Some(&kinds), 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert_kind(
        s.complete_job(due, "w2").await,
        ErrorKind::Conflict,
        "job.conflict",
    );
    // Fail with retry: back in the queue for later.
    let retry_at = now() + ChronoDuration::minutes(5);
    s.fail_job(due, "w1", "smtp: connection refused", Some(retry_at))
        .await
        .unwrap();
    let j = s.get_job(due).await.unwrap();
    assert_eq!(
        (j.state, j.run_at, j.last_error.as_deref(), j.locked_by),
        (
            JobState::Queued,
            retry_at,
            Some("smtp: connection refused"),
            None
        )
    );
    assert!(
        s.claim_jobs("w1", Some(&kinds), 10, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );

    let c = s
        .claim_jobs("w3", None, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(c.iter().map(|j| j.id).collect::<Vec<_>>(), vec![other_kind]);
    s.complete_job(other_kind, "w3").await.unwrap();
    assert_eq!(s.get_job(other_kind).await.unwrap().state, JobState::Done);
    assert_kind(
        s.complete_job(other_kind, "w3").await,
        ErrorKind::Conflict,
        "job.conflict",
    );
    assert_kind(
        s.get_job(JobId(999_999)).await,
        ErrorKind::NotFound,
        "job.not_found",
    );
    assert_kind(
        s.complete_job(JobId(999_999), "w3").await,
        ErrorKind::NotFound,
        "job.not_found",
    );

    // A crashed worker's lease expires and another worker takes the job over; on the last
    // attempt an expired lease fails the job instead.
    let crashy = s
        .enqueue_job(&NewJob {
            max_attempts: 2,
            ..NewJob::now("notify.syslog", serde_json::Value::Null)
        })
        .await
        .unwrap();
    let k = vec!["notify.syslog".to_owned()];
    assert_eq!(
        s.claim_jobs("dead", Some(&k), 1, Duration::from_millis(1))
            .await
            .unwrap()
            .len(),
        1
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = s
        .claim_jobs("alive", Some(&k), 1, Duration::from_millis(1))
        .await
        .unwrap();
    assert_eq!((again[0].id, again[0].attempts), (crashy, 2));
    assert_kind(
        s.complete_job(crashy, "dead").await,
        ErrorKind::Conflict,
        "job.conflict",
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(
        s.claim_jobs("third", Some(&k), 1, Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(s.get_job(crashy).await.unwrap().state, JobState::Failed);

    // Failing without retry ends the job.
    let once = s
        .enqueue_job(&NewJob::now("notify.once", serde_json::Value::Null))
        .await
        .unwrap();
    s.claim_jobs(
        "w",
        Some(&["notify.once".to_owned()]),
        1,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    s.fail_job(once, "w", "permanent", None).await.unwrap();
    assert_eq!(s.get_job(once).await.unwrap().state, JobState::Failed);
    assert_eq!(
        s.purge_jobs(now() + ChronoDuration::seconds(1))
            .await
            .unwrap(),
        3
    );
    assert_eq!(s.get_job(later).await.unwrap().state, JobState::Queued);
    assert_eq!(s.get_job(due).await.unwrap().state, JobState::Queued);
}

pub async fn jobs_claimed_once_under_concurrency(s: S) {
    for i in 0..200 {
        s.enqueue_job(&NewJob::now("notify.email", serde_json::json!({ "n": i })))
            .await
            .unwrap();
    }
    let mut workers = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        workers.push(tokio::spawn(async move {
            let name = format!("worker-{w}");
            let mut mine = Vec::new();
            loop {
                let jobs = s
                    .claim_jobs(&name, None, 7, Duration::from_secs(300))
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    break;
                }
                for j in jobs {
                    s.complete_job(j.id, &name).await.unwrap();
                    mine.push(j.id);
                }
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 200, "every job ran");
    assert_eq!(unique.len(), 200, "no job ran twice");
}

pub async fn concurrent_writers(s: S) {
    let d = division(&s, "d").await;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let sn = s
                .create_sensor(&SensorSpec::new(format!("sensor-{t}"), d))
                .await
                .unwrap()
                .id;
            let base = to_micros(now());
            let mut inserted = 0;
            for b in 0..20i64 {
                let batch: Vec<_> = (0..50)
                    .map(|i| {
                        (
                            event(sn, base + b * 100 + i, "10.0.0.1", 22),
                            d,
                            EventStatus::New,
                        )
                    })
                    .collect();
                inserted += s.insert_events(&batch).await.unwrap().inserted.len();
                s.record_status(&report(sn, base, base + b, SensorState::Running))
                    .await
                    .unwrap();
            }
            inserted
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 8 * 20 * 50);
    assert_eq!(s.count_events(&EventQuery::default()).await.unwrap(), 8000);
    assert_eq!(s.list_sensors(None).await.unwrap().len(), 8);
}

async fn person(s: &S, name: &str, role: Role) -> UserId {
    let spec = UserSpec {
        name: name.into(),
        full_name: None,
        email: None,
        role,
        divisions: vec![],
    };
    s.create_user(&spec, "$argon2id$x").await.unwrap().id
}

fn session(id: &str, user: UserId, expires_in_s: i64) -> Session {
    let at = now();
    Session {
        id_hash: id.into(),
        user_id: user,
        csrf_token: format!("csrf-{id}"),
        created_at: at,
        expires_at: at + ChronoDuration::seconds(expires_in_s),
        last_seen_at: at,
    }
}

pub async fn sessions_lifecycle(s: S) {
    let alice = person(&s, "alice", Role::Admin).await;
    let bob = person(&s, "bob", Role::Observer).await;
    let a1 = session(&"a".repeat(64), alice, 3600);
    let a2 = session(&"b".repeat(64), alice, 3600);
    let b1 = session(&"c".repeat(64), bob, 3600);
    let expired = session(&"d".repeat(64), alice, -1);
    for sn in [&a1, &a2, &b1, &expired] {
        s.create_session(sn).await.unwrap();
    }
    assert_eq!(s.get_session(&a1.id_hash).await.unwrap(), a1);
    assert_kind(
        s.get_session(&expired.id_hash).await,
        ErrorKind::NotFound,
        "session.not_found",
    );
    assert_kind(
        s.get_session("missing").await,
        ErrorKind::NotFound,
        "session.not_found",
    );
    assert_kind(
        s.create_session(&a1).await,
        ErrorKind::Conflict,
        "session.conflict",
    );
    assert_kind(
        s.create_session(&session("e", UserId(424_242), 60)).await,
        ErrorKind::NotFound,
        "user.not_found",
    );

    // Sliding expiry: a touch moves both times; touching twice with equal values is fine.
    let later = now() + ChronoDuration::seconds(5);
    let until = later + ChronoDuration::hours(8);
    s.touch_session(&a1.id_hash, later, until).await.unwrap();
    s.touch_session(&a1.id_hash, later, until).await.unwrap();
    let touched = s.get_session(&a1.id_hash).await.unwrap();
    assert_eq!((touched.last_seen_at, touched.expires_at), (later, until));
    assert_kind(
        s.touch_session("missing", later, until).await,
        ErrorKind::NotFound,
        "session.not_found",
    );

    // Ending the other sessions of a user keeps the named one and other users' sessions.
    assert_eq!(
        s.delete_user_sessions(alice, Some(&a1.id_hash))
            .await
            .unwrap(),
        2
    );
    s.get_session(&a1.id_hash).await.unwrap();
    s.get_session(&b1.id_hash).await.unwrap();
    assert_kind(
        s.get_session(&a2.id_hash).await,
        ErrorKind::NotFound,
        "session.not_found",
    );
    s.delete_session(&a1.id_hash).await.unwrap();
    s.delete_session(&a1.id_hash).await.unwrap();
    assert!(s.get_session(&a1.id_hash).await.is_err());

    // Deleting the user ends their sessions.
    s.delete_user(bob).await.unwrap();
    assert!(s.get_session(&b1.id_hash).await.is_err());
    assert_eq!(s.delete_user_sessions(bob, None).await.unwrap(), 0);
}

pub async fn api_tokens_lifecycle(s: S) {
    let alice = person(&s, "alice", Role::Admin).await;
    let bob = person(&s, "bob", Role::Manager).await;
    let expires = now() + ChronoDuration::days(30);
    let new = NewApiToken {
        user_id: alice,
        name: "ci".into(),
        token_hash: "1".repeat(64),
        scope: TokenScope::Read,
        expires_at: Some(expires),
    };
    let t1 = s.create_api_token(&new).await.unwrap();
    assert_eq!(t1.scope, TokenScope::Read);
    assert_eq!(t1.expires_at, Some(expires));
    assert!(t1.is_usable(now()));
    assert!(!t1.is_usable(expires));
    assert_eq!(s.get_api_token(t1.id).await.unwrap(), t1);
    assert_eq!(s.get_api_token_by_hash(&new.token_hash).await.unwrap(), t1);
    assert_kind(
        s.create_api_token(&new).await,
        ErrorKind::Conflict,
        "api_token.conflict",
    );
    assert_kind(
        s.create_api_token(&NewApiToken {
            user_id: UserId(424_242),
            token_hash: "9".repeat(64),
            ..new.clone()
        })
        .await,
        ErrorKind::NotFound,
        "user.not_found",
    );
    let t2 = s
        .create_api_token(&NewApiToken {
            user_id: bob,
            name: "script".into(),
            token_hash: "2".repeat(64),
            scope: TokenScope::Admin,
            expires_at: None,
        })
        .await
        .unwrap();
    assert_eq!(t2.scope.effective_role(Role::Manager), Role::Manager);
    assert_eq!(
        s.list_api_tokens(None)
            .await
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        vec![t1.id, t2.id]
    );
    assert_eq!(
        s.list_api_tokens(Some(bob)).await.unwrap(),
        vec![t2.clone()]
    );
    assert_kind(
        s.get_api_token_by_hash(&"3".repeat(64)).await,
        ErrorKind::NotFound,
        "api_token.not_found",
    );

    let used = now();
    s.touch_api_token(t2.id, used).await.unwrap();
    s.touch_api_token(t2.id, used).await.unwrap();
    assert_eq!(
        s.get_api_token(t2.id).await.unwrap().last_used_at,
        Some(used)
    );
    assert_kind(
        s.touch_api_token(ApiTokenId(424_242), used).await,
        ErrorKind::NotFound,
        "api_token.not_found",
    );

    // Revocation is idempotent and keeps the first time.
    let first = now();
    s.revoke_api_token(t2.id, first).await.unwrap();
    s.revoke_api_token(t2.id, first + ChronoDuration::seconds(9))
        .await
        .unwrap();
    let revoked = s.get_api_token_by_hash(&"2".repeat(64)).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(first));
    assert!(!revoked.is_usable(now()));
    assert_kind(
        s.revoke_api_token(ApiTokenId(424_242), first).await,
        ErrorKind::NotFound,
        "api_token.not_found",
    );

    // Tokens go with their owner.
    s.delete_user(bob).await.unwrap();
    assert!(s.get_api_token(t2.id).await.is_err());
    assert_eq!(s.list_api_tokens(None).await.unwrap().len(), 1);
}

pub async fn audit_log_paging(s: S) {
    let alice = person(&s, "alice", Role::Admin).await;
    assert!(s.list_audit(10, None).await.unwrap().is_empty());
    let mut ids = Vec::new();
    for i in 0..5 {
        let e = s
            .append_audit(&NewAuditEntry {
                user_id: if i == 4 { None } else { Some(alice) },
                actor: if i == 4 {
                    "system".into()
                } else {
                    "alice".into()
                },
                action: "division.create".into(),
                target: format!("division:{i}"),
                detail: serde_json::json!({ "name": format!("d{i}"), "ümlaut": "ä" }),
            })
            .await
            .unwrap();
        ids.push(e.id);
    }
    let all = s.list_audit(100, None).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.id).collect::<Vec<_>>(),
        ids.iter().rev().copied().collect::<Vec<_>>()
    );
    assert_eq!(all[4].target, "division:0");
    assert_eq!(all[4].detail["ümlaut"], "ä");
    assert_eq!(all[4].user_id, Some(alice));
    assert_eq!(all[0].user_id, None);
    let page = s.list_audit(2, Some(ids[3])).await.unwrap();
    assert_eq!(
        page.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    assert!(s.list_audit(0, None).await.unwrap().is_empty());

    // Entries outlive their actor: the name stays, the user link goes.
    s.delete_user(alice).await.unwrap();
    let after = s.list_audit(100, None).await.unwrap();
    assert_eq!(after.len(), 5);
    assert!(after.iter().all(|e| e.user_id.is_none()));
    assert_eq!(after[4].actor, "alice");
}

// ---------------------------------------------------------------------------------------------
// Incidents, ingest fan-out, statistics, sensor offline flag.

const MIN: i64 = 60_000_000;

fn opts(window_min: u64, alerts: bool, forward: bool) -> IngestOptions {
    IngestOptions {
        incident_window: Some(Duration::from_secs(window_min * 60)),
        alert_interval: Duration::from_secs(15 * 60),
        alerts,
        forward,
    }
}

fn sev(mut e: NewEvent, severity: Severity, class: Classification) -> NewEvent {
    e.data.severity = severity;
    e.data.classification = class;
    e
}

/// Every job of the (fresh) database; ids are assigned from 1 on every backend.
async fn all_jobs(s: &S) -> Vec<Job> {
    let mut out = Vec::new();
    for i in 1..=200 {
        if let Ok(j) = s.get_job(JobId(i)).await {
            out.push(j);
        }
    }
    out
}

fn jobs_of<'a>(jobs: &'a [Job], kind: &str) -> Vec<&'a Job> {
    jobs.iter().filter(|j| j.kind == kind).collect()
}

pub async fn incidents_group_across_sensors(s: S) {
    let d1 = division(&s, "d1").await;
    let d2 = division(&s, "d2").await;
    let s1 = sensor(&s, d1, "s1").await;
    let s2 = sensor(&s, d1, "s2").await;
    let s3 = sensor(&s, d2, "s3").await;
    let t0 = to_micros(now()) - 120 * MIN;
    let a = "203.0.113.7";
    let batch = vec![
        (event(s1, t0, a, 22), d1, EventStatus::New),
        (
            sev(
                event(s2, t0 + MIN, a, 445),
                Severity::High,
                Classification::HoneypotInteraction,
            ),
            d1,
            EventStatus::New,
        ),
        // Same source, other division: its own incident.
        (event(s3, t0 + MIN / 2, a, 22), d2, EventStatus::New),
        // Resolved by a filter: stored, but no incident.
        (event(s1, t0 + 2 * MIN, a, 80), d1, EventStatus::Resolved),
        // Another source in d1.
        (event(s1, t0, "198.51.100.1", 22), d1, EventStatus::New),
    ];
    let r = s
        .ingest_events(&batch, &opts(10, false, false))
        .await
        .unwrap();
    assert_eq!(r.inserted.len(), 5);
    assert!(r.duplicates.is_empty());
    assert_eq!(r.incidents.len(), 3, "{r:?}");
    assert!(r.incidents.iter().all(|t| t.created && !t.alert_enqueued));
    let ev = |i: usize| r.inserted[i].1;
    let e0 = s.get_event(ev(0)).await.unwrap();
    let e1 = s.get_event(ev(1)).await.unwrap();
    let e2 = s.get_event(ev(2)).await.unwrap();
    let e3 = s.get_event(ev(3)).await.unwrap();
    let e4 = s.get_event(ev(4)).await.unwrap();
    let ia = e0.incident_id.expect("grouped");
    assert_eq!(e1.incident_id, Some(ia));
    assert_eq!(e3.incident_id, None, "resolved events get no incident");
    let ib = e2.incident_id.expect("grouped");
    let ic = e4.incident_id.expect("grouped");
    assert!(ia != ib && ia != ic && ib != ic);
    let touch_a = r.incidents.iter().find(|t| t.id == ia).unwrap();
    assert_eq!(touch_a.events, 2);

    let inc = s.get_incident(ia).await.unwrap();
    assert_eq!(inc.division_id, d1);
    assert_eq!(inc.source_ip, ip(a));
    assert_eq!((inc.event_count, inc.sensor_count), (2, 2));
    assert_eq!(
        (to_micros(inc.first_seen), to_micros(inc.last_seen)),
        (t0, t0 + MIN)
    );
    assert_eq!(
        (inc.severity, inc.classification),
        (Severity::High, Classification::HoneypotInteraction)
    );
    assert_eq!(
        (inc.status, inc.archived, inc.last_alert_at),
        (EventStatus::New, false, None)
    );
    let inc_b = s.get_incident(ib).await.unwrap();
    assert_eq!(
        (inc_b.division_id, inc_b.event_count, inc_b.sensor_count),
        (d2, 1, 1)
    );

    // Within the window of last_seen: joins; a lower severity keeps the incident's.
    let r2 = s
        .ingest_events(
            &[(event(s1, t0 + 9 * MIN, a, 23), d1, EventStatus::New)],
            &opts(10, false, false),
        )
        .await
        .unwrap();
    assert_eq!(
        r2.incidents,
        vec![IncidentTouch {
            id: ia,
            created: false,
            events: 1,
            alert_enqueued: false
        }]
    );
    let inc = s.get_incident(ia).await.unwrap();
    assert_eq!((inc.event_count, inc.sensor_count), (3, 2));
    assert_eq!(to_micros(inc.last_seen), t0 + 9 * MIN);
    assert_eq!(inc.severity, Severity::High);

    // After the window: a new incident. In one batch, a gap larger than the window splits too.
    let r3 = s
        .ingest_events(
            &[
                (event(s2, t0 + 30 * MIN, a, 22), d1, EventStatus::New),
                (event(s1, t0 + 31 * MIN, a, 22), d1, EventStatus::New),
                (event(s1, t0 + 50 * MIN, a, 22), d1, EventStatus::New),
            ],
            &opts(10, false, false),
        )
        .await
        .unwrap();
    assert_eq!(r3.incidents.len(), 2, "{r3:?}");
    assert!(r3.incidents.iter().all(|t| t.created && t.id != ia));
    assert_eq!(
        r3.incidents.iter().map(|t| t.events).collect::<Vec<_>>(),
        vec![2, 1]
    );
    let first = s.get_incident(r3.incidents[0].id).await.unwrap();
    assert_eq!((first.event_count, first.sensor_count), (2, 2));
    assert_eq!(
        (to_micros(first.first_seen), to_micros(first.last_seen)),
        (t0 + 30 * MIN, t0 + 31 * MIN)
    );
    assert_eq!(s.get_incident(ia).await.unwrap().event_count, 3);

    // Duplicates touch nothing; plain inserts make no incidents.
    let again = s
        .ingest_events(&batch, &opts(10, true, true))
        .await
        .unwrap();
    assert!(again.inserted.is_empty() && again.incidents.is_empty());
    assert_eq!(again.duplicates.len(), 5);
    assert!(all_jobs(&s).await.is_empty(), "duplicates enqueue nothing");
    assert_eq!(s.get_incident(ia).await.unwrap().event_count, 3);
    let plain = s
        .insert_events(&[(event(s1, t0 + 9 * MIN, a, 24), d1, EventStatus::New)])
        .await
        .unwrap();
    assert_eq!(
        s.get_event(plain.inserted[0].1).await.unwrap().incident_id,
        None
    );
    assert_eq!(s.get_incident(ia).await.unwrap().event_count, 3);

    // The event query's incident and severity conditions.
    let of_a = list_all(
        &s,
        &EventQuery {
            incident: Some(ia),
            ..Default::default()
        },
    )
    .await;
    let mut expected = vec![ev(0), ev(1), r2.inserted[0].1];
    expected.sort();
    let mut got = of_a.clone();
    got.sort();
    assert_eq!(got, expected);
    let high = list_all(
        &s,
        &EventQuery {
            severities: vec![Severity::High, Severity::Critical],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(high, vec![ev(1)]);
    assert_eq!(
        s.count_events(&EventQuery {
            incident: Some(ia),
            severities: vec![Severity::Low],
            ..Default::default()
        })
        .await
        .unwrap(),
        2
    );
    assert_kind(
        s.get_incident(IncidentId(31337)).await,
        ErrorKind::NotFound,
        "incident.not_found",
    );
}

pub async fn incidents_alerts_and_forwarding(s: S) {
    let d = division(&s, "d").await;
    let s1 = sensor(&s, d, "s1").await;
    let t0 = to_micros(now()) - 60 * MIN;
    let a = "203.0.113.9";
    let before = now();
    let r = s
        .ingest_events(
            &[
                (event(s1, t0, a, 22), d, EventStatus::New),
                (event(s1, t0 + 1, a, 80), d, EventStatus::Ignored),
            ],
            &opts(30, true, true),
        )
        .await
        .unwrap();
    assert_eq!(r.incidents.len(), 1);
    assert!(r.incidents[0].created && r.incidents[0].alert_enqueued);
    let inc = r.incidents[0].id;
    let jobs = all_jobs(&s).await;
    let alerts = jobs_of(&jobs, ALERT_JOB);
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].payload,
        serde_json::json!({ "incident_id": inc.0 })
    );
    assert_eq!(alerts[0].max_attempts, 3);
    assert!(alerts[0].run_at >= before && alerts[0].run_at <= now());
    // Forwarding carries every stored event, whatever its status.
    let fwd = jobs_of(&jobs, FORWARD_JOB);
    assert_eq!(fwd.len(), 1);
    let ids: Vec<i64> = r.inserted.iter().map(|(_, id)| id.0).collect();
    assert_eq!(fwd[0].payload, serde_json::json!({ "event_ids": ids }));

    // While the alert is pending, more events do not enqueue another.
    let r2 = s
        .ingest_events(
            &[(event(s1, t0 + MIN, a, 22), d, EventStatus::New)],
            &opts(30, true, false),
        )
        .await
        .unwrap();
    assert_eq!(r2.incidents.len(), 1);
    assert!(!r2.incidents[0].created && !r2.incidents[0].alert_enqueued);
    let jobs = all_jobs(&s).await;
    assert_eq!(jobs_of(&jobs, ALERT_JOB).len(), 1);
    assert_eq!(jobs_of(&jobs, FORWARD_JOB).len(), 1, "forward was off");

    // Sending starts: pending cleared, last_alert_at set; the previous state is returned.
    let at = now();
    let was = s.begin_incident_alert(inc, at).await.unwrap();
    assert_eq!((was.id, was.last_alert_at, was.event_count), (inc, None, 2));
    assert_eq!(s.get_incident(inc).await.unwrap().last_alert_at, Some(at));
    assert_kind(
        s.begin_incident_alert(IncidentId(31337), at).await,
        ErrorKind::NotFound,
        "incident.not_found",
    );

    // The next alert waits for the alert interval after the last one.
    let r3 = s
        .ingest_events(
            &[(event(s1, t0 + 2 * MIN, a, 22), d, EventStatus::New)],
            &opts(30, true, false),
        )
        .await
        .unwrap();
    assert!(r3.incidents[0].alert_enqueued);
    let jobs = all_jobs(&s).await;
    let alerts = jobs_of(&jobs, ALERT_JOB);
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[1].run_at, at + ChronoDuration::minutes(15));
    let again = s
        .ingest_events(
            &[(event(s1, t0 + 3 * MIN, a, 22), d, EventStatus::New)],
            &opts(30, true, false),
        )
        .await
        .unwrap();
    assert!(!again.incidents[0].alert_enqueued);
    assert_eq!(jobs_of(&all_jobs(&s).await, ALERT_JOB).len(), 2);
    // Not claimable before it is due.
    let kinds = vec![ALERT_JOB.to_owned()];
    let claimed = s
        .claim_jobs("w", Some(&kinds), 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![alerts[0].id]
    );

    // An old last alert: due now, not in the past.
    s.begin_incident_alert(inc, at - ChronoDuration::hours(2))
        .await
        .unwrap();
    let before = now();
    s.ingest_events(
        &[(event(s1, t0 + 4 * MIN, a, 22), d, EventStatus::New)],
        &opts(30, true, false),
    )
    .await
    .unwrap();
    let jobs = all_jobs(&s).await;
    let alerts = jobs_of(&jobs, ALERT_JOB);
    assert_eq!(alerts.len(), 3);
    assert!(alerts[2].run_at >= before && alerts[2].run_at <= now());
}

pub async fn incidents_concurrent_ingest(s: S) {
    let d = division(&s, "d").await;
    let mut sensors = Vec::new();
    for i in 0..4 {
        sensors.push(sensor(&s, d, &format!("s{i}")).await);
    }
    let t0 = to_micros(now()) - 30 * MIN;
    let a = "203.0.113.50";
    // No incident exists yet: the concurrent batches race to open it and to enqueue its alert.
    let mut tasks = Vec::new();
    for w in 0..8i64 {
        let s = s.clone();
        let sensors = sensors.clone();
        tasks.push(tokio::spawn(async move {
            let mut total = 0;
            for round in 0..3i64 {
                let batch: Vec<_> = (0..10i64)
                    .map(|i| {
                        let sn = sensors[((w + i) % 4) as usize];
                        let ts = t0 + w * 1000 + round * 100 + i;
                        (event(sn, ts, a, 22), d, EventStatus::New)
                    })
                    .collect();
                let r = s
                    .ingest_events(&batch, &opts(60, true, false))
                    .await
                    .unwrap();
                total += r.inserted.len();
            }
            total
        }));
    }
    let mut inserted = 0;
    for t in tasks {
        inserted += t.await.unwrap();
    }
    assert_eq!(inserted, 240);
    let page = s
        .list_incidents(&IncidentQuery::default(), &PageRequest::first(100))
        .await
        .unwrap();
    // All within one window: one incident, no lost increments.
    assert_eq!(page.items.len(), 1, "{:?}", page.items);
    let inc = &page.items[0];
    assert_eq!((inc.event_count, inc.sensor_count), (240, 4));
    assert_eq!(
        s.count_events(&EventQuery {
            incident: Some(inc.id),
            ..Default::default()
        })
        .await
        .unwrap(),
        240
    );
    // The first batch to lock the incident enqueued the alert; the others saw it pending.
    assert_eq!(jobs_of(&all_jobs(&s).await, ALERT_JOB).len(), 1);
}

/// The same upload sent by several workers at once (a sensor retrying a slow upload): each
/// event is stored once and counted once by its incident, whoever wins the race.
pub async fn incidents_concurrent_duplicate_uploads(s: S) {
    let d = division(&s, "d").await;
    let s1 = sensor(&s, d, "s1").await;
    let t0 = to_micros(now()) - 30 * MIN;
    let sources = ["203.0.113.60", "203.0.113.61", "198.51.100.62"];
    let batch: Vec<_> = (0..30i64)
        .map(|i| {
            let a = sources[(i % 3) as usize];
            (event(s1, t0 + i, a, 22), d, EventStatus::New)
        })
        .collect();
    let batch = Arc::new(batch);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let s = s.clone();
        let batch = batch.clone();
        tasks.push(tokio::spawn(async move {
            s.ingest_events(&batch, &opts(60, true, false))
                .await
                .unwrap()
        }));
    }
    let mut stored = Vec::new();
    let mut duplicates = 0;
    let mut touched = 0;
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.inserted.len() + r.duplicates.len(), 30, "{r:?}");
        assert_eq!(
            r.incidents.iter().map(|t| t.events).sum::<u64>(),
            r.inserted.len() as u64
        );
        touched += r.incidents.len();
        duplicates += r.duplicates.len();
        stored.extend(r.inserted);
    }
    assert_eq!(stored.len(), 30, "every event stored exactly once");
    assert_eq!(duplicates, 5 * 30);
    let uids: HashSet<Uuid> = stored.iter().map(|(u, _)| *u).collect();
    assert_eq!(uids.len(), 30);
    assert!(touched >= 3);
    let page = s
        .list_incidents(&IncidentQuery::default(), &PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3, "{:?}", page.items);
    for inc in &page.items {
        assert_eq!((inc.event_count, inc.sensor_count), (10, 1), "{inc:?}");
        let n = s
            .count_events(&EventQuery {
                incident: Some(inc.id),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(n, 10);
    }
    assert_eq!(jobs_of(&all_jobs(&s).await, ALERT_JOB).len(), 3);
}

pub async fn incidents_list_update_prune(s: S) {
    let d1 = division(&s, "d1").await;
    let d2 = division(&s, "d2").await;
    let s1 = sensor(&s, d1, "s1").await;
    let s2 = sensor(&s, d2, "s2").await;
    let t0 = to_micros(now()) - 600 * MIN;
    let mut batch = Vec::new();
    // Eight incidents: sources .1–.8 alternating divisions; two events each; some sharing
    // a last_seen so the keyset has to break ties by id.
    for i in 0..8i64 {
        let (sn, d) = if i % 2 == 0 { (s1, d1) } else { (s2, d2) };
        let src = format!("192.0.2.{}", i + 1);
        let last = t0 + (i / 2) * MIN;
        batch.push((event(sn, last - 10, &src, 22), d, EventStatus::New));
        batch.push((event(sn, last, &src, 80), d, EventStatus::New));
    }
    let r = s
        .ingest_events(&batch, &opts(5, false, false))
        .await
        .unwrap();
    assert_eq!(r.incidents.len(), 8);
    let mut all: Vec<Incident> = Vec::new();
    for t in &r.incidents {
        all.push(s.get_incident(t.id).await.unwrap());
    }
    let list_pages = |q: IncidentQuery, order: SortOrder| {
        let s = s.clone();
        async move {
            let mut out = Vec::new();
            let mut page = PageRequest {
                order,
                ..PageRequest::first(3)
            };
            loop {
                let p = s.list_incidents(&q, &page).await.unwrap();
                assert!(p.items.len() <= 3);
                out.extend(p.items.iter().cloned());
                match p.next {
                    Some(c) => page.after = Some(c),
                    None => break,
                }
            }
            out
        }
    };
    let mut expected = all.clone();
    expected.sort_by_key(|i| (i.last_seen, i.id));
    assert_eq!(
        list_pages(IncidentQuery::default(), SortOrder::Asc).await,
        expected
    );
    expected.reverse();
    assert_eq!(
        list_pages(IncidentQuery::default(), SortOrder::Desc).await,
        expected
    );
    let only_d2: Vec<_> = expected
        .iter()
        .filter(|i| i.division_id == d2)
        .cloned()
        .collect();
    assert_eq!(only_d2.len(), 4);
    assert_eq!(
        list_pages(
            IncidentQuery {
                divisions: Some(vec![d2]),
                ..Default::default()
            },
            SortOrder::Desc
        )
        .await,
        only_d2
    );
    let by_ip = list_pages(
        IncidentQuery {
            source_ip: Some(ip("192.0.2.3")),
            ..Default::default()
        },
        SortOrder::Desc,
    )
    .await;
    assert_eq!(by_ip.len(), 1);
    assert_eq!(by_ip[0].source_ip, ip("192.0.2.3"));
    let window = list_pages(
        IncidentQuery {
            from: Some(from_micros(t0 + MIN)),
            until: Some(from_micros(t0 + 3 * MIN)),
            ..Default::default()
        },
        SortOrder::Asc,
    )
    .await;
    assert_eq!(window.len(), 4);
    assert!(
        window
            .iter()
            .all(|i| [t0 + MIN, t0 + 2 * MIN].contains(&to_micros(i.last_seen)))
    );

    // Updates are scoped by the query; status and archive flag cascade to events.
    let target = all.iter().find(|i| i.division_id == d1).unwrap().clone();
    let other = all.iter().find(|i| i.division_id == d2).unwrap().clone();
    let resolve = IncidentUpdate {
        status: Some(EventStatus::Resolved),
        comment: Some(Some("handled".into())),
        ..Default::default()
    };
    let scope_d2 = IncidentQuery {
        divisions: Some(vec![d2]),
        ..Default::default()
    };
    assert_eq!(
        s.update_incidents(&[target.id], &scope_d2, &resolve)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.get_incident(target.id).await.unwrap().status,
        EventStatus::New
    );
    assert_eq!(
        s.update_incidents(&[target.id, other.id], &IncidentQuery::default(), &resolve)
            .await
            .unwrap(),
        2
    );
    let got = s.get_incident(target.id).await.unwrap();
    assert_eq!(
        (got.status, got.comment.as_deref()),
        (EventStatus::Resolved, Some("handled"))
    );
    let evq = |id: IncidentId| EventQuery {
        incident: Some(id),
        ..Default::default()
    };
    for id in [target.id, other.id] {
        let evs = list_all(&s, &evq(id)).await;
        assert_eq!(evs.len(), 2);
        for e in evs {
            let e = s.get_event(e).await.unwrap();
            assert_eq!(e.status, EventStatus::Resolved);
            assert_eq!(e.comment, None, "comments stay on the incident");
        }
    }
    // Untouched incidents keep their events' status.
    let third = all
        .iter()
        .find(|i| i.id != target.id && i.id != other.id)
        .unwrap();
    assert_eq!(
        s.count_events(&EventQuery {
            incident: Some(third.id),
            statuses: vec![EventStatus::New],
            ..Default::default()
        })
        .await
        .unwrap(),
        2
    );
    let statuses = list_pages(
        IncidentQuery {
            statuses: vec![EventStatus::Resolved],
            ..Default::default()
        },
        SortOrder::Asc,
    )
    .await;
    assert_eq!(statuses.len(), 2);
    assert_kind(
        s.update_incidents(
            &[target.id],
            &IncidentQuery::default(),
            &IncidentUpdate::default(),
        )
        .await,
        ErrorKind::Invalid,
        "validation.failed",
    );

    // Archive cascades; a resolved incident is not live, so new events open a new one.
    let archive = IncidentUpdate {
        archived: Some(true),
        ..Default::default()
    };
    assert_eq!(
        s.update_incidents(&[target.id], &IncidentQuery::default(), &archive)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.count_events(&EventQuery {
            incident: Some(target.id),
            archived: Some(true),
            ..Default::default()
        })
        .await
        .unwrap(),
        2
    );
    let archived = list_pages(
        IncidentQuery {
            archived: Some(true),
            ..Default::default()
        },
        SortOrder::Asc,
    )
    .await;
    assert_eq!(
        archived.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![target.id]
    );
    let src = target.source_ip.to_string();
    let r = s
        .ingest_events(
            &[(
                event(s1, to_micros(target.last_seen) + 1, &src, 22),
                d1,
                EventStatus::New,
            )],
            &opts(5, false, false),
        )
        .await
        .unwrap();
    assert!(r.incidents[0].created && r.incidents[0].id != target.id);

    // Pruning: only archived incidents before the cut-off without events.
    let cut = now();
    assert_eq!(
        s.prune_incidents(cut).await.unwrap(),
        0,
        "it still has events"
    );
    let deleted = s
        .delete_events(&EventSelection {
            ids: None,
            query: evq(target.id),
        })
        .await
        .unwrap();
    assert_eq!(deleted, 2);
    assert_eq!(
        s.prune_incidents(target.last_seen).await.unwrap(),
        0,
        "before is exclusive"
    );
    assert_eq!(s.prune_incidents(cut).await.unwrap(), 1);
    assert_kind(
        s.get_incident(target.id).await,
        ErrorKind::NotFound,
        "incident.not_found",
    );
    assert_eq!(s.get_incident(other.id).await.unwrap().event_count, 2);
    // Deleting an incident's division removes it.
    s.delete_events(&EventSelection {
        ids: None,
        query: EventQuery {
            divisions: Some(vec![d2]),
            ..Default::default()
        },
    })
    .await
    .unwrap();
    s.delete_sensor(s2).await.unwrap();
    s.delete_division(d2).await.unwrap();
    assert_kind(
        s.get_incident(other.id).await,
        ErrorKind::NotFound,
        "incident.not_found",
    );
}

fn cnt<K>(key: K, count: u64) -> Count<K> {
    Count { key, count }
}

pub async fn event_stats_exact(s: S) {
    use chrono::TimeZone;
    let d = division(&s, "d").await;
    let other = division(&s, "other").await;
    let s1 = sensor(&s, d, "s1").await;
    let s2 = sensor(&s, d, "s2").await;
    let at = |mo: u32, day: u32, h: u32, mi: u32| {
        to_micros(
            chrono::Utc
                .with_ymd_and_hms(2026, mo, day, h, mi, 0)
                .unwrap(),
        )
    };
    let mk = |sn: SensorId,
              ts: i64,
              src: &str,
              port: Option<u16>,
              class: Classification,
              status: EventStatus| {
        let mut e = event(sn, ts, src, port.unwrap_or(1));
        e.data.dest_port = port;
        e.data.classification = class;
        (e, d, status)
    };
    use Classification as C;
    use EventStatus as St;
    let batch = vec![
        mk(
            s1,
            at(1, 31, 22, 10),
            "10.0.0.1",
            Some(22),
            C::ConnectionAttempt,
            St::New,
        ),
        mk(
            s1,
            at(1, 31, 22, 50),
            "10.0.0.1",
            Some(22),
            C::PortScan,
            St::New,
        ),
        mk(
            s2,
            at(1, 31, 23, 5),
            "10.0.0.2",
            Some(80),
            C::ConnectionAttempt,
            St::Resolved,
        ),
        mk(s2, at(2, 1, 0, 30), "10.0.0.1", None, C::Icmp, St::New),
        mk(
            s1,
            at(3, 15, 12, 0),
            "::ffff:10.0.0.2",
            Some(443),
            C::HoneypotInteraction,
            St::Ignored,
        ),
        mk(
            s1,
            at(3, 15, 12, 59),
            "2001:db8::1",
            Some(22),
            C::ConnectionAttempt,
            St::New,
        ),
    ];
    s.insert_events(&batch).await.unwrap();
    let ts = |mo, day, h| from_micros(at(mo, day, h, 0));
    let q = EventQuery {
        divisions: Some(vec![d]),
        ..Default::default()
    };
    let hour = s.event_stats(&q, StatsBucket::Hour, 2).await.unwrap();
    let tp = |start, count| TimelinePoint { start, count };
    assert_eq!(hour.total, 6);
    assert_eq!(
        hour.by_status,
        vec![cnt(St::New, 4), cnt(St::Resolved, 1), cnt(St::Ignored, 1)]
    );
    assert_eq!(
        hour.by_classification,
        vec![
            cnt(C::Icmp, 1),
            cnt(C::ConnectionAttempt, 3),
            cnt(C::HoneypotInteraction, 1),
            cnt(C::PortScan, 1)
        ]
    );
    assert_eq!(
        hour.timeline,
        vec![
            tp(ts(1, 31, 22), 2),
            tp(ts(1, 31, 23), 1),
            tp(ts(2, 1, 0), 1),
            tp(ts(3, 15, 12), 2)
        ]
    );
    assert_eq!(
        hour.top_sources,
        vec![cnt(ip("10.0.0.1"), 3), cnt(ip("10.0.0.2"), 2)]
    );
    assert_eq!(hour.top_ports, vec![cnt(22u16, 3), cnt(80, 1)]);
    assert_eq!(hour.by_sensor, vec![cnt(s1, 4), cnt(s2, 2)]);

    let day = s.event_stats(&q, StatsBucket::Day, 100).await.unwrap();
    assert_eq!(
        day.timeline,
        vec![tp(ts(1, 31, 0), 3), tp(ts(2, 1, 0), 1), tp(ts(3, 15, 0), 2)]
    );
    assert_eq!(
        day.top_sources,
        vec![
            cnt(ip("10.0.0.1"), 3),
            cnt(ip("10.0.0.2"), 2),
            cnt(ip("2001:db8::1"), 1)
        ]
    );
    assert_eq!(day.top_ports, vec![cnt(22u16, 3), cnt(80, 1), cnt(443, 1)]);
    let month = s.event_stats(&q, StatsBucket::Month, 1).await.unwrap();
    assert_eq!(
        month.timeline,
        vec![tp(ts(1, 1, 0), 3), tp(ts(2, 1, 0), 1), tp(ts(3, 1, 0), 2)]
    );
    assert_eq!(month.top_sources, vec![cnt(ip("10.0.0.1"), 3)]);
    assert_eq!(month.by_sensor, vec![cnt(s1, 4)]);

    // Conditions apply to every aggregate.
    let new_only = s
        .event_stats(
            &EventQuery {
                statuses: vec![St::New],
                ..q.clone()
            },
            StatsBucket::Month,
            10,
        )
        .await
        .unwrap();
    assert_eq!(new_only.total, 4);
    assert_eq!(new_only.by_status, vec![cnt(St::New, 4)]);
    assert_eq!(
        new_only.timeline,
        vec![tp(ts(1, 1, 0), 2), tp(ts(2, 1, 0), 1), tp(ts(3, 1, 0), 1)]
    );
    assert_eq!(new_only.top_ports, vec![cnt(22u16, 3)]);
    let empty = s
        .event_stats(
            &EventQuery {
                divisions: Some(vec![other]),
                ..Default::default()
            },
            StatsBucket::Day,
            10,
        )
        .await
        .unwrap();
    assert_eq!(empty, EventStats::default());
    for top in [0, MAX_STATS_TOP + 1] {
        assert_kind(
            s.event_stats(&q, StatsBucket::Day, top).await,
            ErrorKind::Invalid,
            "validation.failed",
        );
    }
}

pub async fn sensor_offline_flag(s: S) {
    let d = division(&s, "d").await;
    let id = sensor(&s, d, "s1").await;
    let other = sensor(&s, d, "s2").await;
    assert!(!s.get_sensor(id).await.unwrap().offline);
    assert!(s.set_sensor_offline(id, true).await.unwrap());
    assert!(
        !s.set_sensor_offline(id, true).await.unwrap(),
        "no change the second time"
    );
    assert!(s.get_sensor(id).await.unwrap().offline);
    let listed = s.list_sensors(None).await.unwrap();
    assert_eq!(
        listed.iter().map(|x| (x.id, x.offline)).collect::<Vec<_>>(),
        vec![(id, true), (other, false)]
    );
    assert!(s.set_sensor_offline(id, false).await.unwrap());
    assert!(!s.set_sensor_offline(id, false).await.unwrap());
    assert!(!s.get_sensor(id).await.unwrap().offline);
    assert_kind(
        s.set_sensor_offline(SensorId(31337), true).await,
        ErrorKind::NotFound,
        "sensor.not_found",
    );
}
