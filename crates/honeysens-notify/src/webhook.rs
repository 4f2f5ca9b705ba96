//! Webhooks: the message as JSON, POSTed with delivery headers and an optional HMAC signature.

use crate::error::{DeliveryError, NotifyError};
use crate::message::Message;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::Duration;

/// Signature header: `sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "X-HoneySens-Signature";

/// POSTs messages to webhook URLs. Cheap to clone; one per worker is enough.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
}

impl WebhookClient {
    /// A client whose whole request may take `timeout`; `extra_root_pem` is trusted in addition
    /// to the public roots.
    pub fn new(timeout: Duration, extra_root_pem: Option<&str>) -> Result<Self, NotifyError> {
        let tls = crate::tls::client_config(extra_root_pem, None)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would resend the signed body to a host the admin did not configure.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(format!("HoneySens/{}", crate::VERSION))
            .build()
            .map_err(|e| NotifyError::Config(e.to_string()))?;
        Ok(WebhookClient { http })
    }

    /// Delivers `msg` to `url`, signed with `secret` when given, under a fresh delivery id.
    /// Retrying is up to the caller.
    pub async fn post(
        &self,
        url: &str,
        secret: Option<&str>,
        msg: &Message,
    ) -> Result<(), DeliveryError> {
        self.post_delivery(url, secret, msg, uuid::Uuid::new_v4())
            .await
    }

    /// Like [`WebhookClient::post`] with the caller's `X-HoneySens-Delivery` id: a caller that
    /// retries passes the same id every time, so receivers can drop repeats.
    pub async fn post_delivery(
        &self,
        url: &str,
        secret: Option<&str>,
        msg: &Message,
        delivery: uuid::Uuid,
    ) -> Result<(), DeliveryError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| DeliveryError::Address(format!("{url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(DeliveryError::Address(format!("{url:?}: not http(s)")));
        }
        let body = serde_json::to_vec(msg).map_err(|e| DeliveryError::Build(e.to_string()))?;
        let timestamp = chrono::Utc::now().timestamp().to_string();
        let mut req = self
            .http
            .post(parsed)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-HoneySens-Event", msg.kind())
            .header("X-HoneySens-Delivery", delivery.to_string())
            .header("X-HoneySens-Timestamp", &timestamp);
        if let Some(secret) = secret {
            req = req.header(SIGNATURE_HEADER, signature(secret, &timestamp, &body));
        }
        let resp = req.body(body).send().await.map_err(classify)?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliveryError::Status {
                status: status.as_u16(),
            })
        }
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `"<timestamp>.<body>"` under `secret`.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of every length, so this error cannot occur; an empty signature would
    // simply not verify.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn classify(e: reqwest::Error) -> DeliveryError {
    // The full source chain says why (refused, certificate unknown, …).
    let text = crate::tls::error_chain(&e);
    if e.is_timeout() {
        DeliveryError::Timeout(text)
    } else if e.is_builder() {
        DeliveryError::Address(text)
    } else if crate::tls::is_tls_failure(&e) {
        DeliveryError::Tls(text)
    } else {
        DeliveryError::Connect(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_covers_timestamp_and_body() {
        // Vector computed with Python's hmac module.
        assert_eq!(
            signature("key", "1700000000", br#"{"a":1}"#),
            "sha256=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
        );
        assert_ne!(
            signature("key", "1700000001", br#"{"a":1}"#),
            signature("key", "1700000000", br#"{"a":1}"#)
        );
    }
}
