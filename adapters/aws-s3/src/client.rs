//! The S3 client: configuration, signed requests, error mapping and the
//! single-request operations.

use crate::sigv4::{self, Credentials, Signable, UNSIGNED_PAYLOAD};
use wharf_guest::config::Table;
use wharf_guest::{ByteRange, Error, ObjectMeta, Page, PutMode};
use wharf_guest_http::encode::{hex, sha256, uri_decode, uri_encode};
use wharf_guest_http::{Endpoint, Request, Response, is_transient_status, time, xml};

const MIN_PART: u64 = 5 << 20;
const MAX_PART: u64 = 5 << 30;
/// The most `CopyObject` copies in one request.
const MAX_COPY: u64 = 5 << 30;

/// A configured bucket.
#[derive(Clone)]
pub struct S3 {
    endpoint: Endpoint,
    region: String,
    bucket: String,
    path_style: bool,
    prefix: String,
    creds: Option<Credentials>,
    sign_payload: bool,
    /// Multipart part size.
    pub part_size: u64,
    /// Parts uploading at once.
    pub max_in_flight: usize,
}

const KEYS: &[&str] = &[
    "bucket",
    "region",
    "endpoint",
    "path_style",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "prefix",
    "part_size",
    "max_in_flight",
    "payload_signing",
];

impl S3 {
    /// Reads the `config` table; every problem is `invalid`, naming the key.
    pub fn open(config: Vec<(String, String)>) -> Result<S3, Error> {
        let mut get = Table::parse(config, KEYS)?;
        let bucket = get
            .take("bucket")
            .filter(|b| !b.is_empty())
            .ok_or_else(|| Error::Invalid("config key `bucket` is required".into()))?;
        if bucket.contains('/') {
            return Err(Error::Invalid(format!("`bucket` `{bucket}` must not contain `/`")));
        }
        let region = get.take("region").unwrap_or_else(|| "us-east-1".into());
        let (endpoint, custom) = match get.take("endpoint") {
            Some(url) => (
                Endpoint::parse(&url).map_err(|e| Error::Invalid(format!("`endpoint`: {e}")))?,
                true,
            ),
            None => (
                Endpoint::parse(&format!("https://s3.{region}.amazonaws.com")).map_err(Error::Invalid)?,
                false,
            ),
        };
        let path_style = get.take_bool("path_style")?.unwrap_or(custom);
        let creds = match (get.take("access_key_id"), get.take("secret_access_key")) {
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Some(Credentials {
                access_key_id: id,
                secret_access_key: secret,
                session_token: get.take("session_token").filter(|t| !t.is_empty()),
            }),
            (None, None) => None,
            _ => {
                return Err(Error::Invalid(
                    "set both `access_key_id` and `secret_access_key`, or neither for anonymous access".into(),
                ));
            }
        };
        if creds.is_none() && get.contains("session_token") {
            return Err(Error::Invalid(
                "`session_token` needs `access_key_id` and `secret_access_key`".into(),
            ));
        }
        let prefix = get.take("prefix").unwrap_or_default();
        if prefix.starts_with('/') || prefix.split('/').any(|s| s == "..") {
            return Err(Error::Invalid(format!(
                "`prefix` `{prefix}` must be relative, without `..`"
            )));
        }
        let part_size = get.take_size("part_size")?.unwrap_or(8 << 20);
        if !(MIN_PART..=MAX_PART).contains(&part_size) {
            return Err(Error::Invalid(format!(
                "`part_size` {part_size} is outside S3's 5 MiB to 5 GiB"
            )));
        }
        let max_in_flight = match get.take("max_in_flight") {
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| Error::Invalid(format!("`max_in_flight` `{v}` is not a number from 1 to 64")))?,
            None => 4,
        };
        let sign_payload = match get.take("payload_signing").as_deref() {
            None | Some("auto") => !endpoint.https,
            Some("signed") => true,
            Some("unsigned") => false,
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "`payload_signing` `{other}` is not auto, signed or unsigned"
                )));
            }
        };
        Ok(S3 {
            endpoint,
            region,
            bucket,
            path_style,
            prefix,
            creds,
            sign_payload,
            part_size,
            max_in_flight,
        })
    }

    /// The object key of a contract path.
    pub fn key(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// A signed request for `key` (or the bucket when `None`).
    pub fn request(
        &self,
        method: &'static str,
        key: Option<&str>,
        query: &[(&str, String)],
        mut headers: Vec<(String, String)>,
        body: &[u8],
    ) -> Request {
        let mut endpoint = self.endpoint.clone();
        let mut path = endpoint.base_path.clone();
        if self.path_style {
            path.push('/');
            path.push_str(&uri_encode(&self.bucket, false));
        } else {
            endpoint.authority = format!("{}.{}", self.bucket, endpoint.authority);
        }
        path.push('/');
        if let Some(key) = key {
            path.push_str(&uri_encode(key, true));
        }
        if let Some(creds) = &self.creds {
            let payload_hash = if self.sign_payload || body.is_empty() {
                hex(&sha256(body))
            } else {
                UNSIGNED_PAYLOAD.to_string()
            };
            sigv4::sign(
                creds,
                &self.region,
                time::now_secs(),
                Signable {
                    method,
                    host: endpoint.host_header(),
                    encoded_path: &path,
                    query,
                    headers: &mut headers,
                    payload_hash: &payload_hash,
                },
            );
        }
        let query = sigv4::canonical_query(query);
        let path_and_query = if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        };
        let mut request = Request::new(method, &endpoint, path_and_query);
        request.headers = headers;
        request
    }

    /// Turns a failed response into the contract's error. `mode` decides
    /// what 412 means.
    pub fn fail(&self, response: Response, mode: Option<&PutMode>) -> Error {
        let status = response.status;
        let what = response.what().to_string();
        let body = response.error_text();
        let code = xml::text(&body, "Code").unwrap_or_else(|| status.to_string());
        let detail = match xml::text(&body, "Message") {
            Some(m) if !m.is_empty() => format!("{code}: {m}"),
            _ => code.clone(),
        };
        let message = format!("{what}: {status} {detail}");
        match status {
            404 if code == "NoSuchBucket" => Error::Invalid(format!(
                "{message} (bucket `{}` does not exist at {})",
                self.bucket,
                self.endpoint.url()
            )),
            404 => Error::NotFound(message),
            401 | 403 => Error::Denied(format!("{message} ({})", self.identity())),
            412 if matches!(mode, Some(PutMode::Create)) => Error::AlreadyExists(message),
            412 => Error::PreconditionFailed(message),
            409 if matches!(mode, Some(PutMode::Create)) => Error::AlreadyExists(message),
            s if is_transient_status(s) || code == "SlowDown" || code == "RequestTimeout" => Error::Transient(message),
            400 if code == "InvalidArgument" || code == "InvalidRequest" => Error::Invalid(message),
            _ => Error::Backend(message),
        }
    }

    /// Who the requests are signed as, for messages (never the secret).
    fn identity(&self) -> String {
        match &self.creds {
            Some(c) if c.session_token.is_some() => {
                format!("access key `{}` with a session token", c.access_key_id)
            }
            Some(c) => format!("access key `{}`", c.access_key_id),
            None => "anonymous requests".into(),
        }
    }

    /// Sends a request and returns the response if its status is 2xx.
    pub fn send(&self, request: &Request, body: &[u8], mode: Option<&PutMode>) -> Result<Response, Error> {
        let response = request.send(body)?;
        ok_or(self, response, mode)
    }

    /// Waits for a request started earlier; its response if the status is 2xx.
    pub fn send_pending(&self, pending: wharf_guest_http::Pending) -> Result<Response, Error> {
        let response = pending.wait()?;
        ok_or(self, response, None)
    }

    /// `HEAD` an object.
    pub fn head(&self, path: &str) -> Result<ObjectMeta, Error> {
        let request = self.request("HEAD", Some(&self.key(path)), &[], Vec::new(), &[]);
        let response = self.send(&request, &[], None)?;
        let size = response
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| Error::Backend(format!("{}: no Content-Length", response.what())))?;
        let meta = ObjectMeta {
            path: path.to_string(),
            size,
            etag: response.header("etag").map(str::to_string),
            modified_ms: response
                .header("last-modified")
                .and_then(time::parse_http_date)
                .map(|ms| ms as u64),
        };
        response.discard();
        Ok(meta)
    }

    /// Checks `mode` against the object as it is now: the early, non-atomic
    /// half of a conditional write (the server's check is the atomic one).
    pub fn check_precondition(&self, path: &str, mode: &PutMode) -> Result<(), Error> {
        match mode {
            PutMode::Overwrite => Ok(()),
            PutMode::Create => match self.head(path) {
                Ok(_) => Err(Error::AlreadyExists(format!("`{path}` already exists"))),
                Err(Error::NotFound(_)) => Ok(()),
                Err(e) => Err(e),
            },
            PutMode::Update(etag) => match self.head(path) {
                Ok(meta) if meta.etag.as_deref() == Some(etag.as_str()) => Ok(()),
                Ok(meta) => Err(Error::PreconditionFailed(format!(
                    "`{path}` has etag {}, not {etag}",
                    meta.etag.as_deref().unwrap_or("(none)")
                ))),
                Err(Error::NotFound(_)) => Err(Error::PreconditionFailed(format!("`{path}` does not exist"))),
                Err(e) => Err(e),
            },
        }
    }

    /// `DELETE` an object; a missing one is success.
    pub fn delete_object(&self, path: &str) -> Result<(), Error> {
        let request = self.request("DELETE", Some(&self.key(path)), &[], Vec::new(), &[]);
        match self.send(&request, &[], None) {
            Ok(r) => {
                r.discard();
                Ok(())
            }
            Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// One `ListObjectsV2` page.
    pub fn list_objects(&self, prefix: &str, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        let mut query = vec![
            ("list-type", "2".to_string()),
            ("prefix", self.key(prefix)),
            ("max-keys", limit.to_string()),
            ("encoding-type", "url".to_string()),
        ];
        if let Some(token) = cursor {
            query.push(("continuation-token", token));
        }
        let request = self.request("GET", None, &query, Vec::new(), &[]);
        let response = self.send(&request, &[], None)?;
        let what = response.what().to_string();
        let doc = response.text(16 << 20)?;
        let url_encoded = xml::text(&doc, "EncodingType").is_some_and(|e| e.eq_ignore_ascii_case("url"));
        let bad = |why: &str| Error::Backend(format!("{what}: malformed ListObjectsV2 answer: {why}"));
        let mut entries = Vec::new();
        for item in xml::elements(&doc, "Contents") {
            let raw = xml::text(item, "Key").ok_or_else(|| bad("an entry has no Key"))?;
            let key = if url_encoded {
                uri_decode(&raw, true).map_err(|e| bad(&e))?
            } else {
                raw
            };
            let path = key
                .strip_prefix(&self.prefix)
                .ok_or_else(|| bad(&format!("key `{key}` is outside prefix `{}`", self.prefix)))?
                .to_string();
            let size = xml::text(item, "Size")
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| bad("an entry has no Size"))?;
            entries.push(ObjectMeta {
                path,
                size,
                etag: xml::text(item, "ETag"),
                modified_ms: xml::text(item, "LastModified")
                    .and_then(|t| time::parse_rfc3339(&t))
                    .map(|ms| ms as u64),
            });
        }
        let truncated = xml::text(&doc, "IsTruncated").is_some_and(|t| t.trim() == "true");
        let next_cursor = if truncated {
            Some(
                xml::text(&doc, "NextContinuationToken")
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| bad("truncated without a NextContinuationToken"))?,
            )
        } else {
            None
        };
        Ok(Page { entries, next_cursor })
    }

    /// `CopyObject`, conditional on the destination per `mode`.
    pub fn copy_object(&self, source: &str, destination: &str, mode: &PutMode) -> Result<ObjectMeta, Error> {
        let src = self.head(source)?;
        if src.size > MAX_COPY {
            return Err(Error::Unsupported(format!(
                "`{source}` is {} bytes; CopyObject copies at most 5 GiB",
                src.size
            )));
        }
        self.check_precondition(destination, mode)?;
        let mut headers = condition_headers(mode);
        headers.push((
            "x-amz-copy-source".into(),
            format!("/{}/{}", self.bucket, uri_encode(&self.key(source), true)),
        ));
        let request = self.request("PUT", Some(&self.key(destination)), &[], headers, &[]);
        let response = self.send(&request, &[], Some(mode))?;
        let what = response.what().to_string();
        // CopyObject can answer 200 and put the error in the body.
        let doc = response.text(1 << 20)?;
        if let Some(code) = xml::text(&doc, "Code") {
            let message = xml::text(&doc, "Message").unwrap_or_default();
            return Err(Error::Backend(format!("{what}: {code}: {message}")));
        }
        Ok(ObjectMeta {
            path: destination.to_string(),
            size: src.size,
            etag: xml::text(&doc, "ETag"),
            modified_ms: xml::text(&doc, "LastModified")
                .and_then(|t| time::parse_rfc3339(&t))
                .map(|ms| ms as u64),
        })
    }

    /// Lists one key under the configured prefix.
    pub fn health(&self) -> Result<String, Error> {
        self.list_objects("", None, 1)?;
        Ok(format!(
            "listed bucket `{}` at {} (prefix `{}`, {})",
            self.bucket,
            self.endpoint.url(),
            self.prefix,
            self.identity()
        ))
    }

    /// `GET` an object, or a range of it.
    pub fn get_object(&self, path: &str, range: Option<ByteRange>) -> Result<Body, Error> {
        let (start, end) = match range {
            Some(r) => (r.start, r.end),
            None => (0, None),
        };
        if end.is_some_and(|e| e <= start) {
            // An empty range: nothing to read, but the object must exist.
            self.head(path)?;
            return Ok(Body::empty());
        }
        let mut headers = Vec::new();
        if start > 0 || end.is_some() {
            let last = end.map(|e| (e - 1).to_string()).unwrap_or_default();
            headers.push(("range".to_string(), format!("bytes={start}-{last}")));
        }
        let request = self.request("GET", Some(&self.key(path)), &[], headers, &[]);
        let response = request.send(&[])?;
        let body = match response.status {
            206 => Body::new(response, 0, None),
            // A server that ignores Range sends it all: skip to the range.
            200 => Body::new(response, start, end.map(|e| e - start)),
            // The range starts at or past the end (or the object is empty).
            416 => {
                response.discard();
                Body::empty()
            }
            _ => return Err(self.fail(response, None)),
        };
        Ok(body)
    }
}

fn ok_or(s3: &S3, response: Response, mode: Option<&PutMode>) -> Result<Response, Error> {
    if (200..300).contains(&response.status) {
        Ok(response)
    } else {
        Err(s3.fail(response, mode))
    }
}

/// The headers that make a write conditional.
pub fn condition_headers(mode: &PutMode) -> Vec<(String, String)> {
    match mode {
        PutMode::Overwrite => Vec::new(),
        PutMode::Create => vec![("if-none-match".into(), "*".into())],
        PutMode::Update(etag) => vec![("if-match".into(), etag.clone())],
    }
}

/// A response body being read, trimmed to a range.
pub use wharf_guest_http::RangedBody as Body;
