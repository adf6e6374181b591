//! Faults between the `aws_s3` adapter and real S3 servers (moto, s3s-fs),
//! injected by [`FaultProxy`]: connection resets in a request head, in a
//! body and in a response, 5xx bursts, and stalls; each with and without
//! the `Retry` layer.
//!
//! What must hold: a read returns the object's exact bytes or fails; a
//! failed write leaves the previous version exactly (or, when only the
//! answer was lost, the new one exactly), no stray key and no pending
//! multipart upload; a write that finished reads back exactly.
//!
//! Every case gets its own host, so its connection pool is fresh: the
//! case's first request opens the proxy's first connection. Byte offsets
//! count over all connections (see [`FaultProxy`]), so they do not depend
//! on whether the server keeps connections alive (s3s-fs does, moto not).

use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf::conformance::DataStream;
use wharf::layers::{Retry, RetryPolicy, Stack, Timeout};
use wharf::{Adapter, ErrorKind, ObjectMeta, ObjectPath, PutMode};
use wharf_tests::fault_proxy::{Direction, Fault, FaultProxy};
use wharf_tests::{python_client, server_env, unique};

use Direction::{Downstream, Upstream};

struct Server {
    name: &'static str,
    url: String,
    access_key: String,
    secret_key: String,
    /// Whether the server lists pending multipart uploads (s3s-fs does not).
    lists_uploads: bool,
}

fn moto() -> Server {
    Server {
        name: "moto",
        url: server_env("WHARF_TEST_MOTO_URL"),
        access_key: "moto-key".into(),
        secret_key: "moto-secret".into(),
        lists_uploads: true,
    }
}

fn s3s() -> Server {
    Server {
        name: "s3s",
        url: server_env("WHARF_TEST_S3S_URL"),
        access_key: server_env("WHARF_TEST_S3S_ACCESS_KEY"),
        secret_key: server_env("WHARF_TEST_S3S_SECRET_KEY"),
        lists_uploads: false,
    }
}

/// The backend `s3` of a new host, sending to `endpoint` (granted).
async fn s3_at(server: &Server, endpoint: &str, prefix: &str) -> Arc<dyn Adapter> {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[backends.s3]
plugin = "aws_s3"
[backends.s3.config]
endpoint = "{endpoint}"
bucket = "{bucket}"
access_key_id = "{ak}"
secret_access_key = "{sk}"
prefix = "{prefix}"
[backends.s3.grants]
http = ["{endpoint}"]
"#,
        bucket = server_env("WHARF_TEST_BUCKET"),
        ak = server.access_key,
        sk = server.secret_key,
    );
    wharf_tests::host_from_toml(&toml, dir.path())
        .adapter("s3")
        .await
        .unwrap()
}

/// Short waits so the file stays quick; five attempts.
fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(200),
        max_elapsed: Duration::from_secs(30),
    }
}

fn retrying(adapter: Arc<dyn Adapter>) -> Arc<dyn Adapter> {
    Stack::new().layer(Retry::new().with_policy(policy())).apply(adapter)
}

/// A host talking through a new proxy with `plan`; wrapped in `Retry` when asked.
async fn through(server: &Server, prefix: &str, plan: Vec<Fault>, retry: bool) -> (FaultProxy, Arc<dyn Adapter>) {
    let proxy = FaultProxy::start(&server.url, plan).await.unwrap();
    let adapter = s3_at(server, &proxy.url(), prefix).await;
    let adapter = if retry { retrying(adapter) } else { adapter };
    (proxy, adapter)
}

fn path(s: &str) -> ObjectPath {
    ObjectPath::parse(s).unwrap()
}

/// "<sha256> <size>" of the bytes `put` writes for `seed`.
fn digest(seed: u64, size: u64) -> String {
    let mut data = DataStream::new(seed, size);
    let mut hash = Sha256::new();
    while let Some(chunk) = data.next_chunk(1 << 20) {
        hash.update(&chunk);
    }
    format!("{:x} {size}", hash.finalize())
}

/// Writes `size` bytes of `seed` in 1 MiB appends; aborts on a failed append.
async fn put(a: &dyn Adapter, p: &ObjectPath, mode: PutMode, size: u64, seed: u64) -> wharf::Result<ObjectMeta> {
    let mut w = a.write(p, mode, Some(size)).await?;
    let mut data = DataStream::new(seed, size);
    while let Some(chunk) = data.next_chunk(1 << 20) {
        if let Err(e) = w.append(chunk).await {
            let _ = w.abort().await;
            return Err(e);
        }
    }
    w.finish().await
}

/// Reads a whole object: "<sha256> <size>", or the error and how many bytes
/// came before it.
async fn get(a: &dyn Adapter, p: &ObjectPath) -> Result<String, (wharf::Error, u64)> {
    let mut r = a.read(p, None).await.map_err(|e| (e, 0))?;
    let (mut hash, mut size) = (Sha256::new(), 0u64);
    loop {
        match r.next_chunk(1 << 20).await {
            Ok(Some(chunk)) => {
                size += chunk.len() as u64;
                hash.update(&chunk);
            }
            Ok(None) => return Ok(format!("{:x} {size}", hash.finalize())),
            Err(e) => return Err((e, size)),
        }
    }
}

/// What is stored at `p`, read without faults: `None` when absent.
async fn stored(direct: &dyn Adapter, p: &ObjectPath) -> Option<String> {
    match direct.stat(p).await {
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => panic!("stat {p}: {e}"),
        Ok(_) => Some(get(direct, p).await.map_err(|(e, _)| e).unwrap()),
    }
}

/// Every path under the adapter's prefix.
async fn listed(direct: &dyn Adapter) -> BTreeSet<String> {
    let (mut all, mut cursor) = (BTreeSet::new(), None);
    for _ in 0..1000 {
        let page = direct.list("", cursor.as_deref(), 1000).await.unwrap();
        all.extend(page.entries.into_iter().map(|m| m.path));
        cursor = page.next_cursor;
        if cursor.is_none() {
            return all;
        }
    }
    panic!("listing did not end within 1000 pages");
}

/// Pending multipart uploads under `prefix`, as boto3 sees them.
fn pending_uploads(server: &Server, prefix: &str) -> String {
    let env = [
        ("WHARF_S3_ENDPOINT", server.url.clone()),
        ("WHARF_S3_BUCKET", server_env("WHARF_TEST_BUCKET")),
        ("WHARF_S3_ACCESS_KEY", server.access_key.clone()),
        ("WHARF_S3_SECRET_KEY", server.secret_key.clone()),
    ];
    python_client("aws_s3.py", &["uploads", prefix], &env)
}

/// A failure must be `transient` and name the backend, operation and path.
fn assert_clean(e: &wharf::Error, op: &str, p: &ObjectPath, ctx: &str) {
    assert_eq!(e.kind(), ErrorKind::Transient, "{ctx}: {e}");
    assert_eq!(
        (e.backend(), e.operation(), e.path()),
        (Some("s3"), Some(op), Some(p.as_str())),
        "{ctx}: {e}"
    );
}

const READ_SIZE: u64 = (3 << 20) + 5;

/// Reads under one fault each: with `Retry` they return the exact bytes;
/// without it they fail as `transient`, except a connection cut before any
/// answer, where the adapter sends its bodiless GET once more by itself
/// (as HTTP clients do for a pooled connection the server closed).
async fn reads(server: Server) {
    let prefix = unique(&format!("faults-read-{}", server.name));
    let direct = s3_at(&server, &server.url, &prefix).await;
    let p = path("model.bin");
    put(&*direct, &p, PutMode::Overwrite, READ_SIZE, 11).await.unwrap();
    let want = digest(11, READ_SIZE);

    // The size of the stat request that `Retry` sends first, to aim a
    // reset at the head of the GET that follows it on the same connection.
    let probe = FaultProxy::start(&server.url, []).await.unwrap();
    s3_at(&server, &probe.url(), &prefix).await.stat(&p).await.unwrap();
    let stat_request = probe.bytes(Upstream);
    drop(probe);

    let mut cases = vec![
        (
            "reset in the request head",
            Fault::Reset {
                direction: Upstream,
                after: 30,
            },
            false,
        ),
        (
            "reset in the response head",
            Fault::Reset {
                direction: Downstream,
                after: 40,
            },
            false,
        ),
        (
            "reset mid-body",
            Fault::Reset {
                direction: Downstream,
                after: 1 << 20,
            },
            false,
        ),
        ("500", Fault::Respond { status: 500 }, false),
        ("503", Fault::Respond { status: 503 }, false),
    ];
    cases.push((
        "reset in the head of the GET after the stat",
        Fault::Reset {
            direction: Upstream,
            after: stat_request + 30,
        },
        true,
    ));
    for (what, fault, retry_only) in cases {
        // Cut before the answer's head was whole: the adapter resends.
        let resent = what.starts_with("reset in the request head") || what.starts_with("reset in the response head");
        for retry in [false, true] {
            if retry_only && !retry {
                continue;
            }
            let (proxy, a) = through(&server, &prefix, vec![fault.clone()], retry).await;
            let got = get(&*a, &p).await;
            let ctx = format!("{} read, {what}, retry {retry}, {:?}", server.name, proxy.events());
            assert_eq!(proxy.faults(), 1, "{ctx}");
            match got {
                Ok(h) => {
                    assert!(retry || resent, "{ctx}: a read survived a fault without Retry");
                    assert_eq!(h, want, "{ctx}");
                }
                Err((e, delivered)) => {
                    assert!(!retry && !resent, "{ctx}: not recovered: {e}");
                    assert_clean(&e, "read", &p, &ctx);
                    assert!(delivered < READ_SIZE, "{ctx}: all bytes, then {e}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_moto() {
    reads(moto()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_s3s() {
    reads(s3s()).await;
}

const WRITE_SIZE: u64 = (3 << 20) + 7;
const MULTIPART_SIZE: u64 = (20 << 20) + 3;

/// Overwrites under one fault each, over a previous version. Without
/// `Retry` they fail and leave the previous version exactly (or the new one,
/// when only the answer was lost); with it they succeed. A multipart write
/// cut mid-body fails cleanly either way (it is larger than Retry's buffer).
/// Afterwards no stray key and no pending upload is left.
async fn writes(server: Server) {
    let prefix = unique(&format!("faults-write-{}", server.name));
    let direct = s3_at(&server, &server.url, &prefix).await;
    let mut keys = BTreeSet::new();
    let cases = [
        (
            "reset in the request head",
            Fault::Reset {
                direction: Upstream,
                after: 30,
            },
            false,
            WRITE_SIZE,
        ),
        (
            "reset mid-body",
            Fault::Reset {
                direction: Upstream,
                after: 1 << 20,
            },
            false,
            WRITE_SIZE,
        ),
        (
            "reset in the response head",
            Fault::Reset {
                direction: Downstream,
                after: 12,
            },
            true,
            WRITE_SIZE,
        ),
        ("500", Fault::Respond { status: 500 }, false, WRITE_SIZE),
        ("503", Fault::Respond { status: 503 }, false, WRITE_SIZE),
        (
            "multipart cut mid-part",
            Fault::Reset {
                direction: Upstream,
                after: 4 << 20,
            },
            false,
            MULTIPART_SIZE,
        ),
    ];
    for (i, (what, fault, may_land, size)) in cases.into_iter().enumerate() {
        for retry in [false, true] {
            let p = path(&format!("w{i}-{retry}.bin"));
            let (old_seed, new_seed) = (100 + i as u64, 200 + i as u64);
            put(&*direct, &p, PutMode::Overwrite, 1000 + i as u64, old_seed)
                .await
                .unwrap();
            let (old, new) = (digest(old_seed, 1000 + i as u64), digest(new_seed, size));
            keys.insert(p.as_str().to_string());

            let (proxy, a) = through(&server, &prefix, vec![fault.clone()], retry).await;
            let result = put(&*a, &p, PutMode::Overwrite, size, new_seed).await;
            let ctx = format!("{} write, {what}, retry {retry}, {:?}", server.name, proxy.events());
            assert_eq!(proxy.faults(), 1, "{ctx}");
            let now = stored(&*direct, &p).await;
            let multipart = size > 8 << 20;
            match result {
                Ok(meta) => {
                    assert!(retry && !multipart, "{ctx}: the write survived a fault");
                    assert_eq!(meta.size, size, "{ctx}");
                    assert_eq!(now.as_ref(), Some(&new), "{ctx}: an acknowledged write was lost");
                }
                Err(e) => {
                    assert!(!retry || multipart, "{ctx}: Retry did not recover: {e}");
                    assert_clean(&e, "write", &p, &ctx);
                    if may_land && now.as_ref() == Some(&new) {
                        println!("{ctx}: the write landed though its answer was lost");
                    } else {
                        assert_eq!(now.as_ref(), Some(&old), "{ctx}: a failed write changed the object");
                    }
                }
            }
        }
    }
    assert_eq!(listed(&*direct).await, keys, "{}: stray keys", server.name);
    if server.lists_uploads {
        assert_eq!(pending_uploads(&server, &prefix), "0", "{}", server.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_moto() {
    writes(moto()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_s3s() {
    writes(s3s()).await;
}

/// `Create` writes through `Retry`: a 503 is replayed after a stat shows no
/// object; a lost answer is not (the object is there: maybe ours), and the
/// object is then exactly the written bytes.
async fn creates(server: Server) {
    let prefix = unique(&format!("faults-create-{}", server.name));
    let direct = s3_at(&server, &server.url, &prefix).await;
    let size = (2 << 20) + 1;

    let p = path("created-after-503.bin");
    let (proxy, a) = through(&server, &prefix, vec![Fault::Respond { status: 503 }], true).await;
    put(&*a, &p, PutMode::Create, size, 31).await.unwrap();
    assert_eq!(proxy.faults(), 1, "{:?}", proxy.events());
    assert_eq!(stored(&*direct, &p).await, Some(digest(31, size)));

    // The create's first request is a HEAD answered 404; measure that
    // answer to cut the PUT's answer that follows it.
    let p = path("answer-lost.bin");
    let probe = FaultProxy::start(&server.url, []).await.unwrap();
    let e = s3_at(&server, &probe.url(), &prefix).await.stat(&p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let head_404 = probe.bytes(Downstream);
    drop(probe);
    let cut = Fault::Reset {
        direction: Downstream,
        after: head_404 + 12,
    };
    let (proxy, a) = through(&server, &prefix, vec![cut], true).await;
    let e = put(&*a, &p, PutMode::Create, size, 32).await.unwrap_err();
    let ctx = format!("{}: {:?}", server.name, proxy.events());
    assert_clean(&e, "write", &p, &ctx);
    assert!(e.message().contains("not written again"), "{ctx}: {e}");
    assert_eq!(proxy.faults(), 1, "{ctx}");
    assert_eq!(stored(&*direct, &p).await, Some(digest(32, size)), "{ctx}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_moto() {
    creates(moto()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_s3s() {
    creates(s3s()).await;
}

/// A 64 MiB read reset at 32 MiB: without `Retry` it fails; with it, it
/// resumes with a ranged read and the bytes are exact.
async fn big_read(server: Server) {
    let prefix = unique(&format!("faults-big-{}", server.name));
    let direct = s3_at(&server, &server.url, &prefix).await;
    let p = path("big.bin");
    let size = 64 << 20;
    put(&*direct, &p, PutMode::Overwrite, size, 41).await.unwrap();
    let want = digest(41, size);
    let cut = || {
        vec![Fault::Reset {
            direction: Downstream,
            after: 32 << 20,
        }]
    };

    let (proxy, a) = through(&server, &prefix, cut(), false).await;
    let (e, delivered) = get(&*a, &p).await.unwrap_err();
    assert_clean(&e, "read", &p, server.name);
    assert!(delivered < 32 << 20, "{delivered} bytes came before the error");
    assert_eq!(proxy.faults(), 1);

    let (proxy, a) = through(&server, &prefix, cut(), true).await;
    assert_eq!(get(&*a, &p).await.map_err(|(e, _)| e).unwrap(), want);
    assert_eq!(proxy.faults(), 1, "{:?}", proxy.events());
    assert!(proxy.connections() >= 2, "the read was not resumed on a new connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_read_resumes_s3s() {
    big_read(s3s()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_read_resumes_moto() {
    big_read(moto()).await;
}

/// A burst of two 503s is absorbed by `Retry` (and counted by the proxy);
/// a burst longer than the attempts allowed ends in an error that says how
/// many attempts were made and for how long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_503() {
    let server = moto();
    let prefix = unique("faults-burst");
    let direct = s3_at(&server, &server.url, &prefix).await;
    let p = path("burst.bin");
    let size = 1 << 20;
    let burst = |n| vec![Fault::Respond { status: 503 }; n];

    let (proxy, a) = through(&server, &prefix, burst(2), true).await;
    put(&*a, &p, PutMode::Overwrite, size, 51).await.unwrap();
    assert_eq!(proxy.faults(), 2, "{:?}", proxy.events());
    assert_eq!(proxy.connections(), 3, "{:?}", proxy.events());
    assert_eq!(stored(&*direct, &p).await, Some(digest(51, size)));

    let (proxy, a) = through(&server, &prefix, burst(2), true).await;
    assert_eq!(a.stat(&p).await.unwrap().size, size);
    assert_eq!(proxy.faults(), 2);

    let (proxy, a) = through(&server, &prefix, burst(10), true).await;
    let e = a.stat(&p).await.unwrap_err();
    assert_clean(&e, "stat", &p, "burst of 10");
    assert!(e.message().contains("gave up after 5 attempts in"), "{e}");
    assert_eq!(proxy.faults(), 5);

    let (proxy, a) = through(&server, &prefix, burst(1), false).await;
    assert_clean(&a.stat(&p).await.unwrap_err(), "stat", &p, "no Retry");
    assert_eq!(proxy.faults(), 1);
}

/// The other operations through `Retry`: list, delete and an overwriting
/// copy are retried; a `Create` copy is not (it may have happened), except
/// when the storage was `unreachable` (the connection was refused, nothing
/// was sent), which is retried to the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_operations() {
    let server = s3s();
    let prefix = unique("faults-meta");
    let direct = s3_at(&server, &server.url, &prefix).await;
    let (src, dst, gone) = (path("src.bin"), path("dst.bin"), path("gone.bin"));
    put(&*direct, &src, PutMode::Overwrite, 4096, 61).await.unwrap();
    put(&*direct, &gone, PutMode::Overwrite, 10, 62).await.unwrap();
    let reset = Fault::Reset {
        direction: Downstream,
        after: 40,
    };

    let (proxy, a) = through(&server, &prefix, vec![reset.clone()], true).await;
    let page = a.list("", None, 100).await.unwrap();
    assert_eq!(page.entries.len(), 2);
    assert_eq!(proxy.faults(), 1);

    let (proxy, a) = through(&server, &prefix, vec![Fault::Respond { status: 500 }], true).await;
    a.delete(&gone).await.unwrap();
    assert_eq!(proxy.faults(), 1);
    assert_eq!(stored(&*direct, &gone).await, None);

    let (proxy, a) = through(&server, &prefix, vec![Fault::Respond { status: 503 }], true).await;
    a.copy(&src, &dst, PutMode::Overwrite).await.unwrap();
    assert_eq!(proxy.faults(), 1);
    assert_eq!(stored(&*direct, &dst).await, Some(digest(61, 4096)));

    let fresh = path("copy-create.bin");
    let (proxy, a) = through(&server, &prefix, vec![Fault::Respond { status: 503 }], true).await;
    let e = a.copy(&src, &fresh, PutMode::Create).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.message().contains("not retried"), "{e}");
    assert_eq!(
        (proxy.faults(), proxy.connections()),
        (1, 1),
        "a create copy was retried"
    );
    assert_eq!(stored(&*direct, &fresh).await, None);

    // A port nobody listens on: every attempt is refused before sending.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let a = retrying(s3_at(&server, &format!("http://{dead}"), &prefix).await);
    let e = a.copy(&src, &fresh, PutMode::Create).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unreachable, "{e}");
    assert!(e.message().contains("gave up after 5 attempts"), "{e}");
    assert!(e.to_string().contains("copy `src.bin`"), "{e}");
}

/// A stall longer than `Timeout`'s idle limit becomes `transient`; `Retry`
/// outside the timeout resumes the read without waiting the stall out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stall_is_cut_by_timeout_and_retried() {
    let server = s3s();
    let prefix = unique("faults-stall");
    let direct = s3_at(&server, &server.url, &prefix).await;
    let p = path("stalled.bin");
    let size = 8 << 20;
    put(&*direct, &p, PutMode::Overwrite, size, 71).await.unwrap();
    let pause = Duration::from_secs(6);
    let stall = Fault::Stall {
        direction: Downstream,
        after: 2 << 20,
        pause,
    };
    let timeout = Timeout::new()
        .with_operation(Duration::from_secs(20))
        .with_idle(Duration::from_millis(700));

    for retry in [false, true] {
        let proxy = FaultProxy::start(&server.url, [stall.clone()]).await.unwrap();
        let inner = s3_at(&server, &proxy.url(), &prefix).await;
        let stack = if retry {
            Stack::new().layer(Retry::new().with_policy(policy())).layer(timeout)
        } else {
            Stack::new().layer(timeout)
        };
        let a = stack.apply(inner);
        let started = Instant::now();
        let got = get(&*a, &p).await;
        let took = started.elapsed();
        assert_eq!(proxy.faults(), 1, "{:?}", proxy.events());
        assert!(took < pause, "took {took:?}: the stall was waited out");
        match got {
            Ok(h) => {
                assert!(retry, "a stalled read without Retry succeeded");
                assert_eq!(h, digest(71, size));
            }
            Err((e, _)) => {
                assert!(!retry, "Retry did not recover from a stall: {e}");
                assert_clean(&e, "read", &p, "stall");
                assert!(e.message().contains("no answer within"), "{e}");
            }
        }
    }
}

/// A whole sized body sent, then a server slow to answer (longer than the
/// guest's grace for a broken body): once the declared length has gone out
/// the host lets go of the body stream, which is its normal end; the
/// answer is waited for, not taken as a broken connection. (A 1 GiB
/// CompleteMultipartUpload on a loaded machine answers that late.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answer_after_the_whole_body() {
    let server = s3s();
    let prefix = unique("faults-slow-answer");
    let pause = Duration::from_secs(7);
    let stall = Fault::Stall {
        direction: Downstream,
        after: 0,
        pause,
    };
    let (proxy, a) = through(&server, &prefix, vec![stall], false).await;
    let p = path("slow.bin");
    let size = 3 << 20;
    let started = Instant::now();
    let meta = put(&*a, &p, PutMode::Overwrite, size, 83).await;
    let took = started.elapsed();
    assert_eq!(proxy.faults(), 1, "{:?}", proxy.events());
    let meta = meta.unwrap_or_else(|e| panic!("a slow answer failed the write after {took:?}: {e}"));
    assert_eq!(meta.size, size);
    assert!(took >= pause, "took {took:?}: the stall did not hold the answer");
    let direct = s3_at(&server, &server.url, &prefix).await;
    assert_eq!(stored(&*direct, &p).await, Some(digest(83, size)));
}

/// An object replaced while a read is under way: when the read fails and
/// `Retry` resumes it, the version check stops it with
/// `precondition-failed`; every byte delivered before is the old version's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_object_is_not_resumed() {
    let server = s3s();
    let prefix = unique("faults-replaced");
    let direct = s3_at(&server, &server.url, &prefix).await;
    let p = path("replaced.bin");
    let size = 4 << 20;
    put(&*direct, &p, PutMode::Overwrite, size, 81).await.unwrap();
    let cut = Fault::Reset {
        direction: Downstream,
        after: 2 << 20,
    };
    let (proxy, a) = through(&server, &prefix, vec![cut], true).await;
    let mut r = a.read(&p, None).await.unwrap();
    let mut got = r.next_chunk(64 << 10).await.unwrap().unwrap().to_vec();
    // The reset comes after the bytes already on their way; the resume
    // (and its version check) only after the test has read those.
    put(&*direct, &p, PutMode::Overwrite, size, 82).await.unwrap();
    let e = loop {
        match r.next_chunk(1 << 20).await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => panic!("the read ended normally after the object was replaced"),
            Err(e) => break e,
        }
    };
    assert_eq!(proxy.faults(), 1, "{:?}", proxy.events());
    assert_eq!(e.kind(), ErrorKind::PreconditionFailed, "{e}");
    assert!(e.message().contains("changed while it was read"), "{e}");
    let mut old = Vec::new();
    let mut data = DataStream::new(81, size);
    while let Some(chunk) = data.next_chunk(1 << 20) {
        old.extend_from_slice(&chunk);
    }
    assert!(got.len() < old.len(), "{} bytes", got.len());
    assert!(old.starts_with(&got), "bytes of the new version were mixed in");
}

/// `AbortMultipartUpload` answered 500 or 503 (S3 may, and an abort that
/// races a part upload in flight may fail) is tried again by the adapter
/// itself: two bad answers are absorbed, three end in a transient error
/// that leaves the upload listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_pending_tries_again() {
    let server = moto();
    let prefix = unique("faults-abort");
    let direct = s3_at(&server, &server.url, &prefix).await;
    let p = path("pending.bin");
    let mut w = direct.write(&p, PutMode::Overwrite, None).await.unwrap();
    let mut data = DataStream::new(6, 16 << 20);
    for _ in 0..2 {
        w.append(data.next_chunk(8 << 20).unwrap()).await.unwrap();
    }
    // A host killed mid-write: neither finished nor aborted.
    std::mem::forget(w);
    let listed = direct.list_pending("", None, 100).await.unwrap().entries;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let upload = &listed[0];

    let bad = |statuses: &[u16]| statuses.iter().map(|&status| Fault::Respond { status }).collect();
    let (proxy, a) = through(&server, &prefix, bad(&[500, 503, 500]), false).await;
    let e = a.abort_pending(upload).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains("pending.bin"), "{e}");
    assert_eq!(proxy.faults(), 3, "{:?}", proxy.events());
    assert_eq!(pending_uploads(&server, &prefix), "1");

    let (proxy, a) = through(&server, &prefix, bad(&[500, 503]), false).await;
    a.abort_pending(upload).await.unwrap();
    assert_eq!(proxy.faults(), 2, "{:?}", proxy.events());
    assert_eq!(pending_uploads(&server, &prefix), "0");
}
