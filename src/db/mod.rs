//! The database layer: one [`Store`] trait, one implementation, two backends.
//!
//! `sqlite::SqliteStore` is the embedded default (one WAL file under the data directory);
//! `pg::PgStore` is selected by a `postgres://` URL and lets several machines share one
//! database. Every store method is written once, in `sql/` (one SQL text per query, `$N`
//! placeholders, rows decoded by column name, ids / times / JSON through the newtypes of
//! `types`), and compiled once per backend; `sqlite.rs` and `pg.rs` hold only the connection,
//! the migrations list and the dialect hooks where the two really differ (listed in
//! `sql/mod.rs`). All SQL lives in `sql/` and those hooks; code above this module only sees the
//! trait, so it never knows which backend it runs on. Every hot-path method takes a batch: the
//! pipeline never sends one query per unit.
//!
//! The migrations stay per backend (`migrations/sqlite`, `migrations/postgres`: SQL types
//! differ) with the same tables, columns and indexes (`tests/schema_parity.rs`).
//!
//! Visibility rule: a repository version is visible (listed, `latest`) only once `complete`; the
//! pipeline writes memberships against an incomplete version and either
//! [`Store::finalize_version`]s it or [`Store::discard_version`]s it.
//!
//! Tasks and workers are behind [`TaskStore`], a supertrait of [`Store`], so a [`DynStore`]
//! serves both. The server's needs are three more supertraits, each in its own file:
//! [`CatalogStore`] (REST lists, updates, deletes, modify), [`DistributionStore`]
//! (publications, distributions, content app lookups), [`AdminStore`] (users, cleanup) and
//! [`UploadStore`] (chunked uploads). Resource reservations are derived from the incomplete tasks (`reservations`).

pub mod admin;
pub mod catalog;
pub mod distribution;
pub mod pg;
mod reservations;
mod shared;
pub mod sqlite;
pub(crate) mod types;
pub mod upload;
mod wakeups;

pub use admin::AdminStore;
pub use catalog::CatalogStore;
pub use distribution::DistributionStore;
pub use upload::UploadStore;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::models::{
    Artifact, Content, ContentArtifact, ContentToSave, NewArtifact, NewRemoteArtifact, NewTask,
    ProgressReport, Remote, RemoteArtifact, Repository, RepositoryVersion, Task, TaskFilter,
    TaskState, VersionCounts, WorkerStatus,
};

/// Errors of the database layer.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid database URL {0:?}: expected sqlite://PATH or postgres://...")]
    BadUrl(String),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type DbResult<T> = Result<T, DbError>;

/// A shared handle to whichever backend is configured.
pub type DynStore = Arc<dyn Store>;

/// Opens the database named by `url` (`sqlite://path/to/file.db` or `postgres://...`), creating
/// the SQLite file if missing, and runs the migrations.
pub async fn connect(url: &str) -> DbResult<DynStore> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        pg::connect(url).await
    } else if url.starts_with("sqlite:") {
        sqlite::connect(url).await
    } else {
        Err(DbError::BadUrl(url.to_string()))
    }
}

/// Everything the core asks of a database.
///
/// Batched methods take and return slices in any order unless stated; implementations sort
/// writes by a stable key (sha256, natural key) so concurrent syncs cannot deadlock, and
/// tolerate a concurrent insert of the same natural key (the existing row wins).
#[async_trait]
pub trait Store:
    TaskStore + CatalogStore + DistributionStore + AdminStore + UploadStore + Send + Sync + 'static
{
    /// `"sqlite"` or `"postgres"`, for logs and reports only; never branch on it.
    fn backend(&self) -> &'static str;

    // ---- remotes -------------------------------------------------------------------------

    /// Inserts a remote. A remote with the same name is [`DbError::Conflict`].
    async fn create_remote(&self, remote: &Remote) -> DbResult<Remote>;
    /// Replaces every option of the remote with this id (name included); bumps `pulp_last_updated`.
    async fn update_remote(&self, remote: &Remote) -> DbResult<Remote>;
    async fn get_remote(&self, id: Uuid) -> DbResult<Remote>;
    async fn get_remote_by_name(&self, name: &str) -> DbResult<Option<Remote>>;

    // ---- repositories and versions ---------------------------------------------------------

    /// Inserts a repository and its empty, complete version 0; `next_version` becomes 1.
    /// A repository with the same name is [`DbError::Conflict`].
    async fn create_repository(
        &self,
        pulp_type: &str,
        name: &str,
        remote_id: Option<Uuid>,
    ) -> DbResult<Repository>;
    async fn get_repository(&self, id: Uuid) -> DbResult<Repository>;
    async fn get_repository_by_name(&self, name: &str) -> DbResult<Option<Repository>>;
    /// All repositories, by name.
    async fn list_repositories(&self) -> DbResult<Vec<Repository>>;
    /// Sets the repository's default remote.
    async fn set_repository_remote(
        &self,
        repository_id: Uuid,
        remote_id: Option<Uuid>,
    ) -> DbResult<()>;

    /// Complete versions of a repository, by number ascending.
    async fn list_versions(&self, repository_id: Uuid) -> DbResult<Vec<RepositoryVersion>>;
    /// The complete version with this number, if any.
    async fn get_version(
        &self,
        repository_id: Uuid,
        number: i64,
    ) -> DbResult<Option<RepositoryVersion>>;
    /// The complete version with the highest number (version 0 at least).
    async fn latest_version(&self, repository_id: Uuid) -> DbResult<RepositoryVersion>;

    /// Starts a new, incomplete version numbered `next_version`. A leftover incomplete version
    /// of this repository (a crashed sync) is discarded first. Its content starts as the latest
    /// complete version's.
    async fn create_incomplete_version(&self, repository_id: Uuid) -> DbResult<RepositoryVersion>;

    /// Undoes an incomplete version: deletes memberships it added, reopens memberships it
    /// removed, deletes the version row. Idempotent. Never touches a complete version.
    async fn discard_version(&self, version_id: Uuid) -> DbResult<()>;

    /// Every incomplete version as `(version id, repository id)`, oldest first: those of running
    /// syncs, and those a crashed process left (startup recovery discards the latter).
    async fn incomplete_versions(&self) -> DbResult<Vec<(Uuid, Uuid)>>;

    /// Finishes an incomplete version in one transaction: for each (type, repo key) present
    /// more than once, the units added by this version replace the older ones (two units added
    /// by this version with the same repo key is [`DbError::Conflict`] naming the key); counts
    /// are computed; if nothing was added or removed the version is deleted and `None` returned
    /// (the latest version stays as it was); otherwise it is marked complete, the repository's
    /// `next_version` becomes `number + 1`, and the completed version is returned.
    async fn finalize_version(&self, version_id: Uuid) -> DbResult<Option<RepositoryVersion>>;

    /// Content of a complete version, by (pulp_type, natural_key), paginated.
    async fn version_content(
        &self,
        version_id: Uuid,
        limit: u64,
        offset: u64,
    ) -> DbResult<Vec<Content>>;

    // ---- pipeline, all batched ------------------------------------------------------------

    /// Artifacts whose sha256 is in `sha256s` (others are simply absent from the answer).
    async fn find_artifacts_by_sha256(&self, sha256s: &[String]) -> DbResult<Vec<Artifact>>;

    /// Inserts artifacts whose files are already in place. An artifact whose sha256 exists
    /// (inserted meanwhile by another sync) is not an error: the existing row is returned.
    /// Returns one artifact per distinct input sha256.
    async fn insert_artifacts(&self, artifacts: &[NewArtifact]) -> DbResult<Vec<Artifact>>;

    /// Saved content of this type with any of these natural keys.
    async fn find_content(
        &self,
        pulp_type: &str,
        natural_keys: &[String],
    ) -> DbResult<Vec<Content>>;

    /// Saves a batch of content in one transaction and returns the content ids in input order.
    /// New units are inserted (a concurrent insert of the same natural key is tolerated: the
    /// existing row is used) with their content artifacts. For units that exist, missing content
    /// artifacts are added and a content artifact whose artifact is null gets the artifact now
    /// known (an on_demand unit later synced immediate).
    async fn save_content(&self, batch: &[ContentToSave]) -> DbResult<Vec<Uuid>>;

    /// Records where each content artifact can be fetched from: one remote artifact per
    /// (content artifact, remote); an existing one gets the new URL, size and digests.
    async fn save_remote_artifacts(&self, batch: &[NewRemoteArtifact]) -> DbResult<()>;

    /// Content artifacts of these units (with their artifact when downloaded).
    async fn content_artifacts(
        &self,
        content_ids: &[Uuid],
    ) -> DbResult<Vec<(ContentArtifact, Option<Artifact>)>>;

    /// Remote artifacts of one content artifact.
    async fn remote_artifacts(&self, content_artifact_id: Uuid) -> DbResult<Vec<RemoteArtifact>>;

    /// Adds to the incomplete version every unit of `content_ids` not already present in it
    /// (present = in the previous complete version and not removed, or added by this version).
    /// Returns how many were added.
    async fn associate(&self, version_id: Uuid, content_ids: &[Uuid]) -> DbResult<u64>;

    /// Removes from the incomplete version every present unit whose id is not in `keep`
    /// (mirror sync). Returns how many were removed. Works in pages: memory is bounded by `keep`.
    async fn unassociate_except(&self, version_id: Uuid, keep: &HashSet<Uuid>) -> DbResult<u64>;

    /// Counts of a version as they stand (complete or not).
    async fn count_version(&self, version_id: Uuid) -> DbResult<VersionCounts>;
}

/// Tasks and workers (the tasking layer's state; nothing of it lives only in memory).
///
/// State changes are conditional updates: a task moves only from the state the method expects,
/// so a worker, a reaper and a canceling user never overwrite each other.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Inserts a `waiting` task (new uuid v7 id, `pulp_created` now).
    async fn insert_task(&self, task: &NewTask) -> DbResult<Task>;
    async fn get_task(&self, id: Uuid) -> DbResult<Task>;
    /// Tasks matching the filter, newest first.
    async fn list_tasks(&self, filter: &TaskFilter) -> DbResult<Vec<Task>>;
    /// How many tasks match the filter (its `limit` and `offset` ignored).
    async fn count_tasks(&self, filter: &TaskFilter) -> DbResult<u64>;
    /// Deletes a task in a final state; a waiting, running or canceling one is
    /// [`DbError::Conflict`].
    async fn delete_task(&self, id: Uuid) -> DbResult<()>;
    /// `(name, state, count)` of every task, for metrics.
    async fn task_counts(&self) -> DbResult<Vec<(String, String, i64)>>;

    /// Atomically claims the oldest waiting task whose resources are free (see the
    /// `reservations` module), sets it `running` with `started_at` and `worker`, and returns it.
    /// Claiming a task counts as a heartbeat of `worker`.
    async fn claim_next_task(&self, worker: &str) -> DbResult<Option<Task>>;

    /// Ends a `running` or `canceling` task claimed by `worker` in `state` (a final state) with
    /// `error`. A task that was moved to `canceling` meanwhile ends `canceled` rather than
    /// `completed`. [`DbError::Conflict`] when the task is not running or canceling for
    /// `worker` (e.g. it was reaped).
    async fn finish_task(
        &self,
        id: Uuid,
        worker: &str,
        state: TaskState,
        error: Option<serde_json::Value>,
    ) -> DbResult<Task>;

    /// Requests cancellation: a waiting task becomes `canceled` at once, a running one
    /// `canceling` (its worker stops it). A canceling or canceled task is returned as is;
    /// another final state is [`DbError::Conflict`].
    async fn request_cancel(&self, id: Uuid) -> DbResult<Task>;

    /// Replaces the task's progress reports.
    async fn set_progress(&self, id: Uuid, reports: &[ProgressReport]) -> DbResult<()>;
    /// Appends to the task's created resources.
    async fn add_created_resource(&self, id: Uuid, resource: &str) -> DbResult<()>;

    /// Records that these workers are alive now (inserting their rows when missing), in one
    /// statement on a connection of its own where the backend has several (PostgreSQL), so
    /// task work never delays it.
    async fn heartbeat(&self, workers: &[String]) -> DbResult<()>;
    /// Workers, by name.
    async fn list_workers(&self) -> DbResult<Vec<WorkerStatus>>;
    /// Deletes the rows of workers whose last heartbeat is older than `ttl`, then fails every
    /// running or canceling task whose worker has no row ("Worker has gone missing.") and
    /// returns those tasks.
    async fn reap_dead_workers(&self, ttl: Duration) -> DbResult<Vec<Task>>;
    /// Deletes the worker's row (clean shutdown).
    async fn remove_worker(&self, worker: &str) -> DbResult<()>;

    /// Rebuilds the queue from the tasks' own resource lists: the reservation rows of every
    /// incomplete task and which waiting tasks may start (startup recovery, and the upgrade from
    /// a version without them; the incremental bookkeeping keeps both right otherwise).
    /// Returns how many tasks it unblocked.
    async fn refresh_queue(&self) -> DbResult<u64>;

    /// Whether workers may rely on [`TaskStore::forward_wakeups`] and poll rarely (PostgreSQL
    /// `LISTEN`); when not (SQLite: best-effort datagrams between the processes of one machine,
    /// see `db::wakeups`), workers must poll often.
    fn hears_wakeups(&self) -> bool;

    /// Calls `wake` whenever any process may have made a task runnable (a dispatch, a release),
    /// until `stop` fires; reconnects by itself when its connection drops. Returns at once where
    /// the backend cannot listen (an in-memory SQLite database).
    async fn forward_wakeups(&self, wake: Arc<dyn Fn() + Send + Sync>, stop: CancellationToken);

    /// Records that the `app_type` process (`api` or `content`) called `name` is alive now
    /// (inserting its row when missing), and deletes the rows of `app_type` whose last
    /// heartbeat is older than `ttl` (processes gone without a clean stop). Workers heartbeat
    /// through [`TaskStore::heartbeat`].
    async fn app_heartbeat(&self, app_type: &str, name: &str, ttl: Duration) -> DbResult<()>;
    /// The `app_type` processes whose last heartbeat is within `ttl`, by name (what
    /// `status/` lists as online).
    async fn online_apps(&self, app_type: &str, ttl: Duration) -> DbResult<Vec<WorkerStatus>>;
    /// Deletes the row of an `app_type` process (clean shutdown).
    async fn remove_app(&self, app_type: &str, name: &str) -> DbResult<()>;
}

/// The error description of a task whose worker stopped heartbeating.
pub const WORKER_MISSING: &str = "Worker has gone missing.";

/// For benchmarks and tests: given a PostgreSQL URL, creates a new empty database named
/// `<prefix>_<uuid>` on the same server and returns its URL. SQLite URLs are returned unchanged.
pub async fn fresh_database(url: &str, prefix: &str) -> DbResult<String> {
    use sqlx::Connection;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Ok(url.to_string());
    }
    let mut parsed = url::Url::parse(url).map_err(|_| DbError::BadUrl(url.to_string()))?;
    let name = format!("{prefix}_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    parsed.set_path(&format!("/{name}"));
    Ok(parsed.to_string())
}

/// Drops a database [`fresh_database`] made (its URL), connecting through `admin_url`; other
/// sessions on it are ended. Only names [`fresh_database`] gives (`<prefix>_<hex>`) are
/// dropped; a SQLite URL is left alone.
pub async fn drop_fresh_database(admin_url: &str, fresh_url: &str) -> DbResult<()> {
    use sqlx::Connection;
    if !(fresh_url.starts_with("postgres://") || fresh_url.starts_with("postgresql://")) {
        return Ok(());
    }
    let parsed = url::Url::parse(fresh_url).map_err(|_| DbError::BadUrl(fresh_url.to_string()))?;
    let name = parsed.path().trim_start_matches('/');
    let ours = name.contains('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ours {
        return Err(DbError::BadUrl(fresh_url.to_string()));
    }
    let mut conn = sqlx::PgConnection::connect(admin_url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    conn.close().await?;
    Ok(())
}
