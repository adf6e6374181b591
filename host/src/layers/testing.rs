//! What every layer's unit tests share: the conformance suite through a
//! stack over [`InMemory`], with no runtime and no guest, and the reads,
//! writes and tampering of stored bytes the layer tests are made of.

use super::Stack;
use crate::conformance::{self, DataStream, SuiteOptions};
use crate::{Adapter, ByteRange, ErrorKind, InMemory, ObjectMeta, ObjectPath, PutMode};
use bytes::Bytes;
use std::sync::Arc;

/// Runs the whole suite through `stack` over a fresh `InMemory`
/// (64 MiB for the large streamed case); every case must pass but pending
/// uploads, which `InMemory` never has, and the config case (a native
/// adapter has no config to open again with).
pub(crate) async fn conformance_over_memory(stack: Stack) {
    let adapter = stack.apply(Arc::new(InMemory::new()));
    let options = SuiteOptions {
        large_object: 64 << 20,
        ..SuiteOptions::default()
    };
    let report = conformance::run(adapter, options).await.expect("the suite runs");
    assert!(report.failures().is_empty(), "{report}");
    assert_eq!(
        report.not_applicable(),
        ["unknown_config_key_rejected", "pending_upload_listed_and_aborted"],
        "{report}"
    );
}

/// A fresh store, and `stack` over it; the store is the view below every
/// layer, where tests read and change the stored bytes.
pub(crate) fn over_memory(stack: Stack) -> (InMemory, Arc<dyn Adapter>) {
    let store = InMemory::new();
    let adapter = stack.apply(Arc::new(store.clone()));
    (store, adapter)
}

pub(crate) fn p(s: &str) -> ObjectPath {
    ObjectPath::parse(s).unwrap()
}

/// `n` pseudo-random bytes from `seed` (incompressible).
pub(crate) fn random(n: u64, seed: u64) -> Vec<u8> {
    DataStream::new(seed, n)
        .next_chunk(n as usize)
        .unwrap_or_default()
        .to_vec()
}

/// Writes `data` at `path` (overwriting), in uneven appends so no layer
/// sees its own chunk size.
pub(crate) async fn put(a: &dyn Adapter, path: &str, data: &[u8]) -> ObjectMeta {
    let mut w = a
        .write(&p(path), PutMode::Overwrite, Some(data.len() as u64))
        .await
        .unwrap();
    for piece in data.chunks(3 * 4099 + 7) {
        w.append(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    w.finish().await.unwrap()
}

/// All of `range` of `path` (all of it for `None`).
pub(crate) async fn get(a: &dyn Adapter, path: &str, range: Option<ByteRange>) -> crate::Result<Vec<u8>> {
    let mut r = a.read(&p(path), range).await?;
    let mut out = Vec::new();
    while let Some(c) = r.next_chunk(1 << 20).await? {
        out.extend_from_slice(&c);
    }
    Ok(out)
}

/// A read that must fail with `kind`; the error names the layer, the
/// backend, the operation and the path. Returns the error's text.
pub(crate) async fn read_fails(
    a: &dyn Adapter,
    path: &str,
    range: Option<ByteRange>,
    kind: ErrorKind,
    layer: &str,
) -> String {
    let e = get(a, path, range)
        .await
        .expect_err("the read must fail, not return bytes");
    assert_eq!(e.kind(), kind, "{e}");
    assert_eq!(
        (e.backend(), e.operation(), e.path()),
        (Some("memory"), Some("read"), Some(path)),
        "{e}"
    );
    assert!(e.message().contains(&format!("{layer} layer")), "{e}");
    e.to_string()
}

/// The stored (encoded) bytes of `path`, below every layer.
pub(crate) fn stored(store: &InMemory, path: &str) -> Vec<u8> {
    store.stored_bytes(&p(path)).expect("the object is stored").to_vec()
}

/// Rewrites the stored bytes of `path` with `f`, below every layer.
pub(crate) fn edit(store: &InMemory, path: &str, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = stored(store, path);
    f(&mut bytes);
    store.replace_stored_bytes(&p(path), bytes.into());
}

/// Stores `bytes` as the stored form of `path`, below every layer.
pub(crate) fn overwrite(store: &InMemory, path: &str, bytes: &[u8]) {
    store.replace_stored_bytes(&p(path), Bytes::copy_from_slice(bytes));
}
