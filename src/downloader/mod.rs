//! Downloaders: fetch a URL into a temporary file while hashing and counting, then validate.
//!
//! A [`DownloaderFactory`] is built once per remote (per sync): it owns the remote's connection
//! pool, its concurrency limit (`download_concurrency`, default 10), its rate limiter and retry
//! policy, and picks the downloader by URL scheme (`http`, `https`, `file`), so plugins never
//! construct one by hand. Every attempt streams to a fresh temp file in the storage's tmp area;
//! sha256 is always computed, sha224/384/512 when expected. Size and digests are checked at the
//! end; a mismatch is an error naming the URL, the expected and the actual value, and is retried
//! from byte 0 like other transient failures.

mod file;
mod http;
mod ratelimit;
mod retry;
mod sink;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempPath;
use tokio::sync::Semaphore;
use url::Url;

use crate::models::{Expected, OtherDigests, Remote};
use http::HttpDownloader;
use ratelimit::RateLimiter;
pub(crate) use sink::{Sink, Written};

pub use file::ImportPaths;
pub use http::USER_AGENT_PREFIX as USER_AGENT;
pub use sink::Tee;

/// The largest metadata file (a manifest, an index) read by default: generous, but a remote
/// cannot fill the disk with an endless one.
pub const DEFAULT_MAX_METADATA_SIZE: u64 = 1 << 30;

/// Total time of one attempt (headers and body) when the remote sets none, as in pulpcore.
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(300);

/// Process-wide settings of downloads (not per remote).
#[derive(Debug, Clone)]
pub struct DownloadSettings {
    /// Where temp files are created; must be on the storage's filesystem.
    pub tmp_dir: PathBuf,
    /// First backoff delay; doubles per retry, with full jitter.
    pub retry_base_delay: Duration,
    /// Cap on one backoff delay.
    pub retry_max_delay: Duration,
    /// Where `file://` URLs may be read (none by default).
    pub import_paths: ImportPaths,
    /// The largest metadata file [`DownloaderFactory::download_metadata`] accepts.
    pub max_metadata_size: u64,
}

impl DownloadSettings {
    pub fn new(tmp_dir: impl Into<PathBuf>) -> DownloadSettings {
        DownloadSettings {
            tmp_dir: tmp_dir.into(),
            retry_base_delay: Duration::from_secs(1),
            retry_max_delay: Duration::from_secs(30),
            import_paths: ImportPaths::none(),
            max_metadata_size: DEFAULT_MAX_METADATA_SIZE,
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
    /// An HTTP exchange that cannot succeed as configured (e.g. a redirect loop).
    #[error("{url}: {message}")]
    Protocol { url: String, message: String },
    /// A `file://` URL outside the allowed import paths (the reason never quotes the file).
    #[error("{url}: {reason}")]
    NotAllowed { url: String, reason: &'static str },
    /// A metadata file larger than the cap.
    #[error("{url}: larger than the {limit}-byte limit for metadata files (the max_metadata_size setting)")]
    TooLarge { url: String, limit: u64 },
    #[error("download cancelled")]
    Cancelled,
}

impl DownloadError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            DownloadError::Connect { .. }
            | DownloadError::Timeout { .. }
            | DownloadError::BodyCut { .. } => ErrorKind::Transient,
            DownloadError::Status { status, .. } if *status == 429 || *status >= 500 => {
                ErrorKind::Transient
            }
            DownloadError::Digest { .. } | DownloadError::Size { .. } => ErrorKind::Integrity,
            DownloadError::RetriesExhausted { last, .. } => last.kind(),
            DownloadError::BadUrl { .. }
            | DownloadError::Config(_)
            | DownloadError::Status { .. }
            | DownloadError::Io { .. }
            | DownloadError::Protocol { .. }
            | DownloadError::NotAllowed { .. }
            | DownloadError::TooLarge { .. }
            | DownloadError::Cancelled => ErrorKind::Permanent,
        }
    }
}

/// A failed attempt, with the server's `Retry-After` when it gave one.
#[derive(Debug)]
pub(crate) struct Failure {
    pub error: DownloadError,
    pub retry_after: Option<Duration>,
}

impl From<DownloadError> for Failure {
    fn from(error: DownloadError) -> Failure {
        Failure {
            error,
            retry_after: None,
        }
    }
}

/// The remote's secrets, scrubbed from any text that comes from outside (library errors).
#[derive(Default)]
pub(crate) struct Secrets(Vec<String>);

impl Secrets {
    fn of(remote: &Remote) -> Secrets {
        let values = [&remote.password, &remote.proxy_password, &remote.client_key];
        Secrets(
            values
                .into_iter()
                .flatten()
                .filter(|s| s.len() >= 3)
                .cloned()
                .collect(),
        )
    }

    pub(crate) fn scrub(&self, mut text: String) -> String {
        for secret in &self.0 {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), "<redacted>");
            }
        }
        text
    }
}

/// A seconds option as a duration: `None` for unset or 0; negative or non-finite is an error.
pub(crate) fn secs(name: &str, value: Option<f64>) -> Result<Option<Duration>, DownloadError> {
    match value {
        None => Ok(None),
        Some(0.0) => Ok(None),
        Some(v) => Duration::try_from_secs_f64(v).map(Some).map_err(|_| {
            DownloadError::Config(format!(
                "{name} must be a positive number of seconds, got {v}"
            ))
        }),
    }
}

/// Decrements `in_flight` when a download releases its slot (also when it is cancelled).
struct InFlight<'a>(&'a DownloadStats);

impl<'a> InFlight<'a> {
    fn enter(stats: &'a DownloadStats) -> InFlight<'a> {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = &stats.telemetry {
            t.in_flight.inc();
        }
        InFlight(stats)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        if let Some(t) = &self.0.telemetry {
            t.in_flight.dec();
        }
    }
}

/// Which downloader serves a URL.
enum Target {
    Http(Url),
    File(PathBuf),
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
    /// The process-wide per-remote metrics these counters also feed (`/metrics`).
    pub telemetry: Option<crate::telemetry::RemoteMetrics>,
}

impl DownloadStats {
    /// Counters for remote `name`, also feeding the process metrics.
    pub fn for_remote(name: &str) -> DownloadStats {
        DownloadStats {
            telemetry: Some(crate::telemetry::global().remote(name)),
            ..DownloadStats::default()
        }
    }

    /// A request was sent (or a file opened).
    pub(crate) fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(t) = &self.telemetry {
            t.requests.inc();
        }
    }

    /// Response headers arrived `after` the request was sent.
    pub(crate) fn first_byte(&self, after: Duration) {
        if let Some(t) = &self.telemetry {
            t.ttfb.observe(after.as_secs_f64());
        }
    }

    /// Body bytes were received.
    pub(crate) fn received(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(t) = &self.telemetry {
            t.bytes.inc_by(n);
        }
    }

    pub fn retries(&self) -> u64 {
        self.retries_status.load(Ordering::Relaxed)
            + self.retries_timeout.load(Ordering::Relaxed)
            + self.retries_connection.load(Ordering::Relaxed)
            + self.retries_integrity.load(Ordering::Relaxed)
    }
}

/// Builds and runs downloads for one remote. Cheap to share (`Arc`).
pub struct DownloaderFactory {
    http: HttpDownloader,
    settings: DownloadSettings,
    semaphore: Semaphore,
    limiter: Option<RateLimiter>,
    max_attempts: u32,
    total_timeout: Duration,
    secrets: Secrets,
    stats: Arc<DownloadStats>,
}

impl std::fmt::Debug for DownloaderFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloaderFactory")
            .field("http", &self.http)
            .field("settings", &self.settings)
            .field("concurrency", &self.semaphore.available_permits())
            .field("limiter", &self.limiter)
            .field("max_attempts", &self.max_attempts)
            .field("total_timeout", &self.total_timeout)
            .finish_non_exhaustive()
    }
}

impl DownloaderFactory {
    /// Builds the factory for `remote`: its client (TLS, proxy, auth, headers, timeouts), its
    /// concurrency semaphore, rate limiter and retry count.
    pub fn new(remote: &Remote, settings: DownloadSettings) -> Result<Arc<Self>, DownloadError> {
        http::reject_credentials("the remote URL", &remote.url)?;
        let concurrency = remote
            .download_concurrency
            .unwrap_or(Remote::DEFAULT_DOWNLOAD_CONCURRENCY);
        if concurrency == 0 {
            return Err(DownloadError::Config(
                "download_concurrency must be at least 1".into(),
            ));
        }
        let retries = remote.max_retries.unwrap_or(Remote::DEFAULT_MAX_RETRIES);
        let total_timeout =
            secs("total_timeout", remote.total_timeout)?.unwrap_or(DEFAULT_TOTAL_TIMEOUT);
        Ok(Arc::new(DownloaderFactory {
            http: HttpDownloader::new(remote)?,
            settings,
            semaphore: Semaphore::new(concurrency as usize),
            limiter: remote.rate_limit.and_then(RateLimiter::new),
            max_attempts: retries.saturating_add(1),
            total_timeout,
            secrets: Secrets::of(remote),
            stats: Arc::new(DownloadStats::for_remote(&remote.name)),
        }))
    }

    /// Which downloader serves `raw`, or why none does.
    fn target(&self, raw: &str) -> Result<Target, DownloadError> {
        // An unparsable URL is echoed: make sure it carries none of the remote's secrets.
        let bad = |reason: String| DownloadError::BadUrl {
            url: self.secrets.scrub(raw.to_string()),
            reason,
        };
        let url = Url::parse(raw).map_err(|e| bad(e.to_string()))?;
        if url.password().is_some() {
            let mut shown = url.clone();
            let _ = shown.set_password(None);
            return Err(DownloadError::BadUrl {
                url: shown.to_string(),
                reason: "credentials in URLs are not accepted; set them on the remote".into(),
            });
        }
        match url.scheme() {
            "http" | "https" => Ok(Target::Http(url)),
            "file" => file::local_path(raw, &url).map(Target::File),
            other => Err(bad(format!(
                "scheme {other:?} is not supported (http, https, file)"
            ))),
        }
    }

    /// One attempt of any scheme, bounded by the total timeout.
    async fn attempt(
        &self,
        target: &Target,
        url: &str,
        expected: &Expected,
        tee: Option<&Tee>,
        cap: Option<u64>,
    ) -> Result<Written, Failure> {
        let tmp_dir = &self.settings.tmp_dir;
        let run = async {
            let written = match target {
                Target::Http(parsed) => {
                    self.http
                        .attempt(
                            parsed,
                            url,
                            expected,
                            sink::Dest { tmp_dir, tee },
                            &self.stats,
                            &self.secrets,
                            cap,
                        )
                        .await?
                }
                Target::File(path) => {
                    file::attempt(
                        path,
                        url,
                        expected,
                        tmp_dir,
                        &self.stats,
                        tee,
                        &self.settings.import_paths,
                        cap,
                    )
                    .await?
                }
            };
            sink::check(url, expected, &written)?;
            Ok(written)
        };
        match tokio::time::timeout(self.total_timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(DownloadError::Timeout {
                url: url.to_string(),
                what: "total",
            }
            .into()),
        }
    }

    /// Downloads `url` (http, https or file) into a temp file, validating against `expected`,
    /// retrying transient and integrity failures with backoff. Holds one concurrency slot for the
    /// whole download including backoff.
    pub async fn download(
        &self,
        url: &str,
        expected: &Expected,
    ) -> Result<DownloadResult, DownloadError> {
        self.download_inner(url, expected, None, None).await
    }

    /// Downloads a metadata file (a manifest, an index) whose size is not known in advance,
    /// refusing one larger than the `max_metadata_size` setting.
    pub async fn download_metadata(&self, url: &str) -> Result<DownloadResult, DownloadError> {
        let cap = Some(self.settings.max_metadata_size);
        self.download_inner(url, &Expected::default(), None, cap)
            .await
    }

    /// Like [`DownloaderFactory::download`], also handing every chunk to `tee` as it arrives
    /// (the content app streams an on-demand artifact to its client while it is saved). An
    /// attempt that fails before any byte reached `tee` is retried as usual; once bytes were
    /// forwarded nothing is retried (the receiver cannot take them back): the error is returned.
    /// The size and digests are checked at the end, as for any download, so a receiver must
    /// treat the bytes as unverified until this returns `Ok`.
    pub async fn download_streaming(
        &self,
        url: &str,
        expected: &Expected,
        tee: &Tee,
    ) -> Result<DownloadResult, DownloadError> {
        self.download_inner(url, expected, Some(tee), None).await
    }

    async fn download_inner(
        &self,
        url: &str,
        expected: &Expected,
        tee: Option<&Tee>,
        cap: Option<u64>,
    ) -> Result<DownloadResult, DownloadError> {
        let target = self.target(url)?;
        let _permit = self
            .semaphore
            .acquire()
            .await
            .map_err(|_| DownloadError::Cancelled)?;
        let _in_flight = InFlight::enter(&self.stats);
        let started = std::time::Instant::now();
        let result = self
            .download_attempts(&target, url, expected, tee, cap)
            .await;
        if let Some(t) = &self.stats.telemetry {
            t.duration.observe(started.elapsed().as_secs_f64());
        }
        result
    }

    /// The attempts of one download, holding its slot.
    async fn download_attempts(
        &self,
        target: &Target,
        url: &str,
        expected: &Expected,
        tee: Option<&Tee>,
        cap: Option<u64>,
    ) -> Result<DownloadResult, DownloadError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if let Some(limiter) = &self.limiter {
                limiter.acquire().await;
            }
            let failure = match self.attempt(target, url, expected, tee, cap).await {
                Ok(w) => {
                    self.stats.completed.fetch_add(1, Ordering::Relaxed);
                    return Ok(DownloadResult {
                        url: url.to_string(),
                        temp: w.temp,
                        size: w.size,
                        sha256: w.sha256,
                        other: w.other,
                    });
                }
                Err(f) => f,
            };
            let error = failure.error;
            if !retry::is_retryable(&error) || tee.is_some_and(|t| t.forwarded() > 0) {
                return Err(error);
            }
            if attempt >= self.max_attempts {
                tracing::warn!(url = %url, attempts = attempt, error = %error, "download failed, giving up");
                return Err(DownloadError::RetriesExhausted {
                    url: url.to_string(),
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            retry::count_retry(&self.stats, &error);
            let delay = retry::backoff_delay(
                self.settings.retry_base_delay,
                self.settings.retry_max_delay,
                attempt - 1,
                failure.retry_after,
            );
            tracing::warn!(
                url = %url,
                attempt,
                max_attempts = self.max_attempts,
                delay_ms = delay.as_millis() as u64,
                error = %error,
                "download failed, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    pub fn stats(&self) -> &Arc<DownloadStats> {
        &self.stats
    }
}
