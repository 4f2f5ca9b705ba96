//! Short-lived caches for the sensor hot path (every status poll and event upload).
//!
//! A poll used to cost five store round trips before any work; thousands of sensors polling
//! make that the server's main load. Authentication results (certificate → sensor, sensor →
//! HMAC secret) and the settings are kept for at most [`TTL`]. Every management request that
//! may change something (any method but GET/HEAD, and the credential-rotating config download)
//! bumps a generation counter, and an entry loaded under an older generation is never used: on
//! this server a deleted sensor or a revoked certificate is locked out at once. Changes made
//! elsewhere (another replica, the admin CLI) take effect within [`TTL`].

use honeysens_core::ids::SensorId;
use honeysens_core::model::{Sensor, Settings};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Longest time a cached entry is used.
pub const TTL: Duration = Duration::from_secs(1);

/// Entries beyond this are dropped wholesale rather than evicted one by one; a server with
/// more sensors than this simply misses more often.
const MAX_ENTRIES: usize = 65_536;

struct Entry<T> {
    value: T,
    generation: u64,
    at: Instant,
}

struct Map<K, V>(Mutex<HashMap<K, Entry<V>>>);

impl<K: std::hash::Hash + Eq, V: Clone> Map<K, V> {
    fn new() -> Self {
        Map(Mutex::new(HashMap::new()))
    }

    fn get(&self, key: &K, generation: u64) -> Option<V> {
        let map = self.0.lock().ok()?;
        let e = map.get(key)?;
        (e.generation == generation && e.at.elapsed() < TTL).then(|| e.value.clone())
    }

    fn put(&self, key: K, value: V, generation: u64) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
            map.insert(
                key,
                Entry {
                    value,
                    generation,
                    at: Instant::now(),
                },
            );
        }
    }
}

/// A certificate that authenticated a sensor: its owner, loaded with it.
pub type CertEntry = (SensorId, Sensor);

/// The caches of one server.
pub struct HotCache {
    generation: AtomicU64,
    certs: Map<String, CertEntry>,
    hmac: Map<SensorId, (Sensor, Option<String>)>,
    settings: Map<(), Settings>,
}

impl std::fmt::Debug for HotCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotCache")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Default for HotCache {
    fn default() -> Self {
        HotCache {
            generation: AtomicU64::new(0),
            certs: Map::new(),
            hmac: Map::new(),
            settings: Map::new(),
        }
    }
}

impl HotCache {
    /// The current generation; read it *before* loading what is to be cached.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Invalidates everything cached so far.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The sensor a certificate fingerprint authenticated, if cached and current.
    pub fn cert(&self, fingerprint: &str) -> Option<CertEntry> {
        self.certs.get(&fingerprint.to_owned(), self.generation())
    }

    /// Remembers a successful certificate authentication loaded under `generation`.
    pub fn put_cert(&self, fingerprint: &str, entry: CertEntry, generation: u64) {
        self.certs.put(fingerprint.to_owned(), entry, generation);
    }

    /// A sensor and its HMAC secret, if cached and current.
    pub fn hmac(&self, id: SensorId) -> Option<(Sensor, Option<String>)> {
        self.hmac.get(&id, self.generation())
    }

    /// Remembers a sensor and its HMAC secret loaded under `generation`.
    pub fn put_hmac(&self, id: SensorId, value: (Sensor, Option<String>), generation: u64) {
        self.hmac.put(id, value, generation);
    }

    /// The settings, if cached and current.
    pub fn settings(&self) -> Option<Settings> {
        self.settings.get(&(), self.generation())
    }

    /// Remembers the settings loaded under `generation`.
    pub fn put_settings(&self, value: Settings, generation: u64) {
        self.settings.put((), value, generation);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use honeysens_core::ids::DivisionId;
    use honeysens_core::model::SensorSpec;

    fn sensor() -> Sensor {
        Sensor {
            id: SensorId(1),
            spec: SensorSpec::new("s", DivisionId(1)),
            created_at: honeysens_core::time::now(),
            last_seen: None,
            last_state: None,
            offline: false,
        }
    }

    #[test]
    fn an_entry_loaded_before_an_invalidation_is_never_used() {
        let c = HotCache::default();
        let g = c.generation();
        c.invalidate(); // a change lands while the entry is being loaded
        c.put_cert("fp", (SensorId(1), sensor()), g);
        assert!(c.cert("fp").is_none());
        let g = c.generation();
        c.put_cert("fp", (SensorId(1), sensor()), g);
        assert_eq!(c.cert("fp").map(|e| e.0), Some(SensorId(1)));
        c.invalidate();
        assert!(c.cert("fp").is_none());
    }
}
