//! The store conformance suite: every test in `suite` runs against SQLite, PostgreSQL and
//! MariaDB (see `harness` for how databases are provided); the ingest tests also on MariaDB used
//! as MySQL 8 (no `INSERT … RETURNING`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod harness;
mod suite;

macro_rules! backend {
    ($backend:ident: $($name:ident),* $(,)?) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = crate::harness::TestDb::$backend().await else { return };
                    crate::suite::$name(db.store.clone()).await;
                    db.finish().await;
                }
            )*
        }
    };
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        backend!(sqlite: $($name),*);
        backend!(postgres: $($name),*);
        backend!(mysql: $($name),*);
    };
}

conformance!(
    migrations_from_empty,
    divisions_crud,
    division_delete_is_blocked_by_sensors,
    users_crud,
    contacts_crud,
    sensors_crud,
    sensor_status_reports,
    sensor_status_batches,
    platforms_and_firmware,
    services_revisions_assignments,
    events_insert_is_idempotent,
    events_follow_their_sensor_and_division,
    events_sensor_deleted_during_ingest,
    events_concurrent_duplicate_inserts,
    events_large_batch_spans_chunks,
    events_query_matches_domain_filter,
    events_keyset_pagination,
    events_bulk_update_and_delete,
    filters_crud_and_hits,
    settings_roundtrip,
    certificates_and_revocation,
    jobs_lifecycle,
    jobs_enqueued_once_per_key,
    jobs_claimed_once_under_concurrency,
    concurrent_writers,
    sessions_lifecycle,
    api_tokens_lifecycle,
    audit_log_paging,
    incidents_group_across_sensors,
    incidents_alerts_and_forwarding,
    incidents_concurrent_ingest,
    incidents_concurrent_duplicate_uploads,
    incidents_list_update_prune,
    event_stats_exact,
    sensor_offline_flag,
);

// The ingest paths that differ without `INSERT … RETURNING`.
backend!(
    mysql_no_returning: events_insert_is_idempotent,
    events_follow_their_sensor_and_division,
    events_sensor_deleted_during_ingest,
    events_concurrent_duplicate_inserts,
    events_large_batch_spans_chunks,
    concurrent_writers,
    incidents_group_across_sensors,
    incidents_alerts_and_forwarding,
    incidents_concurrent_ingest,
    incidents_concurrent_duplicate_uploads,
    incidents_list_update_prune,
);
