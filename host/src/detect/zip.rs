//! Zip-based formats: torch.save, TorchScript, Keras `.keras`, skops.
//!
//! A zip is named by its entries. The central directory (at the end, found
//! through the end-of-central-directory record, APPNOTE.TXT 4.3.16, and its
//! zip64 form, 4.3.14) lists them all; a stream's head has only the local
//! headers (4.3.7) that fit in it, and torch's writer leaves their sizes to
//! data descriptors (flag bit 3), so there only the first entry is certain.

use super::Sample;
use super::pickle::{self, End};
use crate::SerializationFormat;

/// One entry: its name and where its local header starts.
#[derive(Debug)]
struct Entry {
    name: String,
    local_header: u64,
}

/// Entries listed at most (a directory past this is cut, not trusted less).
const MAX_ENTRIES: usize = 100_000;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}
fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}
fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

/// The format of a file starting with a local file header.
pub fn detect(s: &Sample<'_>) -> SerializationFormat {
    let (entries, complete) = match central_directory(s) {
        Some(e) => (e, true),
        None => (local_headers(s.head), false),
    };
    if entries.is_empty() {
        return SerializationFormat::Unknown;
    }
    if let Some(f) = torch(s, &entries, complete) {
        return f;
    }
    let root = |n: &str| entries.iter().any(|e| e.name == n);
    // keras/src/saving/saving_lib.py: `config.json`, `metadata.json` and
    // the weights `model.weights.h5` (or `.npz`) at the root.
    if root("metadata.json") && root("config.json") && (root("model.weights.h5") || root("model.weights.npz")) {
        return SerializationFormat::Keras;
    }
    // skops.io: `schema.json` at the root, every other entry an `.npy`
    // array (a stream may not reach `schema.json`, written last).
    if complete
        && root("schema.json")
        && entries
            .iter()
            .all(|e| e.name == "schema.json" || (!e.name.contains('/') && e.name.ends_with(".npy")))
    {
        return SerializationFormat::Skops;
    }
    SerializationFormat::Unknown
}

/// torch.save and torch.jit.save: every record under one folder `<a>/`,
/// `<a>/data.pkl` the pickled object; TorchScript adds `<a>/code/` and
/// `<a>/constants.pkl` (`torch/csrc/jit/docs/serialization.md`), and its
/// `data.pkl` names `__torch__.*` classes.
fn torch(s: &Sample<'_>, entries: &[Entry], complete: bool) -> Option<SerializationFormat> {
    let (prefix, _) = entries[0].name.split_once('/')?;
    let data_pkl = format!("{prefix}/data.pkl");
    let pkl = entries.iter().find(|e| e.name == data_pkl)?;
    let inside = |e: &Entry| e.name.strip_prefix(prefix).is_some_and(|r| r.starts_with('/'));
    if !entries.iter().all(inside) {
        return None;
    }
    let has = |rest: &str| entries.iter().any(|e| e.name[prefix.len() + 1..] == *rest);
    let mut script = has("constants.pkl") || entries.iter().any(|e| e.name[prefix.len() + 1..].starts_with("code/"));
    if complete && !has("version") && !has(".data/version") {
        return None;
    }
    // Read data.pkl when its bytes are in the head (torch stores records
    // uncompressed): it must be a pickle, and it names TorchScript classes.
    if let Some((data, whole)) = stored_data(s.head, pkl.local_header) {
        let r = pickle::scan(data);
        if r.end == End::Invalid || (whole && r.end == End::Truncated) {
            return Some(SerializationFormat::Unknown);
        }
        script |= r.scan.torchscript;
    } else if !complete {
        return None;
    }
    Some(if script {
        SerializationFormat::Torchscript
    } else {
        SerializationFormat::PytorchStateDict
    })
}

/// The bytes of a stored (uncompressed) entry whose local header is in
/// `head`, up to its size or the end of the head, and whether that is all
/// of it.
fn stored_data(head: &[u8], at: u64) -> Option<(&[u8], bool)> {
    let at = usize::try_from(at).ok()?;
    let h = head.get(at..)?;
    if !h.starts_with(b"PK\x03\x04") || u16_at(h, 8)? != 0 {
        return None;
    }
    let size = u32_at(h, 18)? as usize;
    let start = 30 + u16_at(h, 26)? as usize + u16_at(h, 28)? as usize;
    let data = h.get(start..)?;
    let known = size != 0 && size != u32::MAX as usize;
    Some(if known && size <= data.len() {
        (&data[..size], true)
    } else {
        (data, false)
    })
}

/// Entries from the local headers that fit in `head`, while each one's size
/// is known from its header.
fn local_headers(head: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while out.len() < MAX_ENTRIES {
        let Some(h) = head.get(at..) else { break };
        if !h.starts_with(b"PK\x03\x04") {
            break;
        }
        let (Some(flags), Some(size), Some(n), Some(x)) = (u16_at(h, 6), u32_at(h, 18), u16_at(h, 26), u16_at(h, 28))
        else {
            break;
        };
        let Some(name) = h.get(30..30 + n as usize) else { break };
        out.push(Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            local_header: at as u64,
        });
        if flags & 8 != 0 || size == u32::MAX {
            break; // the size is in a data descriptor or a zip64 field
        }
        at += 30 + n as usize + x as usize + size as usize;
    }
    out
}

/// The bytes of the file at `[offset, offset + len)` if the sample holds them.
fn bytes_at<'a>(s: &Sample<'a>, offset: u64, len: u64) -> Option<&'a [u8]> {
    let end = offset.checked_add(len)?;
    if end > s.size {
        return None;
    }
    let tail = s.end();
    let tail_start = s.size - tail.len() as u64;
    if offset >= tail_start {
        let from = usize::try_from(offset - tail_start).ok()?;
        return tail.get(from..from + usize::try_from(len).ok()?);
    }
    if end <= s.head.len() as u64 {
        return s.head.get(offset as usize..end as usize);
    }
    None
}

/// Entries from the central directory, when the end record and the whole
/// directory are in the sample.
fn central_directory(s: &Sample<'_>) -> Option<Vec<Entry>> {
    let t = s.end();
    // The end record is the last 22 bytes plus a comment of up to 64 KiB.
    let eocd = (0..t.len().saturating_sub(21)).rev().take(65_536 + 1).find(|&i| {
        t[i..].starts_with(b"PK\x05\x06") && u16_at(t, i + 20).is_some_and(|c| i + 22 + c as usize == t.len())
    })?;
    let (mut count, mut size, mut offset) = (
        u16_at(t, eocd + 10)? as u64,
        u32_at(t, eocd + 12)? as u64,
        u32_at(t, eocd + 16)? as u64,
    );
    if offset == u32::MAX as u64 || size == u32::MAX as u64 || count == u16::MAX as u64 {
        // zip64: the locator just before points at the zip64 end record.
        let loc = eocd.checked_sub(20)?;
        if !t[loc..].starts_with(b"PK\x06\x07") {
            return None;
        }
        let rec = bytes_at(s, u64_at(t, loc + 8)?, 56)?;
        if !rec.starts_with(b"PK\x06\x06") {
            return None;
        }
        count = u64_at(rec, 32)?;
        size = u64_at(rec, 40)?;
        offset = u64_at(rec, 48)?;
    }
    let cd = bytes_at(s, offset, size)?;
    let mut out = Vec::new();
    let mut at = 0usize;
    while (out.len() as u64) < count.min(MAX_ENTRIES as u64) {
        let h = cd.get(at..)?;
        if !h.starts_with(b"PK\x01\x02") {
            return None;
        }
        let (n, x, c) = (
            u16_at(h, 28)? as usize,
            u16_at(h, 30)? as usize,
            u16_at(h, 32)? as usize,
        );
        let name = h.get(46..46 + n)?;
        out.push(Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            local_header: u32_at(h, 42)? as u64,
        });
        at += 46 + n + x + c;
    }
    Some(out)
}
