//! What all three byte-transforming layers must do, each alone and the
//! three stacked, over `InMemory`: ranged reads at every chunk and frame
//! edge, logical and stored sizes, refusing bytes they did not write,
//! hiding plaintext, and appends the inner adapter accepts. Chunks and
//! frames are 16 KiB here (encryption's are always 64 KiB), so the same
//! edges are crossed with little data.

use crate::InMemory;
use crate::adapter::{Adapter, ByteRange, Capabilities, Encoding, ObjectMeta, ObjectReader, ObjectWriter, PutMode};
use crate::error::{Error, ErrorKind, Result};
use crate::layers::testing::{get, over_memory, p, put, random, read_fails, stored};
use crate::layers::{AgeIdentity, Checksum, Compression, Encryption, LayeredAdapter, Stack};
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::Bytes;
use std::sync::Arc;

/// Checksum chunks and compression frames in these tests.
const SMALL: u64 = 16 << 10;
/// Encryption's fixed chunk.
const ENC_CHUNK: u64 = crate::layers::encryption::CHUNK_SIZE;

fn checksum() -> Checksum {
    Checksum::new().with_chunk_size(SMALL).unwrap()
}

fn compression() -> Compression {
    Compression::new().with_frame_size(SMALL).unwrap()
}

fn encryption() -> Encryption {
    let id = AgeIdentity::from_bytes([1; 32]);
    Encryption::new()
        .with_recipients([id.recipient()])
        .with_identities([id])
}

/// Each layer alone and the three stacked, by name.
fn stacks() -> Vec<(&'static str, Stack)> {
    vec![
        ("checksum", Stack::new().layer(checksum())),
        ("compression", Stack::new().layer(compression())),
        ("encryption", Stack::new().layer(encryption())),
        (
            "all three",
            Stack::new().layer(checksum()).layer(compression()).layer(encryption()),
        ),
    ]
}

/// Ranges starting and ending at, just before and just after every chunk
/// and frame edge (64 KiB encryption chunks, 16 KiB checksum chunks and
/// zstd frames), and past the end, compared with the original bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_reads_at_chunk_and_frame_edges() {
    let n = 3 * ENC_CHUNK + 7000;
    let data = random(n, 5);
    let mut edges = vec![0, 1, n - 1, n, n + 10];
    for edge in [SMALL, ENC_CHUNK, 2 * ENC_CHUNK, 3 * ENC_CHUNK] {
        edges.extend([edge - 1, edge, edge + 1]);
    }
    for (name, stack) in stacks() {
        let (_, a) = over_memory(stack);
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
/// and the bytes in storage in `stored_size`; `encodings` lists the layers
/// outermost first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_are_logical_and_stored() {
    let data = random(3 * ENC_CHUNK + 11, 6);
    for (name, stack) in stacks() {
        let (store, a) = over_memory(stack);
        let finished = put(a.as_ref(), "s/a", &data).await;
        let in_storage = stored(&store, "s/a").len() as u64;
        assert_ne!(in_storage, data.len() as u64, "{name}");
        let copied = a.copy(&p("s/a"), &p("s/b"), PutMode::Overwrite).await.unwrap();
        let stat = a.stat(&p("s/a")).await.unwrap();
        let listed = a.list("s/", None, 10).await.unwrap().entries;
        for meta in [&finished, &stat, &copied, &listed[0], &listed[1]] {
            assert_eq!(meta.size, data.len() as u64, "{name}: {meta:?}");
            assert_eq!(meta.stored_size, Some(in_storage), "{name}: {meta:?}");
        }
        assert_eq!(stat.etag, finished.etag, "{name}: the inner etag passes through");
    }
    let (_, a) = over_memory(stacks().pop().unwrap().1);
    assert_eq!(
        a.encodings(),
        [
            Encoding::Checksum {
                algorithm: "blake3".into(),
                chunk_size: SMALL
            },
            Encoding::Compression {
                algorithm: "zstd".into(),
                level: 3
            },
            Encoding::Encryption {
                algorithm: "age-encryption.org/v1".into(),
                recipients: vec![AgeIdentity::from_bytes([1; 32]).recipient().to_string()]
            },
        ]
    );
}

/// An object written without the layer is refused by it, whole or ranged:
/// bytes never pass through unchecked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_object_is_refused_by_each_layer() {
    let plain: Arc<dyn Adapter> = Arc::new(InMemory::new());
    put(plain.as_ref(), "plain.bin", &random(200_000, 7)).await;
    for (layer, stack) in [
        ("checksum", Stack::new().layer(checksum())),
        ("compression", Stack::new().layer(compression())),
        ("encryption", Stack::new().layer(encryption())),
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

/// Through compression then encryption, compressible data is smaller in
/// storage and no plaintext appears in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_and_encrypted_object_hides_plaintext() {
    let (store, a) = over_memory(stacks().pop().unwrap().1);
    let marker = b"PLAINTEXT-MARKER";
    let mut data = Vec::new();
    for i in 0..20_000u32 {
        data.extend_from_slice(marker);
        data.extend_from_slice(&(i % 100).to_le_bytes());
    }
    put(a.as_ref(), "secret.bin", &data).await;
    let in_storage = stored(&store, "secret.bin");
    assert!(
        (in_storage.len() as u64) * 10 < data.len() as u64,
        "{} bytes stored",
        in_storage.len()
    );
    assert!(!in_storage.windows(marker.len()).any(|w| w == marker));
    assert!(!in_storage.windows(6).any(|w| w == b"WHFZST" || w == b"WHFSUM"));
    assert_eq!(get(a.as_ref(), "secret.bin", None).await.unwrap(), data);
}

/// The unit of the strict adapter's bounds (1 MiB in the old test over a
/// real backend; 20 KiB crosses the same gathers and splits).
const U: u64 = 20 << 10;

/// An adapter that claims `write_min_chunk` 5 U and `write_max_chunk` 6 U
/// and fails any append that breaks them; with `ranges: false` it also
/// claims no ranged reads and refuses them.
struct StrictChunks {
    inner: Arc<dyn Adapter>,
    ranges: bool,
}

struct StrictWriter {
    inner: Box<dyn ObjectWriter>,
    small_seen: bool,
}

#[async_trait]
impl ObjectWriter for StrictWriter {
    async fn append(&mut self, chunk: Bytes) -> Result<()> {
        let n = chunk.len() as u64;
        if self.small_seen || n > 6 * U || n == 0 {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!("append of {n} bytes breaks 5..=6 U"),
            ));
        }
        self.small_seen = n < 5 * U;
        self.inner.append(chunk).await
    }
    async fn finish(self: Box<Self>) -> Result<ObjectMeta> {
        self.inner.finish().await
    }
    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}

#[async_trait]
impl LayeredAdapter for StrictChunks {
    fn inner(&self) -> &dyn Adapter {
        &*self.inner
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            write_min_chunk: 5 * U,
            write_max_chunk: 6 * U,
            read_range: self.ranges,
            ..self.inner.capabilities()
        }
    }
    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> Result<Box<dyn ObjectReader>> {
        if range.is_some() && !self.ranges {
            return Err(Error::new(ErrorKind::Unsupported, "no ranged reads"));
        }
        self.inner.read(path, range).await
    }
    async fn write(&self, path: &ObjectPath, mode: PutMode, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        Ok(Box::new(StrictWriter {
            inner: self.inner.write(path, mode, size_hint).await?,
            small_seen: false,
        }))
    }
}

fn strict(ranges: bool) -> Arc<dyn Adapter> {
    Arc::new(StrictChunks {
        inner: Arc::new(InMemory::new()),
        ranges,
    })
}

/// Whatever the caller appends (1 byte, 20 U), each layer hands the
/// adapter under it appends within its `write_min_chunk..=write_max_chunk`,
/// and reports `write_min_chunk` 0 itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_rechunk_appends_for_the_inner_adapter() {
    let data = random(23 * U + 3, 12);
    for (name, stack) in stacks() {
        let a = stack.apply(strict(true));
        assert_eq!(a.capabilities().write_min_chunk, 0, "{name}");
        let mut w = a.write(&p("r"), PutMode::Overwrite, None).await.unwrap();
        w.append(Bytes::copy_from_slice(&data[..1])).await.unwrap();
        w.append(Bytes::copy_from_slice(&data[1..20 * U as usize]))
            .await
            .unwrap();
        for piece in data[20 * U as usize..].chunks(4099) {
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
        // A create over an existing object fails at finish in the inner adapter.
        let a = stack.apply(strict(true));
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
    let n = 3 * ENC_CHUNK + 7000;
    let data = random(n, 13);
    for (name, stack) in stacks() {
        let a = stack.apply(strict(false));
        assert!(!a.capabilities().read_range, "{name}");
        put(a.as_ref(), "nr", &data).await;
        assert_eq!(a.stat(&p("nr")).await.unwrap().size, n, "{name}");
        assert_eq!(a.list("", None, 10).await.unwrap().entries[0].size, n, "{name}");
        for (start, end) in [
            (0, Some(1)),
            (SMALL - 1, Some(SMALL + 1)),
            (ENC_CHUNK - 1, None),
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
