//! Webhook delivery against a Python `http.server` receiver that checks the HMAC signature
//! with Python's own `hmac` module. Skips without the venv, fails under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use honeysens_core::ids::SensorId;
use honeysens_notify::{DeliveryError, Message, SensorNotice, SensorNoticeKind, WebhookClient};
use std::process::Command;
use std::time::Duration;

fn notice() -> Message {
    Message::Sensor(SensorNotice {
        sensor_id: SensorId(4),
        sensor_name: "lab \"east\" | 1".into(),
        division: "Rechenzentrum".into(),
        kind: SensorNoticeKind::Timeout,
        last_seen: Some(chrono::Utc::now()),
        at: chrono::Utc::now(),
    })
}

fn records(path: &std::path::Path, n: usize) -> Vec<serde_json::Value> {
    wait_until(Duration::from_secs(10), || {
        let text = std::fs::read_to_string(path).ok()?;
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (lines.len() >= n).then_some(lines)
    })
    .unwrap_or_else(|| panic!("receiver recorded fewer than {n} requests"))
}

#[tokio::test]
async fn signed_and_unsigned_deliveries_and_status_classes() {
    let Some(py) = venv_python() else { return };
    let dir = temp_dir("webhook");
    let out = dir.join("requests.jsonl");
    let mut cmd = Command::new(&py);
    cmd.arg(receiver("webhook_receiver.py"))
        .args(["--secret", "hook-secret"])
        .arg("--out")
        .arg(&out);
    let (_proc, port) = spawn_ready(cmd);
    let base = format!("http://127.0.0.1:{port}");
    let client = WebhookClient::new(Duration::from_secs(5), None).unwrap();
    let msg = notice();

    client
        .post(&format!("{base}/hook"), Some("hook-secret"), &msg)
        .await
        .unwrap();
    client
        .post(&format!("{base}/hook"), None, &msg)
        .await
        .unwrap();
    // Signed with another secret: the receiver must reject the signature.
    client
        .post(&format!("{base}/hook"), Some("other"), &msg)
        .await
        .unwrap();

    let err = client
        .post(&format!("{base}/status/503"), Some("hook-secret"), &msg)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeliveryError::Status { status: 503 }) && err.is_retryable(),
        "{err:?}"
    );
    let err = client
        .post(&format!("{base}/status/429"), None, &msg)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let err = client
        .post(&format!("{base}/status/401"), Some("hook-secret"), &msg)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeliveryError::Status { status: 401 }) && !err.is_retryable(),
        "{err:?}"
    );

    let recs = records(&out, 6);
    let verdicts: Vec<&str> = recs
        .iter()
        .map(|r| r["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(
        verdicts,
        ["valid", "unsigned", "invalid", "valid", "unsigned", "valid"]
    );
    let first = &recs[0];
    assert_eq!(first["event"], "sensor");
    assert_eq!(first["content_type"], "application/json");
    assert_eq!(
        first["user_agent"],
        format!("HoneySens/{}", honeysens_notify::VERSION)
    );
    let ts: i64 = first["timestamp"].as_str().unwrap().parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    assert_eq!(first["body"], serde_json::to_value(&msg).unwrap());
    assert_eq!(first["body"]["kind"], "sensor");
    assert_eq!(first["body"]["sensor_name"], "lab \"east\" | 1");
    // Every delivery has its own id.
    let ids: std::collections::HashSet<&str> = recs
        .iter()
        .map(|r| r["delivery"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), recs.len());
    assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()));
}

#[tokio::test]
async fn unreachable_is_retryable_bad_url_permanent() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = WebhookClient::new(Duration::from_secs(5), None).unwrap();
    let err = client
        .post(&format!("http://127.0.0.1:{port}/"), None, &notice())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeliveryError::Connect(_)) && err.is_retryable(),
        "{err:?}"
    );
    for url in ["ftp://example.org/", "not a url"] {
        let err = client.post(url, None, &notice()).await.unwrap_err();
        assert!(
            matches!(err, DeliveryError::Address(_)) && !err.is_retryable(),
            "{url}: {err:?}"
        );
    }
}

#[tokio::test]
async fn https_trusts_the_extra_root_only_when_given() {
    let Some(py) = venv_python() else { return };
    let pki = test_pki();
    let dir = temp_dir("webhook-tls");
    let out = dir.join("requests.jsonl");
    std::fs::write(dir.join("cert.pem"), &pki.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &pki.key_pem).unwrap();
    let mut cmd = Command::new(&py);
    cmd.arg(receiver("webhook_receiver.py"))
        .args(["--secret", "s"])
        .arg("--out")
        .arg(&out)
        .arg("--cert")
        .arg(dir.join("cert.pem"))
        .arg("--key")
        .arg(dir.join("key.pem"));
    let (_proc, port) = spawn_ready(cmd);
    let url = format!("https://localhost:{port}/hook");

    let untrusting = WebhookClient::new(Duration::from_secs(5), None).unwrap();
    let err = untrusting
        .post(&url, Some("s"), &notice())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeliveryError::Tls(_)) && !err.is_retryable(),
        "{err:?}"
    );

    let trusting = WebhookClient::new(Duration::from_secs(5), Some(&pki.ca_pem)).unwrap();
    trusting.post(&url, Some("s"), &notice()).await.unwrap();
    let recs = records(&out, 1);
    assert_eq!(
        recs.len(),
        1,
        "the refused handshake must not have delivered anything"
    );
    assert_eq!(recs[0]["verdict"], "valid");
}
