//! [`UploadStore`]: chunked uploads (pulpcore's `Upload` and `UploadChunk` rows; the chunks'
//! bytes live in the artifact storage) and the one question content creation and
//! `overwrite=false` ask of a version being built. Implemented once in `sql/upload.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DbResult;
use crate::models::{Upload, UploadChunk};

/// Uploads, and repo-key conflicts of an incomplete version.
#[async_trait]
pub trait UploadStore: Send + Sync + 'static {
    /// Inserts an upload of `size` bytes (new uuid v7 id, created and updated now).
    async fn create_upload(&self, size: u64) -> DbResult<Upload>;
    /// [`super::DbError::NotFound`] when there is none.
    async fn get_upload(&self, id: Uuid) -> DbResult<Upload>;
    /// One page of uploads, oldest first, and how many there are.
    async fn list_uploads(&self, limit: u64, offset: u64) -> DbResult<(u64, Vec<Upload>)>;
    /// The chunks of an upload, by offset (then arrival).
    async fn upload_chunks(&self, upload_id: Uuid) -> DbResult<Vec<UploadChunk>>;
    /// Records chunk `chunk_id` (whose bytes are already in place) and renews the upload's
    /// `pulp_last_updated`. [`super::DbError::NotFound`] when the upload is gone.
    async fn add_upload_chunk(
        &self,
        upload_id: Uuid,
        chunk_id: Uuid,
        offset: u64,
        size: u64,
    ) -> DbResult<()>;
    /// Deletes an upload and its chunk rows (the caller removes the bytes).
    /// [`super::DbError::NotFound`] when there is none.
    async fn delete_upload(&self, id: Uuid) -> DbResult<()>;
    /// Deletes the uploads last updated before `cutoff` and returns their ids (orphan cleanup;
    /// the caller removes their bytes).
    async fn delete_uploads_before(&self, cutoff: DateTime<Utc>) -> DbResult<Vec<Uuid>>;
    /// Every id of an upload row (for the sweep of chunk directories no row names).
    async fn upload_ids(&self) -> DbResult<Vec<Uuid>>;

    /// `(pulp_type, repo_key)` of every unit the incomplete version `version_id` adds whose repo
    /// key a unit it keeps from before also has: what [`super::Store::finalize_version`] would
    /// replace, and what `overwrite=false` refuses. Sorted, at most `limit`.
    async fn repo_key_conflicts(
        &self,
        version_id: Uuid,
        limit: u64,
    ) -> DbResult<Vec<(String, String)>>;
}
