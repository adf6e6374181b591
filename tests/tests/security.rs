//! The sandbox holds against an adapter that misbehaves on purpose: I/O it
//! was not granted is refused, runaway CPU and memory are cut off, traps and
//! malformed answers fail only the call that hit them, and the host keeps
//! serving afterwards.
//!
//! The adapter is the `misbehave` fixture (tests/fixtures/misbehave), whose
//! `stat(path)` misbehaves according to `path`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wharf::capabilities::{AllowedHost, DirGrant, Grants, Redactor, TcpGrant};
use wharf::plugins::PluginSet;
use wharf::{
    Adapter, BackendSpec, ErrorKind, Limits, ObjectPath, Plugin, PutMode, Runtime, RuntimeConfig, WasmAdapter,
};
use wharf_tests::fixtures::MISBEHAVE;

/// A runtime with the fixture and the built-in `local_filesystem` loaded,
/// and a granted directory holding one file inside and symlinks pointing
/// out of it.
struct Fixture {
    runtime: Runtime,
    misbehave: Plugin,
    local: Plugin,
    /// Granted to the fixture at `/data`.
    data: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let runtime = Runtime::new(RuntimeConfig {
            cache_dir: Some(wharf_tests::cache_dir()),
            ..Default::default()
        })
        .expect("runtime builds");
        let wasm = std::fs::read(MISBEHAVE).unwrap_or_else(|e| panic!("reading {MISBEHAVE}: {e}"));
        let misbehave = runtime
            .load_plugin("misbehave", &wasm, MISBEHAVE)
            .expect("the misbehave fixture loads");
        let local = PluginSet::builtin()
            .load(&runtime, "local_filesystem", None)
            .expect("the built-in local_filesystem loads");
        let data = tempfile::tempdir().unwrap();
        std::fs::write(data.path().join("inside.txt"), b"inside the grant").unwrap();
        std::os::unix::fs::symlink("/etc", data.path().join("escape-dir")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", data.path().join("escape-file")).unwrap();
        Fixture {
            runtime,
            misbehave,
            local,
            data,
        }
    }

    fn limits() -> Limits {
        Limits {
            memory: 64 << 20,
            cpu_time: Duration::from_secs(1),
            call_timeout: Duration::from_secs(5),
        }
    }

    /// The fixture as backend `misbehave`, with `/data` granted plus `http`
    /// and `tcp`.
    async fn adapter_with(
        &self,
        config: &[(&str, &str)],
        http: Vec<AllowedHost>,
        tcp: TcpGrant,
        limits: Limits,
    ) -> WasmAdapter {
        let spec = BackendSpec {
            name: "misbehave".into(),
            config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            grants: Grants {
                dirs: vec![DirGrant::new(self.data.path(), "/data")],
                http,
                tcp,
            },
            limits,
            secrets: Redactor::new(&secrets_of(config)),
            pool: Default::default(),
            credentials: None,
        };
        WasmAdapter::new(&self.runtime, &self.misbehave, spec)
            .await
            .expect("the misbehave backend opens")
    }

    /// The fixture with only `/data` granted.
    async fn adapter(&self, config: &[(&str, &str)]) -> WasmAdapter {
        self.adapter_with(config, Vec::new(), TcpGrant::default(), Self::limits())
            .await
    }

    /// After a failure: the same backend still answers, and so does the
    /// built-in adapter, on this runtime and in a host of its own.
    async fn assert_still_serving(&self, adapter: &WasmAdapter) {
        let meta = adapter
            .stat(&path("ok"))
            .await
            .unwrap_or_else(|e| panic!("after the failure, `stat ok` on the same backend failed: {e}"));
        assert_eq!((meta.path.as_str(), meta.size), ("ok", 42));

        let dir = tempfile::tempdir().unwrap();
        let local = WasmAdapter::new(&self.runtime, &self.local, local_spec(dir.path()))
            .await
            .expect("local_filesystem opens on the same runtime");
        roundtrip(&local).await;

        let dir = tempfile::tempdir().unwrap();
        let host = wharf_tests::local_host(dir.path());
        let local = host.adapter("local_filesystem").await.expect("local_filesystem opens");
        roundtrip(&*local).await;
    }
}

/// The config values the tests treat as resolved secrets (`secret`).
fn secrets_of(config: &[(&str, &str)]) -> Vec<String> {
    config
        .iter()
        .filter(|(k, _)| *k == "secret")
        .map(|(_, v)| v.to_string())
        .collect()
}

/// The built-in `local_filesystem` backend storing in `dir`.
fn local_spec(dir: &Path) -> BackendSpec {
    BackendSpec {
        name: "local_filesystem".into(),
        config: vec![("root".into(), "/data".into())],
        grants: Grants {
            dirs: vec![DirGrant::new(dir, "/data")],
            ..Default::default()
        },
        limits: Limits::default(),
        secrets: Redactor::default(),
        pool: Default::default(),
        credentials: None,
    }
}

fn path(s: &str) -> ObjectPath {
    ObjectPath::parse(s).unwrap()
}

/// Writes an object and reads it back.
async fn roundtrip(adapter: &dyn Adapter) {
    let p = path("check/roundtrip.bin");
    let mut w = adapter.write(&p, PutMode::Overwrite, Some(5)).await.unwrap();
    w.append(bytes::Bytes::from_static(b"hello")).await.unwrap();
    assert_eq!(w.finish().await.unwrap().size, 5);
    let mut r = adapter.read(&p, None).await.unwrap();
    let mut got = Vec::new();
    while let Some(chunk) = r.next_chunk(1 << 16).await.unwrap() {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, b"hello", "{} still reads back what it wrote", adapter.name());
}

/// `stat(case)`, which must fail.
async fn stat_fails(adapter: &WasmAdapter, case: &str) -> wharf::Error {
    match adapter.stat(&path(case)).await {
        Ok(meta) => panic!("`stat {case}` succeeded, the misbehaviour was not stopped: {meta:?}"),
        Err(e) => {
            println!("{case}: {e}");
            e
        }
    }
}

fn assert_kind(e: &wharf::Error, kind: ErrorKind, needle: &str) {
    assert_eq!(e.kind(), kind, "{e}");
    assert!(e.to_string().contains(needle), "`{e}` should say `{needle}`");
    assert_eq!(e.backend(), Some("misbehave"), "{e}");
}

/// A TCP listener on 127.0.0.1 that counts connections and answers every
/// HTTP/1.1 request on them with `200 ok`, keeping connections open.
/// Bounded; stops when dropped.
struct Responder {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Responder {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts them all.
            let mut served = tokio::task::JoinSet::new();
            for _ in 0..16 {
                let Ok((socket, _)) = listener.accept().await else {
                    break;
                };
                c.fetch_add(1, Ordering::SeqCst);
                served.spawn(serve(socket, r.clone()));
            }
            while served.join_next().await.is_some() {}
        });
        Responder {
            port,
            connections,
            requests,
            task,
        }
    }

    /// Connections accepted so far, after letting pending accepts happen.
    async fn connections(&self) -> usize {
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut socket: TcpStream, requests: Arc<AtomicUsize>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..64 {
        // Read one request head (a GET has no body).
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if buf.len() > 64 << 10 {
                return;
            }
        };
        buf.drain(..head_end);
        requests.fetch_add(1, Ordering::SeqCst);
        if socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .is_err()
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_outside_granted_dir_is_denied() {
    let fx = Fixture::new();
    let adapter = fx.adapter(&[]).await;
    let e = stat_fails(&adapter, "escape-fs").await;
    assert_kind(&e, ErrorKind::Denied, "refused");
    for tried in [
        "/etc/passwd",
        "/data/../../etc/passwd",
        "../x",
        "/data/escape-dir/passwd",
        "/data/escape-file",
        "list `/`",
    ] {
        assert!(e.to_string().contains(tried), "`{e}` should report `{tried}`");
    }
    fx.assert_still_serving(&adapter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_host_not_granted_is_denied() {
    let fx = Fixture::new();
    let server = Responder::start().await;
    let target = format!("http://127.0.0.1:{}/", server.port);
    let config = [("target", target.as_str())];

    // Nothing granted.
    let adapter = fx.adapter(&config).await;
    let e = stat_fails(&adapter, "http-denied").await;
    assert_kind(&e, ErrorKind::Denied, "HttpRequestDenied");
    fx.assert_still_serving(&adapter).await;

    // Granted: the same host on another port, and the same port over https.
    let others = vec![
        AllowedHost::parse(&format!("http://127.0.0.1:{}", server.port.wrapping_add(1))).unwrap(),
        AllowedHost::parse(&format!("https://127.0.0.1:{}", server.port)).unwrap(),
        AllowedHost::parse("http://localhost:*").unwrap(),
    ];
    let adapter = fx
        .adapter_with(&config, others, TcpGrant::default(), Fixture::limits())
        .await;
    let e = stat_fails(&adapter, "http-denied").await;
    assert_kind(&e, ErrorKind::Denied, "HttpRequestDenied");
    fx.assert_still_serving(&adapter).await;

    assert_eq!(
        server.connections().await,
        0,
        "a denied request must not reach the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_granted_host_is_allowed_and_reuses_the_connection() {
    let fx = Fixture::new();
    let server = Responder::start().await;
    let target = format!("http://127.0.0.1:{}/", server.port);
    let allowed = AllowedHost::parse(&format!("http://127.0.0.1:{}", server.port)).unwrap();
    let adapter = fx
        .adapter_with(
            &[("target", target.as_str())],
            vec![allowed],
            TcpGrant::default(),
            Fixture::limits(),
        )
        .await;
    for round in 1..=2 {
        let meta = adapter
            .stat(&path("http-allowed"))
            .await
            .unwrap_or_else(|e| panic!("request {round} to a granted host failed: {e}"));
        assert_eq!(meta.size, 200, "request {round}");
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    let connections = server.connections().await;
    println!("TCP connections for 2 requests: {connections}");
    assert_eq!(
        connections, 1,
        "two requests through the host's pooled client should share one connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_to_address_not_granted_is_denied() {
    let fx = Fixture::new();
    let server = Responder::start().await;
    let target = format!("127.0.0.1:{}", server.port);
    let config = [("target", target.as_str())];

    // No TCP grant at all.
    let adapter = fx.adapter(&config).await;
    let e = stat_fails(&adapter, "tcp-denied").await;
    assert_kind(&e, ErrorKind::Denied, &target);
    fx.assert_still_serving(&adapter).await;

    // TCP granted, but to another address.
    let other = TcpGrant::resolve(&[format!("127.0.0.1:{}", server.port.wrapping_add(1))]).unwrap();
    let adapter = fx.adapter_with(&config, Vec::new(), other, Fixture::limits()).await;
    let e = stat_fails(&adapter, "tcp-denied").await;
    assert_kind(&e, ErrorKind::Denied, &target);
    fx.assert_still_serving(&adapter).await;

    assert_eq!(
        server.connections().await,
        0,
        "a denied connect must not reach the server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_listen_is_denied() {
    let fx = Fixture::new();

    // No TCP grant at all.
    let adapter = fx.adapter(&[]).await;
    let e = stat_fails(&adapter, "tcp-listen").await;
    assert_kind(&e, ErrorKind::Denied, "listen on 127.0.0.1:0");
    assert_kind(&e, ErrorKind::Denied, "listen on 0.0.0.0:0");
    fx.assert_still_serving(&adapter).await;

    // A TCP grant to connect somewhere does not let it listen.
    let grant = TcpGrant::resolve(&["127.0.0.1:9".to_string()]).unwrap();
    let adapter = fx.adapter_with(&[], Vec::new(), grant, Fixture::limits()).await;
    let e = stat_fails(&adapter, "tcp-listen").await;
    assert_kind(&e, ErrorKind::Denied, "listen on 127.0.0.1:0");
    assert_kind(&e, ErrorKind::Denied, "listen on 0.0.0.0:0");
    fx.assert_still_serving(&adapter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_hits_cpu_limit() {
    let fx = Fixture::new();
    let adapter = fx.adapter(&[]).await;
    let started = std::time::Instant::now();
    let e = stat_fails(&adapter, "loop").await;
    assert_kind(&e, ErrorKind::Adapter, "CPU time limit");
    assert!(
        started.elapsed() < Fixture::limits().call_timeout,
        "the CPU limit, not the call timeout, must stop it ({:?})",
        started.elapsed()
    );
    fx.assert_still_serving(&adapter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_past_call_timeout_is_cut_off() {
    let fx = Fixture::new();
    let limits = Limits {
        call_timeout: Duration::from_secs(2),
        ..Fixture::limits()
    };
    let adapter = fx.adapter_with(&[], Vec::new(), TcpGrant::default(), limits).await;
    let started = std::time::Instant::now();
    let e = stat_fails(&adapter, "sleep").await;
    assert_kind(&e, ErrorKind::Adapter, "call timeout");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    fx.assert_still_serving(&adapter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_memory_limit() {
    let fx = Fixture::new();
    let adapter = fx.adapter(&[]).await;
    let e = stat_fails(&adapter, "alloc").await;
    // wasmtime 48's StoreLimits reports this as `forcing trap when growing
    // memory to N bytes`; the host must name it a memory limit.
    assert_kind(&e, ErrorKind::Adapter, "memory limit");
    fx.assert_still_serving(&adapter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_fails_only_that_call() {
    let fx = Fixture::new();
    let adapter = fx.adapter(&[]).await;
    let e = stat_fails(&adapter, "trap").await;
    assert_kind(&e, ErrorKind::Adapter, "trapped");
    assert_kind(&e, ErrorKind::Adapter, "wasm `unreachable` instruction executed");
    fx.assert_still_serving(&adapter).await;

    // A panic aborts, which traps the same way; what the guest printed to
    // stderr before (here the panic message) is quoted, so the error says
    // why.
    let e = stat_fails(&adapter, "panic").await;
    assert_kind(&e, ErrorKind::Adapter, "trapped");
    assert_kind(&e, ErrorKind::Adapter, "its last stderr lines:");
    assert_kind(&e, ErrorKind::Adapter, "misbehave: deliberate panic");
    fx.assert_still_serving(&adapter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_read_chunk_is_rejected() {
    let fx = Fixture::new();
    let adapter = fx.adapter(&[]).await;
    let mut reader = adapter.read(&path("blob"), None).await.expect("read starts");
    let e = match reader.next_chunk(1024).await {
        Ok(chunk) => panic!("an oversized chunk was accepted: {:?} bytes", chunk.map(|c| c.len())),
        Err(e) => e,
    };
    println!("oversized chunk: {e}");
    assert_kind(&e, ErrorKind::Adapter, "returned 1001024 bytes when at most 1024");
    // The reader is finished after a broken answer.
    assert!(matches!(reader.next_chunk(1024).await, Ok(None)));
    fx.assert_still_serving(&adapter).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_list_page_is_rejected() {
    let fx = Fixture::new();
    let adapter = fx.adapter(&[]).await;
    let e = adapter
        .list("huge", None, 10)
        .await
        .expect_err("a page longer than the limit must be rejected");
    println!("oversized page: {e}");
    assert_kind(&e, ErrorKind::Adapter, "returned 15 entries for a page of at most 10");

    let e = adapter
        .list("unsorted", None, 10)
        .await
        .expect_err("an unsorted page must be rejected");
    println!("unsorted page: {e}");
    assert_kind(&e, ErrorKind::Adapter, "unsorted");
    fx.assert_still_serving(&adapter).await;
}

/// Loads `bytes` from a file named `name`; the error it fails with.
fn load_fails(runtime: &Runtime, dir: &Path, name: &str, bytes: &[u8]) -> wharf::Error {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    let origin = file.display().to_string();
    let e = runtime
        .load_plugin("bad", &std::fs::read(&file).unwrap(), &origin)
        .expect_err("a file that is no adapter must be refused");
    println!("{name}: {e}");
    assert_eq!(e.kind(), ErrorKind::Config, "{e}");
    assert!(e.to_string().contains(&origin), "`{e}` should name the file {origin}");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_something_that_is_not_an_adapter_is_refused() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();

    let e = load_fails(&fx.runtime, dir.path(), "core.wasm", b"\0asm\x01\0\0\0");
    assert!(
        e.to_string().contains("core WebAssembly module, not a component"),
        "{e}"
    );

    let e = load_fails(&fx.runtime, dir.path(), "garbage.wasm", b"this is not wasm at all");
    assert!(e.to_string().contains("not a WebAssembly component"), "{e}");

    let e = load_fails(&fx.runtime, dir.path(), "empty.wasm", b"");
    assert!(e.to_string().contains("not a WebAssembly component"), "{e}");

    // A valid header with the rest cut off.
    let whole = std::fs::read(MISBEHAVE).unwrap();
    let e = load_fails(&fx.runtime, dir.path(), "truncated.wasm", &whole[..whole.len() / 2]);
    assert!(e.to_string().contains("failed to parse WebAssembly"), "{e}");

    // The smallest valid component: it exports nothing.
    let e = load_fails(&fx.runtime, dir.path(), "exports-nothing.wasm", b"\0asm\x0d\0\x01\0");
    assert!(
        e.to_string()
            .contains("does not export `wharf:storage/adapter@0.2.0` (it exports: nothing)"),
        "{e}"
    );

    // The runtime is unharmed.
    let adapter = fx.adapter(&[]).await;
    fx.assert_still_serving(&adapter).await;
}

/// A guest with a TCP grant may look up only the names of its grants: a
/// lookup of any other name would carry data out through DNS queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_lookups_are_limited_to_granted_hosts() {
    let fx = Fixture::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Granted by address: no name may be looked up, not even `localhost`.
    let by_ip = TcpGrant::resolve(&[format!("127.0.0.1:{port}")]).unwrap();
    for name in ["localhost", "secret-data.example.com"] {
        let a = fx
            .adapter_with(&[("target", name)], Vec::new(), by_ip.clone(), Fixture::limits())
            .await;
        let e = stat_fails(&a, "dns").await;
        assert_kind(&e, ErrorKind::Denied, "access-denied");
        fx.assert_still_serving(&a).await;
    }
    // The address itself resolves to itself.
    let a = fx
        .adapter_with(&[("target", "127.0.0.1")], Vec::new(), by_ip, Fixture::limits())
        .await;
    assert_eq!(a.stat(&path("dns")).await.unwrap().size, 1);
    // Granted by name: that name resolves, others still do not.
    let by_name = TcpGrant::resolve(&[format!("localhost:{port}")]).unwrap();
    let a = fx
        .adapter_with(
            &[("target", "localhost")],
            Vec::new(),
            by_name.clone(),
            Fixture::limits(),
        )
        .await;
    assert!(a.stat(&path("dns")).await.unwrap().size >= 1);
    let a = fx
        .adapter_with(
            &[("target", "localhost.example.com")],
            Vec::new(),
            by_name,
            Fixture::limits(),
        )
        .await;
    assert_kind(&stat_fails(&a, "dns").await, ErrorKind::Denied, "access-denied");
}

/// What an adapter writes into its errors and its log passes through the
/// redactor before it leaves the host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_echoed_by_an_adapter_are_redacted() {
    let fx = Fixture::new();
    let a = fx
        .adapter(&[("secret", "hunter2-very-secret\nsecond-line-secret")])
        .await;
    let e = stat_fails(&a, "echo-secret").await;
    let text = e.to_string();
    assert!(!text.contains("hunter2") && !text.contains("second-line"), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
}

/// A full instance pool makes an operation wait for a free instance (up to
/// `instance_wait`), then fail with a clear error, not at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_instance_pool_waits_then_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(wharf_tests::cache_dir()),
        max_instances: 2,
        instance_wait: Duration::from_millis(800),
        ..Default::default()
    })
    .unwrap();
    let local = PluginSet::builtin().load(&runtime, "local_filesystem", None).unwrap();
    let adapter = WasmAdapter::new(&runtime, &local, local_spec(dir.path()))
        .await
        .unwrap();
    let adapter = Arc::new(adapter);
    roundtrip(&*adapter).await;
    // Two open readers hold both instances.
    let p = path("check/roundtrip.bin");
    let r1 = adapter.read(&p, None).await.unwrap();
    let r2 = adapter.read(&p, None).await.unwrap();
    let start = std::time::Instant::now();
    let e = adapter.stat(&p).await.expect_err("no instance is free");
    assert!(
        start.elapsed() >= Duration::from_millis(700),
        "it waited: {:?}",
        start.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains("max_instances"), "{e}");
    // A reader released while an operation waits lets it through.
    let waiting = tokio::spawn({
        let adapter = adapter.clone();
        async move { adapter.stat(&path("check/roundtrip.bin")).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(r1);
    assert_eq!(waiting.await.unwrap().unwrap().size, 5);
    drop(r2);
}
