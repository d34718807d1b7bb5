//! Task wakeups between processes that share one SQLite file (`pulp-rs api` and `pulp-rs
//! worker` on one machine), where PostgreSQL would use `NOTIFY` / `LISTEN`.
//!
//! Every store that runs workers (one per process, in production) binds a Unix datagram socket
//! in `<database file>.wakeups/` (a directory only its user may enter). Once a dispatch or
//! release that makes a task runnable has committed, it sends one byte to every socket there
//! but the sending store's own (its own dispatches wake its workers in the process): their
//! workers claim at once instead of at their next poll (250 ms), which stays as the safety net.
//! A socket nobody listens on any more (a killed process) refuses the datagram and is removed.
//! Nothing here is ever needed for correctness: a lost datagram only delays a claim to the
//! next poll.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

/// The directory of the sockets of the processes sharing `database` (its file path).
pub fn dir_of(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".wakeups");
    PathBuf::from(name)
}

/// A store's side of the wakeups of one database file.
pub struct Wakeups {
    dir: PathBuf,
    /// The sockets this store listens on: its sends skip them.
    own: Mutex<Vec<PathBuf>>,
}

impl Wakeups {
    pub fn new(database: &Path) -> Wakeups {
        Wakeups {
            dir: dir_of(database),
            own: Mutex::new(Vec::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Binds a socket for this store; its sends skip it from now on.
    pub fn listen(&self) -> io::Result<Listener> {
        let listener = Listener::bind(&self.dir)?;
        self.own
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener.path.clone());
        Ok(listener)
    }

    /// Wakes every other store listening beside the database.
    pub fn send(&self) {
        let own = self
            .own
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        send(&self.dir, &own);
    }
}

/// Sends a wakeup to every socket in `dir` but those of `skip`, removing the sockets of
/// processes gone. Never blocks: a socket whose queue is full already has a wakeup waiting.
fn send(dir: &Path, skip: &[PathBuf]) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    if sock.set_nonblocking(true).is_err() {
        return;
    }
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "sock") || skip.contains(&path) {
            continue;
        }
        if let Err(e) = sock.send_to(b"w", &path) {
            if e.kind() == io::ErrorKind::ConnectionRefused {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// The socket this process listens on; its file goes with it.
pub struct Listener {
    sock: tokio::net::UnixDatagram,
    path: PathBuf,
}

impl Listener {
    /// Binds a new socket in `dir` (created if missing).
    fn bind(dir: &Path) -> io::Result<Listener> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{}.{n}.sock", std::process::id()));
        // A file left by an earlier process that had this pid.
        let _ = std::fs::remove_file(&path);
        let sock = tokio::net::UnixDatagram::bind(&path)?;
        Ok(Listener { sock, path })
    }

    /// Calls `wake` on every datagram until `stop` fires.
    pub async fn forward(&self, wake: &(dyn Fn() + Send + Sync), stop: &CancellationToken) {
        let mut buf = [0u8; 8];
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                got = self.sock.recv(&mut buf) => match got {
                    Ok(_) => wake(),
                    Err(e) => {
                        tracing::warn!(error = %e, "task wakeup socket failed; polling only");
                        return;
                    }
                },
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_wakeup_reaches_every_listener_and_gone_ones_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = dir_of(&tmp.path().join("pulp.db"));
        assert_eq!(dir, tmp.path().join("pulp.db.wakeups"));
        send(&dir, &[]); // no directory yet: nothing to do, no error

        // A killed process leaves its socket file behind, bound to nothing.
        std::fs::create_dir_all(&dir).unwrap();
        let gone_path = dir.join("1.0.sock");
        drop(UnixDatagram::bind(&gone_path).unwrap());
        assert!(gone_path.exists());

        let (a, b) = (Listener::bind(&dir).unwrap(), Listener::bind(&dir).unwrap());
        assert_ne!(a.path, b.path);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        for (name, l) in [("a", a), ("b", b)] {
            let (tx, stop) = (tx.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let wake = move || tx.send(name).unwrap();
                l.forward(&wake, &stop).await;
                l.path.clone()
            }));
        }
        send(&dir, &[]);
        let mut heard = Vec::new();
        for _ in 0..2 {
            let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
            heard.push(got.expect("a listener heard nothing").unwrap());
        }
        heard.sort();
        assert_eq!(heard, ["a", "b"]);
        assert!(!gone_path.exists(), "the dead socket is removed");

        stop.cancel();
        for t in tasks {
            let path = t.await.unwrap();
            assert!(!path.exists(), "a listener's file goes with it");
        }
    }

    #[tokio::test]
    async fn a_store_does_not_wake_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("pulp.db");
        let (mine, other) = (Wakeups::new(&db), Wakeups::new(&db));
        let listener = mine.listen().unwrap();
        let mut buf = [0u8; 8];
        mine.send();
        let quiet = tokio::time::timeout(Duration::from_millis(200), listener.sock.recv(&mut buf));
        assert!(quiet.await.is_err(), "a store's own send reached it");
        other.send();
        let heard = tokio::time::timeout(Duration::from_secs(10), listener.sock.recv(&mut buf));
        assert_eq!(
            heard
                .await
                .expect("the other store's send was lost")
                .unwrap(),
            1
        );
    }
}
