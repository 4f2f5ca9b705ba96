//! The catch-all redirect: every inbound TCP/UDP connection to the sensor that no other
//! service takes goes to the catch-all service.
//!
//! One nftables table the agent owns (`table inet honeysens` by default), replaced as a whole
//! in one `nft -f` transaction on every change (so it is idempotent and crash-safe: a start
//! simply replaces what a killed agent left), deleted on shutdown. Its `prerouting` NAT chain
//! (priority `dstnat + 10`, after Docker's own DNAT for published ports) skips loopback,
//! the service bridge, traffic not addressed to the sensor itself, the explicitly mapped
//! ports and the agent's own ports, then redirects the rest (new connections only: NAT chains
//! never see established flows or the replies to outgoing ones) to the catch-all port on the
//! host (host-network services, e.g. recon, which reads the original port with
//! `SO_ORIGINAL_DST`) or DNATs it to a container. An `input` filter chain keeps the agent's
//! TCP intake reachable only from loopback and the service bridge. Used by the Docker runtime
//! and usable by the process runtime.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use tokio::io::AsyncWriteExt;

/// Why the firewall could not be changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FirewallError {
    /// `nft` could not be started.
    #[error("cannot run nft: {0}")]
    Spawn(std::io::Error),
    /// `nft` refused the ruleset.
    #[error("nft failed: {0}")]
    Nft(String),
    /// A name would not be safe inside a ruleset.
    #[error("invalid name for nftables: {0:?}")]
    Name(String),
}

/// Where the catch-all traffic goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchAllTarget {
    /// A listener on the host itself (host-network service): `redirect to :port`.
    Host {
        /// The catch-all port.
        port: u16,
    },
    /// A container on the service bridge: `dnat to ip:port`. IPv4 only. Docker's own
    /// `FORWARD` policy may drop such traffic unless `DOCKER-USER` allows it.
    Container {
        /// The container's address.
        ip: Ipv4Addr,
        /// The port it listens on.
        port: u16,
    },
}

/// The rules wanted now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallRules {
    /// Catch-all target, if a catch-all service runs.
    pub catch_all: Option<CatchAllTarget>,
    /// TCP ports other services or the agent own: never redirected.
    pub tcp_ports: BTreeSet<u16>,
    /// UDP ports other services own: never redirected.
    pub udp_ports: BTreeSet<u16>,
    /// The service bridge interface (its traffic is never redirected).
    pub bridge: Option<String>,
    /// The agent's TCP intake port: reachable only from loopback and the bridge.
    pub intake_port: Option<u16>,
}

/// The agent's nftables table.
#[derive(Debug, Clone)]
pub struct Firewall {
    table: String,
    nft: String,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn port_set(ports: &BTreeSet<u16>) -> String {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!("{{ {} }}", list.join(", "))
}

impl Firewall {
    /// The table `inet <table>`, changed through the `nft` binary on the `PATH`.
    pub fn new(table: &str) -> Result<Self, FirewallError> {
        if !valid_name(table) {
            return Err(FirewallError::Name(table.to_owned()));
        }
        Ok(Firewall {
            table: table.to_owned(),
            nft: "nft".to_owned(),
        })
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The ruleset text for `rules` (replacing the table in one transaction), or `None` when
    /// nothing is needed and the table should be absent.
    pub fn ruleset(&self, rules: &FirewallRules) -> Result<Option<String>, FirewallError> {
        if rules.catch_all.is_none() && rules.intake_port.is_none() {
            return Ok(None);
        }
        if let Some(b) = &rules.bridge
            && !valid_name(b)
        {
            return Err(FirewallError::Name(b.clone()));
        }
        let t = &self.table;
        // Declaring before deleting makes the delete succeed when the table does not exist.
        let mut s = format!("table inet {t}\ndelete table inet {t}\ntable inet {t} {{\n");
        if let Some(target) = rules.catch_all {
            s.push_str(
                "  chain prerouting {\n    type nat hook prerouting priority dstnat + 10; policy accept;\n",
            );
            s.push_str("    iifname \"lo\" accept\n");
            if let Some(b) = &rules.bridge {
                s.push_str(&format!("    iifname \"{b}\" accept\n"));
            }
            s.push_str("    fib daddr type != local accept\n");
            s.push_str("    ct state established,related accept\n");
            if !rules.tcp_ports.is_empty() {
                s.push_str(&format!(
                    "    tcp dport {} accept\n",
                    port_set(&rules.tcp_ports)
                ));
            }
            if !rules.udp_ports.is_empty() {
                s.push_str(&format!(
                    "    udp dport {} accept\n",
                    port_set(&rules.udp_ports)
                ));
            }
            match target {
                CatchAllTarget::Host { port } => {
                    s.push_str(&format!("    meta l4proto tcp redirect to :{port}\n"));
                    s.push_str(&format!("    meta l4proto udp redirect to :{port}\n"));
                }
                CatchAllTarget::Container { ip, port } => {
                    s.push_str(&format!(
                        "    meta nfproto ipv4 meta l4proto tcp dnat ip to {ip}:{port}\n"
                    ));
                    s.push_str(&format!(
                        "    meta nfproto ipv4 meta l4proto udp dnat ip to {ip}:{port}\n"
                    ));
                }
            }
            s.push_str("  }\n");
        }
        if let Some(port) = rules.intake_port {
            s.push_str(
                "  chain input {\n    type filter hook input priority filter; policy accept;\n",
            );
            s.push_str("    iifname \"lo\" accept\n");
            if let Some(b) = &rules.bridge {
                s.push_str(&format!("    iifname \"{b}\" accept\n"));
            }
            s.push_str(&format!("    tcp dport {port} drop\n  }}\n"));
        }
        s.push_str("}\n");
        Ok(Some(s))
    }

    /// Makes the table match `rules` (replaced atomically; removed when nothing is needed).
    pub async fn apply(&self, rules: &FirewallRules) -> Result<(), FirewallError> {
        match self.ruleset(rules)? {
            Some(text) => self.run_script(&text).await,
            None => self.remove().await,
        }
    }

    /// Removes the table if it exists.
    pub async fn remove(&self) -> Result<(), FirewallError> {
        let t = &self.table;
        self.run_script(&format!("table inet {t}\ndelete table inet {t}\n"))
            .await
    }

    async fn run_script(&self, text: &str) -> Result<(), FirewallError> {
        let mut child = tokio::process::Command::new(&self.nft)
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(FirewallError::Spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(text.as_bytes())
                .await
                .map_err(FirewallError::Spawn)?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(FirewallError::Spawn)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(FirewallError::Nft(
                String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_skips_owned_ports_then_redirects() {
        let fw = Firewall::new("honeysens").unwrap_or_else(|e| unreachable!("{e}"));
        let rules = FirewallRules {
            catch_all: Some(CatchAllTarget::Host { port: 4444 }),
            tcp_ports: [22, 8080].into_iter().collect(),
            udp_ports: BTreeSet::new(),
            bridge: Some("hs0".into()),
            intake_port: Some(9999),
        };
        let text = fw
            .ruleset(&rules)
            .ok()
            .flatten()
            .unwrap_or_else(|| unreachable!());
        assert!(text.contains("tcp dport { 22, 8080 } accept"));
        assert!(!text.contains("udp dport"));
        assert!(text.contains("redirect to :4444"));
        assert!(text.contains("iifname \"hs0\" accept"));
        assert!(text.contains("tcp dport 9999 drop"));
        let skip = text.find("tcp dport {").unwrap_or(usize::MAX);
        let redirect = text.find("redirect").unwrap_or(0);
        assert!(skip < redirect, "ports are skipped before the redirect");
        assert!(
            fw.ruleset(&FirewallRules::default())
                .ok()
                .flatten()
                .is_none()
        );
        assert!(Firewall::new("bad name; flush ruleset").is_err());
    }
}
