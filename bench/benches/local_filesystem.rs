//! local_filesystem through the Wasm adapter vs native Rust file I/O on the
//! same disk, in the same run. Prints a Markdown report (ratios, since the
//! machine is noisy). `cargo bench -p wharf-bench --bench local_filesystem`
//! Size: `WHARF_BENCH_BYTES` (default 1 GiB).

use bytes::Bytes;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf::conformance::DataStream;
use wharf::plugins::PluginSet;
use wharf::{Adapter, Config, ObjectPath, PutMode, Runtime, RuntimeConfig, SaveOptions, StorageService, WasmAdapter};
use wharf_bench::{peak_rss_mib, peak_rss_reset};

const CHUNK: usize = 4 << 20;

fn mibs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn drop_caches() {
    // Best effort (needs root); keeps both sides honest about the page cache.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

fn native_copy(src: &Path, dst: &Path) -> Duration {
    native_copy_with(src, dst, |_| {})
}

/// A copy that also computes the sha256, the fair baseline for the
/// service rows (wharf checksums everything it moves).
fn native_copy_sha256(src: &Path, dst: &Path) -> Duration {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let d = native_copy_with(src, dst, |chunk| h.update(chunk));
    std::hint::black_box(h.finalize());
    d
}

fn native_copy_with(src: &Path, dst: &Path, mut each: impl FnMut(&[u8])) -> Duration {
    let start = Instant::now();
    let mut input = std::fs::File::open(src).unwrap();
    let mut out = std::fs::File::create(dst).unwrap();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = input.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        each(&buf[..n]);
        out.write_all(&buf[..n]).unwrap();
    }
    out.sync_all().unwrap();
    start.elapsed()
}

fn native_read(src: &Path) -> Duration {
    let start = Instant::now();
    let mut input = std::fs::File::open(src).unwrap();
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        let n = input.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    std::hint::black_box(total);
    start.elapsed()
}

/// The native side of one round: copy the source in (put), read it (get),
/// copy it out with a sha256 (the service rows' baseline), each from a cold
/// page cache.
fn native_round(src: &Path, scratch: &Path) -> (Duration, Duration, Duration) {
    drop_caches();
    let put = native_copy(src, &scratch.join("copy.bin"));
    drop_caches();
    let get = native_read(&scratch.join("copy.bin"));
    drop_caches();
    let copy_sha = native_copy_sha256(&scratch.join("copy.bin"), &scratch.join("copy2.bin"));
    (put, get, copy_sha)
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let size: u64 = std::env::var("WHARF_BENCH_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 30);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-local");
    let _ = std::fs::remove_dir_all(&root);
    let (store, scratch) = (root.join("store"), root.join("scratch"));
    std::fs::create_dir_all(&store).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();

    // The source model file.
    let src = scratch.join("model.bin");
    {
        let mut f = std::fs::File::create(&src).unwrap();
        let mut d = DataStream::new(1, size);
        while let Some(c) = d.next_chunk(CHUNK) {
            f.write_all(&c).unwrap();
        }
        f.sync_all().unwrap();
    }

    let cfg = Config::local_default(&store);
    let spec = cfg.backends["local_filesystem"]
        .resolve("local_filesystem", &root)
        .unwrap();
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wharf-test-cache")),
        ..Default::default()
    })
    .unwrap();
    let plugin = PluginSet::builtin().load(&runtime, "local_filesystem", None).unwrap();
    let wasm = WasmAdapter::new(&runtime, &plugin, spec).await.unwrap();
    let adapter: Arc<dyn Adapter> = Arc::new(wasm.clone());
    let service = StorageService::new(adapter.clone());

    println!("| measurement | wharf (Wasm adapter) | native Rust | ratio wharf/native |");
    println!("|---|---|---|---|");

    // Large transfers: 3 rounds, alternating which side goes first; medians.
    let (mut n_put, mut w_put, mut s_put, mut n_get, mut w_get, mut s_get, mut n_sha) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut rss_wput, mut rss_sput, mut rss_wget, mut rss_sget) = (0f64, 0f64, 0f64, 0f64);
    let path = ObjectPath::parse("bench/raw.bin").unwrap();
    let out = scratch.join("loaded.bin");
    for round in 0..3 {
        let native_first = round % 2 == 0;
        if native_first {
            let (put, get, copy_sha) = native_round(&src, &scratch);
            n_put.push(put);
            n_get.push(get);
            n_sha.push(copy_sha);
        }
        drop_caches();
        peak_rss_reset();
        let start = Instant::now();
        let mut w = adapter.write(&path, PutMode::Overwrite, Some(size)).await.unwrap();
        let mut input = std::fs::File::open(&src).unwrap();
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = input.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            buf.truncate(n);
            w.append(Bytes::from(buf)).await.unwrap();
        }
        w.finish().await.unwrap();
        w_put.push(start.elapsed());
        rss_wput = rss_wput.max(peak_rss_mib());

        drop_caches();
        peak_rss_reset();
        let start = Instant::now();
        let opts = SaveOptions {
            model: Some("bench".into()),
            version: Some(format!("{round}")),
            ..Default::default()
        };
        let info = service.save_file(&src, &opts).await.unwrap();
        s_put.push(start.elapsed());
        rss_sput = rss_sput.max(peak_rss_mib());

        drop_caches();
        peak_rss_reset();
        let start = Instant::now();
        let mut r = adapter.read(&path, None).await.unwrap();
        let mut total = 0u64;
        while let Some(c) = r.next_chunk(CHUNK).await.unwrap() {
            total += c.len() as u64;
        }
        assert_eq!(total, size);
        w_get.push(start.elapsed());
        rss_wget = rss_wget.max(peak_rss_mib());

        drop_caches();
        peak_rss_reset();
        let _ = std::fs::remove_file(&out);
        let start = Instant::now();
        service.load_to_path(&info.storage_path, &out).await.unwrap();
        s_get.push(start.elapsed());
        rss_sget = rss_sget.max(peak_rss_mib());
        if !native_first {
            let (put, get, copy_sha) = native_round(&src, &scratch);
            n_put.push(put);
            n_get.push(get);
            n_sha.push(copy_sha);
        }
    }
    let gib = size as f64 / (1u64 << 30) as f64;
    let row = |what: &str, w: &mut Vec<Duration>, n: &mut Vec<Duration>, native_what: &str| {
        let (w, n) = (percentile(w, 0.5), percentile(n, 0.5));
        println!(
            "| {what} (MiB/s, median of 3) | {:.0} | {:.0}{native_what} | {:.2} |",
            mibs(size, w),
            mibs(size, n),
            n.as_secs_f64() / w.as_secs_f64()
        );
    };
    row(
        &format!("put {gib:.2} GiB, adapter write + fsync"),
        &mut w_put,
        &mut n_put,
        " (copy + fsync)",
    );
    row(
        &format!("put {gib:.2} GiB, `save_file` incl. sha256 + manifest"),
        &mut s_put,
        &mut n_sha.clone(),
        " (copy + sha256 + fsync)",
    );
    row(
        &format!("get {gib:.2} GiB, adapter read"),
        &mut w_get,
        &mut n_get,
        " (read)",
    );
    row(
        &format!("get {gib:.2} GiB to a file, `load_to_path` incl. sha256"),
        &mut s_get,
        &mut n_sha,
        " (copy + sha256 + fsync)",
    );

    // Small objects: 4 KiB put and get latency.
    let small = vec![9u8; 4096];
    let n = 500;
    let (mut wp, mut wg, mut np, mut ng) = (vec![], vec![], vec![], vec![]);
    for i in 0..n {
        let p = ObjectPath::parse(&format!("small/{i}")).unwrap();
        let t = Instant::now();
        let mut w = adapter.write(&p, PutMode::Overwrite, Some(4096)).await.unwrap();
        w.append(Bytes::from(small.clone())).await.unwrap();
        w.finish().await.unwrap();
        wp.push(t.elapsed());
        let t = Instant::now();
        let mut r = adapter.read(&p, None).await.unwrap();
        while r.next_chunk(CHUNK).await.unwrap().is_some() {}
        wg.push(t.elapsed());
        // Native does what the adapter does: temp file, fsync, rename.
        let f = scratch.join(format!("s{i}"));
        let tmp = scratch.join(format!(".s{i}.tmp"));
        let t = Instant::now();
        let mut file = std::fs::File::create(&tmp).unwrap();
        file.write_all(&small).unwrap();
        file.sync_all().unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        np.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(std::fs::read(&f).unwrap());
        ng.push(t.elapsed());
    }
    for (what, w, nat) in [("put", &mut wp, &mut np), ("get", &mut wg, &mut ng)] {
        let (w50, n50) = (percentile(w, 0.5), percentile(nat, 0.5));
        let (w99, n99) = (percentile(w, 0.99), percentile(nat, 0.99));
        println!(
            "| 4 KiB {what} latency p50 / p99 ({n} ops) | {w50:.0?} / {w99:.0?} | {n50:.0?} / {n99:.0?} | {:.2} (p50) |",
            w50.as_secs_f64() / n50.as_secs_f64()
        );
    }

    // Fixed cost per operation: a fresh instance, and the adapter's open().
    let mut inst = vec![];
    let mut open = vec![];
    for _ in 0..2000 {
        let (i, o) = wasm.probe_instance().await.unwrap();
        inst.push(i);
        open.push(o);
    }
    println!(
        "| instance creation p50 / p99 (2,000 fresh instances) | {:.1?} / {:.1?} | — | — |",
        percentile(&mut inst, 0.5),
        percentile(&mut inst, 0.99)
    );
    println!(
        "| adapter `open` in a fresh instance p50 / p99 | {:.1?} / {:.1?} | — | — |",
        percentile(&mut open, 0.5),
        percentile(&mut open, 0.99)
    );
    println!(
        "| peak RSS of the process (MiB): adapter put / save_file / adapter get / load_to_path | {rss_wput:.0} / {rss_sput:.0} / {rss_wget:.0} / {rss_sget:.0} | — | — |"
    );
    let _ = std::fs::remove_dir_all(&root);
}
