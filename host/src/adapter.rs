//! The storage-adapter contract as one async Rust trait.
//!
//! [`crate::runtime::WasmAdapter`] implements it over a Wasm component;
//! middleware and tests implement it too, so they all compose.

use crate::error::{Error, ErrorKind, Result};
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::Bytes;
use futures::future::BoxFuture;
use serde::Serialize;

/// How a write treats an object already at the destination.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum PutMode {
    /// Replace whatever is there.
    #[default]
    Overwrite,
    /// Fail with `already-exists` if an object is there (atomic).
    Create,
    /// Replace only if the current etag is this one.
    Update(String),
}

/// A byte range: `start` inclusive, `end` exclusive, `None` to the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte; `None` reads to the end.
    pub end: Option<u64>,
}

/// What the storage knows of one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectMeta {
    /// The object's path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Version tag; changes whenever the content does.
    pub etag: Option<String>,
    /// Last modification, ms since the Unix epoch.
    pub modified_ms: Option<u64>,
    /// Bytes the storage holds for it, when a layer (compression,
    /// encryption, checksum frames) made that differ from `size`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_size: Option<u64>,
}

/// A change a layer makes to the bytes it stores; [`Adapter::encodings`]
/// lists them outermost first, and `ModelStorageInfo` records them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Encoding {
    /// Per-chunk digests stored with the data.
    Checksum {
        /// Digest algorithm (`blake3`, `sha256`).
        algorithm: String,
        /// Logical bytes per digest.
        chunk_size: u64,
    },
    /// Compressed.
    Compression {
        /// Algorithm (`zstd`).
        algorithm: String,
        /// Level written with.
        level: i32,
    },
    /// Encrypted.
    Encryption {
        /// The format (`age-encryption.org/v1`).
        algorithm: String,
        /// The age recipients (`age1…`, public keys) new objects are
        /// encrypted to, or `["scrypt"]` for a passphrase.
        recipients: Vec<String>,
    },
}

/// One page of a listing.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ListPage {
    /// Objects in ascending byte order of their paths.
    pub entries: Vec<ObjectMeta>,
    /// Cursor for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// A write that was started and never committed: invisible to `list`, yet
/// holding storage (an S3 multipart upload, a temporary file, staged chunks).
/// What a crashed save leaves behind; see [`Adapter::list_pending`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingUpload {
    /// The object path the write was for.
    pub path: String,
    /// The adapter's id of the write, opaque to the host.
    pub upload_id: String,
    /// When the write started, ms since the Unix epoch, if the storage says.
    pub started_ms: Option<u64>,
    /// Bytes the storage holds for it, if known.
    pub staged_bytes: Option<u64>,
}

/// One page of [`Adapter::list_pending`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct PendingPage {
    /// Pending uploads, in the adapter's order.
    pub entries: Vec<PendingUpload>,
    /// Cursor for the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

/// What a backend can do; see the contract's `capabilities` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Ranged reads without reading the whole object.
    pub read_range: bool,
    /// Atomic `PutMode::Create`.
    pub write_create: bool,
    /// Atomic `PutMode::Update`.
    pub write_update: bool,
    /// `copy` inside the backend.
    pub copy: bool,
    /// Largest `limit` `list` honours.
    pub list_max_limit: u32,
    /// Smallest `append` but the last; 0 for none.
    pub write_min_chunk: u64,
    /// Largest single `append`.
    pub write_max_chunk: u64,
    /// Largest object, if limited.
    pub max_object_size: Option<u64>,
}

/// A storage backend: the contract's `backend` resource.
///
/// # Example
///
/// ```no_run
/// # async fn demo(adapter: &dyn wharf::Adapter) -> wharf::Result<()> {
/// use wharf::{ObjectPath, PutMode};
/// let path = ObjectPath::parse("models/demo/v1/model.bin")?;
/// let mut w = adapter.write(&path, PutMode::Create, Some(5)).await?;
/// w.append(bytes::Bytes::from_static(b"hello")).await?;
/// let meta = w.finish().await?;
/// assert_eq!(meta.size, 5);
/// # Ok(()) }
/// ```
#[async_trait]
pub trait Adapter: Send + Sync {
    /// The backend's name (`local_filesystem`, `aws_s3`, ...).
    fn name(&self) -> &str;
    /// What the backend can do. Known once the backend is open, so this
    /// never waits and never fails.
    fn capabilities(&self) -> Capabilities;
    /// Metadata of one object.
    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta>;
    /// Whether an object exists.
    async fn exists(&self, path: &ObjectPath) -> Result<bool>;
    /// Removes an object; removing a missing object succeeds.
    async fn delete(&self, path: &ObjectPath) -> Result<()>;
    /// One page of the objects under `prefix`, after `cursor`.
    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage>;
    /// Copies an object inside the backend.
    async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<ObjectMeta>;
    /// Checks the storage; returns what was checked.
    async fn health(&self) -> Result<String>;
    /// Starts reading an object or a range of it.
    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> Result<Box<dyn ObjectReader>>;
    /// Starts writing an object; nothing is visible until `finish`.
    async fn write(&self, path: &ObjectPath, mode: PutMode, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>>;
    /// What layers do to the stored bytes, outermost first: empty for a
    /// backend itself. A layer written as a
    /// [`LayeredAdapter`](crate::layers::LayeredAdapter) forwards its inner
    /// adapter's list unless it changes bytes, when it puts itself first.
    fn encodings(&self) -> Vec<Encoding>;
    /// One page of the writes under `prefix` that were started and never
    /// committed (what a crash leaves inside the storage), after `cursor`.
    /// Writes in progress right now are listed too; `started_ms` tells them
    /// apart. `Unsupported` when the backend has no such thing to show.
    async fn list_pending(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<PendingPage> {
        let _ = (cursor, limit);
        Err(pending_unsupported(self.name(), "list_pending", prefix))
    }
    /// Discards one pending upload and what it staged; one already gone
    /// succeeds. Never touches a committed object.
    async fn abort_pending(&self, upload: &PendingUpload) -> Result<()> {
        Err(pending_unsupported(self.name(), "abort_pending", &upload.path))
    }
    /// Opening this backend once more with `key = value` added to its
    /// config: a future answering what the adapter's `open` said (the
    /// instance it opened in is dropped), or `None` when there is no config
    /// to open with (a native adapter). The conformance suite checks with
    /// it that an unknown key is refused; layers forward it.
    fn reopen_with(&self, key: &str, value: &str) -> Option<BoxFuture<'static, Result<()>>> {
        let _ = (key, value);
        None
    }
}

/// The answer of a backend that keeps no pending uploads it could show.
pub(crate) fn pending_unsupported(backend: &str, op: &'static str, path: &str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "this backend cannot list or abort pending uploads",
    )
    .at(backend, op, Some(path))
}

/// An object being read.
#[async_trait]
pub trait ObjectReader: Send {
    /// The next bytes, at most `max` of them; `None` at the end.
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>>;
}

/// An object being written. Dropping it without `finish` discards it.
#[async_trait]
pub trait ObjectWriter: Send {
    /// Appends bytes.
    async fn append(&mut self, chunk: Bytes) -> Result<()>;
    /// Makes the object visible.
    async fn finish(self: Box<Self>) -> Result<ObjectMeta>;
    /// Discards what was written.
    async fn abort(self: Box<Self>) -> Result<()>;
}
