//! What a user reads when a command fails: the error chain with each cause said once, and
//! database failures turned into what to do about them.
//!
//! The library's errors already carry their source's text (`database error: {0}`), so printing
//! anyhow's whole chain would repeat it; [`render`] leaves out a cause the message so far
//! already says. [`database`] inspects the sqlx error behind a failed connection (a missing
//! database, a closed port, a refused login) and says it plainly; [`precheck_postgres`] makes a
//! closed port fail at once instead of after the pool's 30 s acquire timeout.

use std::fmt::Write as _;

use pulp_rs::db::DbError;

/// `error`'s message and its causes, each cause left out when the text so far contains it.
pub fn render(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        let text = text.trim();
        if text.is_empty() || out.contains(text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text);
    }
    out
}

/// The sqlx error inside a database-layer error, if any.
fn sqlx_of(e: &DbError) -> Option<&sqlx::Error> {
    match e {
        DbError::Sqlx(s) => Some(s),
        DbError::Migrate(sqlx::migrate::MigrateError::Execute(s))
        | DbError::Migrate(sqlx::migrate::MigrateError::ExecuteMigration(s, _)) => Some(s),
        _ => None,
    }
}

/// A plain account of why opening `url` (shown as `shown`, its password hidden) failed.
pub fn database(url: &str, shown: &str, e: &DbError) -> anyhow::Error {
    if let Some(s) = sqlx_of(e) {
        if let Some(text) = explain_sqlx(url, shown, s) {
            return anyhow::anyhow!(text);
        }
    }
    anyhow::anyhow!("cannot open the database {shown}: {e}")
}

/// The database name and the `host`/`port`/`user` of a PostgreSQL URL, for advice.
struct PgTarget {
    name: String,
    host: String,
    port: u16,
    user: String,
}

fn pg_target(url: &str) -> Option<PgTarget> {
    let u = url::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        return None;
    }
    Some(PgTarget {
        name: u.path().trim_start_matches('/').to_string(),
        host: u.host_str().unwrap_or("localhost").to_string(),
        port: u.port().unwrap_or(5432),
        user: match u.username() {
            "" => "postgres".to_string(),
            user => user.to_string(),
        },
    })
}

fn explain_sqlx(url: &str, shown: &str, e: &sqlx::Error) -> Option<String> {
    let pg = pg_target(url);
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            // Only the server's message: its Debug form names PostgreSQL's own source lines.
            let message = db.message().to_string();
            match (code.as_str(), &pg) {
                ("3D000", Some(t)) => Some(format!(
                    "the database {:?} does not exist on {}:{}; create it with \
                     `createdb -h {} -p {} -U {} {}` (or psql: CREATE DATABASE \"{}\";)",
                    t.name, t.host, t.port, t.host, t.port, t.user, t.name, t.name
                )),
                ("28P01" | "28000", Some(t)) => Some(format!(
                    "PostgreSQL at {}:{} refused user {:?}: {message}; check the user and \
                     password in the database URL",
                    t.host, t.port, t.user
                )),
                _ => {
                    let mut text = format!("cannot open the database {shown}: {message}");
                    if !code.is_empty() {
                        let _ = write!(text, " (SQLSTATE {code})");
                    }
                    Some(text)
                }
            }
        }
        sqlx::Error::Io(io) => {
            let target = match &pg {
                Some(t) => format!("PostgreSQL at {}:{}", t.host, t.port),
                None => format!("the database {shown}"),
            };
            Some(match io.kind() {
                std::io::ErrorKind::ConnectionRefused => format!(
                    "cannot reach {target}: connection refused (is the server running and \
                     listening there?)"
                ),
                _ => format!("cannot reach {target}: {io}"),
            })
        }
        sqlx::Error::PoolTimedOut => Some(format!(
            "cannot open the database {shown}: no connection within the pool's timeout"
        )),
        _ => None,
    }
}

/// One direct connection attempt to a PostgreSQL URL (no pool, no retries), so that a closed
/// port, a missing database or a refused login is reported at once. Other URLs pass.
pub async fn precheck_postgres(url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Ok(());
    }
    let shown = super::redact_url(url);
    match sqlx::PgConnection::connect(url).await {
        Ok(conn) => {
            let _ = conn.close().await;
            Ok(())
        }
        Err(e) => Err(database(url, &shown, &DbError::Sqlx(e))),
    }
}

/// A hint for a manifest "URL" that is a plain path: the `file://` URL it probably meant.
pub fn file_url_hint(given: &str) -> Option<String> {
    if url::Url::parse(given).is_ok_and(|u| u.scheme().len() > 1) {
        return None;
    }
    let path = std::path::Path::new(given);
    let absolute = match std::path::absolute(path) {
        Ok(p) => p,
        Err(_) => return None,
    };
    Some(format!(
        "{given:?} is not a URL; for a local file use file://{}",
        absolute.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("database error: {0}")]
    struct Wraps(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let inner = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(Wraps(inner)).context("sync of \"demo\" failed");
        assert_eq!(
            render(&e),
            "sync of \"demo\" failed: database error: disk on fire"
        );
    }

    #[test]
    fn a_cause_not_yet_said_is_kept() {
        let e = anyhow::anyhow!("root cause").context("outer");
        assert_eq!(render(&e), "outer: root cause");
    }

    #[test]
    fn a_plain_path_gets_a_file_url_hint_and_a_url_does_not() {
        let hint = file_url_hint("fixtures/basic/PULP_MANIFEST").expect("a hint");
        assert!(hint.contains("file:///"), "{hint}");
        assert!(hint.ends_with("fixtures/basic/PULP_MANIFEST"), "{hint}");
        assert!(file_url_hint("/abs/PULP_MANIFEST").is_some());
        assert_eq!(file_url_hint("https://example.org/PULP_MANIFEST"), None);
        assert_eq!(file_url_hint("file:///srv/PULP_MANIFEST"), None);
    }
}
