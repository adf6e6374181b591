//! [`InMemory`]: a native [`Adapter`] that keeps objects in memory.
//!
//! For tests (wharf's own layer tests and fuzz targets, and embedders'),
//! like object_store's `InMemory`: it passes the same conformance suite as
//! every Wasm adapter, needs no runtime and no compiled guest, and answers
//! every capability. Objects live whole in memory, so it is not for models
//! larger than the memory at hand.

use crate::adapter::{
    Adapter, ByteRange, Capabilities, Encoding, ListPage, ObjectMeta, ObjectReader, ObjectWriter, PutMode,
};
use crate::error::{Error, ErrorKind, Result};
use crate::path::{ObjectPath, check_prefix};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// An in-memory backend. Clones share the same objects.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> wharf::Result<()> {
/// use wharf::{Adapter, InMemory, ObjectPath, PutMode};
/// let store = InMemory::new();
/// let path = ObjectPath::parse("models/a/v1/model.bin")?;
/// let mut w = store.write(&path, PutMode::Create, None).await?;
/// w.append(bytes::Bytes::from_static(b"weights")).await?;
/// assert_eq!(w.finish().await?.size, 7);
/// assert!(store.exists(&path).await?);
/// # Ok(()) }
/// ```
#[derive(Clone, Default)]
pub struct InMemory {
    inner: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    objects: Mutex<BTreeMap<String, Stored>>,
    /// Source of etags: every write gets a new one.
    generation: AtomicU64,
}

#[derive(Clone)]
struct Stored {
    bytes: Bytes,
    etag: String,
    modified_ms: u64,
}

impl Stored {
    fn meta(&self, path: &str) -> ObjectMeta {
        ObjectMeta {
            path: path.to_string(),
            size: self.bytes.len() as u64,
            etag: Some(self.etag.clone()),
            modified_ms: Some(self.modified_ms),
            stored_size: None,
        }
    }
}

/// The largest `list` page.
const LIST_MAX: u32 = 1000;
/// The largest single `append`.
const MAX_CHUNK: u64 = 64 << 20;

impl InMemory {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The bytes stored at `path` as they are, below every layer: what a
    /// layer over this store wrote (its header, digests, ciphertext), for
    /// tests that look at or tamper with the stored format.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> wharf::Result<()> {
    /// use wharf::{Adapter, InMemory, ObjectPath, PutMode};
    /// let store = InMemory::new();
    /// let path = ObjectPath::parse("m.bin")?;
    /// let mut w = store.write(&path, PutMode::Create, None).await?;
    /// w.append(bytes::Bytes::from_static(b"weights")).await?;
    /// let before = w.finish().await?;
    ///
    /// let mut stored = store.stored_bytes(&path).unwrap().to_vec();
    /// stored[0] ^= 0x01;
    /// let after = store.replace_stored_bytes(&path, stored.into());
    /// assert_ne!(after.etag, before.etag);
    /// assert_eq!(store.stored_bytes(&path).unwrap(), "veights");
    /// # Ok(()) }
    /// ```
    pub fn stored_bytes(&self, path: &ObjectPath) -> Option<Bytes> {
        self.objects().get(path.as_str()).map(|s| s.bytes.clone())
    }

    /// Stores `bytes` at `path` as they are, below every layer, with a new
    /// etag: a change made behind wharf's back (or tampering, in tests).
    pub fn replace_stored_bytes(&self, path: &ObjectPath, bytes: Bytes) -> ObjectMeta {
        self.commit(path.as_str(), &PutMode::Overwrite, bytes, "write")
            .expect("an overwrite always commits")
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Stored>> {
        self.inner.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn not_found(op: &'static str, path: &str) -> Error {
        Error::new(ErrorKind::NotFound, "no such object").at("memory", op, Some(path))
    }

    /// Stores `bytes` at `path` under `mode`, atomically.
    fn commit(&self, path: &str, mode: &PutMode, bytes: Bytes, op: &'static str) -> Result<ObjectMeta> {
        let mut objects = self.objects();
        match (mode, objects.get(path)) {
            (PutMode::Create, Some(_)) => {
                return Err(Error::new(ErrorKind::AlreadyExists, "the object already exists").at(
                    "memory",
                    op,
                    Some(path),
                ));
            }
            (PutMode::Update(want), found) if found.map(|s| &s.etag) != Some(want) => {
                return Err(Error::new(
                    ErrorKind::PreconditionFailed,
                    match found {
                        Some(s) => format!("etag is {}, not {want}", s.etag),
                        None => "the object does not exist".into(),
                    },
                )
                .at("memory", op, Some(path)));
            }
            _ => {}
        }
        let stored = Stored {
            bytes,
            etag: format!("m{}", self.inner.generation.fetch_add(1, Ordering::Relaxed) + 1),
            modified_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        let meta = stored.meta(path);
        objects.insert(path.to_string(), stored);
        Ok(meta)
    }
}

#[async_trait]
impl Adapter for InMemory {
    fn name(&self) -> &str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_range: true,
            write_create: true,
            write_update: true,
            copy: true,
            list_max_limit: LIST_MAX,
            write_min_chunk: 0,
            write_max_chunk: MAX_CHUNK,
            max_object_size: None,
        }
    }

    fn encodings(&self) -> Vec<Encoding> {
        Vec::new()
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        let p = path.as_str();
        self.objects()
            .get(p)
            .map(|s| s.meta(p))
            .ok_or_else(|| Self::not_found("stat", p))
    }

    async fn exists(&self, path: &ObjectPath) -> Result<bool> {
        Ok(self.objects().contains_key(path.as_str()))
    }

    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        self.objects().remove(path.as_str());
        Ok(())
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage> {
        check_prefix(prefix).map_err(|e| e.at("memory", "list", Some(prefix)))?;
        let limit = limit.clamp(1, LIST_MAX) as usize;
        let objects = self.objects();
        let start = match cursor {
            Some(c) => std::ops::Bound::Excluded(c.to_string()),
            None => std::ops::Bound::Included(prefix.to_string()),
        };
        let mut entries = Vec::with_capacity(limit);
        let mut more = false;
        for (path, stored) in objects.range((start, std::ops::Bound::Unbounded)) {
            if !path.starts_with(prefix) {
                if path.as_str() > prefix {
                    break;
                }
                continue;
            }
            if entries.len() == limit {
                more = true;
                break;
            }
            entries.push(stored.meta(path));
        }
        let next_cursor = more.then(|| entries.last().map(|e| e.path.clone())).flatten();
        Ok(ListPage { entries, next_cursor })
    }

    async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<ObjectMeta> {
        let bytes = self
            .objects()
            .get(from.as_str())
            .map(|s| s.bytes.clone())
            .ok_or_else(|| Self::not_found("copy", from.as_str()))?;
        self.commit(to.as_str(), &mode, bytes, "copy")
    }

    async fn health(&self) -> Result<String> {
        Ok(format!("in memory, {} objects", self.objects().len()))
    }

    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> Result<Box<dyn ObjectReader>> {
        let p = path.as_str();
        let bytes = self
            .objects()
            .get(p)
            .map(|s| s.bytes.clone())
            .ok_or_else(|| Self::not_found("read", p))?;
        let len = bytes.len() as u64;
        let (start, end) = match range {
            None => (0, len),
            // Past the end is clipped (an empty read), as the contract says.
            Some(r) => {
                let end = r.end.unwrap_or(len).min(len);
                (r.start.min(end), end)
            }
        };
        Ok(Box::new(MemoryReader {
            rest: bytes.slice(start as usize..end as usize),
        }))
    }

    async fn write(&self, path: &ObjectPath, mode: PutMode, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(MemoryWriter {
            store: self.clone(),
            path: path.as_str().to_string(),
            mode,
            buf: BytesMut::with_capacity(size_hint.unwrap_or(0).min(MAX_CHUNK) as usize),
        }))
    }
}

struct MemoryReader {
    rest: Bytes,
}

#[async_trait]
impl ObjectReader for MemoryReader {
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let n = max.max(1).min(self.rest.len());
        Ok(Some(self.rest.split_to(n)))
    }
}

struct MemoryWriter {
    store: InMemory,
    path: String,
    mode: PutMode,
    buf: BytesMut,
}

#[async_trait]
impl ObjectWriter for MemoryWriter {
    async fn append(&mut self, chunk: Bytes) -> Result<()> {
        if chunk.len() as u64 > MAX_CHUNK {
            return Err(
                Error::invalid(format!("a chunk of {} bytes is over {MAX_CHUNK}", chunk.len())).at(
                    "memory",
                    "write",
                    Some(&self.path),
                ),
            );
        }
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let MemoryWriter { store, path, mode, buf } = *self;
        store.commit(&path, &mode, buf.freeze(), "write")
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}
