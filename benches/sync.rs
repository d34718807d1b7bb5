//! One full file sync from a local HTTP server (1,000 x 4 KiB, immediate) into a fresh SQLite
//! data directory per iteration; only the sync itself is timed. Also times the no-op re-sync.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pulp_rs::fixture::{write_fixture, StaticServer};
use pulp_rs::models::{Policy, Remote};
use pulp_rs::plugins::file::FilePlugin;
use pulp_rs::storage::ArtifactStorage;
use pulp_rs::sync::{sync, SyncContext};
use tokio_util::sync::CancellationToken;

const COUNT: usize = 1_000;
const SIZE: usize = 4096;

async fn fresh(
    url: &str,
    dir: &std::path::Path,
) -> (SyncContext, pulp_rs::models::Repository, Remote) {
    let store = pulp_rs::db::connect(&format!("sqlite://{}", dir.join("pulp.db").display()))
        .await
        .expect("db");
    let storage = ArtifactStorage::open(dir.join("media")).expect("storage");
    let remote = store
        .create_remote(&Remote::new("file.file", "r", url, Policy::Immediate))
        .await
        .expect("remote");
    let repo = store
        .create_repository("file.file", "repo", Some(remote.id))
        .await
        .expect("repo");
    (SyncContext::new(store, storage), repo, remote)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fixture = tempfile::tempdir().expect("tempdir");
    write_fixture(fixture.path(), COUNT, SIZE).expect("fixture");
    let server = rt
        .block_on(StaticServer::start(fixture.path(), None))
        .expect("server");
    let url = server.url("PULP_MANIFEST");

    let mut group = c.benchmark_group("file_sync");
    group.throughput(Throughput::Elements(COUNT as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("1000x4KiB_immediate", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let url = url.clone();
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let (ctx, repo, remote) = fresh(&url, dir.path()).await;
                    let t = Instant::now();
                    sync(
                        &ctx,
                        &FilePlugin,
                        &repo,
                        &remote,
                        false,
                        CancellationToken::new(),
                    )
                    .await
                    .expect("sync");
                    total += t.elapsed();
                }
                total
            }
        })
    });
    group.bench_function("1000x4KiB_noop_resync", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let url = url.clone();
            async move {
                let dir = tempfile::tempdir().expect("tempdir");
                let (ctx, repo, remote) = fresh(&url, dir.path()).await;
                sync(
                    &ctx,
                    &FilePlugin,
                    &repo,
                    &remote,
                    false,
                    CancellationToken::new(),
                )
                .await
                .expect("first sync");
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    sync(
                        &ctx,
                        &FilePlugin,
                        &repo,
                        &remote,
                        false,
                        CancellationToken::new(),
                    )
                    .await
                    .expect("re-sync");
                    total += t.elapsed();
                }
                total
            }
        })
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
