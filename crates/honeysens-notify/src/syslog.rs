//! SIEM output: one RFC 5424 syslog message per event, over UDP (RFC 5426) or octet-counted
//! TCP/TLS (RFC 6587 / RFC 5425), with the event as JSON, CEF or LEEF 2.0 in MSG.

use crate::error::DeliveryError;
use honeysens_core::model::{Event, Severity, SyslogFormat, SyslogSettings, SyslogTransport};
use rustls_pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

/// Private enterprise number in the SD-ID `honeysens@<PEN>`. HoneySens has none registered;
/// 32473 is the number IANA reserves for documentation (RFC 5612), so it collides with no
/// real vendor.
pub const SYSLOG_PEN: u32 = 32473;

/// How long connecting (and the TLS handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long writing one message may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Syslog severity (RFC 5424 table 2) of an event severity.
fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
        Severity::Info => 6,
    }
}

/// CEF and LEEF severity (0–10) of an event severity.
fn siem_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 10,
        Severity::High => 8,
        Severity::Medium => 5,
        Severity::Low => 3,
        Severity::Info => 1,
    }
}

/// A header field of RFC 5424: printable US-ASCII only, at most `max` characters, `-` if empty.
fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if v.is_empty() { "-".into() } else { v }
}

/// SD-PARAM value escaping (RFC 5424 §6.3.3): `"`, `\` and `]` get a backslash.
fn sd_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// CEF header field: `\` and `|` escaped; line breaks are not allowed there and become spaces.
fn cef_header(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// CEF extension value: `\`, `=` escaped, CR/LF as `\r`/`\n`.
fn cef_ext(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// LEEF header field: `|` is the field separator and `\` the escape, line breaks become spaces.
fn leef_header(s: &str) -> String {
    cef_header(s)
}

/// LEEF attribute value: the tab delimiter and line breaks as `\t`, `\r`, `\n`, `\` doubled.
fn leef_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn proto_name(e: &Event) -> String {
    e.data.protocol.as_str().to_ascii_uppercase()
}

fn cef(e: &Event) -> String {
    let d = &e.data;
    let mut ext: Vec<(&str, String)> = vec![
        ("rt", d.timestamp.timestamp_millis().to_string()),
        ("externalId", e.id.to_string()),
        ("src", d.source_ip.to_string()),
    ];
    if let Some(p) = d.source_port {
        ext.push(("spt", p.to_string()));
    }
    if let Some(ip) = d.dest_ip {
        ext.push(("dst", ip.to_string()));
    }
    if let Some(p) = d.dest_port {
        ext.push(("dpt", p.to_string()));
    }
    ext.extend([
        ("proto", proto_name(e)),
        ("cat", d.classification.as_str().to_owned()),
        ("cs1Label", "sensor".to_owned()),
        ("cs1", d.sensor_id.to_string()),
        ("cs2Label", "service".to_owned()),
        ("cs2", opt(d.service.as_deref())),
        ("cs3Label", "uid".to_owned()),
        ("cs3", d.uid.to_string()),
        ("msg", d.summary.clone()),
    ]);
    let ext: Vec<String> = ext
        .into_iter()
        .map(|(k, v)| format!("{k}={}", cef_ext(&v)))
        .collect();
    format!(
        "CEF:0|HoneySens|HoneySens|{}|{}|{}|{}|{}",
        cef_header(crate::VERSION),
        cef_header(&d.type_code),
        cef_header(&d.summary),
        siem_severity(d.severity),
        ext.join(" ")
    )
}

fn leef(e: &Event) -> String {
    let d = &e.data;
    let mut attrs: Vec<(&str, String)> = vec![
        (
            "devTime",
            d.timestamp.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        ),
        ("devTimeFormat", "yyyy-MM-dd'T'HH:mm:ss.SSSX".to_owned()),
        ("externalId", e.id.to_string()),
        ("src", d.source_ip.to_string()),
    ];
    if let Some(p) = d.source_port {
        attrs.push(("srcPort", p.to_string()));
    }
    if let Some(ip) = d.dest_ip {
        attrs.push(("dst", ip.to_string()));
    }
    if let Some(p) = d.dest_port {
        attrs.push(("dstPort", p.to_string()));
    }
    attrs.extend([
        ("proto", proto_name(e)),
        ("sev", siem_severity(d.severity).to_string()),
        ("cat", d.classification.as_str().to_owned()),
        ("sensor", d.sensor_id.to_string()),
        ("service", opt(d.service.as_deref())),
        ("uid", d.uid.to_string()),
        ("summary", d.summary.clone()),
    ]);
    let attrs: Vec<String> = attrs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", leef_value(&v)))
        .collect();
    // LEEF 2.0 header: the 6th field names the attribute delimiter, here tab as `x09`.
    format!(
        "LEEF:2.0|HoneySens|HoneySens|{}|{}|x09|{}",
        leef_header(crate::VERSION),
        leef_header(&d.type_code),
        attrs.join("\t")
    )
}

/// One RFC 5424 line (without trailing newline or framing) for `event`:
/// `<PRI>1 TIMESTAMP HOST honeysens - MSGID [honeysens@32473 …] MSG`. MSGID is the event type
/// code; MSG is the event as `format`, never containing a raw line break.
pub fn format_syslog(event: &Event, format: SyslogFormat, facility: u8, hostname: &str) -> String {
    let d = &event.data;
    let pri = u16::from(facility.min(23)) * 8 + u16::from(syslog_severity(d.severity));
    let ts = d.timestamp.format("%Y-%m-%dT%H:%M:%S%.6fZ");
    let mut sd = format!("[honeysens@{SYSLOG_PEN}");
    let params: [(&str, String); 9] = [
        ("eventId", event.id.to_string()),
        ("uid", d.uid.to_string()),
        ("sensor", d.sensor_id.to_string()),
        ("service", opt(d.service.as_deref())),
        ("src", d.source_ip.to_string()),
        ("dstPort", opt(d.dest_port)),
        ("classification", d.classification.as_str().to_owned()),
        ("severity", d.severity.as_str().to_owned()),
        ("summary", d.summary.clone()),
    ];
    for (k, v) in params {
        sd.push_str(&format!(" {k}=\"{}\"", sd_escape(&v)));
    }
    sd.push(']');
    let msg = match format {
        // serde_json escapes control characters, so the JSON stays on one line.
        SyslogFormat::Json => serde_json::to_string(event).unwrap_or_default(),
        SyslogFormat::Cef => cef(event),
        SyslogFormat::Leef => leef(event),
    };
    format!(
        "<{pri}>1 {ts} {} honeysens - {} {sd} {msg}",
        header_field(hostname, 255),
        header_field(&d.type_code, 32),
    )
}

enum Conn {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    /// Whether the collector has closed or reset the connection. A write into such a socket
    /// still "succeeds" once and the message is lost, so this is checked before each write:
    /// a non-blocking peek that sees end-of-file or an error means broken. (Data waiting, which
    /// collectors do not send, counts as alive.)
    fn is_broken(&self) -> bool {
        let tcp = match self {
            Conn::Udp(_) => return false,
            Conn::Tcp(t) => t,
            Conn::Tls(t) => t.get_ref().0,
        };
        // The socket is non-blocking (tokio set it so): "would block" means alive and idle.
        let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match socket2::SockRef::from(tcp).peek(&mut buf) {
            Ok(n) => n == 0,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        }
    }
}

/// A connection to the SIEM's syslog collector.
pub struct SyslogForwarder {
    settings: SyslogSettings,
    hostname: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    conn: Option<Conn>,
}

impl std::fmt::Debug for SyslogForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyslogForwarder")
            .field("host", &self.settings.host)
            .field("port", &self.settings.port)
            .field("transport", &self.settings.transport)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

fn io_err(what: &str, e: std::io::Error) -> DeliveryError {
    DeliveryError::Connect(format!("{what}: {e}"))
}

impl SyslogForwarder {
    /// Connects to the collector of `s`; `hostname` is this server's name in the HOSTNAME field.
    /// TLS trusts `s.ca_pem` when set, else the public roots.
    pub async fn connect(s: &SyslogSettings, hostname: &str) -> Result<Self, DeliveryError> {
        let tls = if s.transport == SyslogTransport::Tls {
            let config = crate::tls::client_config(None, s.ca_pem.as_deref())
                .map_err(|e| DeliveryError::Tls(e.to_string()))?;
            let name = ServerName::try_from(s.host.clone())
                .map_err(|e| DeliveryError::Address(format!("{:?}: {e}", s.host)))?;
            Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
        } else {
            None
        };
        let mut f = SyslogForwarder {
            settings: s.clone(),
            hostname: hostname.to_owned(),
            tls,
            conn: None,
        };
        f.conn = Some(f.open().await?);
        Ok(f)
    }

    async fn open(&self) -> Result<Conn, DeliveryError> {
        let addr = (self.settings.host.as_str(), self.settings.port);
        let connect = async {
            match self.settings.transport {
                SyslogTransport::Udp => {
                    let target = tokio::net::lookup_host(addr)
                        .await
                        .map_err(|e| {
                            DeliveryError::Address(format!("{}: {e}", self.settings.host))
                        })?
                        .next()
                        .ok_or_else(|| DeliveryError::Address(self.settings.host.clone()))?;
                    let local: std::net::SocketAddr = if target.is_ipv4() {
                        ([0, 0, 0, 0], 0).into()
                    } else {
                        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
                    };
                    let sock = UdpSocket::bind(local)
                        .await
                        .map_err(|e| io_err("bind", e))?;
                    sock.connect(target)
                        .await
                        .map_err(|e| io_err("connect", e))?;
                    Ok(Conn::Udp(sock))
                }
                SyslogTransport::Tcp => {
                    let tcp = TcpStream::connect(addr)
                        .await
                        .map_err(|e| io_err("connect", e))?;
                    Ok(Conn::Tcp(tcp))
                }
                SyslogTransport::Tls => {
                    let tcp = TcpStream::connect(addr)
                        .await
                        .map_err(|e| io_err("connect", e))?;
                    let Some((connector, name)) = &self.tls else {
                        return Err(DeliveryError::Tls("no TLS configuration".into()));
                    };
                    let tls = connector
                        .connect(name.clone(), tcp)
                        .await
                        .map_err(|e| DeliveryError::Tls(e.to_string()))?;
                    Ok(Conn::Tls(Box::new(tls)))
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| DeliveryError::Timeout(format!("connecting to {}", self.settings.host)))?
    }

    async fn write(conn: &mut Conn, line: &str) -> Result<(), DeliveryError> {
        let w = async {
            match conn {
                Conn::Udp(sock) => sock.send(line.as_bytes()).await.map(|_| ()),
                // RFC 6587 octet counting: "<length> <message>", no trailer.
                Conn::Tcp(s) => {
                    s.write_all(format!("{} {line}", line.len()).as_bytes())
                        .await
                }
                Conn::Tls(s) => {
                    s.write_all(format!("{} {line}", line.len()).as_bytes())
                        .await?;
                    s.flush().await
                }
            }
        };
        tokio::time::timeout(WRITE_TIMEOUT, w)
            .await
            .map_err(|_| DeliveryError::Timeout("writing to the collector".into()))?
            .map_err(|e| io_err("write", e))
    }

    /// Sends one message per event. A broken connection is reopened once per message; if that
    /// fails too, the error is returned and the caller retries the batch later (collectors
    /// must tolerate duplicates, the `uid` SD-PARAM identifies them).
    pub async fn send_events(&mut self, events: &[Event]) -> Result<(), DeliveryError> {
        for event in events {
            let line = format_syslog(
                event,
                self.settings.format,
                self.settings.facility,
                &self.hostname,
            );
            let first = match self.conn.as_mut() {
                Some(conn) if !conn.is_broken() => Self::write(conn, &line).await,
                _ => Err(DeliveryError::Connect("not connected".into())),
            };
            if first.is_err() {
                self.conn = None;
                let mut conn = self.open().await?;
                Self::write(&mut conn, &line).await?;
                self.conn = Some(conn);
            }
        }
        Ok(())
    }

    /// Closes the connection cleanly (TLS close_notify), so the collector keeps the last frame.
    pub async fn close(mut self) -> Result<(), DeliveryError> {
        match self.conn.take() {
            Some(Conn::Tcp(mut s)) => s.shutdown().await.map_err(|e| io_err("shutdown", e))?,
            Some(Conn::Tls(mut s)) => s.shutdown().await.map_err(|e| io_err("shutdown", e))?,
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_rules() {
        assert_eq!(sd_escape(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(cef_header("a|b\\c\nd"), "a\\|b\\\\c d");
        assert_eq!(cef_ext("a=b\\c\r\nd|e"), "a\\=b\\\\c\\r\\nd|e");
        assert_eq!(leef_value("a\tb\nc\\"), "a\\tb\\nc\\\\");
        assert_eq!(header_field("ho st\u{e9}", 255), "host");
        assert_eq!(header_field("", 255), "-");
        assert_eq!(header_field(&"x".repeat(40), 32).len(), 32);
    }
}
