//! Reading a package: pass 1 ([`scan`]) reads the manifest and the image metadata and checks
//! everything that can be checked without the layers; pass 2 ([`ScannedPackage::store`])
//! streams the layers into a [`BlobSink`], verifying their digests on the way. Neither pass
//! holds a layer in memory, so the source is read twice (the server spools uploads to a file).

use super::manifest::PackageManifest;
use super::oci::{self, Descriptor, ImageConfig, ImageManifest};
use crate::Error;
use crate::error::{Result, ValidationErrors};
use crate::model::Architecture;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader, Read, Write};

/// Bytes read or written per step while streaming.
const CHUNK: usize = 64 * 1024;

/// Bounds on what a package may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest metadata file (manifests, configurations) held in memory.
    pub max_small_file: u64,
    /// Most bytes of metadata files held in memory at once.
    pub max_kept: u64,
    /// Most bytes the package may expand to (decompression bombs).
    pub max_unpacked: u64,
    /// Most archive entries.
    pub max_entries: usize,
    /// Most images (architectures) in one package.
    pub max_images: usize,
    /// Most layers per image.
    pub max_layers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_small_file: 1024 * 1024,
            max_kept: 32 * 1024 * 1024,
            max_unpacked: 16 * 1024 * 1024 * 1024,
            max_entries: 100_000,
            max_images: 8,
            max_layers: 256,
        }
    }
}

/// Where blobs go in pass 2 (the server's blob store, or memory in tests).
pub trait BlobSink {
    /// Starts a blob.
    fn begin(&mut self) -> Result<Box<dyn SinkUpload + '_>>;
}

/// One blob being written; dropping it without [`finish`](SinkUpload::finish) discards it.
pub trait SinkUpload {
    /// Appends bytes.
    fn write(&mut self, chunk: &[u8]) -> Result<()>;
    /// Makes the blob visible; `sha256` (hex) is what the reader computed.
    fn finish(self: Box<Self>, sha256: &str) -> Result<()>;
}

/// Which manifest file the package had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestFormat {
    /// `honeysens.json`.
    Json,
    /// The old `metadata.xml`.
    MetadataXml,
}

/// A layer to copy in pass 2.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedLayer {
    /// Path of the layer file in the image archive.
    path: String,
    /// Uncompressed digest from the image configuration.
    diff_id: String,
    /// The file's own digest when its name says it (OCI `blobs/sha256/<hex>`).
    blob_hex: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedImage {
    architecture: Architecture,
    config: Vec<u8>,
    layers: Vec<PlannedLayer>,
}

/// A package after pass 1: its manifest and checked image metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedPackage {
    /// The service description.
    pub manifest: PackageManifest,
    /// Which file it came from.
    pub format: ManifestFormat,
    images: Vec<PlannedImage>,
    /// Whether the image archive is an inner tar (else the package's own files).
    inner: bool,
}

/// An image after pass 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    /// Its architecture.
    pub architecture: Architecture,
    /// `sha256:<hex>` of the manifest bytes (the revision's `image_digest`).
    pub manifest_digest: String,
    /// The manifest as stored.
    pub manifest: ImageManifest,
    /// Its exact bytes (also stored as a blob).
    pub manifest_bytes: Vec<u8>,
    /// `sha256:<hex>` of each uncompressed layer.
    pub diff_ids: Vec<String>,
}

fn invalid(field: impl Into<String>, code: &'static str, msg: impl Into<String>) -> Error {
    Error::invalid(field, code, msg)
}

fn malformed(e: impl std::fmt::Display) -> Error {
    invalid(
        "package",
        "malformed",
        format!("not a readable tar archive: {e}"),
    )
}

/// Counts bytes and refuses to read past a limit.
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::FileTooLarge,
                "package expands beyond the limit",
            )
        })?;
        Ok(n)
    }
}

/// The stream, gunzipped if it starts with the gzip magic.
fn maybe_gunzip<'a, R: Read + 'a>(src: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(CHUNK, src);
    let head = buf.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(buf)))
    } else {
        Ok(Box::new(buf))
    }
}

/// A normalised relative path, or `None` for one that leaves the archive (`..`).
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

fn is_inner_archive(path: &str) -> bool {
    !path.contains('/')
        && (path.ends_with(".tar") || path.ends_with(".tar.gz") || path.ends_with(".tgz"))
}

fn is_meta(path: &str) -> bool {
    path == "honeysens.json" || path == "metadata.xml"
}

/// What an entry is, for the visitor.
enum Entry<'a> {
    /// A regular file.
    File {
        /// 0: the package itself; 1: the inner image archive.
        level: usize,
        path: String,
        size: u64,
        data: &'a mut dyn Read,
    },
    /// A symbolic or hard link.
    Link {
        level: usize,
        path: String,
        target: String,
    },
    /// An inner image archive begins.
    Inner,
}

type Visit<'v> = dyn FnMut(Entry<'_>) -> Result<()> + 'v;

/// Walks the package, descending into one level of inner `*.tar` at the top.
fn walk<R: Read>(src: R, limits: &Limits, visit: &mut Visit<'_>) -> Result<()> {
    let stream = Bounded {
        inner: maybe_gunzip(src).map_err(malformed)?,
        left: limits.max_unpacked,
    };
    let mut count = 0usize;
    walk_level(stream, 0, limits, &mut count, visit)
}

fn io_error(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::FileTooLarge {
        invalid("package", "too_large", e.to_string())
    } else {
        malformed(e)
    }
}

fn walk_level<R: Read>(
    stream: R,
    level: usize,
    limits: &Limits,
    count: &mut usize,
    visit: &mut Visit<'_>,
) -> Result<()> {
    let mut archive = tar::Archive::new(stream);
    for entry in archive.entries().map_err(io_error)? {
        let mut entry = entry.map_err(io_error)?;
        *count += 1;
        if *count > limits.max_entries {
            return Err(invalid(
                "package",
                "too_large",
                format!("more than {} archive entries", limits.max_entries),
            ));
        }
        let raw_path = entry
            .path()
            .map_err(io_error)?
            .to_string_lossy()
            .into_owned();
        let Some(path) = normalize(&raw_path) else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let Some(target) = entry.link_name().map_err(io_error)? else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            // Hard links name archive paths; symlinks are relative to the link's folder.
            let joined = if kind.is_hard_link() || target.starts_with('/') {
                target
            } else {
                match path.rsplit_once('/') {
                    Some((dir, _)) => format!("{dir}/{target}"),
                    None => target,
                }
            };
            if let Some(target) = normalize(&joined) {
                visit(Entry::Link {
                    level,
                    path,
                    target,
                })?;
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if level == 0 && is_inner_archive(&path) {
            visit(Entry::Inner)?;
            let inner = maybe_gunzip(&mut entry).map_err(io_error)?;
            walk_level(inner, 1, limits, count, visit)?;
            continue;
        }
        let size = entry.size();
        visit(Entry::File {
            level,
            path,
            size,
            data: &mut entry,
        })?;
    }
    Ok(())
}

/// The files seen at one level of the package.
#[derive(Debug, Default)]
struct Files {
    sizes: BTreeMap<String, u64>,
    links: BTreeMap<String, String>,
    kept: BTreeMap<String, Vec<u8>>,
}

impl Files {
    /// Follows links (a few hops at most) to the file that holds the bytes.
    fn resolve(&self, path: &str) -> Option<String> {
        let mut p = path.to_owned();
        for _ in 0..8 {
            if self.sizes.contains_key(&p) {
                return Some(p);
            }
            p = self.links.get(&p)?.clone();
        }
        None
    }

    fn content(&self, path: &str) -> Option<&[u8]> {
        self.resolve(path)
            .and_then(|p| self.kept.get(&p))
            .map(Vec::as_slice)
    }
}

/// Whether pass 1 keeps a file's bytes (candidates for manifests and configurations).
fn worth_keeping(path: &str) -> bool {
    is_meta(path)
        || path.ends_with(".json")
        || path == "oci-layout"
        || path.starts_with("blobs/sha256/")
}

/// Pass 1: reads the manifest and image metadata and checks all but the layer contents.
pub fn scan<R: Read>(src: R, limits: &Limits) -> Result<ScannedPackage> {
    let mut levels = [Files::default(), Files::default()];
    let mut inner_archives = 0usize;
    let mut kept_total = 0u64;
    walk(src, limits, &mut |entry| {
        match entry {
            Entry::Inner => inner_archives += 1,
            Entry::Link {
                level,
                path,
                target,
            } => {
                levels[level].links.insert(path, target);
            }
            Entry::File {
                level,
                path,
                size,
                data,
            } => {
                let files = &mut levels[level];
                if worth_keeping(&path) && size <= limits.max_small_file {
                    kept_total += size;
                    if kept_total > limits.max_kept {
                        return Err(invalid("package", "too_large", "too many metadata files"));
                    }
                    let mut buf = Vec::new();
                    data.take(limits.max_small_file)
                        .read_to_end(&mut buf)
                        .map_err(io_error)?;
                    files.kept.insert(path.clone(), buf);
                }
                files.sizes.insert(path, size);
            }
        }
        Ok(())
    })?;
    if inner_archives > 1 {
        return Err(invalid(
            "package",
            "ambiguous_image",
            "the package holds more than one image archive (*.tar)",
        ));
    }
    let [top, inner] = levels;
    let (manifest, format) = if let Some(json) = top.content("honeysens.json") {
        (PackageManifest::from_json(json)?, ManifestFormat::Json)
    } else if let Some(xml) = top.content("metadata.xml") {
        (
            PackageManifest::from_metadata_xml(xml)?,
            ManifestFormat::MetadataXml,
        )
    } else {
        return Err(invalid(
            "package.manifest",
            "missing",
            "the package has neither honeysens.json nor metadata.xml",
        ));
    };
    let mut errors = ValidationErrors::default();
    if let Err(Error::Invalid(v)) = manifest.validate() {
        errors.0.extend(v.0);
    }
    let has_inner = inner_archives == 1;
    let files = if has_inner { &inner } else { &top };
    let images = plan_images(files, limits, &mut errors);
    // Every declared architecture needs exactly one image, and every image must be declared.
    let mut found: BTreeSet<Architecture> = BTreeSet::new();
    for (i, img) in images.iter().enumerate() {
        if !found.insert(img.architecture) {
            errors.add(
                format!("image.{i}.architecture"),
                "duplicate",
                format!("two images for {}", img.architecture),
            );
        } else if !manifest.architectures.contains(&img.architecture) {
            errors.add(
                "image.architecture",
                "architecture_mismatch",
                format!(
                    "the image is built for {}, the manifest declares {}",
                    img.architecture,
                    list(&manifest.architectures)
                ),
            );
        }
    }
    for arch in &manifest.architectures {
        if !found.contains(arch) && !images.is_empty() && errors.0.is_empty() {
            errors.add(
                "architectures",
                "missing_image",
                format!("the package holds no image for {arch}"),
            );
        }
    }
    errors.into_result()?;
    Ok(ScannedPackage {
        manifest,
        format,
        images,
        inner: has_inner,
    })
}

fn list(archs: &[Architecture]) -> String {
    archs
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(serde::Deserialize)]
struct LegacyEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

/// One image as the archive names it: config path and layer paths (with OCI digests).
struct ImageRef {
    config_path: String,
    config_digest: Option<String>,
    layers: Vec<(String, Option<String>)>,
}

fn blob_path(digest: &str) -> Option<String> {
    oci::sha256_hex(digest).map(|h| format!("blobs/sha256/{h}"))
}

/// The hex digest a file name promises: `blobs/sha256/<hex>` or a legacy `<hex>.json`.
fn named_digest(path: &str) -> Option<String> {
    let name = path
        .strip_prefix("blobs/sha256/")
        .or_else(|| path.strip_suffix(".json"))?;
    crate::blob::is_digest(name).then(|| name.to_owned())
}

fn plan_images(files: &Files, limits: &Limits, e: &mut ValidationErrors) -> Vec<PlannedImage> {
    let refs = if let Some(bytes) = files.content("manifest.json") {
        match serde_json::from_slice::<Vec<LegacyEntry>>(bytes) {
            Ok(entries) => entries
                .into_iter()
                .map(|m| ImageRef {
                    config_path: m.config,
                    config_digest: None,
                    layers: m.layers.into_iter().map(|l| (l, None)).collect(),
                })
                .collect(),
            Err(err) => {
                e.add(
                    "image.manifest",
                    "malformed",
                    format!("manifest.json: {err}"),
                );
                return vec![];
            }
        }
    } else if let Some(bytes) = files.content("index.json") {
        oci_refs(files, bytes, 0, e)
    } else {
        e.add(
            "image",
            "missing",
            "no image archive: expected manifest.json or index.json (docker save output)",
        );
        return vec![];
    };
    if refs.is_empty() && e.0.is_empty() {
        e.add("image", "missing", "the image archive lists no image");
    }
    if refs.len() > limits.max_images {
        e.add(
            "image",
            "too_many",
            format!("at most {} images per package", limits.max_images),
        );
        return vec![];
    }
    let mut out = Vec::new();
    for r in refs {
        if let Some(img) = plan_image(files, r, limits, e) {
            out.push(img);
        }
    }
    out
}

/// Image references of an OCI layout's index (nested indexes followed one level).
fn oci_refs(files: &Files, index: &[u8], depth: u8, e: &mut ValidationErrors) -> Vec<ImageRef> {
    let index: oci::ImageIndex = match serde_json::from_slice(index) {
        Ok(i) => i,
        Err(err) => {
            e.add("image.index", "malformed", format!("index.json: {err}"));
            return vec![];
        }
    };
    let mut out = Vec::new();
    for d in index.manifests {
        let Some(bytes) = verified_blob(files, &d, "image.manifest", e) else {
            continue;
        };
        let is_index =
            d.media_type == oci::MEDIA_TYPE_INDEX || d.media_type == oci::MEDIA_TYPE_DOCKER_LIST;
        if is_index {
            if depth < 1 {
                out.extend(oci_refs(files, bytes, depth + 1, e));
            }
            continue;
        }
        match serde_json::from_slice::<ImageManifest>(bytes) {
            Ok(m) => out.push(ImageRef {
                config_path: blob_path(&m.config.digest).unwrap_or_default(),
                config_digest: oci::sha256_hex(&m.config.digest).map(str::to_owned),
                layers: m
                    .layers
                    .iter()
                    .map(|l| {
                        (
                            blob_path(&l.digest).unwrap_or_default(),
                            oci::sha256_hex(&l.digest).map(str::to_owned),
                        )
                    })
                    .collect(),
            }),
            Err(err) => e.add(
                "image.manifest",
                "malformed",
                format!("{}: {err}", d.digest),
            ),
        }
    }
    out
}

/// The bytes of a small blob a descriptor names, if present and matching its digest.
fn verified_blob<'f>(
    files: &'f Files,
    d: &Descriptor,
    field: &str,
    e: &mut ValidationErrors,
) -> Option<&'f [u8]> {
    let Some(path) = blob_path(&d.digest) else {
        e.add(
            field,
            "invalid_digest",
            format!("`{}` is not a sha256 digest", d.digest),
        );
        return None;
    };
    let Some(bytes) = files.content(&path) else {
        e.add(
            field,
            "missing_blob",
            format!("{} is not in the archive", d.digest),
        );
        return None;
    };
    if oci::digest_of(bytes) != d.digest {
        e.add(
            field,
            "digest_mismatch",
            format!("{path} does not match its digest"),
        );
        return None;
    }
    Some(bytes)
}

fn plan_image(
    files: &Files,
    r: ImageRef,
    limits: &Limits,
    e: &mut ValidationErrors,
) -> Option<PlannedImage> {
    let before = e.0.len();
    let Some(config) = normalize(&r.config_path).and_then(|p| files.content(&p)) else {
        e.add(
            "image.config",
            "missing_config",
            format!(
                "the image configuration `{}` is not in the archive",
                r.config_path
            ),
        );
        return None;
    };
    let promised = r.config_digest.or_else(|| named_digest(&r.config_path));
    if let Some(hex) = promised
        && oci::digest_of(config) != format!("sha256:{hex}")
    {
        e.add(
            "image.config",
            "digest_mismatch",
            "the image configuration does not match its digest",
        );
    }
    let parsed: ImageConfig = match serde_json::from_slice(config) {
        Ok(c) => c,
        Err(err) => {
            e.add("image.config", "malformed", err.to_string());
            return None;
        }
    };
    let Some(architecture) = oci::architecture_of(&parsed.architecture, parsed.variant.as_deref())
    else {
        e.add(
            "image.architecture",
            "architecture_mismatch",
            format!(
                "the image is built for {}{}, which is none of amd64, arm64, armhf (arm v7)",
                parsed.architecture,
                parsed.variant.map(|v| format!("/{v}")).unwrap_or_default()
            ),
        );
        return None;
    };
    if !parsed.os.is_empty() && parsed.os != "linux" {
        e.add(
            "image.os",
            "unsupported",
            format!("the image is for {}", parsed.os),
        );
    }
    if r.layers.len() > limits.max_layers {
        e.add(
            "image.layers",
            "too_many",
            format!("at most {} layers", limits.max_layers),
        );
        return None;
    }
    if r.layers.len() != parsed.rootfs.diff_ids.len() {
        e.add(
            "image.layers",
            "count_mismatch",
            format!(
                "{} layers, but the configuration lists {} diff_ids",
                r.layers.len(),
                parsed.rootfs.diff_ids.len()
            ),
        );
        return None;
    }
    let mut layers = Vec::new();
    for (i, ((path, digest), diff_id)) in
        r.layers.into_iter().zip(parsed.rootfs.diff_ids).enumerate()
    {
        let Some(resolved) = normalize(&path).and_then(|p| files.resolve(&p)) else {
            e.add(
                format!("image.layers.{i}"),
                "missing_layer",
                format!("layer `{path}` is not in the archive"),
            );
            continue;
        };
        if oci::sha256_hex(&diff_id).is_none() {
            e.add(
                format!("image.layers.{i}"),
                "invalid_digest",
                "the configuration's diff_id is not a sha256 digest",
            );
            continue;
        }
        layers.push(PlannedLayer {
            blob_hex: digest.or_else(|| named_digest(&resolved)),
            path: resolved,
            diff_id,
        });
    }
    (e.0.len() == before).then(|| PlannedImage {
        architecture,
        config: config.to_vec(),
        layers,
    })
}

/// A layer as stored.
#[derive(Debug, Clone)]
struct LayerResult {
    blob: Descriptor,
    diff_id: String,
}

/// `io::Write` over a [`SinkUpload`] that hashes and counts what passes.
struct SinkWriter<'s> {
    upload: Box<dyn SinkUpload + 's>,
    hasher: Sha256,
    size: u64,
    error: Option<Error>,
}

impl Write for SinkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Err(e) = self.upload.write(buf) {
            self.error = Some(e);
            return Err(io::Error::other("blob store write failed"));
        }
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `io::Write` that only hashes and counts (for decompressed layer contents).
struct HashWriter {
    hasher: Sha256,
    left: u64,
}

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.left = self.left.checked_sub(buf.len() as u64).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::FileTooLarge,
                "layer expands beyond the limit",
            )
        })?;
        self.hasher.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn hex_digest(h: Sha256) -> String {
    hex::encode(h.finalize())
}

/// Stores a whole small blob from memory.
fn put_bytes(sink: &mut dyn BlobSink, bytes: &[u8]) -> Result<String> {
    let mut up = sink.begin()?;
    up.write(bytes)?;
    let hex = hex::encode(Sha256::digest(bytes));
    up.finish(&hex)?;
    Ok(format!("sha256:{hex}"))
}

/// Streams one layer: a gzip layer is stored as is, an uncompressed one gzipped; either way
/// the uncompressed digest must be `want.diff_id` and a named file must match its name.
fn store_layer(
    data: &mut dyn Read,
    want: &PlannedLayer,
    field: &str,
    sink: &mut dyn BlobSink,
    limits: &Limits,
) -> Result<LayerResult> {
    let layer_err = |code: &'static str, msg: String| invalid(field, code, msg);
    let mut data = BufReader::with_capacity(CHUNK, data);
    let head = data.fill_buf().map_err(io_error)?.to_vec();
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(layer_err(
            "unsupported_compression",
            "zstd layers are not supported; save the image with gzip or uncompressed layers".into(),
        ));
    }
    let mut original = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let upload = sink.begin()?;
    let mut out = SinkWriter {
        upload,
        hasher: Sha256::new(),
        size: 0,
        error: None,
    };
    let uncompressed = HashWriter {
        hasher: Sha256::new(),
        left: limits.max_unpacked,
    };
    let io_fail = |e: io::Error, out: &mut SinkWriter<'_>| -> Error {
        match out.error.take() {
            Some(err) => err,
            None if e.kind() == io::ErrorKind::FileTooLarge => {
                invalid(field, "too_large", e.to_string())
            }
            None => invalid(field, "malformed", format!("layer unreadable: {e}")),
        }
    };
    let diff_hex;
    if gzip {
        let mut decoder = flate2::write::MultiGzDecoder::new(uncompressed);
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => return Err(io_fail(e, &mut out)),
            };
            original.update(&buf[..n]);
            if let Err(e) = out.write_all(&buf[..n]) {
                return Err(io_fail(e, &mut out));
            }
            if let Err(e) = decoder.write_all(&buf[..n]) {
                return Err(io_fail(e, &mut out));
            }
        }
        match decoder.finish() {
            Ok(h) => diff_hex = hex_digest(h.hasher),
            Err(e) => return Err(io_fail(e, &mut out)),
        }
    } else {
        let mut diff = uncompressed;
        let mut encoder = flate2::GzBuilder::new().write(out, flate2::Compression::default());
        loop {
            let n = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => return Err(io_fail(e, encoder.get_mut())),
            };
            original.update(&buf[..n]);
            if let Err(e) = diff.write_all(&buf[..n]) {
                return Err(io_fail(e, encoder.get_mut()));
            }
            if let Err(e) = encoder.write_all(&buf[..n]) {
                return Err(io_fail(e, encoder.get_mut()));
            }
        }
        out = match encoder.finish() {
            Ok(o) => o,
            Err(e) => {
                return Err(invalid(
                    field,
                    "malformed",
                    format!("compression failed: {e}"),
                ));
            }
        };
        diff_hex = hex_digest(diff.hasher);
    }
    let original_hex = hex_digest(original);
    if let Some(named) = &want.blob_hex
        && *named != original_hex
    {
        return Err(layer_err(
            "digest_mismatch",
            format!("{} does not match its digest", want.path),
        ));
    }
    let diff_id = format!("sha256:{diff_hex}");
    if diff_id != want.diff_id {
        return Err(layer_err(
            "digest_mismatch",
            format!(
                "layer {} has content {diff_id}, the image configuration says {}",
                want.path, want.diff_id
            ),
        ));
    }
    let SinkWriter {
        upload,
        hasher,
        size,
        ..
    } = out;
    let blob_hex = hex_digest(hasher);
    upload.finish(&blob_hex)?;
    Ok(LayerResult {
        blob: Descriptor {
            media_type: oci::MEDIA_TYPE_LAYER_GZIP.into(),
            digest: format!("sha256:{blob_hex}"),
            size,
            platform: None,
            annotations: None,
        },
        diff_id,
    })
}

impl ScannedPackage {
    /// The architectures the package carries images for.
    pub fn architectures(&self) -> Vec<Architecture> {
        self.images.iter().map(|i| i.architecture).collect()
    }

    /// Pass 2: streams the layers of `src` (the same bytes [`scan`] read) into `sink`, then
    /// the configurations and one OCI manifest per image. A layer whose content differs from
    /// its digest fails the whole package (`Invalid`, field `image.layers.<n>`).
    pub fn store<R: Read>(
        &self,
        src: R,
        sink: &mut dyn BlobSink,
        limits: &Limits,
    ) -> Result<Vec<StoredImage>> {
        let level = usize::from(self.inner);
        // path → (first layer planned for it, its field name)
        let mut wanted: BTreeMap<&str, (&PlannedLayer, String)> = BTreeMap::new();
        for img in &self.images {
            for (i, l) in img.layers.iter().enumerate() {
                wanted
                    .entry(l.path.as_str())
                    .or_insert_with(|| (l, format!("image.layers.{i}")));
            }
        }
        let mut done: BTreeMap<String, LayerResult> = BTreeMap::new();
        walk(src, limits, &mut |entry| {
            if let Entry::File {
                level: l,
                path,
                data,
                ..
            } = entry
                && l == level
                && let Some((want, field)) = wanted.get(path.as_str())
                && !done.contains_key(&path)
            {
                let r = store_layer(data, want, field, sink, limits)?;
                done.insert(path, r);
            }
            Ok(())
        })?;
        let mut out = Vec::new();
        for img in &self.images {
            let mut layers = Vec::new();
            let mut diff_ids = Vec::new();
            for (i, l) in img.layers.iter().enumerate() {
                let Some(r) = done.get(&l.path) else {
                    return Err(invalid(
                        format!("image.layers.{i}"),
                        "missing_layer",
                        format!("layer `{}` vanished between the passes", l.path),
                    ));
                };
                if r.diff_id != l.diff_id {
                    return Err(invalid(
                        format!("image.layers.{i}"),
                        "digest_mismatch",
                        format!("layer {} does not match the configuration", l.path),
                    ));
                }
                layers.push(r.blob.clone());
                diff_ids.push(r.diff_id.clone());
            }
            let config_digest = put_bytes(sink, &img.config)?;
            let manifest = ImageManifest::new(
                Descriptor {
                    media_type: oci::MEDIA_TYPE_CONFIG.into(),
                    digest: config_digest,
                    size: img.config.len() as u64,
                    platform: None,
                    annotations: None,
                },
                layers,
            );
            let manifest_bytes =
                serde_json::to_vec(&manifest).map_err(|e| Error::Storage(Box::new(e)))?;
            let manifest_digest = put_bytes(sink, &manifest_bytes)?;
            out.push(StoredImage {
                architecture: img.architecture,
                manifest_digest,
                manifest,
                manifest_bytes,
                diff_ids,
            });
        }
        Ok(out)
    }
}
