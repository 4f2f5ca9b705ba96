//! The client certificate a trusted TLS-terminating proxy forwards in `X-Client-Cert`.
//!
//! Accepted forms: URL-encoded PEM (nginx `$ssl_client_escaped_cert`), PEM with its line breaks
//! replaced by spaces (as some proxies flatten headers), or bare base64 DER. The server verifies
//! the certificate itself; the proxy is only trusted to have seen the key.

use base64::Engine;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The header a trusted proxy uses to forward the client certificate.
pub const CLIENT_CERT_HEADER: &str = "x-client-cert";

/// Largest header value considered (a certificate is a few KiB).
pub const MAX_HEADER_LEN: usize = 16 * 1024;

/// Why the header could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// Longer than [`MAX_HEADER_LEN`].
    #[error("client certificate header too long")]
    TooLong,
    /// Not a certificate in any accepted form.
    #[error("client certificate header is not a certificate")]
    Malformed,
}

/// Extracts the DER certificate from the header value.
pub fn parse_client_cert_header(value: &[u8]) -> Result<Vec<u8>, HeaderError> {
    if value.len() > MAX_HEADER_LEN {
        return Err(HeaderError::TooLong);
    }
    let decoded: Vec<u8> = percent_encoding::percent_decode(value).collect();
    let text = std::str::from_utf8(&decoded)
        .map_err(|_| HeaderError::Malformed)?
        .trim();
    if let Some(body) = text.strip_prefix("-----BEGIN CERTIFICATE-----") {
        let body = body
            .split("-----END CERTIFICATE-----")
            .next()
            .ok_or(HeaderError::Malformed)?;
        // Rebuild a well-formed PEM whatever whitespace the proxy used.
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
        let der =
            CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| HeaderError::Malformed)?;
        return non_empty(der.to_vec());
    }
    let b64: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| HeaderError::Malformed)?;
    non_empty(der)
}

fn non_empty(der: Vec<u8>) -> Result<Vec<u8>, HeaderError> {
    // A DER certificate is a SEQUENCE; anything else is not worth handing to the parser.
    if der.len() < 16 || der.first() != Some(&0x30) {
        return Err(HeaderError::Malformed);
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0FGRQ==\n-----END CERTIFICATE-----\n";

    #[test]
    fn accepts_escaped_flattened_and_base64_forms() {
        let escaped: String =
            percent_encoding::utf8_percent_encode(PEM, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let a = parse_client_cert_header(escaped.as_bytes()).unwrap();
        let b = parse_client_cert_header(PEM.replace('\n', " ").as_bytes()).unwrap();
        let c = parse_client_cert_header(b"MIIBszCCAVmgAwIBAgIUQ0FGRQ==").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a[0], 0x30);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            parse_client_cert_header(b"hello"),
            Err(HeaderError::Malformed)
        );
        assert_eq!(
            parse_client_cert_header(b"%ff%fe"),
            Err(HeaderError::Malformed)
        );
        assert_eq!(
            parse_client_cert_header(b"-----BEGIN CERTIFICATE-----"),
            Err(HeaderError::Malformed)
        );
        assert_eq!(
            parse_client_cert_header(&vec![b'A'; MAX_HEADER_LEN + 1]),
            Err(HeaderError::TooLong)
        );
    }
}
