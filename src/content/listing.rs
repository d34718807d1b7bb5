//! HTML directory listings: `/pulp/content/` (first components of visible distributions'
//! base paths), a prefix of several base paths, and a directory of what a distribution serves
//! (the entries directly below it). Each entry line is pulpcore's: the link, then the date
//! (`%d-%b-%Y %H:%M`, right-aligned to column 69) and a human-readable size (Jinja's
//! `filesizeformat`: decimal units, `4.2 MB`; right-aligned in 19 columns) when known. A
//! directory's date is the newest of the files below it; it has no size.

use std::collections::BTreeMap;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
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

/// One entry of a listing: a name ending in `/` is a directory.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    name: String,
    date: Option<DateTime<Utc>>,
    size: Option<u64>,
}

/// A size as Jinja's `filesizeformat` writes it (pulpcore's listings): `1 Byte`, `N Bytes`
/// below 1000, then one decimal and a decimal unit (`1.5 kB`, `4.2 MB`).
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 8] = ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    if bytes == 1 {
        return "1 Byte".into();
    }
    if bytes < 1000 {
        return format!("{bytes} Bytes");
    }
    let b = bytes as f64;
    for (i, unit) in UNITS.iter().enumerate() {
        let limit = 1000f64.powi(i as i32 + 2);
        if b < limit {
            return format!("{:.1} {unit}", 1000.0 * b / limit);
        }
    }
    format!("{:.1} YB", b / 1000f64.powi(8))
}

fn page(title_path: &str, entries: &[Entry], head: bool) -> Response {
    let title = escape(title_path);
    let mut html = format!(
        "<!DOCTYPE html>\n<html>\n<head><title>Index of {title}</title></head>\n<body>\n\
         <h1>Index of {title}</h1>\n<hr><pre><a href=\"../\">../</a>\n"
    );
    for e in entries {
        let href = utf8_percent_encode(&e.name, HREF).to_string();
        let date = e
            .date
            .map(|d| d.format("%d-%b-%Y %H:%M").to_string())
            .unwrap_or_default();
        let size = e.size.map(human_size).unwrap_or_default();
        let width = 69usize.saturating_sub(e.name.chars().count());
        html.push_str(&format!(
            "<a href=\"{href}\">{}</a>{date:>width$}{size:>19}\n",
            escape(&e.name)
        ));
    }
    html.push_str("</pre><hr></body>\n</html>\n");
    let ct = [(header::CONTENT_TYPE, "text/html; charset=utf-8")];
    if head {
        (StatusCode::OK, ct).into_response()
    } else {
        (StatusCode::OK, ct, html).into_response()
    }
}

/// Entries directly below `prefix` among `paths` (`(path, date, size)`), directories with a
/// trailing `/` dated by the newest file below them.
fn children<'a>(
    prefix: &str,
    paths: impl Iterator<Item = (&'a str, Option<DateTime<Utc>>, Option<u64>)>,
) -> Vec<Entry> {
    let mut out = Children::new(prefix);
    for (p, date, size) in paths {
        out.add(p, date, size);
    }
    out.entries()
}

/// The entries directly below a prefix, gathered one path at a time: it holds the entries,
/// never the paths below them (a directory of a large repository is read as a stream).
pub struct Children {
    prefix: String,
    /// Paths seen under the prefix, entries or not.
    seen: u64,
    out: BTreeMap<String, (Option<DateTime<Utc>>, Option<u64>)>,
}

impl Children {
    pub fn new(prefix: &str) -> Children {
        Children {
            prefix: prefix.to_string(),
            seen: 0,
            out: BTreeMap::new(),
        }
    }

    /// Counts one path; a path outside the prefix is ignored.
    pub fn add(&mut self, path: &str, date: Option<DateTime<Utc>>, size: Option<u64>) {
        let Some(rest) = path.strip_prefix(self.prefix.as_str()) else {
            return;
        };
        self.seen += 1;
        match rest.split_once('/') {
            Some((dir, _)) if !dir.is_empty() => {
                // `rest` starts with the entry's name and its slash.
                let name = &rest[..=dir.len()];
                if let Some(slot) = self.out.get_mut(name) {
                    slot.0 = slot.0.max(date);
                } else {
                    self.out.insert(name.to_string(), (date, None));
                }
            }
            Some(_) => {}
            None if !rest.is_empty() => {
                self.out.insert(rest.to_string(), (date, size));
            }
            None => {}
        }
    }

    /// A served file: its path, the date it was created, its size when known.
    pub fn add_file(&mut self, f: &ServedFile) {
        self.add(&f.relative_path, Some(f.pulp_created), f.size());
    }

    /// Whether no path under the prefix was seen.
    pub fn is_empty(&self) -> bool {
        self.seen == 0
    }

    fn entries(self) -> Vec<Entry> {
        self.out
            .into_iter()
            .map(|(name, (date, size))| Entry { name, date, size })
            .collect()
    }
}

/// Directory entries (names ending in `/`) with neither date nor size.
fn dirs(names: Vec<Entry>) -> Vec<Entry> {
    names
        .into_iter()
        .map(|e| {
            let name = if e.name.ends_with('/') {
                e.name
            } else {
                format!("{}/", e.name)
            };
            Entry {
                name,
                date: None,
                size: None,
            }
        })
        .collect()
}

/// `/pulp/content/`: the first component of every visible distribution's base path.
pub async fn root(cs: &ContentState) -> Result<Response, DbError> {
    let paths = cs.app.store.base_paths_under("").await?;
    let entries = dirs(children("", paths.iter().map(|p| (p.as_str(), None, None))));
    Ok(page(CONTENT_PREFIX, &entries, false))
}

/// A path that is a strict prefix of some base paths.
pub fn base_paths(raw: &str, joined: &str, under: &[String]) -> Response {
    let prefix = format!("{joined}/");
    let entries = dirs(children(
        &prefix,
        under.iter().map(|p| (p.as_str(), None, None)),
    ));
    page(raw, &entries, false)
}

/// A directory of a distribution: the entries gathered from the files below it.
pub fn files(raw: &str, children: Children, head: bool) -> Response {
    page(raw, &children.entries(), head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, date: Option<DateTime<Utc>>, size: Option<u64>) -> Entry {
        Entry {
            name: name.into(),
            date,
            size,
        }
    }

    #[test]
    fn direct_children_only() {
        let t1 = DateTime::from_timestamp(1_000, 0);
        let t2 = DateTime::from_timestamp(2_000, 0);
        let paths = [
            ("a/x", t1, Some(1)),
            ("a/b/y", t2, Some(2)),
            ("a/b/z", t1, Some(3)),
            ("c", t1, Some(4)),
        ];
        let got = children("a/", paths.into_iter());
        assert_eq!(got, vec![e("b/", t2, None), e("x", t1, Some(1))]);
        let root = children("", paths.into_iter());
        assert_eq!(root, vec![e("a/", t2, None), e("c", t1, Some(4))]);
    }

    #[test]
    fn a_directory_is_empty_only_when_no_path_is_below_it() {
        let mut c = Children::new("a/");
        c.add("ab", None, Some(1));
        c.add("b/a/x", None, Some(1));
        assert!(
            c.is_empty(),
            "a sibling whose name starts alike is not below a/"
        );
        c.add("a/", None, None);
        assert!(!c.is_empty());
        assert_eq!(c.entries(), vec![]);
        let t1 = DateTime::from_timestamp(1_000, 0);
        let t2 = DateTime::from_timestamp(2_000, 0);
        let mut c = Children::new("");
        for (p, d) in [("d/x", t2), ("d/y/z", t1), ("f", t1)] {
            c.add(p, d, Some(7));
        }
        assert_eq!(c.entries(), vec![e("d/", t2, None), e("f", t1, Some(7))]);
    }

    #[test]
    fn sizes_as_jinja_filesizeformat() {
        assert_eq!(human_size(0), "0 Bytes");
        assert_eq!(human_size(1), "1 Byte");
        assert_eq!(human_size(999), "999 Bytes");
        assert_eq!(human_size(1000), "1.0 kB");
        assert_eq!(human_size(1500), "1.5 kB");
        assert_eq!(human_size(4 * 1024 * 1024), "4.2 MB");
        assert_eq!(human_size(3_000_000_000), "3.0 GB");
    }

    #[test]
    fn entry_lines_align_like_pulpcore() {
        let date = DateTime::parse_from_rfc3339("2024-03-05T07:08:09Z")
            .unwrap()
            .with_timezone(&Utc);
        let entries = [e("0.iso", Some(date), Some(4 * 1024 * 1024))];
        let resp = page("/pulp/content/x/", &entries, false);
        let body =
            futures::executor::block_on(axum::body::to_bytes(resp.into_body(), 1 << 20)).unwrap();
        let html = String::from_utf8(body.to_vec()).unwrap();
        let line = format!(
            "<a href=\"0.iso\">0.iso</a>{:>64}{:>19}\n",
            "05-Mar-2024 07:08", "4.2 MB"
        );
        assert!(html.contains(&line), "{html}");
    }
}
