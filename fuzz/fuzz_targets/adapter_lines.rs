//! Upstream honeypot log lines (cowrie, OpenCanary): translation must never panic, and
//! whatever it produces must serialise.
#![no_main]

use honeysens_honeypots::adapters::{cowrie, opencanary};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(line) = std::str::from_utf8(data) {
        for ev in [cowrie::translate(line), opencanary::translate(line)].into_iter().flatten().flatten() {
            let _ = serde_json::to_vec(&ev);
            let _ = ev.into_event(honeysens_core::ids::SensorId(1));
        }
    }
});
