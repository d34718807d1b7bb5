//! Where pulpcore's behaviour is what clients expect (both backends, a real server on
//! 127.0.0.1): a file distribution serves publications only; a mirror sync publishes and lists
//! both resources; Range on content not downloaded yet; malformed Range; remote certificates
//! cleaned to their PEM blocks or refused; every date-time form on date-time filters; filters
//! naming nothing are 400s; distributions by repository; `ordering`; `status/` online apps.

mod common;
mod content_app_support;

use common::app::{backends, TestApp};
use common::server::sha256_hex;
use content_app_support as support;
use pulp_rs::models::Policy;
use pulp_rs::server::{Parts, Server};
use serde_json::{json, Value};
use uuid::Uuid;

const REMOTES: &str = "/pulp/api/v3/remotes/file/file/";
const REPOS: &str = "/pulp/api/v3/repositories/file/file/";
const DISTS: &str = "/pulp/api/v3/distributions/file/file/";
const PUBS: &str = "/pulp/api/v3/publications/file/file/";

/// A self-signed test certificate (generated for these tests), in canonical PEM form.
const TEST_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBhDCCASugAwIBAgIUXNZMeCUiHkFSzez1S2wnUzrI2TwwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMcHVscC1ycy10ZXN0MCAXDTI2MTEyMzIwMTU0NloYDzIxMjYx
MDMwMjAxNTQ2WjAXMRUwEwYDVQQDDAxwdWxwLXJzLXRlc3QwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAATAmGvaQ7XbldqWraSycQu6M1e+VjSS1Ii/hBHUXx8kLO2I
oJt4M5Y+JSeQVsZoFrpISiV2E+vgs15E7UDtH0Xvo1MwUTAdBgNVHQ4EFgQUiosf
i1tJw0mcbsD0fYXx9ZX6HiMwHwYDVR0jBBgwFoAUiosfi1tJw0mcbsD0fYXx9ZX6
HiMwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiBJMcm8C3TCY/gh
x4biajvwL/+Sjvx+m2/jOt6ONBzTewIgWJCPKVPB8gpQwsw66M7LP852YYetQUa4
eYXdEZxl4Ls=
-----END CERTIFICATE-----
";

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(37).wrapping_add(seed))
        .collect()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn get_text(url: &str, range: Option<&str>) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.get(url);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap().to_vec();
    (status, headers, body)
}

/// Creates a remote and a repository through the API; returns their JSON.
async fn remote_and_repo(
    app: &TestApp,
    name: &str,
    url: &str,
    repo_extra: Value,
) -> (Value, Value) {
    let (s, remote) = app
        .post(
            REMOTES,
            json!({"name": name, "url": url, "policy": "on_demand"}),
        )
        .await;
    assert_eq!(s, 201, "{remote}");
    let mut body = json!({"name": name, "remote": remote["pulp_href"]});
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), repo_extra) {
        b.extend(extra);
    }
    let (s, repo) = app.post(REPOS, body).await;
    assert_eq!(s, 201, "{repo}");
    (remote, repo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_distribution_serves_publications_only() {
    for backend in backends().await {
        let app = TestApp::start(backend, 1).await;
        let lib = support::lib(&app).await;
        let a = data(3000, 1);
        let up = support::upstream(&[("a.txt", a.clone())]).await;
        let (repo, _) = support::synced_repo(&lib, &up, "rule", Policy::Immediate).await;
        support::distribution(
            &app,
            &lib,
            json!({"name": "r", "base_path": "rule/repo", "repository": support::repo_href(&repo)}),
        )
        .await;
        support::distribution(
            &app,
            &lib,
            json!({"name": "v", "base_path": "rule/ver",
                   "repository_version": support::version_href(&repo, 1)}),
        )
        .await;
        let base = format!("{}/pulp/content/rule/", app.content);
        // Nothing published yet: every path is a 404, the distribution's root too.
        for path in ["repo/a.txt", "repo/", "ver/a.txt", "ver/"] {
            let (s, _, _) = get_text(&format!("{base}{path}"), None).await;
            assert_eq!(s, 404, "{backend}: {path} before a publication");
        }
        // Published: served.
        support::publish(&app, &lib, &repo, 1).await;
        for path in ["repo/a.txt", "ver/a.txt"] {
            let (s, _, body) = get_text(&format!("{base}{path}"), None).await;
            assert_eq!(s, 200, "{backend}: {path} once published");
            assert!(body == a);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_sync_publishes_and_autopublish_refuses_mirror() {
    for backend in backends().await {
        let app = TestApp::start(backend, 1).await;
        let lib = support::lib(&app).await;
        let a = data(500, 2);
        let b = data(700, 3);
        let up = support::upstream(&[("a.txt", a.clone()), ("d/b.bin", b.clone())]).await;
        let url = up.server.url("PULP_MANIFEST");
        let (_, repo) = remote_and_repo(&app, "mir", &url, json!({})).await;
        let repo_href = repo["pulp_href"].as_str().unwrap().to_string();
        let created = support::post_task(
            &app,
            &lib,
            &format!("{repo_href}sync/"),
            json!({"mirror": true}),
        )
        .await;
        assert_eq!(created.len(), 2, "{backend}: {created:?}");
        assert!(created[0].ends_with("/versions/1/"), "{created:?}");
        assert!(created[1].starts_with(PUBS), "{created:?}");
        let (s, p) = app.get(&created[1]).await;
        assert_eq!(s, 200, "{p}");
        assert_eq!(p["repository_version"], created[0].as_str());
        assert_eq!(p["manifest"], "PULP_MANIFEST");
        // A distribution of the repository serves the mirrored publication and its manifest.
        support::distribution(
            &app,
            &lib,
            json!({"name": "mir", "base_path": "mir", "repository": repo_href}),
        )
        .await;
        let base = format!("{}/pulp/content/mir/", app.content);
        let (s, _, manifest) = get_text(&format!("{base}PULP_MANIFEST"), None).await;
        assert_eq!(s, 200, "{backend}");
        let mut lines: Vec<String> = String::from_utf8(manifest)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            vec![
                format!("a.txt,{},{}", sha256_hex(&a), a.len()),
                format!("d/b.bin,{},{}", sha256_hex(&b), b.len()),
            ]
        );
        let (s, _, got) = get_text(&format!("{base}d/b.bin"), None).await;
        assert_eq!(s, 200);
        assert!(got == b);
        // A resync that changes nothing makes neither a version nor a publication.
        let created = support::post_task(
            &app,
            &lib,
            &format!("{repo_href}sync/"),
            json!({"mirror": true}),
        )
        .await;
        assert!(created.is_empty(), "{created:?}");
        // A plain sync publishes nothing.
        let (_, plain) = remote_and_repo(&app, "plain", &url, json!({})).await;
        let created = support::post_task(
            &app,
            &lib,
            &format!("{}sync/", plain["pulp_href"].as_str().unwrap()),
            json!({}),
        )
        .await;
        assert_eq!(created.len(), 1, "{created:?}");
        // mirror on an autopublished repository: a 400, no task.
        let (_, auto) = remote_and_repo(&app, "auto", &url, json!({"autopublish": true})).await;
        let (s, body) = app
            .post(
                &format!("{}sync/", auto["pulp_href"].as_str().unwrap()),
                json!({"mirror": true}),
            )
            .await;
        assert_eq!(s, 400, "{backend}: {body}");
        assert!(
            body.to_string()
                .contains("Cannot use mirror mode with autopublished repository."),
            "{body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_on_content_not_yet_downloaded() {
    for backend in backends().await {
        let app = TestApp::start(backend, 1).await;
        let lib = support::lib(&app).await;
        // Larger than a few download chunks, so the range sits in the middle of the stream.
        let big = data(600_000, 4);
        let up = support::upstream(&[("big.bin", big.clone())]).await;
        let (repo, _) = support::synced_repo(&lib, &up, "od", Policy::OnDemand).await;
        support::publish(&app, &lib, &repo, 1).await;
        support::distribution(
            &app,
            &lib,
            json!({"name": "od", "base_path": "od", "repository": support::repo_href(&repo)}),
        )
        .await;
        let url = format!("{}/pulp/content/od/big.bin", app.content);
        let saved = || async {
            lib.store
                .find_artifacts_by_sha256(&[sha256_hex(&big)])
                .await
                .unwrap()
                .len()
        };
        // Past the end, and malformed: 416 at once, nothing fetched or saved.
        for bad in [
            format!("bytes={}-", big.len()),
            "bytes=-1-11".to_string(),
            "bytes=9-3".to_string(),
        ] {
            let (s, h, _) = get_text(&url, Some(&bad)).await;
            assert_eq!(s, 416, "{backend}: {bad}");
            assert_eq!(
                h["content-range"],
                format!("bytes */{}", big.len()).as_str(),
                "{bad}"
            );
        }
        assert_eq!(up.server.requests("big.bin"), 0, "{backend}");
        assert_eq!(saved().await, 0);
        // A range in the middle: 206 with exactly those bytes; once the body is complete the
        // whole file was fetched, validated and saved.
        let (s, h, body) = get_text(&url, Some("bytes=300000-300999")).await;
        assert_eq!(s, 206, "{backend}");
        assert_eq!(h["content-length"], "1000");
        assert_eq!(
            h["content-range"],
            format!("bytes 300000-300999/{}", big.len()).as_str()
        );
        assert!(body.as_slice() == &big[300_000..301_000]);
        assert_eq!(saved().await, 1, "{backend}: saved after the range answer");
        assert_eq!(up.server.requests("big.bin"), 1);
        // From storage now: ranges as before, a malformed one is a 416 there too.
        let (s, _, body) = get_text(&url, Some("bytes=-5")).await;
        assert_eq!(s, 206);
        assert!(body.as_slice() == &big[big.len() - 5..]);
        let (s, _, _) = get_text(&url, Some("bytes=abc")).await;
        assert_eq!(s, 416);
        assert_eq!(up.server.requests("big.bin"), 1);

        // Streamed: a range is served from the stream and nothing is ever saved.
        let f = data(200_000, 5);
        let up2 = support::upstream(&[("s.bin", f.clone())]).await;
        let (srepo, _) = support::synced_repo(&lib, &up2, "st", Policy::Streamed).await;
        support::publish(&app, &lib, &srepo, 1).await;
        support::distribution(
            &app,
            &lib,
            json!({"name": "st", "base_path": "st", "repository": support::repo_href(&srepo)}),
        )
        .await;
        let surl = format!("{}/pulp/content/st/s.bin", app.content);
        let (s, h, body) = get_text(&surl, Some("bytes=0-9")).await;
        assert_eq!(s, 206, "{backend}");
        assert_eq!(
            h["content-range"],
            format!("bytes 0-9/{}", f.len()).as_str()
        );
        assert!(body.as_slice() == &f[..10]);
        let (s, _, body) = get_text(&surl, Some("bytes=199990-300000")).await;
        assert_eq!(s, 206);
        assert!(body.as_slice() == &f[199_990..]);
        let (s, _, _) = get_text(&surl, Some("bytes=200000-")).await;
        assert_eq!(s, 416);
        assert!(lib
            .store
            .find_artifacts_by_sha256(&[sha256_hex(&f)])
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_show_dates_and_sizes() {
    for backend in backends().await {
        let app = TestApp::start(backend, 1).await;
        let lib = support::lib(&app).await;
        let up = support::upstream(&[("foo/0.iso", data(4 * 1024 * 1024, 6))]).await;
        let (repo, _) = support::synced_repo(&lib, &up, "list", Policy::OnDemand).await;
        support::publish(&app, &lib, &repo, 1).await;
        support::distribution(
            &app,
            &lib,
            json!({"name": "l", "base_path": "l", "repository": support::repo_href(&repo)}),
        )
        .await;
        let (s, _, html) = get_text(&format!("{}/pulp/content/l/foo/", app.content), None).await;
        assert_eq!(s, 200, "{backend}");
        let html = String::from_utf8(html).unwrap();
        let line = html
            .lines()
            .find(|l| l.contains(">0.iso</a>"))
            .unwrap_or_else(|| panic!("{html}"));
        // `<date right-aligned to column 69><size in 19 columns>`, the size of an on-demand
        // file from what the sync recorded.
        assert!(line.ends_with("            4.2 MB"), "{line:?}");
        let date = line["<a href=\"0.iso\">0.iso</a>".len()..].trim_start();
        let date = &date[..17];
        assert!(
            chrono::NaiveDateTime::parse_from_str(date, "%d-%b-%Y %H:%M").is_ok(),
            "{line:?}"
        );
        assert_eq!(
            line.len(),
            "<a href=\"0.iso\">0.iso</a>".len() + 64 + 19,
            "{line:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_certificates_are_cleaned_or_refused() {
    for backend in backends().await {
        let app = TestApp::start(backend, 1).await;
        let lib = support::lib(&app).await;
        let noisy =
            format!("# issued by the test CA\nsubject=pulp-rs-test\n{TEST_CERT}trailing words\n");
        let (s, r) = app
            .post(
                REMOTES,
                json!({"name": "tls", "url": "https://127.0.0.1:1/PULP_MANIFEST",
                       "ca_cert": noisy, "client_cert": format!("{TEST_CERT}{TEST_CERT}")}),
            )
            .await;
        assert_eq!(s, 201, "{backend}: {r}");
        assert_eq!(r["ca_cert"], TEST_CERT, "comments around the block dropped");
        assert_eq!(r["client_cert"], format!("{TEST_CERT}{TEST_CERT}"));
        let href = r["pulp_href"].as_str().unwrap().to_string();
        let bad_block = "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n";
        for (field, value) in [
            ("ca_cert", "not a certificate"),
            ("ca_cert", bad_block),
            (
                "client_cert",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
            ("client_cert", "secret-looking text"),
        ] {
            let (s, body) = app
                .post(
                    REMOTES,
                    json!({"name": "bad", "url": "https://127.0.0.1:1/M", field: value}),
                )
                .await;
            assert_eq!(s, 400, "{backend}: {field}={value:?}: {body}");
            assert!(body[field][0].is_string(), "{body}");
            assert!(!body.to_string().contains(value), "input echoed: {body}");
            // The update task applies the same rule.
            let (s, answer) = app.patch(&href, json!({ field: value })).await;
            assert_eq!(s, 400, "{field}: {answer}");
        }
        // PATCH with a good certificate: stored cleaned.
        let (s, answer) = app
            .patch(&href, json!({"ca_cert": format!("junk\n{TEST_CERT}")}))
            .await;
        assert_eq!(s, 202, "{answer}");
        support::wait(&lib, &answer).await;
        let (_, r) = app.get(&href).await;
        assert_eq!(r["ca_cert"], TEST_CERT);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_time_filters_take_every_form() {
    for backend in backends().await {
        let app = TestApp::start(backend, 1).await;
        let lib = support::lib(&app).await;
        let up = support::upstream(&[("a.txt", data(10, 7))]).await;
        let (repo, _) = support::synced_repo(&lib, &up, "dt", Policy::Immediate).await;
        support::publish(&app, &lib, &repo, 1).await;
        let versions = format!("{}versions/", support::repo_href(&repo));
        let lists = [
            (PUBS.to_string(), "pulp_created__gte"),
            (versions.clone(), "pulp_created__gte"),
            ("/pulp/api/v3/tasks/".to_string(), "started_at__gte"),
        ];
        for (path, filter) in &lists {
            for (when, past) in [
                ("2000-01-02T03:04:05", true),
                ("2999-01-02T03:04:05", false),
            ] {
                let mut counts = Vec::new();
                for zone in ["Z", "+00:00", "+0000", "", ".000000Z", "+00"] {
                    let q = format!("{filter}={}", enc(&format!("{when}{zone}")));
                    let (s, list) = app.get(&format!("{path}?{q}")).await;
                    assert_eq!(s, 200, "{backend}: {path}?{q}: {list}");
                    counts.push(list["count"].as_u64().unwrap());
                }
                assert!(
                    counts.windows(2).all(|w| w[0] == w[1]),
                    "{path}: {counts:?}"
                );
                assert_eq!(counts[0] > 0, past, "{path} {when}: {counts:?}");
            }
            // A zone moves the instant: 01:00+01:00 is midnight UTC.
            let (_, a) = app
                .get(&format!(
                    "{path}?{filter}={}",
                    enc("2000-01-01T01:00:00+0100")
                ))
                .await;
            let (_, b) = app
                .get(&format!("{path}?{filter}={}", enc("2000-01-01T00:00:00Z")))
                .await;
            assert_eq!(a["count"], b["count"]);
            let (s, _) = app.get(&format!("{path}?{filter}=yesterday")).await;
            assert_eq!(s, 400);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_naming_nothing_are_400s_and_distributions_filter_by_repository() {
    for backend in backends().await {
        let app = TestApp::start(backend, 1).await;
        let lib = support::lib(&app).await;
        let up = support::upstream(&[("a.txt", data(10, 8))]).await;
        let (r1, _) = support::synced_repo(&lib, &up, "one", Policy::Immediate).await;
        let (r2, _) = support::synced_repo(&lib, &up, "two", Policy::Immediate).await;
        let (h1, h2) = (support::repo_href(&r1), support::repo_href(&r2));
        for (name, repo) in [("d1", &h1), ("d2", &h2), ("d3", &h2)] {
            support::distribution(
                &app,
                &lib,
                json!({"name": name, "base_path": name, "repository": repo}),
            )
            .await;
        }
        support::distribution(&app, &lib, json!({"name": "none", "base_path": "none"})).await;
        for list in [DISTS, "/pulp/api/v3/distributions/"] {
            for (q, want) in [
                (format!("repository={}", enc(&h1)), vec!["d1"]),
                (format!("repository={}", enc(&h2)), vec!["d2", "d3"]),
                (
                    format!("repository__in={},{}", enc(&h1), enc(&h2)),
                    vec!["d1", "d2", "d3"],
                ),
                (
                    format!("repository={}&repository__in={}", enc(&h1), enc(&h2)),
                    vec![],
                ),
                ("repository=".to_string(), vec!["d1", "d2", "d3", "none"]),
            ] {
                let (s, body) = app.get(&format!("{list}?{q}&ordering=name")).await;
                assert_eq!(s, 200, "{backend}: {list}?{q}: {body}");
                let names: Vec<&str> = body["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["name"].as_str().unwrap())
                    .collect();
                assert_eq!(names, want, "{list}?{q}");
            }
        }
        // Objects that do not exist: 400s naming the filter, not empty lists.
        let ghost_repo = format!("{REPOS}{}/", Uuid::now_v7());
        let ghost_remote = format!("{REMOTES}{}/", Uuid::now_v7());
        for (path, q, field) in [
            (
                DISTS,
                format!("repository={}", enc(&ghost_repo)),
                "repository",
            ),
            (
                DISTS,
                format!("repository__in={},{}", enc(&h1), enc(&ghost_repo)),
                "repository__in",
            ),
            (
                "/pulp/api/v3/distributions/",
                format!("repository={}", enc(&ghost_repo)),
                "repository",
            ),
            (
                PUBS,
                format!("repository={}", enc(&ghost_repo)),
                "repository",
            ),
            (REPOS, format!("remote={}", enc(&ghost_remote)), "remote"),
            (
                "/pulp/api/v3/tasks/",
                format!(
                    "worker={}",
                    enc(&format!("/pulp/api/v3/workers/{}/", Uuid::now_v7()))
                ),
                "worker",
            ),
            ("/pulp/api/v3/tasks/", "worker=nobody".to_string(), "worker"),
            (
                "/pulp/api/v3/tasks/",
                format!(
                    "parent_task={}",
                    enc(&format!("/pulp/api/v3/tasks/{}/", Uuid::now_v7()))
                ),
                "parent_task",
            ),
        ] {
            let (s, body) = app.get(&format!("{path}?{q}")).await;
            assert_eq!(s, 400, "{backend}: {path}?{q}: {body}");
            assert!(body[field][0].is_string(), "{path}?{q}: {body}");
        }
    }
}

/// The `field` of every result of `path?query`, in order.
async fn column(app: &TestApp, path: &str, query: &str, field: &str) -> Vec<Value> {
    let (s, body) = app.get(&format!("{path}?{query}")).await;
    assert_eq!(s, 200, "{path}?{query}: {body}");
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[field].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_is_honoured() {
    for backend in backends().await {
        let app = TestApp::start(backend, 1).await;
        let lib = support::lib(&app).await;
        let up = support::upstream(&[
            ("a.txt", data(10, 9)),
            ("b.txt", data(11, 9)),
            ("c.txt", data(12, 9)),
        ])
        .await;
        let url = up.server.url("PULP_MANIFEST");
        // Created in an order that is neither alphabetical nor its reverse.
        for name in ["b", "c", "a"] {
            remote_and_repo(&app, name, &url, json!({})).await;
            support::distribution(
                &app,
                &lib,
                json!({"name": name, "base_path": format!("z{name}")}),
            )
            .await;
        }
        let names = |v: Vec<Value>| -> Vec<String> {
            v.into_iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect()
        };
        for path in [
            REMOTES,
            REPOS,
            DISTS,
            "/pulp/api/v3/remotes/",
            "/pulp/api/v3/repositories/",
            "/pulp/api/v3/distributions/",
        ] {
            assert_eq!(
                names(column(&app, path, "ordering=name", "name").await),
                ["a", "b", "c"],
                "{backend}: {path}"
            );
            assert_eq!(
                names(column(&app, path, "ordering=-name", "name").await),
                ["c", "b", "a"],
                "{backend}: {path}"
            );
            assert_eq!(
                names(column(&app, path, "ordering=pulp_created", "name").await),
                ["b", "c", "a"],
                "{backend}: {path}"
            );
            assert_eq!(
                names(column(&app, path, "ordering=-pulp_created", "name").await),
                ["a", "c", "b"],
                "{backend}: {path}"
            );
            // Paging applies after ordering.
            assert_eq!(
                names(column(&app, path, "ordering=-name&limit=1&offset=1", "name").await),
                ["b"],
                "{backend}: {path}"
            );
            let (s, body) = app.get(&format!("{path}?ordering=nonsense")).await;
            assert_eq!(s, 400, "{path}: {body}");
            assert!(body["ordering"][0].is_string(), "{body}");
        }
        // Content, typed and generic: by id, both ways.
        let (_, repos) = app.get(&format!("{REPOS}?name=a")).await;
        let a_href = repos["results"][0]["pulp_href"]
            .as_str()
            .unwrap()
            .to_string();
        support::post_task(&app, &lib, &format!("{a_href}sync/"), json!({})).await;
        for path in ["/pulp/api/v3/content/file/files/", "/pulp/api/v3/content/"] {
            let asc = column(&app, path, "ordering=pk", "pulp_href").await;
            let mut desc = column(&app, path, "ordering=-pk", "pulp_href").await;
            desc.reverse();
            assert_eq!(asc.len(), 3, "{path}");
            assert_eq!(asc, desc, "{backend}: {path}");
        }
        // Tasks: oldest or newest first.
        let newest = column(
            &app,
            "/pulp/api/v3/tasks/",
            "ordering=-pulp_created",
            "pulp_href",
        )
        .await;
        let oldest = column(
            &app,
            "/pulp/api/v3/tasks/",
            "ordering=pulp_created",
            "pulp_href",
        )
        .await;
        assert!(newest.len() >= 3, "{newest:?}");
        let mut reversed = oldest.clone();
        reversed.reverse();
        assert_eq!(newest, reversed, "{backend}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_online_api_and_content_apps() {
    for backend in backends().await {
        let mut app = TestApp::start(backend, 1).await;
        let status = |app: &TestApp| {
            let url = format!("{}/pulp/api/v3/status/", app.api);
            async move {
                let body: Value = reqwest::get(url).await.unwrap().json().await.unwrap();
                body
            }
        };
        let names = |v: &Value, key: &str| -> Vec<String> {
            v[key]
                .as_array()
                .unwrap_or_else(|| panic!("{key} in {v}"))
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_string())
                .collect()
        };
        let s = status(&app).await;
        let api_port = app.settings.api_bind.port();
        let content_port = app.settings.content_bind.port();
        assert_eq!(names(&s, "online_api_apps").len(), 1, "{backend}: {s}");
        assert!(
            names(&s, "online_api_apps")[0].starts_with(&format!("{}@", std::process::id())),
            "{s}"
        );
        assert!(
            names(&s, "online_api_apps")[0].ends_with(&format!(":{api_port}")),
            "{backend}: {s}"
        );
        assert_eq!(names(&s, "online_content_apps").len(), 1, "{backend}: {s}");
        assert!(names(&s, "online_content_apps")[0].ends_with(&format!(":{content_port}")));
        assert!(s["online_content_apps"][0]["last_heartbeat"].is_string());

        // A second content app on the same database (another process, as far as the database
        // knows): listed while it runs, gone once it stopped.
        let mut settings = app.settings.clone();
        settings.content_bind = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        settings.workers = 0;
        let other = Server::start(
            &settings,
            Parts {
                api: false,
                content: true,
                workers: 0,
            },
        )
        .await
        .expect("second content app");
        let other_port = other.content_addr.unwrap().port();
        let s = status(&app).await;
        let content = names(&s, "online_content_apps");
        assert_eq!(content.len(), 2, "{backend}: {s}");
        assert!(content
            .iter()
            .any(|n| n.ends_with(&format!(":{other_port}"))));
        assert_eq!(names(&s, "online_api_apps").len(), 1);
        other.stop().await;
        let s = status(&app).await;
        let content = names(&s, "online_content_apps");
        assert_eq!(content.len(), 1, "{backend}: {s}");
        assert!(content[0].ends_with(&format!(":{content_port}")));
        app.stop().await;
    }
}
