//! Packet capture for recon: an `AF_PACKET` socket that sees every inbound TCP SYN, UDP datagram
//! and ICMP echo request addressed to the sensor, including the SYN scans whose handshakes the
//! kernel answers without any `accept()`.
//!
//! Needs `CAP_NET_RAW` in the network namespace to watch (the sensor's, i.e. host networking).
//! Frames come before netfilter, so destination ports are the ones the attacker used even when
//! the agent redirects them to the catch-all listener.

use super::aggregate::{Observation, Transport};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, LinkAddr, SockFlag, SockProtocol, SockType, recvfrom, setsockopt, socket,
    sockopt,
};
use tokio::sync::mpsc;

const PACKET_HOST: u8 = 0;
const PACKET_OUTGOING: u8 = 4;
const ARPHRD_LOOPBACK: u16 = 772;
const ARPHRD_NONE: u16 = 65534;

/// What one frame was, as far as recon cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// The transport seen.
    pub transport: Transport,
    /// Source address.
    pub src: IpAddr,
    /// Source port (0 for ICMP).
    pub src_port: u16,
    /// Destination address.
    pub dst: IpAddr,
    /// Destination port (0 for ICMP).
    pub dst_port: u16,
    /// For TCP: a SYN without ACK (a connection opening), the only TCP packet recon reports.
    pub syn_only: bool,
}

/// Parses an Ethernet frame (`ethernet = true`) or a bare IP packet.
pub fn parse_frame(frame: &[u8], ethernet: bool) -> Option<Parsed> {
    let ip = if ethernet {
        let mut ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
        let mut off = 14;
        // 802.1Q / 802.1ad tags.
        while ethertype == 0x8100 || ethertype == 0x88a8 {
            ethertype = u16::from_be_bytes([*frame.get(off + 2)?, *frame.get(off + 3)?]);
            off += 4;
        }
        if ethertype != 0x0800 && ethertype != 0x86dd {
            return None;
        }
        frame.get(off..)?
    } else {
        frame
    };
    match ip.first()? >> 4 {
        4 => parse_v4(ip),
        6 => parse_v6(ip),
        _ => None,
    }
}

fn parse_v4(ip: &[u8]) -> Option<Parsed> {
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    if ihl < 20 || ip.len() < ihl {
        return None;
    }
    // Only the first fragment carries the transport header.
    let frag_off = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    if frag_off != 0 {
        return None;
    }
    let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
    let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    transport(ip[9], &ip[ihl..], src, dst, 1, 8)
}

fn parse_v6(ip: &[u8]) -> Option<Parsed> {
    if ip.len() < 40 {
        return None;
    }
    let mut a = [0u8; 16];
    a.copy_from_slice(&ip[8..24]);
    let src = IpAddr::V6(Ipv6Addr::from(a));
    a.copy_from_slice(&ip[24..40]);
    let dst = IpAddr::V6(Ipv6Addr::from(a));
    let mut next = ip[6];
    let mut off = 40;
    // Hop-by-hop, routing and destination options headers; a fragment header ends parsing
    // unless it is the first fragment.
    loop {
        match next {
            0 | 43 | 60 => {
                next = *ip.get(off)?;
                off += (usize::from(*ip.get(off + 1)?) + 1) * 8;
            }
            44 => {
                let frag = u16::from_be_bytes([*ip.get(off + 2)?, *ip.get(off + 3)?]) >> 3;
                if frag != 0 {
                    return None;
                }
                next = *ip.get(off)?;
                off += 8;
            }
            _ => break,
        }
    }
    transport(next, ip.get(off..)?, src, dst, 58, 128)
}

fn transport(
    proto: u8,
    l4: &[u8],
    src: IpAddr,
    dst: IpAddr,
    icmp_proto: u8,
    echo_type: u8,
) -> Option<Parsed> {
    let ports = |l4: &[u8]| -> Option<(u16, u16)> {
        Some((
            u16::from_be_bytes([*l4.first()?, *l4.get(1)?]),
            u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?]),
        ))
    };
    match proto {
        6 => {
            let (sp, dp) = ports(l4)?;
            let flags = *l4.get(13)?;
            Some(Parsed {
                transport: Transport::Tcp,
                src,
                src_port: sp,
                dst,
                dst_port: dp,
                syn_only: flags & 0x02 != 0 && flags & 0x10 == 0,
            })
        }
        17 => {
            let (sp, dp) = ports(l4)?;
            Some(Parsed {
                transport: Transport::Udp,
                src,
                src_port: sp,
                dst,
                dst_port: dp,
                syn_only: false,
            })
        }
        p if p == icmp_proto && *l4.first()? == echo_type => Some(Parsed {
            transport: Transport::IcmpEcho,
            src,
            src_port: 0,
            dst,
            dst_port: 0,
            syn_only: false,
        }),
        _ => None,
    }
}

/// The addresses of this network namespace's interfaces.
pub fn local_addresses() -> HashSet<IpAddr> {
    let mut set = HashSet::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(addr) = a.address else { continue };
            if let Some(v4) = addr.as_sockaddr_in() {
                set.insert(IpAddr::V4(v4.ip()));
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                set.insert(IpAddr::V6(v6.ip()));
            }
        }
    }
    set
}

/// Opens the capture socket (fails without `CAP_NET_RAW`).
pub fn open() -> std::io::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::EthAll,
    )?;
    // A timeout lets the capture thread notice shutdown.
    setsockopt(
        &fd,
        sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(0, 300_000),
    )?;
    // A scan is a burst of tens of thousands of frames: a large buffer avoids drops.
    // (beyond net.core.rmem_max needs CAP_NET_ADMIN; fall back to what is allowed).
    if setsockopt(&fd, sockopt::RcvBufForce, &(16 << 20)).is_err() {
        let _ = setsockopt(&fd, sockopt::RcvBuf, &(16 << 20));
    }
    Ok(fd)
}

/// Reads frames until `stop` is set, sending inbound observations to `tx`. Blocking: run it on
/// a thread of its own. `interface`: only this interface's index (all but loopback if `None`).
pub fn capture_loop(
    fd: OwnedFd,
    interface: Option<u32>,
    tx: mpsc::Sender<Observation>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 256];
    let mut locals = local_addresses();
    let mut locals_at = Instant::now();
    // UDP flows the sensor itself opened (DNS, NTP, DHCP): their answers are no attack.
    let mut own_udp: HashMap<(IpAddr, u16, u16), Instant> = HashMap::new();
    let mut dropped = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let (n, from) = match recvfrom::<LinkAddr>(fd.as_raw_fd(), &mut buf) {
            Ok(r) => r,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, "packet capture failed");
                return;
            }
        };
        let Some(from) = from else { continue };
        if interface.is_some_and(|i| from.ifindex() != i as usize)
            || (interface.is_none() && from.hatype() == ARPHRD_LOOPBACK)
        {
            continue;
        }
        let pkttype = from.pkttype();
        if pkttype != PACKET_HOST && pkttype != PACKET_OUTGOING {
            continue;
        }
        let Some(p) = parse_frame(&buf[..n.min(buf.len())], from.hatype() != ARPHRD_NONE) else {
            continue;
        };
        let now = Instant::now();
        if pkttype == PACKET_OUTGOING {
            if p.transport == Transport::Udp {
                own_udp.insert((p.dst, p.dst_port, p.src_port), now);
                if own_udp.len() > 4096 {
                    own_udp.retain(|_, t| now.duration_since(*t) < Duration::from_secs(60));
                }
            }
            continue;
        }
        if p.transport == Transport::Tcp && !p.syn_only {
            continue;
        }
        if p.transport == Transport::Udp
            && own_udp
                .get(&(p.src, p.src_port, p.dst_port))
                .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(60))
        {
            continue;
        }
        if !locals.contains(&p.dst) {
            // Addresses change (DHCP): look again, at most every few seconds.
            if now.duration_since(locals_at) > Duration::from_secs(5) {
                locals = local_addresses();
                locals_at = now;
            }
            if !locals.contains(&p.dst) {
                continue;
            }
        }
        let obs = Observation {
            wall: chrono::Utc::now(),
            transport: p.transport,
            src: p.src,
            src_port: p.src_port,
            dst: p.dst,
            dst_port: p.dst_port,
            connected: false,
            payload: None,
        };
        match tx.try_send(obs) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                dropped += 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(dropped, "recon observation queue full; packets dropped");
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: u16, ip: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(ip);
        f
    }

    fn v4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
        ip.extend_from_slice(&[10, 0, 0, 9, 10, 0, 0, 2]);
        ip.extend_from_slice(l4);
        ip
    }

    fn tcp(sp: u16, dp: u16, flags: u8) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&sp.to_be_bytes());
        t.extend_from_slice(&dp.to_be_bytes());
        t.extend_from_slice(&[0; 9]);
        t.push(flags);
        t.extend_from_slice(&[0; 6]);
        t
    }

    #[test]
    fn parses_ipv4_syn_udp_and_echo() {
        let p = parse_frame(&eth(0x0800, &v4(6, &tcp(40000, 22, 0x02))), true).unwrap();
        assert_eq!(p.transport, Transport::Tcp);
        assert_eq!((p.src_port, p.dst_port), (40000, 22));
        assert!(p.syn_only);
        assert_eq!(p.src, "10.0.0.9".parse::<IpAddr>().unwrap());
        let synack = parse_frame(&eth(0x0800, &v4(6, &tcp(22, 40000, 0x12))), true).unwrap();
        assert!(!synack.syn_only);
        let udp = parse_frame(&eth(0x0800, &v4(17, &[0, 53, 0, 161, 0, 8, 0, 0])), true).unwrap();
        assert_eq!((udp.transport, udp.dst_port), (Transport::Udp, 161));
        let echo = parse_frame(&eth(0x0800, &v4(1, &[8, 0, 0, 0])), true).unwrap();
        assert_eq!(echo.transport, Transport::IcmpEcho);
        assert!(parse_frame(&eth(0x0800, &v4(1, &[0, 0, 0, 0])), true).is_none());
        // Tagged VLAN frame, bare IP (tun), ARP, truncated.
        let mut tagged = vec![0u8; 12];
        tagged.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
        tagged.extend_from_slice(&v4(6, &tcp(1, 2, 2)));
        assert_eq!(parse_frame(&tagged, true).unwrap().dst_port, 2);
        assert!(parse_frame(&v4(6, &tcp(1, 3, 2)), false).is_some());
        assert!(parse_frame(&eth(0x0806, &[0; 28]), true).is_none());
        assert!(parse_frame(&eth(0x0800, &v4(6, &[0, 1])), true).is_none());
        assert!(parse_frame(&[], true).is_none());
    }

    #[test]
    fn parses_ipv6_with_extension_headers() {
        let mut ip = vec![0x60, 0, 0, 0, 0, 28, 0, 64];
        ip.extend_from_slice(&"2001:db8::9".parse::<Ipv6Addr>().unwrap().octets());
        ip.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        // Hop-by-hop header (8 bytes) then TCP.
        ip.extend_from_slice(&[6, 0, 0, 0, 0, 0, 0, 0]);
        ip.extend_from_slice(&tcp(5555, 443, 0x02));
        let p = parse_frame(&eth(0x86dd, &ip), true).unwrap();
        assert_eq!((p.dst_port, p.syn_only), (443, true));
        assert_eq!(p.dst, "2001:db8::2".parse::<IpAddr>().unwrap());
        ip[6] = 58;
        ip.truncate(40);
        ip.extend_from_slice(&[128, 0, 0, 0]);
        assert_eq!(
            parse_frame(&eth(0x86dd, &ip), true).unwrap().transport,
            Transport::IcmpEcho
        );
    }
}
