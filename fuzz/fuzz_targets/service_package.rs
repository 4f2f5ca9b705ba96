//! Uploaded service packages: both reader passes must never panic and stay within bounded
//! memory, whatever the bytes (tar, gzip, JSON, XML, OCI layouts all come from the uploader).
#![no_main]

use honeysens_core::package::{BlobSink, Limits, SinkUpload, scan};
use libfuzzer_sys::fuzz_target;

/// Discards blobs, keeping only their sizes.
struct Discard;

struct Counting(u64);

impl BlobSink for Discard {
    fn begin(&mut self) -> honeysens_core::Result<Box<dyn SinkUpload + '_>> {
        Ok(Box::new(Counting(0)))
    }
}

impl SinkUpload for Counting {
    fn write(&mut self, chunk: &[u8]) -> honeysens_core::Result<()> {
        self.0 += chunk.len() as u64;
        Ok(())
    }
    fn finish(self: Box<Self>, _sha256: &str) -> honeysens_core::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_small_file: 64 * 1024,
        max_kept: 256 * 1024,
        max_unpacked: 4 * 1024 * 1024,
        max_entries: 1000,
        max_images: 4,
        max_layers: 16,
    };
    if let Ok(scanned) = scan(data, &limits) {
        let _ = scanned.store(data, &mut Discard, &limits);
    }
});
