//! Edge cases the generated corpus (`tests/tests/formats.rs`) does not reach:
//! hostile lengths, heads cut short, names that must not matter.

use crate::SerializationFormat as F;

/// A stored zip entry (local header, no data descriptor) and its central
/// directory record.
fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut cd = Vec::new();
    for (name, data) in entries {
        let at = out.len() as u32;
        let mut h = b"PK\x03\x04".to_vec();
        h.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        h.extend_from_slice(&(data.len() as u32).to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&[0, 0]);
        h.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        let mut c = b"PK\x01\x02".to_vec();
        c.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(&(data.len() as u32).to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&[0; 8]);
        c.extend_from_slice(&[0; 4]);
        c.extend_from_slice(&at.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        cd.extend_from_slice(&c);
    }
    let cd_at = out.len() as u32;
    out.extend_from_slice(&cd);
    out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(cd.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_at.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out
}

#[test]
fn a_large_skops_file_needs_its_central_directory() {
    let big = vec![0u8; super::DETECT_HEAD + 10];
    let z = zip(&[("1.npy", &big), ("schema.json", b"{\"protocol\": 2}")]);
    assert_eq!(F::detect_bytes(&z), F::Skops);
    // A stream's head ends inside the first array: not enough to say.
    assert_eq!(F::detect_file(&z[..super::DETECT_HEAD], z.len() as u64), F::Unknown);
}

#[test]
fn torch_archives_by_their_entries_and_pickle() {
    let state = b"\x80\x02}q\x00.";
    let z = zip(&[("a/data.pkl", state), ("a/data/0", b"1234"), ("a/version", b"3\n")]);
    assert_eq!(F::detect_bytes(&z), F::PytorchStateDict);
    let script = b"\x80\x02c__torch__\nM\nq\x00)\x81}b.";
    let z = zip(&[("a/data.pkl", script), ("a/version", b"3\n")]);
    assert_eq!(F::detect_bytes(&z), F::Torchscript);
    // data.pkl that is not a pickle: torch.load would fail.
    let z = zip(&[("a/data.pkl", b"\x80\x02garbage"), ("a/version", b"3\n")]);
    assert_eq!(F::detect_bytes(&z), F::Unknown);
    // Entries outside the archive folder, or no version record.
    let z = zip(&[("a/data.pkl", state), ("b/x", b""), ("a/version", b"3\n")]);
    assert_eq!(F::detect_bytes(&z), F::Unknown);
    let z = zip(&[("a/data.pkl", state)]);
    assert_eq!(F::detect_bytes(&z), F::Unknown);
}

#[test]
fn hostile_lengths_are_refused_not_trusted() {
    // safetensors header longer than the file, or than its 100 MB limit.
    let mut st = (1u64 << 40).to_le_bytes().to_vec();
    st.extend_from_slice(b"{\"a\":{}}");
    assert_eq!(F::detect_bytes(&st), F::Unknown);
    // A pickle string whose length runs past a complete file.
    assert_eq!(
        F::detect_bytes(b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xff"),
        F::Unknown
    );
    // msgpack map claiming 4 billion entries, complete file.
    assert_eq!(F::detect_bytes(b"\xdf\xff\xff\xff\xff"), F::Unknown);
    // A zip end record pointing anywhere.
    let mut z = b"PK\x03\x04".to_vec();
    z.extend_from_slice(&[0xff; 40]);
    z.extend_from_slice(b"PK\x05\x06\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\0\0");
    assert_eq!(F::detect_bytes(&z), F::Unknown);
    // A bzip2 header and nothing decodable.
    assert_eq!(F::detect_bytes(b"BZh9\x31\x41\x59\x26\x53\x59garbage"), F::Unknown);
}

#[test]
fn a_pickle_cut_by_the_head_is_judged_on_its_opcodes() {
    // A protocol 4 pickle naming sklearn, cut before STOP, from a larger file.
    let head = b"\x80\x04\x8c\x0dsklearn.dummy\x94\x8c\x0eDummyRegressor\x94\x93\x94)\x81\x94}\x94(";
    assert_eq!(F::detect_file(head, 1 << 20), F::ScikitLearnPickle);
    // The same bytes as a whole file: pickle.load would fail.
    assert_eq!(F::detect_bytes(head), F::Unknown);
    // Protocol 0 without a STOP or a class is not taken for a pickle.
    assert_eq!(F::detect_file(b"(lp0\n", 1 << 20), F::Unknown);
}

#[test]
fn the_saved_model_message_alone_is_not_onnx() {
    let tf = b"\x08\x01\x12\x04\x0a\x02\x0a\x00";
    assert_eq!(F::detect_bytes(tf), F::Unknown);
    let onnx = b"\x08\x08\x12\x01p\x28\x05\x3a\x03\x12\x01g";
    assert_eq!(F::detect_bytes(onnx), F::Onnx);
}

#[test]
fn folders_by_the_file_that_names_them() {
    let detect = |files: &[(&str, &[u8])]| {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        let names: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
        F::detect_dir(dir.path(), &names).unwrap()
    };
    let saved_model: &[u8] = b"\x08\x01\x12\x02\x0a\x00";
    assert_eq!(
        detect(&[("saved_model.pb", saved_model), ("variables/variables.index", b"")]),
        F::TensorflowSavedmodel
    );
    // The name alone is not enough.
    assert_eq!(detect(&[("saved_model.pb", b"graph")]), F::Unknown);
    assert_eq!(
        detect(&[("MLmodel", b"flavors:\n  sklearn: {}\n"), ("model.pkl", b"")]),
        F::MlflowModel
    );
    assert_eq!(detect(&[("MLmodel", b"hello")]), F::Unknown);
    let mut st = 20u64.to_le_bytes().to_vec();
    st.extend_from_slice(b"{\"__metadata__\":{}}  ");
    assert_eq!(
        detect(&[
            ("config.json", b"{\"model_type\":\"bert\"}"),
            ("model.safetensors", &st)
        ]),
        F::Huggingface
    );
    assert_eq!(
        detect(&[("config.json", b"{}"), ("model.safetensors", b"nope")]),
        F::Unknown
    );
    assert_eq!(detect(&[("nested/saved_model.pb", saved_model)]), F::Unknown);
}
