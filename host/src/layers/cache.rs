//! A read-through cache of whole objects in a local directory.
//!
//! - **Fresh**: every read first asks the backend for the object's etag (one
//!   `stat`); a cached copy is served only when the etag and size match, so
//!   an object changed behind wharf's back is never served stale. Objects
//!   without an etag are never cached. Writes, deletes and copies through
//!   wharf drop the entry as well.
//! - **Verified**: a cached file is kept with the sha256 of each 1 MiB
//!   chunk; every chunk is checked before a byte of it is returned. A
//!   corrupt chunk drops the entry and the read continues from the backend
//!   at the same offset, so the caller still gets correct bytes.
//! - **Bounded**: the directory holds at most `max_bytes` of objects; the
//!   least recently used go first. An object larger than the bound is not
//!   cached. Entries survive restarts and may be shared by processes
//!   (files are written under temporary names and renamed into place).
//! - **Filled by full reads only**: a ranged read of a cached object is
//!   served from the cache; a ranged read of an uncached one goes to the
//!   backend and fills nothing. A fill is committed only if the read ended
//!   at the stat's size and a second stat still shows the same etag.
//!
//! Put it inside encryption in a stack (after it in `wharf.toml`) to keep
//! only ciphertext on the local disk.

use super::{Layer, LayeredAdapter};
use crate::adapter::{Adapter, ByteRange, ObjectMeta, ObjectReader, ObjectWriter, PutMode};
use crate::error::{Error, ErrorKind, Result};
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Bytes covered by one recorded digest.
const CHUNK: u64 = 1 << 20;

/// The cache layer; see the module docs.
#[derive(Clone)]
pub struct Cache {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("dir", &self.shared.dir)
            .field("max_bytes", &self.shared.max_bytes)
            .finish()
    }
}

struct Shared {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    /// key → (bytes, last use).
    entries: HashMap<String, (u64, u64)>,
    total: u64,
    tick: u64,
}

/// What is kept next to a cached object's bytes.
#[derive(Serialize, Deserialize)]
struct Entry {
    backend: String,
    path: String,
    etag: String,
    size: u64,
    /// sha256 of each [`CHUNK`], hex.
    chunks: Vec<String>,
}

impl Cache {
    /// A cache in `dir` (created if missing) holding at most `max_bytes`.
    /// Entries already there are kept, oldest-used first in line for
    /// eviction; leftovers of interrupted fills are removed.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating cache `{}`", dir.display()), e))?;
        let mut found = Vec::new();
        let listing =
            std::fs::read_dir(&dir).map_err(|e| Error::io(format!("reading cache `{}`", dir.display()), e))?;
        for item in listing.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with("tmp-") {
                let _ = std::fs::remove_file(item.path());
            } else if let Some(key) = name.strip_suffix(".meta") {
                let data = dir.join(format!("{key}.data"));
                match (std::fs::metadata(&data), item.metadata().and_then(|m| m.modified())) {
                    (Ok(d), Ok(used)) => found.push((used, key.to_string(), d.len())),
                    _ => {
                        let _ = std::fs::remove_file(item.path());
                    }
                }
            }
        }
        found.sort();
        let mut index = Index::default();
        for (_, key, len) in found {
            index.tick += 1;
            index.total += len;
            index.entries.insert(key, (len, index.tick));
        }
        let shared = Arc::new(Shared {
            dir,
            max_bytes,
            index: Mutex::new(index),
        });
        shared.evict(None);
        Ok(Cache { shared })
    }

    /// Bytes of objects the cache holds now.
    pub fn used_bytes(&self) -> u64 {
        self.shared.index.lock().expect("cache index").total
    }
}

impl Layer for Cache {
    fn wrap(&self, inner: Arc<dyn Adapter>) -> Arc<dyn Adapter> {
        Arc::new(CacheAdapter {
            inner,
            shared: self.shared.clone(),
        })
    }
}

impl Shared {
    fn key(backend: &str, path: &str) -> String {
        let mut h = Sha256::new();
        h.update(backend.as_bytes());
        h.update([0]);
        h.update(path.as_bytes());
        hex::encode(h.finalize())
    }

    fn data_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.data"))
    }

    fn meta_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.meta"))
    }

    /// Drops an entry (meta first, so a reader never trusts a half-removed one).
    fn remove(&self, key: &str) {
        let _ = std::fs::remove_file(self.meta_path(key));
        let _ = std::fs::remove_file(self.data_path(key));
        let mut index = self.index.lock().expect("cache index");
        if let Some((len, _)) = index.entries.remove(key) {
            index.total -= len;
        }
    }

    fn touch(&self, key: &str) {
        let mut index = self.index.lock().expect("cache index");
        index.tick += 1;
        let tick = index.tick;
        if let Some(e) = index.entries.get_mut(key) {
            e.1 = tick;
        }
        drop(index);
        // The order survives restarts through the meta file's mtime.
        if let Ok(f) = std::fs::File::options().append(true).open(self.meta_path(key)) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
    }

    fn insert(&self, key: &str, len: u64) {
        let mut index = self.index.lock().expect("cache index");
        index.tick += 1;
        let tick = index.tick;
        if let Some((old, _)) = index.entries.insert(key.to_string(), (len, tick)) {
            index.total -= old;
        }
        index.total += len;
        drop(index);
        self.evict(Some(key));
    }

    /// Removes least recently used entries until the total fits; `keep` is
    /// removed last.
    fn evict(&self, keep: Option<&str>) {
        loop {
            let victim = {
                let index = self.index.lock().expect("cache index");
                if index.total <= self.max_bytes {
                    return;
                }
                index
                    .entries
                    .iter()
                    .filter(|(k, _)| Some(k.as_str()) != keep)
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(k, _)| k.clone())
                    .or_else(|| keep.map(str::to_string))
            };
            match victim {
                Some(k) => self.remove(&k),
                None => return,
            }
        }
    }

    async fn load_entry(&self, key: &str) -> Option<Entry> {
        let text = tokio::fs::read(self.meta_path(key)).await.ok()?;
        serde_json::from_slice(&text).ok()
    }
}

struct CacheAdapter {
    inner: Arc<dyn Adapter>,
    shared: Arc<Shared>,
}

impl CacheAdapter {
    fn invalidate(&self, path: &ObjectPath) {
        self.shared.remove(&Shared::key(self.inner.name(), path.as_str()));
    }
}

#[async_trait]
impl LayeredAdapter for CacheAdapter {
    fn inner(&self) -> &dyn Adapter {
        &*self.inner
    }

    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        self.invalidate(path);
        let r = self.inner.delete(path).await;
        self.invalidate(path);
        r
    }

    async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<ObjectMeta> {
        self.invalidate(to);
        let r = self.inner.copy(from, to, mode).await;
        self.invalidate(to);
        r
    }

    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> Result<Box<dyn ObjectReader>> {
        let meta = self.inner.stat(path).await?;
        let Some(etag) = meta.etag.clone() else {
            return self.inner.read(path, range).await;
        };
        let key = Shared::key(self.inner.name(), path.as_str());
        if let Some(entry) = self.shared.load_entry(&key).await
            && entry.etag == etag
            && entry.size == meta.size
            && entry.path == path.as_str()
            && entry.chunks.len() as u64 == meta.size.div_ceil(CHUNK)
        {
            let (start, end) = bounds(range, meta.size, self.inner.name(), path)?;
            if let Ok(file) = tokio::fs::File::open(self.shared.data_path(&key)).await {
                self.shared.touch(&key);
                return Ok(Box::new(CachedReader {
                    file,
                    entry,
                    key,
                    pos: start,
                    end,
                    buf: Bytes::new(),
                    fallback: None,
                    inner: self.inner.clone(),
                    shared: self.shared.clone(),
                    path: path.clone(),
                }));
            }
        }
        let reader = self.inner.read(path, range).await?;
        if range.is_some() || meta.size > self.shared.max_bytes {
            return Ok(reader);
        }
        let tmp = self.shared.dir.join(format!("tmp-{}", random_hex()));
        match tokio::fs::File::create(&tmp).await {
            Ok(file) => Ok(Box::new(FillingReader {
                reader,
                fill: Some(Fill {
                    file,
                    tmp,
                    key,
                    etag,
                    size: meta.size,
                    written: 0,
                    hasher: Sha256::new(),
                    chunks: Vec::new(),
                    path: path.clone(),
                }),
                inner: self.inner.clone(),
                shared: self.shared.clone(),
            })),
            // A cache that cannot write is bypassed, never an error.
            Err(_) => Ok(reader),
        }
    }

    async fn write(&self, path: &ObjectPath, mode: PutMode, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        self.invalidate(path);
        let inner = self.inner.write(path, mode, size_hint).await?;
        Ok(Box::new(InvalidatingWriter {
            inner,
            key: Shared::key(self.inner.name(), path.as_str()),
            shared: self.shared.clone(),
        }))
    }
}

/// A range's `[start, end)` within an object of `size` bytes.
fn bounds(range: Option<ByteRange>, size: u64, backend: &str, path: &ObjectPath) -> Result<(u64, u64)> {
    let Some(r) = range else { return Ok((0, size)) };
    let end = r.end.unwrap_or(size).min(size);
    if r.start > end || (r.start >= size && size > 0) || r.end.is_some_and(|e| e < r.start) {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!("range {}..{:?} outside {size} bytes", r.start, r.end),
        )
        .at(backend, "read", Some(path.as_str())));
    }
    Ok((r.start, end))
}

fn random_hex() -> String {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).expect("the OS random source");
    hex::encode(b)
}

/// Serves a cached object, chunk by verified chunk.
struct CachedReader {
    file: tokio::fs::File,
    entry: Entry,
    key: String,
    /// Next byte to hand out.
    pos: u64,
    end: u64,
    /// Verified bytes starting at `pos`.
    buf: Bytes,
    /// Set once a corrupt chunk sent the rest of the read to the backend.
    fallback: Option<Box<dyn ObjectReader>>,
    inner: Arc<dyn Adapter>,
    shared: Arc<Shared>,
    path: ObjectPath,
}

impl CachedReader {
    /// Reads and checks the chunk holding `pos`; `None` if it is corrupt.
    async fn load_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        let index = self.pos / CHUNK;
        let chunk_start = index * CHUNK;
        let len = (self.entry.size - chunk_start).min(CHUNK) as usize;
        self.file.seek(std::io::SeekFrom::Start(chunk_start)).await?;
        let mut data = BytesMut::zeroed(len);
        if let Err(e) = self.file.read_exact(&mut data).await {
            return if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Ok(None)
            } else {
                Err(e)
            };
        }
        let digest = hex::encode(Sha256::digest(&data));
        if self.entry.chunks.get(index as usize) != Some(&digest) {
            return Ok(None);
        }
        let data = data.freeze();
        Ok(Some(data.slice((self.pos - chunk_start) as usize..)))
    }

    /// Continues from the backend at `pos`, after dropping the bad entry.
    async fn fall_back(&mut self) -> Result<()> {
        tracing::warn!(
            target: "wharf::storage",
            backend = self.inner.name(),
            path = self.path.as_str(),
            "cached copy is corrupt at byte {}; dropped it and reading from the backend",
            self.pos
        );
        self.shared.remove(&self.key);
        let ranged = self.inner.capabilities().read_range;
        let range = ByteRange {
            start: self.pos,
            end: Some(self.end),
        };
        let reader = if ranged {
            self.inner.read(&self.path, Some(range)).await?
        } else {
            let mut r = self.inner.read(&self.path, None).await?;
            skip(&mut *r, self.pos).await?;
            r
        };
        // Checked again: the object must still be the one that was cached.
        let now = self.inner.stat(&self.path).await?;
        if now.etag.as_deref() != Some(self.entry.etag.as_str()) {
            return Err(
                Error::new(ErrorKind::Transient, "object changed while it was being read").at(
                    self.inner.name(),
                    "read",
                    Some(self.path.as_str()),
                ),
            );
        }
        self.fallback = Some(reader);
        Ok(())
    }
}

/// Reads and discards `n` bytes.
async fn skip(r: &mut dyn ObjectReader, mut n: u64) -> Result<()> {
    while n > 0 {
        match r.next_chunk(n.min(CHUNK) as usize).await? {
            Some(b) => n -= b.len() as u64,
            None => return Err(Error::new(ErrorKind::Integrity, "object ended early")),
        }
    }
    Ok(())
}

#[async_trait]
impl ObjectReader for CachedReader {
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        if let Some(f) = &mut self.fallback {
            let r = f.next_chunk(max).await?;
            if let Some(b) = &r {
                self.pos += b.len() as u64;
            }
            return Ok(r);
        }
        if self.buf.is_empty() {
            match self.load_chunk().await {
                Ok(Some(b)) => self.buf = b,
                Ok(None) | Err(_) => {
                    self.fall_back().await?;
                    return self.next_chunk(max).await;
                }
            }
        }
        let n = self.buf.len().min(max.max(1)).min((self.end - self.pos) as usize);
        let out = self.buf.split_to(n);
        self.pos += n as u64;
        Ok(Some(out))
    }
}

/// A cache fill in progress.
struct Fill {
    file: tokio::fs::File,
    tmp: PathBuf,
    key: String,
    etag: String,
    size: u64,
    written: u64,
    /// Digest of the current chunk.
    hasher: Sha256,
    chunks: Vec<String>,
    path: ObjectPath,
}

impl Fill {
    async fn add(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        self.file.write_all(data).await?;
        while !data.is_empty() {
            let room = (CHUNK - self.written % CHUNK) as usize;
            let n = room.min(data.len());
            self.hasher.update(&data[..n]);
            self.written += n as u64;
            data = &data[n..];
            if self.written.is_multiple_of(CHUNK) {
                let h = std::mem::take(&mut self.hasher);
                self.chunks.push(hex::encode(h.finalize()));
            }
        }
        Ok(())
    }
}

/// Streams from the backend and copies into the cache on the way.
struct FillingReader {
    reader: Box<dyn ObjectReader>,
    fill: Option<Fill>,
    inner: Arc<dyn Adapter>,
    shared: Arc<Shared>,
}

impl FillingReader {
    fn discard(&mut self) {
        if let Some(f) = self.fill.take() {
            let _ = std::fs::remove_file(&f.tmp);
        }
    }

    async fn commit(&mut self) {
        let Some(mut f) = self.fill.take() else { return };
        if !f.written.is_multiple_of(CHUNK) {
            let h = std::mem::take(&mut f.hasher);
            f.chunks.push(hex::encode(h.finalize()));
        }
        let same = match self.inner.stat(&f.path).await {
            Ok(m) => m.etag.as_deref() == Some(f.etag.as_str()) && m.size == f.size,
            Err(_) => false,
        };
        let entry = Entry {
            backend: self.inner.name().to_string(),
            path: f.path.as_str().to_string(),
            etag: f.etag.clone(),
            size: f.size,
            chunks: std::mem::take(&mut f.chunks),
        };
        let ok = same
            && f.written == f.size
            && f.file.flush().await.is_ok()
            && commit_files(&self.shared, &f.key, &f.tmp, &entry).is_ok();
        if ok {
            self.shared.insert(&f.key, f.size);
        } else {
            let _ = std::fs::remove_file(&f.tmp);
        }
    }
}

fn commit_files(shared: &Shared, key: &str, tmp: &Path, entry: &Entry) -> std::io::Result<()> {
    let meta_tmp = shared.dir.join(format!("tmp-{}", random_hex()));
    std::fs::write(&meta_tmp, serde_json::to_vec(entry).expect("serializable"))?;
    // Data first, then the meta that vouches for it.
    std::fs::rename(tmp, shared.data_path(key))?;
    std::fs::rename(&meta_tmp, shared.meta_path(key))
}

impl Drop for FillingReader {
    fn drop(&mut self) {
        self.discard();
    }
}

#[async_trait]
impl ObjectReader for FillingReader {
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>> {
        match self.reader.next_chunk(max).await {
            Ok(Some(b)) => {
                if let Some(f) = &mut self.fill
                    && (f.add(&b).await.is_err() || f.written > f.size)
                {
                    self.discard();
                }
                Ok(Some(b))
            }
            Ok(None) => {
                self.commit().await;
                Ok(None)
            }
            Err(e) => {
                self.discard();
                Err(e)
            }
        }
    }
}

/// Drops the cache entry again once a write is visible.
struct InvalidatingWriter {
    inner: Box<dyn ObjectWriter>,
    key: String,
    shared: Arc<Shared>,
}

#[async_trait]
impl ObjectWriter for InvalidatingWriter {
    async fn append(&mut self, chunk: Bytes) -> Result<()> {
        self.inner.append(chunk).await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let r = self.inner.finish().await;
        self.shared.remove(&self.key);
        r
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conformance suite, through this layer over `InMemory`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_suite_passes_through_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let stack = crate::layers::Stack::new().layer(Cache::new(dir.path().to_path_buf(), 256 << 20).unwrap());
        crate::layers::testing::conformance_over_memory(stack).await;
    }

    use crate::layers::testing::{over_memory, p};
    use crate::layers::{Metrics, Registry, Stack};
    use crate::{InMemory, PutMode};

    /// `cache` over a fresh store, with a metrics layer between them that
    /// counts what reaches the store.
    fn cached(cache: &Cache) -> (InMemory, Arc<dyn Adapter>, Arc<Registry>) {
        let registry = Registry::new();
        let (store, adapter) = over_memory(Stack::new().layer(cache.clone()).layer(Metrics::new(registry.clone())));
        (store, adapter, registry)
    }

    /// How many `read` operations reached the store.
    fn backend_reads(registry: &Registry) -> u64 {
        let s = registry.snapshot();
        s.operations
            .get("memory")
            .and_then(|ops| ops.get("read"))
            .map_or(0, |r| r.outcomes.values().sum())
    }

    async fn put(adapter: &dyn Adapter, path: &str, data: &[u8]) {
        let mut w = adapter.write(&p(path), PutMode::Overwrite, None).await.unwrap();
        w.append(Bytes::copy_from_slice(data)).await.unwrap();
        w.finish().await.unwrap();
    }

    async fn get(adapter: &dyn Adapter, path: &str, range: Option<ByteRange>) -> Vec<u8> {
        crate::layers::testing::get(adapter, path, range).await.unwrap()
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    /// A second full read and ranged reads come from the cache; a write, a
    /// delete or a change behind wharf's back is never served stale.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cache_serves_fresh_bytes_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path(), 64 << 20).unwrap();
        let (store, adapter, registry) = cached(&cache);
        let v1 = pattern(3 << 20 | 12345, 1);
        put(&*adapter, "m/model.bin", &v1).await;

        assert_eq!(get(&*adapter, "m/model.bin", None).await, v1);
        assert_eq!(backend_reads(&registry), 1);
        assert_eq!(cache.used_bytes(), v1.len() as u64);
        assert_eq!(get(&*adapter, "m/model.bin", None).await, v1);
        let range = ByteRange {
            start: (1 << 20) - 7,
            end: Some((2 << 20) + 9),
        };
        assert_eq!(
            get(&*adapter, "m/model.bin", Some(range)).await,
            v1[(1 << 20) - 7..(2 << 20) + 9]
        );
        assert_eq!(backend_reads(&registry), 1, "hits must not read the backend");

        // A write through wharf drops the entry.
        let v2 = pattern(1 << 20, 2);
        put(&*adapter, "m/model.bin", &v2).await;
        assert_eq!(get(&*adapter, "m/model.bin", None).await, v2);
        assert_eq!(backend_reads(&registry), 2);

        // A change behind wharf's back: the etag differs, so no stale bytes.
        let v3 = pattern(1 << 20, 3);
        store.replace_stored_bytes(&p("m/model.bin"), v3.clone().into());
        assert_eq!(get(&*adapter, "m/model.bin", None).await, v3);
        assert_eq!(backend_reads(&registry), 3);

        // A delete through wharf drops it too.
        adapter.delete(&p("m/model.bin")).await.unwrap();
        assert_eq!(cache.used_bytes(), 0);
        let e = adapter
            .read(&p("m/model.bin"), None)
            .await
            .err()
            .expect("a deleted object is not served from the cache");
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    }

    /// A byte flipped in a cached file is caught by its chunk digest: the
    /// read still returns the right bytes (from the backend) and the entry
    /// is gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_cache_file_is_never_served() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path(), 64 << 20).unwrap();
        let (_, adapter, registry) = cached(&cache);
        let v = pattern(5 << 20, 7);
        put(&*adapter, "c.bin", &v).await;
        assert_eq!(get(&*adapter, "c.bin", None).await, v);
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "data"))
            .collect();
        assert_eq!(files.len(), 1);
        let mut bytes = std::fs::read(&files[0]).unwrap();
        bytes[(3 << 20) + 5] ^= 0x40;
        std::fs::write(&files[0], &bytes).unwrap();

        assert_eq!(get(&*adapter, "c.bin", None).await, v);
        assert_eq!(
            backend_reads(&registry),
            2,
            "the corrupt chunk sent the read to the backend"
        );
        // Refilled by that read? No: a fallback read does not fill; the next one does.
        assert_eq!(get(&*adapter, "c.bin", None).await, v);
        assert_eq!(get(&*adapter, "c.bin", None).await, v);
        assert_eq!(backend_reads(&registry), 3);
    }

    /// The directory stays under its bound; the least recently used go
    /// first, and entries survive a new `Cache` over the same directory.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cache_evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path(), 3 << 20).unwrap();
        let (_, adapter, registry) = cached(&cache);
        for i in 0..4u8 {
            put(&*adapter, &format!("o{i}"), &pattern(1 << 20, i)).await;
        }
        for name in ["o0", "o1", "o2"] {
            get(&*adapter, name, None).await;
        }
        get(&*adapter, "o0", None).await; // o0 is now the most recent; o1 the least.
        assert_eq!(backend_reads(&registry), 3);
        get(&*adapter, "o3", None).await; // evicts o1
        assert_eq!(backend_reads(&registry), 4);
        assert!(cache.used_bytes() <= 3 << 20, "{}", cache.used_bytes());
        for name in ["o0", "o2", "o3"] {
            assert_eq!(
                get(&*adapter, name, None).await,
                pattern(1 << 20, name[1..].parse().unwrap())
            );
        }
        assert_eq!(backend_reads(&registry), 4, "o0, o2, o3 stayed cached");
        get(&*adapter, "o1", None).await;
        assert_eq!(backend_reads(&registry), 5, "o1 was evicted");

        // A larger-than-the-bound object is not cached at all.
        put(&*adapter, "big", &pattern(4 << 20, 9)).await;
        get(&*adapter, "big", None).await;
        get(&*adapter, "big", None).await;
        assert_eq!(backend_reads(&registry), 7);

        let reopened = Cache::new(dir.path(), 3 << 20).unwrap();
        assert_eq!(reopened.used_bytes(), cache.used_bytes());
    }
}
