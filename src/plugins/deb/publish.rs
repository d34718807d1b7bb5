//! Debian publications.
//!
//! - **Verbatim** ([`VerbatimPublicationType`]): upstream metadata and pool exactly as synced (a
//!   pass-through publication: every content artifact at its upstream path), so apt checks the
//!   upstream signature.
//! - **APT structured** ([`AptPublicationType`]): generated metadata. Per distribution of the
//!   version's release components: `dists/<dist>/<component>/binary-<arch>/Packages` and
//!   `Packages.gz` (the packages of that component and architecture, `all` packages in every
//!   architecture's index), `dists/<dist>/Release` listing them with sizes and SHA256 digests,
//!   signed into `InRelease` and `Release.gpg` when a signing service is named; packages served
//!   at `pool/<component>/<prefix>/<source>/<file>`.
//!
//! The walk is streaming: units are read page by page; what stays in memory is the package ->
//! component membership (two ids per membership) and one open writer per index, never the
//! packages themselves.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;

use async_trait::async_trait;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::content::{
    PackageData, PackageReleaseComponentData, PACKAGE, PACKAGE_RELEASE_COMPONENT, RELEASE,
    RELEASE_ARCHITECTURE, RELEASE_COMPONENT,
};
use super::deb822::Stanza;
use crate::plugins::{PublicationType, PublishError, Publisher};

/// Units read per page.
const PAGE: u64 = 2_000;

/// The publication type of upstream metadata as synced.
pub struct VerbatimPublicationType;

#[async_trait]
impl PublicationType for VerbatimPublicationType {
    fn kind(&self) -> &'static str {
        "verbatim"
    }
    fn model(&self) -> &'static str {
        "VerbatimPublication"
    }
    fn pulp_type(&self) -> &'static str {
        "deb.verbatim-publication"
    }
    fn options(&self, body: &mut Map<String, Value>) -> Result<Value, (String, String)> {
        take_checkpoint(body)?;
        Ok(json!({}))
    }
    fn pass_through(&self) -> bool {
        true
    }
    async fn publish(
        &self,
        _publisher: &mut dyn Publisher,
        _plugin_data: &Value,
    ) -> Result<(), PublishError> {
        Ok(())
    }
}

/// The publication type of generated APT metadata.
pub struct AptPublicationType;

fn take_checkpoint(body: &mut Map<String, Value>) -> Result<(), (String, String)> {
    match body.remove("checkpoint") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Ok(()),
        Some(_) => Err((
            "checkpoint".into(),
            "Checkpoint publications are not supported.".into(),
        )),
    }
}

fn take_bool(
    body: &mut Map<String, Value>,
    name: &str,
    default: bool,
) -> Result<bool, (String, String)> {
    match body.remove(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(b),
        Some(_) => Err((name.into(), "Must be a valid boolean.".into())),
    }
}

/// The id of a signing service href (`/pulp/api/v3/signing-services/<id>/`).
pub fn signing_service_id(h: &str) -> Option<Uuid> {
    let p = crate::href::parse(h)?;
    (p.collection == ["signing-services"] && p.rest.is_empty()).then_some(p.id)
}

#[async_trait]
impl PublicationType for AptPublicationType {
    fn kind(&self) -> &'static str {
        "apt"
    }
    fn model(&self) -> &'static str {
        "AptPublication"
    }
    fn pulp_type(&self) -> &'static str {
        "deb.apt-publication"
    }

    fn options(&self, body: &mut Map<String, Value>) -> Result<Value, (String, String)> {
        take_checkpoint(body)?;
        let simple = take_bool(body, "simple", false)?;
        let structured = take_bool(body, "structured", true)?;
        let upstream = take_bool(body, "publish_upstream_release_fields", true)?;
        take_bool(body, "publish_legacy_release_files", false)?;
        if simple {
            return Err((
                "simple".into(),
                "Simple publications are not supported; use structured.".into(),
            ));
        }
        if !structured {
            return Err((
                "structured".into(),
                "'simple' or 'structured' must be true.".into(),
            ));
        }
        match body.remove("layout") {
            None | Some(Value::Null) => {}
            Some(Value::String(l)) if l == "nested_alphabetically" => {}
            Some(_) => {
                return Err((
                    "layout".into(),
                    "Only the nested_alphabetically layout is supported.".into(),
                ))
            }
        }
        let signing_service = match body.remove("signing_service") {
            None | Some(Value::Null) => Value::Null,
            Some(Value::String(h)) => match signing_service_id(&h) {
                Some(_) => Value::String(h),
                None => {
                    return Err((
                        "signing_service".into(),
                        "Invalid hyperlink - Object does not exist.".into(),
                    ))
                }
            },
            Some(_) => {
                return Err((
                    "signing_service".into(),
                    "Invalid hyperlink - Object does not exist.".into(),
                ))
            }
        };
        Ok(json!({
            "simple": false,
            "structured": true,
            "publish_upstream_release_fields": upstream,
            "signing_service": signing_service,
        }))
    }

    fn schema(&self) -> Value {
        json!({
            "simple": {"type": "boolean", "default": false, "description": "Activate simple publishing mode (all packages in one release component)."},
            "structured": {"type": "boolean", "default": true, "description": "Activate structured publishing mode."},
            "publish_upstream_release_fields": {"type": "boolean"},
            "publish_legacy_release_files": {"type": "boolean"},
            "signing_service": {"type": "string", "format": "uri", "nullable": true},
            "layout": {"type": "string", "enum": ["nested_alphabetically", "nested_by_digest", "nested_by_both"]},
        })
    }

    async fn publish(
        &self,
        publisher: &mut dyn Publisher,
        plugin_data: &Value,
    ) -> Result<(), PublishError> {
        let signing = plugin_data
            .get("signing_service")
            .and_then(Value::as_str)
            .and_then(signing_service_id);
        publish_structured(publisher, signing).await
    }
}

/// What a distribution (suite) of the version publishes.
#[derive(Default)]
struct Suite {
    release: Map<String, Value>,
    components: BTreeSet<String>,
    architectures: BTreeSet<String>,
}

/// One `Packages` index being written, plain and gzipped at once.
struct IndexWriter {
    plain: tempfile::NamedTempFile,
    gz: flate2::write::GzEncoder<tempfile::NamedTempFile>,
}

impl IndexWriter {
    fn new(publisher: &dyn Publisher) -> Result<IndexWriter, PublishError> {
        Ok(IndexWriter {
            plain: publisher.temp_file()?,
            gz: flate2::write::GzEncoder::new(publisher.temp_file()?, flate2::Compression::new(6)),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), PublishError> {
        self.plain.write_all(bytes)?;
        self.gz.write_all(bytes)?;
        Ok(())
    }
}

/// Every unit of `pulp_type` in the version, page by page, into `each`.
async fn walk(
    publisher: &mut dyn Publisher,
    pulp_type: &str,
    mut each: impl FnMut(crate::plugins::PublishUnit) -> Result<(), PublishError>,
) -> Result<(), PublishError> {
    let mut after = None;
    loop {
        let page = publisher.units(pulp_type, after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(());
        };
        after = Some(last.content.id);
        for u in page {
            each(u)?;
        }
    }
}

fn text(data: &Value, key: &str) -> String {
    data.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The source package a binary package was built from (its `Source` field without a version,
/// else its own name): the directory it is pooled under.
fn source_name(pkg: &PackageData) -> String {
    pkg.stanza
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Source"))
        .and_then(|(_, v)| v.split_whitespace().next())
        .filter(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        })
        .unwrap_or(&pkg.package)
        .to_string()
}

/// The package's stanza with `Filename` pointing at `pool` (then a blank line).
fn stanza_at(pkg: &PackageData, pool: &str) -> String {
    let fields = pkg
        .stanza
        .iter()
        .map(|(k, v)| {
            if k.eq_ignore_ascii_case("Filename") {
                (k.clone(), pool.to_string())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let mut text = Stanza::from_fields(fields).normalized();
    text.push('\n');
    text
}

/// The pool directory of a package: `pool/<component>/<prefix>/<source>/`, the prefix being
/// `lib` + the next letter for `lib*` sources, else the first letter (Debian's layout).
pub fn pool_dir(component: &str, source: &str) -> String {
    let prefix: String = if source.starts_with("lib") && source.len() > 3 {
        source.chars().take(4).collect()
    } else {
        source.chars().take(1).collect()
    };
    format!("pool/{component}/{prefix}/{source}/")
}

async fn publish_structured(
    publisher: &mut dyn Publisher,
    signing: Option<Uuid>,
) -> Result<(), PublishError> {
    let mut suites: BTreeMap<String, Suite> = BTreeMap::new();
    walk(publisher, RELEASE, |u| {
        let d = text(&u.content.data, "distribution");
        let s = suites.entry(d).or_default();
        if let Value::Object(m) = &u.content.data {
            s.release = m.clone();
        }
        Ok(())
    })
    .await?;
    walk(publisher, RELEASE_ARCHITECTURE, |u| {
        let d = text(&u.content.data, "distribution");
        let a = text(&u.content.data, "architecture");
        if a != "all" {
            suites.entry(d).or_default().architectures.insert(a);
        }
        Ok(())
    })
    .await?;
    let mut components: HashMap<Uuid, (String, String)> = HashMap::new();
    walk(publisher, RELEASE_COMPONENT, |u| {
        let d = text(&u.content.data, "distribution");
        let c = text(&u.content.data, "component");
        suites
            .entry(d.clone())
            .or_default()
            .components
            .insert(c.clone());
        components.insert(u.content.id, (d, c));
        Ok(())
    })
    .await?;
    // Flat repositories (`./`) have no dists/ tree to generate.
    suites.retain(|d, _| !d.ends_with('/'));
    let mut membership: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    walk(publisher, PACKAGE_RELEASE_COMPONENT, |u| {
        let Ok(prc) = serde_json::from_value::<PackageReleaseComponentData>(u.content.data) else {
            return Ok(());
        };
        if components.contains_key(&prc.release_component) {
            membership
                .entry(prc.package)
                .or_default()
                .push(prc.release_component);
        }
        Ok(())
    })
    .await?;

    // One writer per (distribution, component, architecture), every listed one even if empty.
    let mut writers: BTreeMap<(String, String, String), IndexWriter> = BTreeMap::new();
    for (d, s) in &suites {
        for c in &s.components {
            for a in &s.architectures {
                writers.insert(
                    (d.clone(), c.clone(), a.clone()),
                    IndexWriter::new(publisher)?,
                );
            }
        }
    }
    let mut placed: HashSet<String> = HashSet::new();
    let mut to_place: Vec<(String, Uuid)> = Vec::new();
    let mut after = None;
    loop {
        let page = publisher.units(PACKAGE, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.content.id);
        for u in page {
            let Some(rcs) = membership.get(&u.content.id) else {
                continue;
            };
            let Some(file) = u.files.first() else {
                continue;
            };
            let Some(ca) = file.content_artifact_id else {
                continue;
            };
            let pkg: PackageData = serde_json::from_value(u.content.data.clone())
                .map_err(|e| PublishError::Plugin(format!("package {}: {e}", u.content.id)))?;
            let source = source_name(&pkg);
            for rc in rcs {
                let (d, c) = &components[rc];
                let Some(suite) = suites.get(d) else { continue };
                let basename = pkg
                    .relative_path
                    .rsplit('/')
                    .next()
                    .unwrap_or(&pkg.relative_path);
                let pool = format!("{}{basename}", pool_dir(c, &source));
                let stanza = stanza_at(&pkg, &pool);
                let archs: Vec<&String> = if pkg.architecture == "all" {
                    suite.architectures.iter().collect()
                } else {
                    suite
                        .architectures
                        .iter()
                        .filter(|a| **a == pkg.architecture)
                        .collect()
                };
                for a in archs {
                    if let Some(w) = writers.get_mut(&(d.clone(), c.clone(), a.clone())) {
                        w.write(stanza.as_bytes())?;
                    }
                }
                if placed.insert(pool.clone()) {
                    to_place.push((pool, ca));
                }
            }
        }
        for (path, ca) in to_place.drain(..) {
            publisher.add_content_file(&path, ca).await?;
        }
    }

    // Indices, then one Release per distribution.
    let mut listed: BTreeMap<String, Vec<(String, String, u64)>> = BTreeMap::new();
    for ((d, c, a), w) in writers {
        let IndexWriter { mut plain, gz } = w;
        plain.flush()?;
        let mut gz = gz.finish()?;
        gz.flush()?;
        let dir = format!("{c}/binary-{a}");
        for (name, file) in [("Packages", plain), ("Packages.gz", gz)] {
            let rel = format!("{dir}/{name}");
            let (sha256, size) = publisher
                .add_metadata_file(&format!("dists/{d}/{rel}"), file.into_temp_path())
                .await?;
            listed
                .entry(d.clone())
                .or_default()
                .push((rel, sha256, size));
        }
    }
    for (d, s) in &suites {
        let release = release_text(d, s, listed.get(d).map(Vec::as_slice).unwrap_or(&[]));
        let release_path = format!("dists/{d}/Release");
        let mut tmp = publisher.temp_file()?;
        tmp.write_all(release.as_bytes())?;
        tmp.flush()?;
        if let Some(service) = signing {
            let signed = publisher.sign(service, tmp.path()).await?;
            for (key, name) in [("inline", "InRelease"), ("detached", "Release.gpg")] {
                let Some(p) = signed
                    .get("signatures")
                    .and_then(|s| s.get(key))
                    .and_then(Value::as_str)
                else {
                    return Err(PublishError::Plugin(format!(
                        "the signing service returned no {key} signature"
                    )));
                };
                let bytes = std::fs::read(p).map_err(|e| {
                    PublishError::Plugin(format!("cannot read the {key} signature: {e}"))
                })?;
                publisher
                    .add_metadata(&format!("dists/{d}/{name}"), bytes)
                    .await?;
            }
        }
        publisher
            .add_metadata_file(&release_path, tmp.into_temp_path())
            .await?;
    }
    Ok(())
}

/// The text of `dists/<d>/Release`.
fn release_text(d: &str, s: &Suite, files: &[(String, String, u64)]) -> String {
    let field = |k: &str| {
        s.release
            .get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let mut out = String::new();
    for (name, key) in [
        ("Origin", "origin"),
        ("Label", "label"),
        ("Suite", "suite"),
        ("Version", "version"),
        ("Codename", "codename"),
    ] {
        if let Some(v) = field(key) {
            out.push_str(&format!("{name}: {v}\n"));
        }
    }
    if field("suite").is_none() && field("codename").is_none() {
        out.push_str(&format!("Suite: {d}\nCodename: {d}\n"));
    }
    out.push_str(&format!(
        "Date: {}\n",
        chrono::Utc::now().format("%a, %d %b %Y %H:%M:%S UTC")
    ));
    let archs: Vec<&str> = s.architectures.iter().map(String::as_str).collect();
    let comps: Vec<&str> = s.components.iter().map(String::as_str).collect();
    out.push_str(&format!("Architectures: {}\n", archs.join(" ")));
    out.push_str(&format!("Components: {}\n", comps.join(" ")));
    if let Some(v) = field("description") {
        out.push_str(&format!("Description: {v}\n"));
    }
    out.push_str("SHA256:\n");
    for (rel, sha256, size) in files {
        out.push_str(&format!(" {sha256} {size:>16} {rel}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_dirs_follow_debian() {
        assert_eq!(pool_dir("main", "hello"), "pool/main/h/hello/");
        assert_eq!(pool_dir("main", "libfoo"), "pool/main/libf/libfoo/");
        assert_eq!(pool_dir("contrib", "lib"), "pool/contrib/l/lib/");
    }
}
