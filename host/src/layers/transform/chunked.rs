//! Formats made of fixed-size chunks (checksum, encryption): their
//! geometry, and their reading, a batch of chunks at a time.

use super::cpu::cpu;
use super::prefetch::{Prefetch, read_stored};
use super::{EmptyReader, ReadRequest, Site, clamp_range};
use crate::adapter::{Adapter, ByteRange, ObjectReader};
use crate::error::{Error, Result};
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;

/// Stored bytes opened per [`cpu`] call when reading a chunked format.
const BATCH: usize = 1 << 20;
/// A format of fixed-size chunks: `header` bytes, then chunks of `chunk`
/// logical bytes (the last one shorter; an empty object still has one, so
/// the final chunk always exists), each followed by `overhead` bytes (a
/// digest, a tag), then `trailer` bytes. Sizes map both ways without
/// reading the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::layers) struct Chunked {
    pub(in crate::layers) header: u64,
    pub(in crate::layers) chunk: u64,
    pub(in crate::layers) overhead: u64,
    pub(in crate::layers) trailer: u64,
}

impl Chunked {
    fn step(&self) -> u64 {
        self.chunk + self.overhead
    }

    /// Chunks of an object of `n` logical bytes: at least one.
    pub(in crate::layers) fn chunks(&self, n: u64) -> u64 {
        n.div_ceil(self.chunk).max(1)
    }

    pub(in crate::layers) fn stored_size(&self, n: u64) -> u64 {
        (self.header + self.trailer)
            .saturating_add(n)
            .saturating_add(self.chunks(n).saturating_mul(self.overhead))
    }

    /// The logical size of a stored object of `stored` bytes; `None` if no
    /// object of this format has that size.
    pub(in crate::layers) fn logical_size(&self, stored: u64) -> Option<u64> {
        let x = stored.checked_sub(self.header + self.trailer)?;
        let m = x.div_ceil(self.step()).max(1);
        let n = x.checked_sub(m * self.overhead)?;
        (self.chunks(n) == m).then_some(n)
    }

    /// Stored offset of chunk `i`.
    pub(in crate::layers) fn offset(&self, i: u64) -> u64 {
        self.header + i * self.step()
    }

    /// The largest logical size whose stored size is at most `stored`.
    pub(in crate::layers) fn max_logical(&self, stored: u64) -> u64 {
        let x = stored.saturating_sub(self.header + self.trailer);
        let (full, rest) = (x / self.step(), x % self.step());
        full * self.chunk + rest.saturating_sub(self.overhead)
    }
}

/// How a chunked layer checks (and decrypts) what it reads. Runs inside
/// [`cpu`], a batch of chunks at a time.
pub(in crate::layers) trait Opener: Send + 'static {
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

    /// Whether a ranged read that stops before the final chunk opens it
    /// anyway (one more ranged read of at most a chunk), so an object cut
    /// at a chunk boundary fails every read, not only those reaching the
    /// end. Only over adapters with ranged reads.
    fn final_chunk_on_ranged_reads(&self) -> bool {
        false
    }
}

/// Opens a read of a chunked format whose header is read in `windows`:
/// `parse` gets the object's first bytes, at most the next window's worth
/// each time (and whether this is a full read), and returns the format's
/// geometry (`header`: the bytes the header took) and the opener, or
/// `None` when the header goes on past what it was given. A full read is
/// one streamed inner read; its end is found by looking ahead, so it needs
/// no stat. A ranged read stats the object, reads the header, then reads
/// only the chunks covering the range (or reads and skips, when the inner
/// adapter has no ranged reads).
pub(in crate::layers) async fn read_chunked<O, F>(
    req: ReadRequest<'_>,
    windows: &[usize],
    mut parse: F,
) -> Result<Box<dyn ObjectReader>>
where
    O: Opener,
    F: FnMut(&[u8], bool) -> Result<Option<(Chunked, O)>>,
{
    let ReadRequest {
        inner,
        path,
        range,
        site,
    } = req;
    let Some(range) = range else {
        let mut src = Prefetch::open(inner, path, None, &site).await?;
        let (geo, opener) = header_from(&mut src, windows, &mut parse, true, &site).await?;
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
    let ranged = inner.capabilities().read_range;
    let stored = inner.stat(path).await.map_err(|e| site.locate(e))?.size;
    let (geo, mut opener, src) = if ranged {
        let parsed = read_header(inner, path, stored, windows, &site, |h| parse(h, false)).await?;
        let (geo, opener) = parsed.ok_or_else(|| no_header(&site))?;
        (geo, opener, None)
    } else {
        let mut src = Prefetch::open(inner, path, None, &site).await?;
        let (geo, opener) = header_from(&mut src, windows, &mut parse, false, &site).await?;
        (geo, opener, Some(src))
    };
    let n = geo.logical_size(stored).ok_or_else(|| impossible_size(&site, stored))?;
    let (start, end) = clamp_range(range, n, &site)?;
    if start == end {
        return Ok(Box::new(EmptyReader));
    }
    let m = geo.chunks(n);
    let (first, stop) = (start / geo.chunk, end.div_ceil(geo.chunk));
    if ranged && stop < m && opener.final_chunk_on_ranged_reads() {
        let last = read_stored(inner, path, geo.offset(m - 1), stored - geo.trailer, &site).await?;
        let mut scratch = BytesMut::with_capacity(last.len());
        opener
            .open(m - 1, true, last, &mut scratch)
            .map_err(|why| site.integrity(format!("the final chunk {}: {why}", m - 1)))?;
    }
    let lo = geo.offset(first);
    let hi = if stop == m { stored } else { geo.offset(stop) };
    let src = match src {
        Some(mut src) => {
            if !src.skip(lo - geo.header).await? {
                return Err(site.integrity("the object is shorter than its size: truncated or changed while read"));
            }
            src
        }
        None => {
            let r = ByteRange {
                start: lo,
                end: Some(hi),
            };
            Prefetch::open(inner, path, Some(r), &site).await?
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

/// Reads the first bytes of the stored object `path` (`stored` bytes) in
/// `windows`, until `parse` finds the whole header in them (see
/// [`read_chunked`]); `None` if the object ends first.
pub(in crate::layers) async fn read_header<T>(
    inner: &dyn Adapter,
    path: &ObjectPath,
    stored: u64,
    windows: &[usize],
    site: &Site,
    mut parse: impl FnMut(&[u8]) -> Result<Option<T>>,
) -> Result<Option<T>> {
    for &w in windows {
        let n = (w as u64).min(stored);
        let header = read_stored(inner, path, 0, n, site).await?;
        if let Some(t) = parse(&header)? {
            return Ok(Some(t));
        }
        if n == stored {
            break;
        }
    }
    Ok(None)
}

/// Parses the header at the start of `src` (see [`read_chunked`]) and
/// consumes it.
async fn header_from<O, F>(
    src: &mut Prefetch,
    windows: &[usize],
    parse: &mut F,
    full: bool,
    site: &Site,
) -> Result<(Chunked, O)>
where
    F: FnMut(&[u8], bool) -> Result<Option<(Chunked, O)>>,
{
    for &w in windows {
        let have = src.fill(w).await?.min(w);
        if let Some((geo, opener)) = parse(&src.peek(have), full)? {
            src.take(geo.header as usize);
            return Ok((geo, opener));
        }
        if have < w {
            break;
        }
    }
    Err(no_header(site))
}

fn no_header(site: &Site) -> Error {
    site.integrity("the object has no header of this layer: it was not written through it, or is truncated")
}

/// The error for a stored size no object of a chunked format has.
pub(in crate::layers) fn impossible_size(site: &Site, stored: u64) -> Error {
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
