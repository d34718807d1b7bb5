//! The `pulp-rs` command line: `sync`, `repo list|show`, `bench`, and the service: `serve`,
//! `api`, `content`, `worker`, `reset-admin-password`.
//!
//! Everything runs in-process on the embedded SQLite database under the data directory (default
//! `$PULP_DATA_DIR`, else `~/.local/share/pulp-rs`), or on PostgreSQL with `--database-url
//! postgres://...`. No server is needed. This is the only place that uses anyhow.

mod bench;
mod chart;
mod progress;
mod repo;
mod serve;
mod sync_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pulp_rs::db::{self, DynStore};
use pulp_rs::storage::ArtifactStorage;

#[derive(Parser, Debug)]
#[command(
    name = "pulp-rs",
    version,
    about = "Mirror repositories into numbered versions you own"
)]
struct Cli {
    /// Where the database (SQLite) and the artifacts live.
    #[arg(long, global = true, env = "PULP_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://...`; default: SQLite inside the data directory.
    #[arg(long, global = true, env = "PULP_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Sync a repository from a manifest URL into a new repository version.
    Sync(sync_cmd::SyncArgs),
    /// Inspect repositories.
    #[command(subcommand)]
    Repo(repo::RepoCommand),
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
    let storage = ArtifactStorage::open(data_dir.join("media"))
        .with_context(|| format!("cannot open artifact storage in {}", data_dir.display()))?;
    let url = match database_url {
        Some(u) => u.to_string(),
        None => format!("sqlite://{}", data_dir.join("pulp.db").display()),
    };
    let store = db::connect(&url)
        .await
        .with_context(|| format!("cannot open the database ({})", redact_url(&url)))?;
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
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PULP_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
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
    let data_dir = cli.data_dir.clone().unwrap_or_else(default_data_dir);
    let db_url = cli.database_url.clone();
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Sync(args) => sync_cmd::run(&data_dir, db_url.as_deref(), args).await,
            Command::Repo(cmd) => repo::run(&data_dir, db_url.as_deref(), cmd).await,
            Command::Bench(args) => bench::run(db_url.as_deref(), args).await,
            Command::Serve(a) => {
                serve::run(serve::Which::Serve, &data_dir, db_url.as_deref(), a).await
            }
            Command::Api(a) => serve::run(serve::Which::Api, &data_dir, db_url.as_deref(), a).await,
            Command::Content(a) => {
                serve::run(serve::Which::Content, &data_dir, db_url.as_deref(), a).await
            }
            Command::Worker(a) => {
                serve::run(serve::Which::Worker, &data_dir, db_url.as_deref(), a).await
            }
            Command::ResetAdminPassword(a) => {
                serve::reset_admin_password(&data_dir, db_url.as_deref(), a).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
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
