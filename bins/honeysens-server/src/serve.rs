//! `serve`: prepare the data directory, CA, server certificate and first admin, then run the
//! HTTPS server until SIGTERM or Ctrl-C.

use crate::config::{Settings, https_url, show};
use crate::error::AppError;
use crate::{files, setup};
use honeysens_core::Store;
use honeysens_core::password;
use honeysens_core::pki::{self, CertificateAuthority};
use honeysens_core::time::{Timestamp, now};
use honeysens_http::server::{Server, ServerOptions};
use honeysens_http::tls::{self, TlsMaterial};
use honeysens_store::FsBlobStore;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// Name of the generated server certificate in the data directory.
pub const SERVER_CERT: &str = "server.crt";
/// Name of the generated server key in the data directory.
pub const SERVER_KEY: &str = "server.key";
/// Environment variable with the initial admin password (first start only).
pub const ADMIN_PASSWORD_ENV: &str = "HONEYSENS_ADMIN_PASSWORD";
/// Login name of the first admin.
pub const ADMIN_NAME: &str = "admin";

/// Runs the server until a shutdown signal; the store is closed on the way out.
pub async fn serve(settings: &Settings) -> Result<(), AppError> {
    let result = open_and_run(settings).await;
    match &result {
        Ok(()) => tracing::info!("server stopped"),
        Err(e) => tracing::error!(error = %e, "server failed"),
    }
    result
}

async fn open_and_run(settings: &Settings) -> Result<(), AppError> {
    files::ensure_private_dir(&settings.data_dir)?;
    // Handlers first: a SIGTERM that arrives once we have said we are up must stop us cleanly.
    let signals = Signals::install()?;
    let store = setup::open_store(settings).await?;
    let result = run(settings, store.clone(), signals).await;
    store.close().await;
    result
}

async fn run(settings: &Settings, store: Arc<dyn Store>, signals: Signals) -> Result<(), AppError> {
    let ca = Arc::new(setup::load_ca(store.as_ref()).await?);
    let ca_path = settings.ca_cert_path();
    if files::read_optional(&ca_path)?.as_deref() != Some(ca.cert_pem()) {
        files::write_file(&ca_path, ca.cert_pem().as_bytes(), files::PUBLIC_MODE)?;
        tracing::info!(path = %ca_path.display(), "wrote CA certificate");
    }
    let tls = server_tls(settings, &ca, store.as_ref()).await?;
    let initial_admin = ensure_admin(store.as_ref()).await?;

    let options = ServerOptions {
        listen: settings.listen,
        tls,
        trusted_proxies: settings.trusted_proxies.clone(),
        crl_refresh: Duration::from_secs(settings.crl_refresh_secs),
        // Below Docker's default 10 s stop timeout, so a slow client cannot get us SIGKILLed.
        shutdown_grace: Duration::from_secs(8),
        blobs: Arc::new(
            FsBlobStore::open_dir(settings.data_dir.join("blobs"))
                .await
                .map_err(|e| AppError::with("cannot open the blob directory", &e))?,
        ),
        public_endpoint: settings.public_endpoint(),
        max_service_package: settings.max_service_package_mib * 1024 * 1024,
        pipeline: honeysens_http::pipeline::PipelineOptions {
            // The address sensors use is the one people outside this host can reach too.
            console_url: settings
                .public_endpoint()
                .map(|e| format!("https://{}:{}/", e.host, e.port)),
            ..Default::default()
        },
    };
    let server = Server::bind(store.clone(), ca, options)
        .await
        .map_err(|e| {
            AppError::with(
                format!("cannot start the server on {}", settings.listen),
                &e,
            )
        })?;
    let addr = server
        .local_addr()
        .map_err(|e| AppError::with("cannot read the bound address", &e))?;
    if let Some(admin) = &initial_admin {
        match &admin.generated_password {
            Some(pw) => println!(
                "Initial admin user: {ADMIN_NAME} / password: {pw} (shown once; change it at \
                 first login)"
            ),
            None => {
                println!("Initial admin user: {ADMIN_NAME} (password from {ADMIN_PASSWORD_ENV})")
            }
        }
    }
    tracing::info!(
        %addr,
        trusted_proxies = settings.trusted_proxies.len(),
        "server started"
    );
    println!(
        "HoneySens server listening on {} (CA: {})",
        https_url(addr),
        show(&ca_path)
    );
    server
        .run(async move {
            let signal = signals.wait().await;
            tracing::info!(signal, "shutting down");
        })
        .await
        .map_err(|e| AppError::with("server failed", &e))
}

/// The server's TLS certificate: the operator's files when configured, else the generated
/// `server.crt`/`server.key` in the data directory, issued anew when missing, unusable, not
/// from the current CA, missing a configured name, or expiring within 30 days.
async fn server_tls(
    settings: &Settings,
    ca: &CertificateAuthority,
    store: &dyn Store,
) -> Result<TlsMaterial, AppError> {
    if let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) {
        let material = TlsMaterial::from_pem(&files::read(cert)?, &files::read(key)?)
            .map_err(|e| AppError::with("the configured TLS certificate is unusable", &e))?;
        tls::server_config(&material, ca.cert_der(), None)
            .map_err(|e| AppError::with("the configured TLS certificate is unusable", &e))?;
        tracing::info!(cert = %cert.display(), "using the configured TLS certificate");
        return Ok(material);
    }
    let cert_path = settings.data_dir.join(SERVER_CERT);
    let key_path = settings.data_dir.join(SERVER_KEY);
    let (dns, ips) = settings.certificate_names();
    let existing = match (
        files::read_optional(&cert_path)?,
        files::read_optional(&key_path)?,
    ) {
        (Some(cert), Some(key)) => Some(check_certificate(&cert, &key, ca, &dns, &ips, now())),
        _ => None,
    };
    let reason = match existing {
        Some(Ok(material)) => {
            tracing::info!(cert = %cert_path.display(), "using the server certificate");
            return Ok(material);
        }
        Some(Err(reason)) => reason,
        None => "none yet".to_owned(),
    };
    let issued = ca
        .issue_server(&dns, &ips)
        .map_err(|e| AppError::with("cannot issue the server certificate", &e))?;
    store.record_certificate(&issued.record).await?;
    // Key first: a crash in between leaves a mismatched pair, which the next start replaces.
    files::write_file(&key_path, issued.key_pem.as_bytes(), files::SECRET_MODE)?;
    files::write_file(&cert_path, issued.cert_pem.as_bytes(), files::PUBLIC_MODE)?;
    tracing::info!(
        reason = %reason,
        serial = %issued.record.serial,
        not_after = %issued.record.not_after,
        dns = ?dns,
        ips = ?ips,
        "issued a new server certificate"
    );
    TlsMaterial::from_pem(&issued.cert_pem, &issued.key_pem)
        .map_err(|e| AppError::with("the issued server certificate is unusable", &e))
}

/// Checks a generated certificate and key; `Err` says why they must be replaced.
pub fn check_certificate(
    cert_pem: &str,
    key_pem: &str,
    ca: &CertificateAuthority,
    dns: &[String],
    ips: &[IpAddr],
    now: Timestamp,
) -> Result<TlsMaterial, String> {
    let material =
        TlsMaterial::from_pem(cert_pem, key_pem).map_err(|e| format!("unreadable: {e}"))?;
    tls::server_config(&material, ca.cert_der(), None)
        .map_err(|e| format!("unusable (key and certificate do not match?): {e}"))?;
    let leaf = material
        .cert_chain
        .first()
        .ok_or_else(|| "no certificate".to_owned())?;
    let (_, cert) =
        X509Certificate::from_der(leaf).map_err(|e| format!("unreadable certificate: {e}"))?;
    let (_, ca_cert) =
        X509Certificate::from_der(ca.cert_der()).map_err(|e| format!("unreadable CA: {e}"))?;
    if cert.issuer().as_raw() != ca_cert.subject().as_raw()
        || cert.verify_signature(Some(ca_cert.public_key())).is_err()
    {
        return Err("issued by another CA".into());
    }
    let info = pki::inspect(leaf).map_err(|e| format!("unreadable certificate: {e}"))?;
    if info.not_before > now {
        return Err("not yet valid".into());
    }
    if pki::needs_renewal(info.not_after, now) {
        return Err(format!(
            "expires within {} days ({})",
            pki::RENEW_BEFORE_DAYS,
            info.not_after
        ));
    }
    let mut have_dns = Vec::new();
    let mut have_ips = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => have_dns.push(n.to_ascii_lowercase()),
                GeneralName::IPAddress(b) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                        have_ips.push(IpAddr::from(v4));
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                        have_ips.push(IpAddr::from(v6));
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(missing) = dns
        .iter()
        .find(|n| !have_dns.contains(&n.to_ascii_lowercase()))
    {
        return Err(format!("does not cover {missing}"));
    }
    if let Some(missing) = ips.iter().find(|ip| !have_ips.contains(ip)) {
        return Err(format!("does not cover {missing}"));
    }
    Ok(material)
}

/// The first admin, when this start created it.
struct InitialAdmin {
    /// The password, when it was generated (and must be shown once).
    generated_password: Option<String>,
}

/// On first start (no users), creates division `Default` and user `admin` (role admin) with
/// the password from `HONEYSENS_ADMIN_PASSWORD` or a generated one, which must be changed at
/// first login.
async fn ensure_admin(store: &dyn Store) -> Result<Option<InitialAdmin>, AppError> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let division = setup::division_named(store, setup::DEFAULT_DIVISION).await?;
    let (password, generated) = match std::env::var(ADMIN_PASSWORD_ENV) {
        Ok(pw) if !pw.is_empty() => {
            password::check_password(&pw).map_err(|e| {
                AppError::usage(format!("{ADMIN_PASSWORD_ENV} is not acceptable: {e}"))
            })?;
            (pw, false)
        }
        _ => (password::generate_password(), true),
    };
    let hash = password::hash_password(&password)?;
    let spec = honeysens_core::model::UserSpec {
        name: ADMIN_NAME.to_owned(),
        full_name: None,
        email: None,
        role: honeysens_core::model::Role::Admin,
        divisions: vec![division.id],
    };
    let user = match store.create_user(&spec, &hash).await {
        Ok(user) => user,
        // Another replica starting at the same time created it first.
        Err(e) if e.kind() == honeysens_core::ErrorKind::Conflict => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if generated {
        store.set_password_hash(user.id, &hash, true).await?;
    }
    tracing::info!(user = ADMIN_NAME, division = %division.name, "created the initial admin user");
    Ok(Some(InitialAdmin {
        generated_password: generated.then_some(password),
    }))
}

/// SIGTERM and SIGINT (Ctrl-C) handlers, installed before the server says it is up.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, AppError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let fail = |e: std::io::Error| AppError::with("cannot install signal handlers", &e);
            Ok(Signals {
                term: signal(SignalKind::terminate()).map_err(fail)?,
                int: signal(SignalKind::interrupt()).map_err(fail)?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    /// Waits for the first signal and names it.
    async fn wait(self) -> &'static str {
        #[cfg(unix)]
        {
            let Signals { mut term, mut int } = self;
            tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "Ctrl-C"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn names() -> (Vec<String>, Vec<IpAddr>) {
        (
            vec!["localhost".into(), "hs.example".into()],
            vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        )
    }

    #[test]
    fn a_fresh_certificate_passes() {
        let (ca, _) = CertificateAuthority::generate("HoneySens CA").unwrap();
        let (dns, ips) = names();
        let kp = ca.issue_server(&dns, &ips).unwrap();
        check_certificate(&kp.cert_pem, &kp.key_pem, &ca, &dns, &ips, now()).unwrap();
        // Fewer names wanted is fine; the name check is case-insensitive.
        check_certificate(
            &kp.cert_pem,
            &kp.key_pem,
            &ca,
            &["HS.example".into()],
            &[],
            now(),
        )
        .unwrap();
    }

    #[test]
    fn replacement_reasons() {
        let (ca, _) = CertificateAuthority::generate("HoneySens CA").unwrap();
        let (dns, ips) = names();
        let kp = ca.issue_server(&dns, &ips).unwrap();
        let check = |cert: &str, key: &str, dns: &[String], ips: &[IpAddr], at| {
            check_certificate(cert, key, &ca, dns, ips, at).unwrap_err()
        };
        let more_dns = [dns.clone(), vec!["new.example".into()]].concat();
        assert!(check(&kp.cert_pem, &kp.key_pem, &more_dns, &ips, now()).contains("new.example"));
        let more_ips = [ips.clone(), vec!["192.0.2.1".parse().unwrap()]].concat();
        assert!(check(&kp.cert_pem, &kp.key_pem, &dns, &more_ips, now()).contains("192.0.2.1"));
        let late = kp.record.not_after - TimeDelta::days(29);
        assert!(check(&kp.cert_pem, &kp.key_pem, &dns, &ips, late).contains("expires"));
        let other = ca.issue_server(&dns, &ips).unwrap();
        assert!(check(&kp.cert_pem, &other.key_pem, &dns, &ips, now()).contains("unusable"));
        assert!(check(&kp.cert_pem, "garbage", &dns, &ips, now()).contains("unreadable"));
        let (foreign, _) = CertificateAuthority::generate("Other CA").unwrap();
        let kp2 = foreign.issue_server(&dns, &ips).unwrap();
        assert!(check(&kp2.cert_pem, &kp2.key_pem, &dns, &ips, now()).contains("another CA"));
    }
}
