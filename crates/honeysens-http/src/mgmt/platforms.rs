//! Platforms and their firmware revisions.
//!
//! Every logged-in user reads platforms, revisions and firmware images (sensors will fetch
//! images through their own API); only admins create platforms, upload, choose the default
//! and delete revisions. Images live in the content-addressed blob store under their SHA-256;
//! a blob is removed when the last revision referring to it is deleted.
//!
//! There is no `PUT /api/platforms/{id}` yet: `PlatformStore` has no update operation.

use super::openapi::ErrorResponses;
use super::page::{PageQuery, Paged, QueryParams};
use super::principal::{Principal, require_role};
use super::{JsonBody, MAX_BODY, audit, parse_id};
use crate::error::ApiError;
use crate::server::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use honeysens_core::blob::{BlobInfo, BlobReader, BlobStore, BlobUpload};
use honeysens_core::error::ValidationErrors;
use honeysens_core::ids::{FirmwareId, PlatformId};
use honeysens_core::model::{FirmwareRevision, FirmwareSpec, Platform, PlatformSpec, Role};
use honeysens_core::{Error, ErrorKind, Store, validate};
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::task::{Context, Poll};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest firmware image accepted.
pub const MAX_FIRMWARE_SIZE: u64 = 1024 * 1024 * 1024;

/// Most changelog entries per revision.
pub const MAX_CHANGELOG_ENTRIES: usize = 1000;

/// Bytes read from the blob store per body frame of a download.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    // Only the upload may carry a body beyond the default limit; the image itself is bounded
    // by MAX_FIRMWARE_SIZE in the blob store, the rest of the form by MAX_BODY.
    let upload_limit = usize::try_from(MAX_FIRMWARE_SIZE)
        .unwrap_or(usize::MAX)
        .saturating_add(MAX_BODY);
    let upload = OpenApiRouter::new()
        .routes(routes!(upload_firmware))
        .layer(DefaultBodyLimit::max(upload_limit));
    OpenApiRouter::new()
        .routes(routes!(list_platforms, create_platform))
        .routes(routes!(get_platform))
        .routes(routes!(list_firmware))
        .routes(routes!(get_firmware, delete_firmware))
        .routes(routes!(download_firmware))
        .routes(routes!(set_default_firmware))
        .merge(upload)
}

/// `GET /api/platforms` (any user).
#[utoipa::path(get, path = "/api/platforms", tag = "platforms", params(PageQuery), responses((status = 200, description = "Platforms", body = Paged<Platform>), ErrorResponses))]
pub async fn list_platforms(
    State(st): State<AppState>,
    _p: Principal,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Json<Paged<Platform>>, ApiError> {
    Ok(Json(
        page.apply(st.store.list_platforms().await?, |p| p.id.0)?,
    ))
}

/// `POST /api/platforms` (admin); 409 if the name is taken.
#[utoipa::path(post, path = "/api/platforms", tag = "platforms", request_body = PlatformSpec, responses((status = 201, description = "Created", body = Platform), ErrorResponses))]
pub async fn create_platform(
    State(st): State<AppState>,
    p: Principal,
    JsonBody(spec): JsonBody<PlatformSpec>,
) -> Result<(StatusCode, Json<Platform>), ApiError> {
    require_role(&p, Role::Admin)?;
    spec.validate()?;
    let platform = st.store.create_platform(&spec).await?;
    audit(
        &st,
        &p,
        "platform.create",
        format!("platform:{}", platform.id),
        serde_json::json!({ "name": platform.spec.name }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(platform)))
}

/// `GET /api/platforms/{id}` (any user).
#[utoipa::path(get, path = "/api/platforms/{id}", tag = "platforms", params(("id" = i64, Path, description = "platform id")), responses((status = 200, description = "The platform", body = Platform), ErrorResponses))]
pub async fn get_platform(
    State(st): State<AppState>,
    _p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<Platform>, ApiError> {
    let id = PlatformId(parse_id(&raw, "platform")?);
    Ok(Json(st.store.get_platform(id).await?))
}

/// `GET /api/platforms/{id}/firmware` (any user): the platform's revisions, newest first.
#[utoipa::path(get, path = "/api/platforms/{id}/firmware", tag = "platforms", params(("id" = i64, Path, description = "platform id")), responses((status = 200, description = "Revisions, newest first", body = Vec<FirmwareRevision>), ErrorResponses))]
pub async fn list_firmware(
    State(st): State<AppState>,
    _p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<Vec<FirmwareRevision>>, ApiError> {
    let id = PlatformId(parse_id(&raw, "platform")?);
    Ok(Json(st.store.list_firmware(id).await?))
}

/// The `metadata` part of a firmware upload (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub struct FirmwareMetadata {
    /// Version, unique per platform.
    pub version: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Changelog entries.
    #[serde(default)]
    pub changelog: Vec<String>,
    /// Expected SHA-256 of the image (hex); the upload is refused if the image differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sha256: Option<String>,
}

impl FirmwareMetadata {
    /// Checks every field (the digest only for its form; the content is checked on upload).
    pub fn validate(&self) -> Result<(), Error> {
        let mut e = ValidationErrors::default();
        validate::name(&mut e, "version", &self.version);
        validate::text(&mut e, "description", &self.description, 4096);
        if self.changelog.len() > MAX_CHANGELOG_ENTRIES {
            e.add(
                "changelog",
                "too_long",
                format!("at most {MAX_CHANGELOG_ENTRIES} entries"),
            );
        }
        for (i, entry) in self.changelog.iter().enumerate() {
            validate::text(&mut e, &format!("changelog.{i}"), entry, 4096);
        }
        if let Some(d) = &self.sha256
            && (d.len() != 64 || !d.chars().all(|c| c.is_ascii_hexdigit()))
        {
            e.add("sha256", "invalid_digest", "must be 64 hex characters");
        }
        e.into_result()
    }
}

/// The `multipart/form-data` body of `POST /api/platforms/{id}/firmware` (documentation
/// only: the handler streams the parts).
#[derive(Debug, ToSchema)]
pub struct UploadForm {
    /// Metadata, as JSON.
    pub metadata: FirmwareMetadata,
    /// The image.
    #[schema(value_type = String, format = Binary)]
    pub image: Vec<u8>,
}

/// `POST /api/platforms/{id}/firmware` (admin): uploads an image with its metadata. The image
/// is streamed into the blob store; the parts may come in either order.
#[utoipa::path(
    post,
    path = "/api/platforms/{id}/firmware",
    tag = "platforms",
    params(("id" = i64, Path, description = "platform id")),
    request_body(
        description = "Part `metadata` (JSON) and part `image` (the image bytes, at most 1 GiB)",
        content((UploadForm = "multipart/form-data", encoding(
            ("metadata" = (content_type = "application/json")),
            ("image" = (content_type = "application/octet-stream"))
        )))
    ),
    responses((status = 201, description = "Uploaded", body = FirmwareRevision), ErrorResponses)
)]
pub async fn upload_firmware(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<FirmwareRevision>), ApiError> {
    require_role(&p, Role::Admin)?;
    let platform = st
        .store
        .get_platform(PlatformId(parse_id(&raw, "platform")?))
        .await?;
    let mut form = form.map_err(|e| ApiError::bad_request("request.malformed", e.body_text()))?;
    let (meta, blob) = receive(
        &mut form,
        st.store.as_ref(),
        st.blobs.as_ref(),
        platform.id,
        MAX_FIRMWARE_SIZE,
    )
    .await?;
    let spec = FirmwareSpec {
        platform_id: platform.id,
        version: meta.version,
        description: meta.description,
        changelog: meta.changelog,
        sha256: blob.sha256.clone(),
        size: blob.size,
        storage_key: blob.sha256.clone(),
    };
    let added = match spec.validate() {
        Ok(()) => st.store.add_firmware(&spec).await,
        Err(e) => Err(e),
    };
    let fw = match added {
        Ok(fw) => fw,
        Err(e) => {
            release_blob(&st, &blob.sha256).await;
            return Err(e.into());
        }
    };
    audit(
        &st,
        &p,
        "firmware.upload",
        format!("firmware:{}", fw.id),
        serde_json::json!({
            "platform": platform.spec.name,
            "version": fw.spec.version,
            "sha256": fw.spec.sha256,
            "size": fw.spec.size,
        }),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(fw)))
}

/// Reads the upload form: the `metadata` part (checked as soon as it arrives, so a bad or
/// duplicate version is refused before a large image is stored) and the `image` part,
/// streamed chunk by chunk into `blobs` (at most `max` bytes). Returns the metadata and the
/// stored blob; on error nothing new is stored.
pub async fn receive(
    form: &mut Multipart,
    store: &dyn Store,
    blobs: &dyn BlobStore,
    platform: PlatformId,
    max: u64,
) -> Result<(FirmwareMetadata, BlobInfo), ApiError> {
    let mut meta: Option<FirmwareMetadata> = None;
    let mut image: Option<(Box<dyn BlobUpload>, u64)> = None;
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("metadata") if meta.is_none() => {
                let m = read_metadata(field).await?;
                m.validate()?;
                let taken = store
                    .list_firmware(platform)
                    .await?
                    .iter()
                    .any(|f| f.spec.version == m.version);
                if taken {
                    return Err(Error::conflict(
                        "firmware",
                        "this version already exists for the platform",
                    )
                    .into());
                }
                meta = Some(m);
            }
            Some("image") if image.is_none() => {
                image = Some(stream_image(field, blobs, max).await?);
            }
            Some(name @ ("metadata" | "image")) => {
                return Err(ApiError::bad_request(
                    "request.malformed",
                    format!("part `{name}` sent twice"),
                ));
            }
            other => {
                return Err(ApiError::bad_request(
                    "request.malformed",
                    format!(
                        "unexpected part `{}`; send `metadata` and `image`",
                        other.unwrap_or_default()
                    ),
                ));
            }
        }
    }
    let meta = meta.ok_or_else(|| missing_part("metadata"))?;
    let (upload, size) = image.ok_or_else(|| missing_part("image"))?;
    if size == 0 {
        return Err(Error::invalid("image", "required", "must not be empty").into());
    }
    // A wrong digest is refused here and the temporary file discarded: nothing is stored.
    let blob = upload.finish(meta.sha256.as_deref()).await?;
    Ok((meta, blob))
}

fn missing_part(name: &str) -> ApiError {
    ApiError::bad_request("request.malformed", format!("missing part `{name}`"))
}

fn too_large(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request.too_large",
        format!("{what} too large"),
    )
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large("request body")
    } else {
        ApiError::bad_request("request.malformed", e.body_text())
    }
}

async fn read_metadata(mut field: Field<'_>) -> Result<FirmwareMetadata, ApiError> {
    // Bounded like any JSON body, although the route admits far more.
    let mut buf = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        if buf.len() + chunk.len() > MAX_BODY {
            return Err(too_large("metadata"));
        }
        buf.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&buf)
        .map_err(|e| ApiError::bad_request("request.malformed", format!("invalid metadata: {e}")))
}

async fn stream_image(
    mut field: Field<'_>,
    blobs: &dyn BlobStore,
    max: u64,
) -> Result<(Box<dyn BlobUpload>, u64), ApiError> {
    let mut upload = blobs.begin(max).await?;
    let mut size = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        size += chunk.len() as u64;
        // The blob store refuses writes past `max` with `Invalid` (field `size`).
        upload.write(&chunk).await.map_err(|e| match e.kind() {
            ErrorKind::Invalid => too_large("image"),
            _ => ApiError::from(e),
        })?;
    }
    Ok((upload, size))
}

/// Whether any firmware revision still refers to blob `sha256`.
async fn blob_in_use(st: &AppState, sha256: &str) -> Result<bool, Error> {
    for platform in st.store.list_platforms().await? {
        let revisions = st.store.list_firmware(platform.id).await?;
        if revisions
            .iter()
            .any(|f| f.spec.storage_key == sha256 || f.spec.sha256 == sha256)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Deletes blob `sha256` unless a revision still refers to it. Failures only leave an unused
/// blob behind, so they are logged, not reported.
async fn release_blob(st: &AppState, sha256: &str) {
    match blob_in_use(st, sha256).await {
        Ok(true) => {}
        Ok(false) => {
            if let Err(e) = st.blobs.delete(sha256).await {
                tracing::warn!(sha256, error = %e, "deleting an unused firmware blob failed");
            }
        }
        Err(e) => {
            tracing::warn!(sha256, error = %e, "cannot tell whether a firmware blob is unused");
        }
    }
}

/// `GET /api/firmware/{id}` (any user): a revision's metadata.
#[utoipa::path(get, path = "/api/firmware/{id}", tag = "platforms", params(("id" = i64, Path, description = "firmware revision id")), responses((status = 200, description = "The revision", body = FirmwareRevision), ErrorResponses))]
pub async fn get_firmware(
    State(st): State<AppState>,
    _p: Principal,
    Path(raw): Path<String>,
) -> Result<Json<FirmwareRevision>, ApiError> {
    let id = FirmwareId(parse_id(&raw, "firmware")?);
    Ok(Json(st.store.get_firmware(id).await?))
}

/// `GET /api/firmware/{id}/image` (any user): the image, streamed from the blob store.
#[utoipa::path(get, path = "/api/firmware/{id}/image", tag = "platforms", params(("id" = i64, Path, description = "firmware revision id")), responses((status = 200, description = "The image", content_type = "application/octet-stream", body = FirmwareImage), ErrorResponses))]
pub async fn download_firmware(
    State(st): State<AppState>,
    _p: Principal,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let id = FirmwareId(parse_id(&raw, "firmware")?);
    let fw = st.store.get_firmware(id).await?;
    firmware_response(&st, &fw).await
}

/// A firmware image as a streamed download (also served to sensors by the sensor API).
pub(crate) async fn firmware_response(
    st: &AppState,
    fw: &honeysens_core::model::FirmwareRevision,
) -> Result<Response, ApiError> {
    let id = fw.id;
    let (info, reader) = st.blobs.open(&fw.spec.storage_key).await?;
    let body = Body::new(ReaderBody {
        reader,
        remaining: info.size,
    });
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"firmware-{id}.bin\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    // Content-addressed: the digest is a strong validator.
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", info.sha256)) {
        h.insert(header::ETAG, v);
    }
    Ok(res)
}

/// The body of `GET /api/firmware/{id}/image` (documentation only: the handler streams it).
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct FirmwareImage(pub Vec<u8>);

/// A response body read from a blob, chunk by chunk, with its exact length (also used by
/// the registry).
pub(crate) struct ReaderBody {
    reader: BlobReader,
    remaining: u64,
}

impl ReaderBody {
    /// A body of exactly `size` bytes from `reader`.
    pub(crate) fn new(reader: BlobReader, size: u64) -> ReaderBody {
        ReaderBody {
            reader,
            remaining: size,
        }
    }
}

impl hyper::body::Body for ReaderBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining)
            .unwrap_or(usize::MAX)
            .min(DOWNLOAD_CHUNK);
        let mut buf = vec![0u8; want];
        let mut rb = tokio::io::ReadBuf::new(&mut buf);
        match this.reader.as_mut().poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    // Shorter than announced: fail the response rather than truncate silently.
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "blob shorter than its size",
                    ))));
                }
                this.remaining -= n as u64;
                buf.truncate(n);
                Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::from(buf)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.remaining)
    }
}

/// `PUT /api/firmware/{id}/default` (admin): makes the revision its platform's default.
#[utoipa::path(put, path = "/api/firmware/{id}/default", tag = "platforms", params(("id" = i64, Path, description = "firmware revision id")), responses((status = 204, description = "Now the platform's default"), ErrorResponses))]
pub async fn set_default_firmware(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_role(&p, Role::Admin)?;
    let id = FirmwareId(parse_id(&raw, "firmware")?);
    st.store.set_default_firmware(id).await?;
    let fw = st.store.get_firmware(id).await?;
    audit(
        &st,
        &p,
        "firmware.set_default",
        format!("firmware:{id}"),
        serde_json::json!({ "platform_id": fw.spec.platform_id, "version": fw.spec.version }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/firmware/{id}` (admin). Sensors pinned to the revision and a platform default
/// pointing at it are reset; the image is deleted unless another revision has the same bytes.
#[utoipa::path(delete, path = "/api/firmware/{id}", tag = "platforms", params(("id" = i64, Path, description = "firmware revision id")), responses((status = 204, description = "Deleted"), ErrorResponses))]
pub async fn delete_firmware(
    State(st): State<AppState>,
    p: Principal,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_role(&p, Role::Admin)?;
    let id = FirmwareId(parse_id(&raw, "firmware")?);
    let fw = st.store.get_firmware(id).await?;
    st.store.delete_firmware(id).await?;
    release_blob(&st, &fw.spec.storage_key).await;
    audit(
        &st,
        &p,
        "firmware.delete",
        format!("firmware:{id}"),
        serde_json::json!({
            "platform_id": fw.spec.platform_id,
            "version": fw.spec.version,
            "sha256": fw.spec.sha256,
        }),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use axum::extract::{FromRequest, Request};
    use sha2::{Digest, Sha256};

    struct Fixture {
        store: std::sync::Arc<dyn Store>,
        blobs: honeysens_store::FsBlobStore,
        platform: PlatformId,
        dir: std::path::PathBuf,
    }

    impl Fixture {
        async fn new() -> Fixture {
            let dir = std::env::temp_dir().join(format!("hs-fw-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            let url = format!("sqlite://{}", dir.join("db.sqlite").display());
            let store = honeysens_store::open(&url, &Default::default())
                .await
                .unwrap();
            let blobs = honeysens_store::FsBlobStore::open_dir(dir.join("blobs"))
                .await
                .unwrap();
            let platform = store
                .create_platform(&PlatformSpec {
                    name: "p".into(),
                    title: "P".into(),
                    description: String::new(),
                })
                .await
                .unwrap()
                .id;
            Fixture {
                store,
                blobs,
                platform,
                dir,
            }
        }

        /// Runs `receive` on a form of `(name, bytes)` parts with an image limit of `max`.
        async fn receive(
            &self,
            parts: &[(&str, &[u8])],
            max: u64,
        ) -> Result<(FirmwareMetadata, BlobInfo), ApiError> {
            let mut body = Vec::new();
            for (name, bytes) in parts {
                body.extend_from_slice(
                    format!("--B\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n")
                        .as_bytes(),
                );
                body.extend_from_slice(bytes);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(b"--B--\r\n");
            let req = Request::builder()
                .header(header::CONTENT_TYPE, "multipart/form-data; boundary=B")
                .body(Body::from(body))
                .unwrap();
            let mut form = Multipart::from_request(req, &()).await.unwrap();
            receive(
                &mut form,
                self.store.as_ref(),
                &self.blobs,
                self.platform,
                max,
            )
            .await
        }

        /// Whether any blob or temporary upload file is left.
        fn files(&self) -> usize {
            fn count(p: &std::path::Path) -> usize {
                std::fs::read_dir(p)
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| {
                                if e.path().is_dir() {
                                    count(&e.path())
                                } else {
                                    1
                                }
                            })
                            .sum()
                    })
                    .unwrap_or(0)
            }
            count(&self.dir.join("blobs"))
        }

        async fn done(self) {
            self.store.close().await;
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    const META: &[u8] = br#"{"version":"1.0","changelog":["a"]}"#;

    /// Form parts, the expected status and error code.
    type FormCase<'a> = (Vec<(&'a str, &'a [u8])>, u16, &'a str);

    #[tokio::test]
    async fn parts_in_either_order_and_limits() {
        let f = Fixture::new().await;

        // Image first, then metadata: accepted.
        let (m, blob) = f
            .receive(&[("image", b"0123456789"), ("metadata", META)], 10)
            .await
            .unwrap();
        assert_eq!(m.version, "1.0");
        assert_eq!(blob.size, 10);
        assert_eq!(blob.sha256, hex::encode(Sha256::digest(b"0123456789")));
        f.blobs.delete(&blob.sha256).await.unwrap();
        assert_eq!(f.files(), 0);

        // One byte over the limit: 413, nothing left behind.
        let e = f
            .receive(&[("metadata", META), ("image", b"0123456789X")], 10)
            .await
            .unwrap_err();
        assert_eq!(
            (e.status, e.code.as_str()),
            (StatusCode::PAYLOAD_TOO_LARGE, "request.too_large")
        );
        assert_eq!(f.files(), 0);

        // Missing, duplicate, unknown and empty parts; bad JSON; bad digest form.
        let cases: Vec<FormCase> = vec![
            (vec![("metadata", META)], 400, "request.malformed"),
            (vec![("image", b"x")], 400, "request.malformed"),
            (
                vec![("metadata", META), ("metadata", META)],
                400,
                "request.malformed",
            ),
            (
                vec![("metadata", META), ("image", b"x"), ("other", b"y")],
                400,
                "request.malformed",
            ),
            (
                vec![("metadata", b"{not json"), ("image", b"x")],
                400,
                "request.malformed",
            ),
            (
                vec![("metadata", META), ("image", b"")],
                422,
                "validation.failed",
            ),
            (
                vec![
                    ("metadata", br#"{"version":"1.0","sha256":"xyz"}"#),
                    ("image", b"x"),
                ],
                422,
                "validation.failed",
            ),
            (
                vec![("image", b"x"), ("metadata", br#"{"version":""}"#)],
                422,
                "validation.failed",
            ),
        ];
        for (parts, status, code) in cases {
            let e = f.receive(&parts, 10).await.unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code.as_str()),
                (status, code),
                "{parts:?}"
            );
            assert_eq!(f.files(), 0, "{parts:?}");
        }
        f.done().await;
    }
}
