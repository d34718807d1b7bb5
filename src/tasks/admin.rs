//! Housekeeping: orphan cleanup (pulpcore's `orphan_cleanup`) and the recovery a process runs
//! at start and when a worker is declared missing.
//!
//! Orphan cleanup deletes rows first, in one transaction
//! ([`crate::db::AdminStore::delete_orphans`]); files are removed only after that commit, and
//! only those whose digest no artifact row names again (a sync may have saved the same file
//! meanwhile), so no row ever points at a removed file. A cleanup killed between the two phases
//! leaves files that no row names: every cleanup therefore also sweeps the store for files whose
//! digest has no row and that are older than both the protection time and
//! [`UNTRACKED_FILE_MIN_AGE`], so whatever point a cleanup (or a sync) died at, the next one
//! leaves no stray file.
//!
//! Uploads untouched for longer than the protection time go too, with their chunks
//! ([`super::upload::cleanup_uploads`]).
//!
//! [`recover`] discards the incomplete repository versions and removes the temp downloads that
//! no running task owns (what a killed worker left), without waiting for the same repository's
//! next sync.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::{DbError, DynStore};
use crate::models::{ProgressReport, TaskFilter, TaskState};
use crate::storage::ArtifactStorage;
use crate::tasking::{TaskArgs, TaskCtx, TaskError};

/// The registered name of the orphan cleanup task.
pub const ORPHAN_CLEANUP: &str = "orphan_cleanup";

/// The resource every orphan cleanup holds exclusively (pulpcore's).
pub const ORPHAN_CLEANUP_RESOURCE: &str = "/pulp/api/v3/orphans/cleanup/";

/// Minutes an orphan is kept when the request names no `orphan_protection_time` (pulpcore's
/// `ORPHAN_PROTECTION_TIME`).
pub const DEFAULT_ORPHAN_PROTECTION_MINUTES: u64 = 1440;

/// The arguments of an orphan cleanup task: orphans older than `orphan_protection_time`
/// minutes ([`DEFAULT_ORPHAN_PROTECTION_MINUTES`] when absent), only among `content_ids` when
/// given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrphanCleanupArgs {
    #[serde(default)]
    pub orphan_protection_time: Option<u64>,
    #[serde(default)]
    pub content_ids: Option<Vec<Uuid>>,
}

impl TaskArgs for OrphanCleanupArgs {
    const NAME: &'static str = ORPHAN_CLEANUP;
}

/// A stored file younger than this is never swept as untracked, whatever the protection time:
/// a sync places a file a moment before it inserts the row naming it.
pub const UNTRACKED_FILE_MIN_AGE: Duration = Duration::from_secs(10 * 60);

/// A temp download (outside a sync's own directory) untouched for this long has no owner: an
/// attempt that writes nothing for this long has timed out long before.
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(60 * 60);

/// The oldest `timestamp_of_interest` that is still protected.
fn cutoff(minutes: u64) -> DateTime<Utc> {
    i64::try_from(minutes)
        .ok()
        .and_then(chrono::Duration::try_minutes)
        .and_then(|d| Utc::now().checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn report(
    message: &str,
    code: &str,
    state: TaskState,
    total: Option<u64>,
    done: u64,
) -> ProgressReport {
    ProgressReport {
        message: message.to_string(),
        code: code.to_string(),
        state,
        total,
        done,
        suffix: None,
    }
}

/// Deletes orphan content, then orphan artifacts and their files.
pub async fn orphan_cleanup(ctx: TaskCtx, storage: ArtifactStorage) -> Result<(), TaskError> {
    let args: OrphanCleanupArgs = ctx.args_as()?;
    let minutes = args
        .orphan_protection_time
        .unwrap_or(DEFAULT_ORPHAN_PROTECTION_MINUTES);
    let content_ids = args.content_ids;
    if ctx.is_canceled() {
        return Err(TaskError::Canceled);
    }
    const CONTENT: (&str, &str) = ("Clean up orphan Content", "clean-up.content");
    const ARTIFACTS: (&str, &str) = ("Clean up orphan Artifacts", "clean-up.artifacts");
    ctx.progress(report(CONTENT.0, CONTENT.1, TaskState::Running, None, 0))
        .await?;
    let out = ctx
        .store()
        .delete_orphans(cutoff(minutes), content_ids.as_deref())
        .await?;
    let n_content = out.content_removed;
    ctx.progress(report(
        CONTENT.0,
        CONTENT.1,
        TaskState::Completed,
        Some(n_content),
        n_content,
    ))
    .await?;
    let n_artifacts = out.artifacts.len() as u64;
    ctx.progress(report(
        ARTIFACTS.0,
        ARTIFACTS.1,
        TaskState::Running,
        Some(n_artifacts),
        0,
    ))
    .await?;

    // A digest saved again since the commit keeps its file.
    let mut files = Vec::with_capacity(out.artifacts.len());
    for chunk in out.artifacts.chunks(500) {
        let shas: Vec<String> = chunk.iter().map(|(_, sha, _)| sha.clone()).collect();
        let back: HashSet<String> = ctx
            .store()
            .find_artifacts_by_sha256(&shas)
            .await?
            .into_iter()
            .map(|a| a.sha256)
            .collect();
        files.extend(
            chunk
                .iter()
                .filter(|(_, sha, _)| !back.contains(sha))
                .map(|(_, _, file)| file.clone()),
        );
    }
    let failed = storage.remove_many(files).await;
    for (file, e) in &failed {
        tracing::warn!(error = %e, file = %file, "cannot remove an orphan artifact's file");
    }
    let failures = failed.len() as u64;
    let swept = sweep_untracked_files(ctx.store(), &storage, minutes, &ctx).await?;
    let uploads = super::upload::cleanup_uploads(
        ctx.store(),
        &storage,
        cutoff(minutes),
        Duration::from_secs(minutes.saturating_mul(60)),
        UNTRACKED_FILE_MIN_AGE,
    )
    .await?;
    ctx.progress(report(
        ARTIFACTS.0,
        ARTIFACTS.1,
        TaskState::Completed,
        Some(n_artifacts),
        n_artifacts,
    ))
    .await?;
    tracing::info!(
        content = n_content,
        artifacts = n_artifacts,
        untracked_files = swept,
        uploads,
        file_failures = failures,
        "orphan cleanup done"
    );
    Ok(())
}

/// Removes the stored files whose digest no artifact row names and that are older than the
/// protection time and [`UNTRACKED_FILE_MIN_AGE`]; returns how many went. One prefix
/// directory at a time, so memory stays bounded by the largest directory.
async fn sweep_untracked_files(
    store: &DynStore,
    storage: &ArtifactStorage,
    protection_minutes: u64,
    ctx: &TaskCtx,
) -> Result<u64, TaskError> {
    let protection = Duration::from_secs(protection_minutes.saturating_mul(60));
    let age = protection.max(UNTRACKED_FILE_MIN_AGE);
    let before = SystemTime::now()
        .checked_sub(age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0u64;
    for prefix in 0..=255u8 {
        if ctx.is_canceled() {
            return Err(TaskError::Canceled);
        }
        let candidates = storage
            .untracked_files(prefix, before)
            .await
            .map_err(|e| TaskError::failed(format!("sweep: {e}")))?;
        for chunk in candidates.chunks(500) {
            let known: HashSet<String> = store
                .find_artifacts_by_sha256(chunk)
                .await?
                .into_iter()
                .map(|a| a.sha256)
                .collect();
            let stray: Vec<String> = chunk
                .iter()
                .filter(|sha| !known.contains(*sha))
                .cloned()
                .collect();
            if stray.is_empty() {
                continue;
            }
            for sha in &stray {
                match storage.remove_if_older(sha, before).await {
                    Ok(true) => removed += 1,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "cannot remove an untracked file"),
                }
            }
        }
    }
    Ok(removed)
}

/// Removes, below `tmp`, the `sync-<repository>` directories whose repository is not in
/// `owned` and the loose files untouched for [`STALE_TEMP_AGE`]; returns how many went.
fn clean_temp_area(tmp: &std::path::Path, owned: &HashSet<Uuid>) -> u64 {
    let stale_before = SystemTime::now()
        .checked_sub(STALE_TEMP_AGE)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let Ok(meta) = entry.metadata() else { continue };
        let path = entry.path();
        let name = entry.file_name();
        let sync_of = name
            .to_str()
            .and_then(|n| n.strip_prefix("sync-"))
            .and_then(|id| Uuid::parse_str(id).ok());
        let result = match (meta.is_dir(), sync_of) {
            (true, Some(repository)) if !owned.contains(&repository) => {
                std::fs::remove_dir_all(&path)
            }
            (false, _) if meta.modified().is_ok_and(|m| m < stale_before) => {
                std::fs::remove_file(&path)
            }
            _ => continue,
        };
        match result {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a stale temp entry")
            }
        }
    }
    removed
}

/// What [`recover`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Incomplete versions discarded.
    pub versions: u64,
    /// Incomplete publications deleted.
    pub publications: u64,
    /// Temp directories and files removed.
    pub temp_entries: u64,
}

/// Discards the incomplete versions and publications, rebuilds the task queue, and removes the temp downloads that no running task owns:
/// what a crashed process or a killed worker left. Run at process start and by the worker that
/// declares another missing. A repository counts as owned while a running (or canceling) task
/// holds a resource naming it; the versions are listed before the tasks, so a sync that starts
/// meanwhile is never robbed of its own.
pub async fn recover(store: &DynStore, storage: &ArtifactStorage) -> Result<Recovery, DbError> {
    let versions = store.incomplete_versions().await?;
    let running = store
        .list_tasks(&TaskFilter {
            states: Some(vec![TaskState::Running, TaskState::Canceling]),
            ..TaskFilter::default()
        })
        .await?;
    // Every id named by a resource a running task holds (hrefs such as
    // `/pulp/api/v3/repositories/file/file/<id>/`, shared ones prefixed `shared:`).
    let owned: HashSet<Uuid> = running
        .iter()
        .flat_map(|t| t.exclusive_resources.iter().chain(&t.shared_resources))
        .flat_map(|r| r.split('/').filter_map(|seg| Uuid::parse_str(seg).ok()))
        .collect();
    let mut out = Recovery::default();
    for (version, repository) in versions {
        if owned.contains(&repository) {
            continue;
        }
        store.discard_version(version).await?;
        tracing::info!(version = %version, repository = %repository, "discarded an incomplete version no task owns");
        out.versions += 1;
    }
    for (publication, repository) in store.incomplete_publications().await? {
        if owned.contains(&repository) {
            continue;
        }
        store.delete_publication(publication).await?;
        tracing::info!(publication = %publication, repository = %repository, "deleted an incomplete publication no task owns");
        out.publications += 1;
    }
    // The queue as the tasks' own rows say (a dead worker's reservations are gone by now).
    store.refresh_queue().await?;

    // Temp area: `sync-<repository>` directories of syncs no task runs, and stale loose files
    // (other directories are left alone). Blocking file work, off the async threads.
    let tmp = storage.tmp_dir().to_path_buf();
    out.temp_entries = tokio::task::spawn_blocking(move || clean_temp_area(&tmp, &owned))
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "temp area cleanup stopped");
            0
        });
    Ok(out)
}
