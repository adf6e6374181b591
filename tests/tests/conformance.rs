//! The conformance suite against every adapter, through the real host,
//! and against the `flawed` fixture, to show that its cases catch what they
//! are for.

use std::sync::Arc;
use wharf::capabilities::{DirGrant, Grants, Redactor};
use wharf::conformance::{self, SuiteOptions};
use wharf::{BackendSpec, Limits, Runtime, RuntimeConfig, WasmAdapter};
use wharf_tests::fixtures::FLAWED;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let host = wharf_tests::local_host(dir.path());
    let adapter = host.adapter("local_filesystem").await.unwrap();
    let report = conformance::run(adapter, wharf_tests::suite_options()).await.unwrap();
    println!("{report}");
    assert!(report.failures().is_empty(), "{report}");
    // Every case applies to local_filesystem: none may be skipped.
    assert_eq!(report.passed(), report.cases.len(), "{report}");
}

/// The native in-memory adapter passes the same suite (its layer tests and
/// the fuzz targets stand on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory() {
    let adapter = Arc::new(wharf::InMemory::new());
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
    // It has no config to open again with, and a dropped writer leaves
    // nothing in memory: no pending uploads to list.
    assert_eq!(
        report.not_applicable(),
        ["unknown_config_key_rejected", "pending_upload_listed_and_aborted"],
        "{report}"
    );
}

/// Each flaw of the `flawed` fixture fails the case that is there to catch
/// it, and no other; without a flaw the fixture passes every case it
/// claims the capabilities for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_flaw_fails_its_case() {
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(wharf_tests::cache_dir()),
        ..Default::default()
    })
    .expect("runtime builds");
    let wasm = std::fs::read(FLAWED).unwrap_or_else(|e| panic!("reading {FLAWED}: {e}"));
    let plugin = runtime.load_plugin("flawed", &wasm, FLAWED).expect("the fixture loads");
    for (flaw, fails) in [
        ("none", None),
        ("create-at-write", Some("racing_create_one_wins")),
        ("update-at-write", Some("racing_update_one_wins")),
        ("reopening-reads", Some("reader_sees_one_version")),
        ("offset-cursor", Some("list_during_writes_sorted_unique")),
        ("ignores-unknown-keys", Some("unknown_config_key_rejected")),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let spec = BackendSpec {
            name: "flawed".into(),
            config: vec![("flaw".into(), flaw.into())],
            grants: Grants {
                dirs: vec![DirGrant::new(dir.path(), "/data")],
                ..Grants::default()
            },
            limits: Limits::default(),
            secrets: Redactor::new::<&str>(&[]),
            pool: Default::default(),
            credentials: None,
        };
        let adapter = WasmAdapter::new(&runtime, &plugin, spec).await.expect("it opens");
        let options = SuiteOptions {
            large_object: 1 << 20,
            list_keys: 100,
            filter: None,
        };
        let report = conformance::run(Arc::new(adapter), options).await.unwrap();
        println!("flaw `{flaw}`:\n{report}");
        let failed: Vec<&str> = report.failures().iter().map(|c| c.name).collect();
        assert_eq!(failed, Vec::from_iter(fails), "flaw `{flaw}`:\n{report}");
        assert_eq!(
            report.not_applicable(),
            ["copy_object", "pending_upload_listed_and_aborted"],
            "flaw `{flaw}`:\n{report}"
        );
    }
}
