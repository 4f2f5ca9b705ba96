//! The Docker runtime: honeypot services as containers (bollard, Docker Engine API ≥ 1.41).
//!
//! - **Network**: one bridge network (default `honeysens`, bridge interface `hs-<network>`
//!   cut to 15 characters) on the plan's `service_network`, gateway = its first address.
//!   When the range changes, the network and the containers on it are recreated.
//! - **Containers**: `<prefix><service>` (default `honeysens-<service>`), labelled
//!   `io.honeysens.service`, `io.honeysens.revision`, `io.honeysens.digest` and
//!   `io.honeysens.owner` (the network name, so two runtimes never touch each other's
//!   containers). After an agent restart a container whose labels match the plan is
//!   *adopted* (kept, started if stopped); a changed revision or digest replaces it; a service
//!   no longer assigned is stopped and removed together with its image.
//! - **Images** come from an [`ImageSource`] (the server's registry) as a `docker load`
//!   archive, imported and tagged `<repository>:<revision>` and `<repository>:sha256-<hex>`
//!   (the registry digest: an image already tagged so is not fetched again). Fetches run in the
//!   background: a service whose image is still arriving is `scheduled`; when it arrives the
//!   last plan is reconciled again.
//! - **Containers get** restart policy `unless-stopped`, a memory and PID limit, small
//!   rotated logs, ports published per `port_assignment` (none for `raw_network_access`, which
//!   means host networking, with `NET_ADMIN` and `NET_RAW`), and the environment of the
//!   runtime contract (`HONEYSENS_INTAKE=tcp:<gateway>:<intake port>`, `HONEYSENS_SERVICE`,
//!   `HONEYSENS_CATCHALL_PORT` for catch-all services).
//! - **Catch-all** rules through [`super::firewall`].
//!
//! On shutdown containers keep running unless [`DockerOptions::stop_on_shutdown`]; the next
//! start adopts them.

use super::firewall::{CatchAllTarget, Firewall, FirewallRules};
use super::image::{ImageSource, digest_hex, repo_tag};
use super::{ContainerRuntime, ServicePlan};
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, EndpointSettings, HostConfig,
    HostConfigLogConfig, Ipam, IpamConfig, NetworkCreateRequest, NetworkingConfig, PortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, StopContainerOptionsBuilder, TagImageOptionsBuilder,
};
use futures_util::StreamExt;
use honeysens_core::model::{ServiceState, ServiceStatus};
use honeysens_core::protocol::{ServiceTarget, Transport};
use ipnet::Ipv4Net;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Label: the service name.
pub const LABEL_SERVICE: &str = "io.honeysens.service";
/// Label: the revision.
pub const LABEL_REVISION: &str = "io.honeysens.revision";
/// Label: the registry digest of the image.
pub const LABEL_DIGEST: &str = "io.honeysens.digest";
/// Label: the network (= runtime instance) owning the container.
pub const LABEL_OWNER: &str = "io.honeysens.owner";
/// Label on the network: its range.
pub const LABEL_RANGE: &str = "io.honeysens.range";

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DockerError {
    /// The Docker engine could not be reached.
    #[error("docker: {0}")]
    Engine(#[from] bollard::errors::Error),
    /// An option is unusable.
    #[error("invalid option: {0}")]
    Option(String),
    /// The work directory could not be created.
    #[error("work directory: {0}")]
    Io(#[from] std::io::Error),
    /// The firewall table could not be reset.
    #[error("firewall: {0}")]
    Firewall(#[from] super::firewall::FirewallError),
}

/// Settings of the Docker runtime.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// Docker socket [default `/var/run/docker.sock`].
    pub socket: String,
    /// The service network [default `honeysens`].
    pub network: String,
    /// Container name prefix [default `honeysens-`].
    pub prefix: String,
    /// nftables table of the catch-all rules [default `honeysens`]; `None`: no firewall
    /// rules at all (catch-all services then only get their port).
    pub nft_table: Option<String>,
    /// The agent's TCP intake port, for `HONEYSENS_INTAKE` (the agent must listen on the
    /// gateway address or `0.0.0.0`); `None`: the variable is not set.
    pub intake_port: Option<u16>,
    /// Other TCP ports of the sensor the catch-all must leave alone (e.g. 22 for management).
    pub protected_tcp_ports: BTreeSet<u16>,
    /// The port catch-all services listen on (`HONEYSENS_CATCHALL_PORT`) [default 4444].
    pub catch_all_port: u16,
    /// Where image downloads are assembled.
    pub work_dir: PathBuf,
    /// Memory limit per container, bytes [default 256 MiB].
    pub memory_limit: i64,
    /// PID limit per container [default 256].
    pub pids_limit: i64,
    /// How long `reconcile` waits for an image fetch before answering `scheduled`.
    pub fetch_wait: Duration,
    /// Stop and remove the containers on shutdown [default false: they keep running and
    /// are adopted at the next start].
    pub stop_on_shutdown: bool,
}

impl DockerOptions {
    /// Defaults with `work_dir` for downloads.
    pub fn new(work_dir: impl Into<PathBuf>) -> Self {
        DockerOptions {
            socket: "/var/run/docker.sock".to_owned(),
            network: "honeysens".to_owned(),
            prefix: "honeysens-".to_owned(),
            nft_table: Some("honeysens".to_owned()),
            intake_port: None,
            protected_tcp_ports: BTreeSet::new(),
            catch_all_port: 4444,
            work_dir: work_dir.into(),
            memory_limit: 256 << 20,
            pids_limit: 256,
            fetch_wait: Duration::from_secs(20),
            stop_on_shutdown: false,
        }
    }

    /// The bridge interface name of the service network.
    pub fn bridge_name(&self) -> String {
        let mut b = format!("hs-{}", self.network);
        b.truncate(15);
        b
    }
}

enum Fetch {
    Running,
    Failed(String),
}

struct Inner {
    docker: Docker,
    source: Arc<dyn ImageSource>,
    opts: DockerOptions,
    firewall: Option<Firewall>,
    transport: Mutex<Option<Arc<dyn Transport>>>,
    fetches: Mutex<HashMap<String, Fetch>>,
    last_plan: Mutex<Option<ServicePlan>>,
    /// One reconcile at a time.
    lock: tokio::sync::Mutex<()>,
    me: Weak<Inner>,
}

/// Runs services as Docker containers (see the module docs).
#[derive(Clone)]
pub struct DockerRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DockerRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerRuntime")
            .field("opts", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

fn status(name: &str, state: ServiceState, error: Option<String>) -> ServiceStatus {
    ServiceStatus {
        name: name.to_owned(),
        state,
        error,
    }
}

fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

/// `"2222/tcp"` → (2222, "tcp"); a bare port means TCP.
fn parse_container_port(spec: &str) -> Option<(u16, &'static str)> {
    let (port, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto),
        None => (spec, "tcp"),
    };
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" => "tcp",
        "udp" => "udp",
        _ => return None,
    };
    port.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .map(|p| (p, proto))
}

fn gateway(net: &Ipv4Net) -> Option<Ipv4Addr> {
    net.hosts().next()
}

impl DockerRuntime {
    /// Connects to the engine (API version negotiated), prepares the work directory and
    /// resets the firewall table (a crashed agent's rules are replaced; `reconcile` adds the
    /// catch-all).
    pub async fn connect(
        opts: DockerOptions,
        source: Arc<dyn ImageSource>,
    ) -> Result<Self, DockerError> {
        if !valid_service_name(&opts.network) {
            return Err(DockerError::Option(format!(
                "network name {:?} is not valid",
                opts.network
            )));
        }
        let docker = Docker::connect_with_unix(&opts.socket, 120, bollard::API_DEFAULT_VERSION)?
            .negotiate_version()
            .await?;
        docker.ping().await?;
        std::fs::create_dir_all(&opts.work_dir)?;
        let firewall = match &opts.nft_table {
            Some(t) => {
                let fw = Firewall::new(t)?;
                // Replaces what a killed agent left; the intake is guarded from the start,
                // the catch-all follows with the first reconcile.
                fw.apply(&FirewallRules {
                    bridge: Some(opts.bridge_name()),
                    intake_port: opts.intake_port,
                    ..Default::default()
                })
                .await?;
                Some(fw)
            }
            None => None,
        };
        let inner = Arc::new_cyclic(|me| Inner {
            docker,
            source,
            opts,
            firewall,
            transport: Mutex::new(None),
            fetches: Mutex::new(HashMap::new()),
            last_plan: Mutex::new(None),
            lock: tokio::sync::Mutex::new(()),
            me: me.clone(),
        });
        Ok(DockerRuntime { inner })
    }

    /// The engine connection (for diagnostics and tests).
    pub fn docker(&self) -> &Docker {
        &self.inner.docker
    }
}

#[async_trait::async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn reconcile(&self, plan: &ServicePlan) -> Vec<ServiceStatus> {
        if let Ok(mut p) = self.inner.last_plan.lock() {
            *p = Some(plan.clone());
        }
        self.inner.reconcile(plan).await
    }

    fn use_transport(&self, transport: Arc<dyn Transport>) {
        if let Ok(mut t) = self.inner.transport.lock() {
            *t = Some(transport);
        }
    }

    async fn shutdown(&self) {
        let _guard = self.inner.lock.lock().await;
        if self.inner.opts.stop_on_shutdown {
            for c in self.inner.owned_containers().await.unwrap_or_default() {
                if let Some(id) = &c.id {
                    self.inner.remove_container(id).await;
                }
            }
            let _ = self
                .inner
                .docker
                .remove_network(&self.inner.opts.network)
                .await;
        }
        if let Some(fw) = &self.inner.firewall
            && let Err(e) = fw.remove().await
        {
            tracing::warn!(error = %e, "cannot remove the firewall table");
        }
    }
}

impl Inner {
    fn labels(&self, s: &ServiceTarget) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_SERVICE.to_owned(), s.name.clone()),
            (LABEL_REVISION.to_owned(), s.revision.clone()),
            (LABEL_DIGEST.to_owned(), s.image_digest.clone()),
            (LABEL_OWNER.to_owned(), self.opts.network.clone()),
        ])
    }

    async fn owned_containers(&self) -> Result<Vec<ContainerSummary>, bollard::errors::Error> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{LABEL_OWNER}={}", self.opts.network)],
        )]);
        self.docker
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
    }

    async fn remove_container(&self, id: &str) {
        let _ = self
            .docker
            .stop_container(id, Some(StopContainerOptionsBuilder::new().t(10).build()))
            .await;
        if let Err(e) = self
            .docker
            .remove_container(
                id,
                Some(RemoveContainerOptionsBuilder::new().force(true).build()),
            )
            .await
        {
            tracing::warn!(container = id, error = %e, "cannot remove container");
        }
    }

    async fn remove_image(&self, image: &str) {
        match self
            .docker
            .remove_image(
                image,
                Some(RemoveImageOptionsBuilder::new().force(true).build()),
                None,
            )
            .await
        {
            Ok(_) => tracing::info!(image, "image removed"),
            Err(e) => tracing::warn!(image, error = %e, "cannot remove image"),
        }
    }

    /// Makes sure the bridge network exists on `range`; returns whether it was (re)created.
    async fn ensure_network(&self, range: Ipv4Net) -> Result<bool, String> {
        let name = &self.opts.network;
        let want = range.trunc().to_string();
        match self.docker.inspect_network(name, None).await {
            Ok(n) => {
                let subnets: Vec<String> = n
                    .ipam
                    .and_then(|i| i.config)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| c.subnet)
                    .collect();
                if subnets.contains(&want) {
                    return Ok(false);
                }
                tracing::info!(network = %name, from = ?subnets, to = %want, "service network range changed: recreating");
                // Containers on the old range are recreated on the new one.
                for c in self.owned_containers().await.map_err(|e| e.to_string())? {
                    let bridged = c
                        .network_settings
                        .as_ref()
                        .and_then(|s| s.networks.as_ref())
                        .is_some_and(|n| n.contains_key(name));
                    if bridged && let Some(id) = &c.id {
                        self.remove_container(id).await;
                    }
                }
                self.docker
                    .remove_network(name)
                    .await
                    .map_err(|e| format!("cannot remove network {name}: {e}"))?;
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => {}
            Err(e) => return Err(format!("cannot inspect network {name}: {e}")),
        }
        let gw = gateway(&range).ok_or_else(|| format!("service network {range} is too small"))?;
        self.docker
            .create_network(NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".to_owned()),
                ipam: Some(Ipam {
                    driver: Some("default".to_owned()),
                    config: Some(vec![IpamConfig {
                        subnet: Some(want.clone()),
                        gateway: Some(gw.to_string()),
                        ..Default::default()
                    }]),
                    options: None,
                }),
                options: Some(HashMap::from([(
                    "com.docker.network.bridge.name".to_owned(),
                    self.opts.bridge_name(),
                )])),
                labels: Some(HashMap::from([
                    (LABEL_OWNER.to_owned(), name.clone()),
                    (LABEL_RANGE.to_owned(), want),
                ])),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("cannot create network {name} on {range}: {e}"))?;
        Ok(true)
    }

    /// The image of `s` if present locally: its id.
    async fn local_image(&self, s: &ServiceTarget) -> Option<String> {
        let hex = digest_hex(&s.image_digest).ok()?;
        let reference = format!("{}:sha256-{hex}", s.repository);
        self.docker
            .inspect_image(&reference)
            .await
            .ok()
            .and_then(|i| i.id)
    }

    /// Starts a background fetch of the image of `s` unless one runs.
    fn start_fetch(&self, s: &ServiceTarget) {
        let Ok(mut fetches) = self.fetches.lock() else {
            return;
        };
        if matches!(fetches.get(&s.image_digest), Some(Fetch::Running)) {
            return;
        }
        fetches.insert(s.image_digest.clone(), Fetch::Running);
        drop(fetches);
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let s = s.clone();
        tokio::spawn(async move {
            let result = me.fetch_and_load(&s).await;
            let ok = result.is_ok();
            if let Ok(mut f) = me.fetches.lock() {
                match result {
                    Ok(()) => {
                        f.remove(&s.image_digest);
                    }
                    Err(e) => {
                        tracing::warn!(service = %s.name, error = %e, "image fetch failed");
                        f.insert(s.image_digest.clone(), Fetch::Failed(e));
                    }
                }
            }
            // A reconcile that gave up waiting left the service `scheduled`: finish its job.
            if ok {
                let plan = me.last_plan.lock().ok().and_then(|p| p.clone());
                if let Some(plan) = plan {
                    me.reconcile(&plan).await;
                }
            }
        });
    }

    async fn fetch_and_load(&self, s: &ServiceTarget) -> Result<(), String> {
        let hex = digest_hex(&s.image_digest).map_err(|e| e.to_string())?;
        let dir = self.opts.work_dir.join(format!("fetch-{hex}"));
        let _ = tokio::fs::remove_dir_all(&dir).await;
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        let transport = self.transport.lock().ok().and_then(|t| t.clone());
        let result = async {
            let image = self
                .source
                .fetch(s, transport, &dir)
                .await
                .map_err(|e| e.to_string())?;
            let loaded = self.load(&image.archive).await;
            if image.temporary {
                let _ = tokio::fs::remove_file(&image.archive).await;
            }
            let id = loaded?;
            let tag = repo_tag(s);
            let (repo, rev) = tag.rsplit_once(':').unwrap_or((tag.as_str(), "latest"));
            for t in [rev.to_owned(), format!("sha256-{hex}")] {
                self.docker
                    .tag_image(
                        &id,
                        Some(TagImageOptionsBuilder::new().repo(repo).tag(&t).build()),
                    )
                    .await
                    .map_err(|e| format!("cannot tag image {id} as {repo}:{t}: {e}"))?;
            }
            tracing::info!(service = %s.name, image = %id, "image loaded");
            Ok(())
        }
        .await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        result
    }

    /// `docker load` of an archive; the loaded image's id.
    async fn load(&self, archive: &std::path::Path) -> Result<String, String> {
        let file = tokio::fs::File::open(archive)
            .await
            .map_err(|e| format!("{}: {e}", archive.display()))?;
        let chunks = futures_util::stream::unfold(file, |mut f| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = bytes::BytesMut::with_capacity(256 * 1024);
            match f.read_buf(&mut buf).await {
                Ok(0) => None,
                Ok(_) => Some((Ok(buf.freeze()), f)),
                Err(e) => Some((Err(e), f)),
            }
        });
        let mut out = self.docker.import_image(
            bollard::query_parameters::ImportImageOptionsBuilder::new()
                .quiet(true)
                .build(),
            bollard::body_try_stream(chunks),
            None,
        );
        let mut loaded = None;
        while let Some(msg) = out.next().await {
            let msg = msg.map_err(|e| format!("docker load: {e}"))?;
            let text = msg.stream.or(msg.status).unwrap_or_default();
            for line in text.lines() {
                let line = line.trim();
                if let Some(r) = line
                    .strip_prefix("Loaded image ID: ")
                    .or_else(|| line.strip_prefix("Loaded image: "))
                {
                    loaded.get_or_insert_with(|| r.trim().to_owned());
                }
            }
        }
        let reference = loaded.ok_or("docker load reported no image")?;
        let image = self
            .docker
            .inspect_image(&reference)
            .await
            .map_err(|e| format!("loaded image {reference}: {e}"))?;
        image
            .id
            .ok_or_else(|| format!("loaded image {reference} has no id"))
    }

    async fn reconcile(&self, plan: &ServicePlan) -> Vec<ServiceStatus> {
        let _guard = self.lock.lock().await;
        let mut statuses: Vec<ServiceStatus> = Vec::new();
        let mut wanted: Vec<&ServiceTarget> = Vec::new();
        let mut seen = BTreeSet::new();
        for s in &plan.services {
            let problem = if !valid_service_name(&s.name) {
                Some("invalid service name".to_owned())
            } else if !seen.insert(s.name.as_str()) {
                Some("service listed twice".to_owned())
            } else if let Err(e) = super::image::check_repository(&s.repository)
                .and_then(|()| digest_hex(&s.image_digest).map(|_| ()))
            {
                Some(e.to_string())
            } else {
                s.port_assignment
                    .keys()
                    .find(|k| parse_container_port(k).is_none())
                    .map(|k| format!("invalid port {k:?} (want e.g. \"2222/tcp\")"))
            };
            match problem {
                Some(p) => statuses.push(status(&s.name, ServiceState::Error, Some(p))),
                None => wanted.push(s),
            }
        }

        // First: a range change recreates the network and removes the containers on it, so
        // the list below is what is left.
        // Host-network services need it too: its gateway is where they reach the intake.
        let network = if !wanted.is_empty() {
            self.ensure_network(plan.service_network).await.err()
        } else {
            None
        };
        let existing = match self.owned_containers().await {
            Ok(c) => c,
            Err(e) => {
                let reason = format!("docker: {e}");
                return plan
                    .services
                    .iter()
                    .map(|s| status(&s.name, ServiceState::Error, Some(reason.clone())))
                    .collect();
            }
        };
        // Unassigned: container, then its image.
        for c in &existing {
            let name = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_SERVICE))
                .cloned()
                .unwrap_or_default();
            if !wanted.iter().any(|s| s.name == name)
                && let Some(id) = &c.id
            {
                tracing::info!(service = %name, "service no longer assigned: removing");
                self.remove_container(id).await;
                if let Some(image) = &c.image_id {
                    self.remove_image(image).await;
                }
            }
        }

        let gw = gateway(&plan.service_network);

        let mut catch_all = None;
        let mut rules = FirewallRules {
            bridge: Some(self.opts.bridge_name()),
            intake_port: self.opts.intake_port,
            tcp_ports: self.opts.protected_tcp_ports.clone(),
            ..Default::default()
        };
        if let Some(p) = self.opts.intake_port {
            rules.tcp_ports.insert(p);
        }
        for s in &wanted {
            if s.raw_network_access {
                // A host-network service owns its container ports on the host.
                for (p, proto) in s
                    .port_assignment
                    .keys()
                    .filter_map(|k| parse_container_port(k))
                {
                    if proto == "udp" {
                        &mut rules.udp_ports
                    } else {
                        &mut rules.tcp_ports
                    }
                    .insert(p);
                }
            }
            for (k, host) in &s.port_assignment {
                if let Some((_, proto)) = parse_container_port(k) {
                    if proto == "udp" {
                        &mut rules.udp_ports
                    } else {
                        &mut rules.tcp_ports
                    }
                    .insert(*host);
                }
            }
        }

        for s in wanted {
            if !s.raw_network_access
                && let Some(e) = &network
            {
                statuses.push(status(&s.name, ServiceState::Error, Some(e.clone())));
                continue;
            }
            let st = self.reconcile_one(s, &existing, gw).await;
            if s.catch_all && st.0.state == ServiceState::Running && catch_all.is_none() {
                catch_all = if s.raw_network_access {
                    Some(CatchAllTarget::Host {
                        port: self.opts.catch_all_port,
                    })
                } else {
                    st.1.map(|ip| CatchAllTarget::Container {
                        ip,
                        port: self.opts.catch_all_port,
                    })
                };
            }
            statuses.push(st.0);
        }

        if let Some(fw) = &self.firewall {
            rules.catch_all = catch_all;
            if let Err(e) = fw.apply(&rules).await {
                tracing::error!(error = %e, "cannot apply the catch-all rules");
                for st in statuses.iter_mut().filter(|st| {
                    plan.services
                        .iter()
                        .any(|s| s.catch_all && s.name == st.name)
                }) {
                    st.state = ServiceState::Error;
                    st.error = Some(format!("firewall: {e}"));
                }
            }
        }
        statuses
    }

    /// One planned service: adopt, replace or create its container. Its status and, on the
    /// bridge, its address.
    async fn reconcile_one(
        &self,
        s: &ServiceTarget,
        existing: &[ContainerSummary],
        gw: Option<Ipv4Addr>,
    ) -> (ServiceStatus, Option<Ipv4Addr>) {
        let container_name = format!("{}{}", self.opts.prefix, s.name);
        let current = existing.iter().find(|c| {
            c.labels
                .as_ref()
                .and_then(|l| l.get(LABEL_SERVICE))
                .is_some_and(|n| *n == s.name)
        });
        if let Some(c) = current {
            let labels = c.labels.clone().unwrap_or_default();
            let host_mode = c
                .host_config
                .as_ref()
                .and_then(|h| h.network_mode.as_deref())
                == Some("host");
            let same = labels.get(LABEL_REVISION) == Some(&s.revision)
                && labels.get(LABEL_DIGEST) == Some(&s.image_digest)
                && host_mode == s.raw_network_access
                && (s.raw_network_access
                    || c.network_settings
                        .as_ref()
                        .and_then(|n| n.networks.as_ref())
                        .is_some_and(|n| n.contains_key(&self.opts.network)));
            let id = c.id.clone().unwrap_or_default();
            if same {
                if c.state != Some(ContainerSummaryStateEnum::RUNNING)
                    && let Err(e) = self.docker.start_container(&id, None).await
                {
                    return (
                        status(&s.name, ServiceState::Error, Some(format!("start: {e}"))),
                        None,
                    );
                }
                return (
                    status(&s.name, ServiceState::Running, None),
                    self.container_ip(&id).await,
                );
            }
            tracing::info!(service = %s.name, "service changed: replacing its container");
            // The old image goes once the new one runs (unless they are the same).
            let old_image = c.image_id.clone();
            self.remove_container(&id).await;
            let result = self.create(s, &container_name, gw).await;
            if let (Some(old), Some(new)) = (&old_image, self.local_image(s).await)
                && *old != new
            {
                self.remove_image(old).await;
            }
            return result;
        }
        self.create(s, &container_name, gw).await
    }

    async fn container_ip(&self, id: &str) -> Option<Ipv4Addr> {
        let c = self.docker.inspect_container(id, None).await.ok()?;
        c.network_settings?
            .networks?
            .get(&self.opts.network)?
            .ip_address
            .as_deref()?
            .parse()
            .ok()
    }

    async fn create(
        &self,
        s: &ServiceTarget,
        container_name: &str,
        gw: Option<Ipv4Addr>,
    ) -> (ServiceStatus, Option<Ipv4Addr>) {
        let image = match self.local_image(s).await {
            Some(id) => id,
            None => {
                self.start_fetch(s);
                let deadline = tokio::time::Instant::now() + self.opts.fetch_wait;
                loop {
                    let state =
                        self.fetches
                            .lock()
                            .ok()
                            .and_then(|f| match f.get(&s.image_digest) {
                                Some(Fetch::Running) => Some(None),
                                Some(Fetch::Failed(e)) => Some(Some(e.clone())),
                                None => None,
                            });
                    match state {
                        Some(Some(e)) => {
                            // Reported now, tried again at the next reconcile.
                            if let Ok(mut f) = self.fetches.lock() {
                                f.remove(&s.image_digest);
                            }
                            return (
                                status(&s.name, ServiceState::Error, Some(format!("image: {e}"))),
                                None,
                            );
                        }
                        Some(None) if tokio::time::Instant::now() < deadline => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        Some(None) => {
                            return (status(&s.name, ServiceState::Scheduled, None), None);
                        }
                        None => break,
                    }
                }
                match self.local_image(s).await {
                    Some(id) => id,
                    None => {
                        return (
                            status(
                                &s.name,
                                ServiceState::Error,
                                Some("image missing after loading".into()),
                            ),
                            None,
                        );
                    }
                }
            }
        };

        let mut env = vec![format!("HONEYSENS_SERVICE={}", s.name)];
        if let (Some(port), Some(gw)) = (self.opts.intake_port, gw) {
            env.push(format!("HONEYSENS_INTAKE=tcp:{gw}:{port}"));
        }
        if s.catch_all {
            env.push(format!(
                "HONEYSENS_CATCHALL_PORT={}",
                self.opts.catch_all_port
            ));
        }
        let mut host = HostConfig {
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            memory: Some(self.opts.memory_limit),
            pids_limit: Some(self.opts.pids_limit),
            log_config: Some(HostConfigLogConfig {
                typ: Some("json-file".to_owned()),
                config: Some(HashMap::from([
                    ("max-size".to_owned(), "1m".to_owned()),
                    ("max-file".to_owned(), "2".to_owned()),
                ])),
            }),
            ..Default::default()
        };
        let mut exposed = Vec::new();
        let mut networking = None;
        if s.raw_network_access {
            host.network_mode = Some("host".to_owned());
            host.cap_add = Some(vec!["NET_ADMIN".to_owned(), "NET_RAW".to_owned()]);
        } else {
            host.network_mode = Some(self.opts.network.clone());
            let mut bindings = HashMap::new();
            for (k, hport) in &s.port_assignment {
                if let Some((p, proto)) = parse_container_port(k) {
                    let key = format!("{p}/{proto}");
                    exposed.push(key.clone());
                    bindings.insert(
                        key,
                        Some(vec![PortBinding {
                            host_ip: None,
                            host_port: Some(hport.to_string()),
                        }]),
                    );
                }
            }
            host.port_bindings = Some(bindings);
            networking = Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    self.opts.network.clone(),
                    EndpointSettings::default(),
                )])),
            });
        }
        let body = ContainerCreateBody {
            image: Some(image),
            env: Some(env),
            labels: Some(self.labels(s)),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            host_config: Some(host),
            networking_config: networking,
            ..Default::default()
        };
        // A container with our name but not ours (made by hand, or left without labels)
        // would block the create: an unlabelled one goes, another runtime's is an error.
        if let Ok(c) = self.docker.inspect_container(container_name, None).await {
            let owner = c
                .config
                .and_then(|c| c.labels)
                .and_then(|l| l.get(LABEL_OWNER).cloned());
            match owner {
                Some(o) if o != self.opts.network => {
                    return (
                        status(
                            &s.name,
                            ServiceState::Error,
                            Some(format!(
                                "container name {container_name} is used by runtime {o}"
                            )),
                        ),
                        None,
                    );
                }
                _ => {
                    let _ = self
                        .docker
                        .remove_container(
                            container_name,
                            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                        )
                        .await;
                }
            }
        }
        let created = match self
            .docker
            .create_container(
                Some(
                    CreateContainerOptionsBuilder::new()
                        .name(container_name)
                        .build(),
                ),
                body,
            )
            .await
        {
            Ok(c) => c,
            Err(e) => {
                return (
                    status(&s.name, ServiceState::Error, Some(format!("create: {e}"))),
                    None,
                );
            }
        };
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            return (
                status(&s.name, ServiceState::Error, Some(format!("start: {e}"))),
                None,
            );
        }
        tracing::info!(service = %s.name, container = %created.id, "service started");
        (
            status(&s.name, ServiceState::Running, None),
            self.container_ip(&created.id).await,
        )
    }
}
