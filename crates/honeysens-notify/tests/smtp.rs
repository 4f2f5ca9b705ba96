//! Mail delivery against a real SMTP server (aiosmtpd in a Python venv): plain, STARTTLS,
//! implicit TLS and AUTH over STARTTLS. The receiver parses what arrived with Python's `email`
//! module; these tests assert on what it stored. Skips without the venv, fails under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use common::*;
use honeysens_core::model::{SmtpSecurity, SmtpSettings, Templates};
use honeysens_notify::{DeliveryError, Mailer, Message, TestMessage, render};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

struct Receiver {
    _proc: Proc,
    port: u16,
    out: std::path::PathBuf,
}

fn start(py: &Path, mode: &str, pki: &TestPki) -> Receiver {
    let out = temp_dir(&format!("smtp-{mode}"));
    let cert = out.join("cert.pem");
    let key = out.join("key.pem");
    std::fs::write(&cert, &pki.cert_pem).unwrap();
    std::fs::write(&key, &pki.key_pem).unwrap();
    let mails = out.join("mails");
    std::fs::create_dir_all(&mails).unwrap();
    let mut cmd = Command::new(py);
    cmd.arg(receiver("smtp_receiver.py"))
        .args(["--mode", mode, "--out"])
        .arg(&mails)
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .args(["--user", "alerts", "--password", "s3cret pass"]);
    let (proc, port) = spawn_ready(cmd);
    Receiver {
        _proc: proc,
        port,
        out: mails,
    }
}

fn settings(port: u16, security: SmtpSecurity, user: Option<(&str, &str)>) -> SmtpSettings {
    SmtpSettings {
        enabled: true,
        host: "localhost".into(),
        port,
        security,
        user: user.map(|u| u.0.to_owned()),
        password: user.map(|u| u.1.to_owned()),
        from: "HoneySens <honeysens@example.org>".into(),
    }
}

fn stored(dir: &Path, n: usize) -> Vec<serde_json::Value> {
    wait_until(Duration::from_secs(10), || {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        (files.len() >= n).then(|| {
            files
                .iter()
                .map(|f| serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap())
                .collect()
        })
    })
    .unwrap_or_else(|| panic!("receiver stored fewer than {n} mails in {}", dir.display()))
}

fn test_mail() -> honeysens_notify::Rendered {
    let msg = Message::Test(TestMessage {
        requested_by: "admin \"Grüße\"".into(),
        at: chrono::Utc::now(),
    });
    render(&msg, &Templates::default()).unwrap()
}

async fn deliver_and_check(py: &Path, mode: &str, security: SmtpSecurity, auth: bool) {
    let pki = test_pki();
    let rx = start(py, mode, &pki);
    let user = auth.then_some(("alerts", "s3cret pass"));
    let mailer = Mailer::new(&settings(rx.port, security, user), Some(&pki.ca_pem)).unwrap();
    let mail = test_mail();
    let to = vec![
        "soc@example.org".to_owned(),
        "Admin <admin@example.org>".to_owned(),
    ];
    mailer.send(&to, &mail).await.unwrap();
    let got = stored(&rx.out, 1);
    let m = &got[0];
    assert_eq!(m["mail_from"], "honeysens@example.org");
    assert_eq!(
        m["rcpt_tos"],
        serde_json::json!(["soc@example.org", "admin@example.org"])
    );
    assert_eq!(m["subject"], mail.subject.as_str());
    assert_eq!(m["content_type"], "text/plain");
    // email's get_content() decodes the transfer encoding; line ends come back as \n.
    // (SMTP ends the data with a line break of its own.)
    assert_eq!(
        m["body"].as_str().unwrap().replace("\r\n", "\n").trim_end(),
        mail.body.trim_end()
    );
    assert!(m["body"].as_str().unwrap().contains("admin \"Grüße\""));
    assert_eq!(
        m["tls"],
        security != SmtpSecurity::None,
        "{mode}: TLS state"
    );
    assert_eq!(
        m["auth_user"],
        if auth {
            serde_json::json!("alerts")
        } else {
            serde_json::Value::Null
        }
    );
    // The password must not show up in anything the mailer prints.
    assert!(!format!("{mailer:?}").contains("s3cret"));
}

#[tokio::test]
async fn plain_smtp_delivers() {
    let Some(py) = venv_python() else { return };
    deliver_and_check(&py, "plain", SmtpSecurity::None, false).await;
}

#[tokio::test]
async fn starttls_delivers_with_extra_root() {
    let Some(py) = venv_python() else { return };
    deliver_and_check(&py, "starttls", SmtpSecurity::StartTls, false).await;
}

#[tokio::test]
async fn implicit_tls_delivers() {
    let Some(py) = venv_python() else { return };
    deliver_and_check(&py, "tls", SmtpSecurity::Tls, false).await;
}

#[tokio::test]
async fn auth_over_starttls_delivers() {
    let Some(py) = venv_python() else { return };
    deliver_and_check(&py, "auth", SmtpSecurity::StartTls, true).await;
}

#[tokio::test]
async fn wrong_password_is_permanent() {
    let Some(py) = venv_python() else { return };
    let pki = test_pki();
    let rx = start(&py, "auth", &pki);
    let mailer = Mailer::new(
        &settings(rx.port, SmtpSecurity::StartTls, Some(("alerts", "wrong"))),
        Some(&pki.ca_pem),
    )
    .unwrap();
    let err = mailer
        .send(&["soc@example.org".into()], &test_mail())
        .await
        .unwrap_err();
    assert!(matches!(err, DeliveryError::Auth(_)), "{err:?}");
    assert!(!err.is_retryable());
    assert!(!err.to_string().contains("wrong"));
}

#[tokio::test]
async fn untrusted_certificate_is_refused() {
    let Some(py) = venv_python() else { return };
    let pki = test_pki();
    let rx = start(&py, "tls", &pki);
    // No extra root: the test CA is unknown, so the handshake must fail.
    let mailer = Mailer::new(&settings(rx.port, SmtpSecurity::Tls, None), None).unwrap();
    let err = mailer
        .send(&["soc@example.org".into()], &test_mail())
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
    assert!(
        std::fs::read_dir(&rx.out).unwrap().next().is_none(),
        "nothing may arrive"
    );
}

#[tokio::test]
async fn refused_connection_is_retryable_and_bad_recipient_permanent() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mailer = Mailer::new(&settings(port, SmtpSecurity::None, None), None).unwrap();
    let err = mailer
        .send(&["soc@example.org".into()], &test_mail())
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let err = mailer
        .send(&["not an address".into()], &test_mail())
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeliveryError::Address(_)) && !err.is_retryable(),
        "{err:?}"
    );
}
