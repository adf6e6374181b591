//! The S3 client: signed requests, error mapping and the single-request
//! operations (`list.rs` lists, `reader.rs` reads).

use crate::config::Config;
use crate::sigv4::{self, Signable, UNSIGNED_PAYLOAD};
use wharf_guest::{Error, ObjectMeta, PutMode};
use wharf_guest_http::encode::{hex, sha256, uri_encode};
use wharf_guest_http::{Request, Response, is_transient_status, time, xml};

/// The most `CopyObject` copies in one request.
const MAX_COPY: u64 = 5 << 30;

/// A configured bucket.
#[derive(Clone)]
pub struct S3 {
    /// The checked `config` table.
    pub cfg: Config,
}

impl S3 {
    /// Reads the `config` table; every problem is `invalid`, naming the key.
    pub fn open(config: Vec<(String, String)>) -> Result<S3, Error> {
        Ok(S3 {
            cfg: Config::parse(config)?,
        })
    }

    /// The object key of a contract path.
    pub fn key(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.prefix)
    }

    /// A signed request for `key` (or the bucket when `None`) with `body`.
    pub fn request(
        &self,
        method: &'static str,
        key: Option<&str>,
        query: &[(&str, String)],
        headers: Vec<(String, String)>,
        body: &[u8],
    ) -> Request {
        let digest = self.signs_payload(body).then(|| sha256(body));
        self.request_with_digest(method, key, query, headers, digest)
    }

    /// Whether a request with `body` signs the body's sha256 (else it
    /// sends `UNSIGNED-PAYLOAD`). An empty body's is a constant.
    pub fn signs_payload(&self, body: &[u8]) -> bool {
        self.cfg.creds.is_some() && (self.cfg.sign_payload || body.is_empty())
    }

    /// [`S3::request`] for a body whose sha256 is already known (`None`
    /// where [`S3::signs_payload`] says no).
    pub fn request_with_digest(
        &self,
        method: &'static str,
        key: Option<&str>,
        query: &[(&str, String)],
        mut headers: Vec<(String, String)>,
        body_sha256: Option<[u8; 32]>,
    ) -> Request {
        let mut endpoint = self.cfg.endpoint.clone();
        let mut path = endpoint.base_path.clone();
        if self.cfg.path_style {
            path.push('/');
            path.push_str(&uri_encode(&self.cfg.bucket, false));
        } else {
            endpoint.authority = format!("{}.{}", self.cfg.bucket, endpoint.authority);
        }
        path.push('/');
        if let Some(key) = key {
            path.push_str(&uri_encode(key, true));
        }
        if let Some(creds) = &self.cfg.creds {
            let payload_hash = match &body_sha256 {
                Some(digest) => hex(digest),
                None => UNSIGNED_PAYLOAD.to_string(),
            };
            sigv4::sign(
                creds,
                &self.cfg.region,
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
                self.cfg.bucket,
                self.cfg.endpoint.url()
            )),
            404 => Error::NotFound(message),
            401 | 403 => Error::Denied(format!("{message} ({})", self.identity())),
            412 if matches!(mode, Some(PutMode::Create)) => Error::AlreadyExists(message),
            412 => Error::PreconditionFailed(message),
            409 if matches!(mode, Some(PutMode::Create)) => Error::AlreadyExists(message),
            // An S3-compatible server without this operation (s3s-fs has no
            // ListMultipartUploads).
            501 => Error::Unsupported(message),
            s if is_transient_status(s) || code == "SlowDown" || code == "RequestTimeout" => Error::Transient(message),
            400 if code == "InvalidArgument" || code == "InvalidRequest" => Error::Invalid(message),
            _ => Error::Backend(message),
        }
    }

    /// Who the requests are signed as, for messages (never the secret).
    fn identity(&self) -> String {
        match &self.cfg.creds {
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
            format!("/{}/{}", self.cfg.bucket, uri_encode(&self.key(source), true)),
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
            self.cfg.bucket,
            self.cfg.endpoint.url(),
            self.cfg.prefix,
            self.identity()
        ))
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
