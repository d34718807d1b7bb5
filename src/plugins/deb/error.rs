//! [`DebError`], the one error type of the Debian plugin. Every message names the upstream file
//! it is about by its path under the remote's URL (`dists/stable/InRelease`), never the URL
//! itself (which may carry credentials), and quotes upstream text only through
//! [`crate::plugins::excerpt`].

use crate::db::DbError;
use crate::downloader::DownloadError;
use crate::stages::StageError;

/// Why a Debian sync failed.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// The remote's Debian options are unusable.
    #[error("invalid Debian remote options: {0}")]
    Options(String),
    /// An option this plugin accepts but does not implement yet.
    #[error("{0} is not implemented yet")]
    NotImplemented(&'static str),
    /// Neither InRelease nor Release exists for a distribution.
    #[error("{file}: no InRelease or Release file upstream (HTTP 404)")]
    NoRelease { file: String },
    /// A Release file that cannot be read.
    #[error("{file}: {reason}")]
    Release { file: String, reason: String },
    /// A bad or missing signature while a gpgkey is set, or an unusable gpgkey.
    #[error("{file}: signature check failed: {reason}")]
    Signature { file: String, reason: String },
    /// A package index listed in the Release file is missing upstream.
    #[error("{file}: package index listed in the Release file is missing upstream (HTTP 404 for every listed compression); set ignore_missing_package_indices to skip it")]
    MissingIndex { file: String },
    /// A package index the selection needs is not listed in the Release file.
    #[error("{file}: no package index (Packages, Packages.gz or Packages.xz) is listed in the Release file; set ignore_missing_package_indices to skip it")]
    UnlistedIndex { file: String },
    /// An index's uncompressed bytes differ from what the Release file lists.
    #[error("{file}: uncompressed content does not match the Release file (sha256 {actual}, listed {listed})")]
    IndexDigest {
        file: String,
        listed: String,
        actual: String,
    },
    /// An index that cannot be read or decompressed (a cut `.xz`).
    #[error("{file}: cannot read or decompress the package index: {reason}")]
    Decompress { file: String, reason: String },
    /// Malformed deb822 text.
    #[error("{file}: malformed, {reason}")]
    Syntax { file: String, reason: String },
    /// A package stanza without a required field.
    #[error("{file}: the stanza of package {package} (line {line}) has no {field} field")]
    MissingField {
        file: String,
        package: String,
        line: u64,
        field: &'static str,
    },
    /// A package stanza with an unusable field.
    #[error("{file}: the stanza of package {package} (line {line}) has a bad {field}: {reason}")]
    BadField {
        file: String,
        package: String,
        line: u64,
        field: &'static str,
        reason: String,
    },
    /// The same name, version and architecture with two different files in one sync.
    #[error("{file}: package {package} is listed twice with different SHA256 digests ({first} and {second})")]
    Duplicate {
        file: String,
        /// `name version architecture`, each an excerpt.
        package: String,
        first: String,
        second: String,
    },
    /// A unit of an earlier level did not come back saved.
    #[error("cannot keep the unchanged components of the latest version: {0}")]
    Keep(String),
    #[error("{what} was not saved: {reason}")]
    Resolve { what: String, reason: String },
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<DebError> for StageError {
    fn from(e: DebError) -> StageError {
        match e {
            DebError::Download(d) => StageError::Download(d),
            DebError::Db(d) => StageError::Db(d),
            other => StageError::Plugin(other.to_string()),
        }
    }
}
