//! zstd compression in independent frames with a seek table, so ranged
//! reads decompress only the frames they need. The stored object is a
//! standard zstd stream in zstd's seekable format: `zstd -d`, Python's
//! `zstandard` and every zstd decoder read it whole (they skip the
//! skippable frames), and seekable-format readers (the zstd repository's
//! `contrib/seekable_format`, `zeekstd`) read ranges by its seek table.
//!
//! Stored format, version 2 (all integers little-endian; a skippable frame
//! is a magic `0x184D2A50 + n`, a u32 length, and that many bytes):
//!
//! ```text
//! header  skippable frame 0x184D2A57, 16 bytes:
//!         "WHFZST" | version 2 (u8) | algorithm 1 = zstd (u8) | frame size (u32) | level (i32)
//! frames  per frame: skippable frame 0x184D2A50, 8 bytes: compressed length (u32) | logical length (u32)
//!         then one zstd frame (with content size and checksum) of that compressed length
//! table   the seekable format's seek table: skippable frame 0x184D2A5E, 8 x frames + 9 bytes:
//!         per frame: stored length (u32) | logical length (u32)
//!         frame count (u32) | descriptor 0 (u8: no per-frame checksums) | 0x8F92EAB1
//! ```
//!
//! Every frame holds `frame size` logical bytes but the last (an empty
//! object has no frame). A frame's stored length in the table counts its
//! marker (and, for frame 0, the header), so the table's running sums are
//! the offsets seekable readers need. The marker before each frame lets a
//! full read stream the object front to back without the table first; it
//! checks the table and footer at the end. A ranged read stats the
//! object, reads its last 25 bytes (the footer and the last two entries:
//! the frame count, the frame size and the last frame's length), the table
//! up to the last frame it needs, and then only those frames.
//!
//! The logical size is in the table, not derivable from the stored size:
//! `stat`, `copy` and every `list` entry cost one extra small ranged read
//! (the last 25 bytes; list entries are read 8 at a time). Over an adapter
//! without ranged reads that read is a whole read.
//!
//! A frame is verified by zstd's own checksum, and decompressed into a
//! buffer of its recorded length: a frame that decompresses to more is an
//! `integrity` error, never a large allocation. The writer keeps 8 bytes
//! per frame for the table (8 KiB per GiB at the default frame size).
//! Version 1 (wharf's own framing, before the seekable format) is not
//! read: no data was stored in it outside tests.

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
const VERSION: u8 = 2;
const ZSTD: u8 = 1;
/// zstd's skippable frames: `0x184D2A50 + n`; decoders skip them.
const SKIP_MARKER: u32 = 0x184D_2A50;
const SKIP_HEADER: u32 = 0x184D_2A57;
const SKIP_TABLE: u32 = 0x184D_2A5E;
/// The seekable format's footer magic.
const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// The most frames the seekable format allows.
const MAX_FRAMES: u64 = 0x800_0000;
/// Header skippable frame: 8 bytes of frame header, 16 of ours.
const HEADER_LEN: u64 = 24;
/// Marker skippable frame before each zstd frame.
const MARKER_LEN: u64 = 16;
/// A seek table entry.
const ENTRY_LEN: u64 = 8;
/// The seek table frame's own header (magic, length).
const TABLE_HEAD_LEN: u64 = 8;
/// The seekable footer: frame count, descriptor, magic.
const SEEK_FOOTER_LEN: u64 = 9;
/// What `stat` reads: the footer and the last two entries.
const TAIL_LEN: u64 = SEEK_FOOTER_LEN + 2 * ENTRY_LEN;

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

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().expect("4 bytes"))
}

/// What the end of an object tells: the frame count, the frame size and
/// the logical length.
#[derive(Clone, Copy)]
struct Footer {
    frames: u64,
    logical: u64,
    frame_size: u64,
}

impl Footer {
    /// Reads the last [`TAIL_LEN`] bytes of an object of `stored` bytes
    /// (fewer if it is smaller): the seekable footer and the last two seek
    /// table entries. Every frame but the last holds the frame size, so
    /// the second-to-last entry gives it (one frame: its own length).
    fn parse(tail: &[u8], stored: u64) -> std::result::Result<Footer, String> {
        let not_ours =
            || "the object has no seek table: it was not written through this layer, or is truncated".to_string();
        let n = tail.len();
        if n < SEEK_FOOTER_LEN as usize {
            return Err(not_ours());
        }
        let foot = &tail[n - SEEK_FOOTER_LEN as usize..];
        if le32(&foot[5..9]) != SEEKABLE_MAGIC {
            return Err(not_ours());
        }
        if foot[4] != 0 {
            return Err(format!(
                "the seek table's descriptor is {:#04x}: not written by this layer (it writes 0)",
                foot[4]
            ));
        }
        let frames = le32(&foot[..4]) as u64;
        let smallest = HEADER_LEN + frames * (MARKER_LEN + 1 + ENTRY_LEN) + TABLE_HEAD_LEN + SEEK_FOOTER_LEN;
        if frames > MAX_FRAMES || smallest > stored {
            return Err("the seek table is corrupt".into());
        }
        let entry_len = |back: usize| -> Option<u64> {
            let end = n.checked_sub(SEEK_FOOTER_LEN as usize + back * ENTRY_LEN as usize)?;
            let start = end.checked_sub(ENTRY_LEN as usize)?;
            Some(le32(&tail[start + 4..end]) as u64)
        };
        let f = match frames {
            0 => Footer {
                frames,
                logical: 0,
                frame_size: MIN_FRAME_SIZE,
            },
            1 => {
                let last = entry_len(0).ok_or_else(not_ours)?;
                Footer {
                    frames,
                    logical: last,
                    frame_size: last.max(MIN_FRAME_SIZE),
                }
            }
            _ => {
                let last = entry_len(0).ok_or_else(not_ours)?;
                let size = entry_len(1).ok_or_else(not_ours)?;
                if last == 0 || last > size {
                    return Err("the seek table is corrupt".into());
                }
                Footer {
                    frames,
                    logical: (frames - 1) * size + last,
                    frame_size: size,
                }
            }
        };
        if !(MIN_FRAME_SIZE..=MAX_CHUNK).contains(&f.frame_size) || (frames == 1 && f.logical == 0) {
            return Err("the seek table is corrupt".into());
        }
        Ok(f)
    }

    /// Stored offset of the seek table's frame header.
    fn table_start(&self, stored: u64) -> u64 {
        stored - SEEK_FOOTER_LEN - ENTRY_LEN * self.frames - TABLE_HEAD_LEN
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
    (le32(&b[..4]) as u64, le32(&b[4..8]) as u64)
}

/// The bytes before frame `i`'s zstd frame that its table entry counts:
/// its marker, and for frame 0 the header.
fn overhead(i: u64) -> u64 {
    if i == 0 { HEADER_LEN + MARKER_LEN } else { MARKER_LEN }
}

/// A skippable frame's header: magic and length.
fn skippable(magic: u32, len: u32) -> [u8; 8] {
    let mut b = [0; 8];
    b[..4].copy_from_slice(&magic.to_le_bytes());
    b[4..].copy_from_slice(&len.to_le_bytes());
    b
}

struct CompressionCodec {
    cfg: Compression,
}

/// The footer of the stored object `path` of `stored` bytes.
async fn footer(inner: &dyn Adapter, path: &ObjectPath, stored: u64, site: &Site) -> Result<Footer> {
    if stored < HEADER_LEN + TABLE_HEAD_LEN + SEEK_FOOTER_LEN {
        return Err(site.integrity(format!(
            "a stored size of {stored} bytes is too small for this layer's format: the object was not written through it, or is truncated"
        )));
    }
    let b = read_stored(inner, path, stored.saturating_sub(TAIL_LEN), stored, site).await?;
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
        // Where frames `first` and `stop` start, from the table (its frame
        // header first, to check it).
        let table = footer.table_start(stored);
        let r = ByteRange {
            start: table,
            end: Some(table + TABLE_HEAD_LEN + ENTRY_LEN * stop),
        };
        let mut entries = Prefetch::open(inner, path, Some(r), &site).await?;
        let head = entries
            .exact(TABLE_HEAD_LEN as usize)
            .await?
            .ok_or_else(|| site.integrity("the seek table is truncated"))?;
        if le32(&head) != SKIP_TABLE || le32(&head[4..]) as u64 != ENTRY_LEN * footer.frames + SEEK_FOOTER_LEN {
            return Err(site.integrity("the seek table's frame header is corrupt"));
        }
        let max_c = max_compressed(footer.frame_size);
        let (mut off, mut lo) = (0, 0);
        for i in 0..stop {
            let e = entries
                .exact(ENTRY_LEN as usize)
                .await?
                .ok_or_else(|| site.integrity("the seek table is truncated"))?;
            let (c, l) = entry(&e);
            let c = c.saturating_sub(overhead(i));
            if l != footer.frame_len(i) || c == 0 || c > max_c {
                return Err(site.integrity(format!("the seek table's entry for frame {i} is corrupt")));
            }
            if i == first {
                // The marker, after the header for frame 0.
                lo = if i == 0 { HEADER_LEN } else { off };
            }
            off += overhead(i) + c;
        }
        if off > table {
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
        let per_frame = MARKER_LEN + ENTRY_LEN + max_compressed(self.cfg.frame_size);
        let frames = inner.map_or(MAX_FRAMES, |m| {
            (m.saturating_sub(HEADER_LEN + TABLE_HEAD_LEN + SEEK_FOOTER_LEN) / per_frame).min(MAX_FRAMES)
        });
        Some(frames * self.cfg.frame_size)
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
        header.extend_from_slice(&skippable(SKIP_HEADER, (HEADER_LEN - 8) as u32));
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
            frames: 0,
        }))
    }
}

fn zstd_error(site: &Site, e: std::io::Error) -> Error {
    site.error(ErrorKind::Io, format!("zstd: {e}"))
}

/// The frame size a header declares, or why it is not a header of ours.
fn parse_header(h: &[u8]) -> std::result::Result<u64, String> {
    if le32(h) != SKIP_HEADER || le32(&h[4..]) as u64 != HEADER_LEN - 8 || &h[8..14] != MAGIC {
        return Err("the object has no compression header: it was not written through this layer".into());
    }
    if h[14] != VERSION || h[15] != ZSTD {
        return Err(format!(
            "unknown format version {} / algorithm {} (this build reads version {VERSION}, zstd)",
            h[14], h[15]
        ));
    }
    let frame = le32(&h[16..]) as u64;
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
        /// sha256 of the table entries the frames make, to compare with
        /// the table.
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
        let head = self.src.exact(8).await?.ok_or_else(|| {
            if ranged.is_some() {
                self.truncated()
            } else {
                self.site
                    .integrity("the object ends without its seek table: it is truncated")
            }
        })?;
        if ranged.is_none() && le32(&head) == SKIP_TABLE {
            let Mode::Full { table, .. } = &self.mode else {
                unreachable!("ranged reads are handled above")
            };
            let table = table.clone().finalize();
            return self.check_end(le32(&head[4..]) as u64, &table).await;
        }
        if le32(&head) != SKIP_MARKER || le32(&head[4..]) != 8 {
            return Err(self
                .site
                .integrity(format!("frame {index}: its marker is missing or corrupt")));
        }
        let marker = self.src.exact(8).await?.ok_or_else(|| self.truncated())?;
        let (c, l) = entry(&marker);
        let (c, l) = if let Some(Some(want)) = ranged {
            if l != want || c == 0 || c > self.max_c {
                return Err(self
                    .site
                    .integrity(format!("frame {index}: its marker disagrees with the seek table")));
            }
            (c, l)
        } else {
            let Mode::Full {
                short_seen,
                total,
                table,
            } = &mut self.mode
            else {
                unreachable!("ranged reads are handled above")
            };
            if *short_seen || l == 0 || l > self.frame_size || c == 0 || c > self.max_c {
                return Err(self.site.integrity(format!("frame {index}: its marker is corrupt")));
            }
            *short_seen = l < self.frame_size;
            *total += l;
            table.update(((c + overhead(index)) as u32).to_le_bytes());
            table.update((l as u32).to_le_bytes());
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

    /// After the seek table's frame header (its length `len`) in a full
    /// read: the table matches the frames read, the footer their count,
    /// and nothing follows.
    async fn check_end(&mut self, len: u64, entries: &[u8]) -> Result<()> {
        if len != self.index * ENTRY_LEN + SEEK_FOOTER_LEN {
            return Err(self.site.integrity("the seek table's length disagrees with the frames"));
        }
        let mut h = Sha256::new();
        let mut left = self.index * ENTRY_LEN;
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
        if h.finalize()[..] != entries[..] {
            return Err(self.site.integrity("the seek table disagrees with the frames"));
        }
        let foot = self
            .src
            .exact(SEEK_FOOTER_LEN as usize)
            .await?
            .ok_or_else(|| self.site.integrity("the seek table's footer is truncated"))?;
        if le32(&foot[5..]) != SEEKABLE_MAGIC || foot[4] != 0 || le32(&foot) as u64 != self.index {
            return Err(self.site.integrity("the seek table's footer disagrees with the frames"));
        }
        if self.src.fill(1).await? > 0 {
            return Err(self.site.integrity("bytes follow the seek table"));
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
    /// Frames written so far.
    frames: u64,
}

impl CompressWriter {
    /// Compresses `frames` on the blocking pool into one buffer, each
    /// frame after its marker; then sends it.
    async fn emit(&mut self, frames: Vec<Bytes>) -> Result<()> {
        if self.frames + frames.len() as u64 > MAX_FRAMES {
            return Err(self.site.error(
                ErrorKind::Invalid,
                format!("more than the seekable format's {MAX_FRAMES} frames: use a larger `frame_size`"),
            ));
        }
        let mut comp = self.comp.take().expect("one call at a time");
        let work = frames.iter().map(|f| f.len() as u64).sum();
        let bound = frames
            .iter()
            .map(|f| max_compressed(f.len() as u64) as usize)
            .sum::<usize>();
        let first = self.frames;
        // Allocated here, not on the blocking pool: see `frame`.
        let mut out = BytesMut::with_capacity(bound + frames.len() * MARKER_LEN as usize);
        let (comp, result) = cpu(work, move || {
            let mut entries = Vec::with_capacity(frames.len() * ENTRY_LEN as usize);
            for (i, f) in frames.iter().enumerate() {
                let at = out.len();
                let m = MARKER_LEN as usize;
                out.resize(at + m + max_compressed(f.len() as u64) as usize, 0);
                let n = match comp.compress_to_buffer(f, &mut out[at + m..]) {
                    Ok(n) => n,
                    Err(e) => return (comp, Err(e)),
                };
                out.truncate(at + m + n);
                out[at..at + 8].copy_from_slice(&skippable(SKIP_MARKER, 8));
                out[at + 8..at + 12].copy_from_slice(&(n as u32).to_le_bytes());
                out[at + 12..at + 16].copy_from_slice(&(f.len() as u32).to_le_bytes());
                let stored = n as u64 + overhead(first + i as u64);
                entries.extend_from_slice(&(stored as u32).to_le_bytes());
                entries.extend_from_slice(&(f.len() as u32).to_le_bytes());
            }
            (comp, Ok((entries, out.freeze())))
        })
        .await;
        self.comp = Some(comp);
        let (entries, stored) = result.map_err(|e| zstd_error(&self.site, e))?;
        self.frames += (entries.len() as u64) / ENTRY_LEN;
        self.table.extend_from_slice(&entries);
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
        let CompressWriter {
            mut sink,
            table,
            total,
            frames,
            ..
        } = *self;
        let mut tail = Vec::with_capacity(table.len() + (TABLE_HEAD_LEN + SEEK_FOOTER_LEN) as usize);
        tail.extend_from_slice(&skippable(SKIP_TABLE, (table.len() as u64 + SEEK_FOOTER_LEN) as u32));
        tail.extend_from_slice(&table);
        tail.extend_from_slice(&(frames as u32).to_le_bytes());
        tail.push(0);
        tail.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
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

        // Frame 0's marker (after the 24-byte header: 8 bytes of skippable
        // frame header, the compressed length, then the logical length).
        // Claim 1 KiB less than the frame decompresses to.
        edit(&store, "z", |b| {
            let l = u32::from_le_bytes(b[36..40].try_into().unwrap());
            b[36..40].copy_from_slice(&(l - 1024).to_le_bytes());
        });
        read_fails(a.as_ref(), "z", None, ErrorKind::Integrity, "compression").await;
        restore();

        edit(&store, "z", |b| b[50] ^= 0x55);
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
