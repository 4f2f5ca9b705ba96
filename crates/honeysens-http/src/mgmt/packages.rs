//! Service package upload: `POST /api/services/packages` (admin).
//!
//! The body (raw, or the part `package` of a `multipart/form-data` form) is spooled to a
//! temporary file, bounded by [`crate::server::ServerOptions::max_service_package`]. The
//! package is then read twice by `honeysens_core::package` on a blocking thread: once to check
//! the description and image metadata (so a duplicate revision is refused before anything is
//! stored), once to stream the layers into the blob store. One OCI image manifest per
//! architecture is stored as a blob too; its digest becomes the revision's `image_digest`, and
//! the registry (`/v2/`) serves it to sensors.

use super::audit;
use super::openapi::ErrorResponses;
use super::principal::{Principal, require_role};
use crate::error::ApiError;
use crate::server::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use futures_util::StreamExt;
use honeysens_core::blob::{BlobStore, BlobUpload};
use honeysens_core::model::{Role, Service, ServiceRevision};
use honeysens_core::package::{self, BlobSink, Limits, ScannedPackage, SinkUpload, StoredImage};
use honeysens_core::{Error, ErrorKind};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Default largest package accepted (1 GiB).
pub const DEFAULT_MAX_PACKAGE: u64 = 1024 * 1024 * 1024;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    // The size is enforced while spooling, against the configured maximum.
    OpenApiRouter::new()
        .routes(routes!(upload_package))
        .layer(axum::extract::DefaultBodyLimit::disable())
}

/// The answer to a package upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PackageUploaded {
    /// The service (created by this upload if `created` is true).
    pub service: Service,
    /// Whether the service was created by this upload.
    pub created: bool,
    /// The new revisions, one per architecture.
    pub revisions: Vec<ServiceRevision>,
}

/// The `multipart/form-data` variant of the upload body (documentation only).
#[derive(Debug, ToSchema)]
pub struct PackageForm {
    /// The package (tar or tar.gz).
    #[schema(value_type = String, format = Binary)]
    pub package: Vec<u8>,
}

/// A temporary file removed when dropped.
struct Spool {
    path: PathBuf,
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request.too_large",
        format!("the package is larger than {max} bytes"),
    )
}

fn io_failure(e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "cannot spool a service package");
    ApiError::from(Error::Storage(Box::new(e)))
}

/// Streams `chunks` into a fresh temporary file, at most `max` bytes.
async fn spool<S, E>(mut chunks: S, max: u64) -> Result<Spool, ApiError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let path =
        std::env::temp_dir().join(format!("hs-package-{}.tar", uuid::Uuid::new_v4().simple()));
    let guard = Spool { path };
    let mut file = tokio::fs::File::create(&guard.path)
        .await
        .map_err(io_failure)?;
    let mut size = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            let text = e.to_string();
            if text.contains("length limit") {
                too_large(max)
            } else {
                ApiError::bad_request("request.malformed", format!("upload interrupted: {text}"))
            }
        })?;
        size += chunk.len() as u64;
        if size > max {
            return Err(too_large(max));
        }
        file.write_all(&chunk).await.map_err(io_failure)?;
    }
    file.flush().await.map_err(io_failure)?;
    if size == 0 {
        return Err(Error::invalid("package", "required", "the package is empty").into());
    }
    Ok(guard)
}

/// Writes blobs from the blocking reader into the async blob store, remembering which blobs
/// it created so a failed upload can remove them again.
struct StoreSink {
    blobs: Arc<dyn BlobStore>,
    rt: tokio::runtime::Handle,
    max: u64,
    created: Vec<String>,
}

struct StoreUpload<'a> {
    sink: &'a mut StoreSink,
    upload: Box<dyn BlobUpload>,
}

impl BlobSink for StoreSink {
    fn begin(&mut self) -> honeysens_core::Result<Box<dyn SinkUpload + '_>> {
        let upload = self.rt.block_on(self.blobs.begin(self.max))?;
        Ok(Box::new(StoreUpload { sink: self, upload }))
    }
}

impl SinkUpload for StoreUpload<'_> {
    fn write(&mut self, chunk: &[u8]) -> honeysens_core::Result<()> {
        self.sink.rt.block_on(self.upload.write(chunk))
    }

    fn finish(self: Box<Self>, sha256: &str) -> honeysens_core::Result<()> {
        let StoreUpload { sink, upload } = *self;
        let existed = sink.rt.block_on(sink.blobs.stat(sha256))?.is_some();
        sink.rt.block_on(upload.finish(Some(sha256)))?;
        if !existed {
            sink.created.push(sha256.to_owned());
        }
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> honeysens_core::Result<T> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => {
            tracing::error!(error = %e, "package reader task failed");
            Err(ApiError::internal())
        }
    }
}

/// Receives the body: raw bytes, or the `package` part of a multipart form.
async fn receive(req: Request, st: &AppState, max: u64) -> Result<Spool, ApiError> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_form {
        return spool(req.into_body().into_data_stream(), max).await;
    }
    let mut form = Multipart::from_request(req, st)
        .await
        .map_err(|e| ApiError::bad_request("request.malformed", e.body_text()))?;
    let mut spooled = None;
    loop {
        let field = form.next_field().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large(max)
            } else {
                ApiError::bad_request("request.malformed", e.body_text())
            }
        })?;
        let Some(field) = field else { break };
        match field.name() {
            Some("package") if spooled.is_none() => {
                spooled = Some(spool(Box::pin(field), max).await?);
            }
            other => {
                return Err(ApiError::bad_request(
                    "request.malformed",
                    format!(
                        "unexpected part `{}`; send one part `package`",
                        other.unwrap_or_default()
                    ),
                ));
            }
        }
    }
    spooled.ok_or_else(|| ApiError::bad_request("request.malformed", "missing part `package`"))
}

/// `POST /api/services/packages` (admin): imports a service package — a new service, or a
/// new revision of an existing one (matched by name; the repository must agree). 409
/// `service_revision.conflict` if the revision already exists for one of the architectures.
#[utoipa::path(
    post,
    path = "/api/services/packages",
    tag = "services",
    request_body(
        description = "The package (tar or tar.gz, see docs/services.md) as the raw body, or as \
                       the part `package` of a multipart form",
        content(
            (Vec<u8> = "application/x-tar"),
            (Vec<u8> = "application/octet-stream"),
            (PackageForm = "multipart/form-data")
        )
    ),
    responses((status = 201, description = "Imported", body = PackageUploaded), ErrorResponses)
)]
pub async fn upload_package(
    State(st): State<AppState>,
    p: Principal,
    req: Request<Body>,
) -> Result<(StatusCode, Json<PackageUploaded>), ApiError> {
    require_role(&p, Role::Admin)?;
    let max = st.max_service_package;
    let file = receive(req, &st, max).await?;
    let limits = Limits::default();
    let path = file.path.clone();
    let scanned: ScannedPackage = blocking(move || {
        let f = std::fs::File::open(&path).map_err(|e| Error::Storage(Box::new(e)))?;
        package::scan(std::io::BufReader::new(f), &limits)
    })
    .await?;
    let m = &scanned.manifest;
    // Refuse conflicts before storing a single layer.
    let services = st.store.list_services().await?;
    if let Some(other) = services
        .iter()
        .find(|s| s.spec.repository == m.repository && s.spec.name != m.name)
    {
        return Err(Error::conflict(
            "service",
            format!(
                "repository {} belongs to service {}",
                m.repository, other.spec.name
            ),
        )
        .into());
    }
    let existing = services.into_iter().find(|s| s.spec.name == m.name);
    if let Some(s) = &existing {
        if s.spec.repository != m.repository {
            return Err(Error::conflict(
                "service",
                format!(
                    "service {} uses repository {}, the package says {}",
                    m.name, s.spec.repository, m.repository
                ),
            )
            .into());
        }
        let revisions = st.store.list_service_revisions(s.id).await?;
        for arch in scanned.architectures() {
            if revisions
                .iter()
                .any(|r| r.spec.revision == m.revision && r.spec.architecture == arch)
            {
                return Err(Error::conflict(
                    "service_revision",
                    format!("revision {} for {arch} already exists", m.revision),
                )
                .into());
            }
        }
    }
    let path = file.path.clone();
    let blobs = st.blobs.clone();
    let rt = tokio::runtime::Handle::current();
    let to_store = scanned.clone();
    let (stored, created_blobs): (Vec<StoredImage>, Vec<String>) = blocking(move || {
        let mut sink = StoreSink {
            blobs,
            rt,
            max: limits.max_unpacked,
            created: vec![],
        };
        let f = std::fs::File::open(&path).map_err(|e| Error::Storage(Box::new(e)))?;
        match to_store.store(std::io::BufReader::new(f), &mut sink, &limits) {
            Ok(images) => Ok((images, sink.created)),
            Err(e) => {
                for hex in &sink.created {
                    let _ = sink.rt.block_on(sink.blobs.delete(hex));
                }
                Err(e)
            }
        }
    })
    .await?;
    drop(file);
    match register(&st, &scanned, existing, &stored).await {
        Ok(answer) => {
            audit(
                &st,
                &p,
                "service.package_upload",
                format!("service:{}", answer.service.id),
                serde_json::json!({
                    "name": answer.service.spec.name,
                    "repository": answer.service.spec.repository,
                    "revision": scanned.manifest.revision,
                    "created": answer.created,
                    "images": stored.iter().map(|s| serde_json::json!({
                        "architecture": s.architecture,
                        "digest": s.manifest_digest,
                    })).collect::<Vec<_>>(),
                }),
            )
            .await?;
            Ok((StatusCode::CREATED, Json(answer)))
        }
        Err(e) => {
            for hex in &created_blobs {
                if let Err(err) = st.blobs.delete(hex).await {
                    tracing::warn!(error = %err, blob = hex, "cannot remove a blob of a failed upload");
                }
            }
            Err(e)
        }
    }
}

/// Creates the service if needed and adds one revision per image; on failure removes what
/// it added.
async fn register(
    st: &AppState,
    scanned: &ScannedPackage,
    existing: Option<Service>,
    stored: &[StoredImage],
) -> Result<PackageUploaded, ApiError> {
    let m = &scanned.manifest;
    let (service, created) = match existing {
        Some(s) => (s, false),
        None => (st.store.create_service(&m.service_spec()).await?, true),
    };
    let mut revisions = Vec::new();
    for img in stored {
        let spec = m.revision_spec(service.id, img.architecture, img.manifest_digest.clone());
        let added = match spec.validate() {
            Ok(()) => st.store.add_service_revision(&spec).await,
            Err(e) => Err(e),
        };
        match added {
            Ok(r) => revisions.push(r),
            Err(e) => {
                for r in &revisions {
                    let _ = st.store.delete_service_revision(r.id).await;
                }
                if created {
                    let _ = st.store.delete_service(service.id).await;
                }
                if e.kind() == ErrorKind::Conflict {
                    return Err(Error::conflict(
                        "service_revision",
                        format!(
                            "revision {} for {} already exists",
                            m.revision, img.architecture
                        ),
                    )
                    .into());
                }
                return Err(e.into());
            }
        }
    }
    Ok(PackageUploaded {
        service,
        created,
        revisions,
    })
}

/// The blobs (hex) of the image whose manifest is `manifest_digest`: the manifest, its
/// configuration and its layers. A missing or unreadable manifest yields what is known.
async fn image_blobs(st: &AppState, manifest_digest: &str) -> Vec<String> {
    let Some(hex) = package::oci::sha256_hex(manifest_digest) else {
        return vec![];
    };
    let mut out = vec![hex.to_owned()];
    let Ok((info, reader)) = st.blobs.open(hex).await else {
        return out;
    };
    let mut bytes = Vec::new();
    // Manifests are small; a huge "manifest" is not ours and is left alone.
    if info.size > 4 * 1024 * 1024
        || tokio::io::AsyncReadExt::read_to_end(
            &mut tokio::io::AsyncReadExt::take(reader, info.size),
            &mut bytes,
        )
        .await
        .is_err()
    {
        return out;
    }
    if let Ok(m) = serde_json::from_slice::<package::oci::ImageManifest>(&bytes) {
        for d in std::iter::once(&m.config).chain(&m.layers) {
            if let Some(h) = package::oci::sha256_hex(&d.digest) {
                out.push(h.to_owned());
            }
        }
    }
    out
}

/// Removes the blobs of images (by manifest digest) whose revisions were deleted, except
/// those another revision's image or a firmware revision still uses. Failures are logged:
/// a leftover blob costs space, never correctness.
pub(crate) async fn release_images(st: &AppState, removed: &[String]) {
    let mut candidates = std::collections::BTreeSet::new();
    for d in removed {
        candidates.extend(image_blobs(st, d).await);
    }
    if candidates.is_empty() {
        return;
    }
    let mut used = std::collections::BTreeSet::new();
    let collected: Result<(), Error> = async {
        for s in st.store.list_services().await? {
            for r in st.store.list_service_revisions(s.id).await? {
                used.extend(image_blobs(st, &r.spec.image_digest).await);
            }
        }
        for p in st.store.list_platforms().await? {
            for f in st.store.list_firmware(p.id).await? {
                used.insert(f.spec.storage_key);
            }
        }
        Ok(())
    }
    .await;
    if let Err(e) = collected {
        tracing::warn!(error = %e, "cannot tell which image blobs are still used; keeping them");
        return;
    }
    for hex in candidates.difference(&used) {
        if let Err(e) = st.blobs.delete(hex).await {
            tracing::warn!(error = %e, blob = %hex, "cannot remove an unused image blob");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn chunks(
        n: usize,
        size: usize,
    ) -> impl futures_util::Stream<Item = Result<bytes::Bytes, String>> + Unpin {
        futures_util::stream::iter((0..n).map(move |_| Ok(bytes::Bytes::from(vec![7u8; size]))))
    }

    #[tokio::test]
    async fn spool_is_bounded_and_cleans_up() {
        // Exactly at the limit: kept; the file goes away with the guard.
        let s = spool(chunks(4, 256), 1024).await.unwrap();
        assert_eq!(std::fs::metadata(&s.path).unwrap().len(), 1024);
        let path = s.path.clone();
        drop(s);
        assert!(!path.exists());
        // One byte over: 413 (the guard removes the partial file on the way out).
        let e = spool(chunks(5, 205), 1024).await.err().unwrap();
        assert_eq!(
            (e.status, e.code.as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, "request.too_large")
        );
        let e = spool(chunks(0, 1), 1024).await.err().unwrap();
        assert_eq!(e.code, "validation.failed");
    }
}
