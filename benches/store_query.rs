//! Latency of `EventStore::list_events` pages on large event tables, per backend.
//!
//! ```text
//! cargo bench -p honeysens-benches --bench store_query
//! ```
//!
//! Environment: `HONEYSENS_TEST_POSTGRES_URL`, `HONEYSENS_TEST_MYSQL_URL` (backends without a URL
//! are skipped), `HONEYSENS_BENCH_QUERY_SIZES` (comma-separated table sizes, default `100000`;
//! the table grows from one size to the next). See `docs/benchmarks.md`.

// A benchmark `main` may stop with a message where the workspace lints (written for library
// code) deny `unwrap`/`expect`/`panic`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use chrono::Duration as TimeDelta;
use common::{
    Backend, BenchDb, BoxError, Ev, EventGen, Kind, RawPool, Res, create_fleet, env_usize_list,
    markdown_table, median, ms, percentile, print_machine_info, rate, self_check, thousands,
    with_bench_db,
};
use honeysens_core::Store;
use honeysens_core::model::{
    Classification, EventQuery, EventStatus, IpMatch, PageRequest, SortOrder,
};
use honeysens_core::time::{Timestamp, now};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DIVISIONS: usize = 10;
const SENSORS_PER_DIVISION: usize = 20;
/// Event timestamps are uniform over this many days before the start of the run.
const SPAN_DAYS: i64 = 90;
/// Timed repetitions per query.
const REPETITIONS: usize = 50;
/// Untimed runs before the timed ones.
const WARMUP: usize = 3;
const PAGE_SIZE: u32 = 50;
/// The page reached through keyset cursors in query (b).
const DEEP_PAGE: usize = 20;
/// Rows per loader transaction (statements of 1000 rows each).
const LOAD_TX_ROWS: usize = 5000;
/// Latency target per page at 10M events.
const TARGET_MS: f64 = 20.0;
/// The /16 of the source filter (sources are uniform in 10.0.0.0/8).
const SOURCE_NET: &str = "10.42.0.0/16";
const SEED: u64 = 0x4853_5155_4552_5953;

struct LoadRow {
    kind: Kind,
    total: usize,
    load: Duration,
    analyze: Duration,
}

struct QueryRow {
    kind: Kind,
    total: usize,
    label: &'static str,
    matching: u64,
    rows: usize,
    samples: Vec<f64>,
}

fn main() {
    common::bench_main("store_query", run);
}

async fn run() -> Res<()> {
    print_machine_info("store_query");
    let sizes = env_usize_list("HONEYSENS_BENCH_QUERY_SIZES", &[100_000])?;
    println!(
        "Table sizes: {}; {DIVISIONS} divisions, {} sensors, timestamps over {SPAN_DAYS} days; \
         {REPETITIONS} timed runs per query after {WARMUP} warm-up runs; page size {PAGE_SIZE}.\n",
        sizes
            .iter()
            .map(|s| thousands(*s as f64))
            .collect::<Vec<_>>()
            .join(", "),
        DIVISIONS * SENSORS_PER_DIVISION,
    );

    let mut loads = Vec::new();
    let mut queries = Vec::new();
    let mut failed = Vec::new();
    for kind in Kind::ALL {
        // A fresh database per size: each table is a complete 90-day history.
        for (i, &size) in sizes.iter().enumerate() {
            match with_bench_db(kind, async |db| bench_size(db, size, i == 0).await).await {
                Ok(Some((load, rows))) => {
                    loads.push(load);
                    queries.extend(rows);
                }
                Ok(None) => break, // skipped: no URL for this backend
                Err(e) => {
                    println!("- {} at {size} events: FAILED: {e}", kind.name());
                    failed.push(format!("{} ({size})", kind.name()));
                }
            }
        }
    }

    println!("\n### Load (plain multi-row INSERT, {LOAD_TX_ROWS} rows per transaction)\n");
    let rows: Vec<Vec<String>> = loads
        .iter()
        .map(|l| {
            vec![
                l.kind.name().to_owned(),
                thousands(l.total as f64),
                format!("{:.1}", l.load.as_secs_f64()),
                thousands(rate(l.total, l.load)),
                format!("{:.1}", l.analyze.as_secs_f64()),
            ]
        })
        .collect();
    print!(
        "{}",
        markdown_table(
            &["Backend", "Events", "Load s", "Load ev/s", "ANALYZE s"],
            &rows
        )
    );

    println!("\n### Page latency (target: ≤ {TARGET_MS} ms per page at 10M events)\n");
    let rows: Vec<Vec<String>> = queries
        .iter()
        .map(|q| {
            if q.samples.is_empty() {
                let note = format!("n/a: fewer than {DEEP_PAGE} pages match");
                return vec![
                    q.kind.name().to_owned(),
                    thousands(q.total as f64),
                    q.label.to_owned(),
                    thousands(q.matching as f64),
                    "–".into(),
                    note,
                    "–".into(),
                    "–".into(),
                ];
            }
            let p95 = percentile(&q.samples, 95.0);
            vec![
                q.kind.name().to_owned(),
                thousands(q.total as f64),
                q.label.to_owned(),
                thousands(q.matching as f64),
                q.rows.to_string(),
                format!("{:.2}", median(&q.samples)),
                format!("{p95:.2}"),
                if p95 <= TARGET_MS {
                    "yes".into()
                } else {
                    "**no**".into()
                },
            ]
        })
        .collect();
    print!(
        "{}",
        markdown_table(
            &[
                "Backend",
                "Events",
                "Query",
                "Matching",
                "Rows",
                "Median ms",
                "p95 ms",
                "p95 ≤ 20 ms",
            ],
            &rows
        )
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed: {}", failed.join(", ")).into())
    }
}

async fn bench_size(db: &BenchDb, size: usize, first: bool) -> Res<(LoadRow, Vec<QueryRow>)> {
    let backend = Backend::open(db).await?;
    let result = measure_size(&backend, size, first).await;
    backend.close().await;
    result
}

async fn measure_size(
    backend: &Backend,
    total: usize,
    first: bool,
) -> Res<(LoadRow, Vec<QueryRow>)> {
    let name = backend.kind.name();
    if first {
        println!("- {name}: {}", backend.raw.server_info().await?);
    }
    let fleet = create_fleet(backend.store.as_ref(), DIVISIONS, SENSORS_PER_DIVISION).await?;
    self_check(&fleet)?;
    let end = now();
    let generator =
        EventGen::history(SEED, &fleet, end, TimeDelta::days(SPAN_DAYS), total).with_status_mix();
    let workers = if backend.kind == Kind::Sqlite { 1 } else { 2 };

    eprintln!("[{name}] loading {total} events ({workers} writer(s))");
    let load = load(&backend.raw, generator, total, workers).await?;
    let stored = backend.store.count_events(&EventQuery::default()).await?;
    if usize::try_from(stored).ok() != Some(total) {
        return Err(format!("{name}: {stored} events stored, expected {total}").into());
    }
    let start = Instant::now();
    backend.raw.analyze().await?;
    let analyze = start.elapsed();
    eprintln!(
        "[{name}] {total} events: loaded at {} ev/s, ANALYZE {:.1} s",
        thousands(rate(total, load)),
        analyze.as_secs_f64()
    );
    let load_row = LoadRow {
        kind: backend.kind,
        total,
        load,
        analyze,
    };

    let mut queries = Vec::new();
    let division = fleet.divisions[0];
    for (label, query, page) in query_set(backend.store.as_ref(), division, end).await? {
        let matching = backend.store.count_events(&query).await?;
        let Some(page) = page else {
            eprintln!("[{name}] {total} events, {label}: skipped, too few pages");
            queries.push(QueryRow {
                kind: backend.kind,
                total,
                label,
                matching,
                rows: 0,
                samples: Vec::new(),
            });
            continue;
        };
        let (rows, samples) = time_page(backend.store.as_ref(), &query, &page).await?;
        eprintln!(
            "[{name}] {total} events, {label}: median {:.2} ms, p95 {:.2} ms",
            median(&samples),
            percentile(&samples, 95.0)
        );
        queries.push(QueryRow {
            kind: backend.kind,
            total,
            label,
            matching,
            rows,
            samples,
        });
    }
    Ok((load_row, queries))
}

/// The measured listings: label, filter and page (`None` when the table is too small to reach
/// page [`DEEP_PAGE`]).
async fn query_set(
    store: &dyn Store,
    division: honeysens_core::ids::DivisionId,
    end: Timestamp,
) -> Res<Vec<(&'static str, EventQuery, Option<PageRequest>)>> {
    let new_in_division = EventQuery {
        divisions: Some(vec![division]),
        statuses: vec![EventStatus::New],
        ..EventQuery::default()
    };
    let first = PageRequest::first(PAGE_SIZE);

    // (b): page through to the cursor that starts page DEEP_PAGE.
    let mut cursor = None;
    for _ in 1..DEEP_PAGE {
        let page = store
            .list_events(
                &new_in_division,
                &PageRequest {
                    after: cursor,
                    ..first
                },
            )
            .await?;
        cursor = page.next;
        if cursor.is_none() {
            break;
        }
    }
    let deep = cursor.map(|after| PageRequest {
        after: Some(after),
        limit: PAGE_SIZE,
        order: SortOrder::Desc,
    });

    let port_scans_last_week = EventQuery {
        divisions: Some(vec![division]),
        classifications: vec![Classification::PortScan],
        from: Some(end - TimeDelta::days(7)),
        until: Some(end),
        ..EventQuery::default()
    };
    let net = SOURCE_NET
        .parse()
        .map_err(|e| format!("{SOURCE_NET}: {e}"))?;
    let by_source = EventQuery {
        source: Some(IpMatch::Net { net }),
        ..EventQuery::default()
    };

    Ok(vec![
        (
            "(a) division + status=new, page 1",
            new_in_division.clone(),
            Some(first),
        ),
        (
            "(b) division + status=new, page 20 via cursor",
            new_in_division,
            deep,
        ),
        (
            "(c) division + port_scan + last 7 days, page 1",
            port_scans_last_week,
            Some(first),
        ),
        ("(d) source in 10.42.0.0/16, page 1", by_source, Some(first)),
    ])
}

/// Runs one listing `WARMUP` times untimed, then `REPETITIONS` times timed (ms).
async fn time_page(
    store: &dyn Store,
    query: &EventQuery,
    page: &PageRequest,
) -> Res<(usize, Vec<f64>)> {
    for _ in 0..WARMUP {
        store.list_events(query, page).await?;
    }
    let mut samples = Vec::with_capacity(REPETITIONS);
    let mut rows = 0;
    for _ in 0..REPETITIONS {
        let start = Instant::now();
        let result = store.list_events(query, page).await?;
        samples.push(ms(start.elapsed()));
        rows = result.items.len();
    }
    Ok((rows, samples))
}

/// Loads `count` generated events through the baseline bulk path: one generator thread feeding
/// `workers` writer tasks, each committing `LOAD_TX_ROWS` rows per transaction. Returns the
/// wall time.
async fn load(raw: &RawPool, generator: EventGen, count: usize, workers: usize) -> Res<Duration> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Ev>>(workers * 2);
    let start = Instant::now();
    let producer = tokio::task::spawn_blocking(move || {
        let mut generator = generator;
        let mut sent = 0usize;
        let step = (count / 10).max(1);
        while sent < count {
            let n = (count - sent).min(LOAD_TX_ROWS);
            if tx.blocking_send(generator.batch(n)).is_err() {
                break; // the writers stopped on an error
            }
            if (sent + n) / step > sent / step {
                eprintln!("[load] {} / {count} generated", sent + n);
            }
            sent += n;
        }
    });

    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let rx = rx.clone();
        let raw = raw.clone();
        writers.spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some(batch) = next else {
                    return Ok::<(), BoxError>(());
                };
                raw.bulk_insert(&batch).await?;
            }
        });
    }
    drop(rx);
    let mut failure: Option<BoxError> = None;
    while let Some(joined) = writers.join_next().await {
        let err = match joined {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e,
            Err(e) if e.is_cancelled() => continue,
            Err(e) => e.into(),
        };
        if failure.is_none() {
            failure = Some(err);
            // Dropping the other writers drops the receiver, which stops the producer.
            writers.abort_all();
        }
    }
    producer.await?;
    let elapsed = start.elapsed();
    match failure {
        Some(e) => Err(e),
        None => Ok(elapsed),
    }
}
