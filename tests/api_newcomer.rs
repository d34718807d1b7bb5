//! What a newcomer to the REST API meets first: the API root listing the endpoints, blank
//! names refused, and a failing task written to the server's log with its error.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::app::{backends, send, TestApp};
use pulp_rs::models::NewTask;
use serde_json::{json, Value};

#[tokio::test]
async fn the_api_root_lists_the_endpoints_without_credentials() {
    let mut app = TestApp::start("sqlite", 0).await;
    let (status, body) = send(app.client.get(format!("{}/pulp/api/v3/", app.api))).await;
    assert_eq!(status, 200, "{body}");
    let root = body.as_object().expect("an object");
    let host = app.api.trim_start_matches("http://");
    for (name, path) in [
        ("tasks", "tasks/"),
        ("repositories/file/file", "repositories/file/file/"),
        ("remotes/file/file", "remotes/file/file/"),
        ("distributions/file/file", "distributions/file/file/"),
        ("content/file/files", "content/file/files/"),
        ("artifacts", "artifacts/"),
    ] {
        assert_eq!(
            root.get(name),
            Some(&Value::from(format!("http://{host}/pulp/api/v3/{path}"))),
            "{name} in {body}"
        );
    }
    // Only list endpoints: no detail paths, no docs.
    assert!(
        root.keys()
            .all(|k| !k.contains('{') && !k.starts_with("docs")),
        "{body}"
    );
    // Every URL it names answers (with credentials).
    for url in root.values() {
        let path = url
            .as_str()
            .unwrap()
            .trim_start_matches(&format!("http://{host}"));
        let (status, _) = app.get(path).await;
        assert_eq!(status, 200, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn empty_or_blank_names_are_a_400() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        for name in ["", "   ", "\t"] {
            let (status, body) = app
                .post(
                    "/pulp/api/v3/repositories/file/file/",
                    json!({ "name": name }),
                )
                .await;
            assert_eq!(status, 400, "{backend} repository {name:?}: {body}");
            assert_eq!(body["name"][0], "This field may not be blank.", "{body}");
            let (status, body) = app
                .post(
                    "/pulp/api/v3/remotes/file/file/",
                    json!({ "name": name, "url": "http://example.org/PULP_MANIFEST" }),
                )
                .await;
            assert_eq!(status, 400, "{backend} remote {name:?}: {body}");
            assert_eq!(body["name"][0], "This field may not be blank.", "{body}");
            let (status, body) = app
                .post(
                    "/pulp/api/v3/distributions/file/file/",
                    json!({ "name": name, "base_path": "somewhere" }),
                )
                .await;
            assert_eq!(status, 400, "{backend} distribution {name:?}: {body}");
            assert_eq!(body["name"][0], "This field may not be blank.", "{body}");
        }
        // A name keeps no surrounding blanks, and a PATCH may not blank it either.
        let (status, repo) = app
            .post(
                "/pulp/api/v3/repositories/file/file/",
                json!({ "name": "  spaced  " }),
            )
            .await;
        assert_eq!(status, 201, "{repo}");
        assert_eq!(repo["name"], "spaced");
        let href = repo["pulp_href"].as_str().unwrap();
        let (status, body) = app.patch(href, json!({ "name": "  " })).await;
        assert_eq!(status, 400, "{backend}: {body}");
        assert_eq!(body["name"][0], "This field may not be blank.", "{body}");
        app.stop().await;
    }
}

/// A `Write` into a shared buffer, for a test's log subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// The default (current-thread) runtime: the workers run on this thread, under its subscriber.
#[tokio::test]
async fn a_failing_task_is_in_the_server_log_with_its_error() {
    let log = Captured::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut app = TestApp::start("sqlite", 1).await;
    let store = pulp_rs::db::connect(&app.settings.database_url())
        .await
        .unwrap();
    let task = pulp_rs::tasking::dispatch(
        &store,
        None,
        &NewTask {
            name: "orphan_cleanup".to_string(),
            args: json!({"orphan_protection_time": "soon"}),
            logging_cid: String::new(),
            exclusive_resources: vec![],
            shared_resources: vec![],
        },
    )
    .await
    .unwrap();
    let href = format!("/pulp/api/v3/tasks/{}/", task.id);
    let done = app.wait_task(&href, Duration::from_secs(20)).await;
    assert_eq!(done["state"], "failed", "{done}");
    let description = done["error"]["description"].as_str().unwrap();
    app.stop().await;
    let text = log.text();
    let line = text
        .lines()
        .find(|l| l.contains("task failed"))
        .unwrap_or_else(|| panic!("no failed task in the log:\n{text}"));
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains(&task.id.to_string()), "{line}");
    assert!(line.contains(description), "{description} not in {line}");
}
