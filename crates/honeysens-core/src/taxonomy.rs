//! The frozen event taxonomy: every type code a built-in honeypot, an adapter or the server
//! emits, with the classification and severity the server derives from it.
//!
//! Codes are stable API: they are stored, filtered on and sent to SIEMs. A code is never
//! renamed or given another meaning; new codes may be added. `docs/events.md` is generated from
//! the same table (a test keeps the two in step).
//!
//! ```
//! use honeysens_core::taxonomy;
//! use honeysens_core::model::{Classification, Severity};
//!
//! let t = taxonomy::lookup("ssh.login.failed").unwrap();
//! assert_eq!(t.classification, Classification::HoneypotInteraction);
//! assert_eq!(t.severity, Severity::Medium);
//! assert!(taxonomy::lookup("no.such.code").is_none());
//! ```

use crate::model::{Classification, EventData, Severity};

/// One entry of the taxonomy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventType {
    /// Stable type code.
    pub code: &'static str,
    /// Classification derived from the code.
    pub classification: Classification,
    /// Severity derived from the code.
    pub severity: Severity,
    /// What it means, one line.
    pub description: &'static str,
}

macro_rules! types {
    ($($code:literal => $class:ident, $sev:ident, $desc:literal;)*) => {
        /// Every known type code, grouped by family.
        pub const TYPES: &[EventType] = &[$(EventType {
            code: $code,
            classification: Classification::$class,
            severity: Severity::$sev,
            description: $desc,
        },)*];
    };
}

types! {
    // Network level: what the catch-all sees.
    "icmp.echo" => Icmp, Low, "ICMP echo request (ping) to the sensor";
    "conn.attempt" => ConnectionAttempt, Low, "a few packets or a TCP handshake to a port without further interaction";
    "scan.host" => PortScan, Medium, "one source probed many ports of one sensor (port count and ranges in the details)";
    "scan.network" => PortScan, High, "one source probed several sensors within the incident window (raised by the server)";
    // SSH.
    "ssh.connect" => HoneypotInteraction, Low, "SSH connection with version exchange, no login attempt";
    "ssh.login.failed" => HoneypotInteraction, Medium, "SSH login attempt refused (user, password or key fingerprint in the details)";
    "ssh.login.success" => HoneypotInteraction, High, "SSH login accepted by the fake shell";
    "ssh.command" => HoneypotInteraction, High, "command typed into the fake SSH shell";
    // Telnet.
    "telnet.connect" => HoneypotInteraction, Low, "Telnet connection without a login attempt";
    "telnet.login.failed" => HoneypotInteraction, Medium, "Telnet login attempt refused";
    "telnet.login.success" => HoneypotInteraction, High, "Telnet login accepted by the fake shell";
    "telnet.command" => HoneypotInteraction, High, "command typed into the fake Telnet shell";
    // HTTP.
    "http.request" => HoneypotInteraction, Low, "HTTP request (method, path, user agent in the details)";
    "http.scanner" => HoneypotInteraction, Medium, "HTTP request with the fingerprint of a known scanner or exploit probe";
    "http.login" => HoneypotInteraction, Medium, "credentials submitted to the HTTP login page";
    // FTP.
    "ftp.login.failed" => HoneypotInteraction, Medium, "FTP login attempt refused";
    "ftp.command" => HoneypotInteraction, Medium, "FTP command";
    // Databases and caches.
    "redis.command" => HoneypotInteraction, Medium, "Redis command (AUTH arguments redacted only in the summary)";
    "redis.login.failed" => HoneypotInteraction, Medium, "Redis AUTH attempt refused";
    "mysql.login.failed" => HoneypotInteraction, Medium, "MySQL login attempt refused";
    "mssql.login.failed" => HoneypotInteraction, Medium, "MSSQL login attempt refused";
    // Windows and remote desktop.
    "smb.negotiate" => HoneypotInteraction, Medium, "SMB protocol negotiation";
    "smb.login.failed" => HoneypotInteraction, Medium, "SMB session setup refused";
    "rdp.negotiate" => HoneypotInteraction, Medium, "RDP connection request";
    "vnc.login.failed" => HoneypotInteraction, Medium, "VNC authentication attempt refused";
    // Other services.
    "snmp.request" => HoneypotInteraction, Medium, "SNMP request (community in the details)";
    "sip.request" => HoneypotInteraction, Low, "SIP request";
    "tftp.request" => HoneypotInteraction, Medium, "TFTP read or write request";
    "ntp.request" => HoneypotInteraction, Low, "NTP monlist or mode 7 request";
    "modbus.request" => HoneypotInteraction, High, "Modbus/TCP request to the fake PLC";
    "s7.request" => HoneypotInteraction, High, "Siemens S7comm request to the fake PLC";
    // Payloads.
    "file.download" => HoneypotInteraction, Critical, "the attacker made the honeypot fetch a file (URL and hash in the details)";
    "file.upload" => HoneypotInteraction, Critical, "the attacker uploaded a file (hash in the details)";
    // A honeypot-specific interaction without a more precise code.
    "honeypot.interaction" => HoneypotInteraction, Medium, "interaction a honeypot reported without a more specific code";
    // Raised by the server about sensors.
    "sensor.timeout" => Unknown, High, "sensor missed its poll interval plus the threshold";
    "sensor.recovered" => Unknown, Info, "sensor polls again after a timeout";
    // Raised by the server about its outputs.
    "notify.test" => Unknown, Info, "test message sent to a SIEM from the console; never stored";
}

/// The taxonomy entry of `code`, if it is known.
pub fn lookup(code: &str) -> Option<&'static EventType> {
    TYPES.iter().find(|t| t.code == code)
}

/// Sets classification and severity from the taxonomy when the code is known; the server is
/// the authority on both, so whatever the sensor claimed is overwritten. Unknown codes (a
/// third-party honeypot's own) keep what the sensor sent.
pub fn classify(data: &mut EventData) {
    if let Some(t) = lookup(&data.type_code) {
        data.classification = t.classification;
        data.severity = t.severity;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::valid_type_code;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for t in TYPES {
            assert!(valid_type_code(t.code), "{}", t.code);
            assert!(seen.insert(t.code), "duplicate {}", t.code);
            assert!(!t.description.is_empty());
        }
    }

    #[test]
    fn scans_are_port_scans_and_logins_interactions() {
        for t in TYPES {
            if t.code.starts_with("scan.") {
                assert_eq!(t.classification, Classification::PortScan, "{}", t.code);
            }
            if t.code.contains(".login.") {
                assert_eq!(
                    t.classification,
                    Classification::HoneypotInteraction,
                    "{}",
                    t.code
                );
            }
        }
    }

    #[test]
    fn docs_list_every_code() {
        let doc = include_str!("../../../docs/events.md");
        for t in TYPES {
            let row = format!(
                "| `{}` | {} | {} | {} |",
                t.code, t.classification, t.severity, t.description
            );
            assert!(
                doc.contains(&row),
                "docs/events.md lacks or misstates:\n{row}"
            );
        }
    }
}
