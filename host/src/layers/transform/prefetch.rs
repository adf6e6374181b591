//! Stored bytes read ahead of a transforming layer, by a task.

use super::Site;
use crate::adapter::{Adapter, ByteRange, ObjectReader};
use crate::error::Result;
use crate::path::ObjectPath;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// Stored bytes asked of the inner reader per call.
const READ_AHEAD: usize = 2 << 20;
/// Stored bytes of an inner reader, fetched ahead by a task.
pub(in crate::layers) struct Prefetch {
    rx: mpsc::Receiver<Result<Bytes>>,
    bufs: VecDeque<Bytes>,
    buffered: usize,
    ended: bool,
}

impl Prefetch {
    /// Starts fetching from `reader`. Dropping the `Prefetch` ends the task
    /// (at its next send) and drops `reader`.
    fn spawn(mut reader: Box<dyn ObjectReader>) -> Self {
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

    /// Opens `range` of the stored object `path` (all of it for `None`) and
    /// starts fetching; an inner error is located at `site`.
    pub(in crate::layers) async fn open(
        inner: &dyn Adapter,
        path: &ObjectPath,
        range: Option<ByteRange>,
        site: &Site,
    ) -> Result<Self> {
        Ok(Prefetch::spawn(
            inner.read(path, range).await.map_err(|e| site.locate(e))?,
        ))
    }

    /// Buffers at least `n` bytes unless the stream ends first; returns how
    /// many are buffered.
    pub(in crate::layers) async fn fill(&mut self, n: usize) -> Result<usize> {
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
    pub(in crate::layers) fn take(&mut self, n: usize) -> Bytes {
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

    /// A copy of the next `n` buffered bytes (`n` at most what is
    /// buffered), left in the buffer.
    pub(in crate::layers) fn peek(&self, n: usize) -> Bytes {
        debug_assert!(n <= self.buffered);
        match self.bufs.front() {
            Some(front) if front.len() >= n => front.slice(..n),
            _ => {
                let mut out = BytesMut::with_capacity(n);
                for b in &self.bufs {
                    let k = b.len().min(n - out.len());
                    out.extend_from_slice(&b[..k]);
                }
                out.freeze()
            }
        }
    }

    /// Exactly `n` bytes, or `None` if the stream ends first.
    pub(in crate::layers) async fn exact(&mut self, n: usize) -> Result<Option<Bytes>> {
        Ok((self.fill(n).await? >= n).then(|| self.take(n)))
    }

    /// Drops the next `n` bytes; false if the stream ends first.
    pub(in crate::layers) async fn skip(&mut self, mut n: u64) -> Result<bool> {
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
pub(in crate::layers) async fn read_stored(
    inner: &dyn Adapter,
    path: &ObjectPath,
    start: u64,
    end: u64,
    site: &Site,
) -> Result<Bytes> {
    let len = (end - start) as usize;
    let mut src = if inner.capabilities().read_range {
        let range = ByteRange { start, end: Some(end) };
        Prefetch::open(inner, path, Some(range), site).await?
    } else {
        let mut src = Prefetch::open(inner, path, None, site).await?;
        if !src.skip(start).await? {
            return Err(site.integrity(format!("the object ends before byte {start}")));
        }
        src
    };
    src.exact(len)
        .await?
        .ok_or_else(|| site.integrity(format!("bytes {start}..{end} are missing: the object is truncated")))
}
