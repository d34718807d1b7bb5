//! The `file://` downloader: copies a local file into a temp file in 1 MiB blocking reads, with
//! the same hashing and validation as HTTP. The path must be absolute and free of `..`.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use url::Url;

use super::sink::{Sink, Tee, Written, BUFFER_SIZE};
use super::{DownloadError, DownloadStats, Failure};
use crate::models::Expected;

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

/// One attempt: read `path` into a fresh sink.
pub(crate) async fn attempt(
    path: &Path,
    url_str: &str,
    expected: &Expected,
    tmp_dir: &Path,
    stats: &DownloadStats,
    tee: Option<&Tee>,
) -> Result<Written, Failure> {
    stats.request();
    let owned = path.to_path_buf();
    let (mut file, len) = tokio::task::spawn_blocking(move || -> io::Result<_> {
        let file = std::fs::File::open(&owned)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a directory",
            ));
        }
        Ok((file, meta.len()))
    })
    .await
    .map_err(io::Error::other)
    .and_then(|r| r)
    .map_err(|e| io_error(url_str, path, e))?;

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

    let mut sink = Sink::new(tmp_dir.to_path_buf(), &expected.other, Some(len)).with_tee(tee);
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
