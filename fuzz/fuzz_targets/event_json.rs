//! Events as sensors upload them: JSON decoding and validation must never panic.
#![no_main]

use honeysens_core::model::NewEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = serde_json::from_slice::<NewEvent>(data) {
        let _ = event.validate();
        let _ = serde_json::to_vec(&event);
    }
});
