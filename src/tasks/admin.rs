//! Housekeeping task functions: orphan cleanup (pulpcore's `orphan_cleanup`).
//!
//! Rows go first, in one transaction ([`crate::db::AdminStore::delete_orphans`]); files are
//! removed only after that commit, and only those whose digest no artifact row names again (a
//! sync may have saved the same file meanwhile), so no row ever points at a removed file.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::models::{ProgressReport, TaskState};
use crate::storage::ArtifactStorage;
use crate::tasking::{TaskCtx, TaskError};

/// The registered name of the orphan cleanup task.
pub const ORPHAN_CLEANUP: &str = "orphan_cleanup";

/// The resource every orphan cleanup holds exclusively (pulpcore's).
pub const ORPHAN_CLEANUP_RESOURCE: &str = "/pulp/api/v3/orphans/cleanup/";

/// Minutes an orphan is kept when the request names no `orphan_protection_time` (pulpcore's
/// `ORPHAN_PROTECTION_TIME`).
pub const DEFAULT_ORPHAN_PROTECTION_MINUTES: u64 = 1440;

/// The arguments of an orphan cleanup task.
pub fn orphan_cleanup_args(protection_minutes: u64, content_ids: Option<&[Uuid]>) -> Value {
    serde_json::json!({
        "orphan_protection_time": protection_minutes,
        "content_ids": content_ids.map(|ids| ids.iter().map(Uuid::to_string).collect::<Vec<_>>()),
    })
}

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
    let args = ctx.args();
    let minutes = match &args["orphan_protection_time"] {
        Value::Null => DEFAULT_ORPHAN_PROTECTION_MINUTES,
        v => v
            .as_u64()
            .ok_or_else(|| TaskError::failed("orphan_protection_time must be an integer"))?,
    };
    let content_ids: Option<Vec<Uuid>> = match &args["content_ids"] {
        Value::Null => None,
        Value::Array(items) => Some(
            items
                .iter()
                .map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| TaskError::failed("content_ids must be a list of uuids"))?,
        ),
        _ => return Err(TaskError::failed("content_ids must be a list of uuids")),
    };
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
    let failures = tokio::task::spawn_blocking(move || {
        let mut failures = 0u64;
        for file in &files {
            if let Err(e) = storage.remove(file) {
                tracing::warn!(error = %e, file = %file, "cannot remove an orphan artifact's file");
                failures += 1;
            }
        }
        failures
    })
    .await
    .map_err(|e| TaskError::failed(format!("file removal stopped: {e}")))?;
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
        file_failures = failures,
        "orphan cleanup done"
    );
    Ok(())
}
