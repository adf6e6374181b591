//! Load: many concurrent tasks run mixed operations (puts and gets of
//! 4 KiB to 8 MiB, stats, lists, deletes) through the embedding API on
//! local_filesystem, redis, PostgreSQL and S3 (s3s-fs), each task on keys of
//! its own, checking every read against what it last wrote: no error, no
//! lost or mixed-up object. Then redis and PostgreSQL again through a proxy
//! that cuts a connection every 250 ms (`WHARF_LOAD_CUT_MS`): every operation succeeds or fails
//! cleanly (`transient`/`unreachable`), and afterwards every key holds what
//! its last acknowledged write put there (or what a later, failed one may
//! have).
//!
//! Bounded for CI: `WHARF_LOAD_TASKS` concurrent tasks (default 32) and
//! `WHARF_LOAD_OPS` operations per backend (default 800). The long mode is
//! `WHARF_LOAD_TASKS=256 WHARF_LOAD_OPS=20000`; each run prints p50/p99 per
//! operation kind and the process's peak RSS (run one test at a time with
//! `--test-threads 1` for a peak of its own).

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf::{Adapter, ErrorKind, ObjectPath, PutMode};
use wharf_tests::fault_proxy::{Direction, Fault, FaultProxy};
use wharf_tests::{host_from_toml, server_env, unique};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Byte `i` of the object written with `seed`: addressable by position, so
/// a read checks any chunking against it.
fn fill(seed: u64, offset: u64, out: &mut [u8]) {
    let (mut pos, mut i) = (offset, 0);
    while i < out.len() {
        let mut z = seed ^ (pos / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let word = z.to_le_bytes();
        let b = (pos % 8) as usize;
        let n = (8 - b).min(out.len() - i);
        out[i..i + n].copy_from_slice(&word[b..b + n]);
        i += n;
        pos += n as u64;
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 4 KiB to 8 MiB, mostly small: 80% up to 64 KiB, 15% up to 1 MiB, 5% up
/// to 8 MiB.
fn size(rng: &mut Rng) -> u64 {
    let (lo, hi) = match rng.below(100) {
        0..80 => (4 << 10, 64 << 10),
        80..95 => (64 << 10, 1 << 20),
        _ => (1 << 20, 8 << 20),
    };
    lo + rng.below(hi - lo + 1)
}

/// What a key may hold: `None` for nothing, else the object written with
/// (seed, size).
type Content = Option<(u64, u64)>;

/// A key's last acknowledged content, and what failed operations after it
/// may have left instead (an answer lost after the storage acted).
#[derive(Default, Clone)]
struct KeyState {
    acked: Content,
    maybe: Vec<Content>,
}

impl KeyState {
    fn allows(&self, c: &Content) -> bool {
        self.acked == *c || self.maybe.contains(c)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Op {
    Put,
    Get,
    Stat,
    List,
    Delete,
}

#[derive(Default)]
struct Report {
    times: HashMap<Op, Vec<Duration>>,
    /// Operations that failed cleanly, by kind (fault runs only).
    failed: HashMap<ErrorKind, u64>,
    bytes: u64,
}

async fn put(a: &dyn Adapter, p: &ObjectPath, seed: u64, len: u64) -> wharf::Result<()> {
    let mut w = a.write(p, PutMode::Overwrite, Some(len)).await?;
    let mut off = 0;
    while off < len {
        let n = (len - off).min(1 << 20) as usize;
        let mut buf = vec![0u8; n];
        fill(seed, off, &mut buf);
        w.append(Bytes::from(buf)).await?;
        off += n as u64;
    }
    w.finish().await.map(|_| ())
}

/// What is at `p` now, as a [`Content`] `state` allows, checked byte by
/// byte; `Err(message)` for content no write of this task made.
async fn get(a: &dyn Adapter, p: &ObjectPath, state: &KeyState) -> wharf::Result<Result<Content, String>> {
    let mut r = match a.read(p, None).await {
        Ok(r) => r,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Ok(if state.allows(&None) {
                Ok(None)
            } else {
                Err(format!("`{p}` is missing; it should hold {:?}", state.acked))
            });
        }
        Err(e) => return Err(e),
    };
    // Every candidate is followed until one byte rules it out.
    let mut candidates: Vec<(u64, u64)> = std::iter::once(&state.acked)
        .chain(state.maybe.iter())
        .filter_map(|c| *c)
        .collect();
    let mut off = 0u64;
    let mut expect = Vec::new();
    while let Some(chunk) = r.next_chunk(1 << 20).await? {
        candidates.retain(|&(seed, len)| {
            if off + chunk.len() as u64 > len {
                return false;
            }
            expect.resize(chunk.len(), 0);
            fill(seed, off, &mut expect);
            expect == chunk
        });
        off += chunk.len() as u64;
    }
    Ok(match candidates.into_iter().find(|&(_, len)| len == off) {
        Some(c) => Ok(Some(c)),
        None => Err(format!(
            "`{p}` holds {off} bytes no write of this task made (expected {:?})",
            state.acked
        )),
    })
}

/// One task: `ops` operations on its own `keys` under `prefix`.
async fn task(a: Arc<dyn Adapter>, prefix: String, id: u64, ops: usize, faults: bool) -> (Report, Vec<KeyState>) {
    const KEYS: usize = 4;
    let mut rng = Rng(0x9e37_79b9 ^ (id + 1).wrapping_mul(0x2545_f491));
    let mut keys = vec![KeyState::default(); KEYS];
    let paths: Vec<ObjectPath> = (0..KEYS)
        .map(|k| ObjectPath::parse(&format!("{prefix}t{id}/k{k}")).unwrap())
        .collect();
    let mut report = Report::default();
    let mut counter = 0u64;
    for _ in 0..ops {
        let k = rng.below(KEYS as u64) as usize;
        let p = &paths[k];
        let op = match rng.below(100) {
            0..40 => Op::Put,
            40..70 => Op::Get,
            70..85 => Op::Stat,
            85..90 => Op::List,
            _ => Op::Delete,
        };
        let start = Instant::now();
        let outcome: wharf::Result<()> = match op {
            Op::Put => {
                counter += 1;
                let (seed, len) = ((id << 32) | counter, size(&mut rng));
                let r = put(&*a, p, seed, len).await;
                match &r {
                    Ok(()) => {
                        keys[k] = KeyState {
                            acked: Some((seed, len)),
                            maybe: Vec::new(),
                        };
                        report.bytes += len;
                    }
                    Err(_) => keys[k].maybe.push(Some((seed, len))),
                }
                r
            }
            Op::Get => match get(&*a, p, &keys[k]).await {
                Ok(Ok(content)) => {
                    // What is read was acknowledged by the storage, even if
                    // its answer was lost on the way.
                    keys[k] = KeyState {
                        acked: content,
                        maybe: Vec::new(),
                    };
                    Ok(())
                }
                Ok(Err(wrong)) => panic!("task {id}: {wrong}"),
                Err(e) => Err(e),
            },
            Op::Stat => match a.stat(p).await {
                Ok(m) => {
                    let sizes: Vec<u64> = std::iter::once(&keys[k].acked)
                        .chain(keys[k].maybe.iter())
                        .filter_map(|c| c.map(|(_, len)| len))
                        .collect();
                    assert!(
                        sizes.contains(&m.size),
                        "task {id}: `{p}` has size {}, not one of {sizes:?}",
                        m.size
                    );
                    Ok(())
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    assert!(
                        keys[k].allows(&None),
                        "task {id}: `{p}` is missing, should hold {:?}",
                        keys[k].acked
                    );
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Op::List => a.list(&format!("{prefix}t{id}/"), None, 100).await.map(|page| {
                for e in &page.entries {
                    assert!(
                        paths.iter().any(|p| p.as_str() == e.path),
                        "task {id}: listing shows `{}`, not a key of this task",
                        e.path
                    );
                }
            }),
            Op::Delete => {
                let r = a.delete(p).await;
                match &r {
                    Ok(()) => {
                        keys[k] = KeyState::default();
                    }
                    Err(_) => keys[k].maybe.push(None),
                }
                r
            }
        };
        match outcome {
            Ok(()) => report.times.entry(op).or_default().push(start.elapsed()),
            Err(e) if faults && matches!(e.kind(), ErrorKind::Transient | ErrorKind::Unreachable) => {
                *report.failed.entry(e.kind()).or_default() += 1;
            }
            Err(e) => panic!("task {id}: {op:?} `{p}` failed: {e}"),
        }
    }
    (report, keys)
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn pct(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v.get(((v.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// Runs the load on `a`; with `faults`, checks afterwards that every key
/// holds what its state allows.
async fn run(name: &str, a: Arc<dyn Adapter>, faults: bool) {
    let tasks = env_or("WHARF_LOAD_TASKS", 32);
    let ops = env_or("WHARF_LOAD_OPS", 800);
    let per_task = ops.div_ceil(tasks);
    let prefix = unique(&format!("load-{name}"));
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks as u64)
        .map(|id| tokio::spawn(task(a.clone(), prefix.clone(), id, per_task, faults)))
        .collect();
    let mut total = Report::default();
    let mut finals = Vec::new();
    for (id, h) in handles.into_iter().enumerate() {
        let (r, keys) = h.await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        for (op, t) in r.times {
            total.times.entry(op).or_default().extend(t);
        }
        for (k, n) in r.failed {
            *total.failed.entry(k).or_default() += n;
        }
        total.bytes += r.bytes;
        finals.push((id as u64, keys));
    }
    let elapsed = start.elapsed();
    // After the run, with no faults left to inject: every key holds what
    // its last acknowledged write (or a later failed one) put there.
    let mut checked = 0;
    for (id, keys) in &finals {
        for (k, state) in keys.iter().enumerate() {
            let p = ObjectPath::parse(&format!("{prefix}t{id}/k{k}")).unwrap();
            // A connection cut now fails the read cleanly: try again.
            let mut attempts = 0;
            let got = loop {
                match get(&*a, &p, state).await {
                    Err(e) if faults && attempts < 5 && e.kind() == ErrorKind::Transient => attempts += 1,
                    r => break r.expect("the final read"),
                }
            };
            if let Err(wrong) = got {
                panic!("{name}: after the run, task {id}: {wrong}");
            }
            checked += 1;
            while let Err(e) = a.delete(&p).await {
                assert!(faults && e.kind() == ErrorKind::Transient, "{e}");
            }
        }
    }
    let done: usize = total.times.values().map(Vec::len).sum();
    let mut line = format!(
        "{name}{}: {tasks} tasks, {done} operations ok in {:.1} s ({:.0} op/s, {:.0} MiB written), {checked} keys checked after; failed cleanly: {:?}; peak RSS {:.0} MiB;",
        if faults { " (connections cut)" } else { "" },
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64(),
        total.bytes as f64 / (1 << 20) as f64,
        total.failed,
        peak_rss_mib()
    );
    for op in [Op::Put, Op::Get, Op::Stat, Op::List, Op::Delete] {
        if let Some(t) = total.times.get_mut(&op) {
            let (p50, p99) = (pct(t, 0.5), pct(t, 0.99));
            line += &format!(
                " {op:?} p50 {:.2} ms p99 {:.1} ms;",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
    }
    eprintln!("{line}");
    if !faults {
        assert!(total.failed.is_empty());
    }
    // Bounded: objects stream, so the process holds about a chunk per task
    // and the instances' memory, whatever was written.
    let rss = peak_rss_mib();
    assert!(rss < 3072.0, "{name}: peak RSS {rss:.0} MiB");
}

fn redis_toml(addr: &str) -> String {
    format!(
        r#"
[backends.redis]
plugin = "redis"
[backends.redis.config]
address = "{addr}"
password = "{}"
[backends.redis.grants]
tcp = ["{addr}"]
"#,
        server_env("WHARF_TEST_REDIS_PASSWORD")
    )
}

fn pg_toml(addr: &str) -> String {
    format!(
        r#"
[backends.database]
plugin = "database"
[backends.database.config]
address = "{addr}"
user = "{}"
password = "{}"
dbname = "{}"
[backends.database.grants]
tcp = ["{addr}"]
# Below the server's max_connections (200 here), as a native pool would be.
[backends.database.pool]
max = 64
"#,
        server_env("WHARF_TEST_PG_USER"),
        server_env("WHARF_TEST_PG_PASSWORD"),
        server_env("WHARF_TEST_PG_DB")
    )
}

/// `runtime.max_instances` above the tasks, so the run measures the
/// backend, not the wait for a slot.
fn with_runtime(toml: &str) -> String {
    format!("[runtime]\nmax_instances = 512\n{toml}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_local_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_from_toml(
        &with_runtime(
            r#"
[backends.local_filesystem.config]
root = "/data"
[[backends.local_filesystem.grants.dirs]]
host = "data"
guest = "/data"
create = true
"#,
        ),
        dir.path(),
    );
    run(
        "local_filesystem",
        host.adapter("local_filesystem").await.unwrap(),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_redis() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_from_toml(
        &with_runtime(&redis_toml(&server_env("WHARF_TEST_REDIS_ADDR"))),
        dir.path(),
    );
    run("redis", host.adapter("redis").await.unwrap(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_from_toml(&with_runtime(&pg_toml(&server_env("WHARF_TEST_PG_ADDR"))), dir.path());
    run("database", host.adapter("database").await.unwrap(), false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_s3s() {
    let dir = tempfile::tempdir().unwrap();
    let host = host_from_toml(
        &with_runtime(&format!(
            r#"
[backends.aws_s3]
plugin = "aws_s3"
[backends.aws_s3.config]
endpoint = "{}"
bucket = "{}"
access_key_id = "{}"
secret_access_key = "{}"
part_size = "5MiB"
[backends.aws_s3.grants]
http = ["http://127.0.0.1:*"]
"#,
            server_env("WHARF_TEST_S3S_URL"),
            server_env("WHARF_TEST_BUCKET"),
            server_env("WHARF_TEST_S3S_ACCESS_KEY"),
            server_env("WHARF_TEST_S3S_SECRET_KEY"),
        )),
        dir.path(),
    );
    run("s3s", host.adapter("aws_s3").await.unwrap(), false).await;
}

/// Cuts a connection every `WHARF_LOAD_CUT_MS` (± half; default 250, short
/// enough for the CI run; the long mode uses 2000) while `run` goes on.
async fn with_cuts(name: &str, upstream: &str, toml: impl FnOnce(&str) -> String, backend: &str) {
    let proxy = Arc::new(FaultProxy::start(upstream, []).await.unwrap());
    let dir = tempfile::tempdir().unwrap();
    let host = host_from_toml(&with_runtime(&toml(&proxy.addr().to_string())), dir.path());
    let adapter = host.adapter(backend).await.unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cutter = {
        let (proxy, stop) = (proxy.clone(), stop.clone());
        tokio::spawn(async move {
            let mut rng = Rng(7);
            let every = env_or("WHARF_LOAD_CUT_MS", 250) as u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(every / 2 + rng.below(every))).await;
                if proxy.pending() == 0 {
                    let direction = if rng.below(2) == 0 {
                        Direction::Downstream
                    } else {
                        Direction::Upstream
                    };
                    proxy.push(Fault::Reset {
                        direction,
                        after: rng.below(16 << 10),
                    });
                }
            }
        })
    };
    run(name, adapter.clone(), true).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    cutter.await.unwrap();
    eprintln!("{name}: {} connections cut by the proxy", proxy.faults());
    assert!(
        proxy.faults() >= 2,
        "{name}: the run ended before the proxy cut two connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_redis_with_connections_cut() {
    let addr = server_env("WHARF_TEST_REDIS_ADDR");
    with_cuts("redis", &addr, redis_toml, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_postgres_with_connections_cut() {
    let addr = server_env("WHARF_TEST_PG_ADDR");
    with_cuts("database", &addr, pg_toml, "database").await;
}
