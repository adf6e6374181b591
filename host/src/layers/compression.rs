//! zstd compression in independent frames with a seek table, so ranged
//! reads decompress only the frames they need.
//!
//! Stored format (all integers little-endian):
//!
//! ```text
//! header  "WHFZST" | version 1 (u8) | algorithm 1 = zstd (u8) | frame size (u32) | level (i32)
//! frames  compressed length (u32) | logical length (u32) | one zstd frame (with content size and checksum)
//! end     8 zero bytes
//! table   compressed length (u32) | logical length (u32), per frame
//! footer  frame count (u64) | logical length (u64) | frame size (u32) | "WHFZSEEK"
//! ```
//!
//! Every frame holds `frame size` logical bytes but the last (an empty
//! object has no frame). A full read streams the object once, front to
//! back, using the length before each frame, and checks the table and
//! footer at the end. A ranged read stats the object, reads the footer,
//! the table up to the last frame it needs, and then only those frames.
//!
//! The logical size is in the footer, not derivable from the stored size:
//! `stat`, `copy` and every `list` entry cost one extra small ranged read
//! (the 28-byte footer; list entries are read 8 at a time). Over an adapter
//! without ranged reads that read is a whole read.
//!
//! A frame is verified by zstd's own checksum, and decompressed into a
//! buffer of its recorded length: a frame that decompresses to more is an
//! `integrity` error, never a large allocation. The writer keeps 8 bytes
//! per frame for the table (8 KiB per GiB at the default frame size).

use super::Layer;
use super::transform::{
    Codec, EmptyReader, MAX_CHUNK, Prefetch, ReadRequest, Sink, Site, Transform, clamp_range, cpu, read_stored,
};
use crate::adapter::{Adapter, ByteRange, Encoding, ObjectMeta, ObjectReader, ObjectWriter};
use crate::error::{Error, ErrorKind, Result};
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use std::sync::Arc;

const MAGIC: &[u8; 6] = b"WHFZST";
const VERSION: u8 = 1;
const ZSTD: u8 = 1;
const HEADER_LEN: u64 = 16;
const PREFIX_LEN: u64 = 8;
const FOOTER_LEN: u64 = 28;
const FOOTER_MAGIC: &[u8; 8] = b"WHFZSEEK";

const MIN_FRAME_SIZE: u64 = Compression::MIN_FRAME_SIZE;

/// Compresses with zstd at `level`, in independent frames of a fixed
/// logical size followed by a seek table, so a ranged read decompresses
/// only the frames it covers.
///
/// Reading an object not written through this layer is an `integrity`
/// error: bytes never pass through undecoded.
///
/// ```no_run
/// # async fn demo(host: &wharf::Host) -> wharf::Result<()> {
/// use wharf::layers::{Compression, Stack};
/// let adapter = Stack::new()
///     .layer(Compression::new().with_level(9)?)
///     .apply(host.adapter("local_filesystem").await?);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Compression {
    level: i32,
    frame_size: u64,
}

impl Compression {
    /// zstd's own default level, 3.
    pub const DEFAULT_LEVEL: i32 = 3;
    /// Default logical bytes per zstd frame: 1 MiB.
    pub const DEFAULT_FRAME_SIZE: u64 = 1 << 20;
    /// Smallest frame size [`Compression::with_frame_size`] accepts: 1 KiB.
    pub const MIN_FRAME_SIZE: u64 = 1024;

    /// zstd at [`Compression::DEFAULT_LEVEL`], frames of
    /// [`Compression::DEFAULT_FRAME_SIZE`].
    pub fn new() -> Self {
        Compression {
            level: Self::DEFAULT_LEVEL,
            frame_size: Self::DEFAULT_FRAME_SIZE,
        }
    }

    /// zstd at `level` (zstd's range, `-131072..=22` with the bundled
    /// libzstd); a `config` error naming `level` otherwise.
    pub fn with_level(self, level: i32) -> Result<Self> {
        let range = zstd::compression_level_range();
        if !range.contains(&level) {
            return Err(Error::config(format!(
                "compression layer: `level` = {level} is out of zstd's range ({} to {})",
                range.start(),
                range.end()
            )));
        }
        Ok(Compression { level, ..self })
    }

    /// Frames of `frame_size` logical bytes (1 KiB to 64 MiB); a `config`
    /// error naming `frame_size` otherwise. Larger frames compress a little
    /// better; smaller ones make ranged reads cheaper.
    pub fn with_frame_size(self, frame_size: u64) -> Result<Self> {
        if !(MIN_FRAME_SIZE..=MAX_CHUNK).contains(&frame_size) {
            return Err(Error::config(format!(
                "compression layer: `frame_size` = {frame_size} is out of range ({MIN_FRAME_SIZE} to {MAX_CHUNK} bytes)"
            )));
        }
        Ok(Compression { frame_size, ..self })
    }

    /// The zstd level.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Logical bytes per frame.
    pub fn frame_size(&self) -> u64 {
        self.frame_size
    }
}

impl Default for Compression {
    fn default() -> Self {
        Compression::new()
    }
}

impl Layer for Compression {
    fn wrap(&self, inner: Arc<dyn Adapter>) -> Arc<dyn Adapter> {
        Transform::wrap(inner, CompressionCodec { cfg: *self })
    }
}

/// The largest stored size of a frame of `frame_size` logical bytes.
fn max_compressed(frame_size: u64) -> u64 {
    zstd::zstd_safe::compress_bound(frame_size as usize) as u64 + 64
}

#[derive(Clone, Copy)]
struct Footer {
    frames: u64,
    logical: u64,
    frame_size: u64,
}

impl Footer {
    fn parse(b: &[u8], stored: u64) -> std::result::Result<Footer, String> {
        let not_ours =
            || "the object has no compression footer: it was not written through this layer, or is truncated";
        if &b[20..28] != FOOTER_MAGIC {
            return Err(not_ours().into());
        }
        let f = Footer {
            frames: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            logical: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
            frame_size: u32::from_le_bytes(b[16..20].try_into().expect("4 bytes")) as u64,
        };
        let smallest = f
            .frames
            .checked_mul(2 * PREFIX_LEN + 1)
            .and_then(|x| x.checked_add(HEADER_LEN + PREFIX_LEN + FOOTER_LEN));
        if !(MIN_FRAME_SIZE..=MAX_CHUNK).contains(&f.frame_size)
            || f.logical.div_ceil(f.frame_size) != f.frames
            || smallest.is_none_or(|s| s > stored)
        {
            return Err("the footer is corrupt".into());
        }
        Ok(f)
    }

    /// Stored offset of the seek table.
    fn table_start(&self, stored: u64) -> u64 {
        stored - FOOTER_LEN - PREFIX_LEN * self.frames
    }

    /// Logical length of frame `i`.
    fn frame_len(&self, i: u64) -> u64 {
        if i + 1 == self.frames {
            self.logical - i * self.frame_size
        } else {
            self.frame_size
        }
    }
}

fn entry(b: &[u8]) -> (u64, u64) {
    (
        u32::from_le_bytes(b[..4].try_into().expect("4 bytes")) as u64,
        u32::from_le_bytes(b[4..8].try_into().expect("4 bytes")) as u64,
    )
}

struct CompressionCodec {
    cfg: Compression,
}

/// The footer of the stored object `path` of `stored` bytes.
async fn footer(inner: &dyn Adapter, path: &ObjectPath, stored: u64, site: &Site) -> Result<Footer> {
    if stored < HEADER_LEN + PREFIX_LEN + FOOTER_LEN {
        return Err(site.integrity(format!(
            "a stored size of {stored} bytes is too small for this layer's format: the object was not written through it, or is truncated"
        )));
    }
    let b = read_stored(inner, path, stored - FOOTER_LEN, stored, site).await?;
    Footer::parse(&b, stored).map_err(|why| site.integrity(why))
}

impl CompressionCodec {
    /// A ranged read over an inner adapter with ranged reads.
    async fn read_range(
        &self,
        inner: &dyn Adapter,
        path: &ObjectPath,
        range: ByteRange,
        site: Site,
    ) -> Result<Box<dyn ObjectReader>> {
        clamp_range(range, u64::MAX, &site)?;
        let stored = inner.stat(path).await.map_err(|e| site.locate(e))?.size;
        let footer = footer(inner, path, stored, &site).await?;
        let (start, end) = clamp_range(range, footer.logical, &site)?;
        if start == end {
            return Ok(Box::new(EmptyReader));
        }
        let (first, stop) = (start / footer.frame_size, end.div_ceil(footer.frame_size));
        // Where frames `first` and `stop` start, from the table.
        let table = footer.table_start(stored);
        let r = ByteRange {
            start: table,
            end: Some(table + PREFIX_LEN * stop),
        };
        let mut entries = Prefetch::open(inner, path, Some(r), &site).await?;
        let max_c = max_compressed(footer.frame_size);
        let (mut off, mut lo) = (HEADER_LEN, HEADER_LEN);
        for i in 0..stop {
            let e = entries
                .exact(PREFIX_LEN as usize)
                .await?
                .ok_or_else(|| site.integrity("the seek table is truncated"))?;
            let (c, l) = entry(&e);
            if l != footer.frame_len(i) || c == 0 || c > max_c {
                return Err(site.integrity(format!("the seek table's entry for frame {i} is corrupt")));
            }
            if i == first {
                lo = off;
            }
            off += PREFIX_LEN + c;
        }
        if off + PREFIX_LEN > table {
            return Err(site.integrity("the seek table points past the frames"));
        }
        let r = ByteRange {
            start: lo,
            end: Some(off),
        };
        let src = Prefetch::open(inner, path, Some(r), &site).await?;
        Ok(Box::new(FrameReader::new(
            src,
            site,
            footer.frame_size,
            first,
            Mode::Ranged { stop, footer },
            start - first * footer.frame_size,
            end - start,
        )?))
    }
}

#[async_trait]
impl Codec for CompressionCodec {
    const LAYER: &'static str = "compression";

    fn encoding(&self) -> Encoding {
        Encoding::Compression {
            algorithm: "zstd".into(),
            level: self.cfg.level,
        }
    }

    fn max_object_size(&self, inner: Option<u64>) -> Option<u64> {
        let per_frame = 2 * PREFIX_LEN + max_compressed(self.cfg.frame_size);
        inner.map(|m| m.saturating_sub(HEADER_LEN + PREFIX_LEN + FOOTER_LEN) / per_frame * self.cfg.frame_size)
    }

    fn stored_size(&self, _logical: u64) -> Option<u64> {
        // Unknown until the data is compressed.
        None
    }

    async fn logical_size(&self, inner: &dyn Adapter, meta: &ObjectMeta, site: &Site) -> Result<u64> {
        let path = ObjectPath::parse(&meta.path).map_err(|e| site.locate(e))?;
        Ok(footer(inner, &path, meta.size, site).await?.logical)
    }

    async fn read(&self, req: ReadRequest<'_>) -> Result<Box<dyn ObjectReader>> {
        let ReadRequest {
            inner,
            path,
            range,
            site,
        } = req;
        let (skip, left) = match range {
            Some(r) if inner.capabilities().read_range => return self.read_range(inner, path, r, site).await,
            Some(r) => {
                let (start, end) = clamp_range(r, u64::MAX, &site)?;
                (start, if r.end.is_some() { end - start } else { u64::MAX })
            }
            None => (0, u64::MAX),
        };
        // One streamed read; without ranged reads, frames before the range
        // are skipped undecompressed.
        let mut src = Prefetch::open(inner, path, None, &site).await?;
        let header = src.exact(HEADER_LEN as usize).await?.ok_or_else(|| {
            site.integrity(
                "the object has no compression header: it was not written through this layer, or is truncated",
            )
        })?;
        let frame_size = parse_header(&header).map_err(|why| site.integrity(why))?;
        let mode = Mode::Full {
            short_seen: false,
            total: 0,
            table: Sha256::new(),
        };
        Ok(Box::new(FrameReader::new(src, site, frame_size, 0, mode, skip, left)?))
    }

    async fn write(&self, mut sink: Sink, site: Site) -> Result<Box<dyn ObjectWriter>> {
        let mut comp = zstd::bulk::Compressor::new(self.cfg.level).map_err(|e| zstd_error(&site, e))?;
        comp.include_checksum(true).map_err(|e| zstd_error(&site, e))?;
        comp.include_contentsize(true).map_err(|e| zstd_error(&site, e))?;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&[VERSION, ZSTD]);
        header.extend_from_slice(&(self.cfg.frame_size as u32).to_le_bytes());
        header.extend_from_slice(&self.cfg.level.to_le_bytes());
        sink.send(Bytes::from(header)).await?;
        Ok(Box::new(CompressWriter {
            sink,
            comp: Some(comp),
            site,
            frame: self.cfg.frame_size as usize,
            pending: BytesMut::new(),
            table: Vec::new(),
            total: 0,
        }))
    }
}

fn zstd_error(site: &Site, e: std::io::Error) -> Error {
    site.error(ErrorKind::Io, format!("zstd: {e}"))
}

/// The frame size a header declares, or why it is not a header of ours.
fn parse_header(h: &[u8]) -> std::result::Result<u64, String> {
    if &h[..6] != MAGIC {
        return Err("the object has no compression header: it was not written through this layer".into());
    }
    if h[6] != VERSION || h[7] != ZSTD {
        return Err(format!(
            "unknown format version {} / algorithm {} (this build reads version {VERSION}, zstd)",
            h[6], h[7]
        ));
    }
    let frame = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes")) as u64;
    if !(MIN_FRAME_SIZE..=MAX_CHUNK).contains(&frame) {
        return Err(format!("the header is corrupt (frame size {frame})"));
    }
    Ok(frame)
}

enum Mode {
    /// Front to back to the footer (or until the caller's range is done).
    Full {
        /// A frame shorter than the frame size was read: it must be the last.
        short_seen: bool,
        /// Logical bytes in the frames read.
        total: u64,
        /// sha256 of the frame prefixes, to compare with the table.
        table: Sha256,
    },
    /// Frames `index..stop` of an object whose footer was read.
    Ranged { stop: u64, footer: Footer },
}

struct FrameReader {
    src: Prefetch,
    site: Site,
    /// `None` only while `cpu` has it.
    dec: Option<zstd::bulk::Decompressor<'static>>,
    frame_size: u64,
    max_c: u64,
    index: u64,
    mode: Mode,
    /// Logical bytes to drop before the first byte returned.
    skip: u64,
    /// Logical bytes still to return.
    left: u64,
    current: Bytes,
    done: bool,
}

impl FrameReader {
    fn new(src: Prefetch, site: Site, frame_size: u64, index: u64, mode: Mode, skip: u64, left: u64) -> Result<Self> {
        let dec = zstd::bulk::Decompressor::new().map_err(|e| zstd_error(&site, e))?;
        Ok(FrameReader {
            src,
            site,
            dec: Some(dec),
            frame_size,
            max_c: max_compressed(frame_size),
            index,
            mode,
            skip,
            left,
            current: Bytes::new(),
            done: left == 0,
        })
    }

    fn truncated(&self) -> Error {
        self.site.integrity(format!(
            "the object ends inside frame {}: it is truncated, or was changed while being read",
            self.index
        ))
    }

    /// Reads the next frame into `current`; sets `done` after the last.
    async fn advance(&mut self) -> Result<()> {
        let index = self.index;
        let ranged = match &self.mode {
            Mode::Ranged { stop, footer } => Some((index < *stop).then(|| footer.frame_len(index))),
            Mode::Full { .. } => None,
        };
        if ranged == Some(None) {
            self.done = true;
            return Ok(());
        }
        let prefix = self.src.exact(PREFIX_LEN as usize).await?;
        let (c, l) = if let Some(Some(want)) = ranged {
            let p = prefix.ok_or_else(|| self.truncated())?;
            let (c, l) = entry(&p);
            if l != want || c == 0 || c > self.max_c {
                return Err(self.site.integrity(format!(
                    "frame {index}: its length prefix disagrees with the seek table"
                )));
            }
            (c, l)
        } else {
            let p = prefix.ok_or_else(|| {
                self.site
                    .integrity("the object ends without its seek table: it is truncated")
            })?;
            let Mode::Full {
                short_seen,
                total,
                table,
            } = &mut self.mode
            else {
                unreachable!("ranged reads are handled above")
            };
            if p[..] == [0; 8] {
                let (total, table) = (*total, table.clone().finalize());
                return self.check_end(total, &table).await;
            }
            let (c, l) = entry(&p);
            if *short_seen || l == 0 || l > self.frame_size || c == 0 || c > self.max_c {
                return Err(self
                    .site
                    .integrity(format!("frame {index}: its length prefix is corrupt")));
            }
            *short_seen = l < self.frame_size;
            *total += l;
            table.update(&p);
            (c, l)
        };
        let body = self.src.exact(c as usize).await?.ok_or_else(|| self.truncated())?;
        self.index += 1;
        if self.skip >= l {
            // Wholly before the range: not returned, not decompressed.
            self.skip -= l;
            return Ok(());
        }
        let mut dec = self.dec.take().expect("one frame at a time");
        // Allocated here, not on the blocking pool: see `frame`.
        let mut out = Vec::with_capacity(l as usize);
        let (dec, result) = cpu(l, move || {
            let r = dec.decompress_to_buffer(&body[..], &mut out).map(|n| (n, out));
            (dec, r)
        })
        .await;
        self.dec = Some(dec);
        let data = match result {
            Ok((n, out)) if n as u64 == l => Bytes::from(out),
            Ok((n, _)) => {
                return Err(self.site.integrity(format!(
                    "frame {index} decompresses to {n} bytes, its prefix records {l}"
                )));
            }
            Err(e) => {
                return Err(self.site.integrity(format!(
                    "frame {index} does not decompress within its recorded {l} bytes ({e}): it is corrupt"
                )));
            }
        };
        let mut data = data.slice(self.skip as usize..);
        self.skip = 0;
        if data.len() as u64 >= self.left {
            data.truncate(self.left as usize);
            self.done = true;
        }
        self.left -= data.len() as u64;
        self.current = data;
        Ok(())
    }

    /// After the end marker of a full read: the table matches the frames
    /// read, the footer their count and length, and nothing follows.
    async fn check_end(&mut self, total: u64, prefixes: &[u8]) -> Result<()> {
        let mut h = Sha256::new();
        let mut left = self.index * PREFIX_LEN;
        while left > 0 {
            let n = left.min(64 << 10) as usize;
            let b = self
                .src
                .exact(n)
                .await?
                .ok_or_else(|| self.site.integrity("the seek table is truncated"))?;
            h.update(&b);
            left -= n as u64;
        }
        if h.finalize()[..] != prefixes[..] {
            return Err(self.site.integrity("the seek table disagrees with the frames"));
        }
        let footer = self
            .src
            .exact(FOOTER_LEN as usize)
            .await?
            .ok_or_else(|| self.site.integrity("the footer is truncated"))?;
        let f = Footer::parse(&footer, u64::MAX).map_err(|why| self.site.integrity(why))?;
        if f.frames != self.index || f.logical != total || f.frame_size != self.frame_size {
            return Err(self.site.integrity("the footer disagrees with the frames"));
        }
        if self.src.fill(1).await? > 0 {
            return Err(self.site.integrity("bytes follow the footer"));
        }
        self.done = true;
        Ok(())
    }
}

#[async_trait]
impl ObjectReader for FrameReader {
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>> {
        while self.current.is_empty() {
            if self.done {
                return Ok(None);
            }
            self.advance().await?;
        }
        let n = max.max(1).min(self.current.len());
        Ok(Some(self.current.split_to(n)))
    }
}

struct CompressWriter {
    sink: Sink,
    /// `None` only while `cpu` has it.
    comp: Option<zstd::bulk::Compressor<'static>>,
    site: Site,
    frame: usize,
    pending: BytesMut,
    /// The seek table so far.
    table: Vec<u8>,
    total: u64,
}

impl CompressWriter {
    /// Compresses `frames` on the blocking pool into one buffer, each
    /// frame after its length prefix; then sends it.
    async fn emit(&mut self, frames: Vec<Bytes>) -> Result<()> {
        let mut comp = self.comp.take().expect("one call at a time");
        let work = frames.iter().map(|f| f.len() as u64).sum();
        let bound = frames
            .iter()
            .map(|f| max_compressed(f.len() as u64) as usize)
            .sum::<usize>();
        // Allocated here, not on the blocking pool: see `frame`.
        let mut out = BytesMut::with_capacity(bound + frames.len() * PREFIX_LEN as usize);
        let (comp, result) = cpu(work, move || {
            let mut prefixes = Vec::with_capacity(frames.len() * PREFIX_LEN as usize);
            for f in &frames {
                let at = out.len();
                out.resize(at + PREFIX_LEN as usize + max_compressed(f.len() as u64) as usize, 0);
                let n = match comp.compress_to_buffer(f, &mut out[at + PREFIX_LEN as usize..]) {
                    Ok(n) => n,
                    Err(e) => return (comp, Err(e)),
                };
                out.truncate(at + PREFIX_LEN as usize + n);
                out[at..at + 4].copy_from_slice(&(n as u32).to_le_bytes());
                out[at + 4..at + 8].copy_from_slice(&(f.len() as u32).to_le_bytes());
                prefixes.extend_from_slice(&out[at..at + PREFIX_LEN as usize]);
            }
            (comp, Ok((prefixes, out.freeze())))
        })
        .await;
        self.comp = Some(comp);
        let (prefixes, stored) = result.map_err(|e| zstd_error(&self.site, e))?;
        self.table.extend_from_slice(&prefixes);
        self.sink.send(stored).await
    }
}

#[async_trait]
impl ObjectWriter for CompressWriter {
    async fn append(&mut self, mut chunk: Bytes) -> Result<()> {
        self.total += chunk.len() as u64;
        let mut frames = Vec::new();
        while !chunk.is_empty() {
            if self.pending.is_empty() && chunk.len() >= self.frame {
                frames.push(chunk.split_to(self.frame));
                continue;
            }
            let k = (self.frame - self.pending.len()).min(chunk.len());
            self.pending.extend_from_slice(&chunk.split_to(k));
            if self.pending.len() == self.frame {
                frames.push(self.pending.split().freeze());
            }
        }
        if frames.is_empty() {
            return Ok(());
        }
        self.emit(frames).await
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta> {
        if !self.pending.is_empty() {
            let frame = self.pending.split().freeze();
            self.emit(vec![frame]).await?;
        }
        let frames = (self.table.len() as u64) / PREFIX_LEN;
        let CompressWriter {
            mut sink,
            table,
            total,
            frame,
            ..
        } = *self;
        let mut tail = Vec::with_capacity(table.len() + (PREFIX_LEN + FOOTER_LEN) as usize);
        tail.extend_from_slice(&[0; PREFIX_LEN as usize]);
        tail.extend_from_slice(&table);
        tail.extend_from_slice(&frames.to_le_bytes());
        tail.extend_from_slice(&total.to_le_bytes());
        tail.extend_from_slice(&(frame as u32).to_le_bytes());
        tail.extend_from_slice(FOOTER_MAGIC);
        sink.send(Bytes::from(tail)).await?;
        sink.finish_logical(total).await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.sink.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conformance suite, through this layer over `InMemory`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_suite_passes_through_compression() {
        let stack = crate::layers::Stack::new().layer(Compression::new());
        crate::layers::testing::conformance_over_memory(stack).await;
    }

    /// Compression shrinks compressible data in storage; a frame whose
    /// recorded length is smaller than what it decompresses to, a cut
    /// object and a changed compressed byte are integrity errors. (16 KiB
    /// frames: the same boundaries as 1 MiB ones, with less data.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn compression_shrinks_and_refuses_corruption() {
        use crate::ByteRange;
        use crate::layers::testing::{edit, get, over_memory, overwrite, put, read_fails, stored};
        const FRAME: u64 = 16 << 10;
        let (store, a) =
            over_memory(crate::layers::Stack::new().layer(Compression::new().with_frame_size(FRAME).unwrap()));
        let text: Vec<u8> = b"layer.0.attention.weight: float32[4096, 4096]\n"
            .iter()
            .copied()
            .cycle()
            .take(12 * FRAME as usize + 1000)
            .collect();
        let meta = put(a.as_ref(), "z", &text).await;
        let original = stored(&store, "z");
        let in_storage = original.len() as u64;
        assert!(in_storage * 20 < text.len() as u64, "{in_storage} bytes stored");
        assert_eq!((meta.size, meta.stored_size), (text.len() as u64, Some(in_storage)));
        assert_eq!(get(a.as_ref(), "z", None).await.unwrap(), text);
        let restore = || overwrite(&store, "z", &original);

        // Frame 0's prefix (after the 16-byte header): compressed length,
        // then logical length. Claim 1 KiB less than the frame decompresses to.
        edit(&store, "z", |b| {
            let l = u32::from_le_bytes(b[20..24].try_into().unwrap());
            b[20..24].copy_from_slice(&(l - 1024).to_le_bytes());
        });
        read_fails(a.as_ref(), "z", None, ErrorKind::Integrity, "compression").await;
        restore();

        edit(&store, "z", |b| b[40] ^= 0x55);
        read_fails(a.as_ref(), "z", None, ErrorKind::Integrity, "compression").await;
        restore();

        for cut in [original.len() - 1, original.len() / 2, 30] {
            overwrite(&store, "z", &original[..cut]);
            read_fails(a.as_ref(), "z", None, ErrorKind::Integrity, "compression").await;
            let tail = Some(ByteRange {
                start: 4 * FRAME,
                end: None,
            });
            read_fails(a.as_ref(), "z", tail, ErrorKind::Integrity, "compression").await;
        }
        restore();
        assert_eq!(get(a.as_ref(), "z", None).await.unwrap(), text);
    }

    #[test]
    fn level_and_frame_size_are_validated() {
        assert_eq!(Compression::new().level(), 3);
        for bad in [23, 1000, i32::MIN] {
            let e = Compression::new().with_level(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            assert!(e.to_string().contains("`level`"), "{e}");
        }
        let e = Compression::new().with_frame_size(10).unwrap_err();
        assert!(e.to_string().contains("`frame_size`"), "{e}");
        assert_eq!(Compression::new().with_frame_size(4096).unwrap().frame_size(), 4096);
    }
}
