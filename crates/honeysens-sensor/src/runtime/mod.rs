//! Running the honeypot services the server assigns.
//!
//! A [`ContainerRuntime`] turns the `services` of the desired state into running honeypots and
//! reports how each one is doing. The Docker runtime (bollard) is the reference; the process
//! runtime runs the built-in Rust honeypots without Docker, for embedding and small sensors.
//!
//! Contract with every service, container or process, passed as environment variables:
//! - `HONEYSENS_INTAKE` — where to send events: `tcp:<ip>:<port>` or `unix:<path>`
//!   (see `honeysens_honeypots::sink`).
//! - `HONEYSENS_SERVICE` — the service name, to put into each event's `service` field.
//! - `HONEYSENS_CATCHALL_PORT` — catch-all services only: the port every otherwise unclaimed
//!   inbound TCP/UDP connection is redirected to.
//! - `HONEYSENS_LISTEN` — optional `ip:port` a built-in honeypot listens on (its usual port
//!   on `0.0.0.0` otherwise; see `bins/honeysens-honeypot` and `docs/honeypots.md`).
//!
//! [`process::ProcessRuntime`] runs the built-in honeypots (repository's last path segment
//! `recon`, `ssh`, `http` or `redis`) as tasks of the agent instead.

pub mod process;

use honeysens_core::model::{Architecture, ServiceStatus};
use honeysens_core::protocol::{ServiceTarget, Transport};
use ipnet::Ipv4Net;
use std::sync::Arc;

pub mod docker;
pub mod firewall;
pub mod image;

/// What the sensor should run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    /// The assigned services, already filtered to this sensor's architecture.
    pub services: Vec<ServiceTarget>,
    /// Range of the bridge network containers run in.
    pub service_network: Ipv4Net,
}

impl ServicePlan {
    /// The plan for `arch` out of the server's desired services (one entry per service and
    /// architecture there).
    pub fn for_architecture(
        services: &[ServiceTarget],
        service_network: Ipv4Net,
        arch: Architecture,
    ) -> Self {
        ServicePlan {
            services: services
                .iter()
                .filter(|s| s.architecture == arch)
                .cloned()
                .collect(),
            service_network,
        }
    }
}

/// The architecture this agent was built for, in the server's terms.
pub fn host_architecture() -> Option<Architecture> {
    match std::env::consts::ARCH {
        "x86_64" => Some(Architecture::Amd64),
        "aarch64" => Some(Architecture::Arm64),
        "arm" => Some(Architecture::Armhf),
        _ => None,
    }
}

/// Runs honeypot services.
#[async_trait::async_trait]
pub trait ContainerRuntime: Send + Sync {
    /// Brings the running services in line with `plan`: starts what is missing, replaces what
    /// changed, stops and removes what is no longer assigned (and its image). Never fails as a
    /// whole: a service that cannot run is reported as `error` with its reason, the others
    /// still run. Returns one status per planned service, for the next status report.
    async fn reconcile(&self, plan: &ServicePlan) -> Vec<ServiceStatus>;

    /// The agent's connection to its server, handed over at start and whenever it changes
    /// (runtimes that download images from the server use it). Default: ignored.
    fn use_transport(&self, transport: Arc<dyn Transport>) {
        let _ = transport;
    }

    /// Called when the agent stops: removes what the runtime set up around its services
    /// (firewall rules). Whether the services stop too is the runtime's documented choice —
    /// the Docker runtime keeps its containers running by default and adopts them at the
    /// next start; a runtime whose services live in the agent's process stops them.
    async fn shutdown(&self);
}
