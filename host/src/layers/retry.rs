//! Retries of transient failures, with exponential backoff and full
//! jitter, that never re-send data the layer no longer holds.

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
use std::time::{Duration, Instant};

/// Bytes of a write the layer holds so it can replay it: 8 MiB.
pub const DEFAULT_WRITE_BUFFER: u64 = 8 << 20;

/// When to try again, and for how long.
///
/// After the n-th failure the layer waits a random time between zero and
/// `min(max_backoff, initial_backoff × 2^(n-1))` ("full jitter"), so that
/// many clients failing together do not come back together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included; 1 never retries.
    /// Default 4.
    pub max_attempts: u32,
    /// Upper bound of the first wait. Default 100 ms.
    pub initial_backoff: Duration,
    /// Upper bound of any wait. Default 5 s.
    pub max_backoff: Duration,
    /// No new attempt starts once this long has passed since the first
    /// one began (an attempt already running is not cut: that is the
    /// [`Timeout`](super::Timeout) layer's job). Default 60 s.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

/// Tries again what failed with a `transient` error ([`Error::is_retryable`]);
/// every other error passes through at once.
///
/// - `stat`, `exists`, `list`, `health`, `delete`, and
///   `copy` in `Overwrite` mode are retried as they are (all idempotent).
///   A `Create` or `Update` copy is retried only when the failure is known
///   to have happened before the request reached the storage (an
///   `unreachable` error: no connection was made); after any other failure the copy may have
///   happened, and a second one would fail for having succeeded.
/// - Reads: opening is retried. Before it, a `stat` pins the object's
///   version (etag, else modification time). A reader that fails mid-stream
///   goes on from the byte it reached with a ranged read (or, where the
///   backend has no ranged reads, a re-read that skips what was delivered),
///   after a `stat` shows the same version; a changed object ends the read
///   with `precondition-failed`, never with bytes of two versions. A resumed
///   read is confirmed by one more `stat` at its end. An object with neither
///   etag nor modification time is not resumed once bytes were delivered.
/// - Writes: opening is retried. The layer holds the appended chunks while
///   they total at most `write_buffer` bytes (default 8 MiB); if an `append`
///   or `finish` then fails transiently, it redoes the whole write from them
///   (a new `write`, the same appends, `finish`). A write that grows past the
///   buffer drops it and passes errors through: large writes rely on the
///   adapter's own part-level handling (multipart uploads, resumable
///   sessions). A failed `finish` is replayed in `Overwrite` mode; in
///   `Create` mode only if a `stat` shows no object, and in `Update(etag)`
///   mode only if it still shows `etag`. Race: the failed attempt may still
///   land after that `stat`; the replay is conditional too, so it then fails
///   (`already-exists`, `precondition-failed`) although the data landed:
///   never a silent overwrite, sometimes a false failure.
/// - A stream's retry budget restarts whenever it makes progress.
///
/// Put it outside [`Timeout`](super::Timeout), whose expiries are
/// `transient`: then a stalled call or stream is abandoned and retried.
///
/// # Example
///
/// ```no_run
/// # async fn demo(host: &wharf::Host) -> wharf::Result<()> {
/// use std::time::Duration;
/// use wharf::layers::{Retry, RetryPolicy, Stack, Timeout};
/// let adapter = Stack::new()
///     .layer(Retry::new().with_policy(RetryPolicy { max_attempts: 6, ..Default::default() }))
///     .layer(Timeout::new().with_idle(Duration::from_secs(30)))
///     .apply(host.adapter("local_filesystem").await?);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    policy: RetryPolicy,
    write_buffer: u64,
}

impl Retry {
    /// Retries per [`RetryPolicy::default`], with a write buffer of
    /// [`DEFAULT_WRITE_BUFFER`].
    pub fn new() -> Self {
        Retry {
            policy: RetryPolicy::default(),
            write_buffer: DEFAULT_WRITE_BUFFER,
        }
    }

    /// Retries per `policy`.
    pub fn with_policy(self, policy: RetryPolicy) -> Self {
        Retry { policy, ..self }
    }

    /// How many bytes of a write are held for a replay (0: writes are never
    /// replayed, only opened again).
    pub fn with_write_buffer(self, bytes: u64) -> Self {
        Retry {
            write_buffer: bytes,
            ..self
        }
    }

    /// The policy.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Bytes of a write held for a replay.
    pub fn write_buffer(&self) -> u64 {
        self.write_buffer
    }
}

impl Default for Retry {
    fn default() -> Self {
        Retry::new()
    }
}

impl Layer for Retry {
    fn wrap(&self, inner: Arc<dyn Adapter>) -> Arc<dyn Adapter> {
        Arc::new(RetryAdapter {
            core: Arc::new(Core {
                inner,
                policy: self.policy,
            }),
            write_buffer: self.write_buffer,
        })
    }
}

/// What the adapter, its readers and its writers share.
struct Core {
    inner: Arc<dyn Adapter>,
    policy: RetryPolicy,
}

impl Core {
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// Runs `f` until it succeeds, fails for good, or the budget is spent.
    async fn retry<T, F, Fut>(&self, op: &'static str, path: Option<&str>, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.retry_when(op, path, Error::is_retryable, &mut f).await
    }

    /// [`Core::retry`] with the failures worth another attempt chosen by `when`.
    async fn retry_when<T, F, Fut>(
        &self,
        op: &'static str,
        path: Option<&str>,
        when: fn(&Error) -> bool,
        mut f: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempts = Attempts::new(self.policy);
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if when(&e) && attempts.wait(&e, self.name(), op, path).await => {}
                Err(e) => return Err(attempts.give_up(e, self.name(), op, path)),
            }
        }
    }
}

/// The attempts made at one operation (or one stretch of a stream without
/// progress).
struct Attempts {
    policy: RetryPolicy,
    start: Instant,
    made: u32,
}

impl Attempts {
    fn new(policy: RetryPolicy) -> Self {
        Attempts {
            policy,
            start: Instant::now(),
            made: 1,
        }
    }

    /// After failure `e`: waits out the backoff and says whether another
    /// attempt may start.
    async fn wait(&mut self, e: &Error, backend: &str, op: &'static str, path: Option<&str>) -> bool {
        let p = &self.policy;
        if !e.is_retryable() || self.made >= p.max_attempts {
            return false;
        }
        let left = p.max_elapsed.saturating_sub(self.start.elapsed());
        if left.is_zero() {
            return false;
        }
        let delay = backoff(p.initial_backoff, p.max_backoff, self.made).min(left);
        tracing::info!(
            backend,
            operation = op,
            path = path.unwrap_or(""),
            attempt = self.made + 1,
            delay_ms = delay.as_millis() as u64,
            error = %e,
            "retrying after a transient failure"
        );
        tokio::time::sleep(delay).await;
        self.made += 1;
        true
    }

    /// The error to return: `e` itself after a single attempt, else `e`
    /// saying how many attempts were made and for how long.
    fn give_up(&self, e: Error, backend: &str, op: &'static str, path: Option<&str>) -> Error {
        if self.made <= 1 {
            return e;
        }
        let verb = if e.is_retryable() { "gave up after" } else { "after" };
        let message = format!(
            "{} ({verb} {} attempts in {:.1?})",
            e.message(),
            self.made,
            self.start.elapsed()
        );
        relabel(&e, message, backend, op, path)
    }
}

/// `e`'s kind and location with a new message and operation.
fn relabel(e: &Error, message: String, backend: &str, op: &'static str, path: Option<&str>) -> Error {
    Error::new(e.kind(), message).at(e.backend().unwrap_or(backend), op, e.path().or(path))
}

/// The pause after failed attempt `n` (from 1): random in `[0, min(max,
/// initial × 2^(n-1))]` ("full jitter"), so that clients failing together
/// do not come back together.
pub(crate) fn backoff(initial: Duration, max: Duration, n: u32) -> Duration {
    jitter(initial.saturating_mul(1u32 << n.saturating_sub(1).min(20)).min(max))
}

/// A random duration in `[0, cap]`.
fn jitter(cap: Duration) -> Duration {
    let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        return Duration::ZERO;
    }
    let r = getrandom::u64().unwrap_or(nanos / 2);
    Duration::from_nanos(r % nanos.saturating_add(1))
}

/// Whether `e` is known to have happened before the request reached the
/// storage (the contract's `unreachable`), so that even a non-idempotent
/// request can be sent again.
fn never_reached_storage(e: &Error) -> bool {
    e.kind().never_reached_storage()
}

struct RetryAdapter {
    core: Arc<Core>,
    write_buffer: u64,
}

#[async_trait]
impl LayeredAdapter for RetryAdapter {
    fn inner(&self) -> &dyn Adapter {
        &*self.core.inner
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        let inner = &self.core.inner;
        self.core.retry("stat", Some(path.as_str()), || inner.stat(path)).await
    }

    async fn exists(&self, path: &ObjectPath) -> Result<bool> {
        let inner = &self.core.inner;
        self.core
            .retry("exists", Some(path.as_str()), || inner.exists(path))
            .await
    }

    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        let inner = &self.core.inner;
        self.core
            .retry("delete", Some(path.as_str()), || inner.delete(path))
            .await
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage> {
        let inner = &self.core.inner;
        self.core
            .retry("list", Some(prefix), || inner.list(prefix, cursor, limit))
            .await
    }

    async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<ObjectMeta> {
        let inner = &self.core.inner;
        let when = match mode {
            PutMode::Overwrite => Error::is_retryable,
            PutMode::Create | PutMode::Update(_) => never_reached_storage,
        };
        let conditional = mode != PutMode::Overwrite;
        let result = self
            .core
            .retry_when("copy", Some(to.as_str()), when, || inner.copy(from, to, mode.clone()))
            .await;
        result.map_err(|e| {
            if !(conditional && e.is_retryable() && !never_reached_storage(&e)) {
                return e;
            }
            let message = format!(
                "{} (not retried: a conditional copy may have happened; check `{to}`)",
                e.message()
            );
            relabel(&e, message, self.core.name(), "copy", Some(from.as_str()))
        })
    }

    async fn health(&self) -> Result<String> {
        let inner = &self.core.inner;
        self.core.retry("health", None, || inner.health()).await
    }

    async fn list_pending(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<PendingPage> {
        let inner = &self.core.inner;
        self.core
            .retry("list_pending", Some(prefix), || {
                inner.list_pending(prefix, cursor, limit)
            })
            .await
    }

    // Idempotent: aborting an upload already gone succeeds.
    async fn abort_pending(&self, upload: &PendingUpload) -> Result<()> {
        let inner = &self.core.inner;
        self.core
            .retry("abort_pending", Some(&upload.path), || inner.abort_pending(upload))
            .await
    }

    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> Result<Box<dyn ObjectReader>> {
        let core = &self.core;
        let at = Some(path.as_str());
        let version = core
            .retry("read", at, || core.inner.stat(path))
            .await
            .map_err(|e| relabel(&e, e.message().to_string(), core.name(), "read", at))?;
        let reader = core.retry("read", at, || core.inner.read(path, range)).await?;
        Ok(Box::new(RetryReader {
            core: core.clone(),
            path: path.clone(),
            range,
            version,
            delivered: 0,
            skip: 0,
            reader: Some(reader),
            failures: None,
            resumed: false,
        }))
    }

    async fn write(&self, path: &ObjectPath, mode: PutMode, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        let core = &self.core;
        let writer = core
            .retry("write", Some(path.as_str()), || {
                core.inner.write(path, mode.clone(), size_hint)
            })
            .await?;
        let fits = size_hint.is_none_or(|n| n <= self.write_buffer);
        Ok(Box::new(RetryWriter {
            core: core.clone(),
            path: path.clone(),
            mode,
            size_hint,
            writer: Some(writer),
            held: fits.then(Vec::new),
            held_bytes: 0,
            limit: self.write_buffer,
        }))
    }
}

/// Fails unless `path` is still `version`, the version a read began on;
/// `next` is the first byte not delivered, for the message.
async fn check_version(core: &Core, path: &ObjectPath, version: &ObjectMeta, next: u64) -> Result<()> {
    let now = core.inner.stat(path).await?;
    let v = version;
    let same = match (&v.etag, &now.etag) {
        (Some(a), Some(b)) => a == b,
        _ => v.modified_ms.is_some() && v.modified_ms == now.modified_ms,
    };
    if same && now.size == v.size {
        return Ok(());
    }
    let msg = format!(
        "the object changed while it was read (etag {} → {}, {} → {} bytes); stopped before byte {next} so that no bytes of two versions mix: read it again",
        v.etag.as_deref().unwrap_or("none"),
        now.etag.as_deref().unwrap_or("none"),
        v.size,
        now.size,
    );
    Err(Error::new(ErrorKind::PreconditionFailed, msg).at(core.name(), "read", Some(path.as_str())))
}

/// A reader that resumes where it failed, on the same object version.
struct RetryReader {
    core: Arc<Core>,
    path: ObjectPath,
    range: Option<ByteRange>,
    /// The object as it was before the first byte was read.
    version: ObjectMeta,
    /// Bytes handed to the caller.
    delivered: u64,
    /// Bytes the current reader still repeats (a re-read without ranges).
    skip: u64,
    reader: Option<Box<dyn ObjectReader>>,
    /// The current stretch of failures without progress.
    failures: Option<Attempts>,
    resumed: bool,
}

impl RetryReader {
    fn start(&self) -> u64 {
        self.range.map_or(0, |r| r.start)
    }

    /// One past the last byte this read can deliver.
    fn end(&self) -> u64 {
        let size = self.version.size;
        self.range.and_then(|r| r.end).map_or(size, |e| e.min(size))
    }

    async fn check_version(&mut self) -> Result<()> {
        let next = self.start() + self.delivered;
        check_version(&self.core, &self.path, &self.version, next).await
    }

    /// [`check_version`], retried.
    async fn confirm(&mut self) -> Result<()> {
        let (core, path, version) = (&self.core, &self.path, &self.version);
        let next = self.start() + self.delivered;
        core.retry("read", Some(path.as_str()), || check_version(core, path, version, next))
            .await
    }

    /// A new inner reader from the first byte not yet delivered.
    async fn reopen(&mut self) -> Result<Box<dyn ObjectReader>> {
        if self.delivered > 0 {
            self.check_version().await?;
        }
        let next = self.start() + self.delivered;
        if self.delivered > 0 && self.core.inner.capabilities().read_range {
            self.skip = 0;
            let end = self.range.and_then(|r| r.end);
            return self
                .core
                .inner
                .read(&self.path, Some(ByteRange { start: next, end }))
                .await;
        }
        self.skip = self.delivered;
        self.core.inner.read(&self.path, self.range).await
    }

    /// The next chunk of the current reader, less what it repeats.
    async fn pull(&mut self, max: usize) -> Result<Option<Bytes>> {
        let reader = self.reader.as_mut().expect("a reader is open");
        loop {
            let Some(mut chunk) = reader.next_chunk(max).await? else {
                return Ok(None);
            };
            if self.skip > 0 {
                let cut = chunk.len().min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                self.skip -= cut as u64;
                let _ = chunk.split_to(cut);
            }
            if !chunk.is_empty() {
                return Ok(Some(chunk));
            }
        }
    }
}

#[async_trait]
impl ObjectReader for RetryReader {
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>> {
        let path = self.path.clone();
        let at = Some(path.as_str());
        loop {
            let failure = if self.reader.is_none() {
                match self.reopen().await {
                    Ok(r) => {
                        self.reader = Some(r);
                        continue;
                    }
                    Err(e) => e,
                }
            } else {
                match self.pull(max).await {
                    Ok(Some(chunk)) => {
                        self.delivered += chunk.len() as u64;
                        self.failures = None;
                        return Ok(Some(chunk));
                    }
                    Ok(None) => {
                        if self.resumed {
                            // A change between the resuming stat and read
                            // would show here: fail rather than end.
                            self.confirm().await?;
                            self.resumed = false;
                        }
                        return Ok(None);
                    }
                    Err(e) => {
                        self.reader = None;
                        e
                    }
                }
            };
            let pinned = self.version.etag.is_some() || self.version.modified_ms.is_some();
            let name = self.core.name().to_string();
            let policy = self.core.policy;
            let failures = self.failures.get_or_insert_with(|| Attempts::new(policy));
            if (self.delivered > 0 && !pinned) || !failures.wait(&failure, &name, "read", at).await {
                return Err(failures.give_up(failure, &name, "read", at));
            }
            if self.start() + self.delivered >= self.end() && self.delivered > 0 {
                // Everything was delivered; only the end was lost.
                self.confirm().await?;
                return Ok(None);
            }
            self.resumed = true;
        }
    }
}

/// A writer that holds what it may have to send again.
struct RetryWriter {
    core: Arc<Core>,
    path: ObjectPath,
    mode: PutMode,
    size_hint: Option<u64>,
    /// `None` once a failure left no usable writer.
    writer: Option<Box<dyn ObjectWriter>>,
    /// Every chunk appended so far, while they fit `limit`.
    held: Option<Vec<Bytes>>,
    held_bytes: u64,
    limit: u64,
}

/// A new inner writer with `held` appended again.
async fn replay(
    core: &Core,
    path: &ObjectPath,
    mode: &PutMode,
    size_hint: Option<u64>,
    held: &[Bytes],
) -> Result<Box<dyn ObjectWriter>> {
    let mut w = core.inner.write(path, mode.clone(), size_hint).await?;
    for chunk in held {
        if let Err(e) = w.append(chunk.clone()).await {
            let _ = w.abort().await;
            return Err(e);
        }
    }
    Ok(w)
}

const GONE: &str = "the write failed earlier; start it again";

#[async_trait]
impl ObjectWriter for RetryWriter {
    async fn append(&mut self, chunk: Bytes) -> Result<()> {
        let Some(writer) = self.writer.as_mut() else {
            let at = Some(self.path.as_str());
            return Err(Error::new(ErrorKind::Invalid, GONE).at(self.core.name(), "write", at));
        };
        if let Some(held) = self.held.as_mut() {
            if self.held_bytes + chunk.len() as u64 <= self.limit {
                self.held_bytes += chunk.len() as u64;
                held.push(chunk.clone());
            } else {
                self.held = None;
            }
        }
        let mut failure = match writer.append(chunk).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let Some(held) = self.held.as_deref() else {
            return Err(failure);
        };
        if !failure.is_retryable() {
            return Err(failure);
        }
        let at = Some(self.path.as_str());
        let name = self.core.name();
        let mut attempts = Attempts::new(self.core.policy);
        loop {
            if !attempts.wait(&failure, name, "write", at).await {
                if let Some(w) = self.writer.take() {
                    let _ = w.abort().await;
                }
                return Err(attempts.give_up(failure, name, "write", at));
            }
            if let Some(w) = self.writer.take() {
                let _ = w.abort().await;
            }
            match replay(&self.core, &self.path, &self.mode, self.size_hint, held).await {
                Ok(w) => {
                    self.writer = Some(w);
                    return Ok(());
                }
                Err(e) if e.is_retryable() => failure = e,
                Err(e) => return Err(attempts.give_up(e, name, "write", at)),
            }
        }
    }

    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        let RetryWriter {
            core,
            path,
            mode,
            size_hint,
            writer,
            held,
            ..
        } = *self;
        let at = Some(path.as_str());
        let name = core.name();
        let Some(writer) = writer else {
            return Err(Error::new(ErrorKind::Invalid, GONE).at(name, "write", at));
        };
        let mut failure = match writer.finish().await {
            Ok(meta) => return Ok(meta),
            Err(e) => e,
        };
        let Some(held) = held else {
            return Err(failure);
        };
        if !failure.is_retryable() {
            return Err(failure);
        }
        let mut attempts = Attempts::new(core.policy);
        loop {
            if !attempts.wait(&failure, name, "write", at).await {
                return Err(attempts.give_up(failure, name, "write", at));
            }
            // A conditional write is replayed only where the failed one
            // visibly did not land.
            let landed = match &mode {
                PutMode::Overwrite => None,
                PutMode::Create => match core.inner.stat(&path).await {
                    Err(e) if e.kind() == ErrorKind::NotFound => None,
                    Ok(_) => Some("an object is there now"),
                    Err(e) => {
                        failure = e;
                        continue;
                    }
                },
                PutMode::Update(etag) => match core.inner.stat(&path).await {
                    Ok(m) if m.etag.as_deref() == Some(etag) => None,
                    Ok(_) => Some("its etag changed"),
                    Err(e) if e.kind() == ErrorKind::NotFound => Some("it is gone"),
                    Err(e) => {
                        failure = e;
                        continue;
                    }
                },
            };
            if let Some(why) = landed {
                let message = format!(
                    "{}; not written again: {why}, maybe by this write, maybe by another (stat it before trusting it)",
                    failure.message()
                );
                return Err(relabel(&failure, message, name, "write", at));
            }
            let result = match replay(&core, &path, &mode, size_hint, &held).await {
                Ok(w) => w.finish().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(meta) => return Ok(meta),
                Err(e) if e.is_retryable() => failure = e,
                Err(e) => return Err(attempts.give_up(e, name, "write", at)),
            }
        }
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        match self.writer {
            Some(w) => w.abort().await,
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conformance suite, through this layer over `InMemory`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_suite_passes_through_retry() {
        let stack = crate::layers::Stack::new().layer(Retry::new());
        crate::layers::testing::conformance_over_memory(stack).await;
    }

    /// Fails the first `failures` copies with `kind`, then forwards.
    struct FailingCopies {
        inner: Arc<dyn Adapter>,
        kind: ErrorKind,
        failures: std::sync::atomic::AtomicU32,
        calls: std::sync::atomic::AtomicU32,
    }

    #[async_trait]
    impl LayeredAdapter for FailingCopies {
        fn inner(&self) -> &dyn Adapter {
            &*self.inner
        }

        async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<ObjectMeta> {
            use std::sync::atomic::Ordering::SeqCst;
            self.calls.fetch_add(1, SeqCst);
            if self.failures.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok() {
                return Err(Error::new(self.kind, "injected"));
            }
            self.inner.copy(from, to, mode).await
        }
    }

    /// A `create` copy is retried after `unreachable` (nothing was sent)
    /// but not after `transient` (it may have happened): the decision is
    /// the error's kind, not its text.
    #[tokio::test]
    async fn create_copy_is_retried_only_when_nothing_was_sent() {
        let store = Arc::new(crate::InMemory::new());
        let (src, dst) = (ObjectPath::parse("a").unwrap(), ObjectPath::parse("b").unwrap());
        let mut w = store.write(&src, PutMode::Create, None).await.unwrap();
        w.append(Bytes::from_static(b"weights")).await.unwrap();
        w.finish().await.unwrap();
        let fast = RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        for (kind, retried) in [(ErrorKind::Unreachable, true), (ErrorKind::Transient, false)] {
            store.delete(&dst).await.unwrap();
            let failing = Arc::new(FailingCopies {
                inner: store.clone(),
                kind,
                failures: 1.into(),
                calls: 0.into(),
            });
            let a = Retry::new().with_policy(fast).wrap(failing.clone());
            let r = a.copy(&src, &dst, PutMode::Create).await;
            let calls = failing.calls.load(std::sync::atomic::Ordering::SeqCst);
            if retried {
                assert_eq!(r.unwrap().size, 7, "{kind}");
                assert_eq!(calls, 2, "{kind}");
            } else {
                let e = r.unwrap_err();
                assert_eq!(e.kind(), kind);
                assert!(e.message().contains("not retried"), "{e}");
                assert_eq!(calls, 1, "{kind}");
            }
        }
    }
}
