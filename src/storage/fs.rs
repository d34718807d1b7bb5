//! The filesystem backend: artifacts are files under `<root>/artifact/<2>/<62>` (and upload
//! chunks under `<root>/upload/<upload>/<chunk>`), on the same filesystem as the tmp area, so a
//! validated download goes into place with one `rename(2)` (no copy), and a batch is made
//! durable with one `syncfs(2)`. A local disk, or a share mounted by every machine (NFS).
//!
//! Everything here blocks; the [`ArtifactBackend`] methods run it on the blocking pool. The
//! content app does not read through the trait: it memory-maps the file at
//! [`ArtifactBackend::local_path`] directly (see `content::serve`).

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use tempfile::TempPath;
use uuid::Uuid;

use super::{
    check_file, chunk_key, io_err, relative_path, ArtifactBackend, ByteStream, StorageError,
    TempFile, UPLOAD_PREFIX,
};

/// The artifact files under one root directory.
#[derive(Debug, Clone)]
pub struct FileSystemBackend {
    root: PathBuf,
}

fn blocking_stopped(e: tokio::task::JoinError) -> StorageError {
    StorageError::Backend(format!("storage work stopped: {e}"))
}

impl FileSystemBackend {
    /// The backend under `root`, creating the 256 prefix directories up front: saving a file
    /// is then one stat and one rename.
    pub fn open(root: &Path) -> Result<FileSystemBackend, StorageError> {
        for prefix in 0..=255u8 {
            let dir = root.join("artifact").join(format!("{prefix:02x}"));
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        Ok(FileSystemBackend {
            root: root.to_path_buf(),
        })
    }

    /// Moves finished downloads into place and makes them durable with one `syncfs`.
    ///
    /// Each temp file must hold exactly the bytes whose sha256 is given (the downloader
    /// checked). A file already present is kept and the temp file deleted, unless its size is
    /// not `size` (a torn earlier write): then it is replaced. A kept file's modification time
    /// is renewed, so it is young again for [`FileSystemBackend::untracked_files`]: orphan
    /// cleanup never sweeps a file that a sync is about to name (if a sweep took it first, the
    /// touch fails and the fresh copy goes in). Returns the relative paths, in input order.
    pub fn adopt_batch(&self, files: Vec<TempFile>) -> Result<Vec<String>, StorageError> {
        let mut out = Vec::with_capacity(files.len());
        let mut moved_any = false;
        for (temp, sha256, size) in files {
            let rel = relative_path(&sha256)?;
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

    /// Removes the stored file at `file`; already gone is not an error.
    pub fn remove_file(&self, file: &str) -> Result<(), StorageError> {
        check_file(file)?;
        let path = self.root.join(file);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::Io { path, source: e }),
        }
    }

    /// The digests of the stored files under `artifact/<prefix>/` last modified before
    /// `before`; any other name there is left alone.
    pub fn untracked_files(
        &self,
        prefix: u8,
        before: SystemTime,
    ) -> Result<Vec<String>, StorageError> {
        let dir = self.root.join("artifact").join(format!("{prefix:02x}"));
        let Some(entries) = read_dir_if_any(&dir)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            let Some(rest) = name.to_str() else { continue };
            let sha256 = format!("{prefix:02x}{rest}");
            if !super::is_sha256_hex(&sha256) {
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
    pub fn remove_if_older(&self, sha256: &str, before: SystemTime) -> Result<bool, StorageError> {
        let path = self.root.join(relative_path(sha256)?);
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

#[async_trait]
impl ArtifactBackend for FileSystemBackend {
    fn describe(&self) -> String {
        format!("filesystem at {}", self.root.display())
    }

    fn local_path(&self, file: &str) -> Option<PathBuf> {
        Some(self.root.join(file))
    }

    async fn save_batch(&self, files: Vec<TempFile>) -> Result<Vec<String>, StorageError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.adopt_batch(files))
            .await
            .map_err(blocking_stopped)?
    }

    async fn exists(&self, file: &str) -> Result<bool, StorageError> {
        check_file(file)?;
        match tokio::fs::metadata(self.root.join(file)).await {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StorageError::Io {
                path: self.root.join(file),
                source: e,
            }),
        }
    }

    async fn remove(&self, file: &str) -> Result<(), StorageError> {
        let me = self.clone();
        let file = file.to_string();
        tokio::task::spawn_blocking(move || me.remove_file(&file))
            .await
            .map_err(blocking_stopped)?
    }

    async fn remove_many(&self, files: Vec<String>) -> Vec<(String, StorageError)> {
        let me = self.clone();
        let work = tokio::task::spawn_blocking(move || {
            let mut failures = Vec::new();
            for file in files {
                if let Err(e) = me.remove_file(&file) {
                    failures.push((file, e));
                }
            }
            failures
        });
        match work.await {
            Ok(failures) => failures,
            Err(e) => vec![(String::new(), blocking_stopped(e))],
        }
    }

    async fn untracked_files(
        &self,
        prefix: u8,
        before: SystemTime,
    ) -> Result<Vec<String>, StorageError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.untracked_files(prefix, before))
            .await
            .map_err(blocking_stopped)?
    }

    async fn remove_if_older(
        &self,
        sha256: &str,
        before: SystemTime,
    ) -> Result<bool, StorageError> {
        let me = self.clone();
        let sha256 = sha256.to_string();
        tokio::task::spawn_blocking(move || me.remove_if_older(&sha256, before))
            .await
            .map_err(blocking_stopped)?
    }

    async fn read(
        &self,
        file: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        check_file(file)?;
        read_range(self.root.join(file), range).await
    }

    async fn presigned_url(
        &self,
        _file: &str,
        _method: axum::http::Method,
        _expires: Duration,
        _download_name: &str,
    ) -> Result<Option<url::Url>, StorageError> {
        Ok(None)
    }

    async fn save_chunk(
        &self,
        upload: Uuid,
        chunk: Uuid,
        temp: TempPath,
        size: u64,
    ) -> Result<(), StorageError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.adopt_chunk(upload, chunk, temp, size))
            .await
            .map_err(blocking_stopped)?
    }

    async fn read_chunk(
        &self,
        upload: Uuid,
        chunk: Uuid,
        range: Range<u64>,
    ) -> Result<ByteStream, StorageError> {
        read_range(self.root.join(chunk_key(upload, chunk)), Some(range)).await
    }

    async fn remove_chunk(&self, upload: Uuid, chunk: Uuid) -> Result<(), StorageError> {
        let path = self.root.join(chunk_key(upload, chunk));
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::Io { path, source: e }),
        }
    }

    async fn remove_upload(&self, upload: Uuid) -> Result<(), StorageError> {
        let dir = self.upload_dir(upload);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::Io {
                path: dir,
                source: e,
            }),
        }
    }

    async fn uploads_before(&self, before: SystemTime) -> Result<Vec<Uuid>, StorageError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.upload_dirs_before(before))
            .await
            .map_err(blocking_stopped)?
    }
}

impl FileSystemBackend {
    /// The directory of upload `id`'s chunks.
    pub fn upload_dir(&self, id: Uuid) -> PathBuf {
        self.root.join(UPLOAD_PREFIX).join(id.to_string())
    }

    /// Moves a received chunk (a temp file of the tmp area, on this filesystem) into place
    /// with one `rename(2)`.
    fn adopt_chunk(
        &self,
        upload: Uuid,
        chunk: Uuid,
        temp: TempPath,
        size: u64,
    ) -> Result<(), StorageError> {
        let found = std::fs::metadata(&temp).map_err(io_err(&temp))?.len();
        if found != size {
            return Err(StorageError::SizeMismatch {
                expected: size,
                found,
            });
        }
        let dir = self.upload_dir(upload);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let dest = dir.join(chunk.to_string());
        temp.persist(&dest).map_err(|e| StorageError::Io {
            path: dest.clone(),
            source: e.error,
        })
    }

    /// The upload directories last modified before `before` (a directory's time moves when a
    /// chunk is added).
    fn upload_dirs_before(&self, before: SystemTime) -> Result<Vec<Uuid>, StorageError> {
        let root = self.root.join(UPLOAD_PREFIX);
        let Some(entries) = read_dir_if_any(&root)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err(&root))?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| Uuid::parse_str(n).ok())
            else {
                continue;
            };
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() && meta.modified().is_ok_and(|m| m < before) {
                out.push(id);
            }
        }
        Ok(out)
    }
}

/// The entries of directory `dir`; `None` when there is no such directory.
fn read_dir_if_any(dir: &Path) -> Result<Option<std::fs::ReadDir>, StorageError> {
    match std::fs::read_dir(dir) {
        Ok(e) => Ok(Some(e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::Io {
            path: dir.to_path_buf(),
            source: e,
        }),
    }
}

/// The bytes of the file at `path` (a range of it), streamed 256 KiB at a time.
async fn read_range(path: PathBuf, range: Option<Range<u64>>) -> Result<ByteStream, StorageError> {
    let mut f = tokio::fs::File::open(&path).await.map_err(io_err(&path))?;
    let reader: Box<dyn tokio::io::AsyncRead + Send + Unpin> = match range {
        Some(r) => {
            f.seek(io::SeekFrom::Start(r.start))
                .await
                .map_err(io_err(&path))?;
            Box::new(f.take(r.end.saturating_sub(r.start)))
        }
        None => Box::new(f),
    };
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024).map(move |r| {
        r.map_err(|source| StorageError::Io {
            path: path.clone(),
            source,
        })
    });
    Ok(stream.boxed())
}

/// Sets the modification time of `path` to now.
fn touch(path: &Path) -> io::Result<()> {
    std::fs::File::options()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now())
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
