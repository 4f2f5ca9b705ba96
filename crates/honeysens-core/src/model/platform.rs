//! Hardware/runtime platforms and their firmware revisions.

use crate::error::{Result, ValidationErrors};
use crate::ids::{FirmwareId, PlatformId};
use crate::time::Timestamp;
use crate::validate;
use serde::{Deserialize, Serialize};

/// A platform sensors run on (e.g. `bbb` for BeagleBone, `docker_x86`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Platform {
    /// Server-assigned id.
    pub id: PlatformId,
    /// Editable fields.
    #[serde(flatten)]
    pub spec: PlatformSpec,
    /// Revision sensors on this platform run unless they override it.
    pub default_firmware: Option<FirmwareId>,
}

/// The editable part of a [`Platform`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlatformSpec {
    /// Unique short name, e.g. `docker_x86`.
    pub name: String,
    /// Display title.
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
}

impl PlatformSpec {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        validate::login(&mut e, "name", &self.name);
        validate::name(&mut e, "title", &self.title);
        validate::text(&mut e, "description", &self.description, 4096);
        e.into_result()
    }
}

/// One firmware revision of a platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FirmwareRevision {
    /// Server-assigned id.
    pub id: FirmwareId,
    /// Editable fields.
    #[serde(flatten)]
    pub spec: FirmwareSpec,
    /// Upload time.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
}

/// Metadata of an uploaded firmware image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FirmwareSpec {
    /// Platform this image runs on.
    pub platform_id: PlatformId,
    /// Version, unique per platform.
    pub version: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Changelog entries.
    #[serde(default)]
    pub changelog: Vec<String>,
    /// SHA-256 of the image, hex.
    pub sha256: String,
    /// Image size in bytes.
    pub size: u64,
    /// Where the blob lives in the server's blob storage.
    pub storage_key: String,
}

impl FirmwareSpec {
    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        let mut e = ValidationErrors::default();
        validate::name(&mut e, "version", &self.version);
        validate::text(&mut e, "description", &self.description, 4096);
        if self.sha256.len() != 64 || !self.sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            e.add("sha256", "invalid_digest", "must be 64 hex characters");
        }
        validate::name(&mut e, "storage_key", &self.storage_key);
        e.into_result()
    }
}
