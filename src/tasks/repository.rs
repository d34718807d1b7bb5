//! Task functions of the catalog: `sync`, `modify`, `repository_version_delete`, and the
//! asynchronous updates and deletes of remotes and repositories (pulpcore's `general_update` /
//! `general_delete`). Also the field rules of remotes and repositories, shared by the REST API
//! (validating at request time) and these tasks (applying at run time).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::TaskEnv;
use crate::api::body::Fields;
use crate::api::href;
use crate::db::catalog::ContentQuery;
use crate::db::DbError;
use crate::models::{Policy, ProgressReport, Remote, Repository, TaskState};
use crate::plugins::Plugin;
use crate::stages::PipelineReport;
use crate::sync::{self, SyncError};
use crate::tasking::{Registry, TaskCtx, TaskError};

/// Task names.
pub const SYNC: &str = "sync";
pub const MODIFY: &str = "modify";
pub const VERSION_DELETE: &str = "repository_version_delete";
pub const REMOTE_UPDATE: &str = "remote_update";
pub const REMOTE_DELETE: &str = "remote_delete";
pub const REPOSITORY_UPDATE: &str = "repository_update";
pub const REPOSITORY_DELETE: &str = "repository_delete";

/// Registers the catalog's task functions.
pub fn register(reg: &mut Registry, env: &TaskEnv) {
    let e = env.clone();
    reg.register(SYNC, move |ctx| run_sync(e.clone(), ctx));
    let e = env.clone();
    reg.register(MODIFY, move |ctx| run_modify(e.clone(), ctx));
    let e = env.clone();
    reg.register(VERSION_DELETE, move |ctx| {
        run_version_delete(e.clone(), ctx)
    });
    let e = env.clone();
    reg.register(REMOTE_UPDATE, move |ctx| run_remote_update(e.clone(), ctx));
    let e = env.clone();
    reg.register(REMOTE_DELETE, move |ctx| run_remote_delete(e.clone(), ctx));
    let e = env.clone();
    reg.register(REPOSITORY_UPDATE, move |ctx| {
        run_repository_update(e.clone(), ctx)
    });
    let e = env.clone();
    reg.register(REPOSITORY_DELETE, move |ctx| {
        run_repository_delete(e.clone(), ctx)
    });
}

// ---- arguments --------------------------------------------------------------------------------

fn arg_id(ctx: &TaskCtx, name: &str) -> Result<Uuid, TaskError> {
    ctx.args()
        .get(name)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| TaskError::failed(format!("task argument {name:?} missing")))
}

fn arg_ids(ctx: &TaskCtx, name: &str) -> Vec<Uuid> {
    ctx.args()
        .get(name)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .filter_map(|s| Uuid::parse_str(s).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn arg_patch(ctx: &TaskCtx) -> Map<String, Value> {
    ctx.args()
        .get("patch")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// The plugin whose repositories / remotes have this `pulp_type`.
pub fn plugin_for(plugins: &[Arc<dyn Plugin>], pulp_type: &str) -> Option<Arc<dyn Plugin>> {
    plugins
        .iter()
        .find(|p| p.repository_type() == pulp_type)
        .cloned()
}

fn plugin_of(env: &TaskEnv, pulp_type: &str) -> Result<Arc<dyn Plugin>, TaskError> {
    plugin_for(&env.plugins, pulp_type)
        .ok_or_else(|| TaskError::failed(format!("no plugin handles {pulp_type}")))
}

fn report(
    code: &str,
    message: &str,
    total: Option<u64>,
    done: u64,
    state: TaskState,
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

const METADATA: (&str, &str) = ("sync.downloading.metadata", "Downloading Metadata");
const DOWNLOADING: (&str, &str) = ("sync.downloading.artifacts", "Downloading Artifacts");
const ASSOCIATING: (&str, &str) = ("associating.content", "Associating Content");
const UNASSOCIATING: (&str, &str) = ("unassociating.content", "Un-Associating Content");

/// One report per pipeline stage (code `sync.stage.<Stage>`): items out so far as `done`, and in
/// `suffix` its current rate (over the last interval, or the whole run once finished) and how
/// its time split between busy, starved (waiting for input) and blocked (waiting downstream).
fn stage_reports(
    prev: Option<&PipelineReport>,
    now: &PipelineReport,
    dt: f64,
    state: TaskState,
) -> Vec<ProgressReport> {
    now.stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = prev.and_then(|p| p.stages.get(i));
            let (items, busy, starved, blocked, secs) = match p {
                Some(p) => (
                    s.items_out.saturating_sub(p.items_out),
                    (s.busy_secs - p.busy_secs).max(0.0),
                    (s.starved_secs - p.starved_secs).max(0.0),
                    (s.blocked_secs - p.blocked_secs).max(0.0),
                    dt,
                ),
                None => (
                    s.items_out,
                    s.busy_secs,
                    s.starved_secs,
                    s.blocked_secs,
                    s.wall_secs,
                ),
            };
            let total = (busy + starved + blocked).max(1e-9);
            let pct = |x: f64| (x / total * 100.0).round();
            ProgressReport {
                message: format!("Stage {}", s.name),
                code: format!("sync.stage.{}", s.name),
                state,
                total: None,
                done: s.items_out,
                suffix: Some(format!(
                    "{:.0} items/s, busy {}%, starved {}%, blocked {}%",
                    items as f64 / secs.max(1e-3),
                    pct(busy),
                    pct(starved),
                    pct(blocked)
                )),
            }
        })
        .collect()
}

/// Publishes a new version when the repository asks for it (pulp_file's `autopublish`), in the
/// same task, as pulpcore does.
async fn autopublish(
    ctx: &TaskCtx,
    env: &TaskEnv,
    plugin: &dyn Plugin,
    repository: &Repository,
    version_id: Uuid,
) -> Result<(), TaskError> {
    match plugin.autopublish(&repository.plugin_data) {
        Some(data) => super::publish::publish_version(ctx, env, plugin, version_id, &data).await,
        None => Ok(()),
    }
}

// ---- sync -------------------------------------------------------------------------------------

async fn run_sync(env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let store = ctx.store().clone();
    let repository = store.get_repository(arg_id(&ctx, "repository")?).await?;
    let remote = store.get_remote(arg_id(&ctx, "remote")?).await?;
    let mirror = ctx
        .args()
        .get("mirror")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let plugin = plugin_of(&env, &repository.pulp_type)?;
    let prepared = sync::prepare(&env.sync, plugin.as_ref(), &repository, &remote, mirror)
        .await
        .map_err(TaskError::failed)?;
    let metrics = prepared.metrics();
    let running = TaskState::Running;
    ctx.progress(report(METADATA.0, METADATA.1, None, 0, running))
        .await?;
    ctx.progress(report(DOWNLOADING.0, DOWNLOADING.1, None, 0, running))
        .await?;
    ctx.progress(report(ASSOCIATING.0, ASSOCIATING.1, None, 0, running))
        .await?;
    // Progress while the pipeline runs (the tasking layer throttles the writes).
    let ticker_ctx = ctx.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let stop_ticker = stop.clone();
    let ticker = tokio::spawn(async move {
        let mut prev = metrics.snapshot();
        let mut at = std::time::Instant::now();
        let mut metadata_done = false;
        loop {
            tokio::select! {
                _ = stop_ticker.cancelled() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let now = metrics.snapshot();
            let dt = at.elapsed().as_secs_f64();
            // The first stage emits units only once it has read the metadata.
            if !metadata_done && now.stages.first().is_some_and(|s| s.items_out > 0) {
                metadata_done = true;
                let _ = ticker_ctx
                    .progress(report(
                        METADATA.0,
                        METADATA.1,
                        Some(1),
                        1,
                        TaskState::Completed,
                    ))
                    .await;
            }
            for r in stage_reports(Some(&prev), &now, dt, running) {
                let _ = ticker_ctx.progress(r).await;
            }
            let downloaded = now
                .stage("ArtifactDownloader")
                .map(|s| s.artifacts)
                .unwrap_or(0);
            prev = now;
            at = std::time::Instant::now();
            let associated = metrics
                .stage("ContentAssociation")
                .map(|s| s.items_out())
                .unwrap_or(0);
            let _ = ticker_ctx
                .progress(report(
                    DOWNLOADING.0,
                    DOWNLOADING.1,
                    None,
                    downloaded,
                    running,
                ))
                .await;
            let _ = ticker_ctx
                .progress(report(
                    ASSOCIATING.0,
                    ASSOCIATING.1,
                    None,
                    associated,
                    running,
                ))
                .await;
        }
    });
    let result = prepared.run(ctx.cancel_token().clone()).await;
    stop.cancel();
    let _ = ticker.await;
    match result {
        Ok(outcome) => {
            let done = TaskState::Completed;
            ctx.progress(report(METADATA.0, METADATA.1, Some(1), 1, done))
                .await?;
            for r in stage_reports(None, &outcome.report, 0.0, done) {
                ctx.progress(r).await?;
            }
            let downloaded = outcome
                .report
                .stage("ArtifactDownloader")
                .map(|s| s.artifacts)
                .unwrap_or(0);
            ctx.progress(report(DOWNLOADING.0, DOWNLOADING.1, None, downloaded, done))
                .await?;
            ctx.progress(report(
                ASSOCIATING.0,
                ASSOCIATING.1,
                Some(outcome.counts.added),
                outcome.counts.added,
                done,
            ))
            .await?;
            if mirror {
                ctx.progress(report(
                    UNASSOCIATING.0,
                    UNASSOCIATING.1,
                    Some(outcome.counts.removed),
                    outcome.counts.removed,
                    done,
                ))
                .await?;
            }
            if let Some(v) = outcome.version {
                let names = plugin.api_names();
                ctx.created_resource(&href::version(&names, repository.id, v.number))
                    .await?;
                autopublish(&ctx, &env, plugin.as_ref(), &repository, v.id).await?;
                apply_retention(&store, repository.id).await?;
            }
            Ok(())
        }
        Err(SyncError::Cancelled) => Err(TaskError::Canceled),
        Err(e) => Err(TaskError::failed(e)),
    }
}

// ---- modify -----------------------------------------------------------------------------------

async fn run_modify(env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let store = ctx.store().clone();
    let repository = store.get_repository(arg_id(&ctx, "repository")?).await?;
    let plugin = plugin_of(&env, &repository.pulp_type)?;
    let add = arg_ids(&ctx, "add_content_units");
    let remove = arg_ids(&ctx, "remove_content_units");
    let remove_all = ctx
        .args()
        .get("remove_all")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let base = ctx.args().get("base_version").and_then(Value::as_i64);
    let version = store.create_incomplete_version(repository.id).await?;
    let work = async {
        let latest = store.latest_version(repository.id).await?;
        if let Some(base) = base.filter(|b| *b != latest.number) {
            let (_, units) = store
                .list_content(&ContentQuery {
                    in_version: Some((repository.id, base)),
                    limit: u64::MAX >> 1,
                    ..ContentQuery::default()
                })
                .await?;
            let ids: Vec<Uuid> = units.iter().map(|c| c.id).collect();
            let keep: HashSet<Uuid> = ids.iter().copied().collect();
            store.unassociate_except(version.id, &keep).await?;
            store.associate(version.id, &ids).await?;
        }
        if remove_all {
            store
                .unassociate_except(version.id, &HashSet::new())
                .await?;
        } else if !remove.is_empty() {
            store.unassociate(version.id, &remove).await?;
        }
        if !add.is_empty() {
            store.associate(version.id, &add).await?;
        }
        store.finalize_version(version.id).await
    };
    match work.await {
        Ok(Some(v)) => {
            let names = plugin.api_names();
            ctx.created_resource(&href::version(&names, repository.id, v.number))
                .await?;
            autopublish(&ctx, &env, plugin.as_ref(), &repository, v.id).await?;
            apply_retention(&store, repository.id).await
        }
        Ok(None) => Ok(()),
        Err(e) => {
            let _ = store.discard_version(version.id).await;
            Err(TaskError::failed(e))
        }
    }
}

/// Deletes the oldest complete versions beyond the repository's `retain_repo_versions`.
/// (pulpcore also keeps versions a distribution serves; distributions are not considered here.)
async fn apply_retention(
    store: &crate::db::DynStore,
    repository_id: Uuid,
) -> Result<(), TaskError> {
    let repo = store.get_repository(repository_id).await?;
    let Some(keep) = repo.retain_repo_versions else {
        return Ok(());
    };
    let versions = store.list_versions(repository_id).await?;
    let excess = versions
        .len()
        .saturating_sub(usize::try_from(keep).unwrap_or(usize::MAX));
    for v in versions.iter().take(excess) {
        store.delete_version(v.id).await?;
    }
    Ok(())
}

// ---- deletes and updates ----------------------------------------------------------------------

async fn run_version_delete(_env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let store = ctx.store().clone();
    let repository = arg_id(&ctx, "repository")?;
    let number = ctx
        .args()
        .get("number")
        .and_then(Value::as_i64)
        .ok_or_else(|| TaskError::failed("task argument \"number\" missing"))?;
    let version = store
        .get_version(repository, number)
        .await?
        .ok_or_else(|| TaskError::failed(format!("repository version {number} not found")))?;
    match store.delete_version(version.id).await {
        Ok(()) => Ok(()),
        Err(DbError::Conflict(m)) => Err(TaskError::failed(m)),
        Err(e) => Err(e.into()),
    }
}

async fn run_remote_delete(_env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    ctx.store().delete_remote(arg_id(&ctx, "remote")?).await?;
    Ok(())
}

async fn run_repository_delete(_env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    ctx.store()
        .delete_repository(arg_id(&ctx, "repository")?)
        .await?;
    Ok(())
}

async fn run_remote_update(_env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let store = ctx.store().clone();
    let current = store.get_remote(arg_id(&ctx, "remote")?).await?;
    let partial = ctx
        .args()
        .get("partial")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let updated = apply_remote(&current, arg_patch(&ctx), partial)
        .map_err(|e| TaskError::failed(format!("{e:?}")))?;
    store.update_remote(&updated).await.map_err(db_failure)?;
    Ok(())
}

async fn run_repository_update(env: TaskEnv, ctx: TaskCtx) -> Result<(), TaskError> {
    let store = ctx.store().clone();
    let current = store.get_repository(arg_id(&ctx, "repository")?).await?;
    let plugin = plugin_of(&env, &current.pulp_type)?;
    let partial = ctx
        .args()
        .get("partial")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let updated = apply_repository(plugin.as_ref(), &current, arg_patch(&ctx), partial)
        .map_err(|e| TaskError::failed(format!("{e:?}")))?;
    store
        .update_repository(&updated)
        .await
        .map_err(db_failure)?;
    Ok(())
}

fn db_failure(e: DbError) -> TaskError {
    match e {
        DbError::Conflict(m) => TaskError::failed(m),
        other => other.into(),
    }
}

// ---- field rules ------------------------------------------------------------------------------

/// Errors of a body, by field (the REST API answers them as a 400).
pub type FieldErrors = crate::api::ApiError;

/// Absent: `None`; null: `Some(None)`; a string: `Some(Some(s))`.
fn nullable_string(f: &mut Fields, name: &str) -> Option<Option<String>> {
    if !f.has(name) {
        return None;
    }
    if f.is_null(name) {
        f.value(name);
        return Some(None);
    }
    f.string(name, false).map(Some)
}

fn nullable_uint(f: &mut Fields, name: &str, min: u64) -> Option<Option<u64>> {
    if !f.has(name) {
        return None;
    }
    if f.is_null(name) {
        f.value(name);
        return Some(None);
    }
    let v = f.uint(name)?;
    if v < min {
        f.error(
            name,
            format!("Ensure this value is greater than or equal to {min}."),
        );
        return None;
    }
    Some(Some(v))
}

fn nullable_u32(f: &mut Fields, name: &str, min: u64) -> Option<Option<u32>> {
    match nullable_uint(f, name, min)? {
        None => Some(None),
        Some(v) => match u32::try_from(v) {
            Ok(v) => Some(Some(v)),
            Err(_) => {
                f.error(
                    name,
                    "Ensure this value is less than or equal to 4294967295.",
                );
                None
            }
        },
    }
}

fn nullable_seconds(f: &mut Fields, name: &str) -> Option<Option<f64>> {
    if !f.has(name) {
        return None;
    }
    if f.is_null(name) {
        f.value(name);
        return Some(None);
    }
    let v = f.number(name)?;
    if v < 0.0 {
        f.error(name, "Ensure this value is greater than or equal to 0.0.");
        return None;
    }
    Some(Some(v))
}

/// The names of a remote's write-only fields, in pulpcore's `hidden_fields` order.
pub const HIDDEN_FIELDS: &[&str] = &[
    "client_key",
    "proxy_username",
    "proxy_password",
    "username",
    "password",
];

/// Which URL of a remote [`check_remote_url`] checks.
struct UrlField {
    /// What the messages call it.
    label: &'static str,
    schemes: &'static [&'static str],
    /// The fields that hold its credentials.
    username: &'static str,
    password: &'static str,
}

const REMOTE_URL: UrlField = UrlField {
    label: "URL",
    schemes: &["http", "https", "file"],
    username: "username",
    password: "password",
};

const PROXY_URL: UrlField = UrlField {
    label: "proxy URL",
    schemes: &["http", "https"],
    username: "proxy_username",
    password: "proxy_password",
};

/// Checks a remote's `url` or `proxy_url`: it parses, its scheme is one `field` allows, and
/// it carries no credentials (a username alone included): those belong in the write-only
/// fields, which are never shown, while the URL is. No message repeats any part of the URL.
fn check_remote_url(value: &str, field: UrlField) -> Result<(), String> {
    let Ok(url) = url::Url::parse(value) else {
        return Err("Enter a valid URL.".to_string());
    };
    if !field.schemes.contains(&url.scheme()) {
        return Err(format!(
            "The {} scheme must be one of: {}.",
            field.label,
            field.schemes.join(", ")
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "The {} must not contain credentials: set them in the '{}' and '{}' fields.",
            field.label, field.username, field.password
        ));
    }
    Ok(())
}

/// Checks one of a remote's `headers`: a valid HTTP header name, and a value without CR, LF,
/// NUL or other control characters (a tab is allowed), so a header cannot smuggle another
/// into the request. The message names the header, never its value (often a token).
fn check_header(name: &str, value: &str) -> Result<(), String> {
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(
            "Header names must be valid HTTP header names (letters, digits and !#$%&'*+-.^_`|~)."
                .to_string(),
        );
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "The value of header '{name}' must not contain control characters (CR, LF, NUL...)."
        ));
    }
    Ok(())
}

/// `current` with the fields of `body` applied. `partial` (PATCH) keeps what the body does not
/// name; otherwise (POST, PUT) `name` and `url` are required and the rest get their defaults.
pub fn apply_remote(
    current: &Remote,
    body: Map<String, Value>,
    partial: bool,
) -> Result<Remote, FieldErrors> {
    let mut r = if partial {
        current.clone()
    } else {
        let mut fresh = Remote::new(&current.pulp_type, "", "", Policy::Immediate);
        fresh.id = current.id;
        fresh.pulp_created = current.pulp_created;
        fresh
    };
    let mut f = Fields::new(body);
    if let Some(name) = f.string("name", !partial) {
        if name.is_empty() {
            f.error("name", "This field may not be blank.");
        }
        r.name = name;
    } else if partial && f.is_null("name") {
        f.value("name");
        f.error("name", "This field may not be null.");
    }
    if let Some(url) = f.string("url", !partial) {
        if url.is_empty() {
            f.error("url", "This field may not be blank.");
        } else if let Err(e) = check_remote_url(&url, REMOTE_URL) {
            f.error("url", e);
        }
        r.url = url;
    } else if partial && f.is_null("url") {
        f.value("url");
        f.error("url", "This field may not be null.");
    }
    macro_rules! opt_str {
        ($field:ident) => {
            if let Some(v) = nullable_string(&mut f, stringify!($field)) {
                r.$field = v;
            }
        };
    }
    opt_str!(ca_cert);
    opt_str!(client_cert);
    opt_str!(client_key);
    if let Some(v) = nullable_string(&mut f, "proxy_url") {
        // An empty proxy URL is no proxy (the downloader reads it so).
        if let Some(proxy) = v.as_deref().filter(|p| !p.is_empty()) {
            if let Err(e) = check_remote_url(proxy, PROXY_URL) {
                f.error("proxy_url", e);
            }
        }
        r.proxy_url = v;
    }
    opt_str!(proxy_username);
    opt_str!(proxy_password);
    opt_str!(username);
    opt_str!(password);
    if let Some(b) = f.boolean("tls_validation") {
        r.tls_validation = b;
    }
    if let Some(l) = f.string_map("pulp_labels") {
        r.pulp_labels = l;
    }
    if let Some(v) = nullable_u32(&mut f, "download_concurrency", 1) {
        r.download_concurrency = v;
    }
    if let Some(v) = nullable_u32(&mut f, "max_retries", 0) {
        r.max_retries = v;
    }
    if let Some(v) = nullable_u32(&mut f, "rate_limit", 0) {
        r.rate_limit = v;
    }
    if let Some(p) = f.string("policy", false) {
        match p.parse::<Policy>() {
            Ok(p) => r.policy = p,
            Err(_) => f.error("policy", format!("\"{p}\" is not a valid choice.")),
        }
    }
    macro_rules! secs {
        ($field:ident) => {
            if let Some(v) = nullable_seconds(&mut f, stringify!($field)) {
                r.$field = v;
            }
        };
    }
    secs!(total_timeout);
    secs!(connect_timeout);
    secs!(sock_connect_timeout);
    secs!(sock_read_timeout);
    if f.has("headers") {
        match f.value("headers") {
            Some(Value::Null) => r.headers = Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                let mut ok = true;
                for item in items {
                    match item {
                        Value::Object(m) => {
                            for (k, v) in m {
                                match v {
                                    Value::String(s) => out.push((k, s)),
                                    _ => ok = false,
                                }
                            }
                        }
                        _ => ok = false,
                    }
                }
                if !ok {
                    f.error(
                        "headers",
                        "Expected a list of {\"name\": \"value\"} objects.",
                    );
                } else {
                    let errors: Vec<String> = out
                        .iter()
                        .filter_map(|(name, value)| check_header(name, value).err())
                        .collect();
                    if errors.is_empty() {
                        r.headers = out;
                    }
                    for e in errors {
                        f.error("headers", e);
                    }
                }
            }
            Some(_) => f.error("headers", "Expected a list of items."),
            None => {}
        }
    }
    f.finish()?;
    Ok(r)
}

/// A remote href of `plugin`'s kind, as an id.
pub fn parse_remote_href(plugin: &dyn Plugin, value: &str) -> Option<Uuid> {
    let names = plugin.api_names();
    let p = href::parse(value)?;
    (p.collection == ["remotes", names.app_label, names.kind] && p.rest.is_empty()).then_some(p.id)
}

/// `current` with the fields of `body` applied (see [`apply_remote`]); `remote` is checked to
/// be an href of the plugin's remotes, not that it exists.
pub fn apply_repository(
    plugin: &dyn Plugin,
    current: &Repository,
    body: Map<String, Value>,
    partial: bool,
) -> Result<Repository, FieldErrors> {
    let mut r = current.clone();
    let mut f = Fields::new(body);
    if !partial {
        r.description = None;
        r.remote_id = None;
        r.pulp_labels = Default::default();
        r.retain_repo_versions = None;
        r.plugin_data = json!({});
    }
    if let Some(name) = f.string("name", !partial) {
        r.name = name;
    } else if partial && f.is_null("name") {
        f.value("name");
        f.error("name", "This field may not be null.");
    }
    if let Some(d) = nullable_string(&mut f, "description") {
        r.description = d;
    }
    if let Some(v) = nullable_uint(&mut f, "retain_repo_versions", 1) {
        r.retain_repo_versions = v;
    }
    if let Some(l) = f.string_map("pulp_labels") {
        r.pulp_labels = l;
    }
    if let Some(remote) = nullable_string(&mut f, "remote") {
        match remote {
            None => r.remote_id = None,
            Some(h) => match parse_remote_href(plugin, &h) {
                Some(id) => r.remote_id = Some(id),
                None => f.error("remote", "Invalid hyperlink - Object does not exist."),
            },
        }
    }
    let mut data = match &r.plugin_data {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for field in plugin.repository_fields() {
        let name = field.name;
        if !data.contains_key(name) {
            data.insert(name.to_string(), field.default.clone());
        }
        if !f.has(name) {
            continue;
        }
        let v = f.value(name).unwrap_or(Value::Null);
        let nullable = field.schema["nullable"].as_bool().unwrap_or(false);
        let ok = match (&v, field.schema["type"].as_str()) {
            (Value::Null, _) => nullable,
            (Value::String(_), Some("string")) => true,
            (Value::Bool(_), Some("boolean")) => true,
            (Value::Number(n), Some("integer")) => n.as_i64().is_some(),
            _ => false,
        };
        if ok {
            data.insert(name.to_string(), v);
        } else {
            let msg = match field.schema["type"].as_str() {
                _ if v.is_null() => "This field may not be null.",
                Some("boolean") => "Must be a valid boolean.",
                Some("integer") => "A valid integer is required.",
                _ => "Not a valid string.",
            };
            f.error(name, msg);
        }
    }
    r.plugin_data = Value::Object(data);
    f.finish()?;
    Ok(r)
}
