//! The HTTP(S) downloader: one `reqwest::Client` per factory (one connection pool per remote)
//! configured from the remote's options, and one download attempt (request, status, streamed
//! body into a [`Sink`]). Errors from reqwest are mapped to [`DownloadError`] without URLs of
//! proxies or any credential.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER, USER_AGENT};
use reqwest::{Certificate, Client, Identity, Proxy, StatusCode};
use url::Url;

use super::retry::parse_retry_after;
use super::sink::{Dest, Sink, Written};
use super::{secs, DownloadError, DownloadStats, Failure, Secrets};
use crate::models::{Expected, Remote};

/// Our User-Agent; a remote's own User-Agent header is appended to it.
pub const USER_AGENT_PREFIX: &str = concat!("pulp-rs/", env!("CARGO_PKG_VERSION"));

fn config(msg: impl Into<String>) -> DownloadError {
    DownloadError::Config(msg.into())
}

/// The HTTP side of a factory.
pub(crate) struct HttpDownloader {
    client: Client,
    /// The remote's extra headers, sent with each request (a client's default headers would
    /// keep only one value of a repeated name).
    headers: HeaderMap,
    /// Basic auth of the remote: (username, password).
    auth: Option<(String, String)>,
}

impl std::fmt::Debug for HttpDownloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpDownloader")
            .field("auth", &self.auth.as_ref().map(|(u, _)| (u, "<redacted>")))
            .finish_non_exhaustive()
    }
}

/// Rejects a URL carrying a password, without echoing it.
pub(crate) fn reject_credentials(what: &str, raw: &str) -> Result<(), DownloadError> {
    if let Ok(u) = Url::parse(raw) {
        if u.password().is_some() {
            return Err(config(format!(
                "{what} must not contain credentials; set the username and password options"
            )));
        }
    }
    Ok(())
}

impl HttpDownloader {
    pub(crate) fn new(remote: &Remote) -> Result<HttpDownloader, DownloadError> {
        let (user_agent, headers) = extra_headers(remote)?;
        let mut builder = Client::builder().user_agent(user_agent).no_proxy();

        if let Some(t) = secs("connect_timeout", remote.connect_timeout)? {
            builder = builder.connect_timeout(t);
        }
        if let Some(t) = secs("sock_read_timeout", remote.sock_read_timeout)? {
            builder = builder.read_timeout(t);
        }

        if let Some(proxy_url) = remote.proxy_url.as_deref().filter(|s| !s.is_empty()) {
            reject_credentials("proxy_url", proxy_url)?;
            let parsed = Url::parse(proxy_url)
                .map_err(|e| config(format!("proxy_url is not a valid URL: {e}")))?;
            let mut proxy =
                Proxy::all(parsed).map_err(|_| config("proxy_url is not a usable proxy URL"))?;
            if let Some(user) = &remote.proxy_username {
                proxy = proxy.basic_auth(user, remote.proxy_password.as_deref().unwrap_or(""));
            }
            builder = builder.proxy(proxy);
        }

        if let Some(pem) = remote.ca_cert.as_deref().filter(|s| !s.trim().is_empty()) {
            let certs = Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|e| config(format!("ca_cert: {}", chain(&e))))?;
            if certs.is_empty() {
                return Err(config("ca_cert: no certificate found in the PEM text"));
            }
            builder = builder.tls_certs_merge(certs);
        }

        let cert = remote
            .client_cert
            .as_deref()
            .filter(|s| !s.trim().is_empty());
        let key = remote
            .client_key
            .as_deref()
            .filter(|s| !s.trim().is_empty());
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let pem = format!("{cert}\n{key}\n");
                let identity = Identity::from_pem(pem.as_bytes()).map_err(|_| {
                    config("client_cert/client_key: invalid PEM (need a certificate and a private key)")
                })?;
                builder = builder.identity(identity);
            }
            (Some(_), None) => return Err(config("client_cert is set but client_key is not")),
            (None, Some(_)) => return Err(config("client_key is set but client_cert is not")),
            (None, None) => {}
        }

        if !remote.tls_validation {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }

        let client = builder
            .build()
            .map_err(|e| config(format!("cannot build the HTTP client: {}", chain(&e))))?;
        let auth = remote
            .username
            .as_ref()
            .map(|u| (u.clone(), remote.password.clone().unwrap_or_default()));
        Ok(HttpDownloader {
            client,
            headers,
            auth,
        })
    }

    /// One attempt: GET `url`, stream its body into a fresh sink, validate nothing yet (the
    /// caller checks digests). Fails early when the size is known to be wrong.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn attempt(
        &self,
        url: &Url,
        url_str: &str,
        expected: &Expected,
        dest: Dest<'_>,
        stats: &DownloadStats,
        secrets: &Secrets,
        cap: Option<u64>,
    ) -> Result<Written, Failure> {
        stats.request();
        let sent = std::time::Instant::now();
        let mut request = self.client.get(url.clone()).headers(self.headers.clone());
        if let Some((user, password)) = &self.auth {
            request = request.basic_auth(user, Some(password));
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| Failure::from(send_error(url_str, e, secrets)))?;
        stats.first_byte(sent.elapsed());

        let status = response.status();
        if !status.is_success() {
            let retry_after = if status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE
            {
                response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after)
            } else {
                None
            };
            return Err(Failure {
                error: DownloadError::Status {
                    url: url_str.to_string(),
                    status: status.as_u16(),
                },
                retry_after,
            });
        }

        let content_length = response.content_length();
        if let (Some(want), Some(announced)) = (expected.size, content_length) {
            if want != announced {
                return Err(DownloadError::Size {
                    url: url_str.to_string(),
                    expected: want,
                    actual: announced,
                }
                .into());
            }
        }

        if let (Some(limit), Some(announced)) = (cap, content_length) {
            if announced > limit {
                return Err(DownloadError::TooLarge {
                    url: url_str.to_string(),
                    limit,
                }
                .into());
            }
        }
        let mut sink = Sink::new(
            dest.tmp_dir.to_path_buf(),
            &expected.other,
            content_length.or(expected.size),
        )
        .with_tee(dest.tee)
        .with_cap(cap);
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => return Err(body_error(url_str, sink.received(), e, secrets).into()),
            };
            sink.accept(url_str, &chunk, expected.size, stats).await?;
        }
        if let Some(announced) = content_length {
            if sink.received() < announced {
                return Err(DownloadError::BodyCut {
                    url: url_str.to_string(),
                    received: sink.received(),
                    message: format!("expected {announced} bytes (Content-Length)"),
                }
                .into());
            }
        }
        sink.finish().await.map_err(|e| io_error(url_str, e))
    }
}

fn io_error(url: &str, source: std::io::Error) -> Failure {
    DownloadError::Io {
        url: url.to_string(),
        source,
    }
    .into()
}

/// Our User-Agent with the remote's appended, and the remote's other headers in order (names
/// may repeat).
fn extra_headers(remote: &Remote) -> Result<(HeaderValue, HeaderMap), DownloadError> {
    let mut headers = HeaderMap::new();
    let mut user_agent = USER_AGENT_PREFIX.to_string();
    for (name, value) in &remote.headers {
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| config(format!("headers: invalid header name {name:?}")))?;
        if name == USER_AGENT {
            user_agent.push(' ');
            user_agent.push_str(value.trim());
            continue;
        }
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| config(format!("headers: invalid value for header {name}")))?;
        // Extra headers often carry tokens: keep them out of Debug output.
        value.set_sensitive(true);
        headers.append(name, value);
    }
    let user_agent = HeaderValue::from_str(&user_agent)
        .map_err(|_| config("headers: invalid value for header user-agent"))?;
    Ok((user_agent, headers))
}

/// An error and its sources as one line, without URLs (reqwest's own include them).
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

fn send_error(url: &str, e: reqwest::Error, secrets: &Secrets) -> DownloadError {
    let url = url.to_string();
    if e.is_timeout() {
        let what = if e.is_connect() { "connect" } else { "read" };
        return DownloadError::Timeout { url, what };
    }
    let permanent = e.is_redirect() || e.is_builder();
    let message = secrets.scrub(chain(&e.without_url()));
    if permanent {
        DownloadError::Protocol { url, message }
    } else {
        DownloadError::Connect { url, message }
    }
}

fn body_error(url: &str, received: u64, e: reqwest::Error, secrets: &Secrets) -> DownloadError {
    let url = url.to_string();
    if e.is_timeout() {
        return DownloadError::Timeout { url, what: "read" };
    }
    DownloadError::BodyCut {
        url,
        received,
        message: secrets.scrub(chain(&e.without_url())),
    }
}
