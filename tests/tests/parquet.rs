//! A real object_store consumer: the `parquet` crate's async Arrow writer
//! and reader (`examples/parquet.rs`, whose functions this runs) through
//! `WharfStore`, over local_filesystem (from a `file://` URL, and under
//! checksum + compression + encryption), aws_s3 on s3s-fs and redis (from
//! a `redis://` URL). Each writes 20 row groups as a multipart upload,
//! reads two columns of two row groups back, checks every value against
//! the generator, and checks that only ranges were read, and far fewer
//! bytes than the file holds.

#[allow(dead_code)] // its `main` is the example's, not run here
#[path = "../../examples/parquet.rs"]
mod example;

use example::{ReadLog, expected, read_anomalies, write_readings};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use std::sync::Arc;
use wharf::Adapter;
use wharf::layers::{AgeIdentity, Checksum, Compression, Encryption, Stack};
use wharf::object_store::WharfStore;
use wharf_tests::{server_env, unique};

const GROUPS: usize = 20;

/// Writes the table through `adapter` (recorded), reads back row groups 3
/// and 7 of two of its four columns, and checks what came back and what
/// was read.
async fn round_trip(adapter: Arc<dyn Adapter>, key: &str) {
    let log = ReadLog::new(adapter);
    let store: Arc<dyn ObjectStore> = Arc::new(WharfStore::new(log.clone()));
    let path = Path::from(key);
    let size = write_readings(store.clone(), &path, GROUPS).await.unwrap();
    assert!(size > 2 << 20, "{size} bytes: more than one 1 MiB part");
    log.take();

    let groups = [3, 7];
    let found = read_anomalies(store.clone(), &path, &groups).await.unwrap();
    let want = expected(&groups);
    assert_eq!((found.rows, found.anomalies), (want.rows, want.anomalies));
    assert!(want.anomalies > 0, "the data has anomalies to find");
    // The same values in the same order: the sums agree to the last bit.
    assert_eq!(found.sum.to_bits(), want.sum.to_bits());

    let reads = log.take();
    assert!(reads.len() >= 2, "the footer, then column chunks: {reads:?}");
    let mut bytes = 0;
    for (p, r) in &reads {
        assert_eq!(p, key);
        let r = r.unwrap_or_else(|| panic!("parquet read {p} whole: {reads:?}"));
        let end = r.end.unwrap_or(size);
        assert!(r.start < end && end <= size, "{r:?} inside 0..{size}");
        bytes += end - r.start;
    }
    // 2 of 20 row groups, 2 of 4 columns (the small ones): a few percent.
    assert!(bytes * 10 < size, "read {bytes} of {size} bytes: {reads:?}");

    // A whole read gives the same file parquet wrote, and it goes away.
    assert_eq!(
        store.get(&path).await.unwrap().bytes().await.unwrap().len() as u64,
        size
    );
    store.delete(&path).await.unwrap();
    assert!(matches!(
        store.head(&path).await,
        Err(object_store::Error::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_filesystem_from_a_file_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", dir.path().display());
    let store = WharfStore::from_url(&url).await.unwrap();
    round_trip(store.adapter().clone(), "tables/readings.parquet").await;
    assert!(!dir.path().join("tables/readings.parquet").exists());
    // The store writes into the directory the URL named.
    store.put(&Path::from("proof.txt"), "here".into()).await.unwrap();
    assert_eq!(std::fs::read(dir.path().join("proof.txt")).unwrap(), b"here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_filesystem_under_checksum_compression_encryption() {
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
    round_trip(adapter, "tables/readings.parquet").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_s3_on_s3s_fs() {
    let dir = tempfile::tempdir().unwrap();
    let toml = wharf_tests::s3_toml(
        &server_env("WHARF_TEST_S3S_URL"),
        &server_env("WHARF_TEST_S3S_ACCESS_KEY"),
        &server_env("WHARF_TEST_S3S_SECRET_KEY"),
        &unique("parquet"),
        "",
    );
    let host = wharf_tests::host_from_toml(&toml, dir.path());
    round_trip(host.adapter("b").await.unwrap(), "tables/readings.parquet").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_from_a_redis_url() {
    let url = format!(
        "redis://:{}@{}/0",
        server_env("WHARF_TEST_REDIS_PASSWORD"),
        server_env("WHARF_TEST_REDIS_ADDR")
    );
    let store = WharfStore::from_url(&url).await.unwrap();
    round_trip(
        store.adapter().clone(),
        &format!("{}readings.parquet", unique("parquet")),
    )
    .await;
}

#[tokio::test]
async fn from_url_refuses_a_name() {
    let err = WharfStore::from_url("models").await.unwrap_err();
    assert_eq!(err.kind(), wharf::ErrorKind::Config);
    assert!(err.to_string().contains("`models` is not a URL"), "{err}");
}
