//! The internal certificate authority: the server is the root of trust for every sensor.
//!
//! One self-signed ECDSA P-256 CA (stored as a [`CaRecord`], created once on first start)
//! issues
//! - the server's TLS certificate ([`CertificateAuthority::issue_server`]),
//! - sensor client certificates, either with a key the server generates
//!   ([`CertificateAuthority::issue_sensor`]) or for a key the sensor keeps and proves with a
//!   CSR ([`CertificateAuthority::sign_sensor_csr`]),
//! - and the CRL that lists revoked certificates ([`CertificateAuthority::crl_der`]).
//!
//! A sensor is identified by the decimal sensor id in its certificate's common name. The
//! subject, SANs, extensions, validity and CA flag a CSR asks for are therefore **never
//! trusted**: a CSR only proves possession of a key, and every certificate is built from fresh
//! parameters the server chooses (CN = the sensor id it is enrolling, EKU clientAuth only, not a
//! CA). Otherwise a sensor could ask for another sensor's id, a server name or a CA flag.
//!
//! Every certificate gets an explicit random 127-bit serial, because rcgen's default serial is
//! derived from the public key and would repeat when a sensor re-enrolls the same key.
//! Serials are recorded as lowercase hex of the serial's value (no leading zero bytes), which is
//! exactly what [`inspect`] reports, so records, CRLs and presented certificates can be matched.

use crate::ids::SensorId;
use crate::model::{CaRecord, IssuedCertificate};
use crate::store::CertificateStore;
use crate::time::Timestamp;
use chrono::{DateTime, TimeDelta, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, PublicKeyData, RevokedCertParams, SanType, SerialNumber,
    SubjectPublicKeyInfo,
};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};
use x509_parser::pem::Pem;
use x509_parser::prelude::FromDer;

/// Default validity of sensor certificates, in days.
pub const SENSOR_CERT_DAYS: i64 = 365;
/// Validity of the server's TLS certificate, in days (the CA/Browser Forum's former maximum).
pub const SERVER_CERT_DAYS: i64 = 825;
/// Validity of the CA certificate, in days.
pub const CA_CERT_DAYS: i64 = 3650;
/// Sensors get a new certificate this many days before the current one expires.
pub const RENEW_BEFORE_DAYS: i64 = 30;

/// `notBefore` is set this far in the past so that a peer whose clock lags a little still
/// accepts a certificate issued just now.
const CLOCK_SKEW: TimeDelta = TimeDelta::hours(1);
/// Organisation written into every subject this CA creates.
const ORGANIZATION: &str = "HoneySens";
/// Bytes of randomness in a serial (RFC 5280 allows at most 20 octets).
const SERIAL_LEN: usize = 16;

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// Key generation, certificate or CRL signing failed, or a stored record is unusable (e.g.
    /// a serial that is not hex, a negative validity). Server-side fault; the text is for logs.
    #[error("certificate generation failed: {0}")]
    Generate(String),
    /// The CSR is not valid PEM/DER or its self-signature does not verify.
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(String),
    /// The CSR's key type is not accepted (only ECDSA P-256 and Ed25519 are).
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// A PEM block, certificate or private key could not be parsed, or a CA record's key does
    /// not match its certificate.
    #[error("invalid PEM or certificate: {0}")]
    InvalidPem(String),
    /// The certificate parsed but is not acceptable as a sensor client certificate: not issued
    /// by this CA, outside its validity, a CA certificate, or without EKU clientAuth.
    #[error("certificate rejected: {0}")]
    Rejected(String),
    /// The certificate store failed.
    #[error(transparent)]
    Store(#[from] crate::Error),
}

impl From<PkiError> for crate::Error {
    fn from(e: PkiError) -> Self {
        // Parser details stay in the PkiError (for logs); clients get fixed, safe messages.
        match e {
            PkiError::InvalidCsr(_) => crate::Error::invalid(
                "csr",
                "invalid_csr",
                "not a valid certificate signing request or its signature does not verify",
            ),
            PkiError::UnsupportedKey(_) => crate::Error::invalid(
                "csr",
                "unsupported_key",
                "only ECDSA P-256 and Ed25519 keys are accepted",
            ),
            PkiError::InvalidPem(_) => {
                crate::Error::invalid("pem", "invalid_pem", "not a valid PEM certificate")
            }
            PkiError::Rejected(_) => crate::Error::invalid(
                "certificate",
                "untrusted",
                "the certificate is not a valid client certificate of this server",
            ),
            PkiError::Store(e) => e,
            e @ PkiError::Generate(_) => crate::Error::Storage(Box::new(e)),
        }
    }
}

/// A certificate together with the private key the server generated for it.
pub struct IssuedKeyPair {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8). Secret: hand it only to its owner.
    pub key_pem: String,
    /// What to record in the [`CertificateStore`].
    pub record: IssuedCertificate,
}

impl std::fmt::Debug for IssuedKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKeyPair")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .field("record", &self.record)
            .finish()
    }
}

/// What a certificate says, as far as HoneySens cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The sensor id from the subject CN, if the CN is exactly one positive decimal number.
    pub sensor_id: Option<SensorId>,
    /// Serial number, lowercase hex without leading zero bytes (as in [`IssuedCertificate`]).
    pub serial: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub fingerprint: String,
    /// Start of validity.
    pub not_before: Timestamp,
    /// End of validity.
    pub not_after: Timestamp,
    /// Whether BasicConstraints says CA.
    pub is_ca: bool,
    /// Whether the extended key usage explicitly lists clientAuth.
    pub client_auth: bool,
}

/// The CA: its signing key (inside the rcgen [`Issuer`]) and its certificate.
pub struct CertificateAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    cert_der: Vec<u8>,
    /// How CRLs name the CA's key (authority key identifier): the CA's own subject key
    /// identifier, so CRLs always match the CA certificate.
    crl_key_id: KeyIdMethod,
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key; the fingerprint identifies the CA.
        f.debug_struct("CertificateAuthority")
            .field("fingerprint", &fingerprint(&self.cert_der))
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Creates a new self-signed CA: CN `common_name`, O "HoneySens", BasicConstraints CA with
    /// path length 0, KeyUsage keyCertSign + cRLSign + digitalSignature, ECDSA P-256 key, random
    /// serial, valid for [`CA_CERT_DAYS`]. Returns the CA and the record to store.
    pub fn generate(common_name: &str) -> Result<(Self, CaRecord), PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
        let (not_before, not_after) = validity(CA_CERT_DAYS)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(common_name);
        // pathlen 0: the CA signs end-entity certificates only, never intermediates.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial()?);
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;
        let cert = params.self_signed(&key).map_err(gen_err)?;
        let record = CaRecord {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            created_at: crate::time::now(),
        };
        // Build through the same path as a loaded CA, so both behave identically.
        let ca = Self::from_parts(cert.der().to_vec(), record.cert_pem.clone(), key)?;
        Ok((ca, record))
    }

    /// Restores a CA from its stored record; fails if the key does not match the certificate
    /// or the certificate is not a CA.
    pub fn from_record(record: &CaRecord) -> Result<Self, PkiError> {
        let der = pem_to_der(&record.cert_pem)?;
        let key = KeyPair::from_pem(&record.key_pem)
            .map_err(|e| PkiError::InvalidPem(format!("CA private key: {e}")))?;
        Self::from_parts(der, record.cert_pem.clone(), key)
    }

    fn from_parts(cert_der: Vec<u8>, cert_pem: String, key: KeyPair) -> Result<Self, PkiError> {
        let cert = parse_cert(&cert_der)?;
        if cert.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(PkiError::InvalidPem(
                "CA private key does not match the CA certificate".into(),
            ));
        }
        if !cert.is_ca() {
            return Err(PkiError::InvalidPem(
                "the CA certificate is not a CA".into(),
            ));
        }
        let crl_key_id = cert
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                x509_parser::extensions::ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
                }
                _ => None,
            })
            .unwrap_or(KeyIdMethod::Sha256);
        let issuer = Issuer::from_ca_cert_der(&cert_der.as_slice().into(), key)
            .map_err(|e| PkiError::InvalidPem(format!("CA certificate: {e}")))?;
        Ok(Self {
            issuer,
            cert_pem,
            cert_der,
            crl_key_id,
        })
    }

    /// Loads the stored CA or creates one. Creation goes through
    /// [`CertificateStore::init_ca`], so replicas starting at the same time agree on one CA
    /// (the first writer wins); the CA in force is returned.
    pub async fn load_or_create(
        store: &dyn CertificateStore,
        common_name: &str,
    ) -> Result<Self, PkiError> {
        if let Some(record) = store.get_ca().await? {
            return Self::from_record(&record);
        }
        let (ca, record) = Self::generate(common_name)?;
        let in_force = store.init_ca(&record).await?;
        if in_force.cert_pem == record.cert_pem {
            Ok(ca)
        } else {
            // Another replica won the race: use its CA, discard ours.
            Self::from_record(&in_force)
        }
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Issues the server's TLS certificate for the given DNS names and IP addresses (as SANs;
    /// at least one is required): EKU serverAuth, not a CA, fresh P-256 key, random serial,
    /// valid for [`SERVER_CERT_DAYS`]. The record has no sensor.
    pub fn issue_server(
        &self,
        dns_names: &[String],
        ips: &[IpAddr],
    ) -> Result<IssuedKeyPair, PkiError> {
        if dns_names.is_empty() && ips.is_empty() {
            return Err(PkiError::Generate(
                "a server certificate needs at least one DNS name or IP address".into(),
            ));
        }
        let mut sans = Vec::with_capacity(dns_names.len() + ips.len());
        for name in dns_names {
            let name = name
                .clone()
                .try_into()
                .map_err(|e| PkiError::Generate(format!("DNS name {name:?}: {e}")))?;
            sans.push(SanType::DnsName(name));
        }
        sans.extend(ips.iter().copied().map(SanType::IpAddress));
        // Clients match SANs, not the CN; the CN only makes the certificate readable.
        let cn = dns_names
            .first()
            .cloned()
            .or_else(|| ips.first().map(IpAddr::to_string))
            .unwrap_or_default();
        let mut params = self.leaf_params(&cn, SERVER_CERT_DAYS)?;
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue_with_new_key(params, None)
    }

    /// Issues a sensor client certificate with a key the server generates (P-256): CN = the
    /// sensor id in decimal, EKU clientAuth only, KeyUsage digitalSignature, not a CA, random
    /// serial, valid for `days` (usually [`SENSOR_CERT_DAYS`]).
    pub fn issue_sensor(&self, sensor: SensorId, days: i64) -> Result<IssuedKeyPair, PkiError> {
        let params = self.sensor_params(sensor, days)?;
        self.issue_with_new_key(params, Some(sensor))
    }

    /// Issues a sensor client certificate for the key in a PEM CSR, for sensors that keep their
    /// own key. The CSR's self-signature must verify and its key must be ECDSA P-256 or Ed25519
    /// (others fail with [`PkiError::UnsupportedKey`]; P-384 in particular because rcgen#448
    /// produces broken certificates for it). Only the CSR's public key is used: subject, SANs,
    /// extensions, validity and CA flag it asks for are ignored, and the certificate is built
    /// exactly as in [`issue_sensor`](Self::issue_sensor).
    pub fn sign_sensor_csr(
        &self,
        sensor: SensorId,
        csr_pem: &str,
        days: i64,
    ) -> Result<IssuedCertificate, PkiError> {
        let der = pem_block(csr_pem, &["CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"])
            .map_err(PkiError::InvalidCsr)?;
        self.sign_sensor_csr_der(sensor, &der, days)
    }

    fn sign_sensor_csr_der(
        &self,
        sensor: SensorId,
        csr_der: &[u8],
        days: i64,
    ) -> Result<IssuedCertificate, PkiError> {
        let (rest, csr) = X509CertificationRequest::from_der(csr_der)
            .map_err(|e| PkiError::InvalidCsr(format!("parse: {e}")))?;
        if !rest.is_empty() {
            return Err(PkiError::InvalidCsr("trailing data after the CSR".into()));
        }
        // Check the key type first: a signature by an unsupported key should say so.
        let spki = &csr.certification_request_info.subject_pki;
        let alg = &spki.algorithm;
        let accepted = if alg.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
            alg.parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .is_some_and(|curve| curve == OID_EC_P256)
        } else {
            alg.algorithm == OID_SIG_ED25519
        };
        if !accepted {
            return Err(PkiError::UnsupportedKey(format!(
                "key algorithm {} is not ECDSA P-256 or Ed25519",
                alg.algorithm
            )));
        }
        csr.verify_signature()
            .map_err(|e| PkiError::InvalidCsr(format!("signature: {e}")))?;
        let public_key = SubjectPublicKeyInfo::from_der(spki.raw)
            .map_err(|e| PkiError::UnsupportedKey(format!("public key: {e}")))?;

        let params = self.sensor_params(sensor, days)?;
        let cert = params
            .signed_by(&public_key, &self.issuer)
            .map_err(gen_err)?;
        // Guard against rcgen re-encoding the key differently (as in rcgen#448): the
        // certificate must carry exactly the key the sensor proved it holds.
        let issued = parse_cert(cert.der())?;
        if issued.public_key().raw != spki.raw {
            return Err(PkiError::Generate(
                "issued certificate does not carry the CSR's public key".into(),
            ));
        }
        record_for(cert.der(), cert.pem(), Some(sensor))
    }

    /// A DER CRL signed by the CA that lists `revoked` (serials as in [`IssuedCertificate`];
    /// revocation time `revoked_at`, or now if unset), with this_update = now, next_update = now
    /// + 1 day and the given CRL number.
    pub fn crl_der(
        &self,
        revoked: &[IssuedCertificate],
        crl_number: u64,
    ) -> Result<Vec<u8>, PkiError> {
        let now = now_secs();
        let mut revoked_certs = Vec::with_capacity(revoked.len());
        for cert in revoked {
            let serial = hex::decode(&cert.serial).map_err(|e| {
                PkiError::Generate(format!("stored serial {:?} is not hex: {e}", cert.serial))
            })?;
            revoked_certs.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: to_offset(cert.revoked_at.unwrap_or(now))?,
                reason_code: None,
                invalidity_date: None,
            });
        }
        let params = CertificateRevocationListParams {
            this_update: to_offset(now)?,
            next_update: to_offset(now + TimeDelta::days(1))?,
            crl_number: SerialNumber::from_slice(&crl_number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: self.crl_key_id.clone(),
        };
        let crl = params.signed_by(&self.issuer).map_err(gen_err)?;
        Ok(crl.der().to_vec())
    }

    /// Verifies that `der` is a sensor client certificate of this CA at time `now`: signed by
    /// this CA (which must itself be valid), within its validity, not a CA, EKU clientAuth.
    /// Returns what it says. For certificates the TLS layer did not verify, e.g. those a trusted
    /// proxy forwards in a header. Revocation is not checked here: look the serial up in the
    /// store.
    pub fn verify_client(&self, der: &[u8], now: Timestamp) -> Result<CertInfo, PkiError> {
        let info = inspect(der)?;
        let cert = parse_cert(der)?;
        let ca = parse_cert(&self.cert_der)?;
        if cert.issuer().as_raw() != ca.subject().as_raw() {
            return Err(PkiError::Rejected("issued by another CA".into()));
        }
        cert.verify_signature(Some(ca.public_key()))
            .map_err(|_| PkiError::Rejected("signature does not verify with this CA".into()))?;
        let ca_info = inspect(&self.cert_der)?;
        if now < ca_info.not_before || now > ca_info.not_after {
            return Err(PkiError::Rejected(
                "the CA certificate is not valid now".into(),
            ));
        }
        if now < info.not_before {
            return Err(PkiError::Rejected("not yet valid".into()));
        }
        if now > info.not_after {
            return Err(PkiError::Rejected("expired".into()));
        }
        if info.is_ca {
            return Err(PkiError::Rejected("a CA certificate".into()));
        }
        if !info.client_auth {
            return Err(PkiError::Rejected(
                "no clientAuth extended key usage".into(),
            ));
        }
        Ok(info)
    }

    /// Parameters shared by every end-entity certificate: subject, validity, serial, AKI,
    /// digitalSignature, explicitly not a CA.
    fn leaf_params(&self, common_name: &str, days: i64) -> Result<CertificateParams, PkiError> {
        let (not_before, not_after) = validity(days)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.serial_number = Some(random_serial()?);
        params.not_before = to_offset(not_before)?;
        params.not_after = to_offset(not_after)?;
        // AKI lets verifiers pick the right CA key, e.g. across a future CA rollover.
        params.use_authority_key_identifier_extension = true;
        Ok(params)
    }

    fn sensor_params(&self, sensor: SensorId, days: i64) -> Result<CertificateParams, PkiError> {
        // Only positive ids round-trip through `inspect`, which reads the CN back.
        if sensor.0 < 1 {
            return Err(PkiError::Generate(format!("invalid sensor id {sensor}")));
        }
        let mut params = self.leaf_params(&sensor.to_string(), days)?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        Ok(params)
    }

    fn issue_with_new_key(
        &self,
        params: CertificateParams,
        sensor: Option<SensorId>,
    ) -> Result<IssuedKeyPair, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(gen_err)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(gen_err)?;
        let cert_pem = cert.pem();
        let record = record_for(cert.der(), cert_pem.clone(), sensor)?;
        Ok(IssuedKeyPair {
            cert_pem,
            key_pem: key.serialize_pem(),
            record,
        })
    }
}

/// Lowercase hex SHA-256 of a DER certificate.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The DER of the first `CERTIFICATE` block in a PEM string (other blocks, such as keys, are
/// skipped); fails if there is none or it does not parse as a certificate.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    let der = pem_block(pem, &["CERTIFICATE"]).map_err(PkiError::InvalidPem)?;
    parse_cert(&der)?;
    Ok(der)
}

/// Reads what a DER certificate says. Verifies nothing: use it on certificates the TLS layer
/// verified, or through [`CertificateAuthority::verify_client`].
pub fn inspect(der: &[u8]) -> Result<CertInfo, PkiError> {
    let cert = parse_cert(der)?;
    let mut cns = cert.subject().iter_common_name();
    // Exactly one CN: with several, which one names the sensor would be ambiguous.
    let sensor_id = match (cns.next(), cns.next()) {
        (Some(cn), None) => cn.as_str().ok().and_then(parse_sensor_id),
        _ => None,
    };
    let is_ca = cert
        .basic_constraints()
        .map_err(|e| PkiError::InvalidPem(format!("basic constraints: {e}")))?
        .is_some_and(|bc| bc.value.ca);
    let client_auth = cert
        .extended_key_usage()
        .map_err(|e| PkiError::InvalidPem(format!("extended key usage: {e}")))?
        .is_some_and(|eku| eku.value.client_auth);
    let validity = cert.validity();
    Ok(CertInfo {
        sensor_id,
        serial: serial_hex(cert.raw_serial()),
        fingerprint: fingerprint(der),
        not_before: from_unix(validity.not_before.timestamp())?,
        not_after: from_unix(validity.not_after.timestamp())?,
        is_ca,
        client_auth,
    })
}

/// Whether a certificate expiring at `not_after` should be renewed at `now`, i.e. it expires
/// within [`RENEW_BEFORE_DAYS`] (or already has).
pub fn needs_renewal(not_after: Timestamp, now: Timestamp) -> bool {
    match not_after.checked_sub_signed(TimeDelta::days(RENEW_BEFORE_DAYS)) {
        Some(renew_at) => now >= renew_at,
        None => true,
    }
}

fn gen_err(e: rcgen::Error) -> PkiError {
    PkiError::Generate(e.to_string())
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, ORGANIZATION);
    dn
}

/// 16 random bytes, positive (top bit clear) and without a leading zero byte, so the DER
/// encoding and the hex string both hold exactly these 16 bytes.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let rng = SystemRandom::new();
    let mut bytes = [0u8; SERIAL_LEN];
    loop {
        rng.fill(&mut bytes)
            .map_err(|_| PkiError::Generate("system random number generator failed".into()))?;
        bytes[0] &= 0x7f;
        if bytes[0] != 0 {
            return Ok(SerialNumber::from_slice(&bytes));
        }
    }
}

/// Hex of a DER INTEGER's content without the sign-padding zero bytes.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex::encode(raw.get(start..).unwrap_or_default())
}

/// A CN that is a plain positive decimal number (no sign, no leading zero, fits in i64).
fn parse_sensor_id(cn: &str) -> Option<SensorId> {
    if cn.is_empty() || cn.starts_with('0') || !cn.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    cn.parse::<i64>().ok().map(SensorId)
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| PkiError::InvalidPem(format!("certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::InvalidPem(
            "trailing data after the certificate".into(),
        ));
    }
    Ok(cert)
}

/// The contents of the first PEM block whose label is one of `labels`.
fn pem_block(pem: &str, labels: &[&str]) -> Result<Vec<u8>, String> {
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| format!("PEM: {e}"))?;
        if labels.contains(&block.label.as_str()) {
            return Ok(block.contents);
        }
    }
    Err(format!("no {} PEM block", labels.join(" or ")))
}

/// Validity window starting now (minus [`CLOCK_SKEW`]) and ending `days` from now.
fn validity(days: i64) -> Result<(Timestamp, Timestamp), PkiError> {
    if days < 0 {
        return Err(PkiError::Generate(format!(
            "validity of {days} days is negative"
        )));
    }
    let now = now_secs();
    let not_after = TimeDelta::try_days(days)
        .and_then(|d| now.checked_add_signed(d))
        .ok_or_else(|| PkiError::Generate(format!("validity of {days} days is too long")))?;
    Ok((now - CLOCK_SKEW, not_after))
}

/// Now, truncated to whole seconds: X.509 times have no fractions, and records should equal
/// what `inspect` reads back.
fn now_secs() -> Timestamp {
    DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default()
}

fn to_offset(ts: Timestamp) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(ts.timestamp())
        .map_err(|e| PkiError::Generate(format!("time {ts} out of range: {e}")))
}

fn from_unix(secs: i64) -> Result<Timestamp, PkiError> {
    DateTime::from_timestamp(secs, 0)
        .ok_or_else(|| PkiError::InvalidPem(format!("time {secs} out of range")))
}

fn record_for(
    der: &[u8],
    cert_pem: String,
    sensor: Option<SensorId>,
) -> Result<IssuedCertificate, PkiError> {
    // Read the record back from the certificate itself, so it matches `inspect` exactly.
    let info = inspect(der)?;
    Ok(IssuedCertificate {
        serial: info.serial,
        sensor_id: sensor,
        fingerprint: info.fingerprint,
        not_before: info.not_before,
        not_after: info.not_after,
        cert_pem,
        revoked_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
    use std::sync::Mutex;
    use x509_parser::extensions::ParsedExtension;

    fn test_ca() -> CertificateAuthority {
        CertificateAuthority::generate("HoneySens CA").unwrap().0
    }

    fn cert(der: &[u8]) -> X509Certificate<'_> {
        parse_cert(der).unwrap()
    }

    fn cn_of(der: &[u8]) -> String {
        let c = cert(der);
        let cns: Vec<String> = c
            .subject()
            .iter_common_name()
            .map(|cn| cn.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(cns.len(), 1);
        cns[0].clone()
    }

    /// Chain validation as rustls does it: webpki with ring algorithms, `ca` as trust anchor.
    fn webpki_verify(
        ca: &CertificateAuthority,
        cert_pem: &str,
        usage: webpki::KeyUsage,
        crl: Option<&[u8]>,
    ) -> Result<(), webpki::Error> {
        let ca_der = CertificateDer::from(ca.cert_der().to_vec());
        let anchor = webpki::anchor_from_trusted_cert(&ca_der).unwrap();
        let ee_der = CertificateDer::from(pem_to_der(cert_pem).unwrap());
        let ee = webpki::EndEntityCert::try_from(&ee_der).unwrap();
        let crl_der = crl.map(|c| CertificateRevocationListDer::from(c.to_vec()));
        let crls: Vec<webpki::CertRevocationList<'_>> = crl_der
            .iter()
            .map(|der| {
                webpki::BorrowedCertRevocationList::from_der(der)
                    .unwrap()
                    .into()
            })
            .collect();
        let crl_refs: Vec<&webpki::CertRevocationList<'_>> = crls.iter().collect();
        let revocation = if crl_refs.is_empty() {
            None
        } else {
            Some(
                webpki::RevocationOptionsBuilder::new(&crl_refs)
                    .unwrap()
                    .build(),
            )
        };
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &[anchor],
            &[],
            UnixTime::now(),
            usage,
            revocation,
            None,
        )
        .map(|_| ())
    }

    #[test]
    fn generate_then_from_record_round_trip() {
        let (ca, record) = CertificateAuthority::generate("HoneySens CA").unwrap();
        assert!(record.key_pem.contains("PRIVATE KEY"));
        let restored = CertificateAuthority::from_record(&record).unwrap();
        assert_eq!(restored.cert_der(), ca.cert_der());
        assert_eq!(restored.cert_pem(), ca.cert_pem());
        assert_eq!(restored.cert_pem(), record.cert_pem);
        assert_eq!(pem_to_der(ca.cert_pem()).unwrap(), ca.cert_der());

        // The restored CA signs with the same key: its certificates chain to the original.
        let kp = restored
            .issue_sensor(SensorId(5), SENSOR_CERT_DAYS)
            .unwrap();
        webpki_verify(&ca, &kp.cert_pem, webpki::KeyUsage::client_auth(), None).unwrap();

        // The CA certificate has the promised shape.
        let c = cert(ca.cert_der());
        assert_eq!(cn_of(ca.cert_der()), "HoneySens CA");
        let org: Vec<&str> = c
            .subject()
            .iter_organization()
            .map(|o| o.as_str().unwrap())
            .collect();
        assert_eq!(org, ["HoneySens"]);
        let bc = c.basic_constraints().unwrap().unwrap();
        assert!(bc.value.ca);
        assert_eq!(bc.value.path_len_constraint, Some(0));
        let ku = c.key_usage().unwrap().unwrap().value;
        assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
        let info = inspect(ca.cert_der()).unwrap();
        assert!(info.is_ca);
        assert_eq!(info.sensor_id, None);
        let days = (info.not_after - info.not_before).num_days();
        assert_eq!(
            days, CA_CERT_DAYS,
            "one hour of backdating does not add a day"
        );
        assert_eq!(info.serial.len(), 2 * SERIAL_LEN);
    }

    #[test]
    fn from_record_rejects_mismatched_key_and_garbage() {
        let (_, a) = CertificateAuthority::generate("A").unwrap();
        let (_, b) = CertificateAuthority::generate("B").unwrap();
        let mixed = CaRecord {
            key_pem: b.key_pem.clone(),
            ..a.clone()
        };
        assert!(matches!(
            CertificateAuthority::from_record(&mixed),
            Err(PkiError::InvalidPem(_))
        ));
        let garbage = CaRecord {
            cert_pem: "nope".into(),
            ..a
        };
        assert!(matches!(
            CertificateAuthority::from_record(&garbage),
            Err(PkiError::InvalidPem(_))
        ));
    }

    #[test]
    fn issue_sensor_chains_and_inspects() {
        let ca = test_ca();
        let kp = ca.issue_sensor(SensorId(42), SENSOR_CERT_DAYS).unwrap();
        webpki_verify(&ca, &kp.cert_pem, webpki::KeyUsage::client_auth(), None).unwrap();
        // A client certificate must not be usable as a server certificate.
        assert!(webpki_verify(&ca, &kp.cert_pem, webpki::KeyUsage::server_auth(), None).is_err());

        let der = pem_to_der(&kp.cert_pem).unwrap();
        let info = inspect(&der).unwrap();
        assert_eq!(info.sensor_id, Some(SensorId(42)));
        assert_eq!(cn_of(&der), "42");
        assert!(info.client_auth);
        assert!(!info.is_ca);
        assert_eq!(info.serial, kp.record.serial);
        assert_eq!(info.fingerprint, kp.record.fingerprint);
        assert_eq!(info.fingerprint, fingerprint(&der));
        assert_eq!(info.not_before, kp.record.not_before);
        assert_eq!(info.not_after, kp.record.not_after);
        assert_eq!(kp.record.sensor_id, Some(SensorId(42)));
        assert_eq!(kp.record.cert_pem, kp.cert_pem);
        assert_eq!(kp.record.revoked_at, None);
        assert_eq!(
            (info.not_after - info.not_before).num_days(),
            SENSOR_CERT_DAYS
        );
        // The serial string is the certificate's serial, as x509-parser shows it.
        assert_eq!(
            info.serial,
            cert(&der).raw_serial_as_string().replace(':', "")
        );

        // Only EKU clientAuth, KeyUsage digitalSignature, no SANs.
        let c = cert(&der);
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth && !eku.any && eku.other.is_empty());
        let ku = c.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign() && !ku.crl_sign());
        assert!(c.subject_alternative_name().unwrap().is_none());

        // The key belongs to the certificate.
        let key = KeyPair::from_pem(&kp.key_pem).unwrap();
        assert_eq!(c.public_key().raw, key.subject_public_key_info().as_slice());
    }

    #[test]
    fn serials_are_random_positive_and_unique() {
        let ca = test_ca();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20 {
            let rec = ca.issue_sensor(SensorId(1), 1).unwrap().record;
            assert_eq!(rec.serial.len(), 32);
            let first = u8::from_str_radix(&rec.serial[..2], 16).unwrap();
            assert!(first != 0 && first < 0x80);
            assert!(seen.insert(rec.serial));
        }
        assert_eq!(serial_hex(&[0x00, 0x80, 0x01]), "8001");
        assert_eq!(serial_hex(&[0x00]), "00");
    }

    #[test]
    fn issue_server_verifies_for_server_auth_and_names() {
        let ca = test_ca();
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        let kp = ca
            .issue_server(&["honeysens.example".to_string()], &[ip])
            .unwrap();
        assert_eq!(kp.record.sensor_id, None);
        webpki_verify(&ca, &kp.cert_pem, webpki::KeyUsage::server_auth(), None).unwrap();
        assert!(webpki_verify(&ca, &kp.cert_pem, webpki::KeyUsage::client_auth(), None).is_err());

        let der = CertificateDer::from(pem_to_der(&kp.cert_pem).unwrap());
        let ee = webpki::EndEntityCert::try_from(&der).unwrap();
        let dns = ServerName::try_from("honeysens.example").unwrap();
        ee.verify_is_valid_for_subject_name(&dns).unwrap();
        ee.verify_is_valid_for_subject_name(&ServerName::from(ip))
            .unwrap();
        let other = ServerName::try_from("other.example").unwrap();
        assert!(ee.verify_is_valid_for_subject_name(&other).is_err());
        let other_ip: IpAddr = "192.0.2.11".parse().unwrap();
        assert!(
            ee.verify_is_valid_for_subject_name(&ServerName::from(other_ip))
                .is_err()
        );

        let info = inspect(&der).unwrap();
        assert!(!info.is_ca && !info.client_auth);
        assert_eq!(info.serial, kp.record.serial);
        assert_eq!(
            (info.not_after - info.not_before).num_days(),
            SERVER_CERT_DAYS
        );

        assert!(matches!(
            ca.issue_server(&[], &[]),
            Err(PkiError::Generate(_))
        ));
    }

    /// A CSR for a fresh key that asks for everything a sensor must not get.
    fn hostile_csr(alg: &'static rcgen::SignatureAlgorithm) -> (String, KeyPair) {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "999");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        (csr, key)
    }

    #[test]
    fn sign_sensor_csr_uses_only_the_public_key() {
        let ca = test_ca();
        let (csr_pem, key) = hostile_csr(&PKCS_ECDSA_P256_SHA256);

        // The CSR really asks for CN=999, a CA flag and the SAN: otherwise this test is void.
        let csr_der = pem_block(&csr_pem, &["CERTIFICATE REQUEST"]).unwrap();
        let (_, csr) = X509CertificationRequest::from_der(&csr_der).unwrap();
        let asked: Vec<&ParsedExtension<'_>> = csr.requested_extensions().unwrap().collect();
        assert!(
            asked
                .iter()
                .any(|e| matches!(e, ParsedExtension::BasicConstraints(bc) if bc.ca))
        );
        assert!(
            asked
                .iter()
                .any(|e| matches!(e, ParsedExtension::SubjectAlternativeName(_)))
        );

        let rec = ca.sign_sensor_csr(SensorId(7), &csr_pem, 30).unwrap();
        assert_eq!(rec.sensor_id, Some(SensorId(7)));
        let der = pem_to_der(&rec.cert_pem).unwrap();
        assert_eq!(cn_of(&der), "7");
        let c = cert(&der);
        assert!(!c.is_ca());
        let bc = c.basic_constraints().unwrap().unwrap();
        assert!(!bc.value.ca);
        assert!(c.subject_alternative_name().unwrap().is_none());
        assert!(!rec.cert_pem.is_empty());
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert_eq!(c.public_key().raw, key.subject_public_key_info().as_slice());
        assert_eq!((rec.not_after - rec.not_before).num_days(), 30);

        let info = inspect(&der).unwrap();
        assert_eq!(info.sensor_id, Some(SensorId(7)));
        assert_eq!(info.serial, rec.serial);
        assert_eq!(info.fingerprint, rec.fingerprint);
        webpki_verify(&ca, &rec.cert_pem, webpki::KeyUsage::client_auth(), None).unwrap();
        assert!(webpki_verify(&ca, &rec.cert_pem, webpki::KeyUsage::server_auth(), None).is_err());

        // Re-enrolling the same key yields a new serial (rcgen's default would repeat it).
        let again = ca.sign_sensor_csr(SensorId(7), &csr_pem, 30).unwrap();
        assert_ne!(again.serial, rec.serial);
    }

    #[test]
    fn sign_sensor_csr_accepts_ed25519() {
        let ca = test_ca();
        let (csr_pem, key) = hostile_csr(&rcgen::PKCS_ED25519);
        let rec = ca
            .sign_sensor_csr(SensorId(8), &csr_pem, SENSOR_CERT_DAYS)
            .unwrap();
        let der = pem_to_der(&rec.cert_pem).unwrap();
        assert_eq!(
            cert(&der).public_key().raw,
            key.subject_public_key_info().as_slice()
        );
        webpki_verify(&ca, &rec.cert_pem, webpki::KeyUsage::client_auth(), None).unwrap();
    }

    #[test]
    fn sign_sensor_csr_rejects_p384() {
        let ca = test_ca();
        let (csr_pem, _) = hostile_csr(&rcgen::PKCS_ECDSA_P384_SHA384);
        let err = ca.sign_sensor_csr(SensorId(7), &csr_pem, 30).unwrap_err();
        assert!(matches!(err, PkiError::UnsupportedKey(_)), "{err:?}");
    }

    #[test]
    fn sign_sensor_csr_rejects_tampered_and_garbage() {
        let ca = test_ca();
        let (csr_pem, _) = hostile_csr(&PKCS_ECDSA_P256_SHA256);
        let mut der = pem_block(&csr_pem, &["CERTIFICATE REQUEST"]).unwrap();
        // Change the requested CN from 999 to 998: still parses, signature no longer matches.
        let at = der.windows(3).position(|w| w == b"999").unwrap();
        der[at + 2] = b'8';
        assert!(X509CertificationRequest::from_der(&der).is_ok());
        let err = ca.sign_sensor_csr_der(SensorId(7), &der, 30).unwrap_err();
        assert!(matches!(err, PkiError::InvalidCsr(_)), "{err:?}");

        for garbage in [
            "",
            "not a csr",
            "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            ca.cert_pem(),
        ] {
            let err = ca.sign_sensor_csr(SensorId(7), garbage, 30).unwrap_err();
            assert!(
                matches!(err, PkiError::InvalidCsr(_)),
                "{garbage:?}: {err:?}"
            );
        }
    }

    #[test]
    fn crl_lists_exactly_the_revoked_serials() {
        let ca = test_ca();
        let kept = ca.issue_sensor(SensorId(1), SENSOR_CERT_DAYS).unwrap();
        let mut gone1 = ca.issue_sensor(SensorId(2), SENSOR_CERT_DAYS).unwrap();
        let gone2 = ca.issue_server(&["srv.example".into()], &[]).unwrap();
        let revoked_at = now_secs() - TimeDelta::hours(2);
        gone1.record.revoked_at = Some(revoked_at);
        let revoked = [gone1.record.clone(), gone2.record.clone()];

        let crl_der = ca.crl_der(&revoked, 7).unwrap();
        let (rest, crl) = x509_parser::parse_x509_crl(&crl_der).unwrap();
        assert!(rest.is_empty());
        let ca_cert = cert(ca.cert_der());
        assert_eq!(crl.issuer().as_raw(), ca_cert.subject().as_raw());
        crl.verify_signature(ca_cert.public_key()).unwrap();
        assert_eq!(crl.crl_number().map(|n| n.to_string()), Some("7".into()));
        let next = crl.next_update().unwrap().timestamp();
        assert_eq!(next - crl.last_update().timestamp(), 86_400);

        let mut listed: Vec<String> = crl
            .iter_revoked_certificates()
            .map(|r| serial_hex(r.raw_serial()))
            .collect();
        listed.sort();
        let mut expected = vec![gone1.record.serial.clone(), gone2.record.serial.clone()];
        expected.sort();
        assert_eq!(listed, expected);
        let first = crl
            .iter_revoked_certificates()
            .find(|r| serial_hex(r.raw_serial()) == gone1.record.serial)
            .unwrap();
        assert_eq!(first.revocation_date.timestamp(), revoked_at.timestamp());

        // rustls' verifier (webpki) accepts the CRL and refuses exactly the revoked ones.
        webpki_verify(
            &ca,
            &kept.cert_pem,
            webpki::KeyUsage::client_auth(),
            Some(&crl_der),
        )
        .unwrap();
        assert_eq!(
            webpki_verify(
                &ca,
                &gone1.cert_pem,
                webpki::KeyUsage::client_auth(),
                Some(&crl_der)
            ),
            Err(webpki::Error::CertRevoked)
        );

        // An empty CRL is valid too.
        let empty = ca.crl_der(&[], 8).unwrap();
        let (_, crl) = x509_parser::parse_x509_crl(&empty).unwrap();
        assert_eq!(crl.iter_revoked_certificates().count(), 0);

        let bad = IssuedCertificate {
            serial: "xyz".into(),
            ..kept.record
        };
        assert!(matches!(ca.crl_der(&[bad], 9), Err(PkiError::Generate(_))));
    }

    #[test]
    fn verify_client_accepts_own_sensor_certificate() {
        let ca = test_ca();
        let kp = ca.issue_sensor(SensorId(3), SENSOR_CERT_DAYS).unwrap();
        let der = pem_to_der(&kp.cert_pem).unwrap();
        let info = ca.verify_client(&der, crate::time::now()).unwrap();
        assert_eq!(info.sensor_id, Some(SensorId(3)));
        assert_eq!(info.serial, kp.record.serial);
        assert_eq!(info.fingerprint, kp.record.fingerprint);
    }

    #[test]
    fn verify_client_rejects_foreign_expired_server_and_garbage() {
        let ca = test_ca();
        let now = crate::time::now();

        // Same CA name, different key: only the signature check can tell.
        let foreign = test_ca();
        let kp = foreign.issue_sensor(SensorId(3), SENSOR_CERT_DAYS).unwrap();
        let der = pem_to_der(&kp.cert_pem).unwrap();
        let err = ca.verify_client(&der, now).unwrap_err();
        assert!(matches!(err, PkiError::Rejected(_)), "{err:?}");
        let other = CertificateAuthority::generate("Other CA").unwrap().0;
        let kp = other.issue_sensor(SensorId(3), SENSOR_CERT_DAYS).unwrap();
        let der = pem_to_der(&kp.cert_pem).unwrap();
        assert!(matches!(
            ca.verify_client(&der, now),
            Err(PkiError::Rejected(_))
        ));

        // Expired: valid for 0 days, checked a minute after not_after.
        let kp = ca.issue_sensor(SensorId(3), 0).unwrap();
        let der = pem_to_der(&kp.cert_pem).unwrap();
        ca.verify_client(&der, kp.record.not_after).unwrap();
        let later = kp.record.not_after + TimeDelta::minutes(1);
        assert!(matches!(
            ca.verify_client(&der, later),
            Err(PkiError::Rejected(_))
        ));
        // Not yet valid.
        let kp = ca.issue_sensor(SensorId(3), SENSOR_CERT_DAYS).unwrap();
        let der = pem_to_der(&kp.cert_pem).unwrap();
        let before = kp.record.not_before - TimeDelta::minutes(1);
        assert!(matches!(
            ca.verify_client(&der, before),
            Err(PkiError::Rejected(_))
        ));

        // A server certificate of the same CA has no clientAuth.
        let kp = ca.issue_server(&["srv.example".into()], &[]).unwrap();
        let der = pem_to_der(&kp.cert_pem).unwrap();
        assert!(matches!(
            ca.verify_client(&der, now),
            Err(PkiError::Rejected(_))
        ));
        // Nor is the CA itself a client.
        assert!(matches!(
            ca.verify_client(ca.cert_der(), now),
            Err(PkiError::Rejected(_))
        ));

        assert!(matches!(
            ca.verify_client(b"garbage", now),
            Err(PkiError::InvalidPem(_))
        ));
    }

    #[test]
    fn validity_and_sensor_id_are_checked() {
        let ca = test_ca();
        assert!(matches!(
            ca.issue_sensor(SensorId(1), -1),
            Err(PkiError::Generate(_))
        ));
        assert!(matches!(
            ca.issue_sensor(SensorId(1), i64::MAX),
            Err(PkiError::Generate(_))
        ));
        assert!(matches!(
            ca.issue_sensor(SensorId(0), 1),
            Err(PkiError::Generate(_))
        ));
        assert_eq!(parse_sensor_id("12"), Some(SensorId(12)));
        for bad in [
            "",
            "012",
            "+12",
            "-12",
            "1a",
            "99999999999999999999",
            "１２",
        ] {
            assert_eq!(parse_sensor_id(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn renewal_window() {
        let now = crate::time::now();
        let days = TimeDelta::days;
        assert!(!needs_renewal(now + days(RENEW_BEFORE_DAYS + 1), now));
        assert!(needs_renewal(now + days(RENEW_BEFORE_DAYS), now));
        assert!(needs_renewal(now + days(1), now));
        assert!(needs_renewal(now - days(1), now));
        assert!(needs_renewal(DateTime::<Utc>::MIN_UTC, now));
    }

    #[test]
    fn pem_to_der_takes_the_first_certificate() {
        let ca = test_ca();
        let kp = ca.issue_sensor(SensorId(4), 1).unwrap();
        // Key first, then two certificates: the first certificate wins.
        let bundle = format!("{}{}{}", kp.key_pem, kp.cert_pem, ca.cert_pem());
        assert_eq!(
            pem_to_der(&bundle).unwrap(),
            pem_to_der(&kp.cert_pem).unwrap()
        );
        assert!(matches!(
            pem_to_der(&kp.key_pem),
            Err(PkiError::InvalidPem(_))
        ));
        assert!(matches!(pem_to_der("x"), Err(PkiError::InvalidPem(_))));
    }

    #[test]
    fn errors_map_to_safe_domain_errors() {
        let e: crate::Error = PkiError::InvalidCsr("nom error at byte 3".into()).into();
        assert_eq!(e.code(), "validation.failed");
        let crate::Error::Invalid(v) = &e else {
            unreachable!()
        };
        assert_eq!(v.0[0].field, "csr");
        assert!(!e.to_string().contains("nom"));
        let e: crate::Error = PkiError::UnsupportedKey("p384".into()).into();
        let crate::Error::Invalid(v) = &e else {
            unreachable!()
        };
        assert_eq!(
            (v.0[0].field.as_str(), v.0[0].code),
            ("csr", "unsupported_key")
        );
        let e: crate::Error = PkiError::InvalidPem("x".into()).into();
        let crate::Error::Invalid(v) = &e else {
            unreachable!()
        };
        assert_eq!(v.0[0].field, "pem");
        let e: crate::Error = PkiError::Generate("ring".into()).into();
        assert_eq!(e.kind(), crate::ErrorKind::Storage);
        let e: crate::Error = PkiError::Store(crate::Error::not_found("ca")).into();
        assert_eq!(e.code(), "ca.not_found");
    }

    #[test]
    fn debug_output_never_contains_keys() {
        let (ca, record) = CertificateAuthority::generate("HoneySens CA").unwrap();
        let kp = ca.issue_sensor(SensorId(1), 1).unwrap();
        assert!(!format!("{kp:?}").contains("PRIVATE KEY"));
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
        assert!(!format!("{record:?}").contains("PRIVATE KEY"));
        fn shareable<T: Send + Sync>() {}
        shareable::<CertificateAuthority>();
        shareable::<PkiError>();
    }

    /// Only the CA part of a store; `get_ca_sees_nothing` simulates losing the race between
    /// `get_ca` and `init_ca` to another replica.
    #[derive(Default)]
    struct FakeStore {
        ca: Mutex<Option<CaRecord>>,
        get_ca_sees_nothing: bool,
    }

    #[async_trait]
    impl CertificateStore for FakeStore {
        async fn get_ca(&self) -> crate::Result<Option<CaRecord>> {
            if self.get_ca_sees_nothing {
                return Ok(None);
            }
            Ok(self.ca.lock().unwrap().clone())
        }
        async fn init_ca(&self, ca: &CaRecord) -> crate::Result<CaRecord> {
            let mut slot = self.ca.lock().unwrap();
            Ok(slot.get_or_insert_with(|| ca.clone()).clone())
        }
        async fn record_certificate(&self, _: &IssuedCertificate) -> crate::Result<()> {
            Ok(())
        }
        async fn get_certificate_by_fingerprint(
            &self,
            _: &str,
        ) -> crate::Result<IssuedCertificate> {
            Err(crate::Error::not_found("certificate"))
        }
        async fn list_certificates(&self, _: SensorId) -> crate::Result<Vec<IssuedCertificate>> {
            Ok(Vec::new())
        }
        async fn revoke_certificate(&self, _: &str, _: Timestamp) -> crate::Result<()> {
            Ok(())
        }
        async fn list_revoked(&self, _: Timestamp) -> crate::Result<Vec<IssuedCertificate>> {
            Ok(Vec::new())
        }
    }

    #[tokio::test]
    async fn load_or_create_creates_once_then_loads() {
        let store = FakeStore::default();
        let first = CertificateAuthority::load_or_create(&store, "HoneySens CA")
            .await
            .unwrap();
        let stored = store.ca.lock().unwrap().clone().unwrap();
        assert_eq!(stored.cert_pem, first.cert_pem());
        let second = CertificateAuthority::load_or_create(&store, "HoneySens CA")
            .await
            .unwrap();
        assert_eq!(second.cert_der(), first.cert_der());
        // And it signs with the same key.
        let kp = second.issue_sensor(SensorId(1), 1).unwrap();
        let der = pem_to_der(&kp.cert_pem).unwrap();
        first.verify_client(&der, crate::time::now()).unwrap();
    }

    #[tokio::test]
    async fn load_or_create_uses_the_winner_of_a_race() {
        let (winner, record) = CertificateAuthority::generate("HoneySens CA").unwrap();
        let store = FakeStore {
            ca: Mutex::new(Some(record)),
            get_ca_sees_nothing: true,
        };
        let ca = CertificateAuthority::load_or_create(&store, "HoneySens CA")
            .await
            .unwrap();
        assert_eq!(ca.cert_der(), winner.cert_der());
    }

    #[tokio::test]
    async fn load_or_create_passes_store_errors_through() {
        struct Broken;
        #[async_trait]
        impl CertificateStore for Broken {
            async fn get_ca(&self) -> crate::Result<Option<CaRecord>> {
                Err(crate::Error::Storage("db down".into()))
            }
            async fn init_ca(&self, _: &CaRecord) -> crate::Result<CaRecord> {
                unreachable!()
            }
            async fn record_certificate(&self, _: &IssuedCertificate) -> crate::Result<()> {
                unreachable!()
            }
            async fn get_certificate_by_fingerprint(
                &self,
                _: &str,
            ) -> crate::Result<IssuedCertificate> {
                unreachable!()
            }
            async fn list_certificates(
                &self,
                _: SensorId,
            ) -> crate::Result<Vec<IssuedCertificate>> {
                unreachable!()
            }
            async fn revoke_certificate(&self, _: &str, _: Timestamp) -> crate::Result<()> {
                unreachable!()
            }
            async fn list_revoked(&self, _: Timestamp) -> crate::Result<Vec<IssuedCertificate>> {
                unreachable!()
            }
        }
        let err = CertificateAuthority::load_or_create(&Broken, "HoneySens CA")
            .await
            .unwrap_err();
        assert!(matches!(err, PkiError::Store(_)));
        assert_eq!(crate::Error::from(err).kind(), crate::ErrorKind::Storage);
    }
}
