//! Files in the data directory: created with explicit modes, replaced atomically.

use crate::error::AppError;
use std::io::Write;
use std::path::Path;

/// Mode of the data directory: only the server's user may enter it (it holds the database with
/// the CA key).
pub const DIR_MODE: u32 = 0o700;
/// Mode of secret files (private keys, HMAC secrets).
pub const SECRET_MODE: u32 = 0o600;
/// Mode of public files (certificates).
pub const PUBLIC_MODE: u32 = 0o644;

/// Creates `dir` (and its parents) with mode 0700 if missing. An existing directory keeps its
/// mode; a warning is logged when others can read it.
pub fn ensure_private_dir(dir: &Path) -> Result<(), AppError> {
    if dir.is_dir() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(dir)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    dir = %dir.display(),
                    mode = format!("{:o}", meta.permissions().mode() & 0o777),
                    "data directory is accessible to other users; 0700 is recommended"
                );
            }
        }
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder
        .create(dir)
        .map_err(|e| AppError::with(format!("cannot create directory {}", dir.display()), &e))
}

/// Writes `contents` to `path` with `mode`, atomically: a temporary file in the same directory
/// (created with the mode, so a secret is never readable by others) renamed over the target.
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), AppError> {
    let fail = |e: std::io::Error| AppError::with(format!("cannot write {}", path.display()), &e);
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        // The umask may have removed bits; set exactly the mode asked for.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        }
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(fail)
}

/// Reads a file that may be missing: `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>, AppError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AppError::with(
            format!("cannot read {}", path.display()),
            &e,
        )),
    }
}

/// Reads a file that must exist.
pub fn read(path: &Path) -> Result<String, AppError> {
    std::fs::read_to_string(path)
        .map_err(|e| AppError::with(format!("cannot read {}", path.display()), &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_get_their_mode_and_are_replaced() {
        let dir = std::env::temp_dir().join(format!("hs-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        ensure_private_dir(&dir.join("sub")).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.join("sub")), DIR_MODE);
        let key = dir.join("sub/key.pem");
        write_file(&key, b"one", SECRET_MODE).unwrap();
        assert_eq!(mode(&key), SECRET_MODE);
        write_file(&key, b"two", SECRET_MODE).unwrap();
        assert_eq!(read(&key).unwrap(), "two");
        let public = dir.join("sub/ca.crt");
        write_file(&public, b"cert", PUBLIC_MODE).unwrap();
        assert_eq!(mode(&public), PUBLIC_MODE);
        assert_eq!(read_optional(&dir.join("missing")).unwrap(), None);
        assert_eq!(std::fs::read_dir(dir.join("sub")).unwrap().count(), 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
