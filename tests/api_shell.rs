//! The HTTP shell (`pulp_rs::api::shell`): a failure behind a request is a 500 that names the
//! request id (also in `X-Request-Id`) and none of its cause; a handler's panic is a 500, not a
//! dropped connection; the API's time limit is a 503; a client's request id is kept.

mod common;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::app::{backends, TestApp};
use serde_json::Value;
use sqlx::Connection;

const REMOTES: &str = "/pulp/api/v3/remotes/file/file/";

/// Renames the `remotes` table under the running server, so reading remotes fails in the
/// database driver.
async fn break_remotes_table(app: &TestApp) {
    let url = app.settings.database_url();
    let sql = "ALTER TABLE remotes RENAME TO remotes_gone";
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
        sqlx::query(sql).execute(&mut c).await.expect("rename");
        c.close().await.expect("close");
    } else {
        let mut c = sqlx::PgConnection::connect(&url).await.expect("postgres");
        sqlx::query(sql).execute(&mut c).await.expect("rename");
        c.close().await.expect("close");
    }
}

#[tokio::test]
async fn a_database_failure_is_a_500_naming_the_request_id_only() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 0).await;
        let (status, _) = app.get("/pulp/api/v3/status/").await;
        assert_eq!(status, 200, "{backend}");
        break_remotes_table(&app).await;

        let resp = app
            .req(reqwest::Method::GET, REMOTES)
            .send()
            .await
            .expect("a response, not a dropped connection");
        assert_eq!(resp.status(), 500, "{backend}");
        let id = resp
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("X-Request-Id")
            .to_string();
        assert!(!id.is_empty());
        let text = resp.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).expect("a JSON body");
        let detail = body["detail"].as_str().expect("detail");
        assert!(detail.contains(&id), "{backend}: {text}");
        let lower = text.to_lowercase();
        for leak in [
            "no such table",
            "does not exist",
            "select",
            "sqlx",
            "database",
            "sqlite",
            "postgres",
            "remotes",
        ] {
            assert!(!lower.contains(leak), "{backend}: {leak:?} in {text}");
        }

        // A client's own request id is kept, in the header and in the body.
        let resp = app
            .req(reqwest::Method::GET, REMOTES)
            .header("X-Request-Id", "client-id-42")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 500);
        assert_eq!(resp.headers()["x-request-id"], "client-id-42");
        assert!(resp.text().await.unwrap().contains("client-id-42"));

        // Answers that are not 500s carry an id too.
        let resp = app
            .req(reqwest::Method::GET, "/pulp/api/v3/status/")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().contains_key("x-request-id"));
        app.stop().await;
    }
}

/// Serves `router` on a free port; its base URL.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn boom() -> &'static str {
    panic!("secret panic text")
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

#[tokio::test]
async fn a_panic_is_a_500_and_the_time_limit_a_503() {
    let router = Router::new()
        .route("/boom", get(boom))
        .route("/slow", get(slow));
    let base = serve(pulp_rs::api::shell::api(router, Duration::from_millis(200))).await;
    let client = reqwest::Client::new();

    let resp = client.get(format!("{base}/boom")).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let text = resp.text().await.unwrap();
    assert!(text.contains(&id), "{text}");
    assert!(!text.contains("secret"), "{text}");

    let resp = client.get(format!("{base}/slow")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("request id"),
        "{body}"
    );

    // The content app's shell: a panic is a 500 too, and it has no time limit.
    let router = Router::new().route("/boom", get(boom)).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            "late"
        }),
    );
    let base = serve(pulp_rs::api::shell::content(router)).await;
    let resp = client.get(format!("{base}/boom")).send().await.unwrap();
    assert_eq!(resp.status(), 500);
    assert!(!resp.text().await.unwrap().contains("secret"));
    let resp = client.get(format!("{base}/slow")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}
