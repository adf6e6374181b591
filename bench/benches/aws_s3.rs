//! The aws_s3 adapter vs the native `object_store` crate (its AmazonS3
//! client), against the same s3s-fs server on 127.0.0.1, in the same run.
//! Prints a Markdown report; ratios, since the machine is noisy.
//!
//! `./scripts/bench.sh aws_s3` starts the server and runs this.
//! Size: `WHARF_BENCH_BYTES` (default 1 GiB); small objects: 1,000 × 4 KiB.

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf::conformance::DataStream;
use wharf::{Adapter, ObjectPath, PutMode};
use wharf_bench::{Sample, median, mibs, peak_rss_mib, peak_rss_reset, store};
use wharf_tests::server_env;

const PART: usize = 8 << 20;
const IN_FLIGHT: usize = 4;
const SMALL: usize = 4 << 10;
const SMALL_COUNT: usize = 1000;

fn native_store(signed: bool) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(server_env("WHARF_TEST_S3S_URL"))
            .with_bucket_name(server_env("WHARF_TEST_BUCKET"))
            .with_access_key_id(server_env("WHARF_TEST_S3S_ACCESS_KEY"))
            .with_secret_access_key(server_env("WHARF_TEST_S3S_SECRET_KEY"))
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_unsigned_payload(!signed)
            .build()
            .expect("object_store builds"),
    )
}

async fn wharf_large(adapter: &Arc<dyn Adapter>, key: &str, size: u64) -> Sample {
    let path = ObjectPath::parse(key).unwrap();
    let mut data = DataStream::new(1, size);
    peak_rss_reset();
    let start = Instant::now();
    let mut w = adapter.write(&path, PutMode::Overwrite, Some(size)).await.unwrap();
    while let Some(chunk) = data.next_chunk(4 << 20) {
        w.append(chunk).await.unwrap();
    }
    w.finish().await.unwrap();
    let put = start.elapsed();
    let put_rss = peak_rss_mib();

    peak_rss_reset();
    let start = Instant::now();
    let mut r = adapter.read(&path, None).await.unwrap();
    let mut total = 0u64;
    while let Some(chunk) = r.next_chunk(4 << 20).await.unwrap() {
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

/// Mean latency of a 4 KiB put and of a 4 KiB get.
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
    (put, get)
}

async fn wharf_adapter(signing: &str) -> Arc<dyn Adapter> {
    let dir = tempfile::tempdir().unwrap();
    let toml = wharf_tests::s3_toml(
        &server_env("WHARF_TEST_S3S_URL"),
        &server_env("WHARF_TEST_S3S_ACCESS_KEY"),
        &server_env("WHARF_TEST_S3S_SECRET_KEY"),
        "",
        &format!("part_size = \"{PART}\"\nmax_in_flight = \"{IN_FLIGHT}\"\npayload_signing = \"{signing}\""),
    );
    wharf_tests::host_from_toml(&toml, dir.path())
        .adapter("b")
        .await
        .unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let size: u64 = std::env::var("WHARF_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30);
    let mut report = String::new();
    report.push_str(&format!(
        "### aws_s3 vs object_store (AmazonS3), s3s-fs on 127.0.0.1, {} MiB, part {} MiB × {IN_FLIGHT} in flight\n\n",
        size >> 20,
        PART >> 20
    ));
    report.push_str("| measurement | wharf aws_s3 | native object_store | ratio (wharf/native) |\n|---|---|---|---|\n");
    for (signing, signed) in [("signed", true), ("unsigned", false)] {
        let adapter = wharf_adapter(signing).await;
        let store = native_store(signed);
        // Warm both: connections, compiled component.
        wharf_small(&adapter, "warm-w").await;
        store::small(&store, "warm-n", SMALL, SMALL_COUNT).await;
        let (mut np, mut ng, mut wp, mut wg) = (vec![], vec![], vec![], vec![]);
        let (mut n_rss, mut w_rss) = (0f64, 0f64);
        for round in 0..3 {
            let order = if round % 2 == 0 { [true, false] } else { [false, true] };
            for native in order {
                if native {
                    let s = store::large(&store, "bench/native.bin", size, PART, IN_FLIGHT).await;
                    np.push(s.put);
                    ng.push(s.get);
                    n_rss = n_rss.max(s.put_rss).max(s.get_rss);
                } else {
                    let s = wharf_large(&adapter, "bench/wharf.bin", size).await;
                    wp.push(s.put);
                    wg.push(s.get);
                    w_rss = w_rss.max(s.put_rss).max(s.get_rss);
                }
            }
        }
        let (np, ng, wp, wg) = (median(np), median(ng), median(wp), median(wg));
        report.push_str(&format!(
            "| upload, payload {signing} (MiB/s, median of 3) | {:.0} | {:.0} | {:.2} |\n",
            mibs(size, wp),
            mibs(size, np),
            mibs(size, wp) / mibs(size, np)
        ));
        report.push_str(&format!(
            "| download (MiB/s, median of 3) | {:.0} | {:.0} | {:.2} |\n",
            mibs(size, wg),
            mibs(size, ng),
            mibs(size, wg) / mibs(size, ng)
        ));
        report.push_str(&format!(
            "| peak RSS of the process during transfers (MiB) | {w_rss:.0} | {n_rss:.0} | {:.2} |\n",
            w_rss / n_rss
        ));
        if signed {
            let (mut nsp, mut nsg, mut wsp, mut wsg) = (vec![], vec![], vec![], vec![]);
            for round in 0..3 {
                let (a, b) = store::small(&store, &format!("small-n{round}"), SMALL, SMALL_COUNT).await;
                let (c, d) = wharf_small(&adapter, &format!("small-w{round}")).await;
                nsp.push(a);
                nsg.push(b);
                wsp.push(c);
                wsg.push(d);
            }
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            let (nsp, nsg, wsp, wsg) = (median(nsp), median(nsg), median(wsp), median(wsg));
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
        }
    }
    println!("{report}");
}
