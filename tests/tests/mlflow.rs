//! The `mlflow` adapter against real `mlflow server --serve-artifacts`
//! processes on 127.0.0.1 (scripts/servers.d/mlflow.sh starts them): one
//! with the file artifact store under `WHARF_TEST_MLFLOW_ARTIFACTS` (no
//! multipart routes), one whose artifact destination is a bucket of the moto
//! S3 server (multipart through presigned part URLs). The official MLflow
//! Python client and boto3 are on the other side of the cross-client checks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wharf::conformance::{self, DataStream, Outcome, SuiteOptions};
use wharf::{Adapter, ByteRange, ErrorKind, ObjectPath, PutMode};
use wharf_tests::{python_client, read_hash, server_env, unique, write_stream};

fn url() -> String {
    server_env("WHARF_TEST_MLFLOW_URL")
}

/// The directory the server keeps artifacts in.
fn artifacts_dir() -> PathBuf {
    PathBuf::from(server_env("WHARF_TEST_MLFLOW_ARTIFACTS"))
}

/// The `http://host:port` of a URL: what `grants.http` lists.
fn grant_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    format!("http://{}", rest.split('/').next().unwrap())
}

/// A host with one backend `ml`: `config` is its config table (lines),
/// `grants` its HTTP grant.
fn host_granting(config: &str, grants: &[String]) -> wharf::Host {
    let dir = tempfile::tempdir().unwrap();
    let http = grants.iter().map(|g| format!("\"{g}\"")).collect::<Vec<_>>().join(", ");
    let toml = format!(
        r#"
[backends.ml]
plugin = "mlflow"
[backends.ml.config]
{config}
[backends.ml.grants]
http = [{http}]
"#
    );
    wharf_tests::host_from_toml(&toml, dir.path())
}

fn host(config: &str, grant: &str) -> wharf::Host {
    host_granting(config, &[grant.to_string()])
}

async fn adapter_at(endpoint: &str, prefix: &str) -> Arc<dyn Adapter> {
    host(
        &format!("endpoint = \"{endpoint}\"\nprefix = \"{prefix}\""),
        &grant_of(endpoint),
    )
    .adapter("ml")
    .await
    .unwrap()
}

async fn backend(prefix: &str) -> Arc<dyn Adapter> {
    adapter_at(&url(), prefix).await
}

/// The server whose artifact destination is an S3 bucket (moto).
struct Cloud {
    url: String,
    /// The S3 server the part URLs point at.
    store: String,
    /// The bucket key prefix of the artifact root.
    root: String,
}

fn cloud() -> Cloud {
    Cloud {
        url: server_env("WHARF_TEST_MLFLOW_S3_URL"),
        store: server_env("WHARF_TEST_MLFLOW_S3_STORE"),
        root: server_env("WHARF_TEST_MLFLOW_S3_ROOT"),
    }
}

/// An adapter on the bucket-backed server; `grant_store` also grants the
/// S3 server the part URLs point at.
async fn cloud_backend(cloud: &Cloud, prefix: &str, grant_store: bool, extra: &str) -> Arc<dyn Adapter> {
    let mut grants = vec![grant_of(&cloud.url)];
    if grant_store {
        grants.push(grant_of(&cloud.store));
    }
    let config = format!("endpoint = \"{}\"\nprefix = \"{prefix}\"\n{extra}", cloud.url);
    host_granting(&config, &grants).adapter("ml").await.unwrap()
}

/// Runs the boto3 script against the bucket behind the cloud server.
fn s3(cloud: &Cloud, args: &[&str]) -> String {
    let env = [
        ("WHARF_MLFLOW_S3_STORE", cloud.store.clone()),
        ("WHARF_MLFLOW_S3_BUCKET", server_env("WHARF_TEST_MLFLOW_S3_BUCKET")),
    ];
    python_client("mlflow_s3.py", args, &env)
}

fn path(p: &str) -> ObjectPath {
    ObjectPath::parse(p).unwrap()
}

async fn put(adapter: &dyn Adapter, p: &str, data: &[u8]) -> wharf::Result<wharf::ObjectMeta> {
    let mut w = adapter
        .write(&path(p), PutMode::Overwrite, Some(data.len() as u64))
        .await?;
    if !data.is_empty() {
        w.append(bytes::Bytes::copy_from_slice(data)).await?;
    }
    w.finish().await
}

async fn get(adapter: &dyn Adapter, p: &str, range: Option<ByteRange>) -> wharf::Result<Vec<u8>> {
    let mut r = adapter.read(&path(p), range).await?;
    let mut out = Vec::new();
    while let Some(c) = r.next_chunk(1 << 20).await? {
        out.extend_from_slice(&c);
    }
    Ok(out)
}

/// Runs the suite; only the cases whose capability the server honestly
/// lacks are not applicable: ranged reads (a store may stream the whole
/// file), create/update (no conditional writes), copy.
async fn run_conformance(adapter: Arc<dyn Adapter>, opts: SuiteOptions) {
    let started = Instant::now();
    let report = conformance::run(adapter, opts).await.unwrap();
    println!("{report}\n(in {:.1?})", started.elapsed());
    assert!(report.failures().is_empty(), "{report}");
    let not_applicable: Vec<&str> = report
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::NotApplicable(_)))
        .map(|c| c.name)
        .collect();
    assert_eq!(
        not_applicable,
        [
            "range_start_only",
            "range_start_end",
            "range_past_end",
            "create_on_existing_fails",
            "update_with_stale_etag_fails",
            "racing_create_one_wins",
            "racing_update_one_wins",
            "copy_object",
            "pending_upload_listed_and_aborted"
        ],
        "{report}"
    );
}

/// The whole suite on the file store, with the large object (512 MiB, 1 GiB
/// in the long mode) streamed through one PUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    run_conformance(backend(&unique("conformance")).await, wharf_tests::suite_options()).await;
}

/// The whole suite on the bucket-backed server: large writes go multipart.
/// Smaller than the defaults, which run on the file store above: a 64 MiB
/// large object (8 parts; moto holds every object and part in memory) and
/// 300 keys for pagination (30 a page; each key's delete lists its
/// directory, and moto takes ~80 ms per delete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_cloud_store() {
    let cloud = cloud();
    let adapter = cloud_backend(&cloud, &unique("conformance"), true, "").await;
    let opts = SuiteOptions {
        large_object: 64 << 20,
        list_keys: 300,
        ..SuiteOptions::default()
    };
    run_conformance(adapter, opts).await;
}

/// With a size hint over one part, the write is a multipart upload in
/// wharf's parts (the S3 ETag counts them: 5 MiB parts make 5, where the
/// server's own upload of a PUT makes 8 MiB parts), readable by the MLflow
/// client and by wharf; a range is cut from the whole file this server
/// sends; `abort` and a part URL the grant does not cover leave no object
/// and no pending upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_on_a_cloud_store() {
    let cloud = cloud();
    let prefix = unique("mpu");
    let adapter = cloud_backend(&cloud, &prefix, true, "part_size = \"5MiB\"").await;
    let (written, _) = write_stream(&*adapter, &path("m/model.bin"), (20 << 20) + 5, 11).await;
    let key = format!("{}/{prefix}m/model.bin", cloud.root);
    let etag = s3(&cloud, &["etag", &key]);
    assert!(etag.ends_with("-5"), "not wharf's 5-part upload: {etag}");
    assert_eq!(read_hash(&*adapter, &path("m/model.bin")).await, written);
    let env = [("WHARF_MLFLOW_URL", cloud.url.clone())];
    let downloaded = python_client(
        "mlflow_artifacts.py",
        &["download", &format!("{prefix}m/model.bin")],
        &env,
    );
    assert_eq!(downloaded, written);

    put(&*adapter, "m/r", b"0123456789abcdefghij").await.unwrap();
    let got = get(&*adapter, "m/r", Some(ByteRange { start: 3, end: Some(7) }))
        .await
        .unwrap();
    assert_eq!(got, b"3456");
    let e = get(&*adapter, "m/missing", None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // multipart = "off": one PUT, whatever the hint; the server uploads it
    // to S3 in its own 8 MiB parts.
    let single = cloud_backend(&cloud, &prefix, true, "multipart = \"off\"\npart_size = \"5MiB\"").await;
    let (written, _) = write_stream(&*single, &path("m/single.bin"), (20 << 20) + 5, 12).await;
    let etag = s3(&cloud, &["etag", &format!("{}/{prefix}m/single.bin", cloud.root)]);
    assert!(etag.ends_with("-3"), "not the server's own upload: {etag}");
    assert_eq!(read_hash(&*adapter, &path("m/single.bin")).await, written);

    let mut w = adapter
        .write(&path("m/aborted.bin"), PutMode::Overwrite, Some(40 << 20))
        .await
        .unwrap();
    let mut data = DataStream::new(1, 40 << 20);
    for _ in 0..2 {
        w.append(data.next_chunk(8 << 20).unwrap()).await.unwrap();
    }
    w.abort().await.unwrap();
    assert_eq!(s3(&cloud, &["uploads", &format!("{}/{prefix}", cloud.root)]), "0");
    assert!(!adapter.exists(&path("m/aborted.bin")).await.unwrap());

    let ungranted = cloud_backend(&cloud, &prefix, false, "").await;
    let mut w = ungranted
        .write(&path("m/denied.bin"), PutMode::Overwrite, Some(20 << 20))
        .await
        .unwrap();
    let mut data = DataStream::new(1, 20 << 20);
    let mut failure = None;
    while let Some(chunk) = data.next_chunk(8 << 20) {
        if let Err(e) = w.append(chunk).await {
            failure = Some(e);
            break;
        }
    }
    let e = match failure {
        Some(e) => e,
        None => w.finish().await.expect_err("parts reached a store not granted"),
    };
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.to_string().contains("grants.http"), "{e}");
    assert!(
        !e.to_string().contains("X-Amz-Signature"),
        "a part URL's signature leaked: {e}"
    );
    // The abort runs in the background after a failed append.
    let deadline = Instant::now() + Duration::from_secs(20);
    while s3(&cloud, &["uploads", &format!("{}/{prefix}", cloud.root)]) != "0" {
        assert!(Instant::now() < deadline, "the denied upload was not aborted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(!adapter.exists(&path("m/denied.bin")).await.unwrap());
}

/// `read_range` is false (a store that streams through the server sends the
/// whole file), but a range is still honoured: the file store answers 206,
/// and the adapter clips to the contract's rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_are_honoured() {
    let adapter = backend(&unique("range")).await;
    let caps = adapter.capabilities();
    assert!(!caps.read_range && !caps.write_create && !caps.write_update && !caps.copy);
    put(&*adapter, "r", b"0123456789abcdefghij").await.unwrap();
    for (start, end, want) in [
        (15, None, &b"fghij"[..]),
        (3, Some(7), b"3456"),
        (18, Some(100), b"ij"),
        (50, None, b""),
        (5, Some(5), b""),
        (0, Some(1), b"0"),
    ] {
        let got = get(&*adapter, "r", Some(ByteRange { start, end })).await.unwrap();
        assert_eq!(got, want, "{start}..{end:?}");
    }
    put(&*adapter, "empty", b"").await.unwrap();
    assert_eq!(
        get(&*adapter, "empty", Some(ByteRange { start: 0, end: None }))
            .await
            .unwrap(),
        b""
    );
    let e = get(&*adapter, "missing", Some(ByteRange { start: 1, end: Some(1) }))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// Create, update and copy are `unsupported`, before any byte is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_and_copy_are_unsupported() {
    let adapter = backend(&unique("cond")).await;
    for mode in [PutMode::Create, PutMode::Update("x".into())] {
        let e = adapter.write(&path("c"), mode, None).await.err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    }
    put(&*adapter, "src", b"copy me").await.unwrap();
    let e = adapter
        .copy(&path("src"), &path("dst"), PutMode::Overwrite)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(!adapter.exists(&path("c")).await.unwrap());
}

/// What wharf wrote, the MLflow client downloads byte for byte; what the
/// client logged in a run (`<experiment id>/<run id>/artifacts/<file>`
/// under the artifact root), wharf reads, stats and lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_client_mlflow() {
    let env = [("WHARF_MLFLOW_URL", url())];
    let prefix = unique("cross");
    let adapter = backend(&prefix).await;
    let (written, meta) = write_stream(&*adapter, &path("by-wharf/model.bin"), (20 << 20) + 123, 7).await;
    assert_eq!(meta.size, (20 << 20) + 123);
    let downloaded = python_client(
        "mlflow_artifacts.py",
        &["download", &format!("{prefix}by-wharf/model.bin")],
        &env,
    );
    assert_eq!(downloaded, written);
    // A name the server would mangle is stored escaped, and the client sees
    // that name.
    put(&*adapter, "by-wharf/odd #1?;.bin", b"odd").await.unwrap();
    let listed = python_client("mlflow_artifacts.py", &["list", &format!("{prefix}by-wharf")], &env);
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        ["model.bin", "odd %_231%_3F%_3B.bin"]
    );

    let logged = python_client("mlflow_artifacts.py", &["log", "9437187", "5"], &env);
    // The client prints a "View run" line of its own first.
    let (artifact, hash) = logged.lines().last().unwrap().split_once(' ').unwrap();
    let parts: Vec<&str> = artifact.split('/').collect();
    assert!(
        parts.len() == 4 && parts[0].parse::<u64>().is_ok() && parts[1].len() == 32 && parts[2] == "artifacts",
        "unexpected artifact layout {artifact}"
    );
    assert!(
        artifacts_dir().join(artifact).is_file(),
        "{artifact} is not in the artifacts destination"
    );
    let root = backend("").await;
    assert_eq!(read_hash(&*root, &path(artifact)).await, hash);
    assert_eq!(root.stat(&path(artifact)).await.unwrap().size, 9_437_187);
    let run_dir = artifact.trim_end_matches("model.bin");
    let page = root.list(run_dir, None, 10).await.unwrap();
    let names: Vec<&str> = page.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(names, [artifact]);
}

/// Config mistakes are `invalid` and name the key; secrets stay out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_names_the_key() {
    let url = url();
    let grant = grant_of(&url);
    for (config, needle) in [
        ("prefix = \"x/\"".to_string(), "endpoint"),
        (format!("endpoint = \"ftp://{}\"", &grant[7..]), "endpoint"),
        (format!("endpoint = \"{url}\"\ncolour = \"blue\""), "colour"),
        (format!("endpoint = \"{url}\"\nprefix = \"../up\""), "prefix"),
        (format!("endpoint = \"{url}\"\nprefix = \"a#b\""), "prefix"),
        (format!("endpoint = \"{url}\"\npart_size = \"1MiB\""), "part_size"),
        (format!("endpoint = \"{url}\"\nmultipart = \"maybe\""), "multipart"),
        (format!("endpoint = \"{url}\"\nmax_in_flight = \"0\""), "max_in_flight"),
        (format!("endpoint = \"{url}\"\nusername = \"alice\""), "password"),
        (
            format!("endpoint = \"{url}\"\ntoken = \"s3cr3t-token\"\nusername = \"alice\"\npassword = \"pw-s3cr3t\""),
            "token",
        ),
    ] {
        let e = host(&config, &grant)
            .adapter("ml")
            .await
            .err()
            .unwrap_or_else(|| panic!("{config} was accepted"));
        assert_eq!(e.kind(), ErrorKind::Invalid, "{config}: {e}");
        let text = e.to_string();
        assert!(text.contains(needle), "{config}: {text}");
        assert!(!text.contains("s3cr3t"), "a secret leaked: {text}");
    }
}

/// An endpoint the backend's grant does not cover is refused by the host;
/// the token configured never shows in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_not_granted_is_denied() {
    let config = format!("endpoint = \"{}\"\ntoken = \"tok-s3cr3t\"", url());
    let adapter = host(&config, "http://127.0.0.1:1").adapter("ml").await.unwrap();
    for e in [
        adapter.stat(&path("x")).await.unwrap_err(),
        adapter.health().await.unwrap_err(),
        get(&*adapter, "x", None).await.unwrap_err(),
        put(&*adapter, "x", b"data").await.unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
        assert!(e.to_string().contains("grants.http"), "{e}");
        assert!(!e.to_string().contains("s3cr3t"), "the token leaked: {e}");
    }
}

/// The server's `DELETE` of a directory removes the whole tree: wharf's
/// `delete` of a path that is a directory removes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_of_a_directory_removes_nothing() {
    let adapter = backend(&unique("deldir")).await;
    put(&*adapter, "d/inner/a", b"a").await.unwrap();
    put(&*adapter, "d/b", b"b").await.unwrap();
    adapter.delete(&path("d")).await.unwrap();
    adapter.delete(&path("d/inner")).await.unwrap();
    assert!(adapter.exists(&path("d/inner/a")).await.unwrap());
    assert!(adapter.exists(&path("d/b")).await.unwrap());
    assert_eq!(adapter.stat(&path("d")).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(get(&*adapter, "d", None).await.unwrap_err().kind(), ErrorKind::NotFound);
}

/// The file store cannot keep `a` and `a/b` both: that write is `invalid`
/// (not a retryable 500) and names the path in the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_and_directory_of_one_name_is_invalid() {
    let prefix = unique("clash");
    let adapter = backend(&prefix).await;
    put(&*adapter, "f", b"file").await.unwrap();
    let e = put(&*adapter, "f/below", b"x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.to_string().contains(&format!("{prefix}f")), "{e}");
    put(&*adapter, "dir/x", b"x").await.unwrap();
    let e = put(&*adapter, "dir", b"over a directory").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert_eq!(get(&*adapter, "f", None).await.unwrap(), b"file");
}

/// A proxy to `upstream` that, once, kills the connection carrying request
/// byte number `cut_up` or response byte number `cut_down` (counted over
/// all connections): a server dying mid-transfer.
async fn cutting_proxy(upstream: String, cut_up: u64, cut_down: u64) -> (String, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let cut = Arc::new(AtomicBool::new(false));
    let cut2 = cut.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let (up, down, cut) = (up.clone(), down.clone(), cut2.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                // Either direction reaching its mark ends both.
                tokio::select! {
                    _ = pump(cr, sw, up, cut_up, cut.clone()) => {}
                    _ = pump(sr, cw, down, cut_down, cut) => {}
                }
            });
        }
    });
    (format!("http://{addr}"), cut)
}

/// Copies `from` to `to` until EOF or until `counter` passes `mark` (once
/// over all connections: then it returns, dropping both halves).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counter: Arc<AtomicU64>,
    mark: u64,
    cut: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let before = counter.fetch_add(n as u64, Ordering::SeqCst);
        if before + n as u64 >= mark && !cut.swap(true, Ordering::SeqCst) {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Files the file store is still writing (`.artifact.uploading.*`) under `dir`.
fn uploads_in_progress(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(uploads_in_progress(&p));
        } else if e.file_name().to_string_lossy().starts_with(".artifact.uploading.") {
            found.push(p);
        }
    }
    found
}

/// The connection dies in the middle of a streamed PUT: the write fails as
/// `transient`, nothing is visible at the path, and the server drops its
/// temporary file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_dying_mid_upload_is_transient() {
    let upstream = grant_of(&url())[7..].to_string();
    let (proxy, cut) = cutting_proxy(upstream, 20 << 20, u64::MAX).await;
    let prefix = unique("cut-up");
    let adapter = adapter_at(&proxy, &prefix).await;
    let mut w = adapter.write(&path("big.bin"), PutMode::Overwrite, None).await.unwrap();
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
    let direct = backend(&prefix).await;
    assert!(!direct.exists(&path("big.bin")).await.unwrap());
    let dir = artifacts_dir().join(&prefix);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !uploads_in_progress(&dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "temporary files stayed: {:?}",
            uploads_in_progress(&dir)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An aborted or dropped streamed PUT never turns into an object, not
/// even later: the body never gets its final chunk, the server drops its
/// temporary file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_put_never_appears() {
    let prefix = unique("abort");
    let adapter = backend(&prefix).await;
    for (name, drop_it) in [("aborted", false), ("dropped", true)] {
        let mut w = adapter.write(&path(name), PutMode::Overwrite, None).await.unwrap();
        let mut data = DataStream::new(4, 3 << 20);
        while let Some(chunk) = data.next_chunk(1 << 20) {
            w.append(chunk).await.unwrap();
        }
        if drop_it {
            drop(w);
        } else {
            w.abort().await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for name in ["aborted", "dropped"] {
        assert!(!adapter.exists(&path(name)).await.unwrap(), "{name} appeared");
    }
    assert_eq!(
        uploads_in_progress(&artifacts_dir().join(&prefix)),
        Vec::<PathBuf>::new()
    );
}

/// The connection dies in the middle of a download: the read fails as
/// `transient`, never a short object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_dying_mid_download_is_transient() {
    let prefix = unique("cut-down");
    let direct = backend(&prefix).await;
    write_stream(&*direct, &path("big.bin"), 32 << 20, 3).await;
    let upstream = grant_of(&url())[7..].to_string();
    let (proxy, cut) = cutting_proxy(upstream, u64::MAX, 10 << 20).await;
    let adapter = adapter_at(&proxy, &prefix).await;
    let e = get(&*adapter, "big.bin", None)
        .await
        .expect_err("a cut download succeeded");
    assert!(cut.load(Ordering::SeqCst), "the proxy never cut");
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
}

/// Listing pages through a tree of directories in byte order, empty
/// directories left by deletes included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_walks_directories_in_byte_order() {
    let adapter = backend(&unique("walk")).await;
    let keys = ["a-b", "a/x", "a/y/z", "a0", "b", "e/gone"];
    for k in keys {
        put(&*adapter, k, k.as_bytes()).await.unwrap();
    }
    adapter.delete(&path("e/gone")).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let page = adapter.list("", cursor.as_deref(), 2).await.unwrap();
        assert!(page.entries.len() <= 2);
        seen.extend(page.entries.iter().map(|e| (e.path.clone(), e.size)));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let want: Vec<(String, u64)> = ["a-b", "a/x", "a/y/z", "a0", "b"]
        .iter()
        .map(|k| (k.to_string(), k.len() as u64))
        .collect();
    assert_eq!(seen, want);
    let page = adapter.list("a/", None, 100).await.unwrap();
    let got: Vec<&str> = page.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(got, ["a/x", "a/y/z"]);
}

/// `health` names the server and what it checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_the_server() {
    let adapter = backend("").await;
    let text = adapter.health().await.unwrap();
    assert!(text.contains(&url()) && text.contains("/health"), "{text}");
}

/// A whole model saved through `StorageService` (what `wharf put` does):
/// the artifact store has no atomic create, so the manifest is committed
/// after an existence check; a second save of the version is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_save_and_load_through_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("detector.onnx");
    let mut bytes = vec![0x08, 0x07, 0x12, 0x05];
    bytes.extend((0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    std::fs::write(&model, &bytes).unwrap();
    let service = wharf::StorageService::new(backend(&unique("service")).await);
    let opts = wharf::SaveOptions {
        model: Some("detector".into()),
        version: Some("v1".into()),
        ..Default::default()
    };
    let info = service.save_file(&model, &opts).await.unwrap();
    assert_eq!(info.size_bytes, bytes.len() as u64);
    let again = service.save_file(&model, &opts).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyExists, "{again}");
    let back = dir.path().join("back.onnx");
    service.load_to_path("models/detector/v1", &back).await.unwrap();
    assert!(std::fs::read(&back).unwrap() == bytes);

    // No atomic create: no numbered versions (a time-and-random default
    // instead), and transactions and aliases are refused, saying why.
    let quick = wharf::SaveOptions {
        model: Some("detector".into()),
        ..Default::default()
    };
    let info = service.save_file(&model, &quick).await.unwrap();
    let v = info.version.unwrap();
    assert!(
        v.len() == "20261205T121500Z-3f9a0c1e".len() && v.as_bytes()[8] == b'T',
        "{v}"
    );
    let e = service.transaction().err().expect("refused");
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("atomic create"), "{e}");
    let e = service.set_alias("detector", "prod", "v1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
}
