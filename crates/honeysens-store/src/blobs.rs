//! [`FsBlobStore`]: content-addressed blobs as files under one directory.
//!
//! Layout: `<root>/sha256/<first two hex>/<digest>` for blobs and `<root>/tmp/` for uploads
//! in progress. An upload is written to a temporary file, hashed on the way, fsynced and then
//! renamed into place, so a crash leaves either the whole blob or only a temporary file (which
//! [`FsBlobStore::open_dir`] removes on the next start).

use async_trait::async_trait;
use honeysens_core::blob::{BlobInfo, BlobReader, BlobStore, BlobUpload, is_digest};
use honeysens_core::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Blobs in a directory of the local filesystem.
#[derive(Debug, Clone)]
pub struct FsBlobStore {
    root: PathBuf,
}

fn io(e: std::io::Error) -> Error {
    Error::Storage(Box::new(e))
}

impl FsBlobStore {
    /// Opens (creating, mode 0700) the blob directory and clears abandoned uploads.
    pub async fn open_dir(root: impl Into<PathBuf>) -> Result<FsBlobStore> {
        let root = root.into();
        let tmp = root.join("tmp");
        if tokio::fs::try_exists(&tmp).await.map_err(io)? {
            tokio::fs::remove_dir_all(&tmp).await.map_err(io)?;
        }
        for dir in [root.clone(), tmp, root.join("sha256")] {
            tokio::fs::create_dir_all(&dir).await.map_err(io)?;
            restrict(&dir, 0o700).await?;
        }
        Ok(FsBlobStore { root })
    }

    fn path(&self, sha256: &str) -> Result<PathBuf> {
        if !is_digest(sha256) {
            return Err(Error::not_found("blob"));
        }
        Ok(self.root.join("sha256").join(&sha256[..2]).join(sha256))
    }
}

#[cfg(unix)]
async fn restrict(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .await
        .map_err(io)
}

#[cfg(not(unix))]
async fn restrict(_path: &Path, _mode: u32) -> Result<()> {
    Ok(())
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn begin(&self, max_size: u64) -> Result<Box<dyn BlobUpload>> {
        let tmp = self
            .root
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(io)?;
        restrict(&tmp, 0o600).await?;
        Ok(Box::new(FsUpload {
            store: self.clone(),
            guard: TempFile(Some(tmp)),
            file,
            hasher: Sha256::new(),
            size: 0,
            max_size,
        }))
    }

    async fn stat(&self, sha256: &str) -> Result<Option<u64>> {
        let Ok(path) = self.path(sha256) else {
            return Ok(None);
        };
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn open(&self, sha256: &str) -> Result<(BlobInfo, BlobReader)> {
        let path = self.path(sha256)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::not_found("blob"));
            }
            Err(e) => return Err(io(e)),
        };
        let size = file.metadata().await.map_err(io)?.len();
        let info = BlobInfo {
            sha256: sha256.to_owned(),
            size,
        };
        Ok((info, Box::pin(file)))
    }

    async fn delete(&self, sha256: &str) -> Result<()> {
        let Ok(path) = self.path(sha256) else {
            return Ok(());
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(e)),
        }
    }
}

/// Removes the temporary file unless the upload was committed.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

struct FsUpload {
    store: FsBlobStore,
    guard: TempFile,
    file: tokio::fs::File,
    hasher: Sha256,
    size: u64,
    max_size: u64,
}

#[async_trait]
impl BlobUpload for FsUpload {
    async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.size += chunk.len() as u64;
        if self.size > self.max_size {
            return Err(Error::invalid(
                "size",
                "too_large",
                format!("larger than {} bytes", self.max_size),
            ));
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk).await.map_err(io)
    }

    async fn finish(mut self: Box<Self>, expect_sha256: Option<&str>) -> Result<BlobInfo> {
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if let Some(expected) = expect_sha256
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(Error::invalid(
                "sha256",
                "mismatch",
                "the content does not match the given SHA-256",
            ));
        }
        self.file.flush().await.map_err(io)?;
        self.file.sync_all().await.map_err(io)?;
        let dest = self.store.path(&sha256)?;
        if let Some(dir) = dest.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        if let Some(tmp) = self.guard.0.take() {
            // Same bytes already stored: keep the existing file, drop the new copy.
            if tokio::fs::try_exists(&dest).await.map_err(io)? {
                let _ = tokio::fs::remove_file(&tmp).await;
            } else {
                tokio::fs::rename(&tmp, &dest).await.map_err(io)?;
            }
        }
        Ok(BlobInfo {
            sha256,
            size: self.size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn upload_hash_dedup_limits_and_abandon() {
        let dir = std::env::temp_dir().join(format!("hs-blobs-{}", uuid::Uuid::new_v4()));
        let store = FsBlobStore::open_dir(&dir).await.unwrap();
        let mut up = store.begin(10).await.unwrap();
        up.write(b"hello ").await.unwrap();
        up.write(b"blob").await.unwrap();
        let info = up.finish(None).await.unwrap();
        assert_eq!(info.size, 10);
        assert_eq!(info.sha256, hex::encode(Sha256::digest(b"hello blob")));
        let (got, mut r) = store.open(&info.sha256).await.unwrap();
        assert_eq!(got, info);
        let mut buf = Vec::new();
        r.read_to_end(&mut buf).await.unwrap();
        assert_eq!(buf, b"hello blob");

        // Too large: refused, nothing left.
        let mut up = store.begin(3).await.unwrap();
        assert_eq!(
            up.write(b"four").await.unwrap_err().kind(),
            honeysens_core::ErrorKind::Invalid
        );
        drop(up);
        // Wrong digest: refused.
        let mut up = store.begin(10).await.unwrap();
        up.write(b"x").await.unwrap();
        let e = up.finish(Some(&"0".repeat(64))).await.unwrap_err();
        assert_eq!(e.kind(), honeysens_core::ErrorKind::Invalid);
        // Same bytes again: same name, one file.
        let mut up = store.begin(10).await.unwrap();
        up.write(b"hello blob").await.unwrap();
        assert_eq!(up.finish(Some(&info.sha256)).await.unwrap(), info);
        assert_eq!(std::fs::read_dir(dir.join("tmp")).unwrap().count(), 0);

        assert_eq!(store.stat(&info.sha256).await.unwrap(), Some(10));
        store.delete(&info.sha256).await.unwrap();
        store.delete(&info.sha256).await.unwrap();
        assert_eq!(store.stat(&info.sha256).await.unwrap(), None);
        assert_eq!(store.stat("../../etc/passwd").await.unwrap(), None);
        assert!(store.open("../x").await.is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
