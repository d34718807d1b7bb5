//! [`DistributionStore`]: publications, distributions, and the content app's lookups (which
//! distribution serves a path, which artifact a relative path is, linking an artifact fetched
//! on demand). Implemented once in `sql/distribution.rs`.

use async_trait::async_trait;
use uuid::Uuid;

use super::DbResult;
use crate::models::{
    Artifact, Content, Distribution, DistributionFields, DistributionFilter, Publication,
    PublicationFilter, PublishedFile, ServedFile,
};

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
    /// Adds files to an incomplete publication: metadata artifacts, or content artifacts of
    /// its version at paths of the plugin's choosing.
    async fn add_published_files(
        &self,
        publication_id: Uuid,
        files: &[PublishedFile],
    ) -> DbResult<()>;
    /// Marks a publication complete (visible).
    async fn complete_publication(&self, id: Uuid) -> DbResult<Publication>;
    /// Deletes a publication and its published files (distributions on it point at nothing).
    async fn delete_publication(&self, id: Uuid) -> DbResult<()>;
    /// Every incomplete publication as `(publication id, repository id)`, oldest first: those
    /// of running publish tasks, and those a crashed process left.
    async fn incomplete_publications(&self) -> DbResult<Vec<(Uuid, Uuid)>>;
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
    /// Calls `visit` with each file of the version whose path starts with `prefix` (all with an
    /// empty prefix), by path, as the rows arrive: a listing of a large version holds one row
    /// at a time, not the version.
    async fn version_files(
        &self,
        version_id: Uuid,
        prefix: &str,
        visit: &mut (dyn FnMut(ServedFile) + Send),
    ) -> DbResult<()>;
    /// Up to `limit` units of `pulp_type` in the version with ids after `after`, by id, each with
    /// its files: a page of a publication's walk over a version.
    async fn version_units(
        &self,
        version_id: Uuid,
        pulp_type: &str,
        after: Option<Uuid>,
        limit: u64,
    ) -> DbResult<Vec<(Content, Vec<ServedFile>)>>;
    /// The metadata file published at `relative_path`.
    async fn published_file(
        &self,
        publication_id: Uuid,
        relative_path: &str,
    ) -> DbResult<Option<ServedFile>>;
    /// Calls `visit` with each file the publication itself places (metadata, and content at the
    /// plugin's paths) whose path starts with `prefix`, by path, as the rows arrive.
    async fn published_files(
        &self,
        publication_id: Uuid,
        prefix: &str,
        visit: &mut (dyn FnMut(ServedFile) + Send),
    ) -> DbResult<()>;
    /// Links an artifact fetched on demand to its content artifact (if still unlinked).
    async fn link_artifact(&self, content_artifact_id: Uuid, artifact_id: Uuid) -> DbResult<()>;
    /// The artifact linked to a content artifact, if any (read from the writer: a process
    /// waiting for another one's fetch must see its link as soon as it committed).
    async fn linked_artifact(&self, content_artifact_id: Uuid) -> DbResult<Option<Artifact>>;

    // ---- content app coherence and on-demand leases -----------------------------------------

    /// The content generation: bumped (by triggers, in the writer's transaction) by every
    /// write that can change what a content path resolves to (see the `content_cache`
    /// migration).
    async fn content_generation(&self) -> DbResult<i64>;
    /// Takes the fetch lease of a content artifact for `holder` until `ttl` from now, if nobody
    /// holds it or its holder let it expire. True when taken.
    async fn acquire_fetch_lease(
        &self,
        content_artifact_id: Uuid,
        holder: &str,
        ttl: std::time::Duration,
    ) -> DbResult<bool>;
    /// Extends `holder`'s lease to `ttl` from now; false when it no longer holds it.
    async fn renew_fetch_lease(
        &self,
        content_artifact_id: Uuid,
        holder: &str,
        ttl: std::time::Duration,
    ) -> DbResult<bool>;
    /// Frees `holder`'s lease (nothing when it does not hold it).
    async fn release_fetch_lease(&self, content_artifact_id: Uuid, holder: &str) -> DbResult<()>;
}
