//! The byte-transforming layers (checksum, compression, encryption) stacked
//! over the real `local_filesystem` backend. What each must do and refuse
//! (tampering, truncation, keys, ranges at chunk edges, rechunked appends)
//! is tested in the layers' own unit tests, over `InMemory`
//! (`host/src/layers/{checksum,compression,encryption}.rs` and
//! `host/src/layers/transform/tests.rs`).

use wharf::conformance::{self, SuiteOptions};
use wharf::layers::{Checksum, Compression, Encryption, Keyring, Stack};

/// Needs the Wasm runtime: the three stacked over a real guest, 1 GiB case
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_through_all_three() {
    let mut keys = Keyring::new();
    keys.insert("k1", &"01".repeat(32)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = wharf_tests::local_host(dir.path())
        .adapter("local_filesystem")
        .await
        .unwrap();
    let adapter = Stack::new()
        .layer(Checksum::new())
        .layer(Compression::new())
        .layer(Encryption::new(keys, "k1").unwrap())
        .apply(local);
    let report = conformance::run(adapter, SuiteOptions::default()).await.unwrap();
    println!("{report}");
    assert!(report.failures().is_empty(), "{report}");
    assert_eq!(report.passed(), report.cases.len(), "{report}");
}
