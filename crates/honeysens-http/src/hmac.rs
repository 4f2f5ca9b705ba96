//! Per-request HMAC authentication for sensors behind TLS-intercepting proxies.
//!
//! Request: `X-HoneySens-Sensor`, `X-HoneySens-Timestamp` (Unix seconds), `X-HoneySens-Nonce`
//! (16–128 of `[A-Za-z0-9_-]`) and `X-HoneySens-Signature` = hex HMAC-SHA256 over
//! `HS1-REQ\n{sensor}\n{timestamp}\n{nonce}\n{METHOD}\n{path?query}\n{hex sha256(body)}`.
//! The server accepts a timestamp within ±60 s, each nonce once, and signs its answer with
//! `X-HoneySens-Signature` = HMAC over `HS1-RESP\n{nonce}\n{status}\n{hex sha256(body)}`.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// Header naming the sensor.
pub const SENSOR_HEADER: &str = "x-honeysens-sensor";
/// Header with the Unix time of signing.
pub const TIMESTAMP_HEADER: &str = "x-honeysens-timestamp";
/// Header with the single-use nonce.
pub const NONCE_HEADER: &str = "x-honeysens-nonce";
/// Header with the signature (request and response).
pub const SIGNATURE_HEADER: &str = "x-honeysens-signature";
/// Accepted clock difference in seconds.
pub const WINDOW_SECS: i64 = 60;

type HmacSha256 = Hmac<Sha256>;

/// HMAC over the parts joined by newlines, lowercase hex. HMAC takes keys of any length, so the
/// key error cannot happen; should it, the empty result never matches (see `signatures_match`).
fn mac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    let Ok(mut m) = <HmacSha256 as KeyInit>::new_from_slice(secret) else {
        return String::new();
    };
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            m.update(b"\n");
        }
        m.update(p);
    }
    hex::encode(m.finalize().into_bytes())
}

fn body_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The request signature, lowercase hex.
pub fn sign_request(
    secret: &[u8],
    sensor: i64,
    timestamp: i64,
    nonce: &str,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> String {
    let (s, t, h) = (sensor.to_string(), timestamp.to_string(), body_hash(body));
    mac_hex(
        secret,
        &[
            b"HS1-REQ",
            s.as_bytes(),
            t.as_bytes(),
            nonce.as_bytes(),
            method.as_bytes(),
            path_and_query.as_bytes(),
            h.as_bytes(),
        ],
    )
}

/// The response signature, lowercase hex.
pub fn sign_response(secret: &[u8], nonce: &str, status: u16, body: &[u8]) -> String {
    let (st, h) = (status.to_string(), body_hash(body));
    mac_hex(
        secret,
        &[b"HS1-RESP", nonce.as_bytes(), st.as_bytes(), h.as_bytes()],
    )
}

/// Constant-time comparison of two hex signatures.
pub fn signatures_match(expected_hex: &str, given_hex: &str) -> bool {
    match (hex::decode(expected_hex), hex::decode(given_hex)) {
        (Ok(a), Ok(b)) if a.len() == 32 && b.len() == 32 => {
            a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
        }
        _ => false,
    }
}

/// Whether `nonce` has the accepted shape.
pub fn valid_nonce(nonce: &str) -> bool {
    (16..=128).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fresh random nonce.
pub fn new_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Nonces seen within the acceptance window, per sensor. Kept in memory: with several server
/// replicas a replay could reach another replica within the window; run sticky sessions or
/// one replica for HMAC sensors.
#[derive(Debug, Default)]
pub struct NonceCache {
    seen: Mutex<HashMap<(i64, String), i64>>,
}

impl NonceCache {
    /// Records the nonce; `false` if it was already used within the window.
    pub fn check_and_insert(&self, sensor: i64, nonce: &str, now: i64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.len() > 10_000 {
            seen.retain(|_, expiry| *expiry > now);
        }
        let key = (sensor, nonce.to_owned());
        match seen.get(&key) {
            Some(expiry) if *expiry > now => false,
            _ => {
                // Timestamps up to WINDOW_SECS in the future are accepted, so a nonce must be
                // remembered for twice the window.
                seen.insert(key, now + 2 * WINDOW_SECS + 1);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_every_part() {
        let base = sign_request(
            b"k",
            7,
            1000,
            "n0nce-n0nce-n0nce",
            "POST",
            "/api/sensors/status",
            b"{}",
        );
        assert_eq!(base.len(), 64);
        assert!(signatures_match(&base, &base));
        for other in [
            sign_request(
                b"K",
                7,
                1000,
                "n0nce-n0nce-n0nce",
                "POST",
                "/api/sensors/status",
                b"{}",
            ),
            sign_request(
                b"k",
                8,
                1000,
                "n0nce-n0nce-n0nce",
                "POST",
                "/api/sensors/status",
                b"{}",
            ),
            sign_request(
                b"k",
                7,
                1001,
                "n0nce-n0nce-n0nce",
                "POST",
                "/api/sensors/status",
                b"{}",
            ),
            sign_request(
                b"k",
                7,
                1000,
                "n0nce-n0nce-n0ncf",
                "POST",
                "/api/sensors/status",
                b"{}",
            ),
            sign_request(
                b"k",
                7,
                1000,
                "n0nce-n0nce-n0nce",
                "GET",
                "/api/sensors/status",
                b"{}",
            ),
            sign_request(
                b"k",
                7,
                1000,
                "n0nce-n0nce-n0nce",
                "POST",
                "/api/sensors/self",
                b"{}",
            ),
            sign_request(
                b"k",
                7,
                1000,
                "n0nce-n0nce-n0nce",
                "POST",
                "/api/sensors/status",
                b"{ }",
            ),
        ] {
            assert!(!signatures_match(&base, &other));
        }
        assert!(!signatures_match(&base, "zz"));
        assert_ne!(
            sign_response(b"k", "n", 200, b"x"),
            sign_response(b"k", "n", 201, b"x")
        );
    }

    #[test]
    fn nonces_are_single_use_within_the_window() {
        let c = NonceCache::default();
        assert!(c.check_and_insert(1, "abc", 100));
        assert!(!c.check_and_insert(1, "abc", 150));
        assert!(c.check_and_insert(2, "abc", 150));
        assert!(c.check_and_insert(1, "abc", 100 + 2 * WINDOW_SECS + 2));
        assert!(valid_nonce(&new_nonce()));
        assert!(!valid_nonce("short"));
        assert!(!valid_nonce("bad nonce with spaces!!"));
    }
}
