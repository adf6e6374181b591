//! The Blob service client: URLs, authorized requests, error mapping and the
//! single-request operations (stat, delete, health); `list.rs` lists and
//! `reader.rs` reads.

use crate::config::{Auth, Config};
use crate::list;
use crate::shared_key::{self, Signable};
use std::rc::Rc;
use wharf_guest::{Error, ObjectMeta, PutMode};
use wharf_guest_http::encode::uri_encode;
use wharf_guest_http::{Endpoint, Pending, Request, Response, is_transient_status, time, xml};

/// The REST API version every request asks for.
pub const API_VERSION: &str = "2021-08-06";
/// The most blobs one List Blobs page returns.
pub const LIST_MAX: u32 = 5000;

/// A configured container; cheap to clone.
#[derive(Clone)]
pub struct Azure {
    cfg: Rc<Config>,
    /// The endpoint's scheme and authority, without its base path: requests
    /// carry the whole URL path themselves.
    origin: Endpoint,
}

/// What Get Blob Properties tells about a blob.
pub struct Head {
    /// Size, etag, modification time.
    pub meta: ObjectMeta,
    /// The last Copy Blob into this blob, if any.
    pub copy: Option<CopyState>,
}

/// The state of a Copy Blob operation (`x-ms-copy-*` headers).
pub struct CopyState {
    /// `x-ms-copy-id`.
    pub id: String,
    /// `pending`, `success`, `aborted` or `failed`.
    pub status: String,
    /// `x-ms-copy-status-description`, when Azure gives one.
    pub description: String,
}

impl Azure {
    /// A client for `cfg`.
    pub fn new(cfg: Config) -> Azure {
        let origin = Endpoint {
            base_path: String::new(),
            ..cfg.endpoint.clone()
        };
        Azure {
            cfg: Rc::new(cfg),
            origin,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The blob name of a contract path: the prefix and the path.
    pub fn blob_name(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.prefix)
    }

    /// The URL path of the container, or of a blob in it, percent-encoded
    /// segment by segment.
    fn url_path(&self, blob: Option<&str>) -> String {
        let mut path = format!("{}/{}", self.cfg.endpoint.base_path, self.cfg.container);
        if let Some(blob) = blob {
            path.push('/');
            path.push_str(&uri_encode(blob, true));
        }
        path
    }

    /// The full URL of a blob, with the SAS token when there is one: what
    /// Copy Blob reads its source from.
    pub fn blob_url(&self, blob: &str) -> String {
        let url = format!("{}{}", self.origin.url(), self.url_path(Some(blob)));
        match &self.cfg.auth {
            Auth::Sas(token) => format!("{url}?{token}"),
            Auth::SharedKey(_) | Auth::Bearer(_) => url,
        }
    }

    /// An authorized request for `blob` (or the container when `None`).
    /// `query` values are not encoded yet; `body_len` is the length of the
    /// body it will be sent with.
    pub fn request(
        &self,
        method: &'static str,
        blob: Option<&str>,
        query: &[(&str, String)],
        mut headers: Vec<(String, String)>,
        body_len: usize,
    ) -> Request {
        let path = self.url_path(blob);
        headers.push(("x-ms-date".into(), time::http_date(time::now_secs())));
        headers.push(("x-ms-version".into(), API_VERSION.into()));
        let mut query_text: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", uri_encode(v, false)))
            .collect();
        match &self.cfg.auth {
            Auth::SharedKey(key) => {
                let to_sign = shared_key::string_to_sign(&Signable {
                    method,
                    account: &self.cfg.account,
                    encoded_path: &path,
                    query,
                    headers: &headers,
                    content_length: body_len,
                });
                let value = shared_key::authorization(&self.cfg.account, key, &to_sign);
                headers.push(("authorization".into(), value));
            }
            Auth::Sas(token) => query_text.push(token.clone()),
            Auth::Bearer(token) => headers.push(("authorization".into(), format!("Bearer {token}"))),
        }
        let path_and_query = if query_text.is_empty() {
            path
        } else {
            format!("{path}?{}", query_text.join("&"))
        };
        let mut request = Request::new(method, &self.origin, path_and_query);
        request.headers = headers;
        request
    }

    /// Sends `request` with `body`; the response if its status is 2xx.
    /// `mode` is the put-mode of a write, which decides what 404, 409 and
    /// 412 mean.
    pub fn send(&self, request: &Request, body: &[u8], mode: Option<&PutMode>) -> Result<Response, Error> {
        let response = request.send(body)?;
        self.success(response, mode)
    }

    /// Waits for a request started earlier; the response if its status is 2xx.
    pub fn wait(&self, pending: Pending) -> Result<Response, Error> {
        let response = pending.wait()?;
        self.success(response, None)
    }

    fn success(&self, response: Response, mode: Option<&PutMode>) -> Result<Response, Error> {
        if (200..300).contains(&response.status) {
            Ok(response)
        } else {
            Err(self.fail(response, mode))
        }
    }

    /// Turns a failed response into the contract's error, naming the
    /// request, the status, Azure's error code and (the first line of) its
    /// message.
    pub fn fail(&self, response: Response, mode: Option<&PutMode>) -> Error {
        let status = response.status;
        let what = response.what().to_string();
        let header_code = response.header("x-ms-error-code").map(str::to_string);
        let body = response.error_text();
        let code = header_code.or_else(|| xml::text(&body, "Code")).unwrap_or_default();
        let detail = first_line(&xml::text(&body, "Message").unwrap_or(body));
        let mut message = format!("{what}: {status}");
        for (sep, part) in [(" ", &code), (": ", &detail)] {
            if !part.is_empty() {
                message.push_str(sep);
                message.push_str(part);
            }
        }
        match status {
            404 if code == "ContainerNotFound" => Error::Invalid(format!(
                "{message} (container `{}` does not exist at {})",
                self.cfg.container,
                self.cfg.endpoint.url()
            )),
            404 if code == "CannotVerifyCopySource" => Error::NotFound(message),
            404 if matches!(mode, Some(PutMode::Update(_))) => {
                Error::PreconditionFailed(format!("{message} (the object does not exist)"))
            }
            404 => Error::NotFound(message),
            401 | 403 => Error::Denied(format!("{message} ({})", self.cfg.identity())),
            409 | 412 if matches!(mode, Some(PutMode::Create)) => Error::AlreadyExists(message),
            412 => Error::PreconditionFailed(message),
            s if is_transient_status(s) => Error::Transient(message),
            400 if matches!(code.as_str(), "InvalidResourceName" | "InvalidUri" | "OutOfRangeInput") => {
                Error::Invalid(message)
            }
            _ => Error::Backend(message),
        }
    }

    /// Get Blob Properties (`HEAD`).
    pub fn head(&self, path: &str) -> Result<Head, Error> {
        let request = self.request("HEAD", Some(&self.blob_name(path)), &[], Vec::new(), 0);
        let response = self.send(&request, &[], None)?;
        let size = response
            .header("content-length")
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| Error::Backend(format!("{}: no Content-Length", response.what())))?;
        let head = Head {
            meta: meta_from(path, size, &response),
            copy: copy_state(&response),
        };
        response.discard();
        Ok(head)
    }

    /// Metadata of a blob.
    pub fn stat(&self, path: &str) -> Result<ObjectMeta, Error> {
        self.head(path).map(|h| h.meta)
    }

    /// Checks `mode` against the blob as it is now: the early, non-atomic
    /// half of a conditional write, so a conflicting large upload fails
    /// before it sends its blocks. The atomic check is Azure's, on commit.
    pub fn check_precondition(&self, path: &str, mode: &PutMode) -> Result<(), Error> {
        let current = match mode {
            PutMode::Overwrite => return Ok(()),
            PutMode::Create | PutMode::Update(_) => match self.stat(path) {
                Ok(meta) => Some(meta),
                Err(Error::NotFound(_)) => None,
                Err(e) => return Err(e),
            },
        };
        match (mode, current) {
            (PutMode::Create, Some(_)) => Err(Error::AlreadyExists(format!("`{path}` already exists"))),
            (PutMode::Update(_), None) => Err(Error::PreconditionFailed(format!("`{path}` does not exist"))),
            (PutMode::Update(etag), Some(meta)) if meta.etag != Some(list::quoted_etag(etag)) => {
                Err(Error::PreconditionFailed(format!(
                    "`{path}` has etag {}, not {etag}",
                    meta.etag.as_deref().unwrap_or("(none)")
                )))
            }
            _ => Ok(()),
        }
    }

    /// Delete Blob, with its snapshots; a missing blob is success.
    pub fn delete(&self, path: &str) -> Result<(), Error> {
        self.delete_matching(path, None)
    }

    /// Delete Blob, only while its etag is `etag` when one is given; a
    /// missing or since replaced blob is success.
    pub fn delete_matching(&self, path: &str, etag: Option<&str>) -> Result<(), Error> {
        let mut headers = vec![("x-ms-delete-snapshots".to_string(), "include".to_string())];
        if let Some(etag) = etag {
            headers.push(("if-match".into(), etag.into()));
        }
        let request = self.request("DELETE", Some(&self.blob_name(path)), &[], headers, 0);
        match self.send(&request, &[], None) {
            Ok(response) => {
                response.discard();
                Ok(())
            }
            Err(Error::NotFound(_) | Error::PreconditionFailed(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Lists one blob under the prefix: the credentials, the container and
    /// the permission the adapter needs most all work.
    pub fn health(&self) -> Result<String, Error> {
        self.list("", None, 1)?;
        Ok(format!(
            "listed container `{}` at {} (prefix `{}`, {})",
            self.cfg.container,
            self.cfg.endpoint.url(),
            self.cfg.prefix,
            self.cfg.identity()
        ))
    }
}

/// `x-ms-range` for `[start, end)`: `bytes=<start>-<end - 1>`, or
/// `bytes=<start>-` to the end.
pub fn range_header(start: u64, end: Option<u64>) -> String {
    match end {
        Some(end) => format!("bytes={start}-{}", end.saturating_sub(1)),
        None => format!("bytes={start}-"),
    }
}

/// The headers that make a write conditional on what is at the destination.
pub fn condition_headers(mode: &PutMode) -> Vec<(String, String)> {
    match mode {
        PutMode::Overwrite => Vec::new(),
        PutMode::Create => vec![("if-none-match".into(), "*".into())],
        PutMode::Update(etag) => vec![("if-match".into(), list::quoted_etag(etag))],
    }
}

/// Object metadata from a response's `ETag` and `Last-Modified`.
pub fn meta_from(path: &str, size: u64, response: &Response) -> ObjectMeta {
    ObjectMeta {
        path: path.to_string(),
        size,
        etag: response.header("etag").map(list::quoted_etag),
        modified_ms: response
            .header("last-modified")
            .and_then(time::parse_http_date)
            .map(|ms| ms as u64),
    }
}

/// The `x-ms-copy-*` headers, when the response has them.
pub fn copy_state(response: &Response) -> Option<CopyState> {
    Some(CopyState {
        id: response.header("x-ms-copy-id")?.to_string(),
        status: response.header("x-ms-copy-status")?.trim().to_ascii_lowercase(),
        description: response
            .header("x-ms-copy-status-description")
            .unwrap_or_default()
            .to_string(),
    })
}

/// The first line of an error message, at most 200 characters: Azure's
/// messages go on with request ids and, for signature failures, details
/// that do not belong in logs.
fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range_header(3, Some(7)), "bytes=3-6");
        assert_eq!(range_header(15, None), "bytes=15-");
    }

    #[test]
    fn first_lines() {
        assert_eq!(
            first_line("\nServer failed to authenticate.\nRequestId:1\nTime:2"),
            "Server failed to authenticate."
        );
        assert_eq!(first_line(&"x".repeat(300)).chars().count(), 201);
    }
}
