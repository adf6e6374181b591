//! Per-operation and per-idle-stream timeouts.

use super::Layer;
use crate::adapter::{
    Adapter, ByteRange, Capabilities, Encoding, ListPage, ObjectMeta, ObjectReader, ObjectWriter, PutMode,
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
#[derive(Clone, Copy, Debug)]
pub struct Timeout {
    operation: Duration,
    idle: Duration,
}

impl Timeout {
    /// `operation` bounds every call that is not a stream step; `idle`
    /// bounds each `next_chunk`, `append` and `finish`.
    pub fn new(operation: Duration, idle: Duration) -> Self {
        Timeout { operation, idle }
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
impl Adapter for TimeoutAdapter {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn capabilities(&self) -> Result<Capabilities> {
        bounded(
            self.cfg.operation,
            self.name(),
            "capabilities",
            None,
            self.inner.capabilities(),
        )
        .await
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        bounded(
            self.cfg.operation,
            self.name(),
            "stat",
            Some(path.as_str()),
            self.inner.stat(path),
        )
        .await
    }

    async fn exists(&self, path: &ObjectPath) -> Result<bool> {
        bounded(
            self.cfg.operation,
            self.name(),
            "exists",
            Some(path.as_str()),
            self.inner.exists(path),
        )
        .await
    }

    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        bounded(
            self.cfg.operation,
            self.name(),
            "delete",
            Some(path.as_str()),
            self.inner.delete(path),
        )
        .await
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage> {
        let fut = self.inner.list(prefix, cursor, limit);
        bounded(self.cfg.operation, self.name(), "list", Some(prefix), fut).await
    }

    async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<ObjectMeta> {
        let fut = self.inner.copy(from, to, mode);
        bounded(self.cfg.operation, self.name(), "copy", Some(to.as_str()), fut).await
    }

    async fn health(&self) -> Result<String> {
        bounded(self.cfg.operation, self.name(), "health", None, self.inner.health()).await
    }

    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> Result<Box<dyn ObjectReader>> {
        let fut = self.inner.read(path, range);
        let inner = bounded(self.cfg.operation, self.name(), "read", Some(path.as_str()), fut).await?;
        Ok(Box::new(TimeoutReader {
            inner,
            idle: self.cfg.idle,
            backend: self.name().to_string(),
            path: path.as_str().to_string(),
        }))
    }

    async fn write(&self, path: &ObjectPath, mode: PutMode, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        let fut = self.inner.write(path, mode, size_hint);
        let inner = bounded(self.cfg.operation, self.name(), "write", Some(path.as_str()), fut).await?;
        Ok(Box::new(TimeoutWriter {
            inner,
            idle: self.cfg.idle,
            backend: self.name().to_string(),
            path: path.as_str().to_string(),
        }))
    }

    fn encodings(&self) -> Vec<Encoding> {
        self.inner.encodings()
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
