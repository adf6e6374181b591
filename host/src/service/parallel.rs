//! Big objects loaded into a local file as several ranged reads at once,
//! the way boto3's `download_file` and OpenDAL's concurrent reader fetch
//! them, still verified byte by byte against the recorded size and sha256
//! before the file appears.
//!
//! Each range streams into its place in the file (`pwrite`), so memory
//! stays at a chunk per range in flight whatever the object's size. The
//! sha256 must see the bytes in order: a hashing task follows the ranges'
//! progress and reads back from the file (the page cache, as it was just
//! written) the contiguous prefix written so far, and has each hashed
//! stretch written to disk behind it (see `writeback`).

use super::writeback::{Behind, Gather, start_writing};
use super::{CHUNK, Expected, Progress, StorageService};
use crate::adapter::{Adapter, ByteRange};
use crate::error::{Error, ErrorKind, Result};
use crate::path::ObjectPath;
use sha2::{Digest, Sha256};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;

/// How a model file is loaded into a local file: one stream, or ranges of
/// `part_size` bytes, `parts` at a time, when the backend reads ranges and
/// the file has at least `min_size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParallelReads {
    /// Ranged reads in flight at once; 1 reads every file as one stream.
    pub parts: usize,
    /// Bytes per ranged read.
    pub part_size: u64,
    /// Files smaller than this (or than two parts) are read as one stream.
    pub min_size: u64,
}

impl Default for ParallelReads {
    /// 4 reads of 16 MiB at once for files of 64 MiB and more.
    fn default() -> Self {
        ParallelReads {
            parts: 4,
            part_size: 16 << 20,
            min_size: 64 << 20,
        }
    }
}

impl ParallelReads {
    /// Every file as one stream.
    pub fn off() -> Self {
        ParallelReads {
            parts: 1,
            ..ParallelReads::default()
        }
    }
}

/// A task aborted when its handle is dropped (an error in one range ends
/// the hashing too).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl StorageService {
    /// The file's size when it is loaded in ranges: the size is recorded,
    /// big enough, and the backend (with its layers) reads ranges.
    pub(crate) fn ranged_size(&self, expect: &Expected) -> Option<u64> {
        let p = &self.parallel;
        let size = expect.size?;
        let worth = p.parts > 1 && p.part_size > 0 && size >= p.min_size.max(2 * p.part_size);
        (worth && self.adapter.capabilities().read_range).then_some(size)
    }

    /// Loads the object at `path` into `file` (new, empty) in ranges, and
    /// fails with `integrity` unless it has `size` bytes of the expected
    /// sha256. Returns the bytes moved and their sha256.
    pub(crate) async fn download_ranges(
        &self,
        path: &ObjectPath,
        size: u64,
        expect: &Expected,
        file: std::fs::File,
        moved: &mut u64,
    ) -> Result<(u64, String)> {
        let integrity = |msg: String| integrity(&*self.adapter, path, msg);
        // A stored object of another size fails here, before any transfer.
        let stored = self.adapter.stat(path).await?.size;
        if stored != size {
            return Err(integrity(format!("object has {stored} bytes, {size} were recorded")));
        }
        let part = self.parallel.part_size;
        let count = size.div_ceil(part) as usize;
        let file = Arc::new(file);
        // Bytes written of each range, from its start.
        let written: Arc<Vec<AtomicU64>> = Arc::new((0..count).map(|_| AtomicU64::new(0)).collect());
        let (tick, ticks) = watch::channel(());
        let hasher = AbortOnDrop(tokio::spawn(hash_in_order(
            file.clone(),
            size,
            part,
            written.clone(),
            ticks,
        )));
        let ranges = Arc::new(Ranges {
            adapter: self.adapter.clone(),
            path: path.clone(),
            size,
            part,
            file,
            written,
            tick,
            total: AtomicU64::new(0),
            base: *moved,
            progress: self.progress.clone(),
        });
        // Each range is a task of its own, so the ranges' adapter work
        // (a Wasm instance each, copying every byte in and out) runs on all
        // the runtime's workers, not on the one thread polling this
        // future. Dropping the set (an error, or this future dropped)
        // aborts the ranges still running.
        let mut running = tokio::task::JoinSet::new();
        let mut next = 0;
        loop {
            while running.len() < self.parallel.parts && next < count {
                running.spawn(ranges.clone().fetch(next));
                next += 1;
            }
            match running.join_next().await {
                None => break,
                Some(Ok(done)) => done?,
                Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Some(Err(e)) => return Err(Error::new(ErrorKind::Io, format!("range task: {e}"))),
            }
        }
        *moved = ranges.base + ranges.total.load(Ordering::Relaxed);
        // The hasher waits for ticks until every sender is gone.
        drop(ranges);
        let mut hasher = hasher;
        let got = (&mut hasher.0)
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("hash task: {e}")))??;
        if let Some(want) = &expect.sha256
            && !got.eq_ignore_ascii_case(want)
        {
            return Err(integrity(format!("sha256 is {got}, {want} was recorded")));
        }
        Ok((size, got))
    }
}

/// An `integrity` error of a ranged load of `path`.
fn integrity(adapter: &dyn Adapter, path: &ObjectPath, msg: String) -> Error {
    Error::new(ErrorKind::Integrity, msg).at(adapter.name(), "read", Some(path.as_str()))
}

/// What the range tasks of one [`StorageService::download_ranges`] share.
struct Ranges {
    adapter: Arc<dyn Adapter>,
    path: ObjectPath,
    size: u64,
    part: u64,
    file: Arc<std::fs::File>,
    /// Bytes written of each range, from its start.
    written: Arc<Vec<AtomicU64>>,
    /// Wakes the hasher after each write.
    tick: watch::Sender<()>,
    /// Bytes written of all ranges.
    total: AtomicU64,
    /// Bytes moved before this file, for `progress`.
    base: u64,
    progress: Option<Progress>,
}

impl Ranges {
    fn integrity(&self, msg: String) -> Error {
        integrity(&*self.adapter, &self.path, msg)
    }

    /// Reads range `i` into its place in the file.
    async fn fetch(self: Arc<Self>, i: usize) -> Result<()> {
        let (size, part) = (self.size, self.part);
        let start = i as u64 * part;
        let end = (start + part).min(size);
        let mut r = Gather::new(
            self.adapter
                .read(&self.path, Some(ByteRange { start, end: Some(end) }))
                .await?,
        );
        let mut got = 0u64;
        while let Some(chunk) = r.next().await? {
            let n = chunk.len() as u64;
            if got + n > end - start {
                return Err(self.integrity(format!(
                    "the range {start}-{end} answered more than {} bytes",
                    end - start
                )));
            }
            let f = self.file.clone();
            let at = start + got;
            tokio::task::spawn_blocking(move || f.write_all_at(&chunk, at))
                .await
                .map_err(|e| Error::new(ErrorKind::Io, format!("write task: {e}")))?
                .map_err(|e| Error::io("writing the output", e))?;
            got += n;
            self.written[i].store(got, Ordering::Release);
            self.tick.send_replace(());
            let now = self.total.fetch_add(n, Ordering::Relaxed) + n;
            if let Some(p) = &self.progress {
                p(self.base + now);
            }
        }
        if got != end - start {
            return Err(self.integrity(format!("object ended at byte {}, {size} were recorded", start + got)));
        }
        Ok(())
    }
}

/// Hashes `file`'s first `size` bytes in order as the ranges (of `part`
/// bytes, `written[i]` written of range `i`) come in; woken by `ticks`.
async fn hash_in_order(
    file: Arc<std::fs::File>,
    size: u64,
    part: u64,
    written: Arc<Vec<AtomicU64>>,
    mut ticks: watch::Receiver<()>,
) -> Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0u64;
    let mut behind = Behind::default();
    while pos < size {
        ticks.borrow_and_update();
        let i = (pos / part) as usize;
        let ready = i as u64 * part + written[i].load(Ordering::Acquire);
        if ready <= pos {
            if ticks.changed().await.is_err() && written[i].load(Ordering::Acquire) + i as u64 * part <= pos {
                // Every range ended and this one is short: the fetcher
                // reports why.
                return Err(Error::new(ErrorKind::Io, "a range ended early".to_string()));
            }
            continue;
        }
        let n = (ready - pos).min(CHUNK as u64) as usize;
        let f = file.clone();
        let at = pos;
        // The hashed prefix is complete in the kernel: have it written out
        // while the ranges go on.
        let due = behind.due(at + n as u64);
        (buf, h) = tokio::task::spawn_blocking(move || {
            f.read_exact_at(&mut buf[..n], at)?;
            h.update(&buf[..n]);
            if let Some((from, to)) = due {
                start_writing(&f, from, to);
            }
            Ok::<_, std::io::Error>((buf, h))
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("hash task: {e}")))?
        .map_err(|e| Error::io("reading back the output", e))?;
        pos += n as u64;
    }
    Ok(hex::encode(h.finalize()))
}
