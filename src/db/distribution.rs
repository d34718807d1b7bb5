//! [`DistributionStore`]: publications, distributions, and the content app's lookups (which
//! distribution serves a path, which artifact a relative path is, linking an artifact fetched
//! on demand). Implemented once in `sql/distribution.rs`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DbResult;
use crate::models::Artifact;

/// A repository version as other objects point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRef {
    pub id: Uuid,
    pub repository_id: Uuid,
    pub number: i64,
}

/// A publication row with the version it publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    pub id: Uuid,
    pub pulp_type: String,
    pub version: VersionRef,
    /// Only complete publications are listed or served.
    pub complete: bool,
    /// Serve every content artifact of the version too, not only the published files.
    pub pass_through: bool,
    /// The plugin's own fields (file: `manifest`).
    pub plugin_data: serde_json::Value,
    pub pulp_created: DateTime<Utc>,
    pub pulp_last_updated: DateTime<Utc>,
}

/// What a distribution is: everything a create or update sets.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DistributionFields {
    pub pulp_type: String,
    pub name: String,
    pub base_path: String,
    pub repository_id: Option<Uuid>,
    pub repository_version_id: Option<Uuid>,
    pub publication_id: Option<Uuid>,
    pub hidden: bool,
    pub pulp_labels: BTreeMap<String, String>,
}

/// A distribution row.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub id: Uuid,
    pub pulp_type: String,
    pub name: String,
    pub base_path: String,
    pub repository_id: Option<Uuid>,
    pub repository_version: Option<VersionRef>,
    pub publication_id: Option<Uuid>,
    pub hidden: bool,
    pub pulp_labels: BTreeMap<String, String>,
    pub pulp_created: DateTime<Utc>,
    pub pulp_last_updated: DateTime<Utc>,
}

impl Distribution {
    /// The fields of this row, to edit for an update.
    pub fn fields(&self) -> DistributionFields {
        DistributionFields {
            pulp_type: self.pulp_type.clone(),
            name: self.name.clone(),
            base_path: self.base_path.clone(),
            repository_id: self.repository_id,
            repository_version_id: self.repository_version.map(|v| v.id),
            publication_id: self.publication_id,
            hidden: self.hidden,
            pulp_labels: self.pulp_labels.clone(),
        }
    }
}

/// Which distributions to list (by base path).
#[derive(Debug, Clone, Default)]
pub struct DistributionFilter {
    pub pulp_type: Option<String>,
    pub name: Option<String>,
    pub name_contains: Option<String>,
    pub name_icontains: Option<String>,
    /// Any of these names (no filter when empty).
    pub name_in: Vec<String>,
    pub base_path: Option<String>,
    pub base_path_contains: Option<String>,
    pub base_path_icontains: Option<String>,
    pub repository_id: Option<Uuid>,
    pub limit: u64,
    pub offset: u64,
}

/// Which complete publications to list (newest first).
#[derive(Debug, Clone, Default)]
pub struct PublicationFilter {
    pub pulp_type: Option<String>,
    pub version_id: Option<Uuid>,
    pub repository_id: Option<Uuid>,
    pub created_gte: Option<DateTime<Utc>>,
    pub created_lte: Option<DateTime<Utc>>,
    pub limit: u64,
    pub offset: u64,
}

/// A file a version or a publication serves at a relative path.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedFile {
    pub relative_path: String,
    /// The content artifact (none for a publication's metadata file).
    pub content_artifact_id: Option<Uuid>,
    /// The stored artifact, once downloaded.
    pub artifact: Option<Artifact>,
    /// Size and sha256 known from a remote artifact when not downloaded.
    pub remote_size: Option<u64>,
    pub remote_sha256: Option<String>,
    /// When the unit (or metadata artifact) was created: `Last-Modified` and listings.
    pub pulp_created: DateTime<Utc>,
}

impl ServedFile {
    pub fn size(&self) -> Option<u64> {
        self.artifact.as_ref().map(|a| a.size).or(self.remote_size)
    }

    pub fn sha256(&self) -> Option<&str> {
        self.artifact
            .as_ref()
            .map(|a| a.sha256.as_str())
            .or(self.remote_sha256.as_deref())
    }
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Publications, distributions and content app lookups.
#[async_trait]
pub trait DistributionStore: Send + Sync + 'static {
    // ---- publications ----------------------------------------------------------------------

    /// Inserts an incomplete publication of a complete version.
    async fn create_publication(
        &self,
        pulp_type: &str,
        version_id: Uuid,
        pass_through: bool,
        plugin_data: &serde_json::Value,
    ) -> DbResult<Publication>;
    /// Adds metadata files (artifacts at relative paths) to an incomplete publication.
    async fn add_published_artifacts(
        &self,
        publication_id: Uuid,
        files: &[(String, Uuid)],
    ) -> DbResult<()>;
    /// Marks a publication complete (visible).
    async fn complete_publication(&self, id: Uuid) -> DbResult<Publication>;
    /// Deletes a publication and its published files (distributions on it point at nothing).
    async fn delete_publication(&self, id: Uuid) -> DbResult<()>;
    /// A publication, complete or not.
    async fn get_publication(&self, id: Uuid) -> DbResult<Publication>;
    /// Complete publications matching the filter, newest first, and how many match in all.
    async fn list_publications(&self, f: &PublicationFilter) -> DbResult<(u64, Vec<Publication>)>;
    /// `(publication id, distribution id)` of distributions serving these publications.
    async fn publication_distributions(&self, ids: &[Uuid]) -> DbResult<Vec<(Uuid, Uuid)>>;
    /// The newest complete publication of the version, or of the repository (highest version
    /// number, then newest).
    async fn latest_publication(
        &self,
        repository_id: Option<Uuid>,
        version_id: Option<Uuid>,
    ) -> DbResult<Option<Publication>>;
    /// A complete or incomplete version by id.
    async fn version_ref(&self, version_id: Uuid) -> DbResult<VersionRef>;

    // ---- distributions ---------------------------------------------------------------------

    /// Inserts a distribution; a taken name or base path is [`super::DbError::Conflict`].
    async fn create_distribution(&self, d: &DistributionFields) -> DbResult<Distribution>;
    /// Replaces every field of a distribution.
    async fn update_distribution(&self, id: Uuid, d: &DistributionFields)
        -> DbResult<Distribution>;
    async fn delete_distribution(&self, id: Uuid) -> DbResult<()>;
    async fn get_distribution(&self, id: Uuid) -> DbResult<Distribution>;
    async fn get_distribution_by_name(&self, name: &str) -> DbResult<Option<Distribution>>;
    /// Distributions matching the filter, by base path, and how many match in all.
    async fn list_distributions(
        &self,
        f: &DistributionFilter,
    ) -> DbResult<(u64, Vec<Distribution>)>;
    /// A distribution other than `exclude` whose base path equals one of `prefixes` or starts
    /// with `base_path + "/"`.
    async fn overlapping_distribution(
        &self,
        base_path: &str,
        prefixes: &[String],
        exclude: Option<Uuid>,
    ) -> DbResult<Option<Distribution>>;

    // ---- content app -----------------------------------------------------------------------

    /// The distribution whose base path is the longest of `candidates`.
    async fn distribution_for_paths(&self, candidates: &[String])
        -> DbResult<Option<Distribution>>;
    /// Base paths of visible distributions starting with `prefix` (empty: all).
    async fn base_paths_under(&self, prefix: &str) -> DbResult<Vec<String>>;
    /// The file of the version at `relative_path`.
    async fn version_file(
        &self,
        version_id: Uuid,
        relative_path: &str,
    ) -> DbResult<Option<ServedFile>>;
    /// Files of the version whose path starts with `prefix` (all with an empty prefix), by path.
    async fn version_files(&self, version_id: Uuid, prefix: &str) -> DbResult<Vec<ServedFile>>;
    /// The metadata file published at `relative_path`.
    async fn published_file(
        &self,
        publication_id: Uuid,
        relative_path: &str,
    ) -> DbResult<Option<ServedFile>>;
    /// Metadata files of the publication whose path starts with `prefix`.
    async fn published_files(
        &self,
        publication_id: Uuid,
        prefix: &str,
    ) -> DbResult<Vec<ServedFile>>;
    /// Links an artifact fetched on demand to its content artifact (if still unlinked).
    async fn link_artifact(&self, content_artifact_id: Uuid, artifact_id: Uuid) -> DbResult<()>;
}
