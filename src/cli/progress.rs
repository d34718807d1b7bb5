//! Live progress of a sync: on a terminal, a summary line plus a compact line per stage (its
//! rate, how full its input link is, and what it is doing now: busy, starved or blocked);
//! plain blocks of the same lines every few seconds when stderr is not a terminal. Reads the
//! pipeline's own counters; the stages know nothing of it.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use pulp_rs::stages::artifact_stages::ArtifactDownloader;
use pulp_rs::stages::content_stages::ContentAssociation;
use pulp_rs::stages::{PipelineMetrics, PipelineReport};

pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    bars: Vec<ProgressBar>,
}

fn summary(r: &PipelineReport) -> String {
    let declared = r.stages.first().map(|s| s.items_out).unwrap_or(0);
    let saved = r
        .stage(ContentAssociation::NAME)
        .map(|s| s.items_in)
        .unwrap_or(0);
    let bytes = r
        .stage(ArtifactDownloader::NAME)
        .map(|s| s.bytes)
        .unwrap_or(0);
    format!(
        "{saved}/{declared} units, {:.1} MiB downloaded",
        bytes as f64 / (1024.0 * 1024.0)
    )
}

/// Per-stage lines from two snapshots `dt` apart: rate over the interval, input link
/// occupancy now, and the dominant activity over the interval.
fn stage_lines(prev: &PipelineReport, now: &PipelineReport, dt: f64) -> Vec<String> {
    let dt = dt.max(1e-3);
    now.stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let p = prev.stages.get(i);
            let rate = s.items_out.saturating_sub(p.map_or(0, |p| p.items_out)) as f64 / dt;
            let d =
                |f: fn(&pulp_rs::stages::StageReport) -> f64| (f(s) - p.map_or(0.0, f)).max(0.0);
            let (busy, starved, blocked) = (
                d(|x| x.busy_secs),
                d(|x| x.starved_secs),
                d(|x| x.blocked_secs),
            );
            let total = (busy + starved + blocked).max(1e-9);
            let doing = if s.wall_secs > 0.0 && (busy + starved + blocked) == 0.0 {
                "done"
            } else if busy >= starved && busy >= blocked {
                "busy"
            } else if blocked >= starved {
                "blocked"
            } else {
                "starved"
            };
            let link = i
                .checked_sub(1)
                .and_then(|l| now.links.get(l))
                .map(|l| format!("in {:>4}/{:<4}", l.queued.min(l.capacity), l.capacity))
                .unwrap_or_else(|| " ".repeat(12));
            format!(
                "{:<24} {:>8.0} items/s  {link}  {doing:<7} ({:>3.0}% busy)",
                s.name,
                rate,
                busy / total * 100.0
            )
        })
        .collect()
}

impl Progress {
    pub fn start(metrics: PipelineMetrics, quiet: bool) -> Progress {
        if quiet {
            return Progress {
                task: None,
                bars: Vec::new(),
            };
        }
        if std::io::stderr().is_terminal() {
            let multi = MultiProgress::new();
            let style = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let plain = ProgressStyle::with_template("  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
            let head = multi.add(ProgressBar::new_spinner().with_style(style));
            let lines: Vec<ProgressBar> = metrics
                .stages
                .iter()
                .map(|_| multi.add(ProgressBar::new_spinner().with_style(plain.clone())))
                .collect();
            let mut bars = vec![head.clone()];
            bars.extend(lines.iter().cloned());
            let task = tokio::spawn(async move {
                let mut prev = metrics.snapshot();
                let mut at = Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let now = metrics.snapshot();
                    head.set_message(summary(&now));
                    head.tick();
                    for (bar, text) in
                        lines
                            .iter()
                            .zip(stage_lines(&prev, &now, at.elapsed().as_secs_f64()))
                    {
                        bar.set_message(text);
                    }
                    prev = now;
                    at = Instant::now();
                }
            });
            Progress {
                task: Some(task),
                bars,
            }
        } else {
            let task = tokio::spawn(async move {
                let mut prev = metrics.snapshot();
                let mut at = Instant::now();
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    let now = metrics.snapshot();
                    eprintln!("progress: {}", summary(&now));
                    for l in stage_lines(&prev, &now, at.elapsed().as_secs_f64()) {
                        eprintln!("  {l}");
                    }
                    prev = now;
                    at = Instant::now();
                }
            });
            Progress {
                task: Some(task),
                bars: Vec::new(),
            }
        }
    }

    pub fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        for b in self.bars {
            b.finish_and_clear();
        }
    }
}
