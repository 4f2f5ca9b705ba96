//! The MySQL / MariaDB store (MariaDB ≥ 10.6 or MySQL ≥ 8.0 for `SKIP LOCKED`).

use crate::imp::EventIn;
use honeysens_core::Result;
use sqlx::mysql::{MySqlArguments, MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{Executor, MySql, MySqlPool, QueryBuilder, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// A [`honeysens_core::Store`] on MySQL or MariaDB.
#[derive(Debug, Clone)]
pub struct MySqlStore {
    pub(crate) pool: MySqlPool,
    /// The server is MariaDB ≥ 10.5, which has `INSERT … RETURNING` (MySQL 8 has not).
    pub(crate) returning: bool,
}

/// Whether a `SELECT VERSION()` string names a MariaDB ≥ 10.5 (`10.11.19-MariaDB-0+deb12u1`).
pub(crate) fn has_insert_returning(version: &str) -> bool {
    if !version.contains("MariaDB") {
        return false;
    }
    // Replication-era builds prefix "5.5.5-" to the real version.
    let v = version.strip_prefix("5.5.5-").unwrap_or(version);
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (10, 5)
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
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&pool)
            .await
            .map_err(crate::OpenError::Connect)?;
        Ok(MySqlStore {
            pool,
            returning: has_insert_returning(&version),
        })
    }

    /// The underlying pool, for tools and benchmarks.
    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Behaves as on MySQL 8 (no `INSERT … RETURNING`) even on MariaDB, so tests on MariaDB
    /// cover that path too.
    #[doc(hidden)]
    pub fn without_returning(mut self) -> Self {
        self.returning = false;
        self
    }

    /// Locks the sensors an event batch refers to until it commits: the shared lock an
    /// InnoDB foreign-key check takes.
    pub(crate) const LOCK_SHARE: &'static str = " LOCK IN SHARE MODE";
    pub(crate) const LOCK_UPDATE: &'static str = " FOR UPDATE";
    /// Locks (creating if missing) `incident_sources` rows: the upsert takes a row lock even
    /// when nothing changes.
    pub(crate) const SOURCE_LOCK: Option<&'static str> =
        Some(" ON DUPLICATE KEY UPDATE division_id = division_id");
    /// Whether a source-range page finds its ids first and joins the rows afterwards.
    pub(crate) const LATE_ROW_LOOKUP: bool = true;
    pub(crate) const INT_DIV: &'static str = "DIV";
    pub(crate) const LOCK_SKIP: &'static str = " FOR UPDATE SKIP LOCKED";
    pub(crate) const UPSERT_SETTING: &'static str = "INSERT INTO settings (name, value) VALUES (?, ?) \
         ON DUPLICATE KEY UPDATE value = VALUES(value)";
    pub(crate) const INIT_CA: &'static str = "INSERT INTO ca (id, cert_pem, key_pem, created_at) \
         VALUES (1, ?, ?, ?) ON DUPLICATE KEY UPDATE id = id";
    pub(crate) const UPSERT_ASSIGNMENT: &'static str = "INSERT INTO service_assignments (sensor_id, service_id, revision) VALUES (?, ?, ?) \
         ON DUPLICATE KEY UPDATE revision = VALUES(revision)";

    /// Write transactions use the main pool.
    pub(crate) async fn close_writer(&self) {}

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

    /// Whether a multi-row `INSERT … RETURNING` is available (MariaDB ≥ 10.5, not MySQL 8).
    pub(crate) fn returning_rows(&self) -> bool {
        self.returning
    }

    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, MySql>, sqlx::Error> {
        self.pool.begin().await
    }

    /// The store looks every batch's sensors up before inserting.
    pub(crate) fn sensors_checked_by_insert(_len: usize) -> bool {
        false
    }

    /// On MariaDB ≥ 10.5 one `INSERT … RETURNING` per chunk. It has no conflict clause (with
    /// `ON DUPLICATE KEY UPDATE`, MariaDB returns the existing row too, and `IGNORE` would also
    /// swallow foreign-key and truncation errors), so a duplicate uid fails the statement; InnoDB
    /// then rolls back just that statement and the chunk takes the three-statement path below.
    pub(crate) async fn insert_event_chunk(
        &self,
        tx: &mut Transaction<'static, MySql>,
        chunk: &[EventIn<'_>],
        received_at: i64,
        _lookup: bool,
        _check_sensors: bool,
    ) -> Result<Vec<(Vec<u8>, i64)>> {
        // The chunk's own `RETURNING` insert fails on a stored uid and falls back to the lookup.
        if self.returning {
            let mut qb = Self::event_insert_builder(chunk, received_at);
            qb.push(" RETURNING uid, id");
            match qb.build_query_as().fetch_all(&mut **tx).await {
                Ok(rows) => return Ok(rows),
                Err(e)
                    if e.as_database_error()
                        .is_some_and(|d| d.is_unique_violation()) => {}
                Err(e) => return Err(crate::error::write_err("event", "sensor")(e)),
            }
        }
        Self::insert_event_chunk_checked(tx, chunk, received_at).await
    }

    /// Without RETURNING: skip uids already stored, insert the rest, then read back their ids.
    /// A concurrent upload of the same events can store one in between: the insert then fails
    /// on the unique uid as an `IngestRace` and the whole ingest runs again (absorbing it with
    /// `ON DUPLICATE KEY` instead would leave no way to tell its rows from ours).
    async fn insert_event_chunk_checked(
        tx: &mut Transaction<'static, MySql>,
        chunk: &[EventIn<'_>],
        received_at: i64,
    ) -> Result<Vec<(Vec<u8>, i64)>> {
        let err = crate::error::write_err("event", "sensor");
        let mut qb = QueryBuilder::<MySql>::new("SELECT uid FROM events WHERE uid IN (");
        {
            let mut sep = qb.separated(", ");
            for (e, _) in chunk {
                sep.push_bind(e.0.data.uid.as_bytes().to_vec());
            }
        }
        qb.push(")");
        let existing: Vec<(Vec<u8>,)> = qb
            .build_query_as()
            .fetch_all(&mut **tx)
            .await
            .map_err(&err)?;
        let fresh = crate::imp::unstored(chunk, existing);
        if fresh.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = Self::event_insert_builder(&fresh, received_at);
        qb.build()
            .execute(&mut **tx)
            .await
            .map_err(crate::error::event_insert_err)?;
        let mut qb = QueryBuilder::<MySql>::new("SELECT uid, id FROM events WHERE uid IN (");
        {
            let mut sep = qb.separated(", ");
            for (e, _) in &fresh {
                sep.push_bind(e.0.data.uid.as_bytes().to_vec());
            }
        }
        qb.push(")");
        qb.build_query_as().fetch_all(&mut **tx).await.map_err(&err)
    }
}

crate::impl_store!(MySqlStore, sqlx::MySql, Backend::MySql, MIGRATOR);

#[cfg(test)]
mod tests {
    use super::has_insert_returning;

    #[test]
    fn returning_is_detected_from_the_version() {
        assert!(has_insert_returning("10.11.19-MariaDB-0+deb12u1"));
        assert!(has_insert_returning("5.5.5-10.6.12-MariaDB"));
        assert!(has_insert_returning("11.4.2-MariaDB"));
        assert!(!has_insert_returning("10.4.30-MariaDB"));
        assert!(!has_insert_returning("8.0.36"));
        assert!(!has_insert_returning("8.4.0-0ubuntu0.24.04.1"));
    }
}
