//! Middleware: an [`Adapter`] around an [`Adapter`], the way tower layers
//! wrap services. Wasm backends, native backends and test doubles are all
//! `Arc<dyn Adapter>`, so every layer works over every backend.
//!
//! A [`Stack`] applies layers in the order they were added: the first is the
//! outermost, the one a caller meets first.
//!
//! ```no_run
//! # async fn demo(host: &wharf::Host) -> wharf::Result<()> {
//! use std::time::Duration;
//! use wharf::layers::{ConcurrencyLimit, Stack, Timeout};
//! let adapter = Stack::new()
//!     .layer(ConcurrencyLimit::new(8))
//!     .layer(Timeout::new(Duration::from_secs(300), Duration::from_secs(30)))
//!     .apply(host.adapter("local_filesystem").await?);
//! let service = wharf::StorageService::new(adapter);
//! # Ok(()) }
//! ```

mod cache;
mod checksum;
mod compress;
mod encrypt;
mod frame;
mod limit;
mod observe;
mod retry;
mod timeout;

pub use cache::Cache;
pub use checksum::Checksum;
pub use compress::Compression;
pub use encrypt::{Encryption, Keyring};
pub use limit::ConcurrencyLimit;
pub use observe::{LATENCY_BUCKETS, Metrics, OpStats, Registry, Snapshot, Tracing};
pub use retry::{DEFAULT_WRITE_BUFFER, Retry, RetryPolicy};
pub use timeout::Timeout;

use crate::adapter::Adapter;
use std::sync::Arc;

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
