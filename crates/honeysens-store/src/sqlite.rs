//! The embedded SQLite store: WAL journal, busy timeout, one writer at a time.

use crate::imp::{EVENT_CHUNK, EVENT_INSERT_COLUMNS, EventIn};
use crate::rows::json;
use honeysens_core::Result;
use honeysens_core::model::ip_key;
use honeysens_core::time::to_micros;
use sqlx::sqlite::{
    LockedSqliteHandle, SqliteArguments, SqliteConnectOptions, SqliteJournalMode,
    SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Executor, Row, Sqlite, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// A [`honeysens_core::Store`] on SQLite.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// The one connection of write transactions. SQLite runs one writer at a time anyway; one
    /// connection for all of them keeps its page cache valid from one transaction to the next
    /// (a connection drops its cache whenever another one wrote), and writers queue in the
    /// pool instead of polling the busy handler.
    writer: SqlitePool,
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
/// Ticks between RESTART attempts while readers keep the WAL in use (5 s).
const RESTART_HOLD_OFF: u32 = 10;
/// How long a statement waits for a lock before it fails with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Checkpoints the WAL in the background until the pool closes. PASSIVE copies pages back
/// without waiting for (or blocking) readers and writers. Under a steady stream of commits it
/// never catches up with the last one, and SQLite only reuses the WAL from its start after a
/// checkpoint that did, so the WAL would grow without bound (1.4 GB for an 86 MB database in
/// `pipeline_ingest`). Past `WAL_RESTART_FRAMES` a RESTART checkpoint therefore copies the few
/// remaining frames on the writer connection (so no write transaction is in progress and new
/// ones queue for the connection), and the next commit starts the WAL over;
/// `journal_size_limit` then trims the file. While a long read keeps the WAL in use, RESTART is
/// retried only every few seconds.
async fn checkpointer(pool: SqlitePool, writer: SqlitePool) {
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
                match restart_wal(&writer).await {
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

/// A RESTART checkpoint on the writer connection: holding it, the checkpoint waits for no
/// writer (an earlier version made new writers wait at a gate but still had to poll for one
/// already in flight, and gave up whenever that took longer than `RESTART_WAIT`). It gives up
/// after `RESTART_WAIT` while readers still use the WAL (writers queue meanwhile, so a long read
/// must not stall ingest for the whole busy timeout). `Ok(false)`: readers were still there.
async fn restart_wal(writer: &SqlitePool) -> Result<bool, sqlx::Error> {
    let mut conn = writer.acquire().await?;
    let set_timeout =
        |d: Duration| AssertSqlSafe(format!("PRAGMA busy_timeout = {}", d.as_millis()));
    sqlx::query(set_timeout(RESTART_WAIT))
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(RESTART)")
        .fetch_one(&mut *conn)
        .await;
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
        let writer_opts = opts.clone();
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
        let writer = if in_memory {
            pool.clone()
        } else {
            // Opened once and kept: its warm cache is the point.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(writer_opts)
                .await
                .map_err(crate::OpenError::Connect)?
        };
        if !in_memory {
            tokio::spawn(checkpointer(pool.clone(), writer.clone()));
        }
        Ok(SqliteStore { pool, writer })
    }

    /// The underlying pool, for tools and benchmarks.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Locks the sensors an event batch refers to: nothing to do with one writer at a time.
    pub(crate) const LOCK_SHARE: &'static str = "";
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
        self.writer.begin_with("BEGIN IMMEDIATE").await
    }

    pub(crate) async fn close_writer(&self) {
        self.writer.close().await;
    }

    /// The store looks every batch's sensors up before inserting.
    pub(crate) fn sensors_checked_by_insert(_len: usize) -> bool {
        false
    }

    /// Inserts a chunk, idempotent on the uid. Small chunks run sqlx's cached multi-row
    /// `INSERT … RETURNING`; larger ones one prepared single-row statement per event on the
    /// transaction's own connection (see [`insert_rows_raw`]), which prepares per chunk.
    pub(crate) async fn insert_event_chunk(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        chunk: &[EventIn<'_>],
        received_at: i64,
        _lookup: bool,
        _check_sensors: bool,
    ) -> Result<Vec<(Vec<u8>, i64)>> {
        // Stored uids are skipped by the conflict clause either way.
        debug_assert!(chunk.len() <= EVENT_CHUNK);
        if chunk.len() < RAW_INSERT_MIN_ROWS {
            return Self::insert_event_values(tx, chunk, received_at).await;
        }
        let mut handle = tx
            .lock_handle()
            .await
            .map_err(crate::error::read_err("event"))?;
        // A chunk takes milliseconds of CPU: on a multi-threaded runtime let the other tasks of
        // this worker move elsewhere meanwhile (`block_in_place` panics on a current-thread one).
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let done = if multi_thread {
            tokio::task::block_in_place(|| insert_rows_raw(&mut handle, chunk, received_at))
        } else {
            insert_rows_raw(&mut handle, chunk, received_at)
        };
        done.map_err(raw_write_err)
    }
}

/// Chunks from this size on take the raw bulk path: preparing its statement (~0.1 ms) is then
/// small next to what it saves per row.
const RAW_INSERT_MIN_ROWS: usize = 16;

/// Single-row insert of the bulk path; a uid already stored is skipped, not an error.
fn insert_one_sql() -> String {
    let params: Vec<String> = (1..=22).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO events ({EVENT_INSERT_COLUMNS}) VALUES ({}) ON CONFLICT (uid) DO NOTHING",
        params.join(", ")
    )
}

/// The bulk insert on the raw connection. sqlx copies every value into its own argument
/// buffer and hands statement and rows to its worker thread; one prepared statement stepped
/// per row on the calling thread, with no RETURNING (the new id is `last_insert_rowid`),
/// measured 1.13–1.51× sqlx's multi-row insert of the same rows (`docs/benchmarks.md`).
#[allow(unsafe_code)]
fn insert_rows_raw(
    handle: &mut LockedSqliteHandle<'_>,
    chunk: &[EventIn<'_>],
    received_at: i64,
) -> Result<Vec<(Vec<u8>, i64)>, rusqlite::Error> {
    // SAFETY: the pointer is sqlx's open connection. While `handle` (the locked handle) is
    // borrowed, sqlx's worker thread makes no call on it or its statements (the contract of
    // `lock_handle`), so this thread uses it alone. `from_handle` does not take ownership:
    // dropping `conn` (after `stmt`, which is finalized first) leaves the connection open.
    let conn = unsafe { rusqlite::Connection::from_handle(handle.as_raw_handle().as_ptr()) }?;
    let mut stmt = conn.prepare(&insert_one_sql())?;
    let mut out = Vec::with_capacity(chunk.len());
    for ((ev, division, status), incident) in chunk {
        let d = &ev.data;
        let uid = d.uid.as_bytes();
        let details = json(&ev.details);
        let packets = json(&ev.packets);
        let changed = stmt.execute(rusqlite::params![
            uid.as_slice(),
            d.sensor_id.0,
            division.0,
            d.service.as_deref(),
            to_micros(d.timestamp),
            received_at,
            d.source_ip.to_string(),
            ip_key(d.source_ip).as_slice(),
            d.source_port.map(i32::from),
            d.dest_ip.map(|ip| ip.to_string()),
            d.dest_port.map(i32::from),
            d.protocol.as_str(),
            d.type_code.as_str(),
            d.classification.as_str(),
            d.severity.as_str(),
            d.summary.as_str(),
            status.as_str(),
            None::<&str>,
            false,
            details,
            packets,
            *incident,
        ])?;
        if changed == 1 {
            out.push((uid.to_vec(), conn.last_insert_rowid()));
        }
    }
    Ok(out)
}

/// The bulk path's errors, mapped as [`crate::error::write_err`] maps sqlx's.
fn raw_write_err(e: rusqlite::Error) -> honeysens_core::Error {
    use honeysens_core::Error;
    use rusqlite::ffi;
    match e.sqlite_error().map(|f| f.extended_code) {
        Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => Error::not_found("sensor"),
        Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
            Error::conflict("event", "event already exists")
        }
        _ => Error::Storage(Box::new(e)),
    }
}

crate::impl_store!(SqliteStore, sqlx::Sqlite, Backend::Sqlite, MIGRATOR);
