//! Outgoing HTTP for adapters: an allowlist checked on every request, sent
//! through one pooled client shared by all backends of a host.

use crate::error::{Error, Result};
use http::Uri;
use http_body_util::BodyExt;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// Waiting for the first response byte longer than this fails the request,
/// unless the guest asked for another timeout. It counts from the last byte
/// of the request body the server took: a 10 GiB upload streaming for an
/// hour is not cut at two minutes, a server that stopped reading is.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One allowed destination: `scheme://host:port`, where `scheme` may be `*`
/// (http or https), `host` may be `*` or `*.suffix`, and `port` may be `*`
/// or left out for the scheme's default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: String,
    port: Option<u16>,
    any_port: bool,
}

impl AllowedHost {
    /// Parses `https://*.example.com`, `http://127.0.0.1:9000`, ...
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::config(format!("allowed host `{s}` {why}"));
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| bad("needs a scheme (`https://...`)"))?;
        let scheme = match scheme {
            "http" | "https" => Some(scheme.to_string()),
            "*" => None,
            _ => return Err(bad("has a scheme other than http, https or *")),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.is_empty() {
            return Err(bad("must be scheme://host[:port], without path or user"));
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
            _ => (rest, None),
        };
        let (port, any_port) = match port {
            None => (None, false),
            Some("*") => (None, true),
            Some(p) => (Some(p.parse::<u16>().map_err(|_| bad("has an invalid port"))?), false),
        };
        if host.is_empty() || (host.contains('*') && host != "*" && !host.starts_with("*.")) {
            return Err(bad("has an invalid host pattern (use `*` or `*.suffix`)"));
        }
        Ok(AllowedHost {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            any_port,
        })
    }

    /// Whether a request to `uri` is allowed by this entry.
    pub fn permits(&self, uri: &Uri) -> bool {
        let Some(scheme) = uri.scheme_str() else { return false };
        if !matches!(scheme, "http" | "https") || self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let Some(host) = uri.host() else { return false };
        let host = host.to_ascii_lowercase();
        let host_ok = match self.host.strip_prefix("*.") {
            _ if self.host == "*" => true,
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
            None => host == self.host,
        };
        let port = uri.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        let port_ok = self.any_port
            || match self.port {
                Some(p) => p == port,
                None => port == if scheme == "https" { 443 } else { 80 },
            };
        host_ok && port_ok
    }
}

/// The pooled HTTP client adapters' requests go through: keep-alive
/// connections reused across requests and across instances, TLS with the
/// system's roots, through the environment's proxy if it names one
/// ([`super::proxy`]).
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<hyper_rustls::HttpsConnector<super::proxy::ProxyConnector>, WasiBody>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpClient")
    }
}

impl HttpClient {
    /// A client with a connection pool of `max_idle_per_host` connections.
    pub fn new(max_idle_per_host: usize) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        // Name the crypto provider: an embedding program may link rustls with
        // another provider too, and then there is no process default.
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_provider_and_native_roots(ring_provider()) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("no system TLS roots ({e}); HTTPS to adapters' hosts will fail");
                let roots = rustls_empty_roots();
                hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(roots)
            }
        };
        let matcher = hyper_util::client::proxy::matcher::Matcher::from_env();
        if let Some(proxy) = super::proxy::ProxyConnector::describe(&matcher) {
            tracing::info!(%proxy, "adapters' HTTP requests go through a proxy (HTTPS_PROXY/HTTP_PROXY)");
        }
        let connector = builder
            .https_or_http()
            .enable_http1()
            .wrap_connector(super::proxy::ProxyConnector::new(http, matcher));
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(max_idle_per_host)
            .build(connector);
        HttpClient { inner }
    }
}

impl HttpClient {
    /// One request of the host's own (a credential exchange), not an
    /// adapter's: the whole body in, at most `limit` bytes of answer out,
    /// all within `timeout`. The error says what failed, without the URL
    /// (the caller names the endpoint).
    pub(crate) async fn exchange(
        &self,
        request: http::Request<bytes::Bytes>,
        timeout: Duration,
        limit: usize,
    ) -> std::result::Result<(http::StatusCode, http::HeaderMap, bytes::Bytes), ExchangeError> {
        use http_body_util::Full;
        let request = request.map(|b| {
            Full::new(b)
                .map_err(|never: std::convert::Infallible| match never {})
                .boxed_unsync()
        });
        let client = self.inner.clone();
        let work = async move {
            let response = client.request(request).await.map_err(|e| {
                if let Some(why) = through_proxy(&e) {
                    ExchangeError::Unreachable(why)
                } else if e.is_connect() {
                    ExchangeError::Unreachable(format!("no connection ({})", root_cause(&e)))
                } else {
                    ExchangeError::Failed(format!("the exchange failed ({})", root_cause(&e)))
                }
            })?;
            let (parts, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| ExchangeError::Failed(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok((parts.status, parts.headers, body))
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| ExchangeError::Unreachable(format!("no answer within {timeout:?}")))?
    }
}

/// Why one of the host's own requests failed.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    /// Nothing was answered: no connection, or no answer in time.
    Unreachable(String),
    /// The exchange broke half-way or its answer was too large.
    Failed(String),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Unreachable(s) | ExchangeError::Failed(s) => f.write_str(s),
        }
    }
}

/// The innermost cause of an error, which says what actually happened.
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        last = c.to_string();
        cause = c.source();
    }
    last
}

fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn rustls_empty_roots() -> rustls::ClientConfig {
    rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
}

/// The HTTP grant of one backend: its allowlist and the shared client.
#[derive(Clone)]
pub struct HttpGrant {
    backend: Arc<str>,
    allowed: Arc<[AllowedHost]>,
    client: HttpClient,
    redactor: super::Redactor,
}

impl HttpGrant {
    pub(crate) fn new(
        backend: Arc<str>,
        allowed: Vec<AllowedHost>,
        client: HttpClient,
        redactor: super::Redactor,
    ) -> Self {
        HttpGrant {
            backend,
            allowed: allowed.into(),
            client,
            redactor,
        }
    }

    fn permits(&self, uri: &Uri) -> bool {
        self.allowed.iter().any(|a| a.permits(uri))
    }
}

type IoFuture = Box<dyn Future<Output = std::result::Result<(), HttpError>> + Send>;

/// How many 1 MiB writes of a request body the host buffers. An adapter
/// hands over a whole 8 MiB part without waiting for the network, and can
/// start the next part: that is what lets several parts be in flight. Host
/// memory per request body is bounded by this many MiB.
const BODY_BUFFER_CHUNKS: usize = 8;

impl WasiHttpHooks for HttpGrant {
    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        BODY_BUFFER_CHUNKS
    }

    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: IoFuture,
    ) -> Box<dyn Future<Output = std::result::Result<(http::Response<WasiBody>, IoFuture), HttpError>> + Send> {
        let uri = request.uri();
        // Log the destination only: query strings may carry signatures.
        let dest = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or("?"),
            uri.authority().map_or("?", |a| a.as_str())
        );
        if !self.permits(uri) {
            // The guest chose this host name: it may carry a secret.
            let dest = self.redactor.apply(&dest);
            tracing::warn!(backend = %self.backend, destination = %dest, "HTTP request denied: not in allowed_hosts");
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        tracing::debug!(backend = %self.backend, destination = %dest, method = %request.method(), "HTTP request");
        let client = self.client.inner.clone();
        let first_byte = options.and_then(|o| o.first_byte_timeout).unwrap_or(FIRST_BYTE_TIMEOUT);
        Box::new(async move {
            let progress = Progress::new();
            let request = request.map(|body| {
                Tracked {
                    inner: body,
                    progress: progress.clone(),
                }
                .boxed_unsync()
            });
            let mut send = std::pin::pin!(client.request(request));
            let response = loop {
                let deadline = progress.last() + first_byte;
                match tokio::time::timeout_at(deadline.into(), &mut send).await {
                    Ok(r) => break r,
                    // The body moved on meanwhile: wait from its last byte.
                    Err(_) if progress.last() + first_byte > std::time::Instant::now() => {}
                    Err(_) => return Err(HttpError::ConnectionReadTimeout),
                }
            };
            let response = response.map_err(|e| {
                if let Some(why) = through_proxy(&e) {
                    // The proxy's own answer (407, 502...), named.
                    HttpError::InternalError(Some(why))
                } else if e.is_connect() {
                    HttpError::ConnectionRefused
                } else {
                    HttpError::HttpProtocolError
                }
            })?;
            let response = response.map(|body| body.map_err(HttpError::from).boxed_unsync());
            Ok((response, Box::new(async { Ok(()) }) as IoFuture))
        })
    }
}

/// When a request last made progress: created, or a frame of its body taken.
#[derive(Clone)]
struct Progress {
    base: std::time::Instant,
    /// Nanoseconds after `base`.
    at: Arc<std::sync::atomic::AtomicU64>,
}

impl Progress {
    fn new() -> Self {
        Progress {
            base: std::time::Instant::now(),
            at: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let nanos = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.at.fetch_max(nanos, std::sync::atomic::Ordering::Relaxed);
    }

    fn last(&self) -> std::time::Instant {
        self.base + Duration::from_nanos(self.at.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// A request body that marks its progress each time the connection takes a
/// frame (hyper asks for the next one only as the socket accepts bytes).
struct Tracked {
    inner: WasiBody,
    progress: Progress,
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if polled.is_ready() {
            self.progress.touch();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The message of a connection that failed at the proxy, if it did.
fn through_proxy(e: &hyper_util::client::legacy::Error) -> Option<String> {
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if text.starts_with(super::proxy::FAILED_AT_PROXY) {
            return Some(text);
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    /// A server for one request: reads its head, then the body 64 KiB at a
    /// time with a pause after each (or stops reading after `stop_after`
    /// bytes and holds the connection), then answers 200.
    fn slow_reader(pause: Duration, stop_after: Option<usize>) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if c.read(&mut byte).unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let (mut got, mut buf) = (0, vec![0u8; 64 << 10]);
            while got < len {
                if stop_after.is_some_and(|s| got >= s) {
                    std::thread::sleep(Duration::from_secs(10));
                    return;
                }
                let want = buf.len().min(len - got);
                match c.read(&mut buf[..want]) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += n,
                }
                std::thread::sleep(pause);
            }
            let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        });
        format!("http://{addr}/upload")
    }

    /// PUTs `chunks` × 64 KiB through the grant's hook with a 1.5 s
    /// first-byte timeout. Progress is what the connection takes: the last
    /// few MiB sit in the loopback's socket buffers until the server reads
    /// them, which it must do within the timeout.
    async fn put(url: &str, chunks: usize) -> std::result::Result<u16, HttpError> {
        let mut grant = HttpGrant::new(
            "test".into(),
            vec![AllowedHost::parse("http://127.0.0.1:*").unwrap()],
            HttpClient::new(1),
            super::super::Redactor::default(),
        );
        let chunk = bytes::Bytes::from(vec![7u8; 64 << 10]);
        let frames =
            futures::stream::iter((0..chunks).map(move |_| Ok::<_, HttpError>(http_body::Frame::data(chunk.clone()))));
        let body = http_body_util::StreamBody::new(frames).boxed_unsync();
        let request = http::Request::put(url)
            .header("content-length", chunks * (64 << 10))
            .body(body)
            .unwrap();
        let options = RequestOptions {
            first_byte_timeout: Some(Duration::from_millis(1500)),
            ..Default::default()
        };
        let sent = grant.send_request(request, Some(options), Box::new(async { Ok(()) }));
        let (response, _) = Box::into_pin(sent).await?;
        Ok(response.status().as_u16())
    }

    #[tokio::test]
    async fn an_upload_longer_than_the_first_byte_timeout_is_not_cut_while_it_moves() {
        // 128 MiB read at most 64 KiB per 2 ms: over 4 s, three times the
        // timeout.
        let url = slow_reader(Duration::from_millis(2), None);
        let started = std::time::Instant::now();
        assert_eq!(put(&url, 2048).await.unwrap(), 200);
        assert!(started.elapsed() > Duration::from_secs(3), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_server_that_stops_reading_times_out() {
        // 64 MiB: more than the loopback socket buffers hold.
        let url = slow_reader(Duration::ZERO, Some(1 << 20));
        let started = std::time::Instant::now();
        let e = put(&url, 1024).await.unwrap_err();
        assert!(matches!(e, HttpError::ConnectionReadTimeout), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    }

    #[test]
    fn exact_host_and_default_port() {
        let a = AllowedHost::parse("https://s3.amazonaws.com").unwrap();
        assert!(a.permits(&uri("https://s3.amazonaws.com/bucket/key")));
        assert!(a.permits(&uri("https://s3.amazonaws.com:443/x")));
        assert!(!a.permits(&uri("https://s3.amazonaws.com:8443/x")));
        assert!(!a.permits(&uri("http://s3.amazonaws.com/x")));
        assert!(!a.permits(&uri("https://evil.com/x")));
        assert!(!a.permits(&uri("https://s3.amazonaws.com.evil.com/x")));
    }

    #[test]
    fn wildcards() {
        let a = AllowedHost::parse("https://*.blob.core.windows.net").unwrap();
        assert!(a.permits(&uri("https://acct.blob.core.windows.net/c/b")));
        assert!(!a.permits(&uri("https://blob.core.windows.net/c/b")));
        assert!(!a.permits(&uri("https://acct.blob.core.windows.net.evil/c")));
        let b = AllowedHost::parse("http://127.0.0.1:*").unwrap();
        assert!(b.permits(&uri("http://127.0.0.1:9000/")));
        assert!(!b.permits(&uri("http://127.0.0.2:9000/")));
        let c = AllowedHost::parse("*://localhost:10000").unwrap();
        assert!(c.permits(&uri("http://localhost:10000/")));
        assert!(c.permits(&uri("https://LOCALHOST:10000/")));
    }

    #[test]
    fn malformed_entries_are_rejected() {
        for bad in [
            "s3.amazonaws.com",
            "ftp://x",
            "https://a/b",
            "https://a:notaport",
            "https://a*b.com",
            "https://u@h",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad} must be rejected");
        }
    }
}
