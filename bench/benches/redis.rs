//! The redis adapter vs a native Rust client (the `redis` crate's sync
//! connection), against the same redis-server on 127.0.0.1, in the same
//! run, with the same layout: 8 MiB chunk keys plus a manifest hash.
//! Prints a Markdown report and writes it to /tmp/wharf-bench-redis.md.
//!
//! `eval "$(./scripts/servers.sh start redis)"` then
//! `cargo bench -p wharf-bench --bench redis`.
//! Size: `WHARF_BENCH_BYTES` (default 2 GiB); small objects: 1,000 × 4 KiB.

use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf::conformance::DataStream;
use wharf::{Adapter, ObjectPath, PutMode};
use wharf_bench::{median, peak_rss_mib, peak_rss_reset};
use wharf_tests::server_env;

const CHUNK: usize = 8 << 20;
const SMALL: usize = 4 << 10;
const SMALL_COUNT: usize = 1000;
const RSS_LIMIT_MIB: f64 = 200.0;

fn mibs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

struct Sample {
    put: Duration,
    get: Duration,
    put_rss: f64,
    get_rss: f64,
}

/// The chunks of a `size`-byte object: one random 8 MiB buffer, repeated
/// (cheap to clone, so neither side pays for generating data).
fn chunks(block: &Bytes, size: u64) -> impl Iterator<Item = Bytes> + '_ {
    let n = size.div_ceil(CHUNK as u64);
    (0..n).map(move |i| {
        let len = (size - i * CHUNK as u64).min(CHUNK as u64) as usize;
        block.slice(..len)
    })
}

fn native_conn() -> redis::Connection {
    let url = format!(
        "redis://:{}@{}/",
        server_env("WHARF_TEST_REDIS_PASSWORD"),
        server_env("WHARF_TEST_REDIS_ADDR")
    );
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// The native side: SET per chunk, then the manifest hash; GET per chunk.
fn native_large(block: &Bytes, key: &str, size: u64) -> Sample {
    let mut con = native_conn();
    peak_rss_reset();
    let start = Instant::now();
    let mut n = 0u64;
    for chunk in chunks(block, size) {
        let _: () = redis::cmd("SET")
            .arg(format!("{key}:chunk:{n}"))
            .arg(&chunk[..])
            .query(&mut con)
            .unwrap();
        n += 1;
    }
    let _: () = redis::cmd("HSET")
        .arg(format!("{key}:manifest"))
        .arg("size")
        .arg(size)
        .arg("chunks")
        .arg(n)
        .query(&mut con)
        .unwrap();
    let put = start.elapsed();
    let put_rss = peak_rss_mib();

    peak_rss_reset();
    let start = Instant::now();
    let chunks: u64 = redis::cmd("HGET")
        .arg(format!("{key}:manifest"))
        .arg("chunks")
        .query(&mut con)
        .unwrap();
    let mut total = 0u64;
    for i in 0..chunks {
        let data: Vec<u8> = redis::cmd("GET")
            .arg(format!("{key}:chunk:{i}"))
            .query(&mut con)
            .unwrap();
        total += data.len() as u64;
    }
    let get = start.elapsed();
    assert_eq!(total, size);
    let get_rss = peak_rss_mib();
    for i in 0..chunks {
        let _: () = redis::cmd("UNLINK")
            .arg(format!("{key}:chunk:{i}"))
            .query(&mut con)
            .unwrap();
    }
    let _: () = redis::cmd("UNLINK")
        .arg(format!("{key}:manifest"))
        .query(&mut con)
        .unwrap();
    Sample {
        put,
        get,
        put_rss,
        get_rss,
    }
}

async fn wharf_large(adapter: &Arc<dyn Adapter>, block: &Bytes, key: &str, size: u64) -> Sample {
    let path = ObjectPath::parse(key).unwrap();
    peak_rss_reset();
    let start = Instant::now();
    let mut w = adapter.write(&path, PutMode::Overwrite, Some(size)).await.unwrap();
    for chunk in chunks(block, size) {
        w.append(chunk).await.unwrap();
    }
    w.finish().await.unwrap();
    let put = start.elapsed();
    let put_rss = peak_rss_mib();

    peak_rss_reset();
    let start = Instant::now();
    let mut r = adapter.read(&path, None).await.unwrap();
    let mut total = 0u64;
    while let Some(chunk) = r.next_chunk(CHUNK).await.unwrap() {
        total += chunk.len() as u64;
    }
    let get = start.elapsed();
    assert_eq!(total, size);
    let get_rss = peak_rss_mib();
    adapter.delete(&path).await.unwrap();
    Sample {
        put,
        get,
        put_rss,
        get_rss,
    }
}

/// Mean latency of a 4 KiB put and get, natively (a connection kept open).
fn native_small(prefix: &str) -> (Duration, Duration) {
    let mut con = native_conn();
    let body = vec![7u8; SMALL];
    let start = Instant::now();
    for i in 0..SMALL_COUNT {
        let _: () = redis::cmd("SET")
            .arg(format!("{prefix}:{i:04}:chunk:0"))
            .arg(&body[..])
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("HSET")
            .arg(format!("{prefix}:{i:04}:manifest"))
            .arg("size")
            .arg(SMALL)
            .arg("chunks")
            .arg(1)
            .query(&mut con)
            .unwrap();
    }
    let put = start.elapsed() / SMALL_COUNT as u32;
    let start = Instant::now();
    for i in 0..SMALL_COUNT {
        let _: u64 = redis::cmd("HGET")
            .arg(format!("{prefix}:{i:04}:manifest"))
            .arg("chunks")
            .query(&mut con)
            .unwrap();
        let got: Vec<u8> = redis::cmd("GET")
            .arg(format!("{prefix}:{i:04}:chunk:0"))
            .query(&mut con)
            .unwrap();
        assert_eq!(got.len(), SMALL);
    }
    let get = start.elapsed() / SMALL_COUNT as u32;
    for i in 0..SMALL_COUNT {
        let _: () = redis::cmd("UNLINK")
            .arg(format!("{prefix}:{i:04}:chunk:0"))
            .arg(format!("{prefix}:{i:04}:manifest"))
            .query(&mut con)
            .unwrap();
    }
    (put, get)
}

async fn wharf_small(adapter: &Arc<dyn Adapter>, prefix: &str) -> (Duration, Duration) {
    let body = Bytes::from(vec![7u8; SMALL]);
    let start = Instant::now();
    for i in 0..SMALL_COUNT {
        let path = ObjectPath::parse(&format!("{prefix}/{i:04}")).unwrap();
        let mut w = adapter
            .write(&path, PutMode::Overwrite, Some(SMALL as u64))
            .await
            .unwrap();
        w.append(body.clone()).await.unwrap();
        w.finish().await.unwrap();
    }
    let put = start.elapsed() / SMALL_COUNT as u32;
    let start = Instant::now();
    for i in 0..SMALL_COUNT {
        let path = ObjectPath::parse(&format!("{prefix}/{i:04}")).unwrap();
        let mut r = adapter.read(&path, None).await.unwrap();
        let mut n = 0;
        while let Some(chunk) = r.next_chunk(1 << 20).await.unwrap() {
            n += chunk.len();
        }
        assert_eq!(n, SMALL);
    }
    let get = start.elapsed() / SMALL_COUNT as u32;
    for i in 0..SMALL_COUNT {
        let path = ObjectPath::parse(&format!("{prefix}/{i:04}")).unwrap();
        adapter.delete(&path).await.unwrap();
    }
    (put, get)
}

/// Concurrent 4 KiB gets: workers at once, each this many gets.
const WORKERS: usize = 64;
const GETS_PER_WORKER: usize = 200;

/// 64 threads with a connection each (a pool of 64), each reading 4 KiB
/// objects (manifest, then chunk) in turn: gets per second.
fn native_concurrent(prefix: &str) -> f64 {
    let mut con = native_conn();
    let body = vec![7u8; SMALL];
    for i in 0..WORKERS {
        let _: () = redis::cmd("SET")
            .arg(format!("{prefix}:{i}:chunk:0"))
            .arg(&body[..])
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("HSET")
            .arg(format!("{prefix}:{i}:manifest"))
            .arg("chunks")
            .arg(1)
            .query(&mut con)
            .unwrap();
    }
    let conns: Vec<redis::Connection> = (0..WORKERS).map(|_| native_conn()).collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for (w, mut c) in conns.into_iter().enumerate() {
            s.spawn(move || {
                for j in 0..GETS_PER_WORKER {
                    let i = (w + j) % WORKERS;
                    let _: u64 = redis::cmd("HGET")
                        .arg(format!("{prefix}:{i}:manifest"))
                        .arg("chunks")
                        .query(&mut c)
                        .unwrap();
                    let got: Vec<u8> = redis::cmd("GET")
                        .arg(format!("{prefix}:{i}:chunk:0"))
                        .query(&mut c)
                        .unwrap();
                    assert_eq!(got.len(), SMALL);
                }
            });
        }
    });
    let rate = (WORKERS * GETS_PER_WORKER) as f64 / start.elapsed().as_secs_f64();
    for i in 0..WORKERS {
        let _: () = redis::cmd("UNLINK")
            .arg(format!("{prefix}:{i}:chunk:0"))
            .arg(format!("{prefix}:{i}:manifest"))
            .query(&mut con)
            .unwrap();
    }
    rate
}

/// The same through the adapter: 64 tasks at once on a backend whose pool
/// keeps 64 warm instances (`pool.idle = 64`): gets per second.
async fn wharf_concurrent(adapter: &Arc<dyn Adapter>, prefix: &str) -> f64 {
    let body = Bytes::from(vec![7u8; SMALL]);
    let path = |i: usize| ObjectPath::parse(&format!("{prefix}/{i}")).unwrap();
    for i in 0..WORKERS {
        let mut w = adapter
            .write(&path(i), PutMode::Overwrite, Some(SMALL as u64))
            .await
            .unwrap();
        w.append(body.clone()).await.unwrap();
        w.finish().await.unwrap();
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..WORKERS)
        .map(|w| {
            let adapter = adapter.clone();
            let paths: Vec<ObjectPath> = (0..WORKERS).map(path).collect();
            tokio::spawn(async move {
                for j in 0..GETS_PER_WORKER {
                    let mut r = adapter.read(&paths[(w + j) % WORKERS], None).await.unwrap();
                    let mut n = 0;
                    while let Some(c) = r.next_chunk(1 << 20).await.unwrap() {
                        n += c.len();
                    }
                    assert_eq!(n, SMALL);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let rate = (WORKERS * GETS_PER_WORKER) as f64 / start.elapsed().as_secs_f64();
    for i in 0..WORKERS {
        adapter.delete(&path(i)).await.unwrap();
    }
    rate
}

async fn wharf_adapter() -> Arc<dyn Adapter> {
    let addr = server_env("WHARF_TEST_REDIS_ADDR");
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[backends.r]
plugin = "redis"
[backends.r.config]
address = "{addr}"
password = "{password}"
prefix = "wharf-bench:"
chunk_size = "{CHUNK}"
[backends.r.grants]
tcp = ["{addr}"]
[backends.r.pool]
idle = {WORKERS}
"#,
        password = server_env("WHARF_TEST_REDIS_PASSWORD"),
    );
    wharf_tests::host_from_toml(&toml, dir.path())
        .adapter("r")
        .await
        .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let size: u64 = std::env::var("WHARF_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2 << 30);
    let block = DataStream::new(9, CHUNK as u64).next_chunk(CHUNK).unwrap();
    let adapter = wharf_adapter().await;
    // Warm both: the compiled component, the server's allocator.
    wharf_small(&adapter, "warm-w").await;
    native_small("warm-n");

    let (mut np, mut ng, mut wp, mut wg) = (vec![], vec![], vec![], vec![]);
    let (mut n_rss, mut w_rss) = (0f64, 0f64);
    for round in 0..3 {
        let order = if round % 2 == 0 { [true, false] } else { [false, true] };
        for native in order {
            if native {
                let s = tokio::task::block_in_place(|| native_large(&block, "native-bench:big", size));
                np.push(s.put);
                ng.push(s.get);
                n_rss = n_rss.max(s.put_rss).max(s.get_rss);
            } else {
                let s = wharf_large(&adapter, &block, "bench/big.bin", size).await;
                wp.push(s.put);
                wg.push(s.get);
                w_rss = w_rss.max(s.put_rss).max(s.get_rss);
            }
        }
    }
    let (mut nsp, mut nsg, mut wsp, mut wsg) = (vec![], vec![], vec![], vec![]);
    for round in 0..3 {
        let (a, b) = tokio::task::block_in_place(|| native_small(&format!("native-bench:small{round}")));
        let (c, d) = wharf_small(&adapter, &format!("small{round}")).await;
        nsp.push(a);
        nsg.push(b);
        wsp.push(c);
        wsg.push(d);
    }

    let (mut nc, mut wc) = (vec![], vec![]);
    for round in 0..3 {
        nc.push(tokio::task::block_in_place(|| {
            native_concurrent(&format!("native-bench:conc{round}"))
        }));
        wc.push(wharf_concurrent(&adapter, &format!("conc{round}")).await);
    }
    nc.sort_by(f64::total_cmp);
    wc.sort_by(f64::total_cmp);
    let (nc, wc) = (nc[1], wc[1]);

    let (np, ng, wp, wg) = (median(np), median(ng), median(wp), median(wg));
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (nsp, nsg, wsp, wsg) = (median(nsp), median(nsg), median(wsp), median(wsg));
    let mut report = format!(
        "### redis vs the native `redis` crate, redis-server on 127.0.0.1, {} MiB, {} MiB chunks\n\n\
         Same layout on both sides (a key per chunk, a manifest hash); the native \
         client keeps one connection and sends one command at a time, the adapter \
         runs in warm instances that keep their connection (AUTH once) and keeps two chunk \
         writes or `GETRANGE`s in flight.\n\n",
        size >> 20,
        CHUNK >> 20
    );
    report.push_str("| measurement | wharf redis | native redis crate | ratio (wharf/native) |\n|---|---|---|---|\n");
    report.push_str(&format!(
        "| put (MiB/s, median of 3) | {:.0} | {:.0} | {:.2} |\n",
        mibs(size, wp),
        mibs(size, np),
        mibs(size, wp) / mibs(size, np)
    ));
    report.push_str(&format!(
        "| get (MiB/s, median of 3) | {:.0} | {:.0} | {:.2} |\n",
        mibs(size, wg),
        mibs(size, ng),
        mibs(size, wg) / mibs(size, ng)
    ));
    report.push_str(&format!(
        "| peak RSS of the process during transfers (MiB) | {w_rss:.0} | {n_rss:.0} | {:.2} |\n",
        w_rss / n_rss
    ));
    report.push_str(&format!(
        "| 4 KiB put, mean latency (µs, median of 3 × {SMALL_COUNT}) | {:.0} | {:.0} | {:.2} |\n",
        us(wsp),
        us(nsp),
        us(wsp) / us(nsp)
    ));
    report.push_str(&format!(
        "| 4 KiB get, mean latency (µs, median of 3 × {SMALL_COUNT}) | {:.0} | {:.0} | {:.2} |\n",
        us(wsg),
        us(nsg),
        us(wsg) / us(nsg)
    ));
    report.push_str(&format!(
        "| {WORKERS} concurrent 4 KiB gets (gets/s, median of 3 × {}; native: {WORKERS} threads, a connection each) | {wc:.0} | {nc:.0} | {:.2} |\n",
        WORKERS * GETS_PER_WORKER,
        wc / nc
    ));
    println!("{report}");
    std::fs::write("/tmp/wharf-bench-redis.md", &report).unwrap();
    assert!(
        w_rss < RSS_LIMIT_MIB,
        "peak RSS {w_rss:.0} MiB through the adapter exceeds {RSS_LIMIT_MIB} MiB"
    );
}
