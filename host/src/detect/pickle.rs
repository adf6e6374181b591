//! Reading a pickle's opcodes without unpickling anything.
//!
//! The scanner runs Python's pickle machine (`Lib/pickletools.py` documents
//! every opcode and its stack effect) over abstract values: it keeps the
//! stack, the mark stack and the memo, but the only values it knows are
//! short strings (to resolve `STACK_GLOBAL`'s module and name) and the
//! globals it met. Nothing is constructed, imported or called. A stream that
//! `pickle.load` would refuse (an unknown opcode, a pop from an empty stack,
//! a memo key never stored, a bad text argument) is [`End::Invalid`].

use std::collections::HashMap;

/// How the scan ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// `STOP` with exactly one value on the stack: a complete pickle.
    Stop,
    /// The bytes ran out (or the opcode budget did) before `STOP`, with
    /// nothing wrong so far.
    Truncated,
    /// Something `pickle.load` would refuse.
    Invalid,
}

/// What the opcodes said about the pickle.
#[derive(Clone, Debug, Default)]
pub struct Scan {
    /// The `PROTO` argument, if the stream starts with one.
    pub proto: Option<u8>,
    /// Opcodes read.
    pub opcodes: usize,
    /// Any `GLOBAL`, `STACK_GLOBAL` or `INST` read.
    pub globals: usize,
    /// A class of `sklearn.*`.
    pub sklearn: bool,
    /// joblib's `NumpyArrayWrapper`: raw array bytes follow the wrapper
    /// inside the stream, which only `joblib.load` reads.
    pub joblib_arrays: bool,
    /// joblib < 0.10's wrappers, whose arrays live in companion files.
    pub joblib_companion_files: bool,
    /// A TorchScript class (`__torch__.*`).
    pub torchscript: bool,
    /// The first value is legacy `torch.save`'s magic number.
    pub torch_magic: bool,
    /// Where the scan stopped (`STOP`'s offset + 1, or the failing opcode).
    pub end_offset: usize,
}

/// A scan result with its end.
#[derive(Clone, Debug)]
pub struct Scanned {
    /// The facts.
    pub scan: Scan,
    /// How it ended.
    pub end: End,
}

/// legacy torch.save's `MAGIC_NUMBER = 0x1950a86a20f9469cfc6c`, as `LONG1`
/// writes it (little-endian two's complement).
const TORCH_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// Longest string kept as a value (module and class names are short).
const MAX_NAME: usize = 512;
/// Opcodes read at most; every opcode consumes at least one byte, so this
/// only matters for a caller passing more than [`super::DETECT_HEAD`].
const MAX_OPCODES: usize = 4 << 20;

#[derive(Clone, Debug)]
enum Value {
    Str(Box<str>),
    Other,
}

struct Machine {
    stack: Vec<Value>,
    marks: Vec<Vec<Value>>,
    memo: HashMap<u64, Value>,
}

impl Machine {
    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }
    fn pop(&mut self) -> Option<Value> {
        self.stack.pop()
    }
    fn pop_n(&mut self, n: usize) -> Option<()> {
        if self.stack.len() < n {
            return None;
        }
        self.stack.truncate(self.stack.len() - n);
        Some(())
    }
    fn top(&self) -> Option<&Value> {
        self.stack.last()
    }
    fn mark(&mut self) {
        self.marks.push(std::mem::take(&mut self.stack));
    }
    /// Drops everything down to the last mark (pickle's `pop_mark`).
    fn pop_mark(&mut self) -> Option<Vec<Value>> {
        let items = std::mem::replace(&mut self.stack, self.marks.pop()?);
        Some(items)
    }
}

/// Scans the pickle at the start of `bytes`.
pub fn scan(bytes: &[u8]) -> Scanned {
    let mut s = Scan::default();
    let end = run(bytes, &mut s);
    Scanned { scan: s, end }
}

fn run(b: &[u8], s: &mut Scan) -> End {
    let mut m = Machine {
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
    };
    let mut pos = 0usize;
    // Each step returns None when the bytes ran out in an argument.
    macro_rules! take {
        ($n:expr) => {{
            let n: usize = $n;
            match pos.checked_add(n).filter(|&e| e <= b.len()) {
                Some(e) => {
                    let v = &b[pos..e];
                    pos = e;
                    v
                }
                None => return End::Truncated,
            }
        }};
    }
    macro_rules! le {
        ($n:expr) => {{
            let v = take!($n);
            let mut x = 0u64;
            for (i, byte) in v.iter().enumerate() {
                x |= (*byte as u64) << (8 * i);
            }
            x
        }};
    }
    macro_rules! line {
        () => {{
            match b[pos.min(b.len())..].iter().position(|&c| c == b'\n') {
                Some(i) => {
                    let v = &b[pos..pos + i];
                    pos += i + 1;
                    v
                }
                None => return End::Truncated,
            }
        }};
    }
    macro_rules! need {
        ($e:expr) => {
            match $e {
                Some(v) => v,
                None => return End::Invalid,
            }
        };
    }
    loop {
        s.end_offset = pos;
        if s.opcodes >= MAX_OPCODES {
            return End::Truncated;
        }
        let op = take!(1)[0];
        s.opcodes += 1;
        match op {
            0x80 => {
                // PROTO: only as the first opcode (Python writes it there).
                let v = take!(1)[0];
                if s.opcodes != 1 || !(2..=5).contains(&v) {
                    return End::Invalid;
                }
                s.proto = Some(v);
            }
            b'.' => {
                s.end_offset = pos;
                return if m.stack.len() == 1 && m.marks.is_empty() {
                    End::Stop
                } else {
                    End::Invalid
                };
            }
            b'(' => m.mark(),
            b'0' => {
                if m.pop().is_none() {
                    need!(m.pop_mark());
                }
            }
            b'1' => {
                need!(m.pop_mark());
            }
            b'2' => {
                let v = need!(m.top()).clone();
                m.push(v);
            }
            // Numbers and constants pushed from text lines.
            b'I' | b'L' | b'F' => {
                let l = line!();
                if !valid_number(l, op) {
                    return End::Invalid;
                }
                m.push(Value::Other);
            }
            b'S' => {
                let l = line!();
                let quoted = l.len() >= 2 && (l[0] == b'\'' || l[0] == b'"') && l[l.len() - 1] == l[0];
                if !quoted {
                    return End::Invalid;
                }
                m.push(Value::Other);
            }
            b'V' => {
                let l = line!();
                m.push(short_str(l));
            }
            b'P' => {
                line!();
                m.push(Value::Other);
            }
            b'J' => {
                take!(4);
                m.push(Value::Other);
            }
            b'K' => {
                take!(1);
                m.push(Value::Other);
            }
            b'M' => {
                take!(2);
                m.push(Value::Other);
            }
            b'G' => {
                take!(8);
                m.push(Value::Other);
            }
            b'N' | 0x88 | 0x89 | b')' | b']' | b'}' | 0x8f | 0x97 => m.push(Value::Other),
            0x8a => {
                let n = take!(1)[0] as usize;
                let v = take!(n);
                if s.opcodes == 2 && s.proto.is_some() && v == TORCH_MAGIC {
                    s.torch_magic = true;
                }
                m.push(Value::Other);
            }
            0x8b => {
                let n = le!(4) as usize;
                take!(n);
                m.push(Value::Other);
            }
            // Strings and bytes with a length prefix.
            b'T' | b'B' => {
                let n = le!(4) as usize;
                take!(n);
                m.push(Value::Other);
            }
            b'U' | b'C' => {
                let n = take!(1)[0] as usize;
                take!(n);
                m.push(Value::Other);
            }
            b'X' => {
                let n = le!(4) as usize;
                let v = take!(n);
                m.push(short_str(v));
            }
            0x8c => {
                let n = take!(1)[0] as usize;
                let v = take!(n);
                m.push(short_str(v));
            }
            0x8d => {
                let n = le!(8);
                let v = take!(usize::try_from(n).unwrap_or(usize::MAX));
                m.push(short_str(v));
            }
            0x8e | 0x96 => {
                let n = le!(8);
                take!(usize::try_from(n).unwrap_or(usize::MAX));
                m.push(Value::Other);
            }
            0x95 => {
                // FRAME: a length; the opcodes inside are read as usual.
                take!(8);
            }
            0x82 => {
                take!(1);
                m.push(Value::Other);
            }
            0x83 => {
                take!(2);
                m.push(Value::Other);
            }
            0x84 => {
                take!(4);
                m.push(Value::Other);
            }
            // Globals.
            // GLOBAL names a class; INST also builds it from a marked tuple.
            b'c' | b'i' => {
                let module = line!().to_vec();
                let name = line!().to_vec();
                if !is_dotted(&module) || !is_dotted(&name) {
                    return End::Invalid;
                }
                global(s, &module, &name);
                if op == b'i' {
                    need!(m.pop_mark());
                }
                m.push(Value::Other);
            }
            0x93 => {
                let name = need!(m.pop());
                let module = need!(m.pop());
                match (module, name) {
                    (Value::Str(module), Value::Str(name))
                        if is_dotted(module.as_bytes()) && is_dotted(name.as_bytes()) =>
                    {
                        global(s, module.as_bytes(), name.as_bytes());
                    }
                    _ => return End::Invalid,
                }
                m.push(Value::Other);
            }
            // Memo.
            b'p' => {
                let key = need!(decimal(line!()));
                let v = need!(m.top()).clone();
                m.memo.insert(key, v);
            }
            b'q' => {
                let key = take!(1)[0] as u64;
                let v = need!(m.top()).clone();
                m.memo.insert(key, v);
            }
            b'r' => {
                let key = le!(4);
                let v = need!(m.top()).clone();
                m.memo.insert(key, v);
            }
            0x94 => {
                let key = m.memo.len() as u64;
                let v = need!(m.top()).clone();
                m.memo.insert(key, v);
            }
            b'g' => {
                let key = need!(decimal(line!()));
                let v = need!(m.memo.get(&key)).clone();
                m.push(v);
            }
            b'h' => {
                let key = take!(1)[0] as u64;
                let v = need!(m.memo.get(&key)).clone();
                m.push(v);
            }
            b'j' => {
                let key = le!(4);
                let v = need!(m.memo.get(&key)).clone();
                m.push(v);
            }
            // Building containers and objects.
            b'a' | b'b' => {
                need!(m.pop_n(1));
                need!(m.top());
            }
            b's' => {
                need!(m.pop_n(2));
                need!(m.top());
            }
            b'e' | b'u' | 0x90 => {
                need!(m.pop_mark());
                need!(m.top());
            }
            b'd' | b'l' | b't' | 0x91 => {
                need!(m.pop_mark());
                m.push(Value::Other);
            }
            b'o' => {
                let items = need!(m.pop_mark());
                if items.is_empty() {
                    return End::Invalid;
                }
                m.push(Value::Other);
            }
            0x85 | b'Q' | 0x98 => {
                need!(m.pop_n(1));
                m.push(Value::Other);
            }
            0x86 | b'R' | 0x81 => {
                need!(m.pop_n(2));
                m.push(Value::Other);
            }
            0x87 | 0x92 => {
                need!(m.pop_n(3));
                m.push(Value::Other);
            }
            _ => return End::Invalid,
        }
        // joblib writes raw array bytes right after the wrapper's BUILD:
        // nothing past it is opcodes, and the answer is known.
        if s.joblib_arrays || s.torch_magic {
            return End::Truncated;
        }
    }
}

fn global(s: &mut Scan, module: &[u8], name: &[u8]) {
    s.globals += 1;
    if module == b"sklearn" || module.starts_with(b"sklearn.") {
        s.sklearn = true;
    }
    if module == b"joblib.numpy_pickle" {
        match name {
            b"NumpyArrayWrapper" => s.joblib_arrays = true,
            b"NDArrayWrapper" | b"ZNDArrayWrapper" => s.joblib_companion_files = true,
            _ => {}
        }
    }
    if module == b"__torch__" || module.starts_with(b"__torch__.") {
        s.torchscript = true;
    }
}

fn short_str(v: &[u8]) -> Value {
    match std::str::from_utf8(v) {
        Ok(t) if t.len() <= MAX_NAME => Value::Str(t.into()),
        _ => Value::Other,
    }
}

/// A module or qualified name: dot-separated Python identifiers (ASCII).
fn is_dotted(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_NAME
        && v.split(|&c| c == b'.').all(|part| {
            !part.is_empty()
                && !part[0].is_ascii_digit()
                && part
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80)
        })
}

fn decimal(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The text forms pickle protocol 0 writes for `INT`, `LONG` and `FLOAT`.
fn valid_number(v: &[u8], op: u8) -> bool {
    let Ok(t) = std::str::from_utf8(v) else { return false };
    match op {
        b'I' => t == "00" || t == "01" || t.parse::<i64>().is_ok() || t.parse::<i128>().is_ok(),
        b'L' => {
            let t = t.strip_suffix('L').unwrap_or(t);
            let t = t.strip_prefix('-').unwrap_or(t);
            !t.is_empty() && t.bytes().all(|c| c.is_ascii_digit())
        }
        _ => t.parse::<f64>().is_ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_globals_of_every_protocol() {
        // pickle.dumps(collections.OrderedDict(), protocol=2)
        let p2 = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01.";
        let r = scan(p2);
        assert_eq!(r.end, End::Stop);
        assert_eq!(r.scan.globals, 1);
        // protocol 4: STACK_GLOBAL from memoized strings, in a frame.
        let p4 = b"\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00\x8c\x0dsklearn.dummy\x94\x8c\x0eDummyRegressor\x94\x93\x94)\x81\x94.";
        let r = scan(p4);
        assert_eq!(r.end, End::Stop, "{r:?}");
        assert!(r.scan.sklearn);
        // protocol 0: text opcodes.
        let p0 = b"(dp0\nVa\np1\nI1\nsVb\np2\ng1\ns.";
        assert_eq!(scan(p0).end, End::Stop);
    }

    #[test]
    fn refuses_what_pickle_load_refuses() {
        for bad in [
            &b"\x80\x04h\x05."[..], // memo key never stored
            b"\x80\x02a.",          // APPEND on an empty stack
            b"\x80\x02NN.",         // two values left at STOP
            b"\x80\x09N.",          // no such protocol
            b"hello",
            b"I like cheese\n.",
            b"\x80\x02\xff",
        ] {
            assert_eq!(scan(bad).end, End::Invalid, "{bad:?}");
        }
        assert_eq!(scan(b"\x80\x04\x95\x10").end, End::Truncated);
    }

    #[test]
    fn knows_the_torch_magic_and_joblib_arrays() {
        let mut legacy = b"\x80\x02\x8a\x0a".to_vec();
        legacy.extend_from_slice(&TORCH_MAGIC);
        legacy.push(b'.');
        assert!(scan(&legacy).scan.torch_magic);
        let wrapper = b"\x80\x04\x8c\x13joblib.numpy_pickle\x8c\x11NumpyArrayWrapper\x93)\x81}b\x00\x01\x02garbage";
        let r = scan(wrapper);
        assert!(r.scan.joblib_arrays, "{r:?}");
    }
}
