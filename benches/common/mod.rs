//! Helpers shared by the store benchmarks (`store_ingest`, `store_query`): a fresh database per
//! backend, realistic generated events, the plain sqlx bulk-insert baseline, statistics and
//! Markdown output.
//!
//! Errors are returned as [`Res`] so the callers can always drop the databases they created
//! before reporting a failure.

// Each bench target compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use chrono::{Duration as TimeDelta, Utc};
use honeysens_core::Store;
use honeysens_core::ids::{DivisionId, SensorId};
use honeysens_core::model::{
    Classification, DetailKind, DivisionSpec, EventData, EventDetail, EventStatus, NewEvent,
    Protocol, SensorSpec, Severity, ip_key,
};
use honeysens_core::time::{Timestamp, from_micros, now, to_micros};
use honeysens_store::{MySqlStore, OpenOptions, PostgresStore, SqliteStore};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use sqlx::{Connection, Database, Encode, Executor, IntoArguments, Pool, QueryBuilder, Type};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Error type of the benchmark helpers.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Result of the benchmark helpers.
pub type Res<T> = Result<T, BoxError>;

/// One event as `EventStore::insert_events` takes it.
pub type Ev = (NewEvent, DivisionId, EventStatus);

/// Rows per multi-row `INSERT` of the baseline (the store's own chunk size).
pub const BASELINE_CHUNK: usize = 1000;

// ---------------------------------------------------------------------------------------------
// Environment and machine
// ---------------------------------------------------------------------------------------------

/// A positive integer from the environment; `None` when unset or empty.
pub fn env_usize(name: &str) -> Res<Option<usize>> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            let n: usize = v
                .trim()
                .replace('_', "")
                .parse()
                .map_err(|e| format!("{name}={v:?}: {e}"))?;
            if n == 0 {
                return Err(format!("{name} must be positive").into());
            }
            Ok(Some(n))
        }
        _ => Ok(None),
    }
}

/// A comma-separated list of positive integers from the environment, sorted and deduplicated.
pub fn env_usize_list(name: &str, default: &[usize]) -> Res<Vec<usize>> {
    let mut out = match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|s| {
                let s = s.trim().replace('_', "");
                match s.parse::<usize>() {
                    Ok(0) => Err(format!("{name}: sizes must be positive").into()),
                    Ok(n) => Ok(n),
                    Err(e) => Err(BoxError::from(format!("{name}={v:?}: {e}"))),
                }
            })
            .collect::<Res<Vec<_>>>()?,
        _ => default.to_vec(),
    };
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Runs a bench's async body on a multi-threaded runtime, only when started by `cargo bench`;
/// a failure is printed and ends the process with status 1.
pub fn bench_main<F: std::future::Future<Output = Res<()>>>(name: &str, body: impl FnOnce() -> F) {
    if !started_by_cargo_bench() {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the tokio runtime");
    if let Err(e) = rt.block_on(body()) {
        eprintln!("{name} failed: {e}");
        std::process::exit(1);
    }
}

/// Whether the binary was started by `cargo bench` (which passes `--bench`). `cargo test
/// --all-targets` also builds and runs harness-less bench targets, without that flag; the
/// benchmarks then return at once instead of loading databases.
pub fn started_by_cargo_bench() -> bool {
    let yes = std::env::args().skip(1).any(|a| a == "--bench");
    if !yes {
        eprintln!("not started by `cargo bench` (no --bench argument): skipping the benchmark");
    }
    yes
}

fn first_line_with(path: &str, prefix: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
}

/// Prints the Markdown header of a report: bench name, date, CPU, cores, memory, load.
pub fn print_machine_info(bench: &str) {
    let cpu = first_line_with("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into());
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = first_line_with("/proc/meminfo", "MemTotal").unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into());
    println!("## {bench}\n");
    println!("- date: {}", Utc::now().format("%Y-%m-%d %H:%M:%S UTC"));
    println!("- cpu: {cpu}");
    println!("- nproc: {nproc}");
    println!("- memory: {mem}");
    println!("- kernel: {kernel}");
    println!("- load average at start (1/5/15 min): {load}");
    if cfg!(debug_assertions) {
        println!("- WARNING: built with debug assertions; run through `cargo bench`");
    }
    println!();
}

// ---------------------------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------------------------

/// A database engine under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SQLite in a temp file.
    Sqlite,
    /// PostgreSQL from `HONEYSENS_TEST_POSTGRES_URL`.
    Postgres,
    /// MariaDB/MySQL from `HONEYSENS_TEST_MYSQL_URL`.
    MySql,
}

impl Kind {
    /// Every backend, in report order.
    pub const ALL: [Kind; 3] = [Kind::Sqlite, Kind::Postgres, Kind::MySql];

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sqlite => "SQLite",
            Kind::Postgres => "PostgreSQL",
            Kind::MySql => "MariaDB",
        }
    }

    /// Environment variable with the admin URL (none for SQLite).
    pub fn env_var(self) -> Option<&'static str> {
        match self {
            Kind::Sqlite => None,
            Kind::Postgres => Some("HONEYSENS_TEST_POSTGRES_URL"),
            Kind::MySql => Some("HONEYSENS_TEST_MYSQL_URL"),
        }
    }
}

fn unique_name() -> String {
    format!("hs_bench_{}", uuid::Uuid::new_v4().simple())
}

fn with_database(url: &str, name: &str) -> Res<String> {
    let mut u = url::Url::parse(url).map_err(|e| format!("invalid database URL: {e}"))?;
    u.set_path(&format!("/{name}"));
    Ok(u.to_string())
}

enum Cleanup {
    Dir(PathBuf),
    Postgres { admin: String, name: String },
    MySql { admin: String, name: String },
}

/// A database created for one run; [`BenchDb::destroy`] removes it.
pub struct BenchDb {
    /// Engine.
    pub kind: Kind,
    /// URL of the fresh database.
    pub url: String,
    cleanup: Cleanup,
}

impl BenchDb {
    /// Creates a fresh database, or returns `None` (after printing why) when the backend's URL
    /// variable is not set.
    pub async fn create(kind: Kind) -> Res<Option<BenchDb>> {
        // `HONEYSENS_BENCH_BACKENDS=mariadb,postgresql`: only these (names as in the reports).
        if let Ok(only) = std::env::var("HONEYSENS_BENCH_BACKENDS") {
            let wanted = only
                .split(',')
                .any(|b| b.trim().eq_ignore_ascii_case(kind.name()));
            if !wanted {
                println!(
                    "- {}: skipped (not in HONEYSENS_BENCH_BACKENDS)",
                    kind.name()
                );
                return Ok(None);
            }
        }
        let admin = match kind.env_var() {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(url) if !url.trim().is_empty() => Some(url),
                _ => {
                    println!("- {}: skipped ({var} is not set)", kind.name());
                    return Ok(None);
                }
            },
        };
        let name = unique_name();
        let db = match (kind, admin) {
            (Kind::Sqlite, _) => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir)?;
                let url = format!("sqlite://{}", dir.join("bench.db").display());
                BenchDb {
                    kind,
                    url,
                    cleanup: Cleanup::Dir(dir),
                }
            }
            (Kind::Postgres, Some(admin)) => {
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                let url = with_database(&admin, &name)?;
                BenchDb {
                    kind,
                    url,
                    cleanup: Cleanup::Postgres { admin, name },
                }
            }
            (Kind::MySql, Some(admin)) => {
                let mut conn = sqlx::MySqlConnection::connect(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await?;
                let url = with_database(&admin, &name)?;
                BenchDb {
                    kind,
                    url,
                    cleanup: Cleanup::MySql { admin, name },
                }
            }
            (_, None) => return Err("missing admin URL".into()),
        };
        eprintln!("[{}] created database {}", kind.name(), db.url);
        Ok(Some(db))
    }

    /// Drops the database (or deletes the SQLite directory). Close every pool on it first.
    pub async fn destroy(self) -> Res<()> {
        match self.cleanup {
            Cleanup::Dir(dir) => std::fs::remove_dir_all(dir)?,
            Cleanup::Postgres { admin, name } => {
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await?;
            }
            Cleanup::MySql { admin, name } => {
                let mut conn = sqlx::MySqlConnection::connect(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name}"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await?;
            }
        }
        eprintln!("[{}] dropped the benchmark database", self.kind.name());
        Ok(())
    }
}

/// Runs `body` on a fresh database of `kind` and drops the database afterwards, also when
/// `body` fails. `Ok(None)` when the backend is skipped.
pub async fn with_bench_db<T>(
    kind: Kind,
    body: impl AsyncFnOnce(&BenchDb) -> Res<T>,
) -> Res<Option<T>> {
    let Some(db) = BenchDb::create(kind).await? else {
        return Ok(None);
    };
    let result = body(&db).await;
    if let Err(e) = db.destroy().await {
        eprintln!(
            "[{}] could not drop the benchmark database: {e}",
            kind.name()
        );
    }
    result.map(Some)
}

/// The store under test plus a raw pool on the same database for the baseline and maintenance.
pub struct Backend {
    /// Engine.
    pub kind: Kind,
    /// Opened with `honeysens_store::open(url, &OpenOptions::default())`.
    pub store: Arc<dyn Store>,
    /// The pool of a typed store opened separately (`*Store::connect(url, 8)`).
    pub raw: RawPool,
}

/// A typed sqlx pool.
#[derive(Clone)]
pub enum RawPool {
    /// SQLite.
    Sqlite(sqlx::SqlitePool),
    /// PostgreSQL.
    Postgres(sqlx::PgPool),
    /// MySQL / MariaDB.
    MySql(sqlx::MySqlPool),
}

impl Backend {
    /// Opens (and migrates) the store and the raw pool on `db`.
    pub async fn open(db: &BenchDb) -> Res<Backend> {
        let store = honeysens_store::open(&db.url, &OpenOptions::default()).await?;
        let raw = match db.kind {
            Kind::Sqlite => RawPool::Sqlite(SqliteStore::connect(&db.url, 8).await?.pool().clone()),
            Kind::Postgres => {
                RawPool::Postgres(PostgresStore::connect(&db.url, 8).await?.pool().clone())
            }
            Kind::MySql => RawPool::MySql(MySqlStore::connect(&db.url, 8).await?.pool().clone()),
        };
        Ok(Backend {
            kind: db.kind,
            store,
            raw,
        })
    }

    /// Closes both pools.
    pub async fn close(&self) {
        self.store.close().await;
        self.raw.close().await;
    }
}

impl RawPool {
    /// Closes the pool.
    pub async fn close(&self) {
        match self {
            RawPool::Sqlite(p) => p.close().await,
            RawPool::Postgres(p) => p.close().await,
            RawPool::MySql(p) => p.close().await,
        }
    }

    /// Engine version and the settings that matter most for these benchmarks (cache sizes,
    /// durability, whether the connection uses TLS).
    pub async fn server_info(&self) -> Res<String> {
        Ok(match self {
            RawPool::Sqlite(p) => {
                let mut conn = p.acquire().await?;
                let v: String = sqlx::query_scalar("SELECT sqlite_version()")
                    .fetch_one(&mut *conn)
                    .await?;
                let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                    .fetch_one(&mut *conn)
                    .await?;
                let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                    .fetch_one(&mut *conn)
                    .await?;
                let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
                    .fetch_one(&mut *conn)
                    .await?;
                format!(
                    "SQLite {v}; journal_mode={journal}, synchronous={sync}, cache_size={cache}"
                )
            }
            RawPool::Postgres(p) => {
                let (v, buffers, sync, ssl): (String, String, String, bool) = sqlx::query_as(
                    "SELECT version(), current_setting('shared_buffers'), \
                     current_setting('synchronous_commit'), \
                     COALESCE((SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), false)",
                )
                .fetch_one(p)
                .await?;
                format!("{v}; shared_buffers={buffers}, synchronous_commit={sync}, TLS={ssl}")
            }
            RawPool::MySql(p) => {
                let (v, pool, flush): (String, String, String) = sqlx::query_as(
                    "SELECT VERSION(), CAST(@@innodb_buffer_pool_size AS CHAR), \
                     CAST(@@innodb_flush_log_at_trx_commit AS CHAR)",
                )
                .fetch_one(p)
                .await?;
                let cipher: Option<(String, String)> =
                    sqlx::query_as("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
                        .fetch_optional(p)
                        .await?;
                let tls = cipher.is_some_and(|(_, c)| !c.is_empty());
                format!(
                    "MySQL/MariaDB {v}; innodb_buffer_pool_size={pool}, \
                     innodb_flush_log_at_trx_commit={flush}, TLS={tls}"
                )
            }
        })
    }

    /// Refreshes the planner statistics of the `events` table.
    pub async fn analyze(&self) -> Res<()> {
        match self {
            RawPool::Sqlite(p) => {
                sqlx::raw_sql("ANALYZE").execute(p).await?;
            }
            RawPool::Postgres(p) => {
                sqlx::raw_sql("ANALYZE").execute(p).await?;
            }
            RawPool::MySql(p) => {
                sqlx::raw_sql("ANALYZE TABLE events").execute(p).await?;
            }
        }
        Ok(())
    }

    /// The baseline: plain multi-row `INSERT`s of the 21 event columns, [`BASELINE_CHUNK`] rows
    /// per statement, all in one transaction; no conflict handling, no `RETURNING`.
    pub async fn bulk_insert(&self, events: &[Ev]) -> Res<()> {
        let received_at = to_micros(now());
        match self {
            RawPool::Sqlite(p) => bulk_insert(p, events, received_at).await?,
            RawPool::Postgres(p) => bulk_insert(p, events, received_at).await?,
            RawPool::MySql(p) => bulk_insert(p, events, received_at).await?,
        }
        Ok(())
    }
}

const EVENT_INSERT: &str = "INSERT INTO events (uid, sensor_id, division_id, service, ts, \
     received_at, source_ip, source_key, source_port, dest_ip, dest_port, protocol, type_code, \
     classification, severity, summary, status, comment, archived, details, packets) ";

async fn bulk_insert<DB>(
    pool: &Pool<DB>,
    events: &[Ev],
    received_at: i64,
) -> Result<(), sqlx::Error>
where
    DB: Database,
    DB::Arguments: Default + IntoArguments<DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i32>: Encode<'q, DB> + Type<DB>,
    for<'q> &'static str: Encode<'q, DB> + Type<DB>,
    for<'q> bool: Encode<'q, DB> + Type<DB>,
{
    if events.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    for chunk in events.chunks(BASELINE_CHUNK) {
        let mut qb = QueryBuilder::<DB>::new(EVENT_INSERT);
        qb.push_values(chunk, |mut b, (ev, division, status)| {
            let d = &ev.data;
            b.push_bind(d.uid.as_bytes().to_vec())
                .push_bind(d.sensor_id.0)
                .push_bind(division.0)
                .push_bind(d.service.clone())
                .push_bind(to_micros(d.timestamp))
                .push_bind(received_at)
                .push_bind(d.source_ip.to_string())
                .push_bind(ip_key(d.source_ip).to_vec())
                .push_bind(d.source_port.map(i32::from))
                .push_bind(d.dest_ip.map(|ip| ip.to_string()))
                .push_bind(d.dest_port.map(i32::from))
                .push_bind(d.protocol.as_str())
                .push_bind(d.type_code.clone())
                .push_bind(d.classification.as_str())
                .push_bind(d.severity.as_str())
                .push_bind(d.summary.clone())
                .push_bind(status.as_str())
                .push_bind(None::<String>)
                .push_bind(false)
                .push_bind(json(&ev.details))
                .push_bind(json(&ev.packets));
        });
        qb.build().execute(&mut *tx).await?;
    }
    tx.commit().await
}

fn json<T: serde::Serialize>(v: &T) -> String {
    // Same encoding as the store; plain data types cannot fail to serialise.
    serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Fleet and events
// ---------------------------------------------------------------------------------------------

/// Divisions and sensors created for a run.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Divisions in creation order.
    pub divisions: Vec<DivisionId>,
    /// Every sensor with its division.
    pub sensors: Vec<(SensorId, DivisionId)>,
}

/// Creates `divisions` divisions with `sensors_per_division` sensors each through the store.
pub async fn create_fleet(
    store: &dyn Store,
    divisions: usize,
    sensors_per_division: usize,
) -> Res<Fleet> {
    let mut fleet = Fleet {
        divisions: Vec::new(),
        sensors: Vec::new(),
    };
    for d in 0..divisions {
        let div = store
            .create_division(&DivisionSpec {
                name: format!("Division {d:02}"),
            })
            .await?;
        fleet.divisions.push(div.id);
        for s in 0..sensors_per_division {
            let mut spec = SensorSpec::new(format!("sensor-{d:02}-{s:03}"), div.id);
            spec.location = format!("Building {}, room {}", d + 1, 100 + s);
            let sensor = store.create_sensor(&spec).await?;
            fleet.sensors.push((sensor.id, div.id));
        }
    }
    Ok(fleet)
}

struct TypeSpec {
    code: &'static str,
    classification: Classification,
    severity: Severity,
    protocol: Protocol,
    service: Option<&'static str>,
    /// Share in percent.
    weight: u32,
}

/// The type-code mix: every classification occurs, port scans and connection attempts dominate.
const TYPES: &[TypeSpec] = &[
    TypeSpec {
        code: "scan.port",
        classification: Classification::PortScan,
        severity: Severity::Medium,
        protocol: Protocol::Tcp,
        service: None,
        weight: 35,
    },
    TypeSpec {
        code: "conn.attempt",
        classification: Classification::ConnectionAttempt,
        severity: Severity::Low,
        protocol: Protocol::Tcp,
        service: None,
        weight: 30,
    },
    TypeSpec {
        code: "ssh.login.failed",
        classification: Classification::HoneypotInteraction,
        severity: Severity::High,
        protocol: Protocol::Tcp,
        service: Some("cowrie"),
        weight: 15,
    },
    TypeSpec {
        code: "http.request",
        classification: Classification::HoneypotInteraction,
        severity: Severity::Medium,
        protocol: Protocol::Tcp,
        service: Some("glastopf"),
        weight: 10,
    },
    TypeSpec {
        code: "icmp.echo",
        classification: Classification::Icmp,
        severity: Severity::Info,
        protocol: Protocol::Icmp,
        service: None,
        weight: 7,
    },
    TypeSpec {
        code: "udp.unknown",
        classification: Classification::Unknown,
        severity: Severity::Info,
        protocol: Protocol::Udp,
        service: None,
        weight: 3,
    },
];

/// Status mix of the query data set, in percent: mostly untouched events.
const STATUS_MIX: &[(EventStatus, u32)] = &[
    (EventStatus::New, 70),
    (EventStatus::InProgress, 5),
    (EventStatus::Resolved, 15),
    (EventStatus::Ignored, 10),
];

const COMMON_PORTS: &[u16] = &[21, 23, 25, 80, 139, 443, 445, 1433, 3306, 3389, 5900, 8080];
const UDP_PORTS: &[u16] = &[53, 69, 123, 161, 1900, 5060];
const USERS: &[&str] = &[
    "root", "admin", "pi", "ubuntu", "oracle", "test", "user", "support",
];
const PASSWORDS: &[&str] = &["123456", "admin", "password", "raspberry", "root", "qwerty"];
const PATHS: &[&str] = &[
    "/",
    "/wp-login.php",
    "/.env",
    "/admin",
    "/cgi-bin/luci",
    "/phpmyadmin/",
];

/// Where event timestamps come from.
enum Clock {
    /// Live traffic: the current time minus an upload delay, uniform in `0..=prompt_us`, except
    /// for one event in `late_every` (if not 0), whose delay is uniform in `0..=late_us`.
    Live {
        prompt_us: i64,
        late_every: u32,
        late_us: i64,
    },
    /// A history of `total` events arriving in time order, evenly over `[start, start + span)`
    /// with a jitter of up to `jitter_us` (late uploads); `next` counts generated events.
    History {
        start_us: i64,
        span_us: i64,
        jitter_us: i64,
        total: u64,
        next: u64,
    },
}

/// Deterministic generator of realistic events (seeded; uids are v7 — event time plus 74
/// random bits from the same stream — so one generator never repeats a uid in practice).
pub struct EventGen {
    rng: SmallRng,
    sensors: Vec<(SensorId, DivisionId)>,
    clock: Clock,
    mixed_status: bool,
    /// Distinct source addresses drawn from (uniformly), spread over 10.0.0.0/8.
    sources: u32,
}

/// Addresses of 10.0.0.0/8, the default source range of generated events.
pub const ALL_SOURCES: u32 = 1 << 24;

fn pick<'a, T>(rng: &mut SmallRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

impl EventGen {
    /// Live events of `fleet`'s sensors, status `new`, timestamped when generated minus an
    /// upload delay as the agent has it: up to 2 s (it uploads as events come), and one event in
    /// a hundred up to 5 minutes late (replayed from the spool after an outage).
    pub fn live(seed: u64, fleet: &Fleet) -> EventGen {
        EventGen::with_clock(
            seed,
            fleet,
            Clock::Live {
                prompt_us: 2_000_000,
                late_every: 100,
                late_us: 300_000_000,
            },
        )
    }

    /// Like [`EventGen::live`], but every delay uniform in `0..=max_delay`: a worst case in
    /// which each batch's timestamps scatter over the time indexes' whole recent range.
    pub fn live_scattered(seed: u64, fleet: &Fleet, max_delay: std::time::Duration) -> EventGen {
        EventGen::with_clock(
            seed,
            fleet,
            Clock::Live {
                prompt_us: i64::try_from(max_delay.as_micros()).unwrap_or(i64::MAX / 4),
                late_every: 0,
                late_us: 0,
            },
        )
    }

    fn with_clock(seed: u64, fleet: &Fleet, clock: Clock) -> EventGen {
        EventGen {
            rng: SmallRng::seed_from_u64(seed),
            sensors: fleet.sensors.clone(),
            clock,
            mixed_status: false,
            sources: ALL_SOURCES,
        }
    }

    /// A history of `total` events of `fleet`'s sensors spread evenly over `[end - span, end)`
    /// and generated in time order (as they would have arrived, up to five minutes late), so
    /// ids grow with timestamps as in production. Status `new`.
    pub fn history(
        seed: u64,
        fleet: &Fleet,
        end: Timestamp,
        span: TimeDelta,
        total: usize,
    ) -> EventGen {
        let span_us = span.num_microseconds().unwrap_or(i64::MAX / 4).max(1);
        EventGen {
            rng: SmallRng::seed_from_u64(seed),
            sensors: fleet.sensors.clone(),
            clock: Clock::History {
                start_us: to_micros(end) - span_us,
                span_us,
                jitter_us: 300_000_000,
                total: u64::try_from(total.max(1)).unwrap_or(u64::MAX),
                next: 0,
            },
            mixed_status: false,
            sources: ALL_SOURCES,
        }
    }

    fn timestamp(&mut self) -> Timestamp {
        match &mut self.clock {
            Clock::Live {
                prompt_us,
                late_every,
                late_us,
            } => {
                let late = *late_every > 0 && self.rng.random_range(0..*late_every) == 0;
                let max = if late { *late_us } else { *prompt_us };
                from_micros(to_micros(now()) - self.rng.random_range(0..=max))
            }
            Clock::History {
                start_us,
                span_us,
                jitter_us,
                total,
                next,
            } => {
                // Position of this event on the time line, then an earlier event time (late
                // upload), kept inside the span.
                let frac = (*next as f64) / (*total as f64);
                *next += 1;
                let arrival = *start_us + (frac * *span_us as f64) as i64;
                let ts = arrival - self.rng.random_range(0..=*jitter_us);
                from_micros(ts.clamp(*start_us, *start_us + *span_us - 1))
            }
        }
    }

    /// Draws sources from `n` addresses (a few active attackers) instead of all of 10.0.0.0/8.
    pub fn with_sources(mut self, n: u32) -> EventGen {
        self.sources = n.clamp(1, ALL_SOURCES);
        self
    }

    /// Draws statuses from the query mix (70 % new) instead of all `new`.
    pub fn with_status_mix(mut self) -> EventGen {
        self.mixed_status = true;
        self
    }

    fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u32 = items.iter().map(|i| i.1).sum();
        let mut x = self.rng.random_range(0..total);
        for (item, w) in items {
            if x < *w {
                return *item;
            }
            x -= w;
        }
        items[items.len() - 1].0
    }

    /// One event with its division and initial status.
    pub fn event(&mut self) -> Ev {
        let ts = self.timestamp();
        let rng = &mut self.rng;
        let &(sensor_id, division) = pick(rng, &self.sensors);
        let sensor_idx = usize::try_from(sensor_id.0).unwrap_or(0);
        let t = {
            let total: u32 = TYPES.iter().map(|t| t.weight).sum();
            let mut x = rng.random_range(0..total);
            let mut chosen = &TYPES[0];
            for spec in TYPES {
                if x < spec.weight {
                    chosen = spec;
                    break;
                }
                x -= spec.weight;
            }
            chosen
        };
        // Source number i of n sits at i * (2^24 / n): the keys of few sources still spread
        // over the source index as far apart as a /8 allows.
        let src_bits: u32 = rng.random_range(0..self.sources) * (ALL_SOURCES / self.sources);
        let src = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | src_bits));
        let dst = IpAddr::V4(Ipv4Addr::new(
            172,
            16,
            u8::try_from(sensor_idx / 250).unwrap_or(255),
            u8::try_from(sensor_idx % 250 + 1).unwrap_or(255),
        ));
        let sport: u16 = rng.random_range(1024..=65535);
        let (source_port, dest_port, summary) = match t.code {
            "scan.port" => {
                let port: u16 = rng.random_range(1..=1024);
                let n: u32 = rng.random_range(5..200);
                (
                    Some(sport),
                    Some(port),
                    format!("Port scan from {src} touching {n} ports, first {port}/tcp"),
                )
            }
            "conn.attempt" => {
                let port = *pick(rng, COMMON_PORTS);
                (
                    Some(sport),
                    Some(port),
                    format!("Connection attempt from {src}:{sport} to port {port}/tcp"),
                )
            }
            "ssh.login.failed" => {
                let user = pick(rng, USERS);
                (
                    Some(sport),
                    Some(22),
                    format!("SSH login failed for user '{user}' from {src}:{sport}"),
                )
            }
            "http.request" => {
                let path = pick(rng, PATHS);
                (
                    Some(sport),
                    Some(80),
                    format!("HTTP GET {path} from {src}:{sport}, answered 404"),
                )
            }
            "icmp.echo" => {
                let n: u32 = rng.random_range(1..50);
                (
                    None,
                    None,
                    format!("ICMP echo requests from {src} to {dst}, {n} packets seen"),
                )
            }
            _ => {
                let port = *pick(rng, UDP_PORTS);
                (
                    Some(sport),
                    Some(port),
                    format!("Unclassified UDP traffic from {src}:{sport} to port {port}"),
                )
            }
        };
        let n_details = rng.random_range(0..=2);
        let details = (0..n_details)
            .map(|i| EventDetail {
                timestamp: from_micros(to_micros(ts) + i64::from(i) * 1_500_000),
                kind: if t.service.is_some() {
                    DetailKind::Interaction
                } else {
                    DetailKind::Generic
                },
                data: match t.code {
                    "ssh.login.failed" => {
                        format!(
                            "login attempt [{}/{}] failed",
                            pick(rng, USERS),
                            pick(rng, PASSWORDS)
                        )
                    }
                    "http.request" => format!(
                        "GET {} HTTP/1.1 User-Agent: Mozilla/5.0 zgrab/0.x",
                        pick(rng, PATHS)
                    ),
                    _ => format!("TCP flags SYN, window {}", rng.random_range(1024..65535)),
                },
            })
            .collect();
        // Time-ordered (v7) like the agent's: consecutive inserts land on neighbouring pages of
        // the unique uid index instead of random ones.
        let rand_bytes: [u8; 10] = rng.random();
        let millis = u64::try_from(ts.timestamp_millis()).unwrap_or(0);
        let uid = uuid::Builder::from_unix_timestamp_millis(millis, &rand_bytes).into_uuid();
        let status = if self.mixed_status {
            self.weighted(STATUS_MIX)
        } else {
            EventStatus::New
        };
        let event = NewEvent {
            data: EventData {
                uid,
                sensor_id,
                service: t.service.map(str::to_owned),
                timestamp: ts,
                source_ip: src,
                source_port,
                dest_ip: Some(dst),
                dest_port,
                protocol: t.protocol,
                type_code: t.code.to_owned(),
                classification: t.classification,
                severity: t.severity,
                summary,
            },
            details,
            packets: Vec::new(),
        };
        (event, division, status)
    }

    /// `n` events.
    pub fn batch(&mut self, n: usize) -> Vec<Ev> {
        (0..n).map(|_| self.event()).collect()
    }
}

/// Checks samples of both generator kinds against the model's validation rules.
pub fn self_check(fleet: &Fleet) -> Res<()> {
    let end = now();
    let mut live = EventGen::live(1, fleet);
    let mut history = EventGen::history(2, fleet, end, TimeDelta::days(90), 500).with_status_mix();
    for (ev, _, _) in live.batch(500).into_iter().chain(history.batch(500)) {
        ev.validate()
            .map_err(|e| format!("generated event is invalid: {e}: {ev:?}"))?;
        if ev.data.timestamp > end {
            return Err(format!("generated event lies in the future: {ev:?}").into());
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Statistics and output
// ---------------------------------------------------------------------------------------------

/// Median of `values` (mean of the middle two for an even count); 0 when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile `p` (0–100) of `values`; 0 when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

/// Smallest and largest value.
pub fn min_max(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
            (lo.min(x), hi.max(x))
        })
}

/// Events per second.
pub fn rate(events: usize, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64().max(1e-9)
}

/// Milliseconds.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// An integer with thin-space-free thousands separators: `1,234,567`.
pub fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Renders a Markdown table.
pub fn markdown_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| {} |", headers.join(" | "));
    let _ = writeln!(
        out,
        "|{}|",
        headers.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    );
    for row in rows {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
    out
}
