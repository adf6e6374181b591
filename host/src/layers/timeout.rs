//! Per-operation and per-idle-stream timeouts.

use super::{Layer, LayeredAdapter};
use crate::adapter::{
    Adapter, ByteRange, ListPage, ObjectMeta, ObjectReader, ObjectWriter, PendingPage, PendingUpload, PutMode,
};
use crate::error::{Error, ErrorKind, Result};
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::Bytes;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Fails an operation that takes longer than `operation`, and a read or
/// write stream that makes no progress for `idle`, as `transient` (a retry
/// layer outside this one may try again). A stream's total time is not
/// bounded: a large model may take hours; only stalls are.
///
/// ```
/// use std::time::Duration;
/// use wharf::layers::Timeout;
/// let t = Timeout::new().with_idle(Duration::from_secs(10));
/// assert_eq!(t.operation(), Timeout::DEFAULT_OPERATION);
/// assert_eq!(t.idle(), Duration::from_secs(10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout {
    operation: Duration,
    idle: Duration,
}

impl Timeout {
    /// Default bound of a call that is not a stream step: 300 s.
    pub const DEFAULT_OPERATION: Duration = Duration::from_secs(300);
    /// Default bound of one stream step: 60 s.
    pub const DEFAULT_IDLE: Duration = Duration::from_secs(60);

    /// The defaults: [`Timeout::DEFAULT_OPERATION`], [`Timeout::DEFAULT_IDLE`].
    pub fn new() -> Self {
        Timeout {
            operation: Self::DEFAULT_OPERATION,
            idle: Self::DEFAULT_IDLE,
        }
    }

    /// Bounds every call that is not a stream step.
    pub fn with_operation(self, operation: Duration) -> Self {
        Timeout { operation, ..self }
    }

    /// Bounds each `next_chunk`, `append` and `finish`.
    pub fn with_idle(self, idle: Duration) -> Self {
        Timeout { idle, ..self }
    }

    /// The bound of a call that is not a stream step.
    pub fn operation(&self) -> Duration {
        self.operation
    }

    /// The bound of one stream step.
    pub fn idle(&self) -> Duration {
        self.idle
    }
}

impl Default for Timeout {
    fn default() -> Self {
        Timeout::new()
    }
}

impl Layer for Timeout {
    fn wrap(&self, inner: Arc<dyn Adapter>) -> Arc<dyn Adapter> {
        Arc::new(TimeoutAdapter { inner, cfg: *self })
    }
}

struct TimeoutAdapter {
    inner: Arc<dyn Adapter>,
    cfg: Timeout,
}

async fn bounded<T>(
    limit: Duration,
    backend: &str,
    op: &'static str,
    path: Option<&str>,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::new(ErrorKind::Transient, format!("no answer within {limit:?}")).at(backend, op, path)),
    }
}

#[async_trait]
impl LayeredAdapter for TimeoutAdapter {
    fn inner(&self) -> &dyn Adapter {
        &*self.inner
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        bounded(
            self.cfg.operation,
            self.inner.name(),
            "stat",
            Some(path.as_str()),
            self.inner.stat(path),
        )
        .await
    }

    async fn exists(&self, path: &ObjectPath) -> Result<bool> {
        bounded(
            self.cfg.operation,
            self.inner.name(),
            "exists",
            Some(path.as_str()),
            self.inner.exists(path),
        )
        .await
    }

    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        bounded(
            self.cfg.operation,
            self.inner.name(),
            "delete",
            Some(path.as_str()),
            self.inner.delete(path),
        )
        .await
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage> {
        let fut = self.inner.list(prefix, cursor, limit);
        bounded(self.cfg.operation, self.inner.name(), "list", Some(prefix), fut).await
    }

    async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<ObjectMeta> {
        let fut = self.inner.copy(from, to, mode);
        bounded(self.cfg.operation, self.inner.name(), "copy", Some(to.as_str()), fut).await
    }

    async fn health(&self) -> Result<String> {
        bounded(
            self.cfg.operation,
            self.inner.name(),
            "health",
            None,
            self.inner.health(),
        )
        .await
    }

    async fn list_pending(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<PendingPage> {
        bounded(
            self.cfg.operation,
            self.inner.name(),
            "list_pending",
            Some(prefix),
            self.inner.list_pending(prefix, cursor, limit),
        )
        .await
    }

    async fn abort_pending(&self, upload: &PendingUpload) -> Result<()> {
        bounded(
            self.cfg.operation,
            self.inner.name(),
            "abort_pending",
            Some(&upload.path),
            self.inner.abort_pending(upload),
        )
        .await
    }

    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> Result<Box<dyn ObjectReader>> {
        let fut = self.inner.read(path, range);
        let inner = bounded(self.cfg.operation, self.inner.name(), "read", Some(path.as_str()), fut).await?;
        Ok(Box::new(TimeoutReader {
            inner,
            idle: self.cfg.idle,
            backend: self.inner.name().to_string(),
            path: path.as_str().to_string(),
        }))
    }

    async fn write(&self, path: &ObjectPath, mode: PutMode, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        let fut = self.inner.write(path, mode, size_hint);
        let inner = bounded(self.cfg.operation, self.inner.name(), "write", Some(path.as_str()), fut).await?;
        Ok(Box::new(TimeoutWriter {
            inner,
            idle: self.cfg.idle,
            backend: self.inner.name().to_string(),
            path: path.as_str().to_string(),
        }))
    }
}

struct TimeoutReader {
    inner: Box<dyn ObjectReader>,
    idle: Duration,
    backend: String,
    path: String,
}

#[async_trait]
impl ObjectReader for TimeoutReader {
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>> {
        bounded(
            self.idle,
            &self.backend,
            "read",
            Some(&self.path),
            self.inner.next_chunk(max),
        )
        .await
    }
}

struct TimeoutWriter {
    inner: Box<dyn ObjectWriter>,
    idle: Duration,
    backend: String,
    path: String,
}

#[async_trait]
impl ObjectWriter for TimeoutWriter {
    async fn append(&mut self, chunk: Bytes) -> Result<()> {
        bounded(
            self.idle,
            &self.backend,
            "write",
            Some(&self.path),
            self.inner.append(chunk),
        )
        .await
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let TimeoutWriter {
            inner,
            idle,
            backend,
            path,
        } = *self;
        bounded(idle, &backend, "write", Some(&path), inner.finish()).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        let TimeoutWriter {
            inner,
            idle,
            backend,
            path,
        } = *self;
        bounded(idle, &backend, "abort", Some(&path), inner.abort()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conformance suite, through this layer over `InMemory`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_suite_passes_through_timeout() {
        let stack = crate::layers::Stack::new().layer(Timeout::new());
        crate::layers::testing::conformance_over_memory(stack).await;
    }

    /// `stat("sleep")` sleeps for an hour, like the misbehave fixture's.
    struct Hang {
        inner: Arc<dyn Adapter>,
    }

    #[async_trait]
    impl LayeredAdapter for Hang {
        fn inner(&self) -> &dyn Adapter {
            &*self.inner
        }
        async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
            if path.as_str() == "sleep" {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            self.inner.stat(path).await
        }
    }

    /// A backend whose `stat("sleep")` hangs: the layer gives up after its
    /// operation timeout with a `transient` error that names the backend,
    /// the operation and the path.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn timeout_cuts_a_hanging_call() {
        let store = crate::InMemory::new();
        let ok = ObjectPath::parse("ok").unwrap();
        store.replace_stored_bytes(&ok, Bytes::from_static(b"fine"));
        let adapter = crate::layers::Stack::new()
            .layer(
                Timeout::new()
                    .with_operation(Duration::from_millis(300))
                    .with_idle(Duration::from_millis(300)),
            )
            .apply(Arc::new(Hang { inner: Arc::new(store) }));
        let e = adapter.stat(&ObjectPath::parse("sleep").unwrap()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
        assert_eq!(
            (e.backend(), e.operation(), e.path()),
            (Some("memory"), Some("stat"), Some("sleep"))
        );
        // The backend still answers afterwards.
        adapter.stat(&ok).await.unwrap();
    }
}
