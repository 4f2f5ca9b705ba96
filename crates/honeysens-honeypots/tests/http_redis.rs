//! The HTTP honeypot against `curl` and the Redis honeypot against `redis-cli`.
//!
//! Needs `curl` and `redis-cli` (Debian: curl, redis-tools); skips without them, fails under
//! `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::{collect_for, detail, free_port, require, wait_for};
use honeysens_honeypots::Shutdown;
use honeysens_honeypots::sink::EventSink;
use honeysens_honeypots::{http, redis};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

async fn wait_listening(port: u16) {
    let deadline = tokio::time::Instant::now() + T;
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < deadline, "never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn output(program: &str, args: Vec<String>) -> std::process::Output {
    let program = program.to_owned();
    tokio::task::spawn_blocking(move || Command::new(program).args(args).output().unwrap())
        .await
        .unwrap()
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_logins_scanners_and_aggregated_requests_with_curl() {
    if !require(false, &["curl"]) {
        return;
    }
    let port = free_port();
    let mut config = http::HttpConfig::new(format!("127.0.0.1:{port}").parse().unwrap());
    config.window = Duration::from_secs(2);
    let (sink, mut rx) = EventSink::channel(1024);
    let shutdown = Shutdown::new();
    let _stop = shutdown.clone().drop_guard();
    tokio::spawn(http::run(config, sink, shutdown.clone()));
    wait_listening(port).await;
    let base = format!("http://127.0.0.1:{port}");

    // The login page, then a form submission.
    let page = output(
        "curl",
        strings(&["-sS", "-A", "Mozilla/5.0 test", &format!("{base}/")]),
    )
    .await;
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(
        page.contains("<form method=\"post\" action=\"/login\">"),
        "{page}"
    );
    let out = output(
        "curl",
        strings(&[
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-d",
            "username=admin&password=hunter2%21",
            &format!("{base}/login"),
        ]),
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "401");
    let login = wait_for(&mut rx, T, |e| e.type_code == "http.login")
        .await
        .expect("no http.login");
    assert_eq!(detail(&login, "user"), Some("admin"));
    assert_eq!(detail(&login, "password"), Some("hunter2!"));
    assert_eq!(detail(&login, "method"), Some("POST"));
    assert_eq!(login.source_ip.to_string(), "127.0.0.1");
    assert_eq!(login.dest_port, Some(port));

    // Basic authentication counts as a login too.
    output(
        "curl",
        strings(&["-sS", "-u", "root:toor", &format!("{base}/admin")]),
    )
    .await;
    let basic = wait_for(&mut rx, T, |e| e.type_code == "http.login")
        .await
        .unwrap();
    assert_eq!(detail(&basic, "user"), Some("root"));
    assert_eq!(detail(&basic, "auth"), Some("basic"));

    // Let the first window's http.request go out before the crawl.
    let first = wait_for(&mut rx, T, |e| e.type_code == "http.request")
        .await
        .unwrap();
    assert!(detail(&first, "requests").is_some());
    let _ = collect_for(&mut rx, Duration::from_secs(3)).await;

    // A crawler (sqlmap UA) hitting 60 paths: one http.scanner per fingerprint, and the
    // requests aggregated into one http.request per window.
    let mut args = strings(&[
        "-sS",
        "-o",
        "/dev/null",
        "-A",
        "sqlmap/1.7.2#stable (https://sqlmap.org)",
    ]);
    for i in 0..60 {
        args.push(format!("{base}/page{i}?id=1"));
    }
    args.push(format!("{base}/.env"));
    output("curl", args).await;
    let events = collect_for(&mut rx, Duration::from_secs(5)).await;
    let scanners: Vec<_> = events
        .iter()
        .filter(|e| e.type_code == "http.scanner")
        .collect();
    assert_eq!(
        scanners.len(),
        1,
        "one per fingerprint and window: {scanners:?}"
    );
    assert_eq!(
        detail(scanners[0], "fingerprint"),
        Some("user agent sqlmap")
    );
    let requests: Vec<_> = events
        .iter()
        .filter(|e| e.type_code == "http.request")
        .collect();
    assert!(
        (1..=3).contains(&requests.len()),
        "aggregated, not one per request: {} events",
        requests.len()
    );
    let total: u64 = requests
        .iter()
        .map(|e| detail(e, "requests").unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 61);
    assert!(
        requests
            .iter()
            .any(|e| e.details.iter().any(|d| d.data == "request: GET /.env"))
    );

    // A probe path without a scanner user agent.
    output(
        "curl",
        strings(&[
            "-sS",
            "-o",
            "/dev/null",
            &format!("{base}/cgi-bin/..%2f..%2fbin/sh"),
        ]),
    )
    .await;
    let probe = wait_for(&mut rx, T, |e| e.type_code == "http.scanner")
        .await
        .unwrap();
    assert_eq!(detail(&probe, "fingerprint"), Some("path traversal"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_auth_and_commands_with_redis_cli() {
    if !require(false, &["redis-cli"]) {
        return;
    }
    let port = free_port();
    let config = redis::RedisConfig::new(format!("127.0.0.1:{port}").parse().unwrap());
    let (sink, mut rx) = EventSink::channel(1024);
    let shutdown = Shutdown::new();
    let _stop = shutdown.clone().drop_guard();
    tokio::spawn(redis::run(config, sink, shutdown.clone()));
    wait_listening(port).await;
    let cli = |extra: &[&str]| {
        let mut a = strings(&["-h", "127.0.0.1", "-p", &port.to_string()]);
        a.extend(strings(extra));
        a
    };

    let out = output("redis-cli", cli(&["PING"])).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "PONG");
    let ev = wait_for(&mut rx, T, |e| e.type_code == "redis.command")
        .await
        .unwrap();
    assert_eq!(detail(&ev, "command"), Some("PING"));

    let out = output(
        "redis-cli",
        cli(&["--no-auth-warning", "-a", "s3cret", "INFO", "server"]),
    )
    .await;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("redis_version"),
        "{out:?}"
    );
    let ev = wait_for(&mut rx, T, |e| e.type_code == "redis.login.failed")
        .await
        .unwrap();
    assert_eq!(detail(&ev, "password"), Some("s3cret"));
    assert_eq!(detail(&ev, "user"), Some("default"));
    assert_eq!(ev.service.as_deref(), Some("redis"));

    output(
        "redis-cli",
        cli(&["CONFIG", "SET", "dir", "/var/spool/cron"]),
    )
    .await;
    let ev = wait_for(&mut rx, T, |e| {
        e.type_code == "redis.command"
            && detail(e, "command").is_some_and(|c| c.starts_with("CONFIG"))
    })
    .await
    .unwrap();
    assert_eq!(
        detail(&ev, "command"),
        Some("CONFIG SET dir /var/spool/cron")
    );
    assert_eq!(ev.dest_port, Some(port));
}
