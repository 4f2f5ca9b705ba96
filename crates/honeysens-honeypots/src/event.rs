//! Building [`IntakeEvent`]s the way every built-in honeypot reports them.

use honeysens_core::model::{DetailKind, EventDetail, Protocol};
use honeysens_core::protocol::IntakeEvent;
use std::net::{IpAddr, SocketAddr};

/// Delivers a honeypot's events to its sink in order, without making the protocol handlers
/// wait for the agent's acknowledgements (an unreachable agent must not stall attackers).
#[derive(Debug, Clone)]
pub struct Reporter {
    tx: tokio::sync::mpsc::Sender<IntakeEvent>,
}

impl Reporter {
    /// Starts the forwarding task.
    pub fn new(sink: crate::sink::EventSink) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<IntakeEvent>(4096);
        tokio::spawn(async move {
            while let Some(ev) = rx.recv().await {
                if let Err(e) = sink.send(ev).await {
                    tracing::warn!(error = %e, "event not delivered");
                }
            }
        });
        Reporter { tx }
    }

    /// Queues one event; drops it with a warning when the queue is full.
    pub fn report(&self, ev: IntakeEvent) {
        if self.tx.try_send(ev).is_err() {
            tracing::warn!("event queue full; event dropped");
        }
    }
}

/// Starts an event of `service` from `peer` to `local` (addresses as the attacker used them).
pub fn new_event(
    service: &str,
    peer: SocketAddr,
    local: SocketAddr,
    protocol: Protocol,
    type_code: &str,
    summary: impl Into<String>,
) -> IntakeEvent {
    let mut ev = IntakeEvent::new(canonical(peer.ip()), protocol, type_code, summary);
    ev.service = Some(service.to_owned());
    ev.source_port = Some(peer.port()).filter(|p| *p != 0);
    ev.dest_ip = Some(canonical(local.ip()));
    ev.dest_port = Some(local.port());
    ev
}

/// Appends a `key: value` detail line; `interaction` marks what the attacker sent.
pub fn detail(ev: &mut IntakeEvent, interaction: bool, key: &str, value: impl std::fmt::Display) {
    ev.details.push(EventDetail {
        timestamp: chrono::Utc::now(),
        kind: if interaction {
            DetailKind::Interaction
        } else {
            DetailKind::Generic
        },
        data: format!("{key}: {}", one_line(&value.to_string())),
    });
}

/// Appends a detail line whose value is already escaped to one line (see [`escape_bytes`]).
pub fn detail_escaped(ev: &mut IntakeEvent, interaction: bool, key: &str, escaped: String) {
    ev.details.push(EventDetail {
        timestamp: chrono::Utc::now(),
        kind: if interaction {
            DetailKind::Interaction
        } else {
            DetailKind::Generic
        },
        data: format!("{key}: {escaped}"),
    });
}

/// An IPv4-mapped IPv6 address (dual-stack listener) as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// Attacker-controlled text made safe for one detail line: control characters escaped, so a
/// value can neither forge further lines nor hide bytes.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Raw bytes as one readable line: printable ASCII kept, the rest escaped.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for &c in b {
        match c {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(c as char),
            _ => out.push_str(&format!("\\x{c:02x}")),
        }
    }
    out
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_characters() {
        assert_eq!(one_line("a\nb\x07"), "a\\nb\\x07");
        assert_eq!(escape_bytes(b"GET /\r\n\xff"), "GET /\\r\\n\\xff");
        assert_eq!(truncate("äbc", 1), "");
        assert_eq!(
            canonical("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
