//! Syslog forwarding into a real rsyslogd (Debian's, run unprivileged in the foreground on
//! loopback ports). rsyslog parses the RFC 5424 header itself, mmpstrucdata parses the
//! structured data, and mmnormalize (liblognorm) parses CEF and the LEEF header; a template
//! writes all of it as JSON lines that these tests assert on. Hostile characters in summary and
//! service prove the escaping. Skips without rsyslog, fails under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use chrono::{TimeZone, Utc};
use common::*;
use honeysens_core::model::{Event, SyslogFormat, SyslogSettings, SyslogTransport};
use honeysens_notify::{SyslogForwarder, format_syslog};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const HOSTILE: &str = "pipe| eq= back\\slash quote\" bracket] nl\nend\tTab";
const HOSTILE_SERVICE: &str = "svc|=\\\"]x";

struct Rsyslog {
    proc: Option<Proc>,
    dir: PathBuf,
    port: u16,
    conf: PathBuf,
    bin: PathBuf,
}

impl Rsyslog {
    fn start(bin: &Path, transport: SyslogTransport, pki: &TestPki) -> Rsyslog {
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

    fn spawn(&mut self) {
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

    fn kill(&mut self) {
        self.proc = None;
    }

    /// Output lines without readiness probes.
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("out.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect()
    }

    fn events(&self, n: usize) -> Vec<Value> {
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

fn settings(
    port: u16,
    transport: SyslogTransport,
    format: SyslogFormat,
    ca: Option<&str>,
) -> SyslogSettings {
    SyslogSettings {
        enabled: true,
        host: if transport == SyslogTransport::Tls {
            "localhost".into()
        } else {
            "127.0.0.1".into()
        },
        port,
        transport,
        format,
        ca_pem: ca.map(str::to_owned),
        facility: 10,
    }
}

fn events() -> Vec<Event> {
    let at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap()
        + chrono::Duration::microseconds(123_456);
    vec![
        event(101, at, HOSTILE, Some(HOSTILE_SERVICE)),
        event(102, at, "plain summary", None),
    ]
}

/// `$!` comes as JSON text inside the JSON line.
fn parsed(line: &Value) -> Value {
    serde_json::from_str(line["parsed"].as_str().unwrap()).unwrap()
}

fn check_header(line: &Value, e: &Event) {
    // facility 10 (authpriv) * 8 + severity 3 (error, for High).
    assert_eq!(line["pri"], "83");
    assert_eq!(line["version"], "1");
    assert_eq!(line["timestamp"], "2026-03-04T05:06:07.123456Z");
    assert_eq!(line["hostname"], "honeysens.test");
    assert_eq!(line["app"], "honeysens");
    assert_eq!(line["procid"], "-");
    assert_eq!(line["msgid"], "ssh.login.failed");
    let sd = &parsed(line)["rfc5424-sd"]["honeysens@32473"];
    assert_eq!(sd["summary"], e.data.summary.as_str(), "SD summary");
    assert_eq!(
        sd["service"],
        e.data.service.as_deref().unwrap_or(""),
        "SD service"
    );
    assert_eq!(sd["eventId"], e.id.to_string());
    assert_eq!(sd["uid"], e.data.uid.to_string());
    assert_eq!(sd["src"], "198.51.100.23");
}

async fn forward(
    bin: &Path,
    transport: SyslogTransport,
    format: SyslogFormat,
) -> (Rsyslog, Vec<Event>, Vec<Value>) {
    let pki = test_pki();
    let rs = Rsyslog::start(bin, transport, &pki);
    let ca = (transport == SyslogTransport::Tls).then_some(pki.ca_pem.as_str());
    let mut fwd =
        SyslogForwarder::connect(&settings(rs.port, transport, format, ca), "honeysens.test")
            .await
            .unwrap();
    let evs = events();
    fwd.send_events(&evs).await.unwrap();
    fwd.close().await.unwrap();
    let lines = rs.events(evs.len());
    (rs, evs, lines)
}

#[tokio::test]
async fn udp_json() {
    let Some(bin) = rsyslogd() else { return };
    let (_rs, evs, lines) = forward(&bin, SyslogTransport::Udp, SyslogFormat::Json).await;
    for (line, e) in lines.iter().zip(&evs) {
        check_header(line, e);
        let msg: Value = serde_json::from_str(line["msg"].as_str().unwrap()).unwrap();
        assert_eq!(msg, serde_json::to_value(e).unwrap());
    }
}

/// Key lookup that tolerates liblognorm 2.0.6 cutting the first character of the first
/// extension key (seen with hand-written CEF too: `src=` comes back as `rc`).
fn ext<'a>(exts: &'a Value, key: &str) -> &'a Value {
    if exts.get(key).is_some() {
        &exts[key]
    } else {
        &exts[&key[1..]]
    }
}

#[tokio::test]
async fn tcp_cef() {
    let Some(bin) = rsyslogd() else { return };
    let (_rs, evs, lines) = forward(&bin, SyslogTransport::Tcp, SyslogFormat::Cef).await;
    for (line, e) in lines.iter().zip(&evs) {
        check_header(line, e);
        let p = parsed(line);
        let cef = &p["cef"]["cef"];
        assert!(cef.is_object(), "liblognorm did not parse the CEF: {line}");
        assert_eq!(cef["DeviceVendor"], "HoneySens");
        assert_eq!(cef["DeviceVersion"], honeysens_notify::VERSION);
        assert_eq!(cef["SignatureID"], "ssh.login.failed");
        // Line breaks are not allowed in CEF headers; they become spaces there.
        assert_eq!(cef["Name"], e.data.summary.replace('\n', " ").as_str());
        assert_eq!(cef["Severity"], "8");
        let x = &cef["Extensions"];
        assert_eq!(
            ext(x, "rt"),
            &e.data.timestamp.timestamp_millis().to_string()
        );
        assert_eq!(ext(x, "src"), "198.51.100.23");
        assert_eq!(ext(x, "spt"), "51234");
        assert_eq!(ext(x, "dst"), "192.0.2.5");
        assert_eq!(ext(x, "dpt"), "22");
        assert_eq!(ext(x, "proto"), "TCP");
        assert_eq!(ext(x, "cat"), "honeypot_interaction");
        assert_eq!(ext(x, "cs1"), "7");
        assert_eq!(ext(x, "cs2"), e.data.service.as_deref().unwrap_or(""));
        assert_eq!(ext(x, "msg"), e.data.summary.as_str());
    }
}

/// Splits LEEF attributes on the declared tab delimiter and undoes our escaping.
fn leef_attrs(attrs: &str) -> std::collections::HashMap<String, String> {
    attrs
        .split('\t')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            let mut out = String::new();
            let mut chars = v.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('t') => out.push('\t'),
                        Some('n') => out.push('\n'),
                        Some('r') => out.push('\r'),
                        Some(o) => out.push(o),
                        None => panic!("dangling escape in {v:?}"),
                    }
                } else {
                    out.push(c);
                }
            }
            (k.to_owned(), out)
        })
        .collect()
}

#[tokio::test]
async fn tls_leef() {
    let Some(bin) = rsyslogd() else { return };
    let (_rs, evs, lines) = forward(&bin, SyslogTransport::Tls, SyslogFormat::Leef).await;
    for (line, e) in lines.iter().zip(&evs) {
        check_header(line, e);
        let p = parsed(line);
        let leef = &p["leef"];
        assert_eq!(leef["vendor"], "HoneySens", "{line}");
        assert_eq!(leef["version"], honeysens_notify::VERSION);
        assert_eq!(leef["eventid"], "ssh.login.failed");
        let attrs = leef_attrs(leef["attrs"].as_str().unwrap());
        assert_eq!(attrs["summary"], e.data.summary);
        assert_eq!(attrs["service"], e.data.service.clone().unwrap_or_default());
        assert_eq!(attrs["src"], "198.51.100.23");
        assert_eq!(attrs["srcPort"], "51234");
        assert_eq!(attrs["dstPort"], "22");
        assert_eq!(attrs["sev"], "8");
        assert_eq!(attrs["cat"], "honeypot_interaction");
        assert_eq!(attrs["devTime"], "2026-03-04T05:06:07.123Z");
    }
}

#[tokio::test]
async fn tls_with_unknown_ca_is_refused() {
    let Some(bin) = rsyslogd() else { return };
    let rs = Rsyslog::start(&bin, SyslogTransport::Tls, &test_pki());
    let other = test_pki();
    let err = SyslogForwarder::connect(
        &settings(
            rs.port,
            SyslogTransport::Tls,
            SyslogFormat::Json,
            Some(&other.ca_pem),
        ),
        "honeysens.test",
    )
    .await
    .unwrap_err();
    assert!(!err.is_retryable(), "{err:?}");
}

#[tokio::test]
async fn tcp_reconnects_after_collector_restart() {
    let Some(bin) = rsyslogd() else { return };
    let mut rs = Rsyslog::start(&bin, SyslogTransport::Tcp, &test_pki());
    let mut fwd = SyslogForwarder::connect(
        &settings(rs.port, SyslogTransport::Tcp, SyslogFormat::Json, None),
        "honeysens.test",
    )
    .await
    .unwrap();
    let evs = events();
    fwd.send_events(&evs[..1]).await.unwrap();
    rs.events(1);
    rs.kill();
    rs.spawn();
    fwd.send_events(&evs[1..]).await.unwrap();
    fwd.close().await.unwrap();
    let lines = rs.events(2);
    let ids: Vec<Value> = lines
        .iter()
        .map(|l| parsed(l)["rfc5424-sd"]["honeysens@32473"]["eventId"].clone())
        .collect();
    assert_eq!(ids, [Value::from("101"), Value::from("102")]);
}

#[test]
fn format_is_one_rfc5424_line() {
    for format in [SyslogFormat::Json, SyslogFormat::Cef, SyslogFormat::Leef] {
        let line = format_syslog(&events()[0], format, 23, "bad host\u{e9}");
        assert!(line.starts_with("<187>1 2026-03-04T05:06:07.123456Z badhost honeysens - ssh.login.failed [honeysens@32473 "), "{line}");
        // Only the SD carries the summary's raw line break (RFC 5424 allows it in a
        // PARAM-VALUE); every MSG format escapes it.
        assert_eq!(line.matches('\n').count(), 1, "{format:?}: {line}");
    }
}
