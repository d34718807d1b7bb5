//! Content-addressed artifact storage on the local filesystem.
//!
//! Layout under the root: `artifact/<first 2 hex of sha256>/<other 62 hex>` for saved files and
//! `tmp/` for downloads in progress, `upload/<id>/` for the chunks of uploads (see `upload`) (same filesystem, so `rename(2)` moves a finished download
//! into place atomically). A file already present is never rewritten. Durability is per batch:
//! [`ArtifactStorage::adopt_batch`] renames a whole batch and then issues one `syncfs(2)`, so the
//! bytes are on disk before the caller commits the rows that point at them.

mod upload;

pub use upload::{covering, Assembled, Piece};

use std::io;
use std::path::{Path, PathBuf};

use tempfile::{NamedTempFile, TempPath};

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not a sha256 hex digest: {0:?}")]
    BadDigest(String),
    #[error("storage I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The artifact store rooted at one directory.
#[derive(Debug, Clone)]
pub struct ArtifactStorage {
    root: PathBuf,
    tmp: PathBuf,
}

/// Checks that `s` is 64 lowercase hex characters.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ArtifactStorage {
    /// Opens (creating if needed) the store under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<ArtifactStorage, StorageError> {
        let root = root.into();
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        // All 256 prefix directories up front: saving a file is then one stat and one rename.
        for prefix in 0..=255u8 {
            let dir = root.join("artifact").join(format!("{prefix:02x}"));
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(ArtifactStorage { root, tmp })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where downloads in progress are written.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// A new temporary file in the tmp area, deleted when dropped unless adopted.
    pub fn temp_file(&self) -> Result<NamedTempFile, StorageError> {
        NamedTempFile::new_in(&self.tmp).map_err(io_err(&self.tmp))
    }

    /// `artifact/<2>/<62>` for a sha256.
    pub fn relative_path(sha256: &str) -> Result<String, StorageError> {
        if !is_sha256_hex(sha256) {
            return Err(StorageError::BadDigest(sha256.to_string()));
        }
        Ok(format!("artifact/{}/{}", &sha256[..2], &sha256[2..]))
    }

    /// The absolute path of a stored file given its relative `file` path.
    pub fn absolute(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }

    /// Whether the artifact with this digest has its file in place.
    pub fn contains(&self, sha256: &str) -> bool {
        Self::relative_path(sha256)
            .map(|p| self.root.join(p).is_file())
            .unwrap_or(false)
    }

    /// Moves finished downloads into place and makes them durable with one `syncfs`.
    ///
    /// Blocking: call from `spawn_blocking`. Each temp file must hold exactly the bytes whose
    /// sha256 is given (the downloader checked). A file already present is kept and the temp
    /// file deleted, unless its size is not `size` (a torn earlier write): then it is replaced.
    /// A kept file's modification time is renewed, so it is young again for
    /// [`ArtifactStorage::untracked_files`]: orphan cleanup never sweeps a file that a sync is
    /// about to name (if a sweep took it first, the touch fails and the fresh copy goes in).
    /// Returns the relative paths, in input order.
    pub fn adopt_batch(
        &self,
        files: Vec<(TempPath, String, u64)>,
    ) -> Result<Vec<String>, StorageError> {
        let mut out = Vec::with_capacity(files.len());
        let mut moved_any = false;
        for (temp, sha256, size) in files {
            let rel = Self::relative_path(&sha256)?;
            let dest = self.root.join(&rel);
            let intact = std::fs::metadata(&dest)
                .map(|m| m.is_file() && m.len() == size)
                .unwrap_or(false);
            if intact && touch(&dest).is_ok() {
                drop(temp); // deletes the duplicate download
            } else {
                temp.persist(&dest).map_err(|e| StorageError::Io {
                    path: dest.clone(),
                    source: e.error,
                })?;
                moved_any = true;
            }
            out.push(rel);
        }
        if moved_any {
            self.sync_filesystem()?;
        }
        Ok(out)
    }

    /// Removes the stored file at `file` (a relative path as [`ArtifactStorage::relative_path`]
    /// makes; anything else is [`StorageError::BadDigest`] and nothing is touched). A file
    /// already gone is not an error. The caller must have deleted the artifact's row first.
    pub fn remove(&self, file: &str) -> Result<(), StorageError> {
        let digest: String = file
            .strip_prefix("artifact/")
            .map(|rest| rest.split('/').collect())
            .unwrap_or_default();
        if Self::relative_path(&digest).ok().as_deref() != Some(file) {
            return Err(StorageError::BadDigest(file.to_string()));
        }
        let path = self.root.join(file);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::Io { path, source: e }),
        }
    }

    /// The digests of the stored files under `artifact/<prefix>/` last modified before
    /// `before`. Blocking. Orphan cleanup looks these up and removes those no row names (files
    /// a killed cleanup or a crash left behind); any other name there is left alone.
    pub fn untracked_files(
        &self,
        prefix: u8,
        before: std::time::SystemTime,
    ) -> Result<Vec<String>, StorageError> {
        let dir = self.root.join("artifact").join(format!("{prefix:02x}"));
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(StorageError::Io {
                    path: dir,
                    source: e,
                })
            }
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            let Some(rest) = name.to_str() else { continue };
            let sha256 = format!("{prefix:02x}{rest}");
            if !is_sha256_hex(&sha256) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_file() && meta.modified().is_ok_and(|m| m < before) {
                out.push(sha256);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes the stored file of `sha256` if it is still older than `before` (checked again
    /// right before: a sync that adopts the same digest renews it). Returns whether it went.
    pub fn remove_if_older(
        &self,
        sha256: &str,
        before: std::time::SystemTime,
    ) -> Result<bool, StorageError> {
        let path = self.root.join(Self::relative_path(sha256)?);
        match std::fs::metadata(&path) {
            Ok(m) if m.modified().is_ok_and(|t| t < before) => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StorageError::Io { path, source: e }),
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StorageError::Io { path, source: e }),
        }
    }

    /// Flushes every dirty page and directory entry of the storage filesystem (`syncfs(2)`).
    pub fn sync_filesystem(&self) -> Result<(), StorageError> {
        let dir = std::fs::File::open(&self.root).map_err(io_err(&self.root))?;
        sync_fs(&dir).map_err(io_err(&self.root))
    }
}

/// Sets the modification time of `path` to now.
fn touch(path: &Path) -> io::Result<()> {
    std::fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(std::time::SystemTime::now())
}

#[cfg(target_os = "linux")]
fn sync_fs(file: &std::fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs takes a valid open descriptor, which `file` holds for the call's duration.
    let rc = unsafe { libc::syncfs(file.as_raw_fd()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn sync_fs(_file: &std::fs::File) -> io::Result<()> {
    // No syncfs: fall back to the global sync(2), which also orders data before our commit.
    // SAFETY: sync has no preconditions.
    unsafe { libc::sync() };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn relative_path_rejects_non_hex() {
        assert!(ArtifactStorage::relative_path("../etc/passwd").is_err());
        assert!(ArtifactStorage::relative_path(&"A".repeat(64)).is_err());
        let ok = ArtifactStorage::relative_path(&"ab".repeat(32)).unwrap();
        assert_eq!(ok, format!("artifact/ab/{}", "ab".repeat(31)));
    }

    #[test]
    fn remove_takes_only_artifact_paths() {
        let dir = tempfile::tempdir().unwrap();
        let st = ArtifactStorage::open(dir.path()).unwrap();
        let sha = "ef".repeat(32);
        let rel = ArtifactStorage::relative_path(&sha).unwrap();
        std::fs::write(st.absolute(&rel), b"x").unwrap();
        std::fs::write(dir.path().join("keep"), b"x").unwrap();
        for bad in [
            "keep",
            "artifact/../keep",
            "artifact/ef/../../keep",
            "/etc/passwd",
            "",
        ] {
            assert!(st.remove(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(dir.path().join("keep").exists());
        st.remove(&rel).unwrap();
        assert!(!st.absolute(&rel).exists());
        st.remove(&rel).expect("already gone is fine");
    }

    #[test]
    fn adopt_moves_once_and_keeps_existing() {
        let dir = tempfile::tempdir().unwrap();
        let st = ArtifactStorage::open(dir.path()).unwrap();
        let sha = "cd".repeat(32);
        let mut f = st.temp_file().unwrap();
        f.write_all(b"first").unwrap();
        let rel = st
            .adopt_batch(vec![(f.into_temp_path(), sha.clone(), 5)])
            .unwrap();
        let mut g = st.temp_file().unwrap();
        g.write_all(b"second").unwrap();
        let g_path = g.path().to_path_buf();
        st.adopt_batch(vec![(g.into_temp_path(), sha.clone(), 5)])
            .unwrap();
        assert_eq!(std::fs::read(st.absolute(&rel[0])).unwrap(), b"first");
        assert!(!g_path.exists(), "duplicate temp file must be deleted");
        assert_eq!(std::fs::read_dir(st.tmp_dir()).unwrap().count(), 0);
    }
}
