//! `recon`: the catch-all honeypot.
//!
//! Two inputs feed one [`aggregate::Aggregator`]:
//! - packet capture ([`capture`], `AF_PACKET`, needs `CAP_NET_RAW` and the sensor's network
//!   namespace): TCP SYNs, UDP datagrams and ICMP echo requests addressed to the sensor. This
//!   is what sees SYN scans, whose handshakes the kernel answers without any `accept()`;
//! - a TCP listener on the catch-all port, where the agent redirects every unclaimed port with
//!   nftables: full connections complete a handshake, the original port comes from
//!   `SO_ORIGINAL_DST`, and the first bytes the attacker sends are recorded.
//!
//! Reports: `conn.attempt` (per source and port), `icmp.echo` (per source), and one
//! `scan.host` per scan with `port_count` and compact `ports` ranges.

pub mod aggregate;
pub mod capture;

use crate::event::{detail, detail_escaped, escape_bytes, new_event};
use crate::sink::EventSink;
use crate::{Error, Shutdown};
use aggregate::{Aggregator, Observation, Report, Thresholds, Transport, port_ranges};
use honeysens_core::model::Protocol;
use honeysens_core::protocol::IntakeEvent;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Most redirected connections held open at once waiting for their first bytes.
const MAX_READERS: usize = 1024;

/// Most payload bytes kept of a redirected connection.
const MAX_PAYLOAD: usize = 2048;

/// Configuration of the recon honeypot.
#[derive(Debug, Clone)]
pub struct ReconConfig {
    /// Service name put into events.
    pub service: String,
    /// The catch-all listener (the port the agent redirects unclaimed ports to); `None`: none.
    pub listen: Option<SocketAddr>,
    /// Capture packets (`AF_PACKET`); when the socket cannot be opened (no `CAP_NET_RAW`)
    /// recon logs it and keeps running on the listener alone.
    pub capture: bool,
    /// Capture on this interface only; `None`: every interface but loopback.
    pub interface: Option<String>,
    /// Aggregation thresholds.
    pub thresholds: Thresholds,
    /// TCP ports other honeypots serve and report: they count towards scans but yield no
    /// `conn.attempt` of their own.
    pub quiet_tcp_ports: Vec<u16>,
    /// How long a redirected connection is held open waiting for its first bytes.
    pub read_timeout: Duration,
}

impl Default for ReconConfig {
    fn default() -> Self {
        ReconConfig {
            service: "recon".into(),
            listen: None,
            capture: true,
            interface: None,
            thresholds: Thresholds::default(),
            quiet_tcp_ports: Vec::new(),
            read_timeout: Duration::from_secs(5),
        }
    }
}

/// Runs recon until `shutdown` is cancelled.
pub async fn run(config: ReconConfig, sink: EventSink, shutdown: Shutdown) -> Result<(), Error> {
    let (tx, mut rx) = mpsc::channel::<Observation>(65536);
    let listener = match config.listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| Error::Bind(addr, e))?,
        ),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut capture_thread = None;
    if config.capture {
        let interface = match &config.interface {
            Some(name) => Some(
                nix::net::if_::if_nametoindex(name.as_str())
                    .map_err(|e| Error::Config(format!("interface {name:?}: {e}")))?,
            ),
            None => None,
        };
        match capture::open() {
            Ok(fd) => {
                let (tx, stop) = (tx.clone(), stop.clone());
                capture_thread = Some(std::thread::spawn(move || {
                    capture::capture_loop(fd, interface, tx, stop)
                }));
                tracing::info!(interface = ?config.interface, "recon: capturing packets");
            }
            Err(e) => tracing::warn!(
                error = %e,
                "recon: no packet capture (needs CAP_NET_RAW); SYN scans stay unseen"
            ),
        }
    }
    if let Some(l) = listener {
        tracing::info!(addr = ?l.local_addr().ok(), "recon: catch-all listener");
        tokio::spawn(accept_loop(
            l,
            tx.clone(),
            config.read_timeout,
            shutdown.clone(),
        ));
    }
    drop(tx);

    let (ev_tx, ev_rx) = mpsc::channel::<IntakeEvent>(4096);
    let sender = tokio::spawn(send_loop(sink, ev_rx));
    let mut agg = Aggregator::new(config.thresholds);
    agg.set_quiet_ports(
        config
            .quiet_tcp_ports
            .iter()
            .map(|p| (Transport::Tcp, *p))
            .collect(),
    );
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            obs = rx.recv() => match obs {
                Some(o) => agg.observe(Instant::now(), o),
                None if shutdown.is_cancelled() => break,
                None => {
                    // Every input is gone: neither capture nor listener, or the capture failed.
                    return Err(Error::Config(if capture_thread.is_none() {
                        "recon has neither packet capture nor a listener".into()
                    } else {
                        "recon's packet capture stopped (see the log)".into()
                    }));
                }
            },
            _ = tick.tick() => {
                for r in agg.poll(Instant::now()) {
                    let ev = to_event(&config.service, r);
                    if ev_tx.try_send(ev).is_err() {
                        tracing::warn!("recon: event queue full; event dropped");
                    }
                }
            }
        }
    }
    // Report what is pending rather than lose it (a restart must not hide a scan).
    let far = Instant::now() + config.thresholds.max_window + config.thresholds.quiet;
    for r in agg.poll(far) {
        let _ = ev_tx.try_send(to_event(&config.service, r));
    }
    stop.store(true, Ordering::Relaxed);
    drop(ev_tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), sender).await;
    if let Some(t) = capture_thread {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    Ok(())
}

async fn send_loop(sink: EventSink, mut rx: mpsc::Receiver<IntakeEvent>) {
    while let Some(ev) = rx.recv().await {
        if let Err(e) = sink.send(ev).await {
            tracing::warn!(error = %e, "recon: event not delivered");
        }
    }
}

async fn accept_loop(
    l: TcpListener,
    tx: mpsc::Sender<Observation>,
    read_timeout: Duration,
    shutdown: Shutdown,
) {
    let readers = Arc::new(tokio::sync::Semaphore::new(MAX_READERS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = l.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let tx = tx.clone();
                // Under a connection flood, record connections without waiting for payloads.
                let permit = readers.clone().try_acquire_owned().ok();
                let wait = if permit.is_some() {
                    read_timeout
                } else {
                    Duration::ZERO
                };
                tokio::spawn(async move {
                    if let Some(obs) = handle_conn(stream, peer, wait).await {
                        let _ = tx.send(obs).await;
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "recon: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The port the attacker connected to before the agent's nftables redirect.
pub fn original_destination(stream: &TcpStream) -> Option<SocketAddr> {
    let local = stream.local_addr().ok()?;
    if local.is_ipv4() {
        nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::OriginalDst)
            .ok()
            .map(|sa| {
                SocketAddr::V4(SocketAddrV4::new(
                    u32::from_be(sa.sin_addr.s_addr).into(),
                    u16::from_be(sa.sin_port),
                ))
            })
    } else {
        let v6 =
            nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::Ip6tOriginalDst).ok();
        match v6 {
            Some(sa) => Some(SocketAddr::V6(SocketAddrV6::new(
                sa.sin6_addr.s6_addr.into(),
                u16::from_be(sa.sin6_port),
                0,
                0,
            ))),
            // A v4-mapped connection on a dual-stack socket carries the IPv4 conntrack entry.
            None => nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::OriginalDst)
                .ok()
                .map(|sa| {
                    SocketAddr::V4(SocketAddrV4::new(
                        u32::from_be(sa.sin_addr.s_addr).into(),
                        u16::from_be(sa.sin_port),
                    ))
                }),
        }
    }
}

async fn handle_conn(
    mut stream: TcpStream,
    peer: SocketAddr,
    read_timeout: Duration,
) -> Option<Observation> {
    let local = stream.local_addr().ok()?;
    let dst = original_destination(&stream).unwrap_or(local);
    let mut buf = vec![0u8; MAX_PAYLOAD];
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + read_timeout;
    // Read what arrives until the timeout, the peer closes, or the buffer is full.
    while n < buf.len() {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf[n..])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(k)) => n += k,
        }
    }
    buf.truncate(n);
    Some(Observation {
        wall: chrono::Utc::now(),
        transport: Transport::Tcp,
        src: crate::event::canonical(peer.ip()),
        src_port: peer.port(),
        dst: crate::event::canonical(dst.ip()),
        dst_port: dst.port(),
        connected: true,
        payload: (!buf.is_empty()).then_some(buf),
    })
}

fn transport_name(t: Transport) -> (&'static str, Protocol) {
    match t {
        Transport::Tcp => ("TCP", Protocol::Tcp),
        Transport::Udp => ("UDP", Protocol::Udp),
        Transport::IcmpEcho => ("ICMP", Protocol::Icmp),
    }
}

/// The event for one aggregator report.
pub fn to_event(service: &str, report: Report) -> IntakeEvent {
    match report {
        Report::Attempt {
            first,
            packets,
            connected,
            payload,
        } => {
            let (name, proto) = transport_name(first.transport);
            let what = if connected {
                "connection"
            } else {
                "connection attempt"
            };
            let mut ev = base(
                service,
                &first,
                proto,
                "conn.attempt",
                format!("{name} {what} to port {}", first.dst_port),
            );
            detail(&mut ev, false, "packets", packets);
            detail(
                &mut ev,
                false,
                "handshake",
                if connected { "yes" } else { "no" },
            );
            if let Some(p) = payload {
                detail_escaped(&mut ev, true, "payload", escape_bytes(&p));
            }
            ev
        }
        Report::Echo { first, packets } => {
            let mut ev = base(
                service,
                &first,
                Protocol::Icmp,
                "icmp.echo",
                format!("ICMP echo request ({packets} packets)"),
            );
            ev.source_port = None;
            ev.dest_port = None;
            detail(&mut ev, false, "packets", packets);
            ev
        }
        Report::Scan {
            first,
            tcp_ports,
            udp_ports,
            packets,
            duration,
        } => {
            let count = tcp_ports.len() + udp_ports.len();
            let proto = if tcp_ports.is_empty() {
                Protocol::Udp
            } else {
                Protocol::Tcp
            };
            let kinds = match (tcp_ports.is_empty(), udp_ports.is_empty()) {
                (false, false) => "TCP and UDP",
                (false, true) => "TCP",
                _ => "UDP",
            };
            let mut ev = base(
                service,
                &first,
                proto,
                "scan.host",
                format!("port scan of {count} {kinds} ports"),
            );
            ev.dest_port = None;
            detail(&mut ev, false, "port_count", count);
            if !tcp_ports.is_empty() {
                detail(&mut ev, false, "ports", port_ranges(&tcp_ports));
            }
            if !udp_ports.is_empty() {
                detail(&mut ev, false, "udp_ports", port_ranges(&udp_ports));
            }
            detail(&mut ev, false, "packets", packets);
            detail(&mut ev, false, "duration_s", duration.as_secs());
            ev
        }
    }
}

fn base(
    service: &str,
    first: &Observation,
    proto: Protocol,
    code: &str,
    summary: String,
) -> IntakeEvent {
    let mut ev = new_event(
        service,
        SocketAddr::new(first.src, first.src_port),
        SocketAddr::new(first.dst, first.dst_port),
        proto,
        code,
        summary,
    );
    ev.timestamp = Some(first.wall);
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_event_has_count_ranges_and_the_source() {
        let first = Observation {
            wall: chrono::Utc::now(),
            transport: Transport::Tcp,
            src: "10.0.0.9".parse().unwrap(),
            src_port: 5555,
            dst: "10.0.0.2".parse().unwrap(),
            dst_port: 1,
            connected: false,
            payload: None,
        };
        let ev = to_event(
            "recon",
            Report::Scan {
                first,
                tcp_ports: (1..=1024).chain([3389]).collect(),
                udp_ports: vec![],
                packets: 2000,
                duration: Duration::from_secs(3),
            },
        );
        assert_eq!(ev.type_code, "scan.host");
        assert_eq!(ev.service.as_deref(), Some("recon"));
        let lines: Vec<_> = ev.details.iter().map(|d| d.data.as_str()).collect();
        assert!(lines.contains(&"port_count: 1025"), "{lines:?}");
        assert!(lines.contains(&"ports: 1-1024,3389"), "{lines:?}");
        assert!(ev.classification.is_none() && ev.severity.is_none());
    }
}
