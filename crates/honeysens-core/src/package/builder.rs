//! Writing a package without Docker: one `FROM scratch`-style image per architecture, built
//! from a list of files, as either an OCI layout (what Docker ≥ 25 saves) or the legacy
//! `docker save` layout (what Docker 20.10 saves), beside `honeysens.json` or `metadata.xml`.

use super::manifest::PackageManifest;
use super::oci::{self, Descriptor, ImageIndex, ImageManifest, Platform};
use crate::Error;
use crate::error::Result;
use crate::model::Architecture;
use std::collections::BTreeSet;
use std::io::Write;

/// A file of the image's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsFile {
    /// Path inside the image, e.g. `bin/honeypot` (leading `/` ignored).
    pub path: String,
    /// Unix permission bits, e.g. `0o755`.
    pub mode: u32,
    /// Contents.
    pub contents: Vec<u8>,
}

/// One image of a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Architecture the files are built for.
    pub architecture: Architecture,
    /// The root filesystem (one layer).
    pub files: Vec<RootfsFile>,
    /// `Entrypoint` of the image configuration.
    pub entrypoint: Vec<String>,
    /// `Cmd` of the image configuration.
    pub cmd: Vec<String>,
    /// `Env` (`KEY=value`).
    pub env: Vec<String>,
    /// `ExposedPorts` keys, e.g. `2222/tcp`.
    pub exposed_ports: Vec<String>,
}

/// How the image archive inside the package is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveLayout {
    /// OCI image layout with gzip layers (`index.json`, `oci-layout`, `blobs/sha256/…`).
    Oci,
    /// Legacy `docker save` (`manifest.json`, `<id>.json`, `<id>/layer.tar` uncompressed).
    DockerLegacy,
}

/// Which service description the package carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestStyle {
    /// `honeysens.json`, the image archive's files beside it.
    Json,
    /// The old `metadata.xml` beside an inner `service.tar` (one architecture only).
    MetadataXml,
}

/// Builds packages.
#[derive(Debug, Clone)]
pub struct PackageBuilder {
    /// The service description.
    pub manifest: PackageManifest,
    /// One image per architecture.
    pub images: Vec<ImageSpec>,
    /// Layout of the image archive.
    pub layout: ArchiveLayout,
    /// Manifest file style.
    pub style: ManifestStyle,
}

fn storage(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Storage(Box::new(e))
}

struct BuiltImage {
    architecture: Architecture,
    config: Vec<u8>,
    layer_tar: Vec<u8>,
    layer_gz: Vec<u8>,
}

fn append(tar: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(mode);
    h.set_size(data.len() as u64);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    tar.append_data(&mut h, path, data).map_err(storage)
}

fn append_dir(tar: &mut tar::Builder<Vec<u8>>, path: &str) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    h.set_mtime(0);
    tar.append_data(&mut h, format!("{path}/"), std::io::empty())
        .map_err(storage)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    enc.write_all(data).map_err(storage)?;
    enc.finish().map_err(storage)
}

fn build_image(spec: &ImageSpec) -> Result<BuiltImage> {
    let mut tar = tar::Builder::new(Vec::new());
    let files: Vec<(String, &RootfsFile)> = spec
        .files
        .iter()
        .map(|f| (f.path.trim_start_matches('/').to_owned(), f))
        .collect();
    let mut dirs = BTreeSet::new();
    for (path, _) in &files {
        let mut acc = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(part);
            dirs.insert(acc.clone());
        }
    }
    for d in &dirs {
        append_dir(&mut tar, d)?;
    }
    for (path, f) in &files {
        append(&mut tar, path, f.mode, &f.contents)?;
    }
    let layer_tar = tar.into_inner().map_err(storage)?;
    let layer_gz = gzip(&layer_tar)?;
    let (arch, variant) = oci::go_arch(spec.architecture);
    let ports: serde_json::Map<String, serde_json::Value> = spec
        .exposed_ports
        .iter()
        .map(|p| (p.clone(), serde_json::json!({})))
        .collect();
    let mut config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Entrypoint": spec.entrypoint,
            "Cmd": spec.cmd,
            "Env": spec.env,
            "ExposedPorts": ports,
        },
        "rootfs": { "type": "layers", "diff_ids": [oci::digest_of(&layer_tar)] },
    });
    if let (Some(v), Some(obj)) = (variant, config.as_object_mut()) {
        obj.insert("variant".into(), v.into());
    }
    Ok(BuiltImage {
        architecture: spec.architecture,
        config: serde_json::to_vec(&config).map_err(storage)?,
        layer_tar,
        layer_gz,
    })
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: oci::digest_of(bytes),
        size: bytes.len() as u64,
        platform: None,
        annotations: None,
    }
}

/// The files of the image archive (path, bytes) in the order they are written.
fn archive_files(
    images: &[BuiltImage],
    layout: ArchiveLayout,
    tag: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    match layout {
        ArchiveLayout::Oci => {
            out.push((
                "oci-layout".to_owned(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ));
            let mut index = ImageIndex {
                schema_version: 2,
                media_type: oci::MEDIA_TYPE_INDEX.into(),
                manifests: vec![],
            };
            for img in images {
                let config = descriptor(oci::MEDIA_TYPE_CONFIG, &img.config);
                let layer = descriptor(oci::MEDIA_TYPE_LAYER_GZIP, &img.layer_gz);
                let manifest = ImageManifest::new(config.clone(), vec![layer.clone()]);
                let bytes = serde_json::to_vec(&manifest).map_err(storage)?;
                let mut d = descriptor(oci::MEDIA_TYPE_MANIFEST, &bytes);
                d.platform = Some(Platform::of(img.architecture));
                d.annotations = Some(
                    [(
                        "org.opencontainers.image.ref.name".to_owned(),
                        tag.to_owned(),
                    )]
                    .into(),
                );
                index.manifests.push(d);
                for (desc, data) in [
                    (&config, &img.config),
                    (&layer, &img.layer_gz),
                    (&descriptor("", &bytes), &bytes),
                ] {
                    out.push((
                        format!("blobs/sha256/{}", hex_of(&desc.digest)),
                        data.clone(),
                    ));
                }
            }
            out.push((
                "index.json".to_owned(),
                serde_json::to_vec(&index).map_err(storage)?,
            ));
        }
        ArchiveLayout::DockerLegacy => {
            let mut manifest = Vec::new();
            for img in images {
                let config_name = format!("{}.json", hex_of(&oci::digest_of(&img.config)));
                let layer_name = format!("{}/layer.tar", hex_of(&oci::digest_of(&img.layer_tar)));
                out.push((layer_name.clone(), img.layer_tar.clone()));
                out.push((config_name.clone(), img.config.clone()));
                manifest.push(serde_json::json!({
                    "Config": config_name,
                    "RepoTags": [tag],
                    "Layers": [layer_name],
                }));
            }
            out.push((
                "manifest.json".to_owned(),
                serde_json::to_vec(&manifest).map_err(storage)?,
            ));
        }
    }
    Ok(out)
}

/// Escapes text for an XML element.
fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl PackageBuilder {
    /// A builder for the given description and images (OCI layout, `honeysens.json`).
    pub fn new(manifest: PackageManifest, images: Vec<ImageSpec>) -> PackageBuilder {
        PackageBuilder {
            manifest,
            images,
            layout: ArchiveLayout::Oci,
            style: ManifestStyle::Json,
        }
    }

    /// The package as a list of top-level archive entries (path, bytes); for tests that
    /// tamper with a package before writing it with [`write_entries`].
    pub fn entries(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let built = self
            .images
            .iter()
            .map(build_image)
            .collect::<Result<Vec<_>>>()?;
        let tag = format!("{}:{}", self.manifest.repository, self.manifest.revision);
        let files = archive_files(&built, self.layout, &tag)?;
        let mut out = Vec::new();
        match self.style {
            ManifestStyle::Json => {
                out.push((
                    "honeysens.json".to_owned(),
                    serde_json::to_vec_pretty(&self.manifest).map_err(storage)?,
                ));
                out.extend(files);
            }
            ManifestStyle::MetadataXml => {
                let m = &self.manifest;
                let arch = m.architectures.first().map(|a| a.as_str()).unwrap_or("");
                let ports = serde_json::to_string(&m.port_assignment).map_err(storage)?;
                let xml = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<service>\n  <name>{}</name>\n  \
                     <repository>{}</repository>\n  <description>{}</description>\n  \
                     <architecture>{arch}</architecture>\n  <revision>{}</revision>\n  \
                     <revisionDescription>{}</revisionDescription>\n  \
                     <rawNetworkAccess>{}</rawNetworkAccess>\n  <catchAll>{}</catchAll>\n  \
                     <portAssignment>{}</portAssignment>\n</service>\n",
                    xml_escape(&m.name),
                    xml_escape(&m.repository),
                    xml_escape(&m.description),
                    xml_escape(&m.revision),
                    xml_escape(&m.revision_description),
                    m.raw_network_access,
                    m.catch_all,
                    xml_escape(&ports),
                );
                out.push(("metadata.xml".to_owned(), xml.into_bytes()));
                let mut inner = Vec::new();
                write_entries(&mut inner, &files)?;
                out.push(("service.tar".to_owned(), inner));
            }
        }
        Ok(out)
    }

    /// Writes the package (an uncompressed tar) to `out`.
    pub fn write<W: Write>(&self, out: W) -> Result<W> {
        write_entries(out, &self.entries()?)
    }
}

/// Writes `(path, bytes)` entries as a tar archive.
pub fn write_entries<W: Write>(out: W, entries: &[(String, Vec<u8>)]) -> Result<W> {
    let mut tar = tar::Builder::new(out);
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        tar.append_data(&mut h, path, data.as_slice())
            .map_err(storage)?;
    }
    tar.into_inner().map_err(storage)
}
