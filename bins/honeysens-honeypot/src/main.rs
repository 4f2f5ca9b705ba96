//! `honeysens-honeypot`: runs one built-in honeypot (`recon`, `ssh`, `http` or `redis`) and
//! sends its events to the sensor agent's intake.
//!
//! Configured by flags or the service environment contract of the agent
//! (`HONEYSENS_INTAKE`, `HONEYSENS_SERVICE`, `HONEYSENS_CATCHALL_PORT`, `HONEYSENS_LISTEN`, and
//! per-honeypot `HONEYSENS_*` variables, see `--help`). Logs go to stderr; SIGTERM or SIGINT
//! stop it cleanly. It needs no shell, no files under `/etc` and no DNS (give IP addresses),
//! so it can be the entrypoint of a `FROM scratch` image.

use clap::{Parser, Subcommand};
use honeysens_honeypots::adapters::{AdapterError, FollowOptions, Format, follow_with};
use honeysens_honeypots::recon::aggregate::Thresholds;
use honeysens_honeypots::sink::{EventSink, IntakeAddr};
use honeysens_honeypots::{Shutdown, http, recon, redis, ssh};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "honeysens-honeypot", version, about)]
struct Cli {
    /// The agent's intake: `tcp:<ip>:<port>` or `unix:<path>`.
    #[arg(long, env = "HONEYSENS_INTAKE", global = true)]
    intake: Option<String>,
    /// Service name put into each event (defaults to the subcommand's name).
    #[arg(long, env = "HONEYSENS_SERVICE", global = true)]
    service: Option<String>,
    /// Address to listen on (`ip:port`); each honeypot has its own default.
    #[arg(long, env = "HONEYSENS_LISTEN", global = true)]
    listen: Option<SocketAddr>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The catch-all: packet capture (needs CAP_NET_RAW) plus a listener on the catch-all port.
    Recon {
        /// Port the agent redirects unclaimed connections to (listener on 0.0.0.0:<port>
        /// unless --listen is given).
        #[arg(long, env = "HONEYSENS_CATCHALL_PORT")]
        catchall_port: Option<u16>,
        /// Capture on this interface only (default: all but loopback).
        #[arg(long, env = "HONEYSENS_RECON_INTERFACE")]
        interface: Option<String>,
        /// Do not capture packets (listener only).
        #[arg(long, env = "HONEYSENS_RECON_NO_CAPTURE")]
        no_capture: bool,
        /// Distinct ports from one source that make a scan.
        #[arg(long, env = "HONEYSENS_RECON_SCAN_PORTS", default_value_t = 25)]
        scan_ports: usize,
        /// Seconds of silence after which a source's activity is reported.
        #[arg(long, env = "HONEYSENS_RECON_QUIET_SECS", default_value_t = 6)]
        quiet_secs: u64,
        /// Seconds a source is ignored after its scan was reported.
        #[arg(long, env = "HONEYSENS_RECON_MUTE_SECS", default_value_t = 60)]
        mute_secs: u64,
        /// Longest a source's activity is collected before it is reported anyway.
        #[arg(long, env = "HONEYSENS_RECON_MAX_WINDOW_SECS", default_value_t = 600)]
        max_window_secs: u64,
        /// TCP ports other honeypots report (comma-separated): no conn.attempt for them.
        #[arg(long, env = "HONEYSENS_RECON_QUIET_PORTS", value_delimiter = ',')]
        quiet_ports: Vec<u16>,
    },
    /// SSH server recording logins (and, when accepting, commands).
    Ssh {
        /// Host key file (OpenSSH format), created at first start.
        #[arg(
            long,
            env = "HONEYSENS_SSH_HOST_KEY",
            default_value = "/var/lib/honeysens/ssh_host_ed25519_key"
        )]
        host_key: PathBuf,
        /// `never`, `after:<n>` or `creds:<user>:<password>[,…]`.
        #[arg(long, env = "HONEYSENS_SSH_ACCEPT", default_value = "never")]
        accept: String,
        /// Host name in the fake shell's prompt.
        #[arg(long, env = "HONEYSENS_SSH_HOSTNAME", default_value = "srv01")]
        hostname: String,
        /// Version string announced.
        #[arg(long, env = "HONEYSENS_SSH_VERSION")]
        server_id: Option<String>,
    },
    /// Web server with a login page.
    Http {
        /// Aggregation window of http.request events, seconds.
        #[arg(long, env = "HONEYSENS_HTTP_WINDOW_SECS", default_value_t = 60)]
        window_secs: u64,
    },
    /// Redis look-alike (RESP).
    Redis {
        /// Answer NOAUTH to everything but AUTH.
        #[arg(long, env = "HONEYSENS_REDIS_REQUIRE_AUTH")]
        require_auth: bool,
    },
    /// Follow an upstream honeypot's JSON log (cowrie or OpenCanary) and send its events:
    /// run beside cowrie/OpenCanary as a service, sharing the log directory.
    Adapt {
        /// `cowrie` or `opencanary`.
        #[arg(long, env = "HONEYSENS_ADAPT_FORMAT")]
        format: String,
        /// The JSON log file (may not exist yet; rotation is followed).
        #[arg(long, env = "HONEYSENS_ADAPT_LOG")]
        log: PathBuf,
        /// Where the read offset is kept [default: `<log>.honeysens-offset`].
        #[arg(long, env = "HONEYSENS_ADAPT_STATE")]
        state_file: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn listen_or(listen: Option<SocketAddr>, port: u16) -> SocketAddr {
    listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)))
}

async fn run(cli: Cli) -> Result<(), honeysens_honeypots::Error> {
    let intake = cli.intake.as_deref().ok_or_else(|| {
        honeysens_honeypots::Error::Config("no intake: set HONEYSENS_INTAKE or --intake".into())
    })?;
    let sink = EventSink::connect(IntakeAddr::parse(intake)?);
    let shutdown = Shutdown::new();
    tokio::spawn(signals(shutdown.clone()));
    let service = |default: &str| cli.service.clone().unwrap_or_else(|| default.to_owned());
    let task = match cli.command {
        Command::Recon {
            catchall_port,
            interface,
            no_capture,
            scan_ports,
            quiet_secs,
            mute_secs,
            max_window_secs,
            quiet_ports,
        } => {
            let config = recon::ReconConfig {
                service: service("recon"),
                listen: cli
                    .listen
                    .or_else(|| catchall_port.map(|p| listen_or(None, p))),
                capture: !no_capture,
                interface,
                thresholds: Thresholds {
                    scan_ports: scan_ports.max(2),
                    quiet: Duration::from_secs(quiet_secs),
                    mute: Duration::from_secs(mute_secs),
                    max_window: Duration::from_secs(max_window_secs.max(1)),
                    ..Thresholds::default()
                },
                quiet_tcp_ports: quiet_ports,
                ..recon::ReconConfig::default()
            };
            tokio::spawn(recon::run(config, sink.clone(), shutdown.clone()))
        }
        Command::Ssh {
            host_key,
            accept,
            hostname,
            server_id,
        } => {
            let mut config = ssh::SshConfig::new(listen_or(cli.listen, 22), host_key);
            config.service = service("ssh");
            config.accept = ssh::AcceptPolicy::parse(&accept)?;
            config.hostname = hostname;
            if let Some(id) = server_id {
                config.server_id = id;
            }
            tokio::spawn(ssh::run(config, sink.clone(), shutdown.clone()))
        }
        Command::Http { window_secs } => {
            let mut config = http::HttpConfig::new(listen_or(cli.listen, 80));
            config.service = service("http");
            config.window = Duration::from_secs(window_secs.max(1));
            tokio::spawn(http::run(config, sink.clone(), shutdown.clone()))
        }
        Command::Redis { require_auth } => {
            let mut config = redis::RedisConfig::new(listen_or(cli.listen, 6379));
            config.service = service("redis");
            config.require_auth = require_auth;
            tokio::spawn(redis::run(config, sink.clone(), shutdown.clone()))
        }
        Command::Adapt {
            format,
            log,
            state_file,
        } => {
            let format: Format = format
                .parse()
                .map_err(|e: AdapterError| honeysens_honeypots::Error::Config(e.to_string()))?;
            let mut opts = FollowOptions::new(format, log);
            if let Some(state) = state_file {
                opts.state_file = state;
            }
            opts.service = cli.service.clone();
            let (sink, shutdown) = (sink.clone(), shutdown.clone());
            tokio::spawn(async move {
                let stats = follow_with(&opts, &sink, shutdown.cancelled_owned())
                    .await
                    .map_err(|e| honeysens_honeypots::Error::Config(e.to_string()))?;
                tracing::info!(?stats, "adapter stopped");
                Ok(())
            })
        }
    };
    let result = match task.await {
        Ok(r) => r,
        Err(e) => Err(honeysens_honeypots::Error::Config(format!(
            "honeypot task failed: {e}"
        ))),
    };
    // Give queued events a moment to reach the agent before exiting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline && !sink.is_idle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    result
}

async fn signals(shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("stopping");
    shutdown.cancel();
}
