//! The `database` adapter vs the native `postgres` crate, against the same
//! PostgreSQL on 127.0.0.1, in the same run and the same tables, chunked
//! the same way (one `bytea` row per chunk, one `INSERT` per row in one
//! transaction; one `SELECT` per row in a REPEATABLE READ transaction).
//! Prints a Markdown report (ratios: the machine is noisy) and writes it to
//! `WHARF_BENCH_REPORT` if set.
//!
//! `eval "$(./scripts/servers.sh start postgres)"; cargo bench -p wharf-bench --bench database`
//! Size: `WHARF_BENCH_BYTES` (default 2 GiB).

use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf::conformance::DataStream;
use wharf::{Adapter, ObjectPath, PutMode};
use wharf_bench::{median, peak_rss_mib, peak_rss_reset};
use wharf_tests::server_env;

/// Chunk row size on both sides: the adapter's default, or
/// `WHARF_BENCH_CHUNK` bytes.
fn chunk() -> usize {
    std::env::var("WHARF_BENCH_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20)
}
/// What the caller hands over per append / asks for per read.
const APPEND: usize = 4 << 20;
const PREFIX: &str = "wharf_";

fn mibs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

struct Sample {
    put: Duration,
    get: Duration,
    rss: f64,
}

struct Pg {
    addr: String,
    user: String,
    password: String,
    db: String,
}

fn pg() -> Pg {
    Pg {
        addr: server_env("WHARF_TEST_PG_ADDR"),
        user: server_env("WHARF_TEST_PG_USER"),
        password: server_env("WHARF_TEST_PG_PASSWORD"),
        db: server_env("WHARF_TEST_PG_DB"),
    }
}

fn native_client() -> postgres::Client {
    let s = pg();
    let (host, port) = s.addr.rsplit_once(':').unwrap();
    postgres::Config::new()
        .host(host)
        .port(port.parse().unwrap())
        .user(&s.user)
        .password(&s.password)
        .dbname(&s.db)
        .application_name("wharf-bench-native")
        .connect(postgres::NoTls)
        .expect("the native client connects")
}

/// Frees the space of deleted rows between runs, so repeated 2 GiB runs
/// do not fill the disk (not timed).
fn vacuum() {
    native_client()
        .batch_execute(&format!("VACUUM {PREFIX}chunks, {PREFIX}objects"))
        .unwrap();
}

/// The same layout the adapter writes, with the native client.
fn native_large(key: &str, size: u64) -> Sample {
    let mut client = native_client();
    let id: i64 = 0x5eed_0000 + (std::process::id() as i64);
    let mut data = DataStream::new(1, size);
    peak_rss_reset();
    let start = Instant::now();
    let mut tx = client.transaction().unwrap();
    let insert = tx
        .prepare(&format!(
            "INSERT INTO {PREFIX}chunks (upload_id, seq, data) VALUES ($1, $2, $3)"
        ))
        .unwrap();
    let chunk_size = chunk();
    let mut pending: Vec<u8> = Vec::with_capacity(chunk_size);
    let mut seq = 0i32;
    let mut send = |tx: &mut postgres::Transaction<'_>, chunk: &[u8]| {
        tx.execute(&insert, &[&id, &seq, &chunk]).unwrap();
        seq += 1;
    };
    while let Some(chunk) = data.next_chunk(APPEND) {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            let take = (chunk_size - pending.len()).min(rest.len());
            pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if pending.len() == chunk_size {
                send(&mut tx, &pending);
                pending.clear();
            }
        }
    }
    if !pending.is_empty() {
        send(&mut tx, &pending);
    }
    tx.execute(
        &format!(
            "INSERT INTO {PREFIX}objects (path, size, etag, modified_ms, upload_id, chunk_size) \
             VALUES ($1, $2, 'native', 0, $3, $4) ON CONFLICT (path) DO NOTHING"
        ),
        &[&key, &(size as i64), &id, &(chunk_size as i32)],
    )
    .unwrap();
    tx.commit().unwrap();
    let put = start.elapsed();
    let put_rss = peak_rss_mib();

    peak_rss_reset();
    let start = Instant::now();
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .unwrap();
    let select = tx
        .prepare(&format!(
            "SELECT data FROM {PREFIX}chunks WHERE upload_id = $1 AND seq = $2"
        ))
        .unwrap();
    let mut total = 0u64;
    let chunks = size.div_ceil(chunk_size as u64) as i32;
    for seq in 0..chunks {
        let row = tx.query_one(&select, &[&id, &seq]).unwrap();
        let data: &[u8] = row.get(0);
        total += data.len() as u64;
    }
    tx.commit().unwrap();
    let get = start.elapsed();
    assert_eq!(total, size);
    let get_rss = peak_rss_mib();
    client
        .execute(&format!("DELETE FROM {PREFIX}chunks WHERE upload_id = $1"), &[&id])
        .unwrap();
    client
        .execute(&format!("DELETE FROM {PREFIX}objects WHERE path = $1"), &[&key])
        .unwrap();
    Sample {
        put,
        get,
        rss: put_rss.max(get_rss),
    }
}

async fn wharf_large(adapter: &Arc<dyn Adapter>, key: &str, size: u64) -> Sample {
    let path = ObjectPath::parse(key).unwrap();
    let mut data = DataStream::new(1, size);
    peak_rss_reset();
    let start = Instant::now();
    let mut w = adapter.write(&path, PutMode::Overwrite, Some(size)).await.unwrap();
    while let Some(chunk) = data.next_chunk(APPEND) {
        w.append(chunk).await.unwrap();
    }
    w.finish().await.unwrap();
    let put = start.elapsed();
    let put_rss = peak_rss_mib();

    peak_rss_reset();
    let start = Instant::now();
    let mut r = adapter.read(&path, None).await.unwrap();
    let mut total = 0u64;
    while let Some(chunk) = r.next_chunk(APPEND).await.unwrap() {
        total += chunk.len() as u64;
    }
    let get = start.elapsed();
    assert_eq!(total, size);
    let get_rss = peak_rss_mib();
    adapter.delete(&path).await.unwrap();
    Sample {
        put,
        get,
        rss: put_rss.max(get_rss),
    }
}

/// Small objects: mean latency of a put and of a get.
const SMALL: usize = 4 << 10;
const SMALL_COUNT: usize = 200;

/// The native side keeps one connection (what a native service would do);
/// each put is its own transaction with the adapter's statements.
fn native_small() -> (Duration, Duration) {
    let mut client = native_client();
    let body = vec![7u8; SMALL];
    let base: i64 = 0x5a11_0000_0000 + ((std::process::id() as i64) << 16);
    let start = Instant::now();
    for i in 0..SMALL_COUNT {
        let mut tx = client.transaction().unwrap();
        let id = base + i as i64;
        tx.execute(
            &format!("INSERT INTO {PREFIX}chunks (upload_id, seq, data) VALUES ($1, 0, $2)"),
            &[&id, &body],
        )
        .unwrap();
        tx.execute(
            &format!(
                "INSERT INTO {PREFIX}objects (path, size, etag, modified_ms, upload_id, chunk_size) \
                 VALUES ($1, $2, 'native', 0, $3, $4)"
            ),
            &[&format!("small-native/{i}"), &(SMALL as i64), &id, &(chunk() as i32)],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let put = start.elapsed() / SMALL_COUNT as u32;
    let start = Instant::now();
    for i in 0..SMALL_COUNT {
        let row = client
            .query_one(
                &format!(
                    "SELECT c.data FROM {PREFIX}objects o JOIN {PREFIX}chunks c USING (upload_id) WHERE o.path = $1"
                ),
                &[&format!("small-native/{i}")],
            )
            .unwrap();
        let data: &[u8] = row.get(0);
        assert_eq!(data.len(), SMALL);
    }
    let get = start.elapsed() / SMALL_COUNT as u32;
    client
        .batch_execute(&format!(
            "DELETE FROM {PREFIX}chunks WHERE upload_id IN (SELECT upload_id FROM {PREFIX}objects WHERE path LIKE 'small-native/%'); \
             DELETE FROM {PREFIX}objects WHERE path LIKE 'small-native/%'"
        ))
        .unwrap();
    (put, get)
}

/// wharf operations run in warm instances: the connection (SCRAM, schema
/// check) is made once and kept, as the native side keeps its own.
async fn wharf_small(adapter: &Arc<dyn Adapter>) -> (Duration, Duration) {
    let body = bytes::Bytes::from(vec![7u8; SMALL]);
    let path = |i: usize| ObjectPath::parse(&format!("small-wharf/{i}")).unwrap();
    let start = Instant::now();
    for i in 0..SMALL_COUNT {
        let mut w = adapter
            .write(&path(i), PutMode::Overwrite, Some(SMALL as u64))
            .await
            .unwrap();
        w.append(body.clone()).await.unwrap();
        w.finish().await.unwrap();
    }
    let put = start.elapsed() / SMALL_COUNT as u32;
    let start = Instant::now();
    for i in 0..SMALL_COUNT {
        let mut r = adapter.read(&path(i), None).await.unwrap();
        let mut n = 0;
        while let Some(c) = r.next_chunk(1 << 20).await.unwrap() {
            n += c.len();
        }
        assert_eq!(n, SMALL);
    }
    let get = start.elapsed() / SMALL_COUNT as u32;
    for i in 0..SMALL_COUNT {
        adapter.delete(&path(i)).await.unwrap();
    }
    (put, get)
}

async fn wharf_adapter() -> Arc<dyn Adapter> {
    let s = pg();
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[backends.pg]
plugin = "database"
[backends.pg.config]
address = "{addr}"
user = "{user}"
password = "{password}"
dbname = "{db}"
table_prefix = "{PREFIX}"
chunk_size = "{chunk}"
[backends.pg.grants]
tcp = ["{addr}"]
"#,
        addr = s.addr,
        user = s.user,
        password = s.password,
        db = s.db,
        chunk = chunk(),
    );
    wharf_tests::host_from_toml(&toml, dir.path())
        .adapter("pg")
        .await
        .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let size: u64 = std::env::var("WHARF_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2 << 30);
    let rounds: usize = std::env::var("WHARF_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let adapter = wharf_adapter().await;
    // Warm up: compiled component, and the tables exist before the native side runs.
    adapter.health().await.unwrap();
    let (mut np, mut ng, mut wp, mut wg) = (vec![], vec![], vec![], vec![]);
    let (mut n_rss, mut w_rss) = (0f64, 0f64);
    for round in 0..rounds {
        let order = if round % 2 == 0 { [true, false] } else { [false, true] };
        for native in order {
            if native {
                let s = tokio::task::spawn_blocking(move || native_large("bench/native.bin", size))
                    .await
                    .unwrap();
                np.push(s.put);
                ng.push(s.get);
                n_rss = n_rss.max(s.rss);
            } else {
                let s = wharf_large(&adapter, "bench/wharf.bin", size).await;
                wp.push(s.put);
                wg.push(s.get);
                w_rss = w_rss.max(s.rss);
            }
            tokio::task::spawn_blocking(vacuum).await.unwrap();
        }
    }
    let (np, ng, wp, wg) = (median(np), median(ng), median(wp), median(wg));
    let (mut nsp, mut nsg, mut wsp, mut wsg) = (vec![], vec![], vec![], vec![]);
    for _ in 0..3 {
        let (p, g) = tokio::task::spawn_blocking(native_small).await.unwrap();
        nsp.push(p);
        nsg.push(g);
        let (p, g) = wharf_small(&adapter).await;
        wsp.push(p);
        wsg.push(g);
    }
    let (nsp, nsg, wsp, wsg) = (median(nsp), median(nsg), median(wsp), median(wsg));
    let mut report = format!(
        "### database vs the native `postgres` crate, PostgreSQL 15 on 127.0.0.1, {} MiB object, {} MiB bytea rows, {} MiB appends/reads\n\n",
        size >> 20,
        chunk() >> 20,
        APPEND >> 20
    );
    report.push_str("| measurement | wharf database | native postgres | ratio (wharf/native) |\n|---|---|---|---|\n");
    report.push_str(&format!(
        "| put (MiB/s, median of {rounds}) | {:.0} | {:.0} | {:.2} |\n",
        mibs(size, wp),
        mibs(size, np),
        mibs(size, wp) / mibs(size, np)
    ));
    report.push_str(&format!(
        "| get (MiB/s, median of {rounds}) | {:.0} | {:.0} | {:.2} |\n",
        mibs(size, wg),
        mibs(size, ng),
        mibs(size, wg) / mibs(size, ng)
    ));
    report.push_str(&format!(
        "| peak RSS of the process during put/get (MiB) | {w_rss:.0} | {n_rss:.0} | {:.2} |\n",
        w_rss / n_rss
    ));
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for (what, w, n) in [("put", wsp, nsp), ("get", wsg, nsg)] {
        report.push_str(&format!(
            "| 4 KiB {what}, mean latency (µs, median of 3 × {SMALL_COUNT}) | {:.0} | {:.0} | {:.2} |\n",
            us(w),
            us(n),
            us(w) / us(n)
        ));
    }
    println!("{report}");
    if let Ok(path) = std::env::var("WHARF_BENCH_REPORT") {
        std::fs::write(&path, &report).unwrap();
    }
    assert!(
        w_rss < 200.0,
        "the adapter's process peaked at {w_rss:.0} MiB RSS moving {} MiB",
        size >> 20
    );
}
