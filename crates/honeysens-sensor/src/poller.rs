//! The status poll: reports the sensor's state every update interval and applies the desired
//! state from the answer — network settings (when the agent owns its interface), a new server
//! address or proxy, a renewed certificate (persisted, then used for every later request).

use crate::agent::{
    AgentConfig, AgentStatus, Connection, PersistedState, STATE_FILE, STATUS_FILE,
    TransportFactory, connection, write_json,
};
use crate::spool::Spool;
use crate::uploader::UploadStats;
use honeysens_core::model::SensorState;
use honeysens_core::protocol::{
    DesiredState, SensorCredentials, StatusRequest, StatusResponse, Transport,
};
use honeysens_core::time::now;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Version reported to the server.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the poll loop owns.
pub struct PollContext {
    /// Agent configuration.
    pub config: AgentConfig,
    /// Builds a new transport when the connection changes.
    pub factory: Arc<dyn TransportFactory>,
    /// What the server changed since the bundle.
    pub persisted: PersistedState,
    /// The connection in force.
    pub connection: Connection,
    /// Publishes the transport in force to the uploader.
    pub transport: watch::Sender<Arc<dyn Transport>>,
    /// The spool (for its depth).
    pub spool: Arc<Spool>,
    /// Upload counters.
    pub upload_stats: watch::Receiver<UploadStats>,
    /// Publishes the agent's status.
    pub status: watch::Sender<AgentStatus>,
    /// Wakes the loop for an immediate poll.
    pub poll_now: Arc<Notify>,
}

/// Brings the services in line with the desired state (when the agent has a runtime).
async fn reconcile_services(
    ctx: &PollContext,
    desired: &DesiredState,
) -> Vec<honeysens_core::model::ServiceStatus> {
    let Some(rt) = &ctx.config.runtime else {
        return Vec::new();
    };
    let Some(arch) = crate::runtime::host_architecture() else {
        tracing::error!(
            arch = std::env::consts::ARCH,
            "no service images exist for this architecture"
        );
        return Vec::new();
    };
    let plan = crate::runtime::ServicePlan::for_architecture(
        &desired.services,
        desired.service_network,
        arch,
    );
    let statuses = rt.reconcile(&plan).await;
    for s in &statuses {
        if let Some(e) = &s.error {
            tracing::warn!(service = %s.name, error = %e, "service not running");
        }
    }
    statuses
}

/// Polls at once, then every interval, until `stop` turns true.
pub async fn run(mut ctx: PollContext, mut stop: watch::Receiver<bool>) {
    #[cfg(target_os = "linux")]
    let mut net = match &ctx.config.interface {
        Some(iface) => {
            match crate::netconf::NetConfigurator::new(iface, ctx.config.resolv_conf.clone()).await
            {
                Ok(n) => Some(n),
                Err(e) => {
                    tracing::error!(error = %e, interface = %iface, "cannot manage the interface; network settings will not be applied");
                    None
                }
            }
        }
        None => None,
    };
    let mut interval = ctx.config.bundle.update_interval;
    loop {
        if *stop.borrow() {
            return;
        }
        let services = ctx.status.borrow().service_states.clone();
        let outcome = poll_once(&ctx, services).await;
        let mut status = ctx.status.borrow().clone();
        status.last_poll_at = Some(now());
        match outcome {
            Ok(answer) => {
                status.last_poll_ok = true;
                status.last_error = None;
                status.clock_skew_ms = Some(answer.clock_skew_ms);
                interval = answer.update_interval.max(1);
                status.update_interval = interval;
                if let Some(desired) = &answer.config {
                    status.services = desired
                        .services
                        .iter()
                        .map(|s| format!("{}/{}", s.name, s.revision))
                        .collect();
                    // Reported with the next poll.
                    status.service_states = reconcile_services(&ctx, desired).await;
                    #[cfg(target_os = "linux")]
                    if let Some(n) = net.as_mut() {
                        match n.apply(&desired.network, desired.mac.as_deref()).await {
                            Ok(changes) => {
                                if !changes.is_empty() {
                                    tracing::info!(?changes, "network settings applied");
                                }
                                status.network_changes =
                                    changes.iter().map(|c| format!("{c:?}")).collect();
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "applying network settings failed")
                            }
                        }
                    }
                }
                if let Err(e) = apply_connection(&mut ctx, &answer) {
                    tracing::error!(error = %e, "cannot apply the new connection settings");
                    status.last_error = Some(e);
                }
                status.server = Some(ctx.connection.server.clone());
            }
            Err(e) => {
                tracing::warn!(error = %e, "status poll failed");
                status.last_poll_ok = false;
                status.last_error = Some(e);
            }
        }
        let upload = ctx.upload_stats.borrow().clone();
        status.delivered = upload.delivered;
        status.rejected = upload.rejected;
        status.spool_depth = ctx.spool.stats().depth;
        if let Err(e) = write_json(&ctx.config.state_dir.join(STATUS_FILE), &status) {
            tracing::warn!(error = %e, "cannot write status.json");
        }
        ctx.status.send_replace(status);
        let wait = ctx
            .config
            .poll_every
            .unwrap_or(Duration::from_secs(u64::from(interval) * 60));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = ctx.poll_now.notified() => {}
            _ = stop.changed() => {}
        }
    }
}

async fn poll_once(
    ctx: &PollContext,
    services: Vec<honeysens_core::model::ServiceStatus>,
) -> Result<StatusResponse, String> {
    let (free_memory_mb, disk_total_mb, disk_used_mb) = resources(&ctx.config.state_dir);
    let request = StatusRequest {
        timestamp: now(),
        state: SensorState::Running,
        addresses: addresses(),
        free_memory_mb,
        disk_total_mb,
        disk_used_mb,
        agent_version: AGENT_VERSION.to_owned(),
        firmware_version: None,
        // As the runtime reported them after the previous poll.
        services,
        spool_depth: ctx.spool.stats().depth,
        csr: None,
    };
    let transport = ctx.transport.borrow().clone();
    transport.poll(&request).await.map_err(|e| e.to_string())
}

/// Takes over a renewed certificate, a new server address or proxy: persisted first (so a
/// restart keeps them), then a new transport for every later request.
fn apply_connection(ctx: &mut PollContext, answer: &StatusResponse) -> Result<(), String> {
    let mut next = ctx.persisted.clone();
    if let Some(cert) = &answer.certificate
        && let Some(key_pem) = &cert.key_pem
    {
        next.credentials = Some(SensorCredentials::Certificate {
            cert_pem: cert.cert_pem.clone(),
            key_pem: key_pem.clone(),
            not_after: cert.not_after,
        });
    }
    if let Some(DesiredState { server, proxy, .. }) = &answer.config {
        if let Some(server) = server {
            next.server = Some(server.clone());
        }
        next.proxy = Some(proxy.clone());
    }
    let conn = connection(&ctx.config.bundle, &next);
    if next != ctx.persisted {
        write_json(&ctx.config.state_dir.join(STATE_FILE), &next).map_err(|e| e.to_string())?;
        ctx.persisted = next;
    }
    if conn != ctx.connection {
        let transport = ctx.factory.connect(&conn)?;
        tracing::info!(server = ?conn.server, "connection settings changed");
        if let Some(rt) = &ctx.config.runtime {
            rt.use_transport(transport.clone());
        }
        ctx.transport.send_replace(transport);
        ctx.connection = conn;
    }
    Ok(())
}

/// Free memory and disk of the state directory's filesystem, MiB.
fn resources(state_dir: &std::path::Path) -> (u64, u64, u64) {
    let free = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024);
    // The block counts are u32 on some 32-bit targets (armhf sensors): the casts are needed there.
    #[allow(clippy::unnecessary_cast)]
    let (total, used) = match nix::sys::statvfs::statvfs(state_dir) {
        Ok(s) => {
            let block = s.fragment_size();
            let total = s.blocks() as u64 * block;
            let avail = s.blocks_free() as u64 * block;
            (total >> 20, total.saturating_sub(avail) >> 20)
        }
        Err(_) => (0, 0),
    };
    (free, total, used)
}

/// The machine's non-loopback addresses with prefix length.
fn addresses() -> Vec<String> {
    let Ok(ifs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in ifs {
        let (Some(addr), Some(mask)) = (i.address, i.netmask) else {
            continue;
        };
        if let (Some(a), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
            let ip = a.ip();
            if !ip.is_loopback() {
                out.push(format!("{ip}/{}", u32::from(m.ip()).count_ones()));
            }
        } else if let (Some(a), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
            let ip = a.ip();
            if !ip.is_loopback() {
                out.push(format!("{ip}/{}", u128::from(m.ip()).count_ones()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
