//! Notifications of HoneySens: mail and webhook texts rendered from admin-editable templates,
//! delivery over SMTP and HTTPS webhooks, and SIEM forwarding of events over syslog
//! (RFC 5424 with JSON, CEF or LEEF payloads).
//!
//! This crate knows nothing about stores or job queues: the server's worker loads what is to be
//! sent, calls in here, and retries failed deliveries ([`DeliveryError::is_retryable`]) after
//! [`backoff`].

mod error;
mod mail;
mod message;
mod syslog;
mod tls;
mod webhook;

pub use error::{DeliveryError, NotifyError};
pub use mail::Mailer;
pub use message::{
    AlertMessage, CaExpiryMessage, Message, Rendered, SensorNotice, SensorNoticeKind,
    SummaryMessage, TestMessage, render, validate_templates,
};
pub use syslog::{SYSLOG_PEN, SyslogForwarder, format_syslog};
pub use webhook::{SIGNATURE_HEADER, WebhookClient, signature as webhook_signature};

use std::time::Duration;

/// Version sent in the `User-Agent` and CEF/LEEF headers.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// First retry delay before jitter.
pub const BACKOFF_BASE: Duration = Duration::from_secs(30);
/// Longest retry delay before jitter.
pub const BACKOFF_CAP: Duration = Duration::from_secs(3600);

/// Delay before retry number `attempt` (0 = first retry): `min(30 s · 2^attempt, 1 h)`, of
/// which a uniformly random 50–100 % is taken so that many failed deliveries to one receiver
/// do not retry in lockstep. So 15–30 s, 30–60 s, 1–2 min, … up to 30–60 min.
pub fn backoff(attempt: u32) -> Duration {
    use rand::RngExt;
    let full = BACKOFF_BASE
        .checked_mul(2u32.checked_pow(attempt).unwrap_or(u32::MAX))
        .unwrap_or(BACKOFF_CAP)
        .min(BACKOFF_CAP);
    let ms = u64::try_from(full.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        for attempt in 0..40 {
            let full = (BACKOFF_BASE * 2u32.saturating_pow(attempt.min(20))).min(BACKOFF_CAP);
            let d = backoff(attempt);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
        assert!(backoff(100) <= BACKOFF_CAP);
        // Jitter: 50 draws of the same attempt are not all equal.
        let first = backoff(5);
        assert!((0..50).any(|_| backoff(5) != first));
    }
}
