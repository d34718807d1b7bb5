//! A content app's start-up check that its artifact storage holds the files its database names.
//!
//! A content app pointed at the right database but the wrong data directory (or an emptied
//! media directory) would answer 500 on every file; this samples a few artifacts spread over
//! the whole table (an indexed page each, not a scan) and warns once, at start, naming the
//! storage root and how many of the sampled files are missing.

use crate::db::{DbError, DynStore};
use crate::models::ArtifactFilter;
use crate::storage::ArtifactStorage;

/// Artifacts sampled at start.
pub const SAMPLE: u64 = 16;

/// What the sample found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageSample {
    /// Artifacts looked at.
    pub sampled: u64,
    /// Files (relative to the storage root) of the sampled artifacts that are missing.
    pub missing: Vec<String>,
}

/// Looks for the files of up to `n` artifacts spread evenly over the table.
pub async fn sample(
    store: &DynStore,
    storage: &ArtifactStorage,
    n: u64,
) -> Result<StorageSample, DbError> {
    let filter = ArtifactFilter::default();
    let total = store.count_artifacts(&filter).await?;
    let n = n.min(total);
    let mut out = StorageSample::default();
    for i in 0..n {
        let offset = i * total / n;
        for artifact in store.list_artifacts(&filter, 1, offset).await? {
            out.sampled += 1;
            if !storage.exists(&artifact.file).await.unwrap_or(false) {
                out.missing.push(artifact.file);
            }
        }
    }
    Ok(out)
}

/// Samples the storage and logs a warning when files are missing (or the check failed).
pub async fn warn_if_missing(store: &DynStore, storage: &ArtifactStorage) -> StorageSample {
    match sample(store, storage, SAMPLE).await {
        Ok(s) if !s.missing.is_empty() => {
            tracing::warn!(
                storage = %storage.backend().describe(),
                sampled = s.sampled,
                missing = s.missing.len(),
                example = %s.missing[0],
                "the artifact storage lacks files the database names: is the data directory \
                 the one this database was used with? Those files will not be served"
            );
            s
        }
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check the artifact storage against the database");
            StorageSample::default()
        }
    }
}
