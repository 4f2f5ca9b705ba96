//! Ingest throughput of `EventStore::insert_events` per backend and batch size, next to a plain
//! sqlx bulk insert of the same rows into the same table (the baseline); then the same with
//! eight concurrent uploads of batches of 100 (many sensors at once).
//!
//! ```text
//! cargo bench -p honeysens-benches --bench store_ingest
//! ```
//!
//! Environment: `HONEYSENS_TEST_POSTGRES_URL`, `HONEYSENS_TEST_MYSQL_URL` (backends without a URL
//! are skipped), `HONEYSENS_BENCH_INGEST_EVENTS` (events per repetition for batches of 100 and
//! 1000, default 20000; batches of 1 use a tenth of it, default 2000), `HONEYSENS_BENCH_SOURCES`
//! (distinct source addresses; default all of 10.0.0.0/8, uniformly random). See
//! `docs/benchmarks.md`.

// A benchmark `main` may stop with a message where the workspace lints (written for library
// code) deny `unwrap`/`expect`/`panic`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    ALL_SOURCES, Backend, BenchDb, EventGen, Kind, Res, create_fleet, env_usize, markdown_table,
    median, min_max, print_machine_info, rate, self_check, thousands, with_bench_db,
};
use honeysens_core::model::EventQuery;
use std::time::Instant;

/// Batch sizes passed to one `insert_events` call (and one baseline transaction).
const BATCH_SIZES: [usize; 3] = [1, 100, 1000];
/// Concurrent uploads: this many tasks, each inserting its share in batches of
/// `CONCURRENT_BATCH` (many sensors uploading at once).
const CONCURRENT_TASKS: usize = 8;
/// Batch size of the concurrent uploads.
const CONCURRENT_BATCH: usize = 100;
/// Timed repetitions per measurement; the median is reported.
const REPETITIONS: usize = 5;
/// Sensors of the single division the events come from.
const SENSORS: usize = 20;
/// Seed of the event generator (uids stay unique within a run).
const SEED: u64 = 0x4853_494e_4745_5354;

struct Measurement {
    kind: Kind,
    batch: usize,
    /// Concurrent tasks (1: one after the other).
    tasks: usize,
    events: usize,
    store: Vec<f64>,
    baseline: Vec<f64>,
}

fn main() {
    common::bench_main("store_ingest", run);
}

async fn run() -> Res<()> {
    print_machine_info("store_ingest");
    let configured = env_usize("HONEYSENS_BENCH_INGEST_EVENTS")?;
    let bulk_events = configured.unwrap_or(20_000);
    let single_events = configured.map_or(2_000, |n| (n / 10).max(1));
    let sources = match env_usize("HONEYSENS_BENCH_SOURCES")? {
        Some(n) => u32::try_from(n)
            .unwrap_or(ALL_SOURCES)
            .clamp(1, ALL_SOURCES),
        None => ALL_SOURCES,
    };
    println!(
        "Events per repetition: {bulk_events} for batches of 100 and 1000, {single_events} for \
         batches of 1; {REPETITIONS} repetitions, median reported. Sources: {}.\n",
        if sources == ALL_SOURCES {
            "uniformly random in 10.0.0.0/8".to_owned()
        } else {
            format!("{sources} addresses, uniformly")
        }
    );

    let mut results = Vec::new();
    let mut failed = Vec::new();
    for kind in Kind::ALL {
        let out = with_bench_db(kind, async |db| {
            bench_backend(db, bulk_events, single_events, sources).await
        })
        .await;
        match out {
            Ok(Some(rows)) => results.extend(rows),
            Ok(None) => {}
            Err(e) => {
                println!("- {}: FAILED: {e}", kind.name());
                failed.push(kind.name());
            }
        }
    }

    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|m| {
            let (s, b) = (median(&m.store), median(&m.baseline));
            let (s_lo, s_hi) = min_max(&m.store);
            let (b_lo, b_hi) = min_max(&m.baseline);
            vec![
                m.kind.name().to_owned(),
                if m.tasks == 1 {
                    m.batch.to_string()
                } else {
                    format!("{} × {} tasks", m.batch, m.tasks)
                },
                thousands(m.events as f64),
                thousands(s),
                thousands(b),
                format!("{:.2}", s / b.max(f64::MIN_POSITIVE)),
                format!("{}–{}", thousands(s_lo), thousands(s_hi)),
                format!("{}–{}", thousands(b_lo), thousands(b_hi)),
            ]
        })
        .collect();
    println!();
    print!(
        "{}",
        markdown_table(
            &[
                "Backend",
                "Batch",
                "Events/rep",
                "Store ev/s (median)",
                "Baseline ev/s (median)",
                "Store/baseline",
                "Store min–max",
                "Baseline min–max",
            ],
            &rows,
        )
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed backends: {}", failed.join(", ")).into())
    }
}

async fn bench_backend(
    db: &BenchDb,
    bulk_events: usize,
    single_events: usize,
    sources: u32,
) -> Res<Vec<Measurement>> {
    let backend = Backend::open(db).await?;
    let result = measure_backend(&backend, bulk_events, single_events, sources).await;
    backend.close().await;
    result
}

async fn measure_backend(
    backend: &Backend,
    bulk_events: usize,
    single_events: usize,
    sources: u32,
) -> Res<Vec<Measurement>> {
    let name = backend.kind.name();
    println!("- {name}: {}", backend.raw.server_info().await?);
    let fleet = create_fleet(backend.store.as_ref(), 1, SENSORS).await?;
    self_check(&fleet)?;
    let mut generator = EventGen::live(SEED, &fleet).with_sources(sources);

    // One upload after another per batch size, then concurrent uploads.
    let cases = BATCH_SIZES
        .map(|batch| (batch, 1))
        .into_iter()
        .chain([(CONCURRENT_BATCH, CONCURRENT_TASKS)]);
    let mut out = Vec::new();
    let mut expected_rows = 0usize;
    for (batch, tasks) in cases {
        let events = if batch == 1 {
            single_events
        } else {
            bulk_events
        };
        // Warm-up: opens pool connections and prepares both statements for this batch size.
        let warm = generator.batch(batch.min(events));
        backend.store.insert_events(&warm).await?;
        backend
            .raw
            .bulk_insert(&generator.batch(batch.min(events)))
            .await?;
        expected_rows += 2 * batch.min(events);

        let mut m = Measurement {
            kind: backend.kind,
            batch,
            tasks,
            events,
            store: Vec::new(),
            baseline: Vec::new(),
        };
        for rep in 0..REPETITIONS {
            // Alternate which side runs first so a slowly growing table favours neither.
            let store_first = rep % 2 == 0;
            for side in if store_first {
                [true, false]
            } else {
                [false, true]
            } {
                let data = generator.batch(events);
                let start = Instant::now();
                upload(backend, data, batch, tasks, side)
                    .await
                    .map_err(|e| format!("{name}: {e}"))?;
                let r = rate(events, start.elapsed());
                if side {
                    m.store.push(r)
                } else {
                    m.baseline.push(r)
                }
                expected_rows += events;
            }
            eprintln!(
                "[{name}] batch {batch}, {tasks} task(s), rep {}/{REPETITIONS}: store {} ev/s, \
                 baseline {} ev/s",
                rep + 1,
                thousands(m.store[rep]),
                thousands(m.baseline[rep])
            );
        }
        out.push(m);
    }

    let stored = backend.store.count_events(&EventQuery::default()).await?;
    if usize::try_from(stored).ok() != Some(expected_rows) {
        return Err(format!("{name}: {stored} events stored, expected {expected_rows}").into());
    }
    eprintln!("[{name}] {stored} events stored, as expected");
    Ok(out)
}

/// Stores `data` in batches of `batch`, split evenly over `tasks` concurrent tasks, through the
/// store (`store_side`) or the baseline.
async fn upload(
    backend: &Backend,
    data: Vec<common::Ev>,
    batch: usize,
    tasks: usize,
    store_side: bool,
) -> Res<()> {
    let share = data.len().div_ceil(tasks).max(1);
    let mut running = tokio::task::JoinSet::new();
    // The parts are moved, not cloned: with one task there is no copy in the timed region.
    let mut rest = data;
    while !rest.is_empty() {
        let tail = rest.split_off(share.min(rest.len()));
        let part = std::mem::replace(&mut rest, tail);
        let (store, raw) = (backend.store.clone(), backend.raw.clone());
        running.spawn(async move {
            for chunk in part.chunks(batch) {
                if store_side {
                    let report = store.insert_events(chunk).await?;
                    if report.inserted.len() != chunk.len() {
                        return Err(format!(
                            "insert_events stored {} of {} events ({} reported as duplicates)",
                            report.inserted.len(),
                            chunk.len(),
                            report.duplicates.len()
                        )
                        .into());
                    }
                } else {
                    raw.bulk_insert(chunk).await?;
                }
            }
            Res::Ok(())
        });
    }
    while let Some(done) = running.join_next().await {
        done.map_err(|e| format!("upload task failed: {e}"))??;
    }
    Ok(())
}
