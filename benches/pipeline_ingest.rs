//! Throughput of the full event ingest path per backend: JSON events as a sensor uploads them →
//! parse and validate → classify → the division's event filters → store with incident grouping
//! → alert and SIEM jobs enqueued in the same transaction. Everything the server does for an
//! upload except TLS and HTTP framing (`honeysens_http::api::upload_events`).
//!
//! ```text
//! cargo bench -p honeysens-benches --bench pipeline_ingest
//! ```
//!
//! Each repetition also stores as many events of the same kind with `insert_events` alone
//! (the plain store path) into the same database, so the ratio shows what the pipeline adds.
//!
//! Two source distributions: **uniform** (sources random in 10.0.0.0/8, so nearly every event
//! opens its own incident and alert job — the worst case) and **skewed** (95 % of events from
//! 100 scanning hosts, the rest uniform — closer to a real network). Two delay models: events
//! reach the server **prompt**ly as the agent uploads them (within 2 s, 1 % up to 5 minutes
//! late), or **scattered** uniformly over the last 60 s, so every batch lands all over the time
//! indexes (`(ts, id)` and its division/sensor variants) — the worst case.
//!
//! Environment: `HONEYSENS_TEST_POSTGRES_URL`, `HONEYSENS_TEST_MYSQL_URL` (backends without a URL
//! are skipped), `HONEYSENS_BENCH_PIPELINE_EVENTS` (events per repetition, default 20000).
//! Uploads are 1000 events (the agent's batch limit). See `docs/benchmarks.md`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    EventGen, Kind, Res, create_fleet, env_usize, markdown_table, median, min_max,
    print_machine_info, rate, self_check, thousands, with_bench_db,
};
use honeysens_core::model::{
    ALERT_JOB, EventFilterSpec, FilterAction, FilterCondition, IncidentQuery, IpMatch, PageRequest,
};
use honeysens_core::pki::CertificateAuthority;
use honeysens_http::auth::{AuthMethod, SensorIdentity};
use honeysens_http::pipeline::PipelineOptions;
use honeysens_http::server::{Server, ServerOptions};
use honeysens_http::tls::TlsMaterial;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Events per upload.
const UPLOAD: usize = 1000;
/// Timed repetitions; the median is reported.
const REPETITIONS: usize = 5;
const SEED: u64 = 0x5049_5045_4c49_4e45;

fn main() {
    common::bench_main("pipeline_ingest", run);
}

#[derive(Clone, Copy)]
enum Sources {
    Uniform,
    Skewed,
}

impl Sources {
    fn name(self) -> &'static str {
        match self {
            Sources::Uniform => "uniform",
            Sources::Skewed => "skewed",
        }
    }
}

/// How late events reach the server.
#[derive(Clone, Copy)]
enum Delays {
    /// As the agent uploads: within 2 s, one in a hundred up to 5 minutes late.
    Prompt,
    /// Uniform up to 60 s: every batch scatters over the time indexes (worst case).
    Scattered,
}

impl Delays {
    fn name(self) -> &'static str {
        match self {
            Delays::Prompt => "prompt",
            Delays::Scattered => "scattered 0–60 s",
        }
    }
}

struct Row {
    kind: Kind,
    sources: Sources,
    delays: Delays,
    events: usize,
    rates: Vec<f64>,
    plain: Vec<f64>,
    incidents: usize,
}

async fn run() -> Res<()> {
    print_machine_info("pipeline_ingest");
    let events = env_usize("HONEYSENS_BENCH_PIPELINE_EVENTS")?.unwrap_or(20_000);
    println!(
        "{events} events per repetition in uploads of {UPLOAD}; {REPETITIONS} repetitions, \
         median reported. Three event filters in the division (one auto-resolves ICMP).\n"
    );
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let cases = [
        (Sources::Skewed, Delays::Prompt),
        (Sources::Uniform, Delays::Prompt),
        (Sources::Uniform, Delays::Scattered),
    ];
    for (sources, delays) in cases {
        for kind in Kind::ALL {
            match with_bench_db(kind, async |db| {
                measure(db.url.clone(), kind, sources, delays, events).await
            })
            .await
            {
                Ok(Some(r)) => rows.push(r),
                Ok(None) => {}
                Err(e) => {
                    println!("- {} ({}): FAILED: {e}", kind.name(), sources.name());
                    failed.push(kind.name());
                }
            }
        }
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let (lo, hi) = min_max(&r.rates);
            vec![
                r.kind.name().to_owned(),
                r.sources.name().to_owned(),
                r.delays.name().to_owned(),
                thousands(r.events as f64),
                thousands(median(&r.rates)),
                format!("{}–{}", thousands(lo), thousands(hi)),
                thousands(median(&r.plain)),
                format!(
                    "{:.2}",
                    median(&r.rates) / median(&r.plain).max(f64::MIN_POSITIVE)
                ),
                r.incidents.to_string(),
            ]
        })
        .collect();
    println!();
    print!(
        "{}",
        markdown_table(
            &[
                "Backend",
                "Sources",
                "Upload delays",
                "Events/rep",
                "Full path ev/s (median)",
                "min–max",
                "Plain insert_events ev/s (median)",
                "Full/plain",
                "Incidents at end",
            ],
            &table,
        )
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("failed backends: {}", failed.join(", ")).into())
    }
}

async fn upload(
    st: &honeysens_http::server::AppState,
    identity: &SensorIdentity,
    events: Vec<serde_json::Value>,
) -> Res<honeysens_core::protocol::EventUploadResult> {
    honeysens_http::api::upload_events(st, identity, events)
        .await
        .map_err(|e| format!("{}: {}", e.code, e.message).into())
}

async fn measure(
    url: String,
    kind: Kind,
    sources: Sources,
    delays: Delays,
    events: usize,
) -> Res<Row> {
    let store = honeysens_store::open(&url, &Default::default()).await?;
    let result = measure_store(store.clone(), kind, sources, delays, events).await;
    store.close().await;
    result
}

async fn measure_store(
    store: Arc<dyn honeysens_core::Store>,
    kind: Kind,
    sources: Sources,
    delays: Delays,
    events: usize,
) -> Res<Row> {
    let name = format!("{} {} {}", kind.name(), sources.name(), delays.name());
    let fleet = create_fleet(store.as_ref(), 1, 20).await?;
    self_check(&fleet)?;
    let (sensor_id, division) = fleet.sensors[0];
    for (i, (action, cond)) in [
        (
            FilterAction::Resolve,
            FilterCondition::TypeCode {
                value: "icmp.*".into(),
            },
        ),
        (
            FilterAction::Drop,
            FilterCondition::Source {
                value: IpMatch::Net {
                    net: "192.0.2.0/24".parse()?,
                },
            },
        ),
        (
            FilterAction::Drop,
            FilterCondition::DestPort { from: 1, to: 1 },
        ),
    ]
    .into_iter()
    .enumerate()
    {
        store
            .create_filter(&EventFilterSpec {
                division_id: division,
                name: format!("bench filter {i}"),
                description: None,
                enabled: true,
                action,
                conditions: vec![cond],
            })
            .await?;
    }
    let ca = Arc::new(CertificateAuthority::load_or_create(store.as_ref(), "Bench CA").await?);
    let cert = ca.issue_server(&["localhost".into()], &["127.0.0.1".parse()?])?;
    let dir = std::env::temp_dir().join(format!("hs-bench-pipeline-{}", uuid::Uuid::new_v4()));
    let server = Server::bind(
        store.clone(),
        ca,
        ServerOptions {
            listen: "127.0.0.1:0".parse()?,
            tls: TlsMaterial::from_pem(&cert.cert_pem, &cert.key_pem)?,
            trusted_proxies: vec![],
            crl_refresh: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(1),
            blobs: Arc::new(honeysens_store::FsBlobStore::open_dir(&dir).await?),
            public_endpoint: None,
            max_service_package: honeysens_http::mgmt::packages::DEFAULT_MAX_PACKAGE,
            // Ingest only: the jobs stay queued, as they would while workers are busy.
            pipeline: PipelineOptions {
                workers: false,
                ..Default::default()
            },
        },
    )
    .await?;
    let st = server.state();
    let identity = SensorIdentity {
        sensor_id,
        method: AuthMethod::InProcess,
        sensor: store.get_sensor(sensor_id).await?,
    };
    let mut generator = match delays {
        Delays::Prompt => EventGen::live(SEED, &fleet),
        Delays::Scattered => EventGen::live_scattered(SEED, &fleet, Duration::from_secs(60)),
    };
    let mut rng = SmallRng::seed_from_u64(SEED);
    let scanners: Vec<IpAddr> = (0..100u32)
        .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a63_0000 + i)))
        .collect();
    let mut generate = |n: usize| -> Vec<Vec<serde_json::Value>> {
        let batch: Vec<serde_json::Value> = generator
            .batch(n)
            .into_iter()
            .map(|(mut e, _, _)| {
                e.data.sensor_id = sensor_id;
                if matches!(sources, Sources::Skewed) && rng.random_range(0..100) < 95 {
                    e.data.source_ip = scanners[rng.random_range(0..scanners.len())];
                }
                serde_json::to_value(&e).unwrap()
            })
            .collect();
        batch.chunks(UPLOAD).map(<[_]>::to_vec).collect()
    };
    // Warm-up: pool connections, statements, caches.
    for chunk in generate(UPLOAD) {
        upload(&st, &identity, chunk).await?;
    }
    let mut rates = Vec::new();
    let mut plain = Vec::new();
    for rep in 0..REPETITIONS {
        // Baseline in the same database: the same kind of events stored with
        // `insert_events` alone (no parsing, filters, incidents or jobs), in batches of 1000.
        let rows: Vec<_> = generate(events)
            .into_iter()
            .flatten()
            .map(|v| {
                let e: honeysens_core::model::NewEvent = serde_json::from_value(v).unwrap();
                (e, division, honeysens_core::model::EventStatus::New)
            })
            .collect();
        let start = Instant::now();
        for chunk in rows.chunks(UPLOAD) {
            store.insert_events(chunk).await?;
        }
        plain.push(rate(events, start.elapsed()));
        let data = generate(events);
        let start = Instant::now();
        let mut accepted = 0;
        for chunk in data {
            let r = upload(&st, &identity, chunk).await?;
            if !r.rejected.is_empty() {
                return Err(format!("{name}: {} events rejected", r.rejected.len()).into());
            }
            accepted += r.accepted.len();
        }
        let elapsed = start.elapsed();
        if accepted != events {
            return Err(format!("{name}: {accepted} of {events} accepted").into());
        }
        rates.push(rate(events, elapsed));
        eprintln!(
            "[{name}] rep {}/{REPETITIONS}: {} ev/s (plain insert_events {} ev/s)",
            rep + 1,
            thousands(rates[rep]),
            thousands(plain[rep])
        );
    }
    let mut incidents = 0;
    let mut page = PageRequest::first(512);
    loop {
        let p = store
            .list_incidents(&IncidentQuery::default(), &page)
            .await?;
        incidents += p.items.len();
        match p.next {
            Some(n) => page.after = Some(n),
            None => break,
        }
    }
    // Sanity: the path really grouped and enqueued.
    let claimed = store
        .claim_jobs(
            "bench",
            Some(&[ALERT_JOB.to_owned()]),
            1,
            Duration::from_secs(1),
        )
        .await?;
    if incidents == 0 || claimed.is_empty() {
        return Err(format!("{name}: no incidents or alert jobs were created").into());
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Row {
        kind,
        sources,
        delays,
        events,
        rates,
        plain,
        incidents,
    })
}
