//! Certificate signing requests sensors send with their status report.
#![no_main]

use honeysens_core::ids::SensorId;
use honeysens_core::pki::CertificateAuthority;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static CA: OnceLock<Option<CertificateAuthority>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let Some(ca) = CA.get_or_init(|| CertificateAuthority::generate("Fuzz CA").ok().map(|(ca, _)| ca)) else {
        return;
    };
    if let Ok(pem) = std::str::from_utf8(data) {
        if let Ok(record) = ca.sign_sensor_csr(SensorId(7), pem, 30) {
            // Whatever the CSR asked for, the certificate is a client certificate for sensor 7.
            let der = honeysens_core::pki::pem_to_der(&record.cert_pem).expect("issued PEM parses");
            let info = honeysens_core::pki::inspect(&der).expect("issued certificate parses");
            assert_eq!(info.sensor_id, Some(SensorId(7)));
            assert!(!info.is_ca);
            assert!(info.client_auth);
        }
    }
});
