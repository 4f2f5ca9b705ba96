//! Content-addressed blob storage for large uploads (firmware images, service image layers).
//!
//! A blob is named by the SHA-256 of its bytes (64 lowercase hex characters), so storing the
//! same bytes twice keeps one copy and a blob can be verified by anyone who reads it. Uploads
//! stream through a [`BlobUpload`] and become visible only when [`BlobUpload::finish`]
//! succeeds; an abandoned upload leaves nothing behind. The filesystem implementation is
//! `honeysens_store::FsBlobStore`.

use crate::error::Result;
use async_trait::async_trait;
use std::pin::Pin;

/// A stored blob's name and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Reads a blob.
pub type BlobReader = Pin<Box<dyn tokio::io::AsyncRead + Send>>;

/// Where blobs live.
#[async_trait]
pub trait BlobStore: std::fmt::Debug + Send + Sync + 'static {
    /// Starts an upload of at most `max_size` bytes.
    async fn begin(&self, max_size: u64) -> Result<Box<dyn BlobUpload>>;
    /// The blob's size, or `None` if it is not stored.
    async fn stat(&self, sha256: &str) -> Result<Option<u64>>;
    /// Opens a blob for reading; `NotFound` (entity `blob`) if it is not stored.
    async fn open(&self, sha256: &str) -> Result<(BlobInfo, BlobReader)>;
    /// Removes a blob; removing a missing blob is not an error.
    async fn delete(&self, sha256: &str) -> Result<()>;
}

/// An upload in progress. Dropping it without [`finish`](BlobUpload::finish) discards it.
#[async_trait]
pub trait BlobUpload: Send {
    /// Appends bytes; `Invalid` (field `size`) once more than the maximum size was written.
    async fn write(&mut self, chunk: &[u8]) -> Result<()>;
    /// Makes the blob durable and visible under its digest. With `expect_sha256`, a different
    /// digest is `Invalid` (field `sha256`) and nothing is stored.
    async fn finish(self: Box<Self>, expect_sha256: Option<&str>) -> Result<BlobInfo>;
}

/// Whether `s` is a well-formed blob name (64 lowercase hex characters).
pub fn is_digest(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
