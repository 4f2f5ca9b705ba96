//! Reusable validation rules. Every spec type's `validate` is built from these.

use crate::error::ValidationErrors;

/// Longest name (division, sensor, user, service, …) accepted anywhere.
pub const MAX_NAME_LEN: usize = 255;
/// Smallest allowed sensor update interval in minutes.
pub const MIN_UPDATE_INTERVAL: u32 = 1;
/// Largest allowed sensor update interval in minutes.
pub const MAX_UPDATE_INTERVAL: u32 = 60;

/// A display name: 1–255 characters, trimmed, no control characters.
pub fn name(errors: &mut ValidationErrors, field: &str, value: &str) {
    if value.trim().is_empty() {
        errors.add(field, "required", "must not be empty");
    } else if value.chars().count() > MAX_NAME_LEN {
        errors.add(
            field,
            "too_long",
            format!("must be at most {MAX_NAME_LEN} characters"),
        );
    } else if value.trim() != value {
        errors.add(field, "whitespace", "must not start or end with whitespace");
    } else if value.chars().any(char::is_control) {
        errors.add(
            field,
            "control_chars",
            "must not contain control characters",
        );
    }
}

/// Free text such as descriptions and comments: bounded length, no NUL.
pub fn text(errors: &mut ValidationErrors, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        errors.add(
            field,
            "too_long",
            format!("must be at most {max} characters"),
        );
    } else if value.contains('\0') {
        errors.add(field, "control_chars", "must not contain NUL characters");
    }
}

/// A login name: 1–64 characters of `[A-Za-z0-9._@-]`.
pub fn login(errors: &mut ValidationErrors, field: &str, value: &str) {
    let ok_chars = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if value.is_empty() || value.len() > 64 || !ok_chars {
        errors.add(
            field,
            "invalid_login",
            "must be 1-64 characters of letters, digits and . _ @ -",
        );
    }
}

/// A TCP/UDP port; 0 is never a valid port to configure.
pub fn port(errors: &mut ValidationErrors, field: &str, value: u16) {
    if value == 0 {
        errors.add(field, "out_of_range", "must be between 1 and 65535");
    }
}

/// A sensor update interval in minutes (1–60).
pub fn update_interval(errors: &mut ValidationErrors, field: &str, minutes: u32) {
    if !(MIN_UPDATE_INTERVAL..=MAX_UPDATE_INTERVAL).contains(&minutes) {
        errors.add(
            field,
            "out_of_range",
            format!("must be between {MIN_UPDATE_INTERVAL} and {MAX_UPDATE_INTERVAL} minutes"),
        );
    }
}

/// A plausible e-mail address: one `@`, non-empty local part, dotted domain, no spaces.
pub fn email(errors: &mut ValidationErrors, field: &str, value: &str) {
    let valid = value.len() <= 254
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if !valid {
        errors.add(
            field,
            "invalid_email",
            "must be an e-mail address like name@example.org",
        );
    }
}

/// A host name or IP literal usable in a URL or a connection (RFC 1123 labels).
pub fn host(errors: &mut ValidationErrors, field: &str, value: &str) {
    if value.parse::<std::net::IpAddr>().is_ok() {
        return;
    }
    let valid = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !valid {
        errors.add(
            field,
            "invalid_host",
            "must be a host name or an IP address",
        );
    }
}

/// A MAC address written as six colon-separated hex octets, unicast.
pub fn mac(errors: &mut ValidationErrors, field: &str, value: &str) {
    let octets: Vec<&str> = value.split(':').collect();
    let well_formed = octets.len() == 6
        && octets
            .iter()
            .all(|o| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit()));
    if !well_formed {
        errors.add(
            field,
            "invalid_mac",
            "must be six hex octets like 02:00:5e:10:00:01",
        );
        return;
    }
    let first = octets
        .first()
        .and_then(|o| u8::from_str_radix(o, 16).ok())
        .unwrap_or(1);
    if first & 1 == 1 {
        errors.add(field, "multicast_mac", "must be a unicast address");
    }
}

/// An HTTP(S) URL such as a webhook target.
pub fn http_url(errors: &mut ValidationErrors, field: &str, value: &str) {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    let host_part = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    match host_part {
        Some(h) if !h.is_empty() && !value.chars().any(char::is_whitespace) => {}
        _ => errors.add(field, "invalid_url", "must be an http:// or https:// URL"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(f: impl Fn(&mut ValidationErrors)) -> bool {
        let mut e = ValidationErrors::default();
        f(&mut e);
        e.0.is_empty()
    }

    #[test]
    fn names() {
        assert!(check(|e| name(e, "n", "Sensor 1")));
        assert!(!check(|e| name(e, "n", "")));
        assert!(!check(|e| name(e, "n", " padded")));
        assert!(!check(|e| name(e, "n", "a\nb")));
        assert!(!check(|e| name(e, "n", &"x".repeat(256))));
        assert!(check(|e| name(e, "n", &"ü".repeat(255))));
    }

    #[test]
    fn intervals_and_ports() {
        assert!(check(|e| update_interval(e, "i", 1)));
        assert!(check(|e| update_interval(e, "i", 60)));
        assert!(!check(|e| update_interval(e, "i", 0)));
        assert!(!check(|e| update_interval(e, "i", 61)));
        assert!(!check(|e| port(e, "p", 0)));
        assert!(check(|e| port(e, "p", 65535)));
    }

    #[test]
    fn emails_hosts_macs_urls() {
        assert!(check(|e| email(e, "m", "soc@example.org")));
        assert!(!check(|e| email(e, "m", "soc@localhost")));
        assert!(!check(|e| email(e, "m", "a b@example.org")));
        assert!(!check(|e| email(e, "m", "@example.org")));
        assert!(check(|e| host(e, "h", "honeysens.example.org")));
        assert!(check(|e| host(e, "h", "fe80::1")));
        assert!(!check(|e| host(e, "h", "bad_host.example")));
        assert!(!check(|e| host(e, "h", "-x.example")));
        assert!(check(|e| mac(e, "m", "02:00:5e:10:00:01")));
        assert!(!check(|e| mac(e, "m", "01:00:5e:10:00:01")));
        assert!(!check(|e| mac(e, "m", "02:00:5e:10:00")));
        assert!(check(|e| http_url(e, "u", "https://hooks.example.org/x")));
        assert!(!check(|e| http_url(e, "u", "ftp://x")));
        assert!(!check(|e| http_url(e, "u", "https:///path")));
    }
}
