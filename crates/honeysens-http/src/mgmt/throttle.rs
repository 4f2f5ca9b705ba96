//! Failed-login throttling, in memory per (login name, client address).
//!
//! Keyed by both so that one attacker cannot lock a user out from everywhere, and one address
//! cannot try many passwords for a user. With several server replicas each keeps its own
//! counts, which multiplies the allowance by the number of replicas at worst.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures within [`DEFAULT_WINDOW`] after which further attempts are refused.
pub const DEFAULT_MAX_FAILURES: usize = 5;

/// How long failures count.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Most keys kept; beyond, expired keys are dropped first, then the table is cleared (an
/// attacker flooding with names gains at most a reset, not unbounded memory).
const MAX_KEYS: usize = 100_000;

/// Longest login name used in a key, bounding memory per entry.
const MAX_NAME: usize = 256;

/// Counts failed logins and refuses attempts while too many are recent.
#[derive(Debug)]
pub struct LoginThrottle {
    max_failures: usize,
    window: Duration,
    failures: Mutex<HashMap<(String, IpAddr), VecDeque<Instant>>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_FAILURES, DEFAULT_WINDOW)
    }
}

fn key(name: &str, ip: IpAddr) -> (String, IpAddr) {
    (name.chars().take(MAX_NAME).collect(), ip)
}

impl LoginThrottle {
    /// A throttle refusing attempts after `max_failures` failures within `window`.
    pub fn new(max_failures: usize, window: Duration) -> Self {
        LoginThrottle {
            max_failures: max_failures.max(1),
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(wait)` while `name` from `ip` is throttled: how long until the oldest counted
    /// failure leaves the window.
    pub fn check(&self, name: &str, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        // A poisoned lock means a panic elsewhere; refusing logins then is the safe side.
        let Ok(mut map) = self.failures.lock() else {
            return Some(self.window);
        };
        let k = key(name, ip);
        let entry = map.get_mut(&k)?;
        while entry
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            entry.pop_front();
        }
        if entry.is_empty() {
            map.remove(&k);
            return None;
        }
        if entry.len() >= self.max_failures {
            let oldest = entry.front().copied().unwrap_or(now);
            Some(self.window.saturating_sub(now.duration_since(oldest)))
        } else {
            None
        }
    }

    /// Counts one failed attempt.
    pub fn failure(&self, name: &str, ip: IpAddr) {
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() >= MAX_KEYS {
            let window = self.window;
            map.retain(|_, v| v.back().is_some_and(|t| now.duration_since(*t) < window));
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        let entry = map.entry(key(name, ip)).or_default();
        entry.push_back(now);
        // Only the newest `max_failures` matter for the decision.
        while entry.len() > self.max_failures {
            entry.pop_front();
        }
    }

    /// Forgets the failures of `name` from `ip` after a successful login.
    pub fn success(&self, name: &str, ip: IpAddr) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&key(name, ip));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn throttles_after_max_failures_and_releases_after_the_window() {
        let t = LoginThrottle::new(3, Duration::from_millis(200));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(t.check("alice", ip).is_none());
            t.failure("alice", ip);
        }
        let wait = t.check("alice", ip).unwrap();
        assert!(wait <= Duration::from_millis(200));
        // Other users and other addresses are unaffected.
        assert!(t.check("bob", ip).is_none());
        assert!(t.check("alice", other).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(t.check("alice", ip).is_none());
    }

    #[test]
    fn success_resets() {
        let t = LoginThrottle::new(2, Duration::from_secs(60));
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        t.failure("alice", ip);
        t.success("alice", ip);
        t.failure("alice", ip);
        assert!(t.check("alice", ip).is_none());
        t.failure("alice", ip);
        assert!(t.check("alice", ip).is_some());
    }
}
