//! `PULP_MANIFEST`: one `relative_path,sha256,size` line per file.
//!
//! Lines split on their last two commas (paths may contain commas); blank lines and lines
//! starting with `#` are skipped. A path must be relative and stay inside the repository: no
//! leading `/`, no empty, `.` or `..` segment (also percent-encoded, like `%2e%2e`), no backslash,
//! no NUL or other control character. Any other shape fails with the line number.
//!
//! Errors quote at most a short, escaped excerpt of what they reject ([`excerpt`]), never a
//! whole line: a manifest may be any file a remote names, and errors reach the API and logs.

use crate::plugins::excerpt;

/// One manifest line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub relative_path: String,
    pub sha256: String,
    pub size: u64,
}

/// Why a manifest line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed manifest, line {line}: {reason}")]
pub struct ManifestError {
    pub line: usize,
    pub reason: String,
}

pub use crate::plugins::check_relative_path;

/// Parses one line (1-based `line_no`); `Ok(None)` for blank and comment lines.
pub fn parse_line(line_no: usize, raw: &str) -> Result<Option<ManifestEntry>, ManifestError> {
    let line = raw.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let err = |reason: String| ManifestError {
        line: line_no,
        reason,
    };
    let mut parts = line.rsplitn(3, ',');
    let size = parts.next().unwrap_or_default().trim();
    let sha256 = parts.next();
    let path = parts.next();
    let (Some(sha256), Some(path)) = (sha256, path) else {
        return Err(err(format!(
            "expected relative_path,sha256,size but got {}",
            excerpt(line)
        )));
    };
    let sha256 = sha256.trim().to_ascii_lowercase();
    if !crate::storage::is_sha256_hex(&sha256) {
        return Err(err(format!(
            "{} is not a sha256 hex digest",
            excerpt(&sha256)
        )));
    }
    let size: u64 = size
        .parse()
        .map_err(|_| err(format!("{} is not a size in bytes", excerpt(size))))?;
    check_relative_path(path).map_err(err)?;
    Ok(Some(ManifestEntry {
        relative_path: path.to_string(),
        sha256,
        size,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_paths_with_commas_and_skips_comments() {
        assert_eq!(parse_line(1, "# comment").unwrap(), None);
        assert_eq!(parse_line(2, "   ").unwrap(), None);
        let e = parse_line(3, &format!("a,b/c.txt,{SHA},0"))
            .unwrap()
            .unwrap();
        assert_eq!(e.relative_path, "a,b/c.txt");
        assert_eq!(e.size, 0);
        let upper = parse_line(4, &format!("x,{},12\r", SHA.to_uppercase()))
            .unwrap()
            .unwrap();
        assert_eq!(upper.sha256, SHA);
    }

    #[test]
    fn rejects_malformed_lines_with_their_number() {
        let e = parse_line(7, "only,two").unwrap_err();
        assert_eq!(e.line, 7);
        assert!(e.to_string().contains("line 7"), "{e}");
        assert!(parse_line(1, &format!("a,{SHA},-1")).is_err());
        assert!(parse_line(1, "a,nothex,1").is_err());
    }

    #[test]
    fn errors_quote_only_a_short_excerpt() {
        let secret =
            "root:$y$j9T$abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ:19000:0:99999:7:::";
        let e = parse_line(1, secret).unwrap_err().to_string();
        assert!(!e.contains(secret), "{e}");
        assert!(!e.contains("ABCDEFGHIJ"), "{e}");
        assert!(e.contains("line 1"), "{e}");
        let long_path = format!("/{},{SHA},1", "x".repeat(500));
        let e = parse_line(2, &long_path).unwrap_err().to_string();
        assert!(e.len() < 160, "{e}");
        let e = parse_line(3, "a\u{1b}[31m,b").unwrap_err().to_string();
        assert!(
            !e.contains('\u{1b}'),
            "control characters are escaped: {e:?}"
        );
    }

    #[test]
    fn rejects_escaping_paths() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/./b",
            "%2e%2e/x",
            "a/%2E%2e/b",
            "%252e%252e/x",
            "a\\..\\b",
            "a\0b",
            "a/",
            "a%2fb/..%2f",
        ] {
            assert!(
                parse_line(1, &format!("{bad},{SHA},1")).is_err(),
                "{bad:?} must be rejected"
            );
        }
        assert!(parse_line(1, &format!("a/b..c/d.txt,{SHA},1"))
            .unwrap()
            .is_some());
    }
}
