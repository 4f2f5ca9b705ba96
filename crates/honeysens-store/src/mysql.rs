//! The MySQL / MariaDB store (MariaDB ≥ 10.6 or MySQL ≥ 8.0 for `SKIP LOCKED`).

use honeysens_core::Result;
use honeysens_core::ids::DivisionId;
use honeysens_core::model::{EventStatus, NewEvent};
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{Executor, MySql, MySqlPool, QueryBuilder, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// A [`honeysens_core::Store`] on MySQL or MariaDB.
#[derive(Debug, Clone)]
pub struct MySqlStore {
    pub(crate) pool: MySqlPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

impl MySqlStore {
    /// Connects to `url` (`mysql://user:pass@host/db`).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, crate::OpenError> {
        let opts = MySqlConnectOptions::from_str(url)
            .map_err(|e| crate::OpenError::InvalidUrl(e.to_string()))?
            .charset("utf8mb4");
        let pool = MySqlPoolOptions::new()
            // READ COMMITTED (PostgreSQL's default) avoids InnoDB gap locks, which otherwise
            // deadlock concurrent job claims.
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?;
                    Ok(())
                })
            })
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(crate::OpenError::Connect)?;
        Ok(MySqlStore { pool })
    }

    /// The underlying pool, for tools and benchmarks.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    pub(crate) const LOCK_SKIP: &'static str = " FOR UPDATE SKIP LOCKED";
    pub(crate) const UPSERT_SETTING: &'static str = "INSERT INTO settings (name, value) VALUES (?, ?) \
         ON DUPLICATE KEY UPDATE value = VALUES(value)";
    pub(crate) const INIT_CA: &'static str = "INSERT INTO ca (id, cert_pem, key_pem, created_at) \
         VALUES (1, ?, ?, ?) ON DUPLICATE KEY UPDATE id = id";
    pub(crate) const UPSERT_ASSIGNMENT: &'static str = "INSERT INTO service_assignments (sensor_id, service_id, revision) VALUES (?, ?, ?) \
         ON DUPLICATE KEY UPDATE revision = VALUES(revision)";

    pub(crate) fn sql(s: &'static str) -> &'static str {
        s
    }

    // MySQL has no RETURNING: the id comes from the OK packet.
    pub(crate) fn sql_returning_id(s: &'static str) -> &'static str {
        s
    }

    pub(crate) async fn fetch_id<'e, E: Executor<'e, Database = MySql>>(
        q: sqlx::query::Query<'_, MySql, MySqlArguments>,
        ex: E,
    ) -> Result<i64, sqlx::Error> {
        let done = q.execute(ex).await?;
        Ok(i64::try_from(done.last_insert_id()).unwrap_or(i64::MAX))
    }

    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, MySql>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Without RETURNING: skip uids already stored, insert the rest (a concurrent duplicate is
    /// absorbed by the no-op `ON DUPLICATE KEY`), then read back the ids this statement created.
    pub(crate) async fn insert_event_chunk(
        tx: &mut Transaction<'static, MySql>,
        chunk: &[&(NewEvent, DivisionId, EventStatus)],
        received_at: i64,
    ) -> Result<Vec<(Vec<u8>, i64)>> {
        let err = crate::error::write_err("event", "sensor");
        let mut qb = QueryBuilder::<MySql>::new("SELECT uid FROM events WHERE uid IN (");
        {
            let mut sep = qb.separated(", ");
            for e in chunk {
                sep.push_bind(e.0.data.uid.as_bytes().to_vec());
            }
        }
        qb.push(")");
        let existing: Vec<(Vec<u8>,)> = qb
            .build_query_as()
            .fetch_all(&mut **tx)
            .await
            .map_err(&err)?;
        let existing: std::collections::HashSet<Vec<u8>> =
            existing.into_iter().map(|r| r.0).collect();
        let fresh: Vec<&(NewEvent, DivisionId, EventStatus)> = chunk
            .iter()
            .copied()
            .filter(|e| !existing.contains(e.0.data.uid.as_bytes().as_slice()))
            .collect();
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = Self::event_insert_builder(&fresh, received_at);
        qb.push(" ON DUPLICATE KEY UPDATE id = id");
        let done = qb.build().execute(&mut **tx).await.map_err(&err)?;
        let first = i64::try_from(done.last_insert_id()).unwrap_or(i64::MAX);
        let mut qb = QueryBuilder::<MySql>::new("SELECT uid, id FROM events WHERE id >= ");
        qb.push_bind(first).push(" AND uid IN (");
        {
            let mut sep = qb.separated(", ");
            for e in &fresh {
                sep.push_bind(e.0.data.uid.as_bytes().to_vec());
            }
        }
        qb.push(")");
        qb.build_query_as().fetch_all(&mut **tx).await.map_err(&err)
    }
}

crate::impl_store!(MySqlStore, sqlx::MySql, Backend::MySql, MIGRATOR);
