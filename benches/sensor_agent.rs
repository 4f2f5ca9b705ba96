//! The sensor agent and the sensor API under load, with the real release binaries as separate
//! processes over real TLS on loopback:
//!
//! - agent memory (VmRSS) idle and while taking 1,000 events/s;
//! - events/s one agent takes in (acknowledged = in its spool) and delivers to the server;
//! - status polls/s one server sustains from many simulated sensors, per core of server CPU
//!   time (the simulated sensors run in this process and share the machine).
//!
//! ```text
//! cargo build --release -p honeysens-server -p honeysens-sensor-bin
//! cargo bench -p honeysens-benches --bench sensor_agent
//! ```
//!
//! Environment: `HONEYSENS_BENCH_POLL_SENSORS` (simulated sensors, default 200),
//! `HONEYSENS_BENCH_SECONDS` (length of each timed phase, default 10).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Res, env_usize, markdown_table, print_machine_info, thousands};
use honeysens_core::model::{EventQuery, SensorSpec, SensorState};
use honeysens_core::protocol::{SensorCredentials, StatusRequest};
use honeysens_core::time::now;
use honeysens_http::client::{SensorAuth, SensorClient};
use honeysens_http::mgmt_client::ManagementClient;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const PW: &str = "benchmark admin password";

fn main() {
    common::bench_main("sensor_agent", run);
}

/// `target/release`, where `cargo build --release` put the binaries.
fn release_dir() -> PathBuf {
    // This bench runs as target/release/deps/sensor_agent-<hash>.
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_owned()
}

fn binary(name: &str) -> Res<PathBuf> {
    let p = release_dir().join(name);
    if !p.exists() {
        return Err(format!(
            "{} missing: run `cargo build --release -p honeysens-server -p honeysens-sensor-bin` first",
            p.display()
        )
        .into());
    }
    Ok(p)
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// VmRSS of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of a process, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // CLK_TCK is 100 on Linux.
    ticks as f64 / 100.0
}

fn event(n: u64) -> String {
    format!(
        r#"{{"service":"recon","source_ip":"10.{}.{}.{}","source_port":{},"dest_port":22,"protocol":"tcp","type_code":"conn.attempt","classification":"connection_attempt","severity":"low","summary":"connection attempt {n}"}}"#,
        (n >> 16) & 255,
        (n >> 8) & 255,
        n & 255,
        1024 + n % 60000
    )
}

async fn run() -> Res<()> {
    let seconds = env_usize("HONEYSENS_BENCH_SECONDS")?.unwrap_or(10) as u64;
    let poll_sensors = env_usize("HONEYSENS_BENCH_POLL_SENSORS")?.unwrap_or(200);
    let server_bin = binary("honeysens-server")?;
    let agent_bin = binary("honeysens-sensor")?;
    print_machine_info("sensor_agent");

    let dir = std::env::temp_dir().join(format!("hs-bench-agent-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let server = Proc(
        Command::new(&server_bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.join("server"))
            .env("HONEYSENS_ADMIN_PASSWORD", PW)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    );
    let url = format!("https://127.0.0.1:{port}");
    let ca_path = dir.join("server/ca.crt");
    let deadline = Instant::now() + Duration::from_secs(30);
    let ca_pem = loop {
        if let Ok(pem) = std::fs::read_to_string(&ca_path) {
            let c = ManagementClient::new(&url, &pem)?;
            if c.raw(
                honeysens_http::client::Method::GET,
                "/api/system/health",
                None,
            )
            .await
            .is_ok()
            {
                break pem;
            }
        }
        if Instant::now() > deadline {
            return Err("server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut admin = ManagementClient::new(&url, &ca_pem)?;
    admin.login("admin", PW).await?;
    let division = admin.list_divisions(&Default::default()).await?.items[0].id;
    println!("- server: release `honeysens-server`, SQLite, TLS 1.3 on loopback");
    println!("- agent: release `honeysens-sensor`, spool fsync per group commit\n");

    // --- Agent memory and throughput -----------------------------------------------------
    let created = admin
        .create_sensor(&SensorSpec::new("bench-agent", division))
        .await?;
    let bundle_path = dir.join("agent.json");
    std::fs::write(&bundle_path, serde_json::to_vec(&created.bundle)?)?;
    let state = dir.join("agent-state");
    let agent = Proc(
        Command::new(&agent_bin)
            .args(["run", "--poll-every", "60", "--config"])
            .arg(&bundle_path)
            .arg("--state-dir")
            .arg(&state)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?,
    );
    let pid = agent.0.id();
    let socket = state.join("intake.sock");
    while tokio::net::UnixStream::connect(&socket).await.is_err() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_kib = rss_kib(pid);

    // 1,000 events/s, paced in 10 ms steps of 10 events over one connection.
    let store = honeysens_store::open(
        &format!("sqlite://{}", dir.join("server/honeysens.db").display()),
        &Default::default(),
    )
    .await?;
    let count = |store: Arc<dyn honeysens_core::Store>| async move {
        store
            .count_events(&EventQuery::default())
            .await
            .unwrap_or(0)
    };
    let stream = tokio::net::UnixStream::connect(&socket).await?;
    let (r, mut w) = stream.into_split();
    let acks = Arc::new(AtomicU64::new(0));
    let a = acks.clone();
    let reader = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(r).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains("\"ok\":true") {
                a.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    let mut peak_kib = idle_kib;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let mut buf = String::new();
        for _ in 0..10 {
            buf.push_str(&event(n));
            buf.push('\n');
            n += 1;
        }
        w.write_all(buf.as_bytes()).await?;
        if n.is_multiple_of(1000) {
            peak_kib = peak_kib.max(rss_kib(pid));
        }
    }
    let paced_sent = n;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(store.clone()).await < paced_sent && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let paced_delivered = count(store.clone()).await;

    // As fast as possible: 50,000 events pipelined over 4 connections.
    let burst = 50_000u64;
    let before = count(store.clone()).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..4u64 {
        let socket = socket.clone();
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
            let (r, mut w) = stream.into_split();
            let per = burst / 4;
            let reader = tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(r).lines();
                let mut ok = 0u64;
                while ok < per {
                    match lines.next_line().await {
                        Ok(Some(l)) if l.contains("\"ok\":true") => ok += 1,
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
                ok
            });
            let mut buf = String::new();
            for i in 0..per {
                buf.push_str(&event(1_000_000 + c * per + i));
                buf.push('\n');
                if buf.len() > 64 * 1024 {
                    w.write_all(buf.as_bytes()).await.unwrap();
                    buf.clear();
                }
            }
            w.write_all(buf.as_bytes()).await.unwrap();
            reader.await.unwrap()
        }));
    }
    let mut acked = 0;
    for t in tasks {
        acked += t.await?;
    }
    let intake_elapsed = started.elapsed();
    let mut burst_peak = rss_kib(pid);
    let deadline = Instant::now() + Duration::from_secs(300);
    while count(store.clone()).await < before + burst && Instant::now() < deadline {
        burst_peak = burst_peak.max(rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered_elapsed = started.elapsed();
    let delivered = count(store.clone()).await - before;
    drop(w);
    reader.abort();
    drop(agent);

    println!("### Agent\n");
    let rows = vec![
        vec![
            "VmRSS idle".into(),
            format!("{:.1} MiB", idle_kib as f64 / 1024.0),
        ],
        vec![
            "VmRSS peak at 1,000 events/s".into(),
            format!("{:.1} MiB", peak_kib as f64 / 1024.0),
        ],
        vec![
            format!("paced phase ({seconds} s)"),
            format!(
                "{paced_sent} sent, {} acknowledged, {paced_delivered} on the server",
                acks.load(Ordering::Relaxed)
            ),
        ],
        vec![
            "intake, 4 connections as fast as possible".into(),
            format!(
                "{} events/s acknowledged ({acked} in {:.2} s)",
                thousands(acked as f64 / intake_elapsed.as_secs_f64()),
                intake_elapsed.as_secs_f64()
            ),
        ],
        vec![
            "delivered to the server".into(),
            format!(
                "{} events/s ({delivered} in {:.2} s)",
                thousands(delivered as f64 / delivered_elapsed.as_secs_f64()),
                delivered_elapsed.as_secs_f64()
            ),
        ],
        vec![
            "VmRSS peak during the burst".into(),
            format!("{:.1} MiB", burst_peak as f64 / 1024.0),
        ],
    ];
    println!("{}", markdown_table(&["measure", "value"], &rows));

    // --- Polls ----------------------------------------------------------------------------
    let mut clients = Vec::new();
    for i in 0..poll_sensors {
        let created = admin
            .create_sensor(&SensorSpec::new(format!("poller-{i}"), division))
            .await?;
        let SensorCredentials::Certificate {
            cert_pem, key_pem, ..
        } = created.bundle.credentials
        else {
            return Err("certificate bundle expected".into());
        };
        clients.push(SensorClient::new(
            &url,
            &ca_pem,
            SensorAuth::Certificate { cert_pem, key_pem },
            None,
        )?);
    }
    let request = StatusRequest {
        timestamp: now(),
        state: SensorState::Running,
        addresses: vec!["192.0.2.7/24".into()],
        free_memory_mb: 200,
        disk_total_mb: 4000,
        disk_used_mb: 1000,
        agent_version: "bench".into(),
        firmware_version: None,
        services: vec![],
        spool_depth: 0,
        csr: None,
    };
    // Warm-up: every sensor connects (TLS handshake) once.
    for c in &clients {
        c.send_status(&request).await?;
    }
    let polls = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let server_pid = server.0.id();
    let cpu_before = cpu_seconds(server_pid);
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in clients {
        let (polls, errors, request) = (polls.clone(), errors.clone(), request.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop_at {
                match c.send_status(&request).await {
                    Ok(_) => polls.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(server_pid) - cpu_before;
    let total = polls.load(Ordering::Relaxed);
    println!(
        "### Status polls ({poll_sensors} simulated sensors, client certificates, {seconds} s)\n"
    );
    let rows = vec![vec![
        thousands(total as f64 / elapsed),
        format!("{:.2}", cpu / elapsed),
        thousands(total as f64 / cpu.max(1e-9)),
        errors.load(Ordering::Relaxed).to_string(),
    ]];
    println!(
        "{}",
        markdown_table(
            &[
                "polls/s",
                "server cores busy",
                "polls per server CPU-second",
                "errors"
            ],
            &rows
        )
    );
    drop(server);
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
