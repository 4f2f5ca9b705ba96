//! Where service images come from: the server's read-only OCI registry, turned into a
//! `docker load` archive.
//!
//! [`RegistryImageSource`] downloads the manifest by digest (`GET /v2/<repository>/manifests/
//! <digest>`), then its config and layers (`GET /v2/<repository>/blobs/<digest>`) through the
//! agent's [`Transport`] (sensor-authenticated), checks the sha256 of every piece against its
//! digest, and writes a legacy `docker save` layout (`manifest.json` with `Config`, `RepoTags`,
//! `Layers`; gzip layers stay compressed, Docker unpacks them) as one tar file. An image index
//! is resolved to the manifest for this host's architecture. The [`ImageSource`] trait lets
//! tests feed an archive made locally.

use honeysens_core::protocol::{ServiceTarget, Transport};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// OCI and Docker manifest media types the registry may answer with.
pub const MANIFEST_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Why an image could not be supplied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The service's repository or digest is not acceptable.
    #[error("invalid image reference: {0}")]
    Reference(String),
    /// No transport to the server yet (no successful connection).
    #[error("no connection to the server")]
    NoTransport,
    /// A download failed.
    #[error("download of {path} failed: {reason}")]
    Download {
        /// The registry path.
        path: String,
        /// Why.
        reason: String,
    },
    /// A downloaded piece does not match its digest.
    #[error("digest mismatch for {path}: expected {expected}, got {actual}")]
    Digest {
        /// The registry path.
        path: String,
        /// What the manifest or service said.
        expected: String,
        /// What arrived.
        actual: String,
    },
    /// The manifest is not one we can use.
    #[error("unusable manifest: {0}")]
    Manifest(String),
    /// Local files could not be written or read.
    #[error("local I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// A `docker load` archive ready for import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedImage {
    /// The archive file.
    pub archive: PathBuf,
    /// Whether the runtime should delete it after the import.
    pub temporary: bool,
}

/// Supplies service images as `docker load` archives.
#[async_trait::async_trait]
pub trait ImageSource: Send + Sync {
    /// The image of `service` as an archive, written under `work_dir` (which exists and is
    /// private to this fetch). `transport` is the agent's connection to the server, if any.
    async fn fetch(
        &self,
        service: &ServiceTarget,
        transport: Option<std::sync::Arc<dyn Transport>>,
        work_dir: &Path,
    ) -> Result<FetchedImage, ImageError>;
}

/// Images from the server's registry (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub struct RegistryImageSource;

#[derive(Debug, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// `sha256:<64 hex>` → the hex part.
pub fn digest_hex(digest: &str) -> Result<&str, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(hex)
        }
        _ => Err(ImageError::Reference(format!(
            "digest {digest:?} is not sha256:<64 lowercase hex>"
        ))),
    }
}

/// Checks a repository name the way registries and Docker do: lowercase path components of
/// `[a-z0-9._-]`, separated by `/`, no empty or dot-only components (they would escape the
/// `/v2/` path).
pub fn check_repository(repo: &str) -> Result<(), ImageError> {
    let ok = !repo.is_empty()
        && repo.len() <= 255
        && repo.split('/').all(|c| {
            !c.is_empty()
                && c.bytes().any(|b| b.is_ascii_alphanumeric())
                && c.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
                && !c.starts_with(['.', '_', '-'])
        });
    if ok {
        Ok(())
    } else {
        Err(ImageError::Reference(format!(
            "repository {repo:?} is not a valid lowercase image name"
        )))
    }
}

/// The sha256 of a file, as `sha256:<hex>`.
pub async fn file_digest(path: &Path) -> Result<String, ImageError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        use std::io::Read;
        let mut f = std::fs::File::open(&path)?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(format!("sha256:{}", hex::encode(h.finalize())))
    })
    .await
    .map_err(|e| ImageError::Io(std::io::Error::other(e)))?
    .map_err(ImageError::Io)
}

/// The Docker/OCI name of this host's architecture.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

async fn download_verified(
    transport: &dyn Transport,
    path: &str,
    accept: &[&str],
    digest: &str,
    size: Option<u64>,
    dest: &Path,
) -> Result<(), ImageError> {
    let got = transport
        .download(path, accept, dest)
        .await
        .map_err(|e| ImageError::Download {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if let Some(size) = size
        && size != got.size
    {
        return Err(ImageError::Download {
            path: path.to_owned(),
            reason: format!("expected {size} bytes, got {}", got.size),
        });
    }
    let actual = file_digest(dest).await?;
    if actual != digest {
        return Err(ImageError::Digest {
            path: path.to_owned(),
            expected: digest.to_owned(),
            actual,
        });
    }
    Ok(())
}

#[async_trait::async_trait]
impl ImageSource for RegistryImageSource {
    async fn fetch(
        &self,
        service: &ServiceTarget,
        transport: Option<std::sync::Arc<dyn Transport>>,
        work_dir: &Path,
    ) -> Result<FetchedImage, ImageError> {
        let transport = transport.ok_or(ImageError::NoTransport)?;
        let repo = &service.repository;
        check_repository(repo)?;
        let mut digest = service.image_digest.clone();
        digest_hex(&digest)?;
        let manifest_file = work_dir.join("manifest.download");
        // An index (multi-architecture image) is followed once to this host's manifest.
        let mut manifest = None;
        for _ in 0..2 {
            let path = format!("/v2/{repo}/manifests/{digest}");
            download_verified(
                &*transport,
                &path,
                MANIFEST_MEDIA_TYPES,
                &digest,
                None,
                &manifest_file,
            )
            .await?;
            let m: Manifest = serde_json::from_slice(&tokio::fs::read(&manifest_file).await?)
                .map_err(|e| ImageError::Manifest(format!("{path}: {e}")))?;
            if m.manifests.is_empty() {
                manifest = Some(m);
                break;
            }
            let arch = oci_arch();
            let pick = m
                .manifests
                .iter()
                .find(|d| {
                    d.platform.as_ref().is_some_and(|p| {
                        p.architecture == arch
                            && (p.os.is_empty() || p.os == "linux")
                            && (arch != "arm" || p.variant.as_deref().is_none_or(|v| v == "v7"))
                    })
                })
                .ok_or_else(|| {
                    ImageError::Manifest(format!("the index {digest} has no linux/{arch} image"))
                })?;
            digest_hex(&pick.digest)?;
            digest = pick.digest.clone();
        }
        let manifest = manifest
            .ok_or_else(|| ImageError::Manifest("nested image indexes are not supported".into()))?;
        let config = manifest
            .config
            .ok_or_else(|| ImageError::Manifest("no config descriptor".into()))?;
        let config_hex = digest_hex(&config.digest)?.to_owned();
        let config_name = format!("{config_hex}.json");
        download_verified(
            &*transport,
            &format!("/v2/{repo}/blobs/{}", config.digest),
            &[],
            &config.digest,
            config.size,
            &work_dir.join(&config_name),
        )
        .await?;
        let mut layer_names = Vec::with_capacity(manifest.layers.len());
        for layer in &manifest.layers {
            let hex = digest_hex(&layer.digest)?;
            let mt = layer.media_type.as_str();
            // Docker's loader detects gzip itself; zstd and foreign layers it cannot take.
            if mt.contains("zstd") || mt.contains("foreign") || mt.contains("nondistributable") {
                return Err(ImageError::Manifest(format!(
                    "layer {} has an unsupported media type {mt}",
                    layer.digest
                )));
            }
            let name = format!("{hex}.tar");
            download_verified(
                &*transport,
                &format!("/v2/{repo}/blobs/{}", layer.digest),
                &[],
                &layer.digest,
                layer.size,
                &work_dir.join(&name),
            )
            .await?;
            // A layer listed twice (an empty layer, say) goes into the archive once.
            if !layer_names.contains(&name) {
                layer_names.push(name);
            }
        }
        let layers: Vec<String> = manifest
            .layers
            .iter()
            .filter_map(|l| digest_hex(&l.digest).ok().map(|h| format!("{h}.tar")))
            .collect();
        let tag = repo_tag(service);
        let load_manifest = serde_json::json!([{
            "Config": config_name,
            "RepoTags": [tag],
            "Layers": layers,
        }]);
        let archive = work_dir.join("image.tar");
        let dir = work_dir.to_owned();
        let out = archive.clone();
        let mut members = vec![config_name];
        members.extend(layer_names);
        tokio::task::spawn_blocking(move || write_archive(&dir, &out, &load_manifest, &members))
            .await
            .map_err(|e| ImageError::Io(std::io::Error::other(e)))??;
        // The pieces are in the archive now; the disk of a small sensor is precious.
        for m in std::fs::read_dir(work_dir)? {
            let p = m?.path();
            if p != archive {
                let _ = std::fs::remove_file(p);
            }
        }
        Ok(FetchedImage {
            archive,
            temporary: true,
        })
    }
}

/// `<repository>:<revision>`, the revision made a valid tag (`[A-Za-z0-9_.-]`, ≤ 128).
pub fn repo_tag(service: &ServiceTarget) -> String {
    let mut tag: String = service
        .revision
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    if tag.is_empty() || tag.starts_with(['.', '-']) {
        tag.insert(0, 'r');
        tag.truncate(128);
    }
    format!("{}:{tag}", service.repository)
}

fn write_archive(
    dir: &Path,
    out: &Path,
    manifest: &serde_json::Value,
    members: &[String],
) -> Result<(), ImageError> {
    let file = std::fs::File::create(out)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    let bytes = serde_json::to_vec(manifest).map_err(std::io::Error::other)?;
    let mut header = tar::Header::new_ustar();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "manifest.json", bytes.as_slice())?;
    for m in members {
        tar.append_path_with_name(dir.join(m), m)?;
    }
    let w = tar.into_inner()?;
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_are_checked() {
        assert!(check_repository("honeysens/cowrie").is_ok());
        assert!(check_repository("recon").is_ok());
        for bad in [
            "",
            "Upper",
            "a//b",
            "../x",
            "a/..",
            "a?b",
            "a/.hidden",
            "a b",
        ] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn digests_are_checked() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(digest_hex(&ok).ok(), Some("a".repeat(64).as_str()));
        assert!(digest_hex("sha256:abc").is_err());
        assert!(digest_hex(&format!("sha512:{}", "a".repeat(64))).is_err());
        assert!(digest_hex(&format!("sha256:{}", "A".repeat(64))).is_err());
    }
}
