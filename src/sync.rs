//! Runs a sync: a pipeline against a new, incomplete repository version, committed only when
//! every stage returned Ok.
//!
//! The version is created incomplete (invisible), the stages write memberships against it, and
//! then exactly one of two things happens: [`Store::finalize_version`](crate::db::Store) makes it
//! complete (or deletes it when nothing changed), or, on any failure or cancellation,
//! [`Store::discard_version`](crate::db::Store) undoes it, leaving the repository's latest
//! version as it was. Downloads of the sync live in their own temp directory, removed at the end
//! whatever happened.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::db::{DbError, DynStore};
use crate::declarative::RemoteHandle;
use crate::downloader::{DownloadError, DownloadSettings, DownloadStats, DownloaderFactory};
use crate::models::{Remote, Repository, RepositoryVersion, VersionCounts};
use crate::plugins::{Plugin, SyncEnv};
use crate::stages::{
    create_pipeline, PipelineConfig, PipelineError, PipelineMetrics, PipelineReport, StageEnv,
};
use crate::storage::ArtifactStorage;

/// Errors of a sync as a whole.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("sync failed: {0}")]
    Pipeline(#[from] PipelineError),
    #[error("sync failed: {0}")]
    Db(#[from] DbError),
    #[error("sync failed: {0}")]
    Download(#[from] DownloadError),
    #[error("sync failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("sync cancelled")]
    Cancelled,
}

/// Everything a sync needs from its surroundings.
#[derive(Clone)]
pub struct SyncContext {
    pub store: DynStore,
    pub storage: ArtifactStorage,
    pub pipeline: PipelineConfig,
    /// Retry delays and similar process-wide download settings (its `tmp_dir` is replaced by
    /// the sync's own directory).
    pub download: DownloadSettings,
    /// Content units downloaded at once by ArtifactDownloader.
    pub max_concurrent_content: usize,
}

impl SyncContext {
    pub fn new(store: DynStore, storage: ArtifactStorage) -> SyncContext {
        let download = DownloadSettings::new(storage.tmp_dir());
        SyncContext {
            store,
            storage,
            pipeline: PipelineConfig::default(),
            download,
            max_concurrent_content: 200,
        }
    }
}

/// How to sync: `mirror`, and the plugin's own options ([`Plugin::sync_options`], e.g.
/// deb's `optimize`) as a JSON object with the plugin's defaults filled in. A plain `bool`
/// converts into a mirror flag with no plugin options.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncOptions {
    pub mirror: bool,
    pub plugin: serde_json::Value,
}

impl From<bool> for SyncOptions {
    fn from(mirror: bool) -> SyncOptions {
        SyncOptions {
            mirror,
            plugin: serde_json::json!({}),
        }
    }
}

/// What a finished sync did.
#[derive(Debug)]
pub struct SyncOutcome {
    /// The new version, or `None` when nothing changed (no version is made for a no-op sync,
    /// as pulpcore does: the latest version stays the same).
    pub version: Option<RepositoryVersion>,
    pub counts: VersionCounts,
    pub report: PipelineReport,
    pub downloads: Arc<DownloadStats>,
    /// The first stage found upstream unchanged and skipped the rest ([`SyncEnv::skip`]).
    pub skipped: bool,
}

/// A sync being prepared: call [`PreparedSync::metrics`] to watch it, then [`PreparedSync::run`].
pub struct PreparedSync {
    ctx: SyncContext,
    version: RepositoryVersion,
    pipeline: crate::stages::Pipeline,
    downloads: Arc<DownloadStats>,
    tmp_dir: std::path::PathBuf,
    skip: crate::plugins::SkipSignal,
}

/// Starts a sync of `repository` from `remote` with `plugin`: creates the incomplete version
/// and links the pipeline. Nothing is downloaded until [`PreparedSync::run`].
pub async fn prepare(
    ctx: &SyncContext,
    plugin: &dyn Plugin,
    repository: &Repository,
    remote: &Remote,
    options: impl Into<SyncOptions>,
) -> Result<PreparedSync, SyncError> {
    let SyncOptions {
        mirror,
        plugin: options,
    } = options.into();
    // One directory per repository: syncs of a repository never run at once (its exclusive
    // reservation, and the incomplete version they share), so whatever is here was left by a
    // sync that died (a killed worker) and is removed before starting.
    let tmp_dir = ctx
        .storage
        .tmp_dir()
        .join(format!("sync-{}", repository.id.simple()));
    if tmp_dir.exists() {
        std::fs::remove_dir_all(&tmp_dir)?;
    }
    std::fs::create_dir_all(&tmp_dir)?;
    let mut settings = ctx.download.clone();
    settings.tmp_dir = tmp_dir.clone();
    let factory = match DownloaderFactory::new(remote, settings) {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp_dir);
            return Err(e.into());
        }
    };
    let downloads = factory.stats().clone();
    let version = match ctx.store.create_incomplete_version(repository.id).await {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp_dir);
            return Err(e.into());
        }
    };
    let env = SyncEnv {
        remote: Arc::new(RemoteHandle {
            remote: remote.clone(),
            downloader: factory,
        }),
        stages: StageEnv {
            store: ctx.store.clone(),
            storage: ctx.storage.clone(),
            version_id: version.id,
            max_concurrent_content: ctx.max_concurrent_content,
        },
        options,
        skip: crate::plugins::SkipSignal::default(),
    };
    let skip = env.skip.clone();
    let first = plugin.first_stage(&env);
    let rest = plugin.stages(&env, mirror);
    let pipeline = create_pipeline(first, rest, ctx.pipeline.clone());
    Ok(PreparedSync {
        ctx: ctx.clone(),
        version,
        pipeline,
        downloads,
        tmp_dir,
        skip,
    })
}

impl PreparedSync {
    /// Live counters of the pipeline.
    pub fn metrics(&self) -> PipelineMetrics {
        self.pipeline.metrics()
    }

    /// Download counters of the sync's remote.
    pub fn download_stats(&self) -> Arc<DownloadStats> {
        self.downloads.clone()
    }

    /// The incomplete version being built.
    pub fn version(&self) -> &RepositoryVersion {
        &self.version
    }

    /// Runs the pipeline, then commits or discards the version.
    pub async fn run(self, cancel: CancellationToken) -> Result<SyncOutcome, SyncError> {
        let PreparedSync {
            ctx,
            version,
            pipeline,
            downloads,
            tmp_dir,
            skip,
        } = self;
        let result = pipeline.run(cancel.clone()).await;
        match &result {
            Ok(report) => report.record(),
            Err(e) => e.report.record(),
        }
        let outcome = match result {
            // Upstream unchanged: the incomplete version (which may have unassociated what the
            // first stage did not declare again) is discarded below; the latest stays latest.
            Ok(report) if skip.is_raised() => {
                if let Err(e) = ctx.store.discard_version(version.id).await {
                    tracing::error!(version = %version.id, error = %e, "could not discard the incomplete version; the next sync will");
                }
                Ok(SyncOutcome {
                    version: None,
                    counts: VersionCounts {
                        present: ctx
                            .store
                            .latest_version(version.repository_id)
                            .await
                            .map(|v| v.counts.present)
                            .unwrap_or(0),
                        ..VersionCounts::default()
                    },
                    report,
                    downloads: downloads.clone(),
                    skipped: true,
                })
            }
            Ok(report) => match ctx.store.finalize_version(version.id).await {
                Ok(done) => {
                    let counts = match &done {
                        Some(v) => v.counts,
                        None => VersionCounts {
                            present: ctx
                                .store
                                .latest_version(version.repository_id)
                                .await
                                .map(|v| v.counts.present)
                                .unwrap_or(0),
                            ..VersionCounts::default()
                        },
                    };
                    Ok(SyncOutcome {
                        version: done,
                        counts,
                        report,
                        downloads,
                        skipped: false,
                    })
                }
                Err(e) => Err(SyncError::Db(e)),
            },
            Err(e) if e.is_cancelled() => Err(SyncError::Cancelled),
            Err(e) => Err(SyncError::Pipeline(e)),
        };
        if outcome.is_err() {
            if let Err(e) = ctx.store.discard_version(version.id).await {
                tracing::error!(version = %version.id, error = %e, "could not discard the incomplete version; the next sync will");
            }
        }
        if let Err(e) = tokio::fs::remove_dir_all(&tmp_dir).await {
            tracing::warn!(dir = %tmp_dir.display(), error = %e, "could not remove the sync's temp directory");
        }
        outcome
    }
}

/// Prepares and runs a sync in one call.
pub async fn sync(
    ctx: &SyncContext,
    plugin: &dyn Plugin,
    repository: &Repository,
    remote: &Remote,
    options: impl Into<SyncOptions>,
    cancel: CancellationToken,
) -> Result<SyncOutcome, SyncError> {
    prepare(ctx, plugin, repository, remote, options)
        .await?
        .run(cancel)
        .await
}
