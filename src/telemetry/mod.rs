//! Process metrics in the Prometheus / OpenMetrics text format, served at `GET /metrics` by
//! the API and the content app.
//!
//! A leaf: it imports nothing from the rest of the crate. Callers hand it plain numbers
//! ([`StageTotals`], status codes, durations); the sync pipeline converts its own report.
//!
//! One registry per process ([`global`]). Counters are updated where the work happens: a
//! finished pipeline adds its per-stage report ([`Telemetry::record_pipeline`]), downloaders
//! record per remote (labelled by the remote's *name*, never its URL, which may carry
//! credentials), the content app records requests, bytes and on-demand fetches, and workers
//! record task durations. Task counts by name and state are read from the database at scrape
//! time ([`Telemetry::set_task_counts`]), so they are the same whichever process is scraped.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The content type of [`Telemetry::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageStateLabels {
    pub stage: String,
    /// `busy`, `starved` or `blocked`.
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RemoteLabels {
    pub remote: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RetryLabels {
    pub remote: String,
    /// `status`, `timeout`, `body` (cut short), `digest`, `connect`.
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabels {
    pub name: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskNameLabels {
    pub name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `saved`, `streamed` or `failed`.
    pub outcome: String,
}

/// One stage's totals over a finished pipeline run, as [`Telemetry::record_pipeline`] takes them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTotals<'a> {
    /// The stage's name (its type's `NAME`), the `stage` label.
    pub stage: &'a str,
    pub items_in: u64,
    pub items_out: u64,
    pub bytes: u64,
    pub busy_secs: f64,
    pub starved_secs: f64,
    pub blocked_secs: f64,
}

type FloatCounter = Counter<f64, AtomicU64>;

fn seconds_histogram() -> Histogram {
    // 1 ms .. ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// Every metric of the process.
pub struct Telemetry {
    registry: Registry,
    pub stage_items_in: Family<StageLabels, Counter>,
    pub stage_items_out: Family<StageLabels, Counter>,
    pub stage_bytes: Family<StageLabels, Counter>,
    pub stage_seconds: Family<StageStateLabels, FloatCounter>,
    pub download_requests: Family<RemoteLabels, Counter>,
    pub download_retries: Family<RetryLabels, Counter>,
    pub download_bytes: Family<RemoteLabels, Counter>,
    pub download_in_flight: Family<RemoteLabels, Gauge>,
    pub download_ttfb: Family<RemoteLabels, Histogram, fn() -> Histogram>,
    pub download_duration: Family<RemoteLabels, Histogram, fn() -> Histogram>,
    pub tasks: Family<TaskLabels, Gauge>,
    pub task_duration: Family<TaskNameLabels, Histogram, fn() -> Histogram>,
    pub content_requests: Family<StatusLabels, Counter>,
    /// Handles into `content_requests` for the statuses nearly every response has, taken on
    /// first use, so the hot path neither formats a label nor locks the family.
    content_common: [std::sync::OnceLock<Counter>; COMMON_STATUSES.len()],
    pub content_bytes: Counter,
    pub content_latency: Histogram,
    pub on_demand_fetches: Family<OutcomeLabels, Counter>,
    pub on_demand_seconds: Histogram,
}

/// The content app's statuses with a handle of their own ([`Telemetry::record_content_response`]).
const COMMON_STATUSES: [u16; 4] = [200, 206, 304, 404];

impl Default for Telemetry {
    fn default() -> Telemetry {
        Telemetry::new()
    }
}

impl Telemetry {
    pub fn new() -> Telemetry {
        let mut registry = Registry::with_prefix("pulp");
        let t = Telemetry {
            stage_items_in: Family::default(),
            stage_items_out: Family::default(),
            stage_bytes: Family::default(),
            stage_seconds: Family::default(),
            download_requests: Family::default(),
            download_retries: Family::default(),
            download_bytes: Family::default(),
            download_in_flight: Family::default(),
            download_ttfb: Family::new_with_constructor(seconds_histogram as fn() -> Histogram),
            download_duration: Family::new_with_constructor(seconds_histogram as fn() -> Histogram),
            tasks: Family::default(),
            task_duration: Family::new_with_constructor(seconds_histogram as fn() -> Histogram),
            content_requests: Family::default(),
            content_common: Default::default(),
            content_bytes: Counter::default(),
            // 50 us .. ~52 s.
            content_latency: Histogram::new(exponential_buckets(0.00005, 2.0, 21)),
            on_demand_fetches: Family::default(),
            on_demand_seconds: seconds_histogram(),
            registry: Registry::default(),
        };
        registry.register(
            "stage_items_in",
            "Items a pipeline stage received",
            t.stage_items_in.clone(),
        );
        registry.register(
            "stage_items_out",
            "Items a pipeline stage put on its output",
            t.stage_items_out.clone(),
        );
        registry.register(
            "stage_bytes",
            "Bytes a pipeline stage moved",
            t.stage_bytes.clone(),
        );
        registry.register(
            "stage_seconds",
            "Seconds a pipeline stage spent busy, starved (waiting for input) or blocked (waiting for room downstream)",
            t.stage_seconds.clone(),
        );
        registry.register(
            "download_requests",
            "HTTP/file requests made, per remote",
            t.download_requests.clone(),
        );
        registry.register(
            "download_retries",
            "Download retries, per remote and cause",
            t.download_retries.clone(),
        );
        registry.register(
            "download_bytes",
            "Bytes downloaded, per remote",
            t.download_bytes.clone(),
        );
        registry.register(
            "download_in_flight",
            "Downloads in flight now, per remote",
            t.download_in_flight.clone(),
        );
        registry.register(
            "download_ttfb_seconds",
            "Time to the first byte of a download attempt",
            t.download_ttfb.clone(),
        );
        registry.register(
            "download_duration_seconds",
            "Duration of a whole download, retries included",
            t.download_duration.clone(),
        );
        registry.register(
            "tasks",
            "Tasks in the database by name and state (read at scrape time)",
            t.tasks.clone(),
        );
        registry.register(
            "task_duration_seconds",
            "Run time of tasks finished by this process's workers",
            t.task_duration.clone(),
        );
        registry.register(
            "content_requests",
            "Content app responses by status",
            t.content_requests.clone(),
        );
        registry.register(
            "content_request_duration_seconds",
            "Content app requests: time from the request to its response head (a body then \
             streams as fast as the client reads)",
            t.content_latency.clone(),
        );
        registry.register(
            "content_bytes_served",
            "Bytes the content app sent in bodies",
            t.content_bytes.clone(),
        );
        registry.register(
            "content_on_demand_fetches",
            "On-demand fetches from remotes by outcome",
            t.on_demand_fetches.clone(),
        );
        registry.register(
            "content_on_demand_seconds",
            "Time to fetch an on-demand artifact from its remote",
            t.on_demand_seconds.clone(),
        );
        Telemetry { registry, ..t }
    }

    /// Adds a finished pipeline's per-stage numbers.
    pub fn record_pipeline<'a>(&self, stages: impl IntoIterator<Item = StageTotals<'a>>) {
        for s in stages {
            let l = StageLabels {
                stage: s.stage.to_string(),
            };
            self.stage_items_in.get_or_create(&l).inc_by(s.items_in);
            self.stage_items_out.get_or_create(&l).inc_by(s.items_out);
            self.stage_bytes.get_or_create(&l).inc_by(s.bytes);
            for (state, secs) in [
                ("busy", s.busy_secs),
                ("starved", s.starved_secs),
                ("blocked", s.blocked_secs),
            ] {
                self.stage_seconds
                    .get_or_create(&StageStateLabels {
                        stage: s.stage.to_string(),
                        state: state.to_string(),
                    })
                    .inc_by(secs);
            }
        }
    }

    /// Replaces the task gauges with `counts` of `(name, state, n)` (from the database).
    pub fn set_task_counts(&self, counts: &[(String, String, i64)]) {
        self.tasks.clear();
        for (name, state, n) in counts {
            self.tasks
                .get_or_create(&TaskLabels {
                    name: name.clone(),
                    state: state.clone(),
                })
                .set(*n);
        }
    }

    /// A finished task's run time.
    pub fn record_task(&self, name: &str, took: Duration) {
        self.task_duration
            .get_or_create(&TaskNameLabels {
                name: name.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// An on-demand fetch that ended with `outcome` (`saved`, `streamed`, `failed`).
    pub fn record_on_demand(&self, outcome: &str, took: Duration) {
        self.on_demand_fetches
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
        self.on_demand_seconds.observe(took.as_secs_f64());
    }

    /// A content app response.
    pub fn record_content_response(&self, status: u16, body_bytes: u64, took: Duration) {
        self.content_latency.observe(took.as_secs_f64());
        let family = || {
            self.content_requests
                .get_or_create(&StatusLabels {
                    status: status.to_string(),
                })
                .clone()
        };
        match COMMON_STATUSES.iter().position(|s| *s == status) {
            Some(i) => self.content_common[i].get_or_init(family).inc(),
            None => family().inc(),
        };
        self.content_bytes.inc_by(body_bytes);
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// One remote's handles into the download families, cloned once per downloader factory so the
/// hot path does no label lookups.
#[derive(Debug, Clone)]
pub struct RemoteMetrics {
    remote: String,
    pub requests: Counter,
    pub bytes: Counter,
    pub in_flight: Gauge,
    pub ttfb: Histogram,
    pub duration: Histogram,
}

impl RemoteMetrics {
    /// A retry of `cause` (`status`, `timeout`, `connection`, `digest`).
    pub fn retry(&self, cause: &str) {
        global()
            .download_retries
            .get_or_create(&RetryLabels {
                remote: self.remote.clone(),
                cause: cause.to_string(),
            })
            .inc();
    }
}

impl Telemetry {
    /// The handles of remote `name` (labels carry the name only, never a URL).
    pub fn remote(&self, name: &str) -> RemoteMetrics {
        let l = RemoteLabels {
            remote: name.to_string(),
        };
        RemoteMetrics {
            remote: name.to_string(),
            requests: self.download_requests.get_or_create(&l).clone(),
            bytes: self.download_bytes.get_or_create(&l).clone(),
            in_flight: self.download_in_flight.get_or_create(&l).clone(),
            ttfb: self.download_ttfb.get_or_create(&l).clone(),
            duration: self.download_duration.get_or_create(&l).clone(),
        }
    }
}

/// This process's metrics.
pub fn global() -> &'static Telemetry {
    static T: OnceLock<Telemetry> = OnceLock::new();
    T.get_or_init(Telemetry::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_recorded() {
        let t = Telemetry::new();
        t.record_pipeline([StageTotals {
            stage: "ArtifactDownloader",
            items_in: 3,
            items_out: 2,
            bytes: 100,
            busy_secs: 0.5,
            starved_secs: 0.25,
            blocked_secs: 0.25,
        }]);
        t.set_task_counts(&[("sync".into(), "completed".into(), 4)]);
        let text = t.render();
        assert!(
            text.contains("pulp_stage_items_out_total{stage=\"ArtifactDownloader\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "pulp_stage_seconds_total{stage=\"ArtifactDownloader\",state=\"busy\"} 0.5"
            ),
            "{text}"
        );
        assert!(
            text.contains("pulp_tasks{name=\"sync\",state=\"completed\"} 4"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
    }
}
