//! Which [`SerializationFormat`] a model is, from its content.
//!
//! Each format is recognised from its own specification (magic numbers,
//! headers, the pickle opcodes, protobuf fields, zip entries), never from a
//! file name: where the content does not decide, the answer is
//! [`SerializationFormat::Unknown`], and a format is never given to bytes
//! its loader would refuse (a pickle `pickle.load` cannot read is not
//! `pickle`). Nothing is unpickled or executed, and nothing reads more than
//! [`DETECT_HEAD`] bytes from the start of a file plus [`DETECT_TAIL`] from
//! its end, whatever its size.
//!
//! Three entry points, by what the caller has:
//! - [`SerializationFormat::detect_file`]: a stream's first bytes and its size
//!   (what `save_stream` sees);
//! - [`SerializationFormat::detect_path`]: a local file, head and tail (a
//!   zip's central directory is at the end);
//! - [`SerializationFormat::detect_dir`]: a local folder, from the names of
//!   its files and the heads of the few that name a format (`MLmodel`,
//!   `saved_model.pb`, `config.json` and weights).
//!
//! The README's format table lists how each format is recognised.

mod compressed;
mod folder;
mod msgpack;
mod pickle;
mod protobuf;
mod zip;

use crate::SerializationFormat;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Bytes read from the start of a file. 1 MiB holds a bzip2 block of
/// joblib's default level (300 kB before compression) and the first
/// opcodes of any pickle a joblib array wrapper would appear in.
pub const DETECT_HEAD: usize = 1 << 20;
/// Bytes read from the end of a file: a zip's central directory (about
/// 100 bytes an entry) and its end record (22 bytes and a comment of up to
/// 64 KiB).
pub const DETECT_TAIL: usize = (1 << 20) + (64 << 10);

/// What detection sees of one file: its first bytes, its last bytes (empty
/// when unknown or already in `head`) and its size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample<'a> {
    head: &'a [u8],
    tail: &'a [u8],
    size: u64,
}

impl<'a> Sample<'a> {
    /// Whether `head` is the whole file.
    fn complete(&self) -> bool {
        self.head.len() as u64 == self.size
    }

    /// The last bytes at hand: the tail, or the whole file when `head` is it.
    fn end(&self) -> &'a [u8] {
        if self.complete() { self.head } else { self.tail }
    }
}

impl SerializationFormat {
    /// Detects the format of a stream from its first bytes (`head`: the first
    /// [`DETECT_HEAD`], or all of them if it is shorter) and its total
    /// `size`. Formats identified by a zip's central directory need
    /// [`detect_path`](Self::detect_path) to be told apart in every case.
    ///
    /// ```
    /// use wharf::SerializationFormat;
    /// let head = b"GGUF\x03\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    /// assert_eq!(SerializationFormat::detect_file(head, 1 << 30), SerializationFormat::Gguf);
    /// // A pickle of None, protocol 4: complete, so `pickle`.
    /// assert_eq!(SerializationFormat::detect_file(b"\x80\x04N.", 4), SerializationFormat::Pickle);
    /// // Text is none of them, whatever the file is called.
    /// assert_eq!(SerializationFormat::detect_file(b"hello", 5), SerializationFormat::Unknown);
    /// ```
    pub fn detect_file(head: &[u8], size: u64) -> Self {
        let head = &head[..head.len().min(DETECT_HEAD)];
        let size = size.max(head.len() as u64);
        detect(&Sample { head, tail: &[], size })
    }

    /// Detects the format of a file whose bytes are all in memory (tests,
    /// fuzzing); the same rules as [`detect_path`](Self::detect_path).
    pub fn detect_bytes(bytes: &[u8]) -> Self {
        let head = &bytes[..bytes.len().min(DETECT_HEAD)];
        let tail = &bytes[bytes.len().saturating_sub(DETECT_TAIL).max(head.len())..];
        detect(&Sample {
            head,
            tail,
            size: bytes.len() as u64,
        })
    }

    /// Detects the format of a local file from its first [`DETECT_HEAD`] and
    /// last [`DETECT_TAIL`] bytes.
    pub fn detect_path(path: &Path) -> io::Result<Self> {
        let mut f = std::fs::File::open(path)?;
        let head = read_up_to(&mut f, DETECT_HEAD)?;
        let mut size = head.len() as u64;
        let mut tail = Vec::new();
        if head.len() == DETECT_HEAD {
            let len = f.metadata()?.len();
            let from = len.saturating_sub(DETECT_TAIL as u64).max(size);
            f.seek(SeekFrom::Start(from))?;
            tail = read_up_to(&mut f, usize::try_from(len - from).unwrap_or(DETECT_TAIL))?;
            // A file that changed size while read is judged on what was read.
            size = from + tail.len() as u64;
        }
        Ok(detect(&Sample {
            head: &head,
            tail: &tail,
            size,
        }))
    }

    /// Detects the format of a local folder from its files' relative paths
    /// (`/`-separated, as `save_dir` lists them) and the first bytes of the
    /// few files that name a format.
    pub fn detect_dir(dir: &Path, files: &[String]) -> io::Result<Self> {
        folder::detect(dir, files)
    }
}

/// Reads up to `n` bytes (fewer only at the end of the file).
fn read_up_to(f: &mut std::fs::File, n: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n.min(DETECT_TAIL));
    f.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

fn detect(s: &Sample<'_>) -> SerializationFormat {
    use SerializationFormat as F;
    let h = s.head;
    if h.is_empty() {
        return F::Unknown;
    }
    // GGUF: magic "GGUF" and a version (ggml/docs/gguf.md: 1 to 3).
    if let [b'G', b'G', b'U', b'F', v0, 0, 0, 0, ..] = h
        && (1..=3).contains(v0)
    {
        return F::Gguf;
    }
    if is_safetensors(s) {
        return F::Safetensors;
    }
    if h.starts_with(b"PK\x03\x04") {
        return zip::detect(s);
    }
    if let Some(c) = compressed::Compressor::sniff(h) {
        let inner = c.inflate_prefix(h, DETECT_HEAD);
        let r = pickle::scan(&inner);
        // What `joblib.load` reads and `pickle.load` does not; a stream cut
        // off by the head (or by the prefix limit) counts as far as it goes.
        let pickled = match r.end {
            pickle::End::Stop => true,
            pickle::End::Truncated => r.scan.proto.is_some() || r.scan.globals > 0,
            pickle::End::Invalid => false,
        };
        return if pickled && !r.scan.joblib_companion_files {
            F::Joblib
        } else {
            F::Unknown
        };
    }
    if let Some(f) = from_pickle(s) {
        return f;
    }
    if protobuf::is_onnx(h, s.size) {
        return F::Onnx;
    }
    // A SavedModel's `saved_model.pb` alone is not loadable (the loader
    // takes the folder, with `variables/`): only `detect_dir` names it.
    if msgpack::is_flax(h, s.complete()) {
        return F::JaxParams;
    }
    // xgboost's `save_model` (JSON or UBJSON): one object whose first key is
    // "learner", whose first key is "attributes" (its writer sorts keys).
    if h.starts_with(br#"{"learner":{"attributes":"#)
        || h.starts_with(b"{L\0\0\0\0\0\0\0\x07learner{L\0\0\0\0\0\0\0\x0aattributes")
    {
        return F::Xgboost;
    }
    // LightGBM's text model (`Booster.save_model`): "tree", then its version.
    if h.starts_with(b"tree\nversion=v") {
        return F::Lightgbm;
    }
    F::Unknown
}

/// safetensors: a little-endian u64 header length N, then N bytes of JSON
/// (an object; each tensor with `dtype`, `shape`, `data_offsets`), padded
/// with spaces; the header is at most 100 MB.
fn is_safetensors(s: &Sample<'_>) -> bool {
    let Some(n) = s
        .head
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    else {
        return false;
    };
    if !(2..=100_000_000).contains(&n) || n.saturating_add(8) > s.size || s.head.get(8) != Some(&b'{') {
        return false;
    }
    let json = &s.head[8..s.head.len().min(8 + n as usize)];
    if json.len() as u64 == n {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(json) else {
            return false;
        };
        return map.iter().all(|(k, v)| {
            k == "__metadata__"
                || (v.get("dtype").is_some() && v.get("shape").is_some() && v.get("data_offsets").is_some())
        });
    }
    // A header longer than the head: its start must be an object whose
    // first key is quoted text, and the rest of what we have valid UTF-8.
    json.get(1) == Some(&b'"')
        && std::str::from_utf8(json).is_ok_and(|t| t.contains("\"dtype\"") || t.contains("__metadata__"))
}

/// The format of a file that is a pickle stream, if it is one.
fn from_pickle(s: &Sample<'_>) -> Option<SerializationFormat> {
    use SerializationFormat as F;
    let r = pickle::scan(s.head);
    let protocol = r.scan.proto.is_some();
    // These two are decided the moment they appear (what follows is not
    // opcodes): legacy torch.save's magic number (then more pickles and raw
    // storages), joblib's array wrapper (then the array's bytes).
    if r.scan.torch_magic {
        return Some(F::PytorchStateDict);
    }
    if r.scan.joblib_arrays {
        return Some(F::Joblib);
    }
    let cut = r.end == pickle::End::Truncated && !s.complete();
    match r.end {
        pickle::End::Invalid => return protocol.then_some(F::Unknown),
        pickle::End::Truncated if !cut => return protocol.then_some(F::Unknown),
        // Protocols 0 and 1 have no marker: a stream whose opcodes run to
        // STOP, or name a class before the head ends, is one.
        pickle::End::Truncated if !protocol && r.scan.globals == 0 => return None,
        _ => {}
    }
    Some(if r.scan.joblib_companion_files {
        // joblib < 0.10 kept the arrays in companion files: not loadable alone.
        F::Unknown
    } else if r.scan.sklearn {
        F::ScikitLearnPickle
    } else {
        F::Pickle
    })
}

#[cfg(test)]
mod tests;
