//! SQLite-specific behaviour: the database file holds secrets and must be private.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

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

    let dir = std::env::temp_dir().join(format!("hs-wal-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("honeysens.db");
    let wal = dir.join("honeysens.db-wal");
    let store = honeysens_store::open(&format!("sqlite://{}", path.display()), &Default::default())
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
    store.close().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
