//! The recon aggregator: a pure state machine that turns observed packets and connections into
//! few, meaningful reports.
//!
//! Fed `(instant, observation)` pairs and polled with the current instant, it never touches a
//! socket or a clock itself, so its rules are unit-tested exactly:
//! - everything from one source is collected until that source has been quiet for
//!   [`Thresholds::quiet`] (or its first packet is [`Thresholds::max_window`] old);
//! - a source that touched at least [`Thresholds::scan_ports`] distinct ports then yields ONE
//!   [`Report::Scan`] with every port, and is muted for [`Thresholds::mute`]: whatever it sends
//!   meanwhile (including full connections) is absorbed, so a scan never turns into a flood;
//! - otherwise each touched port yields one [`Report::Attempt`] and each pinged address one
//!   [`Report::Echo`], with packet counts.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use honeysens_core::time::Timestamp;

/// Transport of one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// A TCP SYN or a completed TCP connection.
    Tcp,
    /// A UDP datagram.
    Udp,
    /// An ICMP / ICMPv6 echo request.
    IcmpEcho,
}

/// One thing the sensor saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// Wall-clock time, reported as the event's timestamp when it is the first of its report.
    pub wall: Timestamp,
    /// What arrived.
    pub transport: Transport,
    /// Attacker address.
    pub src: IpAddr,
    /// Attacker port (0 for ICMP).
    pub src_port: u16,
    /// Sensor address attacked.
    pub dst: IpAddr,
    /// Sensor port attacked (0 for ICMP).
    pub dst_port: u16,
    /// Whether this is a completed TCP handshake (catch-all listener) rather than a packet.
    pub connected: bool,
    /// The first bytes the attacker sent over a completed connection.
    pub payload: Option<Vec<u8>>,
}

/// The aggregation thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Distinct ports (TCP and UDP) from one source that make a scan.
    pub scan_ports: usize,
    /// Silence after which a source's activity is reported.
    pub quiet: Duration,
    /// Time a source is ignored after its scan was reported.
    pub mute: Duration,
    /// Longest a source's activity is collected before it is reported anyway.
    pub max_window: Duration,
    /// Most sources tracked at once; packets from further sources are dropped (and counted).
    pub max_sources: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            scan_ports: 25,
            quiet: Duration::from_secs(6),
            mute: Duration::from_secs(60),
            max_window: Duration::from_secs(600),
            max_sources: 100_000,
        }
    }
}

/// What the aggregator reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A few packets or a connection to one port.
    Attempt {
        /// First observation.
        first: Observation,
        /// Packets and connections counted.
        packets: u64,
        /// Whether a TCP handshake completed.
        connected: bool,
        /// First bytes sent over the connection, if any.
        payload: Option<Vec<u8>>,
    },
    /// Echo requests from one source.
    Echo {
        /// First observation.
        first: Observation,
        /// Requests counted.
        packets: u64,
    },
    /// One source probed many ports.
    Scan {
        /// First observation.
        first: Observation,
        /// Distinct TCP ports, ascending.
        tcp_ports: Vec<u16>,
        /// Distinct UDP ports, ascending.
        udp_ports: Vec<u16>,
        /// Packets and connections counted.
        packets: u64,
        /// From the first to the last observation.
        duration: Duration,
    },
}

#[derive(Debug)]
struct PortEntry {
    first: Observation,
    packets: u64,
    connected: bool,
    payload: Option<Vec<u8>>,
}

#[derive(Debug)]
struct Source {
    first_at: Instant,
    last_at: Instant,
    /// Keyed by (transport, destination port); ICMP uses port 0.
    ports: BTreeMap<(Transport, u16), PortEntry>,
    /// Distinct TCP/UDP ports in `ports`.
    port_count: usize,
    packets: u64,
    muted_until: Option<Instant>,
}

/// The state machine; see the module docs.
#[derive(Debug)]
pub struct Aggregator {
    thresholds: Thresholds,
    sources: HashMap<IpAddr, Source>,
    /// Ports that never yield an [`Report::Attempt`] alone (another service reports them), but
    /// count towards scans.
    quiet_ports: Vec<(Transport, u16)>,
    dropped: u64,
}

impl Aggregator {
    /// A fresh aggregator.
    pub fn new(thresholds: Thresholds) -> Self {
        Aggregator {
            thresholds,
            sources: HashMap::new(),
            quiet_ports: Vec::new(),
            dropped: 0,
        }
    }

    /// Ports that other honeypots report themselves: no [`Report::Attempt`] for them.
    pub fn set_quiet_ports(&mut self, ports: Vec<(Transport, u16)>) {
        self.quiet_ports = ports;
    }

    /// Observations dropped because too many sources were tracked.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Sources currently tracked (collecting or muted).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// Feeds one observation made at `now`.
    pub fn observe(&mut self, now: Instant, obs: Observation) {
        if !self.sources.contains_key(&obs.src) && self.sources.len() >= self.thresholds.max_sources
        {
            self.dropped += 1;
            return;
        }
        let src = self.sources.entry(obs.src).or_insert_with(|| Source {
            first_at: now,
            last_at: now,
            ports: BTreeMap::new(),
            port_count: 0,
            packets: 0,
            muted_until: None,
        });
        if let Some(until) = src.muted_until {
            if now < until {
                return;
            }
            // The mute is over: this observation starts a new collection.
            src.muted_until = None;
            src.first_at = now;
            src.ports.clear();
            src.port_count = 0;
            src.packets = 0;
        }
        if src.ports.is_empty() {
            src.first_at = now;
        }
        src.last_at = now;
        src.packets += 1;
        let key = (obs.transport, obs.dst_port);
        match src.ports.get_mut(&key) {
            Some(e) => {
                e.packets += 1;
                e.connected |= obs.connected;
                if e.payload.is_none() {
                    e.payload = obs.payload;
                }
            }
            None => {
                if obs.transport != Transport::IcmpEcho {
                    src.port_count += 1;
                }
                let entry = PortEntry {
                    packets: 1,
                    connected: obs.connected,
                    payload: obs.payload.clone(),
                    first: Observation {
                        payload: None,
                        ..obs
                    },
                };
                src.ports.insert(key, entry);
            }
        }
    }

    /// Reports whatever is due at `now` and forgets sources whose mute has ended.
    pub fn poll(&mut self, now: Instant) -> Vec<Report> {
        let t = self.thresholds;
        let mut out = Vec::new();
        self.sources.retain(|_, src| {
            if let Some(until) = src.muted_until {
                return now < until;
            }
            if src.ports.is_empty() {
                return false;
            }
            let quiet = now.saturating_duration_since(src.last_at) >= t.quiet;
            let too_long = now.saturating_duration_since(src.first_at) >= t.max_window;
            if !quiet && !too_long {
                return true;
            }
            let ports = std::mem::take(&mut src.ports);
            if src.port_count >= t.scan_ports {
                let mut first: Option<Observation> = None;
                let (mut tcp_ports, mut udp_ports) = (Vec::new(), Vec::new());
                for ((tr, port), e) in ports {
                    if first.as_ref().is_none_or(|f| e.first.wall < f.wall) {
                        first = Some(e.first);
                    }
                    match tr {
                        Transport::Tcp => tcp_ports.push(port),
                        Transport::Udp => udp_ports.push(port),
                        Transport::IcmpEcho => {}
                    }
                }
                if let Some(first) = first {
                    out.push(Report::Scan {
                        first,
                        tcp_ports,
                        udp_ports,
                        packets: src.packets,
                        duration: src.last_at.saturating_duration_since(src.first_at),
                    });
                }
                src.muted_until = Some(now + t.mute);
                src.port_count = 0;
                src.packets = 0;
                return true;
            }
            for ((tr, port), e) in ports {
                match tr {
                    Transport::IcmpEcho => out.push(Report::Echo {
                        first: e.first,
                        packets: e.packets,
                    }),
                    _ if self.quiet_ports.contains(&(tr, port)) => {}
                    _ => out.push(Report::Attempt {
                        first: e.first,
                        packets: e.packets,
                        connected: e.connected,
                        payload: e.payload,
                    }),
                }
            }
            false
        });
        out
    }
}

/// Compact port ranges: `[1, 2, 3, 80, 443, 444]` → `1-3,80,443-444` (input ascending).
pub fn port_ranges(ports: &[u16]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < ports.len() {
        let start = ports[i];
        let mut end = start;
        while i + 1 < ports.len() && ports[i + 1] == end.wrapping_add(1) && end != u16::MAX {
            i += 1;
            end = ports[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(src: &str, tr: Transport, port: u16) -> Observation {
        Observation {
            wall: chrono::Utc::now(),
            transport: tr,
            src: src.parse().unwrap(),
            src_port: 40000,
            dst: "10.0.0.2".parse().unwrap(),
            dst_port: port,
            connected: false,
            payload: None,
        }
    }

    const A: &str = "10.0.0.9";

    #[test]
    fn a_few_packets_become_one_attempt_after_the_quiet_period() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(Thresholds::default());
        for i in 0..3 {
            agg.observe(t0 + Duration::from_secs(i), obs(A, Transport::Tcp, 23));
        }
        assert!(
            agg.poll(t0 + Duration::from_secs(7)).is_empty(),
            "not quiet yet"
        );
        let r = agg.poll(t0 + Duration::from_secs(8));
        assert_eq!(r.len(), 1);
        match &r[0] {
            Report::Attempt {
                first,
                packets,
                connected,
                ..
            } => {
                assert_eq!(first.dst_port, 23);
                assert_eq!(*packets, 3);
                assert!(!connected);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(agg.poll(t0 + Duration::from_secs(20)).is_empty());
        assert_eq!(agg.tracked_sources(), 0);
    }

    #[test]
    fn a_syn_and_its_connection_are_one_attempt_with_the_payload() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(Thresholds::default());
        agg.observe(t0, obs(A, Transport::Tcp, 8080));
        let mut conn = obs(A, Transport::Tcp, 8080);
        conn.connected = true;
        conn.payload = Some(b"GET / HTTP/1.0\r\n".to_vec());
        agg.observe(t0, conn);
        agg.observe(t0, obs(A, Transport::Udp, 161));
        agg.observe(t0, obs(A, Transport::IcmpEcho, 0));
        agg.observe(t0, obs(A, Transport::IcmpEcho, 0));
        let r = agg.poll(t0 + Duration::from_secs(6));
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(r.iter().any(
            |r| matches!(r, Report::Attempt { first, connected: true, payload: Some(p), packets: 2 }
            if first.dst_port == 8080 && p.starts_with(b"GET"))
        ));
        assert!(r.iter().any(|r| matches!(r, Report::Attempt { first, .. }
            if first.transport == Transport::Udp && first.dst_port == 161)));
        assert!(
            r.iter()
                .any(|r| matches!(r, Report::Echo { packets: 2, .. }))
        );
    }

    #[test]
    fn a_full_port_scan_is_exactly_one_scan_report_and_the_source_is_muted() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(Thresholds::default());
        let mut now = t0;
        let mut reports = Vec::new();
        // -p- with retransmissions, interleaved with polls as the run loop does.
        for round in 0..2 {
            for port in 1..=65535u16 {
                if port % 1000 == 0 {
                    now += Duration::from_millis(100);
                    reports.extend(agg.poll(now));
                }
                if round == 0 || port % 7 == 0 {
                    agg.observe(now, obs(A, Transport::Tcp, port));
                }
            }
        }
        // Full connects to ports already counted, during the scan and within the mute time.
        let mut conn = obs(A, Transport::Tcp, 22);
        conn.connected = true;
        agg.observe(now, conn.clone());
        for s in 1..=10 {
            reports.extend(agg.poll(now + Duration::from_secs(s)));
        }
        now += Duration::from_secs(10);
        for s in 1..=40 {
            agg.observe(now + Duration::from_secs(s), conn.clone());
            reports.extend(agg.poll(now + Duration::from_secs(s)));
        }
        assert_eq!(reports.len(), 1, "{:?}", reports.len());
        match &reports[0] {
            Report::Scan {
                tcp_ports,
                udp_ports,
                first,
                ..
            } => {
                assert_eq!(tcp_ports.len(), 65535);
                assert!(udp_ports.is_empty());
                assert_eq!(port_ranges(tcp_ports), "1-65535");
                assert_eq!(first.src, A.parse::<IpAddr>().unwrap());
            }
            other => panic!("unexpected {other:?}"),
        }
        // After the mute, the source is new again: a connection is an attempt.
        let later = now + Duration::from_secs(120);
        assert!(agg.poll(later).is_empty());
        agg.observe(later, conn);
        let r = agg.poll(later + Duration::from_secs(6));
        assert!(
            matches!(
                &r[..],
                [Report::Attempt {
                    connected: true,
                    ..
                }]
            ),
            "{r:?}"
        );
    }

    #[test]
    fn scans_are_per_source_and_thresholds_apply() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(Thresholds {
            scan_ports: 5,
            ..Thresholds::default()
        });
        for p in 1..=4 {
            agg.observe(t0, obs(A, Transport::Tcp, p));
        }
        for p in [53, 67, 68, 123, 161] {
            agg.observe(t0, obs("10.0.0.10", Transport::Udp, p));
        }
        let r = agg.poll(t0 + Duration::from_secs(6));
        assert_eq!(
            r.iter()
                .filter(|r| matches!(r, Report::Attempt { .. }))
                .count(),
            4
        );
        let scans: Vec<_> = r
            .iter()
            .filter_map(|r| match r {
                Report::Scan {
                    udp_ports, first, ..
                } => Some((udp_ports.clone(), first.src)),
                _ => None,
            })
            .collect();
        assert_eq!(scans.len(), 1);
        assert_eq!(port_ranges(&scans[0].0), "53,67-68,123,161");
    }

    #[test]
    fn a_never_quiet_source_is_reported_after_the_max_window() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(Thresholds {
            max_window: Duration::from_secs(30),
            ..Thresholds::default()
        });
        let mut n = 0;
        for s in 0..40 {
            agg.observe(t0 + Duration::from_secs(s), obs(A, Transport::Tcp, 80));
            n += agg.poll(t0 + Duration::from_secs(s)).len();
        }
        assert_eq!(n, 1);
    }

    #[test]
    fn quiet_ports_count_for_scans_only_and_sources_are_bounded() {
        let t0 = Instant::now();
        let mut agg = Aggregator::new(Thresholds {
            max_sources: 1,
            ..Thresholds::default()
        });
        agg.set_quiet_ports(vec![(Transport::Tcp, 22)]);
        agg.observe(t0, obs(A, Transport::Tcp, 22));
        agg.observe(t0, obs("10.0.0.10", Transport::Tcp, 80));
        assert_eq!(agg.dropped(), 1);
        assert!(agg.poll(t0 + Duration::from_secs(6)).is_empty());
    }

    #[test]
    fn ranges() {
        assert_eq!(port_ranges(&[]), "");
        assert_eq!(
            port_ranges(&[1, 2, 3, 80, 443, 444, 65535]),
            "1-3,80,443-444,65535"
        );
        assert_eq!(port_ranges(&[65534, 65535]), "65534-65535");
    }
}
