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
use std::path::Path;

const HOSTILE: &str = "pipe| eq= back\\slash quote\" bracket] nl\nend\tTab";
const HOSTILE_SERVICE: &str = "svc|=\\\"]x";

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
