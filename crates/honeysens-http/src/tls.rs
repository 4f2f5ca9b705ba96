//! rustls configuration: TLS 1.2+ with the *ring* provider, server certificate, and client
//! certificates verified against the internal CA and its CRL.

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::sync::Arc;

/// Why TLS material could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The PEM held no certificate.
    #[error("no certificate in PEM input")]
    NoCertificate,
    /// The PEM held no private key.
    #[error("no private key in PEM input")]
    NoKey,
    /// The PEM could not be read.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// rustls refused the configuration (e.g. key does not match certificate).
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),
    /// The client verifier could not be built (e.g. invalid CA or CRL).
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

/// The *ring* crypto provider; the project uses it everywhere instead of a process default.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its private key.
#[derive(Clone)]
pub struct TlsMaterial {
    /// Leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("certs", &self.cert_chain.len())
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// Reads a PEM certificate chain and a PEM private key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        let cert_chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem(e.to_string()))?;
        if cert_chain.is_empty() {
            return Err(TlsError::NoCertificate);
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| TlsError::NoKey)?;
        Ok(TlsMaterial {
            cert_chain,
            key: Arc::new(key),
        })
    }
}

/// The server configuration: TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1, client certificates
/// optional (the management API on the same port has none) but, when presented, verified
/// against `client_ca_der` and `crl` — a revoked, foreign or expired certificate fails the
/// handshake.
pub fn server_config(
    material: &TlsMaterial,
    client_ca_der: &[u8],
    crl: Option<CertificateRevocationListDer<'static>>,
) -> Result<ServerConfig, TlsError> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(client_ca_der.to_vec()))
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .allow_unauthenticated()
        .only_check_end_entity_revocation();
    if let Some(crl) = crl {
        verifier = verifier.with_crls([crl]);
    }
    let verifier = verifier
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(material.cert_chain.clone(), material.key.clone_key())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
