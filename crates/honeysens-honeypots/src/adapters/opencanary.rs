//! OpenCanary's JSON log: one object per line with `logtype` (a number), `src_host`,
//! `src_port`, `dst_host`, `dst_port`, `utc_time` and the module's `logdata`.
//!
//! | `logtype` | OpenCanary meaning | type code |
//! |---|---|---|
//! | 1000–1006 | boot, messages, debug, errors, pings | skipped |
//! | 2000 | FTP login attempt | `ftp.login.failed` |
//! | 2001 | FTP `USER` (auth initiated) | skipped: the 2000 that follows has the credentials |
//! | 3000, 3002, 3003 | HTTP GET, other method, redirect | `http.request` |
//! | 3001, 7001 | HTTP login form, HTTP proxy authentication | `http.login` |
//! | 4000 | SSH new connection | skipped: 4001 follows with the client version |
//! | 4001 | SSH client version | `ssh.connect` |
//! | 4002 | SSH login attempt | `ssh.login.failed` |
//! | 5000 | SMB file open | `honeypot.interaction` |
//! | 5001 | one logged SYN (iptables LOG, rate-limited) | `conn.attempt`: one packet is no scan yet; the server groups them |
//! | 5002–5005 | nmap OS-detection, NULL, XMAS, FIN probe signatures | `scan.host` |
//! | 6001 / 6002 | Telnet login / connection | `telnet.login.failed` / `telnet.connect` |
//! | 8001 / 9003 | MySQL login / connection | `mysql.login.failed` / `conn.attempt` |
//! | 9001, 9002 | MSSQL login (SQL / Windows auth) | `mssql.login.failed` |
//! | 10001 | TFTP request | `tftp.request` |
//! | 11001 | NTP monlist | `ntp.request` |
//! | 12001 | VNC authentication | `vnc.login.failed` |
//! | 13001 | SNMP request | `snmp.request` |
//! | 14001 | RDP connection | `rdp.negotiate` |
//! | 15001 | SIP request | `sip.request` |
//! | 17001 | Redis command | `redis.login.failed` for `AUTH`, else `redis.command` |
//! | anything else with a source address (git, TCP banner, LLMNR, MongoDB, user modules) | | `honeypot.interaction` |
//!
//! Every `logdata` field becomes a detail line (`USERNAME` → `user`, `PASSWORD` → `password`,
//! `USERAGENT` → `user_agent`, other keys lowercased with `_` for spaces).

use super::{AdapterError, detail, escape, ip, port, summary};
use honeysens_core::model::{DetailKind, Protocol};
use honeysens_core::protocol::IntakeEvent;
use honeysens_core::time::Timestamp;
use serde_json::{Map, Value};

/// The `service` of translated events.
pub const SERVICE: &str = "opencanary";

/// Translates one OpenCanary JSON log line; `Ok(None)` for lines deliberately not mapped.
pub fn translate(line: &str) -> Result<Option<IntakeEvent>, AdapterError> {
    let v: Value = serde_json::from_str(line)?;
    let o = v.as_object().ok_or(AdapterError::Missing("logtype"))?;
    let logtype = o
        .get("logtype")
        .and_then(Value::as_i64)
        .ok_or(AdapterError::Missing("logtype"))?;
    let empty = Map::new();
    let data = o
        .get("logdata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let get = |k: &str| data.get(k).and_then(value_text).unwrap_or_default();
    let user = || escape(get("USERNAME").trim_end());
    let creds = || format!("{} / {}", user(), escape(get("PASSWORD").trim_end()));

    let (code, text): (&str, String) = match logtype {
        1000..=1006 | 2001 | 4000 => return Ok(None),
        2000 => ("ftp.login.failed", format!("FTP login failed: {}", creds())),
        3000 | 3002 | 3003 => {
            let method = match logtype {
                3000 => "GET".to_owned(),
                _ => data
                    .get("REQUEST_TYPE")
                    .and_then(value_text)
                    .unwrap_or_else(|| "request".into()),
            };
            (
                "http.request",
                format!("HTTP {} {}", escape(&method), escape(&get("PATH"))),
            )
        }
        3001 => ("http.login", format!("HTTP login: {}", creds())),
        7001 => ("http.login", format!("HTTP proxy login: {}", creds())),
        4001 => (
            "ssh.connect",
            format!(
                "SSH connection from client {}",
                escape(&get("REMOTEVERSION"))
            ),
        ),
        4002 => ("ssh.login.failed", format!("SSH login failed: {}", creds())),
        5000 => (
            "honeypot.interaction",
            format!("SMB file opened: {}", escape(&get("FILENAME"))),
        ),
        5001 => (
            "conn.attempt",
            format!("SYN to port {}", escape(&port_text(o))),
        ),
        5002..=5005 => ("scan.host", format!("port scan ({})", scan_kind(logtype))),
        6001 => (
            "telnet.login.failed",
            format!("Telnet login failed: {}", creds()),
        ),
        6002 => ("telnet.connect", "Telnet connection".into()),
        8001 => (
            "mysql.login.failed",
            format!("MySQL login failed: {}", user()),
        ),
        9003 => ("conn.attempt", "MySQL connection".into()),
        9001 | 9002 => (
            "mssql.login.failed",
            format!("MSSQL login failed: {}", user()),
        ),
        10001 => (
            "tftp.request",
            format!(
                "TFTP {} {}",
                escape(&get("OPCODE")),
                escape(&get("FILENAME"))
            ),
        ),
        11001 => (
            "ntp.request",
            format!("NTP {} request", escape(&get("NTP CMD"))),
        ),
        12001 => ("vnc.login.failed", "VNC authentication attempt".into()),
        13001 => (
            "snmp.request",
            format!(
                "SNMP request (community {})",
                escape(&get("COMMUNITY_STRING"))
            ),
        ),
        14001 => ("rdp.negotiate", "RDP connection request".into()),
        15001 => ("sip.request", "SIP request".into()),
        17001 if get("CMD").eq_ignore_ascii_case("auth") => (
            "redis.login.failed",
            "Redis AUTH attempt (password in the details)".into(),
        ),
        17001 => (
            "redis.command",
            format!(
                "Redis command: {} {}",
                escape(&get("CMD")),
                escape(&get("ARGS"))
            ),
        ),
        16001 => (
            "honeypot.interaction",
            format!("git clone of {}", escape(&get("REPO"))),
        ),
        other => ("honeypot.interaction", format!("OpenCanary event {other}")),
    };

    let src = o.get("src_host").and_then(Value::as_str).unwrap_or("");
    if src.is_empty() {
        // Only internal messages lack a source; an attack event without one is unusable.
        return Err(AdapterError::Missing("src_host"));
    }
    let ts = timestamp(o)?;
    let protocol = match logtype {
        10001 | 11001 | 13001 | 15001 | 19001 => Protocol::Udp,
        _ => Protocol::Tcp,
    };
    let mut ev = IntakeEvent::new(ip("src_host", src)?, protocol, code, summary(text));
    ev.service = Some(SERVICE.into());
    ev.timestamp = Some(ts);
    ev.source_port = port("src_port", o.get("src_port"))?;
    ev.dest_ip = match o.get("dst_host").and_then(Value::as_str) {
        Some(d) if !d.is_empty() => Some(ip("dst_host", d)?),
        _ => None,
    };
    ev.dest_port = port("dst_port", o.get("dst_port"))?;
    ev.details.push(detail(
        ts,
        DetailKind::Generic,
        "logtype",
        &logtype.to_string(),
    ));
    // The GET and login-form handlers do not log the method; the others log REQUEST_TYPE.
    if let 3000 | 3001 = logtype {
        let method = if logtype == 3000 { "GET" } else { "POST" };
        ev.details
            .push(detail(ts, DetailKind::Interaction, "method", method));
    }
    if (5001..=5005).contains(&logtype) {
        ev.details.push(detail(
            ts,
            DetailKind::Generic,
            "detector",
            "opencanary portscan",
        ));
    }
    let mut keys: Vec<&String> = data.keys().collect();
    // Credentials first, then the rest in a stable order.
    keys.sort_by_key(|k| (rank(k), k.to_ascii_lowercase()));
    for k in keys {
        let Some(val) = data.get(k.as_str()).and_then(value_text) else {
            continue;
        };
        let kind = if rank(k) < 3 {
            DetailKind::Interaction
        } else {
            DetailKind::Generic
        };
        ev.details.push(detail(
            ts,
            kind,
            &key_name(k),
            val.trim_end_matches(['\r', '\n']),
        ));
    }
    if let Some(node) = o.get("node_id").and_then(Value::as_str) {
        ev.details
            .push(detail(ts, DetailKind::Generic, "node_id", node));
    }
    Ok(Some(ev))
}

/// `dst_port` as text, whether OpenCanary wrote a number or a string.
fn port_text(o: &Map<String, Value>) -> String {
    o.get("dst_port").and_then(value_text).unwrap_or_default()
}

fn scan_kind(logtype: i64) -> &'static str {
    match logtype {
        5002 => "nmap OS detection",
        5003 => "nmap NULL",
        5004 => "nmap XMAS",
        _ => "nmap FIN",
    }
}

/// Sort rank of a `logdata` key: credentials and commands before descriptive fields.
fn rank(k: &str) -> u8 {
    match k {
        "USERNAME" => 0,
        "PASSWORD" => 1,
        "CMD" | "ARGS" | "PATH" | "FILENAME" | "REPO" => 2,
        _ => 3,
    }
}

/// OpenCanary's upper-case `logdata` keys as the conventional detail keys.
fn key_name(k: &str) -> String {
    match k {
        "USERNAME" => "user".into(),
        "USERAGENT" => "user_agent".into(),
        "REMOTEVERSION" => "client".into(),
        "LOCALVERSION" => "server_version".into(),
        "CMD" => "command".into(),
        "ARGS" => "args".into(),
        "REQUEST_TYPE" => "method".into(),
        other => other
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect(),
    }
}

/// A `logdata` value as text: strings as they are, `null` dropped, anything else as JSON.
fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `utc_time` is `YYYY-MM-DD HH:MM:SS.ffffff` in UTC, without a zone.
fn timestamp(o: &Map<String, Value>) -> Result<Timestamp, AdapterError> {
    let raw = o
        .get("utc_time")
        .and_then(Value::as_str)
        .ok_or(AdapterError::Missing("utc_time"))?;
    chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc())
        .map_err(|_| AdapterError::Invalid {
            field: "utc_time",
            value: raw.to_owned(),
        })
}
