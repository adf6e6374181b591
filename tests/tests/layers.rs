//! Middleware over the real `local_filesystem` guest: the conformance suite
//! through a stack and through the cache, and layers configured in
//! `wharf.toml`. Each layer's own behaviour (timeouts firing, permits held
//! by streams, the cache's freshness, verification and eviction) is tested
//! in its file under `host/src/layers/`, over `InMemory`.

use std::time::Duration;
use wharf::conformance::{self, SuiteOptions};
use wharf::layers::{Cache, ConcurrencyLimit, Stack, Timeout};
use wharf::{Adapter, ErrorKind, ObjectPath, PutMode};

/// Needs the Wasm runtime: the stack over a real guest, 64 MiB case included.
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

/// Needs the Wasm runtime: the cache's freshness over a real guest's etags
/// (file metadata), 256 MiB case included.
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

/// Needs the Wasm runtime: a backend from `wharf.toml`, through the host.
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
