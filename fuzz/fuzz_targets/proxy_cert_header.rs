//! The `X-Client-Cert` header a proxy forwards, then the certificate parser behind it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(der) = honeysens_http::proxy_header::parse_client_cert_header(data) {
        let _ = honeysens_core::pki::inspect(&der);
    }
});
