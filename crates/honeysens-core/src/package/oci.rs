//! The OCI image documents this project writes and serves: image manifests, image indexes
//! and the parts of an image configuration the package reader checks.

use crate::model::Architecture;
use serde::{Deserialize, Serialize};

/// Media type of an OCI image manifest.
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Media type of an OCI image configuration.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of a gzip-compressed layer (every layer the server stores).
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of an uncompressed layer (accepted in packages, never served).
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Docker's media type of a gzip-compressed layer (accepted in packages).
pub const MEDIA_TYPE_DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker's media type of a schema 2 manifest (accepted inside packages).
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's media type of a manifest list (accepted inside packages).
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    #[serde(default)]
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Platform, in index entries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations (e.g. `org.opencontainers.image.ref.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// A platform in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// Go architecture name (`amd64`, `arm64`, `arm`).
    pub architecture: String,
    /// Always `linux` here.
    pub os: String,
    /// CPU variant (`v7` for `arm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The OCI platform of one of our architectures.
    pub fn of(arch: Architecture) -> Platform {
        let (architecture, variant) = go_arch(arch);
        Platform {
            architecture: architecture.into(),
            os: "linux".into(),
            variant: variant.map(str::to_owned),
        }
    }
}

/// Go architecture name and variant of one of our architectures.
pub fn go_arch(arch: Architecture) -> (&'static str, Option<&'static str>) {
    match arch {
        Architecture::Amd64 => ("amd64", None),
        Architecture::Arm64 => ("arm64", None),
        Architecture::Armhf => ("arm", Some("v7")),
    }
}

/// Our architecture of an image configuration's `architecture`/`variant`, if it is one we
/// run: `arm` counts as `armhf` for variant `v7` or none, `arm64` for variant `v8` or none.
pub fn architecture_of(go_arch: &str, variant: Option<&str>) -> Option<Architecture> {
    match (go_arch, variant.unwrap_or("")) {
        ("amd64", "") => Some(Architecture::Amd64),
        ("arm64", "" | "v8") => Some(Architecture::Arm64),
        ("arm", "" | "v7") => Some(Architecture::Armhf),
        _ => None,
    }
}

/// An image manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// [`MEDIA_TYPE_MANIFEST`].
    #[serde(default)]
    pub media_type: String,
    /// The configuration blob.
    pub config: Descriptor,
    /// Layer blobs, base first.
    pub layers: Vec<Descriptor>,
}

impl ImageManifest {
    /// The manifest of an image whose config and layers are stored as given.
    pub fn new(config: Descriptor, layers: Vec<Descriptor>) -> ImageManifest {
        ImageManifest {
            schema_version: 2,
            media_type: MEDIA_TYPE_MANIFEST.into(),
            config,
            layers,
        }
    }
}

/// An image index (a tag over several architectures).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// [`MEDIA_TYPE_INDEX`].
    #[serde(default)]
    pub media_type: String,
    /// One entry per image.
    pub manifests: Vec<Descriptor>,
}

/// The parts of an image configuration the package reader checks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    /// Go architecture name.
    #[serde(default)]
    pub architecture: String,
    /// CPU variant.
    #[serde(default)]
    pub variant: Option<String>,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
}

/// `rootfs` of an image configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RootFs {
    /// `sha256:<hex>` of each uncompressed layer, base first.
    pub diff_ids: Vec<String>,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The hex part of a well-formed `sha256:<64 lowercase hex>` digest.
pub fn sha256_hex(digest: &str) -> Option<&str> {
    digest
        .strip_prefix("sha256:")
        .filter(|h| crate::blob::is_digest(h))
}
