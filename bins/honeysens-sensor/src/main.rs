//! `honeysens-sensor`: the sensor agent binary.
//!
//! `run --config <bundle>` starts the agent with the configuration bundle downloaded from the
//! server (`GET /api/sensors/{id}/config` or `honeysens-server remote sensor-add`); `status`
//! prints what the running (or last) agent knows. Logs go to stdout; SIGTERM and Ctrl-C stop
//! it gracefully (intake closed, one last upload, spool kept for the next start).
//!
//! `--runtime process` runs the built-in honeypots (recon, ssh, http, redis) as tasks inside the
//! agent, without Docker. `--runtime docker` runs the assigned honeypot services as Docker containers (images from
//! the server's registry); they keep running when the agent stops and are adopted at the next
//! start. With it, the TCP intake defaults to `0.0.0.0:9000` (containers reach it through the
//! service network's gateway; the agent's nftables table keeps it closed to the outside).

use clap::{Args, Parser, Subcommand, ValueEnum};
use honeysens_core::protocol::{SensorBundle, Transport};
use honeysens_honeypots::sink::{EventSink, IntakeAddr};
use honeysens_http::client::{SensorAuth, SensorClient};
use honeysens_sensor::agent::{AgentConfig, Connection, STATUS_FILE, TransportFactory};
use honeysens_sensor::runtime::ContainerRuntime;
use honeysens_sensor::runtime::docker::{DockerOptions, DockerRuntime};
use honeysens_sensor::runtime::image::RegistryImageSource;
use honeysens_sensor::runtime::process::ProcessRuntime;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "honeysens-sensor", version, about = "HoneySens sensor agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Arguments of `run`.
#[derive(Args)]
struct RunArgs {
    /// The configuration bundle (JSON) from the server.
    #[arg(long, value_name = "FILE", env = "HONEYSENS_SENSOR_CONFIG")]
    config: PathBuf,
    /// Spool, state and intake socket [default: /var/lib/honeysens-sensor].
    #[arg(
        long,
        value_name = "DIR",
        env = "HONEYSENS_SENSOR_STATE_DIR",
        default_value = "/var/lib/honeysens-sensor"
    )]
    state_dir: PathBuf,
    /// Also take events over TCP on this address (the service network).
    #[arg(long, value_name = "ADDR:PORT", env = "HONEYSENS_SENSOR_INTAKE_TCP")]
    intake_tcp: Option<SocketAddr>,
    /// Interface the agent owns and configures from the server's network settings;
    /// without it the network is left alone.
    #[arg(long, value_name = "NAME", env = "HONEYSENS_SENSOR_INTERFACE")]
    interface: Option<String>,
    /// Poll every this many seconds instead of the server's update interval.
    #[arg(long, value_name = "SECS")]
    poll_every: Option<u64>,
    /// How the assigned honeypot services run.
    #[arg(
        long,
        value_enum,
        env = "HONEYSENS_SENSOR_RUNTIME",
        default_value = "none"
    )]
    runtime: RuntimeKind,
    /// The Docker engine's socket (`--runtime docker`).
    #[arg(
        long,
        value_name = "PATH",
        env = "HONEYSENS_SENSOR_DOCKER_SOCKET",
        default_value = "/var/run/docker.sock"
    )]
    docker_socket: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent.
    Run(RunArgs),
    /// Print what the agent knows: server, last poll, spool depth, services.
    Status {
        /// The agent's state directory.
        #[arg(
            long,
            value_name = "DIR",
            env = "HONEYSENS_SENSOR_STATE_DIR",
            default_value = "/var/lib/honeysens-sensor"
        )]
        state_dir: PathBuf,
    },
}

/// The service runtimes the binary offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RuntimeKind {
    /// No services run; the server's assignment is only shown in the status.
    None,
    /// Docker containers.
    Docker,
    /// The built-in honeypots as tasks inside the agent (no Docker; other services error).
    Process,
}

/// The TCP intake port containers are told to use when `--intake-tcp` is not given.
const DEFAULT_INTAKE_PORT: u16 = 9000;

/// Builds the runtime chosen on the command line.
async fn make_runtime(
    kind: RuntimeKind,
    docker_socket: &str,
    state_dir: &std::path::Path,
    intake_port: Option<u16>,
) -> Result<Option<Arc<dyn ContainerRuntime>>, String> {
    match kind {
        RuntimeKind::None => Ok(None),
        RuntimeKind::Docker => {
            let mut opts = DockerOptions::new(state_dir.join("images"));
            opts.socket = docker_socket.to_owned();
            opts.intake_port = intake_port;
            let rt = DockerRuntime::connect(opts, Arc::new(RegistryImageSource))
                .await
                .map_err(|e| format!("docker runtime: {e}"))?;
            Ok(Some(Arc::new(rt)))
        }
        RuntimeKind::Process => {
            // The honeypots report to the agent's own intake socket like any service; the
            // sink connects once the agent listens.
            let sink = EventSink::connect(IntakeAddr::Unix(state_dir.join("intake.sock")));
            let rt = ProcessRuntime::new(sink).with_state_dir(state_dir.join("services"));
            Ok(Some(Arc::new(rt)))
        }
    }
}

/// HTTPS transports from the connection settings.
struct Https;

impl TransportFactory for Https {
    fn connect(&self, c: &Connection) -> Result<Arc<dyn Transport>, String> {
        let url = if c.server.host.contains(':') {
            format!("https://[{}]:{}", c.server.host, c.server.port)
        } else {
            format!("https://{}:{}", c.server.host, c.server.port)
        };
        let auth = SensorAuth::from_credentials(c.sensor_id, &c.credentials);
        let proxy = c.proxy.as_ref().map(|p| match (&p.user, &p.password) {
            (Some(u), Some(pw)) => format!("http://{u}:{pw}@{}:{}", p.host, p.port),
            (Some(u), None) => format!("http://{u}@{}:{}", p.host, p.port),
            _ => format!("http://{}:{}", p.host, p.port),
        });
        let client = SensorClient::new(&url, &c.ca_pem, auth, proxy.as_deref())
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(client))
    }
}

async fn run(args: RunArgs) -> Result<(), String> {
    let RunArgs {
        config,
        state_dir,
        intake_tcp,
        interface,
        poll_every,
        runtime,
        docker_socket,
    } = args;
    let raw =
        std::fs::read(&config).map_err(|e| format!("cannot read {}: {e}", config.display()))?;
    let bundle: SensorBundle = serde_json::from_slice(&raw)
        .map_err(|e| format!("{} is not a sensor bundle: {e}", config.display()))?;
    let intake_tcp = match (intake_tcp, runtime) {
        (None, RuntimeKind::Docker) => Some(SocketAddr::from((
            std::net::Ipv4Addr::UNSPECIFIED,
            DEFAULT_INTAKE_PORT,
        ))),
        (other, _) => other,
    };
    let rt = make_runtime(
        runtime,
        &docker_socket,
        &state_dir,
        intake_tcp.map(|a| a.port()),
    )
    .await?;
    let mut cfg = AgentConfig::new(bundle, state_dir);
    cfg.runtime = rt;
    cfg.tcp_listen = intake_tcp;
    cfg.interface = interface;
    cfg.poll_every = poll_every.map(|s| Duration::from_secs(s.max(1)));
    let agent = honeysens_sensor::agent::start(cfg, Arc::new(Https))
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        tcp = ?agent.tcp_addr,
        unix = ?agent.unix_socket,
        "agent running"
    );
    shutdown_signal().await;
    tracing::info!("stopping");
    agent.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn status(state_dir: PathBuf) -> Result<(), String> {
    let path = state_dir.join(STATUS_FILE);
    let status: honeysens_sensor::agent::AgentStatus = honeysens_sensor::agent::read_json(&path)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no status yet in {}", path.display()))?;
    let text = serde_json::to_string_pretty(&status).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The agent logs to stdout (the container convention); `status` keeps stdout for its JSON.
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    if matches!(cli.command, Command::Run { .. }) {
        logs.with_writer(std::io::stdout).init();
    } else {
        logs.with_writer(std::io::stderr).init();
    }
    let result = match cli.command {
        Command::Run(args) => run(args).await,
        Command::Status { state_dir } => status(state_dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("honeysens-sensor: {e}");
            ExitCode::FAILURE
        }
    }
}
