//! What wharf's HTTP adapters share: a small blocking HTTP client over
//! `wasi:http` (the host decides which hosts it may reach), and the pieces
//! every cloud API needs: percent-encoding, HMAC/SHA-256, dates, base64 and
//! a tiny XML reader for the flat documents S3 and Azure answer with.
//!
//! Nothing here knows the adapter contract: each adapter maps [`HttpError`]
//! into its own `error` variant.

pub mod encode;
pub mod random;
pub mod size;
pub mod time;
pub mod xml;

use std::fmt;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    Scheme,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// Why a request failed before an HTTP status was available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// Worth retrying: the connection was refused, reset or timed out, or
    /// the body ended early.
    Transient,
    /// The host refused the destination (not in the backend's `http` grant).
    Denied,
    /// The request could not be built (bad endpoint, header value).
    Invalid,
    /// Anything else the transport reported.
    Backend,
}

/// A transport failure, with a message that names what was being done.
#[derive(Debug, Clone)]
pub struct HttpError {
    /// The class of failure.
    pub kind: FailKind,
    /// What happened, for people.
    pub message: String,
}

impl HttpError {
    fn new(kind: FailKind, message: impl Into<String>) -> Self {
        HttpError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Result of this crate's operations.
pub type Result<T> = std::result::Result<T, HttpError>;

/// Where a service lives: `http(s)://host[:port][/base/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `true` for https.
    pub https: bool,
    /// `host[:port]` as written (lower-cased).
    pub authority: String,
    /// A path prefix without trailing slash, `""` for none.
    pub base_path: String,
}

impl Endpoint {
    /// Parses an endpoint URL; query strings and user info are refused.
    pub fn parse(url: &str) -> std::result::Result<Endpoint, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("endpoint `{url}` is not a URL (expected http(s)://host[:port])"))?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            other => return Err(format!("endpoint `{url}`: scheme `{other}` is not http or https")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains('@') || authority.contains('?') || authority.contains('#') {
            return Err(format!("endpoint `{url}` has no usable host"));
        }
        if path.contains('?') || path.contains('#') {
            return Err(format!("endpoint `{url}` must not have a query or fragment"));
        }
        Ok(Endpoint {
            https,
            authority: authority.to_ascii_lowercase(),
            base_path: path.trim_end_matches('/').to_string(),
        })
    }

    /// The authority without a default port (`:80` for http, `:443` for
    /// https), the way clients send the `Host` header.
    pub fn host_header(&self) -> &str {
        let default = if self.https { ":443" } else { ":80" };
        self.authority.strip_suffix(default).unwrap_or(&self.authority)
    }

    /// The URL text of this endpoint, for messages.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            if self.https { "https" } else { "http" },
            self.authority,
            self.base_path
        )
    }
}

/// One HTTP request: method, where, headers. The body is passed when sending.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `PUT`, ...
    pub method: &'static str,
    /// Scheme and authority.
    pub endpoint: Endpoint,
    /// The path (already percent-encoded) and query, starting with `/`.
    pub path_and_query: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// A request for `path_and_query` on `endpoint`, with no headers.
    pub fn new(method: &'static str, endpoint: &Endpoint, path_and_query: impl Into<String>) -> Request {
        Request {
            method,
            endpoint: endpoint.clone(),
            path_and_query: path_and_query.into(),
            headers: Vec::new(),
        }
    }

    /// Adds a header (the name is lower-cased).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Adds a header in place.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
    }

    /// `METHOD url`, for error messages. The query is left out: it may
    /// carry a signature or token.
    pub fn describe(&self) -> String {
        let path = self.path_and_query.split('?').next().unwrap_or("");
        let scheme = if self.endpoint.https { "https" } else { "http" };
        format!("{} {scheme}://{}{path}", self.method, self.endpoint.authority)
    }

    /// Sends the request with `body` and waits for the response head.
    pub fn send(&self, body: &[u8]) -> Result<Response> {
        self.start(body)?.wait()
    }

    /// Sends the request with `body` and returns without waiting for the
    /// response, so several requests can be in flight at once.
    pub fn start(&self, body: &[u8]) -> Result<Pending> {
        let what = self.describe();
        let mut fields = Vec::with_capacity(self.headers.len() + 1);
        for (k, v) in &self.headers {
            fields.push((k.clone(), v.as_bytes().to_vec()));
        }
        if !body.is_empty() || !matches!(self.method, "GET" | "HEAD") {
            fields.push(("content-length".to_string(), body.len().to_string().into_bytes()));
        }
        let headers = Fields::from_list(&fields)
            .map_err(|e| HttpError::new(FailKind::Invalid, format!("{what}: invalid header ({e:?})")))?;
        let request = OutgoingRequest::new(headers);
        let method = match self.method {
            "GET" => Method::Get,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "HEAD" => Method::Head,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_string()),
        };
        let scheme = if self.endpoint.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        request
            .set_method(&method)
            .and_then(|()| request.set_scheme(Some(&scheme)))
            .and_then(|()| request.set_authority(Some(&self.endpoint.authority)))
            .and_then(|()| request.set_path_with_query(Some(&self.path_and_query)))
            .map_err(|()| HttpError::new(FailKind::Invalid, format!("{what}: cannot build the request")))?;
        let out = request
            .body()
            .map_err(|()| HttpError::new(FailKind::Invalid, format!("{what}: no request body")))?;
        let stream = match body.is_empty() {
            true => None,
            false => Some(
                out.write()
                    .map_err(|()| HttpError::new(FailKind::Backend, format!("{what}: no body stream")))?,
            ),
        };
        // A body that fits the host's send buffer goes in before the request
        // starts, so head and body leave together; a larger one streams
        // while the request is under way.
        let early = stream.as_ref().is_some_and(|s| fits(s, body));
        if let (true, Some(s)) = (early, &stream) {
            s.write(body).map_err(|e| {
                HttpError::new(
                    FailKind::Backend,
                    format!("{what}: buffering the body: {}", stream_error(e)),
                )
            })?;
        }
        let pending = outgoing_handler::handle(request, None).map_err(|e| transport(&what, &e))?;
        let result = match (&stream, early) {
            (None, _) => Ok(()),
            (Some(s), true) => s.blocking_flush().map_err(stream_error),
            (Some(s), false) => write_body(s, body),
        };
        drop(stream);
        if let Err(e) = result {
            // The server may have answered already (an early 403, 413, ...):
            // that answer says more than the closed stream.
            drop(out);
            pending.subscribe().block();
            return match pending.get() {
                Some(Ok(Ok(response))) => Ok(Pending {
                    what,
                    state: State::Ready(response),
                }),
                Some(Ok(Err(code))) => Err(transport(&what, &code)),
                _ => Err(HttpError::new(
                    FailKind::Transient,
                    format!("{what}: sending the body failed: {e}"),
                )),
            };
        }
        OutgoingBody::finish(out, None).map_err(|e| transport(&what, &e))?;
        Ok(Pending {
            what,
            state: State::Waiting(pending),
        })
    }
}

/// Whether the stream takes `body` whole without blocking.
fn fits(stream: &OutputStream, body: &[u8]) -> bool {
    stream.check_write().is_ok_and(|permit| permit >= body.len() as u64)
}

fn stream_error(e: StreamError) -> String {
    match e {
        StreamError::Closed => "the connection closed".to_string(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

/// Writes `body` into the request's body stream as fast as it drains.
fn write_body(stream: &OutputStream, body: &[u8]) -> std::result::Result<(), String> {
    let failed = stream_error;
    let mut rest = body;
    while !rest.is_empty() {
        let permit = match stream.check_write().map_err(failed)? {
            0 => {
                stream.subscribe().block();
                continue;
            }
            n => n.min(rest.len() as u64) as usize,
        };
        stream.write(&rest[..permit]).map_err(failed)?;
        rest = &rest[permit..];
    }
    stream.blocking_flush().map_err(failed)
}

fn transport(what: &str, code: &ErrorCode) -> HttpError {
    let kind = match code {
        ErrorCode::HttpRequestDenied => FailKind::Denied,
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::HttpResponseIncomplete
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::HttpProtocolError => FailKind::Transient,
        ErrorCode::HttpRequestUriInvalid | ErrorCode::HttpRequestMethodInvalid => FailKind::Invalid,
        _ => FailKind::Backend,
    };
    let why = match code {
        ErrorCode::HttpRequestDenied => "the host does not grant this destination (add it to grants.http)".to_string(),
        ErrorCode::ConnectionRefused => "connection refused".to_string(),
        ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => "timed out".to_string(),
        ErrorCode::HttpProtocolError => "the connection failed or the server broke the protocol".to_string(),
        other => format!("{other:?}"),
    };
    HttpError::new(kind, format!("{what}: {why}"))
}

/// A request on its way: the body is sent, the response is not read yet.
pub struct Pending {
    what: String,
    state: State,
}

enum State {
    Waiting(FutureIncomingResponse),
    Ready(IncomingResponse),
}

impl Pending {
    /// Whether the response head has arrived (so [`Pending::wait`] will not block).
    pub fn is_ready(&self) -> bool {
        match &self.state {
            State::Waiting(pending) => pending.subscribe().ready(),
            State::Ready(_) => true,
        }
    }

    /// Waits for the response head.
    pub fn wait(self) -> Result<Response> {
        let pending = match self.state {
            State::Ready(response) => return Response::new(self.what, response),
            State::Waiting(pending) => pending,
        };
        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(r))) => r,
            Some(Ok(Err(code))) => return Err(transport(&self.what, &code)),
            Some(Err(())) | None => {
                return Err(HttpError::new(FailKind::Backend, format!("{}: no response", self.what)));
            }
        };
        Response::new(self.what, response)
    }
}

/// A response: status, headers, and a body read as a stream.
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    headers: Vec<(String, String)>,
    what: String,
    // Field order is drop order: the stream before its body, the body
    // before the response that owns it.
    stream: Option<InputStream>,
    body: Option<IncomingBody>,
    _response: IncomingResponse,
    expected: Option<u64>,
    received: u64,
}

impl Response {
    fn new(what: String, response: IncomingResponse) -> Result<Response> {
        let status = response.status();
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), String::from_utf8_lossy(&v).into_owned()))
            .collect::<Vec<_>>();
        let body = response
            .consume()
            .map_err(|()| HttpError::new(FailKind::Backend, format!("{what}: no response body")))?;
        let stream = body
            .stream()
            .map_err(|()| HttpError::new(FailKind::Backend, format!("{what}: no response body stream")))?;
        let expected = if what.starts_with("HEAD ") || status == 204 || status == 304 {
            Some(0)
        } else {
            headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.trim().parse().ok())
        };
        Ok(Response {
            status,
            headers,
            what,
            stream: Some(stream),
            body: Some(body),
            _response: response,
            expected,
            received: 0,
        })
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All headers, names lower-cased.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// `METHOD url` of the request this answers.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The body's length as announced by `Content-Length`.
    pub fn content_length(&self) -> Option<u64> {
        self.expected
    }

    /// Reads up to `max` bytes of the body; `None` at its end. A body that
    /// ends before its `Content-Length` is a transient error, never a short
    /// object.
    pub fn read(&mut self, max: usize) -> Result<Option<Vec<u8>>> {
        let Some(stream) = &self.stream else { return Ok(None) };
        let mut buf: Vec<u8> = Vec::new();
        while buf.len() < max {
            let want = (max - buf.len()) as u64;
            // Block only while nothing is gathered yet; then take what is there.
            let got = if buf.is_empty() {
                stream.blocking_read(want)
            } else {
                stream.read(want)
            };
            match got {
                Ok(bytes) if bytes.is_empty() => {
                    if !buf.is_empty() {
                        break;
                    }
                }
                Ok(bytes) => {
                    if buf.is_empty() && bytes.len() >= max / 2 {
                        buf = bytes;
                    } else {
                        buf.extend_from_slice(&bytes);
                    }
                }
                Err(StreamError::Closed) => {
                    self.stream = None;
                    break;
                }
                Err(StreamError::LastOperationFailed(e)) => {
                    self.stream = None;
                    return Err(HttpError::new(
                        FailKind::Transient,
                        format!(
                            "{}: the body broke off after {} bytes: {}",
                            self.what,
                            self.received + buf.len() as u64,
                            e.to_debug_string()
                        ),
                    ));
                }
            }
        }
        self.received += buf.len() as u64;
        if let Some(expected) = self.expected
            && self.received > expected
        {
            return Err(HttpError::new(
                FailKind::Backend,
                format!("{}: the body is longer than its Content-Length {expected}", self.what),
            ));
        }
        if self.stream.is_none() {
            self.finish();
            if let Some(expected) = self.expected
                && self.received < expected
            {
                return Err(HttpError::new(
                    FailKind::Transient,
                    format!(
                        "{}: the body ended after {} of {expected} bytes",
                        self.what, self.received
                    ),
                ));
            }
        }
        if buf.is_empty() { Ok(None) } else { Ok(Some(buf)) }
    }

    fn finish(&mut self) {
        self.stream = None;
        if let Some(body) = self.body.take() {
            let trailers = IncomingBody::finish(body);
            trailers.subscribe().block();
            let _ = trailers.get();
        }
    }

    /// The whole body, refusing more than `limit` bytes.
    pub fn bytes(mut self, limit: usize) -> Result<Vec<u8>> {
        let mut all = Vec::new();
        while let Some(chunk) = self.read(256 << 10)? {
            if all.len() + chunk.len() > limit {
                return Err(HttpError::new(
                    FailKind::Backend,
                    format!("{}: the response is larger than {limit} bytes", self.what),
                ));
            }
            all.extend_from_slice(&chunk);
        }
        Ok(all)
    }

    /// The whole body as text (lossy), at most `limit` bytes.
    pub fn text(self, limit: usize) -> Result<String> {
        self.bytes(limit).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Reads the body to its end (so the connection can be reused) and
    /// drops it; errors are ignored.
    pub fn discard(mut self) {
        while let Ok(Some(_)) = self.read(256 << 10) {}
    }

    /// The body of an error response, shortened for a message.
    pub fn error_text(self) -> String {
        let text = self.text(64 << 10).unwrap_or_default();
        let text = text.trim();
        if text.len() > 600 {
            let mut cut = 600;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}…", &text[..cut])
        } else {
            text.to_string()
        }
    }
}

/// Whether a status means "try again later": 408, 429 and 5xx (except 501
/// Not Implemented and 505, which will not change).
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429) || (status >= 500 && status != 501 && status != 505)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let e = Endpoint::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(
            (e.https, e.authority.as_str(), e.base_path.as_str()),
            (false, "127.0.0.1:9000", "")
        );
        let e = Endpoint::parse("HTTPS://Acct.blob.core.windows.net:443/devstore/").unwrap();
        assert_eq!(e.authority, "acct.blob.core.windows.net:443");
        assert_eq!(e.host_header(), "acct.blob.core.windows.net");
        assert_eq!(e.base_path, "/devstore");
        for bad in ["s3.amazonaws.com", "ftp://x", "http://", "http://u@h", "http://h/p?q=1"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn transient_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 409, 412, 501] {
            assert!(!is_transient_status(s), "{s}");
        }
    }
}
