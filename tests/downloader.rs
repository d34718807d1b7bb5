//! Integration tests of the download layer against the fixture HTTP server on 127.0.0.1:
//! validation, retries by cause, timeouts, concurrency and rate limits, auth, headers, proxy,
//! TLS options, secrets, `file://` and cancellation.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::server::{sha256_hex, write_file_repo, Fault, FixtureServer};
use pulp_rs::downloader::{
    DownloadError, DownloadSettings, DownloaderFactory, ErrorKind, ImportPaths, USER_AGENT,
};
use pulp_rs::models::{Expected, OtherDigests, Policy, Remote};
use sha2::{Digest, Sha512};
use tempfile::TempDir;

/// A fixture server over a file repo, and an empty tmp dir for downloads.
struct Env {
    server: FixtureServer,
    tmp: TempDir,
    _files: TempDir,
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

async fn env(files: &[(&str, Vec<u8>)]) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    write_file_repo(dir.path(), files);
    Env {
        server: FixtureServer::start(dir.path()).await,
        tmp: tempfile::tempdir().expect("tempdir"),
        _files: dir,
    }
}

fn settings(tmp: &Path) -> DownloadSettings {
    DownloadSettings {
        retry_base_delay: Duration::from_millis(5),
        retry_max_delay: Duration::from_millis(50),
        ..DownloadSettings::new(tmp)
    }
}

fn remote(url: &str) -> Remote {
    Remote::new("file.file", "test", url, Policy::Immediate)
}

fn factory(env: &Env, tweak: impl FnOnce(&mut Remote)) -> Arc<DownloaderFactory> {
    let mut r = remote(&env.server.url("PULP_MANIFEST"));
    tweak(&mut r);
    DownloaderFactory::new(&r, settings(env.tmp.path())).expect("factory")
}

fn expected(data: &[u8]) -> Expected {
    Expected {
        size: Some(data.len() as u64),
        sha256: Some(sha256_hex(data)),
        other: OtherDigests::default(),
    }
}

fn tmp_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).expect("read tmp dir").count()
}

fn load(counter: &std::sync::atomic::AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

#[tokio::test]
async fn plain_download_validates_and_keeps_the_bytes() {
    let small = data(1000, 1);
    let big = data(3 * 1024 * 1024 + 123, 2);
    let env = env(&[("a/small.bin", small.clone()), ("big.bin", big.clone())]).await;
    let f = factory(&env, |_| {});

    let r = f
        .download(&env.server.url("a/small.bin"), &expected(&small))
        .await
        .expect("small download");
    assert_eq!(r.size, small.len() as u64);
    assert_eq!(r.sha256, sha256_hex(&small));
    assert_eq!(std::fs::read(&r.temp).expect("temp"), small);
    assert!(r.temp.starts_with(env.tmp.path()));

    let mut exp = expected(&big);
    exp.other.sha512 = Some(hex::encode(Sha512::digest(&big)));
    let r2 = f
        .download(&env.server.url("big.bin"), &exp)
        .await
        .expect("big download");
    assert_eq!(std::fs::read(&r2.temp).expect("temp"), big);
    assert_eq!(r2.other.sha512, exp.other.sha512);
    assert_eq!(r2.other.sha224, None);

    // Nothing expected: still hashed.
    let r3 = f
        .download(&env.server.url("a/small.bin"), &Expected::default())
        .await
        .expect("unvalidated download");
    assert_eq!(r3.sha256, sha256_hex(&small));

    let s = f.stats();
    assert_eq!(load(&s.requests), 3);
    assert_eq!(load(&s.completed), 3);
    assert_eq!(load(&s.bytes), (2 * small.len() + big.len()) as u64);
    assert_eq!(s.retries(), 0);
    assert_eq!(load(&s.in_flight), 0);

    // The temp file goes away with the result.
    let path = r.temp.to_path_buf();
    drop(r);
    assert!(!path.exists());
}

#[tokio::test]
async fn wrong_sha256_is_retried_then_reported() {
    let body = data(5000, 3);
    let env = env(&[("f.bin", body.clone())]).await;
    let f = factory(&env, |_| {});
    let url = env.server.url("f.bin");
    let wrong = "ab".repeat(32);
    let exp = Expected {
        sha256: Some(wrong.clone()),
        ..expected(&body)
    };
    let err = f.download(&url, &exp).await.expect_err("digest mismatch");
    let text = err.to_string();
    assert!(
        matches!(&err, DownloadError::RetriesExhausted { attempts: 4, last, .. }
            if matches!(**last, DownloadError::Digest { algorithm: "sha256", .. })),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert!(text.contains(&url), "{text}");
    assert!(text.contains(&wrong), "{text}");
    assert!(text.contains(&sha256_hex(&body)), "{text}");
    assert_eq!(env.server.requests("f.bin"), 4);
    assert_eq!(load(&f.stats().retries_integrity), 3);
    assert_eq!(load(&f.stats().completed), 0);
    assert_eq!(tmp_files(env.tmp.path()), 0);
}

#[tokio::test]
async fn wrong_size_is_an_integrity_error() {
    let body = data(2000, 4);
    let env = env(&[("f.bin", body.clone())]).await;
    let f = factory(&env, |r| r.max_retries = Some(1));
    let exp = Expected {
        size: Some(2001),
        ..expected(&body)
    };
    let err = f
        .download(&env.server.url("f.bin"), &exp)
        .await
        .expect_err("size mismatch");
    let text = err.to_string();
    assert!(text.contains("2001") && text.contains("2000"), "{text}");
    assert_eq!(err.kind(), ErrorKind::Integrity);
    assert_eq!(env.server.requests("f.bin"), 2);
    assert_eq!(load(&f.stats().retries_integrity), 1);

    // Smaller than the body: stopped early too.
    let exp = Expected {
        size: Some(10),
        sha256: None,
        other: OtherDigests::default(),
    };
    let err = f
        .download(&env.server.url("f.bin"), &exp)
        .await
        .expect_err("size mismatch");
    assert!(err.to_string().contains("expected 10 bytes"), "{err}");
    assert_eq!(tmp_files(env.tmp.path()), 0);
}

#[tokio::test]
async fn not_found_is_not_retried() {
    let env = env(&[]).await;
    let f = factory(&env, |_| {});
    let url = env.server.url("missing.bin");
    let err = f
        .download(&url, &Expected::default())
        .await
        .expect_err("404");
    assert!(
        matches!(&err, DownloadError::Status { status: 404, .. }),
        "{err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert_eq!(err.to_string(), format!("{url}: HTTP 404"));
    assert_eq!(env.server.requests("missing.bin"), 1);
    assert_eq!(f.stats().retries(), 0);
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let body = data(100, 5);
    let env = env(&[("f.bin", body.clone())]).await;
    env.server
        .push_faults("f.bin", [Fault::Status(500), Fault::Status(502)]);
    let f = factory(&env, |_| {});
    let r = f
        .download(&env.server.url("f.bin"), &expected(&body))
        .await
        .expect("third attempt succeeds");
    assert_eq!(std::fs::read(&r.temp).expect("temp"), body);
    assert_eq!(env.server.requests("f.bin"), 3);
    assert_eq!(load(&f.stats().retries_status), 2);
    assert_eq!(load(&f.stats().requests), 3);
    assert_eq!(load(&f.stats().completed), 1);
}

#[tokio::test]
async fn persistent_server_error_gives_up_after_four_attempts() {
    let body = data(100, 6);
    let env = env(&[("f.bin", body.clone())]).await;
    env.server.set_always("f.bin", Some(Fault::Status(500)));
    let f = factory(&env, |_| {});
    let url = env.server.url("f.bin");
    let err = f.download(&url, &expected(&body)).await.expect_err("500");
    assert!(
        matches!(&err, DownloadError::RetriesExhausted { attempts: 4, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!("{url}: HTTP 500")),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert_eq!(env.server.requests("f.bin"), 4);
    assert_eq!(load(&f.stats().retries_status), 3);
}

#[tokio::test]
async fn truncate_corrupt_and_429_are_each_retried() {
    let body = data(300_000, 7);
    let env = env(&[("f.bin", body.clone())]).await;
    env.server.push_faults(
        "f.bin",
        [Fault::Truncate, Fault::Corrupt, Fault::Status(429)],
    );
    let f = factory(&env, |_| {});
    let r = f
        .download(&env.server.url("f.bin"), &expected(&body))
        .await
        .expect("fourth attempt succeeds");
    assert_eq!(std::fs::read(&r.temp).expect("temp"), body);
    assert_eq!(env.server.requests("f.bin"), 4);
    let s = f.stats();
    assert_eq!(load(&s.retries_connection), 1, "truncated body");
    assert_eq!(load(&s.retries_integrity), 1, "corrupted body");
    assert_eq!(load(&s.retries_status), 1, "429");
    assert_eq!(load(&s.retries_timeout), 0);
    assert_eq!(s.retries(), 3);
    // Only the result's file is left.
    assert_eq!(tmp_files(env.tmp.path()), 1);
}

#[tokio::test]
async fn truncated_body_without_retries_is_a_body_cut() {
    let body = data(200_000, 8);
    let env = env(&[("f.bin", body.clone())]).await;
    env.server.push_faults("f.bin", [Fault::Truncate]);
    let f = factory(&env, |r| r.max_retries = Some(0));
    let err = f
        .download(&env.server.url("f.bin"), &Expected::default())
        .await
        .expect_err("truncated");
    let DownloadError::RetriesExhausted { attempts, last, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(*attempts, 1);
    assert!(matches!(**last, DownloadError::BodyCut { .. }), "{last:?}");
    assert_eq!(env.server.requests("f.bin"), 1);
    assert_eq!(f.stats().retries(), 0);
}

#[tokio::test]
async fn a_stalled_body_hits_the_read_timeout_and_is_retried() {
    let body = data(100_000, 9);
    let env = env(&[("f.bin", body.clone())]).await;
    env.server
        .push_faults("f.bin", [Fault::Stall(Duration::from_secs(5))]);
    let f = factory(&env, |r| r.sock_read_timeout = Some(0.2));
    let start = Instant::now();
    let r = f
        .download(&env.server.url("f.bin"), &expected(&body))
        .await
        .expect("second attempt succeeds");
    assert!(start.elapsed() < Duration::from_secs(3));
    assert_eq!(std::fs::read(&r.temp).expect("temp"), body);
    assert_eq!(env.server.requests("f.bin"), 2);
    assert_eq!(load(&f.stats().retries_timeout), 1);

    // Always stalling: a Timeout, retried up to the limit.
    env.server
        .set_always("f.bin", Some(Fault::Stall(Duration::from_secs(5))));
    let f = factory(&env, |r| {
        r.sock_read_timeout = Some(0.2);
        r.max_retries = Some(1);
    });
    let err = f
        .download(&env.server.url("f.bin"), &expected(&body))
        .await
        .expect_err("stalls");
    let DownloadError::RetriesExhausted {
        attempts: 2, last, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(
        matches!(**last, DownloadError::Timeout { what: "read", .. }),
        "{last:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Transient);
    assert_eq!(load(&f.stats().retries_timeout), 1);
    assert_eq!(tmp_files(env.tmp.path()), 1);
}

#[tokio::test]
async fn total_timeout_bounds_one_attempt() {
    let body = data(100, 10);
    let env = env(&[("f.bin", body.clone())]).await;
    env.server
        .set_always("f.bin", Some(Fault::Delay(Duration::from_secs(5))));
    let f = factory(&env, |r| {
        r.total_timeout = Some(0.3);
        r.max_retries = Some(0);
    });
    let start = Instant::now();
    let err = f
        .download(&env.server.url("f.bin"), &expected(&body))
        .await
        .expect_err("too slow");
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(err.to_string().contains("timed out (total)"), "{err}");
}

#[tokio::test]
async fn max_retries_zero_means_a_single_attempt() {
    let body = data(100, 11);
    let env = env(&[("f.bin", body.clone())]).await;
    env.server.set_always("f.bin", Some(Fault::Status(503)));
    let f = factory(&env, |r| r.max_retries = Some(0));
    let err = f
        .download(&env.server.url("f.bin"), &expected(&body))
        .await
        .expect_err("503");
    assert!(err.to_string().contains("HTTP 503"), "{err}");
    assert_eq!(env.server.requests("f.bin"), 1);
    assert_eq!(f.stats().retries(), 0);
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_the_cap() {
    let body = data(100, 12);
    let env = env(&[("f.bin", body.clone())]).await;
    env.server
        .push_faults("f.bin", [Fault::StatusRetryAfter(503, 10)]);
    let mut r = remote(&env.server.url(""));
    r.max_retries = Some(1);
    let s = DownloadSettings {
        retry_base_delay: Duration::from_millis(1),
        retry_max_delay: Duration::from_millis(300),
        ..DownloadSettings::new(env.tmp.path())
    };
    let f = DownloaderFactory::new(&r, s).expect("factory");
    let start = Instant::now();
    f.download(&env.server.url("f.bin"), &expected(&body))
        .await
        .expect("second attempt");
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(280), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn concurrency_is_limited_per_factory() {
    let files: Vec<(String, Vec<u8>)> = (0..8)
        .map(|i| (format!("f{i}.bin"), data(1000, i as u8)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    let env = env(&refs).await;
    env.server.set_delay_all(Some(Duration::from_millis(100)));
    let f = factory(&env, |r| r.download_concurrency = Some(2));
    env.server.reset_max_in_flight();
    let start = Instant::now();
    let downloads = files.iter().map(|(name, body)| {
        let f = f.clone();
        let url = env.server.url(name);
        let exp = expected(body);
        async move { f.download(&url, &exp).await }
    });
    let results = futures::future::join_all(downloads).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(env.server.max_in_flight(), 2);
    // 8 downloads, 2 at a time, 100 ms each.
    assert!(start.elapsed() >= Duration::from_millis(390));
    assert_eq!(load(&f.stats().in_flight), 0);
    assert_eq!(load(&f.stats().completed), 8);
}

#[tokio::test]
async fn rate_limit_spaces_requests() {
    let body = data(10, 13);
    let env = env(&[("f.bin", body.clone())]).await;
    let f = factory(&env, |r| r.rate_limit = Some(20));
    let start = Instant::now();
    let downloads = (0..10).map(|_| {
        let f = f.clone();
        let url = env.server.url("f.bin");
        let exp = expected(&body);
        async move { f.download(&url, &exp).await }
    });
    let results = futures::future::join_all(downloads).await;
    assert!(results.iter().all(Result::is_ok));
    // 10 requests at 20/s: the last one starts 9 intervals (450 ms) after the first.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert_eq!(env.server.requests("f.bin"), 10);
}

#[tokio::test]
async fn basic_auth_and_extra_headers_reach_the_server() {
    let body = data(10, 14);
    let env = env(&[("f.bin", body.clone())]).await;
    let f = factory(&env, |r| {
        r.username = Some("alice".into());
        r.password = Some("s3cret-pw".into());
        r.headers = vec![
            ("X-Token".into(), "abc".into()),
            ("X-Multi".into(), "1".into()),
            ("User-Agent".into(), "custom/1.0".into()),
            ("X-Multi".into(), "2".into()),
        ];
    });
    f.download(&env.server.url("f.bin"), &expected(&body))
        .await
        .expect("download");
    let h = env.server.last_headers("f.bin").expect("headers recorded");
    assert_eq!(h["authorization"], "Basic YWxpY2U6czNjcmV0LXB3");
    assert_eq!(h["x-token"], "abc");
    let multi: Vec<_> = h.get_all("x-multi").iter().collect();
    assert_eq!(multi, ["1", "2"]);
    assert_eq!(h["user-agent"], format!("{USER_AGENT} custom/1.0").as_str());
    assert!(USER_AGENT.starts_with("pulp-rs/"));
    // No compression negotiated: hashed bytes are the server's bytes.
    assert!(h.get("accept-encoding").is_none());

    // Empty password.
    let f = factory(&env, |r| r.username = Some("bob".into()));
    f.download(&env.server.url("f.bin"), &expected(&body))
        .await
        .expect("download");
    let h = env.server.last_headers("f.bin").expect("headers recorded");
    assert_eq!(h["authorization"], "Basic Ym9iOg==");
    assert_eq!(h["user-agent"], USER_AGENT);
}

#[tokio::test]
async fn downloads_go_through_the_proxy_with_its_credentials() {
    let body = data(10, 15);
    let env = env(&[("f.bin", body.clone())]).await;
    // The fixture server answers absolute-form requests, like a forward proxy would.
    let f = factory(&env, |r| {
        r.proxy_url = Some(env.server.url(""));
        r.proxy_username = Some("proxyuser".into());
        r.proxy_password = Some("pr0xy-pw".into());
    });
    let r = f
        .download("http://repo.invalid/f.bin", &expected(&body))
        .await
        .expect("through the proxy");
    assert_eq!(std::fs::read(&r.temp).expect("temp"), body);
    let h = env.server.last_headers("f.bin").expect("headers recorded");
    assert_eq!(h["proxy-authorization"], "Basic cHJveHl1c2VyOnByMHh5LXB3");
}

#[tokio::test]
async fn secrets_never_show() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let secret = "hunter2-very-secret";
    let mut r = remote("http://127.0.0.1:1/repo/");
    r.username = Some("alice".into());
    r.password = Some(secret.into());
    r.proxy_url = Some("http://127.0.0.1:1".into());
    r.proxy_username = Some("p".into());
    r.proxy_password = Some(secret.into());
    r.client_key = Some(secret.into());
    assert!(!format!("{r:?}").contains(secret));

    // Credentials in URLs are refused without echoing them.
    let mut in_url = r.clone();
    in_url.client_key = None;
    in_url.url = format!("http://alice:{secret}@127.0.0.1:1/repo/");
    let err = DownloaderFactory::new(&in_url, settings(tmp.path())).expect_err("creds in URL");
    assert!(matches!(err, DownloadError::Config(_)));
    assert!(!err.to_string().contains(secret) && !format!("{err:?}").contains(secret));
    in_url.url = "http://127.0.0.1:1/repo/".into();
    in_url.proxy_url = Some(format!("http://p:{secret}@127.0.0.1:1"));
    let err = DownloaderFactory::new(&in_url, settings(tmp.path())).expect_err("creds in proxy");
    assert!(!err.to_string().contains(secret) && !format!("{err:?}").contains(secret));

    // An invalid key is a Config error that does not quote the key.
    let mut bad_key = r.clone();
    bad_key.client_cert = Some(TEST_CERT.into());
    let err = DownloaderFactory::new(&bad_key, settings(tmp.path())).expect_err("bad key");
    assert!(matches!(err, DownloadError::Config(_)), "{err:?}");
    assert!(!err.to_string().contains(secret));

    // Connection errors through a dead proxy.
    r.client_key = None;
    r.max_retries = Some(0);
    let f = DownloaderFactory::new(&r, settings(tmp.path())).expect("factory");
    assert!(!format!("{f:?}").contains(secret));
    let err = f
        .download("http://127.0.0.1:1/repo/f.bin", &Expected::default())
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), ErrorKind::Transient, "{err:?}");
    assert!(!err.to_string().contains(secret), "{err}");
    assert!(!format!("{err:?}").contains(secret), "{err:?}");
    let err = f
        .download(
            &format!("http://alice:{secret}@127.0.0.1:1/f.bin"),
            &Expected::default(),
        )
        .await
        .expect_err("creds in a download URL");
    assert!(matches!(err, DownloadError::BadUrl { .. }));
    assert!(!format!("{err:?}").contains(secret), "{err:?}");
    let err = f
        .download(
            &format!("http://alice:{secret}@bad host/f.bin"),
            &Expected::default(),
        )
        .await
        .expect_err("unparsable URL");
    assert!(matches!(err, DownloadError::BadUrl { .. }));
    assert!(!format!("{err:?}").contains(secret), "{err:?}");
}

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

/// Test-only key of [`TEST_CERT`] (self-signed, generated for these tests).
const TEST_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg1+Ls5JzADRG9yLUg
vJ432PGFTA+Senh1kAHU7MP5N5yhRANCAATAmGvaQ7XbldqWraSycQu6M1e+VjSS
1Ii/hBHUXx8kLO2IoJt4M5Y+JSeQVsZoFrpISiV2E+vgs15E7UDtH0Xv
-----END PRIVATE KEY-----
";

#[tokio::test]
async fn tls_options_are_validated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let build = |tweak: &dyn Fn(&mut Remote)| {
        let mut r = remote("https://127.0.0.1:1/repo/");
        tweak(&mut r);
        DownloaderFactory::new(&r, settings(tmp.path()))
    };
    build(&|r| r.ca_cert = Some(TEST_CERT.into())).expect("valid CA");
    build(&|r| {
        r.client_cert = Some(TEST_CERT.into());
        r.client_key = Some(TEST_KEY.into());
    })
    .expect("valid identity");
    build(&|r| r.tls_validation = false).expect("no validation");

    let config_err = |tweak: &dyn Fn(&mut Remote)| match build(tweak) {
        Err(DownloadError::Config(msg)) => msg,
        other => panic!("expected a Config error, got {other:?}"),
    };
    let msg = config_err(&|r| r.ca_cert = Some("not a certificate".into()));
    assert!(msg.contains("ca_cert"), "{msg}");
    let msg = config_err(&|r| {
        r.ca_cert = Some("-----BEGIN CERTIFICATE-----\n@@@\n-----END CERTIFICATE-----\n".into())
    });
    assert!(msg.contains("ca_cert"), "{msg}");
    let msg = config_err(&|r| r.client_cert = Some(TEST_CERT.into()));
    assert!(msg.contains("client_key"), "{msg}");
    let msg = config_err(&|r| {
        r.client_cert = Some("garbage".into());
        r.client_key = Some(TEST_KEY.into());
    });
    assert!(msg.contains("client_cert"), "{msg}");
    assert!(!msg.contains("PRIVATE KEY"));
    let msg = config_err(&|r| r.headers = vec![("Bad Name".into(), "v".into())]);
    assert!(msg.contains("header"), "{msg}");
    let msg = config_err(&|r| r.sock_read_timeout = Some(-1.0));
    assert!(msg.contains("sock_read_timeout"), "{msg}");
}

#[tokio::test]
async fn file_urls_are_read_and_validated() {
    let body = data(2 * 1024 * 1024 + 5, 16);
    let src = tempfile::tempdir().expect("tempdir");
    write_file_repo(src.path(), &[("sub dir/f.bin", body.clone())]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let s = DownloadSettings {
        import_paths: ImportPaths::new(&[src.path()]).expect("import paths"),
        ..settings(tmp.path())
    };
    let f = DownloaderFactory::new(&remote("file:///"), s).expect("factory");

    let url = format!("file://{}/sub%20dir/f.bin", src.path().display());
    let r = f.download(&url, &expected(&body)).await.expect("file://");
    assert_eq!(std::fs::read(&r.temp).expect("temp"), body);
    assert_eq!(r.sha256, sha256_hex(&body));
    assert_eq!(load(&f.stats().requests), 1);
    assert_eq!(load(&f.stats().bytes), body.len() as u64);

    let missing = format!("file://{}/nope.bin", src.path().display());
    let err = f
        .download(&missing, &Expected::default())
        .await
        .expect_err("missing file");
    assert_eq!(err.kind(), ErrorKind::Permanent);
    let text = err.to_string();
    assert!(
        text.contains(&format!("{}/nope.bin", src.path().display())),
        "{text}"
    );
    assert!(text.contains("No such file"), "{text}");
    assert_eq!(load(&f.stats().requests), 2, "no retry of a missing file");

    let wrong = Expected {
        sha256: Some("00".repeat(32)),
        ..expected(&body)
    };
    let err = f.download(&url, &wrong).await.expect_err("bad digest");
    assert_eq!(err.kind(), ErrorKind::Integrity);

    let sneaky = format!(
        "file://{}/sub%20dir/../sub%20dir/f.bin",
        src.path().display()
    );
    let err = f
        .download(&sneaky, &Expected::default())
        .await
        .expect_err("dot-dot");
    assert!(matches!(err, DownloadError::BadUrl { .. }), "{err:?}");
    drop(r);
    assert_eq!(tmp_files(tmp.path()), 0);
}

/// Asserts that `url` is refused as outside the import paths, with no secret in the message.
async fn refused(f: &DownloaderFactory, url: String) -> String {
    let err = f
        .download(&url, &Expected::default())
        .await
        .expect_err(&url);
    assert!(
        matches!(err, DownloadError::NotAllowed { .. }),
        "{url}: {err:?}"
    );
    assert_eq!(err.kind(), ErrorKind::Permanent);
    assert!(!err.to_string().contains("hunter2"), "{err}");
    err.to_string()
}

/// `file://` reads only below the allowed import paths, resolved: no setting refuses every local
/// file, a path outside is refused, and so is a symlink inside that leads outside (the secret
/// file's text appears in no error), while a symlink that stays inside is followed.
#[tokio::test]
async fn file_urls_stay_below_the_allowed_import_paths() {
    const SECRET: &str = "PULP_ADMIN_PASSWORD=hunter2-very-secret";
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = outside.path().join("environ");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("secret");
    let allowed = tempfile::tempdir().expect("tempdir");
    let inside = allowed.path().join("real.bin");
    std::fs::write(&inside, b"inside").expect("inside");
    std::os::unix::fs::symlink(&secret, allowed.path().join("escape")).expect("symlink");
    std::os::unix::fs::symlink(&inside, allowed.path().join("alias")).expect("symlink");
    std::os::unix::fs::symlink(outside.path(), allowed.path().join("dirlink")).expect("symlink");
    let tmp = tempfile::tempdir().expect("tempdir");

    // No setting: nothing local is read, not even the allowed directory's files.
    let none = DownloaderFactory::new(&remote("file:///"), settings(tmp.path())).expect("factory");
    let msg = refused(&none, format!("file://{}", inside.display())).await;
    assert!(msg.contains("allowed_import_paths"), "{msg}");
    refused(&none, "file:///proc/self/environ".into()).await;

    let s = DownloadSettings {
        import_paths: ImportPaths::new(&[allowed.path()]).expect("import paths"),
        ..settings(tmp.path())
    };
    let f = DownloaderFactory::new(&remote("file:///"), s).expect("factory");
    refused(&f, "file:///proc/self/environ".into()).await;
    refused(&f, format!("file://{}", secret.display())).await;
    let msg = refused(&f, format!("file://{}/escape", allowed.path().display())).await;
    assert!(msg.contains("symlink"), "{msg}");
    refused(
        &f,
        format!("file://{}/dirlink/environ", allowed.path().display()),
    )
    .await;

    let ok = f
        .download(
            &format!("file://{}/alias", allowed.path().display()),
            &Expected::default(),
        )
        .await
        .expect("a symlink that stays inside is followed");
    assert_eq!(std::fs::read(&ok.temp).expect("temp"), b"inside");
    drop(ok);
    assert_eq!(tmp_files(tmp.path()), 0);

    // The API-side check agrees, and resolves paths that do not exist yet.
    let paths = ImportPaths::new(&[allowed.path()]).expect("import paths");
    assert!(paths
        .check_url(&format!(
            "file://{}/later/PULP_MANIFEST",
            allowed.path().display()
        ))
        .is_ok());
    assert!(paths
        .check_url(&format!("file://{}/escape", allowed.path().display()))
        .is_err());
    assert!(paths
        .check_url(&format!("file://{}/dirlink/x/y", allowed.path().display()))
        .is_err());
    assert!(paths.check_url("file:///proc/self/environ").is_err());
    assert!(ImportPaths::none()
        .check_url(&format!("file://{}", inside.display()))
        .is_err());
    assert!(paths.check_url("https://example.org/PULP_MANIFEST").is_ok());
    assert!(ImportPaths::new(&["relative/dir"]).is_err());
}

/// A metadata download is capped by `max_metadata_size`, over HTTP (announced or streamed) and
/// from a file, without retries and leaving no temp file.
#[tokio::test]
async fn metadata_downloads_are_capped() {
    let body = data(64 * 1024, 3);
    let env = env(&[("index.bin", body.clone())]).await;
    let s = DownloadSettings {
        max_metadata_size: 1000,
        import_paths: ImportPaths::new(&[env._files.path()]).expect("import paths"),
        ..settings(env.tmp.path())
    };
    let f =
        DownloaderFactory::new(&remote(&env.server.url("index.bin")), s.clone()).expect("factory");
    let err = f
        .download_metadata(&env.server.url("index.bin"))
        .await
        .expect_err("too large");
    assert!(
        matches!(err, DownloadError::TooLarge { limit: 1000, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_metadata_size"), "{err}");
    assert_eq!(load(&f.stats().requests), 1, "not retried");
    let local = format!("file://{}/index.bin", env._files.path().display());
    let err = f.download_metadata(&local).await.expect_err("too large");
    assert!(matches!(err, DownloadError::TooLarge { .. }), "{err:?}");
    // Under the cap it is an ordinary download, and plain downloads are not capped.
    let big = DownloadSettings {
        max_metadata_size: body.len() as u64,
        ..s
    };
    let f = DownloaderFactory::new(&remote(&env.server.url("index.bin")), big).expect("factory");
    let ok = f
        .download_metadata(&env.server.url("index.bin"))
        .await
        .expect("at the cap");
    assert_eq!(ok.size, body.len() as u64);
    drop(ok);
    assert_eq!(tmp_files(env.tmp.path()), 0);
}

#[tokio::test]
async fn unsupported_schemes_are_bad_urls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = DownloaderFactory::new(&remote("ftp://example.com/"), settings(tmp.path()))
        .expect("factory");
    for url in ["ftp://example.com/f.bin", "not a url", "file:relative/path"] {
        let err = f.download(url, &Expected::default()).await.expect_err(url);
        assert!(
            matches!(err, DownloadError::BadUrl { .. }),
            "{url}: {err:?}"
        );
        assert_eq!(err.kind(), ErrorKind::Permanent);
    }
    assert_eq!(load(&f.stats().requests), 0);
}

#[tokio::test]
async fn dropping_a_download_leaves_no_temp_file() {
    let body = data(4 * 1024 * 1024, 17);
    let env = env(&[("big.bin", body.clone())]).await;
    env.server
        .set_always("big.bin", Some(Fault::Stall(Duration::from_secs(30))));
    let f = factory(&env, |_| {});
    let url = env.server.url("big.bin");
    let exp = expected(&body);
    // Boxed so that dropping it drops the future itself (a stack pin would outlive `drop`).
    let mut download = Box::pin(f.download(&url, &exp));

    // Run the download until half the body (2 MiB) has spilled to a temp file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tmp_files(env.tmp.path()) == 0 {
        assert!(Instant::now() < deadline, "no temp file appeared");
        let poll = tokio::time::timeout(Duration::from_millis(20), &mut download).await;
        assert!(poll.is_err(), "the download cannot finish while stalled");
    }
    assert_eq!(load(&f.stats().in_flight), 1);
    drop(download);

    let deadline = Instant::now() + Duration::from_secs(5);
    while tmp_files(env.tmp.path()) != 0 {
        assert!(Instant::now() < deadline, "temp file left behind");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(load(&f.stats().in_flight), 0);
    assert_eq!(load(&f.stats().completed), 0);
}

#[tokio::test]
async fn other_digests_are_checked() {
    let body = data(500, 18);
    let env = env(&[("f.bin", body.clone())]).await;
    let f = factory(&env, |r| r.max_retries = Some(0));
    let mut exp = expected(&body);
    exp.other.sha512 = Some("11".repeat(64));
    let err = f
        .download(&env.server.url("f.bin"), &exp)
        .await
        .expect_err("sha512 mismatch");
    let text = err.to_string();
    assert!(text.contains("sha512 mismatch"), "{text}");
    assert!(text.contains(&hex::encode(Sha512::digest(&body))), "{text}");
}

#[tokio::test]
async fn fixture_server_basics() {
    let env = env(&[("d/x.txt", b"hello".to_vec())]).await;
    let client = reqwest::Client::new();
    let head = client
        .head(env.server.url("d/x.txt"))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "5");
    let manifest = client
        .get(env.server.url("PULP_MANIFEST"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert_eq!(manifest, format!("d/x.txt,{},5\n", sha256_hex(b"hello")));
    // Sent raw: an HTTP client would resolve the dot segments itself.
    assert_eq!(raw_get_status(env.server.addr, "/d/x.txt").await, 200);
    for bad in ["/d/../d/x.txt", "/d/%2e%2e/d/x.txt", "/d", "/nope"] {
        assert_eq!(raw_get_status(env.server.addr, bad).await, 404, "{bad}");
    }
    assert_eq!(env.server.total_requests(), 7);
}

/// Status code of a raw HTTP/1.1 GET of `target`, sent byte for byte.
async fn raw_get_status(addr: std::net::SocketAddr, target: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status line")
}
