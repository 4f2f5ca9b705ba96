//! The process runtime: runs the built-in Rust honeypots (`honeysens_honeypots`) as tokio tasks
//! inside the agent, without Docker — for embedding and small sensors.
//!
//! A service is *built-in* when the last path segment of its image repository is `recon`,
//! `ssh`, `http` or `redis` (e.g. `honeysens/ssh`); anything else is reported as
//! [`ServiceState::Error`] "the process runtime runs only built-in honeypots".
//!
//! Ports: each TCP entry of the service's `port_assignment` (`"2222/tcp": 22`) makes the
//! honeypot listen on the *sensor* port (22 here) on [`ProcessRuntime::with_bind_ip`]'s address
//! (default `0.0.0.0`); without entries the honeypot's usual port is used (22, 80, 6379).
//! `recon` captures packets on every interface (needs `CAP_NET_RAW`), listens on its assigned
//! ports if any, and treats the other services' ports as reported by them. Setting up an
//! nftables redirect of unclaimed ports to recon is not this runtime's job.
//!
//! Events go to the [`EventSink`] given to [`ProcessRuntime::new`] with the service name as
//! their `service`. SSH host keys are kept in `<state dir>/<service>/ssh_host_ed25519_key`.

use super::{ContainerRuntime, ServicePlan};
use honeysens_core::model::{ServiceState, ServiceStatus};
use honeysens_core::protocol::ServiceTarget;
use honeysens_honeypots::sink::EventSink;
use honeysens_honeypots::{Shutdown, http, recon, redis, ssh};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The built-in honeypots, by the last segment of their repository.
pub const BUILT_IN: &[&str] = &["recon", "ssh", "http", "redis"];

/// What a non-built-in service is told.
pub const NOT_BUILT_IN: &str = "the process runtime runs only built-in honeypots";

/// How long a just-started honeypot may take to fail (binding its port) before it counts as
/// running.
const START_GRACE: Duration = Duration::from_millis(300);

/// The built-in honeypot a service runs, if it is one.
pub fn built_in_kind(target: &ServiceTarget) -> Option<&'static str> {
    let last = target
        .repository
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("");
    BUILT_IN.iter().copied().find(|k| *k == last)
}

struct Running {
    target: ServiceTarget,
    shutdown: Shutdown,
    tasks: Vec<JoinHandle<()>>,
    /// The first error a task of this service ended with.
    failure: Arc<Mutex<Option<String>>>,
}

impl Running {
    fn failed(&self) -> Option<String> {
        if let Ok(f) = self.failure.lock()
            && let Some(e) = f.as_ref()
        {
            return Some(e.clone());
        }
        self.tasks
            .iter()
            .any(|t| t.is_finished())
            .then(|| "the honeypot stopped".to_owned())
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for mut t in self.tasks {
            if tokio::time::timeout(Duration::from_secs(10), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
    }
}

/// Runs built-in honeypots as tasks of the agent; see the module docs.
pub struct ProcessRuntime {
    sink: EventSink,
    bind_ip: IpAddr,
    state_dir: PathBuf,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
}

impl ProcessRuntime {
    /// A runtime reporting to `sink` (the agent's own intake), listening on all IPv4
    /// addresses, keeping state in `/var/lib/honeysens/services`.
    pub fn new(sink: EventSink) -> Self {
        ProcessRuntime {
            sink,
            bind_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            state_dir: PathBuf::from("/var/lib/honeysens/services"),
            running: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Listen on this address instead of `0.0.0.0`.
    pub fn with_bind_ip(mut self, ip: IpAddr) -> Self {
        self.bind_ip = ip;
        self
    }

    /// Keep per-service state (SSH host keys) under `dir`.
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    fn start(&self, target: &ServiceTarget, kind: &str, plan: &ServicePlan) -> Running {
        let shutdown = Shutdown::new();
        let failure = Arc::new(Mutex::new(None));
        let ports = tcp_ports(target);
        let default_port = match kind {
            "ssh" => 22,
            "http" => 80,
            "redis" => 6379,
            _ => 0,
        };
        let mut tasks = Vec::new();
        let name = target.name.clone();
        let mut spawn = |fut: std::pin::Pin<
            Box<dyn Future<Output = Result<(), honeysens_honeypots::Error>> + Send>,
        >| {
            let (failure, name) = (failure.clone(), name.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = fut.await {
                    tracing::error!(service = %name, error = %e, "built-in honeypot failed");
                    if let Ok(mut f) = failure.lock() {
                        f.get_or_insert(e.to_string());
                    }
                }
            }));
        };
        if kind == "recon" {
            // Other services' ports: they report those connections themselves.
            let quiet = plan
                .services
                .iter()
                .filter(|s| s.name != target.name)
                .flat_map(tcp_ports)
                .collect::<Vec<_>>();
            let listens: Vec<Option<SocketAddr>> = if ports.is_empty() {
                vec![None]
            } else {
                ports
                    .iter()
                    .map(|p| Some(SocketAddr::new(self.bind_ip, *p)))
                    .collect()
            };
            for (i, listen) in listens.into_iter().enumerate() {
                let config = recon::ReconConfig {
                    service: target.name.clone(),
                    listen,
                    // One capture per service, on the first task.
                    capture: i == 0,
                    quiet_tcp_ports: quiet.clone(),
                    ..recon::ReconConfig::default()
                };
                spawn(Box::pin(recon::run(
                    config,
                    self.sink.clone(),
                    shutdown.clone(),
                )));
            }
        } else {
            let ports = if ports.is_empty() {
                vec![default_port]
            } else {
                ports
            };
            for port in ports {
                let listen = SocketAddr::new(self.bind_ip, port);
                let fut: std::pin::Pin<Box<dyn Future<Output = _> + Send>> = match kind {
                    "ssh" => {
                        let key = self
                            .state_dir
                            .join(&target.name)
                            .join("ssh_host_ed25519_key");
                        let mut c = ssh::SshConfig::new(listen, key);
                        c.service = target.name.clone();
                        Box::pin(ssh::run(c, self.sink.clone(), shutdown.clone()))
                    }
                    "http" => {
                        let mut c = http::HttpConfig::new(listen);
                        c.service = target.name.clone();
                        Box::pin(http::run(c, self.sink.clone(), shutdown.clone()))
                    }
                    _ => {
                        let mut c = redis::RedisConfig::new(listen);
                        c.service = target.name.clone();
                        Box::pin(redis::run(c, self.sink.clone(), shutdown.clone()))
                    }
                };
                spawn(fut);
            }
        }
        Running {
            target: target.clone(),
            shutdown,
            tasks,
            failure,
        }
    }
}

/// The sensor ports of a service's TCP port assignments (`"2222/tcp": 22` → 22; an entry
/// without a protocol suffix is TCP).
fn tcp_ports(target: &ServiceTarget) -> Vec<u16> {
    let mut ports: Vec<u16> = target
        .port_assignment
        .iter()
        .filter(|(k, _)| !k.ends_with("/udp"))
        .map(|(_, v)| *v)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

fn status(name: &str, state: ServiceState, error: Option<String>) -> ServiceStatus {
    ServiceStatus {
        name: name.to_owned(),
        state,
        error,
    }
}

#[async_trait::async_trait]
impl ContainerRuntime for ProcessRuntime {
    async fn reconcile(&self, plan: &ServicePlan) -> Vec<ServiceStatus> {
        let mut running = self.running.lock().await;
        // Stop what is no longer planned, changed, or died.
        let names: Vec<String> = running.keys().cloned().collect();
        for name in names {
            let keep = running
                .get(&name)
                .is_some_and(|r| plan.services.contains(&r.target) && r.failed().is_none());
            if !keep && let Some(r) = running.remove(&name) {
                tracing::info!(service = %name, "stopping built-in honeypot");
                r.stop().await;
            }
        }
        let mut out = Vec::with_capacity(plan.services.len());
        for target in &plan.services {
            let Some(kind) = built_in_kind(target) else {
                out.push(status(
                    &target.name,
                    ServiceState::Error,
                    Some(NOT_BUILT_IN.to_owned()),
                ));
                continue;
            };
            if running.contains_key(&target.name) {
                out.push(status(&target.name, ServiceState::Running, None));
                continue;
            }
            tracing::info!(service = %target.name, kind, "starting built-in honeypot");
            let r = self.start(target, kind, plan);
            // A honeypot that cannot bind its port fails at once.
            let deadline = tokio::time::Instant::now() + START_GRACE;
            while tokio::time::Instant::now() < deadline && r.failed().is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            match r.failed() {
                Some(e) => {
                    r.stop().await;
                    out.push(status(&target.name, ServiceState::Error, Some(e)));
                }
                None => {
                    running.insert(target.name.clone(), r);
                    out.push(status(&target.name, ServiceState::Running, None));
                }
            }
        }
        out
    }

    async fn shutdown(&self) {
        let mut running = self.running.lock().await;
        for (_, r) in running.drain() {
            r.stop().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use honeysens_core::model::Architecture;

    fn target(repo: &str) -> ServiceTarget {
        ServiceTarget {
            name: "x".into(),
            repository: repo.into(),
            revision: "1".into(),
            architecture: Architecture::Amd64,
            image_digest: "sha256:00".into(),
            port_assignment: [("2222/tcp".to_owned(), 22), ("161/udp".to_owned(), 161)]
                .into_iter()
                .collect(),
            catch_all: false,
            raw_network_access: false,
        }
    }

    #[test]
    fn built_in_by_last_repository_segment() {
        assert_eq!(built_in_kind(&target("honeysens/ssh")), Some("ssh"));
        assert_eq!(built_in_kind(&target("recon")), Some("recon"));
        assert_eq!(built_in_kind(&target("registry/a/redis/")), Some("redis"));
        assert_eq!(built_in_kind(&target("honeysens/cowrie")), None);
        assert_eq!(built_in_kind(&target("honeysens/sshd")), None);
        assert_eq!(tcp_ports(&target("ssh")), vec![22]);
    }
}
