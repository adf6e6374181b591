//! The MLflow artifact proxy client: requests, error mapping and the
//! single-request operations (list one directory, stat, delete, health).

use crate::config::Config;
use crate::keys;
use serde_json::Value;
use wharf_guest::{Error, ObjectMeta};
use wharf_guest_http::encode::uri_encode;
use wharf_guest_http::{FailKind, HttpError, Request, Response, is_transient_status};

/// The artifact proxy's routes, under the tracking server's URL.
pub const ARTIFACTS: &str = "/api/2.0/mlflow-artifacts/artifacts";
/// The multipart routes (`create`, `complete`, `abort`).
pub const MPU: &str = "/api/2.0/mlflow-artifacts/mpu";

/// The largest one-directory listing read (about 200,000 entries).
const MAX_LISTING: usize = 16 << 20;

/// A configured artifact proxy.
#[derive(Clone)]
pub struct Mlflow {
    /// The checked `config` table.
    pub cfg: Config,
}

/// One entry of a one-level listing, as the server names it.
pub struct Entry {
    /// The artifact name (escaped form, see `keys`).
    pub name: String,
    /// A directory rather than a file.
    pub is_dir: bool,
    /// File size; 0 for directories.
    pub size: u64,
}

impl Mlflow {
    /// Reads the `config` table; every problem is `invalid`, naming the key.
    pub fn open(config: Vec<(String, String)>) -> Result<Mlflow, Error> {
        Ok(Mlflow {
            cfg: Config::parse(config)?,
        })
    }

    /// The artifact path (as the server stores it) of a contract path.
    pub fn key(&self, path: &str) -> String {
        format!("{}{}", self.cfg.prefix, keys::escape(path))
    }

    /// The artifact directory of a contract directory (`""` or ending in `/`).
    pub fn dir_key(&self, dir: &str) -> String {
        let key = format!("{}{}", self.cfg.prefix, keys::escape(dir.trim_end_matches('/')));
        key.trim_end_matches('/').to_string()
    }

    /// The tracking server's URL, for messages.
    pub fn url(&self) -> String {
        self.cfg.endpoint.url()
    }

    /// The headers every request carries.
    pub fn headers(&self) -> Vec<(String, String)> {
        match &self.cfg.auth {
            Some(a) => vec![("authorization".to_string(), a.clone())],
            None => Vec::new(),
        }
    }

    /// A request for `route` (already encoded, starting with `/`).
    pub fn request(&self, method: &'static str, route: &str) -> Request {
        let mut request = Request::new(
            method,
            &self.cfg.endpoint,
            format!("{}{route}", self.cfg.endpoint.base_path),
        );
        request.headers = self.headers();
        request
    }

    /// The route of one artifact file.
    pub fn artifact_route(key: &str) -> String {
        format!("{ARTIFACTS}/{}", uri_encode(key, true))
    }

    /// Turns a failed answer into the contract's error. `body` is the
    /// answer's text; `missing` is what a 404 means here.
    pub fn fail(&self, what: &str, status: u16, body: &str, missing: Missing) -> Error {
        let detail = error_detail(body);
        let message = format!("{what}: {status} {detail}");
        match status {
            404 if missing == Missing::NotFound => Error::NotFound(message),
            404 => Error::Invalid(format!(
                "{message} (is `endpoint` {} an MLflow tracking server with the artifact proxy?)",
                self.url()
            )),
            401 | 403 => Error::Denied(format!("{message} (sent as {})", self.cfg.identity)),
            400 => Error::Invalid(message),
            501 => Error::Unsupported(message),
            // `mlflow server --no-serve-artifacts` answers 503: retrying does
            // not help.
            503 if body.contains("serve-artifacts") => Error::Backend(format!(
                "{message} (start the tracking server with `--serve-artifacts`)"
            )),
            s if is_transient_status(s) => Error::Transient(message),
            _ => Error::Backend(message),
        }
    }

    /// Sends a request. An idempotent one (`GET`, `DELETE`, a whole-body
    /// `PUT`) whose connection failed is sent once more: uvicorn closes a
    /// connection right after a 500 it answered for an exception, without
    /// saying so, and the host's pool may hand that connection to the next
    /// request.
    pub fn transmit(request: &Request, body: &[u8]) -> Result<Response, HttpError> {
        match request.send(body) {
            Err(e) if e.kind == FailKind::Transient && matches!(request.method, "GET" | "DELETE" | "PUT") => {
                request.send(body)
            }
            other => other,
        }
    }

    /// Sends a request with `body`; the response if its status is 2xx.
    pub fn send(&self, request: &Request, body: &[u8], missing: Missing) -> Result<Response, Error> {
        let response = Self::transmit(request, body)?;
        if (200..300).contains(&response.status) {
            return Ok(response);
        }
        let (what, status) = (response.what().to_string(), response.status);
        let text = response.error_text();
        Err(self.fail(&what, status, &text, missing))
    }

    /// The entries of one artifact directory (`""` is the root). A missing
    /// directory, or a file, lists as empty: that is what the server says.
    pub fn list_dir(&self, dir_key: &str) -> Result<Vec<Entry>, Error> {
        let route = if dir_key.is_empty() {
            ARTIFACTS.to_string()
        } else {
            format!("{ARTIFACTS}?path={}", uri_encode(dir_key, false))
        };
        let request = self.request("GET", &route);
        let response = self.send(&request, &[], Missing::WrongServer)?;
        let what = format!("{} (directory `{dir_key}`)", response.what());
        let text = response.text(MAX_LISTING).map_err(|e| match e.kind {
            FailKind::Backend => Error::Backend(format!(
                "{} (directory `{dir_key}`: a listing is read whole, at most {MAX_LISTING} bytes)",
                e.message
            )),
            _ => Error::from(e),
        })?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Backend(format!("{what}: the listing is not JSON ({e})")))?;
        let mut out = Vec::new();
        let Some(files) = doc.get("files") else { return Ok(out) };
        let bad = || Error::Backend(format!("{what}: unexpected listing shape"));
        for f in files.as_array().ok_or_else(bad)? {
            let name = f.get("path").and_then(Value::as_str).ok_or_else(bad)?;
            let is_dir = f.get("is_dir").and_then(Value::as_bool).unwrap_or(false);
            let size = match f.get("file_size") {
                Some(Value::Number(n)) => n.as_u64().ok_or_else(bad)?,
                Some(Value::String(s)) => s.parse().map_err(|_| bad())?,
                _ => 0,
            };
            out.push(Entry {
                name: name.to_string(),
                is_dir,
                size,
            });
        }
        Ok(out)
    }

    /// What the parent directory's listing says of `key`. A cloud store can
    /// hold a file `a/b` and files under `a/b/` at once: both are reported.
    fn lookup(&self, key: &str) -> Result<Found, Error> {
        let (dir, name) = key.rsplit_once('/').unwrap_or(("", key));
        let mut found = Found { file: None, dir: false };
        for e in self.list_dir(dir)?.into_iter().filter(|e| e.name == name) {
            if e.is_dir {
                found.dir = true;
            } else {
                found.file = Some(e.size);
            }
        }
        Ok(found)
    }

    /// Size of one object, from its directory's listing. A directory is not
    /// an object.
    pub fn stat(&self, path: &str) -> Result<ObjectMeta, Error> {
        let key = self.key(path);
        match self.lookup(&key)? {
            Found { file: Some(size), .. } => Ok(ObjectMeta {
                path: path.to_string(),
                size,
                etag: None,
                modified_ms: None,
            }),
            Found { dir: true, .. } => Err(Error::NotFound(format!(
                "`{key}` is a directory of artifacts at {}, not an object",
                self.url()
            ))),
            _ => Err(Error::NotFound(format!("no artifact `{key}` at {}", self.url()))),
        }
    }

    /// Deletes one file. The server's `DELETE` removes everything under the
    /// path too, so it is sent only for a file with nothing below it.
    pub fn delete(&self, path: &str) -> Result<(), Error> {
        let key = self.key(path);
        match self.lookup(&key)? {
            Found {
                file: Some(_),
                dir: false,
            } => {
                let request = self.request("DELETE", &Self::artifact_route(&key));
                self.send(&request, &[], Missing::NotFound)?.discard();
                Ok(())
            }
            Found {
                file: Some(_),
                dir: true,
            } => Err(Error::Unsupported(format!(
                "artifact `{key}` at {} has artifacts below it too (`{key}/…`), and the server's DELETE \
                 would remove them all; delete those first",
                self.url()
            ))),
            // Missing, or a directory (which is no object): nothing to do.
            Found { file: None, .. } => Ok(()),
        }
    }

    /// Why a `PUT` of `key` failed with a 500, when the reason is that the
    /// file store cannot hold the path: the path is a directory, or one of
    /// its parents is a file.
    pub fn explain_put_failure(&self, path: &str) -> Option<Error> {
        let key = self.key(path);
        if let Ok(Found { dir: true, .. }) = self.lookup(&key) {
            return Some(Error::Invalid(format!(
                "`{path}` is a directory of artifacts at {}; a file cannot replace it",
                self.url()
            )));
        }
        let mut ancestor = key.as_str();
        while let Some((parent, _)) = ancestor.rsplit_once('/') {
            if let Ok(Found { file: Some(_), .. }) = self.lookup(parent) {
                return Some(Error::Invalid(format!(
                    "artifact `{parent}` at {} is a file, so `{path}` cannot be stored below it",
                    self.url()
                )));
            }
            ancestor = parent;
        }
        None
    }

    /// `GET /health`, then one listing of the prefix: the server answers
    /// and its artifact proxy serves these credentials.
    pub fn health(&self) -> Result<String, Error> {
        let request = self.request("GET", "/health");
        self.send(&request, &[], Missing::WrongServer)?.discard();
        self.list_dir(&self.dir_key(""))?;
        Ok(format!(
            "{}/health answered and the artifact proxy listed `{}` (as {})",
            self.url(),
            self.cfg.prefix,
            self.cfg.identity
        ))
    }
}

/// What a directory listing says of one name.
struct Found {
    /// The size of the file of that name.
    file: Option<u64>,
    /// Whether a directory of that name exists.
    dir: bool,
}

/// What a 404 means for a request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The artifact does not exist.
    NotFound,
    /// The route does not exist: the endpoint is not an MLflow artifact proxy.
    WrongServer,
}

/// The useful part of an MLflow error body: `error_code: message`
/// (Flask handlers), `detail` (FastAPI ones), or the text itself.
pub fn error_detail(body: &str) -> String {
    if let Ok(doc) = serde_json::from_str::<Value>(body) {
        let code = doc.get("error_code").and_then(Value::as_str);
        let message = doc.get("message").or_else(|| doc.get("detail")).and_then(Value::as_str);
        match (code, message) {
            (Some(c), Some(m)) => return format!("{c}: {m}"),
            (None, Some(m)) => return m.to_string(),
            (Some(c), None) => return c.to_string(),
            _ => {}
        }
    }
    let text = body.trim();
    if text.starts_with('<') {
        // An HTML error page says nothing a person needs here.
        return String::new();
    }
    text.to_string()
}
