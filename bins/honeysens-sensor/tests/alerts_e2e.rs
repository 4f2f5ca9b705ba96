//! End to end: an attack on a built-in honeypot becomes a mail, a signed webhook and a syslog
//! line at real receivers — aiosmtpd (SMTP), a Python HTTP server that checks the HMAC
//! signature itself, and Debian's rsyslogd parsing RFC 5424 and CEF.
//!
//! The real agent binary runs the built-in ssh honeypot (process runtime) and reports to the
//! real server in-process; OpenSSH's `ssh` (password via `sshpass`) logs in from a loopback
//! address. The time from starting the attacker's connection to the webhook's arrival is
//! printed; `HONEYSENS_E2E_ROUNDS=N` repeats the attack from N distinct source addresses (new
//! incidents, so each alerts at once) and prints median and p99 — the latency benchmark of
//! `docs/benchmarks.md`. Finally the sensor goes silent and the timeout notice arrives by mail
//! and webhook.
//!
//! Needs `sshpass`, `ssh`, the notify venv and rsyslogd (`scripts/notify-deps.sh`): skipped with
//! a message when missing, a failure when `CI=true`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;
#[path = "../../../crates/honeysens-notify/tests/common/mod.rs"]
mod receivers;

use common::{Srv, wait_until};
use honeysens_core::model::{
    ContactSpec, ContactTarget, NotifyOn, Settings, SmtpSecurity, SyslogFormat, SyslogTransport,
};
use receivers::{Rsyslog, spawn_ready};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_honeysens-sensor");
const SECRET: &str = "webhook test secret";

fn tools_present() -> bool {
    let missing: Vec<&str> = ["sshpass", "ssh"]
        .into_iter()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!("the alert end-to-end test needs {}", missing.join(", "));
    if receivers::in_ci() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One failed password login from `source` (a loopback address) to the honeypot.
fn attack(source: &str, port: u16) {
    let out = Command::new("sshpass")
        .args(["-p", "hunter2", "ssh"])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=10",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
        ])
        .arg(format!("BindAddress={source}"))
        .arg("-p")
        .arg(port.to_string())
        .arg("root@127.0.0.1")
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // The honeypot refuses the password: ssh exits non-zero, with a permission error.
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Permission denied"), "{err}");
}

/// aiosmtpd (plain SMTP), the signature-checking webhook receiver and rsyslogd.
struct Receivers {
    _smtp: receivers::Proc,
    smtp_port: u16,
    mail_dir: std::path::PathBuf,
    _hook: receivers::Proc,
    hook_port: u16,
    hooks: std::path::PathBuf,
    syslog: Rsyslog,
    syslog_transport: SyslogTransport,
}

impl Receivers {
    /// `None` when the venv or rsyslogd is missing (a failure under `CI=true`).
    fn start(tag: &str, syslog: SyslogTransport) -> Option<Receivers> {
        let (Some(python), Some(rsyslogd)) = (receivers::venv_python(), receivers::rsyslogd())
        else {
            return None;
        };
        let dir = receivers::temp_dir(tag);
        let mail_dir = dir.join("mail");
        std::fs::create_dir_all(&mail_dir).unwrap();
        let mut smtp = Command::new(&python);
        smtp.arg(receivers::receiver("smtp_receiver.py"))
            .args(["--mode", "plain", "--out"])
            .arg(&mail_dir);
        let (_smtp, smtp_port) = spawn_ready(smtp);
        let hooks = dir.join("webhooks.jsonl");
        let mut hook = Command::new(&python);
        hook.arg(receivers::receiver("webhook_receiver.py"))
            .args(["--secret", SECRET, "--out"])
            .arg(&hooks);
        let (_hook, hook_port) = spawn_ready(hook);
        let syslog_transport = syslog;
        let syslog = Rsyslog::start(&rsyslogd, syslog, &receivers::test_pki());
        Some(Receivers {
            _smtp,
            smtp_port,
            mail_dir,
            _hook,
            hook_port,
            hooks,
            syslog,
            syslog_transport,
        })
    }

    /// Settings that send mail and syslog here.
    fn settings(&self, mut settings: Settings, format: SyslogFormat) -> Settings {
        settings.smtp.enabled = true;
        settings.smtp.host = "127.0.0.1".into();
        settings.smtp.port = self.smtp_port;
        settings.smtp.security = SmtpSecurity::None;
        settings.smtp.from = "honeysens@example.org".into();
        settings.syslog.enabled = true;
        settings.syslog.host = "127.0.0.1".into();
        settings.syslog.port = self.syslog.port;
        settings.syslog.transport = self.syslog_transport;
        settings.syslog.format = format;
        settings
    }

    /// Received mails.
    fn mails(&self) -> Vec<Value> {
        std::fs::read_dir(&self.mail_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attack_raises_mail_webhook_and_syslog() {
    if !tools_present() {
        return;
    }
    let Some(rx) = Receivers::start("alerts-e2e", SyslogTransport::Tcp) else {
        return;
    };
    let rounds: usize = std::env::var("HONEYSENS_E2E_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, 200);

    // The server, configured through the store as an admin would through the API.
    let srv = Srv::new("alerts").await;
    let (admin, division) = srv.admin().await;
    let settings = rx.settings(Settings::default(), SyslogFormat::Cef);
    srv.store.put_settings(&settings).await.unwrap();
    let notify = NotifyOn {
        critical_events: true,
        all_events: true,
        sensor_timeouts: true,
        weekly_summary: false,
    };
    for target in [
        ContactTarget::Email {
            address: "soc@example.org".into(),
        },
        ContactTarget::Webhook {
            url: format!("http://127.0.0.1:{}/hook", rx.hook_port),
            secret: Some(SECRET.into()),
        },
    ] {
        srv.store
            .create_contact(&ContactSpec {
                division_id: division,
                target,
                notify,
            })
            .await
            .unwrap();
    }

    // A sensor running the built-in ssh honeypot.
    let (id, bundle) = srv.enrol(&admin, division, "e2e").await;
    let port = srv.builtin_service(&admin, id, "ssh", "22/tcp").await;
    let mut agent = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&bundle)
        .arg("--state-dir")
        .arg(srv.dir.join("state-e2e"))
        .args(["--poll-every", "1", "--runtime", "process"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    srv.wait_service_running(&admin, id, "ssh").await;

    // The attacks: each from its own address, so each is a new incident alerted at once.
    let mut latencies = Vec::new();
    for round in 0..rounds {
        let source = format!("127.0.0.{}", 10 + round);
        let started = unix_now();
        attack(&source, port);
        let deadline = Instant::now() + Duration::from_secs(30);
        let hook = loop {
            let found = lines(&rx.hooks).into_iter().find(|h| {
                h["event"] == "alert" && h["body"]["incident"]["source_ip"] == source.as_str()
            });
            if let Some(h) = found {
                break h;
            }
            assert!(
                Instant::now() < deadline,
                "no webhook for {source} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(
            hook["verdict"], "valid",
            "signature checked by the receiver"
        );
        let arrived = hook["received_at"].as_f64().unwrap();
        latencies.push((arrived - started) * 1000.0);
        let events = hook["body"]["events"].as_array().unwrap();
        assert!(
            events.iter().any(|e| e["type_code"] == "ssh.login.failed"
                && e["source_ip"] == source.as_str()
                && e["dest_port"] == port),
            "{hook}"
        );
    }
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "attack-to-webhook latency over {rounds} attacks: median {:.0} ms, p99 {:.0} ms, \
         min {:.0} ms, max {:.0} ms",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.99),
        sorted[0],
        sorted[sorted.len() - 1]
    );

    // The mail: one per incident, to the contact, naming the attacker.
    let first = "127.0.0.10";
    wait_until("the alert mail", Duration::from_secs(30), || async {
        rx.mails().len() >= rounds
    })
    .await;
    let mails = rx.mails();
    let mail = mails
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains(first))
        .unwrap_or_else(|| panic!("no mail names {first}: {mails:?}"));
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["soc@example.org"]));
    assert_eq!(mail["mail_from"], "honeysens@example.org");
    assert!(mail["body"].as_str().unwrap().contains("ssh.login.failed"));

    // The SIEM line: rsyslog parsed the RFC 5424 header and the CEF extension.
    let siem = rx.syslog.events(rounds);
    let line = siem
        .iter()
        .find(|l| l["msgid"] == "ssh.login.failed")
        .unwrap_or_else(|| panic!("no ssh.login.failed line: {siem:?}"));
    assert_eq!(line["app"], "honeysens");
    let cef = &receivers::parsed(line)["cef"]["cef"];
    assert_eq!(cef["SignatureID"], "ssh.login.failed", "{line}");
    assert_eq!(receivers::ext(&cef["Extensions"], "src"), first, "{line}");

    // The sensor goes silent. Rather than wait out interval plus threshold, the heartbeat
    // check looks ten minutes ahead.
    let _ = agent.kill();
    let _ = agent.wait();
    let state = srv.state.clone().unwrap();
    let later = honeysens_core::time::now() + chrono::Duration::minutes(10);
    assert_eq!(
        honeysens_http::pipeline::heartbeat::check_sensors_at(&state, later)
            .await
            .unwrap(),
        1
    );
    wait_until("the timeout webhook", Duration::from_secs(30), || async {
        lines(&rx.hooks).iter().any(|h| {
            h["event"] == "sensor"
                && h["verdict"] == "valid"
                && h["body"]["notice"] == "timeout"
                && h["body"]["sensor_name"] == "e2e"
        })
    })
    .await;
    wait_until("the timeout mail", Duration::from_secs(30), || async {
        rx.mails().iter().any(|m| {
            m["subject"].as_str().unwrap().contains("e2e")
                && m["subject"].as_str().unwrap().contains("not reporting")
        })
    })
    .await;
    assert!(srv.store.get_sensor(id).await.unwrap().offline);
}

/// The console's test sends reach the same real receivers; a refusing receiver is a clear
/// `notification.failed`, and a template that does not compile is refused when saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_sends_reach_real_receivers() {
    use honeysens_http::client::ClientError;
    use honeysens_http::mgmt::notifications::TestTarget;
    let Some(rx) = Receivers::start("test-sends", SyslogTransport::Udp) else {
        return;
    };
    let srv = Srv::new("test-sends").await;
    let (admin, division) = srv.admin().await;
    let settings = rx.settings(
        admin.get_settings().await.unwrap().settings,
        SyslogFormat::Json,
    );
    // A template that does not compile is refused, naming the field.
    let mut broken = settings.clone();
    broken.templates.alert_subject = Some("{{ incident.source_ip ".into());
    match admin.put_settings(&broken).await {
        Err(ClientError::Api { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (422, "validation.failed"))
        }
        other => panic!("broken template accepted: {other:?}"),
    }
    admin.put_settings(&settings).await.unwrap();

    let contact = |target| ContactSpec {
        division_id: division,
        target,
        notify: NotifyOn::default(),
    };
    let webhook = admin
        .create_contact(&contact(ContactTarget::Webhook {
            url: format!("http://127.0.0.1:{}/hook", rx.hook_port),
            secret: Some(SECRET.into()),
        }))
        .await
        .unwrap();
    // The secret is write-only.
    assert_eq!(
        webhook.spec.target,
        ContactTarget::Webhook {
            url: format!("http://127.0.0.1:{}/hook", rx.hook_port),
            secret: None
        }
    );
    admin
        .test_notification(&TestTarget::Contact {
            contact_id: webhook.id,
        })
        .await
        .unwrap();
    let h = lines(&rx.hooks).pop().expect("test webhook");
    assert_eq!(
        (h["event"].as_str(), h["verdict"].as_str()),
        (Some("test"), Some("valid"))
    );
    assert_eq!(h["body"]["requested_by"], "admin");

    admin
        .test_notification(&TestTarget::Email {
            address: "admin@example.org".into(),
        })
        .await
        .unwrap();
    let mail = rx.mails().pop().expect("test mail");
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["admin@example.org"]));

    admin.test_notification(&TestTarget::Syslog).await.unwrap();
    let line = rx.syslog.events(1).pop().unwrap();
    assert_eq!(line["msgid"], "notify.test");
    let msg: Value = serde_json::from_str(line["msg"].as_str().unwrap()).unwrap();
    assert_eq!(msg["type_code"], "notify.test");

    // A receiver that refuses: 502 with a stable code, nothing about secrets.
    let refusing = admin
        .create_contact(&contact(ContactTarget::Webhook {
            url: format!("http://127.0.0.1:{}/status/500", rx.hook_port),
            secret: Some(SECRET.into()),
        }))
        .await
        .unwrap();
    match admin
        .test_notification(&TestTarget::Contact {
            contact_id: refusing.id,
        })
        .await
    {
        Err(ClientError::Api {
            status,
            code,
            message,
            ..
        }) => {
            assert_eq!((status, code.as_str()), (502, "notification.failed"));
            assert!(!message.contains(SECRET), "{message}");
        }
        other => panic!("refusal not reported: {other:?}"),
    }
}

/// The weekly summary and the CA expiry warning: scheduled once per period however often (and
/// on however many replicas) the scheduler runs, delivered to the real receivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weekly_summary_and_ca_warning_are_scheduled_once() {
    use honeysens_core::model::{IngestOptions, NewEvent};
    use honeysens_http::pipeline::heartbeat;
    let Some(rx) = Receivers::start("summary", SyslogTransport::Udp) else {
        return;
    };
    let srv = Srv::new("summary").await;
    let (admin, division) = srv.admin().await;
    let settings = rx.settings(
        admin.get_settings().await.unwrap().settings,
        SyslogFormat::Json,
    );
    admin.put_settings(&settings).await.unwrap();
    srv.store
        .create_user(
            &honeysens_core::model::UserSpec {
                name: "ops".into(),
                full_name: None,
                email: Some("ops@example.org".into()),
                role: honeysens_core::model::Role::Admin,
                divisions: vec![],
            },
            &honeysens_core::password::hash_password("x-long-password").unwrap(),
        )
        .await
        .unwrap();
    admin
        .create_contact(&ContactSpec {
            division_id: division,
            target: ContactTarget::Webhook {
                url: format!("http://127.0.0.1:{}/hook", rx.hook_port),
                secret: Some(SECRET.into()),
            },
            notify: NotifyOn {
                weekly_summary: true,
                ..NotifyOn::default()
            },
        })
        .await
        .unwrap();
    // Three events now: they fall into the week the next Monday's summary covers.
    let (sensor, _) = srv.enrol(&admin, division, "sum").await;
    let events: Vec<_> = (0..3)
        .map(|i| {
            let e: NewEvent = serde_json::from_value(serde_json::json!({
                "uid": uuid::Uuid::now_v7(), "sensor_id": sensor, "timestamp": honeysens_core::time::now(),
                "source_ip": format!("10.5.5.{i}"), "protocol": "tcp", "type_code": "conn.attempt",
                "classification": "connection_attempt", "severity": "low", "summary": "probe"
            }))
            .unwrap();
            (e, division, honeysens_core::model::EventStatus::New)
        })
        .collect();
    srv.store
        .ingest_events(&events, &IngestOptions::PLAIN)
        .await
        .unwrap();
    let state = srv.state.clone().unwrap();
    let next_week = honeysens_core::time::now() + chrono::Duration::days(7);
    for _ in 0..3 {
        heartbeat::schedule(&state, next_week).await.unwrap();
    }
    wait_until("the summary webhook", Duration::from_secs(30), || async {
        lines(&rx.hooks)
            .iter()
            .any(|h| h["event"] == "summary" && h["verdict"] == "valid")
    })
    .await;
    let summaries: Vec<Value> = lines(&rx.hooks)
        .into_iter()
        .filter(|h| h["event"] == "summary")
        .collect();
    // This run's week: one summary with the three events (the server's own scheduler sends
    // none for the week before its installation).
    let ours: Vec<&Value> = summaries
        .iter()
        .filter(|h| h["body"]["stats"]["total"] == 3)
        .collect();
    assert_eq!(ours.len(), 1, "{summaries:?}");

    // Five days before the CA expires: one warning mail to the admin with an address.
    let ca = honeysens_core::pki::inspect(state.ca.cert_der()).unwrap();
    let near_expiry = ca.not_after - chrono::Duration::days(5);
    for _ in 0..3 {
        heartbeat::schedule(&state, near_expiry).await.unwrap();
    }
    wait_until("the CA warning", Duration::from_secs(30), || async {
        rx.mails().iter().any(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .contains("CA certificate expires")
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let warnings: Vec<Value> = rx
        .mails()
        .into_iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .unwrap()
                .contains("CA certificate expires")
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(
        warnings[0]["rcpt_tos"],
        serde_json::json!(["ops@example.org"])
    );
    assert!(
        warnings[0]["subject"]
            .as_str()
            .unwrap()
            .contains("in 5 days")
    );
}

/// A storm of events from one source is one alert; a failing webhook is retried later with
/// backoff (5xx) or given up at once (4xx), each on its own job, without touching the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storm_is_one_alert_and_failed_deliveries_are_retried_on_their_own() {
    use honeysens_core::ids::JobId;
    use honeysens_core::model::{JobState, NewEvent};
    let Some(rx) = Receivers::start("storm", SyslogTransport::Udp) else {
        return;
    };
    let srv = Srv::new("storm").await;
    let (admin, division) = srv.admin().await;
    let settings = rx.settings(
        admin.get_settings().await.unwrap().settings,
        SyslogFormat::Json,
    );
    admin.put_settings(&settings).await.unwrap();
    let hook = |path: &str| ContactSpec {
        division_id: division,
        target: ContactTarget::Webhook {
            url: format!("http://127.0.0.1:{}{path}", rx.hook_port),
            secret: Some(SECRET.into()),
        },
        notify: NotifyOn {
            all_events: true,
            ..NotifyOn::default()
        },
    };
    admin.create_contact(&hook("/hook")).await.unwrap();
    let unavailable = admin.create_contact(&hook("/status/503")).await.unwrap();
    let refused = admin.create_contact(&hook("/status/401")).await.unwrap();
    let (sensor, _) = srv.enrol(&admin, division, "storm").await;
    let state = srv.state.clone().unwrap();
    // 200 events of one scanner in ten uploads.
    for _ in 0..10 {
        let batch: Vec<NewEvent> = (0..20)
            .map(|i| {
                serde_json::from_value(serde_json::json!({
                    "uid": uuid::Uuid::now_v7(), "sensor_id": sensor,
                    "timestamp": honeysens_core::time::now(), "source_ip": "10.77.0.1",
                    "dest_port": 1000 + i, "protocol": "tcp", "type_code": "conn.attempt",
                    "classification": "connection_attempt", "severity": "low",
                    "summary": "storm"
                }))
                .unwrap()
            })
            .collect();
        honeysens_http::pipeline::ingest(&state, division, batch)
            .await
            .unwrap();
    }
    wait_until("the alert", Duration::from_secs(20), || async {
        lines(&rx.hooks).iter().any(|h| h["path"] == "/hook")
    })
    .await;
    // Give a second alert every chance to show up: there must not be one.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hooks = lines(&rx.hooks);
    let count = |path: &str| hooks.iter().filter(|h| h["path"] == path).count();
    assert_eq!(count("/hook"), 1, "{hooks:?}");
    assert_eq!(count("/status/503"), 1);
    assert_eq!(count("/status/401"), 1);

    // The queue: 503 waits for its retry, 401 failed for good, the good one is done.
    let mut webhook_jobs = Vec::new();
    for id in 1..500 {
        match srv.store.get_job(JobId(id)).await {
            Ok(j) if j.kind == "notify.webhook" => webhook_jobs.push(j),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let of = |c: honeysens_core::ids::ContactId| {
        webhook_jobs
            .iter()
            .find(|j| j.payload["contact_id"] == c.0)
            .unwrap()
    };
    let retry = of(unavailable.id);
    assert_eq!((retry.state, retry.attempts), (JobState::Queued, 1));
    // The delivery id is the job's, so the retry will carry the same one.
    let sent = hooks.iter().find(|h| h["path"] == "/status/503").unwrap();
    assert_eq!(sent["delivery"], retry.payload["delivery"]);
    assert!(
        retry.last_error.as_deref().unwrap().contains("503"),
        "{retry:?}"
    );
    let wait = retry.run_at - honeysens_core::time::now();
    assert!(
        wait > chrono::Duration::seconds(5) && wait <= chrono::Duration::seconds(30),
        "backoff of the first retry is 15–30 s: {wait}"
    );
    let gone = of(refused.id);
    assert_eq!((gone.state, gone.attempts), (JobState::Failed, 1));
    assert!(
        gone.last_error.as_deref().unwrap().contains("401"),
        "{gone:?}"
    );
}
