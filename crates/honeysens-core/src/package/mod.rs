//! Service packages: what an administrator uploads to add a honeypot service or a revision.
//!
//! A package is a tar archive (optionally gzip-compressed) holding the service description
//! (`honeysens.json`, or the old HoneySens `metadata.xml`) and the image archive as
//! `docker save` writes it — legacy layout (`manifest.json`, `<id>.json`, `<id>/layer.tar`)
//! or OCI layout (`index.json`, `oci-layout`, `blobs/sha256/…`) — either as the package's
//! own files or as one inner `*.tar`. The format is described in `docs/services.md`.
//!
//! Reading is pure over [`std::io::Read`] and never holds a layer in memory: [`scan`] checks
//! the description and image metadata, [`ScannedPackage::store`] streams the layers into a
//! [`BlobSink`] and writes one OCI image manifest per architecture. [`PackageBuilder`] writes
//! packages without Docker.

mod builder;
mod manifest;
pub mod oci;
mod reader;

pub use builder::{
    ArchiveLayout, ImageSpec, ManifestStyle, PackageBuilder, RootfsFile, write_entries,
};
pub use manifest::PackageManifest;
pub use reader::{BlobSink, Limits, ManifestFormat, ScannedPackage, SinkUpload, StoredImage, scan};

#[cfg(test)]
mod tests;
