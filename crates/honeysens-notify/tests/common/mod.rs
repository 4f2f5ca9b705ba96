//! Shared helpers of the notify integration tests: finding the real receivers (skip locally,
//! fail under `CI=true`), running them as child processes, a throwaway CA, sample events.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use honeysens_core::ids::{DivisionId, EventId, IncidentId, SensorId};
use honeysens_core::model::{Classification, Event, EventData, EventStatus, Protocol, Severity};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether CI demands that nothing is skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn missing(what: &str) -> Option<PathBuf> {
    let why = format!("this test needs {what}; run scripts/notify-deps.sh");
    if in_ci() {
        panic!("{why}; CI=true makes a skip a failure");
    }
    eprintln!("skipping: {why}");
    None
}

/// Python of the test venv (`HONEYSENS_NOTIFY_VENV`, default `/work/venvs/notify`) with
/// aiosmtpd installed.
pub fn venv_python() -> Option<PathBuf> {
    let venv =
        std::env::var("HONEYSENS_NOTIFY_VENV").unwrap_or_else(|_| "/work/venvs/notify".into());
    let py = Path::new(&venv).join("bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(py)
    } else {
        missing(&format!("{} with aiosmtpd", py.display()))
    }
}

/// `rsyslogd` with the modules the syslog tests load (gtls for TLS, mmnormalize, mmpstrucdata).
pub fn rsyslogd() -> Option<PathBuf> {
    let found = Command::new("sh")
        .args(["-c", "command -v rsyslogd"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let gtls = Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists()
        || Command::new("dpkg")
            .args(["-s", "rsyslog-gnutls"])
            .output()
            .is_ok_and(|o| o.status.success());
    match found {
        Some(p) if gtls => Some(p),
        _ => missing("rsyslogd and rsyslog-gnutls (apt-get install rsyslog rsyslog-gnutls)"),
    }
}

/// A child process killed when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a receiver script that prints `READY <port>` and returns it with the port.
pub fn spawn_ready(mut cmd: Command) -> (Proc, u16) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let port = line
        .strip_prefix("READY ")
        .unwrap_or_else(|| panic!("receiver did not start: {line:?}"))
        .trim()
        .parse()
        .unwrap();
    (proc, port)
}

/// Path of a file under `tests/receivers`.
pub fn receiver(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/receivers")
        .join(name)
}

/// A fresh temporary directory, removed by the caller when it likes (left for inspection
/// otherwise).
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("honeysens-notify-{tag}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Polls `f` until it returns `Some`, up to `timeout`.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A throwaway CA and a `localhost` server certificate it signed.
pub struct TestPki {
    /// CA certificate, PEM.
    pub ca_pem: String,
    /// Server certificate for `localhost` and 127.0.0.1, PEM.
    pub cert_pem: String,
    /// Its key, PKCS#8 PEM.
    pub key_pem: String,
}

pub fn test_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "notify test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf_key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    TestPki {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: leaf_key.serialize_pem(),
    }
}

/// A stored event at `at` with the given summary and service.
pub fn event(id: i64, at: DateTime<Utc>, summary: &str, service: Option<&str>) -> Event {
    Event {
        id: EventId(id),
        division_id: DivisionId(3),
        received_at: at,
        status: EventStatus::New,
        comment: None,
        archived: false,
        incident_id: Some(IncidentId(9)),
        data: EventData {
            uid: uuid::Uuid::new_v4(),
            sensor_id: SensorId(7),
            service: service.map(str::to_owned),
            timestamp: at,
            source_ip: "198.51.100.23".parse().unwrap(),
            source_port: Some(51234),
            dest_ip: Some("192.0.2.5".parse().unwrap()),
            dest_port: Some(22),
            protocol: Protocol::Tcp,
            type_code: "ssh.login.failed".into(),
            classification: Classification::HoneypotInteraction,
            severity: Severity::High,
            summary: summary.into(),
        },
    }
}
