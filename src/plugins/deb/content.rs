//! The Debian content types: their `pulp_type`s, the JSON each unit stores (`data`), and their
//! natural and repository keys. The sync makes units only through these builders, and the REST
//! side reads [`content_types`] for names, fields and list filters, so the two cannot drift.
//!
//! | pulp_type | natural key (unique per type) | repository key (one per version) |
//! |---|---|---|
//! | `deb.release_file` | every field (codename, suite, distribution, components, architectures, relative_path, sha256, artifact_set_sha256) | distribution |
//! | `deb.package_index` | relative_path, sha256, artifact_set_sha256 | relative_path |
//! | `deb.package` | relative_path, sha256, metadata_sha256 | the natural key |
//! | `deb.release` | codename, suite, distribution, version, origin, label, description | distribution |
//! | `deb.release_component` | distribution, component | the natural key |
//! | `deb.release_architecture` | distribution, architecture | the natural key |
//! | `deb.package_release_component` | package id, release_component id | the natural key |
//!
//! A newer Release file or index of a distribution replaces the older one in a version. A
//! package's repository key is its whole natural key: one `.deb` at two pool paths, or listed
//! with different stanzas by two suites (Ubuntu's `-updates` adds `Phased-Update-Percentage`),
//! are distinct units that coexist. A `mirror` sync drops whatever upstream no longer lists,
//! since every unit it declares is kept and every other removed. Natural keys are JSON arrays of
//! the key fields, in the order above.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::deb822::Stanza;
use super::DebError;
use crate::models::UnsavedContent;
use crate::plugins::excerpt;
use crate::plugins::file::check_relative_path;

pub const RELEASE_FILE: &str = "deb.release_file";
pub const PACKAGE_INDEX: &str = "deb.package_index";
pub const PACKAGE: &str = "deb.package";
pub const RELEASE: &str = "deb.release";
pub const RELEASE_COMPONENT: &str = "deb.release_component";
pub const RELEASE_ARCHITECTURE: &str = "deb.release_architecture";
pub const PACKAGE_RELEASE_COMPONENT: &str = "deb.package_release_component";

/// The component a flat repository's packages are recorded in (as pulp_deb names it).
pub const FLAT_REPO_COMPONENT: &str = "flat-repo-component";

/// One content type as the REST API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentTypeInfo {
    pub pulp_type: &'static str,
    /// `content/deb/<kind>/` (pulp_deb's endpoint name).
    pub kind: &'static str,
    /// pulp_deb's serializer class name (`Package`).
    pub model: &'static str,
    /// The href path parameter pulp-glue expects (`deb_package_href`).
    pub href_param: &'static str,
    /// Several artifacts per unit (Release + InRelease + Release.gpg).
    pub multiple_artifacts: bool,
    /// Fields of `data`, in display order.
    pub fields: &'static [&'static str],
    /// List filters: `(query parameter, data key)`, equality on the data key's text.
    pub filters: &'static [(&'static str, &'static str)],
    pub natural_key: &'static [&'static str],
    pub repo_key: &'static [&'static str],
}

/// Every Debian content type.
pub fn content_types() -> Vec<ContentTypeInfo> {
    vec![
        ContentTypeInfo {
            pulp_type: RELEASE_FILE,
            kind: "release_files",
            model: "ReleaseFile",
            href_param: "deb_release_file_href",
            multiple_artifacts: true,
            fields: &[
                "codename",
                "suite",
                "distribution",
                "components",
                "architectures",
                "relative_path",
                "sha256",
                "artifact_set_sha256",
            ],
            filters: &[
                ("codename", "codename"),
                ("suite", "suite"),
                ("distribution", "distribution"),
                ("relative_path", "relative_path"),
                ("sha256", "sha256"),
            ],
            natural_key: &[
                "codename",
                "suite",
                "distribution",
                "components",
                "architectures",
                "relative_path",
                "sha256",
                "artifact_set_sha256",
            ],
            repo_key: &["distribution"],
        },
        ContentTypeInfo {
            pulp_type: PACKAGE_INDEX,
            kind: "package_indices",
            model: "PackageIndex",
            href_param: "deb_package_index_href",
            multiple_artifacts: true,
            fields: &[
                "component",
                "architecture",
                "relative_path",
                "sha256",
                "artifact_set_sha256",
            ],
            filters: &[
                ("component", "component"),
                ("architecture", "architecture"),
                ("relative_path", "relative_path"),
                ("sha256", "sha256"),
            ],
            natural_key: &["relative_path", "sha256", "artifact_set_sha256"],
            repo_key: &["relative_path"],
        },
        ContentTypeInfo {
            pulp_type: PACKAGE,
            kind: "packages",
            model: "Package",
            href_param: "deb_package_href",
            multiple_artifacts: false,
            fields: &[
                "package",
                "version",
                "architecture",
                "relative_path",
                "sha256",
                "metadata_sha256",
                "size",
                "stanza",
            ],
            filters: &[
                ("package", "package"),
                ("version", "version"),
                ("architecture", "architecture"),
                ("relative_path", "relative_path"),
                ("sha256", "sha256"),
                ("metadata_sha256", "metadata_sha256"),
            ],
            natural_key: &["relative_path", "sha256", "metadata_sha256"],
            repo_key: &["relative_path", "sha256", "metadata_sha256"],
        },
        ContentTypeInfo {
            pulp_type: RELEASE,
            kind: "releases",
            model: "Release",
            href_param: "deb_release_href",
            multiple_artifacts: false,
            fields: &[
                "codename",
                "suite",
                "distribution",
                "version",
                "origin",
                "label",
                "description",
            ],
            filters: &[
                ("codename", "codename"),
                ("suite", "suite"),
                ("distribution", "distribution"),
                ("version", "version"),
                ("origin", "origin"),
                ("label", "label"),
                ("description", "description"),
            ],
            natural_key: &[
                "codename",
                "suite",
                "distribution",
                "version",
                "origin",
                "label",
                "description",
            ],
            repo_key: &["distribution"],
        },
        ContentTypeInfo {
            pulp_type: RELEASE_COMPONENT,
            kind: "release_components",
            model: "ReleaseComponent",
            href_param: "deb_release_component_href",
            multiple_artifacts: false,
            fields: &["distribution", "component"],
            filters: &[("distribution", "distribution"), ("component", "component")],
            natural_key: &["distribution", "component"],
            repo_key: &["distribution", "component"],
        },
        ContentTypeInfo {
            pulp_type: RELEASE_ARCHITECTURE,
            kind: "release_architectures",
            model: "ReleaseArchitecture",
            href_param: "deb_release_architecture_href",
            multiple_artifacts: false,
            fields: &["distribution", "architecture"],
            filters: &[
                ("distribution", "distribution"),
                ("architecture", "architecture"),
            ],
            natural_key: &["distribution", "architecture"],
            repo_key: &["distribution", "architecture"],
        },
        ContentTypeInfo {
            pulp_type: PACKAGE_RELEASE_COMPONENT,
            kind: "package_release_components",
            model: "PackageReleaseComponent",
            href_param: "deb_package_release_component_href",
            multiple_artifacts: false,
            fields: &["package", "release_component"],
            filters: &[
                ("package", "package"),
                ("release_component", "release_component"),
            ],
            natural_key: &["package", "release_component"],
            repo_key: &["package", "release_component"],
        },
    ]
}

/// `serde_json` text of a key tuple (never fails for strings).
fn key<T: Serialize>(parts: T) -> String {
    serde_json::to_string(&parts).unwrap_or_default()
}

fn unit<T: Serialize>(
    pulp_type: &str,
    natural_key: String,
    repo_key: String,
    data: &T,
) -> UnsavedContent {
    UnsavedContent {
        pulp_type: pulp_type.to_string(),
        natural_key,
        repo_key,
        data: serde_json::to_value(data).unwrap_or_default(),
    }
}

/// The hex SHA-256 of the lines `<relative path>,<sha256>\n` of a unit's artifacts, in the
/// order given: equal sets of files give equal digests.
pub fn artifact_set_sha256<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut h = Sha256::new();
    for (path, sha) in files {
        h.update(path.as_bytes());
        h.update(b",");
        h.update(sha.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// `deb.release_file`: the Release, InRelease and Release.gpg files of a distribution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseFileData {
    pub codename: String,
    pub suite: String,
    pub distribution: String,
    /// Space separated, as the Release file lists them.
    pub components: String,
    pub architectures: String,
    /// The main file: `dists/<dist>/InRelease`, else `.../Release`.
    pub relative_path: String,
    /// Of the main file.
    pub sha256: String,
    pub artifact_set_sha256: String,
}

impl ReleaseFileData {
    pub fn unit(&self) -> UnsavedContent {
        let nk = key((
            &self.codename,
            &self.suite,
            &self.distribution,
            &self.components,
            &self.architectures,
            &self.relative_path,
            &self.sha256,
            &self.artifact_set_sha256,
        ));
        unit(RELEASE_FILE, nk, key((&self.distribution,)), self)
    }
}

/// `deb.package_index`: one `Packages` index of a component and architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageIndexData {
    pub component: String,
    pub architecture: String,
    /// `dists/<dist>/<component>/binary-<arch>/Packages` (without compression suffix).
    pub relative_path: String,
    /// Of the uncompressed index, as the Release file lists it (the fetched file's digest when
    /// the Release file lists only compressed copies).
    pub sha256: String,
    pub artifact_set_sha256: String,
}

impl PackageIndexData {
    pub fn unit(&self) -> UnsavedContent {
        let nk = key((&self.relative_path, &self.sha256, &self.artifact_set_sha256));
        unit(PACKAGE_INDEX, nk, key((&self.relative_path,)), self)
    }
}

/// `deb.package`: one binary package, its stanza kept whole and in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageData {
    pub package: String,
    pub version: String,
    pub architecture: String,
    /// The stanza's `Filename`: the `.deb`'s path under the remote's URL.
    pub relative_path: String,
    /// Of the `.deb`, from the stanza.
    pub sha256: String,
    /// Of the normalized stanza ([`Stanza::normalized`]).
    pub metadata_sha256: String,
    pub size: u64,
    /// Every `[field, value]` pair of the stanza, in order.
    pub stanza: Vec<(String, String)>,
}

impl PackageData {
    /// The package a stanza of index `file` describes. Requires Package, Version,
    /// Architecture, Filename (a safe relative path), Size and SHA256.
    pub fn from_stanza(stanza: Stanza, file: &str) -> Result<PackageData, DebError> {
        let package = stanza.get("Package").unwrap_or_default().trim().to_string();
        let line = stanza.line;
        let shown = if package.is_empty() {
            "(unnamed)".to_string()
        } else {
            excerpt(&package)
        };
        let required = |field: &'static str| -> Result<String, DebError> {
            match stanza.get(field).map(str::trim) {
                Some(v) if !v.is_empty() => Ok(v.to_string()),
                _ => Err(DebError::MissingField {
                    file: file.to_string(),
                    package: shown.clone(),
                    line,
                    field,
                }),
            }
        };
        let bad = |field: &'static str, reason: String| DebError::BadField {
            file: file.to_string(),
            package: shown.clone(),
            line,
            field,
            reason,
        };
        required("Package")?;
        let version = required("Version")?;
        let architecture = required("Architecture")?;
        let relative_path = required("Filename")?;
        check_relative_path(&relative_path).map_err(|e| bad("Filename", e))?;
        let size_text = required("Size")?;
        let size: u64 = size_text
            .parse()
            .map_err(|_| bad("Size", format!("{} is not a size", excerpt(&size_text))))?;
        let sha256 = required("SHA256")?.to_ascii_lowercase();
        if !crate::storage::is_sha256_hex(&sha256) {
            return Err(bad(
                "SHA256",
                format!("{} is not a sha256 hex digest", excerpt(&sha256)),
            ));
        }
        for (field, value) in [
            ("Package", &package),
            ("Version", &version),
            ("Architecture", &architecture),
        ] {
            if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(bad(field, format!("{} has blanks", excerpt(value))));
            }
        }
        let metadata_sha256 = hex::encode(Sha256::digest(stanza.normalized().as_bytes()));
        Ok(PackageData {
            package,
            version,
            architecture,
            relative_path,
            sha256,
            metadata_sha256,
            size,
            stanza: stanza.into_fields(),
        })
    }

    pub fn unit(&self) -> UnsavedContent {
        let nk = key((&self.relative_path, &self.sha256, &self.metadata_sha256));
        unit(PACKAGE, nk.clone(), nk, self)
    }
}

/// `deb.release`: a distribution's Release fields (pulp_deb's NULLs are JSON nulls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseData {
    pub codename: Option<String>,
    pub suite: Option<String>,
    pub distribution: String,
    pub version: Option<String>,
    pub origin: Option<String>,
    pub label: Option<String>,
    pub description: Option<String>,
}

impl ReleaseData {
    pub fn unit(&self) -> UnsavedContent {
        let nk = key((
            &self.codename,
            &self.suite,
            &self.distribution,
            &self.version,
            &self.origin,
            &self.label,
            &self.description,
        ));
        unit(RELEASE, nk, key((&self.distribution,)), self)
    }
}

/// `deb.release_component`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseComponentData {
    pub distribution: String,
    pub component: String,
}

impl ReleaseComponentData {
    pub fn unit(&self) -> UnsavedContent {
        let nk = key((&self.distribution, &self.component));
        unit(RELEASE_COMPONENT, nk.clone(), nk, self)
    }
}

/// `deb.release_architecture`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseArchitectureData {
    pub distribution: String,
    pub architecture: String,
}

impl ReleaseArchitectureData {
    pub fn unit(&self) -> UnsavedContent {
        let nk = key((&self.distribution, &self.architecture));
        unit(RELEASE_ARCHITECTURE, nk.clone(), nk, self)
    }
}

/// `deb.package_release_component`: a package is in a component (content ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageReleaseComponentData {
    pub package: Uuid,
    pub release_component: Uuid,
}

impl PackageReleaseComponentData {
    pub fn unit(&self) -> UnsavedContent {
        let nk = key((self.package, self.release_component));
        unit(PACKAGE_RELEASE_COMPONENT, nk.clone(), nk, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::deb::deb822::parse_stanzas;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn stanza(extra: &str) -> Stanza {
        parse_stanzas(&format!(
            "Package: hello\nVersion: 1:2.0-1\nArchitecture: amd64\n{extra}Size: 12\nSHA256: {SHA}\nDescription: hi\n there\n"
        ))
        .unwrap()
        .remove(0)
    }

    #[test]
    fn a_stanza_makes_a_package_with_its_fields_in_order() {
        let p =
            PackageData::from_stanza(stanza("Filename: pool/main/h/hello.deb\n"), "idx").unwrap();
        assert_eq!(p.package, "hello");
        assert_eq!(p.version, "1:2.0-1");
        assert_eq!(p.relative_path, "pool/main/h/hello.deb");
        assert_eq!(p.size, 12);
        assert_eq!(p.stanza[0], ("Package".into(), "hello".into()));
        assert_eq!(p.stanza.last().unwrap().1, "hi\n there");
        let u = p.unit();
        assert_eq!(u.pulp_type, PACKAGE);
        assert_eq!(u.repo_key, u.natural_key);
        assert!(u.natural_key.contains("pool/main/h/hello.deb"));
        let again =
            PackageData::from_stanza(stanza("Filename: pool/main/h/hello.deb\n"), "x").unwrap();
        assert_eq!(again.metadata_sha256, p.metadata_sha256);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["stanza"][1], serde_json::json!(["Version", "1:2.0-1"]));
        let back: PackageData = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn a_stanza_without_filename_fails_naming_the_file_and_package() {
        let e = PackageData::from_stanza(stanza(""), "dists/stable/main/binary-amd64/Packages.xz")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dists/stable/main/binary-amd64/Packages.xz"),
            "{e}"
        );
        assert!(e.contains("hello"), "{e}");
        assert!(e.contains("Filename"), "{e}");
    }

    #[test]
    fn unsafe_filenames_are_rejected() {
        for bad in ["../etc/passwd", "/abs.deb", "a\\b.deb", "pool/%2e%2e/x.deb"] {
            let e = PackageData::from_stanza(stanza(&format!("Filename: {bad}\n")), "f");
            assert!(e.is_err(), "{bad}");
        }
    }

    #[test]
    fn content_types_name_every_type_once() {
        let types = content_types();
        assert_eq!(types.len(), 7);
        for t in &types {
            assert!(t.pulp_type.starts_with("deb."));
            for k in t.natural_key.iter().chain(t.repo_key) {
                assert!(t.fields.contains(k), "{} {k}", t.pulp_type);
            }
        }
    }

    #[test]
    fn artifact_set_digest_depends_on_every_file() {
        let a = artifact_set_sha256([("Release", SHA), ("Release.gpg", SHA)]);
        let b = artifact_set_sha256([("Release", SHA)]);
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
    }
}
