//! What the byte-transforming layers (checksum, compression, encryption)
//! share: one adapter, [`Transform`], generic over a [`Codec`] that says
//! what the layer does to the bytes; where their errors point ([`Site`]);
//! stored bytes fetched ahead by a task ([`Prefetch`]); stored bytes
//! appended by a task in the sizes the inner adapter accepts ([`Sink`]);
//! and the reading of formats made of fixed-size chunks ([`Chunked`]).
//!
//! The tasks overlap a layer's CPU work with the inner adapter's I/O, and
//! the CPU work itself (hashing, sealing, compressing, in batches of about
//! 1 MiB or one append) runs on tokio's blocking pool ([`cpu`]). Measured:
//! as plain tasks, a producer and the consumer it wakes tend to share one
//! worker (tokio's LIFO slot), and a stack of layers ran on one core. On a
//! stack every layer's work now gets its own thread. Channels are bounded
//! to a few messages: memory per stream stays a few chunks or appends
//! (about 10 MiB per layer with 4 MiB appends), whatever the object's size.

mod chunked;
mod cpu;
mod prefetch;
mod sink;
mod site;
#[cfg(test)]
mod tests;

pub(in crate::layers) use chunked::{Chunked, Opener, impossible_size, read_chunked, read_header};
pub(in crate::layers) use cpu::cpu;
pub(in crate::layers) use prefetch::{Prefetch, read_stored};
pub(in crate::layers) use sink::Sink;
pub(in crate::layers) use site::Site;

use super::LayeredAdapter;
use crate::adapter::{
    Adapter, ByteRange, Capabilities, Encoding, ListPage, ObjectMeta, ObjectReader, ObjectWriter, PutMode,
};
use crate::error::{ErrorKind, Result};
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;

/// What one byte-transforming layer does; [`Transform`] does the rest
/// (logical sizes in `stat`, `list` and `copy`, the capabilities seen
/// through the layer, the [`Sink`] under every write, the encodings).
#[async_trait]
pub(in crate::layers) trait Codec: Send + Sync + 'static {
    /// The layer's name in errors (`checksum`).
    const LAYER: &'static str;

    /// How `ModelStorageInfo` records what the layer does.
    fn encoding(&self) -> Encoding;

    /// The largest logical object that fits in an inner object of at most
    /// `inner` bytes (`None`: unbounded), if bounded.
    fn max_object_size(&self, inner: Option<u64>) -> Option<u64>;

    /// The stored size of `logical` bytes, when it is known before writing.
    fn stored_size(&self, logical: u64) -> Option<u64>;

    /// The logical size of the stored object `meta`.
    async fn logical_size(&self, inner: &dyn Adapter, meta: &ObjectMeta, site: &Site) -> Result<u64>;

    /// Opens the read `req` asks for.
    async fn read(&self, req: ReadRequest<'_>) -> Result<Box<dyn ObjectReader>>;

    /// A writer of logical bytes that writes the stored ones into `sink`
    /// (its header first).
    async fn write(&self, sink: Sink, site: Site) -> Result<Box<dyn ObjectWriter>>;
}

/// A read through a transforming layer: `range` (logical bytes) of `path`
/// in `inner`, with errors located at `site`.
pub(in crate::layers) struct ReadRequest<'a> {
    pub(in crate::layers) inner: &'a dyn Adapter,
    pub(in crate::layers) path: &'a ObjectPath,
    pub(in crate::layers) range: Option<ByteRange>,
    pub(in crate::layers) site: Site,
}

/// The adapter of a byte-transforming layer: `codec` over `inner`.
pub(in crate::layers) struct Transform<C> {
    inner: Arc<dyn Adapter>,
    codec: C,
}

impl<C: Codec> Transform<C> {
    pub(in crate::layers) fn wrap(inner: Arc<dyn Adapter>, codec: C) -> Arc<dyn Adapter> {
        Arc::new(Transform { inner, codec })
    }

    fn site(&self, op: &'static str, path: &str) -> Site {
        Site::new(C::LAYER, self.inner.name(), op, path)
    }

    async fn to_logical(&self, meta: ObjectMeta, op: &'static str) -> Result<ObjectMeta> {
        let site = self.site(op, &meta.path);
        let n = self.codec.logical_size(&*self.inner, &meta, &site).await?;
        Ok(logical_meta(meta, n))
    }
}

#[async_trait]
impl<C: Codec> LayeredAdapter for Transform<C> {
    fn inner(&self) -> &dyn Adapter {
        &*self.inner
    }

    fn capabilities(&self) -> Capabilities {
        let c = self.inner.capabilities();
        Capabilities {
            // The layer gathers what it stores into appends the inner
            // adapter accepts, whatever the caller appends.
            write_min_chunk: 0,
            max_object_size: self.codec.max_object_size(c.max_object_size),
            ..c
        }
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        let meta = self.inner.stat(path).await?;
        self.to_logical(meta, "stat").await
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage> {
        let page = self.inner.list(prefix, cursor, limit).await?;
        // A codec may read each object's footer: a few at a time.
        let entries: Vec<Option<ObjectMeta>> = futures::stream::iter(page.entries)
            .map(|m| async {
                match self.to_logical(m, "list").await {
                    Ok(m) => Ok(Some(m)),
                    // Deleted since it was listed.
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffered(8)
            .try_collect()
            .await?;
        Ok(ListPage {
            entries: entries.into_iter().flatten().collect(),
            next_cursor: page.next_cursor,
        })
    }

    async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<ObjectMeta> {
        let meta = self.inner.copy(from, to, mode).await?;
        self.to_logical(meta, "copy").await
    }

    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> Result<Box<dyn ObjectReader>> {
        let site = self.site("read", path.as_str());
        let req = ReadRequest {
            inner: &*self.inner,
            path,
            range,
            site,
        };
        self.codec.read(req).await
    }

    async fn write(&self, path: &ObjectPath, mode: PutMode, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        let site = self.site("write", path.as_str());
        let hint = size_hint.and_then(|n| self.codec.stored_size(n));
        let inner = self.inner.write(path, mode, hint).await?;
        let sink = Sink::spawn(inner, &self.inner.capabilities());
        self.codec.write(sink, site).await
    }

    fn encodings(&self) -> Vec<Encoding> {
        let mut e = vec![self.codec.encoding()];
        e.extend(self.inner.encodings());
        e
    }
}

/// Largest chunk or frame a stored header may declare: a larger one is
/// corruption, and would make a reader buffer without bound.
pub(in crate::layers) const MAX_CHUNK: u64 = 64 << 20;
/// `meta` of a stored object seen through a layer: `size` is the logical
/// size, `stored_size` what the storage holds (kept from `meta` when an
/// inner layer already set it).
fn logical_meta(mut meta: ObjectMeta, logical: u64) -> ObjectMeta {
    meta.stored_size = Some(meta.stored_size.unwrap_or(meta.size));
    meta.size = logical;
    meta
}

/// `start..end` of an object of `size` bytes that `range` asks for;
/// `invalid` if it ends before it starts.
pub(in crate::layers) fn clamp_range(range: ByteRange, size: u64, site: &Site) -> Result<(u64, u64)> {
    if range.end.is_some_and(|e| e < range.start) {
        return Err(site.error(ErrorKind::Invalid, "range end before start"));
    }
    let end = range.end.unwrap_or(size).min(size);
    Ok((range.start.min(end), end))
}

/// A reader with nothing to read.
pub(in crate::layers) struct EmptyReader;

#[async_trait]
impl ObjectReader for EmptyReader {
    async fn next_chunk(&mut self, _max: usize) -> Result<Option<Bytes>> {
        Ok(None)
    }
}
