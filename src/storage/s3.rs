//! The S3 backend: artifacts are objects `artifact/<2>/<62>` in one bucket of an
//! S3-compatible service, through the `object_store` crate.
//!
//! A download is validated into a local temp file first (the tmp area stays local), and only
//! then uploaded to its final key, so nothing half-written is ever visible under an artifact's
//! key: a small file is one `PUT` (atomic in S3), a large one a multipart upload, which S3
//! shows only once completed; a multipart upload that fails is aborted, and one whose byte
//! count disagrees with the validated size is aborted before completion. (A process killed
//! mid-upload leaves an incomplete multipart upload, which is no object either; a bucket
//! lifecycle rule `AbortIncompleteMultipartUpload` reclaims its parts.)
//!
//! Orphan cleanup works as on the filesystem, with an object's `LastModified` as the file's
//! modification time; saving a digest whose object is older than [`RENEW_AFTER`] uploads it
//! again, which renews it, so a sweep running at the same time never takes an object a sync is
//! about to name.
//!
//! The chunks of chunked uploads are objects `upload/<upload>/<chunk>` of the same bucket (put
//! like an artifact, read back by range when the upload is committed), so every API process and
//! worker sees them.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::{SignedUrlOptions, Signer};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use tempfile::TempPath;
use uuid::Uuid;

use super::{
    check_file, chunk_key, relative_path, ArtifactBackend, ByteStream, StorageError, TempFile,
    UPLOAD_PREFIX,
};

/// Files up to this size are one `PUT`; larger ones a multipart upload of parts this size.
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;
/// Uploads of one batch in flight at once.
const UPLOADS_IN_FLIGHT: usize = 8;
/// An existing object older than this is uploaded again when its digest is saved (renewing
/// its `LastModified` against orphan cleanup's sweep, whose minimum age is 10 minutes).
pub const RENEW_AFTER: Duration = Duration::from_secs(5 * 60);

/// Where the bucket is and how to reach it.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct S3Config {
    pub bucket: String,
    /// e.g. `http://127.0.0.1:9000`; default: AWS's endpoint for the region.
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    /// A secret: never logged (see the `Debug` impl) nor printed by `pulp-rs config`.
    pub secret_access_key: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint_url", &self.endpoint_url)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "****"),
            )
            .finish()
    }
}

/// The artifact objects of one bucket.
#[derive(Debug, Clone)]
pub struct S3Backend {
    store: Arc<AmazonS3>,
    bucket: String,
}

fn backend_err(e: object_store::Error) -> StorageError {
    StorageError::Backend(e.to_string())
}

impl S3Backend {
    /// A client for the bucket of `config` (credentials not given there come from the usual
    /// `AWS_*` environment variables). Makes no request.
    pub fn new(config: &S3Config) -> Result<S3Backend, StorageError> {
        if config.bucket.is_empty() {
            return Err(StorageError::Config(
                "the s3 storage backend needs s3_bucket".into(),
            ));
        }
        let mut b = AmazonS3Builder::from_env().with_bucket_name(&config.bucket);
        if let Some(region) = &config.region {
            b = b.with_region(region);
        }
        if let Some(endpoint) = &config.endpoint_url {
            b = b
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(id) = &config.access_key_id {
            b = b.with_access_key_id(id);
        }
        if let Some(secret) = &config.secret_access_key {
            b = b.with_secret_access_key(secret);
        }
        let store = b.build().map_err(|e| StorageError::Config(e.to_string()))?;
        Ok(S3Backend {
            store: Arc::new(store),
            bucket: config.bucket.clone(),
        })
    }

    /// The underlying object store (tests list the bucket through it).
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Uploads one validated temp file to its key, unless a young enough object of the same
    /// size is there already.
    async fn save_one(
        &self,
        temp: tempfile::TempPath,
        sha256: String,
        size: u64,
    ) -> Result<String, StorageError> {
        let rel = relative_path(&sha256)?;
        let key = ObjectPath::from(rel.as_str());
        match self.store.head(&key).await {
            Ok(meta)
                if meta.size == size
                    && SystemTime::from(meta.last_modified)
                        .elapsed()
                        .is_ok_and(|age| age < RENEW_AFTER) =>
            {
                return Ok(rel); // the temp file is deleted on drop
            }
            Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(backend_err(e)),
        }
        upload(&self.store, &key, &temp, size).await?;
        Ok(rel)
    }
}

/// Uploads the file at `path` (exactly `size` bytes, checked) to `key`: one `PUT` up to
/// [`PART_SIZE`], else a multipart upload that is aborted on any failure.
pub async fn upload(
    store: &AmazonS3,
    key: &ObjectPath,
    path: &std::path::Path,
    size: u64,
) -> Result<(), StorageError> {
    let io = |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io)?;
    if size <= PART_SIZE as u64 {
        let mut buf = Vec::with_capacity(size as usize);
        file.read_to_end(&mut buf).await.map_err(io)?;
        if buf.len() as u64 != size {
            return Err(StorageError::SizeMismatch {
                expected: size,
                found: buf.len() as u64,
            });
        }
        store
            .put(key, PutPayload::from(buf))
            .await
            .map_err(backend_err)?;
        return Ok(());
    }
    let multipart = store.put_multipart(key).await.map_err(backend_err)?;
    let mut writer = WriteMultipart::new_with_chunk_size(multipart, PART_SIZE);
    let outcome = async {
        let mut sent = 0u64;
        loop {
            let mut part = Vec::with_capacity(PART_SIZE);
            (&mut file)
                .take(PART_SIZE as u64)
                .read_to_end(&mut part)
                .await
                .map_err(io)?;
            if part.is_empty() {
                break;
            }
            sent += part.len() as u64;
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(backend_err)?;
            writer.put(part.into());
        }
        if sent != size {
            return Err(StorageError::SizeMismatch {
                expected: size,
                found: sent,
            });
        }
        Ok(())
    }
    .await;
    match outcome {
        Ok(()) => {
            writer.finish().await.map_err(backend_err)?;
            Ok(())
        }
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(key = %key, error = %abort, "cannot abort a failed multipart upload");
            }
            Err(e)
        }
    }
}

#[async_trait]
impl ArtifactBackend for S3Backend {
    fn describe(&self) -> String {
        format!("s3 bucket {}", self.bucket)
    }

    fn local_path(&self, _file: &str) -> Option<PathBuf> {
        None
    }

    async fn save_batch(&self, files: Vec<TempFile>) -> Result<Vec<String>, StorageError> {
        // In input order, a few at a time; the first failure fails the batch (objects already
        // uploaded are whole and will be swept as untracked if no row ever names them).
        futures::stream::iter(files)
            .map(|(temp, sha256, size)| self.save_one(temp, sha256, size))
            .buffered(UPLOADS_IN_FLIGHT)
            .try_collect()
            .await
    }

    async fn exists(&self, file: &str) -> Result<bool, StorageError> {
        check_file(file)?;
        match self.store.head(&ObjectPath::from(file)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(backend_err(e)),
        }
    }

    async fn remove(&self, file: &str) -> Result<(), StorageError> {
        check_file(file)?;
        match self.store.delete(&ObjectPath::from(file)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend_err(e)),
        }
    }

    async fn remove_many(&self, files: Vec<String>) -> Vec<(String, StorageError)> {
        let mut failures = Vec::new();
        let mut keys = Vec::with_capacity(files.len());
        for file in files {
            match check_file(&file) {
                Ok(()) => keys.push(Ok(ObjectPath::from(file))),
                Err(e) => failures.push((file, e)),
            }
        }
        // Bulk deletes (up to 1,000 keys a request); a key already gone is no failure.
        let mut results = self
            .store
            .delete_stream(futures::stream::iter(keys).boxed());
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => failures.push((String::new(), backend_err(e))),
            }
        }
        failures
    }

    async fn untracked_files(
        &self,
        prefix: u8,
        before: SystemTime,
    ) -> Result<Vec<String>, StorageError> {
        let dir = ObjectPath::from(format!("artifact/{prefix:02x}"));
        let mut listing = self.store.list(Some(&dir));
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(backend_err)?;
            let Some(rest) = meta.location.filename() else {
                continue;
            };
            let sha256 = format!("{prefix:02x}{rest}");
            if relative_path(&sha256).ok().as_deref() != Some(meta.location.as_ref()) {
                continue;
            }
            if SystemTime::from(meta.last_modified) < before {
                out.push(sha256);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn remove_if_older(
        &self,
        sha256: &str,
        before: SystemTime,
    ) -> Result<bool, StorageError> {
        let key = ObjectPath::from(relative_path(sha256)?);
        match self.store.head(&key).await {
            Ok(meta) if SystemTime::from(meta.last_modified) < before => {}
            Ok(_) | Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(backend_err(e)),
        }
        match self.store.delete(&key).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(backend_err(e)),
        }
    }

    async fn read(
        &self,
        file: &str,
        range: Option<Range<u64>>,
    ) -> Result<ByteStream, StorageError> {
        check_file(file)?;
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let got = match self.store.get_opts(&ObjectPath::from(file), options).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StorageError::Missing(file.to_string()))
            }
            Err(e) => return Err(backend_err(e)),
        };
        Ok(got.into_stream().map_err(backend_err).boxed())
    }

    async fn presigned_url(
        &self,
        file: &str,
        method: axum::http::Method,
        expires: Duration,
        download_name: &str,
    ) -> Result<Option<url::Url>, StorageError> {
        check_file(file)?;
        let key = ObjectPath::from(file);
        // As pulpcore: the client saves the file under the requested name.
        let options = SignedUrlOptions::new().with_query([(
            "response-content-disposition",
            format!("attachment;filename={download_name}"),
        )]);
        let url = match self
            .store
            .signed_url_opts(method.clone(), &key, expires, &options)
            .await
        {
            Ok(u) => u,
            Err(object_store::Error::NotSupported { .. }) => self
                .store
                .signed_url(method, &key, expires)
                .await
                .map_err(backend_err)?,
            Err(e) => return Err(backend_err(e)),
        };
        Ok(Some(url))
    }

    async fn save_chunk(
        &self,
        upload: Uuid,
        chunk: Uuid,
        temp: TempPath,
        size: u64,
    ) -> Result<(), StorageError> {
        let key = ObjectPath::from(chunk_key(upload, chunk));
        self::upload(&self.store, &key, &temp, size).await
    }

    async fn read_chunk(
        &self,
        upload: Uuid,
        chunk: Uuid,
        range: Range<u64>,
    ) -> Result<ByteStream, StorageError> {
        let key = chunk_key(upload, chunk);
        let options = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        match self
            .store
            .get_opts(&ObjectPath::from(key.as_str()), options)
            .await
        {
            Ok(got) => Ok(got.into_stream().map_err(backend_err).boxed()),
            Err(object_store::Error::NotFound { .. }) => Err(StorageError::Missing(key)),
            Err(e) => Err(backend_err(e)),
        }
    }

    async fn remove_chunk(&self, upload: Uuid, chunk: Uuid) -> Result<(), StorageError> {
        match self
            .store
            .delete(&ObjectPath::from(chunk_key(upload, chunk)))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend_err(e)),
        }
    }

    async fn remove_upload(&self, upload: Uuid) -> Result<(), StorageError> {
        let dir = ObjectPath::from(format!("{UPLOAD_PREFIX}/{upload}"));
        let keys = self.store.list(Some(&dir)).map_ok(|meta| meta.location);
        let mut results = self.store.delete_stream(keys.boxed());
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(backend_err(e)),
            }
        }
        Ok(())
    }

    async fn uploads_before(&self, before: SystemTime) -> Result<Vec<Uuid>, StorageError> {
        // An upload's age is its newest chunk's, as a directory's time on the filesystem.
        let mut newest: std::collections::HashMap<Uuid, SystemTime> = Default::default();
        let mut listing = self.store.list(Some(&ObjectPath::from(UPLOAD_PREFIX)));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(backend_err)?;
            let parts: Vec<_> = meta.location.parts().collect();
            let [_, upload, _chunk] = parts.as_slice() else {
                continue;
            };
            let Ok(upload) = Uuid::parse_str(upload.as_ref()) else {
                continue;
            };
            let modified = SystemTime::from(meta.last_modified);
            let entry = newest.entry(upload).or_insert(modified);
            *entry = (*entry).max(modified);
        }
        let mut out: Vec<Uuid> = newest
            .into_iter()
            .filter(|(_, t)| *t < before)
            .map(|(id, _)| id)
            .collect();
        out.sort();
        Ok(out)
    }
}
