//! The PostgreSQL store.

use crate::imp::EventIn;
use honeysens_core::Result;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor, PgPool, Postgres, Row, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// A [`honeysens_core::Store`] on PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pub(crate) pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Rewrites `?` placeholders to PostgreSQL's `$1, $2, …`, skipping quoted literals.
pub(crate) fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:pass@host/db`).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, crate::OpenError> {
        let opts = PgConnectOptions::from_str(url)
            .map_err(|e| crate::OpenError::InvalidUrl(e.to_string()))?
            .application_name("honeysens");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await
            .map_err(crate::OpenError::Connect)?;
        Ok(PostgresStore { pool })
    }

    /// The underlying pool, for tools and benchmarks.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) const LOCK_UPDATE: &'static str = " FOR UPDATE";
    /// Locks (creating if missing) `incident_sources` rows: the upsert takes a row lock even
    /// when nothing changes.
    pub(crate) const SOURCE_LOCK: Option<&'static str> = Some(
        " ON CONFLICT (division_id, source_key) DO UPDATE SET division_id = excluded.division_id",
    );
    /// Whether a source-range page finds its ids first and joins the rows afterwards.
    pub(crate) const LATE_ROW_LOOKUP: bool = false;
    pub(crate) const INT_DIV: &'static str = "/";
    pub(crate) const LOCK_SKIP: &'static str = " FOR UPDATE SKIP LOCKED";
    pub(crate) const UPSERT_SETTING: &'static str = "INSERT INTO settings (name, value) VALUES (?, ?) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value";
    pub(crate) const INIT_CA: &'static str = "INSERT INTO ca (id, cert_pem, key_pem, created_at) \
         VALUES (1, ?, ?, ?) ON CONFLICT (id) DO NOTHING";
    pub(crate) const UPSERT_ASSIGNMENT: &'static str = "INSERT INTO service_assignments (sensor_id, service_id, revision) VALUES (?, ?, ?) \
         ON CONFLICT (sensor_id, service_id) DO UPDATE SET revision = excluded.revision";

    /// Write transactions use the main pool.
    pub(crate) async fn close_writer(&self) {}

    pub(crate) fn sql(s: &'static str) -> AssertSqlSafe<String> {
        AssertSqlSafe(numbered(s))
    }

    pub(crate) fn sql_returning_id(s: &'static str) -> AssertSqlSafe<String> {
        AssertSqlSafe(format!("{} RETURNING id", numbered(s)))
    }

    pub(crate) async fn fetch_id<'e, E: Executor<'e, Database = Postgres>>(
        q: sqlx::query::Query<'_, Postgres, PgArguments>,
        ex: E,
    ) -> Result<i64, sqlx::Error> {
        q.fetch_one(ex).await?.try_get(0)
    }

    /// Whether a multi-row `INSERT … RETURNING` is available.
    pub(crate) fn returning_rows(&self) -> bool {
        true
    }

    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    pub(crate) async fn insert_event_chunk(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        chunk: &[EventIn<'_>],
        received_at: i64,
    ) -> Result<Vec<(Vec<u8>, i64)>> {
        let mut qb = Self::event_insert_builder(chunk, received_at);
        qb.push(" ON CONFLICT (uid) DO NOTHING RETURNING uid, id");
        qb.build_query_as()
            .fetch_all(&mut **tx)
            .await
            .map_err(crate::error::write_err("event", "sensor"))
    }
}

crate::impl_store!(PostgresStore, sqlx::Postgres, Backend::Postgres, MIGRATOR);

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered_outside_literals() {
        assert_eq!(
            super::numbered("SELECT '?' FROM t WHERE a = ? AND b LIKE ? ESCAPE '!'"),
            "SELECT '?' FROM t WHERE a = $1 AND b LIKE $2 ESCAPE '!'"
        );
    }
}
