//! The JSON API client: URLs, authentication, conditions, and the mapping of
//! every answer to the contract's errors.

use crate::auth::Auth;
use crate::config::Config;
use crate::{Error, ObjectMeta, PutMode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use wharf_guest_http::encode::uri_encode;
use wharf_guest_http::{Endpoint, Request, Response, is_transient_status, time};

/// The largest JSON document read (a listing page of 1,000 objects is
/// about 1 MiB).
const JSON_LIMIT: usize = 32 << 20;

/// What a write or copy requires of its destination: the put-mode as a
/// GCS precondition on the object's generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// Anything may be there (overwrite).
    None,
    /// Nothing may be there (`ifGenerationMatch=0`).
    Absent,
    /// Exactly this generation must be there (the etag of `update`).
    Generation(String),
}

impl Condition {
    /// The condition of a put-mode.
    pub fn of(mode: PutMode) -> Condition {
        match mode {
            PutMode::Overwrite => Condition::None,
            PutMode::Create => Condition::Absent,
            PutMode::Update(etag) => Condition::Generation(etag),
        }
    }

    /// `&ifGenerationMatch=…` for a URL that already has a query, or `""`.
    pub fn query(&self) -> String {
        match self {
            Condition::None => String::new(),
            Condition::Absent => "&ifGenerationMatch=0".into(),
            Condition::Generation(g) => format!("&ifGenerationMatch={}", uri_encode(g, false)),
        }
    }

    /// The error of a destination that does not satisfy the condition.
    pub fn violated(&self, message: String) -> Error {
        match self {
            Condition::Absent => Error::AlreadyExists(message),
            Condition::Generation(_) => Error::PreconditionFailed(message),
            Condition::None => Error::Backend(message),
        }
    }

    /// Checks the condition against what is at `path` now (`current` is
    /// its stat). This is the early check; the atomic one is the server's.
    pub fn check(&self, path: &str, current: Result<ObjectMeta, Error>) -> Result<(), Error> {
        match (self, current) {
            (Condition::None, _) => Ok(()),
            (Condition::Absent, Err(Error::NotFound(_))) => Ok(()),
            (Condition::Absent, Ok(_)) => Err(self.violated(format!("`{path}` already exists"))),
            (Condition::Generation(want), Ok(m)) if m.etag.as_deref() == Some(want.as_str()) => Ok(()),
            (Condition::Generation(want), Ok(m)) => Err(self.violated(format!(
                "`{path}` is at generation {}, not {want}",
                m.etag.unwrap_or_default()
            ))),
            (Condition::Generation(_), Err(Error::NotFound(_))) => {
                Err(self.violated(format!("`{path}` does not exist")))
            }
            (_, Err(e)) => Err(e),
        }
    }
}

/// An object resource, as far as this adapter reads it. GCS writes the
/// 64-bit numbers as strings; numbers are accepted too.
#[derive(Deserialize)]
pub struct ObjectResource {
    pub name: String,
    size: Option<Number>,
    generation: Option<Number>,
    updated: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Int(u64),
    Text(String),
}

impl Number {
    fn text(&self) -> String {
        match self {
            Number::Int(n) => n.to_string(),
            Number::Text(t) => t.clone(),
        }
    }
}

/// A configured connection to one bucket.
pub struct Client {
    endpoint: Endpoint,
    bucket: String,
    prefix: String,
    auth: Auth,
    /// The resumable-upload chunk, bytes.
    pub chunk_size: u64,
}

impl Client {
    /// A client for `config`.
    pub fn new(config: Config) -> Client {
        Client {
            endpoint: config.endpoint,
            bucket: config.bucket,
            prefix: config.prefix,
            auth: config.auth,
            chunk_size: config.chunk_size,
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The credentials, described for messages.
    pub fn auth_description(&self) -> String {
        self.auth.describe()
    }

    /// The object name of a contract path (the prefix prepended).
    pub fn name(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// The contract path of an object name, if it lies under the prefix.
    pub fn path_of<'a>(&self, name: &'a str) -> Option<&'a str> {
        name.strip_prefix(&self.prefix)
    }

    /// `…/storage/v1/b/<bucket>`.
    pub fn bucket_url(&self) -> String {
        format!(
            "{}/storage/v1/b/{}",
            self.endpoint.base_path,
            uri_encode(&self.bucket, false)
        )
    }

    /// `…/storage/v1/b/<bucket>/o/<name>`: the name is one path segment.
    pub fn object_url(&self, path: &str) -> String {
        format!("{}/o/{}", self.bucket_url(), uri_encode(&self.name(path), false))
    }

    /// `…/upload/storage/v1/b/<bucket>/o?uploadType=<kind>&name=<name>` with
    /// the condition.
    pub fn upload_url(&self, kind: &str, path: &str, condition: &Condition) -> String {
        format!(
            "{}/upload/storage/v1/b/{}/o?uploadType={kind}&name={}{}",
            self.endpoint.base_path,
            uri_encode(&self.bucket, false),
            uri_encode(&self.name(path), false),
            condition.query()
        )
    }

    /// A request to `path_and_query` on the endpoint.
    pub fn request(&self, method: &'static str, path_and_query: impl Into<String>) -> Request {
        Request::new(method, &self.endpoint, path_and_query)
    }

    /// Sends `request` with credentials; any status is returned.
    pub fn send(&self, mut request: Request, body: &[u8]) -> Result<Response, Error> {
        if let Some(value) = self.auth.header()? {
            request.set_header("authorization", value);
        }
        request.send(body).map_err(Error::from)
    }

    /// Sends `request`; a status outside `ok` becomes the contract's error
    /// (a 409/412 one by `condition`).
    pub fn expect(&self, request: Request, body: &[u8], ok: &[u16], condition: &Condition) -> Result<Response, Error> {
        let response = self.send(request, body)?;
        if ok.contains(&response.status) {
            Ok(response)
        } else {
            Err(self.failure(response, condition))
        }
    }

    /// The error a failed response means.
    pub fn failure(&self, response: Response, condition: &Condition) -> Error {
        let status = response.status;
        let what = response.what().to_string();
        let detail = error_detail(response);
        let message = format!("{what}: HTTP {status}: {detail}");
        match status {
            404 => Error::NotFound(message),
            401 | 403 => Error::Denied(format!(
                "{what}: HTTP {status}: {} was refused: {detail}",
                self.auth.describe()
            )),
            409 | 412 if *condition != Condition::None => condition.violated(message),
            s if is_transient_status(s) => Error::Transient(message),
            _ => Error::Backend(message),
        }
    }

    /// The metadata of an object resource, reported at `path`.
    pub fn meta(&self, resource: &ObjectResource, path: &str) -> Result<ObjectMeta, Error> {
        let size = resource
            .size
            .as_ref()
            .and_then(|n| n.text().parse().ok())
            .ok_or_else(|| Error::Backend(format!("the metadata of `{}` has no usable size", resource.name)))?;
        Ok(ObjectMeta {
            path: path.to_string(),
            size,
            etag: resource.generation.as_ref().map(Number::text),
            modified_ms: resource
                .updated
                .as_deref()
                .and_then(time::parse_rfc3339)
                .and_then(|ms| u64::try_from(ms).ok()),
        })
    }
}

/// Reads a JSON body into `T`.
pub fn json<T: DeserializeOwned>(response: Response) -> Result<T, Error> {
    let what = response.what().to_string();
    let body = response.bytes(JSON_LIMIT)?;
    serde_json::from_slice(&body).map_err(|e| Error::Backend(format!("{what}: unexpected answer: {e}")))
}

/// The server's reason: `error.message` of a JSON error body, else the
/// (shortened) body itself.
fn error_detail(response: Response) -> String {
    let text = response.error_text();
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_string));
    match message {
        Some(m) => m,
        None if text.is_empty() => "(no details)".into(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(etag: &str) -> ObjectMeta {
        ObjectMeta {
            path: "p".into(),
            size: 1,
            etag: Some(etag.into()),
            modified_ms: None,
        }
    }

    fn missing() -> Result<ObjectMeta, Error> {
        Err(Error::NotFound("gone".into()))
    }

    #[test]
    fn conditions() {
        assert_eq!(Condition::of(PutMode::Overwrite).query(), "");
        assert_eq!(Condition::of(PutMode::Create).query(), "&ifGenerationMatch=0");
        assert_eq!(
            Condition::of(PutMode::Update("17".into())).query(),
            "&ifGenerationMatch=17"
        );
        let create = Condition::Absent;
        assert!(create.check("p", missing()).is_ok());
        assert!(matches!(create.check("p", Ok(meta("1"))), Err(Error::AlreadyExists(_))));
        let update = Condition::Generation("5".into());
        assert!(update.check("p", Ok(meta("5"))).is_ok());
        assert!(matches!(
            update.check("p", Ok(meta("6"))),
            Err(Error::PreconditionFailed(_))
        ));
        assert!(matches!(
            update.check("p", missing()),
            Err(Error::PreconditionFailed(_))
        ));
        let down = Err(Error::Transient("503".into()));
        assert!(matches!(update.check("p", down), Err(Error::Transient(_))));
    }

    #[test]
    fn object_metadata() {
        let config = Config::parse(vec![
            ("bucket".into(), "models".into()),
            ("anonymous".into(), "true".into()),
            ("prefix".into(), "team/".into()),
        ])
        .unwrap();
        let client = Client::new(config);
        assert_eq!(client.object_url("a b/c"), "/storage/v1/b/models/o/team%2Fa%20b%2Fc");
        assert_eq!(client.path_of("team/x"), Some("x"));
        assert_eq!(client.path_of("other/x"), None);
        let text = r#"{"name":"team/x","size":"42","generation":"1795","updated":"2026-11-27T01:33:17.965Z"}"#;
        let m = client.meta(&serde_json::from_str(text).unwrap(), "x").unwrap();
        assert_eq!(
            (m.size, m.etag.as_deref(), m.modified_ms),
            (42, Some("1795"), Some(1_795_743_197_965))
        );
        let numbers = r#"{"name":"team/x","size":42,"generation":7}"#;
        let m = client.meta(&serde_json::from_str(numbers).unwrap(), "x").unwrap();
        assert_eq!((m.size, m.etag.as_deref(), m.modified_ms), (42, Some("7"), None));
        let no_size = r#"{"name":"team/x"}"#;
        assert!(client.meta(&serde_json::from_str(no_size).unwrap(), "x").is_err());
    }
}
