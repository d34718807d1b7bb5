//! The Debian plugin through the REST API and the content app (a real server in the test
//! process, on SQLite and on a fresh PostgreSQL database): pulp_deb's endpoints and operation
//! ids, remote field validation, an autopublished repository synced `streamed` whose structured
//! publication is served with Release, Packages and Packages.gz that agree on sizes and digests
//! and packages whose bytes match their stanza, and the publication options refused.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::app::{backends, TestApp};
use common::server::{sha256_hex, FixtureServer};
use serde_json::{json, Value};

const API: &str = "/pulp/api/v3/";

async fn fetch(app: &TestApp, url: &str) -> (u16, Vec<u8>) {
    let r = app
        .client
        .get(url)
        .send()
        .await
        .expect("content app answers");
    let status = r.status().as_u16();
    (status, r.bytes().await.expect("body").to_vec())
}

/// `SHA256` entries of a Release file: path -> (sha256, size).
fn release_digests(text: &str) -> BTreeMap<String, (String, u64)> {
    let mut out = BTreeMap::new();
    let mut in_sha256 = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            in_sha256 = line.trim_end() == "SHA256:";
            continue;
        }
        if in_sha256 {
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let [sha, size, path] = parts.as_slice() {
                out.insert(path.to_string(), (sha.to_string(), size.parse().unwrap()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn deb_api_autopublish_streamed_structured() {
    for backend in backends().await {
        let upstream = tempfile::tempdir().unwrap();
        common::scripts::make_deb_repo(upstream.path());
        let server = FixtureServer::start(upstream.path()).await;
        let app = TestApp::start(backend, 2).await;

        // The endpoints pulp-glue-deb looks up by operation id.
        let (s, doc) = app.get(&format!("{API}docs/api.json")).await;
        assert_eq!(s, 200);
        let ops: Vec<String> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|p| p.as_object().unwrap().values())
            .filter_map(|o| o["operationId"].as_str().map(str::to_string))
            .collect();
        for op in [
            "remotes_deb_apt_create",
            "repositories_deb_apt_sync",
            "repositories_deb_apt_versions_list",
            "publications_deb_apt_create",
            "publications_deb_verbatim_create",
            "distributions_deb_apt_create",
            "content_deb_packages_list",
            "content_deb_release_files_list",
            "content_deb_package_indices_list",
            "content_deb_releases_list",
            "content_deb_release_components_list",
            "content_deb_release_architectures_list",
            "content_deb_package_release_components_list",
            "signing_services_list",
        ] {
            assert!(ops.iter().any(|o| o == op), "{backend}: no {op}");
        }

        // A remote needs its distributions.
        let (s, body) = app
            .post(
                &format!("{API}remotes/deb/apt/"),
                json!({"name": "bad", "url": server.url("")}),
            )
            .await;
        assert_eq!(s, 400, "{backend}: {body}");
        assert!(body["distributions"].is_array(), "{backend}: {body}");
        let (s, body) = app
            .post(
                &format!("{API}remotes/deb/apt/"),
                json!({"name": "src", "url": server.url(""), "distributions": "stable",
                       "sync_sources": true}),
            )
            .await;
        assert_eq!(s, 400, "{backend}: {body}");
        assert!(
            body["sync_sources"][0]
                .as_str()
                .unwrap_or_default()
                .contains("not implemented"),
            "{backend}: {body}"
        );

        let (s, remote) = app
            .post(
                &format!("{API}remotes/deb/apt/"),
                json!({"name": "up", "url": server.url(""), "distributions": "stable",
                       "components": "main", "policy": "streamed",
                       "gpgkey": std::fs::read_to_string(upstream.path().join("key.asc")).unwrap()}),
            )
            .await;
        assert_eq!(s, 201, "{backend}: {remote}");
        assert_eq!(remote["distributions"], "stable");
        assert_eq!(remote["components"], "main");
        let (s, repo) = app
            .post(
                &format!("{API}repositories/deb/apt/"),
                json!({"name": "r", "remote": remote["pulp_href"], "autopublish": true}),
            )
            .await;
        assert_eq!(s, 201, "{backend}: {repo}");
        assert_eq!(repo["autopublish"], true);
        let repo_href = repo["pulp_href"].as_str().unwrap().to_string();
        let (s, task) = app.post(&format!("{repo_href}sync/"), json!({})).await;
        assert_eq!(s, 202, "{backend}: {task}");
        let done = app
            .wait_task(task["task"].as_str().unwrap(), Duration::from_secs(120))
            .await;
        assert_eq!(done["state"], "completed", "{backend}: {done}");

        // Counts per content type.
        let (_, v1) = app.get(&format!("{repo_href}versions/1/")).await;
        let present = &v1["content_summary"]["present"];
        for t in [
            "deb.package",
            "deb.release_file",
            "deb.package_index",
            "deb.release_component",
            "deb.package_release_component",
        ] {
            assert!(
                present[t]["count"].as_u64().unwrap_or(0) > 0,
                "{backend}: no {t} in {v1}"
            );
        }
        let (_, pkgs) = app
            .get(&format!(
                "{API}content/deb/packages/?repository_version={repo_href}versions/1/"
            ))
            .await;
        assert_eq!(
            pkgs["count"], present["deb.package"]["count"],
            "{backend}: {pkgs}"
        );
        assert!(pkgs["results"][0]["package"].is_string(), "{pkgs}");
        assert!(
            pkgs["results"][0]["pulp_href"]
                .as_str()
                .unwrap()
                .contains("/content/deb/packages/"),
            "{pkgs}"
        );

        // Memberships name their package and release component by href, as pulp_deb's, and
        // filter by them.
        let (_, prcs) = app
            .get(&format!(
                "{API}content/deb/package_release_components/?repository_version={repo_href}versions/1/"
            ))
            .await;
        let prc = &prcs["results"][0];
        let package = prc["package"].as_str().unwrap_or_default().to_string();
        let component = prc["release_component"].as_str().unwrap_or_default();
        assert!(
            package.starts_with(&format!("{API}content/deb/packages/")),
            "{backend}: {prc}"
        );
        let (s, rc) = app.get(component).await;
        assert_eq!(s, 200, "{backend}: {prc}");
        assert_eq!(rc["component"], "main", "{backend}: {rc}");
        let (s, by_package) = app
            .get(&format!(
                "{API}content/deb/package_release_components/?package={package}"
            ))
            .await;
        assert_eq!(s, 200, "{backend}: {by_package}");
        assert!(
            by_package["count"].as_u64().unwrap_or(0) >= 1,
            "{by_package}"
        );
        assert!(
            by_package["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["package"] == package.as_str()),
            "{backend}: {by_package}"
        );
        let (s, body) = app
            .get(&format!(
                "{API}content/deb/package_release_components/?package=not-an-href"
            ))
            .await;
        assert_eq!(s, 400, "{backend}: {body}");

        // Autopublished: one structured publication, served by a distribution of the repository.
        let (_, pubs) = app.get(&format!("{API}publications/deb/apt/")).await;
        assert_eq!(pubs["count"], 1, "{backend}: {pubs}");
        let (s, t) = app
            .post(
                &format!("{API}distributions/deb/apt/"),
                json!({"name": "d", "base_path": "deb/auto", "repository": repo_href}),
            )
            .await;
        assert_eq!(s, 202, "{backend}: {t}");
        app.wait_task(t["task"].as_str().unwrap(), Duration::from_secs(30))
            .await;
        let base = format!("{}/pulp/content/deb/auto/", app.content);
        let (s, release) = fetch(&app, &format!("{base}dists/stable/Release")).await;
        assert_eq!(s, 200, "{backend}");
        let release = String::from_utf8(release).unwrap();
        let digests = release_digests(&release);
        assert!(
            digests.contains_key("main/binary-amd64/Packages"),
            "{backend}: {release}"
        );
        let mut packages_text = String::new();
        for (path, (sha, size)) in &digests {
            let (s, body) = fetch(&app, &format!("{base}dists/stable/{path}")).await;
            assert_eq!(s, 200, "{backend}: {path}");
            assert_eq!(body.len() as u64, *size, "{backend}: size of {path}");
            assert_eq!(&sha256_hex(&body), sha, "{backend}: sha256 of {path}");
            if path == "main/binary-amd64/Packages" {
                packages_text = String::from_utf8(body).unwrap();
            }
        }
        // Every package of the index is served (streamed from upstream) with its stanza's bytes.
        let mut served = 0;
        for stanza in packages_text.split("\n\n").filter(|s| !s.trim().is_empty()) {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                    .unwrap_or_else(|| panic!("{backend}: no {name} in {stanza}"))
                    .to_string()
            };
            let filename = field("Filename");
            assert!(filename.starts_with("pool/main/"), "{filename}");
            let (s, body) = fetch(&app, &format!("{base}{filename}")).await;
            assert_eq!(s, 200, "{backend}: {filename}");
            assert_eq!(sha256_hex(&body), field("SHA256"), "{backend}: {filename}");
            served += 1;
        }
        assert!(served > 0, "{backend}: empty index\n{packages_text}");

        // Options that are not implemented are refused, not ignored.
        let (s, body) = app
            .post(
                &format!("{API}publications/deb/apt/"),
                json!({"repository": repo_href, "simple": true}),
            )
            .await;
        assert_eq!(s, 400, "{backend}: {body}");
        let (s, body) = app
            .post(
                &format!("{API}publications/deb/apt/"),
                json!({"repository": repo_href, "signing_service": "/pulp/api/v3/remotes/x/"}),
            )
            .await;
        assert_eq!(s, 400, "{backend}: {body}");
        let _: Value = body;
    }
}
