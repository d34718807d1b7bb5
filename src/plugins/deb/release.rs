//! Release and InRelease files: what a distribution contains and the digests of its indices.
//!
//! [`signed_body`] takes the text out of a clearsigned `InRelease` (the OpenPGP check is
//! [`super::verify`]'s job); [`Release::parse`] reads the one stanza: suite, codename,
//! components, architectures, `No-Support-for-Architecture-all`, and the `SHA256` list of
//! files (`<digest> <size> <path>`, paths relative to the Release file's directory).
//! [`Release::best_index`] picks the package index to fetch (`.xz`, then `.gz`, then plain).

use std::collections::BTreeMap;

use super::deb822::parse_stanzas;
use crate::plugins::excerpt;

/// One file listed in a Release file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    pub sha256: String,
    pub size: u64,
}

/// What a Release file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Release {
    pub origin: Option<String>,
    pub label: Option<String>,
    pub suite: Option<String>,
    pub version: Option<String>,
    pub codename: Option<String>,
    pub description: Option<String>,
    pub components: Vec<String>,
    pub architectures: Vec<String>,
    /// `No-Support-for-Architecture-all: Packages`: `all` packages are listed in every
    /// `binary-<arch>` index, so `binary-all` need not be read.
    pub all_in_arch_indices: bool,
    /// The `SHA256` list by path.
    pub sha256: BTreeMap<String, ListedFile>,
}

/// The compressions a package index may be listed with, best first.
pub const INDEX_SUFFIXES: [&str; 3] = [".xz", ".gz", ""];

impl Release {
    /// Parses the text of a Release file (or the body of an InRelease).
    pub fn parse(text: &str) -> Result<Release, String> {
        let stanzas = parse_stanzas(text).map_err(|e| e.to_string())?;
        let Some(s) = stanzas.first() else {
            return Err("empty Release file".into());
        };
        let words = |name: &str| -> Vec<String> {
            s.get(name)
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        };
        let text_of = |name: &str| s.get(name).map(|v| v.trim().to_string());
        let mut sha256 = BTreeMap::new();
        let Some(list) = s.get("SHA256") else {
            return Err("no SHA256 list of files".into());
        };
        for line in list.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [digest, size, path] = parts[..] else {
                return Err(format!(
                    "bad SHA256 entry {}: expected `<sha256> <size> <path>`",
                    excerpt(line)
                ));
            };
            let digest = digest.to_ascii_lowercase();
            if !crate::storage::is_sha256_hex(&digest) {
                return Err(format!("bad SHA256 digest {}", excerpt(&digest)));
            }
            let size: u64 = size
                .parse()
                .map_err(|_| format!("bad size {} for {}", excerpt(size), excerpt(path)))?;
            sha256.insert(
                path.to_string(),
                ListedFile {
                    sha256: digest,
                    size,
                },
            );
        }
        let all_in_arch_indices = s
            .get("No-Support-for-Architecture-all")
            .map(|v| v.split_whitespace().any(|w| w == "Packages"))
            .unwrap_or(false);
        Ok(Release {
            origin: text_of("Origin"),
            label: text_of("Label"),
            suite: text_of("Suite"),
            version: text_of("Version"),
            codename: text_of("Codename"),
            description: text_of("Description"),
            components: words("Components"),
            architectures: words("Architectures"),
            all_in_arch_indices,
            sha256,
        })
    }

    /// The listed compressions of the index `base` (`main/binary-amd64/Packages`), best
    /// first: their paths and listings.
    pub fn listed_indices(&self, base: &str) -> Vec<(String, &ListedFile)> {
        let mut out = Vec::new();
        for suffix in INDEX_SUFFIXES {
            let path = format!("{base}{suffix}");
            if let Some(listed) = self.sha256.get(&path) {
                out.push((path, listed));
            }
        }
        out
    }

    /// The best listed compression of the index `base`.
    pub fn best_index(&self, base: &str) -> Option<(String, &ListedFile)> {
        self.listed_indices(base).into_iter().next()
    }
}

/// The signed text of a clearsigned message (InRelease), dash-escaping undone; a text that is
/// not clearsigned is returned as it is (a plain Release file).
pub fn signed_body(text: &str) -> Result<String, String> {
    const BEGIN: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
    const SIG: &str = "-----BEGIN PGP SIGNATURE-----";
    let trimmed = text.trim_start();
    if !trimmed.starts_with(BEGIN) {
        return Ok(text.to_string());
    }
    let mut lines = trimmed.split('\n').skip(1);
    // Armor headers (`Hash: SHA512`) up to the first blank line.
    for line in lines.by_ref() {
        if line.trim_end_matches('\r').is_empty() {
            break;
        }
    }
    let mut body = String::with_capacity(text.len());
    let mut signed = false;
    for line in lines {
        let line = line.trim_end_matches('\r');
        if line == SIG {
            signed = true;
            break;
        }
        body.push_str(line.strip_prefix("- ").unwrap_or(line));
        body.push('\n');
    }
    if !signed {
        return Err("clearsigned message without a signature block".into());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn sample() -> String {
        format!(
            "Origin: Test\nLabel: Test\nSuite: stable\nCodename: bookworm\nVersion: 12.4\nArchitectures: amd64 all\nComponents: main contrib\nDescription: A test\nNo-Support-for-Architecture-all: Packages\nMD5Sum:\n 0123 12 main/binary-amd64/Packages\nSHA256:\n {SHA_A}   120 main/binary-amd64/Packages\n {SHA_B} 60 main/binary-amd64/Packages.xz\n {SHA_A} 70 main/binary-amd64/Packages.gz\n"
        )
    }

    #[test]
    fn parses_fields_and_the_sha256_list() {
        let r = Release::parse(&sample()).unwrap();
        assert_eq!(r.suite.as_deref(), Some("stable"));
        assert_eq!(r.codename.as_deref(), Some("bookworm"));
        assert_eq!(r.version.as_deref(), Some("12.4"));
        assert_eq!(r.components, vec!["main", "contrib"]);
        assert_eq!(r.architectures, vec!["amd64", "all"]);
        assert!(r.all_in_arch_indices);
        assert_eq!(r.sha256.len(), 3);
        assert_eq!(r.sha256["main/binary-amd64/Packages"].size, 120);
        let (path, listed) = r.best_index("main/binary-amd64/Packages").unwrap();
        assert_eq!(path, "main/binary-amd64/Packages.xz");
        assert_eq!(listed.sha256, SHA_B);
        assert!(r.best_index("contrib/binary-amd64/Packages").is_none());
        let all: Vec<String> = r
            .listed_indices("main/binary-amd64/Packages")
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            all,
            vec![
                "main/binary-amd64/Packages.xz",
                "main/binary-amd64/Packages.gz",
                "main/binary-amd64/Packages"
            ]
        );
    }

    #[test]
    fn rejects_bad_sha256_entries_quoting_an_excerpt() {
        let e = Release::parse("Suite: s\nSHA256:\n nothex 1 x\n").unwrap_err();
        assert!(e.contains("bad SHA256 digest"), "{e}");
        let e = Release::parse(&format!("SHA256:\n {SHA_A} many x\n")).unwrap_err();
        assert!(e.contains("bad size"), "{e}");
        assert!(Release::parse("Suite: s\n").unwrap_err().contains("SHA256"));
    }

    #[test]
    fn strips_a_clearsigned_message_to_its_body() {
        let signed = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nSuite: stable\n- -dash line\n-----BEGIN PGP SIGNATURE-----\n\nabc\n-----END PGP SIGNATURE-----\n";
        assert_eq!(signed_body(signed).unwrap(), "Suite: stable\n-dash line\n");
        assert_eq!(signed_body("Suite: x\n").unwrap(), "Suite: x\n");
        assert!(signed_body("-----BEGIN PGP SIGNED MESSAGE-----\n\nSuite: x\n").is_err());
    }
}
