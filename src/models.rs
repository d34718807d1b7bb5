//! The data model shared by every layer: rows as plain Rust values.
//!
//! `db` reads and writes these, `stages` move them through the pipeline, `downloader` reads a
//! [`Remote`]'s options. Nothing here talks to a database or the network.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How a remote's artifacts are fetched during a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Download every artifact during the sync.
    #[default]
    Immediate,
    /// Record remote artifacts only; the content app fetches and saves on first request.
    OnDemand,
    /// Record remote artifacts only; the content app fetches on every request, never saves.
    Streamed,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Immediate => "immediate",
            Policy::OnDemand => "on_demand",
            Policy::Streamed => "streamed",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "immediate" => Ok(Policy::Immediate),
            "on_demand" => Ok(Policy::OnDemand),
            "streamed" => Ok(Policy::Streamed),
            other => Err(format!(
                "unknown policy {other:?} (expected immediate, on_demand or streamed)"
            )),
        }
    }
}

/// Digests other than sha256 that an artifact may carry (sha256 is always known once saved).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OtherDigests {
    pub sha224: Option<String>,
    pub sha384: Option<String>,
    pub sha512: Option<String>,
}

/// What we expect of a file before we have it: checked by the downloader while streaming.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub other: OtherDigests,
}

/// A saved artifact: a file in content-addressed storage plus its row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Artifact {
    pub id: Uuid,
    pub sha256: String,
    pub size: u64,
    pub other: OtherDigests,
    /// Path relative to the storage root: `artifact/<2 hex>/<62 hex>`.
    pub file: String,
    pub pulp_created: DateTime<Utc>,
}

/// An artifact about to be inserted (its file is already in place and durable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewArtifact {
    pub sha256: String,
    pub size: u64,
    pub other: OtherDigests,
    pub file: String,
}

/// A content unit not yet saved. The core knows it only by type, keys and opaque data; the
/// plugin that made it knows what the data means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnsavedContent {
    /// `<plugin>.<type>`, e.g. `file.file`.
    pub pulp_type: String,
    /// Unique per type: two units with the same natural key are the same unit.
    pub natural_key: String,
    /// Within one repository version at most one unit per (type, repo key): a new unit with the
    /// repo key of a present one replaces it.
    pub repo_key: String,
    /// The plugin's fields, stored as JSON.
    pub data: serde_json::Value,
}

/// A saved content unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Content {
    pub id: Uuid,
    pub pulp_type: String,
    pub natural_key: String,
    pub repo_key: String,
    pub data: serde_json::Value,
    pub pulp_created: DateTime<Utc>,
}

/// Links a content unit to an artifact (or to nothing yet, for on_demand / streamed) at a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContentArtifact {
    pub id: Uuid,
    pub content_id: Uuid,
    pub artifact_id: Option<Uuid>,
    pub relative_path: String,
}

/// A content unit to save, with the content artifacts it must have.
#[derive(Debug, Clone)]
pub struct ContentToSave {
    /// `Some` when the unit already exists (then only content artifacts are reconciled).
    pub existing_id: Option<Uuid>,
    pub content: UnsavedContent,
    /// `(relative_path, artifact id when we have the file)`.
    pub artifacts: Vec<(String, Option<Uuid>)>,
}

/// Where a content artifact can be fetched from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRemoteArtifact {
    pub content_id: Uuid,
    pub relative_path: String,
    pub remote_id: Uuid,
    pub url: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub other: OtherDigests,
}

/// A saved remote artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteArtifact {
    pub id: Uuid,
    pub content_artifact_id: Uuid,
    pub remote_id: Uuid,
    pub url: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
    pub other: OtherDigests,
}

/// A remote: where and how to fetch. Secrets are redacted from `Debug`.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Remote {
    pub id: Uuid,
    pub pulp_type: String,
    pub name: String,
    pub url: String,
    pub policy: Policy,
    pub download_concurrency: Option<u32>,
    pub max_retries: Option<u32>,
    pub username: Option<String>,
    #[serde(skip_serializing)]
    pub password: Option<String>,
    pub proxy_url: Option<String>,
    pub proxy_username: Option<String>,
    #[serde(skip_serializing)]
    pub proxy_password: Option<String>,
    /// PEM text added to the system roots.
    pub ca_cert: Option<String>,
    /// PEM text, with `client_key`, for mutual TLS.
    pub client_cert: Option<String>,
    #[serde(skip_serializing)]
    pub client_key: Option<String>,
    pub tls_validation: bool,
    /// Extra request headers, in order; a name may repeat.
    pub headers: Vec<(String, String)>,
    /// Seconds.
    pub connect_timeout: Option<f64>,
    /// Seconds without a byte from the server.
    pub sock_read_timeout: Option<f64>,
    /// Seconds for one attempt, headers and body.
    pub total_timeout: Option<f64>,
    /// Requests per second, across all downloads from this remote.
    pub rate_limit: Option<u32>,
    pub pulp_created: DateTime<Utc>,
    pub pulp_last_updated: DateTime<Utc>,
    /// Free-form labels (`pulp_labels` of the REST API).
    pub pulp_labels: BTreeMap<String, String>,
    /// Seconds to connect a socket (pulpcore's `sock_connect_timeout`).
    pub sock_connect_timeout: Option<f64>,
    /// The plugin's own remote fields (a JSON object), as the plugin declares them
    /// ([`crate::plugins::Plugin::remote_fields`]).
    pub plugin_data: serde_json::Value,
}

impl Remote {
    /// A remote with pulpcore's defaults for every option.
    pub fn new(pulp_type: &str, name: &str, url: &str, policy: Policy) -> Remote {
        let now = Utc::now();
        Remote {
            id: Uuid::now_v7(),
            pulp_type: pulp_type.to_string(),
            name: name.to_string(),
            url: url.to_string(),
            policy,
            download_concurrency: None,
            max_retries: None,
            username: None,
            password: None,
            proxy_url: None,
            proxy_username: None,
            proxy_password: None,
            ca_cert: None,
            client_cert: None,
            client_key: None,
            tls_validation: true,
            headers: Vec::new(),
            connect_timeout: None,
            sock_read_timeout: None,
            total_timeout: None,
            rate_limit: None,
            pulp_created: now,
            pulp_last_updated: now,
            pulp_labels: Default::default(),
            sock_connect_timeout: None,
            plugin_data: serde_json::json!({}),
        }
    }

    pub const DEFAULT_DOWNLOAD_CONCURRENCY: u32 = 10;
    pub const DEFAULT_MAX_RETRIES: u32 = 3;
}

fn redact(v: &Option<String>) -> &'static str {
    if v.is_some() {
        "<set>"
    } else {
        "<unset>"
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("id", &self.id)
            .field("pulp_type", &self.pulp_type)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("policy", &self.policy)
            .field("download_concurrency", &self.download_concurrency)
            .field("max_retries", &self.max_retries)
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .field("proxy_url", &self.proxy_url)
            .field("proxy_username", &self.proxy_username)
            .field("proxy_password", &redact(&self.proxy_password))
            .field("ca_cert", &self.ca_cert.is_some())
            .field("client_cert", &self.client_cert.is_some())
            .field("client_key", &redact(&self.client_key))
            .field("tls_validation", &self.tls_validation)
            .field("headers", &self.headers.len())
            .field("connect_timeout", &self.connect_timeout)
            .field("sock_read_timeout", &self.sock_read_timeout)
            .field("total_timeout", &self.total_timeout)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

/// A repository: a named, versioned set of content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Repository {
    pub id: Uuid,
    pub pulp_type: String,
    pub name: String,
    pub description: Option<String>,
    /// The number the next version will get.
    pub next_version: i64,
    /// The default remote for a sync.
    pub remote_id: Option<Uuid>,
    pub pulp_created: DateTime<Utc>,
    pub pulp_last_updated: DateTime<Utc>,
    /// Free-form labels (`pulp_labels` of the REST API).
    pub pulp_labels: BTreeMap<String, String>,
    /// How many versions to keep (`None`: all).
    pub retain_repo_versions: Option<u64>,
    /// The plugin's own repository fields (a JSON object).
    pub plugin_data: serde_json::Value,
}

/// Added / removed / present unit counts of one version.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct VersionCounts {
    pub added: u64,
    pub removed: u64,
    pub present: u64,
}

/// A repository version. Only `complete` versions are ever visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepositoryVersion {
    pub id: Uuid,
    pub repository_id: Uuid,
    pub number: i64,
    pub complete: bool,
    pub counts: VersionCounts,
    pub pulp_created: DateTime<Utc>,
}

// ---- tasking -----------------------------------------------------------------------------------

/// Where a task is in its life (pulpcore's `TASK_STATES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Dispatched, not yet picked up by a worker.
    Waiting,
    /// Never run (final).
    Skipped,
    /// Claimed by a worker, which runs it.
    Running,
    /// Ran to the end (final).
    Completed,
    /// Ran and failed, or its worker went missing (final).
    Failed,
    /// Canceled by a user or by worker shutdown (final).
    Canceled,
    /// Cancel requested while running; its worker will stop it and mark it `canceled`.
    Canceling,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Waiting => "waiting",
            TaskState::Skipped => "skipped",
            TaskState::Running => "running",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Canceled => "canceled",
            TaskState::Canceling => "canceling",
        }
    }

    /// Skipped, completed, failed and canceled never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Skipped | TaskState::Completed | TaskState::Failed | TaskState::Canceled
        )
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TaskState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "waiting" => Ok(TaskState::Waiting),
            "skipped" => Ok(TaskState::Skipped),
            "running" => Ok(TaskState::Running),
            "completed" => Ok(TaskState::Completed),
            "failed" => Ok(TaskState::Failed),
            "canceled" => Ok(TaskState::Canceled),
            "canceling" => Ok(TaskState::Canceling),
            other => Err(format!("unknown task state {other:?}")),
        }
    }
}

/// One progress report of a task, as pulpcore serializes it in `progress_reports`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressReport {
    pub message: String,
    /// Stable identifier, e.g. `sync.downloading.artifacts`; a task has one report per code.
    pub code: String,
    pub state: TaskState,
    pub total: Option<u64>,
    pub done: u64,
    pub suffix: Option<String>,
}

/// A task about to be dispatched.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// The registered name of the task function.
    pub name: String,
    pub args: serde_json::Value,
    pub logging_cid: String,
    /// Resources only this task may hold while it runs.
    pub exclusive_resources: Vec<String>,
    /// Resources this task shares with other shared holders.
    pub shared_resources: Vec<String>,
}

/// A task row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub id: Uuid,
    pub name: String,
    pub state: TaskState,
    pub args: serde_json::Value,
    pub logging_cid: String,
    pub pulp_created: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `{"description": ...}` when failed.
    pub error: Option<serde_json::Value>,
    pub progress_reports: Vec<ProgressReport>,
    pub created_resources: Vec<String>,
    pub exclusive_resources: Vec<String>,
    pub shared_resources: Vec<String>,
    /// The worker that claimed it.
    pub worker: Option<String>,
    pub pulp_last_updated: DateTime<Utc>,
    /// When it was found free to start (no earlier task holds its resources), if it was.
    pub unblocked_at: Option<DateTime<Utc>>,
}

/// One key of a list's `ordering`: a field name among those the list declares (a `'static`
/// name from the API's own list, never request text) and its direction. The store maps each to
/// a column of its own; a list orders by its keys first and its default order after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub field: &'static str,
    pub descending: bool,
}

/// Which tasks to list (newest first). Every condition given must hold; bounds are inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub state: Option<TaskState>,
    pub name: Option<String>,
    pub limit: Option<u64>,
    pub offset: u64,
    /// In any of these states (an empty list matches nothing).
    pub states: Option<Vec<TaskState>>,
    /// Name contains this (case-sensitive).
    pub name_contains: Option<String>,
    /// `logging_cid` contains this.
    pub logging_cid_contains: Option<String>,
    /// Claimed by the worker with this name.
    pub worker: Option<String>,
    /// Created this resource.
    pub created_resource: Option<String>,
    /// Holds any of these resources, exclusively or shared.
    pub reserved_resources: Option<Vec<String>>,
    /// Holds any of these resources exclusively.
    pub exclusive_resources: Option<Vec<String>>,
    /// Holds any of these resources shared.
    pub shared_resources: Option<Vec<String>>,
    pub started_after: Option<DateTime<Utc>>,
    pub started_before: Option<DateTime<Utc>>,
    pub finished_after: Option<DateTime<Utc>>,
    pub finished_before: Option<DateTime<Utc>>,
    /// Ordered by these first (then newest first).
    pub order: Vec<SortKey>,
}

/// A worker's liveness row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerStatus {
    pub name: String,
    pub last_heartbeat: DateTime<Utc>,
    pub started_at: DateTime<Utc>,
}

// ---- publications, distributions and what the store's lists take -------------------------

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
    /// The `pulp_type` of the publication, when there is one.
    pub publication_type: Option<String>,
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
    /// Distributions on any of these repositories (`None`: no filter).
    pub repository_ids: Option<Vec<Uuid>>,
    pub limit: u64,
    pub offset: u64,
    /// Ordered by these first (then by base path).
    pub order: Vec<SortKey>,
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
    /// Ordered by these first (then newest first).
    pub order: Vec<SortKey>,
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

/// A file of a publication: a metadata artifact, or a content artifact of the published version
/// at a path of the plugin's choosing (exactly one of the two).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFile {
    pub relative_path: String,
    pub artifact_id: Option<Uuid>,
    pub content_artifact_id: Option<Uuid>,
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

/// Which content units to list. Every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentQuery {
    /// Units of this `pulp_type` only.
    pub pulp_type: Option<String>,
    /// Units present in version `number` of repository `.0`.
    pub in_version: Option<(Uuid, i64)>,
    /// Units added by this version (id).
    pub added_in: Option<Uuid>,
    /// Units removed by this version (id).
    pub removed_in: Option<Uuid>,
    /// Units with one of these ids.
    pub ids: Option<Vec<Uuid>>,
    /// `(key, value)`: the unit's `data[key]`, as text, equals `value`.
    pub data_equals: Vec<(String, String)>,
    pub limit: u64,
    pub offset: u64,
    /// Ordered by these first (then oldest first).
    pub order: Vec<SortKey>,
}

/// Which artifacts to list: every digest given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArtifactFilter {
    pub sha256: Option<String>,
    pub sha224: Option<String>,
    pub sha384: Option<String>,
    pub sha512: Option<String>,
}

/// What an orphan cleanup removed. The rows are gone when this is returned; the caller removes
/// the files of `artifacts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrphanCleanup {
    pub content_removed: u64,
    /// `(id, sha256, file)` of every deleted artifact.
    pub artifacts: Vec<(Uuid, String, String)>,
}

/// A signing service: a script an administrator registered (`pulp-rs add-signing-service`),
/// called with the path of a file to sign; it prints JSON naming the signature files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SigningService {
    pub id: Uuid,
    /// What the script signs: `core.signing` for any file, `deb.apt-release` for an APT
    /// `Release` (inline and detached signatures)...
    pub pulp_type: String,
    pub name: String,
    /// Absolute path of the script.
    pub script: String,
    pub pubkey_fingerprint: String,
    /// ASCII-armored public key.
    pub public_key: String,
    pub pulp_created: DateTime<Utc>,
}

// ---- uploads -----------------------------------------------------------------------------------

/// A chunked upload in progress (pulpcore's `Upload`): the size it declared; its chunks are
/// [`UploadChunk`]s whose bytes sit in the artifact storage until the upload is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upload {
    pub id: Uuid,
    pub size: u64,
    pub pulp_created: DateTime<Utc>,
    /// Moves with every chunk received (orphan cleanup's clock).
    pub pulp_last_updated: DateTime<Utc>,
}

/// One chunk of an [`Upload`]: bytes `offset .. offset + size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UploadChunk {
    pub id: Uuid,
    pub offset: u64,
    pub size: u64,
}
