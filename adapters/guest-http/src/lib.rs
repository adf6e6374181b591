//! What wharf's HTTP adapters share: a small blocking HTTP client over
//! `wasi:http` (the host decides which hosts it may reach) that sends a
//! body whole ([`Request::send`], [`Request::start`]) or streams it
//! ([`Request::start_body`], [`BodyWriter`]), and the pieces
//! every cloud API needs: percent-encoding, HMAC/SHA-256 (and four SHA-256s
//! at once in SIMD lanes, [`sha256x4`]), dates, base64 and a tiny XML reader for the flat documents S3 and Azure answer with.
//!
//! Nothing here knows the adapter contract: `wharf-guest` (feature `http`)
//! maps [`HttpError`] into the contract's `error`.

mod body;
mod contract;
pub mod encode;
pub mod head;
pub mod random;
mod ranged;
pub mod sha256x4;
pub mod time;
pub mod xml;

pub use body::BodyWriter;
pub use ranged::RangedBody;

use std::fmt;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};

/// Why a request failed before an HTTP status was available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// Worth retrying: the connection was reset or timed out, or the body
    /// ended early. The request may have reached the server.
    Transient,
    /// No connection was made (refused, name not resolved, connect timed
    /// out): nothing was sent, so even a conditional request may be sent
    /// again.
    Unreachable,
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

/// One HTTP request: method, where, headers. The body is passed when
/// sending ([`Request::send`], [`Request::start`]) or streamed
/// ([`Request::start_body`]).
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
    ///
    /// A `GET`, `HEAD` or `DELETE` without a body that fails as `transient`
    /// before any answer is sent once more at once: the usual cause is a
    /// pooled keep-alive connection the server closed just as it was
    /// reused, and these methods may be repeated (RFC 9110, 9.2.2), as
    /// HTTP clients do on their own.
    pub fn send(&self, body: &[u8]) -> Result<Response> {
        let first = self.start(body).and_then(Pending::wait);
        match first {
            Err(e)
                if e.kind == FailKind::Transient
                    && body.is_empty()
                    && matches!(self.method, "GET" | "HEAD" | "DELETE") =>
            {
                self.start(body)?.wait()
            }
            r => r,
        }
    }

    /// Sends the request with `body` and returns without waiting for the
    /// response, so several requests can be in flight at once.
    pub fn start(&self, body: &[u8]) -> Result<Pending> {
        let (mut writer, sent) = self.open(whole_body_length(self.method, body.len()), body)?;
        match writer.write(&body[sent..])? {
            Some(early) => Ok(Pending::answered(early)),
            None => writer.finish(),
        }
    }

    /// Sends the head and returns the body to write a piece at a time:
    /// an upload of any size in bounded memory. With `length`, the head
    /// carries `Content-Length` and the body must be exactly that long;
    /// without, it goes chunked. Dropping the [`BodyWriter`] before
    /// [`BodyWriter::finish`] cancels the request.
    pub fn start_body(&self, length: Option<u64>) -> Result<BodyWriter> {
        self.open(length, &[]).map(|(writer, _)| writer)
    }

    /// Builds the request, puts `first` into its body if it fits the host's
    /// send buffer (so head and body leave together) and hands the request
    /// to the host. Also returns how many bytes of `first` went in.
    fn open(&self, length: Option<u64>, first: &[u8]) -> Result<(BodyWriter, usize)> {
        let what = self.describe();
        let headers = Fields::from_list(&self.fields(length))
            .map_err(|e| HttpError::new(FailKind::Invalid, format!("{what}: invalid header ({e:?})")))?;
        let request = OutgoingRequest::new(headers);
        let scheme = if self.endpoint.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        request
            .set_method(&self.wasi_method())
            .and_then(|()| request.set_scheme(Some(&scheme)))
            .and_then(|()| request.set_authority(Some(&self.endpoint.authority)))
            .and_then(|()| request.set_path_with_query(Some(&self.path_and_query)))
            .map_err(|()| HttpError::new(FailKind::Invalid, format!("{what}: cannot build the request")))?;
        let out = request
            .body()
            .map_err(|()| HttpError::new(FailKind::Invalid, format!("{what}: no request body")))?;
        let stream = out
            .write()
            .map_err(|()| HttpError::new(FailKind::Backend, format!("{what}: no body stream")))?;
        let within = length.is_none_or(|n| first.len() as u64 <= n);
        let sent = if !first.is_empty() && within && body::fits(&stream, first) {
            stream.write(first).map_err(|e| {
                HttpError::new(
                    FailKind::Backend,
                    format!("{what}: buffering the body: {}", body::stream_error(e)),
                )
            })?;
            first.len()
        } else {
            0
        };
        let pending = outgoing_handler::handle(request, None).map_err(|e| transport(&what, &e))?;
        let writer = BodyWriter::new(what, length, sent as u64, stream, out, pending);
        Ok((writer, sent))
    }

    /// The header fields sent: the request's, and `content-length` when
    /// the body's length is known.
    fn fields(&self, length: Option<u64>) -> Vec<(String, Vec<u8>)> {
        let mut fields = Vec::with_capacity(self.headers.len() + 1);
        for (k, v) in &self.headers {
            fields.push((k.clone(), v.as_bytes().to_vec()));
        }
        if let Some(n) = length {
            fields.push(("content-length".to_string(), n.to_string().into_bytes()));
        }
        fields
    }

    fn wasi_method(&self) -> Method {
        match self.method {
            "GET" => Method::Get,
            "PUT" => Method::Put,
            "POST" => Method::Post,
            "HEAD" => Method::Head,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            other => Method::Other(other.to_string()),
        }
    }
}

/// The `Content-Length` of a body sent whole: none for a `GET` or `HEAD`
/// without one.
fn whole_body_length(method: &str, len: usize) -> Option<u64> {
    (len > 0 || !matches!(method, "GET" | "HEAD")).then_some(len as u64)
}

fn transport(what: &str, code: &ErrorCode) -> HttpError {
    let kind = match code {
        ErrorCode::HttpRequestDenied => FailKind::Denied,
        ErrorCode::DnsTimeout
        | ErrorCode::DnsError(_)
        | ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTimeout => FailKind::Unreachable,
        ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
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
        // The host's own words (a proxy that refused, ...).
        ErrorCode::InternalError(Some(why)) => why.clone(),
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
    /// The server answered before the body was sent.
    Answered(Response),
}

impl Pending {
    fn answered(response: Response) -> Pending {
        Pending {
            what: response.what.clone(),
            state: State::Answered(response),
        }
    }

    /// Whether the response head has arrived (so [`Pending::wait`] will not block).
    pub fn is_ready(&self) -> bool {
        match &self.state {
            State::Waiting(pending) => pending.subscribe().ready(),
            State::Answered(_) => true,
        }
    }

    /// Waits for the response head.
    pub fn wait(self) -> Result<Response> {
        let pending = match self.state {
            State::Answered(response) => return Ok(response),
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
        Response::new(self.what, response, None)
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
    /// The unfinished body of a request answered before it ended: dropping
    /// it cancels the request, so it lives as long as the answer is read.
    _request_body: Option<OutgoingBody>,
    expected: Option<u64>,
    received: u64,
}

impl Response {
    fn new(what: String, response: IncomingResponse, request_body: Option<OutgoingBody>) -> Result<Response> {
        let status = response.status();
        let headers = head::headers(response.headers().entries());
        let body = response
            .consume()
            .map_err(|()| HttpError::new(FailKind::Backend, format!("{what}: no response body")))?;
        let stream = body
            .stream()
            .map_err(|()| HttpError::new(FailKind::Backend, format!("{what}: no response body stream")))?;
        let expected = head::expected_length(&what, status, &headers);
        Ok(Response {
            status,
            headers,
            what,
            stream: Some(stream),
            body: Some(body),
            _response: response,
            _request_body: request_body,
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
        head::check_received(&self.what, self.expected, self.received, false)?;
        if self.stream.is_none() {
            self.finish();
            head::check_received(&self.what, self.expected, self.received, true)?;
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
        head::shorten(&self.text(64 << 10).unwrap_or_default(), 600)
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
    fn transport_errors_are_classified() {
        let cases = [
            (ErrorCode::HttpRequestDenied, FailKind::Denied, "grants.http"),
            (
                ErrorCode::ConnectionRefused,
                FailKind::Unreachable,
                "connection refused",
            ),
            (
                ErrorCode::ConnectionTerminated,
                FailKind::Transient,
                "ConnectionTerminated",
            ),
            (ErrorCode::HttpResponseTimeout, FailKind::Transient, "timed out"),
            (ErrorCode::HttpProtocolError, FailKind::Transient, "broke the protocol"),
            (
                ErrorCode::HttpRequestUriInvalid,
                FailKind::Invalid,
                "HttpRequestUriInvalid",
            ),
            (
                ErrorCode::HttpRequestBodySize(Some(3)),
                FailKind::Backend,
                "HttpRequestBodySize",
            ),
            (ErrorCode::TlsCertificateError, FailKind::Backend, "TlsCertificateError"),
        ];
        for (code, kind, text) in cases {
            let e = transport("PUT http://h/p", &code);
            assert_eq!(e.kind, kind, "{code:?}");
            assert!(e.message.starts_with("PUT http://h/p: "), "{}", e.message);
            assert!(e.message.contains(text), "{}", e.message);
        }
    }

    #[test]
    fn content_length_is_sent_when_known() {
        let endpoint = Endpoint::parse("http://127.0.0.1:1").unwrap();
        let request = Request::new("PUT", &endpoint, "/a?sig=secret").header("X-Kind", "model");
        let names = |length| {
            request
                .fields(length)
                .into_iter()
                .map(|(k, v)| format!("{k}={}", String::from_utf8(v).unwrap()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(Some(12)), ["x-kind=model", "content-length=12"]);
        assert_eq!(names(Some(0)), ["x-kind=model", "content-length=0"]);
        assert_eq!(names(None), ["x-kind=model"], "a streamed body goes chunked");
        assert_eq!(request.describe(), "PUT http://127.0.0.1:1/a", "no query in messages");
    }

    #[test]
    fn whole_bodies_announce_their_length() {
        assert_eq!(whole_body_length("GET", 0), None);
        assert_eq!(whole_body_length("HEAD", 0), None);
        assert_eq!(whole_body_length("DELETE", 0), Some(0));
        assert_eq!(whole_body_length("PUT", 0), Some(0));
        assert_eq!(whole_body_length("POST", 5), Some(5));
        assert_eq!(whole_body_length("GET", 2), Some(2));
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
