//! The `aws_s3` adapter against real S3 servers on 127.0.0.1: moto (S3
//! semantics, multipart bookkeeping) and s3s-fs (which verifies SigV4).
//! scripts/servers.sh starts both.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use wharf::conformance::{self, DataStream};
use wharf::{Adapter, ErrorKind, ObjectPath, PutMode};
use wharf_tests::{assert_only_races_lost, cutting_proxy, python_client, read_hash, server_env, unique, write_stream};

struct Server {
    url: String,
    access_key: String,
    secret_key: String,
}

fn moto() -> Server {
    Server {
        url: server_env("WHARF_TEST_MOTO_URL"),
        // moto accepts any credentials.
        access_key: "moto-key".into(),
        secret_key: "moto-secret".into(),
    }
}

fn s3s() -> Server {
    Server {
        url: server_env("WHARF_TEST_S3S_URL"),
        access_key: server_env("WHARF_TEST_S3S_ACCESS_KEY"),
        secret_key: server_env("WHARF_TEST_S3S_SECRET_KEY"),
    }
}

fn port(url: &str) -> &str {
    url.rsplit(':').next().unwrap()
}

/// A host with one backend `s3` on `endpoint`; `extra` adds config lines.
fn host(server: &Server, endpoint: &str, secret: &str, prefix: &str, grant: &str, extra: &str) -> wharf::Host {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[backends.s3]
plugin = "aws_s3"
[backends.s3.config]
endpoint = "{endpoint}"
bucket = "{bucket}"
access_key_id = "{ak}"
secret_access_key = "{secret}"
prefix = "{prefix}"
{extra}
[backends.s3.grants]
http = ["{grant}"]
"#,
        bucket = server_env("WHARF_TEST_BUCKET"),
        ak = server.access_key,
    );
    wharf_tests::host_from_toml(&toml, dir.path())
}

async fn adapter(server: &Server, prefix: &str) -> Arc<dyn Adapter> {
    let grant = format!("http://127.0.0.1:{}", port(&server.url));
    host(server, &server.url, &server.secret_key, prefix, &grant, "")
        .adapter("s3")
        .await
        .unwrap()
}

/// Runs the suite; every case but those in `not_applicable` must pass,
/// except that racing writers may all win on these servers (see
/// `assert_only_races_lost`): the adapter sends `If-None-Match` and
/// `If-Match`, which S3 checks atomically and they do not.
async fn run_conformance(server: Server, name: &str, not_applicable: &[&str]) {
    let adapter = adapter(&server, &unique(name)).await;
    let report = conformance::run(adapter, wharf_tests::suite_options()).await.unwrap();
    println!("{report}");
    assert_only_races_lost(&report);
    let skipped: Vec<&str> = report
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, conformance::Outcome::NotApplicable(_)))
        .map(|c| c.name)
        .collect();
    assert_eq!(skipped, not_applicable, "cases that did not apply: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_moto() {
    run_conformance(moto(), "conformance", &[]).await;
}

/// s3s-fs has no ListMultipartUploads (it answers 501), so the adapter
/// answers `unsupported` for pending uploads there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_s3s() {
    run_conformance(s3s(), "conformance", &["pending_upload_listed_and_aborted"]).await;
}

/// A host killed in a multipart write (its writer and instance leaked: no
/// finish, no abort, no drop) leaves a pending upload that S3 keeps; the
/// service lists it with its start time, aborts it, and boto3 agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_write_is_listed_and_aborted() {
    let server = moto();
    let prefix = unique("killed");
    let adapter = adapter(&server, &prefix).await;
    let service = wharf::StorageService::new(adapter.clone());
    let path = ObjectPath::parse("models/m/v1/model.bin").unwrap();
    let mut w = adapter.write(&path, PutMode::Create, None).await.unwrap();
    let mut data = DataStream::new(3, 40 << 20);
    for _ in 0..3 {
        w.append(data.next_chunk(8 << 20).unwrap()).await.unwrap();
    }
    std::mem::forget(w);
    assert_eq!(boto3(&server, &["uploads", &prefix]), "1");

    let listed = service.pending_uploads("models/").await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].path, path.as_str());
    // Parsed from `Initiated`; moto answers 2010-11-10T20:48:33Z for every
    // upload, S3 the real time.
    assert!(listed[0].started_ms.is_some(), "{listed:?}");
    assert!(service.pending_uploads("other/").await.unwrap().is_empty());
    assert_eq!(adapter.stat(&path).await.unwrap_err().kind(), ErrorKind::NotFound);

    service.abort_pending(&listed[0]).await.unwrap();
    assert_eq!(boto3(&server, &["uploads", &prefix]), "0");
    assert!(service.pending_uploads("").await.unwrap().is_empty());
    assert_eq!(
        boto3(&server, &["exists", &format!("{prefix}models/m/v1/model.bin")]),
        "no"
    );
}

/// More pending uploads than one page holds: the cursor (S3's key and
/// upload-id markers) walks them all, each once. moto ignores
/// `max-uploads` and the markers, so this pages the adapter's own cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_uploads_paginate() {
    let server = moto();
    let prefix = unique("pending-pages");
    let adapter = adapter(&server, &prefix).await;
    let path = ObjectPath::parse("same.bin").unwrap();
    // Several uploads of one key, and one of another: the upload-id marker
    // matters as much as the key marker.
    for p in [&path, &path, &path, &ObjectPath::parse("z.bin").unwrap()] {
        let mut w = adapter.write(p, PutMode::Overwrite, None).await.unwrap();
        // Two parts of the default 8 MiB: a multipart upload.
        let mut data = DataStream::new(4, 16 << 20);
        for _ in 0..2 {
            w.append(data.next_chunk(8 << 20).unwrap()).await.unwrap();
        }
        std::mem::forget(w);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = adapter.list_pending("", cursor.as_deref(), 1).await.unwrap();
        pages += 1;
        seen.extend(page.entries.into_iter().map(|u| (u.path, u.upload_id)));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 20, "the cursor does not end");
    }
    let mut unique_ids: Vec<_> = seen.iter().map(|(_, id)| id.clone()).collect();
    unique_ids.sort();
    unique_ids.dedup();
    assert_eq!(unique_ids.len(), 4, "{seen:?}");
    assert_eq!(seen.len(), 4, "{seen:?}");
    for (p, id) in seen {
        let upload = wharf::PendingUpload {
            path: p,
            upload_id: id,
            started_ms: None,
            staged_bytes: None,
        };
        adapter.abort_pending(&upload).await.unwrap();
    }
    assert_eq!(boto3(&server, &["uploads", &prefix]), "0");
}

/// Runs the boto3 client script against `server`; its stdout.
fn boto3(server: &Server, args: &[&str]) -> String {
    let env = [
        ("WHARF_S3_ENDPOINT", server.url.clone()),
        ("WHARF_S3_BUCKET", server_env("WHARF_TEST_BUCKET")),
        ("WHARF_S3_ACCESS_KEY", server.access_key.clone()),
        ("WHARF_S3_SECRET_KEY", server.secret_key.clone()),
    ];
    python_client("aws_s3.py", args, &env)
}

/// What wharf writes, boto3 reads byte for byte, and the other way round,
/// on both servers, with multipart uploads in both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_client_boto3() {
    for server in [moto(), s3s()] {
        let prefix = unique("cross");
        let adapter = adapter(&server, &prefix).await;
        let path = ObjectPath::parse("by-wharf/model.bin").unwrap();
        let (written, _) = write_stream(&*adapter, &path, (20 << 20) + 123, 7).await;
        assert_eq!(
            boto3(&server, &["get", &format!("{prefix}by-wharf/model.bin")]),
            written
        );

        let uploaded = boto3(
            &server,
            &["put", &format!("{prefix}by-boto3/model.bin"), "18874371", "9"],
        );
        let path = ObjectPath::parse("by-boto3/model.bin").unwrap();
        assert_eq!(read_hash(&*adapter, &path).await, uploaded);
        assert_eq!(adapter.stat(&path).await.unwrap().size, 18_874_371);
    }
}

/// s3s-fs verifies signatures: a wrong secret is `denied`, the message names
/// the access key and never the secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_denied() {
    let server = s3s();
    let grant = format!("http://127.0.0.1:{}", port(&server.url));
    let wrong = "definitely-not-the-secret";
    let adapter = host(&server, &server.url, wrong, "denied/", &grant, "")
        .adapter("s3")
        .await
        .unwrap();
    let path = ObjectPath::parse("x").unwrap();
    let e = adapter.stat(&path).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    let text = e.to_string();
    assert!(text.contains(&server.access_key), "{text}");
    assert!(!text.contains(wrong), "the secret leaked: {text}");
    let e = adapter.health().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
}

/// An endpoint the backend's grant does not cover is refused by the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_not_granted_is_denied() {
    let server = moto();
    let adapter = host(&server, &server.url, &server.secret_key, "x/", "http://127.0.0.1:1", "")
        .adapter("s3")
        .await
        .unwrap();
    let e = adapter.stat(&ObjectPath::parse("x").unwrap()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.to_string().contains("grants.http"), "{e}");
}

/// Config mistakes are `invalid` and name the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_names_the_key() {
    let server = moto();
    let grant = format!("http://127.0.0.1:{}", port(&server.url));
    for (extra, needle) in [
        ("part_size = \"1MiB\"", "part_size"),
        ("colour = \"blue\"", "colour"),
        ("payload_signing = \"sometimes\"", "payload_signing"),
    ] {
        let e = host(&server, &server.url, &server.secret_key, "x/", &grant, extra)
            .adapter("s3")
            .await
            .err()
            .unwrap_or_else(|| panic!("{extra} was accepted"));
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    }
}

/// `abort()` of a multipart upload leaves no object and no pending upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_leaves_no_pending_upload() {
    let server = moto();
    let prefix = unique("abort");
    let adapter = adapter(&server, &prefix).await;
    let path = ObjectPath::parse("big.bin").unwrap();
    let mut w = adapter.write(&path, PutMode::Overwrite, None).await.unwrap();
    let mut data = DataStream::new(1, 40 << 20);
    for _ in 0..3 {
        w.append(data.next_chunk(8 << 20).unwrap()).await.unwrap();
    }
    w.abort().await.unwrap();
    assert_eq!(boto3(&server, &["uploads", &prefix]), "0");
    assert_eq!(boto3(&server, &["exists", &format!("{prefix}big.bin")]), "no");
    assert_eq!(adapter.stat(&path).await.unwrap_err().kind(), ErrorKind::NotFound);
}

/// The connection dies in the middle of a multipart upload: the write fails
/// as `transient`, and neither an object nor a pending upload stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_leaves_no_pending_upload() {
    let server = moto();
    let upstream = server.url.trim_start_matches("http://").to_string();
    let (proxy, cut) = cutting_proxy(upstream, 20 << 20).await;
    let proxy = format!("http://{proxy}");
    let prefix = unique("cut");
    let adapter = host(
        &server,
        &proxy,
        &server.secret_key,
        &prefix,
        &format!("http://127.0.0.1:{}", port(&proxy)),
        "",
    )
    .adapter("s3")
    .await
    .unwrap();
    let path = ObjectPath::parse("big.bin").unwrap();
    let mut w = adapter.write(&path, PutMode::Overwrite, None).await.unwrap();
    let mut data = DataStream::new(2, 64 << 20);
    let mut failure = None;
    while let Some(chunk) = data.next_chunk(8 << 20) {
        if let Err(e) = w.append(chunk).await {
            failure = Some(e);
            break;
        }
    }
    let e = match failure {
        Some(e) => e,
        None => w.finish().await.expect_err("the upload survived a cut connection"),
    };
    assert!(cut.load(Ordering::SeqCst), "the proxy never cut");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert_eq!(boto3(&server, &["uploads", &prefix]), "0");
    assert_eq!(boto3(&server, &["exists", &format!("{prefix}big.bin")]), "no");
}
