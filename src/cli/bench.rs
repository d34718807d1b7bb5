//! `pulp-rs bench`: time syncs of a remote, or of a local fixture served on 127.0.0.1, each into
//! a fresh throwaway data directory, and print what each stage did.
//!
//! `--fixture COUNT,SIZE` builds a pulp_file fixture and serves it with the static server of
//! `pulp_rs::fixture`, so the same command measures a real mirror and a local baseline. Each run
//! prints seconds, units/s, MB/s, requests, retries, peak RSS, CPU, and per stage its items and
//! busy / starved / blocked shares, naming the bottleneck. `--resync` also times a second,
//! unchanged sync. `--json FILE` writes every figure (the shape of [`BenchRun`]).
//!
//! To be trusted: an untimed warm-up sync comes first (reported as such, in no figure); the runs
//! of several configurations are interleaved, each round starting with the next one
//! ([`plan`]), so none is favoured by its place in the order; peak RSS is reset before each run
//! and read after it (`/proc/self/clear_refs`), so it is that run's peak, or "n/a"; the
//! summary's median is the mean of the two middle values for an even count ([`median`]); and
//! the timeline's sample interval adapts to the run's length unless `--sample-ms` fixes it.

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

use super::out::outln;
use super::sync_cmd::{ensure_remote_and_repo, SyncArgs, SyncTarget};
use super::Location;

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
    /// Timed runs per concurrency value (interleaved with the other values' runs).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Skip the untimed warm-up sync before the timed runs.
    #[arg(long)]
    pub no_warmup: bool,
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
    /// How often the pipeline is sampled for the chart and the JSON timeline, in milliseconds
    /// (default: from 10 ms, coarsened as the run goes on to keep a few hundred samples).
    #[arg(long)]
    pub sample_ms: Option<u64>,
    /// A PostgreSQL server to benchmark on (each run gets a fresh database, dropped at the
    /// end); default: SQLite in each run's data directory.
    #[arg(long, env = "PULP_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

/// The samples a timeline keeps at most when the interval adapts (it then holds between half
/// this and this many).
const MAX_SAMPLES: usize = 600;

/// The order of the timed runs: round `r` (1-based run number) runs every concurrency value
/// once, starting `r - 1` places further along, so each value goes first equally often.
pub fn plan(concurrency: &[u32], runs: usize) -> Vec<(u32, usize)> {
    let mut out = Vec::with_capacity(concurrency.len() * runs);
    for run in 1..=runs {
        for i in 0..concurrency.len() {
            out.push((concurrency[(run - 1 + i) % concurrency.len()], run));
        }
    }
    out
}

/// The median of `values`: the middle one, or the mean of the two middle ones for an even
/// count; `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
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

/// What every run of one bench shares.
struct Bench<'a> {
    args: &'a BenchArgs,
    url: String,
    plugin: std::sync::Arc<dyn plugins::Plugin>,
    work: PathBuf,
    /// Data directories, deleted (or kept) after the last run.
    finished: Vec<tempfile::TempDir>,
    /// Fresh PostgreSQL databases, dropped (or kept) after the last run.
    databases: Vec<String>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let work = match &args.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir(),
    };
    std::fs::create_dir_all(&work)?;
    let mut _server = None;
    let mut _fixture_dir = None;
    let url = match (&args.url, &args.fixture) {
        (Some(u), None) => {
            if let Some(hint) = super::errors::file_url_hint(u) {
                bail!(hint);
            }
            u.clone()
        }
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
    if args.concurrency.is_empty() || args.runs == 0 {
        bail!("nothing to run: give --concurrency values and --runs of at least 1");
    }
    let plugin = plugins::by_name(&args.plugin)
        .with_context(|| format!("no plugin called {:?}", args.plugin))?;
    let mut bench = Bench {
        args: &args,
        url,
        plugin,
        work,
        finished: Vec::new(),
        databases: Vec::new(),
    };
    let runs = bench.all_runs().await;
    // Like the data directories, the fresh databases go after the last run (a drop makes the
    // server checkpoint, which would slow the run after it); also when a run failed.
    let cleaned = bench.clean_up().await;
    let runs = runs?;
    cleaned?;
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

impl Bench<'_> {
    /// The warm-up, then the timed runs in [`plan`]'s order.
    async fn all_runs(&mut self) -> anyhow::Result<Vec<BenchRun>> {
        let args = self.args;
        if !args.no_warmup {
            let warm = self.one(args.concurrency[0], 0).await?;
            outln!(
                "warm-up (concurrency {}, untimed, in no figure): {:.3} s, {} units",
                warm.concurrency,
                warm.seconds,
                warm.units
            );
        }
        let mut runs = Vec::new();
        for (concurrency, run) in plan(&args.concurrency, args.runs) {
            let r = self.one(concurrency, run).await?;
            print_run(&r);
            runs.push(r);
        }
        Ok(runs)
    }

    /// One sync into a fresh data directory (and database).
    async fn one(&mut self, concurrency: u32, run: usize) -> anyhow::Result<BenchRun> {
        let args = self.args;
        let data = tempfile::Builder::new()
            .prefix("pulp-bench-data-")
            .tempdir_in(&self.work)?;
        let admin = args.database_url.as_deref();
        let url_db = match admin {
            Some(u) => Some(pulp_rs::db::fresh_database(u, "pulp_bench").await?),
            None => None,
        };
        if let (Some(admin), Some(fresh)) = (admin, &url_db) {
            if fresh != admin {
                self.databases.push(fresh.clone());
            }
        }
        let at = Location {
            data_dir: Some(data.path().to_path_buf()),
            database_url: url_db,
        };
        // Deleted only after the last run: deleting tens of thousands of files between
        // runs makes ext4 scan past the recently deleted inodes when the next run creates
        // its own (perf: `recently_deleted`, `find_inode_bit`), tripling its system time.
        self.finished.push(data);
        let (store, storage) = at.open().await?;
        let sargs = SyncArgs {
            url: self.url.clone(),
            repository: "bench".into(),
            mirror: false,
            policy: args.policy,
            plugin: args.plugin.clone(),
            download_concurrency: Some(concurrency),
            max_retries: None,
            read_timeout: None,
            quiet: true,
            at: at.clone(),
        };
        let plugin = self.plugin.as_ref();
        let SyncTarget { remote, repo, .. } =
            ensure_remote_and_repo(&store, plugin, &sargs).await?;
        let mut ctx = SyncContext::new(store.clone(), storage);
        ctx.download.import_paths = super::local_import_paths(&self.url)?;
        ctx.pipeline.measure = !args.no_measure;
        // Start each run on a quiet filesystem: flush what earlier runs (and their cleanup)
        // left dirty, untimed, so this run's per-batch syncfs pays only for its own files.
        quiesce_filesystem().await;
        let rss_is_per_run = fixture::reset_peak_rss();
        let (u0, s0) = cpu_times();
        let started = Instant::now();
        let prepared = sync::prepare(&ctx, plugin, &repo, &remote, false)
            .await
            .context("benchmark sync failed to start")?;
        let stop_sampling = CancellationToken::new();
        let sampler = {
            let metrics = prepared.metrics();
            let stop = stop_sampling.clone();
            let fixed = args.sample_ms.map(|ms| Duration::from_millis(ms.max(1)));
            tokio::spawn(async move {
                match fixed {
                    Some(every) => metrics.sample(every, stop).await,
                    None => {
                        metrics
                            .sample_adaptive(Duration::from_millis(10), MAX_SAMPLES, stop)
                            .await
                    }
                }
            })
        };
        let outcome = prepared.run(CancellationToken::new()).await;
        stop_sampling.cancel();
        let timeline = sampler.await.unwrap_or_default();
        let outcome = outcome.context("benchmark sync failed")?;
        let seconds = started.elapsed().as_secs_f64();
        let (u1, s1) = cpu_times();
        let peak = fixture::peak_rss_bytes().filter(|_| rss_is_per_run);
        let (resync_seconds, resync_report) = if args.resync {
            let t = Instant::now();
            let again = sync::sync(
                &ctx,
                plugin,
                &repo,
                &remote,
                false,
                CancellationToken::new(),
            )
            .await
            .context("benchmark re-sync failed")?;
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
        Ok(BenchRun {
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
        })
    }

    /// Deletes (or, with `--keep`, names) the data directories and fresh databases.
    async fn clean_up(&mut self) -> anyhow::Result<()> {
        for data in self.finished.drain(..) {
            if self.args.keep {
                eprintln!("kept {}", data.keep().display());
            }
        }
        let mut first_error = None;
        for fresh in self.databases.drain(..) {
            match (self.args.keep, self.args.database_url.as_deref()) {
                (true, _) | (_, None) => eprintln!("kept database {}", super::redact_url(&fresh)),
                (false, Some(admin)) => {
                    if let Err(e) = pulp_rs::db::drop_fresh_database(admin, &fresh).await {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

fn print_run(r: &BenchRun) {
    outln!(
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
        outln!("  re-sync:");
        print_stages(again);
    }
}

fn print_stages(report: &PipelineReport) {
    outln!(
        "  {:<24} {:>9} {:>9} {:>10} {:>6} {:>8} {:>8}",
        "stage",
        "items in",
        "items out",
        "items/s",
        "busy",
        "starved",
        "blocked"
    );
    for s in &report.stages {
        outln!(
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
        outln!("  bottleneck: {}", b.name);
    }
}

fn print_summary(runs: &[BenchRun]) {
    let mut by_conc: std::collections::BTreeMap<u32, Vec<f64>> = Default::default();
    for r in runs {
        by_conc.entry(r.concurrency).or_default().push(r.seconds);
    }
    outln!(
        "{:<12} {:>9} {:>9} {:>9}",
        "concurrency",
        "min s",
        "median s",
        "max s"
    );
    for (c, secs) in by_conc {
        let min = secs.iter().copied().fold(f64::INFINITY, f64::min);
        let max = secs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mid = median(&secs).unwrap_or(f64::NAN);
        outln!("{:<12} {:>9.3} {:>9.3} {:>9.3}", c, min, mid, max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_two_middle_values() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn each_round_runs_every_value_once_and_each_value_leads_a_round_in_turn() {
        assert_eq!(
            plan(&[5, 10, 20], 3),
            vec![
                (5, 1),
                (10, 1),
                (20, 1),
                (10, 2),
                (20, 2),
                (5, 2),
                (20, 3),
                (5, 3),
                (10, 3)
            ]
        );
        assert_eq!(plan(&[10], 2), vec![(10, 1), (10, 2)]);
    }
}
