//! Shared by the agent binary's tests: the real server in-process over SQLite on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    dead_code
)]

use honeysens_core::Store;
use honeysens_core::ids::{DivisionId, SensorId};
use honeysens_core::model::{DivisionSpec, EventQuery, PageRequest, Role, SensorSpec, UserSpec};
use honeysens_core::pki::CertificateAuthority;
use honeysens_http::mgmt_client::ManagementClient;
use honeysens_http::server::{Server, ServerOptions};
use honeysens_http::tls::TlsMaterial;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const PW: &str = "agent test password";

/// A server on a fixed port over one SQLite file, restartable.
pub struct Srv {
    pub dir: PathBuf,
    pub port: u16,
    pub store: Arc<dyn Store>,
    pub ca: Arc<CertificateAuthority>,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
    pub state: Option<honeysens_http::server::AppState>,
}

impl Srv {
    pub async fn new(tag: &str) -> Srv {
        let dir =
            std::env::temp_dir().join(format!("hs-agent-{tag}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = honeysens_store::open(
            &format!("sqlite://{}", dir.join("db.sqlite").display()),
            &Default::default(),
        )
        .await
        .unwrap();
        let ca = Arc::new(
            CertificateAuthority::load_or_create(store.as_ref(), "Agent Test CA")
                .await
                .unwrap(),
        );
        // A free port, kept across restarts so the sensor's bundle stays valid.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = Srv {
            dir,
            port,
            store,
            ca,
            running: None,
            state: None,
        };
        s.start().await;
        s
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    pub async fn start(&mut self) {
        let cert = self
            .ca
            .issue_server(&["localhost".into()], &["127.0.0.1".parse().unwrap()])
            .unwrap();
        let options = ServerOptions {
            listen: format!("127.0.0.1:{}", self.port).parse().unwrap(),
            tls: TlsMaterial::from_pem(&cert.cert_pem, &cert.key_pem).unwrap(),
            trusted_proxies: vec![],
            crl_refresh: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(1),
            blobs: Arc::new(
                honeysens_store::FsBlobStore::open_dir(self.dir.join("blobs"))
                    .await
                    .unwrap(),
            ),
            public_endpoint: None,
            max_service_package: honeysens_http::mgmt::packages::DEFAULT_MAX_PACKAGE,
            pipeline: Default::default(),
        };
        let server = Server::bind(self.store.clone(), self.ca.clone(), options)
            .await
            .unwrap();
        self.state = Some(server.state());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        self.running = Some((tx, task));
    }

    pub async fn stop(&mut self) {
        if let Some((tx, task)) = self.running.take() {
            let _ = tx.send(());
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .unwrap()
                .unwrap();
        }
    }

    /// An admin session and a division.
    pub async fn admin(&self) -> (ManagementClient, DivisionId) {
        let division = self
            .store
            .create_division(&DivisionSpec { name: "lab".into() })
            .await
            .unwrap()
            .id;
        let spec = UserSpec {
            name: "admin".into(),
            full_name: None,
            email: None,
            role: Role::Admin,
            divisions: vec![],
        };
        self.store
            .create_user(&spec, &honeysens_core::password::hash_password(PW).unwrap())
            .await
            .unwrap();
        let mut c = ManagementClient::new(&self.url(), self.ca.cert_pem()).unwrap();
        c.login("admin", PW).await.unwrap();
        (c, division)
    }

    /// Creates a sensor through the API and writes its bundle to a file.
    pub async fn enrol(
        &self,
        admin: &ManagementClient,
        division: DivisionId,
        name: &str,
    ) -> (SensorId, PathBuf) {
        let created = admin
            .create_sensor(&SensorSpec::new(name, division))
            .await
            .unwrap();
        let path = self.dir.join(format!("{name}.json"));
        std::fs::write(&path, serde_json::to_vec(&created.bundle).unwrap()).unwrap();
        (created.sensor.id, path)
    }

    /// A built-in honeypot service (repository `honeysens/<name>`, run by the process runtime,
    /// which needs no image, so the digest is never fetched) on a free sensor port, assigned
    /// to `sensor`. Returns the port.
    pub async fn builtin_service(
        &self,
        admin: &ManagementClient,
        sensor: SensorId,
        name: &str,
        container_port: &str,
    ) -> u16 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let service = self
            .store
            .create_service(&honeysens_core::model::ServiceSpec {
                name: name.into(),
                repository: format!("honeysens/{name}"),
                description: String::new(),
            })
            .await
            .unwrap();
        self.store
            .add_service_revision(&honeysens_core::model::ServiceRevisionSpec {
                service_id: service.id,
                revision: "1.0.0".into(),
                architecture: honeysens_sensor::runtime::host_architecture().unwrap(),
                description: String::new(),
                port_assignment: [(container_port.to_owned(), port)].into(),
                catch_all: false,
                raw_network_access: false,
                image_digest: format!("sha256:{}", "ab".repeat(32)),
            })
            .await
            .unwrap();
        admin
            .assign_service(sensor, service.id, None)
            .await
            .unwrap();
        port
    }

    /// Waits until the sensor's latest status report shows `service` running.
    pub async fn wait_service_running(
        &self,
        admin: &ManagementClient,
        sensor: SensorId,
        service: &str,
    ) {
        wait_until(
            &format!("{service} running"),
            Duration::from_secs(30),
            || async {
                admin
                    .sensor_status(sensor, None)
                    .await
                    .unwrap()
                    .first()
                    .is_some_and(|r| {
                        r.services.iter().any(|s| {
                            s.name == service
                                && s.state == honeysens_core::model::ServiceState::Running
                        })
                    })
            },
        )
        .await;
    }

    pub async fn event_uids(&self, sensor: SensorId) -> Vec<uuid::Uuid> {
        let query = EventQuery {
            sensors: vec![sensor],
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut page = PageRequest::first(500);
        loop {
            let p = self.store.list_events(&query, &page).await.unwrap();
            out.extend(p.items.iter().map(|e| e.data.uid));
            match p.next {
                Some(next) => page.after = Some(next),
                None => return out,
            }
        }
    }
}

impl Drop for Srv {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
