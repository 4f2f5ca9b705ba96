//! Mail over SMTP with lettre: plain, STARTTLS or implicit TLS, optional AUTH.

use crate::error::{DeliveryError, NotifyError};
use crate::message::Rendered;
use honeysens_core::model::{SmtpSecurity, SmtpSettings};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

/// How long one SMTP command may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends rendered notifications through one SMTP server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    server: String,
}

// Hand-written so that the password inside the transport can never reach a log.
impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `smtp`; `extra_root_pem` is trusted in addition to the public roots (for
    /// servers with an internal CA).
    pub fn new(smtp: &SmtpSettings, extra_root_pem: Option<&str>) -> Result<Self, NotifyError> {
        let from: Mailbox = smtp
            .from
            .parse()
            .map_err(|e| NotifyError::Config(format!("sender {:?}: {e}", smtp.from)))?;
        let tls = match smtp.security {
            SmtpSecurity::None => Tls::None,
            SmtpSecurity::StartTls => Tls::Required(tls_parameters(&smtp.host, extra_root_pem)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls_parameters(&smtp.host, extra_root_pem)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port)
            .tls(tls)
            .timeout(Some(SMTP_TIMEOUT));
        if let Some(user) = &smtp.user {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                smtp.password.clone().unwrap_or_default(),
            ));
        }
        Ok(Mailer {
            transport: builder.build(),
            from,
            server: format!("{}:{}", smtp.host, smtp.port),
        })
    }

    /// Sends `r` as one plain-text mail to all of `to`.
    pub async fn send(&self, to: &[String], r: &Rendered) -> Result<(), DeliveryError> {
        if to.is_empty() {
            return Err(DeliveryError::Address("no recipients".into()));
        }
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(r.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .user_agent(format!("HoneySens/{}", crate::VERSION));
        for addr in to {
            let mbox: Mailbox = addr
                .parse()
                .map_err(|e| DeliveryError::Address(format!("{addr:?}: {e}")))?;
            builder = builder.to(mbox);
        }
        let message = builder
            .body(r.body.clone())
            .map_err(|e| DeliveryError::Build(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

fn tls_parameters(host: &str, extra_root_pem: Option<&str>) -> Result<TlsParameters, NotifyError> {
    let mut b = TlsParameters::builder(host.to_owned());
    if let Some(pem) = extra_root_pem {
        for der in crate::tls::pem_certs(pem)? {
            let cert =
                Certificate::from_der(der.to_vec()).map_err(|e| NotifyError::Tls(e.to_string()))?;
            b = b.add_root_certificate(cert);
        }
    }
    b.build_rustls()
        .map_err(|e| NotifyError::Tls(e.to_string()))
}

/// Maps lettre's error onto retryable and permanent kinds. lettre's Display never contains the
/// credentials.
fn classify(e: lettre::transport::smtp::Error) -> DeliveryError {
    let text = crate::tls::error_chain(&e);
    // 530 (auth required), 534/535/538 (auth mechanism/credentials) are login problems.
    let auth_code = e
        .status()
        .map(|c| matches!(u16::from(c), 530 | 534 | 535 | 538))
        .unwrap_or(false);
    if auth_code {
        DeliveryError::Auth(text)
    } else if e.is_tls() || crate::tls::is_tls_failure(&e) {
        DeliveryError::Tls(text)
    } else if e.is_permanent() {
        DeliveryError::Rejected(text)
    } else if e.is_transient() {
        DeliveryError::Transient(text)
    } else if e.is_timeout() {
        DeliveryError::Timeout(text)
    } else if e.is_client() {
        DeliveryError::Build(text)
    } else {
        DeliveryError::Connect(text)
    }
}
