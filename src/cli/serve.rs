//! `pulp-rs serve | api | content | worker | reset-admin-password`: the service's parts.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use pulp_rs::api::auth;
use pulp_rs::server::{self, Parts, Server, Settings};
use serde_json::json;

use super::out::outln;
use super::Location;

/// Flags shared by the server commands (each may also come from the config file or `PULP_*`).
#[derive(Args, Debug, Clone, Default)]
pub struct ServerArgs {
    /// A TOML file of settings (keys as the flags, with underscores).
    #[arg(long, env = "PULP_CONFIG")]
    config: Option<PathBuf>,
    /// Where the REST API listens.
    #[arg(long)]
    api_bind: Option<SocketAddr>,
    /// Where the content app listens.
    #[arg(long)]
    content_bind: Option<SocketAddr>,
    /// Task workers to run.
    #[arg(long)]
    workers: Option<usize>,
    /// How clients reach the content app (for distributions' base_url).
    #[arg(long)]
    content_origin: Option<String>,
    #[command(flatten)]
    at: Location,
}

impl ServerArgs {
    pub fn location_mut(&mut self) -> &mut Location {
        &mut self.at
    }
}

#[derive(Args, Debug)]
pub struct ResetAdminArgs {
    /// The new password (else read from PULP_ADMIN_PASSWORD).
    #[arg(long)]
    password: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

impl ResetAdminArgs {
    pub fn location_mut(&mut self) -> &mut Location {
        &mut self.server.at
    }
}

#[derive(Args, Debug)]
pub struct AddSigningServiceArgs {
    /// A unique name for the service.
    name: String,
    /// The script to run: called with the path of the file to sign, it prints JSON naming the
    /// signatures (for an APT release: `{"signatures": {"inline": P, "detached": P}}`).
    script: PathBuf,
    /// The fingerprint of the signing key (passed to the script as
    /// PULP_SIGNING_KEY_FINGERPRINT).
    key_fingerprint: String,
    /// The ASCII-armored public key, shown at signing-services/ for clients to verify with.
    #[arg(long)]
    public_key: PathBuf,
    /// What the script signs: `deb:AptReleaseSigningService` (an APT Release: inline and
    /// detached signatures) or `core:AsciiArmoredDetachedSigningService`.
    #[arg(
        long = "class",
        default_value = "core:AsciiArmoredDetachedSigningService"
    )]
    class: String,
    #[command(flatten)]
    server: ServerArgs,
}

impl AddSigningServiceArgs {
    pub fn location_mut(&mut self) -> &mut Location {
        &mut self.server.at
    }
}

#[derive(Args, Debug)]
pub struct RotateKeyArgs {
    /// The new key file (32 random bytes, base64); created with mode 0600 when missing.
    #[arg(long)]
    new_key: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
}

impl RotateKeyArgs {
    pub fn location_mut(&mut self) -> &mut Location {
        &mut self.server.at
    }
}

/// Which command.
#[derive(Debug, Clone, Copy)]
pub enum Which {
    Serve,
    Api,
    Content,
    Worker,
}

fn settings(args: &ServerArgs) -> anyhow::Result<Settings> {
    let mut o = serde_json::Map::new();
    if let Some(u) = &args.at.database_url {
        o.insert("database_url".into(), json!(u));
    }
    if let Some(a) = args.api_bind {
        o.insert("api_bind".into(), json!(a.to_string()));
    }
    if let Some(a) = args.content_bind {
        o.insert("content_bind".into(), json!(a.to_string()));
    }
    if let Some(w) = args.workers {
        o.insert("workers".into(), json!(w));
    }
    if let Some(c) = &args.content_origin {
        o.insert("content_origin".into(), json!(c));
    }
    Ok(Settings::load(
        args.at.data_dir(),
        args.config.as_deref(),
        serde_json::Value::Object(o),
    )?)
}

pub async fn run(which: Which, args: ServerArgs) -> anyhow::Result<()> {
    let settings = settings(&args)?;
    super::errors::precheck_postgres(&settings.database_url()).await?;
    let parts = match which {
        Which::Serve => Parts {
            api: true,
            content: true,
            workers: settings.workers,
        },
        Which::Api => Parts {
            api: true,
            content: false,
            workers: 0,
        },
        Which::Content => Parts {
            api: false,
            content: true,
            workers: 0,
        },
        Which::Worker => Parts {
            api: false,
            content: false,
            workers: settings.workers.max(1),
        },
    };
    let server = Server::start(&settings, parts).await.with_context(|| {
        format!(
            "cannot start ({})",
            server::redact_url(&settings.database_url())
        )
    })?;
    if let Some(p) = &server.generated_admin_password {
        outln!("Created user admin with password: {p}");
        outln!("(shown once; change it with `pulp-rs reset-admin-password --password ...`)");
    }
    if let Some(a) = server.api_addr {
        outln!("REST API listening on http://{a}/pulp/api/v3/");
    }
    if let Some(a) = server.content_addr {
        outln!("Content app listening on http://{a}/pulp/content/");
    }
    if parts.workers > 0 {
        outln!("{} task worker(s) running", parts.workers);
    }
    // The first signal stops claiming and lets running tasks finish within `shutdown_grace`;
    // a second one cancels them at once.
    let (token, stop_now) = (server.shutdown_token(), server.stop_now_handle());
    tokio::spawn(async move {
        let mut signals = 0;
        loop {
            #[cfg(unix)]
            let got = {
                let term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
                match term {
                    Ok(mut term) => tokio::select! {
                        r = tokio::signal::ctrl_c() => r.is_ok().then_some(true),
                        _ = term.recv() => Some(false),
                    },
                    Err(_) => tokio::signal::ctrl_c().await.is_ok().then_some(true),
                }
            };
            #[cfg(not(unix))]
            let got = tokio::signal::ctrl_c().await.is_ok().then_some(true);
            let Some(interrupt) = got else { return };
            signals += 1;
            if signals == 1 {
                if interrupt {
                    super::interrupted();
                }
                tracing::info!(
                    "shutting down: running tasks may finish (a second signal stops them)"
                );
                token.cancel();
            } else {
                tracing::info!("second signal: canceling running tasks now");
                stop_now();
                return;
            }
        }
    });
    server.wait().await;
    Ok(())
}

/// `pulp-rs config`: the effective settings as TOML, secrets hidden.
pub fn print_config(args: ServerArgs) -> anyhow::Result<()> {
    let settings = settings(&args)?;
    outln!("{}", settings.to_redacted_toml().trim_end());
    Ok(())
}

/// `pulp-rs rotate-db-key --new-key FILE`.
pub async fn rotate_db_key(args: RotateKeyArgs) -> anyhow::Result<()> {
    let settings = settings(&args.server)?;
    super::errors::precheck_postgres(&settings.database_url()).await?;
    let (store, _storage) = server::open(&settings).await?;
    let new = pulp_rs::secrets::SecretBox::load_or_generate(&args.new_key, true)?;
    let old_id = store.secrets().key_id().unwrap_or_default().to_string();
    if new.key_id() == Some(old_id.as_str()) {
        anyhow::bail!("{} holds the key in use already", args.new_key.display());
    }
    let n = store.rotate_secrets(&new).await?;
    outln!(
        "Re-encrypted {n} secret(s): key {old_id} -> {}.",
        new.key_id().unwrap_or_default()
    );
    outln!(
        "Set db_encryption_key = {:?} (or PULP_DB_ENCRYPTION_KEY) for every process, restart them, then delete the old key file.",
        args.new_key.display().to_string()
    );
    Ok(())
}

pub async fn reset_admin_password(args: ResetAdminArgs) -> anyhow::Result<()> {
    let settings = settings(&args.server)?;
    super::errors::precheck_postgres(&settings.database_url()).await?;
    let password = args
        .password
        .or(settings.admin_password.clone())
        .filter(|p| !p.is_empty())
        .context("give --password P (or set PULP_ADMIN_PASSWORD)")?;
    let (store, _storage) = server::open(&settings).await?;
    auth::set_password(&store, auth::ADMIN, &password).await?;
    outln!("Password of user admin changed.");
    Ok(())
}

/// `add-signing-service`: registers a signing script (pulpcore's
/// `pulpcore-manager add-signing-service`).
pub async fn add_signing_service(args: AddSigningServiceArgs) -> anyhow::Result<()> {
    let settings = settings(&args.server)?;
    super::errors::precheck_postgres(&settings.database_url()).await?;
    let pulp_type = match args.class.as_str() {
        "deb:AptReleaseSigningService" => "deb.apt-release",
        "core:AsciiArmoredDetachedSigningService" => "core.signing",
        other => anyhow::bail!(
            "unknown signing service class {other:?} (deb:AptReleaseSigningService or \
             core:AsciiArmoredDetachedSigningService)"
        ),
    };
    let script = std::fs::canonicalize(&args.script)
        .with_context(|| format!("cannot find the script {}", args.script.display()))?;
    let meta = std::fs::metadata(&script)?;
    {
        use std::os::unix::fs::PermissionsExt;
        anyhow::ensure!(
            meta.is_file() && meta.permissions().mode() & 0o111 != 0,
            "{} is not an executable file",
            script.display()
        );
    }
    let public_key = std::fs::read_to_string(&args.public_key)
        .with_context(|| format!("cannot read the public key {}", args.public_key.display()))?;
    anyhow::ensure!(
        public_key.contains("BEGIN PGP PUBLIC KEY BLOCK"),
        "{} is not an ASCII-armored public key",
        args.public_key.display()
    );
    let (store, _storage) = server::open(&settings).await?;
    let service = pulp_rs::models::SigningService {
        id: uuid::Uuid::now_v7(),
        pulp_type: pulp_type.to_string(),
        name: args.name.clone(),
        script: script.display().to_string(),
        pubkey_fingerprint: args.key_fingerprint,
        public_key,
        pulp_created: chrono::Utc::now(),
    };
    store.create_signing_service(&service).await?;
    outln!(
        "Signing service {} registered: {}",
        args.name,
        pulp_rs::href::signing_service(service.id)
    );
    Ok(())
}
