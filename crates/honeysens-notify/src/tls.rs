//! rustls client configuration shared by webhooks and syslog: ring provider, Mozilla's roots
//! (webpki-roots, so no OS certificate store is needed) plus admin-supplied PEM certificates.

use crate::error::NotifyError;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::sync::Arc;

/// Parses every certificate in `pem`; an input without any is an error.
pub(crate) fn pem_certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, NotifyError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NotifyError::Tls(format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(NotifyError::Tls("no certificate in PEM".into()));
    }
    Ok(certs)
}

/// Roots: only `only_pem` when given, else the public roots plus `extra_pem`.
pub(crate) fn client_config(
    extra_pem: Option<&str>,
    only_pem: Option<&str>,
) -> Result<rustls::ClientConfig, NotifyError> {
    let mut roots = RootCertStore::empty();
    if let Some(pem) = only_pem {
        for cert in pem_certs(pem)? {
            roots
                .add(cert)
                .map_err(|e| NotifyError::Tls(e.to_string()))?;
        }
    } else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_pem {
            for cert in pem_certs(pem)? {
                roots
                    .add(cert)
                    .map_err(|e| NotifyError::Tls(e.to_string()))?;
            }
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| NotifyError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// Whether a rustls error (a failed handshake, an untrusted certificate) is somewhere in the
/// source chain of `e`; such failures do not heal by retrying.
pub(crate) fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        // io::Error::source() skips the wrapped error itself, so step into it explicitly.
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    false
}

/// `e` and its sources joined by `: `.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        // Wrappers often repeat their source's text.
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        src = s.source();
    }
    text
}
