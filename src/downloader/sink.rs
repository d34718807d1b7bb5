//! Where downloaded bytes go: hashing and the temp file.
//!
//! A [`Sink`] buffers up to 1 MiB in memory (small files cost one `create` + one `write`), then
//! spills to a temp file created in the storage's tmp dir. Hashing and writing of each buffer
//! happen together in `spawn_blocking`, so neither blocks the runtime. The temp file is owned by
//! the sink (or by the blocking closure while it runs), so dropping the download future deletes
//! it. [`check`] validates size and digests at the end. No fsync: storage syncs per batch.

use std::io::{self, Write};
use std::path::PathBuf;

use sha2::digest::Digest;
use sha2::{Sha224, Sha256, Sha384, Sha512};
use tempfile::{NamedTempFile, TempPath};

use super::DownloadError;
use crate::models::{Expected, OtherDigests};

/// Bytes kept in memory before they are hashed and written out.
pub(crate) const BUFFER_SIZE: usize = 1 << 20;

/// sha256 always; sha224/384/512 only when expected (they cost CPU).
struct Hashers {
    sha256: Sha256,
    sha224: Option<Sha224>,
    sha384: Option<Sha384>,
    sha512: Option<Sha512>,
}

impl Hashers {
    fn new(wanted: &OtherDigests) -> Hashers {
        Hashers {
            sha256: Sha256::new(),
            sha224: wanted.sha224.as_ref().map(|_| Sha224::new()),
            sha384: wanted.sha384.as_ref().map(|_| Sha384::new()),
            sha512: wanted.sha512.as_ref().map(|_| Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        self.sha256.update(data);
        if let Some(h) = &mut self.sha224 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha384 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
    }

    fn finalize(self) -> (String, OtherDigests) {
        let other = OtherDigests {
            sha224: self.sha224.map(|h| hex::encode(h.finalize())),
            sha384: self.sha384.map(|h| hex::encode(h.finalize())),
            sha512: self.sha512.map(|h| hex::encode(h.finalize())),
        };
        (hex::encode(self.sha256.finalize()), other)
    }
}

/// What the blocking side owns between flushes.
struct State {
    hashers: Hashers,
    file: Option<NamedTempFile>,
}

/// The bytes of one attempt, written to a temp file with their digests.
#[derive(Debug)]
pub(crate) struct Written {
    pub temp: TempPath,
    pub size: u64,
    pub sha256: String,
    pub other: OtherDigests,
}

/// Receives a copy of every chunk of a download as it arrives (a client being streamed to).
/// When the receiver is gone the download carries on without it.
#[derive(Debug, Clone)]
pub struct Tee {
    tx: tokio::sync::mpsc::Sender<bytes::Bytes>,
    forwarded: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Tee {
    pub fn new(tx: tokio::sync::mpsc::Sender<bytes::Bytes>) -> Tee {
        Tee {
            tx,
            forwarded: Default::default(),
        }
    }

    /// Bytes handed to the receiver so far (all attempts).
    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Where one attempt's bytes go: a temp file in `tmp_dir`, and a copy to `tee` if any.
#[derive(Clone, Copy)]
pub(crate) struct Dest<'a> {
    pub tmp_dir: &'a std::path::Path,
    pub tee: Option<&'a Tee>,
}

/// Receives the body of one attempt. Dropping it deletes whatever was written.
pub(crate) struct Sink {
    tmp_dir: PathBuf,
    buf: Vec<u8>,
    state: Option<State>,
    received: u64,
    tee: Option<Tee>,
    /// The most bytes accepted (the metadata size cap), whatever the expected size.
    cap: Option<u64>,
}

impl Sink {
    pub(crate) fn new(tmp_dir: PathBuf, wanted: &OtherDigests, size_hint: Option<u64>) -> Sink {
        let capacity = size_hint
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(BUFFER_SIZE)
            .min(BUFFER_SIZE);
        Sink {
            tmp_dir,
            buf: Vec::with_capacity(capacity),
            state: Some(State {
                hashers: Hashers::new(wanted),
                file: None,
            }),
            received: 0,
            tee: None,
            cap: None,
        }
    }

    /// Also hands every accepted chunk to `tee`.
    pub(crate) fn with_tee(mut self, tee: Option<&Tee>) -> Sink {
        self.tee = tee.cloned();
        self
    }

    /// Refuses a body longer than `cap` bytes.
    pub(crate) fn with_cap(mut self, cap: Option<u64>) -> Sink {
        self.cap = cap;
        self
    }

    /// Bytes received so far.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Takes one chunk of a body as received: counts it in `stats`, refuses a body longer than
    /// `expected_size` (a server sending more, or a local file growing while read), writes it.
    pub(crate) async fn accept(
        &mut self,
        url: &str,
        data: &[u8],
        expected_size: Option<u64>,
        stats: &super::DownloadStats,
    ) -> Result<(), super::DownloadError> {
        stats.received(data.len() as u64);
        let total = self.received() + data.len() as u64;
        if let Some(limit) = self.cap {
            if total > limit {
                return Err(super::DownloadError::TooLarge {
                    url: url.to_string(),
                    limit,
                });
            }
        }
        if let Some(want) = expected_size {
            if total > want {
                return Err(super::DownloadError::Size {
                    url: url.to_string(),
                    expected: want,
                    actual: total,
                });
            }
        }
        self.push(data)
            .await
            .map_err(|source| super::DownloadError::Io {
                url: url.to_string(),
                source,
            })?;
        if let Some(tee) = &self.tee {
            if tee
                .tx
                .send(bytes::Bytes::copy_from_slice(data))
                .await
                .is_err()
            {
                self.tee = None;
            } else {
                tee.forwarded
                    .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Appends `data`, spilling to the temp file when the buffer is full.
    pub(crate) async fn push(&mut self, data: &[u8]) -> io::Result<()> {
        self.received += data.len() as u64;
        let mut rest = data;
        while !rest.is_empty() {
            let room = BUFFER_SIZE - self.buf.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.buf.extend_from_slice(now);
            rest = later;
            if self.buf.len() >= BUFFER_SIZE {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Hashes and writes the buffer in a blocking thread, creating the temp file if needed.
    async fn flush(&mut self) -> io::Result<()> {
        let mut state = self
            .state
            .take()
            .ok_or_else(|| io::Error::other("download sink used after a failed write"))?;
        let mut buf = std::mem::take(&mut self.buf);
        let tmp_dir = self.tmp_dir.clone();
        let (state, buf) = tokio::task::spawn_blocking(move || -> io::Result<(State, Vec<u8>)> {
            state.hashers.update(&buf);
            let file = match &mut state.file {
                Some(f) => f,
                None => state.file.insert(
                    tempfile::Builder::new()
                        .prefix(".download-")
                        .tempfile_in(&tmp_dir)?,
                ),
            };
            file.write_all(&buf)?;
            buf.clear();
            Ok((state, buf))
        })
        .await
        .map_err(io::Error::other)??;
        self.state = Some(state);
        self.buf = buf;
        Ok(())
    }

    /// Writes what is left, closes the file and returns it with its digests.
    pub(crate) async fn finish(mut self) -> io::Result<Written> {
        self.flush().await?;
        let state = self
            .state
            .take()
            .ok_or_else(|| io::Error::other("download sink used after a failed write"))?;
        let file = state
            .file
            .ok_or_else(|| io::Error::other("download sink has no temp file"))?;
        // Finalizing is short (one block per hasher): fine on the runtime thread. Closing the file
        // is a syscall on a file we just wrote to: cheap (no fsync).
        let (sha256, other) = state.hashers.finalize();
        Ok(Written {
            temp: file.into_temp_path(),
            size: self.received,
            sha256,
            other,
        })
    }
}

/// Checks the size, then every expected digest, of a finished attempt.
pub(crate) fn check(url: &str, expected: &Expected, got: &Written) -> Result<(), DownloadError> {
    if let Some(size) = expected.size {
        if size != got.size {
            return Err(DownloadError::Size {
                url: url.to_string(),
                expected: size,
                actual: got.size,
            });
        }
    }
    let pairs = [
        ("sha256", expected.sha256.as_ref(), Some(&got.sha256)),
        (
            "sha224",
            expected.other.sha224.as_ref(),
            got.other.sha224.as_ref(),
        ),
        (
            "sha384",
            expected.other.sha384.as_ref(),
            got.other.sha384.as_ref(),
        ),
        (
            "sha512",
            expected.other.sha512.as_ref(),
            got.other.sha512.as_ref(),
        ),
    ];
    for (algorithm, want, actual) in pairs {
        let Some(want) = want else { continue };
        let want = want.trim().to_ascii_lowercase();
        let actual = actual.cloned().unwrap_or_default();
        if want != actual {
            return Err(DownloadError::Digest {
                url: url.to_string(),
                algorithm,
                expected: want,
                actual,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tempfile::TempDir;

    fn sha256_hex(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    /// Writes `data` through a sink in chunks of `chunk` bytes; checks the file content.
    async fn write_all(data: &[u8], chunk: usize, wanted: &OtherDigests) -> (TempDir, Written) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sink = Sink::new(dir.path().to_path_buf(), wanted, None);
        for c in data.chunks(chunk.max(1)) {
            sink.push(c).await.expect("push");
        }
        let w = sink.finish().await.expect("finish");
        assert_eq!(std::fs::read(&w.temp).expect("read temp"), data);
        (dir, w)
    }

    #[tokio::test]
    async fn small_and_large_bodies_hash_and_land_on_disk() {
        for size in [
            0usize,
            1,
            1000,
            BUFFER_SIZE - 1,
            BUFFER_SIZE,
            3 * BUFFER_SIZE + 17,
        ] {
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            for chunk in [7usize, 65536, BUFFER_SIZE + 5] {
                let (_dir, w) = write_all(&data, chunk, &OtherDigests::default()).await;
                assert_eq!(w.size, size as u64);
                assert_eq!(w.sha256, sha256_hex(&data));
                assert_eq!(w.other, OtherDigests::default());
            }
        }
    }

    #[tokio::test]
    async fn other_digests_only_when_wanted() {
        let wanted = OtherDigests {
            sha224: None,
            sha384: Some(String::new()),
            sha512: Some(String::new()),
        };
        let (_dir, w) = write_all(b"abc", 2, &wanted).await;
        assert_eq!(w.other.sha224, None);
        assert_eq!(
            w.other.sha384.as_deref(),
            Some(hex::encode(Sha384::digest(b"abc")).as_str())
        );
        assert_eq!(
            w.other.sha512.as_deref(),
            Some(hex::encode(Sha512::digest(b"abc")).as_str())
        );
    }

    #[tokio::test]
    async fn check_reports_expected_and_actual() {
        let (_dir, w) = write_all(b"hello", 5, &OtherDigests::default()).await;
        let url = "http://h/f";
        let ok = Expected {
            size: Some(5),
            sha256: Some(sha256_hex(b"hello").to_uppercase()),
            other: OtherDigests::default(),
        };
        check(url, &ok, &w).expect("matches, case-insensitively");
        let bad_size = Expected {
            size: Some(6),
            ..ok.clone()
        };
        let e = check(url, &bad_size, &w).unwrap_err().to_string();
        assert!(e.contains(url) && e.contains('6') && e.contains('5'), "{e}");
        let bad_sum = Expected {
            sha256: Some("00".repeat(32)),
            ..ok.clone()
        };
        let e = check(url, &bad_sum, &w).unwrap_err().to_string();
        assert!(e.contains(&"00".repeat(32)) && e.contains(&sha256_hex(b"hello")));
    }

    #[tokio::test]
    async fn dropping_the_sink_deletes_the_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut sink = Sink::new(dir.path().to_path_buf(), &OtherDigests::default(), None);
        sink.push(&vec![1u8; 2 * BUFFER_SIZE]).await.expect("push");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1);
        drop(sink);
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 0);
    }
}
