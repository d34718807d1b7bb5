//! The `pulp-rs` command line: `sync`, `repo list|show|delete`, `orphan cleanup`, `bench`, and
//! the service: `serve`, `api`, `content`, `worker`, `reset-admin-password`.
//!
//! Everything runs in-process on the embedded SQLite database under the data directory (default
//! `$PULP_DATA_DIR`, else `~/.local/share/pulp-rs`), or on PostgreSQL with `--database-url
//! postgres://...`. No server is needed. This is the only place that uses anyhow.
//!
//! Behaviour every command shares lives here: each command's help lists only its own flags
//! ([`Location`] is flattened into the commands that open a data directory), stdout goes
//! through [`out`] (quiet in a closed pipe), a failure prints its causes once ([`errors`]),
//! log colours appear only on a terminal, and an interrupted command exits 130.

mod bench;
mod chart;
mod errors;
mod local_task;
mod orphan;
pub(crate) mod out;
mod progress;
mod repo;
mod serve;
mod sync_cmd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use pulp_rs::db::{self, DynStore};
use pulp_rs::storage::ArtifactStorage;

#[derive(Parser, Debug)]
#[command(
    name = "pulp-rs",
    version,
    about = "Mirror repositories into numbered versions you own"
)]
struct Cli {
    /// Accepted before the command too (as earlier versions had it), hidden from the help:
    /// overrides the command's own `--data-dir`.
    #[arg(long, hide = true)]
    data_dir: Option<PathBuf>,
    /// As `--data-dir`: the command's `--database-url`, given before the command.
    #[arg(long, hide = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

impl Command {
    /// The data directory and database flags of this command, if it has them.
    fn location_mut(&mut self) -> Option<&mut Location> {
        match self {
            Command::Sync(a) => Some(&mut a.at),
            Command::Repo(c) => Some(c.location_mut()),
            Command::Orphan(c) => Some(c.location_mut()),
            Command::Bench(_) => None,
            Command::Serve(a) | Command::Api(a) | Command::Content(a) | Command::Worker(a) => {
                Some(a.location_mut())
            }
            Command::ResetAdminPassword(a) => Some(a.location_mut()),
            Command::AddSigningService(a) => Some(a.location_mut()),
            Command::Config(a) => Some(a.location_mut()),
            Command::RotateDbKey(a) => Some(a.location_mut()),
        }
    }

    /// Applies `--data-dir` / `--database-url` given before the command.
    fn take_leading(&mut self, data_dir: Option<PathBuf>, database_url: Option<String>) {
        if let Command::Bench(b) = self {
            if database_url.is_some() {
                b.database_url = database_url;
            }
            return;
        }
        if let Some(at) = self.location_mut() {
            if data_dir.is_some() {
                at.data_dir = data_dir;
            }
            if database_url.is_some() {
                at.database_url = database_url;
            }
        }
    }
}

/// Where a command's database and artifacts are: the flags of every command that opens a data
/// directory (and only of those).
#[derive(Args, Debug, Clone, Default)]
pub struct Location {
    /// Where the database (SQLite) and the artifacts live [default: ~/.local/share/pulp-rs].
    #[arg(long, env = "PULP_DATA_DIR", hide_env_values = true)]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://...`; default: SQLite inside the data directory.
    #[arg(long, env = "PULP_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl Location {
    /// The data directory: `--data-dir`, `PULP_DATA_DIR`, else [`default_data_dir`].
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }

    /// Opens the database and the artifact storage (see [`open`]).
    pub async fn open(&self) -> anyhow::Result<(DynStore, ArtifactStorage)> {
        open(&self.data_dir(), self.database_url.as_deref()).await
    }
}

/// Set when the user interrupted the command (Ctrl-C): it then exits 130, as a shell expects.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Records that the user interrupted the command.
pub fn interrupted() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Sync a repository from a manifest URL into a new repository version.
    Sync(sync_cmd::SyncArgs),
    /// Inspect and delete repositories.
    #[command(subcommand)]
    Repo(repo::RepoCommand),
    /// Remove content and artifacts no repository version uses.
    #[command(subcommand)]
    Orphan(orphan::OrphanCommand),
    /// Benchmark a sync from a URL or from a local fixture.
    Bench(bench::BenchArgs),
    /// Run the REST API, the content app and task workers in one process.
    Serve(serve::ServerArgs),
    /// Run the REST API alone.
    Api(serve::ServerArgs),
    /// Run the content app alone.
    Content(serve::ServerArgs),
    /// Run task workers alone.
    Worker(serve::ServerArgs),
    /// Set the password of the `admin` API user.
    ResetAdminPassword(serve::ResetAdminArgs),
    /// Register a signing service (a script that signs files, e.g. APT Release files).
    AddSigningService(serve::AddSigningServiceArgs),
    /// Print the effective settings (defaults, config file, PULP_* variables, flags) as TOML,
    /// secrets shown as ****.
    Config(serve::ServerArgs),
    /// Re-encrypt every secret in the database (remote passwords, proxy passwords, client keys,
    /// and those in task arguments) with a new key, in one transaction. Stop the services
    /// first; afterwards set db_encryption_key to the new file on every machine.
    RotateDbKey(serve::RotateKeyArgs),
}

/// The default data directory.
pub fn default_data_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/pulp-rs"),
        None => PathBuf::from("pulp-data"),
    }
}

/// Opens the database and the artifact storage of a data directory.
pub async fn open(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
) -> anyhow::Result<(DynStore, ArtifactStorage)> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    // The storage backend as the service's settings name it (config file, PULP_* variables).
    let config = std::env::var_os("PULP_CONFIG").map(PathBuf::from);
    let settings = pulp_rs::server::Settings::load(
        data_dir.to_path_buf(),
        config.as_deref(),
        serde_json::json!({}),
    )?;
    let storage = ArtifactStorage::open_with(data_dir.join("media"), &settings.storage_settings()?)
        .with_context(|| format!("cannot open artifact storage in {}", data_dir.display()))?;
    let url = match database_url {
        Some(u) => u.to_string(),
        None => format!("sqlite://{}", data_dir.join("pulp.db").display()),
    };
    errors::precheck_postgres(&url).await?;
    let store = db::connect(&url)
        .await
        .map_err(|e| errors::database(&url, &redact_url(&url), &e))?;
    pulp_rs::server::attach_secrets(&store, &settings).await?;
    Ok((store, storage))
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

pub fn main() -> ExitCode {
    let mut cli = Cli::parse();
    cli.command
        .take_leading(cli.data_dir.take(), cli.database_url.take());
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PULP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Sync(args) => sync_cmd::run(args).await,
            Command::Repo(cmd) => repo::run(cmd).await,
            Command::Orphan(cmd) => orphan::run(cmd).await,
            Command::Bench(args) => bench::run(args).await,
            Command::Serve(a) => serve::run(serve::Which::Serve, a).await,
            Command::Api(a) => serve::run(serve::Which::Api, a).await,
            Command::Content(a) => serve::run(serve::Which::Content, a).await,
            Command::Worker(a) => serve::run(serve::Which::Worker, a).await,
            Command::ResetAdminPassword(a) => serve::reset_admin_password(a).await,
            Command::AddSigningService(a) => serve::add_signing_service(a).await,
            Command::Config(a) => serve::print_config(a),
            Command::RotateDbKey(a) => serve::rotate_db_key(a).await,
        }
    });
    // Background tasks (a progress line, a sampler) must not hold the exit up.
    runtime.shutdown_background();
    if INTERRUPTED.load(Ordering::SeqCst) {
        if let Err(e) = &result {
            eprintln!("error: {}", errors::render(e));
        }
        return ExitCode::from(130);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", errors::render(&e));
            ExitCode::FAILURE
        }
    }
}

/// What a local command (`sync`, `bench`) may read through `file://`: the directory of the
/// manifest its operator named, resolved, and nothing outside it (a symlink in that directory
/// that leads elsewhere is refused as it is on the server). Nothing for other schemes.
pub(crate) fn local_import_paths(url: &str) -> anyhow::Result<pulp_rs::downloader::ImportPaths> {
    use anyhow::Context;
    let parsed = match url::Url::parse(url) {
        Ok(u) if u.scheme() == "file" => u,
        _ => return Ok(pulp_rs::downloader::ImportPaths::none()),
    };
    let path = parsed
        .to_file_path()
        .map_err(|()| anyhow::anyhow!("{url} is not an absolute local path"))?;
    let dir = path
        .parent()
        .with_context(|| format!("{url} names no directory"))?;
    pulp_rs::downloader::ImportPaths::new(&[dir]).map_err(anyhow::Error::msg)
}
