//! The read-only OCI distribution endpoint at `/v2/`, serving the images of uploaded service
//! packages to sensors.
//!
//! Only authenticated sensors read (the same authentication as the sensor API: client
//! certificate, certificate forwarded by a trusted proxy, or HMAC). Repository names are the
//! services' `repository` (e.g. `honeysens/ssh`, slashes included); tags are revision labels.
//! A tag with one architecture answers that image's manifest; a tag over several answers an
//! OCI image index (built on the fly, deterministically, so its digest is stable). Blobs are
//! served only under a repository whose manifests reference them. Writes answer 405
//! `UNSUPPORTED`; errors use the OCI error format. With HMAC authentication a response is
//! buffered for signing, so HMAC sensors can fetch blobs of at most 16 MiB.

use crate::auth;
use crate::mgmt::platforms::ReaderBody;
use crate::server::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use honeysens_core::model::{Service, ServiceRevision};
use honeysens_core::package::oci::{self, Descriptor, ImageIndex, ImageManifest, Platform};
use tokio::io::AsyncReadExt;

/// Header every registry response carries.
pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";
/// Header naming the digest of a served manifest or blob.
pub const CONTENT_DIGEST_HEADER: &str = "docker-content-digest";
/// Largest manifest read into memory.
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

/// An error in the OCI distribution format (`{"errors":[{"code":…,"message":…}]}`).
#[derive(Debug, Clone)]
pub struct OciError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// Marks responses that are already in the registry's format.
#[derive(Debug, Clone, Copy)]
struct OciFormatted;

impl OciError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        OciError {
            status,
            code,
            message: message.into(),
        }
    }

    fn unsupported() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            "this registry is read-only",
        )
    }
}

impl From<honeysens_core::Error> for OciError {
    fn from(e: honeysens_core::Error) -> Self {
        tracing::error!(error = %e, "registry request failed");
        OciError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "UNAVAILABLE",
            "the registry cannot read its storage",
        )
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{ "code": self.code, "message": self.message, "detail": null }]
        });
        let mut res = (
            self.status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            res.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        res.extensions_mut().insert(OciFormatted);
        res
    }
}

/// The `/v2/` routes, behind sensor authentication (writes are refused before it: 405 for
/// everybody).
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/v2", any(base))
        .route("/v2/", any(base))
        .route("/v2/{*rest}", any(dispatch))
        .route_layer(from_fn_with_state(state, auth::sensor_auth))
        .layer(from_fn(oci_format))
}

/// Adds the API version header; turns the sensor authentication's refusals (JSON in the
/// management API's format) into OCI errors.
async fn oci_format(req: Request, next: Next) -> Response {
    let read = matches!(*req.method(), Method::GET | Method::HEAD);
    let mut res = if read {
        next.run(req).await
    } else {
        OciError::unsupported().into_response()
    };
    let status = res.status();
    if res.extensions().get::<OciFormatted>().is_none()
        && (status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN)
    {
        let (code, msg) = if status == StatusCode::UNAUTHORIZED {
            (
                "UNAUTHORIZED",
                "authenticate as a sensor (client certificate or HMAC)",
            )
        } else {
            ("DENIED", "access to the registry denied")
        };
        res = OciError::new(status, code, msg).into_response();
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"HoneySens sensors (client certificate)\""),
            );
        }
    }
    res.headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    res
}

async fn base(method: Method) -> Response {
    if method == Method::GET || method == Method::HEAD {
        let mut res = (
            [(header::CONTENT_TYPE, "application/json")],
            if method == Method::HEAD { "" } else { "{}" },
        )
            .into_response();
        res.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(2u64));
        res
    } else {
        OciError::unsupported().into_response()
    }
}

async fn dispatch(
    State(st): State<AppState>,
    method: Method,
    Path(rest): Path<String>,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return OciError::unsupported().into_response();
    }
    let head = method == Method::HEAD;
    let answer = if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
        manifest(&st, name, reference, head).await
    } else if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
        blob(&st, name, digest, head).await
    } else if let Some(name) = rest.strip_suffix("/tags/list") {
        tags(&st, name).await
    } else {
        Err(OciError::new(
            StatusCode::NOT_FOUND,
            "UNSUPPORTED",
            "no such registry endpoint",
        ))
    };
    answer.unwrap_or_else(IntoResponse::into_response)
}

/// The service whose repository is `name`, with its revisions.
async fn repository(
    st: &AppState,
    name: &str,
) -> Result<(Service, Vec<ServiceRevision>), OciError> {
    let Some(service) = st
        .store
        .list_services()
        .await?
        .into_iter()
        .find(|s| s.spec.repository == name)
    else {
        return Err(OciError::new(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            format!("repository {name} is not known"),
        ));
    };
    let revisions = st.store.list_service_revisions(service.id).await?;
    Ok((service, revisions))
}

fn manifest_unknown(reference: &str) -> OciError {
    OciError::new(
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
        format!("manifest {reference} is not known"),
    )
}

/// Reads a stored manifest.
async fn read_small_blob(st: &AppState, digest: &str) -> Result<Option<Vec<u8>>, OciError> {
    let Some(hex) = oci::sha256_hex(digest) else {
        return Ok(None);
    };
    let (info, reader) = match st.blobs.open(hex).await {
        Ok(r) => r,
        Err(e) if e.kind() == honeysens_core::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if info.size > MAX_MANIFEST {
        return Ok(None);
    }
    let mut buf = Vec::new();
    reader
        .take(MAX_MANIFEST)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| honeysens_core::Error::Storage(Box::new(e)))?;
    Ok(Some(buf))
}

/// The index of a tag over several architectures: entries sorted by architecture.
async fn index_of(st: &AppState, revisions: &[&ServiceRevision]) -> Result<Vec<u8>, OciError> {
    let mut sorted: Vec<&&ServiceRevision> = revisions.iter().collect();
    sorted.sort_by_key(|r| r.spec.architecture);
    let mut manifests = Vec::new();
    for r in sorted {
        let Some(hex) = oci::sha256_hex(&r.spec.image_digest) else {
            continue;
        };
        let Some(size) = st.blobs.stat(hex).await? else {
            continue;
        };
        manifests.push(Descriptor {
            media_type: oci::MEDIA_TYPE_MANIFEST.into(),
            digest: r.spec.image_digest.clone(),
            size,
            platform: Some(Platform::of(r.spec.architecture)),
            annotations: None,
        });
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: oci::MEDIA_TYPE_INDEX.into(),
        manifests,
    };
    serde_json::to_vec(&index).map_err(|e| honeysens_core::Error::Storage(Box::new(e)).into())
}

fn document(bytes: Vec<u8>, media_type: &'static str, head: bool) -> Response {
    let digest = oci::digest_of(&bytes);
    let len = bytes.len() as u64;
    let body = if head {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut res = Response::new(body);
    fill_headers(res.headers_mut(), media_type, &digest, len);
    res
}

fn fill_headers(h: &mut HeaderMap, media_type: &'static str, digest: &str, len: u64) {
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(digest) {
        h.insert(CONTENT_DIGEST_HEADER, v.clone());
        if let Ok(etag) = HeaderValue::from_str(&format!("\"{digest}\"")) {
            h.insert(header::ETAG, etag);
        }
    }
}

async fn manifest(
    st: &AppState,
    name: &str,
    reference: &str,
    head: bool,
) -> Result<Response, OciError> {
    let (_, revisions) = repository(st, name).await?;
    let by_label = |label: &str| -> Vec<&ServiceRevision> {
        revisions
            .iter()
            .filter(|r| r.spec.revision == label)
            .collect()
    };
    if reference.starts_with("sha256:") {
        if revisions.iter().any(|r| r.spec.image_digest == reference) {
            let bytes = read_small_blob(st, reference)
                .await?
                .ok_or_else(|| manifest_unknown(reference))?;
            return Ok(document(bytes, oci::MEDIA_TYPE_MANIFEST, head));
        }
        // Perhaps the index of a multi-architecture tag.
        let mut labels: Vec<&str> = revisions.iter().map(|r| r.spec.revision.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        for label in labels {
            let revs = by_label(label);
            if revs.len() > 1 {
                let bytes = index_of(st, &revs).await?;
                if oci::digest_of(&bytes) == reference {
                    return Ok(document(bytes, oci::MEDIA_TYPE_INDEX, head));
                }
            }
        }
        return Err(manifest_unknown(reference));
    }
    let revs = by_label(reference);
    match revs.as_slice() {
        [] => Err(manifest_unknown(reference)),
        [one] => {
            let bytes = read_small_blob(st, &one.spec.image_digest)
                .await?
                .ok_or_else(|| manifest_unknown(reference))?;
            Ok(document(bytes, oci::MEDIA_TYPE_MANIFEST, head))
        }
        many => {
            let bytes = index_of(st, many).await?;
            Ok(document(bytes, oci::MEDIA_TYPE_INDEX, head))
        }
    }
}

fn blob_unknown(digest: &str) -> OciError {
    OciError::new(
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
        format!("blob {digest} is not known in this repository"),
    )
}

async fn blob(st: &AppState, name: &str, digest: &str, head: bool) -> Result<Response, OciError> {
    let (_, revisions) = repository(st, name).await?;
    let Some(hex) = oci::sha256_hex(digest) else {
        return Err(OciError::new(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "digests look like sha256:<64 hex>",
        ));
    };
    // Only blobs this repository's manifests reference: a sensor cannot read arbitrary blobs
    // (firmware images live in the same store).
    let mut referenced = false;
    for r in &revisions {
        if r.spec.image_digest == digest {
            referenced = true;
            break;
        }
        let Some(bytes) = read_small_blob(st, &r.spec.image_digest).await? else {
            continue;
        };
        if let Ok(m) = serde_json::from_slice::<ImageManifest>(&bytes)
            && (m.config.digest == digest || m.layers.iter().any(|l| l.digest == digest))
        {
            referenced = true;
            break;
        }
    }
    if !referenced {
        return Err(blob_unknown(digest));
    }
    let (info, reader) = match st.blobs.open(hex).await {
        Ok(r) => r,
        Err(e) if e.kind() == honeysens_core::ErrorKind::NotFound => {
            return Err(blob_unknown(digest));
        }
        Err(e) => return Err(e.into()),
    };
    let body = if head {
        Body::empty()
    } else {
        Body::new(ReaderBody::new(reader, info.size))
    };
    let mut res = Response::new(body);
    fill_headers(
        res.headers_mut(),
        "application/octet-stream",
        digest,
        info.size,
    );
    Ok(res)
}

async fn tags(st: &AppState, name: &str) -> Result<Response, OciError> {
    let (_, revisions) = repository(st, name).await?;
    let mut tags: Vec<&str> = revisions.iter().map(|r| r.spec.revision.as_str()).collect();
    tags.sort_unstable();
    tags.dedup();
    let body = serde_json::json!({ "name": name, "tags": tags });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}
