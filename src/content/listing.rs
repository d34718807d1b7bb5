//! HTML directory listings: `/pulp/content/` (first components of visible distributions'
//! base paths), a prefix of several base paths, and a directory of what a distribution serves
//! (the entries directly below it, with sizes).

use std::collections::BTreeMap;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{ContentState, CONTENT_PREFIX};
use crate::db::DbError;
use crate::models::ServedFile;

const HREF: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// `(name, size)`: a name ending in `/` is a directory.
fn page(title_path: &str, entries: &[(String, Option<u64>)], head: bool) -> Response {
    let title = escape(title_path);
    let mut html = format!(
        "<!DOCTYPE html>\n<html>\n<head><title>Index of {title}</title></head>\n<body>\n\
         <h1>Index of {title}</h1>\n<hr><pre><a href=\"../\">../</a>\n"
    );
    for (name, size) in entries {
        let href = utf8_percent_encode(name, HREF).to_string();
        let size = size.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        html.push_str(&format!("<a href=\"{href}\">{}</a> {size}\n", escape(name)));
    }
    html.push_str("</pre><hr></body>\n</html>\n");
    let ct = [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
    if head {
        (StatusCode::OK, ct).into_response()
    } else {
        (StatusCode::OK, ct, html).into_response()
    }
}

/// Names directly below `prefix` among `paths`, directories with a trailing `/`.
fn children<'a>(
    prefix: &str,
    paths: impl Iterator<Item = (&'a str, Option<u64>)>,
) -> Vec<(String, Option<u64>)> {
    let mut out: BTreeMap<String, Option<u64>> = BTreeMap::new();
    for (p, size) in paths {
        let Some(rest) = p.strip_prefix(prefix) else {
            continue;
        };
        match rest.split_once('/') {
            Some((dir, _)) if !dir.is_empty() => {
                out.insert(format!("{dir}/"), None);
            }
            Some(_) => {}
            None if !rest.is_empty() => {
                out.insert(rest.to_string(), size);
            }
            None => {}
        }
    }
    out.into_iter().collect()
}

/// `/pulp/content/`: the first component of every visible distribution's base path.
pub async fn root(cs: &ContentState) -> Result<Response, DbError> {
    let paths = cs.app.store.base_paths_under("").await?;
    let entries = children("", paths.iter().map(|p| (p.as_str(), None)))
        .into_iter()
        .map(|(n, _)| {
            let n = if n.ends_with('/') { n } else { format!("{n}/") };
            (n, None)
        })
        .collect::<Vec<_>>();
    Ok(page(CONTENT_PREFIX, &entries, false))
}

/// A path that is a strict prefix of some base paths.
pub fn base_paths(raw: &str, joined: &str, under: &[String]) -> Response {
    let prefix = format!("{joined}/");
    let entries = children(&prefix, under.iter().map(|p| (p.as_str(), None)))
        .into_iter()
        .map(|(n, _)| {
            let n = if n.ends_with('/') { n } else { format!("{n}/") };
            (n, None)
        })
        .collect::<Vec<_>>();
    page(raw, &entries, false)
}

/// A directory of a distribution: files whose path starts with `prefix`.
pub fn files(raw: &str, prefix: &str, files: &[ServedFile], head: bool) -> Response {
    let entries = children(
        prefix,
        files.iter().map(|f| (f.relative_path.as_str(), f.size())),
    );
    page(raw, &entries, head)
}

#[cfg(test)]
mod tests {
    use super::children;

    #[test]
    fn direct_children_only() {
        let paths = [
            ("a/x", Some(1)),
            ("a/b/y", Some(2)),
            ("a/b/z", Some(3)),
            ("c", Some(4)),
        ];
        let got = children("a/", paths.into_iter());
        assert_eq!(
            got,
            vec![("b/".to_string(), None), ("x".to_string(), Some(1))]
        );
        let root = children("", paths.into_iter());
        assert_eq!(
            root,
            vec![("a/".to_string(), None), ("c".to_string(), Some(4))]
        );
    }
}
