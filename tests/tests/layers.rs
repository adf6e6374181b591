//! Middleware over real adapters: the conformance suite through a stack,
//! the timeout layer against an adapter that hangs, and the concurrency
//! limit holding streams.

use std::sync::Arc;
use std::time::Duration;
use wharf::conformance::{self, SuiteOptions};
use wharf::layers::{ConcurrencyLimit, Stack, Timeout};
use wharf::{Adapter, ErrorKind, ObjectPath, PutMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_a_stack() {
    let dir = tempfile::tempdir().unwrap();
    let host = wharf_tests::local_host(dir.path());
    let adapter = Stack::new()
        .layer(ConcurrencyLimit::new(4))
        .layer(Timeout::new(Duration::from_secs(60), Duration::from_secs(30)))
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
        .layer(Timeout::new(Duration::from_millis(300), Duration::from_millis(300)))
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
