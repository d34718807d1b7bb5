//! Content-addressed artifact storage behind one trait, [`ArtifactBackend`], with two
//! implementations: the local filesystem ([`fs`], also a share mounted by every machine) and
//! S3-compatible object storage ([`s3`]).
//!
//! An artifact's key is `artifact/<first 2 hex of sha256>/<other 62 hex>`, the same in both.
//! [`ArtifactStorage`] is the handle every part holds: a local working area (`tmp/` for
//! downloads in progress) plus the backend, which also keeps the chunks of chunked uploads
//! (`upload/<id>/<chunk>`, see `upload`), so a chunk received by one machine's API process is
//! there for a commit run by another machine's worker. Downloads are always validated into a local temp file first; saving a batch
//! ([`ArtifactStorage::adopt_batch`]) then renames it into place and issues one `syncfs(2)`
//! (filesystem: the tmp area is on the same filesystem, no copy) or uploads it to its final key
//! (S3: nothing half-written is ever visible there). Either way the bytes are stored before the
//! caller commits the rows that point at them, and a stored artifact is never rewritten.
//!
//! Readers: the content app serves the filesystem backend's files by memory-mapping them
//! directly ([`ArtifactStorage::local_root`] is `Some`), and otherwise streams through
//! [`ArtifactStorage::read`] or redirects to [`ArtifactStorage::presigned_url`]; tasks that need a
//! file on disk (content from an artifact) take [`ArtifactStorage::local_copy`].

pub mod fs;
pub mod s3;
mod upload;

pub use upload::{covering, Assembled, Piece};

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tempfile::{NamedTempFile, TempPath};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

pub use fs::FileSystemBackend;
pub use s3::{S3Backend, S3Config};

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
    #[error("invalid storage settings: {0}")]
    Config(String),
    #[error("object storage: {0}")]
    Backend(String),
    #[error("artifact {0} is missing from storage")]
    Missing(String),
    #[error("a file to store is {found} bytes, expected {expected}")]
    SizeMismatch { expected: u64, found: u64 },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A validated download to store: its temp file, sha256 and size.
pub type TempFile = (TempPath, String, u64);

/// The bytes of a stored artifact, streamed.
pub type ByteStream = BoxStream<'static, Result<Bytes, StorageError>>;

/// Checks that `s` is 64 lowercase hex characters.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `artifact/<2>/<62>` for a sha256.
pub fn relative_path(sha256: &str) -> Result<String, StorageError> {
    if !is_sha256_hex(sha256) {
        return Err(StorageError::BadDigest(sha256.to_string()));
    }
    Ok(format!("artifact/{}/{}", &sha256[..2], &sha256[2..]))
}

/// Checks that `file` is a key [`relative_path`] makes (nothing else is ever touched).
fn check_file(file: &str) -> Result<(), StorageError> {
    let digest: String = file
        .strip_prefix("artifact/")
        .map(|rest| rest.split('/').collect())
        .unwrap_or_default();
    if relative_path(&digest).ok().as_deref() != Some(file) {
        return Err(StorageError::BadDigest(file.to_string()));
    }
    Ok(())
}

/// Where artifacts are kept. Every method takes keys as [`relative_path`] makes them and
/// refuses anything else.
#[async_trait]
pub trait ArtifactBackend: Send + Sync + std::fmt::Debug {
    /// For messages: the kind and place.
    fn describe(&self) -> String;
    /// The file of `file` on a local (or mounted) filesystem, when the backend has one.
    fn local_path(&self, file: &str) -> Option<PathBuf>;
    /// Stores validated downloads under their digests' keys (a digest already stored is kept
    /// and made young again for [`ArtifactBackend::untracked_files`]); their keys, in order.
    async fn save_batch(&self, files: Vec<TempFile>) -> Result<Vec<String>, StorageError>;
    /// Whether `file` is stored.
    async fn exists(&self, file: &str) -> Result<bool, StorageError>;
    /// Removes `file`; already gone is fine. The caller deleted the row first.
    async fn remove(&self, file: &str) -> Result<(), StorageError>;
    /// Removes every file of `files` (already gone is fine); returns the failures.
    async fn remove_many(&self, files: Vec<String>) -> Vec<(String, StorageError)>;
    /// The digests stored under `artifact/<prefix>/` last modified before `before`.
    async fn untracked_files(
        &self,
        prefix: u8,
        before: SystemTime,
    ) -> Result<Vec<String>, StorageError>;
    /// Removes the artifact of `sha256` if it is still older than `before`; whether it went.
    async fn remove_if_older(&self, sha256: &str, before: SystemTime)
        -> Result<bool, StorageError>;
    /// The bytes of `file` (a byte range of it), streamed with bounded memory.
    async fn read(&self, file: &str, range: Option<Range<u64>>)
        -> Result<ByteStream, StorageError>;
    /// A URL that lets a client `method` the file without credentials for `expires`, saving it
    /// as `download_name`; `None` when the backend has no such thing.
    async fn presigned_url(
        &self,
        file: &str,
        method: axum::http::Method,
        expires: Duration,
        download_name: &str,
    ) -> Result<Option<url::Url>, StorageError>;

    // ---- the chunks of chunked uploads, under `upload/<upload id>/<chunk id>` (see `upload`):
    // never an artifact's key, so nothing that handles artifacts ever sees them.

    /// Stores a received chunk (a local temp file of `size` bytes, checked) as chunk `chunk`
    /// of upload `upload`: whole or not at all.
    async fn save_chunk(
        &self,
        upload: Uuid,
        chunk: Uuid,
        temp: TempPath,
        size: u64,
    ) -> Result<(), StorageError>;
    /// Bytes `range` of a stored chunk, streamed.
    async fn read_chunk(
        &self,
        upload: Uuid,
        chunk: Uuid,
        range: Range<u64>,
    ) -> Result<ByteStream, StorageError>;
    /// Removes one chunk; already gone is fine.
    async fn remove_chunk(&self, upload: Uuid, chunk: Uuid) -> Result<(), StorageError>;
    /// Removes every chunk of upload `upload`; already gone is fine.
    async fn remove_upload(&self, upload: Uuid) -> Result<(), StorageError>;
    /// The uploads that have chunks stored, none of them written since `before`: what an orphan
    /// sweep may remove when no upload row names them.
    async fn uploads_before(&self, before: SystemTime) -> Result<Vec<Uuid>, StorageError>;
}

/// `upload/<upload>/<chunk>`: where a chunk of a chunked upload is kept (a file under the
/// filesystem backend's root, an object key on S3).
pub fn chunk_key(upload: Uuid, chunk: Uuid) -> String {
    format!("{UPLOAD_PREFIX}/{upload}/{chunk}")
}

/// The top-level directory (key prefix) of upload chunks, beside `artifact/`.
pub const UPLOAD_PREFIX: &str = "upload";

/// Which backend and how the content app serves from it (the storage part of the settings).
#[derive(Debug, Clone, Default)]
pub struct StorageSettings {
    /// `None`: the filesystem under the storage root.
    pub s3: Option<S3Config>,
    /// With S3: answer content requests with a redirect to a pre-signed URL valid this long,
    /// instead of streaming the object through the content app.
    pub redirect: Option<Duration>,
}

/// The artifact store handle: the local working area and the backend (cheap to clone).
#[derive(Debug, Clone)]
pub struct ArtifactStorage {
    root: PathBuf,
    tmp: PathBuf,
    backend: Arc<dyn ArtifactBackend>,
    /// `Some(root)` for the filesystem backend: the content app's direct path.
    local: Option<PathBuf>,
    redirect: Option<Duration>,
}

/// A stored artifact's bytes as a local file: the stored file itself, or a temp copy
/// (deleted when dropped).
#[derive(Debug)]
pub enum LocalFile {
    Stored(PathBuf),
    Copy(TempPath),
}

impl LocalFile {
    pub fn path(&self) -> &Path {
        match self {
            LocalFile::Stored(p) => p,
            LocalFile::Copy(t) => t,
        }
    }
}

impl ArtifactStorage {
    /// Opens (creating if needed) the filesystem store under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<ArtifactStorage, StorageError> {
        ArtifactStorage::open_with(root, &StorageSettings::default())
    }

    /// Opens the store `settings` name, with its local working area under `root` (the
    /// filesystem backend's artifacts live there too).
    pub fn open_with(
        root: impl Into<PathBuf>,
        settings: &StorageSettings,
    ) -> Result<ArtifactStorage, StorageError> {
        let root = root.into();
        let tmp = root.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let (backend, local): (Arc<dyn ArtifactBackend>, _) = match &settings.s3 {
            None => (
                Arc::new(FileSystemBackend::open(&root)?),
                Some(root.clone()),
            ),
            Some(config) => (Arc::new(S3Backend::new(config)?), None),
        };
        Ok(ArtifactStorage {
            root,
            tmp,
            backend,
            local,
            redirect: settings.redirect.filter(|_| settings.s3.is_some()),
        })
    }

    /// The local working area (and the filesystem backend's root).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The filesystem backend's root; `None` for object storage.
    pub fn local_root(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    /// The backend, for messages and for tests.
    pub fn backend(&self) -> &Arc<dyn ArtifactBackend> {
        &self.backend
    }

    /// With object storage: how long the pre-signed URLs the content app redirects to are
    /// valid, when it redirects.
    pub fn redirect(&self) -> Option<Duration> {
        self.redirect
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
        relative_path(sha256)
    }

    /// Where the filesystem backend keeps `file` (a path under the root whatever the backend:
    /// only meaningful when [`ArtifactStorage::local_root`] is `Some`).
    pub fn absolute(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }

    /// Whether the artifact with this digest is stored.
    pub async fn contains(&self, sha256: &str) -> bool {
        match relative_path(sha256) {
            Ok(file) => self.backend.exists(&file).await.unwrap_or(false),
            Err(_) => false,
        }
    }

    /// Whether `file` is stored.
    pub async fn exists(&self, file: &str) -> Result<bool, StorageError> {
        self.backend.exists(file).await
    }

    /// Stores finished downloads (see [`ArtifactBackend::save_batch`]); their keys in input
    /// order. Each temp file must hold exactly the bytes of its sha256 (the downloader checked).
    pub async fn adopt_batch(&self, files: Vec<TempFile>) -> Result<Vec<String>, StorageError> {
        self.backend.save_batch(files).await
    }

    /// Removes the stored `file` (a key as [`ArtifactStorage::relative_path`] makes; anything
    /// else is [`StorageError::BadDigest`] and nothing is touched). Already gone is fine. The
    /// caller must have deleted the artifact's row first.
    pub async fn remove(&self, file: &str) -> Result<(), StorageError> {
        self.backend.remove(file).await
    }

    /// Removes every file of `files` (one blocking batch on the filesystem, bulk deletes on
    /// S3); returns the failures.
    pub async fn remove_many(&self, files: Vec<String>) -> Vec<(String, StorageError)> {
        self.backend.remove_many(files).await
    }

    /// The digests stored under `artifact/<prefix>/` last modified before `before`. Orphan
    /// cleanup looks these up and removes those no row names.
    pub async fn untracked_files(
        &self,
        prefix: u8,
        before: SystemTime,
    ) -> Result<Vec<String>, StorageError> {
        self.backend.untracked_files(prefix, before).await
    }

    /// Removes the stored artifact of `sha256` if it is still older than `before` (a sync that
    /// saves the same digest renews it). Returns whether it went.
    pub async fn remove_if_older(
        &self,
        sha256: &str,
        before: SystemTime,
    ) -> Result<bool, StorageError> {
        self.backend.remove_if_older(sha256, before).await
    }

    /// The bytes of `file`, or of `range` of it, streamed.
    pub async fn read(
        &self,
        file: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        self.backend.read(file, range).await
    }

    /// A pre-signed URL for `file` (object storage only).
    pub async fn presigned_url(
        &self,
        file: &str,
        method: axum::http::Method,
        expires: Duration,
        download_name: &str,
    ) -> Result<Option<url::Url>, StorageError> {
        self.backend
            .presigned_url(file, method, expires, download_name)
            .await
    }

    /// `file` as a file on local disk: the stored file itself on the filesystem backend, else
    /// a copy in the tmp area (deleted when the value is dropped).
    pub async fn local_copy(&self, file: &str) -> Result<LocalFile, StorageError> {
        if let Some(path) = self.backend.local_path(file) {
            check_file(file)?;
            return Ok(LocalFile::Stored(path));
        }
        let temp = self.temp_file()?.into_temp_path();
        let mut out = tokio::fs::File::create(&temp)
            .await
            .map_err(io_err(&temp))?;
        let mut bytes = self.backend.read(file, None).await?;
        while let Some(chunk) = bytes.next().await {
            out.write_all(&chunk?).await.map_err(io_err(&temp))?;
        }
        out.flush().await.map_err(io_err(&temp))?;
        Ok(LocalFile::Copy(temp))
    }
}

/// The storage settings' serialised form (flat, as `PULP_*` variables name them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The local (or mounted) filesystem under the storage root.
    #[default]
    Filesystem,
    /// S3-compatible object storage.
    S3,
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

    #[tokio::test]
    async fn remove_takes_only_artifact_paths() {
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
            assert!(st.remove(bad).await.is_err(), "{bad:?} must be refused");
            assert!(st.local_copy(bad).await.is_err(), "{bad:?} must be refused");
        }
        assert!(dir.path().join("keep").exists());
        st.remove(&rel).await.unwrap();
        assert!(!st.absolute(&rel).exists());
        st.remove(&rel).await.expect("already gone is fine");
    }

    #[tokio::test]
    async fn adopt_moves_once_and_keeps_existing() {
        let dir = tempfile::tempdir().unwrap();
        let st = ArtifactStorage::open(dir.path()).unwrap();
        let sha = "cd".repeat(32);
        let mut f = st.temp_file().unwrap();
        f.write_all(b"first").unwrap();
        let rel = st
            .adopt_batch(vec![(f.into_temp_path(), sha.clone(), 5)])
            .await
            .unwrap();
        let mut g = st.temp_file().unwrap();
        g.write_all(b"second").unwrap();
        let g_path = g.path().to_path_buf();
        st.adopt_batch(vec![(g.into_temp_path(), sha.clone(), 5)])
            .await
            .unwrap();
        assert_eq!(std::fs::read(st.absolute(&rel[0])).unwrap(), b"first");
        assert!(!g_path.exists(), "duplicate temp file must be deleted");
        assert_eq!(std::fs::read_dir(st.tmp_dir()).unwrap().count(), 0);
        assert!(st.contains(&sha).await);
        let local = st.local_copy(&rel[0]).await.unwrap();
        assert!(
            matches!(local, LocalFile::Stored(_)),
            "no copy on the filesystem"
        );
        let read: Vec<Bytes> = st
            .read(&rel[0], Some(1..4))
            .await
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(read.concat(), b"irs");
    }
}
