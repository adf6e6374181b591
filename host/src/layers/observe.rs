//! Observation: [`Metrics`] (counters and latency histograms in a
//! [`Registry`], rendered in the Prometheus text format) and [`Tracing`]
//! (one span per operation). Both are the same wrapper with a different
//! sink, so they see operations identically: a stream (`read`, `write`) is
//! one operation from its opening to its end, finish, abort or drop.

use super::{Layer, LayeredAdapter};
use crate::adapter::{
    Adapter, ByteRange, ListPage, ObjectMeta, ObjectReader, ObjectWriter, PendingPage, PendingUpload, PutMode,
};
use crate::error::Result;
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::Instrument;

/// Upper bounds (seconds) of the latency histogram's buckets; `+Inf` follows.
pub const LATENCY_BUCKETS: [f64; 12] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0];

/// Counters and histograms of operations, per backend and operation.
///
/// Cheap to share (`Arc`); one lock per recorded operation or stream chunk.
/// [`Registry::snapshot`] gives plain data that can be merged and stored
/// (the `wharf` binary keeps a running total in a file between commands).
#[derive(Debug, Default)]
pub struct Registry {
    data: Mutex<Snapshot>,
}

/// The numbers a [`Registry`] holds, as data.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// Per `backend` then `operation`.
    pub operations: BTreeMap<String, BTreeMap<String, OpStats>>,
    /// Bytes read, per backend.
    pub bytes_read: BTreeMap<String, u64>,
    /// Bytes written, per backend.
    pub bytes_written: BTreeMap<String, u64>,
}

/// One backend's numbers for one operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpStats {
    /// Completed operations by outcome: `ok` or an error kind
    /// (`not-found`, `transient`, ...), or `dropped` for a stream abandoned
    /// before its end.
    pub outcomes: BTreeMap<String, u64>,
    /// Operations per latency bucket ([`LATENCY_BUCKETS`], then `+Inf`),
    /// not cumulative.
    pub buckets: Vec<u64>,
    /// Sum of latencies, seconds.
    pub seconds: f64,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Arc<Self> {
        Arc::new(Registry::default())
    }

    fn record(&self, backend: &str, op: &str, outcome: &str, seconds: f64) {
        let mut d = self.data.lock().expect("metrics lock");
        let stats = d
            .operations
            .entry(backend.to_string())
            .or_default()
            .entry(op.to_string())
            .or_default();
        *stats.outcomes.entry(outcome.to_string()).or_default() += 1;
        if stats.buckets.len() != LATENCY_BUCKETS.len() + 1 {
            stats.buckets.resize(LATENCY_BUCKETS.len() + 1, 0);
        }
        let bucket = LATENCY_BUCKETS
            .iter()
            .position(|b| seconds <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        stats.buckets[bucket] += 1;
        stats.seconds += seconds;
    }

    fn add_bytes(&self, backend: &str, read: bool, n: u64) {
        let mut d = self.data.lock().expect("metrics lock");
        let map = if read { &mut d.bytes_read } else { &mut d.bytes_written };
        *map.entry(backend.to_string()).or_default() += n;
    }

    /// A copy of the numbers.
    pub fn snapshot(&self) -> Snapshot {
        self.data.lock().expect("metrics lock").clone()
    }

    /// The numbers in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.snapshot().render()
    }
}

impl Snapshot {
    /// Adds `other`'s numbers to these.
    pub fn merge(&mut self, other: &Snapshot) {
        for (backend, ops) in &other.operations {
            for (op, s) in ops {
                let mine = self
                    .operations
                    .entry(backend.clone())
                    .or_default()
                    .entry(op.clone())
                    .or_default();
                for (outcome, n) in &s.outcomes {
                    *mine.outcomes.entry(outcome.clone()).or_default() += n;
                }
                if mine.buckets.len() < s.buckets.len() {
                    mine.buckets.resize(s.buckets.len(), 0);
                }
                for (m, n) in mine.buckets.iter_mut().zip(&s.buckets) {
                    *m += n;
                }
                mine.seconds += s.seconds;
            }
        }
        for (b, n) in &other.bytes_read {
            *self.bytes_read.entry(b.clone()).or_default() += n;
        }
        for (b, n) in &other.bytes_written {
            *self.bytes_written.entry(b.clone()).or_default() += n;
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty() && self.bytes_read.is_empty() && self.bytes_written.is_empty()
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP wharf_operations_total Storage operations completed, by outcome (ok or error kind).\n");
        out.push_str("# TYPE wharf_operations_total counter\n");
        for (backend, ops) in &self.operations {
            for (op, s) in ops {
                for (outcome, n) in &s.outcomes {
                    let _ = writeln!(
                        out,
                        "wharf_operations_total{{backend=\"{}\",operation=\"{}\",outcome=\"{}\"}} {n}",
                        label(backend),
                        label(op),
                        label(outcome)
                    );
                }
            }
        }
        out.push_str("# HELP wharf_operation_duration_seconds Latency of storage operations; a stream counts from open to end.\n");
        out.push_str("# TYPE wharf_operation_duration_seconds histogram\n");
        for (backend, ops) in &self.operations {
            for (op, s) in ops {
                let labels = format!("backend=\"{}\",operation=\"{}\"", label(backend), label(op));
                let mut cumulative = 0;
                for (i, n) in s.buckets.iter().enumerate() {
                    cumulative += n;
                    let le = LATENCY_BUCKETS.get(i).map_or("+Inf".to_string(), |b| b.to_string());
                    let _ = writeln!(
                        out,
                        "wharf_operation_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(out, "wharf_operation_duration_seconds_sum{{{labels}}} {}", s.seconds);
                let _ = writeln!(out, "wharf_operation_duration_seconds_count{{{labels}}} {cumulative}");
            }
        }
        for (name, help, map) in [
            ("wharf_read_bytes_total", "Bytes read from storage.", &self.bytes_read),
            (
                "wharf_written_bytes_total",
                "Bytes written to storage.",
                &self.bytes_written,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (backend, n) in map {
                let _ = writeln!(out, "{name}{{backend=\"{}\"}} {n}", label(backend));
            }
        }
        out
    }
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Records every operation of the backend it wraps into a [`Registry`]:
/// `wharf_operations_total{backend,operation,outcome}`,
/// `wharf_operation_duration_seconds{backend,operation}` and bytes read and
/// written. The `backend` label is the adapter's name.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
}

impl Metrics {
    /// Records into `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Metrics { registry }
    }
}

impl Layer for Metrics {
    fn wrap(&self, inner: Arc<dyn Adapter>) -> Arc<dyn Adapter> {
        Arc::new(Observed {
            inner,
            sink: Sink::Metrics(self.registry.clone()),
        })
    }
}

/// One `tracing` span per operation (target `wharf::storage`, level INFO)
/// with fields `backend`, `operation`, `path`, `size` (bytes moved, for
/// streams) and `outcome`; a DEBUG event when it ends. `RUST_LOG=wharf=debug`
/// shows them on the command line.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tracing;

impl Tracing {
    /// The layer.
    pub fn new() -> Self {
        Tracing
    }
}

impl Layer for Tracing {
    fn wrap(&self, inner: Arc<dyn Adapter>) -> Arc<dyn Adapter> {
        Arc::new(Observed {
            inner,
            sink: Sink::Tracing,
        })
    }
}

#[derive(Clone)]
enum Sink {
    Metrics(Arc<Registry>),
    Tracing,
}

/// One operation being observed.
struct Op {
    sink: Sink,
    backend: String,
    op: &'static str,
    span: tracing::Span,
    start: Instant,
    bytes: u64,
    done: bool,
}

impl Op {
    fn begin(sink: &Sink, backend: &str, op: &'static str, path: Option<&str>) -> Op {
        let span = match sink {
            Sink::Tracing => tracing::info_span!(
                target: "wharf::storage",
                "storage",
                backend,
                operation = op,
                path = path.unwrap_or(""),
                size = tracing::field::Empty,
                outcome = tracing::field::Empty,
            ),
            Sink::Metrics(_) => tracing::Span::none(),
        };
        Op {
            sink: sink.clone(),
            backend: backend.to_string(),
            op,
            span,
            start: Instant::now(),
            bytes: 0,
            done: false,
        }
    }

    fn bytes(&mut self, n: u64, read: bool) {
        self.bytes += n;
        if let Sink::Metrics(r) = &self.sink {
            r.add_bytes(&self.backend, read, n);
        }
    }

    fn end(&mut self, outcome: &str) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let seconds = self.start.elapsed().as_secs_f64();
        match &self.sink {
            Sink::Metrics(r) => r.record(&self.backend, self.op, outcome, seconds),
            Sink::Tracing => {
                self.span.record("outcome", outcome);
                if matches!(self.op, "read" | "write") {
                    self.span.record("size", self.bytes);
                }
                self.span.in_scope(|| {
                    tracing::debug!(target: "wharf::storage", seconds, "{} {outcome}", self.op);
                });
            }
        }
    }

    fn end_with<T>(&mut self, r: &Result<T>) {
        match r {
            Ok(_) => self.end("ok"),
            Err(e) => self.end(e.kind().as_str()),
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        self.end("dropped");
    }
}

struct Observed {
    inner: Arc<dyn Adapter>,
    sink: Sink,
}

impl Observed {
    async fn call<T>(&self, op: &'static str, path: Option<&str>, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let mut o = Op::begin(&self.sink, self.inner.name(), op, path);
        let r = fut.instrument(o.span.clone()).await;
        o.end_with(&r);
        r
    }
}

#[async_trait]
impl LayeredAdapter for Observed {
    fn inner(&self) -> &dyn Adapter {
        &*self.inner
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        self.call("stat", Some(path.as_str()), self.inner.stat(path)).await
    }

    async fn exists(&self, path: &ObjectPath) -> Result<bool> {
        self.call("exists", Some(path.as_str()), self.inner.exists(path)).await
    }

    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        self.call("delete", Some(path.as_str()), self.inner.delete(path)).await
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage> {
        self.call("list", Some(prefix), self.inner.list(prefix, cursor, limit))
            .await
    }

    async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<ObjectMeta> {
        self.call("copy", Some(to.as_str()), self.inner.copy(from, to, mode))
            .await
    }

    async fn health(&self) -> Result<String> {
        self.call("health", None, self.inner.health()).await
    }

    async fn list_pending(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<PendingPage> {
        self.call(
            "list_pending",
            Some(prefix),
            self.inner.list_pending(prefix, cursor, limit),
        )
        .await
    }

    async fn abort_pending(&self, upload: &PendingUpload) -> Result<()> {
        self.call("abort_pending", Some(&upload.path), self.inner.abort_pending(upload))
            .await
    }

    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> Result<Box<dyn ObjectReader>> {
        let mut o = Op::begin(&self.sink, self.inner.name(), "read", Some(path.as_str()));
        let r = self.inner.read(path, range).instrument(o.span.clone()).await;
        match r {
            Ok(inner) => Ok(Box::new(ObservedReader { inner, op: o })),
            Err(e) => {
                o.end(e.kind().as_str());
                Err(e)
            }
        }
    }

    async fn write(&self, path: &ObjectPath, mode: PutMode, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        let mut o = Op::begin(&self.sink, self.inner.name(), "write", Some(path.as_str()));
        let r = self.inner.write(path, mode, size_hint).instrument(o.span.clone()).await;
        match r {
            Ok(inner) => Ok(Box::new(ObservedWriter { inner, op: o })),
            Err(e) => {
                o.end(e.kind().as_str());
                Err(e)
            }
        }
    }
}

struct ObservedReader {
    inner: Box<dyn ObjectReader>,
    op: Op,
}

#[async_trait]
impl ObjectReader for ObservedReader {
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>> {
        let r = self.inner.next_chunk(max).instrument(self.op.span.clone()).await;
        match &r {
            Ok(Some(b)) => self.op.bytes(b.len() as u64, true),
            Ok(None) => self.op.end("ok"),
            Err(e) => self.op.end(e.kind().as_str()),
        }
        r
    }
}

struct ObservedWriter {
    inner: Box<dyn ObjectWriter>,
    op: Op,
}

#[async_trait]
impl ObjectWriter for ObservedWriter {
    async fn append(&mut self, chunk: Bytes) -> Result<()> {
        let n = chunk.len() as u64;
        let r = self.inner.append(chunk).instrument(self.op.span.clone()).await;
        match &r {
            Ok(()) => self.op.bytes(n, false),
            Err(e) => self.op.end(e.kind().as_str()),
        }
        r
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let ObservedWriter { inner, mut op } = *self;
        let r = inner.finish().instrument(op.span.clone()).await;
        op.end_with(&r);
        r
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        let ObservedWriter { inner, mut op } = *self;
        let r = inner.abort().instrument(op.span.clone()).await;
        op.end(if r.is_ok() { "aborted" } else { "abort-failed" });
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conformance suite, through both layers over `InMemory`; every
    /// operation it made is counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_suite_passes_through_metrics_and_tracing() {
        let registry = Registry::new();
        let stack = crate::layers::Stack::new()
            .layer(Metrics::new(registry.clone()))
            .layer(Tracing::new());
        crate::layers::testing::conformance_over_memory(stack).await;
        let text = registry.snapshot().render();
        assert!(
            text.contains("backend=\"memory\",operation=\"write\",outcome=\"ok\""),
            "{text}"
        );
    }

    #[test]
    fn render_is_cumulative_and_merge_adds() {
        let r = Registry::new();
        r.record("s3", "stat", "ok", 0.002);
        r.record("s3", "stat", "not-found", 2.0);
        r.add_bytes("s3", true, 10);
        let mut total = r.snapshot();
        total.merge(&r.snapshot());
        let text = total.render();
        assert!(
            text.contains("wharf_operations_total{backend=\"s3\",operation=\"stat\",outcome=\"ok\"} 2"),
            "{text}"
        );
        assert!(text.contains("le=\"0.005\"} 2"), "{text}");
        assert!(text.contains("le=\"1\"} 2"), "{text}");
        assert!(text.contains("le=\"5\"} 4"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 4"), "{text}");
        assert!(text.contains("wharf_read_bytes_total{backend=\"s3\"} 20"), "{text}");
        let json = serde_json::to_string(&total).unwrap();
        assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), total);
    }
}
