//! `pulp-rs bench`: time syncs of a remote, or of a local fixture served on 127.0.0.1, each into
//! a fresh throwaway data directory, and print what each stage did.
//!
//! `--fixture COUNT,SIZE` builds a pulp_file fixture and serves it with the static server of
//! `pulp_rs::fixture`, so the same command measures a real mirror and a local baseline. Each run
//! prints seconds, units/s, MB/s, requests, retries, peak RSS, CPU, and per stage its items and
//! busy / starved / blocked shares, naming the bottleneck. `--resync` also times a second,
//! unchanged sync. `--json FILE` writes every figure (the shape of [`BenchRun`]).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use pulp_rs::fixture::{self, StaticServer};
use pulp_rs::models::Policy;
use pulp_rs::plugins;
use pulp_rs::stages::{PipelineReport, Timeline};
use pulp_rs::sync::{self, SyncContext};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::sync_cmd::{ensure_remote_and_repo, SyncArgs};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The manifest URL of a remote to benchmark (or use --fixture).
    pub url: Option<String>,
    /// Build and serve a local fixture of COUNT files of SIZE bytes (suffixes K, M allowed).
    #[arg(long, value_name = "COUNT,SIZE")]
    pub fixture: Option<String>,
    #[arg(long, default_value = "immediate")]
    pub policy: Policy,
    /// Download concurrency per remote; several values (5,10,20) run side by side.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    pub concurrency: Vec<u32>,
    /// Runs per concurrency value.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Also time a second, unchanged sync.
    #[arg(long)]
    pub resync: bool,
    /// Delay every fixture response by this many milliseconds (a slow upstream).
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Turn off the per-stage time measuring (to measure its cost).
    #[arg(long)]
    pub no_measure: bool,
    /// Where the throwaway data directories go (default: the system temp dir).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the data directories.
    #[arg(long)]
    pub keep: bool,
    /// Write every figure as JSON (an array of runs; see `BenchRun`).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw each stage's throughput and each link's occupancy over the last run as SVG.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
    /// The plugin (content type) of the remote.
    #[arg(long = "type", default_value = "file")]
    pub plugin: String,
    /// How often the pipeline is sampled for the chart and the JSON timeline, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub sample_ms: u64,
}

/// One timed sync.
#[derive(Debug, Serialize)]
pub struct BenchRun {
    pub concurrency: u32,
    pub run: usize,
    pub backend: String,
    pub seconds: f64,
    pub units: u64,
    pub bytes: u64,
    pub units_per_sec: f64,
    pub mb_per_sec: f64,
    pub requests: u64,
    pub retries: u64,
    pub peak_rss_bytes: Option<u64>,
    pub user_cpu_secs: f64,
    pub system_cpu_secs: f64,
    pub bottleneck: Option<String>,
    pub report: PipelineReport,
    pub resync_seconds: Option<f64>,
    /// The stages of the re-sync, with `--resync`.
    pub resync_report: Option<PipelineReport>,
    /// The pipeline sampled every `--sample-ms` during the (first) sync.
    pub timeline: Timeline,
}

fn parse_size(s: &str) -> anyhow::Result<usize> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1024),
        Some('M' | 'm') => (&s[..s.len() - 1], 1024 * 1024),
        Some('G' | 'g') => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    Ok(num
        .parse::<usize>()
        .with_context(|| format!("bad size {s:?}"))?
        * mult)
}

async fn quiesce_filesystem() {
    // SAFETY: sync(2) has no preconditions.
    let _ = tokio::task::spawn_blocking(|| unsafe { libc::sync() }).await;
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage writes into the struct we pass; RUSAGE_SELF is always valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return (0.0, 0.0);
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

pub async fn run(db_url: Option<&str>, args: BenchArgs) -> anyhow::Result<()> {
    let work = match &args.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    std::fs::create_dir_all(&work)?;
    let mut _server = None;
    let mut _fixture_dir = None;
    let url = match (&args.url, &args.fixture) {
        (Some(u), None) => u.clone(),
        (None, Some(spec)) => {
            let (count, size) = spec
                .split_once(',')
                .context("--fixture takes COUNT,SIZE, e.g. 10000,4K")?;
            let count: usize = count.trim().parse().context("bad fixture count")?;
            let size = parse_size(size)?;
            let dir = tempfile::Builder::new()
                .prefix("pulp-bench-fixture-")
                .tempdir_in(&work)?;
            eprintln!(
                "building a fixture of {count} x {size} bytes in {}",
                dir.path().display()
            );
            let root = dir.path().to_path_buf();
            tokio::task::spawn_blocking(move || fixture::write_fixture(&root, count, size))
                .await??;
            let delay = (args.delay_ms > 0).then(|| Duration::from_millis(args.delay_ms));
            let server = StaticServer::start(dir.path(), delay).await?;
            let u = server.url("PULP_MANIFEST");
            _server = Some(server);
            _fixture_dir = Some(dir);
            u
        }
        _ => bail!("give either a URL or --fixture COUNT,SIZE"),
    };
    let plugin = plugins::by_name(&args.plugin)
        .with_context(|| format!("no plugin called {:?}", args.plugin))?;
    let mut runs = Vec::new();
    let mut finished = Vec::new();
    let mut databases = Vec::new();
    for &concurrency in &args.concurrency {
        for run in 1..=args.runs {
            let data = tempfile::Builder::new()
                .prefix("pulp-bench-data-")
                .tempdir_in(&work)?;
            let url_db = match db_url {
                Some(u) => Some(pulp_rs::db::fresh_database(u, "pulp_bench").await?),
                None => None,
            };
            if let (Some(admin), Some(fresh)) = (db_url, &url_db) {
                if fresh != admin {
                    databases.push(fresh.clone());
                }
            }
            let (store, storage) = super::open(data.path(), url_db.as_deref()).await?;
            let sargs = SyncArgs {
                url: url.clone(),
                repository: "bench".into(),
                mirror: false,
                policy: args.policy,
                plugin: args.plugin.clone(),
                download_concurrency: Some(concurrency),
                max_retries: None,
                read_timeout: None,
                quiet: true,
            };
            let (remote, repo) = ensure_remote_and_repo(&store, plugin.as_ref(), &sargs).await?;
            let mut ctx = SyncContext::new(store.clone(), storage);
            ctx.download.import_paths = super::local_import_paths(&url)?;
            ctx.pipeline.measure = !args.no_measure;
            // Start each run on a quiet filesystem: flush what earlier runs (and their cleanup)
            // left dirty, untimed, so this run's per-batch syncfs pays only for its own files.
            quiesce_filesystem().await;
            fixture::reset_peak_rss();
            let (u0, s0) = cpu_times();
            let sync_once = || {
                sync::sync(
                    &ctx,
                    plugin.as_ref(),
                    &repo,
                    &remote,
                    false,
                    CancellationToken::new(),
                )
            };
            let started = Instant::now();
            let prepared = sync::prepare(&ctx, plugin.as_ref(), &repo, &remote, false)
                .await
                .context("benchmark sync failed to start")?;
            let stop_sampling = CancellationToken::new();
            let sampler = {
                let metrics = prepared.metrics();
                let stop = stop_sampling.clone();
                let every = Duration::from_millis(args.sample_ms.max(10));
                tokio::spawn(async move { metrics.sample(every, stop).await })
            };
            let outcome = prepared.run(CancellationToken::new()).await;
            stop_sampling.cancel();
            let timeline = sampler.await.unwrap_or_default();
            let outcome = outcome.context("benchmark sync failed")?;
            let seconds = started.elapsed().as_secs_f64();
            let (u1, s1) = cpu_times();
            let peak = fixture::peak_rss_bytes();
            let (resync_seconds, resync_report) = if args.resync {
                let t = Instant::now();
                let again = sync_once().await.context("benchmark re-sync failed")?;
                (Some(t.elapsed().as_secs_f64()), Some(again.report))
            } else {
                (None, None)
            };
            let units = outcome
                .report
                .stages
                .first()
                .map(|s| s.items_out)
                .unwrap_or(0);
            let bytes = outcome.downloads.bytes.load(Ordering::Relaxed);
            let r = BenchRun {
                concurrency,
                run,
                backend: store.backend().to_string(),
                seconds,
                units,
                bytes,
                units_per_sec: units as f64 / seconds,
                mb_per_sec: bytes as f64 / 1e6 / seconds,
                requests: outcome.downloads.requests.load(Ordering::Relaxed),
                retries: outcome.downloads.retries(),
                peak_rss_bytes: peak,
                user_cpu_secs: u1 - u0,
                system_cpu_secs: s1 - s0,
                bottleneck: outcome.report.bottleneck().map(|s| s.name.clone()),
                report: outcome.report,
                resync_seconds,
                resync_report,
                timeline,
            };
            print_run(&r);
            runs.push(r);
            drop(store);
            // Deleted only after the last run: deleting tens of thousands of files between
            // runs makes ext4 scan past the recently deleted inodes when the next run creates
            // its own (perf: `recently_deleted`, `find_inode_bit`), tripling its system time.
            finished.push(data);
        }
    }
    for data in finished {
        if args.keep {
            eprintln!("kept {}", data.keep().display());
        }
    }
    // Like the data directories, the fresh databases go after the last run (a drop makes the
    // server checkpoint, which would slow the run after it).
    for fresh in databases {
        match (args.keep, db_url) {
            (true, _) | (_, None) => eprintln!("kept database {}", super::redact_url(&fresh)),
            (false, Some(admin)) => pulp_rs::db::drop_fresh_database(admin, &fresh).await?,
        }
    }
    if runs.len() > 1 {
        print_summary(&runs);
    }
    if let (Some(path), Some(last)) = (&args.chart, runs.last()) {
        let title = format!(
            "pulp-rs bench: {} units, concurrency {}, {:.2} s, bottleneck {}",
            last.units,
            last.concurrency,
            last.seconds,
            last.bottleneck.as_deref().unwrap_or("-")
        );
        super::chart::write_svg(&last.timeline, &title, path)?;
        eprintln!("chart written to {}", path.display());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&runs)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn print_run(r: &BenchRun) {
    println!(
        "run {} (concurrency {}, {}): {:.3} s, {} units, {:.0} units/s, {:.1} MB/s, {} requests, {} retries, peak RSS {}, CPU user {:.2} s sys {:.2} s{}",
        r.run,
        r.concurrency,
        r.backend,
        r.seconds,
        r.units,
        r.units_per_sec,
        r.mb_per_sec,
        r.requests,
        r.retries,
        r.peak_rss_bytes
            .map(|b| format!("{:.1} MiB", b as f64 / 1048576.0))
            .unwrap_or_else(|| "n/a".into()),
        r.user_cpu_secs,
        r.system_cpu_secs,
        r.resync_seconds
            .map(|s| format!(", re-sync {s:.3} s"))
            .unwrap_or_default(),
    );
    print_stages(&r.report);
    if let Some(again) = &r.resync_report {
        println!("  re-sync:");
        print_stages(again);
    }
}

fn print_stages(report: &PipelineReport) {
    println!(
        "  {:<24} {:>9} {:>9} {:>10} {:>6} {:>8} {:>8}",
        "stage", "items in", "items out", "items/s", "busy", "starved", "blocked"
    );
    for s in &report.stages {
        println!(
            "  {:<24} {:>9} {:>9} {:>10.0} {:>5.0}% {:>7.0}% {:>7.0}%",
            s.name,
            s.items_in,
            s.items_out,
            s.items_out as f64 / s.wall_secs.max(1e-9),
            s.busy_share() * 100.0,
            s.starved_share() * 100.0,
            s.blocked_share() * 100.0
        );
    }
    if let Some(b) = report.bottleneck() {
        println!("  bottleneck: {}", b.name);
    }
}

fn print_summary(runs: &[BenchRun]) {
    let mut by_conc: std::collections::BTreeMap<u32, Vec<f64>> = Default::default();
    for r in runs {
        by_conc.entry(r.concurrency).or_default().push(r.seconds);
    }
    println!(
        "{:<12} {:>9} {:>9} {:>9}",
        "concurrency", "min s", "median s", "max s"
    );
    for (c, mut secs) in by_conc {
        secs.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{:<12} {:>9.3} {:>9.3} {:>9.3}",
            c,
            secs[0],
            secs[secs.len() / 2],
            secs[secs.len() - 1]
        );
    }
}
