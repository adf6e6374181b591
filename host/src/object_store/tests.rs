//! The mapping's own corners over `InMemory`; object_store's integration
//! suite runs in `tests/tests/object_store.rs`.

use super::WharfStore;
use crate::InMemory;
use futures::TryStreamExt;
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::sync::Arc;

fn store() -> WharfStore {
    WharfStore::new(Arc::new(InMemory::new()))
}

#[tokio::test]
async fn early_parts_spill_to_files_and_land_in_order() {
    // Nothing parked in memory: every early part goes to a temporary file.
    let store = store().with_parked_memory(0);
    let path = Path::from("spilled");
    let mut upload = store.put_multipart(&path).await.unwrap();
    let parts: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 3 << 20]).collect();
    let futs: Vec<_> = parts
        .iter()
        .map(|p| upload.put_part(PutPayload::from(p.clone())))
        .collect();
    // 3, 1, 2, then 0 unblocks them all.
    let mut futs: Vec<Option<_>> = futs.into_iter().map(Some).collect();
    for i in [3, 1, 2, 0] {
        futs[i].take().unwrap().await.unwrap();
    }
    upload.complete().await.unwrap();
    let got = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), parts.concat().as_slice());
}

#[tokio::test]
async fn an_upload_missing_a_part_does_not_complete() {
    let store = store();
    let path = Path::from("holey");
    let id = store.create_multipart(&path).await.unwrap();
    let p1 = store.put_part(&path, &id, 1, "b".into()).await.unwrap();
    let err = store.complete_multipart(&path, &id, vec![p1]).await.unwrap_err();
    assert!(matches!(err, object_store::Error::NotSupported { .. }), "{err}");
    let err = store.head(&path).await.unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn paginated_listing_resumes_inside_a_delimited_page() {
    let store = store();
    for p in ["d/a/1", "d/a/2", "d/b", "d/c/1", "d/c/2", "d/d"] {
        store.put(&Path::from(p), "x".into()).await.unwrap();
    }
    let mut opts = PaginatedListOptions {
        max_keys: Some(2),
        delimiter: Some("/".into()),
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = store.list_paginated(Some("d/"), opts.clone()).await.unwrap();
        seen.extend(page.result.common_prefixes.iter().map(|p| format!("{p}/")));
        seen.extend(page.result.objects.iter().map(|o| o.location.to_string()));
        match page.page_token {
            Some(t) => opts.page_token = Some(t),
            None => break,
        }
    }
    seen.sort();
    assert_eq!(seen, ["d/a/", "d/b", "d/c/", "d/d"]);
}

#[tokio::test]
async fn a_range_reads_only_its_bytes_and_reports_the_whole_size() {
    let store = store();
    let path = Path::from("r");
    store.put(&path, "0123456789".into()).await.unwrap();
    let r = store
        .get_opts(&path, object_store::GetOptions::new().with_range(Some(7..100)))
        .await
        .unwrap();
    assert_eq!((r.meta.size, r.range.clone()), (10, 7..10));
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"789");
    let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
    assert_eq!(listed.len(), 1);
}
