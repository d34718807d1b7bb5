//! [`AdminStore`]: API users and housekeeping (artifacts as REST objects, orphan cleanup).
//! Implemented once in `sql/admin.rs`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DbResult;
use crate::models::{Artifact, ArtifactFilter, OrphanCleanup, SigningService};
use crate::secrets::SecretBox;

/// Users and housekeeping.
#[async_trait]
pub trait AdminStore: Send + Sync + 'static {
    /// The PHC password hash of `username`, if the user exists.
    async fn user_password_hash(&self, username: &str) -> DbResult<Option<String>>;
    /// Creates the user or replaces its password hash.
    async fn set_user_password_hash(&self, username: &str, hash: &str) -> DbResult<()>;

    /// Registers a signing service (a name already taken is [`super::DbError::Conflict`]).
    async fn create_signing_service(&self, s: &SigningService) -> DbResult<()>;
    /// Every signing service, by name.
    async fn list_signing_services(&self) -> DbResult<Vec<SigningService>>;
    /// The signing service `id` ([`super::DbError::NotFound`] when there is none).
    async fn get_signing_service(&self, id: Uuid) -> DbResult<SigningService>;

    /// Artifacts matching `filter`, oldest first.
    async fn list_artifacts(
        &self,
        filter: &ArtifactFilter,
        limit: u64,
        offset: u64,
    ) -> DbResult<Vec<Artifact>>;
    async fn count_artifacts(&self, filter: &ArtifactFilter) -> DbResult<u64>;
    async fn get_artifact(&self, id: Uuid) -> DbResult<Artifact>;
    /// Deletes an artifact no content and no publication refers to and returns it (the caller
    /// removes its file); one still referred to is [`super::DbError::Conflict`].
    async fn delete_artifact(&self, id: Uuid) -> DbResult<Artifact>;

    /// The ids among `ids` that are saved content units.
    async fn existing_content_ids(&self, ids: &[Uuid]) -> DbResult<Vec<Uuid>>;

    /// Deletes, in one transaction, orphan content (in no repository version, served by no
    /// published file) whose `timestamp_of_interest` is before `cutoff` (restricted to
    /// `content_ids` when given), then artifacts referred to by no content artifact and no
    /// published file, also older than `cutoff` (restricted to the artifacts of the deleted
    /// content when `content_ids` is given).
    async fn delete_orphans(
        &self,
        cutoff: DateTime<Utc>,
        content_ids: Option<&[Uuid]>,
    ) -> DbResult<OrphanCleanup>;

    // ---- secrets at rest (crate::secrets) ----------------------------------------------------

    /// Seals remote secrets with `secrets` from now on (and opens them with it).
    fn set_secrets(&self, secrets: SecretBox);
    /// The key secrets are sealed with now.
    fn secrets(&self) -> Arc<SecretBox>;
    /// Records `key_id` as the key of this database's secrets unless one is recorded; returns
    /// the recorded one (compare it with yours).
    async fn record_key_id(&self, key_id: &str) -> DbResult<String>;
    /// Re-encrypts, in one transaction, every remote secret and every secret in task arguments
    /// from the current key (plaintext values are taken as they are) to `new`, and records
    /// `new`'s id; then seals with `new`. Returns how many values were re-encrypted.
    async fn rotate_secrets(&self, new: &SecretBox) -> DbResult<u64>;
}
