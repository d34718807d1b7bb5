//! Package indices as a stream of uncompressed bytes, whatever their compression (`.xz`,
//! `.gz` or none): [`open`] wraps a file in the matching streaming decoder
//! (`async-compression`), so an index is never decompressed whole into memory or onto disk. A
//! cut or corrupt file shows as an I/O error from the reader.

use std::path::Path;

use async_compression::tokio::bufread::{GzipDecoder, XzDecoder};
use tokio::io::{AsyncBufRead, BufReader};

/// Bytes read from the file at once.
const READ_BUFFER: usize = 64 * 1024;

/// How an index file is compressed, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
}

impl Compression {
    pub fn of_path(path: &str) -> Compression {
        if path.ends_with(".xz") {
            Compression::Xz
        } else if path.ends_with(".gz") {
            Compression::Gzip
        } else {
            Compression::None
        }
    }
}

/// A buffered reader of the uncompressed bytes of `inner`.
pub fn decoder<R>(inner: R, compression: Compression) -> Box<dyn AsyncBufRead + Unpin + Send>
where
    R: AsyncBufRead + Unpin + Send + 'static,
{
    match compression {
        Compression::None => Box::new(inner),
        Compression::Gzip => {
            let mut d = GzipDecoder::new(inner);
            d.multiple_members(true);
            Box::new(BufReader::with_capacity(READ_BUFFER, d))
        }
        Compression::Xz => {
            let mut d = XzDecoder::new(inner);
            d.multiple_members(true);
            Box::new(BufReader::with_capacity(READ_BUFFER, d))
        }
    }
}

/// A reading error of a decoder in words: liblzma reports a stream cut short as "out of
/// memory" (its `LZMA_BUF_ERROR` surfaces as `MemNeeded`), so both that and an early end of
/// input read as a cut or corrupt file.
pub fn describe(e: &std::io::Error, compression: Compression) -> String {
    use std::io::ErrorKind;
    match (compression, e.kind()) {
        (Compression::None, _) => e.to_string(),
        (_, ErrorKind::UnexpectedEof | ErrorKind::OutOfMemory) => {
            "the compressed data ends early (a cut or corrupt file)".to_string()
        }
        _ => format!("corrupt compressed data: {e}"),
    }
}

/// Opens the file at `path` as a stream of uncompressed bytes.
pub async fn open(
    path: &Path,
    compression: Compression,
) -> std::io::Result<Box<dyn AsyncBufRead + Unpin + Send>> {
    let file = tokio::fs::File::open(path).await?;
    Ok(decoder(
        BufReader::with_capacity(READ_BUFFER, file),
        compression,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn read_all(bytes: Vec<u8>, c: Compression) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        decoder(std::io::Cursor::new(bytes), c)
            .read_to_end(&mut out)
            .await?;
        Ok(out)
    }

    fn compress(cmd: &str, data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut child = std::process::Command::new(cmd)
            .arg("-c")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("compressor on PATH");
        child.stdin.take().unwrap().write_all(data).unwrap();
        child.wait_with_output().unwrap().stdout
    }

    #[test]
    fn compression_follows_the_name() {
        assert_eq!(Compression::of_path("a/Packages.xz"), Compression::Xz);
        assert_eq!(Compression::of_path("a/Packages.gz"), Compression::Gzip);
        assert_eq!(Compression::of_path("a/Packages"), Compression::None);
    }

    #[tokio::test]
    async fn decodes_xz_and_gzip_and_fails_on_a_cut_xz() {
        let data = "Package: a\nVersion: 1\n\n".repeat(2000).into_bytes();
        let xz = compress("xz", &data);
        let gz = compress("gzip", &data);
        assert_eq!(read_all(xz.clone(), Compression::Xz).await.unwrap(), data);
        assert_eq!(read_all(gz, Compression::Gzip).await.unwrap(), data);
        assert_eq!(
            read_all(data.clone(), Compression::None).await.unwrap(),
            data
        );
        for cut in [0, 1, xz.len() / 2, xz.len() - 1] {
            let e = read_all(xz[..cut].to_vec(), Compression::Xz)
                .await
                .expect_err("a cut .xz fails");
            assert!(
                describe(&e, Compression::Xz).contains("ends early"),
                "cut at {cut}: {e}"
            );
        }
    }
}
