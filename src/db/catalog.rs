//! [`CatalogStore`]: what the REST API asks of remotes, repositories, versions, content and
//! artifacts beyond the sync pipeline's needs (lists with filters, updates, deletes, modify).
//! Implemented once in `sql/catalog.rs`.

use async_trait::async_trait;
use uuid::Uuid;

use super::DbResult;
use crate::models::{Content, ContentQuery, Remote, Repository, RepositoryVersion, VersionCounts};

/// Catalog queries of the REST API.
#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// Every remote (of `pulp_type` when given), by name.
    async fn list_remotes(&self, pulp_type: Option<&str>) -> DbResult<Vec<Remote>>;
    /// Deletes a remote; repositories using it as default lose it, its remote artifacts go.
    async fn delete_remote(&self, id: Uuid) -> DbResult<()>;

    /// Replaces name, description, remote, labels, retain_repo_versions and plugin data.
    async fn update_repository(&self, repository: &Repository) -> DbResult<Repository>;
    /// Deletes a repository with its versions and memberships (content stays, orphaned).
    async fn delete_repository(&self, id: Uuid) -> DbResult<()>;

    /// Matching units (by `pulp_created`, then id) and how many match in all.
    async fn list_content(&self, query: &ContentQuery) -> DbResult<(u64, Vec<Content>)>;

    /// Removes these units from the incomplete version (those present). Returns how many.
    async fn unassociate(&self, version_id: Uuid, content_ids: &[Uuid]) -> DbResult<u64>;

    /// Deletes a complete version as pulpcore does: its changes fold into the next complete
    /// version; when it is the latest, the memberships it added go and those it removed reopen.
    /// Deleting the only complete version is [`DbError::Conflict`].
    async fn delete_version(&self, version_id: Uuid) -> DbResult<()>;
    /// The counts of a version per content type, for plugins with several types:
    /// `(pulp_type, counts)` for every type with a non-zero count.
    async fn version_type_counts(
        &self,
        version: &RepositoryVersion,
    ) -> DbResult<Vec<(String, VersionCounts)>>;
}

/// The message of deleting the last version, as pulpcore words it.
pub const LAST_VERSION: &str = "Attempt to delete the last remaining version.";
