//! SQLite-specific behaviour: a private database file, a bounded WAL, and the raw bulk insert
//! path storing exactly what the sqlx path stores.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// A store on a new SQLite file in its own directory, with one division and one sensor.
struct Fixture {
    dir: std::path::PathBuf,
    url: String,
    store: std::sync::Arc<dyn honeysens_core::Store>,
    div: honeysens_core::ids::DivisionId,
    sensor: honeysens_core::ids::SensorId,
}

impl Fixture {
    async fn new(prefix: &str) -> Fixture {
        use honeysens_core::model::{DivisionSpec, SensorSpec};
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("honeysens.db").display());
        let store = honeysens_store::open(&url, &Default::default())
            .await
            .unwrap();
        let div = store
            .create_division(&DivisionSpec { name: "d".into() })
            .await
            .unwrap()
            .id;
        let sensor = store
            .create_sensor(&SensorSpec::new("s", div))
            .await
            .unwrap()
            .id;
        Fixture {
            dir,
            url,
            store,
            div,
            sensor,
        }
    }

    async fn remove(self) {
        self.store.close().await;
        std::fs::remove_dir_all(&self.dir).unwrap();
    }
}

#[cfg(unix)]
#[tokio::test]
async fn new_database_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("hs-mode-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("honeysens.db");
    let store = honeysens_store::open(&format!("sqlite://{}", path.display()), &Default::default())
        .await
        .unwrap();
    store.ping().await.unwrap();
    for file in [path.clone(), dir.join("honeysens.db-wal")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    store.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Continuous writes must not grow the WAL without bound: the background checkpointer's PASSIVE
/// checkpoints never catch up with a steady stream of commits, so it restarts the WAL once it
/// passes 32 MiB (and `journal_size_limit` trims it). Here ~200 MiB of pages are committed back
/// to back; without the restart the WAL holds all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_stays_bounded_under_continuous_writes() {
    use honeysens_core::model::*;
    use honeysens_core::time::now;
    use std::net::{IpAddr, Ipv4Addr};

    let fx = Fixture::new("hs-wal").await;
    let (store, div, sensor) = (&fx.store, fx.div, fx.sensor);
    let path = fx.dir.join("honeysens.db");
    let wal = fx.dir.join("honeysens.db-wal");
    // One detail line of ~4 KiB: about one WAL frame per event.
    let line = "x".repeat(4000);
    let mut max_wal = 0u64;
    let total = 50_000u32;
    for batch in 0..total / 500 {
        let events: Vec<_> = (0..500u32)
            .map(|i| {
                let n = batch * 500 + i;
                let event = NewEvent {
                    data: EventData {
                        uid: uuid::Uuid::now_v7(),
                        sensor_id: sensor,
                        service: None,
                        timestamp: now(),
                        source_ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)),
                        source_port: Some(40000),
                        dest_ip: None,
                        dest_port: Some(22),
                        protocol: Protocol::Tcp,
                        type_code: "conn.attempt".into(),
                        classification: Classification::ConnectionAttempt,
                        severity: Severity::Low,
                        summary: "Connection attempt".into(),
                    },
                    details: vec![EventDetail {
                        timestamp: now(),
                        kind: DetailKind::Interaction,
                        data: line.clone(),
                    }],
                    packets: vec![],
                };
                (event, div, EventStatus::New)
            })
            .collect();
        let report = store.insert_events(&events).await.unwrap();
        assert_eq!(report.inserted.len(), 500);
        max_wal = max_wal.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    let db = std::fs::metadata(&path).unwrap().len();
    assert!(
        db > 150 << 20,
        "the test must commit enough pages: database is {db} bytes"
    );
    // Bounded: 32 MiB plus about one checkpoint period of commits (unbounded: about `db`).
    assert!(
        max_wal < db / 2,
        "WAL reached {max_wal} bytes while the database grew to {db}"
    );
    fx.remove().await;
}

/// Batches of 16 events or more are written by the raw bulk path (one prepared statement per
/// row on sqlx's handle), smaller ones by sqlx's multi-row insert. Both must store every column
/// with the same SQLite type and value, report the same ids, and skip stored uids alike.
#[tokio::test]
async fn bulk_path_stores_what_the_sqlx_path_stores() {
    use honeysens_core::model::*;
    use honeysens_core::time::now;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    let fx = Fixture::new("hs-bulk").await;
    let (store, div, sensor) = (&fx.store, fx.div, fx.sensor);
    let at = now();
    // Every optional field set, so each column's type is compared.
    let event = |sensor_id| NewEvent {
        data: EventData {
            uid: uuid::Uuid::now_v7(),
            sensor_id,
            service: Some("ssh".into()),
            timestamp: at,
            source_ip: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            source_port: Some(40000),
            dest_ip: Some(IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7))),
            dest_port: Some(22),
            protocol: Protocol::Tcp,
            type_code: "ssh.login.failed".into(),
            classification: Classification::HoneypotInteraction,
            severity: Severity::Medium,
            summary: "SSH login root/123456 failed".into(),
        },
        details: vec![EventDetail {
            timestamp: at,
            kind: DetailKind::Interaction,
            data: "login attempt [root/123456] failed".into(),
        }],
        packets: vec![EventPacket {
            timestamp: at,
            protocol: Protocol::Tcp,
            port: Some(22),
            headers: serde_json::Map::from_iter([("flags".to_owned(), "S".into())]),
            payload: Some("U1NILTIuMA==".into()),
        }],
    };
    let single = vec![(event(sensor), div, EventStatus::New)];
    let bulk: Vec<_> = (0..20)
        .map(|_| (event(sensor), div, EventStatus::New))
        .collect();
    let r1 = store.insert_events(&single).await.unwrap();
    let r2 = store.insert_events(&bulk).await.unwrap();
    assert_eq!((r1.inserted.len(), r2.inserted.len()), (1, 20));
    // The reported ids are the rows of those uids.
    for (uid, id) in r1.inserted.iter().chain(&r2.inserted) {
        assert_eq!(store.get_event(*id).await.unwrap().data.uid, *uid);
    }

    // Column by column: SQLite type and value (`quote` renders both) of the sqlx-written row
    // against a bulk-written one; only the row's own keys and its arrival time may differ.
    let pool = sqlx::SqlitePool::connect(&fx.url).await.unwrap();
    let columns: Vec<(String,)> = sqlx::query_as("SELECT name FROM pragma_table_info('events')")
        .fetch_all(&pool)
        .await
        .unwrap();
    let compared: Vec<&str> = columns
        .iter()
        .map(|c| c.0.as_str())
        .filter(|c| !["id", "uid", "received_at"].contains(c))
        .collect();
    assert!(compared.len() >= 18, "{compared:?}");
    let select = compared
        .iter()
        .map(|c| format!("typeof({c}) || ':' || quote({c})"))
        .collect::<Vec<_>>()
        .join(", ");
    let row_of = async |id: i64| -> Vec<String> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {select} FROM events WHERE id = ?"
        )))
        .bind(id)
        .fetch_one(&pool)
        .await
        .unwrap();
        (0..compared.len())
            .map(|i| sqlx::Row::get::<String, _>(&row, i))
            .collect()
    };
    let via_sqlx = row_of(r1.inserted[0].1.0).await;
    let via_bulk = row_of(r2.inserted[7].1.0).await;
    for ((c, a), b) in compared.iter().zip(&via_sqlx).zip(&via_bulk) {
        assert_eq!(a, b, "column {c}");
    }
    assert!(
        via_bulk.iter().any(|v| v.starts_with("blob:")),
        "{via_bulk:?}"
    );

    // Stored uids are duplicates on the bulk path too, new ones in the same batch are stored.
    let mut again = bulk.clone();
    again.extend((0..3).map(|_| (event(sensor), div, EventStatus::New)));
    let r3 = store.insert_events(&again).await.unwrap();
    assert_eq!((r3.inserted.len(), r3.duplicates.len()), (3, 20));

    // An unknown sensor fails the whole batch with NotFound, and none of it is stored.
    let before = store.count_events(&Default::default()).await.unwrap();
    let mut bad: Vec<_> = (0..20)
        .map(|_| (event(sensor), div, EventStatus::New))
        .collect();
    bad[10].0.data.sensor_id = honeysens_core::ids::SensorId(9999);
    let err = store.insert_events(&bad).await.unwrap_err();
    assert!(
        matches!(err, honeysens_core::Error::NotFound { .. }),
        "{err:?}"
    );
    assert_eq!(
        store.count_events(&Default::default()).await.unwrap(),
        before
    );

    pool.close().await;
    fx.remove().await;
}
