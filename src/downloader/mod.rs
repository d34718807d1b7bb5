//! Downloaders: fetch a URL into a temporary file while hashing and counting, then validate.
//!
//! A [`DownloaderFactory`] is built once per remote (per sync): it owns the remote's connection
//! pool, its concurrency limit (`download_concurrency`, default 10), its rate limiter and retry
//! policy, and picks the downloader by URL scheme (`http`, `https`, `file`), so plugins never
//! construct one by hand. Every attempt streams to a fresh temp file in the storage's tmp area;
//! sha256 is always computed, sha224/384/512 when expected. Size and digests are checked at the
//! end; a mismatch is an error naming the URL, the expected and the actual value, and is retried
//! from byte 0 like other transient failures.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempPath;

use crate::models::{Expected, OtherDigests, Remote};

/// Process-wide settings of downloads (not per remote).
#[derive(Debug, Clone)]
pub struct DownloadSettings {
    /// Where temp files are created; must be on the storage's filesystem.
    pub tmp_dir: PathBuf,
    /// First backoff delay; doubles per retry, with full jitter.
    pub retry_base_delay: Duration,
    /// Cap on one backoff delay.
    pub retry_max_delay: Duration,
}

impl DownloadSettings {
    pub fn new(tmp_dir: impl Into<PathBuf>) -> DownloadSettings {
        DownloadSettings {
            tmp_dir: tmp_dir.into(),
            retry_base_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(30),
        }
    }
}

/// A finished, validated download. The temp file is deleted on drop unless adopted by storage.
#[derive(Debug)]
pub struct DownloadResult {
    pub url: String,
    pub temp: TempPath,
    pub size: u64,
    pub sha256: String,
    pub other: OtherDigests,
}

/// How a download error should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Worth another attempt: connection errors, timeouts, a body cut short, 429, 5xx.
    Transient,
    /// The bytes were wrong (digest or size): retried from byte 0.
    Integrity,
    /// Retrying cannot help: other 4xx, bad URL, unsupported scheme, local I/O.
    Permanent,
}

/// Errors of the download layer. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("unsupported URL {url}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("invalid remote configuration: {0}")]
    Config(String),
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: connection failed: {message}")]
    Connect { url: String, message: String },
    #[error("{url}: timed out ({what})")]
    Timeout { url: String, what: &'static str },
    #[error("{url}: body cut short after {received} bytes: {message}")]
    BodyCut {
        url: String,
        received: u64,
        message: String,
    },
    #[error("{url}: {algorithm} mismatch: expected {expected}, got {actual}")]
    Digest {
        url: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{url}: size mismatch: expected {expected} bytes, got {actual}")]
    Size {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("{url}: local I/O error: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: giving up after {attempts} attempts: {last}")]
    RetriesExhausted {
        url: String,
        attempts: u32,
        last: Box<DownloadError>,
    },
    #[error("download cancelled")]
    Cancelled,
}

impl DownloadError {
    pub fn kind(&self) -> ErrorKind {
        todo!("downloader helper")
    }
}

/// Counters of one factory (one remote in one sync). Plain atomics: cheap on the hot path.
#[derive(Debug, Default)]
pub struct DownloadStats {
    /// HTTP requests sent (or files opened for `file://`).
    pub requests: AtomicU64,
    /// Retries caused by a 429 or 5xx status.
    pub retries_status: AtomicU64,
    /// Retries caused by a connect or read timeout.
    pub retries_timeout: AtomicU64,
    /// Retries caused by a connection error or a body cut short.
    pub retries_connection: AtomicU64,
    /// Retries caused by a digest or size mismatch.
    pub retries_integrity: AtomicU64,
    /// Body bytes received (all attempts).
    pub bytes: AtomicU64,
    /// Downloads that succeeded.
    pub completed: AtomicU64,
    /// Downloads in flight (holding a concurrency slot).
    pub in_flight: AtomicU64,
}

impl DownloadStats {
    pub fn retries(&self) -> u64 {
        self.retries_status.load(Ordering::Relaxed)
            + self.retries_timeout.load(Ordering::Relaxed)
            + self.retries_connection.load(Ordering::Relaxed)
            + self.retries_integrity.load(Ordering::Relaxed)
    }
}

/// Builds and runs downloads for one remote. Cheap to share (`Arc`).
pub struct DownloaderFactory {
    _private: (),
}

impl DownloaderFactory {
    /// Builds the factory for `remote`: its client (TLS, proxy, auth, headers, timeouts), its
    /// concurrency semaphore, rate limiter and retry count.
    pub fn new(remote: &Remote, settings: DownloadSettings) -> Result<Arc<Self>, DownloadError> {
        let _ = (remote, settings);
        todo!("downloader helper")
    }

    /// Downloads `url` (http, https or file) into a temp file, validating against `expected`,
    /// retrying transient and integrity failures with backoff. Holds one concurrency slot for the
    /// whole download including backoff.
    pub async fn download(
        &self,
        url: &str,
        expected: &Expected,
    ) -> Result<DownloadResult, DownloadError> {
        let _ = (url, expected);
        todo!("downloader helper")
    }

    pub fn stats(&self) -> &Arc<DownloadStats> {
        todo!("downloader helper")
    }
}
