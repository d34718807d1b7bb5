//! The `file://` downloader: copies a local file into a temp file in 1 MiB blocking reads, with
//! the same hashing and validation as HTTP. The path must be absolute and free of `..`, and it is
//! read only when it resolves (symlinks included) below one of the [`ImportPaths`]
//! (the `allowed_import_paths` setting, pulpcore's `ALLOWED_IMPORT_PATHS`; default: none, so a
//! server reads no local file for a remote unless its operator says where).

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use url::Url;

use super::sink::{Sink, Tee, Written, BUFFER_SIZE};
use super::{DownloadError, DownloadStats, Failure};
use crate::models::Expected;

/// The directories below which `file://` URLs may be read. Each is kept resolved (symlinks
/// followed) so a path is compared with what it really names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportPaths(Arc<Vec<PathBuf>>);

impl ImportPaths {
    /// No local file may be read (the default).
    pub fn none() -> ImportPaths {
        ImportPaths::default()
    }

    /// Reading is allowed below each of `dirs`, which must be absolute.
    pub fn new<P: AsRef<Path>>(dirs: &[P]) -> Result<ImportPaths, String> {
        let mut out = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let dir = dir.as_ref();
            if !dir.is_absolute() {
                return Err(format!(
                    "allowed_import_paths: {} is not an absolute path",
                    dir.display()
                ));
            }
            out.push(resolve(dir).map_err(|e| {
                format!(
                    "allowed_import_paths: cannot resolve {}: {e}",
                    dir.display()
                )
            })?);
        }
        Ok(ImportPaths(Arc::new(out)))
    }

    /// The resolved directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.0
    }

    /// Whether the resolved `path` lies below an allowed directory.
    fn allows_resolved(&self, resolved: &Path) -> bool {
        self.0.iter().any(|dir| resolved.starts_with(dir))
    }

    /// Checks a `file://` URL as a remote's `url` before it is saved: `Ok` for any other scheme,
    /// otherwise the path, resolved through the symlinks that exist now, must lie below an
    /// allowed directory. The message is meant for the API user.
    pub fn check_url(&self, raw: &str) -> Result<(), String> {
        let Ok(url) = Url::parse(raw) else {
            return Ok(());
        };
        if url.scheme() != "file" {
            return Ok(());
        }
        let path = local_path(raw, &url).map_err(|e| match e {
            DownloadError::BadUrl { reason, .. } => reason,
            other => other.to_string(),
        })?;
        if self.0.is_empty() {
            return Err(
                "file:// URLs are not allowed: the server's allowed_import_paths setting names no directory."
                    .into(),
            );
        }
        let resolved = resolve(&path).map_err(|e| format!("cannot resolve the path: {e}"))?;
        if !self.allows_resolved(&resolved) {
            return Err(format!(
                "{} is not below a directory of the server's allowed_import_paths setting.",
                path.display()
            ));
        }
        Ok(())
    }
}

/// `path` with every symlink that exists resolved: the longest existing ancestor is
/// canonicalized and the rest (which does not exist yet) appended. `path` must be absolute and
/// free of `.` / `..` components.
pub(crate) fn resolve(path: &Path) -> io::Result<PathBuf> {
    if path
        .components()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path has '.' or '..' components",
        ));
    }
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        match std::fs::canonicalize(&existing) {
            Ok(mut real) => {
                for part in rest.iter().rev() {
                    real.push(part);
                }
                return Ok(real);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let Some(name) = existing.file_name().map(|n| n.to_os_string()) else {
                    return Err(e);
                };
                rest.push(name);
                if !existing.pop() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The local path of a `file://` URL (percent-decoded), refusing `..` segments and relative or
/// remote-host forms.
pub(crate) fn local_path(raw: &str, url: &Url) -> Result<PathBuf, DownloadError> {
    let bad = |reason: &str| DownloadError::BadUrl {
        url: raw.to_string(),
        reason: reason.to_string(),
    };
    let absolute = raw
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("file://"));
    if !absolute {
        return Err(bad("not an absolute local path (file:///path)"));
    }
    // `Url` already resolved dot segments, so look at the text as given.
    let path_part = raw[7..].split(['?', '#']).next().unwrap_or_default();
    let dotdot = path_part.split(['/', '\\']).any(|seg| {
        let seg = seg.to_ascii_lowercase().replace("%2e", ".");
        seg == ".."
    });
    if dotdot {
        return Err(bad("path must not contain '..' segments"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a file URL takes no query or fragment"));
    }
    url.to_file_path()
        .map_err(|()| bad("not an absolute local path (file:///path or file://localhost/path)"))
}

fn io_error(url: &str, path: &Path, e: io::Error) -> Failure {
    DownloadError::Io {
        url: url.to_string(),
        source: io::Error::new(e.kind(), format!("{}: {e}", path.display())),
    }
    .into()
}

/// Opens `path` for reading if it resolves below `import`, refusing anything but a regular
/// file. The check is made on the path the open descriptor really names (Linux's
/// `/proc/self/fd`), so a symlink swapped in between the check and the open is caught too.
fn open_allowed(path: &Path, import: &ImportPaths) -> Result<(std::fs::File, u64), Refusal> {
    if import.dirs().is_empty() {
        return Err(Refusal::NotAllowed(
            "file:// URLs are not allowed: the allowed_import_paths setting names no directory",
        ));
    }
    let resolved = resolve(path).map_err(Refusal::Io)?;
    if !import.allows_resolved(&resolved) {
        return Err(Refusal::NotAllowed(if resolved == path {
            "not below a directory of the allowed_import_paths setting"
        } else {
            "resolves (through a symlink) to a path outside the allowed_import_paths setting"
        }));
    }
    let file = std::fs::File::open(&resolved).map_err(Refusal::Io)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if let Ok(real) = std::fs::read_link(&fd_path) {
            if !import.allows_resolved(&real) {
                return Err(Refusal::NotAllowed(
                    "resolves (through a symlink) to a path outside the allowed_import_paths setting",
                ));
            }
        }
    }
    let meta = file.metadata().map_err(Refusal::Io)?;
    if !meta.is_file() {
        return Err(Refusal::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    Ok((file, meta.len()))
}

/// Why a local file was not opened.
enum Refusal {
    NotAllowed(&'static str),
    Io(io::Error),
}

/// One attempt: read `path` into a fresh sink, if `import` allows it.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn attempt(
    path: &Path,
    url_str: &str,
    expected: &Expected,
    tmp_dir: &Path,
    stats: &DownloadStats,
    tee: Option<&Tee>,
    import: &ImportPaths,
    cap: Option<u64>,
) -> Result<Written, Failure> {
    stats.request();
    let owned = path.to_path_buf();
    let allowed = import.clone();
    let opened = tokio::task::spawn_blocking(move || open_allowed(&owned, &allowed))
        .await
        .map_err(|e| Refusal::Io(io::Error::other(e)))
        .and_then(|r| r);
    let (mut file, len) = match opened {
        Ok(ok) => ok,
        Err(Refusal::NotAllowed(reason)) => {
            return Err(DownloadError::NotAllowed {
                url: url_str.to_string(),
                reason,
            }
            .into())
        }
        Err(Refusal::Io(e)) => return Err(io_error(url_str, path, e)),
    };
    if let Some(limit) = cap {
        if len > limit {
            return Err(DownloadError::TooLarge {
                url: url_str.to_string(),
                limit,
            }
            .into());
        }
    }

    if let Some(want) = expected.size {
        if want != len {
            return Err(DownloadError::Size {
                url: url_str.to_string(),
                expected: want,
                actual: len,
            }
            .into());
        }
    }

    let mut sink = Sink::new(tmp_dir.to_path_buf(), &expected.other, Some(len))
        .with_tee(tee)
        .with_cap(cap);
    let mut buf = vec![0u8; BUFFER_SIZE];
    loop {
        let (f, b, n) = tokio::task::spawn_blocking(move || -> io::Result<_> {
            let n = read_full(&mut file, &mut buf)?;
            Ok((file, buf, n))
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r)
        .map_err(|e| io_error(url_str, path, e))?;
        file = f;
        buf = b;
        if n == 0 {
            break;
        }
        sink.accept(url_str, &buf[..n], expected.size, stats)
            .await?;
    }
    sink.finish().await.map_err(|e| {
        DownloadError::Io {
            url: url_str.to_string(),
            source: e,
        }
        .into()
    })
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_of(raw: &str) -> Result<PathBuf, DownloadError> {
        let url = Url::parse(raw).expect("parses");
        local_path(raw, &url)
    }

    #[test]
    fn paths_are_decoded_and_checked() {
        assert_eq!(
            path_of("file:///srv/repo/a%20b.txt").expect("ok"),
            PathBuf::from("/srv/repo/a b.txt")
        );
        assert_eq!(
            path_of("file://localhost/srv/x").expect("ok"),
            PathBuf::from("/srv/x")
        );
        for bad in [
            "file:///srv/../etc/passwd",
            "file:///srv/%2e%2e/etc/passwd",
            "file:///srv/.%2E/etc",
            "file://otherhost/srv/x",
            "file:///srv/x?y=1",
            "file:relative/path",
            "file:/srv/x",
        ] {
            let e = path_of(bad).expect_err(bad);
            assert!(matches!(e, DownloadError::BadUrl { .. }), "{bad}: {e}");
        }
    }
}
