//! wharf's fuzz targets, one function per parser of untrusted bytes.
//!
//! Each function takes arbitrary bytes and must neither panic nor allocate
//! without bound, whatever they are; errors are fine. Two drivers call them:
//! - `libfuzzer/` (cargo-fuzz, nightly): coverage-guided, run by hand for
//!   minutes to hours: `./scripts/fuzz.sh run <target> <seconds>`;
//! - `tests/smoke.rs` (stable, in the test suite): every committed corpus
//!   file, then a few seconds of mutations of them per target.
//!
//! The layer targets store the bytes as an object in [`wharf::InMemory`]
//! and read it back through the layer (stat, list, a whole read and a
//! ranged one), so they cover the headers, frames, seek tables and trailers
//! exactly as a read from a tampered storage would.

use bytes::Bytes;
use std::sync::Arc;
use wharf::layers::{Checksum, Compression, Encryption, Keyring, Layer};
use wharf::{Adapter, ByteRange, InMemory, LoadOptions, ObjectPath, PutMode, StorageService};

/// A fuzz target: takes any bytes, must not panic.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `libfuzzer/fuzz_targets/*.rs` and of
/// the corpus folders).
pub const TARGETS: &[(&str, Target)] = &[
    ("config", config),
    ("manifest", manifest),
    ("format_detection", format_detection),
    ("checksum_layer", checksum_layer),
    ("compression_layer", compression_layer),
    ("encryption_layer", encryption_layer),
    ("xml", xml),
];

/// `wharf.toml`.
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(cfg) = wharf::Config::parse(&text, "fuzz") {
        let _ = format!("{cfg:?}");
    }
}

/// A stored `wharf.json` (the manifest and its `ModelStorageInfo`), loaded
/// as `get` loads it.
pub fn manifest(data: &[u8]) {
    let _ = serde_json::from_slice::<wharf::ModelStorageInfo>(data);
    block_on(async {
        let store = InMemory::new();
        put(&store, "m/wharf.json", data).await;
        put(&store, "m/0000000000000001/model.bin", b"weights").await;
        let service = StorageService::new(Arc::new(store));
        let _ = service.info("m").await;
        let mut sink = tokio::io::sink();
        let _ = service.load_to_writer("m", &mut sink, &LoadOptions::default()).await;
    });
}

/// Format detection from a file's first bytes and its name (the first
/// byte says how many of the next bytes are the name).
pub fn format_detection(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else { return };
    let (name, head) = rest.split_at((n as usize % 32).min(rest.len()));
    let _ = wharf::SerializationFormat::detect_file(head, &String::from_utf8_lossy(name));
}

/// Objects of the checksum layer (small chunks, so inputs span several).
pub fn checksum_layer(data: &[u8]) {
    read_through(
        &Checksum::new().with_chunk_size(1024).expect("a valid chunk size"),
        data,
    );
}

/// Objects of the compression layer (small frames).
pub fn compression_layer(data: &[u8]) {
    let layer = Compression::new().with_frame_size(1024).expect("valid settings");
    read_through(&layer, data);
}

/// Objects of the encryption layer, read with the key `fuzz` (all zeros).
pub fn encryption_layer(data: &[u8]) {
    read_through(&encryption(), data);
}

/// S3's and Azure's XML answers, through guest-http's scanner.
pub fn xml(data: &[u8]) {
    use wharf_guest_http::xml;
    let doc = String::from_utf8_lossy(data);
    for tag in ["Key", "Contents", "NextContinuationToken", "Blob", "Name", "Code"] {
        for e in xml::elements(&doc, tag) {
            let _ = xml::text(e, "Key");
            let _ = xml::unescape(e);
        }
        let _ = xml::text(&doc, tag);
    }
    let _ = xml::escape(&doc);
}

/// The encryption layer the target reads with (and seeds are written with).
pub fn encryption() -> Encryption {
    let mut keys = Keyring::new();
    keys.insert("fuzz", &"00".repeat(32)).expect("a valid key");
    Encryption::new(keys, "fuzz").expect("a valid layer")
}

/// Stores `data` as the object `o` below the layer, then reads it through.
fn read_through(layer: &dyn Layer, data: &[u8]) {
    block_on(async {
        let store = InMemory::new();
        put(&store, "o", data).await;
        let layered = layer.wrap(Arc::new(store));
        let path = ObjectPath::parse("o").expect("a valid path");
        let _ = layered.stat(&path).await;
        let _ = layered.list("", None, 10).await;
        let _ = read_all(&*layered, &path, None).await;
        // A range picked from the bytes themselves.
        let pick = |i: usize| data.get(i).map_or(0, |&b| b as u64);
        let start = pick(0) * 97 + pick(1);
        let range = ByteRange {
            start,
            end: Some(start + pick(2) * 131 + 1),
        };
        let _ = read_all(&*layered, &path, Some(range)).await;
    });
}

/// Reads an object whole, bounded: a reader that never ends is a finding.
pub async fn read_all(adapter: &dyn Adapter, path: &ObjectPath, range: Option<ByteRange>) -> wharf::Result<Vec<u8>> {
    let mut r = adapter.read(path, range).await?;
    let mut out = Vec::new();
    while let Some(c) = r.next_chunk(64 << 10).await? {
        out.extend_from_slice(&c);
        assert!(
            out.len() < 256 << 20,
            "a read returned more than 256 MiB from a small object"
        );
    }
    Ok(out)
}

/// Writes `data` at `path` directly into `store`.
pub async fn put(store: &dyn Adapter, path: &str, data: &[u8]) {
    let path = ObjectPath::parse(path).expect("a valid path");
    let mut w = store
        .write(&path, PutMode::Overwrite, None)
        .await
        .expect("memory writes");
    w.append(Bytes::copy_from_slice(data)).await.expect("memory writes");
    w.finish().await.expect("memory writes");
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime")
        .block_on(f)
}
