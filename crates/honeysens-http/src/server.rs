//! The HTTPS server: its own tokio-rustls accept loop (so the verified client certificate of
//! each connection reaches the handlers), axum routing, CRL reloads and graceful shutdown.

use crate::hmac::NonceCache;
use crate::mgmt::throttle::LoginThrottle;
use crate::tls::{self, TlsError, TlsMaterial};
use crate::{api, auth, mgmt, registry};
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use honeysens_core::Store;
use honeysens_core::blob::BlobStore;
use honeysens_core::model::ServerEndpoint;
use honeysens_core::pki::CertificateAuthority;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Binding or accepting on the listen address failed.
    #[error("network error: {0}")]
    Io(#[from] std::io::Error),
    /// The TLS configuration is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Building the CRL failed.
    #[error("certificate authority: {0}")]
    Pki(String),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] honeysens_core::Error),
}

/// What the accept loop knows about a connection; a request extension on every request.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The TCP peer (the proxy, when one is in front).
    pub remote: SocketAddr,
    /// The client certificate the TLS layer verified, if one was presented.
    pub client_cert: Option<CertificateDer<'static>>,
}

/// Server settings that are not in the store.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The server's TLS certificate and key.
    pub tls: TlsMaterial,
    /// Proxies allowed to forward client certificates in `X-Client-Cert`.
    pub trusted_proxies: Vec<IpNet>,
    /// How often the CRL is rebuilt from the store (revocations by other replicas).
    pub crl_refresh: Duration,
    /// How long open connections may finish after shutdown starts; keep it below the
    /// supervisor's kill timeout (Docker: 10 s).
    pub shutdown_grace: Duration,
    /// Where uploads (firmware images, service images) are kept.
    pub blobs: Arc<dyn BlobStore>,
    /// The address sensors reach this server at, written into their configuration bundles;
    /// `None`: the host the administrator used to download the bundle.
    pub public_endpoint: Option<ServerEndpoint>,
    /// Largest service package `POST /api/services/packages` accepts, in bytes
    /// (default [`mgmt::packages::DEFAULT_MAX_PACKAGE`]).
    pub max_service_package: u64,
    /// Job worker, heartbeat and notification options.
    pub pipeline: crate::pipeline::PipelineOptions,
}

/// The TLS configuration in force, swapped atomically when the CRL changes.
#[derive(Clone)]
pub struct TlsHandle {
    material: Arc<TlsMaterial>,
    ca: Arc<CertificateAuthority>,
    store: Arc<dyn Store>,
    current: Arc<RwLock<Arc<ServerConfig>>>,
    crl_number: Arc<AtomicU64>,
}

async fn build_config(
    material: &TlsMaterial,
    ca: &CertificateAuthority,
    store: &dyn Store,
    crl_number: u64,
) -> Result<Arc<ServerConfig>, ServerError> {
    let revoked = store.list_revoked(honeysens_core::time::now()).await?;
    let crl = ca
        .crl_der(&revoked, crl_number)
        .map_err(|e| ServerError::Pki(e.to_string()))?;
    let config = tls::server_config(
        material,
        ca.cert_der(),
        Some(CertificateRevocationListDer::from(crl)),
    )?;
    Ok(Arc::new(config))
}

impl TlsHandle {
    async fn build(&self) -> Result<Arc<ServerConfig>, ServerError> {
        let n = self.crl_number.fetch_add(1, Ordering::Relaxed);
        build_config(&self.material, &self.ca, self.store.as_ref(), n).await
    }

    /// Rebuilds the CRL from the store and swaps the TLS configuration; new handshakes use it.
    pub async fn reload(&self) -> Result<(), ServerError> {
        let config = self.build().await?;
        if let Ok(mut current) = self.current.write() {
            *current = config;
        }
        Ok(())
    }

    fn acceptor(&self) -> Option<TlsAcceptor> {
        self.current
            .read()
            .ok()
            .map(|c| TlsAcceptor::from(c.clone()))
    }
}

/// Shared state of all handlers.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The internal CA.
    pub ca: Arc<CertificateAuthority>,
    /// Proxies allowed to forward client certificates.
    pub trusted_proxies: Arc<Vec<IpNet>>,
    /// Used HMAC nonces.
    pub nonces: Arc<NonceCache>,
    /// The TLS configuration in force.
    pub tls: TlsHandle,
    /// Failed-login counts.
    pub login_throttle: Arc<LoginThrottle>,
    /// Uploaded blobs.
    pub blobs: Arc<dyn BlobStore>,
    /// The address sensors reach this server at (see [`ServerOptions::public_endpoint`]).
    pub public_endpoint: Option<ServerEndpoint>,
    /// Authentication results and settings for the sensor hot path.
    pub cache: Arc<crate::cache::HotCache>,
    /// Group commit of status reports.
    pub status_writer: crate::status_writer::StatusWriter,
    /// Largest service package accepted (see [`ServerOptions::max_service_package`]).
    pub max_service_package: u64,
    /// The event pipeline's options and worker wake-up.
    pub pipeline: Arc<crate::pipeline::Pipeline>,
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    state: AppState,
    router: Router,
    crl_refresh: Duration,
    shutdown_grace: Duration,
}

/// Builds the router: system, sensor and management routes.
pub fn router(state: AppState) -> Router {
    let sensor = api::sensor_routes().route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::sensor_auth,
    ));
    let (mgmt, doc) = mgmt::routes().split_for_parts();
    let mgmt = mgmt.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        invalidate_after_changes,
    ));
    // Serialised once: the document is fixed for the life of the process.
    let doc = bytes::Bytes::from(doc.to_json().unwrap_or_default());
    Router::new()
        .merge(api::system_routes())
        .merge(sensor)
        .merge(registry::routes(state.clone()))
        .merge(mgmt)
        .route(
            "/api/openapi.json",
            axum::routing::get(move || async move {
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    doc,
                )
            }),
        )
        .fallback(api::not_found)
        .method_not_allowed_fallback(api::method_not_allowed)
        .with_state(state)
}

/// Any management request that may have changed something invalidates the sensor hot-path
/// caches once it is done (see [`crate::cache`]).
async fn invalidate_after_changes(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let changes = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let response = next.run(req).await;
    if changes {
        st.cache.invalidate();
    }
    response
}

/// Starts the job worker and the heartbeat loop when the options ask for them.
fn spawn_pipeline(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    if !state.pipeline.options.workers {
        return Vec::new();
    }
    let mut tasks = vec![tokio::spawn(crate::pipeline::heartbeat::run(state.clone()))];
    match crate::pipeline::worker::Worker::new(state.clone()) {
        Ok(w) => tasks.push(tokio::spawn(w.run())),
        Err(e) => tracing::error!(error = %e, "the job worker cannot start; no notifications"),
    }
    tasks
}

impl Server {
    /// Binds the listen address and prepares TLS with the current CRL.
    pub async fn bind(
        store: Arc<dyn Store>,
        ca: Arc<CertificateAuthority>,
        options: ServerOptions,
    ) -> Result<Server, ServerError> {
        let material = Arc::new(options.tls);
        let initial = build_config(&material, &ca, store.as_ref(), 1).await?;
        let handle = TlsHandle {
            material,
            ca: ca.clone(),
            store: store.clone(),
            current: Arc::new(RwLock::new(initial)),
            crl_number: Arc::new(AtomicU64::new(2)),
        };
        let state = AppState {
            status_writer: crate::status_writer::StatusWriter::start(store.clone()),
            store,
            ca,
            trusted_proxies: Arc::new(options.trusted_proxies),
            nonces: Arc::new(NonceCache::default()),
            tls: handle,
            login_throttle: Arc::new(LoginThrottle::default()),
            blobs: options.blobs,
            public_endpoint: options.public_endpoint,
            cache: Arc::new(crate::cache::HotCache::default()),
            max_service_package: options.max_service_package,
            pipeline: crate::pipeline::Pipeline::new(options.pipeline),
        };
        let listener = TcpListener::bind(options.listen).await?;
        Ok(Server {
            listener,
            router: router(state.clone()),
            state,
            crl_refresh: options.crl_refresh,
            shutdown_grace: options.shutdown_grace,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        Ok(self.listener.local_addr()?)
    }

    /// Shared state, e.g. to reload TLS after revoking a certificate.
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then lets open connections finish (up to
    /// `shutdown_grace`).
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServerError> {
        let Server {
            listener,
            state,
            router,
            crl_refresh,
            shutdown_grace,
        } = self;
        let graceful = GracefulShutdown::new();
        let builder = auto::Builder::new(TokioExecutor::new());
        let tls = state.tls.clone();
        let refresher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(crl_refresh);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = tls.reload().await {
                    tracing::error!(error = %e, "CRL refresh failed; keeping the previous one");
                }
            }
        });
        let background = spawn_pipeline(&state);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (tcp, remote) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors and the like: back off, don't spin.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let Some(acceptor) = state.tls.acceptor() else { continue };
                    let router = router.clone();
                    let builder = builder.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let _ = tcp.set_nodelay(true);
                        let stream = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                // Under TLS 1.3 the client cannot tell why; the server log can.
                                tracing::info!(%remote, error = %e, "TLS handshake refused");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%remote, "TLS handshake timed out");
                                return;
                            }
                        };
                        let client_cert = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| c.clone().into_owned());
                        let peer = PeerInfo { remote, client_cert };
                        let svc = router.map_request(move |req: Request<Incoming>| {
                            let mut req = req.map(Body::new);
                            req.extensions_mut().insert(peer.clone());
                            req
                        });
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc));
                        if let Err(e) = watcher.watch(conn.into_owned()).await {
                            tracing::debug!(%remote, error = %e, "connection ended with an error");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        refresher.abort();
        for task in background {
            task.abort();
        }
        drop(listener);
        if tokio::time::timeout(shutdown_grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(grace = ?shutdown_grace, "connections still open after the grace period; closing them");
        }
        Ok(())
    }
}
