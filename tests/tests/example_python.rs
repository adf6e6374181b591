//! The Python example adapter (`adapters/examples/python-dir`), built from
//! source with componentize-py by its own build script, passes the
//! conformance suite through the same host as the Rust adapters.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf::conformance;
use wharf::conformance::DataStream;
use wharf::{Adapter, ErrorKind, ObjectPath, PutMode};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Runs `build.sh <target/examples>` and returns the output directory.
fn build_python_example() -> PathBuf {
    let root = repo_root();
    let out = root.join("target/examples");
    let script = root.join("adapters/examples/python-dir/build.sh");
    let start = Instant::now();
    let result = Command::new("bash")
        .arg(&script)
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        result.status.success(),
        "{} failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
        script.display(),
        result.status,
        String::from_utf8_lossy(&result.stderr),
        String::from_utf8_lossy(&result.stdout),
    );
    let wasm = out.join("python_dir.wasm");
    let size = std::fs::metadata(&wasm)
        .unwrap_or_else(|e| panic!("{} after the build: {e}", wasm.display()))
        .len();
    println!("{} ready ({size} bytes) after {:.1?}", wasm.display(), start.elapsed());
    out
}

/// The `py` backend over `data`, with `limits` added to its table.
fn python_host(plugins: &Path, data: &Path, limits: &str) -> wharf::Host {
    let toml = format!(
        r#"
plugin_dir = {plugins:?}
default_backend = "py"

[backends.py]
plugin = "python_dir"

[backends.py.config]
root = "/data"

[[backends.py.grants.dirs]]
host = {data:?}
guest = "/data"
read_only = false
create = true

[backends.py.limits]
{limits}
"#,
        plugins = plugins.display().to_string(),
        data = data.display().to_string(),
    );
    wharf_tests::host_from_toml(&toml, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_dir_passes_conformance() {
    let plugins = build_python_example();
    let data = tempfile::tempdir().unwrap();
    let host = python_host(&plugins, data.path(), "");
    let adapter = host.adapter("py").await.unwrap();

    let start = Instant::now();
    // The large streamed round trip (512 MiB, 1 GiB in the long mode) under
    // the default 256 MiB memory limit: componentize-py 0.25.1 never frees the bytes an exported
    // function returns, so the host reads this adapter in segments
    // (segmented_reads_keep_one_version below).
    let report = conformance::run(adapter, wharf_tests::example_suite_options())
        .await
        .unwrap();
    println!("{report}\n(suite took {:.1?})", start.elapsed());
    assert!(report.failures().is_empty(), "{report}");
    // The adapter claims every capability, so every case applies but
    // pending uploads: it is built for the `storage-adapter` world alone.
    assert_eq!(
        report.not_applicable(),
        ["pending_upload_listed_and_aborted"],
        "{report}"
    );

    // Aborted and dropped writes left no temporary behind. The host aborts a
    // dropped writer in the background, so give that a moment to land.
    let tmp = data.path().join(".wharf-tmp");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<_> = match std::fs::read_dir(&tmp) {
            Ok(entries) => entries.map(|e| e.unwrap().file_name()).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("reading {}: {e}", tmp.display()),
        };
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "temporary files left in {}: {left:?}",
            tmp.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn write(adapter: &dyn Adapter, path: &ObjectPath, seed: u64, len: u64) -> [u8; 32] {
    let mut w = adapter.write(path, PutMode::Overwrite, Some(len)).await.unwrap();
    let mut data = DataStream::new(seed, len);
    let mut h = Sha256::new();
    while let Some(c) = data.next_chunk(4 << 20) {
        h.update(&c);
        w.append(c).await.unwrap();
    }
    w.finish().await.unwrap();
    h.finalize().into()
}

/// Reads `path` to the end after `first` was read: the sha256 of the whole,
/// or the error that stopped it.
async fn read_rest(mut r: Box<dyn wharf::ObjectReader>, first: &[u8]) -> wharf::Result<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(first);
    while let Some(c) = r.next_chunk(1 << 20).await? {
        h.update(&c);
    }
    Ok(h.finalize().into())
}

/// The adapter's instances keep every byte its reader returns (the
/// componentize-py leak), so objects larger than its memory limit are read
/// in segments from fresh instances. A segmented read returns one version
/// or fails; an object replaced or deleted mid-read fails it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segmented_reads_keep_one_version() {
    let plugins = build_python_example();
    let data = tempfile::tempdir().unwrap();
    let path = ObjectPath::parse("big.bin").unwrap();
    let len = 96 << 20;
    let host = python_host(&plugins, data.path(), r#"memory = "128MiB""#);
    let py: Arc<dyn Adapter> = host.adapter("py").await.unwrap();

    // Replaced while the first segment is being read, before the host has
    // noticed the growth: the bytes it read again differ.
    let old = write(&*py, &path, 1, len).await;
    let mut r = py.read(&path, None).await.unwrap();
    let first = r.next_chunk(1 << 20).await.unwrap().unwrap();
    write(&*py, &path, 2, len).await;
    match read_rest(r, &first).await {
        Err(e) => assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}"),
        Ok(h) => panic!("a read across a replacement succeeded (old version: {})", h == old),
    }

    // Undisturbed, twice the memory limit's worth comes back whole.
    let want = write(&*py, &path, 3, 2 * len).await;
    let r = py.read(&path, None).await.unwrap();
    assert_eq!(read_rest(r, &[]).await.unwrap(), want);

    // Now pinned from the start: replaced after the first segment.
    let mut r = py.read(&path, None).await.unwrap();
    let first = r.next_chunk(1 << 20).await.unwrap().unwrap();
    write(&*py, &path, 4, 2 * len).await;
    match read_rest(r, &first).await {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
            assert!(e.to_string().contains("changed while it was read"), "{e}");
        }
        Ok(_) => panic!("a pinned read across a replacement succeeded"),
    }

    // Deleted mid-read: the next segment finds nothing.
    let mut r = py.read(&path, None).await.unwrap();
    let first = r.next_chunk(1 << 20).await.unwrap().unwrap();
    py.delete(&path).await.unwrap();
    let e = read_rest(r, &first)
        .await
        .expect_err("a read across a delete succeeded");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // A ranged read in segments returns exactly its range.
    write(&*py, &path, 5, 2 * len).await;
    let range = wharf::ByteRange {
        start: 3 << 20,
        end: Some((3 << 20) + len + 12345),
    };
    let mut r = py.read(&path, Some(range)).await.unwrap();
    let mut got = Sha256::new();
    let mut n = 0u64;
    while let Some(c) = r.next_chunk(1 << 20).await.unwrap() {
        n += c.len() as u64;
        got.update(&c);
    }
    let mut expect = Sha256::new();
    let mut all = DataStream::new(5, 2 * len);
    let mut pos = 0u64;
    while let Some(c) = all.next_chunk(1 << 20) {
        let (s, e) = (pos, pos + c.len() as u64);
        let (a, b) = (s.max(range.start), e.min(range.end.unwrap()));
        if a < b {
            expect.update(&c[(a - s) as usize..(b - s) as usize]);
        }
        pos = e;
    }
    assert_eq!(n, len + 12345);
    assert_eq!(<[u8; 32]>::from(got.finalize()), <[u8; 32]>::from(expect.finalize()));
}
