//! Shared helpers of the notify integration tests: finding the real receivers (skip locally,
//! fail under `CI=true`), running them as child processes, a throwaway CA, sample events.

#![allow(dead_code)]

use chrono::{DateTime, Utc};
use honeysens_core::ids::{DivisionId, EventId, IncidentId, SensorId};
use honeysens_core::model::SyslogTransport;
use honeysens_core::model::{Classification, Event, EventData, EventStatus, Protocol, Severity};
use serde_json::Value;
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
    // Also included by other crates' tests; every package sits two levels below the root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/honeysens-notify/tests/receivers")
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

/// Debian's rsyslogd in the foreground on a loopback port, writing what it parsed (RFC 5424
/// header, structured data, CEF and LEEF via liblognorm) as JSON lines.
pub struct Rsyslog {
    pub proc: Option<Proc>,
    pub dir: PathBuf,
    pub port: u16,
    pub conf: PathBuf,
    pub bin: PathBuf,
}

impl Rsyslog {
    pub fn start(bin: &Path, transport: SyslogTransport, pki: &TestPki) -> Rsyslog {
        let dir = temp_dir("rsyslog");
        let port = match transport {
            SyslogTransport::Udp => std::net::UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port(),
            _ => std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port(),
        };
        for (name, text) in [
            ("ca.pem", &pki.ca_pem),
            ("cert.pem", &pki.cert_pem),
            ("key.pem", &pki.key_pem),
        ] {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let d = dir.display();
        let rules = receiver("rsyslog");
        let r = rules.display();
        let input = match transport {
            SyslogTransport::Udp => format!(
                "module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"out\")"
            ),
            SyslogTransport::Tcp => format!(
                "module(load=\"imtcp\")\ninput(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"out\")"
            ),
            SyslogTransport::Tls => format!(
                "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=\"anon\")\n\
                 input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"out\")"
            ),
        };
        let conf = format!(
            r#"global(workDirectory="{d}" parser.escapeControlCharactersOnReceive="off" maxMessageSize="64k"
       defaultNetstreamDriverCAFile="{d}/ca.pem" defaultNetstreamDriverCertFile="{d}/cert.pem"
       defaultNetstreamDriverKeyFile="{d}/key.pem")
module(load="mmpstrucdata")
module(load="mmnormalize")
template(name="fields" type="list" option.jsonf="on") {{
  property(outname="pri" name="pri" format="jsonf")
  property(outname="version" name="protocol-version" format="jsonf")
  property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="sd" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="parsed" name="$!" format="jsonf")
}}
ruleset(name="out") {{
  action(type="mmpstrucdata" sd_name.lowercase="off")
  if $msg startswith "CEF:" then {{ action(type="mmnormalize" rulebase="{r}/cef.rb" path="$!cef") }}
  if $msg startswith "LEEF:" then {{ action(type="mmnormalize" rulebase="{r}/leef.rb" path="$!leef") }}
  action(type="omfile" file="{d}/out.jsonl" template="fields")
}}
{input}
"#
        );
        let conf_path = dir.join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut r = Rsyslog {
            proc: None,
            dir,
            port,
            conf: conf_path,
            bin: bin.to_owned(),
        };
        r.spawn();
        r
    }

    pub fn spawn(&mut self) {
        let child = Command::new(&self.bin)
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            // Its complaints (e.g. about the readiness probe's bare TCP connect) go to a file.
            .stderr(
                std::fs::File::options()
                    .create(true)
                    .append(true)
                    .open(self.dir.join("rsyslogd.log"))
                    .unwrap(),
            )
            .spawn()
            .unwrap();
        self.proc = Some(Proc(child));
        // Ready when a probe datagram/connection gets through: poll the output file.
        let probe = "<14>1 2026-01-01T00:00:00Z probe probe - probe - ready";
        let ok = wait_until(Duration::from_secs(15), || {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                let _ = s.send_to(probe.as_bytes(), ("127.0.0.1", self.port));
                std::thread::sleep(Duration::from_millis(100));
                return (!self.lines().is_empty()).then_some(());
            }
            Some(())
        });
        assert!(
            ok.is_some(),
            "rsyslogd did not come up; see {}",
            self.dir.display()
        );
    }

    pub fn kill(&mut self) {
        self.proc = None;
    }

    /// Output lines without readiness probes.
    pub fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("out.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect()
    }

    pub fn events(&self, n: usize) -> Vec<Value> {
        wait_until(Duration::from_secs(10), || {
            let v: Vec<Value> = self
                .lines()
                .into_iter()
                .filter(|l| l["msgid"] != "probe")
                .collect();
            (v.len() >= n).then_some(v)
        })
        .unwrap_or_else(|| {
            panic!(
                "rsyslog wrote fewer than {n} events; see {}",
                self.dir.display()
            )
        })
    }
}

/// `$!` comes as JSON text inside the JSON line.
pub fn parsed(line: &Value) -> Value {
    serde_json::from_str(line["parsed"].as_str().unwrap()).unwrap()
}

/// Key lookup that tolerates liblognorm 2.0.6 cutting the first character of the first
/// extension key (seen with hand-written CEF too: `src=` comes back as `rc`).
pub fn ext<'a>(exts: &'a Value, key: &str) -> &'a Value {
    if exts.get(key).is_some() {
        &exts[key]
    } else {
        &exts[&key[1..]]
    }
}
