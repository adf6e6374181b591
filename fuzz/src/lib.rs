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
//!
//! The wire targets (`resp`, `postgres_wire`) run the redis and database
//! adapters' own clients natively over a connection whose server sends the
//! fuzz bytes (each adapter's `fuzzing` seam); `http_response` runs
//! guest-http's parsing of a response head and body; `cache_entry` reads
//! through the cache layer after the fuzz bytes replaced a cached entry.

use bytes::Bytes;
use std::sync::Arc;
use wharf::layers::{AgeIdentity, Cache, Checksum, Compression, Encryption, Layer};
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
    ("resp", resp),
    ("postgres_wire", postgres_wire),
    ("http_response", http_response),
    ("cache_entry", cache_entry),
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

/// Format detection: the bytes as a whole file (head, tail, zip central
/// directory), as a stream's head of a larger file (the size from the
/// first byte), and as a folder's `MLmodel`, `saved_model.pb` and
/// `config.json` (one input in eight, to keep file writes rare).
pub fn format_detection(data: &[u8]) {
    use wharf::SerializationFormat as F;
    let _ = F::detect_bytes(data);
    let extra = data.first().map_or(0, |&b| u64::from(b) << 20);
    let _ = F::detect_file(data, data.len() as u64 + extra);
    if data.first().is_none_or(|b| b % 8 != 0) {
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let files: Vec<String> = ["MLmodel", "saved_model.pb", "config.json", "model.safetensors"]
        .iter()
        .map(|n| {
            std::fs::write(dir.path().join(n), data).expect("writing a temp file");
            n.to_string()
        })
        .collect();
    let _ = F::detect_dir(dir.path(), &files);
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

/// A Redis server's replies to the redis adapter (the first byte picks the
/// operation: handshake, any replies and list pages, manifest and chunk
/// read, bulk replies read piecewise).
pub fn resp(data: &[u8]) {
    wharf_adapter_redis::fuzzing::server_replies(data);
}

/// A PostgreSQL server's messages to the database adapter (the first byte
/// picks whether startup and authentication come first), rows read
/// through every accessor.
pub fn postgres_wire(data: &[u8]) {
    wharf_adapter_database::fuzzing::server_messages(data);
}

/// An HTTP response as guest-http reads it: `<status>\n`, header lines
/// `name: value`, an empty line, the body (received in pieces of
/// 1 + the first body byte % 64). Checks what the head promises
/// (length, range, dates) and what the body keeps of it.
pub fn http_response(data: &[u8]) {
    use wharf_guest_http::{head, is_transient_status, time};
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (top, body) = match split {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = top.split(|&b| b == b'\n');
    let status_line = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let status: u16 = status_line.trim().parse().unwrap_or(200);
    let entries = lines
        .filter_map(|l| {
            let colon = l.iter().position(|&b| b == b':')?;
            let name = String::from_utf8_lossy(&l[..colon]).into_owned();
            Some((name, l[colon + 1..].trim_ascii().to_vec()))
        })
        .collect();
    let headers = head::headers(entries);
    let _ = is_transient_status(status);
    for (name, value) in &headers {
        match name.as_str() {
            "last-modified" | "date" | "retry-after" => {
                let _ = time::parse_http_date(value);
            }
            "x-ms-creation-time" | "x-goog-updated" => {
                let _ = time::parse_rfc3339(value);
            }
            "content-range" => {
                let _ = head::content_range_start(value);
            }
            _ => {}
        }
    }
    let _ = head::shorten(&String::from_utf8_lossy(body), 600);
    for what in ["GET /o", "HEAD /o"] {
        let expected = head::expected_length(what, status, &headers);
        // A ranged read of a server that ignored `Range`: skip and cut.
        let pick = |i: usize| body.get(i).map_or(0, |&b| b as u64);
        let mut window = head::Window::new(pick(1) * 7, Some(pick(2) * 13));
        let step = 1 + pick(0) as usize % 64;
        let (mut received, mut kept) = (0u64, 0u64);
        for piece in body.chunks(step) {
            received += piece.len() as u64;
            if head::check_received(what, expected, received, false).is_err() || window.is_done() {
                break;
            }
            let want = window.want(step);
            if let Some(k) = window.cut(piece[..want.min(piece.len())].to_vec()) {
                kept += k.len() as u64;
            }
        }
        assert!(kept <= pick(2) * 13, "a window passed on more than its range");
        let _ = head::check_received(what, expected, received, true);
    }
}

/// A cached entry (its `.meta` record and `.data` bytes) replaced on disk,
/// then read through the cache layer, also as a restarted process would.
/// The first byte picks what is replaced (bits 0-1: the meta record, the
/// data, both (the next byte: the record's length / 4), or the data
/// patched by xor) and
/// the object's size (bit 7: two 1 MiB chunks, else one small one). A read
/// must give the object's true bytes or an error, never the tampered ones.
pub fn cache_entry(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let size = if mode & 0x80 != 0 { (1 << 20) + 37 } else { 1000 };
    let object: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let dir = tempfile::tempdir().expect("a temporary directory");
    block_on(async {
        let store = InMemory::new();
        put(&store, "m/model.bin", &object).await;
        let path = ObjectPath::parse("m/model.bin").expect("a valid path");
        let cache = Cache::new(dir.path(), 64 << 20).expect("a cache");
        let cached = cache.wrap(Arc::new(store.clone()));
        // The first read fills the entry.
        let filled = read_all(&*cached, &path, None).await.expect("a memory read");
        assert_eq!(filled, object);
        tamper(dir.path(), mode, rest);
        let restarted = Cache::new(dir.path(), 64 << 20).expect("a cache");
        for layer in [&cache, &restarted] {
            let cached = layer.wrap(Arc::new(store.clone()));
            if let Ok(got) = read_all(&*cached, &path, None).await {
                assert!(got == object, "the cache served a tampered entry");
            }
            let start = rest.first().map_or(0, |&b| b as u64 * 4099) % size as u64;
            let range = ByteRange {
                start,
                end: Some(size as u64),
            };
            if let Ok(got) = read_all(&*cached, &path, Some(range)).await {
                assert!(got == object[start as usize..], "the cache served a tampered range");
            }
        }
    });
}

/// Replaces the cache entry in `dir` as `cache_entry`'s mode byte says.
fn tamper(dir: &std::path::Path, mode: u8, bytes: &[u8]) {
    let file = |ext: &str| {
        std::fs::read_dir(dir)
            .expect("the cache directory")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == ext))
            .expect("the filled entry")
    };
    let (meta, data) = (file("meta"), file("data"));
    let write = |p: &std::path::Path, b: &[u8]| std::fs::write(p, b).expect("writable");
    match mode & 3 {
        0 => write(&meta, bytes),
        1 => write(&data, bytes),
        2 => {
            // The first byte: the meta record's length / 4.
            let (&n, bytes) = bytes.split_first().unwrap_or((&0, &[]));
            let (m, d) = bytes.split_at((n as usize * 4).min(bytes.len()));
            write(&meta, m);
            write(&data, d);
        }
        _ => {
            let mut d = std::fs::read(&data).expect("readable");
            for (i, b) in bytes.iter().enumerate() {
                let at = i * 4099 % d.len().max(1);
                if let Some(x) = d.get_mut(at) {
                    *x ^= b;
                }
            }
            write(&data, &d);
        }
    }
}

/// The encryption layer the target reads with (and seeds are written with).
pub fn encryption() -> Encryption {
    let id = AgeIdentity::from_bytes([7; 32]);
    Encryption::new()
        .with_recipients([id.recipient()])
        .with_identities([id])
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
