//! What the byte-transforming layers (checksum, compression, encryption)
//! share: where their errors point, stored bytes fetched ahead by a task,
//! stored bytes appended by a task in the sizes the inner adapter accepts,
//! and the reading of formats made of fixed-size chunks.
//!
//! The tasks overlap a layer's CPU work with the inner adapter's I/O, and
//! the CPU work itself (hashing, sealing, compressing, in batches of about
//! 1 MiB or one append) runs on tokio's blocking pool ([`cpu`]). Measured:
//! as plain tasks, a producer and the consumer it wakes tend to share one
//! worker (tokio's LIFO slot), and a stack of layers ran on one core. On a
//! stack every layer's work now gets its own thread. Channels are bounded
//! to a few messages: memory per stream stays a few chunks or appends
//! (about 10 MiB per layer with 4 MiB appends), whatever the object's size.
//!
//! A full read or write longer than 1 MiB through the checksum layer holds
//! one blocking-pool thread for its whole-object sha256 until it ends.

use crate::adapter::{Adapter, ByteRange, Capabilities, ObjectMeta, ObjectReader, ObjectWriter};
use crate::error::{Error, ErrorKind, Result};
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::fmt::Display;
use std::sync::mpsc as sync_mpsc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Largest chunk or frame a stored header may declare: a larger one is
/// corruption, and would make a reader buffer without bound.
pub(super) const MAX_CHUNK: u64 = 64 << 20;

/// Stored bytes asked of the inner reader per call.
const READ_AHEAD: usize = 2 << 20;

/// Preferred size of the appends sent to the inner writer (within its
/// `write_min_chunk..=write_max_chunk`).
const APPEND_SIZE: u64 = 4 << 20;

/// Pieces at least this large are appended as they come, not gathered.
const DIRECT_APPEND: u64 = 1 << 20;

/// Stored bytes opened per [`cpu`] call when reading a chunked format.
const BATCH: usize = 1 << 20;

/// Below this much work [`cpu`] runs inline: a thread hop costs more.
const CPU_INLINE: u64 = 128 << 10;

/// Bytes a [`WholeHash`] hashes inline before moving to its own thread.
const HASH_INLINE: u64 = 1 << 20;

/// Runs `f`, about `work` bytes of CPU work, on tokio's blocking pool, or
/// inline when it is small.
pub(super) async fn cpu<T: Send + 'static>(work: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    if work < CPU_INLINE {
        return f();
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(t) => t,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// sha256 of a stream. Past [`HASH_INLINE`] bytes it moves to a thread of
/// the blocking pool, so it runs beside the per-chunk work. Once
/// [`WholeHash::threaded`], `update` and `finish` may block: call them
/// inside [`cpu`] with enough work to leave the async worker.
pub(super) struct WholeHash {
    state: Option<Sha256>,
    fed: u64,
    thread: Option<(sync_mpsc::SyncSender<Bytes>, sync_mpsc::Receiver<[u8; 32]>)>,
}

impl WholeHash {
    pub(super) fn new() -> Self {
        WholeHash {
            state: Some(Sha256::new()),
            fed: 0,
            thread: None,
        }
    }

    /// Whether hashing moved to its own thread.
    pub(super) fn threaded(&self) -> bool {
        self.thread.is_some()
    }

    pub(super) fn update(&mut self, b: Bytes) {
        self.fed += b.len() as u64;
        if let Some((tx, _)) = &self.thread {
            // The thread ends only when `tx` is dropped.
            let _ = tx.send(b);
            return;
        }
        let Some(state) = self.state.as_mut() else { return };
        state.update(&b);
        if self.fed < HASH_INLINE {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (tx, rx) = sync_mpsc::sync_channel::<Bytes>(4);
        let (done_tx, done) = sync_mpsc::sync_channel(1);
        let mut h = self.state.take().expect("checked above");
        rt.spawn_blocking(move || {
            while let Ok(b) = rx.recv() {
                h.update(&b);
            }
            let _ = done_tx.send(h.finalize().into());
        });
        self.thread = Some((tx, done));
    }

    pub(super) fn finish(self) -> [u8; 32] {
        match (self.state, self.thread) {
            (_, Some((tx, done))) => {
                drop(tx);
                done.recv().expect("the hashing thread sends its digest")
            }
            (Some(state), None) => state.finalize().into(),
            (None, None) => unreachable!("a WholeHash has a state or a thread"),
        }
    }
}

/// Where a layer's error happened: the layer, backend, operation and path.
#[derive(Clone, Debug)]
pub(super) struct Site {
    layer: &'static str,
    backend: String,
    op: &'static str,
    path: String,
}

impl Site {
    pub(super) fn new(layer: &'static str, backend: &str, op: &'static str, path: &str) -> Self {
        Site {
            layer,
            backend: backend.to_string(),
            op,
            path: path.to_string(),
        }
    }

    /// An error of `kind` located here, its message prefixed by the layer.
    pub(super) fn error(&self, kind: ErrorKind, message: impl Display) -> Error {
        Error::new(kind, format!("{} layer: {message}", self.layer)).at(&self.backend, self.op, Some(&self.path))
    }

    /// Stored bytes that are not what this layer wrote.
    pub(super) fn integrity(&self, message: impl Display) -> Error {
        self.error(ErrorKind::Integrity, message)
    }

    /// An inner error, located here unless it already says where it is.
    pub(super) fn locate(&self, e: Error) -> Error {
        e.at(&self.backend, self.op, Some(&self.path))
    }
}

/// `meta` of a stored object seen through a layer: `size` is the logical
/// size, `stored_size` what the storage holds (kept from `meta` when an
/// inner layer already set it).
pub(super) fn logical_meta(mut meta: ObjectMeta, logical: u64) -> ObjectMeta {
    meta.stored_size = Some(meta.stored_size.unwrap_or(meta.size));
    meta.size = logical;
    meta
}

/// `start..end` of an object of `size` bytes that `range` asks for;
/// `invalid` if it ends before it starts.
pub(super) fn clamp_range(range: ByteRange, size: u64, site: &Site) -> Result<(u64, u64)> {
    if range.end.is_some_and(|e| e < range.start) {
        return Err(site.error(ErrorKind::Invalid, "range end before start"));
    }
    let end = range.end.unwrap_or(size).min(size);
    Ok((range.start.min(end), end))
}

/// A reader with nothing to read.
pub(super) struct EmptyReader;

#[async_trait]
impl ObjectReader for EmptyReader {
    async fn next_chunk(&mut self, _max: usize) -> Result<Option<Bytes>> {
        Ok(None)
    }
}

/// Stored bytes of an inner reader, fetched ahead by a task.
pub(super) struct Prefetch {
    rx: mpsc::Receiver<Result<Bytes>>,
    bufs: VecDeque<Bytes>,
    buffered: usize,
    ended: bool,
}

impl Prefetch {
    /// Starts fetching from `reader`. Dropping the `Prefetch` ends the task
    /// (at its next send) and drops `reader`.
    pub(super) fn spawn(mut reader: Box<dyn ObjectReader>) -> Self {
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            loop {
                let item = match reader.next_chunk(READ_AHEAD).await {
                    // An empty chunk is the end, as in the contract.
                    Ok(Some(b)) if !b.is_empty() => Ok(b),
                    Ok(_) => break,
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        Prefetch {
            rx,
            bufs: VecDeque::new(),
            buffered: 0,
            ended: false,
        }
    }

    /// Buffers at least `n` bytes unless the stream ends first; returns how
    /// many are buffered.
    pub(super) async fn fill(&mut self, n: usize) -> Result<usize> {
        while self.buffered < n && !self.ended {
            match self.rx.recv().await {
                Some(Ok(b)) => {
                    self.buffered += b.len();
                    self.bufs.push_back(b);
                }
                Some(Err(e)) => {
                    self.ended = true;
                    return Err(e);
                }
                None => self.ended = true,
            }
        }
        Ok(self.buffered)
    }

    /// The next `n` buffered bytes (`n` at most what is buffered), without
    /// a copy when they lie in one fetched piece.
    pub(super) fn take(&mut self, n: usize) -> Bytes {
        debug_assert!(n <= self.buffered);
        self.buffered -= n;
        match self.bufs.front_mut() {
            Some(front) if front.len() >= n => {
                let out = front.split_to(n);
                if front.is_empty() {
                    self.bufs.pop_front();
                }
                out
            }
            _ => {
                let mut out = BytesMut::with_capacity(n);
                while out.len() < n {
                    let Some(front) = self.bufs.front_mut() else { break };
                    let k = front.len().min(n - out.len());
                    out.extend_from_slice(&front.split_to(k));
                    if front.is_empty() {
                        self.bufs.pop_front();
                    }
                }
                out.freeze()
            }
        }
    }

    /// Exactly `n` bytes, or `None` if the stream ends first.
    pub(super) async fn exact(&mut self, n: usize) -> Result<Option<Bytes>> {
        Ok((self.fill(n).await? >= n).then(|| self.take(n)))
    }

    /// Drops the next `n` bytes; false if the stream ends first.
    pub(super) async fn skip(&mut self, mut n: u64) -> Result<bool> {
        while n > 0 {
            let want = n.min(READ_AHEAD as u64) as usize;
            let have = self.fill(want).await?;
            if have == 0 {
                return Ok(false);
            }
            let k = have.min(want);
            self.take(k);
            n -= k as u64;
        }
        Ok(true)
    }
}

/// Reads `start..end` of a stored object (a header, a footer) into memory;
/// the caller keeps it small. Reads and skips when the inner adapter has
/// no ranged reads. Fewer bytes than asked is an integrity error.
pub(super) async fn read_stored(
    inner: &dyn Adapter,
    caps: &Capabilities,
    path: &ObjectPath,
    start: u64,
    end: u64,
    site: &Site,
) -> Result<Bytes> {
    let len = (end - start) as usize;
    let mut src = if caps.read_range {
        let range = ByteRange { start, end: Some(end) };
        Prefetch::spawn(inner.read(path, Some(range)).await.map_err(|e| site.locate(e))?)
    } else {
        let mut src = Prefetch::spawn(inner.read(path, None).await.map_err(|e| site.locate(e))?);
        if !src.skip(start).await? {
            return Err(site.integrity(format!("the object ends before byte {start}")));
        }
        src
    };
    src.exact(len)
        .await?
        .ok_or_else(|| site.integrity(format!("bytes {start}..{end} are missing: the object is truncated")))
}

enum SinkMsg {
    Data(Bytes),
    Finish,
    Abort,
}

/// Stored bytes on their way to the inner writer, appended by a task in
/// pieces of `APPEND_SIZE` clamped to the inner adapter's
/// `write_min_chunk..=write_max_chunk` (only the last may be smaller), so
/// whatever the caller appends, the inner adapter gets appends it accepts.
/// Dropped without `finish`, it drops the inner writer, which discards.
pub(super) struct Sink {
    tx: mpsc::Sender<SinkMsg>,
    task: Option<JoinHandle<Result<Option<ObjectMeta>>>>,
    failed: Option<Error>,
}

impl Sink {
    pub(super) fn spawn(inner: Box<dyn ObjectWriter>, caps: &Capabilities) -> Self {
        let (tx, rx) = mpsc::channel(2);
        let max = caps.write_max_chunk.clamp(1, usize::MAX as u64) as usize;
        let min = (caps.write_min_chunk as usize).min(max);
        let task = tokio::spawn(drive_sink(inner, rx, min, max));
        Sink {
            tx,
            task: Some(task),
            failed: None,
        }
    }

    pub(super) async fn send(&mut self, b: Bytes) -> Result<()> {
        if b.is_empty() {
            return Ok(());
        }
        if self.tx.send(SinkMsg::Data(b)).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Appends what is left, finishes the inner writer, and returns its meta.
    pub(super) async fn finish(mut self) -> Result<ObjectMeta> {
        if self.tx.send(SinkMsg::Finish).await.is_err() {
            return Err(self.failure().await);
        }
        match self.join().await {
            Ok(Some(meta)) => Ok(meta),
            Ok(None) => Err(Error::invalid("the writer already finished or aborted")),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn abort(mut self) -> Result<()> {
        if self.tx.send(SinkMsg::Abort).await.is_err() {
            // The task already ended (an append failed): nothing is visible.
            return Ok(());
        }
        self.join().await.map(|_| ())
    }

    async fn join(&mut self) -> Result<Option<ObjectMeta>> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(task) = self.task.take() else {
            return Err(Error::invalid("the writer already finished or aborted"));
        };
        let r = task
            .await
            .unwrap_or_else(|e| Err(Error::new(ErrorKind::Io, format!("the write task failed: {e}"))));
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    /// Why the task stopped taking data.
    async fn failure(&mut self) -> Error {
        match self.join().await {
            Err(e) => e,
            Ok(_) => Error::invalid("the writer already finished or aborted"),
        }
    }
}

async fn drive_sink(
    mut inner: Box<dyn ObjectWriter>,
    mut rx: mpsc::Receiver<SinkMsg>,
    min: usize,
    max: usize,
) -> Result<Option<ObjectMeta>> {
    let preferred = (APPEND_SIZE as usize).clamp(min.max(1), max);
    // A piece this large goes on as it is, without a copy.
    let direct = (DIRECT_APPEND as usize).clamp(min.max(1), max);
    let mut pending = BytesMut::new();
    loop {
        match rx.recv().await {
            Some(SinkMsg::Data(b)) => {
                if pending.is_empty() && b.len() >= direct && b.len() <= max {
                    inner.append(b).await?;
                    continue;
                }
                pending.extend_from_slice(&b);
                while pending.len() >= preferred {
                    let n = pending.len().min(max);
                    inner.append(pending.split_to(n).freeze()).await?;
                }
            }
            Some(SinkMsg::Finish) => {
                while !pending.is_empty() {
                    let n = pending.len().min(max);
                    inner.append(pending.split_to(n).freeze()).await?;
                }
                return inner.finish().await.map(Some);
            }
            Some(SinkMsg::Abort) => {
                inner.abort().await?;
                return Ok(None);
            }
            // The layer's writer was dropped: dropping `inner` discards.
            None => return Ok(None),
        }
    }
}

/// A format of fixed-size chunks: `header` bytes, then chunks of `chunk`
/// logical bytes (the last one shorter; an empty object still has one, so
/// the final chunk always exists), each followed by `overhead` bytes (a
/// digest, a tag), then `trailer` bytes. Sizes map both ways without
/// reading the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Chunked {
    pub(super) header: u64,
    pub(super) chunk: u64,
    pub(super) overhead: u64,
    pub(super) trailer: u64,
}

impl Chunked {
    fn step(&self) -> u64 {
        self.chunk + self.overhead
    }

    /// Chunks of an object of `n` logical bytes: at least one.
    pub(super) fn chunks(&self, n: u64) -> u64 {
        n.div_ceil(self.chunk).max(1)
    }

    pub(super) fn stored_size(&self, n: u64) -> u64 {
        (self.header + self.trailer)
            .saturating_add(n)
            .saturating_add(self.chunks(n).saturating_mul(self.overhead))
    }

    /// The logical size of a stored object of `stored` bytes; `None` if no
    /// object of this format has that size.
    pub(super) fn logical_size(&self, stored: u64) -> Option<u64> {
        let x = stored.checked_sub(self.header + self.trailer)?;
        let m = x.div_ceil(self.step()).max(1);
        let n = x.checked_sub(m * self.overhead)?;
        (self.chunks(n) == m).then_some(n)
    }

    /// Stored offset of chunk `i`.
    pub(super) fn offset(&self, i: u64) -> u64 {
        self.header + i * self.step()
    }

    /// The largest logical size whose stored size is at most `stored`.
    pub(super) fn max_logical(&self, stored: u64) -> u64 {
        let x = stored.saturating_sub(self.header + self.trailer);
        let (full, rest) = (x / self.step(), x % self.step());
        full * self.chunk + rest.saturating_sub(self.overhead)
    }
}

/// How a chunked layer checks (and decrypts) what it reads. Runs inside
/// [`cpu`], a batch of chunks at a time.
pub(super) trait Opener: Send + 'static {
    /// The logical bytes of chunk `index` from its stored bytes (data and
    /// overhead); `last` when it is the object's final chunk. Either
    /// returns them, or appends them to `out` and returns `None` (one
    /// buffer per batch instead of one per chunk). An `Err` is the reason
    /// the chunk is not what was written.
    fn open(
        &mut self,
        index: u64,
        last: bool,
        stored: Bytes,
        out: &mut BytesMut,
    ) -> std::result::Result<Option<Bytes>, String>;

    /// Checks the trailer after the final chunk of an object of `total`
    /// logical bytes; `full` when the whole object was read.
    fn trailer(&mut self, total: u64, trailer: &[u8], full: bool) -> std::result::Result<(), String>;

    /// Whether `trailer` may block (it waits for another thread).
    fn blocking_trailer(&self) -> bool {
        false
    }
}

/// A read of a chunked layer's object, opened by [`read_chunked`].
pub(super) struct ChunkedRead<'a> {
    pub(super) inner: &'a dyn Adapter,
    pub(super) path: &'a ObjectPath,
    pub(super) range: Option<ByteRange>,
    pub(super) site: Site,
    pub(super) header_len: usize,
}

/// Opens a read of a chunked format. `parse` reads the header (and says
/// whether this is a full read); it returns the format's geometry and the
/// opener. A full read is one streamed inner read; its end is found by
/// looking ahead, so it needs no stat. A ranged read stats the object,
/// reads the header, then reads only the chunks covering the range (or
/// reads and skips, when the inner adapter has no ranged reads).
pub(super) async fn read_chunked<O, F>(req: ChunkedRead<'_>, parse: F) -> Result<Box<dyn ObjectReader>>
where
    O: Opener,
    F: FnOnce(&[u8], bool) -> Result<(Chunked, O)>,
{
    let ChunkedRead {
        inner,
        path,
        range,
        site,
        header_len,
    } = req;
    let Some(range) = range else {
        let mut src = Prefetch::spawn(inner.read(path, None).await.map_err(|e| site.locate(e))?);
        let header = src.exact(header_len).await?.ok_or_else(|| no_header(&site))?;
        let (geo, opener) = parse(&header, true)?;
        return Ok(Box::new(ChunkReader {
            src,
            geo,
            opener: Some(opener),
            site,
            index: 0,
            known: None,
            skip: 0,
            left: u64::MAX,
            ready: VecDeque::new(),
            total: 0,
            done: false,
        }));
    };
    clamp_range(range, u64::MAX, &site)?;
    let caps = inner.capabilities().await?;
    let stored = inner.stat(path).await.map_err(|e| site.locate(e))?.size;
    let (header, src) = if caps.read_range {
        if stored < header_len as u64 {
            return Err(no_header(&site));
        }
        let header = read_stored(inner, &caps, path, 0, header_len as u64, &site).await?;
        (header, None)
    } else {
        let mut src = Prefetch::spawn(inner.read(path, None).await.map_err(|e| site.locate(e))?);
        let header = src.exact(header_len).await?.ok_or_else(|| no_header(&site))?;
        (header, Some(src))
    };
    let (geo, opener) = parse(&header, false)?;
    let n = geo.logical_size(stored).ok_or_else(|| impossible_size(&site, stored))?;
    let (start, end) = clamp_range(range, n, &site)?;
    if start == end {
        return Ok(Box::new(EmptyReader));
    }
    let m = geo.chunks(n);
    let (first, stop) = (start / geo.chunk, end.div_ceil(geo.chunk));
    let lo = geo.offset(first);
    let hi = if stop == m { stored } else { geo.offset(stop) };
    let src = match src {
        Some(mut src) => {
            if !src.skip(lo - header_len as u64).await? {
                return Err(site.integrity("the object is shorter than its size: truncated or changed while read"));
            }
            src
        }
        None => {
            let r = ByteRange {
                start: lo,
                end: Some(hi),
            };
            Prefetch::spawn(inner.read(path, Some(r)).await.map_err(|e| site.locate(e))?)
        }
    };
    Ok(Box::new(ChunkReader {
        src,
        geo,
        opener: Some(opener),
        site,
        index: first,
        known: Some((m, n, stop)),
        skip: (start - first * geo.chunk) as usize,
        left: end - start,
        ready: VecDeque::new(),
        total: 0,
        done: false,
    }))
}

fn no_header(site: &Site) -> Error {
    site.integrity("the object has no header of this layer: it was not written through it, or is truncated")
}

/// The error for a stored size no object of a chunked format has.
pub(super) fn impossible_size(site: &Site, stored: u64) -> Error {
    site.integrity(format!(
        "a stored size of {stored} bytes is impossible for this layer's format: the object was not written through it, or is truncated"
    ))
}

struct ChunkReader<O> {
    src: Prefetch,
    geo: Chunked,
    /// `None` only while a batch is being opened.
    opener: Option<O>,
    site: Site,
    /// Next chunk to open.
    index: u64,
    /// On a ranged read: the object's chunk count, logical size, and the
    /// chunk to stop before. `None` on a full read.
    known: Option<(u64, u64, u64)>,
    /// Logical bytes to drop from the next opened chunk.
    skip: usize,
    /// Logical bytes still to return.
    left: u64,
    /// Opened bytes not returned yet.
    ready: VecDeque<Bytes>,
    /// Logical bytes opened (a full read's length).
    total: u64,
    done: bool,
}

/// Stored chunks read for one batch: (index, last, bytes), and the trailer
/// when the batch ends with the final chunk.
type Batch = (Vec<(u64, bool, Bytes)>, Option<Bytes>);

impl<O: Opener> ChunkReader<O> {
    /// The stored bytes of the next chunk and whether it is the final one;
    /// `None` when the read needs no more chunks.
    async fn next_stored(&mut self) -> Result<Option<(bool, Bytes)>> {
        match self.known {
            Some((m, n, stop)) => {
                if self.index >= stop {
                    return Ok(None);
                }
                let last = self.index + 1 == m;
                let len = if last {
                    n - self.index * self.geo.chunk
                } else {
                    self.geo.chunk
                };
                let want = (len + self.geo.overhead) as usize;
                let stored = self.src.exact(want).await?.ok_or_else(|| self.truncated())?;
                Ok(Some((last, stored)))
            }
            None => {
                // Chunk `index` is the final one unless more than a full
                // chunk and the trailer follow.
                let step = (self.geo.chunk + self.geo.overhead) as usize;
                let need = step + self.geo.trailer as usize + 1;
                let have = self.src.fill(need).await?;
                if have >= need {
                    return Ok(Some((false, self.src.take(step))));
                }
                let data = have
                    .checked_sub((self.geo.overhead + self.geo.trailer) as usize)
                    .filter(|&d| d > 0 || self.index == 0)
                    .ok_or_else(|| self.truncated())?;
                Ok(Some((true, self.src.take(data + self.geo.overhead as usize))))
            }
        }
    }

    /// Reads about [`BATCH`] stored bytes of chunks (ending early at the
    /// final chunk, with its trailer).
    async fn read_batch(&mut self) -> Result<Batch> {
        let (mut chunks, mut bytes) = (Vec::new(), 0);
        while bytes < BATCH {
            let Some((last, stored)) = self.next_stored().await? else {
                break;
            };
            bytes += stored.len();
            chunks.push((self.index, last, stored));
            self.index += 1;
            if last {
                let trailer = self
                    .src
                    .exact(self.geo.trailer as usize)
                    .await?
                    .ok_or_else(|| self.truncated())?;
                return Ok((chunks, Some(trailer)));
            }
        }
        Ok((chunks, None))
    }

    /// Opens the next batch of chunks into `ready`; sets `done` after the
    /// last one this read needs.
    async fn advance(&mut self) -> Result<()> {
        let (chunks, trailer) = self.read_batch().await?;
        if chunks.is_empty() {
            self.done = true;
            return Ok(());
        }
        let mut opener = self.opener.take().expect("one batch at a time");
        let work = chunks.iter().map(|c| c.2.len() as u64).sum::<u64>();
        let work = if trailer.is_some() && opener.blocking_trailer() {
            u64::MAX
        } else {
            work
        };
        let (full, total) = (self.known.is_none(), self.known.map(|k| k.1));
        let before = self.total;
        let final_chunk = trailer.is_some();
        // Big buffers are allocated here, on the async side: freed
        // buffers then stay in a few malloc arenas, not one per thread of
        // the blocking pool.
        let out = BytesMut::with_capacity(chunks.iter().map(|c| c.2.len()).sum());
        let (opener, opened) = cpu(work, move || {
            let r = open_batch(&mut opener, chunks, trailer, full, total, before, out);
            (opener, r)
        })
        .await;
        self.opener = Some(opener);
        let (pieces, opened) = opened.map_err(|why| self.site.integrity(why))?;
        self.total += opened;
        if final_chunk {
            self.done = true;
        }
        for mut data in pieces {
            let skip = self.skip.min(data.len());
            self.skip -= skip;
            let _ = data.split_to(skip);
            if data.len() as u64 >= self.left {
                data.truncate(self.left as usize);
                self.done = true;
            }
            self.left -= data.len() as u64;
            if !data.is_empty() {
                self.ready.push_back(data);
            }
            if self.left == 0 {
                break;
            }
        }
        Ok(())
    }

    fn truncated(&self) -> Error {
        self.site.integrity(format!(
            "the object ends inside chunk {}: it is truncated, or was changed while being read",
            self.index
        ))
    }
}

/// Opens `chunks` (and checks the trailer), into `out` for openers that
/// write there; the opened pieces and their length, or why they are not
/// what was written.
fn open_batch<O: Opener>(
    opener: &mut O,
    chunks: Vec<(u64, bool, Bytes)>,
    trailer: Option<Bytes>,
    full: bool,
    total: Option<u64>,
    before: u64,
    mut out: BytesMut,
) -> std::result::Result<(Vec<Bytes>, u64), String> {
    let mut pieces = Vec::new();
    let mut opened = 0u64;
    for (index, last, stored) in chunks {
        let len = out.len();
        let piece = opener
            .open(index, last, stored, &mut out)
            .map_err(|why| format!("chunk {index}: {why}"))?;
        opened += piece.as_ref().map_or(out.len() - len, Bytes::len) as u64;
        pieces.extend(piece);
    }
    if !out.is_empty() {
        pieces.push(out.freeze());
    }
    if let Some(t) = trailer {
        opener.trailer(total.unwrap_or(before + opened), &t, full)?;
    }
    Ok((pieces, opened))
}

#[async_trait]
impl<O: Opener> ObjectReader for ChunkReader<O> {
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>> {
        while self.ready.is_empty() {
            if self.done {
                return Ok(None);
            }
            self.advance().await?;
        }
        let front = self.ready.front_mut().expect("not empty");
        let n = max.max(1).min(front.len());
        let out = front.split_to(n);
        if front.is_empty() {
            self.ready.pop_front();
        }
        Ok(Some(out))
    }
}

#[cfg(test)]
mod tests {
    use super::Chunked;

    #[test]
    fn chunked_sizes_map_both_ways() {
        for geo in [
            Chunked {
                header: 16,
                chunk: 1024,
                overhead: 32,
                trailer: 40,
            },
            Chunked {
                header: 84,
                chunk: 100,
                overhead: 16,
                trailer: 0,
            },
        ] {
            let mut possible = 0;
            for n in 0..5000 {
                let s = geo.stored_size(n);
                assert_eq!(geo.logical_size(s), Some(n), "{geo:?} n={n}");
                assert!(geo.max_logical(s) == n, "{geo:?} n={n}");
                possible += 1;
            }
            let impossible = (0..=geo.stored_size(4999))
                .filter(|&s| geo.logical_size(s).is_none())
                .count() as u64;
            assert_eq!(impossible + possible, geo.stored_size(4999) + 1);
        }
    }
}
