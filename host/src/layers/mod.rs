//! Middleware: an [`Adapter`] around an [`Adapter`], the way tower layers
//! wrap services. Wasm backends, native backends and test doubles are all
//! `Arc<dyn Adapter>`, so every layer works over every backend.
//!
//! A [`Stack`] applies layers in the order they were added: the first is the
//! outermost, the one a caller meets first.
//!
//! Every layer is built the same way: `new` takes what the layer cannot do
//! without (`ConcurrencyLimit::new(8)`, `Cache::new(dir, max)`,
//! `Checksum::new()`, `Encryption::new()`), and `with_*` methods set the
//! rest, returning `Result` where a value is checked. Defaults are the
//! layers' `DEFAULT_*` constants and `Default` impls; `wharf.toml` uses them
//! for any key left out. A layer of your own is a [`Layer`] (its settings)
//! and a [`LayeredAdapter`] (the wrapper, which shows only what it changes).
//! The three that change the stored bytes (checksum, compression,
//! encryption) share one adapter, generic over the codec each one is.
//!
//! ```no_run
//! # async fn demo(host: &wharf::Host) -> wharf::Result<()> {
//! use std::time::Duration;
//! use wharf::layers::{ConcurrencyLimit, Stack, Timeout};
//! let adapter = Stack::new()
//!     .layer(ConcurrencyLimit::new(8))
//!     .layer(Timeout::new().with_idle(Duration::from_secs(30)))
//!     .apply(host.adapter("local_filesystem").await?);
//! let service = wharf::StorageService::new(adapter);
//! # Ok(()) }
//! ```

mod age;
mod cache;
mod checksum;
mod compression;
mod concurrency_limit;
mod encryption;
mod observe;
mod retry;
mod timeout;
mod transform;

pub use age::{DEFAULT_WORK_FACTOR, Identity as AgeIdentity, MAX_WORK_FACTOR, Recipient as AgeRecipient};
pub use cache::Cache;
pub use checksum::{Checksum, ChecksumAlgorithm};
pub use compression::Compression;
pub use concurrency_limit::ConcurrencyLimit;
pub use encryption::Encryption;
pub use observe::{LATENCY_BUCKETS, Metrics, OpStats, Registry, Snapshot, Tracing};
#[cfg(feature = "object-store")]
pub(crate) use retry::backoff;
pub use retry::{DEFAULT_WRITE_BUFFER, Retry, RetryPolicy};
pub use timeout::Timeout;

use crate::adapter::{
    Adapter, ByteRange, Capabilities, Encoding, ListPage, ObjectMeta, ObjectReader, ObjectWriter, PendingPage,
    PendingUpload, PutMode,
};
use crate::error::Result;
use crate::path::ObjectPath;
use async_trait::async_trait;
use futures::future::BoxFuture;
use std::sync::Arc;

/// An adapter around an adapter, written as only what it changes: every
/// method forwards to [`inner`](LayeredAdapter::inner) unless the layer
/// overrides it, the way OpenDAL's `LayeredAccess` does. Every
/// `LayeredAdapter` is an [`Adapter`].
///
/// Forwarding by default is what keeps a layer honest about
/// [`Adapter::encodings`]: a layer that does not touch the stored bytes
/// never mentions it, and the record of a model still lists what the layers
/// under it did.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use wharf::layers::LayeredAdapter;
/// use wharf::{Adapter, ObjectMeta, ObjectPath};
///
/// /// Counts `stat` calls; everything else passes through untouched.
/// struct CountStats {
///     inner: Arc<dyn Adapter>,
///     stats: std::sync::atomic::AtomicU64,
/// }
///
/// #[async_trait::async_trait]
/// impl LayeredAdapter for CountStats {
///     fn inner(&self) -> &dyn Adapter {
///         &*self.inner
///     }
///
///     async fn stat(&self, path: &ObjectPath) -> wharf::Result<ObjectMeta> {
///         self.stats.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         self.inner.stat(path).await
///     }
/// }
///
/// let counted: Arc<dyn Adapter> = Arc::new(CountStats {
///     inner: Arc::new(wharf::InMemory::new()),
///     stats: Default::default(),
/// });
/// assert_eq!(counted.name(), "memory");
/// assert!(counted.encodings().is_empty());
/// ```
#[async_trait]
pub trait LayeredAdapter: Send + Sync {
    /// The adapter this one wraps.
    fn inner(&self) -> &dyn Adapter;

    /// See [`Adapter::name`].
    fn name(&self) -> &str {
        self.inner().name()
    }

    /// See [`Adapter::capabilities`].
    fn capabilities(&self) -> Capabilities {
        self.inner().capabilities()
    }

    /// See [`Adapter::stat`].
    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        self.inner().stat(path).await
    }

    /// See [`Adapter::exists`].
    async fn exists(&self, path: &ObjectPath) -> Result<bool> {
        self.inner().exists(path).await
    }

    /// See [`Adapter::delete`].
    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        self.inner().delete(path).await
    }

    /// See [`Adapter::list`].
    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage> {
        self.inner().list(prefix, cursor, limit).await
    }

    /// See [`Adapter::copy`].
    async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<ObjectMeta> {
        self.inner().copy(from, to, mode).await
    }

    /// See [`Adapter::health`].
    async fn health(&self) -> Result<String> {
        self.inner().health().await
    }

    /// See [`Adapter::read`].
    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> Result<Box<dyn ObjectReader>> {
        self.inner().read(path, range).await
    }

    /// See [`Adapter::write`].
    async fn write(&self, path: &ObjectPath, mode: PutMode, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        self.inner().write(path, mode, size_hint).await
    }

    /// See [`Adapter::encodings`]. A layer that changes the stored bytes
    /// returns its own [`Encoding`] followed by the inner adapter's list.
    fn encodings(&self) -> Vec<Encoding> {
        self.inner().encodings()
    }

    /// See [`Adapter::list_pending`]. A layer that stores an object under
    /// another path must map the paths back.
    async fn list_pending(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<PendingPage> {
        self.inner().list_pending(prefix, cursor, limit).await
    }

    /// See [`Adapter::abort_pending`].
    async fn abort_pending(&self, upload: &PendingUpload) -> Result<()> {
        self.inner().abort_pending(upload).await
    }

    /// See [`Adapter::reopen_with`]. No layer changes the config.
    fn reopen_with(&self, key: &str, value: &str) -> Option<BoxFuture<'static, Result<()>>> {
        self.inner().reopen_with(key, value)
    }
}

#[async_trait]
impl<L: LayeredAdapter> Adapter for L {
    fn name(&self) -> &str {
        LayeredAdapter::name(self)
    }

    fn capabilities(&self) -> Capabilities {
        LayeredAdapter::capabilities(self)
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        LayeredAdapter::stat(self, path).await
    }

    async fn exists(&self, path: &ObjectPath) -> Result<bool> {
        LayeredAdapter::exists(self, path).await
    }

    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        LayeredAdapter::delete(self, path).await
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage> {
        LayeredAdapter::list(self, prefix, cursor, limit).await
    }

    async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<ObjectMeta> {
        LayeredAdapter::copy(self, from, to, mode).await
    }

    async fn health(&self) -> Result<String> {
        LayeredAdapter::health(self).await
    }

    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> Result<Box<dyn ObjectReader>> {
        LayeredAdapter::read(self, path, range).await
    }

    async fn write(&self, path: &ObjectPath, mode: PutMode, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        LayeredAdapter::write(self, path, mode, size_hint).await
    }

    fn encodings(&self) -> Vec<Encoding> {
        LayeredAdapter::encodings(self)
    }

    async fn list_pending(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<PendingPage> {
        LayeredAdapter::list_pending(self, prefix, cursor, limit).await
    }

    async fn abort_pending(&self, upload: &PendingUpload) -> Result<()> {
        LayeredAdapter::abort_pending(self, upload).await
    }

    fn reopen_with(&self, key: &str, value: &str) -> Option<BoxFuture<'static, Result<()>>> {
        LayeredAdapter::reopen_with(self, key, value)
    }
}

/// Wraps an adapter in another.
pub trait Layer: Send + Sync {
    /// The wrapped adapter.
    fn wrap(&self, inner: Arc<dyn Adapter>) -> Arc<dyn Adapter>;
}

/// Layers in order, first added = outermost.
#[derive(Clone, Default)]
pub struct Stack {
    layers: Vec<Arc<dyn Layer>>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack").field("layers", &self.layers.len()).finish()
    }
}

impl Stack {
    /// An empty stack: `apply` returns the adapter unchanged.
    pub fn new() -> Self {
        Stack::default()
    }

    /// Adds a layer inside the ones already added.
    pub fn layer(mut self, layer: impl Layer + 'static) -> Self {
        self.layers.push(Arc::new(layer));
        self
    }

    /// How many layers it has.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// Whether it has none.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Wraps `adapter` in every layer.
    pub fn apply(&self, adapter: Arc<dyn Adapter>) -> Arc<dyn Adapter> {
        self.layers.iter().rev().fold(adapter, |inner, layer| layer.wrap(inner))
    }
}

#[cfg(test)]
pub(crate) mod testing;
