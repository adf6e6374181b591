//! The `redis` adapter against a real redis-server on 127.0.0.1 (with a
//! password, so AUTH is exercised). scripts/servers.sh starts it. The
//! `redis` crate is the independent view of what the adapter left in the
//! server.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use wharf::conformance::{self, DataStream, SuiteOptions};
use wharf::{Adapter, ByteRange, ErrorKind, ObjectPath, PutMode};
use wharf_tests::{cutting_proxy, read_hash, server_env, unique, write_stream};

fn addr() -> String {
    server_env("WHARF_TEST_REDIS_ADDR")
}

fn password() -> String {
    server_env("WHARF_TEST_REDIS_PASSWORD")
}

/// A host with one backend `r`: the adapter talks to `address`, the host
/// grants `grant`; `extra` adds config lines.
fn host(address: &str, grant: &str, password: &str, prefix: &str, extra: &str) -> wharf::Host {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[backends.r]
plugin = "redis"
[backends.r.config]
address = "{address}"
password = "{password}"
prefix = "{prefix}"
{extra}
[backends.r.grants]
tcp = ["{grant}"]
"#
    );
    wharf_tests::host_from_toml(&toml, dir.path())
}

async fn adapter_with(prefix: &str, extra: &str) -> Arc<dyn Adapter> {
    host(&addr(), &addr(), &password(), prefix, extra)
        .adapter("r")
        .await
        .unwrap()
}

async fn adapter(prefix: &str) -> Arc<dyn Adapter> {
    adapter_with(prefix, "").await
}

fn path(p: &str) -> ObjectPath {
    ObjectPath::parse(p).unwrap()
}

/// A native connection to the test server.
fn raw() -> redis::Connection {
    let url = format!("redis://:{}@{}/", password(), addr());
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// Every key under `prefix`, sorted (SCAN, bounded).
fn keys(prefix: &str) -> Vec<String> {
    let mut con = raw();
    let mut cursor = 0u64;
    let mut found = Vec::new();
    for _ in 0..100_000 {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut con)
            .unwrap();
        found.extend(batch);
        cursor = next;
        if cursor == 0 {
            found.sort();
            return found;
        }
    }
    panic!("SCAN did not end");
}

fn chunk_keys(prefix: &str) -> Vec<String> {
    let chunks = format!("{prefix}chunk:");
    keys(prefix).into_iter().filter(|k| k.starts_with(&chunks)).collect()
}

/// Waits (at most 30 s: the host aborts a dropped writer in the background,
/// and a loaded machine may be slow to run it) until no chunk key is left
/// under `prefix`.
async fn no_chunks_left(prefix: &str) -> Vec<String> {
    for _ in 0..300 {
        let left = chunk_keys(prefix);
        if left.is_empty() {
            return left;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    chunk_keys(prefix)
}

async fn run_conformance(prefix: &str, extra: &str, opts: SuiteOptions) {
    let adapter = adapter_with(prefix, extra).await;
    let report = conformance::run(adapter, opts).await.unwrap();
    println!("{report}");
    assert!(report.failures().is_empty(), "{report}");
    // Every case applies but pending uploads (chunk keys expire and do not name their object).
    assert_eq!(
        report.not_applicable(),
        ["pending_upload_listed_and_aborted"],
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_default_chunks() {
    let prefix = unique("redis-conformance");
    run_conformance(&prefix, "", wharf_tests::suite_options()).await;
    assert_eq!(keys(&prefix), Vec::<String>::new(), "the suite's cleanup left keys");
}

/// The suite again with 64 KiB chunks: every object of more than one byte
/// range and the 10 MiB round trip cross many chunk boundaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_small_chunks() {
    let prefix = unique("redis-conformance-small");
    let opts = SuiteOptions {
        large_object: 96 << 20,
        ..SuiteOptions::default()
    };
    run_conformance(&prefix, "chunk_size = \"64KiB\"", opts).await;
    assert_eq!(keys(&prefix), Vec::<String>::new(), "the suite's cleanup left keys");
}

/// A 2 GiB object (four times Redis' 512 MB string limit) goes in and out
/// in chunks; the native client sees the manifest and the chunk keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gib_round_trip() {
    let prefix = unique("redis-2g");
    let adapter = adapter(&prefix).await;
    let p = path("models/big/v1/model.safetensors");
    let size = 2u64 << 30;
    let (written, meta) = write_stream(&*adapter, &p, size, 11).await;
    assert_eq!(meta.size, size);
    assert_eq!(read_hash(&*adapter, &p).await, written);

    let mut con = raw();
    let manifest: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{prefix}manifest:{}", p.as_str()))
        .query(&mut con)
        .unwrap();
    assert_eq!(manifest["size"], size.to_string());
    assert_eq!(manifest["chunks"], "256");
    assert_eq!(Some(&manifest["etag"]), meta.etag.as_ref());
    let chunks = chunk_keys(&prefix);
    assert_eq!(chunks.len(), 256);
    let mut total = 0u64;
    for k in &chunks {
        let len: u64 = redis::cmd("STRLEN").arg(k).query(&mut con).unwrap();
        let ttl: i64 = redis::cmd("PTTL").arg(k).query(&mut con).unwrap();
        assert_eq!(ttl, -1, "a committed chunk still expires: {k}");
        total += len;
    }
    assert_eq!(total, size);
    adapter.delete(&p).await.unwrap();
    assert_eq!(keys(&prefix), Vec::<String>::new());
}

/// A range reads only the chunks it covers: with the other chunks removed
/// behind the adapter's back, reads inside chunk 5 still work, and one that
/// needs a removed chunk fails instead of returning short data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_fetch_only_their_chunks() {
    let prefix = unique("redis-range");
    let adapter = adapter_with(&prefix, "chunk_size = \"64KiB\"").await;
    let p = path("ranged.bin");
    let cs = 64u64 << 10;
    let size = 16 * cs;
    let mut data = DataStream::new(5, size);
    let all = data.next_chunk(size as usize).unwrap();
    let mut w = adapter.write(&p, PutMode::Overwrite, Some(size)).await.unwrap();
    w.append(all.clone()).await.unwrap();
    let etag = w.finish().await.unwrap().etag.unwrap();

    let read = |start: u64, end: Option<u64>| {
        let adapter = adapter.clone();
        let p = p.clone();
        async move {
            let mut r = adapter.read(&p, Some(ByteRange { start, end })).await?;
            let mut out = Vec::new();
            while let Some(c) = r.next_chunk(10_000).await? {
                out.extend_from_slice(&c);
            }
            Ok::<_, wharf::Error>(out)
        }
    };
    // Across chunk boundaries first, with everything present.
    for (start, end) in [
        (cs - 3, Some(3 * cs + 5)),
        (0, Some(1)),
        (size - 1, None),
        (7, Some(2 * cs)),
    ] {
        let got = read(start, end).await.unwrap();
        let stop = end.unwrap_or(size) as usize;
        assert!(got == all[start as usize..stop], "range {start}..{end:?}");
    }
    let mut con = raw();
    for n in (0..16).filter(|&n| n != 5) {
        let _: i64 = redis::cmd("UNLINK")
            .arg(format!("{prefix}chunk:{etag}:{n}"))
            .query(&mut con)
            .unwrap();
    }
    let got = read(5 * cs + 10, Some(6 * cs)).await.unwrap();
    assert!(got == all[(5 * cs + 10) as usize..(6 * cs) as usize]);
    // Chunks gone under a reader: what a concurrent overwrite or delete
    // does, so `transient` (read again), not damage.
    let e = read(5 * cs, Some(6 * cs + 1)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains("overwritten or deleted"), "{e}");
    adapter.delete(&p).await.unwrap();
    assert_eq!(keys(&prefix), Vec::<String>::new());
}

/// Of two `create` writes racing for one path exactly one wins; of two
/// `update`s with the same etag exactly one wins. Losers leave no chunks,
/// and the winner's overwrite unlinks the old version's chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_race_and_clean_up() {
    let prefix = unique("redis-race");
    let adapter = adapter_with(&prefix, "chunk_size = \"64KiB\"").await;
    let p = path("model.onnx");
    let body = |seed: u8| bytes::Bytes::from(vec![seed; 300 << 10]);

    // Both start before either commits: the early check lets both through,
    // the commit script decides.
    let mut a = adapter.write(&p, PutMode::Create, None).await.unwrap();
    let mut b = adapter.write(&p, PutMode::Create, None).await.unwrap();
    a.append(body(1)).await.unwrap();
    b.append(body(2)).await.unwrap();
    let first = a.finish().await.unwrap();
    let e = b.finish().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(chunk_keys(&prefix).len(), 5, "the losing create left chunks");

    let etag = first.etag.unwrap();
    let mut a = adapter.write(&p, PutMode::Update(etag.clone()), None).await.unwrap();
    let mut b = adapter.write(&p, PutMode::Update(etag.clone()), None).await.unwrap();
    a.append(body(3)).await.unwrap();
    b.append(bytes::Bytes::from(vec![4u8; 10])).await.unwrap();
    let second = b.finish().await.unwrap();
    let e = a.finish().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
    assert!(e.to_string().contains(&etag), "{e}");
    // Only the 10-byte winner's single chunk is left.
    let left = chunk_keys(&prefix);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].contains(second.etag.as_deref().unwrap()), "{left:?}");

    // A copy has its own chunks and etag; deleting the source keeps it.
    let copy = adapter.copy(&p, &path("copy.onnx"), PutMode::Create).await.unwrap();
    assert_ne!(copy.etag, second.etag);
    adapter.delete(&p).await.unwrap();
    assert_eq!(read_hash(&*adapter, &path("copy.onnx")).await, {
        use sha2::Digest;
        format!("{:x} 10", sha2::Sha256::digest([4u8; 10]))
    });
    adapter.delete(&path("copy.onnx")).await.unwrap();
    assert_eq!(keys(&prefix), Vec::<String>::new());
}

/// `abort()` and a dropped writer leave no key at all, and a failed
/// `update` at the start sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_writes_leave_no_keys() {
    let prefix = unique("redis-abort");
    let adapter = adapter(&prefix).await;
    let p = path("big.bin");
    let mut w = adapter.write(&p, PutMode::Overwrite, None).await.unwrap();
    let mut data = DataStream::new(1, 40 << 20);
    for _ in 0..3 {
        w.append(data.next_chunk(8 << 20).unwrap()).await.unwrap();
    }
    // Chunks are sent as they fill (the last one may still be in flight).
    assert!(chunk_keys(&prefix).len() >= 2, "{:?}", keys(&prefix));
    w.abort().await.unwrap();
    assert_eq!(keys(&prefix), Vec::<String>::new(), "abort left keys");

    let mut w = adapter.write(&p, PutMode::Overwrite, None).await.unwrap();
    w.append(data.next_chunk(8 << 20).unwrap()).await.unwrap();
    w.append(data.next_chunk(1 << 20).unwrap()).await.unwrap();
    drop(w);
    assert_eq!(
        no_chunks_left(&prefix).await,
        Vec::<String>::new(),
        "a dropped writer left chunks"
    );
    assert_eq!(adapter.stat(&p).await.unwrap_err().kind(), ErrorKind::NotFound);

    let e = match adapter.write(&p, PutMode::Update("nope".into()), None).await {
        Err(e) => e,
        Ok(_) => panic!("update of a missing object started"),
    };
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
    assert_eq!(keys(&prefix), Vec::<String>::new());
}

/// Chunks of an upload that never finishes expire by themselves, and a
/// commit after they expired fails without making anything visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_upload_chunks_expire() {
    let prefix = unique("redis-ttl");
    let adapter = adapter_with(&prefix, "upload_ttl = \"1s\"\nchunk_size = \"64KiB\"").await;
    let p = path("slow.bin");
    let mut w = adapter.write(&p, PutMode::Overwrite, None).await.unwrap();
    w.append(bytes::Bytes::from(vec![9u8; 200 << 10])).await.unwrap();
    let mut con = raw();
    for k in chunk_keys(&prefix) {
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query(&mut con).unwrap();
        assert!((1..=1000).contains(&ttl), "{k} has PTTL {ttl}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let e = w.finish().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Backend, "{e}");
    assert!(e.to_string().contains("upload_ttl"), "{e}");
    assert_eq!(adapter.stat(&p).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(keys(&prefix), Vec::<String>::new());
}

/// A wrong password is `denied`; the message never holds the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_denied() {
    let wrong = "definitely-not-the-password";
    let adapter = host(&addr(), &addr(), wrong, "denied/", "").adapter("r").await.unwrap();
    for e in [
        adapter.stat(&path("x")).await.unwrap_err(),
        adapter.health().await.unwrap_err(),
        adapter.write(&path("x"), PutMode::Overwrite, None).await.err().unwrap(),
    ] {
        assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
        let text = format!("{e} {e:?}");
        assert!(text.contains("AUTH"), "{text}");
        assert!(!text.contains(wrong), "the password leaked: {text}");
        assert!(!text.contains(&password()), "the real password leaked: {text}");
    }
    // No password at all: the server's NOAUTH is `denied` too.
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "[backends.r]\nplugin = \"redis\"\n[backends.r.config]\naddress = \"{a}\"\n[backends.r.grants]\ntcp = [\"{a}\"]\n",
        a = addr()
    );
    let e = wharf_tests::host_from_toml(&toml, dir.path())
        .adapter("r")
        .await
        .unwrap()
        .exists(&path("x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
}

/// An address the backend's grant does not cover is refused by the host,
/// and the message says where to grant it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_not_granted_is_denied() {
    let adapter = host(&addr(), "127.0.0.1:1", &password(), "x/", "")
        .adapter("r")
        .await
        .unwrap();
    let e = adapter.stat(&path("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Denied, "{e}");
    assert!(e.to_string().contains("grants] tcp"), "{e}");
    assert!(e.to_string().contains(&addr()), "{e}");
}

/// A server that is not there is `unreachable` (nothing was sent, so any
/// operation may be retried), naming the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connection_is_unreachable() {
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let adapter = host(&closed, &closed, &password(), "x/", "")
        .adapter("r")
        .await
        .unwrap();
    let e = adapter.exists(&path("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
    assert!(e.to_string().contains(&closed), "{e}");
}

/// Config mistakes are `invalid` and name the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_config_names_the_key() {
    for (address, extra, needle) in [
        (addr(), "chunk_size = \"1KiB\"", "chunk_size"),
        (addr(), "chunk_size = \"lots\"", "chunk_size"),
        (addr(), "colour = \"blue\"", "colour"),
        (addr(), "db = \"zero\"", "db"),
        (addr(), "upload_ttl = \"soon\"", "upload_ttl"),
        (format!("redis://{}", addr()), "", "address"),
        ("127.0.0.1".to_string(), "", "address"),
    ] {
        let e = host(&address, &addr(), &password(), "x/", extra)
            .adapter("r")
            .await
            .err()
            .unwrap_or_else(|| panic!("{address} / {extra} was accepted"));
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    }
    // A database the server does not have: `invalid`, naming `db`.
    let adapter = adapter_with("x/", "db = \"100000\"").await;
    let e = adapter.exists(&path("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e}");
    assert!(e.to_string().contains("`db`"), "{e}");
}

/// `health` PINGs and names the server version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_names_the_version() {
    let text = adapter("health/").await.health().await.unwrap();
    assert!(text.contains("PING"), "{text}");
    let mut con = raw();
    let info: String = redis::cmd("INFO").arg("server").query(&mut con).unwrap();
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(text.contains(&format!("redis {version}")), "{text}");
}

/// What the native client writes in the adapter's layout, the adapter
/// reads; what the adapter writes, the native client reassembles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_client_native_redis() {
    let prefix = unique("redis-cross");
    let adapter = adapter_with(&prefix, "chunk_size = \"1MiB\"").await;
    let p = path("by-wharf/model.bin");
    let (written, meta) = write_stream(&*adapter, &p, (5 << 20) + 77, 3).await;
    let mut con = raw();
    let etag = meta.etag.unwrap();
    let mut hash = sha2::Sha256::new();
    let mut n = 0u64;
    use sha2::Digest;
    for i in 0..6 {
        let part: Vec<u8> = redis::cmd("GET")
            .arg(format!("{prefix}chunk:{etag}:{i}"))
            .query(&mut con)
            .unwrap();
        n += part.len() as u64;
        hash.update(&part);
    }
    assert_eq!(format!("{:x} {n}", hash.finalize()), written);

    // By hand: two chunks of 1 MiB and 5 bytes, a manifest, an index entry.
    let (id, body) = ("0123456789abcdef0123456789abcdef", vec![42u8; (1 << 20) + 5]);
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}chunk:{id}:0"))
        .arg(&body[..1 << 20])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}chunk:{id}:1"))
        .arg(&body[1 << 20..])
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}manifest:by-hand/x.bin"))
        .arg("size")
        .arg(body.len())
        .arg("chunk_size")
        .arg(1u64 << 20)
        .arg("chunks")
        .arg(2)
        .arg("etag")
        .arg(id)
        .arg("modified_ms")
        .arg("1700000000000")
        .query(&mut con)
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg(format!("{prefix}index"))
        .arg(0)
        .arg("by-hand/x.bin")
        .query(&mut con)
        .unwrap();
    let hand = path("by-hand/x.bin");
    let want = format!("{:x} {}", sha2::Sha256::digest(&body), body.len());
    assert_eq!(read_hash(&*adapter, &hand).await, want);
    let page = adapter.list("by-hand/", None, 10).await.unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].etag.as_deref(), Some(id));
    assert_eq!(page.entries[0].modified_ms, Some(1_700_000_000_000));
    for q in [&p, &hand] {
        adapter.delete(q).await.unwrap();
    }
    assert_eq!(keys(&prefix), Vec::<String>::new());
}

/// The connection dies in the middle of a chunk: the write fails as
/// `transient`, nothing is visible, and no chunk stays behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connection_mid_write_leaves_nothing() {
    let (proxy, cut) = cutting_proxy(addr(), 20 << 20).await;
    let prefix = unique("redis-cut");
    let adapter = host(&proxy, &proxy, &password(), &prefix, "")
        .adapter("r")
        .await
        .unwrap();
    let p = path("big.bin");
    let mut w = adapter.write(&p, PutMode::Overwrite, None).await.unwrap();
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
    assert!(e.to_string().contains(&proxy), "{e}");
    assert_eq!(adapter.stat(&p).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(keys(&prefix), Vec::<String>::new(), "the cut upload left keys");
}

/// The connection dies in the middle of a read: `transient`, never a short
/// object passed off as whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_connection_mid_read_is_transient() {
    let prefix = unique("redis-cut-read");
    let direct = adapter(&prefix).await;
    let p = path("big.bin");
    write_stream(&*direct, &p, 48 << 20, 4).await;
    // The adapter sends little when reading: cut on its second GETRANGE.
    let (proxy, cut) = cutting_proxy(addr(), 300).await;
    let via_proxy = host(&proxy, &proxy, &password(), &prefix, "")
        .adapter("r")
        .await
        .unwrap();
    let mut r = via_proxy.read(&p, None).await.unwrap();
    let mut n = 0u64;
    let e = loop {
        match r.next_chunk(1 << 20).await {
            Ok(Some(c)) => n += c.len() as u64,
            Ok(None) => panic!("the read ended after {n} bytes despite the cut"),
            Err(e) => break e,
        }
    };
    assert!(cut.load(Ordering::SeqCst), "the proxy never cut");
    assert!(n < 48 << 20);
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    direct.delete(&p).await.unwrap();
}
