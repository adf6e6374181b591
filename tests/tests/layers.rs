//! Middleware over real adapters: the conformance suite through a stack,
//! the timeout layer against an adapter that hangs, the concurrency limit
//! holding streams, the cache, and layers configured in `wharf.toml`.

use std::sync::Arc;
use std::time::Duration;
use wharf::conformance::{self, SuiteOptions};
use wharf::layers::{Cache, ConcurrencyLimit, Stack, Timeout};
use wharf::{Adapter, ErrorKind, ObjectPath, PutMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_a_stack() {
    let dir = tempfile::tempdir().unwrap();
    let host = wharf_tests::local_host(dir.path());
    let adapter = Stack::new()
        .layer(ConcurrencyLimit::new(4))
        .layer(
            Timeout::new()
                .with_operation(Duration::from_secs(60))
                .with_idle(Duration::from_secs(30)),
        )
        .apply(host.adapter("local_filesystem").await.unwrap());
    let opts = SuiteOptions {
        large_object: 64 << 20,
        ..Default::default()
    };
    let report = conformance::run(adapter, opts).await.unwrap();
    println!("{report}");
    assert!(report.failures().is_empty(), "{report}");
    assert_eq!(report.passed(), report.cases.len(), "{report}");
}

/// The misbehave fixture's `stat("sleep")` sleeps for an hour; the layer
/// gives up after its operation timeout with a `transient` error that names
/// the backend, the operation and the path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_cuts_a_hanging_call() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    std::fs::copy(
        wharf_tests::fixtures::MISBEHAVE,
        dir.path().join("plugins/misbehave.wasm"),
    )
    .unwrap();
    let toml = "plugin_dir = \"plugins\"\n[backends.misbehave]\n[[backends.misbehave.grants.dirs]]\nhost = \".\"\nguest = \"/data\"\n";
    let host = wharf_tests::host_from_toml(toml, dir.path());
    let adapter = Stack::new()
        .layer(
            Timeout::new()
                .with_operation(Duration::from_millis(300))
                .with_idle(Duration::from_millis(300)),
        )
        .apply(host.adapter("misbehave").await.unwrap());
    let e = adapter.stat(&ObjectPath::parse("sleep").unwrap()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert_eq!(
        (e.backend(), e.operation(), e.path()),
        (Some("misbehave"), Some("stat"), Some("sleep"))
    );
    // The backend still answers afterwards.
    adapter.stat(&ObjectPath::parse("ok").unwrap()).await.unwrap();
}

/// With a limit of 2, two open readers hold both permits: a third operation
/// waits until one of them is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_holds_streams() {
    let dir = tempfile::tempdir().unwrap();
    let host = wharf_tests::local_host(dir.path());
    let adapter: Arc<dyn Adapter> = Stack::new()
        .layer(ConcurrencyLimit::new(2))
        .apply(host.adapter("local_filesystem").await.unwrap());
    let path = ObjectPath::parse("x").unwrap();
    let mut w = adapter.write(&path, PutMode::Overwrite, None).await.unwrap();
    w.append(bytes::Bytes::from_static(b"hello")).await.unwrap();
    w.finish().await.unwrap();

    let r1 = adapter.read(&path, None).await.unwrap();
    let _r2 = adapter.read(&path, None).await.unwrap();
    let third = {
        let adapter = adapter.clone();
        let path = path.clone();
        tokio::spawn(async move { adapter.stat(&path).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !third.is_finished(),
        "a third operation ran while two streams held both permits"
    );
    drop(r1);
    let meta = tokio::time::timeout(Duration::from_secs(30), third)
        .await
        .expect("the waiting operation runs once a permit is free")
        .unwrap()
        .unwrap();
    assert_eq!(meta.size, 5);
}

/// How many `read` operations reached the backend (the host's own metrics
/// layer sits inside every layer a test adds around `host.adapter`).
fn backend_reads(host: &wharf::Host) -> u64 {
    let s = host.metrics().snapshot();
    s.operations
        .get("local_filesystem")
        .and_then(|ops| ops.get("read"))
        .map_or(0, |r| r.outcomes.values().sum())
}

async fn put(adapter: &dyn Adapter, path: &str, data: &[u8]) {
    let mut w = adapter
        .write(&ObjectPath::parse(path).unwrap(), PutMode::Overwrite, None)
        .await
        .unwrap();
    w.append(bytes::Bytes::copy_from_slice(data)).await.unwrap();
    w.finish().await.unwrap();
}

async fn get(adapter: &dyn Adapter, path: &str, range: Option<wharf::ByteRange>) -> Vec<u8> {
    let mut r = adapter.read(&ObjectPath::parse(path).unwrap(), range).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = r.next_chunk(1 << 20).await.unwrap() {
        out.extend_from_slice(&c);
    }
    out
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_the_cache() {
    let (data, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let host = wharf_tests::local_host(data.path());
    let adapter = Stack::new()
        .layer(Cache::new(cache.path(), 512 << 20).unwrap())
        .apply(host.adapter("local_filesystem").await.unwrap());
    let opts = SuiteOptions {
        large_object: 256 << 20,
        ..Default::default()
    };
    let report = conformance::run(adapter, opts).await.unwrap();
    println!("{report}");
    assert!(report.failures().is_empty(), "{report}");
    assert_eq!(report.passed(), report.cases.len(), "{report}");
}

/// A second full read and ranged reads come from the cache; a write, a
/// delete or a change behind wharf's back is never served stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_serves_fresh_bytes_only() {
    let (data, cache_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let host = wharf_tests::local_host(data.path());
    let cache = Cache::new(cache_dir.path(), 64 << 20).unwrap();
    let adapter = Stack::new()
        .layer(cache.clone())
        .apply(host.adapter("local_filesystem").await.unwrap());
    let v1 = pattern(3 << 20 | 12345, 1);
    put(&*adapter, "m/model.bin", &v1).await;

    assert_eq!(get(&*adapter, "m/model.bin", None).await, v1);
    assert_eq!(backend_reads(&host), 1);
    assert_eq!(cache.used_bytes(), v1.len() as u64);
    assert_eq!(get(&*adapter, "m/model.bin", None).await, v1);
    let range = wharf::ByteRange {
        start: (1 << 20) - 7,
        end: Some((2 << 20) + 9),
    };
    assert_eq!(
        get(&*adapter, "m/model.bin", Some(range)).await,
        v1[(1 << 20) - 7..(2 << 20) + 9]
    );
    assert_eq!(backend_reads(&host), 1, "hits must not read the backend");

    // A write through wharf drops the entry.
    let v2 = pattern(1 << 20, 2);
    put(&*adapter, "m/model.bin", &v2).await;
    assert_eq!(get(&*adapter, "m/model.bin", None).await, v2);
    assert_eq!(backend_reads(&host), 2);

    // A change behind wharf's back: the etag differs, so no stale bytes.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let v3 = pattern(1 << 20, 3);
    std::fs::write(data.path().join("m/model.bin"), &v3).unwrap();
    assert_eq!(get(&*adapter, "m/model.bin", None).await, v3);
    assert_eq!(backend_reads(&host), 3);

    // A delete through wharf drops it too.
    adapter
        .delete(&ObjectPath::parse("m/model.bin").unwrap())
        .await
        .unwrap();
    assert_eq!(cache.used_bytes(), 0);
    let e = adapter
        .read(&ObjectPath::parse("m/model.bin").unwrap(), None)
        .await
        .err()
        .expect("a deleted object is not served from the cache");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// A byte flipped in a cached file is caught by its chunk digest: the read
/// still returns the right bytes (from the backend) and the entry is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_cache_file_is_never_served() {
    let (data, cache_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let host = wharf_tests::local_host(data.path());
    let cache = Cache::new(cache_dir.path(), 64 << 20).unwrap();
    let adapter = Stack::new()
        .layer(cache.clone())
        .apply(host.adapter("local_filesystem").await.unwrap());
    let v = pattern(5 << 20, 7);
    put(&*adapter, "c.bin", &v).await;
    assert_eq!(get(&*adapter, "c.bin", None).await, v);
    let cached: Vec<_> = std::fs::read_dir(cache_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    assert_eq!(cached.len(), 1);
    let mut bytes = std::fs::read(&cached[0]).unwrap();
    bytes[(3 << 20) + 5] ^= 0x40;
    std::fs::write(&cached[0], &bytes).unwrap();

    assert_eq!(get(&*adapter, "c.bin", None).await, v);
    assert_eq!(
        backend_reads(&host),
        2,
        "the corrupt chunk sent the read to the backend"
    );
    // Refilled by that read? No: a fallback read does not fill; the next one does.
    assert_eq!(get(&*adapter, "c.bin", None).await, v);
    assert_eq!(get(&*adapter, "c.bin", None).await, v);
    assert_eq!(backend_reads(&host), 3);
}

/// The directory stays under its bound; the least recently used go first,
/// and entries survive a new `Cache` over the same directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_evicts_least_recently_used() {
    let (data, cache_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let host = wharf_tests::local_host(data.path());
    let cache = Cache::new(cache_dir.path(), 3 << 20).unwrap();
    let adapter = Stack::new()
        .layer(cache.clone())
        .apply(host.adapter("local_filesystem").await.unwrap());
    for i in 0..4u8 {
        put(&*adapter, &format!("o{i}"), &pattern(1 << 20, i)).await;
    }
    for name in ["o0", "o1", "o2"] {
        get(&*adapter, name, None).await;
    }
    get(&*adapter, "o0", None).await; // o0 is now the most recent; o1 the least.
    assert_eq!(backend_reads(&host), 3);
    get(&*adapter, "o3", None).await; // evicts o1
    assert_eq!(backend_reads(&host), 4);
    assert!(cache.used_bytes() <= 3 << 20, "{}", cache.used_bytes());
    for name in ["o0", "o2", "o3"] {
        assert_eq!(
            get(&*adapter, name, None).await,
            pattern(1 << 20, name[1..].parse().unwrap())
        );
    }
    assert_eq!(backend_reads(&host), 4, "o0, o2, o3 stayed cached");
    get(&*adapter, "o1", None).await;
    assert_eq!(backend_reads(&host), 5, "o1 was evicted");

    // A larger-than-the-bound object is not cached at all.
    put(&*adapter, "big", &pattern(4 << 20, 9)).await;
    get(&*adapter, "big", None).await;
    get(&*adapter, "big", None).await;
    assert_eq!(backend_reads(&host), 7);

    let reopened = Cache::new(cache_dir.path(), 3 << 20).unwrap();
    assert_eq!(reopened.used_bytes(), cache.used_bytes());
}

/// `[[backends.x.layers]]` builds the stack in the order written, and bad
/// entries are refused with the backend, the layer and the key named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_from_wharf_toml() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[backends.models]
plugin = "local_filesystem"
[backends.models.config]
root = "/data"
[[backends.models.grants.dirs]]
host = "data"
guest = "/data"
create = true
[[backends.models.layers]]
layer = "concurrency_limit"
max = 4
[[backends.models.layers]]
layer = "timeout"
operation = "60s"
idle = "30s"
[[backends.models.layers]]
layer = "cache"
dir = "cache"
max_size = "64MiB"
"#;
    let host = wharf_tests::host_from_toml(toml, dir.path());
    let adapter = host.adapter("models").await.unwrap();
    put(&*adapter, "a/b.bin", &pattern(2 << 20, 4)).await;
    assert_eq!(get(&*adapter, "a/b.bin", None).await, pattern(2 << 20, 4));
    let cached = std::fs::read_dir(dir.path().join("cache")).unwrap().count();
    assert_eq!(cached, 2, "one object: its bytes and its digests");
    let text = host.metrics().render();
    assert!(
        text.contains(r#"wharf_operations_total{backend="models",operation="write",outcome="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"wharf_written_bytes_total{backend="models"} 2097152"#),
        "{text}"
    );

    for (bad, named) in [
        ("layer = \"gzip\"", "gzip"),
        ("layer = \"timeout\"\nidle = \"soon\"", "idle"),
        ("layer = \"timeout\"\nidel = \"5s\"", "idel"),
        ("layer = \"cache\"\ndir = \"c\"\nmax_size = \"lots\"", "max_size"),
        ("layer = \"concurrency_limit\"\nmax = 0", "max"),
    ] {
        let text = format!("[backends.local_filesystem]\n[[backends.local_filesystem.layers]]\n{bad}\n");
        let e = match wharf::Config::parse(&text, "wharf.toml") {
            Err(e) => e,
            Ok(cfg) => {
                let host = wharf::Host::new(cfg, dir.path()).unwrap();
                host.adapter("local_filesystem").await.err().expect("refused")
            }
        };
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        assert!(e.to_string().contains(named), "{bad}: {e}");
    }
}
