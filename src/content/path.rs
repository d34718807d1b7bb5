//! Request paths of the content app, checked before anything is looked up: percent-decoded
//! segment by segment (strict UTF-8); `.` and `..` (also `%2e%2e`), segments holding `/`, `\`,
//! NUL or control characters once decoded, a raw backslash anywhere, and empty segments (`//`,
//! an absolute component) are refused. Only a trailing slash is kept, as a flag.

use percent_encoding::percent_decode_str;

use super::CONTENT_PREFIX;

/// The most segments a base path may have; the distribution lookup considers only that many
/// leading segments of a request (a bounded query whatever the request's depth).
pub const MAX_BASE_PATH_SEGMENTS: usize = 64;

/// A checked request path below the content prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    /// Decoded segments, none empty.
    pub segments: Vec<String>,
    pub trailing_slash: bool,
}

/// Checks the raw (still percent-encoded) URI path.
pub fn parse(raw: &str) -> Result<RequestPath, String> {
    let rest = raw
        .strip_prefix(CONTENT_PREFIX)
        .ok_or_else(|| "not a content path".to_string())?;
    if rest.contains('\\') {
        return Err("backslashes are not allowed in paths".into());
    }
    if rest.is_empty() {
        return Ok(RequestPath {
            segments: Vec::new(),
            trailing_slash: true,
        });
    }
    let trailing_slash = rest.ends_with('/');
    let body = rest.strip_suffix('/').unwrap_or(rest);
    let mut segments = Vec::new();
    for seg in body.split('/') {
        if seg.is_empty() {
            return Err("empty path segments are not allowed".into());
        }
        let decoded = percent_decode_str(seg)
            .decode_utf8()
            .map_err(|_| "paths must be UTF-8".to_string())?;
        if decoded == "." || decoded == ".." {
            return Err("'.' and '..' segments are not allowed".into());
        }
        if decoded
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
        {
            return Err(
                "encoded slashes, backslashes and control characters are not allowed".into(),
            );
        }
        segments.push(decoded.into_owned());
    }
    Ok(RequestPath {
        segments,
        trailing_slash,
    })
}

/// Every path-component prefix of the segments (`a`, `a/b`, `a/b/c`), at most
/// [`MAX_BASE_PATH_SEGMENTS`] of them.
pub fn prefixes(segments: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(segments.len().min(MAX_BASE_PATH_SEGMENTS));
    let mut cur = String::new();
    for s in segments.iter().take(MAX_BASE_PATH_SEGMENTS) {
        if !cur.is_empty() {
            cur.push('/');
        }
        cur.push_str(s);
        out.push(cur.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_paths() {
        let p = parse("/pulp/content/a/b%20c/d.txt").unwrap();
        assert_eq!(p.segments, vec!["a", "b c", "d.txt"]);
        assert!(!p.trailing_slash);
        assert!(parse("/pulp/content/a/").unwrap().trailing_slash);
        assert_eq!(prefixes(&p.segments), vec!["a", "a/b c", "a/b c/d.txt"]);
    }

    #[test]
    fn bad_paths() {
        for bad in [
            "/pulp/content/a/../b",
            "/pulp/content/a/%2e%2e/b",
            "/pulp/content/a/%2E%2e",
            "/pulp/content/a/.",
            "/pulp/content/a/%2F..",
            "/pulp/content/a/%2fetc",
            "/pulp/content/a\\b",
            "/pulp/content/a/%5c..",
            "/pulp/content/a/%00",
            "/pulp/content//etc/passwd",
            "/pulp/content/a//b",
            "/pulp/content/a/%ff",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
