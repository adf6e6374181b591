//! The registry's costs per backend, in the same run: a transaction (one
//! small version saved and an alias moved, then `commit`) against the same
//! save and alias move without a transaction, with the commit's own share;
//! an alias move against the least a compare-and-swap needs (a read, then a
//! conditional put); and `gc` over 10,000 objects against listing them. Prints a Markdown report
//! and writes it to /tmp/wharf-bench-registry.md.
//!
//! `scripts/bench.sh registry` (starts s3s-fs, PostgreSQL and redis).
//! `WHARF_BENCH_OPS` (default 200) operations per latency row;
//! `WHARF_BENCH_GC_OBJECTS` (default 10,000).

use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf::{Adapter, GcOptions, ObjectPath, PutMode, SaveOptions, StorageService};
use wharf_tests::{host_from_toml, server_env, unique};

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

async fn put(a: &Arc<dyn Adapter>, path: &str, mode: PutMode, bytes: &'static [u8]) -> Option<String> {
    let mut w = a
        .write(&ObjectPath::parse(path).unwrap(), mode, Some(bytes.len() as u64))
        .await
        .unwrap();
    w.append(Bytes::from_static(bytes)).await.unwrap();
    w.finish().await.unwrap().etag
}

fn config(backend: &str, prefix: &str, dir: &std::path::Path) -> String {
    match backend {
        "local_filesystem" => {
            std::fs::create_dir_all(dir.join("data")).unwrap();
            "[backends.b]\nplugin = \"local_filesystem\"\n[backends.b.config]\nroot = \"/data\"\n[[backends.b.grants.dirs]]\nhost = \"data\"\nguest = \"/data\"\ncreate = true\n".into()
        }
        "aws_s3 (s3s-fs)" => format!(
            "[backends.b]\nplugin = \"aws_s3\"\n[backends.b.config]\nendpoint = \"{}\"\nbucket = \"wharf-bench\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\nprefix = \"{prefix}/\"\n[backends.b.grants]\nhttp = [\"http://127.0.0.1:*\"]\n",
            server_env("WHARF_TEST_S3S_URL"),
            server_env("WHARF_TEST_S3S_ACCESS_KEY"),
            server_env("WHARF_TEST_S3S_SECRET_KEY")
        ),
        "database (PostgreSQL)" => {
            let addr = server_env("WHARF_TEST_PG_ADDR");
            format!(
                "[backends.b]\nplugin = \"database\"\n[backends.b.config]\naddress = \"{addr}\"\nuser = \"{}\"\npassword = \"{}\"\ndbname = \"{}\"\ntable_prefix = \"{}_\"\n[backends.b.grants]\ntcp = [\"{addr}\"]\n",
                server_env("WHARF_TEST_PG_USER"),
                server_env("WHARF_TEST_PG_PASSWORD"),
                server_env("WHARF_TEST_PG_DB"),
                prefix.replace('-', "_")
            )
        }
        "redis" => {
            let addr = server_env("WHARF_TEST_REDIS_ADDR");
            format!(
                "[backends.b]\nplugin = \"redis\"\n[backends.b.config]\naddress = \"{addr}\"\npassword = \"{}\"\nprefix = \"{prefix}:\"\n[backends.b.grants]\ntcp = [\"{addr}\"]\n",
                server_env("WHARF_TEST_REDIS_PASSWORD")
            )
        }
        _ => unreachable!(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let ops: usize = std::env::var("WHARF_BENCH_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let gc_objects: usize = std::env::var("WHARF_BENCH_GC_OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut report = String::new();
    report.push_str(&format!(
        "| backend | save + alias move in a transaction p50 / p99 | of which `commit` p50 / p99 | the same without a transaction p50 / p99 | ratio (p50) | alias move p50 / p99 | read + CAS put p50 / p99 | ratio (p50) | gc over {gc_objects} objects | listing them | ratio |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    ));
    for backend in ["local_filesystem", "aws_s3 (s3s-fs)", "database (PostgreSQL)", "redis"] {
        let dir = tempfile::tempdir().unwrap();
        let prefix = unique("reg").trim_end_matches('/').replace(['.'], "-").to_lowercase();
        let host = host_from_toml(&config(backend, &prefix, dir.path()), dir.path());
        let svc: StorageService = host.service("b").await.unwrap();
        let a = svc.adapter().clone();
        let opts = SaveOptions {
            model: Some("m".into()),
            ..Default::default()
        };
        svc.save_stream("m.bin", &b"first"[..], &opts).await.unwrap();

        // Transactions, interleaved with the same work done without one.
        let (mut whole, mut commit, mut plain) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ops {
            let t0 = Instant::now();
            let mut tx = svc.transaction().unwrap();
            let info = tx.save_stream("m.bin", &b"0123456789abcdef"[..], &opts).await.unwrap();
            tx.set_alias("m", "prod", info.version.as_deref().unwrap())
                .await
                .unwrap();
            let t = Instant::now();
            tx.commit().await.unwrap();
            commit.push(t.elapsed());
            whole.push(t0.elapsed());
            let t = Instant::now();
            let info = svc.save_stream("m.bin", &b"0123456789abcdef"[..], &opts).await.unwrap();
            svc.set_alias("m", "plain", info.version.as_deref().unwrap())
                .await
                .unwrap();
            plain.push(t.elapsed());
        }
        // Alias moves against a read then a compare-and-swap put.
        let (mut moves, mut cas) = (Vec::new(), Vec::new());
        let mut etag = put(&a, "base/cas", PutMode::Overwrite, b"x").await.unwrap();
        for i in 0..ops {
            let t = Instant::now();
            svc.set_alias("m", "staging", &(1 + i % 50).to_string()).await.unwrap();
            moves.push(t.elapsed());
            let t = Instant::now();
            let mut r = a.read(&ObjectPath::parse("base/cas").unwrap(), None).await.unwrap();
            while r.next_chunk(1 << 20).await.unwrap().is_some() {}
            etag = put(&a, "base/cas", PutMode::Update(etag), b"y").await.unwrap();
            cas.push(t.elapsed());
        }

        // gc over many objects: orphaned uploads (what it removes).
        // Written directly (local disk) or 16 at a time through the adapter.
        if backend == "local_filesystem" {
            let root = dir.path().join("data/models/g/_wharf/uploads");
            for i in 0..gc_objects {
                let d = root.join(format!("{i:016x}"));
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join("f"), b"orphan").unwrap();
            }
        } else {
            use futures::StreamExt;
            futures::stream::iter(0..gc_objects)
                .map(|i| {
                    let a = a.clone();
                    async move {
                        put(
                            &a,
                            &format!("models/g/_wharf/uploads/{i:016x}/f"),
                            PutMode::Overwrite,
                            b"orphan",
                        )
                        .await
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await;
        }
        let (gc_time, list_time) = {
            let t = Instant::now();
            let mut n = 0;
            let mut cursor = None;
            loop {
                let page = a.list("models/", cursor.as_deref(), 1000).await.unwrap();
                n += page.entries.len();
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            let list_time = t.elapsed();
            assert!(n >= gc_objects);
            let t = Instant::now();
            let r = svc
                .gc(&GcOptions {
                    older_than: Duration::ZERO,
                    dry_run: false,
                })
                .await
                .unwrap();
            assert_eq!(r.objects as usize, gc_objects, "{r:?}");
            (Some(t.elapsed()), Some(list_time))
        };
        let (w50, w99) = (pct(&mut whole, 0.5), pct(&mut whole, 0.99));
        let (c50, c99) = (pct(&mut commit, 0.5), pct(&mut commit, 0.99));
        let (p50, p99) = (pct(&mut plain, 0.5), pct(&mut plain, 0.99));
        let (m50, m99, s50, s99) = (
            pct(&mut moves, 0.5),
            pct(&mut moves, 0.99),
            pct(&mut cas, 0.5),
            pct(&mut cas, 0.99),
        );
        let row = format!(
            "| {backend} | {} / {} | {} / {} | {} / {} | {:.1} | {} / {} | {} / {} | {:.1} | {} | {} | {} |\n",
            us(w50),
            us(w99),
            us(c50),
            us(c99),
            us(p50),
            us(p99),
            w50.as_secs_f64() / p50.as_secs_f64(),
            us(m50),
            us(m99),
            us(s50),
            us(s99),
            m50.as_secs_f64() / s50.as_secs_f64(),
            gc_time.map_or("—".into(), |d| format!("{:.2} s", d.as_secs_f64())),
            list_time.map_or("—".into(), |d| format!("{:.2} s", d.as_secs_f64())),
            match (gc_time, list_time) {
                (Some(g), Some(l)) => format!("{:.1}", g.as_secs_f64() / l.as_secs_f64()),
                _ => "—".into(),
            }
        );
        eprint!("{row}");
        report.push_str(&row);
    }
    println!("{report}");
    std::fs::write("/tmp/wharf-bench-registry.md", &report).unwrap();
}
