//! The byte-transforming layers (checksum, compression, encryption) stacked
//! over the real `local_filesystem` backend. What each must do and refuse
//! (tampering, truncation, keys, ranges at chunk edges, rechunked appends)
//! is tested in the layers' own unit tests, over `InMemory`
//! (`host/src/layers/{checksum,compression,encryption}.rs` and
//! `host/src/layers/transform/tests.rs`).

use bytes::Bytes;
use std::sync::Arc;
use wharf::conformance;
use wharf::layers::{AgeIdentity, Checksum, Compression, Encryption, Stack};
use wharf::{Adapter, ObjectPath, PutMode};

/// The real `local_filesystem` guest, storing in `dir`.
async fn local(dir: &std::path::Path) -> Arc<dyn Adapter> {
    wharf_tests::local_host(dir).adapter("local_filesystem").await.unwrap()
}

/// Creates `name` from `data`, appended `piece` bytes at a time.
async fn create(adapter: &dyn Adapter, name: &str, data: &[u8], piece: usize) {
    let path = ObjectPath::parse(name).unwrap();
    let mut w = adapter.write(&path, PutMode::Create, None).await.unwrap();
    for p in data.chunks(piece.max(1)) {
        w.append(Bytes::copy_from_slice(p)).await.unwrap();
    }
    w.finish().await.unwrap();
}

/// Needs the Wasm runtime: the three stacked over a real guest, the large
/// case included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_all_three() {
    let id = AgeIdentity::generate();
    let dir = tempfile::tempdir().unwrap();
    let local = local(dir.path()).await;
    let adapter = Stack::new()
        .layer(Checksum::new())
        .layer(Compression::new())
        .layer(
            Encryption::new()
                .with_recipients([id.recipient()])
                .with_identities([id]),
        )
        .apply(local);
    let report = conformance::run(adapter, wharf_tests::suite_options()).await.unwrap();
    println!("{report}");
    assert!(report.failures().is_empty(), "{report}");
    assert_eq!(report.passed(), report.cases.len(), "{report}");
}

/// What the compression layer stores is a standard zstd stream in zstd's
/// seekable format: the `zstd` CLI and Python's `zstandard` decode the
/// stored file whole, and `zeekstd` (a seekable-format reader, not wharf's)
/// decodes ranges at frame edges by its seek table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_objects_are_standard_seekable_zstd() {
    use std::io::Read;
    const FRAME: u64 = 64 << 10;
    let dir = tempfile::tempdir().unwrap();
    let local = local(dir.path()).await;
    let adapter = Stack::new()
        .layer(Compression::new().with_frame_size(FRAME).unwrap())
        .apply(local);
    // Tensors-like text: compressible, and different in every frame.
    let model: Vec<u8> = (0..40_000u32)
        .flat_map(|i| format!("layer.{}.weight[{i}] = {:.6}\n", i % 97, f64::from(i).sin()).into_bytes())
        .collect();
    assert!(model.len() as u64 > 12 * FRAME);
    create(adapter.as_ref(), "models/m.txt", &model, 100_000).await;
    let stored = dir.path().join("models/m.txt");
    assert!(std::fs::metadata(&stored).unwrap().len() * 3 < model.len() as u64);

    let zstd = std::process::Command::new("zstd")
        .args(["-d", "-c", "-q"])
        .arg(&stored)
        .output()
        .expect("the zstd CLI runs");
    assert!(
        zstd.status.success(),
        "zstd -d: {}",
        String::from_utf8_lossy(&zstd.stderr)
    );
    assert!(zstd.stdout == model, "zstd -d gave other bytes");

    let python = wharf_tests::python_client("zstd_decode.py", &[stored.to_str().unwrap()], &[]);
    let want = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(&model))
    };
    assert_eq!(python, want, "zstandard gave other bytes");

    let file = std::fs::File::open(&stored).unwrap();
    let mut decoder = zeekstd::Decoder::new(file).unwrap();
    assert_eq!(
        decoder.seek_table().num_frames() as u64,
        (model.len() as u64).div_ceil(FRAME)
    );
    let f = FRAME as usize;
    for (start, end) in [
        (0, 1),
        (f - 1, f + 1),
        (5 * f, 6 * f),
        (3 * f + 7, model.len()),
        (0, model.len()),
    ] {
        decoder.set_offset(start as u64).unwrap();
        decoder.set_offset_limit(end as u64).unwrap();
        let mut got = Vec::new();
        decoder.read_to_end(&mut got).unwrap();
        assert!(got == model[start..end], "zeekstd {start}..{end}: other bytes");
    }
}

/// The checksum layer's format is documented well enough to verify an
/// object without wharf: `examples/formats/verify_checksum.py` accepts what
/// the layer stored with either algorithm (an empty object, a whole number
/// of chunks, a short last chunk) and refuses a changed byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_objects_verify_without_wharf() {
    use sha2::Digest;
    use wharf::layers::ChecksumAlgorithm;
    const CHUNK: usize = 4096;
    let dir = tempfile::tempdir().unwrap();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/formats/verify_checksum.py");
    let verify = |file: &std::path::Path| {
        std::process::Command::new(wharf_tests::server_env("WHARF_TEST_PYTHON"))
            .arg(&script)
            .arg(file)
            .output()
            .expect("python runs")
    };
    for algorithm in [ChecksumAlgorithm::Blake3, ChecksumAlgorithm::Sha256] {
        let layer = Checksum::new()
            .with_chunk_size(CHUNK as u64)
            .unwrap()
            .with_algorithm(algorithm);
        let adapter = Stack::new().layer(layer).apply(local(dir.path()).await);
        for size in [0, CHUNK, 3 * CHUNK + 1000] {
            let data: Vec<u8> = (0..size).map(|i| (i * 7 + size) as u8).collect();
            let name = format!("{}/{size}.bin", algorithm.name());
            create(adapter.as_ref(), &name, &data, data.len()).await;
            let stored = dir.path().join(&name);
            let out = verify(&stored);
            let why = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{algorithm:?} {size}: {why}");
            let want = format!("{size} {:x}", sha2::Sha256::digest(&data));
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want);
            if size > CHUNK {
                let mut bytes = std::fs::read(&stored).unwrap();
                bytes[16 + CHUNK + 32 + 5] ^= 1;
                std::fs::write(&stored, &bytes).unwrap();
                let out = verify(&stored);
                assert!(!out.status.success());
                let why = String::from_utf8_lossy(&out.stderr);
                assert!(why.contains("chunk 1") && why.contains(algorithm.name()), "{out:?}");
            }
        }
    }
}
