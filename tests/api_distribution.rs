//! Distributions and publications over the real API (both backends): the one-model rules
//! (one target at most, unique name, base paths valid and not overlapping), updates, deletes,
//! lists with filters, and publications of a synced repository.

mod common;
mod content_app_support;

use common::app::{backends, TestApp};
use content_app_support as support;
use pulp_rs::models::{Policy, TaskState};
use serde_json::json;

const DISTS: &str = "/pulp/api/v3/distributions/file/file/";
const PUBS: &str = "/pulp/api/v3/publications/file/file/";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_rules() {
    for backend in backends().await {
        let app = TestApp::start(backend, 2).await;
        let lib = support::lib(&app).await;
        let up = support::upstream(&[("a.txt", b"alpha".to_vec())]).await;
        let (repo, _v) = support::synced_repo(&lib, &up, "rules", Policy::Immediate).await;
        let repo_href = support::repo_href(&repo);
        let ver_href = support::version_href(&repo, 1);

        // Two targets.
        let (s, body) = app
            .post(
                DISTS,
                json!({"name": "x", "base_path": "x", "repository": repo_href,
                       "repository_version": ver_href}),
            )
            .await;
        assert_eq!(s, 400, "{backend}: {body}");
        assert!(body["non_field_errors"][0]
            .as_str()
            .unwrap()
            .contains("simultaneously"));

        // A good one.
        let d1 = support::distribution(
            &app,
            &lib,
            json!({"name": "d1", "base_path": "a/b", "repository": repo_href}),
        )
        .await;
        let (s, d) = app.get(&d1).await;
        assert_eq!(s, 200);
        assert_eq!(d["name"], "d1");
        assert_eq!(d["repository"], repo_href.as_str());
        assert!(d["repository_version"].is_null() && d["publication"].is_null());
        // (The origin comes from the server's settings; with port 0 it is not the bound port.)
        assert!(
            d["base_url"]
                .as_str()
                .unwrap()
                .ends_with("/pulp/content/a/b/"),
            "{d}"
        );
        assert!(d["prn"]
            .as_str()
            .unwrap()
            .starts_with("prn:file.filedistribution:"));
        assert_eq!(d["hidden"], false);
        assert!(d["content_guard"].is_null());

        // Unique name.
        let (s, body) = app
            .post(DISTS, json!({"name": "d1", "base_path": "elsewhere"}))
            .await;
        assert_eq!(s, 400, "{body}");
        assert!(body["name"].is_array(), "{body}");

        // Overlaps, both ways, naming the other; a sibling with a common string prefix is fine.
        for bp in ["a/b/c", "a", "a/b"] {
            let (s, body) = app
                .post(DISTS, json!({"name": format!("n-{bp}"), "base_path": bp}))
                .await;
            assert_eq!(s, 400, "{bp}: {body}");
            let msg = body["base_path"][0].as_str().unwrap();
            assert!(msg.contains("d1") || msg.contains("unique"), "{bp}: {msg}");
        }
        let (s, body) = app
            .post(DISTS, json!({"name": "n-ab/c", "base_path": "a/b/c"}))
            .await;
        assert!(
            body["base_path"][0].as_str().unwrap().contains("'d1'"),
            "{s} {body}"
        );
        support::distribution(&app, &lib, json!({"name": "sib", "base_path": "a/bc"})).await;

        // Bad base paths.
        for bad in [
            "/x", "x/", "x//y", "x/../y", "..", "x\\y", "x/%2e%2e", "x\u{0}y", "x\ny", "",
        ] {
            let (s, body) = app
                .post(DISTS, json!({"name": "bad", "base_path": bad}))
                .await;
            assert_eq!(s, 400, "{bad:?}: {body}");
            assert!(body["base_path"].is_array(), "{bad:?}: {body}");
        }
        // Unknown field, wrong type, missing object.
        let (s, body) = app
            .post(DISTS, json!({"name": "u", "base_path": "u", "bogus": 1}))
            .await;
        assert_eq!(s, 400);
        assert!(body["bogus"].is_array());
        let (s, _) = app.post(DISTS, json!({"name": 5, "base_path": "u"})).await;
        assert_eq!(s, 400);
        let (s, body) = app
            .post(
                DISTS,
                json!({"name": "u", "base_path": "u",
                       "repository": "/pulp/api/v3/repositories/file/file/0190b1b2-0000-7000-8000-000000000000/"}),
            )
            .await;
        assert_eq!(s, 400);
        assert!(body["repository"].is_array(), "{body}");

        // Lists and filters.
        let (s, list) = app.get(&format!("{DISTS}?name=d1")).await;
        assert_eq!(s, 200);
        assert_eq!(list["count"], 1);
        let (_, list) = app.get(&format!("{DISTS}?base_path__contains=a/b")).await;
        assert_eq!(list["count"], 2);
        let (_, list) = app.get(&format!("{DISTS}?repository={repo_href}")).await;
        assert_eq!(list["count"], 1);
        let (s, list) = app.get("/pulp/api/v3/distributions/").await;
        assert_eq!(s, 200);
        assert_eq!(list["count"], 2);
        let (_, list) = app.get(&format!("{DISTS}?name__in=d1,sib,zz")).await;
        assert_eq!(list["count"], 2);
        let (_, list) = app.get(&format!("{DISTS}?name__in=")).await;
        assert_eq!(list["count"], 2);
        let (_, list) = app.get(&format!("{DISTS}?name__icontains=D1")).await;
        assert_eq!(list["count"], 1);
        let (_, list) = app.get(&format!("{DISTS}?name__contains=D1")).await;
        assert_eq!(list["count"], 0);
        let (_, list) = app.get(&format!("{DISTS}?base_path__icontains=A/BC")).await;
        assert_eq!(list["count"], 1);
        let (s, _) = app.get(&format!("{DISTS}?nope=1")).await;
        assert_eq!(s, 400);

        // PATCH: move to a version (clears repository), rename the base path.
        let (s, answer) = app
            .patch(
                &d1,
                json!({"repository_version": ver_href, "base_path": "z"}),
            )
            .await;
        assert_eq!(s, 202, "{answer}");
        assert_eq!(support::wait(&lib, &answer).await.0, TaskState::Completed);
        let (_, d) = app.get(&d1).await;
        assert_eq!(d["base_path"], "z");
        assert!(d["repository"].is_null());
        assert_eq!(d["repository_version"], ver_href.as_str());
        // PATCH into an overlap is refused at once.
        let (s, body) = app.patch(&d1, json!({"base_path": "a/bc/d"})).await;
        assert_eq!(s, 400, "{body}");
        assert!(body["base_path"][0].as_str().unwrap().contains("'sib'"));
        // PUT needs the whole object.
        let (s, _) = app.put(&d1, json!({"base_path": "zz"})).await;
        assert_eq!(s, 400);

        // DELETE.
        let (s, answer) = app.delete(&d1).await;
        assert_eq!(s, 202);
        assert_eq!(support::wait(&lib, &answer).await.0, TaskState::Completed);
        let (s, _) = app.get(&d1).await;
        assert_eq!(s, 404);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_create_list_delete() {
    for backend in backends().await {
        let app = TestApp::start(backend, 2).await;
        let lib = support::lib(&app).await;
        let up = support::upstream(&[("a.txt", b"alpha".to_vec())]).await;
        let (repo, _v) = support::synced_repo(&lib, &up, "pubs", Policy::Immediate).await;
        let repo_href = support::repo_href(&repo);

        // Both or neither of repository / repository_version: 400.
        let (s, _) = app.post(PUBS, json!({})).await;
        assert_eq!(s, 400);
        let (s, _) = app
            .post(
                PUBS,
                json!({"repository": repo_href, "repository_version": support::version_href(&repo, 1)}),
            )
            .await;
        assert_eq!(s, 400);

        let created = support::post_task(&app, &lib, PUBS, json!({"repository": repo_href})).await;
        let p1 = created[0].clone();
        assert!(p1.starts_with(PUBS), "{p1}");
        let (s, p) = app.get(&p1).await;
        assert_eq!(s, 200);
        assert_eq!(p["manifest"], "PULP_MANIFEST");
        assert_eq!(p["repository"], repo_href.as_str());
        assert_eq!(
            p["repository_version"],
            support::version_href(&repo, 1).as_str()
        );
        assert_eq!(p["distributions"], json!([]));

        let created = support::post_task(
            &app,
            &lib,
            PUBS,
            json!({"repository_version": support::version_href(&repo, 0), "manifest": "LIST"}),
        )
        .await;
        let p0 = created[0].clone();
        let (_, p) = app.get(&p0).await;
        assert_eq!(p["manifest"], "LIST");

        let d = support::distribution(
            &app,
            &lib,
            json!({"name": "onpub", "base_path": "onpub", "publication": p1}),
        )
        .await;
        let (_, p) = app.get(&p1).await;
        assert_eq!(p["distributions"], json!([d]));

        let (_, list) = app.get(PUBS).await;
        assert_eq!(list["count"], 2);
        let (_, list) = app
            .get(&format!(
                "{PUBS}?repository_version={}",
                support::version_href(&repo, 1)
            ))
            .await;
        assert_eq!(list["count"], 1);
        assert_eq!(list["results"][0]["pulp_href"], p1.as_str());

        let (_, list) = app
            .get(&format!("{PUBS}?pulp_created__gte=2000-01-01T00:00:00Z"))
            .await;
        assert_eq!(list["count"], 2);
        let (_, list) = app
            .get(&format!("{PUBS}?pulp_created__lte=2000-01-01"))
            .await;
        assert_eq!(list["count"], 0, "{list}");
        // A version that does not exist, an href of something else, a malformed date: 400s
        // naming the filter (pulpcore answers the first with a 400 too).
        for (query, field) in [
            (
                format!("repository_version={}", support::version_href(&repo, 99)),
                "repository_version",
            ),
            (
                "repository_version=garbage".to_string(),
                "repository_version",
            ),
            (
                format!("repository=/pulp/api/v3/remotes/file/file/{}/", repo.id),
                "repository",
            ),
            ("pulp_created__gte=soon".to_string(), "pulp_created__gte"),
            ("pulp_created=-0042-01-01".to_string(), "pulp_created"),
        ] {
            let (s, e) = app.get(&format!("{PUBS}?{query}")).await;
            assert_eq!(s, 400, "{query}: {e}");
            assert!(e[field][0].is_string(), "{query}: {e}");
        }

        // A publish that fails (the manifest would hide a file) leaves no publication.
        let (s, answer) = app
            .post(PUBS, json!({"repository": repo_href, "manifest": "a.txt"}))
            .await;
        assert_eq!(s, 202);
        let (state, created, error) = support::wait(&lib, &answer).await;
        assert_eq!(state, TaskState::Failed, "{error:?}");
        assert!(created.is_empty());
        let (_, list) = app.get(PUBS).await;
        assert_eq!(list["count"], 2);

        let (s, _) = app.delete(&p0).await;
        assert_eq!(s, 204);
        let (s, _) = app.get(&p0).await;
        assert_eq!(s, 404);
        let (_, list) = app.get(PUBS).await;
        assert_eq!(list["count"], 1);
    }
}
