//! Shared harness of the HTTP integration tests: the real server on port 0 over real TLS,
//! backed by a fresh SQLite file.
#![allow(dead_code)]

use honeysens_core::Store;
use honeysens_core::pki::CertificateAuthority;
use honeysens_http::server::{AppState, Server, ServerOptions};
use honeysens_http::tls::TlsMaterial;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Password of every user the tests create.
pub const PW: &str = "correct horse battery";

pub struct TestServer {
    pub url: String,
    pub port: u16,
    pub store: Arc<dyn Store>,
    pub ca: Arc<CertificateAuthority>,
    pub state: AppState,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    db: std::path::PathBuf,
    /// A server database to drop at the end: backend, admin URL, database name.
    drop_db: Option<(Backend, String, String)>,
}

/// Database backends the tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

async fn admin_sql(kind: Backend, admin: &str, sql: &str) {
    use sqlx::Connection;
    match kind {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.ok();
        }
        Backend::MySql => {
            let mut c = sqlx::MySqlConnection::connect(admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut c)
                .await
                .unwrap();
            c.close().await.ok();
        }
        Backend::Sqlite => {}
    }
}

impl TestServer {
    pub async fn start(trusted_proxies: &[&str]) -> TestServer {
        Self::start_at(trusted_proxies, "127.0.0.1".parse().unwrap()).await
    }

    /// Like [`TestServer::start`], listening on `ip` (also in the server certificate).
    pub async fn start_at(trusted_proxies: &[&str], ip: IpAddr) -> TestServer {
        Self::start_full(trusted_proxies, ip, |_| {}).await
    }

    /// Like [`TestServer::start`], with `adjust` applied to the options.
    pub async fn start_with(
        trusted_proxies: &[&str],
        adjust: impl FnOnce(&mut ServerOptions),
    ) -> TestServer {
        Self::start_full(trusted_proxies, "127.0.0.1".parse().unwrap(), adjust).await
    }

    async fn start_full(
        trusted_proxies: &[&str],
        ip: IpAddr,
        adjust: impl FnOnce(&mut ServerOptions),
    ) -> TestServer {
        let db = std::env::temp_dir().join(format!("hs-http-{}.db", uuid::Uuid::new_v4().simple()));
        let store =
            honeysens_store::open(&format!("sqlite://{}", db.display()), &Default::default())
                .await
                .unwrap();
        Self::start_on(store, db, None, trusted_proxies, ip, adjust).await
    }

    /// A server on a fresh database of `backend`; `None` (with a note) when that backend's
    /// URL is not set, which under `CI=true` fails instead.
    pub async fn start_backend(backend: Backend) -> Option<TestServer> {
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (kind, var) = match backend {
            Backend::Sqlite => return Some(Self::start_at(&[], ip).await),
            Backend::Postgres => (backend, "HONEYSENS_TEST_POSTGRES_URL"),
            Backend::MySql => (backend, "HONEYSENS_TEST_MYSQL_URL"),
        };
        let admin = match std::env::var(var) {
            Ok(url) if !url.is_empty() => url,
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("{var} is not set: under CI=true every backend must be tested")
            }
            _ => {
                eprintln!("skipping: {var} is not set");
                return None;
            }
        };
        let name = format!("hs_http_{}", uuid::Uuid::new_v4().simple());
        let create = match kind {
            Backend::MySql => {
                format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            }
            _ => format!("CREATE DATABASE {name}"),
        };
        admin_sql(kind, &admin, &create).await;
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&format!("/{name}"));
        let store = honeysens_store::open(url.as_str(), &Default::default())
            .await
            .unwrap();
        let scratch = std::env::temp_dir().join(format!("{name}.db"));
        Some(Self::start_on(store, scratch, Some((kind, admin, name)), &[], ip, |_| {}).await)
    }

    async fn start_on(
        store: Arc<dyn Store>,
        db: std::path::PathBuf,
        drop_db: Option<(Backend, String, String)>,
        trusted_proxies: &[&str],
        ip: IpAddr,
        adjust: impl FnOnce(&mut ServerOptions),
    ) -> TestServer {
        let ca = Arc::new(
            CertificateAuthority::load_or_create(store.as_ref(), "Test CA")
                .await
                .unwrap(),
        );
        let cert = ca
            .issue_server(&["localhost".into()], &["127.0.0.1".parse().unwrap(), ip])
            .unwrap();
        let mut options = ServerOptions {
            listen: std::net::SocketAddr::new(ip, 0),
            tls: TlsMaterial::from_pem(&cert.cert_pem, &cert.key_pem).unwrap(),
            trusted_proxies: trusted_proxies.iter().map(|p| p.parse().unwrap()).collect(),
            crl_refresh: Duration::from_secs(3600),
            shutdown_grace: Duration::from_secs(5),
            blobs: Arc::new(
                honeysens_store::FsBlobStore::open_dir(db.with_extension("blobs"))
                    .await
                    .unwrap(),
            ),
            public_endpoint: None,
            max_service_package: honeysens_http::mgmt::packages::DEFAULT_MAX_PACKAGE,
            pipeline: Default::default(),
        };
        adjust(&mut options);
        let server = Server::bind(store.clone(), ca.clone(), options)
            .await
            .unwrap();
        let port = server.local_addr().unwrap().port();
        let state = server.state();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        TestServer {
            url: format!("https://{}", std::net::SocketAddr::new(ip, port)),
            port,
            store,
            ca,
            state,
            stop: Some(tx),
            task: Some(task),
            db,
            drop_db,
        }
    }

    /// A raw reqwest client trusting the CA, optionally bound to a local source address.
    pub fn raw(&self, local: Option<IpAddr>) -> reqwest::Client {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls_pki_types::CertificateDer::from(
                self.ca.cert_der().to_vec(),
            ))
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(honeysens_http::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut b = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .no_proxy();
        if let Some(ip) = local {
            b = b.local_address(ip);
        }
        b.build().unwrap()
    }

    /// A typed management client trusting the CA (not logged in).
    pub fn client(&self) -> honeysens_http::mgmt_client::ManagementClient {
        honeysens_http::mgmt_client::ManagementClient::new(&self.url, self.ca.cert_pem()).unwrap()
    }

    /// Creates a user with password [`PW`] directly in the store.
    pub async fn user(
        &self,
        name: &str,
        role: honeysens_core::model::Role,
        divisions: Vec<honeysens_core::ids::DivisionId>,
    ) -> honeysens_core::ids::UserId {
        let spec = honeysens_core::model::UserSpec {
            name: name.into(),
            full_name: None,
            email: None,
            role,
            divisions,
        };
        self.store
            .create_user(&spec, &honeysens_core::password::hash_password(PW).unwrap())
            .await
            .unwrap()
            .id
    }

    /// Creates a division directly in the store.
    pub async fn division(&self, name: &str) -> honeysens_core::ids::DivisionId {
        self.store
            .create_division(&honeysens_core::model::DivisionSpec { name: name.into() })
            .await
            .unwrap()
            .id
    }

    /// Logs `name` (password [`PW`]) in through the typed client.
    pub async fn login(&self, name: &str) -> honeysens_http::mgmt_client::ManagementClient {
        let mut c = self.client();
        c.login(name, PW).await.unwrap();
        c
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .unwrap()
                .unwrap();
        }
        self.store.close().await;
        let _ = std::fs::remove_dir_all(self.db.with_extension("blobs"));
        for s in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{s}", self.db.display()));
        }
        if let Some((kind, admin, name)) = self.drop_db.take() {
            let sql = match kind {
                Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                _ => format!("DROP DATABASE IF EXISTS {name}"),
            };
            admin_sql(kind, &admin, &sql).await;
        }
    }
}
