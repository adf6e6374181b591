//! The byte-transforming layers (checksum, compression, encryption) over
//! the real `local_filesystem` backend: the conformance suite through all
//! three (each alone runs it in its unit tests, over `InMemory`), and what
//! each must refuse, checked by changing the stored files on disk.

use bytes::Bytes;
use std::path::Path;
use std::sync::Arc;
use wharf::conformance::{self, DataStream, SuiteOptions};
use wharf::layers::{Checksum, Compression, Encryption, Keyring, Layer, LayeredAdapter, Stack};
use wharf::{
    Adapter, ByteRange, Capabilities, Encoding, ErrorKind, ObjectMeta, ObjectPath, ObjectReader, ObjectWriter, PutMode,
};

const MIB: u64 = 1 << 20;
const ENC_HEADER: u64 = 84;
const ENC_STEP: u64 = (64 << 10) + 16;
const SUM_HEADER: u64 = 16;
const SUM_STEP: u64 = MIB + 32;

fn key(byte: u8) -> String {
    format!("{byte:02x}").repeat(32)
}

fn keyring(keys: &[(&str, u8)]) -> Keyring {
    let mut ring = Keyring::new();
    for (id, byte) in keys {
        ring.insert(id, &key(*byte)).unwrap();
    }
    ring
}

fn encryption(keys: &[(&str, u8)], write: &str) -> Encryption {
    Encryption::new(keyring(keys), write).unwrap()
}

fn checksum() -> Checksum {
    Checksum::new()
}

fn compression() -> Compression {
    Compression::new()
}

async fn local(dir: &Path) -> Arc<dyn Adapter> {
    wharf_tests::local_host(dir).adapter("local_filesystem").await.unwrap()
}

fn p(s: &str) -> ObjectPath {
    ObjectPath::parse(s).unwrap()
}

fn random(n: u64, seed: u64) -> Vec<u8> {
    DataStream::new(seed, n)
        .next_chunk(n as usize)
        .unwrap_or_default()
        .to_vec()
}

async fn put(a: &dyn Adapter, path: &str, data: &[u8]) -> ObjectMeta {
    let mut w = a
        .write(&p(path), PutMode::Overwrite, Some(data.len() as u64))
        .await
        .unwrap();
    // Uneven appends, so no layer sees its own chunk size.
    for piece in data.chunks(3 * MIB as usize + 7) {
        w.append(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    w.finish().await.unwrap()
}

async fn get(a: &dyn Adapter, path: &str, range: Option<ByteRange>) -> wharf::Result<Vec<u8>> {
    let mut r = a.read(&p(path), range).await?;
    let mut out = Vec::new();
    while let Some(c) = r.next_chunk(1 << 20).await? {
        out.extend_from_slice(&c);
    }
    Ok(out)
}

/// A read that must fail with `kind`; the error names the layer, the
/// backend, the operation and the path.
async fn read_fails(a: &dyn Adapter, path: &str, range: Option<ByteRange>, kind: ErrorKind, layer: &str) -> String {
    let e = get(a, path, range)
        .await
        .expect_err("the read must fail, not return bytes");
    assert_eq!(e.kind(), kind, "{e}");
    assert_eq!(
        (e.backend(), e.operation(), e.path()),
        (Some("local_filesystem"), Some("read"), Some(path)),
        "{e}"
    );
    assert!(e.message().contains(&format!("{layer} layer")), "{e}");
    e.to_string()
}

fn edit(dir: &Path, path: &str, f: impl FnOnce(&mut Vec<u8>)) {
    let file = dir.join(path);
    let mut bytes = std::fs::read(&file).unwrap();
    f(&mut bytes);
    std::fs::write(&file, bytes).unwrap();
}

fn stored_len(dir: &Path, path: &str) -> u64 {
    std::fs::metadata(dir.join(path)).unwrap().len()
}

async fn suite(layers: Stack) {
    let dir = tempfile::tempdir().unwrap();
    let adapter = layers.apply(local(dir.path()).await);
    let report = conformance::run(adapter, SuiteOptions::default()).await.unwrap();
    println!("{report}");
    assert!(report.failures().is_empty(), "{report}");
    assert_eq!(report.passed(), report.cases.len(), "{report}");
}

/// Each layer alone passes the suite in its own unit tests (over
/// `InMemory`); here the three stacked, over the real backend, 1 GiB case
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_all_three() {
    suite(
        Stack::new()
            .layer(checksum())
            .layer(compression())
            .layer(encryption(&[("k1", 1)], "k1")),
    )
    .await;
}

/// Each layer alone and the three stacked, by name.
fn stacks() -> Vec<(&'static str, Stack)> {
    vec![
        ("checksum", Stack::new().layer(checksum())),
        ("compression", Stack::new().layer(compression())),
        ("encryption", Stack::new().layer(encryption(&[("k1", 1)], "k1"))),
        (
            "all three",
            Stack::new()
                .layer(checksum())
                .layer(compression())
                .layer(encryption(&[("k1", 1)], "k1")),
        ),
    ]
}

/// Ranges starting and ending at, just before and just after every chunk
/// and frame edge (64 KiB encryption chunks, 1 MiB checksum chunks and
/// zstd frames), and past the end, compared with the original bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_reads_at_chunk_and_frame_edges() {
    let n = 2 * MIB + 70_000;
    let data = random(n, 5);
    let mut edges = vec![0, 1, n - 1, n, n + 10];
    for edge in [64 << 10, 128 << 10, MIB, 2 * MIB] {
        edges.extend([edge - 1, edge, edge + 1]);
    }
    for (name, stack) in stacks() {
        let dir = tempfile::tempdir().unwrap();
        let a = stack.apply(local(dir.path()).await);
        put(a.as_ref(), "m/model.bin", &data).await;
        for &start in &edges {
            for end in edges.iter().map(|&e| Some(e)).chain([None]) {
                if end.is_some_and(|e| e < start) {
                    continue;
                }
                let range = ByteRange { start, end };
                let got = get(a.as_ref(), "m/model.bin", Some(range)).await.unwrap();
                let (s, e) = (start.min(n) as usize, end.unwrap_or(n).min(n) as usize);
                assert!(got == data[s.min(e)..e], "{name}: range {range:?} differs");
            }
        }
        let e = get(a.as_ref(), "m/model.bin", Some(ByteRange { start: 9, end: Some(3) }))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{name}: {e}");
    }
}

/// `stat`, `list`, `finish` and `copy` report the logical size in `size`
/// and the bytes on disk in `stored_size`; `encodings` lists the layers
/// outermost first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_are_logical_and_stored() {
    let data = random(3 * MIB + 11, 6);
    for (name, stack) in stacks() {
        let dir = tempfile::tempdir().unwrap();
        let a = stack.apply(local(dir.path()).await);
        let finished = put(a.as_ref(), "s/a", &data).await;
        let on_disk = stored_len(dir.path(), "s/a");
        assert_ne!(on_disk, data.len() as u64, "{name}");
        let copied = a.copy(&p("s/a"), &p("s/b"), PutMode::Overwrite).await.unwrap();
        let stat = a.stat(&p("s/a")).await.unwrap();
        let listed = a.list("s/", None, 10).await.unwrap().entries;
        for meta in [&finished, &stat, &copied, &listed[0], &listed[1]] {
            assert_eq!(meta.size, data.len() as u64, "{name}: {meta:?}");
            assert_eq!(meta.stored_size, Some(on_disk), "{name}: {meta:?}");
        }
        assert_eq!(stat.etag, finished.etag, "{name}: the inner etag passes through");
    }
    let dir = tempfile::tempdir().unwrap();
    let a = stacks().pop().unwrap().1.apply(local(dir.path()).await);
    assert_eq!(
        a.encodings(),
        [
            Encoding::Checksum {
                algorithm: "sha256".into(),
                chunk_size: MIB
            },
            Encoding::Compression {
                algorithm: "zstd".into(),
                level: 3
            },
            Encoding::Encryption {
                algorithm: "aes-256-gcm-stream-be32".into(),
                key_id: "k1".into()
            },
        ]
    );
}

/// An object written without the layer is refused by it, whole or ranged:
/// bytes never pass through unchecked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_object_is_refused_by_each_layer() {
    let dir = tempfile::tempdir().unwrap();
    let plain = local(dir.path()).await;
    put(plain.as_ref(), "plain.bin", &random(200_000, 7)).await;
    for (layer, stack) in [
        ("checksum", Stack::new().layer(checksum())),
        ("compression", Stack::new().layer(compression())),
        ("encryption", Stack::new().layer(encryption(&[("k1", 1)], "k1"))),
    ] {
        let a = stack.apply(plain.clone());
        let why = read_fails(a.as_ref(), "plain.bin", None, ErrorKind::Integrity, layer).await;
        assert!(why.contains("not written through"), "{why}");
        let range = Some(ByteRange {
            start: 10,
            end: Some(20),
        });
        read_fails(a.as_ref(), "plain.bin", range, ErrorKind::Integrity, layer).await;
    }
}

/// A byte of ciphertext changed, the stored file cut (inside a chunk, at a
/// chunk boundary, and the final chunk dropped), and two chunks swapped:
/// each is an integrity error. A ranged read that does not cover the
/// changed chunk still works: only covering chunks are decrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_refuses_tampering_truncation_and_reordering() {
    let dir = tempfile::tempdir().unwrap();
    let a = Stack::new()
        .layer(encryption(&[("k1", 1)], "k1"))
        .apply(local(dir.path()).await);
    let data = random(10 * (64 << 10) + 100, 8);
    put(a.as_ref(), "e", &data).await;
    let original = std::fs::read(dir.path().join("e")).unwrap();
    let restore = || std::fs::write(dir.path().join("e"), &original).unwrap();

    let chunk5 = (ENC_HEADER + 5 * ENC_STEP + 1000) as usize;
    edit(dir.path(), "e", |b| b[chunk5] ^= 0x01);
    let why = read_fails(a.as_ref(), "e", None, ErrorKind::Integrity, "encryption").await;
    assert!(why.contains("chunk 5"), "{why}");
    let covering = Some(ByteRange {
        start: 5 * (64 << 10) + 10,
        end: Some(5 * (64 << 10) + 20),
    });
    read_fails(a.as_ref(), "e", covering, ErrorKind::Integrity, "encryption").await;
    let elsewhere = ByteRange {
        start: 100,
        end: Some(3 * (64 << 10)),
    };
    assert_eq!(
        get(a.as_ref(), "e", Some(elsewhere)).await.unwrap(),
        data[100..3 * (64 << 10)]
    );
    restore();

    // The header is bound to every chunk: a changed nonce prefix fails.
    edit(dir.path(), "e", |b| b[12] ^= 0x01);
    read_fails(a.as_ref(), "e", None, ErrorKind::Integrity, "encryption").await;
    restore();

    for cut in [
        original.len() - 1,
        (ENC_HEADER + 10 * ENC_STEP) as usize,
        (ENC_HEADER + 4 * ENC_STEP) as usize,
        (ENC_HEADER + 4 * ENC_STEP) as usize + 500,
        40,
    ] {
        std::fs::write(dir.path().join("e"), &original[..cut]).unwrap();
        let why = read_fails(a.as_ref(), "e", None, ErrorKind::Integrity, "encryption").await;
        println!("cut at {cut}: {why}");
    }
    restore();

    edit(dir.path(), "e", |b| {
        let (c1, c2) = ((ENC_HEADER + ENC_STEP) as usize, (ENC_HEADER + 2 * ENC_STEP) as usize);
        let first = b[c1..c2].to_vec();
        b.copy_within(c2..c2 + ENC_STEP as usize, c1);
        b[c2..c2 + ENC_STEP as usize].copy_from_slice(&first);
    });
    let why = read_fails(a.as_ref(), "e", None, ErrorKind::Integrity, "encryption").await;
    assert!(why.contains("chunk 1"), "{why}");
    restore();
    assert_eq!(get(a.as_ref(), "e", None).await.unwrap(), data);
}

/// Keys: a wrong key fails authentication; an unknown key id is a config
/// error naming the id; rotation reads old objects with the old key and
/// writes new ones with the new key; dropping the old key makes old
/// objects fail clearly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encryption_keys_wrong_missing_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let inner = local(dir.path()).await;
    let v1 = random(300_000, 9);
    let old = encryption(&[("k1", 1)], "k1").wrap(inner.clone());
    put(old.as_ref(), "old.bin", &v1).await;

    let wrong = encryption(&[("k1", 2)], "k1").wrap(inner.clone());
    let why = read_fails(wrong.as_ref(), "old.bin", None, ErrorKind::Integrity, "encryption").await;
    assert!(why.contains("authentication"), "{why}");

    let missing = encryption(&[("k9", 9)], "k9").wrap(inner.clone());
    let why = read_fails(missing.as_ref(), "old.bin", None, ErrorKind::Config, "encryption").await;
    assert!(why.contains("key `k1` is not configured"), "{why}");
    assert!(!why.contains(&key(9)) && !why.contains(&key(1)), "{why}");

    // Rotation: k2 writes, k1 still reads.
    let rotated = encryption(&[("k1", 1), ("k2", 2)], "k2").wrap(inner.clone());
    assert_eq!(get(rotated.as_ref(), "old.bin", None).await.unwrap(), v1);
    let v2 = random(200_000, 10);
    put(rotated.as_ref(), "new.bin", &v2).await;
    assert_eq!(get(rotated.as_ref(), "new.bin", None).await.unwrap(), v2);
    let header = std::fs::read(dir.path().join("new.bin")).unwrap()[..ENC_HEADER as usize].to_vec();
    assert_eq!(&header[19..22], b"\x02k2", "the new object names k2");
    assert!(matches!(&rotated.encodings()[0], Encoding::Encryption { key_id, .. } if key_id == "k2"));

    // k1 dropped: old objects fail with a clear error, new ones read.
    let dropped = encryption(&[("k2", 2)], "k2").wrap(inner.clone());
    let why = read_fails(dropped.as_ref(), "old.bin", None, ErrorKind::Config, "encryption").await;
    assert!(why.contains("key `k1` is not configured"), "{why}");
    assert_eq!(get(dropped.as_ref(), "new.bin", None).await.unwrap(), v2);

    // Bad key text is a config error that names the id, never the value.
    let mut ring = Keyring::new();
    let e = ring.insert("prod", "not-a-key-0123456789").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(
        e.to_string().contains("`prod`") && !e.to_string().contains("not-a-key"),
        "{e}"
    );
    ring.insert("prod", &key(3)).unwrap();
    assert_eq!(format!("{ring:?}"), r#"Keyring { ids: ["prod"] }"#);
    let e = Encryption::new(ring, "other").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
}

/// A changed byte in a chunk's data or in its stored sha256, a cut file, a
/// dropped final chunk and swapped chunks are integrity errors; a ranged
/// read of an intact chunk still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_refuses_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let a = Stack::new().layer(checksum()).apply(local(dir.path()).await);
    let data = random(3 * MIB + 5000, 11);
    put(a.as_ref(), "c", &data).await;
    let original = std::fs::read(dir.path().join("c")).unwrap();
    let restore = || std::fs::write(dir.path().join("c"), &original).unwrap();

    // Chunk 1's stored digest.
    let digest1 = (SUM_HEADER + SUM_STEP + MIB + 3) as usize;
    edit(dir.path(), "c", |b| b[digest1] ^= 0x80);
    let why = read_fails(a.as_ref(), "c", None, ErrorKind::Integrity, "checksum").await;
    assert!(why.contains("chunk 1") && why.contains("sha256"), "{why}");
    let in_chunk1 = Some(ByteRange {
        start: MIB + 5,
        end: Some(MIB + 6),
    });
    read_fails(a.as_ref(), "c", in_chunk1, ErrorKind::Integrity, "checksum").await;
    let chunk2 = ByteRange {
        start: 2 * MIB,
        end: Some(2 * MIB + 100),
    };
    assert_eq!(
        get(a.as_ref(), "c", Some(chunk2)).await.unwrap(),
        data[2 * MIB as usize..2 * MIB as usize + 100]
    );
    restore();

    // A data byte of chunk 2.
    edit(dir.path(), "c", |b| {
        b[(SUM_HEADER + 2 * SUM_STEP + 77) as usize] ^= 0x01
    });
    let why = read_fails(a.as_ref(), "c", None, ErrorKind::Integrity, "checksum").await;
    assert!(why.contains("chunk 2"), "{why}");
    restore();

    // The whole-object digest in the trailer.
    edit(dir.path(), "c", |b| *b.last_mut().unwrap() ^= 0x01);
    let why = read_fails(a.as_ref(), "c", None, ErrorKind::Integrity, "checksum").await;
    assert!(why.contains("whole object"), "{why}");
    restore();

    for cut in [
        original.len() - 1,
        original.len() - 40,
        (SUM_HEADER + 3 * SUM_STEP) as usize,
        (SUM_HEADER + 2 * SUM_STEP) as usize + 10,
    ] {
        std::fs::write(dir.path().join("c"), &original[..cut]).unwrap();
        read_fails(a.as_ref(), "c", None, ErrorKind::Integrity, "checksum").await;
    }
    restore();

    edit(dir.path(), "c", |b| {
        let (c0, c1) = (SUM_HEADER as usize, (SUM_HEADER + SUM_STEP) as usize);
        let first = b[c0..c1].to_vec();
        b.copy_within(c1..c1 + SUM_STEP as usize, c0);
        b[c1..c1 + SUM_STEP as usize].copy_from_slice(&first);
    });
    let why = read_fails(a.as_ref(), "c", None, ErrorKind::Integrity, "checksum").await;
    assert!(why.contains("chunk 0"), "{why}");
    restore();
    assert_eq!(get(a.as_ref(), "c", None).await.unwrap(), data);
}

/// Compression shrinks compressible data on disk; a frame whose recorded
/// length is smaller than what it decompresses to, a cut file and a
/// changed compressed byte are integrity errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_shrinks_and_refuses_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let a = Stack::new().layer(compression()).apply(local(dir.path()).await);
    let text: Vec<u8> = b"layer.0.attention.weight: float32[4096, 4096]\n"
        .iter()
        .copied()
        .cycle()
        .take(3 * MIB as usize)
        .collect();
    let meta = put(a.as_ref(), "z", &text).await;
    let on_disk = stored_len(dir.path(), "z");
    assert!(on_disk * 20 < text.len() as u64, "{on_disk} bytes on disk");
    assert_eq!((meta.size, meta.stored_size), (text.len() as u64, Some(on_disk)));
    assert_eq!(get(a.as_ref(), "z", None).await.unwrap(), text);
    let original = std::fs::read(dir.path().join("z")).unwrap();
    let restore = || std::fs::write(dir.path().join("z"), &original).unwrap();

    // Frame 0's prefix (after the 16-byte header): compressed length, then
    // logical length. Claim 1 KiB less than the frame decompresses to.
    edit(dir.path(), "z", |b| {
        let l = u32::from_le_bytes(b[20..24].try_into().unwrap());
        b[20..24].copy_from_slice(&(l - 1024).to_le_bytes());
    });
    read_fails(a.as_ref(), "z", None, ErrorKind::Integrity, "compression").await;
    restore();

    edit(dir.path(), "z", |b| b[40] ^= 0x55);
    read_fails(a.as_ref(), "z", None, ErrorKind::Integrity, "compression").await;
    restore();

    for cut in [original.len() - 1, original.len() / 2, 30] {
        std::fs::write(dir.path().join("z"), &original[..cut]).unwrap();
        read_fails(a.as_ref(), "z", None, ErrorKind::Integrity, "compression").await;
        let tail = Some(ByteRange { start: MIB, end: None });
        read_fails(a.as_ref(), "z", tail, ErrorKind::Integrity, "compression").await;
    }
    restore();
    assert_eq!(get(a.as_ref(), "z", None).await.unwrap(), text);
}

/// Through compression then encryption, compressible data is smaller on
/// disk and no plaintext appears in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_and_encrypted_object_hides_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let a = Stack::new()
        .layer(checksum())
        .layer(compression())
        .layer(encryption(&[("k1", 1)], "k1"))
        .apply(local(dir.path()).await);
    let marker = b"PLAINTEXT-MARKER";
    let mut data = Vec::new();
    for i in 0..200_000u32 {
        data.extend_from_slice(marker);
        data.extend_from_slice(&(i % 100).to_le_bytes());
    }
    put(a.as_ref(), "secret.bin", &data).await;
    let stored = std::fs::read(dir.path().join("secret.bin")).unwrap();
    assert!(
        (stored.len() as u64) * 10 < data.len() as u64,
        "{} bytes stored",
        stored.len()
    );
    assert!(!stored.windows(marker.len()).any(|w| w == marker));
    assert!(!stored.windows(6).any(|w| w == b"WHFZST" || w == b"WHFSUM"));
    assert_eq!(get(a.as_ref(), "secret.bin", None).await.unwrap(), data);
}

/// An adapter that claims `write_min_chunk` 5 MiB and `write_max_chunk`
/// 6 MiB and fails any append that breaks them, around a real backend;
/// with `ranges: false` it also claims no ranged reads and refuses them.
struct StrictChunks {
    inner: Arc<dyn Adapter>,
    ranges: bool,
}

struct StrictWriter {
    inner: Box<dyn ObjectWriter>,
    small_seen: bool,
}

#[async_trait::async_trait]
impl ObjectWriter for StrictWriter {
    async fn append(&mut self, chunk: Bytes) -> wharf::Result<()> {
        let n = chunk.len() as u64;
        if self.small_seen || n > 6 * MIB || n == 0 {
            return Err(wharf::Error::new(
                ErrorKind::Invalid,
                format!("append of {n} bytes breaks 5..=6 MiB"),
            ));
        }
        self.small_seen = n < 5 * MIB;
        self.inner.append(chunk).await
    }
    async fn finish(self: Box<Self>) -> wharf::Result<ObjectMeta> {
        self.inner.finish().await
    }
    async fn abort(self: Box<Self>) -> wharf::Result<()> {
        self.inner.abort().await
    }
}

#[async_trait::async_trait]
impl LayeredAdapter for StrictChunks {
    fn inner(&self) -> &dyn Adapter {
        &*self.inner
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            write_min_chunk: 5 * MIB,
            write_max_chunk: 6 * MIB,
            read_range: self.ranges,
            ..self.inner.capabilities()
        }
    }
    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> wharf::Result<Box<dyn ObjectReader>> {
        if range.is_some() && !self.ranges {
            return Err(wharf::Error::new(ErrorKind::Unsupported, "no ranged reads"));
        }
        self.inner.read(path, range).await
    }
    async fn write(
        &self,
        path: &ObjectPath,
        mode: PutMode,
        size_hint: Option<u64>,
    ) -> wharf::Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(StrictWriter {
            inner: self.inner.write(path, mode, size_hint).await?,
            small_seen: false,
        }))
    }
}

/// Whatever the caller appends (1 byte, 20 MiB), each layer hands the
/// adapter under it appends within its `write_min_chunk..=write_max_chunk`,
/// and reports `write_min_chunk` 0 itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_rechunk_appends_for_the_inner_adapter() {
    let data = random(23 * MIB + 3, 12);
    for (name, stack) in stacks() {
        let dir = tempfile::tempdir().unwrap();
        let strict: Arc<dyn Adapter> = Arc::new(StrictChunks {
            inner: local(dir.path()).await,
            ranges: true,
        });
        let a = stack.apply(strict);
        assert_eq!(a.capabilities().write_min_chunk, 0, "{name}");
        let mut w = a.write(&p("r"), PutMode::Overwrite, None).await.unwrap();
        w.append(Bytes::copy_from_slice(&data[..1])).await.unwrap();
        w.append(Bytes::copy_from_slice(&data[1..20 * MIB as usize]))
            .await
            .unwrap();
        for piece in data[20 * MIB as usize..].chunks(4099) {
            w.append(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        w.finish().await.unwrap();
        assert!(get(a.as_ref(), "r", None).await.unwrap() == data, "{name}");
    }
}

/// A failure of the inner writer surfaces from the layer's writer, and
/// the object is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inner_failure_surfaces_from_finish() {
    for (name, stack) in stacks() {
        let dir = tempfile::tempdir().unwrap();
        let strict: Arc<dyn Adapter> = Arc::new(StrictChunks {
            inner: local(dir.path()).await,
            ranges: true,
        });
        // A create over an existing object fails at finish in the inner adapter.
        let a = stack.apply(strict);
        put(a.as_ref(), "x", b"first").await;
        let mut w = a.write(&p("x"), PutMode::Create, None).await.unwrap();
        w.append(Bytes::from_static(b"second")).await.unwrap();
        let e = w.finish().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{name}: {e}");
        assert_eq!(get(a.as_ref(), "x", None).await.unwrap(), b"first", "{name}");
    }
}

/// Over an adapter without ranged reads, each layer still serves ranges
/// (reading and skipping up to them), `stat` and `list`, and claims no
/// ranged reads itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_over_an_adapter_without_ranged_reads() {
    let n = 2 * MIB + 70_000;
    let data = random(n, 13);
    for (name, stack) in stacks() {
        let dir = tempfile::tempdir().unwrap();
        let plain: Arc<dyn Adapter> = Arc::new(StrictChunks {
            inner: local(dir.path()).await,
            ranges: false,
        });
        let a = stack.apply(plain);
        assert!(!a.capabilities().read_range, "{name}");
        put(a.as_ref(), "nr", &data).await;
        assert_eq!(a.stat(&p("nr")).await.unwrap().size, n, "{name}");
        assert_eq!(a.list("", None, 10).await.unwrap().entries[0].size, n, "{name}");
        for (start, end) in [
            (0, Some(1)),
            (MIB - 1, Some(MIB + 1)),
            (65_535, None),
            (n - 3, Some(n + 9)),
        ] {
            let range = ByteRange { start, end };
            let got = get(a.as_ref(), "nr", Some(range)).await.unwrap();
            let e = end.unwrap_or(n).min(n) as usize;
            assert!(got == data[start as usize..e], "{name}: range {range:?} differs");
        }
        assert!(get(a.as_ref(), "nr", None).await.unwrap() == data, "{name}");
    }
}
