//! A bound on operations in flight per backend.

use super::{Layer, LayeredAdapter};
use crate::adapter::{
    Adapter, ByteRange, ListPage, ObjectMeta, ObjectReader, ObjectWriter, PendingPage, PendingUpload, PutMode,
};
use crate::error::Result;
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `n` operations in flight through this layer; more wait their
/// turn. An open reader or writer holds its permit until it is finished,
/// aborted or dropped, so `n` also bounds streams (and the memory and
/// connections they hold).
#[derive(Clone, Debug)]
pub struct ConcurrencyLimit {
    permits: Arc<Semaphore>,
}

impl ConcurrencyLimit {
    /// The default bound: 16.
    pub const DEFAULT_MAX: usize = 16;

    /// A limit of `n` (at least 1).
    pub fn new(n: usize) -> Self {
        ConcurrencyLimit {
            permits: Arc::new(Semaphore::new(n.max(1))),
        }
    }
}

impl Default for ConcurrencyLimit {
    /// A limit of [`ConcurrencyLimit::DEFAULT_MAX`].
    fn default() -> Self {
        ConcurrencyLimit::new(Self::DEFAULT_MAX)
    }
}

impl Layer for ConcurrencyLimit {
    fn wrap(&self, inner: Arc<dyn Adapter>) -> Arc<dyn Adapter> {
        Arc::new(LimitAdapter {
            inner,
            permits: self.permits.clone(),
        })
    }
}

struct LimitAdapter {
    inner: Arc<dyn Adapter>,
    permits: Arc<Semaphore>,
}

impl LimitAdapter {
    async fn permit(&self) -> OwnedSemaphorePermit {
        self.permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }
}

#[async_trait]
impl LayeredAdapter for LimitAdapter {
    fn inner(&self) -> &dyn Adapter {
        &*self.inner
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        let _p = self.permit().await;
        self.inner.stat(path).await
    }

    async fn exists(&self, path: &ObjectPath) -> Result<bool> {
        let _p = self.permit().await;
        self.inner.exists(path).await
    }

    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        let _p = self.permit().await;
        self.inner.delete(path).await
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage> {
        let _p = self.permit().await;
        self.inner.list(prefix, cursor, limit).await
    }

    async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<ObjectMeta> {
        let _p = self.permit().await;
        self.inner.copy(from, to, mode).await
    }

    async fn health(&self) -> Result<String> {
        let _p = self.permit().await;
        self.inner.health().await
    }

    async fn list_pending(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<PendingPage> {
        let _p = self.permit().await;
        self.inner.list_pending(prefix, cursor, limit).await
    }

    async fn abort_pending(&self, upload: &PendingUpload) -> Result<()> {
        let _p = self.permit().await;
        self.inner.abort_pending(upload).await
    }

    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> Result<Box<dyn ObjectReader>> {
        let permit = self.permit().await;
        let inner = self.inner.read(path, range).await?;
        Ok(Box::new(Held { inner, _permit: permit }))
    }

    async fn write(&self, path: &ObjectPath, mode: PutMode, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        let permit = self.permit().await;
        let inner = self.inner.write(path, mode, size_hint).await?;
        Ok(Box::new(Held { inner, _permit: permit }))
    }
}

/// A stream and the permit it holds.
struct Held<T> {
    inner: T,
    _permit: OwnedSemaphorePermit,
}

#[async_trait]
impl ObjectReader for Held<Box<dyn ObjectReader>> {
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>> {
        self.inner.next_chunk(max).await
    }
}

#[async_trait]
impl ObjectWriter for Held<Box<dyn ObjectWriter>> {
    async fn append(&mut self, chunk: Bytes) -> Result<()> {
        self.inner.append(chunk).await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        self.inner.finish().await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conformance suite, through this layer over `InMemory`. Its
    /// racing cases hold four writers open at once: no fewer permits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_suite_passes_through_a_concurrency_limit() {
        let stack = crate::layers::Stack::new().layer(ConcurrencyLimit::new(4));
        crate::layers::testing::conformance_over_memory(stack).await;
    }

    /// With a limit of 2, two open readers hold both permits: a third
    /// operation waits until one of them is dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrency_limit_holds_streams() {
        use std::time::Duration;
        let (_, adapter) =
            crate::layers::testing::over_memory(crate::layers::Stack::new().layer(ConcurrencyLimit::new(2)));
        let path = ObjectPath::parse("x").unwrap();
        let mut w = adapter.write(&path, PutMode::Overwrite, None).await.unwrap();
        w.append(Bytes::from_static(b"hello")).await.unwrap();
        w.finish().await.unwrap();

        let r1 = adapter.read(&path, None).await.unwrap();
        let _r2 = adapter.read(&path, None).await.unwrap();
        let third = {
            let adapter = adapter.clone();
            let path = path.clone();
            tokio::spawn(async move { adapter.stat(&path).await })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !third.is_finished(),
            "a third operation ran while two streams held both permits"
        );
        drop(r1);
        let meta = tokio::time::timeout(Duration::from_secs(30), third)
            .await
            .expect("the waiting operation runs once a permit is free")
            .unwrap()
            .unwrap();
        assert_eq!(meta.size, 5);
    }
}
