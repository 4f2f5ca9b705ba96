//! The PostgreSQL store.

use crate::imp::EventIn;
use crate::rows::json;
use honeysens_core::Result;
use honeysens_core::model::ip_key;
use honeysens_core::time::to_micros;
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

    /// Locks the sensors an event batch refers to until it commits: the lock a foreign-key
    /// check takes, which blocks deleting the row and changing its keys (`division_id` is
    /// part of one), not other updates.
    pub(crate) const LOCK_SHARE: &'static str = " FOR KEY SHARE";
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

    /// Whether a batch of `len` events (without grouping) skips the store's separate sensor
    /// lookup: its chunks are then inserted by [`ARRAY_INSERT_CHECKED`], which checks them.
    pub(crate) fn sensors_checked_by_insert(len: usize) -> bool {
        len >= ARRAY_INSERT_MIN_ROWS
    }

    pub(crate) async fn insert_event_chunk(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        chunk: &[EventIn<'_>],
        received_at: i64,
        lookup: bool,
        check_sensors: bool,
    ) -> Result<Vec<(Vec<u8>, i64)>> {
        if chunk.len() < ARRAY_INSERT_MIN_ROWS && !check_sensors {
            return Self::insert_event_values(tx, chunk, received_at).await;
        }
        // No conflict clause: a plain insert costs the server about a quarter less than
        // `ON CONFLICT DO NOTHING`'s speculative one. Stored uids are skipped up front when
        // `lookup` asks for it; otherwise (and when a concurrent upload stores one in between)
        // a stored uid fails the insert as an `IngestRace` and the whole ingest runs again.
        let fresh;
        let chunk = if lookup {
            let uids: Vec<&[u8]> = chunk
                .iter()
                .map(|(e, _)| e.0.data.uid.as_bytes().as_slice())
                .collect();
            let stored: Vec<(Vec<u8>,)> =
                sqlx::query_as("SELECT uid FROM events WHERE uid = ANY($1)")
                    .bind(&uids)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(crate::error::read_err("event"))?;
            fresh = crate::imp::unstored(chunk, stored);
            if fresh.is_empty() {
                return Ok(Vec::new());
            }
            fresh.as_slice()
        } else {
            chunk
        };
        let c = EventColumns::of(chunk);
        // The distinct sensors the checked statement locks and joins.
        let sensors: Option<Vec<i64>> = check_sensors.then(|| {
            let set: std::collections::BTreeSet<i64> = c.sensor_id.iter().copied().collect();
            set.into_iter().collect()
        });
        let sql = if check_sensors {
            ARRAY_INSERT_CHECKED
        } else {
            ARRAY_INSERT
        };
        let query = sqlx::query_as(sql)
            .bind(received_at)
            .bind(c.uid)
            .bind(c.sensor_id)
            .bind(c.division_id)
            .bind(c.service)
            .bind(c.ts)
            .bind(c.source_ip)
            .bind(c.source_key)
            .bind(c.source_port)
            .bind(c.dest_ip)
            .bind(c.dest_port)
            .bind(c.protocol)
            .bind(c.type_code)
            .bind(c.classification)
            .bind(c.severity)
            .bind(c.summary)
            .bind(c.status)
            .bind(c.details)
            .bind(c.packets)
            .bind(c.incident_id);
        let query = match sensors {
            Some(sensors) => query.bind(sensors),
            None => query,
        };
        let rows: Vec<(Vec<u8>, i64)> = query
            .fetch_all(&mut **tx)
            .await
            .map_err(crate::error::event_insert_err)?;
        if rows.len() < chunk.len() {
            // Only the sensor check drops rows (a stored uid fails the statement): the lookup
            // names the reason. It cannot pass, as the sensors it saw are locked since; if it
            // did, run the ingest again rather than report events as stored that are not.
            let events: Vec<_> = chunk.iter().map(|(e, _)| *e).collect();
            Self::check_sensors(tx, &events).await?;
            return Err(honeysens_core::Error::Storage(Box::new(
                crate::error::IngestRace,
            )));
        }
        Ok(rows)
    }
}

/// Chunks of at least this many events are inserted from column arrays ([`ARRAY_INSERT`]);
/// smaller ones as a multi-row `VALUES` list with a conflict clause (one statement, no lookup).
const ARRAY_INSERT_MIN_ROWS: usize = 16;

/// The shared part of [`ARRAY_INSERT`] and [`ARRAY_INSERT_CHECKED`]: the chunk as one array
/// per column, one statement with a fixed text (prepared once per connection) and 20 parameters,
/// not 22 per row.
macro_rules! array_insert {
    ($with:literal, $join:literal) => {
        concat!(
            $with,
            "INSERT INTO events (uid, sensor_id, division_id, service, ts, received_at, \
             source_ip, source_key, source_port, dest_ip, dest_port, protocol, type_code, \
             classification, severity, summary, status, comment, archived, details, packets, \
             incident_id) SELECT u.uid, u.sensor_id, u.division_id, u.service, u.ts, $1, \
             u.source_ip, u.source_key, u.source_port, u.dest_ip, u.dest_port, u.protocol, \
             u.type_code, u.classification, u.severity, u.summary, u.status, NULL, FALSE, \
             u.details, u.packets, u.incident_id FROM UNNEST($2::bytea[], $3::int8[], \
             $4::int8[], $5::text[], $6::int8[], $7::text[], $8::bytea[], $9::int4[], \
             $10::text[], $11::int4[], $12::text[], $13::text[], $14::text[], $15::text[], \
             $16::text[], $17::text[], $18::text[], $19::text[], $20::int8[]) WITH ORDINALITY \
             AS u (uid, sensor_id, division_id, service, ts, source_ip, source_key, \
             source_port, dest_ip, dest_port, protocol, type_code, classification, severity, \
             summary, status, details, packets, incident_id, n)",
            $join,
            " ORDER BY u.n RETURNING uid, id"
        )
    };
}

/// [`array_insert!`] for a batch whose sensors the store has checked and locked already.
const ARRAY_INSERT: &str = array_insert!("", "");

/// [`array_insert!`] that checks the sensors itself, saving the batch a statement: only events
/// whose sensor (`$21`: the chunk's sensors, locked as a foreign-key check locks them) is in the
/// event's division are inserted; the caller compares the returned rows with the chunk. Each
/// locked sensor joins at least one inserted row whenever all rows are inserted, so a plan that
/// reads the sensors lazily still locks them all.
const ARRAY_INSERT_CHECKED: &str = array_insert!(
    "WITH s (sensor, division) AS MATERIALIZED (SELECT id, division_id FROM sensors \
     WHERE id = ANY($21::int8[]) ORDER BY id FOR KEY SHARE) ",
    " JOIN s ON s.sensor = u.sensor_id AND s.division = u.division_id"
);

/// The bind arrays of [`ARRAY_INSERT`], one entry per event.
#[derive(Default)]
struct EventColumns<'a> {
    uid: Vec<Vec<u8>>,
    sensor_id: Vec<i64>,
    division_id: Vec<i64>,
    service: Vec<Option<&'a str>>,
    ts: Vec<i64>,
    source_ip: Vec<String>,
    source_key: Vec<Vec<u8>>,
    source_port: Vec<Option<i32>>,
    dest_ip: Vec<Option<String>>,
    dest_port: Vec<Option<i32>>,
    protocol: Vec<&'static str>,
    type_code: Vec<&'a str>,
    classification: Vec<&'static str>,
    severity: Vec<&'static str>,
    summary: Vec<&'a str>,
    status: Vec<&'static str>,
    details: Vec<String>,
    packets: Vec<String>,
    incident_id: Vec<Option<i64>>,
}

impl<'a> EventColumns<'a> {
    fn of(chunk: &'a [EventIn<'_>]) -> Self {
        let mut c = EventColumns::default();
        for ((ev, division, status), incident) in chunk {
            let d = &ev.data;
            c.uid.push(d.uid.as_bytes().to_vec());
            c.sensor_id.push(d.sensor_id.0);
            c.division_id.push(division.0);
            c.service.push(d.service.as_deref());
            c.ts.push(to_micros(d.timestamp));
            c.source_ip.push(d.source_ip.to_string());
            c.source_key.push(ip_key(d.source_ip).to_vec());
            c.source_port.push(d.source_port.map(i32::from));
            c.dest_ip.push(d.dest_ip.map(|ip| ip.to_string()));
            c.dest_port.push(d.dest_port.map(i32::from));
            c.protocol.push(d.protocol.as_str());
            c.type_code.push(d.type_code.as_str());
            c.classification.push(d.classification.as_str());
            c.severity.push(d.severity.as_str());
            c.summary.push(d.summary.as_str());
            c.status.push(status.as_str());
            c.details.push(json(&ev.details));
            c.packets.push(json(&ev.packets));
            c.incident_id.push(*incident);
        }
        c
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
