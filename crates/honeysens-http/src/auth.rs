//! Sensor authentication: client certificate (direct or through a trusted proxy) or HMAC.
//!
//! Whatever the method, the sensor must exist, must be configured for that method, and a
//! certificate must be one the CA issued to it and not revoked — checked against the store,
//! with results kept for at most a second ([`crate::cache`]); a change through this server's
//! management API invalidates them, so deleting a sensor locks it out at once even before the
//! TLS layer's CRL is rebuilt.

use crate::error::ApiError;
use crate::hmac;
use crate::proxy_header::{self, CLIENT_CERT_HEADER};
use crate::server::{AppState, PeerInfo};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use honeysens_core::ids::SensorId;
use honeysens_core::model::SensorAuthMode;
use honeysens_core::pki::{self, CertInfo};
use honeysens_core::time::{Timestamp, now};

/// Largest sensor request body (event batches are the big ones).
pub const MAX_SENSOR_BODY: usize = 16 * 1024 * 1024;

/// How a sensor proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A client certificate presented in the TLS handshake.
    ClientCertificate {
        /// Certificate serial, lowercase hex.
        serial: String,
        /// End of validity, for renewal.
        not_after: Timestamp,
    },
    /// A client certificate forwarded by a trusted proxy and verified by the server.
    ProxyCertificate {
        /// Certificate serial, lowercase hex.
        serial: String,
        /// End of validity, for renewal.
        not_after: Timestamp,
    },
    /// A per-request HMAC signature.
    Hmac,
    /// The agent runs in the same process as the server ([`crate::inprocess`]).
    InProcess,
}

/// The authenticated sensor, available to handlers as a request extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorIdentity {
    /// The sensor.
    pub sensor_id: SensorId,
    /// How it authenticated.
    pub method: AuthMethod,
    /// The sensor as loaded while authenticating; handlers use it instead of loading it again.
    pub sensor: honeysens_core::model::Sensor,
}

fn refuse(code: &str, message: &str, peer: &PeerInfo) -> ApiError {
    tracing::warn!(remote = %peer.remote, code, "sensor request refused");
    ApiError::unauthorized(code, message)
}

/// Middleware for every `/api/sensors/*` route.
pub async fn sensor_auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(peer) = req.extensions().get::<PeerInfo>().cloned() else {
        tracing::error!("request without connection info");
        return ApiError::internal().into_response();
    };
    if let Some(value) = req.headers().get(CLIENT_CERT_HEADER) {
        if !st
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer.remote.ip()))
        {
            tracing::warn!(remote = %peer.remote, "client certificate header from an untrusted address");
            return ApiError::forbidden(
                "auth.untrusted_proxy",
                "this address may not forward client certificates",
            )
            .into_response();
        }
        let der = match proxy_header::parse_client_cert_header(value.as_bytes()) {
            Ok(der) => der,
            Err(_) => {
                return refuse(
                    "auth.invalid_certificate",
                    "the forwarded certificate is malformed",
                    &peer,
                )
                .into_response();
            }
        };
        let info = match st.ca.verify_client(&der, now()) {
            Ok(info) => info,
            Err(_) => {
                return refuse(
                    "auth.invalid_certificate",
                    "the forwarded certificate is not valid",
                    &peer,
                )
                .into_response();
            }
        };
        return match certificate_identity(&st, &info, true, &peer).await {
            Ok(id) => run(req, id, next).await,
            Err(e) => e.into_response(),
        };
    }
    if let Some(cert) = &peer.client_cert {
        // The TLS layer verified chain, validity, usage and CRL already.
        let info = match pki::inspect(cert) {
            Ok(info) => info,
            Err(_) => {
                return refuse(
                    "auth.invalid_certificate",
                    "the client certificate is unreadable",
                    &peer,
                )
                .into_response();
            }
        };
        return match certificate_identity(&st, &info, false, &peer).await {
            Ok(id) => run(req, id, next).await,
            Err(e) => e.into_response(),
        };
    }
    if req.headers().contains_key(hmac::SIGNATURE_HEADER) {
        return hmac_request(&st, req, next, &peer)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    refuse(
        "auth.required",
        "a client certificate or an HMAC signature is required",
        &peer,
    )
    .into_response()
}

async fn run(mut req: Request, id: SensorIdentity, next: Next) -> Response {
    req.extensions_mut().insert(id);
    next.run(req).await
}

async fn certificate_identity(
    st: &AppState,
    info: &CertInfo,
    via_proxy: bool,
    peer: &PeerInfo,
) -> Result<SensorIdentity, ApiError> {
    let (sensor_id, sensor) = match st.cache.cert(&info.fingerprint) {
        Some(hit) if Some(hit.0) == info.sensor_id => hit,
        _ => {
            let generation = st.cache.generation();
            let entry = certificate_owner(st, info, peer).await?;
            st.cache
                .put_cert(&info.fingerprint, entry.clone(), generation);
            entry
        }
    };
    let (serial, not_after) = (info.serial.clone(), info.not_after);
    let method = if via_proxy {
        AuthMethod::ProxyCertificate { serial, not_after }
    } else {
        AuthMethod::ClientCertificate { serial, not_after }
    };
    Ok(SensorIdentity {
        sensor_id,
        method,
        sensor,
    })
}

/// The sensor a certificate belongs to, checked against the store: known, not revoked, issued
/// to that sensor, which exists and uses certificates.
async fn certificate_owner(
    st: &AppState,
    info: &CertInfo,
    peer: &PeerInfo,
) -> Result<crate::cache::CertEntry, ApiError> {
    let record = match st
        .store
        .get_certificate_by_fingerprint(&info.fingerprint)
        .await
    {
        Ok(r) => r,
        Err(e) if e.kind() == honeysens_core::ErrorKind::NotFound => {
            return Err(refuse(
                "auth.unknown_certificate",
                "the certificate is not known",
                peer,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if record.revoked_at.is_some() {
        return Err(refuse(
            "auth.revoked_certificate",
            "the certificate was revoked",
            peer,
        ));
    }
    let Some(sensor_id) = record.sensor_id.filter(|id| Some(*id) == info.sensor_id) else {
        return Err(refuse(
            "auth.unknown_sensor",
            "the certificate belongs to no sensor",
            peer,
        ));
    };
    let sensor = match st.store.get_sensor(sensor_id).await {
        Ok(s) => s,
        Err(e) if e.kind() == honeysens_core::ErrorKind::NotFound => {
            return Err(refuse(
                "auth.unknown_sensor",
                "the sensor does not exist",
                peer,
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if sensor.spec.auth != SensorAuthMode::Certificate {
        return Err(refuse(
            "auth.method_not_allowed",
            "this sensor must authenticate with HMAC",
            peer,
        ));
    }
    Ok((sensor_id, sensor))
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn hmac_request(
    st: &AppState,
    req: Request,
    next: Next,
    peer: &PeerInfo,
) -> Result<Response, ApiError> {
    let bad = |code: &str, msg: &str| refuse(code, msg, peer);
    let sensor: i64 = header(&req, hmac::SENSOR_HEADER)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| bad("auth.bad_signature", "missing or malformed sensor header"))?;
    let timestamp: i64 = header(&req, hmac::TIMESTAMP_HEADER)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            bad(
                "auth.bad_signature",
                "missing or malformed timestamp header",
            )
        })?;
    let nonce = header(&req, hmac::NONCE_HEADER)
        .filter(|n| hmac::valid_nonce(n))
        .ok_or_else(|| bad("auth.bad_signature", "missing or malformed nonce header"))?
        .to_owned();
    let signature = header(&req, hmac::SIGNATURE_HEADER)
        .unwrap_or_default()
        .to_owned();
    let now_s = now().timestamp();
    if (now_s - timestamp).abs() > hmac::WINDOW_SECS {
        return Err(bad(
            "auth.stale_timestamp",
            "the request timestamp is outside the accepted window",
        ));
    }
    let sensor_id = SensorId(sensor);
    let (sensor_rec, secret) = match st.cache.hmac(sensor_id) {
        Some(hit) => hit,
        None => {
            let generation = st.cache.generation();
            let sensor_rec = match st.store.get_sensor(sensor_id).await {
                Ok(s) => s,
                Err(e) if e.kind() == honeysens_core::ErrorKind::NotFound => {
                    return Err(bad("auth.unknown_sensor", "the sensor does not exist"));
                }
                Err(e) => return Err(e.into()),
            };
            let secret = st.store.get_sensor_secret(sensor_id).await?;
            st.cache
                .put_hmac(sensor_id, (sensor_rec.clone(), secret.clone()), generation);
            (sensor_rec, secret)
        }
    };
    let Some(secret) = secret.filter(|_| sensor_rec.spec.auth == SensorAuthMode::Hmac) else {
        return Err(bad(
            "auth.method_not_allowed",
            "this sensor must authenticate with its certificate",
        ));
    };
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, MAX_SENSOR_BODY)
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "request.too_large",
                "the request body is too large",
            )
        })?;
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let expected = hmac::sign_request(
        secret.as_bytes(),
        sensor,
        timestamp,
        &nonce,
        parts.method.as_str(),
        path,
        &body,
    );
    if !hmac::signatures_match(&expected, &signature) {
        return Err(bad(
            "auth.bad_signature",
            "the request signature does not match",
        ));
    }
    // Only a correctly signed request may consume a nonce, so strangers cannot burn them.
    if !st.nonces.check_and_insert(sensor, &nonce, now_s) {
        return Err(bad("auth.replayed", "this nonce was already used"));
    }
    let mut req = Request::from_parts(parts, Body::from(body));
    req.extensions_mut().insert(SensorIdentity {
        sensor_id,
        method: AuthMethod::Hmac,
        sensor: sensor_rec,
    });
    let response = next.run(req).await;
    sign(response, secret.as_bytes(), &nonce).await
}

async fn sign(response: Response, secret: &[u8], nonce: &str) -> Result<Response, ApiError> {
    let (mut parts, body) = response.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, MAX_SENSOR_BODY)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot buffer response for signing");
            ApiError::internal()
        })?;
    let sig = hmac::sign_response(secret, nonce, parts.status.as_u16(), &bytes);
    if let Ok(v) = HeaderValue::from_str(&sig) {
        parts.headers.insert(hmac::SIGNATURE_HEADER, v);
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
