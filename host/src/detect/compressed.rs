//! joblib's compressed dumps: the whole pickle stream inside one of zlib,
//! gzip, bz2, xz, lzma (alone) or lz4 (frame), chosen on load by the magic
//! bytes `joblib/compressor.py` lists. Only a bounded prefix is inflated.

use std::io::Read;

/// A compressor joblib recognises by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compressor {
    /// `\x78` (zlib, RFC 1950).
    Zlib,
    /// `\x1f\x8b` (gzip, RFC 1952).
    Gzip,
    /// `BZh` (bzip2).
    Bz2,
    /// `\xfd7zXZ\x00` (xz).
    Xz,
    /// `\x5d\x00\x00` (lzma alone: properties 0x5d, as Python's lzma writes).
    Lzma,
    /// `\x04\x22\x4d\x18` (lz4 frame).
    Lz4,
}

impl Compressor {
    /// The compressor `head` starts with, checked a little further than
    /// joblib does (the zlib header's check bits, bzip2's block size digit)
    /// so that one matching byte is not enough.
    pub fn sniff(head: &[u8]) -> Option<Self> {
        match head {
            [0x78, flg, ..] if (0x7800u16 | u16::from(*flg)).is_multiple_of(31) && flg & 0x20 == 0 => Some(Self::Zlib),
            [0x1f, 0x8b, 8, ..] => Some(Self::Gzip),
            [b'B', b'Z', b'h', b'1'..=b'9', ..] => Some(Self::Bz2),
            [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => Some(Self::Xz),
            [0x5d, 0, 0, ..] => Some(Self::Lzma),
            [0x04, 0x22, 0x4d, 0x18, ..] => Some(Self::Lz4),
            _ => None,
        }
    }

    /// Up to `limit` bytes of what `head` decompresses to. A stream cut off
    /// by the end of `head` yields what came before the cut.
    pub fn inflate_prefix(self, head: &[u8], limit: usize) -> Vec<u8> {
        let reader: Box<dyn Read + '_> = match self {
            Self::Zlib => Box::new(flate2::read::ZlibDecoder::new(head)),
            Self::Gzip => Box::new(flate2::read::GzDecoder::new(head)),
            Self::Bz2 => Box::new(bzip2_rs::DecoderReader::new(head)),
            Self::Xz => Box::new(lzma_rust2::XzReader::new(head, false)),
            Self::Lzma => {
                // The window grows with the output, so the declared
                // dictionary size costs nothing past `limit`.
                match lzma_rust2::LzmaReader::new_mem_limit(head, u32::MAX, None) {
                    Ok(r) => Box::new(r),
                    Err(_) => return Vec::new(),
                }
            }
            Self::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(head)),
        };
        read_prefix(reader, limit)
    }
}

/// Reads until `limit`, the end, or the first error (a cut-off stream).
fn read_prefix(mut r: impl Read, limit: usize) -> Vec<u8> {
    let mut out = vec![0u8; limit];
    let mut n = 0;
    while n < limit {
        match r.read(&mut out[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    out.truncate(n);
    out
}
