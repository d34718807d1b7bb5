//! `pulp_href` and `prn` of every object, and parsing an href back: the names the REST API
//! gives resources, shared by the API (answers, path parameters) and the task functions
//! (created resources, hrefs in arguments), so neither has to import the other.
//!
//! Plugin objects live under `<collection>/<app_label>/<kind>/<uuid>/` (content under
//! `content/<app_label>/<content_kind>/`), core objects under `<collection>/<uuid>/`; versions
//! under their repository as `versions/<number>/`.

use uuid::Uuid;

use crate::plugins::ApiNames;

/// The prefix of every API path.
pub const API_ROOT: &str = "/pulp/api/v3/";

/// `/pulp/api/v3/remotes/<app>/<kind>/<id>/`.
pub fn remote(n: &ApiNames, id: Uuid) -> String {
    format!("{API_ROOT}remotes/{}/{}/{id}/", n.app_label, n.kind)
}

/// `/pulp/api/v3/repositories/<app>/<kind>/<id>/`.
pub fn repository(n: &ApiNames, id: Uuid) -> String {
    format!("{API_ROOT}repositories/{}/{}/{id}/", n.app_label, n.kind)
}

/// `/pulp/api/v3/repositories/<app>/<kind>/<id>/versions/<number>/`.
pub fn version(n: &ApiNames, repository_id: Uuid, number: i64) -> String {
    format!("{}versions/{number}/", repository(n, repository_id))
}

/// `/pulp/api/v3/publications/<app>/<kind>/<id>/`.
pub fn publication(n: &ApiNames, id: Uuid) -> String {
    format!("{API_ROOT}publications/{}/{}/{id}/", n.app_label, n.kind)
}

/// `/pulp/api/v3/distributions/<app>/<kind>/<id>/`.
pub fn distribution(n: &ApiNames, id: Uuid) -> String {
    format!("{API_ROOT}distributions/{}/{}/{id}/", n.app_label, n.kind)
}

/// `/pulp/api/v3/content/<app>/<content_kind>/<id>/`.
pub fn content(n: &ApiNames, id: Uuid) -> String {
    format!("{API_ROOT}content/{}/{}/{id}/", n.app_label, n.content_kind)
}

/// `/pulp/api/v3/artifacts/<id>/`.
pub fn artifact(id: Uuid) -> String {
    format!("{API_ROOT}artifacts/{id}/")
}

/// `/pulp/api/v3/signing-services/<id>/`.
pub fn signing_service(id: Uuid) -> String {
    format!("{API_ROOT}signing-services/{id}/")
}

/// `/pulp/api/v3/tasks/<id>/`.
pub fn task(id: Uuid) -> String {
    format!("{API_ROOT}tasks/{id}/")
}

/// `prn:<model>:<id>`, e.g. `prn:file.fileremote:<uuid>` or `prn:core.task:<uuid>`.
pub fn prn(model: &str, id: Uuid) -> String {
    format!("prn:{model}:{id}")
}

/// An href split into the path segments before its uuid, the uuid, and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// E.g. `["remotes", "file", "file"]`.
    pub collection: Vec<&'a str>,
    pub id: Uuid,
    /// E.g. `["versions", "3"]` for a version href; empty for an object's own href.
    pub rest: Vec<&'a str>,
}

/// Parses an href (absolute URL or path) under `/pulp/api/v3/`. `None` when it is not one.
pub fn parse(href: &str) -> Option<Parsed<'_>> {
    let path = match href.find(API_ROOT) {
        Some(i) => &href[i + API_ROOT.len()..],
        None => return None,
    };
    let path = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let pos = segments.iter().position(|s| Uuid::parse_str(s).is_ok())?;
    let id = Uuid::parse_str(segments[pos]).ok()?;
    if segments[..pos].iter().any(|s| s.is_empty())
        || segments[pos + 1..].iter().any(|s| s.is_empty())
    {
        return None;
    }
    Some(Parsed {
        collection: segments[..pos].to_vec(),
        id,
        rest: segments[pos + 1..].to_vec(),
    })
}

/// Parses a repository version href: the collection (`["repositories", app, kind]`), the
/// repository id and the version number.
pub fn parse_version(href: &str) -> Option<(Vec<&str>, Uuid, i64)> {
    let p = parse(href)?;
    match p.rest.as_slice() {
        ["versions", n] => Some((p.collection, p.id, n.parse().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let n = ApiNames {
            app_label: "file",
            kind: "file",
            content_kind: "files",
        };
        let id = Uuid::now_v7();
        let h = version(&n, id, 7);
        assert_eq!(
            parse_version(&h),
            Some((vec!["repositories", "file", "file"], id, 7))
        );
        let url = format!("http://x{}", remote(&n, id));
        let p = parse(&url).unwrap();
        assert_eq!(p.collection, vec!["remotes", "file", "file"]);
        assert!(p.rest.is_empty());
        assert_eq!(parse("/pulp/api/v3/remotes/file/file/"), None);
        assert_eq!(parse("/elsewhere/1/"), None);
        assert!(parse_version(&repository(&n, id)).is_none());
    }
}
