//! The `honeysens-honeypot` binary as a container would run it: configured only by the
//! service environment contract, reporting to a TCP intake that speaks the agent's JSON-lines
//! protocol (one `IntakeAck` per event), and exiting cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn redis_subcommand_reports_to_the_intake_from_env_and_stops_on_sigterm() {
    let intake = TcpListener::bind("127.0.0.1:0").unwrap();
    let intake_port = intake.local_addr().unwrap().port();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_honeysens-honeypot"))
        .arg("redis")
        .env_clear()
        .env("HONEYSENS_INTAKE", format!("tcp:127.0.0.1:{intake_port}"))
        .env("HONEYSENS_SERVICE", "redis-7")
        .env("HONEYSENS_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Attack it once it listens.
    let start = Instant::now();
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("binary never listened: {e}"),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"AUTH hunter2\r\n").unwrap();
    let mut reply = [0u8; 5];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"-ERR ");

    // The agent side: read the event line, acknowledge it.
    let (conn, _) = intake.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut lines = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    let ev: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ev["type_code"], "redis.login.failed");
    assert_eq!(ev["service"], "redis-7");
    assert_eq!(ev["source_ip"], "127.0.0.1");
    assert_eq!(ev["dest_port"], port);
    let details: Vec<&str> = ev["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["data"].as_str().unwrap())
        .collect();
    assert!(details.contains(&"password: hunter2"), "{details:?}");
    let ack = serde_json::json!({"ok": true, "uid": ev["uid"]});
    (&conn).write_all(format!("{ack}\n").as_bytes()).unwrap();

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(
        stderr.contains("redis: listening"),
        "logs go to stderr: {stderr}"
    );
}

#[test]
fn adapt_follows_a_real_cowrie_log_and_resumes_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("hs-adapt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("cowrie.json");
    let fixture = include_str!(
        "../../../crates/honeysens-honeypots/tests/fixtures/cowrie/captured-cowrie-3.1.4.json"
    );
    let lines: Vec<&str> = fixture.lines().collect();
    let (first, rest) = lines.split_at(lines.len() / 2);
    std::fs::write(&log, first.join("\n") + "\n").unwrap();
    let intake = TcpListener::bind("127.0.0.1:0").unwrap();
    let intake_port = intake.local_addr().unwrap().port();
    let start = |intake_port: u16| {
        Command::new(env!("CARGO_BIN_EXE_honeysens-honeypot"))
            .args(["adapt", "--format", "cowrie", "--log"])
            .arg(&log)
            .env_clear()
            .env("HONEYSENS_INTAKE", format!("tcp:127.0.0.1:{intake_port}"))
            .env("HONEYSENS_SERVICE", "cowrie-ssh")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Acknowledges every event line until `quiet` passes without one; returns them.
    let collect = |intake: &TcpListener, quiet: Duration| {
        intake.set_nonblocking(false).unwrap();
        let (conn, _) = intake.accept().unwrap();
        conn.set_read_timeout(Some(quiet)).unwrap();
        let mut lines = BufReader::new(conn.try_clone().unwrap());
        let mut got = Vec::new();
        loop {
            let mut line = String::new();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => return got,
                Ok(_) => {
                    let ev: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let ack = serde_json::json!({"ok": true, "uid": ev["uid"]});
                    (&conn).write_all(format!("{ack}\n").as_bytes()).unwrap();
                    got.push(ev);
                }
            }
        }
    };
    let stop = |mut child: std::process::Child| {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        assert!(child.wait().unwrap().success());
    };
    let child = start(intake_port);
    let before = collect(&intake, Duration::from_secs(5));
    assert!(!before.is_empty());
    assert!(before.iter().all(|e| e["service"] == "cowrie-ssh"));
    assert!(
        before
            .iter()
            .any(|e| e["type_code"] == "ssh.login.failed" || e["type_code"] == "ssh.connect"),
        "{before:?}"
    );
    stop(child);
    // More lines while the adapter is down; after its restart only they arrive.
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all((rest.join("\n") + "\n").as_bytes()).unwrap();
    let child = start(intake_port);
    let after = collect(&intake, Duration::from_secs(5));
    stop(child);
    assert!(!after.is_empty());
    let uids = |v: &[serde_json::Value]| -> std::collections::HashSet<String> {
        v.iter()
            .map(|e| e["uid"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(
        uids(&before).is_disjoint(&uids(&after)),
        "nothing read twice"
    );
    assert!(
        after.iter().any(|e| e["type_code"] == "ssh.command"),
        "{after:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_intake_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_honeysens-honeypot"))
        .args(["http", "--listen", "127.0.0.1:0"])
        .env_clear()
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HONEYSENS_INTAKE"), "{stderr}");
}
