//! The service over [`InMemory`](crate::InMemory): what callers outside the
//! CLI (embedders, the Python package) rely on.

use super::*;
use crate::InMemory;
use crate::adapter::ObjectReader;

fn service() -> StorageService {
    StorageService::new(Arc::new(InMemory::new()))
}

fn opts(model: &str, version: &str) -> SaveOptions {
    SaveOptions {
        model: Some(model.into()),
        version: Some(version.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn file_object_names_the_stored_object_of_a_one_file_model() {
    let s = service();
    let info = s
        .save_stream("m.bin", &b"hello model"[..], &opts("m", "1"))
        .await
        .unwrap();
    let (path, file) = s.file_object(&info.storage_path, None).await.unwrap();
    assert!(path.as_str().starts_with("models/m/1/"), "{path}");
    assert!(path.as_str().ends_with("/m.bin"), "{path}");
    assert_eq!(file.checksum, info.checksum);
    // The object is readable on its own, as a seekable reader reads it.
    let mut r = s.adapter().read(&path, None).await.unwrap();
    assert_eq!(r.next_chunk(100).await.unwrap().unwrap().as_ref(), b"hello model");
    // By name too; an unknown name is not-found.
    assert_eq!(s.file_object(&info.storage_path, Some("m.bin")).await.unwrap().0, path);
    let e = s.file_object(&info.storage_path, Some("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = s.file_object("models/none/1", None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn file_object_of_a_folder_model_needs_a_name() {
    let s = service();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"a").unwrap();
    std::fs::write(dir.path().join("b.txt"), b"b").unwrap();
    let info = s.save_dir(dir.path(), &opts("f", "1")).await.unwrap();
    let e = s.file_object(&info.storage_path, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    assert!(e.to_string().contains("name one of them"), "{e}");
    let (path, f) = s.file_object(&info.storage_path, Some("b.txt")).await.unwrap();
    assert!(path.as_str().ends_with("/b.txt"));
    assert_eq!(f.size_bytes, 1);
}

/// Counts the ranged reads under a service, how many are open at once,
/// and (when `lie`) answers each range with everything from its start on,
/// as a server that ignores the end of a range would.
struct Ranges {
    inner: InMemory,
    lie: bool,
    ranged: std::sync::atomic::AtomicUsize,
    whole: std::sync::atomic::AtomicUsize,
    open: Arc<std::sync::atomic::AtomicUsize>,
    most_open: Arc<std::sync::atomic::AtomicUsize>,
}

struct Counted {
    inner: Box<dyn ObjectReader>,
    open: Arc<std::sync::atomic::AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[async_trait::async_trait]
impl ObjectReader for Counted {
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>> {
        self.inner.next_chunk(max).await
    }
}

#[async_trait::async_trait]
impl Adapter for Ranges {
    fn name(&self) -> &str {
        "ranges"
    }
    fn capabilities(&self) -> crate::adapter::Capabilities {
        self.inner.capabilities()
    }
    async fn stat(&self, path: &ObjectPath) -> Result<crate::adapter::ObjectMeta> {
        self.inner.stat(path).await
    }
    async fn exists(&self, path: &ObjectPath) -> Result<bool> {
        self.inner.exists(path).await
    }
    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        self.inner.delete(path).await
    }
    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<crate::adapter::ListPage> {
        self.inner.list(prefix, cursor, limit).await
    }
    async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<crate::adapter::ObjectMeta> {
        self.inner.copy(from, to, mode).await
    }
    async fn health(&self) -> Result<String> {
        self.inner.health().await
    }
    async fn read(&self, path: &ObjectPath, range: Option<crate::adapter::ByteRange>) -> Result<Box<dyn ObjectReader>> {
        use std::sync::atomic::Ordering::SeqCst;
        let range = match range {
            Some(r) => {
                self.ranged.fetch_add(1, SeqCst);
                Some(crate::adapter::ByteRange {
                    start: r.start,
                    end: if self.lie { None } else { r.end },
                })
            }
            None => {
                self.whole.fetch_add(1, SeqCst);
                None
            }
        };
        let inner = self.inner.read(path, range).await?;
        let now = self.open.fetch_add(1, SeqCst) + 1;
        self.most_open.fetch_max(now, SeqCst);
        Ok(Box::new(Counted {
            inner,
            open: self.open.clone(),
        }))
    }
    async fn write(
        &self,
        path: &ObjectPath,
        mode: PutMode,
        size_hint: Option<u64>,
    ) -> Result<Box<dyn crate::adapter::ObjectWriter>> {
        self.inner.write(path, mode, size_hint).await
    }
    fn encodings(&self) -> Vec<Encoding> {
        self.inner.encodings()
    }
}

fn ranges(lie: bool) -> Arc<Ranges> {
    Arc::new(Ranges {
        inner: InMemory::new(),
        lie,
        ranged: Default::default(),
        whole: Default::default(),
        open: Default::default(),
        most_open: Default::default(),
    })
}

/// 1 MiB parts, 3 at a time, from 2 MiB on.
fn small_parts() -> ParallelReads {
    ParallelReads {
        parts: 3,
        part_size: 1 << 20,
        min_size: 2 << 20,
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + i / 977) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_files_load_in_parallel_ranges_verified() {
    use std::sync::atomic::Ordering::SeqCst;
    let store = ranges(false);
    let moved = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = moved.clone();
    let s = StorageService::new(store.clone())
        .with_parallel_reads(small_parts())
        .with_progress(Arc::new(move |n| {
            seen.fetch_max(n, SeqCst);
        }));
    // Not a multiple of the part size: the last range is short.
    let data = pattern((5 << 20) + 12_345);
    let info = s
        .save_stream("m.bin", std::io::Cursor::new(data.clone()), &opts("big", "1"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    s.load_to_path(&info.storage_path, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(store.ranged.load(SeqCst), 6);
    // Only the manifest is read whole.
    assert_eq!(store.whole.load(SeqCst), 1);
    let most = store.most_open.load(SeqCst);
    assert!((2..=3).contains(&most), "{most} ranges open at once");
    assert_eq!(moved.load(SeqCst), data.len() as u64);

    // Below `min_size`, and with parallel reads off: one stream.
    let small = pattern((2 << 20) - 1);
    let info_small = s
        .save_stream("s.bin", std::io::Cursor::new(small.clone()), &opts("small", "1"))
        .await
        .unwrap();
    s.load_to_path(&info_small.storage_path, &dir.path().join("s.bin"))
        .await
        .unwrap();
    let off = s.clone().with_parallel_reads(ParallelReads::off());
    off.load_to_path(&info.storage_path, &dir.path().join("off.bin"))
        .await
        .unwrap();
    assert_eq!(std::fs::read(dir.path().join("off.bin")).unwrap(), data);
    assert_eq!(store.ranged.load(SeqCst), 6);
    // Each a manifest and a stream.
    assert_eq!(store.whole.load(SeqCst), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_ranges_of_a_changed_object_fail_and_leave_no_file() {
    let store = ranges(false);
    let s = StorageService::new(store.clone()).with_parallel_reads(small_parts());
    let data = pattern(4 << 20);
    let info = s
        .save_stream("m.bin", std::io::Cursor::new(data.clone()), &opts("t", "1"))
        .await
        .unwrap();
    let (path, _) = s.file_object(&info.storage_path, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let load = |name: &'static str| {
        let (s, dest, sp) = (s.clone(), dir.path().join(name), info.storage_path.clone());
        async move {
            let e = s.load_to_path(&sp, &dest).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
            assert!(!dest.exists(), "{name}: a file appeared");
            e.to_string()
        }
    };
    // One byte changed in the third range.
    let mut bad = data.clone();
    bad[(2 << 20) + 7] ^= 1;
    store.inner.replace_stored_bytes(&path, bad.into());
    let e = load("flipped").await;
    assert!(e.contains("sha256 is"), "{e}");
    // Shorter and longer: found by size before any range is read.
    store
        .inner
        .replace_stored_bytes(&path, data[..data.len() - 1].to_vec().into());
    let e = load("short").await;
    assert!(e.contains(&format!("{} were recorded", data.len())), "{e}");
    let mut long = data.clone();
    long.push(0);
    store.inner.replace_stored_bytes(&path, long.into());
    assert!(load("long").await.contains("bytes,"));
    // Nothing left beside the destinations either.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_answered_past_its_end_is_an_integrity_error() {
    let store = ranges(true);
    let s = StorageService::new(store.clone()).with_parallel_reads(small_parts());
    let data = pattern(3 << 20);
    let info = s
        .save_stream("m.bin", std::io::Cursor::new(data.clone()), &opts("lie", "1"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    let e = s.load_to_path(&info.storage_path, &dest).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.to_string().contains("answered more than"), "{e}");
    assert!(e.to_string().contains("ranges"), "names the backend: {e}");
    assert!(!dest.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Loads longer than several write-behind steps, in ranges and as one
/// stream, arrive intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_past_the_write_behind_step_are_intact() {
    let store = ranges(false);
    let s = StorageService::new(store.clone()).with_parallel_reads(ParallelReads {
        parts: 3,
        part_size: 5 << 20,
        min_size: 10 << 20,
    });
    let data = pattern(2 * super::writeback::WRITE_BEHIND as usize + 777);
    let info = s
        .save_stream("m.bin", std::io::Cursor::new(data.clone()), &opts("wb", "1"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, s) in [
        ("ranged.bin", s.clone()),
        ("stream.bin", s.clone().with_parallel_reads(ParallelReads::off())),
    ] {
        let dest = dir.path().join(name);
        s.load_to_path(&info.storage_path, &dest).await.unwrap();
        assert!(std::fs::read(&dest).unwrap() == data, "{name} differs");
    }
    assert!(store.ranged.load(std::sync::atomic::Ordering::SeqCst) >= 7);
}
