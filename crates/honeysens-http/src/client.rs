//! The sensor-side client of the sensor API (reqwest + rustls/ring, trusting only the
//! HoneySens CA).

use crate::hmac;
use crate::tls;
use honeysens_core::ids::SensorId;
use honeysens_core::protocol::{
    Downloaded, EventUploadResult, SensorSelf, StatusRequest, StatusResponse, Transport,
    TransportError,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::time::Duration;

/// HTTP methods for [`SensorClient::call`].
pub use reqwest::Method;

/// How the client authenticates.
#[derive(Clone)]
pub enum SensorAuth {
    /// A client certificate and its key, PEM.
    Certificate {
        /// Certificate, PEM.
        cert_pem: String,
        /// Key, PEM.
        key_pem: String,
    },
    /// Per-request HMAC with the sensor's secret.
    Hmac {
        /// The sensor.
        sensor_id: SensorId,
        /// Shared secret.
        secret: String,
    },
    /// Nothing (only unauthenticated endpoints will answer).
    None,
}

impl SensorAuth {
    /// The authentication for `sensor` holding `credentials` (from its bundle or a renewal).
    pub fn from_credentials(
        sensor: SensorId,
        credentials: &honeysens_core::protocol::SensorCredentials,
    ) -> SensorAuth {
        use honeysens_core::protocol::SensorCredentials;
        match credentials {
            SensorCredentials::Certificate {
                cert_pem, key_pem, ..
            } => SensorAuth::Certificate {
                cert_pem: cert_pem.clone(),
                key_pem: key_pem.clone(),
            },
            SensorCredentials::Hmac { secret } => SensorAuth::Hmac {
                sensor_id: sensor,
                secret: secret.clone(),
            },
        }
    }
}

impl std::fmt::Debug for SensorAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SensorAuth::Certificate { .. } => f.write_str("SensorAuth::Certificate"),
            SensorAuth::Hmac { sensor_id, .. } => write!(f, "SensorAuth::Hmac({sensor_id})"),
            SensorAuth::None => f.write_str("SensorAuth::None"),
        }
    }
}

/// One field the server's validation refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ApiFieldError {
    /// Dotted path of the field, e.g. `network.address`.
    pub field: String,
    /// Stable code, e.g. `out_of_range`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// TLS material (CA, certificate, key) is unusable.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The request could not be sent or the answer not received.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered with an error.
    #[error("server refused ({status}): {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The stable error code from the body (`unknown` if there was none).
        code: String,
        /// The server's message.
        message: String,
        /// Per-field validation failures.
        fields: Vec<ApiFieldError>,
    },
    /// The HMAC response signature is missing or wrong: the answer was not from our server.
    #[error("response signature invalid")]
    BadResponseSignature,
    /// The answer did not parse.
    #[error("malformed response: {0}")]
    Decode(String),
    /// A local file could not be written.
    #[error("local I/O: {0}")]
    Io(String),
}

/// Longest a [`SensorClient::download_to`] may take.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(3600);

impl ClientError {
    /// The error of a non-2xx answer, from its `{"error": …}` body when there is one.
    pub fn from_answer(status: u16, body: &[u8]) -> ClientError {
        #[derive(serde::Deserialize)]
        struct Body {
            error: Inner,
        }
        #[derive(serde::Deserialize)]
        struct Inner {
            code: String,
            #[serde(default)]
            message: String,
            #[serde(default)]
            fields: Vec<ApiFieldError>,
        }
        match serde_json::from_slice::<Body>(body) {
            Ok(b) => ClientError::Api {
                status,
                code: b.error.code,
                message: b.error.message,
                fields: b.error.fields,
            },
            Err(_) => ClientError::Api {
                status,
                code: "unknown".to_owned(),
                message: String::new(),
                fields: Vec::new(),
            },
        }
    }

    /// The stable error code of an API error, if this is one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status of an API error, if this is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Trust only the PEM certificates in `ca_pem`.
pub(crate) fn client_tls(
    ca_pem: &str,
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>, ClientError>
{
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|e| ClientError::Tls(e.to_string()))?;
        roots
            .add(cert)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Tls(e.to_string()))?
        .with_root_certificates(roots))
}

/// A client for the sensor API of one server.
#[derive(Debug, Clone)]
pub struct SensorClient {
    http: reqwest::Client,
    base: String,
    auth: SensorAuth,
}

impl SensorClient {
    /// A client for `base_url` (e.g. `https://honeysens.example.org:8443`) trusting only
    /// `ca_pem`. `proxy` is an HTTP proxy URL, optionally with `user:password@`.
    pub fn new(
        base_url: &str,
        ca_pem: &str,
        auth: SensorAuth,
        proxy: Option<&str>,
    ) -> Result<Self, ClientError> {
        let builder = client_tls(ca_pem)?;
        let mut config = match &auth {
            SensorAuth::Certificate { cert_pem, key_pem } => {
                let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
                    .map_err(|e| ClientError::Tls(e.to_string()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| ClientError::Tls(e.to_string()))?
            }
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let mut http = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .no_proxy();
        if let Some(proxy) = proxy {
            http = http.proxy(reqwest::Proxy::all(proxy)?);
        }
        Ok(SensorClient {
            http: http.build()?,
            base: base_url.trim_end_matches('/').to_owned(),
            auth,
        })
    }

    /// `GET /api/system/identify`.
    pub async fn identify(&self) -> Result<String, ClientError> {
        let body = self
            .call(reqwest::Method::GET, "/api/system/identify", None)
            .await?;
        String::from_utf8(body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET /api/sensors/self`.
    pub async fn whoami(&self) -> Result<SensorSelf, ClientError> {
        let body = self
            .call(reqwest::Method::GET, "/api/sensors/self", None)
            .await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `POST /api/sensors/status`.
    pub async fn send_status(&self, status: &StatusRequest) -> Result<StatusResponse, ClientError> {
        let body = serde_json::to_vec(status).map_err(|e| ClientError::Decode(e.to_string()))?;
        let answer = self
            .call(reqwest::Method::POST, "/api/sensors/status", Some(body))
            .await?;
        serde_json::from_slice(&answer).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `GET path` streamed into `dest` (created or truncated), asking for one of the `accept`
    /// media types. Signed in HMAC mode like every request; the answer's signature is not
    /// checked (it would need the whole body in memory first): downloads are content-addressed
    /// and the caller verifies the digest. A failed download leaves a partial `dest` behind.
    pub async fn download_to(
        &self,
        path: &str,
        accept: &[&str],
        dest: &std::path::Path,
    ) -> Result<Downloaded, ClientError> {
        use tokio::io::AsyncWriteExt;
        let mut req = self
            .http
            .get(format!("{}{path}", self.base))
            // Image layers can be large and a sensor's uplink slow: the client's 60 s total
            // timeout is for API calls, not for this.
            .timeout(DOWNLOAD_TIMEOUT);
        if !accept.is_empty() {
            req = req.header(reqwest::header::ACCEPT, accept.join(", "));
        }
        if let SensorAuth::Hmac { sensor_id, secret } = &self.auth {
            let ts = honeysens_core::time::now().timestamp();
            let n = hmac::new_nonce();
            let sig = hmac::sign_request(secret.as_bytes(), sensor_id.0, ts, &n, "GET", path, &[]);
            req = req
                .header(hmac::SENSOR_HEADER, sensor_id.0.to_string())
                .header(hmac::TIMESTAMP_HEADER, ts.to_string())
                .header(hmac::NONCE_HEADER, &n)
                .header(hmac::SIGNATURE_HEADER, sig);
        }
        let mut resp = req.send().await?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp.bytes().await?;
            return Err(ClientError::from_answer(status.as_u16(), &bytes));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let io = |e: std::io::Error| ClientError::Io(format!("{}: {e}", dest.display()));
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut size = 0u64;
        while let Some(chunk) = resp.chunk().await? {
            file.write_all(&chunk).await.map_err(io)?;
            size += chunk.len() as u64;
        }
        file.flush().await.map_err(io)?;
        file.sync_all().await.map_err(io)?;
        Ok(Downloaded { content_type, size })
    }

    /// Sends a request, signing it (and checking the answer's signature) in HMAC mode.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, ClientError> {
        let body = body.unwrap_or_default();
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if !body.is_empty() {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json");
        }
        let mut nonce = None;
        if let SensorAuth::Hmac { sensor_id, secret } = &self.auth {
            let ts = honeysens_core::time::now().timestamp();
            let n = hmac::new_nonce();
            let sig = hmac::sign_request(
                secret.as_bytes(),
                sensor_id.0,
                ts,
                &n,
                method.as_str(),
                path,
                &body,
            );
            req = req
                .header(hmac::SENSOR_HEADER, sensor_id.0.to_string())
                .header(hmac::TIMESTAMP_HEADER, ts.to_string())
                .header(hmac::NONCE_HEADER, &n)
                .header(hmac::SIGNATURE_HEADER, sig);
            nonce = Some(n);
        }
        let resp = req.body(body).send().await?;
        let status = resp.status();
        let signature = resp
            .headers()
            .get(hmac::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().await?.to_vec();
        if !status.is_success() {
            return Err(ClientError::from_answer(status.as_u16(), &bytes));
        }
        if let (SensorAuth::Hmac { secret, .. }, Some(n)) = (&self.auth, nonce) {
            let expected = hmac::sign_response(secret.as_bytes(), &n, status.as_u16(), &bytes);
            if !signature.is_some_and(|s| hmac::signatures_match(&expected, &s)) {
                return Err(ClientError::BadResponseSignature);
            }
        }
        Ok(bytes)
    }
}

/// A transport error from a client error: unreachable, 5xx and 429 are worth retrying; other
/// refusals are not.
fn transport_error(e: ClientError) -> TransportError {
    match e {
        ClientError::Transport(e) => TransportError::Unavailable(e.to_string()),
        ClientError::Api { status, .. } if status >= 500 || status == 429 => {
            TransportError::Unavailable(format!("server answered {status}"))
        }
        ClientError::Api { status, code, .. } => TransportError::Refused { status, code },
        ClientError::BadResponseSignature => TransportError::Refused {
            status: 0,
            code: "response.signature_invalid".to_owned(),
        },
        ClientError::Tls(m) => TransportError::Refused {
            status: 0,
            code: format!("tls: {m}"),
        },
        ClientError::Decode(m) => TransportError::Malformed(m),
        ClientError::Io(m) => TransportError::Io(m),
    }
}

#[async_trait::async_trait]
impl Transport for SensorClient {
    async fn poll(&self, status: &StatusRequest) -> Result<StatusResponse, TransportError> {
        self.send_status(status).await.map_err(transport_error)
    }

    async fn upload_events(&self, events: &[Vec<u8>]) -> Result<EventUploadResult, TransportError> {
        // The events are already serialised JSON objects: splice them, do not re-encode.
        let len = events.iter().map(|e| e.len() + 1).sum::<usize>() + 16;
        let mut body = Vec::with_capacity(len);
        body.extend_from_slice(b"{\"events\":[");
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(e);
        }
        body.extend_from_slice(b"]}");
        let answer = self
            .call(reqwest::Method::POST, "/api/sensors/events", Some(body))
            .await
            .map_err(transport_error)?;
        serde_json::from_slice(&answer).map_err(|e| TransportError::Malformed(e.to_string()))
    }

    async fn download(
        &self,
        path: &str,
        accept: &[&str],
        dest: &std::path::Path,
    ) -> Result<Downloaded, TransportError> {
        self.download_to(path, accept, dest)
            .await
            .map_err(transport_error)
    }
}
