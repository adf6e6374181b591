//! The conformance suite against every adapter, through the real host.

use wharf::conformance::{self, SuiteOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let host = wharf_tests::local_host(dir.path());
    let adapter = host.adapter("local_filesystem").await.unwrap();
    let report = conformance::run(adapter, SuiteOptions::default()).await.unwrap();
    println!("{report}");
    assert!(report.failures().is_empty(), "{report}");
    // Every case applies to local_filesystem: none may be skipped.
    assert_eq!(report.passed(), report.cases.len(), "{report}");
}

/// The native in-memory adapter passes the same suite (its layer tests and
/// the fuzz targets stand on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory() {
    let adapter = std::sync::Arc::new(wharf::InMemory::new());
    let report = conformance::run(
        adapter,
        SuiteOptions {
            large_object: 64 << 20,
            ..SuiteOptions::default()
        },
    )
    .await
    .unwrap();
    println!("{report}");
    assert!(report.failures().is_empty(), "{report}");
    // A dropped writer leaves nothing in memory: no pending uploads to list.
    let skipped: Vec<&str> = report
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, conformance::Outcome::NotApplicable(_)))
        .map(|c| c.name)
        .collect();
    assert_eq!(skipped, ["pending_upload_listed_and_aborted"], "{report}");
}
