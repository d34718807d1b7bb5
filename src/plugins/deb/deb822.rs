//! deb822, the format of Debian's control data: stanzas of `Field: value` lines separated by
//! blank lines, a value continued on following lines that start with a space or tab, `#`
//! comment lines ignored.
//!
//! [`Stanza`] keeps its fields in file order, each value as written (continuation lines kept
//! verbatim with their leading space, joined by `\n`), so a publication can write a stanza back
//! exactly and [`Stanza::normalized`] is a stable text to digest. [`parse_stanzas`] reads a
//! whole text (a Release file); [`StanzaReader`] reads one stanza at a time from any
//! [`AsyncBufRead`] (a decompressed `Packages` index of 60,000 stanzas), holding only the
//! current stanza and line, and can digest the bytes it reads on the way.
//!
//! Lines and stanzas are bounded ([`MAX_LINE`], [`MAX_STANZA`]) so hostile input cannot grow
//! memory. Errors say the line number and quote input only through [`excerpt`].

use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::plugins::excerpt;

/// The longest line accepted, in bytes.
pub const MAX_LINE: usize = 1024 * 1024;
/// The most bytes one stanza may hold.
pub const MAX_STANZA: usize = 8 * 1024 * 1024;

/// One paragraph: `(field, value)` pairs in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stanza {
    fields: Vec<(String, String)>,
    /// The line the stanza starts on (1-based), for messages.
    pub line: u64,
}

impl Stanza {
    /// A stanza of these fields (tests, generated metadata).
    pub fn from_fields(fields: Vec<(String, String)>) -> Stanza {
        Stanza { fields, line: 0 }
    }

    /// The value of `name` (field names compare case-insensitively, as deb822 says).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The fields in file order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    pub fn into_fields(self) -> Vec<(String, String)> {
        self.fields
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The stanza as text: `Field: value\n` per field, in order. Digesting this gives the same
    /// answer however the input was spaced (trailing blanks, `Field:value`, CRLF).
    pub fn normalized(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.fields {
            out.push_str(k);
            out.push(':');
            if !v.is_empty() && !v.starts_with('\n') {
                out.push(' ');
            }
            out.push_str(v);
            out.push('\n');
        }
        out
    }
}

/// Why a deb822 text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct SyntaxError {
    pub line: u64,
    pub reason: String,
}

/// Why [`StanzaReader`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// Reading (or decompressing) the input failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Builds stanzas line by line; shared by the whole-text and the streaming parser.
#[derive(Debug, Default)]
struct Builder {
    current: Stanza,
    bytes: usize,
}

impl Builder {
    /// Feeds one line (without its line break); returns a finished stanza at a blank line.
    fn line(&mut self, line_no: u64, raw: &str) -> Result<Option<Stanza>, SyntaxError> {
        let line = raw.trim_end_matches(['\r', '\n', ' ', '\t']);
        if line.is_empty() {
            return Ok(self.finish());
        }
        if line.starts_with('#') {
            return Ok(None);
        }
        let err = |reason: String| SyntaxError {
            line: line_no,
            reason,
        };
        self.bytes += line.len() + 1;
        if self.bytes > MAX_STANZA {
            return Err(err(format!(
                "stanza larger than {MAX_STANZA} bytes (it starts at line {})",
                self.current.line
            )));
        }
        if line.starts_with([' ', '\t']) {
            let Some((_, value)) = self.current.fields.last_mut() else {
                return Err(err(format!(
                    "continuation line {} before any field",
                    excerpt(line)
                )));
            };
            value.push('\n');
            value.push_str(line);
            return Ok(None);
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(err(format!(
                "expected `Field: value`, got {}",
                excerpt(line)
            )));
        };
        if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(err(format!("bad field name {}", excerpt(name))));
        }
        if self.current.fields.is_empty() {
            self.current.line = line_no;
        }
        self.current.fields.push((
            name.to_string(),
            value.trim_start_matches([' ', '\t']).to_string(),
        ));
        Ok(None)
    }

    /// The stanza being built, if it has any field.
    fn finish(&mut self) -> Option<Stanza> {
        self.bytes = 0;
        if self.current.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.current))
    }
}

/// Every stanza of a whole text.
pub fn parse_stanzas(text: &str) -> Result<Vec<Stanza>, SyntaxError> {
    let mut out = Vec::new();
    let mut b = Builder::default();
    for (i, line) in text.split('\n').enumerate() {
        if line.len() > MAX_LINE {
            return Err(SyntaxError {
                line: i as u64 + 1,
                reason: format!("line longer than {MAX_LINE} bytes"),
            });
        }
        if let Some(s) = b.line(i as u64 + 1, line)? {
            out.push(s);
        }
    }
    out.extend(b.finish());
    Ok(out)
}

/// Reads stanzas one at a time from a buffered async reader. See the module docs.
pub struct StanzaReader<R> {
    inner: R,
    builder: Builder,
    line: Vec<u8>,
    line_no: u64,
    digest: Option<Sha256>,
    bytes: u64,
    done: bool,
}

impl<R: AsyncBufRead + Unpin> StanzaReader<R> {
    pub fn new(inner: R) -> Self {
        StanzaReader {
            inner,
            builder: Builder::default(),
            line: Vec::new(),
            line_no: 0,
            digest: None,
            bytes: 0,
            done: false,
        }
    }

    /// Also computes the SHA-256 of every byte read (call before the first read).
    pub fn with_sha256(mut self) -> Self {
        self.digest = Some(Sha256::new());
        self
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The hex SHA-256 of what was read, when asked for with [`Self::with_sha256`]; meaningful
    /// once [`Self::next_stanza`] returned `Ok(None)`.
    pub fn sha256(&self) -> Option<String> {
        self.digest
            .as_ref()
            .map(|d| hex::encode(d.clone().finalize()))
    }

    /// The next stanza, or `Ok(None)` at the end of the input.
    pub async fn next_stanza(&mut self) -> Result<Option<Stanza>, ReadError> {
        if self.done {
            return Ok(None);
        }
        loop {
            if !self.read_line().await? {
                self.done = true;
                return Ok(self.builder.finish());
            }
            self.line_no += 1;
            let text = String::from_utf8_lossy(&self.line);
            if let Some(stanza) = self.builder.line(self.line_no, &text)? {
                return Ok(Some(stanza));
            }
        }
    }

    /// Reads one line into `self.line` (with its `\n`); `false` at the end of the input.
    async fn read_line(&mut self) -> Result<bool, ReadError> {
        self.line.clear();
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                return Ok(!self.line.is_empty());
            }
            let (complete, used) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (true, i + 1),
                None => (false, available.len()),
            };
            if self.line.len() + used > MAX_LINE + 2 {
                return Err(SyntaxError {
                    line: self.line_no + 1,
                    reason: format!("line longer than {MAX_LINE} bytes"),
                }
                .into());
            }
            self.line.extend_from_slice(&available[..used]);
            if let Some(d) = self.digest.as_mut() {
                d.update(&available[..used]);
            }
            self.bytes += used as u64;
            self.inner.consume(used);
            if complete {
                return Ok(true);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "Package: a\nVersion: 1:2.0-1\nDescription: short\n long line\n .\n more\n\n\n# comment\nPackage: b\r\nVersion:3\n";

    #[test]
    fn parses_fields_in_order_with_continuations_and_comments() {
        let s = parse_stanzas(TWO).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s[0].fields()
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>(),
            vec!["Package", "Version", "Description"]
        );
        assert_eq!(s[0].get("version"), Some("1:2.0-1"));
        assert_eq!(
            s[0].get("Description"),
            Some("short\n long line\n .\n more")
        );
        assert_eq!(s[0].line, 1);
        assert_eq!(s[1].get("Package"), Some("b"));
        assert_eq!(s[1].get("Version"), Some("3"));
        assert_eq!(s[1].line, 10);
        assert_eq!(
            s[0].normalized(),
            "Package: a\nVersion: 1:2.0-1\nDescription: short\n long line\n .\n more\n"
        );
    }

    #[test]
    fn a_value_may_start_on_the_next_line() {
        let s = parse_stanzas("SHA256:\n abc 1 x\n def 2 y\n").unwrap();
        assert_eq!(s[0].get("SHA256"), Some("\n abc 1 x\n def 2 y"));
        assert_eq!(s[0].normalized(), "SHA256:\n abc 1 x\n def 2 y\n");
    }

    #[test]
    fn rejects_malformed_lines_with_their_number_and_an_excerpt() {
        let e = parse_stanzas("Package: a\nno colon here at all, and a very long line indeed\n")
            .unwrap_err();
        assert_eq!(e.line, 2);
        assert!(!e.to_string().contains("indeed"), "{e}");
        let e = parse_stanzas(" continued\n").unwrap_err();
        assert_eq!(e.line, 1);
    }

    #[tokio::test]
    async fn the_reader_agrees_with_the_whole_text_parser() {
        let mut r = StanzaReader::new(TWO.as_bytes()).with_sha256();
        let mut got = Vec::new();
        while let Some(s) = r.next_stanza().await.unwrap() {
            got.push(s);
        }
        assert_eq!(got, parse_stanzas(TWO).unwrap());
        assert_eq!(r.bytes_read(), TWO.len() as u64);
        assert_eq!(
            r.sha256().unwrap(),
            hex::encode(Sha256::digest(TWO.as_bytes()))
        );
        assert!(r.next_stanza().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_reader_bounds_a_line() {
        let long = format!("Package: {}\n", "x".repeat(MAX_LINE + 10));
        let mut r = StanzaReader::new(long.as_bytes());
        let e = r.next_stanza().await.unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
    }

    /// A generated input of `n` stanzas, produced piece by piece (never whole in memory).
    struct Generated {
        n: u64,
        i: u64,
        chunk: Vec<u8>,
        pos: usize,
        /// The most bytes the reader was ever handed at once.
        max_chunk: usize,
    }

    impl tokio::io::AsyncRead for Generated {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let me = self.get_mut();
            if me.pos == me.chunk.len() {
                if me.i == me.n {
                    return std::task::Poll::Ready(Ok(()));
                }
                me.chunk = format!(
                    "Package: pkg{i}\nVersion: 1:{i}.0-1\nArchitecture: amd64\nFilename: pool/main/p/pkg{i}/pkg{i}_{i}.0-1_amd64.deb\nSize: {i}\nSHA256: {:064x}\nDescription: package {i}\n a longer description\n .\n of several lines\n\n",
                    me.i,
                    i = me.i
                )
                .into_bytes();
                me.pos = 0;
                me.i += 1;
            }
            let n = buf.remaining().min(me.chunk.len() - me.pos);
            buf.put_slice(&me.chunk[me.pos..me.pos + n]);
            me.pos += n;
            me.max_chunk = me.max_chunk.max(n);
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn streams_a_60000_stanza_index_one_stanza_at_a_time() {
        let source = Generated {
            n: 60_000,
            i: 0,
            chunk: Vec::new(),
            pos: 0,
            max_chunk: 0,
        };
        let mut r = StanzaReader::new(tokio::io::BufReader::with_capacity(8 * 1024, source));
        let mut count = 0u64;
        let mut largest_line = 0usize;
        while let Some(s) = r.next_stanza().await.unwrap() {
            assert_eq!(s.get("Package"), Some(format!("pkg{count}").as_str()));
            assert_eq!(s.fields().len(), 7);
            count += 1;
            largest_line = largest_line.max(r.line.capacity());
        }
        assert_eq!(count, 60_000);
        // Flat memory: the reader's own buffers never grew past one (short) line, and the input
        // was never held whole (it is produced a stanza at a time).
        assert!(largest_line < 1024, "line buffer grew to {largest_line}");
        assert!(r.builder.current.is_empty());
        assert!(r.bytes_read() > 10_000_000, "{}", r.bytes_read());
    }
}
