//! The contract's optional `maintenance` interface: an adapter built for
//! the `storage-adapter` world alone (every adapter built before it, and
//! the Python and JavaScript examples) still loads and works, and answers
//! `unsupported` for pending uploads; the built-in adapters export it.

use wharf::capabilities::{Grants, Redactor};
use wharf::plugins::PluginSet;
use wharf::runtime::{CONTRACT_EXPORT, MAINTENANCE_EXPORT};
use wharf::{
    Adapter, BackendSpec, ErrorKind, Limits, ObjectPath, PendingUpload, Runtime, RuntimeConfig, StorageService,
    WasmAdapter,
};
use wharf_tests::fixtures::LEGACY;

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(wharf_tests::cache_dir()),
        ..Default::default()
    })
    .expect("runtime builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_without_maintenance_loads_and_answers_unsupported() {
    let runtime = runtime();
    let wasm = std::fs::read(LEGACY).unwrap_or_else(|e| panic!("reading {LEGACY}: {e}"));
    let plugin = runtime
        .load_plugin("legacy", &wasm, LEGACY)
        .expect("a component without the maintenance export loads");
    assert!(!plugin.has_maintenance());
    let spec = BackendSpec {
        name: "legacy".into(),
        config: Vec::new(),
        grants: Grants::default(),
        limits: Limits::default(),
        secrets: Redactor::new::<&str>(&[]),
        pool: Default::default(),
        credentials: None,
    };
    let adapter = WasmAdapter::new(&runtime, &plugin, spec).await.expect("it opens");

    // The contract it does export still works.
    adapter.health().await.unwrap();
    assert!(adapter.list("", None, 10).await.unwrap().entries.is_empty());
    let path = ObjectPath::parse("models/a/v1/model.bin").unwrap();
    assert_eq!(adapter.stat(&path).await.unwrap_err().kind(), ErrorKind::NotFound);

    let e = adapter.list_pending("models/", None, 10).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert_eq!(e.backend(), Some("legacy"));
    assert_eq!(e.operation(), Some("list_pending"));
    assert_eq!(e.path(), Some("models/"));
    assert!(e.to_string().contains(MAINTENANCE_EXPORT), "{e}");

    let upload = PendingUpload {
        path: path.as_str().into(),
        upload_id: "x".into(),
        started_ms: None,
        staged_bytes: None,
    };
    let e = adapter.abort_pending(&upload).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert_eq!(e.operation(), Some("abort_pending"));

    let service = StorageService::new(std::sync::Arc::new(adapter));
    let e = service.pending_uploads("").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_adapters_export_maintenance() {
    let runtime = runtime();
    let set = PluginSet::builtin();
    for name in [
        "local_filesystem",
        "aws_s3",
        "azure_blob",
        "gcp_storage",
        "database",
        "redis",
        "mlflow",
        "huggingface_hub",
    ] {
        let plugin = set.load(&runtime, name, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(plugin.has_maintenance(), "{name} does not export {MAINTENANCE_EXPORT}");
    }
    assert_eq!(CONTRACT_EXPORT, "wharf:storage/adapter@0.2.0");
}

/// What a killed `local_filesystem` write leaves is listed with its path,
/// size and time, under the prefix asked for only, and aborted by its id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_filesystem_lists_and_aborts_a_killed_write() {
    let dir = tempfile::tempdir().unwrap();
    let host = wharf_tests::local_host(dir.path());
    let service = host.service("local_filesystem").await.unwrap();
    let adapter = service.adapter().clone();
    let path = ObjectPath::parse("models/m/v1/model.bin").unwrap();
    let mut w = adapter.write(&path, wharf::PutMode::Create, None).await.unwrap();
    w.append(bytes::Bytes::from(vec![1u8; 3000])).await.unwrap();
    std::mem::forget(w);

    let listed = service.pending_uploads("models/").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let upload = &listed[0];
    assert_eq!(upload.path, path.as_str());
    assert_eq!(upload.staged_bytes, Some(3000));
    assert!(upload.started_ms.is_some());
    assert!(service.pending_uploads("other/").await.unwrap().is_empty());

    // An id that is not an upload of that path removes nothing.
    let forged = PendingUpload {
        path: "models/other.bin".into(),
        ..upload.clone()
    };
    let e = service.abort_pending(&forged).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");

    service.abort_pending(upload).await.unwrap();
    assert!(service.pending_uploads("").await.unwrap().is_empty());
    assert!(!adapter.exists(&path).await.unwrap());
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join(".wharf-tmp"))
        .unwrap()
        .flatten()
        .collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}
