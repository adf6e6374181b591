//! The backend: metadata, deletion, copies and the health check. Listing
//! lives in `list`, reads and writes in `reader` and `writer`.

use crate::client::{Client, Condition, ObjectResource, json};
use crate::config::Config;
use crate::list::LIST_MAX;
use crate::reader::Reader;
use crate::writer::Upload;
use crate::{ByteRange, Capabilities, Error, ObjectMeta, PutMode};
use serde::Deserialize;
use std::rc::Rc;
use wharf_guest_http::encode::uri_encode;

/// `rewriteTo` calls one copy may take (each moves a large share of the
/// object; within one location a single call finishes).
const MAX_REWRITE_CALLS: usize = 10_000;

/// A configured backend.
pub struct Store {
    /// The JSON API client.
    pub client: Rc<Client>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RewriteResponse {
    #[serde(default)]
    done: bool,
    rewrite_token: Option<String>,
    resource: Option<ObjectResource>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BucketResource {
    location: Option<String>,
    storage_class: Option<String>,
}

impl Store {
    /// A backend for `config`.
    pub fn open(config: Config) -> Store {
        Store {
            client: Rc::new(Client::new(config)),
        }
    }

    /// Every append but the last is exactly one resumable chunk.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_range: true,
            write_create: true,
            write_update: true,
            copy: true,
            list_max_limit: LIST_MAX,
            write_min_chunk: self.client.chunk_size,
            write_max_chunk: self.client.chunk_size,
            // GCS's object size limit.
            max_object_size: Some(5 << 40),
        }
    }

    /// The object's metadata (`GET …/o/<name>`).
    pub fn stat(&self, path: &str) -> Result<ObjectMeta, Error> {
        let request = self.client.request("GET", self.client.object_url(path));
        let response = self.client.expect(request, &[], &[200], &Condition::None)?;
        self.client.meta(&json::<ObjectResource>(response)?, path)
    }

    /// Whether the object exists.
    pub fn exists(&self, path: &str) -> Result<bool, Error> {
        wharf_guest::exists(self.stat(path))
    }

    /// Deletes the object; a missing one is no error.
    pub fn delete(&self, path: &str) -> Result<(), Error> {
        let request = self.client.request("DELETE", self.client.object_url(path));
        match self.client.expect(request, &[], &[200, 204], &Condition::None) {
            Ok(response) => {
                response.discard();
                Ok(())
            }
            Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Copies inside the bucket with `rewriteTo`, conditional on the
    /// destination like a write, following `rewriteToken` until done.
    pub fn copy(&self, source: &str, destination: &str, mode: PutMode) -> Result<ObjectMeta, Error> {
        let condition = Condition::of(mode);
        self.check(destination, &condition)?;
        let url = format!(
            "{}/rewriteTo/b/{}/o/{}?projection=noAcl{}",
            self.client.object_url(source),
            uri_encode(self.client.bucket(), false),
            uri_encode(&self.client.name(destination), false),
            condition.query()
        );
        let mut token: Option<String> = None;
        for _ in 0..MAX_REWRITE_CALLS {
            let call = match &token {
                Some(t) => format!("{url}&rewriteToken={}", uri_encode(t, false)),
                None => url.clone(),
            };
            let request = self.client.request("POST", call);
            let answer: RewriteResponse = json(self.client.expect(request, &[], &[200], &condition)?)?;
            match (answer.done, answer.resource, answer.rewrite_token) {
                (true, Some(resource), _) => return self.client.meta(&resource, destination),
                (false, _, Some(t)) => token = Some(t),
                _ => {
                    return Err(Error::Backend(format!(
                        "copying `{source}` to `{destination}`: the rewrite answer has neither the object nor a token"
                    )));
                }
            }
        }
        Err(Error::Transient(format!(
            "copying `{source}` to `{destination}`: not done after {MAX_REWRITE_CALLS} rewrite calls"
        )))
    }

    /// Reads the bucket's metadata. Credentials limited to objects (e.g.
    /// `roles/storage.objectAdmin`) may not read it: then listing one
    /// object under the prefix is the check.
    pub fn health(&self) -> Result<String, Error> {
        let auth = self.client.auth_description();
        let bucket = self.client.bucket();
        let response = self
            .client
            .send(self.client.request("GET", self.client.bucket_url()), &[])?;
        match response.status {
            200 => {
                let b: BucketResource = json(response)?;
                Ok(format!(
                    "read the metadata of bucket `{bucket}` with {auth} (location {}, storage class {})",
                    b.location.as_deref().unwrap_or("unknown"),
                    b.storage_class.as_deref().unwrap_or("unknown")
                ))
            }
            403 => {
                response.discard();
                self.list("", None, 1)?;
                Ok(format!(
                    "listed objects of bucket `{bucket}` with {auth} (reading the bucket's metadata was refused: \
                     the credentials lack storage.buckets.get)"
                ))
            }
            _ => Err(self.client.failure(response, &Condition::None)),
        }
    }

    /// Starts reading the object or a range of it.
    pub fn read(&self, path: &str, range: Option<ByteRange>) -> Result<Reader, Error> {
        let (start, end) = range.map_or((0, None), |r| (r.start, r.end));
        if end.is_some_and(|e| e <= start) {
            // Nothing to read, but a missing object is still not-found.
            self.stat(path)?;
            return Ok(Reader::empty());
        }
        Reader::open(&self.client, path, start, end)
    }

    /// Starts writing; a `create`/`update` destination is checked first.
    pub fn write(&self, path: &str, mode: PutMode) -> Result<Upload, Error> {
        let condition = Condition::of(mode);
        self.check(path, &condition)?;
        Ok(Upload::new(self.client.clone(), path, condition))
    }

    /// The early check of a write's or copy's condition: it fails a
    /// conflicting write before any byte is sent. The atomic check is the
    /// `ifGenerationMatch` the committing request carries.
    fn check(&self, path: &str, condition: &Condition) -> Result<(), Error> {
        if *condition == Condition::None {
            return Ok(());
        }
        condition.check(path, self.stat(path))
    }
}
