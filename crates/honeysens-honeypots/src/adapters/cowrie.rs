//! cowrie's JSON log (`output_jsonlog`, one object per line with an `eventid`).
//!
//! | `eventid` | type code |
//! |---|---|
//! | `cowrie.session.connect` (telnet) | `telnet.connect` |
//! | `cowrie.client.version` | `ssh.connect` (`client:` detail); the SSH `session.connect` is folded into it |
//! | `cowrie.login.failed` | `ssh.login.failed` / `telnet.login.failed` by `protocol` |
//! | `cowrie.login.success` | `ssh.login.success` / `telnet.login.success` |
//! | `cowrie.command.input` | `ssh.command` / `telnet.command` (empty input skipped) |
//! | `cowrie.session.file_download`, `…file_download.failed` | `file.download` |
//! | `cowrie.session.file_upload` | `file.upload` |
//! | `cowrie.direct-tcpip.request` | `honeypot.interaction` (port-forwarding attempt) |
//!
//! Skipped (`Ok(None)`): `client.kex`, `client.fingerprint` (the `login.failed` that follows
//! carries the key), `client.size`, `client.var`, `session.params`, `command.failed`
//! (duplicates `command.input`), `log.closed`, `session.closed`, `telnet.option`, and event ids
//! this adapter does not know yet.

use super::{AdapterError, detail, escape, ip, port, summary};
use honeysens_core::model::{DetailKind, Protocol};
use honeysens_core::protocol::IntakeEvent;
use honeysens_core::time::Timestamp;
use serde_json::{Map, Value};

/// The `service` of translated events.
pub const SERVICE: &str = "cowrie";

/// Translates one cowrie JSON log line; `Ok(None)` for lines deliberately not mapped.
pub fn translate(line: &str) -> Result<Option<IntakeEvent>, AdapterError> {
    let v: Value = serde_json::from_str(line)?;
    let o = v.as_object().ok_or(AdapterError::Missing("eventid"))?;
    let id = str_field(o, "eventid")?;
    // `telnet` or `ssh`; cowrie writes it on every session line.
    let telnet = o.get("protocol").and_then(Value::as_str) == Some("telnet");
    let (proto, proto_name) = if telnet {
        ("telnet", "Telnet")
    } else {
        ("ssh", "SSH")
    };

    let (code, summary_text): (String, String) = match id {
        "cowrie.session.connect" if telnet => ("telnet.connect".into(), "Telnet connection".into()),
        "cowrie.client.version" => {
            let version = str_field(o, "version")?;
            (
                "ssh.connect".into(),
                format!("SSH connection from client {}", escape(version)),
            )
        }
        "cowrie.login.failed" | "cowrie.login.success" => {
            let ok = id.ends_with("success");
            let user = o.get("username").and_then(Value::as_str).unwrap_or("");
            let how = match (
                o.get("password").and_then(Value::as_str),
                o.get("fingerprint").and_then(Value::as_str),
            ) {
                (Some(pw), _) => format!("{} / {}", escape(user), escape(pw)),
                (None, Some(_)) => format!("{} with a public key", escape(user)),
                (None, None) => escape(user),
            };
            let verb = if ok { "succeeded" } else { "failed" };
            (
                format!("{proto}.login.{}", if ok { "success" } else { "failed" }),
                format!("{proto_name} login {verb}: {how}"),
            )
        }
        "cowrie.command.input" => {
            let input = str_field(o, "input")?;
            if input.trim().is_empty() {
                return Ok(None);
            }
            (
                format!("{proto}.command"),
                format!("{proto_name} command: {}", escape(input)),
            )
        }
        "cowrie.session.file_download" => {
            let url = o.get("url").and_then(Value::as_str).unwrap_or("");
            (
                "file.download".into(),
                format!("file downloaded: {}", escape(url)),
            )
        }
        "cowrie.session.file_download.failed" => {
            let url = o.get("url").and_then(Value::as_str).unwrap_or("");
            (
                "file.download".into(),
                format!("file download attempted (failed): {}", escape(url)),
            )
        }
        "cowrie.session.file_upload" => {
            let name = o.get("filename").and_then(Value::as_str).unwrap_or("");
            (
                "file.upload".into(),
                format!("file uploaded: {}", escape(name)),
            )
        }
        "cowrie.direct-tcpip.request" => {
            let to = format!(
                "{}:{}",
                o.get("dst_ip").and_then(Value::as_str).unwrap_or("?"),
                o.get("dst_port").map(Value::to_string).unwrap_or_default()
            );
            (
                "honeypot.interaction".into(),
                format!("SSH port forwarding request to {}", escape(&to)),
            )
        }
        _ => return Ok(None),
    };

    let ts = timestamp(o)?;
    let mut ev = IntakeEvent::new(
        ip("src_ip", str_field(o, "src_ip")?)?,
        Protocol::Tcp,
        code,
        summary(summary_text),
    );
    ev.service = Some(SERVICE.into());
    ev.timestamp = Some(ts);
    ev.source_port = port("src_port", o.get("src_port"))?;
    // A port-forwarding request names the forward target in dst_*; the sensor's own address
    // is not in that line.
    if id != "cowrie.direct-tcpip.request" {
        ev.dest_ip = match o.get("dst_ip").and_then(Value::as_str) {
            Some(d) => Some(ip("dst_ip", d)?),
            None => None,
        };
        ev.dest_port = port("dst_port", o.get("dst_port"))?;
    }
    let i = DetailKind::Interaction;
    let g = DetailKind::Generic;
    let mut add = |kind, key: &str, field: &str| {
        if let Some(val) = o.get(field) {
            let text = match val {
                Value::String(s) => s.clone(),
                Value::Null => return,
                other => other.to_string(),
            };
            ev.details.push(detail(ts, kind, key, &text));
        }
    };
    match id {
        "cowrie.client.version" => add(g, "client", "version"),
        "cowrie.login.failed" | "cowrie.login.success" => {
            add(i, "user", "username");
            add(i, "password", "password");
            add(i, "key", "fingerprint");
            add(g, "key_type", "type");
        }
        "cowrie.command.input" => add(i, "command", "input"),
        "cowrie.session.file_download" => {
            add(i, "url", "url");
            add(i, "sha256", "shasum");
            add(g, "outfile", "outfile");
        }
        "cowrie.session.file_download.failed" => {
            add(i, "url", "url");
            add(g, "error", "message");
        }
        "cowrie.session.file_upload" => {
            add(i, "filename", "filename");
            add(i, "sha256", "shasum");
            add(g, "outfile", "outfile");
        }
        "cowrie.direct-tcpip.request" => {
            add(i, "forward_ip", "dst_ip");
            add(i, "forward_port", "dst_port");
        }
        _ => {}
    }
    add(g, "session", "session");
    Ok(Some(ev))
}

fn str_field<'a>(o: &'a Map<String, Value>, field: &'static str) -> Result<&'a str, AdapterError> {
    o.get(field)
        .and_then(Value::as_str)
        .ok_or(AdapterError::Missing(field))
}

/// cowrie writes RFC 3339 UTC with microseconds (`2026-11-26T23:33:45.875444Z`).
fn timestamp(o: &Map<String, Value>) -> Result<Timestamp, AdapterError> {
    let raw = str_field(o, "timestamp")?;
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| AdapterError::Invalid {
            field: "timestamp",
            value: raw.to_owned(),
        })
}
