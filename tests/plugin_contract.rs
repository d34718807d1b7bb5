//! The plugin contract from outside the crate: a plugin defined here (the core never names it)
//! contributes a REST route and a task function, which a real server (API, workers, on SQLite
//! and on a fresh PostgreSQL database) serves, documents and runs; and its publication hook,
//! handing the core's publisher paths that leave the publication, fails without leaving a
//! publication behind, whatever the plugin checked or not.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::Json;
use common::app::{backends, TestApp};
use pulp_rs::api::{ApiBuilder, ApiError, AppState};
use pulp_rs::plugins::{
    ApiNames, ContentType, ModelNames, Plugin, PublicationType, PublishError, Publisher, SyncEnv,
};
use pulp_rs::server::{Parts, Server};
use pulp_rs::stages::{Stage, StageError, StageIo};
use pulp_rs::tasking::{Registry, TaskError};
use pulp_rs::tasks::TaskEnv;
use serde_json::{json, Map, Value};

const API: &str = "/pulp/api/v3/";
const ECHO_TASK: &str = "probe_echo";

/// A plugin with one content type, one publication type, a route and a task of its own.
struct ProbePlugin;

struct Thing;

impl ContentType for Thing {
    fn pulp_type(&self) -> &'static str {
        "probe.thing"
    }
    fn content_kind(&self) -> &'static str {
        "things"
    }
    fn model(&self) -> &'static str {
        "Thing"
    }
}

/// A first stage that declares nothing.
struct Nothing;

#[async_trait]
impl Stage for Nothing {
    fn name(&self) -> String {
        "Nothing".into()
    }
    async fn run(self: Box<Self>, _io: StageIo) -> Result<(), StageError> {
        Ok(())
    }
}

/// Publishes one metadata file at the path the publication names, unchecked.
struct AnyPath;

#[async_trait]
impl PublicationType for AnyPath {
    fn kind(&self) -> &'static str {
        "probe"
    }
    fn model(&self) -> &'static str {
        "ProbePublication"
    }
    fn pulp_type(&self) -> &'static str {
        "probe.probe"
    }
    fn options(&self, body: &mut Map<String, Value>) -> Result<Value, (String, String)> {
        match body.remove("path") {
            Some(Value::String(p)) => Ok(json!({ "path": p })),
            _ => Err(("path".into(), "This field is required.".into())),
        }
    }
    async fn publish(
        &self,
        publisher: &mut dyn Publisher,
        plugin_data: &Value,
    ) -> Result<(), PublishError> {
        let path = plugin_data["path"].as_str().unwrap_or_default();
        publisher.add_metadata(path, b"metadata".to_vec()).await?;
        Ok(())
    }
}

/// `POST probe/echo/ {"word": ...}`: dispatches the plugin's task.
async fn echo(
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(word) = body["word"].as_str() else {
        return Err(ApiError::field("word", "This field is required."));
    };
    let task = state
        .tasking
        .dispatch(ECHO_TASK, json!({ "word": word }), &[], &[])
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "task": pulp_rs::href::task(task.id) })),
    ))
}

impl Plugin for ProbePlugin {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn repository_type(&self) -> &'static str {
        "probe.probe"
    }
    fn first_stage(&self, _env: &SyncEnv) -> Box<dyn Stage> {
        Box::new(Nothing)
    }
    fn api_names(&self) -> ApiNames {
        ApiNames {
            app_label: "probe",
            kind: "probe",
            content_kind: "things",
        }
    }
    fn model_names(&self) -> ModelNames {
        ModelNames {
            remote: "ProbeRemote",
            repository: "ProbeRepository",
            distribution: "ProbeDistribution",
        }
    }
    fn content_types(&self) -> Vec<Arc<dyn ContentType>> {
        vec![Arc::new(Thing)]
    }
    fn publication_types(&self) -> Vec<Arc<dyn PublicationType>> {
        vec![Arc::new(AnyPath)]
    }
    fn register_routes(&self, api: &mut ApiBuilder) {
        let path = format!("{API}probe/echo/");
        api.route(
            Method::POST,
            &path,
            &path,
            "probe_echo_create",
            "Probe",
            axum::routing::post(echo),
        )
        .summary("Echo a word through a task")
        .response(202, Some("AsyncOperationResponse"));
    }
    /// The task records the word as the resource it made.
    fn register_tasks(&self, registry: &mut Registry, _env: &TaskEnv) {
        registry.register(ECHO_TASK, |ctx| async move {
            let word = ctx.args()["word"].as_str().unwrap_or_default().to_string();
            if word.is_empty() {
                return Err(TaskError::failed("no word"));
            }
            ctx.created_resource(&format!("{API}probe/echo/{word}/"))
                .await
        });
    }
}

/// A server with the compiled-in plugins and the probe.
async fn start(backend: &'static str) -> TestApp {
    let mut app = TestApp::start(backend, 1).await;
    app.stop().await;
    let mut plugins = pulp_rs::plugins::registry();
    plugins.push(Arc::new(ProbePlugin));
    let parts = Parts {
        api: true,
        content: true,
        workers: 1,
    };
    let mut settings = app.settings.clone();
    settings.api_bind.set_port(0);
    settings.content_bind.set_port(0);
    let server = Server::start_with_plugins(&settings, parts, plugins)
        .await
        .expect("server starts");
    app.api = format!("http://{}", server.api_addr.expect("api listening"));
    app.content = format!("http://{}", server.content_addr.expect("content listening"));
    app.server = Some(server);
    app
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_route_dispatches_the_plugin_task() {
    for backend in backends().await {
        let app = start(backend).await;
        let (s, doc) = app.get(&format!("{API}docs/api.json")).await;
        assert_eq!(s, 200);
        assert_eq!(
            doc["paths"][format!("{API}probe/echo/")]["post"]["operationId"],
            "probe_echo_create",
            "{backend}: the plugin's route is documented"
        );
        let unauthenticated = app
            .client
            .post(format!("{}{API}probe/echo/", app.api))
            .json(&json!({"word": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(unauthenticated.status().as_u16(), 401, "{backend}");
        let (s, body) = app.post(&format!("{API}probe/echo/"), json!({})).await;
        assert_eq!(s, 400, "{backend}: {body}");
        assert_eq!(body["word"][0], "This field is required.");
        let (s, body) = app
            .post(&format!("{API}probe/echo/"), json!({"word": "hello"}))
            .await;
        assert_eq!(s, 202, "{backend}: {body}");
        let task = app
            .wait_task(body["task"].as_str().unwrap(), Duration::from_secs(30))
            .await;
        assert_eq!(task["state"], "completed", "{backend}: {task}");
        assert_eq!(task["name"], ECHO_TASK, "{backend}: {task}");
        assert_eq!(
            task["created_resources"],
            json!([format!("{API}probe/echo/hello/")]),
            "{backend}: the plugin's task function ran"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publication_path_leaving_the_publication_fails_the_task() {
    for backend in backends().await {
        let app = start(backend).await;
        let (s, repo) = app
            .post(
                &format!("{API}repositories/probe/probe/"),
                json!({"name": "p"}),
            )
            .await;
        assert_eq!(s, 201, "{backend}: {repo}");
        for (path, ok) in [
            ("../outside", false),
            ("meta/%2e%2e/%2e%2e/outside", false),
            ("/etc/outside", false),
            ("meta\\..\\outside", false),
            ("meta/inside", true),
        ] {
            let (s, body) = app
                .post(
                    &format!("{API}publications/probe/probe/"),
                    json!({"repository": repo["pulp_href"], "path": path}),
                )
                .await;
            assert_eq!(s, 202, "{backend}: {body}");
            let task = app
                .wait_task(body["task"].as_str().unwrap(), Duration::from_secs(30))
                .await;
            if ok {
                assert_eq!(task["state"], "completed", "{backend} {path}: {task}");
                continue;
            }
            assert_eq!(task["state"], "failed", "{backend} {path}: {task}");
            let message = task["error"]["description"].as_str().unwrap_or_default();
            assert!(
                message.contains("unsafe publication path"),
                "{backend} {path}: {task}"
            );
        }
        let (_, pubs) = app.get(&format!("{API}publications/probe/probe/")).await;
        assert_eq!(
            pubs["count"], 1,
            "{backend}: only the safe publication remains: {pubs}"
        );
    }
}
