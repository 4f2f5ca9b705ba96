//! The embedded SQLite store: WAL journal, busy timeout, one writer at a time.

use crate::imp::EVENT_CHUNK;
use crate::imp::EventIn;
use honeysens_core::Result;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Executor, Row, Sqlite, SqlitePool, Transaction};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// A [`honeysens_core::Store`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    gate: Arc<CheckpointGate>,
}

/// Lets the checkpointer's RESTART in between write transactions: SQLite's busy handler polls
/// with sleeps, so under back-to-back transactions it would never find the write lock free.
/// While a RESTART is wanted, [`SqliteStore::begin_write`] waits (at most `GATE_WAIT`).
#[derive(Debug, Default)]
struct CheckpointGate {
    wanted: AtomicBool,
    done: Notify,
}

impl CheckpointGate {
    async fn pass(&self) {
        if self.wanted.load(Ordering::Acquire) {
            // Created before the second check, so a `notify_waiters` in between still counts.
            let done = self.done.notified();
            if self.wanted.load(Ordering::Acquire) {
                let _ = tokio::time::timeout(GATE_WAIT, done).await;
            }
        }
    }
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
/// WAL size (in pages, 4 KiB each) beyond which the checkpointer briefly holds writers off so
/// the WAL can start over (32 MiB).
const WAL_RESTART_FRAMES: i64 = 8 * 1024;
/// How long a RESTART checkpoint may hold writers off waiting for readers.
const RESTART_WAIT: Duration = Duration::from_millis(100);
/// Longest a write transaction waits for a wanted RESTART checkpoint.
const GATE_WAIT: Duration = Duration::from_millis(500);
/// Ticks between RESTART attempts while readers keep the WAL in use (5 s).
const RESTART_HOLD_OFF: u32 = 10;
/// How long a statement waits for a lock before it fails with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Checkpoints the WAL in the background until the pool closes. PASSIVE copies pages back
/// without waiting for (or blocking) readers and writers. Under a steady stream of commits it
/// never catches up with the last one, and SQLite only reuses the WAL from its start after a
/// checkpoint that did, so the WAL would grow without bound (1.4 GB for an 86 MB database in
/// `pipeline_ingest`). Past `WAL_RESTART_FRAMES` a RESTART checkpoint therefore copies the few
/// remaining frames while new write transactions wait at the [`CheckpointGate`], and the next
/// commit starts the WAL over; `journal_size_limit` then trims the file. While a long read
/// keeps the WAL in use, RESTART is retried only every few seconds.
async fn checkpointer(pool: SqlitePool, gate: Arc<CheckpointGate>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Ticks to wait before the next RESTART attempt.
    let mut hold_off = 0u32;
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
            Ok((_, log, _)) if log > WAL_RESTART_FRAMES && hold_off == 0 => {
                match restart_wal(&pool, &gate).await {
                    Ok(true) => {}
                    Ok(false) => hold_off = RESTART_HOLD_OFF,
                    Err(e) => {
                        hold_off = RESTART_HOLD_OFF;
                        tracing::debug!(error = %e, "WAL restart checkpoint failed");
                    }
                }
            }
            Ok(_) => hold_off = hold_off.saturating_sub(1),
            Err(e) => {
                if pool.is_closed() {
                    return;
                }
                tracing::debug!(error = %e, "WAL checkpoint failed; retrying on the next tick");
            }
        }
    }
}

/// A RESTART checkpoint that gives up after `RESTART_WAIT` (while it waits for readers to leave
/// the WAL it holds writers off, so a long read must not stall ingest for the whole busy
/// timeout). `Ok(false)`: readers were still using the WAL.
async fn restart_wal(pool: &SqlitePool, gate: &CheckpointGate) -> Result<bool, sqlx::Error> {
    // The connection first: writers must not wait at the gate while the pool is exhausted.
    let mut conn = pool.acquire().await?;
    let set_timeout =
        |d: Duration| AssertSqlSafe(format!("PRAGMA busy_timeout = {}", d.as_millis()));
    sqlx::query(set_timeout(RESTART_WAIT))
        .execute(&mut *conn)
        .await?;
    gate.wanted.store(true, Ordering::Release);
    let done = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(RESTART)")
        .fetch_one(&mut *conn)
        .await;
    gate.wanted.store(false, Ordering::Release);
    gate.done.notify_waiters();
    if let Err(e) = sqlx::query(set_timeout(BUSY_TIMEOUT))
        .execute(&mut *conn)
        .await
    {
        // Never hand a connection with the short timeout back to the pool.
        conn.close_on_drop();
        return Err(e);
    }
    Ok(done?.0 == 0)
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
            .busy_timeout(BUSY_TIMEOUT)
            // 64 MiB page cache per connection (default 2 MiB): the event indexes of a busy
            // server stay in memory, which keeps bulk inserts fast as the table grows.
            .pragma("cache_size", "-65536")
            // No checkpoint inside a writer's commit: on a busy server that is where most of an
            // insert's time went. A background task checkpoints instead (see below).
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", "67108864")
            // Statement journals (multi-row inserts that may need a partial rollback) in
            // memory rather than temporary files.
            .pragma("temp_store", "memory")
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
        let gate = Arc::new(CheckpointGate::default());
        if !in_memory {
            tokio::spawn(checkpointer(pool.clone(), gate.clone()));
        }
        Ok(SqliteStore { pool, gate })
    }

    /// The underlying pool, for tools and benchmarks.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    // `BEGIN IMMEDIATE` already serialises writers; SQLite has no row locks.
    pub(crate) const LOCK_UPDATE: &'static str = "";
    /// No per-source row locks: writers are serialised already.
    pub(crate) const SOURCE_LOCK: Option<&'static str> = None;
    /// Whether a source-range page finds its ids first and joins the rows afterwards.
    pub(crate) const LATE_ROW_LOOKUP: bool = false;
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
        self.gate.pass().await;
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
