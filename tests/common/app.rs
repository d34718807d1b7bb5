//! A real `pulp-rs` server in the test process: API, content app and workers on free loopback
//! ports over a temporary data directory, on SQLite or on a fresh PostgreSQL database, plus an
//! HTTP client that speaks to it as `admin`.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use pulp_rs::server::{Parts, Server, Settings};
use serde_json::Value;

/// The admin password every test server starts with.
pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub server: Option<Server>,
    pub api: String,
    pub content: String,
    pub client: reqwest::Client,
    pub settings: Settings,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
}

/// The database URLs to run a test on: SQLite under `dir` always, a fresh PostgreSQL database
/// when `PULP_TEST_DATABASE_URL` is set.
pub async fn backends() -> Vec<&'static str> {
    let mut out = vec!["sqlite"];
    if std::env::var("PULP_TEST_DATABASE_URL").is_ok() {
        out.push("postgres");
    }
    out
}

impl TestApp {
    /// Starts API, content app and `workers` workers on `backend` (`"sqlite"` / `"postgres"`).
    pub async fn start(backend: &'static str, workers: usize) -> TestApp {
        TestApp::start_configured(backend, workers, |_| {}).await
    }

    /// Like [`TestApp::start`], with `configure` applied to the settings first.
    pub async fn start_configured(
        backend: &'static str,
        workers: usize,
        configure: impl FnOnce(&mut Settings),
    ) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let database_url = match backend {
            "sqlite" => None,
            _ => {
                let admin =
                    std::env::var("PULP_TEST_DATABASE_URL").expect("PULP_TEST_DATABASE_URL");
                Some(super::db::fresh_pg_url(&admin, "pulp_test").await)
            }
        };
        let settings = Settings {
            data_dir: dir.path().to_path_buf(),
            database_url,
            api_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            content_bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers,
            content_origin: None,
            admin_password: Some(ADMIN_PASSWORD.to_string()),
            worker_ttl: 30.0,
            metrics_auth: false,
            ..Settings::default()
        };
        let mut settings = settings;
        configure(&mut settings);
        TestApp::start_with(settings, backend, Some(dir)).await
    }

    /// Starts a server with these settings (binds must be port 0 or free).
    pub async fn start_with(
        mut settings: Settings,
        backend: &'static str,
        dir: Option<tempfile::TempDir>,
    ) -> TestApp {
        let parts = Parts {
            api: true,
            content: true,
            workers: settings.workers,
        };
        let server = Server::start(&settings, parts)
            .await
            .expect("server starts");
        let api_addr = server.api_addr.expect("api listening");
        let content_addr = server.content_addr.expect("content listening");
        settings.api_bind = api_addr;
        settings.content_bind = content_addr;
        TestApp {
            server: Some(server),
            api: format!("http://{api_addr}"),
            content: format!("http://{content_addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            settings,
            backend,
            _dir: dir,
        }
    }

    /// `path` (starting with `/`) on the API, as admin.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.api, path))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
    }

    /// GET as admin; returns (status, JSON body or Null).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        send(self.req(reqwest::Method::GET, path)).await
    }

    /// POST a JSON body as admin.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.req(reqwest::Method::POST, path).json(&body)).await
    }

    /// PATCH a JSON body as admin.
    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.req(reqwest::Method::PATCH, path).json(&body)).await
    }

    /// PUT a JSON body as admin.
    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        send(self.req(reqwest::Method::PUT, path).json(&body)).await
    }

    /// DELETE as admin.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        send(self.req(reqwest::Method::DELETE, path)).await
    }

    /// Polls the task at `href` until it is in a final state (panics after `timeout`).
    pub async fn wait_task(&self, href: &str, timeout: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (status, task) = self.get(href).await;
            assert_eq!(status, 200, "GET {href}: {task}");
            let state = task["state"].as_str().unwrap_or_default().to_string();
            if ["completed", "failed", "canceled", "skipped"].contains(&state.as_str()) {
                return task;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "task {href} still {state} after {timeout:?}: {task}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server (workers finish or cancel their tasks).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }
}

/// Sends, returns the status and the JSON body (Null when empty or not JSON).
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body read");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}
