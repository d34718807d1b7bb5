//! The platform half of the REST API over real HTTP: `status/` (public), authentication and
//! `reset-admin-password`, `tasks/` (filters, counts, show, cancel, delete), `workers/`, and
//! bad input on those endpoints. Tasks are dispatched through the store directly, so nothing
//! here depends on other endpoints.

mod common;

use std::time::Duration;

use common::app::{backends, send, TestApp, ADMIN_PASSWORD};
use pulp_rs::db::DynStore;
use pulp_rs::models::{NewTask, TaskState};
use serde_json::{json, Value};

const REPO: &str = "/pulp/api/v3/repositories/file/file/0190f6a4-0000-7000-8000-000000000001/";
const REMOTE: &str = "/pulp/api/v3/remotes/file/file/0190f6a4-0000-7000-8000-000000000002/";

async fn store_of(app: &TestApp) -> DynStore {
    pulp_rs::db::connect(&app.settings.database_url())
        .await
        .expect("open the server's database")
}

async fn dispatch(store: &DynStore, name: &str, exclusive: &[&str], shared: &[&str]) -> String {
    let task = pulp_rs::tasking::dispatch(
        store,
        None,
        &NewTask {
            name: name.to_string(),
            args: json!({}),
            logging_cid: format!("cid-{name}"),
            exclusive_resources: exclusive.iter().map(|s| s.to_string()).collect(),
            shared_resources: shared.iter().map(|s| s.to_string()).collect(),
        },
    )
    .await
    .expect("dispatch");
    format!("/pulp/api/v3/tasks/{}/", task.id)
}

/// `(count, hrefs)` of `tasks/?<query>`.
async fn list(app: &TestApp, query: &str) -> (u64, Vec<String>) {
    let (status, body) = app.get(&format!("/pulp/api/v3/tasks/?{query}")).await;
    assert_eq!(status, 200, "tasks/?{query}: {body}");
    let hrefs = body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|t| t["pulp_href"].as_str().expect("href").to_string())
        .collect();
    (body["count"].as_u64().expect("count"), hrefs)
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn status_is_public_and_reports_what_we_know() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        let url = format!("{}/pulp/api/v3/status/", app.api);
        // The worker shows up once it has heartbeated.
        let mut body = Value::Null;
        for _ in 0..200 {
            let (status, b) = send(app.client.get(&url)).await;
            assert_eq!(status, 200, "{backend}: status needs no credentials: {b}");
            body = b;
            if !body["online_workers"].as_array().unwrap().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let versions: Vec<(&str, &str)> = body["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["component"].as_str().unwrap(),
                    v["version"].as_str().unwrap(),
                )
            })
            .collect();
        assert!(
            versions.iter().any(|(c, _)| *c == "core"),
            "{backend}: {body}"
        );
        assert!(
            versions.iter().any(|(c, _)| *c == "file"),
            "{backend}: {body}"
        );
        for v in body["versions"].as_array().unwrap() {
            for field in ["package", "module"] {
                assert!(v[field].is_string(), "{backend}: {v}");
            }
            assert!(v["domain_compatible"].is_boolean(), "{backend}: {v}");
        }
        let worker = &body["online_workers"][0];
        assert!(worker["name"].is_string(), "{backend}: {body}");
        assert!(worker["last_heartbeat"].is_string(), "{backend}: {body}");
        let worker_href = worker["pulp_href"]
            .as_str()
            .expect("worker href")
            .to_string();
        assert_eq!(body["database_connection"]["connected"], true, "{backend}");
        assert_eq!(body["redis_connection"]["connected"], false, "{backend}");
        let total = body["storage"]["total"].as_u64().expect("total");
        let free = body["storage"]["free"].as_u64().expect("free");
        let used = body["storage"]["used"].as_u64().expect("used");
        assert!(
            total > 0 && free <= total && used <= total,
            "{backend}: {body}"
        );
        assert_eq!(
            body["content_settings"]["content_path_prefix"], "/pulp/content/",
            "{backend}"
        );
        // The configured origin (the test binds port 0, so not necessarily `app.content`).
        let origin = body["content_settings"]["content_origin"]
            .as_str()
            .expect("origin");
        assert!(
            origin.starts_with("http://127.0.0.1:"),
            "{backend}: {origin}"
        );
        // This API app and the content app beside it, from their heartbeats.
        assert_eq!(body["online_api_apps"].as_array().unwrap().len(), 1);
        assert_eq!(body["online_content_apps"].as_array().unwrap().len(), 1);
        assert_eq!(body["domain_enabled"], false);

        // Field selection applies, an unknown parameter is a 400.
        let (status, sel) = send(app.client.get(format!("{url}?fields=versions"))).await;
        assert_eq!(status, 200);
        assert_eq!(sel.as_object().unwrap().len(), 1, "{backend}: {sel}");
        let (status, _) = send(app.client.get(format!("{url}?bogus=1"))).await;
        assert_eq!(status, 400);

        // The worker the status names is listed and readable.
        let (status, workers) = app.get("/pulp/api/v3/workers/").await;
        assert_eq!(status, 200, "{workers}");
        assert_eq!(workers["count"], 1, "{backend}: {workers}");
        assert_eq!(workers["results"][0]["pulp_href"], worker_href.as_str());
        let name = worker["name"].as_str().unwrap();
        for (query, count) in [
            (format!("name={}", enc(name)), 1),
            (format!("name__icontains={}", enc(&name.to_uppercase())), 1),
            ("name__contains=nobody".to_string(), 0),
            ("online=true".to_string(), 1),
            ("missing=true".to_string(), 0),
        ] {
            let (status, page) = app.get(&format!("/pulp/api/v3/workers/?{query}")).await;
            assert_eq!(status, 200, "{query}: {page}");
            assert_eq!(page["count"], count, "{backend}: {query}: {page}");
        }
        assert_eq!(app.get("/pulp/api/v3/workers/?online=maybe").await.0, 400);
        let (status, w) = app.get(&worker_href).await;
        assert_eq!(status, 200, "{w}");
        assert_eq!(w["name"], worker["name"]);
        assert!(w["current_task"].is_null(), "{backend}: idle worker: {w}");
        let (status, _) = app
            .get("/pulp/api/v3/workers/0190f6a4-0000-7000-8000-000000000009/")
            .await;
        assert_eq!(status, 404);
        app.stop().await;
    }
}

#[tokio::test]
async fn authentication_rules() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 0).await;
        let url = format!("{}/pulp/api/v3/tasks/", app.api);
        let resp = app.client.get(&url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{backend}");
        let challenge = resp
            .headers()
            .get("www-authenticate")
            .expect("WWW-Authenticate")
            .to_str()
            .unwrap()
            .to_string();
        assert!(challenge.starts_with("Basic"), "{challenge}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body,
            json!({"detail": "Authentication credentials were not provided."})
        );
        let (status, body) = send(app.client.get(&url).basic_auth("admin", Some("wrong"))).await;
        assert_eq!(status, 401, "{backend}: wrong password");
        assert_eq!(body, json!({"detail": "Invalid username/password."}));
        let (status, body) = send(
            app.client
                .get(&url)
                .basic_auth("nobody", Some(ADMIN_PASSWORD)),
        )
        .await;
        assert_eq!(status, 401, "{backend}: unknown user");
        assert_eq!(body, json!({"detail": "Invalid username/password."}));
        let (status, _) = send(
            app.client
                .get(&url)
                .header("authorization", "Basic !!!not-base64"),
        )
        .await;
        assert_eq!(status, 401, "{backend}: garbled header");
        let (status, _) = app.get("/pulp/api/v3/tasks/").await;
        assert_eq!(status, 200, "{backend}: right password");
        // Other platform endpoints are protected too; the docs and status are not.
        for path in ["artifacts/", "workers/"] {
            let (status, _) = send(app.client.get(format!("{}/pulp/api/v3/{path}", app.api))).await;
            assert_eq!(status, 401, "{backend}: {path}");
        }
        let (status, _) = send(
            app.client
                .post(format!("{}/pulp/api/v3/orphans/cleanup/", app.api))
                .json(&json!({})),
        )
        .await;
        assert_eq!(status, 401, "{backend}: orphans/cleanup/");
        for path in ["status/", "docs/api.json"] {
            let (status, _) = send(app.client.get(format!("{}/pulp/api/v3/{path}", app.api))).await;
            assert_ne!(status, 401, "{backend}: {path} is public");
        }
        app.stop().await;
    }
}

/// Runs `pulp-rs reset-admin-password` on the data directory / database of `settings`.
fn reset_password(settings: &pulp_rs::server::Settings, password: &str) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pulp-rs"));
    cmd.arg("--data-dir")
        .arg(&settings.data_dir)
        .arg("reset-admin-password")
        .arg("--password")
        .arg(password)
        .env_remove("PULP_ADMIN_PASSWORD")
        .env_remove("PULP_DATABASE_URL");
    if let Some(url) = &settings.database_url {
        cmd.arg("--database-url").arg(url);
    }
    let out = cmd.output().expect("run pulp-rs");
    assert!(
        out.status.success(),
        "reset-admin-password failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains(password), "the password is never printed");
}

async fn auth_status(app: &TestApp, password: &str) -> u16 {
    send(
        app.client
            .get(format!("{}/pulp/api/v3/tasks/", app.api))
            .basic_auth("admin", Some(password)),
    )
    .await
    .0
}

#[tokio::test]
async fn reset_admin_password_takes_effect() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 0).await;
        let mut settings = app.settings.clone();
        app.stop().await;
        reset_password(&settings, "first-new-password");
        settings.api_bind = "127.0.0.1:0".parse().unwrap();
        settings.content_bind = "127.0.0.1:0".parse().unwrap();
        // admin_password only applies when no admin exists: it is ignored now.
        let mut again = TestApp::start_with(settings.clone(), backend, None).await;
        assert_eq!(
            auth_status(&again, "first-new-password").await,
            200,
            "{backend}"
        );
        assert_eq!(auth_status(&again, ADMIN_PASSWORD).await, 401, "{backend}");
        // A reset while the server runs applies at once (the auth cache checks the stored hash).
        reset_password(&settings, "second-new-password");
        assert_eq!(
            auth_status(&again, "second-new-password").await,
            200,
            "{backend}"
        );
        assert_eq!(
            auth_status(&again, "first-new-password").await,
            401,
            "{backend}"
        );
        again.stop().await;
        drop(app);
    }
}

#[tokio::test]
async fn task_list_filters_and_counts() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 0).await;
        let store = store_of(&app).await;
        let alpha = dispatch(&store, "test.alpha", &[REPO], &[REMOTE]).await;
        let beta = dispatch(&store, "test.beta", &["/elsewhere/"], &[]).await;
        let gamma = dispatch(&store, "other.gamma", &[], &[REPO]).await;

        assert_eq!(
            list(&app, "").await,
            (3, vec![gamma.clone(), beta.clone(), alpha.clone()])
        );
        assert_eq!(list(&app, "state=waiting").await.0, 3);
        assert_eq!(list(&app, "state=running").await.0, 0);
        assert_eq!(list(&app, "name=test.alpha").await.1, vec![alpha.clone()]);
        assert_eq!(list(&app, "name__contains=test.").await.0, 2);
        assert_eq!(
            list(&app, "logging_cid__contains=gamma").await.1,
            vec![gamma.clone()]
        );
        assert_eq!(
            list(&app, &format!("reserved_resources={}", enc(REPO)))
                .await
                .1,
            vec![gamma.clone(), alpha.clone()],
            "{backend}: exclusive and shared holders"
        );
        assert_eq!(
            list(&app, &format!("reserved_resources={}", enc(REMOTE)))
                .await
                .1,
            vec![alpha.clone()]
        );
        assert_eq!(
            list(&app, &format!("exclusive_resources={}", enc(REPO)))
                .await
                .1,
            vec![alpha.clone()]
        );
        assert_eq!(
            list(&app, &format!("shared_resources={}", enc(REPO)))
                .await
                .1,
            vec![gamma.clone()]
        );
        assert_eq!(
            list(
                &app,
                &format!(
                    "reserved_resources__in={},{}",
                    enc(REMOTE),
                    enc("/elsewhere/")
                )
            )
            .await
            .0,
            2
        );
        assert_eq!(
            list(
                &app,
                &format!(
                    "reserved_resources={}&reserved_resources__in={}",
                    enc(REMOTE),
                    enc("/elsewhere/")
                )
            )
            .await
            .0,
            0,
            "{backend}: both filters must hold"
        );
        assert_eq!(list(&app, "reserved_resources=%2Fnothing%2F").await.0, 0);
        assert_eq!(
            list(&app, &format!("parent_task={}", enc(&alpha))).await.0,
            0
        );
        assert_eq!(list(&app, "ordering=-pulp_created").await.0, 3);
        assert_eq!(
            list(&app, "state=&state__in=&name=&reserved_resources__in=")
                .await
                .0,
            3,
            "{backend}: empty values filter nothing"
        );

        // Pagination: a real count, next / previous links.
        let (status, page) = app.get("/pulp/api/v3/tasks/?limit=1&offset=1").await;
        assert_eq!(status, 200);
        assert_eq!(page["count"], 3);
        assert_eq!(page["results"].as_array().unwrap().len(), 1);
        assert_eq!(page["results"][0]["pulp_href"], beta.as_str());
        assert!(
            page["next"].as_str().unwrap().contains("offset=2"),
            "{page}"
        );
        assert!(page["previous"].is_string(), "{page}");

        // A worker-less claim makes alpha running.
        let claimed = store
            .claim_next_task("test-worker")
            .await
            .unwrap()
            .expect("claimed");
        assert_eq!(format!("/pulp/api/v3/tasks/{}/", claimed.id), alpha);
        store.add_created_resource(claimed.id, REPO).await.unwrap();
        assert_eq!(
            list(&app, "state__in=running,completed").await.1,
            vec![alpha.clone()]
        );
        assert_eq!(list(&app, "state__in=running&state__in=waiting").await.0, 3);
        assert_eq!(list(&app, "state=waiting&state__in=running").await.0, 0);
        assert_eq!(
            list(&app, &format!("created_resources={}", enc(REPO)))
                .await
                .1,
            vec![alpha.clone()]
        );
        assert_eq!(
            list(&app, "started_at__gte=2000-01-01T00:00:00Z").await.1,
            vec![alpha.clone()]
        );
        assert_eq!(list(&app, "started_at__lte=2000-01-01T00:00:00").await.0, 0);
        assert_eq!(list(&app, "finished_at__gte=2000-01-01").await.0, 0);
        let (_, task) = app.get(&alpha).await;
        let worker_href = task["worker"].as_str().expect("worker href").to_string();
        assert!(worker_href.starts_with("/pulp/api/v3/workers/"), "{task}");
        assert_eq!(
            list(&app, &format!("worker={}", enc(&worker_href))).await.1,
            vec![alpha.clone()]
        );
        assert_eq!(
            list(&app, "worker=test-worker").await.1,
            vec![alpha.clone()]
        );
        // A worker that does not exist is a 400, not an empty list.
        let (status, body) = get_query(
            &app,
            "/pulp/api/v3/tasks/",
            "worker=%2Fpulp%2Fapi%2Fv3%2Fworkers%2F0190f6a4-0000-7000-8000-000000000009%2F",
        )
        .await;
        assert_eq!(status, 400, "{backend}: {body}");
        assert!(body["worker"][0].is_string(), "{body}");
        let (status, w) = app.get(&worker_href).await;
        assert_eq!(status, 200, "{w}");
        assert_eq!(w["current_task"], alpha.as_str(), "{backend}: {w}");

        // Bad filters are 400s naming the parameter.
        for (query, field) in [
            ("state=sleeping", "state"),
            ("state__in=waiting,sleeping", "state__in"),
            ("started_at__gte=yesterday", "started_at__gte"),
            ("limit=many", "limit"),
            ("colour=blue", "colour"),
        ] {
            let (status, body) = app.get(&format!("/pulp/api/v3/tasks/?{query}")).await;
            assert_eq!(status, 400, "{backend}: {query}: {body}");
            assert!(body[field].is_array(), "{backend}: {query}: {body}");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn task_show_cancel_delete() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 0).await;
        let store = store_of(&app).await;
        let running = dispatch(&store, "test.running", &[REPO], &[REMOTE]).await;
        let claimed = store
            .claim_next_task("test-worker")
            .await
            .unwrap()
            .expect("claimed");
        let waiting = dispatch(&store, "test.waiting", &["/a/"], &[]).await;
        let done = dispatch(&store, "test.done", &["/b/"], &[]).await;

        let (status, t) = app.get(&running).await;
        assert_eq!(status, 200, "{t}");
        for (field, want) in [
            ("pulp_href", json!(running)),
            ("prn", json!(format!("prn:core.task:{}", claimed.id))),
            ("state", json!("running")),
            ("name", json!("test.running")),
            ("logging_cid", json!("cid-test.running")),
            ("created_by", Value::Null),
            ("finished_at", Value::Null),
            ("error", Value::Null),
            ("parent_task", Value::Null),
            ("child_tasks", json!([])),
            ("task_group", Value::Null),
            ("progress_reports", json!([])),
            ("created_resources", json!([])),
            (
                "reserved_resources_record",
                json!([REPO, format!("shared:{REMOTE}")]),
            ),
            ("result", Value::Null),
        ] {
            assert_eq!(t[field], want, "{backend}: {field} in {t}");
        }
        for field in ["pulp_created", "pulp_last_updated", "started_at"] {
            let s = t[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} in {t}"));
            assert!(
                chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                "{field}: {s}"
            );
        }
        assert!(t.as_object().unwrap().contains_key("unblocked_at"));
        let (_, sel) = app.get(&format!("{running}?fields=state,name")).await;
        assert_eq!(sel, json!({"state": "running", "name": "test.running"}));

        // Bad cancel bodies: 400, nothing changes.
        for body in [
            json!({}),
            json!({"state": "running"}),
            json!({"state": 5}),
            json!({"state": "canceled", "extra": true}),
            json!(["canceled"]),
        ] {
            let (status, resp) = app.patch(&waiting, body.clone()).await;
            assert_eq!(status, 400, "{backend}: {body}: {resp}");
        }
        let (status, resp) = send(
            app.req(reqwest::Method::PATCH, &waiting)
                .header("content-type", "application/json")
                .body("{\"state\": "),
        )
        .await;
        assert_eq!(status, 400, "{backend}: malformed JSON: {resp}");
        assert_eq!(app.get(&waiting).await.1["state"], "waiting");

        // Waiting -> canceled at once; running -> canceling, then its worker ends it.
        let (status, t) = app.patch(&waiting, json!({"state": "canceled"})).await;
        assert_eq!(
            (status, t["state"].as_str()),
            (200, Some("canceled")),
            "{t}"
        );
        assert!(t["finished_at"].is_string(), "{t}");
        let (status, t) = app.patch(&running, json!({"state": "canceled"})).await;
        assert_eq!(
            (status, t["state"].as_str()),
            (200, Some("canceling")),
            "{t}"
        );
        store
            .finish_task(claimed.id, "test-worker", TaskState::Canceled, None)
            .await
            .unwrap();
        let (status, t) = app.patch(&running, json!({"state": "canceled"})).await;
        assert_eq!(
            (status, t["state"].as_str()),
            (200, Some("canceled")),
            "{t}"
        );

        // A completed task cannot be canceled: 409 with the task and a detail.
        let c = store
            .claim_next_task("test-worker")
            .await
            .unwrap()
            .expect("claim done");
        assert_eq!(format!("/pulp/api/v3/tasks/{}/", c.id), done);
        store
            .finish_task(c.id, "test-worker", TaskState::Completed, None)
            .await
            .unwrap();
        let (status, t) = app.patch(&done, json!({"state": "canceled"})).await;
        assert_eq!(status, 409, "{backend}: {t}");
        assert_eq!(t["state"], "completed");
        assert_eq!(t["pulp_href"], done.as_str());
        assert!(t["detail"].as_str().unwrap().contains("completed"), "{t}");

        // Delete: only finished tasks.
        let pending = dispatch(&store, "test.pending", &["/c/"], &[]).await;
        let (status, body) = app.delete(&pending).await;
        assert_eq!(status, 409, "{backend}: {body}");
        assert!(body["detail"].is_string());
        assert_eq!(app.get(&pending).await.0, 200);
        let (status, _) = app.delete(&done).await;
        assert_eq!(status, 204, "{backend}");
        assert_eq!(app.get(&done).await.0, 404);
        assert_eq!(list(&app, "").await.0, 3);

        // Unknown ids.
        for path in [
            "/pulp/api/v3/tasks/0190f6a4-0000-7000-8000-00000000000f/",
            "/pulp/api/v3/tasks/not-a-uuid/",
        ] {
            let (status, body) = app.get(path).await;
            assert_eq!(status, 404, "{backend}: {path}");
            assert!(body["detail"].is_string(), "{body}");
            assert_eq!(app.patch(path, json!({"state": "canceled"})).await.0, 404);
            assert_eq!(app.delete(path).await.0, 404);
        }
        // Still serving.
        assert_eq!(app.get("/pulp/api/v3/tasks/").await.0, 200);
        app.stop().await;
    }
}

#[tokio::test]
async fn unknown_task_function_fails_with_a_reason() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        let store = store_of(&app).await;
        let href = dispatch(&store, "no.such.task", &[REPO], &[]).await;
        let t = app.wait_task(&href, Duration::from_secs(60)).await;
        assert_eq!(t["state"], "failed", "{backend}: {t}");
        let description = t["error"]["description"].as_str().expect("description");
        assert!(description.contains("no.such.task"), "{description}");
        assert!(
            t["started_at"].is_string() && t["finished_at"].is_string(),
            "{t}"
        );
        assert!(t["worker"]
            .as_str()
            .unwrap()
            .starts_with("/pulp/api/v3/workers/"));
        assert_eq!(list(&app, "state=failed").await.1, vec![href.clone()]);
        assert_eq!(app.delete(&href).await.0, 204);
        app.stop().await;
    }
}

/// `(status, body)` of `GET <path>?<query>` (the query as given, not encoded again).
async fn get_query(app: &TestApp, path: &str, query: &str) -> (u16, Value) {
    app.get(&format!("{path}?{query}")).await
}

#[tokio::test]
async fn paging_bounds_are_checked_on_every_list() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 0).await;
        let store = store_of(&app).await;
        let first = dispatch(&store, "test.first", &[], &[]).await;
        dispatch(&store, "test.second", &[], &[]).await;
        for path in ["/pulp/api/v3/tasks/", "/pulp/api/v3/artifacts/"] {
            // Past what the databases take (2^63, 2^64 - 1, beyond a u64), negative, zero:
            // 400s naming the parameter, never a 500.
            for (query, field) in [
                ("offset=9223372036854775808", "offset"),
                ("offset=18446744073709551615", "offset"),
                ("offset=99999999999999999999999", "offset"),
                ("offset=-1", "offset"),
                ("offset=ten", "offset"),
                ("limit=0", "limit"),
                ("limit=-5", "limit"),
                ("limit=1.5", "limit"),
            ] {
                let (status, body) = get_query(&app, path, query).await;
                assert_eq!(status, 400, "{backend}: {path}?{query}: {body}");
                assert!(
                    body[field][0].is_string(),
                    "{backend}: {path}?{query}: {body}"
                );
            }
            // The largest offset is an empty page; a huge limit is the largest page.
            let (status, body) = get_query(&app, path, "offset=9223372036854775807").await;
            assert_eq!(status, 200, "{backend}: {path}: {body}");
            assert_eq!(body["results"], json!([]), "{backend}: {path}");
            assert!(body["next"].is_null(), "{backend}: {path}: {body}");
            let (status, body) = get_query(&app, path, "limit=99999999999999999999").await;
            assert_eq!(status, 200, "{backend}: {path}: {body}");
        }
        // A normal page still works.
        let (status, body) = get_query(&app, "/pulp/api/v3/tasks/", "limit=1&offset=1").await;
        assert_eq!(status, 200, "{backend}: {body}");
        assert_eq!(body["count"], 2);
        assert_eq!(body["results"][0]["pulp_href"], first.as_str());
        let (status, body) = get_query(&app, "/pulp/api/v3/artifacts/", "offset=1").await;
        assert_eq!((status, &body["count"]), (200, &json!(0)), "{backend}");
        // The other lists read the same parameters the same way.
        for path in [
            "/pulp/api/v3/workers/",
            "/pulp/api/v3/remotes/",
            "/pulp/api/v3/remotes/file/file/",
            "/pulp/api/v3/repositories/",
            "/pulp/api/v3/repositories/file/file/",
            "/pulp/api/v3/content/file/files/",
            "/pulp/api/v3/publications/file/file/",
            "/pulp/api/v3/distributions/",
            "/pulp/api/v3/distributions/file/file/",
        ] {
            for query in ["offset=18446744073709551615", "limit=0"] {
                let (status, body) = get_query(&app, path, query).await;
                assert_eq!(status, 400, "{backend}: {path}?{query}: {body}");
            }
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn malformed_filter_values_are_400s() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 0).await;
        let store = store_of(&app).await;
        dispatch(&store, "test.only", &[], &[]).await;
        for (query, field) in [
            // Dates: not a date, and years Django (and PostgreSQL) do not have.
            ("started_at__lte=not-a-date", "started_at__lte"),
            ("started_at__gte=-5000-01-01", "started_at__gte"),
            ("finished_at__lte=%2B10000-01-01T00:00:00", "finished_at__lte"),
            ("finished_at__gte=0000-01-01T00:00:00Z", "finished_at__gte"),
            // Hrefs: not an href of the collection the filter names.
            ("parent_task=not-a-task", "parent_task"),
            (
                "parent_task=%2Fpulp%2Fapi%2Fv3%2Fartifacts%2F0190f6a4-0000-7000-8000-000000000001%2F",
                "parent_task",
            ),
            ("task_group=42", "task_group"),
            (
                "task_group=%2Fpulp%2Fapi%2Fv3%2Ftask-groups%2F0190f6a4-0000-7000-8000-000000000001%2F",
                "task_group",
            ),
            (
                "parent_task=%2Fpulp%2Fapi%2Fv3%2Ftasks%2F0190f6a4-0000-7000-8000-000000000001%2F",
                "parent_task",
            ),
            ("worker=%2Fpulp%2Fapi%2Fv3%2Fworkers%2Fnot-a-uuid%2F", "worker"),
        ] {
            let (status, body) = get_query(&app, "/pulp/api/v3/tasks/", query).await;
            assert_eq!(status, 400, "{backend}: tasks/?{query}: {body}");
            assert!(body[field][0].is_string(), "{backend}: {query}: {body}");
        }
        // Well-formed values still filter; empty ones filter nothing.
        for (query, count) in [
            ("started_at__lte=9999-12-31", 0),
            ("finished_at__gte=0001-01-01T00:00:00%2B00:00", 0),
            ("parent_task=", 1),
        ] {
            let (status, body) = get_query(&app, "/pulp/api/v3/tasks/", query).await;
            assert_eq!(status, 200, "{backend}: tasks/?{query}: {body}");
            assert_eq!(body["count"], count, "{backend}: {query}: {body}");
        }
        // Booleans.
        for query in ["online=maybe", "missing=2"] {
            let (status, body) = get_query(&app, "/pulp/api/v3/workers/", query).await;
            assert_eq!(status, 400, "{backend}: workers/?{query}: {body}");
        }
        let (status, body) = get_query(&app, "/pulp/api/v3/workers/", "online=").await;
        assert_eq!(
            status, 200,
            "{backend}: an empty boolean filters nothing: {body}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn an_oversized_body_is_a_413() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 0).await;
        let store = store_of(&app).await;
        let task = dispatch(&store, "test.big", &[], &[]).await;
        let limit = pulp_rs::api::MAX_BODY_BYTES;
        let padding = "x".repeat(limit + 1);
        for (method, path) in [
            (reqwest::Method::PATCH, task.as_str()),
            (reqwest::Method::POST, "/pulp/api/v3/remotes/file/file/"),
        ] {
            let body = json!({"state": "canceled", "padding": padding}).to_string();
            let (status, answer) = send(
                app.req(method.clone(), path)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
            assert_eq!(status, 413, "{backend}: {method} {path}: {answer}");
            assert!(answer["detail"].is_string(), "{backend}: {answer}");
        }
        // Just under the limit is read (and refused for what it says, not its size).
        let body = json!({"state": "canceled", "padding": "x".repeat(limit - 100)}).to_string();
        let (status, answer) = send(
            app.req(reqwest::Method::PATCH, &task)
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        assert_eq!(status, 400, "{backend}: {answer}");
        assert_eq!(answer["padding"], json!(["Unexpected field."]));
        app.stop().await;
    }
}

/// A task whose arguments do not have its struct's shape fails, naming the task and the field,
/// before it touches anything.
#[tokio::test]
async fn a_task_with_badly_shaped_arguments_fails_clearly() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        let store = store_of(&app).await;
        for name in ["sync", "modify", "publish", "orphan_cleanup"] {
            let task = pulp_rs::tasking::dispatch(
                &store,
                None,
                &NewTask {
                    name: name.to_string(),
                    args: json!({"repository": 7, "orphan_protection_time": "soon"}),
                    logging_cid: String::new(),
                    exclusive_resources: vec![],
                    shared_resources: vec![],
                },
            )
            .await
            .expect("dispatch");
            let href = format!("/pulp/api/v3/tasks/{}/", task.id);
            let done = app.wait_task(&href, Duration::from_secs(20)).await;
            assert_eq!(done["state"], "failed", "{backend} {name}: {done}");
            let description = done["error"]["description"].as_str().unwrap_or_default();
            assert!(
                description.contains(&format!("bad arguments for task {name:?}")),
                "{backend} {name}: {done}"
            );
        }
        app.stop().await;
    }
}
