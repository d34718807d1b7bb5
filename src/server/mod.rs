//! Running the service: settings (TOML file, `PULP_*` environment, flags) and the parts of
//! `pulp-rs serve`: the REST API, the content app and N task workers, in one process or each
//! alone (`api`, `content`, `worker`). Every part talks to the others only through the
//! database and the artifact storage, so they can run on different machines.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, auth, AppState};
use crate::db::{self, DbError, DynStore};
use crate::downloader::{DownloadSettings, ImportPaths};
use crate::plugins;
use crate::secrets::{SecretBox, SecretError};
use crate::storage::{ArtifactStorage, BackendKind, S3Config, StorageError, StorageSettings};
use crate::sync::SyncContext;
use crate::tasking::{Tasking, WorkerConfig};
use crate::tasks::{self, TaskEnv};

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("invalid settings: {0}")]
    Settings(String),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Secrets(#[from] SecretError),
    #[error(
        "the secrets in this database are encrypted with key {recorded}, but the key file \
         {path} holds key {ours}: point db_encryption_key at the key file every process of \
         this deployment shares"
    )]
    KeyMismatch {
        recorded: String,
        ours: String,
        path: PathBuf,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// The server's settings. Later sources win: defaults, the TOML file, `PULP_*` environment
/// variables (`PULP_API_BIND`, `PULP_WORKERS`, `PULP_ADMIN_PASSWORD`...), command-line flags.
#[derive(Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Where the SQLite database and the artifacts live.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://...`; default: SQLite inside `data_dir`.
    pub database_url: Option<String>,
    pub api_bind: SocketAddr,
    pub content_bind: SocketAddr,
    /// Task workers started by `serve` (and by `worker`).
    pub workers: usize,
    /// How clients reach the content app, for distributions' `base_url`; default
    /// `http://<content_bind>`.
    pub content_origin: Option<String>,
    /// The admin password set on first start when no admin exists yet.
    pub admin_password: Option<String>,
    /// Seconds without a heartbeat after which a worker is presumed dead.
    pub worker_ttl: f64,
    /// Seconds a running task may go on after a shutdown signal before it is canceled (a
    /// second signal cancels at once).
    #[serde(default = "default_shutdown_grace")]
    pub shutdown_grace: f64,
    /// Whether `GET /metrics` (API and content app) needs credentials.
    pub metrics_auth: bool,
    /// Directories below which `file://` remote URLs may be read (pulpcore's
    /// `ALLOWED_IMPORT_PATHS`); empty (the default) refuses every `file://` remote.
    #[serde(default)]
    pub allowed_import_paths: Vec<PathBuf>,
    /// The largest metadata file (manifest, index) a sync downloads, in bytes.
    #[serde(default = "default_max_metadata_size")]
    pub max_metadata_size: u64,
    /// Seconds an API request may take to answer before it is a 503 (content downloads are
    /// not limited).
    #[serde(default = "default_api_request_timeout")]
    pub api_request_timeout: f64,
    /// Seconds within which the content app sees a change of a distribution, publication or
    /// repository version made by any process (its resolution cache's bound); 0 disables the
    /// cache.
    #[serde(default = "default_content_cache_ttl")]
    pub content_cache_ttl: f64,
    /// Where artifacts are stored: `filesystem` (under `data_dir/media`, the default) or `s3`
    /// (the `s3_*` settings). The tmp area stays under `data_dir/media/tmp` either way.
    #[serde(default)]
    pub storage_backend: BackendKind,
    /// The bucket (`s3` backend).
    #[serde(default)]
    pub s3_bucket: Option<String>,
    /// The S3 endpoint, e.g. `http://minio.internal:9000`; default: AWS's for the region.
    #[serde(default)]
    pub s3_endpoint_url: Option<String>,
    #[serde(default)]
    pub s3_region: Option<String>,
    /// Credentials; when unset, the usual `AWS_*` environment variables apply.
    #[serde(default)]
    pub s3_access_key_id: Option<String>,
    /// A secret: never logged, shown as `****` by `pulp-rs config`.
    #[serde(default)]
    pub s3_secret_access_key: Option<String>,
    /// Whether the content app answers with a 302 to a pre-signed S3 URL (pulpcore's
    /// `REDIRECT_TO_OBJECT_STORAGE`) instead of streaming the object itself.
    #[serde(default)]
    pub s3_redirect: bool,
    /// Seconds a pre-signed URL stays valid (pulpcore's `AWS_QUERYSTRING_EXPIRE`).
    #[serde(default = "default_s3_redirect_expiry")]
    pub s3_redirect_expiry: f64,
    /// The file holding the key that encrypts secrets in the database (pulpcore's
    /// `DB_ENCRYPTION_KEY`); see `crate::secrets` for the default.
    #[serde(default)]
    pub db_encryption_key: Option<PathBuf>,
}

fn default_s3_redirect_expiry() -> f64 {
    3600.0
}

fn default_content_cache_ttl() -> f64 {
    crate::content::cache::DEFAULT_TTL.as_secs_f64()
}

fn default_shutdown_grace() -> f64 {
    30.0
}

fn default_api_request_timeout() -> f64 {
    crate::api::shell::DEFAULT_API_TIMEOUT.as_secs_f64()
}

fn default_max_metadata_size() -> u64 {
    crate::downloader::DEFAULT_MAX_METADATA_SIZE
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("api_bind", &self.api_bind)
            .field("content_bind", &self.content_bind)
            .field("workers", &self.workers)
            .field("content_origin", &self.content_origin)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<set>"),
            )
            .field("worker_ttl", &self.worker_ttl)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("metrics_auth", &self.metrics_auth)
            .field("allowed_import_paths", &self.allowed_import_paths)
            .field("max_metadata_size", &self.max_metadata_size)
            .field("api_request_timeout", &self.api_request_timeout)
            .field("content_cache_ttl", &self.content_cache_ttl)
            .field("storage_backend", &self.storage_backend)
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_endpoint_url", &self.s3_endpoint_url)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &self.s3_access_key_id)
            .field(
                "s3_secret_access_key",
                &self.s3_secret_access_key.as_ref().map(|_| "****"),
            )
            .field("s3_redirect", &self.s3_redirect)
            .field("s3_redirect_expiry", &self.s3_redirect_expiry)
            .field("db_encryption_key", &self.db_encryption_key)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            data_dir: PathBuf::from("pulp-data"),
            database_url: None,
            api_bind: SocketAddr::from(([127, 0, 0, 1], 24817)),
            content_bind: SocketAddr::from(([127, 0, 0, 1], 24816)),
            workers: 2,
            content_origin: None,
            admin_password: None,
            worker_ttl: 30.0,
            shutdown_grace: default_shutdown_grace(),
            metrics_auth: false,
            allowed_import_paths: Vec::new(),
            max_metadata_size: default_max_metadata_size(),
            api_request_timeout: default_api_request_timeout(),
            content_cache_ttl: default_content_cache_ttl(),
            storage_backend: BackendKind::Filesystem,
            s3_bucket: None,
            s3_endpoint_url: None,
            s3_region: None,
            s3_access_key_id: None,
            s3_secret_access_key: None,
            s3_redirect: false,
            s3_redirect_expiry: default_s3_redirect_expiry(),
            db_encryption_key: None,
        }
    }
}

impl Settings {
    /// Defaults with `data_dir`, then `config` (if given), then `PULP_*` variables, then
    /// `overrides` (the flags that were given, as a partial TOML-like map).
    pub fn load(
        data_dir: PathBuf,
        config: Option<&std::path::Path>,
        overrides: serde_json::Value,
    ) -> Result<Settings, ServerError> {
        let mut fig = Figment::from(Serialized::defaults(Settings {
            data_dir,
            ..Settings::default()
        }));
        if let Some(path) = config {
            if !path.exists() {
                return Err(ServerError::Settings(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig
            .merge(Env::prefixed("PULP_").ignore(&["LOG", "CONFIG"]))
            .merge(Serialized::globals(overrides));
        fig.extract::<Settings>()
            .map_err(|e| ServerError::Settings(e.to_string()))
    }

    /// The process-wide download settings these settings make (temp files go to `tmp_dir`).
    pub fn download_settings(
        &self,
        tmp_dir: &std::path::Path,
    ) -> Result<DownloadSettings, ServerError> {
        let mut d = DownloadSettings::new(tmp_dir);
        d.import_paths =
            ImportPaths::new(&self.allowed_import_paths).map_err(ServerError::Settings)?;
        d.max_metadata_size = self.max_metadata_size;
        Ok(d)
    }

    /// The artifact storage these settings name.
    pub fn storage_settings(&self) -> Result<StorageSettings, ServerError> {
        let s3 = match self.storage_backend {
            BackendKind::Filesystem => None,
            BackendKind::S3 => Some(S3Config {
                bucket: self.s3_bucket.clone().unwrap_or_default(),
                endpoint_url: self.s3_endpoint_url.clone(),
                region: self.s3_region.clone(),
                access_key_id: self.s3_access_key_id.clone(),
                secret_access_key: self.s3_secret_access_key.clone(),
            }),
        };
        let redirect = if self.s3_redirect {
            Some(
                std::time::Duration::try_from_secs_f64(self.s3_redirect_expiry)
                    .map_err(|e| ServerError::Settings(format!("s3_redirect_expiry: {e}")))?,
            )
        } else {
            None
        };
        Ok(StorageSettings { s3, redirect })
    }

    /// The effective settings as TOML, secrets shown as `****` (`pulp-rs config`).
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        let hide = |s: &mut Option<String>| {
            if s.is_some() {
                *s = Some("****".into());
            }
        };
        hide(&mut shown.admin_password);
        hide(&mut shown.s3_secret_access_key);
        shown.database_url = shown.database_url.as_deref().map(redact_url);
        toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot print the settings: {e}\n"))
    }

    /// The database encryption key file, and whether it may be generated when missing: the
    /// `db_encryption_key` setting (never generated: a named file must exist), else
    /// `<data_dir>/db_encryption.key`, generated on first start. On PostgreSQL too: the
    /// database records the key's id, so a second machine without the shared key file refuses
    /// to start rather than write with a key of its own (see [`crate::secrets`]).
    pub fn db_encryption_key_file(&self) -> (PathBuf, bool) {
        match &self.db_encryption_key {
            Some(path) => (path.clone(), false),
            None => (self.data_dir.join("db_encryption.key"), true),
        }
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("pulp.db").display()),
        }
    }
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Which parts to run in this process.
#[derive(Debug, Clone, Copy)]
pub struct Parts {
    pub api: bool,
    pub content: bool,
    pub workers: usize,
}

/// Opens the database and the artifact storage named by `settings`.
pub async fn open(settings: &Settings) -> Result<(DynStore, ArtifactStorage), ServerError> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let storage = ArtifactStorage::open_with(
        settings.data_dir.join("media"),
        &settings.storage_settings()?,
    )?;
    let store = db::connect(&settings.database_url()).await?;
    attach_secrets(&store, settings).await?;
    Ok((store, storage))
}

/// Loads (or on first start generates) the database encryption key `settings` name, checks it
/// against the key id the database records (recording it when none is), and has `store` seal
/// and open secrets with it.
pub async fn attach_secrets(store: &DynStore, settings: &Settings) -> Result<(), ServerError> {
    let (path, generate) = settings.db_encryption_key_file();
    let secrets = SecretBox::load_or_generate(&path, generate)?;
    let ours = secrets.key_id().unwrap_or_default().to_string();
    let recorded = store.record_key_id(&ours).await?;
    if recorded != ours {
        return Err(ServerError::KeyMismatch {
            recorded,
            ours,
            path,
        });
    }
    store.set_secrets(secrets);
    Ok(())
}

/// Makes sure an `admin` user exists. On first start its password is `admin_password` when set,
/// else a random one, returned so the caller can print it once.
pub async fn ensure_admin(
    store: &DynStore,
    admin_password: Option<&str>,
) -> Result<Option<String>, ServerError> {
    if store.user_password_hash(auth::ADMIN).await?.is_some() {
        return Ok(None);
    }
    let (password, generated) = match admin_password {
        Some(p) if !p.is_empty() => (p.to_string(), false),
        _ => {
            use rand::Rng;
            let p: String = rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(24)
                .map(char::from)
                .collect();
            (p, true)
        }
    };
    auth::set_password(store, auth::ADMIN, &password).await?;
    Ok(generated.then_some(password))
}

/// A running server (any subset of its parts).
pub struct Server {
    pub api_addr: Option<SocketAddr>,
    pub content_addr: Option<SocketAddr>,
    /// The admin password generated on this first start, if any.
    pub generated_admin_password: Option<String>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    workers: Option<TaskTracker>,
    tasking: Tasking,
}

impl Server {
    /// Opens everything and starts the parts with the compiled-in plugins; returns once they
    /// listen.
    pub async fn start(settings: &Settings, parts: Parts) -> Result<Server, ServerError> {
        Server::start_with_plugins(settings, parts, plugins::registry()).await
    }

    /// [`Server::start`] with these plugins instead of the compiled-in ones (a plugin built
    /// outside the crate, a test's).
    pub async fn start_with_plugins(
        settings: &Settings,
        parts: Parts,
        plugins: Vec<Arc<dyn plugins::Plugin>>,
    ) -> Result<Server, ServerError> {
        let (store, storage) = open(settings).await?;
        let download = settings.download_settings(storage.tmp_dir())?;
        let generated_admin_password =
            ensure_admin(&store, settings.admin_password.as_deref()).await?;
        let env = TaskEnv {
            store: store.clone(),
            storage: storage.clone(),
            plugins: plugins.clone(),
            sync: SyncContext {
                download: download.clone(),
                ..SyncContext::new(store.clone(), storage.clone())
            },
        };
        let worker_config = WorkerConfig {
            ttl: std::time::Duration::from_secs_f64(settings.worker_ttl.max(1.0)),
            heartbeat_interval: std::time::Duration::from_secs_f64(
                (settings.worker_ttl / 3.0).max(0.3),
            ),
            shutdown_grace: std::time::Duration::try_from_secs_f64(settings.shutdown_grace)
                .map_err(|e| ServerError::Settings(format!("shutdown_grace: {e}")))?,
            ..WorkerConfig::default()
        };
        // What a crashed process left: incomplete versions, temp downloads no running task owns.
        match tasks::admin::recover(&store, &storage).await {
            Ok(r) if r != tasks::admin::Recovery::default() => {
                tracing::info!(
                    versions = r.versions,
                    publications = r.publications,
                    temp_entries = r.temp_entries,
                    "recovered what a crashed process left"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "startup recovery failed"),
        }
        let reap_hook: crate::tasking::ReapHook = {
            let (store, storage) = (store.clone(), storage.clone());
            Arc::new(move || {
                let (store, storage) = (store.clone(), storage.clone());
                Box::pin(async move {
                    if let Err(e) = tasks::admin::recover(&store, &storage).await {
                        tracing::warn!(error = %e, "recovery after a missing worker failed");
                    }
                })
            })
        };
        let tasking = Tasking::with_config(store.clone(), tasks::registry(&env), worker_config)
            .with_reap_hook(reap_hook);
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();

        // Bind first: with port 0 the origin must name the port actually bound.
        let api_listener = match parts.api {
            true => Some(bind(settings.api_bind).await?),
            false => None,
        };
        let content_listener = match parts.content {
            true => Some(bind(settings.content_bind).await?),
            false => None,
        };
        let content_origin = match (&settings.content_origin, &content_listener) {
            (Some(o), _) => o.trim_end_matches('/').to_string(),
            (None, Some(l)) => format!("http://{}", l.local_addr()?),
            (None, None) => format!("http://{}", settings.content_bind),
        };
        let state = AppState {
            store: store.clone(),
            storage: storage.clone(),
            tasking: tasking.clone(),
            plugins,
            auth: Arc::new(auth::Authenticator::default()),
            content_origin,
            content_path_prefix: crate::content::CONTENT_PREFIX.to_string(),
            metrics_auth: settings.metrics_auth,
            download,
            request_timeout: std::time::Duration::try_from_secs_f64(settings.api_request_timeout)
                .map_err(|e| {
                ServerError::Settings(format!("api_request_timeout: {e}"))
            })?,
        };

        let mut api_addr = None;
        if let Some(listener) = api_listener {
            let addr = listener.local_addr()?;
            api_addr = Some(addr);
            heartbeat(&tracker, &store, api::status::API_APP, addr, &shutdown).await;
            let app = api::router(state.clone());
            tracker.spawn(serve(listener, app, shutdown.clone()));
        }
        let mut content_addr = None;
        if let Some(listener) = content_listener {
            let addr = listener.local_addr()?;
            content_addr = Some(addr);
            crate::content::storage_check::warn_if_missing(&store, &storage).await;
            heartbeat(&tracker, &store, api::status::CONTENT_APP, addr, &shutdown).await;
            let content = crate::content::ContentSettings {
                cache_ttl: std::time::Duration::try_from_secs_f64(settings.content_cache_ttl)
                    .map_err(|e| ServerError::Settings(format!("content_cache_ttl: {e}")))?,
            };
            let app = crate::content::router_with(state.clone(), content);
            tracker.spawn(serve(listener, app, shutdown.clone()));
        }
        let workers = (parts.workers > 0).then(|| tasking.spawn_workers(parts.workers, &shutdown));
        tracker.close();
        Ok(Server {
            api_addr,
            content_addr,
            generated_admin_password,
            shutdown,
            tracker,
            workers,
            tasking,
        })
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// After the shutdown token fired: cancel running tasks now rather than after
    /// `shutdown_grace` (a second signal).
    pub fn stop_now_handle(&self) -> impl Fn() + Send + Sync + 'static {
        let tasking = self.tasking.clone();
        move || tasking.stop_now()
    }

    /// Runs until the shutdown token fires, then waits for the parts to stop (running tasks
    /// are cancelled and marked as such by their workers).
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        self.tracker.wait().await;
        if let Some(w) = self.workers {
            w.wait().await;
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.wait().await;
    }
}

/// Records the `app_type` process listening at `addr` in the database now, then every quarter
/// of its TTL until `shutdown`, when its row is deleted (`status/` lists the processes whose
/// heartbeat is recent). A failed heartbeat is logged; the next one may succeed.
async fn heartbeat(
    tracker: &TaskTracker,
    store: &DynStore,
    app_type: &'static str,
    addr: SocketAddr,
    shutdown: &CancellationToken,
) {
    let name = api::status::process_name(Some(addr));
    let ttl = api::status::app_ttl(app_type);
    let beat = move |store: DynStore, name: String| async move {
        if let Err(e) = store.app_heartbeat(app_type, &name, ttl).await {
            tracing::warn!(app_type, error = %e, "cannot record the heartbeat");
        }
    };
    beat(store.clone(), name.clone()).await;
    let (store, shutdown) = (store.clone(), shutdown.clone());
    tracker.spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(ttl / 4) => {}
            }
            beat(store.clone(), name.clone()).await;
        }
        if let Err(e) = store.remove_app(app_type, &name).await {
            tracing::warn!(app_type, error = %e, "cannot remove the heartbeat row");
        }
    });
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

async fn serve(listener: TcpListener, app: axum::Router, shutdown: CancellationToken) {
    use axum::serve::ListenerExt;
    // Without TCP_NODELAY a small response waits for the client's delayed ACK (~40 ms): the
    // content app served 4 KiB files at ~430 requests/s with 16 clients before this.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::error!(error = %e, "server stopped with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_paths_and_metadata_cap_are_read_from_the_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let import = dir.path().join("import");
        std::fs::create_dir_all(&import).expect("mkdir");
        let config = dir.path().join("pulp.toml");
        std::fs::write(
            &config,
            format!(
                "allowed_import_paths = [{:?}]\nmax_metadata_size = 4096\n",
                import.display().to_string()
            ),
        )
        .expect("config");
        let s = Settings::load(
            dir.path().to_path_buf(),
            Some(&config),
            serde_json::json!({}),
        )
        .expect("settings");
        assert_eq!(s.allowed_import_paths, vec![import.clone()]);
        let d = s.download_settings(dir.path()).expect("download settings");
        assert_eq!(d.max_metadata_size, 4096);
        assert_eq!(
            d.import_paths.dirs(),
            &[import.canonicalize().expect("canonical")]
        );
        let defaults = Settings::default();
        assert!(defaults.allowed_import_paths.is_empty());
        assert_eq!(
            defaults.max_metadata_size,
            crate::downloader::DEFAULT_MAX_METADATA_SIZE
        );
        let relative = Settings {
            allowed_import_paths: vec!["relative".into()],
            ..Settings::default()
        };
        assert!(relative.download_settings(dir.path()).is_err());
    }
}
