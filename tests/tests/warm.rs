//! Warm instances (`wharf:storage/reuse`): an idle opened backend serves the
//! next operation of the same backend; what broke, hit a limit, answered
//! strangely, served its uses or sat idle too long is dropped; a backend's
//! instances never serve another; the wait for an instance is bounded; the
//! host-wide memory budget holds; and a restarted redis-server or
//! PostgreSQL costs no failed operation.
//!
//! The `misbehave` fixture's `stat("count")` answers how many `stat` calls
//! its backend resource has served, so a test sees whether it got the same
//! instance (the count goes on) or a fresh one (the count is 1).

use bytes::Bytes;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use wharf::capabilities::{DirGrant, Grants, Redactor, TcpGrant};
use wharf::plugins::PluginSet;
use wharf::{
    Adapter, BackendSpec, ErrorKind, Limits, ObjectPath, Plugin, PoolConfig, PutMode, Runtime, RuntimeConfig,
    WasmAdapter,
};
use wharf_tests::fixtures::{LEGACY, MISBEHAVE};

fn runtime_with(max_instances: u32, memory_budget: usize) -> Runtime {
    Runtime::new(RuntimeConfig {
        cache_dir: Some(wharf_tests::cache_dir()),
        max_instances,
        memory_budget,
        ..Default::default()
    })
    .expect("runtime builds")
}

fn runtime() -> Runtime {
    runtime_with(64, 4 << 30)
}

fn fixture(runtime: &Runtime, file: &str, name: &str) -> Plugin {
    let wasm = std::fs::read(file).unwrap_or_else(|e| panic!("reading {file}: {e}"));
    runtime.load_plugin(name, &wasm, file).expect("the fixture loads")
}

fn path(p: &str) -> ObjectPath {
    ObjectPath::parse(p).unwrap()
}

fn spec(name: &str, config: &[(&str, &str)], limits: Limits, pool: PoolConfig) -> BackendSpec {
    BackendSpec {
        name: name.into(),
        config: config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        grants: Grants::default(),
        limits,
        secrets: Redactor::default(),
        pool,
        credentials: None,
    }
}

fn short_limits() -> Limits {
    Limits {
        memory: 64 << 20,
        cpu_time: Duration::from_millis(500),
        call_timeout: Duration::from_secs(1),
    }
}

async fn misbehave(runtime: &Runtime, pool: PoolConfig) -> WasmAdapter {
    let plugin = fixture(runtime, MISBEHAVE, "misbehave");
    assert!(plugin.is_reusable(), "the fixture exports wharf:storage/reuse");
    WasmAdapter::new(runtime, &plugin, spec("misbehave", &[], short_limits(), pool))
        .await
        .expect("the misbehave backend opens")
}

/// The `stat` calls served by the instance this operation got.
async fn count(a: &WasmAdapter) -> u64 {
    a.stat(&path("count")).await.expect("stat count").size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_instance_serves_the_next_operation() {
    let runtime = runtime();
    let a = misbehave(&runtime, PoolConfig::default()).await;
    for want in 1..=5 {
        assert_eq!(count(&a).await, want, "the same instance, one call more each time");
    }
    let s = a.pool_stats();
    assert_eq!((s.created, s.reused, s.idle), (1, 5, 1), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_instances_are_dropped_and_answers_about_objects_keep_them() {
    let runtime = runtime();
    let a = misbehave(&runtime, PoolConfig::default()).await;
    // Each of these leaves a fresh instance for the next operation.
    for (case, kind) in [
        ("trap", ErrorKind::Adapter),
        ("panic", ErrorKind::Adapter),
        ("loop", ErrorKind::Adapter),  // CPU time limit
        ("alloc", ErrorKind::Adapter), // memory limit
        ("sleep", ErrorKind::Adapter), // call timeout
        ("transient", ErrorKind::Transient),
        ("echo-secret", ErrorKind::Backend),
    ] {
        assert_eq!(count(&a).await, 1, "before `{case}`: a fresh instance");
        assert_eq!(count(&a).await, 2, "before `{case}`: reused");
        let e = a.stat(&path(case)).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{case}: {e}");
        assert_eq!(count(&a).await, 1, "after `{case}` the instance was dropped");
        // Start the next case from a fresh instance again.
        a.stat(&path("trap")).await.unwrap_err();
    }
    // An answer the host rejects (more entries than asked for) drops it too.
    assert_eq!(count(&a).await, 1);
    let e = a.list("huge", None, 10).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Adapter, "{e}");
    assert_eq!(count(&a).await, 1, "after a rejected page the instance was dropped");
    // `not-found` is an answer about the object: the instance stays.
    assert_eq!(
        a.stat(&path("not-found")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(count(&a).await, 3, "kept after not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_idle_timeout_and_idle_zero_bound_reuse() {
    let runtime = runtime();
    let a = misbehave(
        &runtime,
        PoolConfig {
            uses: 3,
            ..Default::default()
        },
    )
    .await;
    let seen: Vec<u64> = futures_seq(&a, 7).await;
    assert_eq!(
        seen,
        vec![1, 2, 3, 1, 2, 3, 1],
        "an instance serves 3 operations, then a fresh one"
    );

    let a = misbehave(
        &runtime,
        PoolConfig {
            idle_timeout: Duration::from_millis(200),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(count(&a).await, 1);
    assert_eq!(count(&a).await, 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(count(&a).await, 1, "idle past its timeout: dropped");
    assert!(a.pool_stats().discarded >= 1);

    let a = misbehave(
        &runtime,
        PoolConfig {
            idle: 0,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        futures_seq(&a, 3).await,
        vec![1, 1, 1],
        "idle = 0: a fresh instance every time"
    );
}

async fn futures_seq(a: &WasmAdapter, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(count(a).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_without_reuse_gets_a_fresh_instance_every_time() {
    let runtime = runtime();
    let plugin = fixture(&runtime, LEGACY, "legacy");
    assert!(!plugin.is_reusable());
    let a = WasmAdapter::new(
        &runtime,
        &plugin,
        spec("legacy", &[], Limits::default(), PoolConfig::default()),
    )
    .await
    .unwrap();
    for _ in 0..4 {
        a.health().await.unwrap();
    }
    let s = a.pool_stats();
    assert_eq!((s.created, s.reused, s.idle), (5, 0, 0), "{s:?}");
}

/// The built-in `local_filesystem` storing in `dir`.
async fn local(runtime: &Runtime, name: &str, dir: &Path, pool: PoolConfig) -> WasmAdapter {
    let plugin = PluginSet::builtin().load(runtime, "local_filesystem", None).unwrap();
    let mut s = spec(name, &[("root", "/data")], Limits::default(), pool);
    s.grants.dirs = vec![DirGrant::new(dir, "/data")];
    WasmAdapter::new(runtime, &plugin, s).await.unwrap()
}

async fn put(a: &dyn Adapter, p: &ObjectPath, data: &[u8]) {
    let mut w = a.write(p, PutMode::Overwrite, Some(data.len() as u64)).await.unwrap();
    w.append(Bytes::copy_from_slice(data)).await.unwrap();
    w.finish().await.unwrap();
}

async fn get(a: &dyn Adapter, p: &ObjectPath) -> Vec<u8> {
    let mut r = a.read(p, None).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = r.next_chunk(1 << 20).await.unwrap() {
        out.extend_from_slice(&c);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_never_serve_another_backend() {
    let runtime = runtime();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let one = local(&runtime, "one", d1.path(), PoolConfig::default()).await;
    let two = local(&runtime, "two", d2.path(), PoolConfig::default()).await;
    let p = path("same/key.bin");
    for i in 0..50u32 {
        put(&one, &p, format!("one {i}").as_bytes()).await;
        put(&two, &p, format!("two {i}").as_bytes()).await;
        assert_eq!(get(&one, &p).await, format!("one {i}").as_bytes());
        assert_eq!(get(&two, &p).await, format!("two {i}").as_bytes());
    }
    assert_eq!(std::fs::read(d1.path().join("same/key.bin")).unwrap(), b"one 49");
    assert_eq!(std::fs::read(d2.path().join("same/key.bin")).unwrap(), b"two 49");
    // 100 operations each, all on the instance that opened the backend.
    for a in [&one, &two] {
        let s = a.pool_stats();
        assert!(s.created == 1 && s.reused == 100, "{s:?}");
    }
    // Two backends of one plugin with different configs keep their own.
    let m1 = misbehave(&runtime, PoolConfig::default()).await;
    let m2 = misbehave(&runtime, PoolConfig::default()).await;
    assert_eq!((count(&m1).await, count(&m1).await, count(&m2).await), (1, 2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_for_an_instance_is_bounded_and_idle_ones_make_room() {
    // Two instances in all.
    let runtime = runtime_with(2, 4 << 30);
    let dir = tempfile::tempdir().unwrap();
    let wait = PoolConfig {
        wait: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let a = local(&runtime, "a", dir.path(), wait.clone()).await;
    let p = path("x.bin");
    put(&a, &p, &[7u8; 100]).await;
    // Two open readers hold both instances.
    let r1 = a.read(&p, None).await.unwrap();
    let r2 = a.read(&p, None).await.unwrap();
    let start = Instant::now();
    let e = a.stat(&p).await.unwrap_err();
    let waited = start.elapsed();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains("stayed in use"), "{e}");
    assert!(waited >= Duration::from_millis(250), "it waited ({waited:?})");
    // One reader ends: the next operation gets its instance.
    drop(r1);
    a.stat(&p).await.expect("a slot was free again");
    drop(r2);

    // Idle instances of another backend are dropped to make room, with no wait.
    let b = local(&runtime, "b", dir.path(), wait).await;
    b.stat(&p).await.unwrap();
    assert!(a.pool_stats().idle + b.pool_stats().idle <= 2);
    let _h1 = a.read(&p, None).await.unwrap();
    let _h2 = a.read(&p, None).await.unwrap();
    assert_eq!(b.pool_stats().idle, 0, "b's idle instance made room for a's readers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_wide_memory_budget_holds() {
    // Room for a few small instances, not for `alloc`'s endless growth,
    // whatever each backend's own limit says.
    let runtime = runtime_with(16, 48 << 20);
    let plugin = fixture(&runtime, MISBEHAVE, "misbehave");
    let limits = Limits {
        memory: 1 << 30,
        ..short_limits()
    };
    let a = WasmAdapter::new(&runtime, &plugin, spec("misbehave", &[], limits, PoolConfig::default()))
        .await
        .unwrap();
    let e = a.stat(&path("alloc")).await.unwrap_err();
    assert!(e.to_string().contains("memory"), "{e}");
    // The budget was given back with the dropped instance.
    for _ in 0..3 {
        a.stat(&path("ok"))
            .await
            .expect("serving again after the budget was hit");
    }
}

/// Restarts one of the servers kept for these tests (same port, a new
/// process: every connection is cut).
fn restart(server: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/servers.sh");
    let out = Command::new(&script).args(["restart", server]).output().unwrap();
    assert!(
        out.status.success(),
        "restarting {server}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Saves and loads through `adapter` around a restart of `server`: with
/// several warm instances holding connections when it goes, no operation
/// after it fails.
async fn survives_a_restart(adapter: &dyn Adapter, server: &str) {
    let prefix = wharf_tests::unique("warm");
    let paths: Vec<ObjectPath> = (0..4).map(|i| path(&format!("{prefix}k{i}"))).collect();
    // Warm up several instances at once.
    futures::future::join_all(paths.iter().map(|p| put(adapter, p, b"before"))).await;
    restart(server);
    let mut failures = Vec::new();
    for round in 0..3 {
        for p in &paths {
            let data = format!("after {round}");
            match adapter.write(p, PutMode::Overwrite, None).await {
                Ok(mut w) => {
                    w.append(Bytes::from(data.clone())).await.unwrap();
                    w.finish().await.unwrap();
                    assert_eq!(get(adapter, p).await, data.as_bytes());
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{server}: operations failed after the restart: {failures:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_costs_no_failed_operation() {
    let runtime = runtime();
    let plugin = PluginSet::builtin().load(&runtime, "redis", None).unwrap();
    let addr = wharf_tests::server_env("WHARF_TEST_REDIS2_ADDR");
    let password = wharf_tests::server_env("WHARF_TEST_REDIS2_PASSWORD");
    let mut s = spec(
        "redis",
        &[("address", &addr), ("password", &password)],
        Limits::default(),
        PoolConfig::default(),
    );
    s.grants.tcp = TcpGrant::resolve(std::slice::from_ref(&addr)).unwrap();
    let a = WasmAdapter::new(&runtime, &plugin, s).await.unwrap();
    survives_a_restart(&a, "redis2").await;
    assert!(a.pool_stats().reused > 0, "{:?}", a.pool_stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_postgres_costs_no_failed_operation() {
    let runtime = runtime();
    let plugin = PluginSet::builtin().load(&runtime, "database", None).unwrap();
    let addr = wharf_tests::server_env("WHARF_TEST_PG2_ADDR");
    let (user, password, db) = (
        wharf_tests::server_env("WHARF_TEST_PG_USER"),
        wharf_tests::server_env("WHARF_TEST_PG_PASSWORD"),
        wharf_tests::server_env("WHARF_TEST_PG_DB"),
    );
    let mut s = spec(
        "database",
        &[
            ("address", &addr),
            ("user", &user),
            ("password", &password),
            ("dbname", &db),
        ],
        Limits::default(),
        PoolConfig::default(),
    );
    s.grants.tcp = TcpGrant::resolve(std::slice::from_ref(&addr)).unwrap();
    let a = WasmAdapter::new(&runtime, &plugin, s).await.unwrap();
    survives_a_restart(&a, "postgres2").await;
    assert!(a.pool_stats().reused > 0, "{:?}", a.pool_stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_max_bounds_a_backend_and_operations_wait_their_turn() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let one = PoolConfig {
        max: Some(1),
        wait: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    let a = std::sync::Arc::new(local(&runtime, "one", dir.path(), one).await);
    let p = path("x.bin");
    put(&*a, &p, &[1u8; 10]).await;
    // 8 tasks × 20 operations share the one instance, handed from one to
    // the next as each operation ends.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (a, p) = (a.clone(), p.clone());
            tokio::spawn(async move {
                for _ in 0..20 {
                    a.stat(&p).await.expect("waits its turn");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let s = a.pool_stats();
    assert_eq!(s.created, 1, "never more than one instance: {s:?}");
    // A reader holds it: the next operation waits `pool.wait`, then fails
    // clearly; once the reader is gone, it goes through.
    let r = a.read(&p, None).await.unwrap();
    let e = a.stat(&p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient, "{e}");
    assert!(e.to_string().contains("pool.max"), "{e}");
    drop(r);
    a.stat(&p).await.expect("the instance was freed");
}
