//! On-demand and streamed content: a content artifact without an artifact is fetched from its
//! remote artifact's URL with the remote's downloader ([`DownloaderFactory::download_streaming`]),
//! each chunk going to the client as it arrives while the downloader hashes it into a temp file.
//!
//! - `on_demand` (and `immediate`, for a unit synced before the policy changed): once the size
//!   and digests matched, the file is adopted into storage, its artifact row inserted and the
//!   content artifact linked; only then does the client get the last chunk. The download runs in its
//!   own task, so a client leaving does not stop the save. Concurrent requests for the same
//!   content artifact in this process share one download: the first streams, the others wait
//!   for the saved artifact and serve it from storage. Across processes, the fetch needs the
//!   content artifact's lease in the database (`content_fetch_leases`, [`LEASE_TTL`], renewed
//!   every third of it while the fetch runs): a process that cannot take it waits (polling
//!   with backoff up to 200 ms) until the holder linked the artifact, then serves it from
//!   storage, or until the lease is gone (freed at once when a fetch fails, or expired when its
//!   holder died) and takes it. It takes the lease before it looks for the link: a holder
//!   links before it frees, so a lease taken finds the artifact linked or is the one fetch.
//!   Should two fetches still happen (a lease lost to a stall longer than its TTL), the
//!   artifact insert tolerates it (same sha256, one row) and the link is idempotent.
//! - `streamed`: every request downloads; nothing is saved; a client leaving aborts the
//!   download (its temp file is deleted).
//! - A failure before any byte reached the client (remote down, 404, a size announced wrong)
//!   answers 502 with the reason; after (a digest mismatch is only known at the end) the body
//!   ends with an error, which breaks the connection: the last chunk is held back until the
//!   download is validated, so the client never sees the full announced length of bad bytes.
//!   Nothing is stored either way.
//! - HEAD answers from the remote artifact's recorded size without fetching.
//! - A `Range` on content not yet downloaded is read against the recorded size: past the end
//!   (or malformed) is a 416 at once, without fetching; otherwise the whole file is fetched (and
//!   saved, on_demand) as for a plain GET while the 206 answer carries only the requested bytes
//!   as they stream by. The last of them is held back until the download is validated, so a
//!   range answer completes only once its bytes are known good. Followers of a download wait
//!   for the saved artifact and get their range from storage.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::serve::{self, file_headers, Range};
use super::{empty, not_found, text, ContentState};
use crate::api::AppState;
use crate::downloader::{DownloadSettings, DownloaderFactory, Tee};
use crate::models::ServedFile;
use crate::models::{Artifact, Expected, NewArtifact, Policy, Remote, RemoteArtifact};

/// What followers of a download wait on: the saved artifact, or why there is none.
pub(super) type Waiter = watch::Receiver<Option<Result<Artifact, String>>>;

type Inflight = Arc<Mutex<std::collections::HashMap<Uuid, Waiter>>>;

/// Removes a download's entry from the in-flight map however its task ends.
struct InflightEntry {
    map: Inflight,
    key: Uuid,
}

impl Drop for InflightEntry {
    fn drop(&mut self) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// Aborts a spawned download when the response body is dropped (streamed policy).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn bad_gateway(msg: &str) -> Response {
    text(
        StatusCode::BAD_GATEWAY,
        format!("502: cannot fetch the content from its remote: {msg}\n"),
    )
}

/// Serves a file of the distribution whose content artifact has no artifact yet.
pub async fn serve(
    cs: &ContentState,
    f: &ServedFile,
    rel: &str,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let Some(ca_id) = f.content_artifact_id else {
        return not_found();
    };
    let store = &cs.app.store;
    let ras = match store.remote_artifacts(ca_id).await {
        Ok(r) => r,
        Err(e) => return super::db_error(e),
    };
    let mut chosen = None;
    for ra in ras {
        match store.get_remote(ra.remote_id).await {
            Ok(remote) => {
                chosen = Some((ra, remote));
                break;
            }
            Err(e) => tracing::warn!(error = %e, "remote of a remote artifact unavailable"),
        }
    }
    let Some((ra, remote)) = chosen else {
        return text(
            StatusCode::NOT_FOUND,
            "404: the content is not downloaded and no remote can provide it\n",
        );
    };
    let size = ra.size.or(f.remote_size);
    let mut hdrs = file_headers(rel, ra.sha256.as_deref(), size, f.pulp_created);
    if head {
        if let Some(size) = size {
            hdrs.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        }
        return (StatusCode::OK, hdrs, empty()).into_response();
    }
    // Ranges are read against the recorded size; without one the whole file is sent.
    let mut range = None;
    if let Some(size) = size {
        hdrs.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let etag = format!("\"{}\"", ra.sha256.as_deref().unwrap_or_default());
        match serve::requested_range(headers, size, &etag) {
            Range::Full => {}
            Range::Bytes(s, e) => {
                range = Some(Slice {
                    start: s,
                    end: e,
                    size,
                })
            }
            Range::Unsatisfiable => return serve::unsatisfiable(hdrs, size),
        }
    }
    if remote.policy == Policy::Streamed {
        return stream(cs.app.clone(), ra, remote, hdrs, range, None).await;
    }
    // One download per content artifact in this process (the others follow it), and across
    // processes through the database lease.
    loop {
        let (leader, mut waiter) = {
            let mut map = cs.inflight.lock().unwrap_or_else(PoisonError::into_inner);
            match map.get(&ca_id) {
                Some(w) => (None, w.clone()),
                None => {
                    let (tx, rx) = watch::channel(None);
                    map.insert(ca_id, rx.clone());
                    (Some(tx), rx)
                }
            }
        };
        if let Some(tx) = leader {
            let entry = InflightEntry {
                map: cs.inflight.clone(),
                key: ca_id,
            };
            return lead(
                cs,
                f,
                rel,
                headers,
                (ra, remote, hdrs, range),
                (ca_id, tx, entry),
            )
            .await;
        }
        let outcome = match waiter.wait_for(Option::is_some).await {
            Ok(v) => v.clone(),
            // The request leading in this process went away before an outcome: take over.
            Err(_) => None,
        };
        match outcome {
            Some(Ok(artifact)) => return from_storage(cs, &artifact, f, rel, headers, head).await,
            Some(Err(e)) => return bad_gateway(&e),
            None => continue,
        }
    }
}

/// Serves a saved artifact.
async fn from_storage(
    cs: &ContentState,
    artifact: &Artifact,
    f: &ServedFile,
    rel: &str,
    headers: &HeaderMap,
    head: bool,
) -> Response {
    let prepared = serve::Prepared::new(artifact, rel, f.pulp_created);
    serve::respond_stored(&cs.files, &cs.app.storage, &prepared, headers, head).await
}

/// How long a fetch lease lasts unless renewed (a crashed holder's lease frees itself then).
pub const LEASE_TTL: Duration = Duration::from_secs(30);
/// How long a request waiting for another process's fetch sleeps at most between looks.
const WAIT_STEP_MAX: Duration = Duration::from_millis(200);

/// Leads this process's requests for the content artifact: serves the artifact if another
/// process saved it meanwhile, else takes the lease and fetches, else waits for the holder.
async fn lead(
    cs: &ContentState,
    f: &ServedFile,
    rel: &str,
    headers: &HeaderMap,
    (ra, remote, hdrs, range): (RemoteArtifact, Remote, HeaderMap, Option<Slice>),
    (ca_id, tx, entry): (Uuid, Outcome, InflightEntry),
) -> Response {
    let store = &cs.app.store;
    let mut pause = Duration::from_millis(10);
    loop {
        // The lease first, then the link: a holder links the artifact before it frees the
        // lease, so with the lease taken, either the artifact is linked (fetched by another
        // process meanwhile) or this is the one fetch. (A lease dropped still held is freed.)
        let taken = store
            .acquire_fetch_lease(ca_id, &cs.holder, LEASE_TTL)
            .await;
        let lease = taken.as_ref().is_ok_and(|t| *t).then(|| Lease {
            store: store.clone(),
            ca: ca_id,
            holder: cs.holder.clone(),
            held: true,
        });
        let linked = match taken {
            Ok(_) => store.linked_artifact(ca_id).await,
            Err(e) => Err(e),
        };
        match (linked, lease) {
            (Ok(Some(a)), _) => {
                drop(entry);
                let _ = tx.send(Some(Ok(a.clone())));
                return from_storage(cs, &a, f, rel, headers, false).await;
            }
            (Ok(None), Some(lease)) => {
                return stream(
                    cs.app.clone(),
                    ra,
                    remote,
                    hdrs,
                    range,
                    Some((ca_id, tx, entry, lease)),
                )
                .await;
            }
            (Ok(None), None) => {}
            (Err(e), _) => {
                drop(entry);
                let _ = tx.send(Some(Err(e.to_string())));
                return super::db_error(e);
            }
        }
        // Another process fetches it: wait for its link (or for its lease to go).
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(WAIT_STEP_MAX);
    }
}

/// A fetch lease held by this process; released (in the background) if dropped still held.
struct Lease {
    store: crate::db::DynStore,
    ca: Uuid,
    holder: Arc<str>,
    held: bool,
}

impl Lease {
    /// Renews the lease every third of its life, forever (raced against the fetch).
    async fn keep(&self) {
        loop {
            tokio::time::sleep(LEASE_TTL / 3).await;
            match self
                .store
                .renew_fetch_lease(self.ca, &self.holder, LEASE_TTL)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(content_artifact = %self.ca, "on-demand fetch lease lost")
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew an on-demand fetch lease"),
            }
        }
    }

    /// Frees the lease now.
    async fn release(mut self) {
        if let Err(e) = self.store.release_fetch_lease(self.ca, &self.holder).await {
            tracing::warn!(error = %e, "cannot free an on-demand fetch lease");
        }
        self.held = false;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.held {
            return;
        }
        let (store, ca, holder) = (self.store.clone(), self.ca, self.holder.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = store.release_fetch_lease(ca, &holder).await;
            });
        }
    }
}

type Outcome = watch::Sender<Option<Result<Artifact, String>>>;

type Leader = (Uuid, Outcome, InflightEntry, Lease);

/// Bytes `start..=end` of a file of `size` bytes.
#[derive(Debug, Clone, Copy)]
struct Slice {
    start: u64,
    end: u64,
    size: u64,
}

/// What the response body is made of: the download's chunks, cut to the requested slice.
struct Pieces {
    rx: mpsc::Receiver<Bytes>,
    /// Bytes of the file received so far.
    pos: u64,
    range: Option<Slice>,
}

impl Pieces {
    /// The next piece of the requested bytes, or `None` once the download's channel closed;
    /// chunks outside the slice are read and dropped (the download goes on to the end).
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            let chunk = self.rx.recv().await?;
            let at = self.pos;
            self.pos += chunk.len() as u64;
            let Some(r) = self.range else {
                return Some(chunk);
            };
            let lo = r.start.max(at);
            let hi = r.end.saturating_add(1).min(self.pos);
            if lo < hi {
                // Both bounds lie within this chunk, so the offsets fit in usize.
                let from = usize::try_from(lo - at).unwrap_or(usize::MAX);
                let to = usize::try_from(hi - at).unwrap_or(usize::MAX);
                return Some(chunk.slice(from..to));
            }
        }
    }
}

/// Starts the download in its own task and answers with its bytes (those of `range` only,
/// with a 206, when given) as they come.
async fn stream(
    app: AppState,
    ra: RemoteArtifact,
    remote: Remote,
    mut hdrs: HeaderMap,
    range: Option<Slice>,
    leader: Option<Leader>,
) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(8);
    let (done_tx, done_rx) = oneshot::channel::<Result<(), String>>();
    let saving = leader.is_some();
    let size = ra.size;
    let handle = tokio::spawn(async move {
        let tee = Tee::new(tx);
        let save_ca = leader.as_ref().map(|(ca, _, _, _)| *ca);
        let started = std::time::Instant::now();
        let result = match &leader {
            Some((_, _, _, lease)) => {
                tokio::select! {
                    r = fetch(&app, &ra, &remote, &tee, save_ca) => r,
                    () = lease.keep() => unreachable!("keeping a lease never ends"),
                }
            }
            None => fetch(&app, &ra, &remote, &tee, save_ca).await,
        };
        drop(tee);
        crate::telemetry::global().record_on_demand(
            match &result {
                Ok(Some(_)) => "saved",
                Ok(None) => "streamed",
                Err(_) => "failed",
            },
            started.elapsed(),
        );
        if let Err(e) = &result {
            tracing::warn!(url = %ra.url, error = %e, "on-demand fetch failed");
        }
        if let Some((_, wtx, entry, lease)) = leader {
            let shared = match &result {
                Ok(Some(a)) => Ok(a.clone()),
                Ok(None) => Err("nothing saved".to_string()),
                Err(e) => Err(e.clone()),
            };
            // Linked in the database first (saved), then the lease freed (at once on a
            // failure too), then out of the map, then followers woken.
            lease.release().await;
            drop(entry);
            let _ = wtx.send(Some(shared));
        }
        let _ = done_tx.send(result.map(|_| ()));
    });
    let guard = (!saving).then(|| AbortOnDrop(handle));
    let mut pieces = Pieces { rx, pos: 0, range };
    let first = pieces.next().await;
    let Some(first) = first else {
        return match done_rx.await {
            Ok(Ok(())) => {
                hdrs.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
                (StatusCode::OK, hdrs, empty()).into_response()
            }
            Ok(Err(e)) => bad_gateway(&e),
            Err(_) => bad_gateway("the download stopped"),
        };
    };
    let status = match range {
        Some(r) => {
            hdrs.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start, r.end, r.size))
                    .unwrap_or_else(|_| HeaderValue::from_static("")),
            );
            hdrs.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(r.end - r.start + 1),
            );
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            if let Some(size) = size {
                hdrs.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            }
            StatusCode::OK
        }
    };
    // The latest piece is held back until the next one arrives or the download is known
    // good (validated, and saved when saving): a client never receives the whole announced
    // length of a download that turns out corrupt, so its connection breaks short of it.
    struct St {
        pending: Option<Bytes>,
        pieces: Pieces,
        done: Option<oneshot::Receiver<Result<(), String>>>,
        _guard: Option<AbortOnDrop>,
    }
    let st = St {
        pending: Some(first),
        pieces,
        done: Some(done_rx),
        _guard: guard,
    };
    let body = futures::stream::unfold(st, |mut st| async move {
        let held = st.pending.take()?;
        match st.pieces.next().await {
            Some(next) => {
                st.pending = Some(next);
                Some((Ok(held), st))
            }
            None => {
                let outcome = match st.done.take() {
                    Some(d) => d.await.unwrap_or_else(|_| Err("download stopped".into())),
                    None => Err("download stopped".into()),
                };
                match outcome {
                    Ok(()) => Some((Ok(held), st)),
                    Err(e) => Some((Err(std::io::Error::other(e)), st)),
                }
            }
        }
    });
    (status, hdrs, Body::from_stream(body)).into_response()
}

/// Downloads the remote artifact through `tee`; with `save`, stores the file and links it to
/// that content artifact.
async fn fetch(
    app: &AppState,
    ra: &RemoteArtifact,
    remote: &Remote,
    tee: &Tee,
    save: Option<Uuid>,
) -> Result<Option<Artifact>, String> {
    let settings = DownloadSettings {
        tmp_dir: app.storage.tmp_dir().to_path_buf(),
        ..app.download.clone()
    };
    let factory = DownloaderFactory::new(remote, settings).map_err(|e| e.to_string())?;
    let expected = Expected {
        size: ra.size,
        sha256: ra.sha256.clone(),
        other: ra.other.clone(),
    };
    let res = factory
        .download_streaming(&ra.url, &expected, tee)
        .await
        .map_err(|e| e.to_string())?;
    let Some(ca) = save else {
        return Ok(None); // streamed: the temp file is deleted here
    };
    let (sha256, size, other) = (res.sha256.clone(), res.size, res.other.clone());
    let rel = app
        .storage
        .adopt_batch(vec![(res.temp, sha256.clone(), size)])
        .await
        .map_err(|e| e.to_string())?;
    let rows = app
        .store
        .insert_artifacts(&[NewArtifact {
            sha256,
            size,
            other,
            file: rel.into_iter().next().unwrap_or_default(),
        }])
        .await
        .map_err(|e| e.to_string())?;
    let artifact = rows
        .into_iter()
        .next()
        .ok_or_else(|| "artifact insert returned nothing".to_string())?;
    app.store
        .link_artifact(ca, artifact.id)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(artifact))
}
