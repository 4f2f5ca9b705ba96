//! The agent: wires intake, spool, upload and the status poll together.
//!
//! State directory layout: `spool/` (the event spool), `dead-letter.jsonl` (events the server
//! rejected), `state.json` (what the server changed since the bundle: server address, proxy,
//! renewed certificate — read on every start so a restart keeps them) and `status.json` (what
//! `honeysens-sensor status` prints).

use crate::intake::Intake;
use crate::poller;
use crate::runtime::ContainerRuntime;
use crate::spool::{Spool, SpoolOptions};
use crate::uploader::{self, UploadOptions, UploadStats};
use honeysens_core::ids::SensorId;
use honeysens_core::model::{ProxyConfig, ServerEndpoint};
use honeysens_core::protocol::{SensorBundle, SensorCredentials, Transport};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The state directory or a file in it is unusable.
    #[error("state directory: {0}")]
    State(#[from] std::io::Error),
    /// The spool could not be opened.
    #[error("spool: {0}")]
    Spool(#[from] crate::spool::SpoolError),
    /// A transport could not be built from the configuration.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// A persisted file did not parse.
    #[error("corrupt state file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// How the agent reaches its server: everything a transport needs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// The sensor.
    pub sensor_id: SensorId,
    /// Server address.
    pub server: ServerEndpoint,
    /// CA certificate, PEM.
    pub ca_pem: String,
    /// Credentials.
    pub credentials: SensorCredentials,
    /// Proxy.
    pub proxy: Option<ProxyConfig>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("sensor_id", &self.sensor_id)
            .field("server", &self.server)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// Builds transports; HTTPS in the binary, in-process when embedded.
pub trait TransportFactory: Send + Sync {
    /// A transport for `connection`.
    fn connect(&self, connection: &Connection) -> Result<Arc<dyn Transport>, String>;
}

/// What the server changed since the bundle, persisted across restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    /// A server address the server moved the sensor to.
    #[serde(default)]
    pub server: Option<ServerEndpoint>,
    /// A renewed certificate.
    #[serde(default)]
    pub credentials: Option<SensorCredentials>,
    /// The proxy from the last poll (`Some(None)`: explicitly none).
    #[serde(default)]
    pub proxy: Option<Option<ProxyConfig>>,
}

/// What the agent knows, written after every poll to `status.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The sensor.
    pub sensor_id: Option<SensorId>,
    /// Server in use.
    pub server: Option<ServerEndpoint>,
    /// Last poll attempt.
    pub last_poll_at: Option<honeysens_core::time::Timestamp>,
    /// Whether it succeeded.
    pub last_poll_ok: bool,
    /// Its error, if it failed.
    pub last_error: Option<String>,
    /// Sensor minus server clock at the last poll, ms.
    pub clock_skew_ms: Option<i64>,
    /// Poll interval in force, minutes.
    pub update_interval: u32,
    /// Events waiting in the spool.
    pub spool_depth: u64,
    /// Events delivered since start.
    pub delivered: u64,
    /// Events rejected since start.
    pub rejected: u64,
    /// Services the server wants on this sensor (name/revision).
    pub services: Vec<String>,
    /// How each service runs (from the container runtime; empty without one).
    #[serde(default)]
    pub service_states: Vec<honeysens_core::model::ServiceStatus>,
    /// Network changes applied at the last poll.
    pub network_changes: Vec<String>,
}

/// Everything the agent needs to run.
#[derive(Clone)]
pub struct AgentConfig {
    /// The configuration bundle from the server.
    pub bundle: SensorBundle,
    /// Where spool and state live.
    pub state_dir: PathBuf,
    /// Unix socket for local honeypot services.
    pub unix_socket: Option<PathBuf>,
    /// TCP intake address (on the service network); port 0 picks one.
    pub tcp_listen: Option<SocketAddr>,
    /// Interface the agent owns and configures; `None`: the network is left alone.
    pub interface: Option<String>,
    /// resolv.conf the agent writes for static DNS.
    pub resolv_conf: PathBuf,
    /// Poll this often instead of the server's update interval (tests, demos).
    pub poll_every: Option<Duration>,
    /// Spool limits.
    pub spool: SpoolOptions,
    /// Batch window of the upload.
    pub batch_window: Duration,
    /// Runs the honeypot services the server assigns; `None`: services are only listed in
    /// the status. Reconciled after every successful poll; on shutdown the runtime releases
    /// what it set up (the Docker runtime keeps its containers running by default and adopts
    /// them at the next start).
    pub runtime: Option<Arc<dyn ContainerRuntime>>,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("bundle", &self.bundle)
            .field("state_dir", &self.state_dir)
            .field("unix_socket", &self.unix_socket)
            .field("tcp_listen", &self.tcp_listen)
            .field("interface", &self.interface)
            .field("resolv_conf", &self.resolv_conf)
            .field("poll_every", &self.poll_every)
            .field("spool", &self.spool)
            .field("batch_window", &self.batch_window)
            .field("runtime", &self.runtime.is_some())
            .finish()
    }
}

impl AgentConfig {
    /// Defaults for a bundle and state directory: Unix socket `<state>/intake.sock`, no TCP
    /// intake, network left alone, server-given poll interval, 200 ms batch window.
    pub fn new(bundle: SensorBundle, state_dir: impl Into<PathBuf>) -> Self {
        let state_dir = state_dir.into();
        AgentConfig {
            bundle,
            unix_socket: Some(state_dir.join("intake.sock")),
            state_dir,
            tcp_listen: None,
            interface: None,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            poll_every: None,
            spool: SpoolOptions::default(),
            batch_window: Duration::from_millis(200),
            runtime: None,
        }
    }
}

/// File names in the state directory.
pub const STATE_FILE: &str = "state.json";
/// See [`AgentStatus`].
pub const STATUS_FILE: &str = "status.json";
/// Rejected events.
pub const DEAD_LETTER_FILE: &str = "dead-letter.jsonl";

/// Reads a JSON file, `None` when it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, AgentError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AgentError::Corrupt {
                path: path.to_owned(),
                reason: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes a JSON file atomically (temporary file, fsync, rename), mode 0600: it may hold keys.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The connection in force: the bundle overlaid with what the server changed since.
pub fn connection(bundle: &SensorBundle, state: &PersistedState) -> Connection {
    Connection {
        sensor_id: bundle.sensor_id,
        server: state
            .server
            .clone()
            .unwrap_or_else(|| bundle.server.clone()),
        ca_pem: bundle.ca_pem.clone(),
        credentials: state
            .credentials
            .clone()
            .unwrap_or_else(|| bundle.credentials.clone()),
        proxy: state.proxy.clone().unwrap_or_else(|| bundle.proxy.clone()),
    }
}

/// A running agent.
pub struct RunningAgent {
    /// The bound TCP intake address, if any.
    pub tcp_addr: Option<SocketAddr>,
    /// The Unix intake socket, if any.
    pub unix_socket: Option<PathBuf>,
    stop: watch::Sender<bool>,
    poll_now: Arc<Notify>,
    status: watch::Receiver<AgentStatus>,
    tasks: Vec<JoinHandle<()>>,
    listeners: Vec<JoinHandle<()>>,
    spool: Arc<Spool>,
    runtime: Option<Arc<dyn ContainerRuntime>>,
}

impl std::fmt::Debug for RunningAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningAgent")
            .field("tcp_addr", &self.tcp_addr)
            .field("unix_socket", &self.unix_socket)
            .finish_non_exhaustive()
    }
}

impl RunningAgent {
    /// The latest status.
    pub fn status(&self) -> AgentStatus {
        let mut s = self.status.borrow().clone();
        s.spool_depth = self.spool.stats().depth;
        s
    }

    /// Polls the server now instead of waiting for the interval.
    pub fn poll_now(&self) {
        self.poll_now.notify_one();
    }

    /// Stops taking events, tries once more to upload what is spooled, and stops.
    pub async fn shutdown(self) {
        for l in &self.listeners {
            l.abort();
        }
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(rt) = &self.runtime {
            rt.shutdown().await;
        }
        if let Some(p) = &self.unix_socket {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Serves every connection of a TCP or Unix listener with the intake, until aborted.
macro_rules! accept_loop {
    ($listener:expr, $intake:expr) => {{
        let listener = $listener;
        let intake = $intake.clone();
        tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        let intake = intake.clone();
                        tokio::spawn(async move { intake.serve(stream).await });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: do not spin.
                        tracing::warn!(error = %e, "intake accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        })
    }};
}

/// Starts the agent: opens the spool, binds the intake endpoints, and spawns the upload and
/// poll loops on the current runtime.
pub async fn start(
    config: AgentConfig,
    factory: Arc<dyn TransportFactory>,
) -> Result<RunningAgent, AgentError> {
    std::fs::create_dir_all(&config.state_dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&config.state_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let persisted: PersistedState =
        read_json(&config.state_dir.join(STATE_FILE))?.unwrap_or_default();
    let conn = connection(&config.bundle, &persisted);
    let transport = factory.connect(&conn).map_err(AgentError::Connect)?;
    if let Some(rt) = &config.runtime {
        rt.use_transport(transport.clone());
    }
    let (transport_tx, transport_rx) = watch::channel(transport);

    let spool_dir = config.state_dir.join("spool");
    let spool_opts = config.spool;
    let spool = Arc::new(
        tokio::task::spawn_blocking(move || Spool::open(&spool_dir, spool_opts))
            .await
            .map_err(|e| AgentError::State(std::io::Error::other(e)))??,
    );
    let stored = Arc::new(Notify::new());
    // Anything left from the last run goes out at once.
    stored.notify_one();
    let intake = Intake::start(config.bundle.sensor_id, spool.clone(), stored.clone());

    let mut listeners = Vec::new();
    let mut tcp_addr = None;
    if let Some(addr) = config.tcp_listen {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tcp_addr = Some(listener.local_addr()?);
        listeners.push(accept_loop!(listener, intake));
    }
    #[cfg(unix)]
    if let Some(path) = &config.unix_socket {
        // A socket file left by a killed agent would make bind fail.
        let _ = std::fs::remove_file(path);
        let listener = tokio::net::UnixListener::bind(path)?;
        listeners.push(accept_loop!(listener, intake));
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    let (upload_stats_tx, upload_stats_rx) = watch::channel(UploadStats::default());
    let upload_opts = UploadOptions {
        batch_window: config.batch_window,
        backoff_min: Duration::from_millis(500),
        backoff_max: Duration::from_secs(60),
        dead_letter: config.state_dir.join(DEAD_LETTER_FILE),
    };
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(uploader::run(
        spool.clone(),
        transport_rx.clone(),
        stored,
        upload_opts,
        upload_stats_tx,
        stop_rx.clone(),
    )));

    let poll_now = Arc::new(Notify::new());
    let (status_tx, status_rx) = watch::channel(AgentStatus {
        sensor_id: Some(config.bundle.sensor_id),
        server: Some(conn.server.clone()),
        update_interval: config.bundle.update_interval,
        ..Default::default()
    });
    let ctx = poller::PollContext {
        config: config.clone(),
        factory,
        persisted,
        connection: conn,
        transport: transport_tx,
        spool: spool.clone(),
        upload_stats: upload_stats_rx,
        status: status_tx,
        poll_now: poll_now.clone(),
    };
    tasks.push(tokio::spawn(poller::run(ctx, stop_rx)));

    Ok(RunningAgent {
        tcp_addr,
        unix_socket: config.unix_socket.clone(),
        stop: stop_tx,
        poll_now,
        status: status_rx,
        tasks,
        listeners,
        spool,
        runtime: config.runtime.clone(),
    })
}
