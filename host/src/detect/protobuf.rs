//! Protocol buffers: ONNX's `ModelProto` and TensorFlow's `SavedModel`.
//!
//! Both are a bare message with no magic, so the top-level fields are
//! walked as the wire format defines them (tag varint = field << 3 | wire
//! type; 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32) and checked
//! against each schema: `onnx/onnx.proto` and
//! `tensorflow/core/protobuf/saved_model.proto` + `meta_graph.proto`.

/// One top-level field.
#[derive(Debug)]
struct Field<'a> {
    number: u64,
    wire: u8,
    varint: u64,
    /// For wire type 2: the payload bytes that are in the buffer.
    payload: &'a [u8],
    /// For wire type 2: whether the whole payload is in the buffer.
    whole: bool,
}

fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Walks a message's fields. `bytes` is what is at hand, `len` the
/// message's true length (more than `bytes.len()` when it is cut off).
/// `None` if a field is malformed; a field cut off by the end of `bytes`
/// ends the walk.
fn fields(bytes: &[u8], len: u64) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let start = pos;
        let Some(tag) = varint(bytes, &mut pos) else {
            // Cut off inside the tag, or a tag longer than ten bytes.
            return ((bytes.len() as u64) < len && bytes.len() - start < 10).then_some(out);
        };
        let (number, wire) = (tag >> 3, (tag & 7) as u8);
        if number == 0 || number > (1 << 29) - 1 {
            return None;
        }
        let mut f = Field {
            number,
            wire,
            varint: 0,
            payload: &[],
            whole: true,
        };
        let cut = |pos: usize| pos > bytes.len() && (bytes.len() as u64) < len;
        match wire {
            0 => match varint(bytes, &mut pos) {
                Some(v) => f.varint = v,
                None if (bytes.len() as u64) < len && bytes.len() - start < 12 => return Some(out),
                None => return None,
            },
            1 | 5 => {
                pos += if wire == 1 { 8 } else { 4 };
                if pos > bytes.len() {
                    return cut(pos).then_some(out);
                }
            }
            2 => {
                let Some(n) = varint(bytes, &mut pos) else {
                    return ((bytes.len() as u64) < len && bytes.len() - start < 12).then_some(out);
                };
                if (pos as u64).checked_add(n)? > len {
                    return None; // longer than the message
                }
                let end = (pos as u64 + n).min(bytes.len() as u64) as usize;
                f.payload = &bytes[pos..end];
                f.whole = (end - pos) as u64 == n;
                pos = pos.saturating_add(n as usize);
            }
            _ => return None,
        }
        out.push(f);
        if pos > bytes.len() {
            break;
        }
    }
    if pos as u64 > len {
        return None;
    }
    Some(out)
}

/// ONNX `ModelProto`: every field one the schema has, with its wire type;
/// `ir_version` (1) set; a `graph` (7) whose own first fields are
/// `GraphProto`'s; names (2, 3, 4) valid UTF-8.
pub fn is_onnx(bytes: &[u8], len: u64) -> bool {
    let Some(fs) = fields(bytes, len) else { return false };
    let mut ir = false;
    let mut graph = false;
    for f in &fs {
        let ok = match (f.number, f.wire) {
            (1, 0) => {
                ir = (1..=64).contains(&f.varint);
                true
            }
            (5, 0) => true,
            (2..=4, 2) => !f.whole || std::str::from_utf8(f.payload).is_ok(),
            (6 | 8 | 14 | 20 | 25, 2) => true,
            (7, 2) => {
                graph = is_graph(f);
                graph
            }
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    ir && graph
}

/// `GraphProto`: node 1, name 2, initializer 5, doc_string 10, input 11,
/// output 12, value_info 13, quantization_annotation 14,
/// sparse_initializer 15, metadata_props 16; all length-delimited.
fn is_graph(f: &Field<'_>) -> bool {
    let len = if f.whole { f.payload.len() as u64 } else { u64::MAX };
    match fields(f.payload, len) {
        Some(fs) => fs
            .iter()
            .all(|g| g.wire == 2 && matches!(g.number, 1 | 2 | 5 | 10..=16)),
        None => false,
    }
}

/// TensorFlow `SavedModel`: `saved_model_schema_version` (1) = 1 and
/// `meta_graphs` (2), each a `MetaGraphDef` (fields 1 to 7, all messages).
pub fn is_saved_model(bytes: &[u8], len: u64) -> bool {
    let Some(fs) = fields(bytes, len) else { return false };
    let mut version = false;
    let mut graphs = false;
    for f in &fs {
        match (f.number, f.wire) {
            (1, 0) if f.varint == 1 => version = true,
            (2, 2) => {
                let n = if f.whole { f.payload.len() as u64 } else { u64::MAX };
                let meta = fields(f.payload, n)
                    .is_some_and(|m| !m.is_empty() && m.iter().all(|g| g.wire == 2 && (1..=7).contains(&g.number)));
                if !meta {
                    return false;
                }
                graphs = true;
            }
            _ => return false,
        }
    }
    version && graphs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_onnx_from_a_saved_model() {
        // ir_version 8, producer "p", graph { name "g" }
        let onnx = b"\x08\x08\x12\x01p\x3a\x03\x12\x01g";
        assert!(is_onnx(onnx, onnx.len() as u64));
        assert!(!is_saved_model(onnx, onnx.len() as u64));
        // schema version 1, meta_graphs { meta_info_def { } }
        let tf = b"\x08\x01\x12\x02\x0a\x00";
        assert!(is_saved_model(tf, tf.len() as u64));
        assert!(!is_onnx(tf, tf.len() as u64));
        // cut off inside the graph: still ONNX, judged on what is there
        assert!(is_onnx(&onnx[..7], 1000));
        // a length past the end of the file
        assert!(!is_onnx(b"\x08\x08\x3a\x7f\x12", 5));
        assert!(!is_onnx(b"\x08\x07garbage", 9));
    }
}
