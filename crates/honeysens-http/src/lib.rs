//! # honeysens-http
//!
//! The HTTPS face of HoneySens: a hyper/axum server with its own tokio-rustls accept loop, so
//! each connection's verified client certificate reaches the handlers ([`auth::SensorIdentity`]);
//! the sensor API with three ways to authenticate (client certificate, certificate forwarded by
//! a trusted TLS-terminating proxy, per-request HMAC for networks whose proxies intercept TLS);
//! the unauthenticated system endpoints (`/api/system/identify`, `/api/system/health`,
//! `/api/system/ca`); the management API ([`mgmt`]: sessions with CSRF protection, API tokens,
//! divisions, users, contacts, sensors and their configuration bundles, platforms and
//! firmware, services and assignments, settings, audit log; OpenAPI at `/api/openapi.json`);
//! [`client::SensorClient`], the sensor's client; and [`mgmt_client::ManagementClient`], the
//! typed management client; [`registry`], the read-only OCI registry at `/v2/` that serves
//! service images to sensors. The console arrives with a later issue.
//!
//! ```no_run
//! # async fn demo(store: std::sync::Arc<dyn honeysens_core::Store>) -> Result<(), Box<dyn std::error::Error>> {
//! use honeysens_core::pki::CertificateAuthority;
//! use honeysens_http::server::{Server, ServerOptions};
//! use honeysens_http::tls::TlsMaterial;
//! use std::sync::Arc;
//!
//! let ca = Arc::new(CertificateAuthority::load_or_create(store.as_ref(), "HoneySens CA").await?);
//! let cert = ca.issue_server(&["localhost".into()], &["127.0.0.1".parse()?])?;
//! let options = ServerOptions {
//!     listen: "127.0.0.1:0".parse()?,
//!     tls: TlsMaterial::from_pem(&cert.cert_pem, &cert.key_pem)?,
//!     trusted_proxies: vec![],
//!     crl_refresh: std::time::Duration::from_secs(60),
//!     shutdown_grace: std::time::Duration::from_secs(8),
//!     blobs: Arc::new(honeysens_store::FsBlobStore::open_dir("./data/blobs").await?),
//!     public_endpoint: None,
//!     max_service_package: honeysens_http::mgmt::packages::DEFAULT_MAX_PACKAGE,
//!     pipeline: Default::default(),
//! };
//! let server = Server::bind(store, ca, options).await?;
//! println!("listening on https://{}", server.local_addr()?);
//! server.run(std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod api;
pub mod auth;
pub mod cache;
pub mod client;
pub mod error;
pub mod hmac;
pub mod inprocess;
pub mod mgmt;
pub mod mgmt_client;
pub mod pipeline;
pub mod proxy_header;
pub mod registry;
pub mod server;
pub mod status_writer;
pub mod tls;

pub use honeysens_core as core;
