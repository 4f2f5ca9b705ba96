//! Load tools for comparing SSH honeypots (see `scripts/compare-honeypots.sh`).
//!
//! - `ssh_load ssh --target HOST:PORT --connections N --seconds S`: N concurrent SSH clients
//!   (russh) make password attempts for S seconds, each reconnecting when the server closes
//!   the connection; prints a human line and a final JSON line with attempts/s and errors.
//! - `ssh_load ack-sink unix:<path>|tcp:<host:port>`: a stand-in for the sensor agent's intake
//!   that acknowledges every JSON line with `{"ok":true,"uid":…}`, so a HoneySens honeypot can
//!   run without an agent; prints the number of events taken when stopped (SIGINT/SIGTERM).

use clap::{Parser, Subcommand};
use russh::client;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

#[derive(Parser)]
#[command(about = "SSH honeypot load generator and fake agent intake")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Password attempts against an SSH server.
    Ssh {
        /// Server address.
        #[arg(long)]
        target: String,
        /// Concurrent connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Length of the run.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// User name to try.
        #[arg(long, default_value = "root")]
        user: String,
        /// Attempts before the client disconnects and reconnects (0: until the server closes);
        /// 1 measures handshakes, like a spraying tool.
        #[arg(long, default_value_t = 0)]
        attempts_per_connection: u64,
    },
    /// Acknowledges intake lines like the agent would.
    AckSink {
        /// `unix:<path>` or `tcp:<host:port>`.
        listen: String,
        /// File rewritten with the number of events acknowledged so far (every 200 ms).
        #[arg(long)]
        count_file: Option<std::path::PathBuf>,
    },
}

#[derive(Default)]
struct Counters {
    attempts: AtomicU64,
    successes: AtomicU64,
    connections: AtomicU64,
    /// Connections the server closed (after its attempt limit); not an error.
    closed_by_server: AtomicU64,
    errors: AtomicU64,
}

struct Client;

impl client::Handler for Client {
    type Error = russh::Error;
    // A honeypot's host key is whatever it is; this tool only measures.
    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    match Cli::parse().cmd {
        Cmd::Ssh {
            target,
            connections,
            seconds,
            user,
            attempts_per_connection,
        } => ssh(target, connections, seconds, user, attempts_per_connection).await,
        Cmd::AckSink { listen, count_file } => ack_sink(listen, count_file).await,
    }
}

async fn ssh(
    target: String,
    connections: usize,
    seconds: u64,
    user: String,
    per_conn: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(Duration::from_secs(30)),
        ..Default::default()
    });
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..connections {
        let (config, counters, target, user) = (
            config.clone(),
            counters.clone(),
            target.clone(),
            user.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                let conn = tokio::time::timeout(
                    left.min(Duration::from_secs(15)),
                    client::connect(config.clone(), target.as_str(), Client),
                )
                .await;
                let mut handle = match conn {
                    Ok(Ok(h)) => h,
                    Ok(Err(e)) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        if counters.errors.load(Ordering::Relaxed) <= 5 {
                            eprintln!("connect: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    Err(_) => break,
                };
                counters.connections.fetch_add(1, Ordering::Relaxed);
                let mut here = 0u64;
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    if per_conn > 0 && here == per_conn {
                        break;
                    }
                    here += 1;
                    n += 1;
                    let pw = format!("pw-{worker}-{n}");
                    match tokio::time::timeout(
                        left,
                        handle.authenticate_password(user.as_str(), pw),
                    )
                    .await
                    {
                        Ok(Ok(r)) => {
                            counters.attempts.fetch_add(1, Ordering::Relaxed);
                            if r.success() {
                                counters.successes.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                        Ok(Err(_)) => {
                            counters.closed_by_server.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        // The run ended while waiting for the answer.
                        Err(_) => break,
                    }
                }
                let _ = handle
                    .disconnect(russh::Disconnect::ByApplication, "", "en")
                    .await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let c = &counters;
    let attempts = c.attempts.load(Ordering::Relaxed);
    let rate = attempts as f64 / secs;
    println!(
        "{target}: {attempts} password attempts in {secs:.1} s = {rate:.1}/s over {} connections ({connections} concurrent), {} closed by the server, {} successes, {} errors",
        c.connections.load(Ordering::Relaxed),
        c.closed_by_server.load(Ordering::Relaxed),
        c.successes.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed),
    );
    println!(
        "{}",
        serde_json::json!({
            "target": target, "concurrency": connections, "seconds": secs, "attempts": attempts,
            "attempts_per_s": rate, "connections": c.connections.load(Ordering::Relaxed),
            "closed_by_server": c.closed_by_server.load(Ordering::Relaxed),
            "successes": c.successes.load(Ordering::Relaxed), "errors": c.errors.load(Ordering::Relaxed),
        })
    );
    Ok(())
}

async fn ack_sink(
    listen: String,
    count_file: Option<std::path::PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let events = Arc::new(AtomicU64::new(0));
    if let Some(path) = count_file {
        let events = events.clone();
        tokio::spawn(async move {
            let mut last = u64::MAX;
            loop {
                let n = events.load(Ordering::Relaxed);
                if n != last && tokio::fs::write(&path, format!("{n}\n")).await.is_ok() {
                    last = n;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    let serve = {
        let events = events.clone();
        async move {
            if let Some(path) = listen.strip_prefix("unix:") {
                let _ = std::fs::remove_file(path);
                let l = tokio::net::UnixListener::bind(path)?;
                loop {
                    let (s, _) = l.accept().await?;
                    tokio::spawn(ack_conn(s, events.clone()));
                }
            } else if let Some(addr) = listen.strip_prefix("tcp:") {
                let l = tokio::net::TcpListener::bind(addr).await?;
                loop {
                    let (s, _) = l.accept().await?;
                    tokio::spawn(ack_conn(s, events.clone()));
                }
            } else {
                Err::<(), Box<dyn std::error::Error>>(
                    "listen on unix:<path> or tcp:<host:port>".into(),
                )
            }
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = serve => r?,
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!(
        "{}",
        serde_json::json!({ "events": events.load(Ordering::Relaxed) })
    );
    Ok(())
}

async fn ack_conn<S: AsyncRead + AsyncWrite + Unpin>(s: S, events: Arc<AtomicU64>) {
    let (r, mut w) = tokio::io::split(s);
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let uid = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("uid").and_then(|u| u.as_str()).map(str::to_owned));
        let ack = match uid {
            Some(uid) => {
                events.fetch_add(1, Ordering::Relaxed);
                serde_json::json!({ "ok": true, "uid": uid })
            }
            None => {
                serde_json::json!({ "ok": false, "code": "event.malformed", "message": "no uid" })
            }
        };
        if w.write_all(format!("{ack}\n").as_bytes()).await.is_err() {
            break;
        }
    }
}
