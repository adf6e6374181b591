//! `gcp_storage`: a wharf storage adapter for Google Cloud Storage, over the
//! JSON API and the `wasi:http` the host grants (nothing else).
//!
//! # Configuration (`[backends.<name>.config]`)
//! | key | meaning |
//! |---|---|
//! | `bucket` | the bucket (required) |
//! | `endpoint` | default `https://storage.googleapis.com`; an emulator is `http://127.0.0.1:PORT` |
//! | `prefix` | a name prefix inside the bucket, e.g. `models/` |
//! | `token` | a bearer (OAuth access) token; use `${env:…}` |
//! | `service_account_key` | path *inside the guest* of a service-account JSON key (grant its directory, and grant the key's `token_uri` host in `grants.http`) |
//! | `anonymous` | `"true"`: no credentials (emulators, public buckets) |
//! | `chunk_size` | resumable-upload chunk, default `8MiB`; a multiple of `256KiB`, at most `64MiB` |
//!
//! Exactly one of `token`, `service_account_key`, `anonymous = "true"` must
//! be set; any other key is `invalid`. Messages name the kind of credential
//! (and a service account's email), never a token or key.
//!
//! # How it maps the contract
//! - Names: `<prefix><path>`, percent-encoded as one URL segment (`/` is
//!   `%2F`). The etag is the object's `generation`, the number GCS
//!   preconditions compare.
//! - Writes (see `writer`): an object of at most one chunk is one
//!   `uploadType=media` request; a larger one is a resumable session whose
//!   chunks carry `Content-Range: bytes a-b/*` and the last `a-b/total`;
//!   the `Range` of each 308 answer is checked so no byte is lost or sent
//!   twice. `abort()`, a failed append or finish cancel the session
//!   (`DELETE`). The writer holds back the latest chunk because only at
//!   `finish` is it known to be the last: at most two chunks in memory.
//! - `create` sends `ifGenerationMatch=0`, `update(etag)`
//!   `ifGenerationMatch=<etag>`; 412 is `already-exists` or
//!   `precondition-failed`. Both are first checked with a metadata `GET`,
//!   so a conflicting upload fails before its first byte; the atomic check
//!   is the server's, on the committing request.
//! - Reads: `GET …/o/<name>?alt=media`, `Range: bytes=a-b` for a range; a
//!   416 (start past the end) reads nothing. The body is streamed.
//! - `list`: `prefix`, `maxResults`, and `startOffset` = the cursor, which
//!   is the path of the previous page's last object; results are filtered
//!   after the cursor here as well. Pages hold at most 1,000 objects.
//! - `copy`: `rewriteTo`, conditional like a write, following
//!   `rewriteToken` (bounded).
//! - `health`: reads the bucket's metadata; if the credentials may not
//!   (`storage.buckets.get` is not in e.g. `roles/storage.objectAdmin`), it
//!   lists one object under the prefix instead. The answer says which.
//! - Errors: 404 `not-found`; 401/403 `denied`, naming the credential and
//!   the server's reason; 408, 429, 5xx and broken connections
//!   `transient`; anything else `backend` with the status and the server's
//!   message.
//! - Service accounts: an RS256 JWT (`iss`, `scope` =
//!   `devstorage.read_write`, `aud` = `token_uri`, one hour) is traded at
//!   the key's `token_uri`; the token is kept until five minutes before it
//!   expires. The cache lives in the backend, which the host keeps warm
//!   between operations (`wharf:storage/reuse`): one exchange per token
//!   lifetime while the instance lives (its uses and idle timeout, see
//!   `[backends.<name>.pool]`).
//!
//! # The emulator (gcp-storage-emulator 2026.7.19)
//! The tests run against it; where it differs from GCS:
//! - It ignores `ifGenerationMatch`. The conformance cases for `create` and
//!   `update` pass on it through the early metadata check only; two writers
//!   racing to create the same object both succeed there (a test shows it),
//!   while on GCS one gets `already-exists`.
//! - It fails an empty `uploadType=media` upload (it takes the length of a
//!   missing body), so an empty object is written through a resumable
//!   session finished with `Content-Range: bytes */0`, which GCS accepts too.
//! - It cannot cancel a resumable session (`DELETE` answers 501). `abort()`
//!   accepts that: an unfinished session is never an object, and its bytes
//!   stay in the emulator's private upload area.
//! - It ignores `maxResults`, `startOffset` and `pageToken`; the filtering
//!   described under `list` makes its answers correct pages (each page
//!   request returns every object under the prefix).
//! - A range starting past the end gets 206 with an empty body there, 416
//!   on GCS; both read nothing.
//! - `rewriteTo` always finishes in one call there, so the `rewriteToken`
//!   loop is not exercised by the tests.
//! - It rewrites the whole partial upload for every chunk (quadratic), and
//!   its metadata file for every write: the 1 GiB conformance case takes
//!   about four minutes on it. It serves one request at a time with a
//!   listen backlog of 5, so the tests queue connections in front of it.
//! - It echoes the request's `Host` in a session's `Location`; session URIs
//!   are sent to the configured endpoint in any case (see `writer`).

mod auth;
mod client;
mod config;
mod list;
mod reader;
mod store;
mod writer;

use reader::Reader;
use store::Store;
use wharf_guest::{
    BackendHandle, ByteRange, Capabilities, Error, Guest, GuestBackend, GuestReader, ObjectMeta, Page, PutMode,
    ReaderHandle, UploadSlot, WriterHandle,
};

struct Component;
wharf_guest::export!(Component);
// Nothing it keeps goes stale while idle (HTTP connections are the host's).
wharf_guest::nothing_to_recycle!(Component);
wharf_guest::no_pending_uploads!(
    Component,
    "gcp_storage",
    "the JSON API cannot list resumable upload sessions; an unfinished one expires a week after it started"
);

impl Guest for Component {
    type Backend = Store;
    type Reader = Reader;
    type Writer = UploadSlot<writer::Upload>;

    fn open(config: Vec<(String, String)>) -> Result<BackendHandle, Error> {
        Ok(BackendHandle::new(Store::open(config::Config::parse(config)?)))
    }
}

impl GuestBackend for Store {
    fn capabilities(&self) -> Capabilities {
        self.capabilities()
    }

    fn stat(&self, path: String) -> Result<ObjectMeta, Error> {
        self.stat(&path)
    }

    fn exists(&self, path: String) -> Result<bool, Error> {
        self.exists(&path)
    }

    fn delete(&self, path: String) -> Result<(), Error> {
        self.delete(&path)
    }

    fn list(&self, prefix: String, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        self.list(&prefix, cursor.as_deref(), limit)
    }

    fn copy(&self, source: String, destination: String, mode: PutMode) -> Result<ObjectMeta, Error> {
        self.copy(&source, &destination, mode)
    }

    fn health(&self) -> Result<String, Error> {
        self.health()
    }

    fn read(&self, path: String, range: Option<ByteRange>) -> Result<ReaderHandle, Error> {
        Ok(ReaderHandle::new(self.read(&path, range)?))
    }

    fn write(&self, path: String, mode: PutMode, _size_hint: Option<u64>) -> Result<WriterHandle, Error> {
        Ok(WriterHandle::new(UploadSlot::new(self.write(&path, mode)?)))
    }
}

impl GuestReader for Reader {
    fn next(&self, max_bytes: u32) -> Result<Vec<u8>, Error> {
        self.next(max_bytes)
    }
}
