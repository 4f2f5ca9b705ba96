//! Shared helpers of the honeypot integration tests: capability checks (skip locally, fail
//! under `CI=true`), network namespace pairs, free ports, and waiting for events.

#![allow(dead_code)]

use honeysens_core::protocol::IntakeEvent;
use nix::sched::{CloneFlags, setns};
use std::fs::File;
use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Whether CI demands that nothing is skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `true` when `tools` are installed (and, with `root`, we are root); otherwise prints why the
/// test is skipped, or panics under `CI=true`.
pub fn require(root: bool, tools: &[&str]) -> bool {
    let mut missing = Vec::new();
    if root && !nix::unistd::geteuid().is_root() {
        missing.push("root".to_owned());
    }
    for t in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            missing.push(format!("`{t}`"));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let why = format!(
        "this test needs {} (apt-get install -y nmap sshpass redis-tools openssh-client curl nftables)",
        missing.join(", ")
    );
    if in_ci() {
        panic!("{why}; CI=true makes a skip a failure");
    }
    eprintln!("skipping: {why}");
    false
}

/// Runs a command that must succeed; returns its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits for the next event matching `pred`, up to `timeout`; other events are returned in
/// `seen` order too so tests can assert on them.
pub async fn wait_for(
    rx: &mut mpsc::Receiver<IntakeEvent>,
    timeout: Duration,
    mut pred: impl FnMut(&IntakeEvent) -> bool,
) -> Option<IntakeEvent> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(ev)) if pred(&ev) => return Some(ev),
            Ok(Some(_)) => continue,
            _ => return None,
        }
    }
}

/// Every event arriving within `period`.
pub async fn collect_for(
    rx: &mut mpsc::Receiver<IntakeEvent>,
    period: Duration,
) -> Vec<IntakeEvent> {
    let deadline = tokio::time::Instant::now() + period;
    let mut out = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        out.push(ev);
    }
    out
}

/// The value of the `key: value` detail line `key`.
pub fn detail<'a>(ev: &'a IntakeEvent, key: &str) -> Option<&'a str> {
    let prefix = format!("{key}: ");
    ev.details
        .iter()
        .find_map(|d| d.data.strip_prefix(prefix.as_str()))
}

/// Two network namespaces, "attacker" and "sensor", joined by a veth pair (`hs0` in each);
/// attacker 192.0.2.1/24, sensor 192.0.2.2/24. Deleted on drop, even when the test fails.
pub struct NetnsPair {
    pub attacker: String,
    pub sensor: String,
}

pub const ATTACKER_IP: &str = "192.0.2.1";
pub const SENSOR_IP: &str = "192.0.2.2";

impl NetnsPair {
    pub fn new(tag: &str) -> NetnsPair {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}-{}-{}",
            tag,
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let pair = NetnsPair {
            attacker: format!("hs-att-{id}"),
            sensor: format!("hs-sen-{id}"),
        };
        run("ip", &["netns", "add", &pair.attacker]);
        run("ip", &["netns", "add", &pair.sensor]);
        run(
            "ip",
            &[
                "-n",
                &pair.sensor,
                "link",
                "add",
                "hs0",
                "type",
                "veth",
                "peer",
                "name",
                "hs0",
                "netns",
                &pair.attacker,
            ],
        );
        for (ns, ip) in [(&pair.attacker, ATTACKER_IP), (&pair.sensor, SENSOR_IP)] {
            run(
                "ip",
                &["-n", ns, "addr", "add", &format!("{ip}/24"), "dev", "hs0"],
            );
            run("ip", &["-n", ns, "link", "set", "hs0", "up"]);
            run("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        // Wait until both ends report carrier.
        let start = Instant::now();
        for ns in [&pair.attacker, &pair.sensor] {
            while !run("ip", &["-n", ns, "link", "show", "hs0"]).contains("state UP") {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "veth pair never came up"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        pair
    }

    /// Runs `body` on a thread inside `ns`, on a current-thread runtime built there, so every
    /// socket it opens belongs to that namespace. Returns the thread's handle.
    pub fn spawn_in<F, Fut>(ns: &str, body: F) -> std::thread::JoinHandle<()>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let path = format!("/var/run/netns/{ns}");
        std::thread::spawn(move || {
            let f = File::open(&path).unwrap();
            setns(f, CloneFlags::CLONE_NEWNET).unwrap();
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(body());
        })
    }

    /// `ip netns exec NS PROGRAM ARGS`, returning the output (not required to succeed).
    pub fn exec(ns: &str, program: &str, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", ns, program])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth end and nftables tables too.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.attacker])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.sensor])
            .status();
    }
}
