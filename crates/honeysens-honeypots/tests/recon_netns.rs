//! recon against real scanners, in a pair of network namespaces joined by a veth pair:
//! `nmap -sS -p-` (the SYN scan that never reaches `accept()`) must give exactly one
//! `scan.host` with every port; a connection redirected by nftables to the catch-all listener
//! must be one `conn.attempt` with its original port and first bytes; and a connect scan
//! through that redirect must again be one `scan.host` and no flood of attempts.
//!
//! Needs root and `nmap`, `nft`, `ip`; skips without them, fails under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{ATTACKER_IP, NetnsPair, SENSOR_IP, collect_for, detail, require, wait_for};
use honeysens_core::protocol::IntakeEvent;
use honeysens_honeypots::Shutdown;
use honeysens_honeypots::recon::aggregate::Thresholds;
use honeysens_honeypots::recon::{self, ReconConfig};
use honeysens_honeypots::sink::EventSink;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The scans run one at a time: two full-speed nmap runs on a 2-core CI machine would only
/// make each other slow.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

struct Recon {
    rx: mpsc::Receiver<IntakeEvent>,
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Recon {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts recon inside `ns` and waits until its capture socket exists there.
fn start_recon(ns: &str, config: ReconConfig) -> Recon {
    let (tx, rx) = std::sync::mpsc::channel();
    let shutdown = Shutdown::new();
    let sd = shutdown.clone();
    let thread = NetnsPair::spawn_in(ns, move || async move {
        let (sink, events) = EventSink::channel(4096);
        tx.send(events).unwrap();
        recon::run(config, sink, sd).await.unwrap();
    });
    let rx = rx.recv_timeout(Duration::from_secs(30)).unwrap();
    let start = Instant::now();
    // /proc/net/packet lists the namespace's packet sockets: one line of header plus ours.
    while String::from_utf8_lossy(&NetnsPair::exec(ns, "cat", &["/proc/net/packet"]).stdout)
        .lines()
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "recon never opened its capture socket"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Recon {
        rx,
        shutdown,
        thread: Some(thread),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn nmap(ns: &str, args: &[&str]) {
    let out = NetnsPair::exec(ns, "nmap", args);
    assert!(
        out.status.success(),
        "nmap {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
}

/// The single scan event plus every other event within the quiet period after it.
fn scan_and_rest(recon: &mut Recon) -> (IntakeEvent, Vec<IntakeEvent>) {
    rt().block_on(async {
        let mut before = Vec::new();
        let scan = wait_for(&mut recon.rx, Duration::from_secs(120), |e| {
            if e.type_code == "scan.host" {
                return true;
            }
            before.push(e.clone());
            false
        })
        .await
        .expect("no scan.host event");
        // Everything the same scan could still cause: well past quiet time, within the mute.
        let mut rest = collect_for(&mut recon.rx, Duration::from_secs(15)).await;
        rest.extend(before);
        (scan, rest)
    })
}

#[test]
fn nmap_syn_scan_of_every_port_is_exactly_one_scan_event() {
    if !require(true, &["ip", "nmap"]) {
        return;
    }
    let _serial = serial();
    let pair = NetnsPair::new("syn");
    let mut recon = start_recon(
        &pair.sensor,
        ReconConfig {
            interface: Some("hs0".into()),
            ..ReconConfig::default()
        },
    );
    nmap(&pair.attacker, &["-p-", "-T5", "-n", "-Pn", SENSOR_IP]);
    let (scan, rest) = scan_and_rest(&mut recon);
    assert_eq!(scan.source_ip.to_string(), ATTACKER_IP);
    assert_eq!(
        scan.dest_ip.map(|i| i.to_string()).as_deref(),
        Some(SENSOR_IP)
    );
    assert_eq!(scan.service.as_deref(), Some("recon"));
    assert_eq!(detail(&scan, "port_count"), Some("65535"), "{scan:?}");
    assert_eq!(detail(&scan, "ports"), Some("1-65535"));
    let from_attacker: Vec<_> = rest
        .iter()
        .filter(|e| e.source_ip.to_string() == ATTACKER_IP)
        .map(|e| (&e.type_code, &e.summary))
        .collect();
    assert!(
        from_attacker.is_empty(),
        "events besides the scan: {from_attacker:?}"
    );
}

#[test]
fn redirected_connections_are_attempts_with_original_port_and_a_connect_scan_is_one_event() {
    if !require(true, &["ip", "nmap", "nft"]) {
        return;
    }
    let _serial = serial();
    let pair = NetnsPair::new("sT");
    // The agent's redirect of every unclaimed port to the catch-all port, in miniature.
    let rules = "table ip hs_test {\n chain pre {\n  type nat hook prerouting priority dstnat;\n  iifname \"hs0\" tcp dport != 4000 redirect to :4000\n }\n}\n";
    let rules_file = std::env::temp_dir().join(format!("{}.nft", pair.sensor));
    std::fs::write(&rules_file, rules).unwrap();
    let out = NetnsPair::exec(&pair.sensor, "nft", &["-f", rules_file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&rules_file);
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut recon = start_recon(
        &pair.sensor,
        ReconConfig {
            interface: Some("hs0".into()),
            listen: Some("0.0.0.0:4000".parse().unwrap()),
            thresholds: Thresholds {
                quiet: Duration::from_secs(2),
                ..Thresholds::default()
            },
            ..ReconConfig::default()
        },
    );

    // One full connection to port 4444 sending a line.
    let reply = NetnsPair::spawn_in(&pair.attacker, || async {
        let mut s = tokio::net::TcpStream::connect((SENSOR_IP, 4444))
            .await
            .unwrap();
        s.write_all(b"hello honeypot\r\n").await.unwrap();
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut rest)).await;
    });
    reply.join().unwrap();
    let events = rt().block_on(async {
        let first = wait_for(&mut recon.rx, Duration::from_secs(30), |_| true).await;
        let mut all: Vec<_> = first.into_iter().collect();
        all.extend(collect_for(&mut recon.rx, Duration::from_secs(4)).await);
        all
    });
    assert_eq!(events.len(), 1, "{events:?}");
    let ev = &events[0];
    assert_eq!(ev.type_code, "conn.attempt");
    assert_eq!(ev.source_ip.to_string(), ATTACKER_IP);
    assert_eq!(
        ev.dest_port,
        Some(4444),
        "the original port, not the catch-all's"
    );
    assert_eq!(detail(ev, "handshake"), Some("yes"));
    assert_eq!(detail(ev, "payload"), Some("hello honeypot\\r\\n"));

    // A connect scan through the redirect: every port "open", each a full connection.
    nmap(
        &pair.attacker,
        &["-sT", "-p", "1-1000", "-T5", "-n", "-Pn", SENSOR_IP],
    );
    let (scan, rest) = scan_and_rest(&mut recon);
    assert_eq!(scan.source_ip.to_string(), ATTACKER_IP);
    assert_eq!(detail(&scan, "port_count"), Some("1000"), "{scan:?}");
    assert_eq!(detail(&scan, "ports"), Some("1-1000"));
    assert!(rest.is_empty(), "events besides the scan: {rest:?}");
}
