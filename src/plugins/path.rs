//! Relative paths that outside input names (a manifest line, a package's `Filename`, a
//! publication's file): one check, [`check_relative_path`], that a path is relative and stays
//! inside its repository or publication. Plugins call it on what they read; the core's
//! publisher calls it again on every path a publication hook hands it.

use super::excerpt;

/// Why a relative path is unsafe.
pub fn check_relative_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.starts_with('/') {
        return Err(format!("absolute path {}", excerpt(path)));
    }
    if path.contains('\\') {
        return Err(format!("backslash in path {}", excerpt(path)));
    }
    if path.chars().any(|c| c.is_control()) {
        return Err(format!("control character in path {}", excerpt(path)));
    }
    for segment in path.split('/') {
        let decoded = percent_decode_lossy(segment);
        match decoded.as_str() {
            "" => return Err(format!("empty segment in path {}", excerpt(path))),
            "." | ".." => return Err(format!("path {} escapes the repository", excerpt(path))),
            _ => {}
        }
        if decoded.contains('/') || decoded.contains('\\') || decoded.contains('\0') {
            return Err(format!("encoded separator in path {}", excerpt(path)));
        }
    }
    Ok(())
}

/// Percent-decodes (repeatedly, so `%252e` is caught too) without failing on bad escapes.
fn percent_decode_lossy(s: &str) -> String {
    let mut current = s.to_string();
    for _ in 0..3 {
        let next: String =
            String::from_utf8_lossy(&percent_decode(current.as_bytes())).into_owned();
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn percent_decode(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}
