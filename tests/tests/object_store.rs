//! object_store's own integration suite (`object_store::integration`,
//! pinned 0.14.2) against `wharf::object_store::WharfStore`: over the
//! native `InMemory`, over the `local_filesystem` component through the
//! host, and over `local_filesystem` through the checksum, compression and
//! encryption layers. One test per suite case and store; every store is a
//! fresh, empty one (the suite deletes everything it finds).
//!
//! Not run, each for a reason the README's "object_store" table gives:
//! `multipart_with_opts` (attributes; checked here to answer
//! `NotImplemented` instead) and `response_extensions` (HTTP stores only).
//! `put_opts` over local_filesystem is `#[ignore]`d with its reason below.

use object_store::integration;
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{Attribute, Attributes, PutMultipartOptions};
use std::sync::Arc;
use wharf::layers::{AgeIdentity, Checksum, Compression, Encryption, Stack};
use wharf::object_store::WharfStore;

/// A store and what must live as long as it.
struct Fixture {
    store: WharfStore,
    _host: Option<wharf::Host>,
    _dir: Option<tempfile::TempDir>,
}

async fn in_memory() -> Fixture {
    Fixture {
        store: WharfStore::new(Arc::new(wharf::InMemory::new())),
        _host: None,
        _dir: None,
    }
}

/// Through the host's one-line constructor.
async fn local_filesystem() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let host = wharf_tests::local_host(dir.path());
    let store = host.object_store("local_filesystem").await.unwrap();
    Fixture {
        store,
        _host: Some(host),
        _dir: Some(dir),
    }
}

async fn local_filesystem_layered() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let host = wharf_tests::local_host(dir.path());
    let id = AgeIdentity::generate();
    let adapter = Stack::new()
        .layer(Checksum::new())
        .layer(Compression::new())
        .layer(
            Encryption::new()
                .with_recipients([id.recipient()])
                .with_identities([id]),
        )
        .apply(host.adapter("local_filesystem").await.unwrap());
    Fixture {
        store: WharfStore::new(adapter),
        _host: Some(host),
        _dir: Some(dir),
    }
}

/// One `#[tokio::test]` per case of the suite, in a module per store.
macro_rules! suite {
    ($store:ident) => {
        mod $store {
            use super::*;

            async fn fixture() -> Fixture {
                super::$store().await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn put_get_delete_list() {
                integration::put_get_delete_list(&fixture().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn put_get_attributes() {
                integration::put_get_attributes(&fixture().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn get_opts() {
                integration::get_opts(&fixture().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stream_get() {
                integration::stream_get(&fixture().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn list_uses_directories_correctly() {
                integration::list_uses_directories_correctly(&fixture().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn list_with_delimiter() {
                integration::list_with_delimiter(&fixture().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn get_nonexistent_object() {
                let err = integration::get_nonexistent_object(&fixture().await.store, None)
                    .await
                    .unwrap_err();
                assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn rename_and_copy() {
                integration::rename_and_copy(&fixture().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn copy_if_not_exists() {
                integration::copy_if_not_exists(&fixture().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn copy_rename_nonexistent_object() {
                integration::copy_rename_nonexistent_object(&fixture().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn multipart() {
                let f = fixture().await;
                integration::multipart(&f.store, &f.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn multipart_put_part_out_of_order() {
                let f = fixture().await;
                integration::multipart_put_part_out_of_order(&f.store, &f.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn multipart_race_condition() {
                // Two uploads to one path: each commits whole, the last wins.
                integration::multipart_race_condition(&fixture().await.store, true).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn multipart_out_of_order() {
                integration::multipart_out_of_order(&fixture().await.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn multipart_out_of_order_spilled() {
                // No early part kept in memory: each waits in a temporary file.
                let f = fixture().await;
                let store = f.store.clone().with_parked_memory(0);
                integration::multipart_out_of_order(&store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn list_paginated() {
                let f = fixture().await;
                integration::list_paginated(&f.store, &f.store).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn list_with_offset_exclusivity() {
                integration::list_with_offset_exclusivity(&fixture().await.store).await;
            }

            /// `multipart_with_opts` needs attributes kept with the object,
            /// which the contract has no place for: the honest answer.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn multipart_with_opts_is_not_implemented() {
                let f = fixture().await;
                let opts = PutMultipartOptions {
                    attributes: Attributes::from_iter([(Attribute::Metadata("k".into()), "v")]),
                    ..Default::default()
                };
                let err = f
                    .store
                    .create_multipart_opts(&Path::from("with_opts"), opts)
                    .await
                    .unwrap_err();
                assert!(matches!(err, object_store::Error::NotImplemented { .. }), "{err}");
            }
        }
    };
}

suite!(in_memory);
suite!(local_filesystem);
suite!(local_filesystem_layered);

/// `put_opts` with the suite's racing compare-and-swap counter (5 tasks,
/// 10 increments each, `PutMode::Update`) where the backend says
/// `write_update`.
async fn put_opts(f: Fixture) {
    let update = f.store.adapter().capabilities().write_update;
    integration::put_opts(&f.store, update).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_put_opts() {
    put_opts(in_memory().await).await;
}

/// local_filesystem (at this commit) checks an `update`'s etag and then
/// renames, so two racing updates with one etag can both succeed and the
/// counter loses increments (its crate docs say so); the lock-file change
/// to its writer makes updates atomic. Run with `--ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "local_filesystem's update(etag) is not atomic yet: racing updates can both win"]
async fn local_filesystem_put_opts() {
    put_opts(local_filesystem().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "local_filesystem's update(etag) is not atomic yet: racing updates can both win"]
async fn local_filesystem_layered_put_opts() {
    put_opts(local_filesystem_layered().await).await;
}
