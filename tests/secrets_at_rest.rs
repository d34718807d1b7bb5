//! Secrets at rest (both backends): remote passwords, proxy passwords and client keys are
//! stored encrypted (the raw row never holds the plaintext; neither do the stored arguments of
//! a remote update), the API never returns them, a plaintext row from before encryption is
//! still read, and `pulp-rs rotate-db-key` re-encrypts everything with a new key that the old
//! one no longer decrypts; a process with the old key then refuses to start.

mod common;

use std::path::Path;
use std::time::Duration;

use common::app::{backends, TestApp};
use pulp_rs::secrets::{SecretBox, SecretError, PREFIX};
use pulp_rs::server::{Parts, Server};
use serde_json::json;
use sqlx::Row;

const REMOTES: &str = "/pulp/api/v3/remotes/file/file/";
const PASSWORD: &str = "pw-correct-horse-battery";
const PROXY_PASSWORD: &str = "proxy-pw-tr0ub4dor";
const CLIENT_KEY: &str =
    "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIsecretkeybytes\n-----END PRIVATE KEY-----\n";

/// Raw text of every remote secret column and of every task's arguments.
async fn raw(url: &str) -> (Vec<Option<String>>, Vec<String>) {
    let mut secrets = Vec::new();
    let mut args = Vec::new();
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        for row in sqlx::query("SELECT password, proxy_password, client_key FROM remotes")
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            for c in 0..3 {
                secrets.push(row.get::<Option<String>, _>(c));
            }
        }
        for row in sqlx::query("SELECT args FROM tasks")
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            args.push(row.get::<String, _>(0));
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        for row in sqlx::query("SELECT password, proxy_password, client_key FROM remotes")
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            for c in 0..3 {
                secrets.push(row.get::<Option<String>, _>(c));
            }
        }
        for row in sqlx::query("SELECT CAST(args AS TEXT) FROM tasks")
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            args.push(row.get::<String, _>(0));
        }
        pool.close().await;
    }
    (secrets, args)
}

async fn execute(url: &str, sql: &str) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}

fn assert_sealed(values: &[Option<String>], key: &SecretBox, clear: &[&str]) {
    for v in values.iter().flatten() {
        assert!(v.starts_with(PREFIX), "stored sealed: {v}");
        for c in clear {
            assert!(!v.contains(c), "plaintext in the stored row");
        }
        let opened = key.decrypt(v).expect("the key opens it");
        assert!(clear.contains(&opened.as_str()), "{opened}");
    }
}

fn pulp_rs_cmd(data_dir: &Path, database_url: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pulp-rs"));
    cmd.env_remove("PULP_DATABASE_URL")
        .env_remove("PULP_DATA_DIR")
        .env_remove("PULP_CONFIG")
        .env_remove("PULP_DB_ENCRYPTION_KEY")
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--database-url")
        .arg(database_url);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_encrypted_at_rest_and_rotate() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        let url = app.settings.database_url();
        let data_dir = app.settings.data_dir.clone();
        let key_file = data_dir.join("db_encryption.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o777,
                0o600,
                "{backend}: generated key file is private"
            );
        }
        let old_key = SecretBox::load(&key_file).unwrap();

        let (status, remote) = app
            .post(
                REMOTES,
                json!({
                    "name": "secret", "url": "http://127.0.0.1:1/PULP_MANIFEST",
                    "username": "u", "password": PASSWORD,
                    "proxy_url": "http://127.0.0.1:3128", "proxy_password": PROXY_PASSWORD,
                    "client_key": CLIENT_KEY,
                }),
            )
            .await;
        assert_eq!(status, 201, "{backend}: {remote}");
        let href = remote["pulp_href"].as_str().unwrap().to_string();
        let shown = app.get(&href).await.1.to_string();
        for s in [PASSWORD, PROXY_PASSWORD, "secretkeybytes"] {
            assert!(
                !shown.contains(s),
                "{backend}: the API shows a secret: {shown}"
            );
        }
        let (secrets, _) = raw(&url).await;
        assert_eq!(
            secrets.iter().flatten().count(),
            3,
            "{backend}: {secrets:?}"
        );
        assert_sealed(&secrets, &old_key, &[PASSWORD, PROXY_PASSWORD, CLIENT_KEY]);

        // A remote update: the stored task arguments hold the new password sealed too.
        let new_password = "pw-updated-staple";
        let (status, task) = app.patch(&href, json!({"password": new_password})).await;
        assert_eq!(status, 202, "{task}");
        let done = app
            .wait_task(task["task"].as_str().unwrap(), Duration::from_secs(30))
            .await;
        assert_eq!(done["state"], "completed", "{backend}: {done}");
        let (secrets, args) = raw(&url).await;
        assert_sealed(
            &secrets,
            &old_key,
            &[new_password, PROXY_PASSWORD, CLIENT_KEY],
        );
        assert!(
            args.iter().all(|a| !a.contains(new_password)),
            "{backend}: plaintext in task arguments: {args:?}"
        );
        assert!(
            args.iter().any(|a| a.contains(PREFIX)),
            "{backend}: {args:?}"
        );
        let store = pulp_rs::db::connect(&url).await.unwrap();
        pulp_rs::server::attach_secrets(&store, &app.settings)
            .await
            .unwrap();
        let id =
            uuid::Uuid::parse_str(href.trim_end_matches('/').rsplit('/').next().unwrap()).unwrap();
        let read = store.get_remote(id).await.unwrap();
        assert_eq!(read.password.as_deref(), Some(new_password));
        assert_eq!(read.client_key.as_deref(), Some(CLIENT_KEY));

        // A plaintext row from before encryption is read as it is.
        execute(&url, "UPDATE remotes SET proxy_password = 'legacy-plain'").await;
        let read = store.get_remote(id).await.unwrap();
        assert_eq!(read.proxy_password.as_deref(), Some("legacy-plain"));
        drop(store);
        app.stop().await;

        // Rotation, with the real command.
        let new_key_file = data_dir.join("new.key");
        let out = pulp_rs_cmd(&data_dir, &url)
            .arg("rotate-db-key")
            .arg("--new-key")
            .arg(&new_key_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{backend}: rotate-db-key: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("Re-encrypted"), "{stdout}");
        let new_key = SecretBox::load(&new_key_file).unwrap();
        let (secrets, args) = raw(&url).await;
        assert_sealed(
            &secrets,
            &new_key,
            &[new_password, "legacy-plain", CLIENT_KEY],
        );
        for v in secrets.iter().flatten() {
            assert!(
                matches!(old_key.decrypt(v), Err(SecretError::WrongKey { .. })),
                "{backend}: the old key no longer opens a rotated secret"
            );
        }
        for a in &args {
            assert!(!a.contains(old_key.key_id().unwrap()), "{backend}: {a}");
        }

        // The old key file refuses to start; the new one starts and reads the secrets.
        let parts = Parts {
            api: true,
            content: false,
            workers: 0,
        };
        let err = Server::start(&app.settings, parts)
            .await
            .err()
            .expect("a process with the old key must not start");
        assert!(err.to_string().contains("encrypted with key"), "{err}");
        let mut settings = app.settings.clone();
        settings.db_encryption_key = Some(new_key_file.clone());
        let server = Server::start(&settings, parts)
            .await
            .expect("new key starts");
        let store = pulp_rs::db::connect(&url).await.unwrap();
        pulp_rs::server::attach_secrets(&store, &settings)
            .await
            .unwrap();
        let read = store.get_remote(id).await.unwrap();
        assert_eq!(read.password.as_deref(), Some(new_password));
        assert_eq!(read.proxy_password.as_deref(), Some("legacy-plain"));
        server.stop().await;

        // `pulp-rs config` hides secrets.
        let out = pulp_rs_cmd(&data_dir, &url)
            .arg("config")
            .env("PULP_S3_SECRET_ACCESS_KEY", "s3-very-secret")
            .env("PULP_ADMIN_PASSWORD", "admin-very-secret")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("s3_secret_access_key = \"****\""), "{text}");
        assert!(text.contains("admin_password = \"****\""), "{text}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(text.contains("storage_backend = \"filesystem\""), "{text}");
    }
}
