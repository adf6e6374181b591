//! Flax parameters: `flax.serialization.to_bytes` is msgpack (the spec's
//! type table) of the state dict, nested maps with string keys, each array
//! an ext of type 1 whose payload is itself msgpack `[shape, dtype, data]`
//! (`flax/serialization.py`, `_ndarray_to_bytes`). Type 3 is a numpy
//! scalar, type 2 a complex number.

/// Nesting deeper than this is refused (flax state dicts are shallow).
const MAX_DEPTH: usize = 64;

struct Walk<'a> {
    b: &'a [u8],
    pos: usize,
    arrays: usize,
    /// The walk ran into the end of `b`.
    cut: bool,
}

enum Step {
    Ok,
    Cut,
    Bad,
}

impl<'a> Walk<'a> {
    fn take(&mut self, n: u64) -> Option<&'a [u8]> {
        let end = (self.pos as u64).checked_add(n)?;
        if end > self.b.len() as u64 {
            self.cut = true;
            return None;
        }
        let v = &self.b[self.pos..end as usize];
        self.pos = end as usize;
        Some(v)
    }
    fn be(&mut self, n: u64) -> Option<u64> {
        Some(self.take(n)?.iter().fold(0u64, |a, &c| (a << 8) | u64::from(c)))
    }

    /// One value; `key` says a map key (which flax writes as a string).
    fn value(&mut self, depth: usize, key: bool) -> Step {
        if depth > MAX_DEPTH {
            return Step::Bad;
        }
        let Some(t) = self.take(1).map(|v| v[0]) else {
            return Step::Cut;
        };
        let is_str = matches!(t, 0xa0..=0xbf | 0xd9..=0xdb);
        if key && !is_str {
            return Step::Bad;
        }
        macro_rules! get {
            ($e:expr) => {
                match $e {
                    Some(v) => v,
                    None if self.cut => return Step::Cut,
                    None => return Step::Bad,
                }
            };
        }
        match t {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Step::Ok,
            0x80..=0x8f => self.items(u64::from(t & 0x0f) * 2, depth, true),
            0x90..=0x9f => self.items(u64::from(t & 0x0f), depth, false),
            0xa0..=0xbf => self.text(u64::from(t & 0x1f)),
            0xd9..=0xdb => {
                let n = get!(self.be(1 << (t - 0xd9)));
                self.text(n)
            }
            0xc4..=0xc6 => {
                let n = get!(self.be(1 << (t - 0xc4)));
                get!(self.take(n));
                Step::Ok
            }
            0xca..=0xd3 => {
                let n = match t {
                    0xca => 4,
                    0xcb => 8,
                    _ => 1 << ((t - 0xcc) & 3),
                };
                get!(self.take(n));
                Step::Ok
            }
            0xd4..=0xd8 | 0xc7..=0xc9 => {
                let n = if t >= 0xd4 {
                    1 << (t - 0xd4)
                } else {
                    get!(self.be(1 << (t - 0xc7)))
                };
                let kind = get!(self.take(1))[0];
                let payload = get!(self.take(n));
                match kind {
                    1 if is_ndarray(payload) => {
                        self.arrays += 1;
                        Step::Ok
                    }
                    2 | 3 => Step::Ok,
                    _ => Step::Bad,
                }
            }
            0xdc | 0xdd => {
                let n = get!(self.be(if t == 0xdc { 2 } else { 4 }));
                self.items(n, depth, false)
            }
            0xde | 0xdf => {
                let n = get!(self.be(if t == 0xde { 2 } else { 4 }));
                self.items(n * 2, depth, true)
            }
            _ => Step::Bad, // 0xc1 is never used
        }
    }

    /// `n` values; in a map every other one is a key.
    fn items(&mut self, n: u64, depth: usize, map: bool) -> Step {
        for i in 0..n {
            match self.value(depth + 1, map && i % 2 == 0) {
                Step::Ok => {}
                other => return other,
            }
        }
        Step::Ok
    }

    fn text(&mut self, n: u64) -> Step {
        match self.take(n) {
            Some(v) if std::str::from_utf8(v).is_ok() => Step::Ok,
            Some(_) => Step::Bad,
            None => Step::Cut,
        }
    }
}

/// An ndarray ext payload: `[shape (ints), dtype name, data (bin)]`.
fn is_ndarray(p: &[u8]) -> bool {
    let mut w = Walk {
        b: p,
        pos: 0,
        arrays: 0,
        cut: false,
    };
    let Some(&t) = p.first() else { return false };
    if t != 0x93 {
        return false;
    }
    w.pos = 1;
    // shape: an array of non-negative ints
    let n = match w.take(1).map(|v| v[0]) {
        Some(t @ 0x90..=0x9f) => u64::from(t & 0x0f),
        Some(0xdc) => w.be(2).unwrap_or(u64::MAX),
        _ => return false,
    };
    for _ in 0..n {
        match w.take(1).map(|v| v[0]) {
            Some(0x00..=0x7f) => {}
            Some(t @ 0xcc..=0xcf) => {
                if w.take(1 << (t - 0xcc)).is_none() {
                    return false;
                }
            }
            _ => return false,
        }
    }
    let dtype_ok = match w.take(1).map(|v| v[0]) {
        Some(t @ 0xa1..=0xbf) => w
            .take(u64::from(t & 0x1f))
            .is_some_and(|d| d.iter().all(|c| c.is_ascii_alphanumeric() || b"<>|=_[]".contains(c))),
        _ => false,
    };
    dtype_ok && matches!(w.value(0, false), Step::Ok) && w.pos == p.len()
}

/// Flax/msgpack parameters: a map at the top, string keys, at least one
/// ndarray; `bytes` is the whole file when `complete`, else its head.
pub fn is_flax(bytes: &[u8], complete: bool) -> bool {
    if !matches!(bytes.first(), Some(0x81..=0x8f | 0xde | 0xdf)) {
        return false;
    }
    let mut w = Walk {
        b: bytes,
        pos: 0,
        arrays: 0,
        cut: false,
    };
    match w.value(0, false) {
        Step::Ok => w.arrays > 0 && (!complete || w.pos == bytes.len()),
        Step::Cut => !complete && w.arrays > 0,
        Step::Bad => false,
    }
}
