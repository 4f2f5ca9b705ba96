//! The embedded SQLite store: WAL journal, busy timeout, one writer at a time.

use crate::imp::EVENT_CHUNK;
use crate::imp::EventIn;
use honeysens_core::Result;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Executor, Row, Sqlite, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// A [`honeysens_core::Store`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[cfg(unix)]
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create_private(_path: &std::path::Path) -> std::io::Result<()> {
    Ok(())
}

/// How often the background task moves the WAL into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// WAL size (in pages, 4 KiB each) beyond which the checkpointer waits for readers.
const WAL_LIMIT_FRAMES: i64 = 256 * 1024;

/// Checkpoints the WAL in the background until the pool closes. PASSIVE never waits for (or
/// blocks) readers and writers; the WAL is reused from its start once a checkpoint caught up,
/// so it stays as large as about one period of writes.
async fn checkpointer(pool: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        // Row: (busy, WAL frames, frames checkpointed).
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&pool)
            .await
        {
            // Long-lived readers kept a huge WAL from being copied back: wait for them once
            // (busy timeout) rather than let the file grow without bound.
            Ok((_, log, done)) if log > WAL_LIMIT_FRAMES && done < log => {
                let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&pool)
                    .await;
            }
            Ok(_) => {}
            Err(e) => {
                if pool.is_closed() {
                    return;
                }
                tracing::debug!(error = %e, "WAL checkpoint failed; retrying on the next tick");
            }
        }
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite::memory:`).
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, crate::OpenError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| crate::OpenError::InvalidUrl(e.to_string()))?;
        // The database holds the CA key and sensor secrets: create it readable by the owner
        // only (SQLite gives the -wal and -shm files the same mode).
        let path = opts.get_filename();
        if !path.as_os_str().is_empty() && path.as_os_str() != ":memory:" && !path.exists() {
            create_private(path).map_err(|e| crate::OpenError::Connect(sqlx::Error::Io(e)))?;
        }
        let opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable under WAL except for the last transactions on power loss;
            // sensors keep their spool until the upload is acknowledged, so nothing is lost.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // 64 MiB page cache per connection (default 2 MiB): the event indexes of a busy
            // server stay in memory, which keeps bulk inserts fast as the table grows.
            .pragma("cache_size", "-65536")
            // No checkpoint inside a writer's commit: on a busy server that is where most of an
            // insert's time went. A background task checkpoints instead (see below).
            .pragma("wal_autocheckpoint", "0")
            .foreign_keys(true);
        // An in-memory database exists per connection: share one.
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { max_connections.max(1) })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(600))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(3600))
            })
            .connect_with(opts)
            .await
            .map_err(crate::OpenError::Connect)?;
        if !in_memory {
            tokio::spawn(checkpointer(pool.clone()));
        }
        Ok(SqliteStore { pool })
    }

    /// The underlying pool, for tools and benchmarks.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    // `BEGIN IMMEDIATE` already serialises writers; SQLite has no row locks.
    pub(crate) const LOCK_UPDATE: &'static str = "";
    /// No per-source row locks: writers are serialised already.
    pub(crate) const SOURCE_LOCK: Option<&'static str> = None;
    pub(crate) const INT_DIV: &'static str = "/";
    pub(crate) const LOCK_SKIP: &'static str = "";
    pub(crate) const UPSERT_SETTING: &'static str = "INSERT INTO settings (name, value) VALUES (?, ?) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value";
    pub(crate) const INIT_CA: &'static str = "INSERT INTO ca (id, cert_pem, key_pem, created_at) \
         VALUES (1, ?, ?, ?) ON CONFLICT (id) DO NOTHING";
    pub(crate) const UPSERT_ASSIGNMENT: &'static str = "INSERT INTO service_assignments (sensor_id, service_id, revision) VALUES (?, ?, ?) \
         ON CONFLICT (sensor_id, service_id) DO UPDATE SET revision = excluded.revision";

    pub(crate) fn sql(s: &'static str) -> &'static str {
        s
    }

    pub(crate) fn sql_returning_id(s: &'static str) -> AssertSqlSafe<String> {
        AssertSqlSafe(format!("{s} RETURNING id"))
    }

    pub(crate) async fn fetch_id<'e, E: Executor<'e, Database = Sqlite>>(
        q: sqlx::query::Query<'_, Sqlite, SqliteArguments>,
        ex: E,
    ) -> Result<i64, sqlx::Error> {
        q.fetch_one(ex).await?.try_get(0)
    }

    /// `BEGIN IMMEDIATE` takes the write lock up front, so two writers wait for each other
    /// (busy timeout) instead of failing when a read lock cannot be upgraded.
    /// Whether a multi-row `INSERT … RETURNING` is available.
    pub(crate) fn returning_rows(&self) -> bool {
        true
    }

    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// A multi-row `INSERT … VALUES`. (Sending the chunk as one JSON text unpacked by
    /// `json_each` was tried and measured slower: 0.81× the plain insert on tmpfs.)
    pub(crate) async fn insert_event_chunk(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        chunk: &[EventIn<'_>],
        received_at: i64,
    ) -> Result<Vec<(Vec<u8>, i64)>> {
        debug_assert!(chunk.len() <= EVENT_CHUNK);
        let mut qb = Self::event_insert_builder(chunk, received_at);
        qb.push(" ON CONFLICT (uid) DO NOTHING RETURNING uid, id");
        qb.build_query_as()
            .fetch_all(&mut **tx)
            .await
            .map_err(crate::error::write_err("event", "sensor"))
    }
}

crate::impl_store!(SqliteStore, sqlx::Sqlite, Backend::Sqlite, MIGRATOR);
