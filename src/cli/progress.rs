//! Live progress of a sync: an indicatif line on a terminal, plain lines every few seconds when
//! stdout is not one. Reads the pipeline's own counters; the stages know nothing of it.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use pulp_rs::stages::PipelineMetrics;

pub struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

fn line(m: &PipelineMetrics) -> String {
    let r = m.snapshot();
    let declared = r.stages.first().map(|s| s.items_out).unwrap_or(0);
    let saved = r
        .stage("ContentAssociation")
        .map(|s| s.items_in)
        .unwrap_or(0);
    let bytes = r.stage("ArtifactDownloader").map(|s| s.bytes).unwrap_or(0);
    format!(
        "{saved}/{declared} units, {:.1} MiB downloaded",
        bytes as f64 / (1024.0 * 1024.0)
    )
}

impl Progress {
    pub fn start(metrics: PipelineMetrics, quiet: bool) -> Progress {
        if quiet {
            return Progress {
                task: None,
                bar: None,
            };
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            let b = bar.clone();
            let task = tokio::spawn(async move {
                loop {
                    b.set_message(line(&metrics));
                    b.tick();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            Progress {
                task: Some(task),
                bar: Some(bar),
            }
        } else {
            let task = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    eprintln!("progress: {}", line(&metrics));
                }
            });
            Progress {
                task: Some(task),
                bar: None,
            }
        }
    }

    pub fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
        }
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
