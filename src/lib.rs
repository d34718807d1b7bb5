//! pulp-rs: the core of Pulp 3 in Rust. Mirror repositories into a store you own, keep every
//! change as a numbered repository version, and serve any version.
//!
//! # Layout
//!
//! Layers point one way: `cli` / `server` -> [`api`] / [`content`] -> [`tasks`] ->
//! [`plugins`] / [`sync`] -> [`stages`] -> [`declarative`] / [`downloader`] -> [`db`] /
//! [`storage`] -> [`models`]; [`secrets`] is used by `db` and `server`. Beside them, [`validation`] and [`href`] (used by `api` and
//! `tasks`, above `plugins`) and [`telemetry`] (a leaf every layer may push numbers into).
//! Task functions never import `api`; `telemetry` imports nothing from the crate.
//!
//! - [`models`]: the data model as plain values (remotes, repositories, versions, content,
//!   artifacts), shared by every layer.
//! - [`stages`]: the sync pipeline: the `Stage` trait, bounded links, batching, per-stage
//!   metrics, and the default stages from QueryExistingContents to ContentUnassociation.
//! - [`declarative`]: what a first stage emits: unsaved content with its declarative
//!   artifacts, and the future that resolves when the unit is saved.
//! - [`downloader`]: HTTP(S) and `file://` downloads with validation, per-remote concurrency,
//!   rate limits and retries; one factory per remote.
//! - [`storage`]: content-addressed artifacts behind one trait: the filesystem (adopted per
//!   batch with one `syncfs`) or S3-compatible object storage (uploaded once validated).
//! - [`secrets`]: remote passwords and keys encrypted at rest, the key file, key rotation.
//! - [`db`]: the `Store` trait and its SQLite (default) and PostgreSQL backends.
//! - [`sync`]: runs a pipeline against a new repository version and commits it only when every
//!   stage returned Ok.
//! - [`plugins`]: content types; the core never names one (`plugins::file` is the first).
//! - [`tasking`]: tasks in the database: dispatch, workers, FIFO resource reservations,
//!   cancellation, heartbeats and progress reports.
//! - [`api`]: the pulpcore-compatible REST API at `/pulp/api/v3/`, its route table and the
//!   OpenAPI document built from it.
//! - [`content`]: the content app at `/pulp/content/`: distributions, Range, on-demand fetches.
//! - [`tasks`]: the task functions workers run (sync, modify, publish, deletes, cleanup), each
//!   with its typed arguments; they know tasking, the store, plugins and sync, never HTTP.
//! - [`telemetry`]: the process's Prometheus metrics (stages, downloads, tasks, content app);
//!   callers hand it plain numbers.
//! - [`validation`]: the field rules the API and the tasks share: bodies read field by field,
//!   remotes and repositories checked and applied, [`validation::FieldErrors`].
//! - [`href`]: `pulp_href` / `prn` of every object, and parsing them back.
//! - [`server`]: settings and the parts of `pulp-rs serve` (API, content app, workers).
//! - [`fixture`]: local fixtures and a static server for benchmarks.
//!
//! The `pulp-rs` command line lives in the binary (`src/cli/`), the only place that uses anyhow.

pub mod api;
pub mod content;
pub mod db;
pub mod declarative;
pub mod downloader;
pub mod fixture;
pub mod href;
pub mod models;
pub mod plugins;
pub mod secrets;
pub mod server;
pub mod stages;
pub mod storage;
pub mod sync;
pub mod tasking;
pub mod tasks;
pub mod telemetry;
pub mod validation;
