//! Column lists and row decoders of the shared models, by column name. A query that joins
//! tables whose columns share names selects one side with a prefix (`a.id AS a_id`, see
//! [`artifact_cols`]) and decodes it with that prefix.

use std::str::FromStr;

use sqlx::Row;

use super::DbRow;
use crate::db::shared;
use crate::db::shared::labels_from_json;
use crate::db::types::{Id, Json, Time};
use crate::db::{DbError, DbResult};
use crate::models::{
    Artifact, Content, OtherDigests, Policy, Remote, RemoteArtifact, Repository, RepositoryVersion,
    VersionCounts,
};

pub(crate) const REPO_COLS: &str = "id, pulp_type, name, description, next_version, remote_id, \
     pulp_created, pulp_last_updated, pulp_labels, retain_repo_versions, plugin_data";

pub(crate) const VERSION_COLS: &str =
    "id, repository_id, number, complete, added, removed, present, pulp_created";

/// The content columns of table alias `c`.
pub(crate) const CONTENT_COLS: &str =
    "c.id, c.pulp_type, c.natural_key, c.repo_key, c.data, c.pulp_created";

pub(crate) const REMOTE_COLS: &str = "id, pulp_type, name, url, policy, download_concurrency, \
     max_retries, username, password, proxy_url, proxy_username, proxy_password, ca_cert, \
     client_cert, client_key, tls_validation, headers, connect_timeout, sock_read_timeout, \
     total_timeout, rate_limit, pulp_created, pulp_last_updated, pulp_labels, \
     sock_connect_timeout, plugin_data";

pub(crate) const REMOTE_ARTIFACT_COLS: &str =
    "id, content_artifact_id, remote_id, url, size, sha256, sha224, sha384, sha512";

/// The artifact columns of table `alias`, each named `<prefix><column>`.
pub(crate) fn artifact_cols(alias: &str, prefix: &str) -> String {
    [
        "id",
        "sha256",
        "size",
        "sha224",
        "sha384",
        "sha512",
        "file",
        "pulp_created",
    ]
    .iter()
    .map(|c| format!("{alias}.{c} AS {prefix}{c}"))
    .collect::<Vec<_>>()
    .join(", ")
}

pub(crate) fn repo_from(row: &DbRow) -> DbResult<Repository> {
    Ok(Repository {
        id: row.try_get::<Id, _>("id")?.0,
        pulp_type: row.try_get("pulp_type")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        next_version: row.try_get("next_version")?,
        remote_id: row.try_get::<Option<Id>, _>("remote_id")?.map(|i| i.0),
        pulp_created: row.try_get::<Time, _>("pulp_created")?.0,
        pulp_last_updated: row.try_get::<Time, _>("pulp_last_updated")?.0,
        pulp_labels: labels_from_json(&row.try_get::<Json, _>("pulp_labels")?.0)?,
        retain_repo_versions: shared::opt_to_u64(
            row.try_get("retain_repo_versions")?,
            "retain_repo_versions",
        )?,
        plugin_data: row.try_get::<Json, _>("plugin_data")?.0,
    })
}

pub(crate) fn version_from(row: &DbRow) -> DbResult<RepositoryVersion> {
    Ok(RepositoryVersion {
        id: row.try_get::<Id, _>("id")?.0,
        repository_id: row.try_get::<Id, _>("repository_id")?.0,
        number: row.try_get("number")?,
        complete: row.try_get("complete")?,
        counts: VersionCounts {
            added: shared::to_u64(row.try_get("added")?, "added count")?,
            removed: shared::to_u64(row.try_get("removed")?, "removed count")?,
            present: shared::to_u64(row.try_get("present")?, "present count")?,
        },
        pulp_created: row.try_get::<Time, _>("pulp_created")?.0,
    })
}

/// A content unit selected with [`CONTENT_COLS`].
pub(crate) fn content_from(row: &DbRow) -> DbResult<Content> {
    Ok(Content {
        id: row.try_get::<Id, _>("id")?.0,
        pulp_type: row.try_get("pulp_type")?,
        natural_key: row.try_get("natural_key")?,
        repo_key: row.try_get("repo_key")?,
        data: row.try_get::<Json, _>("data")?.0,
        pulp_created: row.try_get::<Time, _>("pulp_created")?.0,
    })
}

/// An artifact whose columns are named `<prefix><column>` (see [`artifact_cols`]).
pub(crate) fn artifact_from(row: &DbRow, prefix: &str) -> DbResult<Artifact> {
    let col = |c: &str| format!("{prefix}{c}");
    Ok(Artifact {
        id: row.try_get::<Id, _>(col("id").as_str())?.0,
        sha256: row.try_get(col("sha256").as_str())?,
        size: shared::to_u64(row.try_get(col("size").as_str())?, "artifact size")?,
        other: OtherDigests {
            sha224: row.try_get(col("sha224").as_str())?,
            sha384: row.try_get(col("sha384").as_str())?,
            sha512: row.try_get(col("sha512").as_str())?,
        },
        file: row.try_get(col("file").as_str())?,
        pulp_created: row.try_get::<Time, _>(col("pulp_created").as_str())?.0,
    })
}

pub(crate) fn remote_from(row: &DbRow) -> DbResult<Remote> {
    let policy: String = row.try_get("policy")?;
    Ok(Remote {
        id: row.try_get::<Id, _>("id")?.0,
        pulp_type: row.try_get("pulp_type")?,
        name: row.try_get("name")?,
        url: row.try_get("url")?,
        policy: Policy::from_str(&policy).map_err(DbError::Corrupt)?,
        download_concurrency: shared::opt_to_u32(
            row.try_get("download_concurrency")?,
            "download_concurrency",
        )?,
        max_retries: shared::opt_to_u32(row.try_get("max_retries")?, "max_retries")?,
        username: row.try_get("username")?,
        password: row.try_get("password")?,
        proxy_url: row.try_get("proxy_url")?,
        proxy_username: row.try_get("proxy_username")?,
        proxy_password: row.try_get("proxy_password")?,
        ca_cert: row.try_get("ca_cert")?,
        client_cert: row.try_get("client_cert")?,
        client_key: row.try_get("client_key")?,
        tls_validation: row.try_get("tls_validation")?,
        headers: shared::headers_from_json(&row.try_get::<Json, _>("headers")?.0)?,
        connect_timeout: row.try_get("connect_timeout")?,
        sock_read_timeout: row.try_get("sock_read_timeout")?,
        total_timeout: row.try_get("total_timeout")?,
        rate_limit: shared::opt_to_u32(row.try_get("rate_limit")?, "rate_limit")?,
        pulp_created: row.try_get::<Time, _>("pulp_created")?.0,
        pulp_last_updated: row.try_get::<Time, _>("pulp_last_updated")?.0,
        pulp_labels: labels_from_json(&row.try_get::<Json, _>("pulp_labels")?.0)?,
        sock_connect_timeout: row.try_get("sock_connect_timeout")?,
        plugin_data: row.try_get::<Json, _>("plugin_data")?.0,
    })
}

pub(crate) fn remote_artifact_from(row: &DbRow) -> DbResult<RemoteArtifact> {
    Ok(RemoteArtifact {
        id: row.try_get::<Id, _>("id")?.0,
        content_artifact_id: row.try_get::<Id, _>("content_artifact_id")?.0,
        remote_id: row.try_get::<Id, _>("remote_id")?.0,
        url: row.try_get("url")?,
        size: shared::opt_to_u64(row.try_get("size")?, "remote artifact size")?,
        sha256: row.try_get("sha256")?,
        other: OtherDigests {
            sha224: row.try_get("sha224")?,
            sha384: row.try_get("sha384")?,
            sha512: row.try_get("sha512")?,
        },
    })
}
