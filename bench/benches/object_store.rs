//! The same object_store workload through `object_store::aws::AmazonS3`
//! directly and through `wharf::object_store::WharfStore` over the aws_s3
//! component, against the same s3s-fs server on 127.0.0.1, in the same run:
//! what a Rust program that talks object_store gains or pays by reaching S3
//! through a sandboxed adapter. Both sign payloads. Prints a Markdown
//! report; ratios, since the machine is noisy.
//!
//! `./scripts/bench.sh object_store` starts the server and runs this.
//! Large object: `WHARF_BENCH_BYTES` (default 1 GiB), 8 MiB parts, 4 in
//! flight on both sides; 1,000 × 4 KiB puts and gets; 1,000 ranged gets of
//! 64 KiB at scattered offsets of a 256 MiB object (a Parquet reader's
//! pattern); listing 1,000 keys.

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf::conformance::DataStream;
use wharf_bench::{median, mibs, store};
use wharf_tests::server_env;

const PART: usize = 8 << 20;
const IN_FLIGHT: usize = 4;
const SMALL: usize = 4 << 10;
const SMALL_COUNT: usize = 1000;
const RANGED_OBJECT: u64 = 256 << 20;
const RANGE: u64 = 64 << 10;
const RANGES: usize = 1000;
const LIST_KEYS: usize = 1000;

fn native(prefix: &str) -> Arc<dyn ObjectStore> {
    let store = AmazonS3Builder::new()
        .with_endpoint(server_env("WHARF_TEST_S3S_URL"))
        .with_bucket_name(server_env("WHARF_TEST_BUCKET"))
        .with_access_key_id(server_env("WHARF_TEST_S3S_ACCESS_KEY"))
        .with_secret_access_key(server_env("WHARF_TEST_S3S_SECRET_KEY"))
        .with_region("us-east-1")
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .build()
        .expect("object_store builds");
    Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
}

async fn wharf(prefix: &str, dir: &std::path::Path) -> (Arc<dyn ObjectStore>, wharf::Host) {
    let toml = wharf_tests::s3_toml(
        &server_env("WHARF_TEST_S3S_URL"),
        &server_env("WHARF_TEST_S3S_ACCESS_KEY"),
        &server_env("WHARF_TEST_S3S_SECRET_KEY"),
        &format!("{prefix}/"),
        &format!("part_size = \"{PART}\"\nmax_in_flight = \"{IN_FLIGHT}\"\npayload_signing = \"signed\""),
    );
    let host = wharf_tests::host_from_toml(&toml, dir);
    let store = host.object_store("b").await.unwrap();
    (Arc::new(store), host)
}

/// `RANGES` gets of `RANGE` bytes at scattered offsets of `key`; the mean
/// latency.
async fn ranged(store: &Arc<dyn ObjectStore>, key: &Path) -> Duration {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let start = Instant::now();
    for _ in 0..RANGES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let at = x % (RANGED_OBJECT - RANGE);
        let got = store.get_range(key, at..at + RANGE).await.unwrap();
        assert_eq!(got.len() as u64, RANGE);
    }
    start.elapsed() / RANGES as u32
}

/// The mean time to list `LIST_KEYS` keys under `prefix`.
async fn listing(store: &Arc<dyn ObjectStore>, prefix: &Path) -> Duration {
    let start = Instant::now();
    for _ in 0..5 {
        let n = store.list(Some(prefix)).try_collect::<Vec<_>>().await.unwrap().len();
        assert_eq!(n, LIST_KEYS);
    }
    start.elapsed() / 5
}

async fn put_ranged_object(store: &Arc<dyn ObjectStore>, key: &Path) {
    let mut data = DataStream::new(2, RANGED_OBJECT);
    let mut upload = object_store::WriteMultipart::new_with_chunk_size(store.put_multipart(key).await.unwrap(), PART);
    while let Some(chunk) = data.next_chunk(4 << 20) {
        upload.wait_for_capacity(IN_FLIGHT).await.unwrap();
        upload.write(&chunk);
    }
    upload.finish().await.unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let size: u64 = std::env::var("WHARF_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let run = format!(
        "bench-os-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    );
    let dir = tempfile::tempdir().unwrap();
    let (w, _host) = wharf(&format!("{run}/w"), dir.path()).await;
    let n = native(&format!("{run}/n"));
    let stores = [("wharf", &w), ("native", &n)];

    // Warm both: connections, the compiled component, an instance.
    for (_, s) in stores {
        store::small(s, "warm", SMALL, 50).await;
    }
    let mut large: [(Vec<Duration>, Vec<Duration>, f64); 2] = Default::default();
    let mut small: [(Vec<Duration>, Vec<Duration>); 2] = Default::default();
    for round in 0..3 {
        // Alternate who goes first: the server's disk cache favours no one.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let s = store::large(stores[i].1, "large.bin", size, PART, IN_FLIGHT).await;
            large[i].0.push(s.put);
            large[i].1.push(s.get);
            large[i].2 = large[i].2.max(s.put_rss).max(s.get_rss);
            let (p, g) = store::small(stores[i].1, &format!("small{round}"), SMALL, SMALL_COUNT).await;
            small[i].0.push(p);
            small[i].1.push(g);
        }
    }
    let key = Path::from("ranged.bin");
    let mut ranges: [Vec<Duration>; 2] = Default::default();
    let mut lists: [Vec<Duration>; 2] = Default::default();
    for (_, s) in stores {
        put_ranged_object(s, &key).await;
    }
    for round in 0..3 {
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            ranges[i].push(ranged(stores[i].1, &key).await);
            // small0 holds SMALL_COUNT keys from the first round.
            lists[i].push(listing(stores[i].1, &Path::from("small0")).await);
        }
    }

    let mut report = format!(
        "### object_store workload: `WharfStore` over aws_s3 vs `AmazonS3`, s3s-fs on 127.0.0.1, {} MiB, part {} MiB × {IN_FLIGHT} in flight\n\n\
         | measurement | WharfStore (aws_s3 component) | AmazonS3 | ratio (wharf/native) |\n|---|---|---|---|\n",
        size >> 20,
        PART >> 20
    );
    let [(wp, wg, wrss), (np, ng, nrss)] = large;
    let (wp, wg, np, ng) = (median(wp), median(wg), median(np), median(ng));
    let mut row = |what: &str, w: f64, n: f64, unit: &str| {
        report.push_str(&format!("| {what} ({unit}) | {w:.0} | {n:.0} | {:.2} |\n", w / n));
    };
    row("put_multipart, median of 3", mibs(size, wp), mibs(size, np), "MiB/s");
    row("get, streamed, median of 3", mibs(size, wg), mibs(size, ng), "MiB/s");
    row("peak RSS during the transfers", wrss, nrss, "MiB");
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let [(wsp, wsg), (nsp, nsg)] = small;
    row(
        &format!("4 KiB put, mean latency, median of 3 × {SMALL_COUNT}"),
        us(median(wsp)),
        us(median(nsp)),
        "µs",
    );
    row(
        &format!("4 KiB get, mean latency, median of 3 × {SMALL_COUNT}"),
        us(median(wsg)),
        us(median(nsg)),
        "µs",
    );
    let [wr, nr] = ranges;
    row(
        &format!("get_range of 64 KiB in a 256 MiB object, mean, median of 3 × {RANGES}"),
        us(median(wr)),
        us(median(nr)),
        "µs",
    );
    let [wl, nl] = lists;
    row(
        &format!("list of {LIST_KEYS} keys, median of 3 × 5"),
        us(median(wl)) / 1000.0,
        us(median(nl)) / 1000.0,
        "ms",
    );
    println!("{report}");

    // Leave the bucket as it was.
    for (_, s) in stores {
        let all: Vec<_> = s.list(None).map_ok(|m| m.location).try_collect().await.unwrap();
        for p in all {
            s.delete(&p).await.unwrap();
        }
    }
}
