//! The byte-transforming layers over `local_filesystem`, against no layers,
//! in the same run: put and get throughput of each layer alone and of all
//! three stacked, and compression's ratio on generated model files.
//! Prints a Markdown section and writes it to `/tmp/wharf-bench-layers.md`.
//! `cargo bench -p wharf-bench --bench layers`
//! Size: `WHARF_BENCH_BYTES` (default 1 GiB); `WHARF_BENCH_ONLY=checksum`
//! runs only the stacks whose name contains it (and no layers).

use bytes::Bytes;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wharf::conformance::DataStream;
use wharf::layers::{AgeIdentity, Checksum, ChecksumAlgorithm, Compression, Encryption, Stack};
use wharf::{Adapter, ObjectPath, PutMode};
use wharf_bench::{median, peak_rss_mib, peak_rss_reset};

const CHUNK: usize = 4 << 20;
const ROUNDS: usize = 5;

fn mibs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

fn stacks() -> Vec<(&'static str, Stack)> {
    let id = AgeIdentity::generate();
    let enc = Encryption::new()
        .with_recipients([id.recipient()])
        .with_identities([id]);
    let zstd = Compression::new();
    vec![
        ("no layers", Stack::new()),
        ("checksum", Stack::new().layer(Checksum::new())),
        (
            "checksum (sha256)",
            Stack::new().layer(Checksum::new().with_algorithm(ChecksumAlgorithm::Sha256)),
        ),
        ("compression (zstd 3)", Stack::new().layer(zstd)),
        ("encryption", Stack::new().layer(enc.clone())),
        (
            "checksum + compression + encryption",
            Stack::new().layer(Checksum::new()).layer(zstd).layer(enc),
        ),
    ]
}

/// Streams `src` into `path` through `a`; the time.
async fn put(a: &dyn Adapter, path: &ObjectPath, src: &Path) -> Duration {
    let size = std::fs::metadata(src).unwrap().len();
    let start = Instant::now();
    let mut w = a.write(path, PutMode::Overwrite, Some(size)).await.unwrap();
    let mut input = std::fs::File::open(src).unwrap();
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
    start.elapsed()
}

/// Reads `path` through `a` to the end; the time.
async fn get(a: &dyn Adapter, path: &ObjectPath, size: u64) -> Duration {
    let start = Instant::now();
    let mut r = a.read(path, None).await.unwrap();
    let mut total = 0u64;
    while let Some(c) = r.next_chunk(CHUNK).await.unwrap() {
        total += c.len() as u64;
    }
    assert_eq!(total, size);
    start.elapsed()
}

/// A safetensors file of `size` bytes (about): tensors of 4096 × 1024
/// weights drawn from N(0, 0.02), as float32 or float16.
fn safetensors(path: &Path, size: u64, f16: bool) {
    let width = if f16 { 2 } else { 4 };
    let tensor_bytes = 4096 * 1024 * width;
    let tensors = (size / tensor_bytes).max(1);
    let dtype = if f16 { "F16" } else { "F32" };
    let mut header = String::from("{\"__metadata__\":{\"format\":\"pt\"}");
    for t in 0..tensors {
        let (a, b) = (t * tensor_bytes, (t + 1) * tensor_bytes);
        write!(
            header,
            ",\"model.layers.{t}.mlp.weight\":{{\"dtype\":\"{dtype}\",\"shape\":[4096,1024],\"data_offsets\":[{a},{b}]}}"
        )
        .unwrap();
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    f.write_all(&(header.len() as u64).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        ((state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    let mut buf = Vec::with_capacity(1 << 20);
    for _ in 0..tensors * 4096 * 1024 / 2 {
        // Box-Muller: two normal draws per pair of uniforms.
        let (u1, u2) = (uniform(), uniform());
        let r = (-2.0 * u1.ln()).sqrt() * 0.02;
        let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
        for z in [r * c, r * s] {
            let z = z as f32;
            if f16 {
                buf.extend_from_slice(&f16_bits(z).to_le_bytes());
            } else {
                buf.extend_from_slice(&z.to_le_bytes());
            }
        }
        if buf.len() >= 1 << 20 {
            f.write_all(&buf).unwrap();
            buf.clear();
        }
    }
    f.write_all(&buf).unwrap();
    f.flush().unwrap();
}

/// IEEE 754 half precision of `x`, truncated.
fn f16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    let man = b & 0x7f_ffff;
    if exp >= 31 {
        return sign | 0x7c00;
    }
    if exp <= 0 {
        if exp < -10 {
            return sign;
        }
        return sign | ((man | 0x80_0000) >> (14 - exp)) as u16;
    }
    sign | ((exp as u16) << 10) | (man >> 13) as u16
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let size: u64 = std::env::var("WHARF_BENCH_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1 << 30);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-layers");
    let _ = std::fs::remove_dir_all(&root);
    let (store, scratch) = (root.join("store"), root.join("scratch"));
    std::fs::create_dir_all(&store).unwrap();
    std::fs::create_dir_all(&scratch).unwrap();
    let random = scratch.join("random.bin");
    {
        let mut f = std::fs::File::create(&random).unwrap();
        let mut d = DataStream::new(1, size);
        while let Some(c) = d.next_chunk(CHUNK) {
            f.write_all(&c).unwrap();
        }
    }
    let host = wharf_tests::local_host(&store);
    let base = host.adapter("local_filesystem").await.unwrap();
    let only = std::env::var("WHARF_BENCH_ONLY").unwrap_or_default();
    let stacks: Vec<(&str, Arc<dyn Adapter>)> = stacks()
        .into_iter()
        .enumerate()
        .filter(|(i, (name, _))| *i == 0 || name.contains(&only))
        .map(|(_, (name, s))| (name, s.apply(base.clone())))
        .collect();

    // Rounds rotate which stack goes first; medians per stack.
    let n = stacks.len();
    let (mut puts, mut gets) = (vec![vec![]; n], vec![vec![]; n]);
    let (mut rss_put, mut rss_get, mut stored) = (vec![0f64; n], vec![0f64; n], vec![0u64; n]);
    for round in 0..ROUNDS {
        for k in 0..n {
            let i = (k + round) % n;
            let (_, a) = &stacks[i];
            let path = ObjectPath::parse(&format!("bench/{i}.bin")).unwrap();
            peak_rss_reset();
            puts[i].push(put(a.as_ref(), &path, &random).await);
            rss_put[i] = rss_put[i].max(peak_rss_mib());
            peak_rss_reset();
            gets[i].push(get(a.as_ref(), &path, size).await);
            rss_get[i] = rss_get[i].max(peak_rss_mib());
            stored[i] = std::fs::metadata(store.join(path.as_str())).unwrap().len();
        }
    }
    let gib = size as f64 / (1u64 << 30) as f64;
    let mut md = String::new();
    writeln!(md, "## Transform layers over local_filesystem\n").unwrap();
    writeln!(
        md,
        "`cargo bench -p wharf-bench --bench layers` (release). {gib:.2} GiB of random (incompressible) \
         bytes put (adapter write from a file in 4 MiB appends, fsync) and got (adapter read to the end) \
         through each stack; {ROUNDS} rounds, the order of the stacks rotating each round; medians. \
         Ratios are to the no-layer row of the same run.\n"
    )
    .unwrap();
    writeln!(
        md,
        "| stack | put MiB/s | put ratio | get MiB/s | get ratio | stored / logical | peak RSS put / get (MiB) |"
    )
    .unwrap();
    writeln!(md, "|---|---|---|---|---|---|---|").unwrap();
    let (base_put, base_get) = (median(&mut puts[0]), median(&mut gets[0]));
    for i in 0..n {
        let (p, g) = (median(&mut puts[i]), median(&mut gets[i]));
        writeln!(
            md,
            "| {} | {:.0} | {:.2} | {:.0} | {:.2} | {:.4} | {:.0} / {:.0} |",
            stacks[i].0,
            mibs(size, p),
            base_put.as_secs_f64() / p.as_secs_f64(),
            mibs(size, g),
            base_get.as_secs_f64() / g.as_secs_f64(),
            stored[i] as f64 / size as f64,
            rss_put[i],
            rss_get[i],
        )
        .unwrap();
    }

    // Compression on model-like files: ratio and speed.
    if stacks.iter().any(|(name, _)| name.contains("compression")) {
        writeln!(
            md,
            "\nCompression on generated safetensors files (weights drawn from N(0, 0.02), \
             tensors of 4096 × 1024), one round each:\n"
        )
        .unwrap();
        writeln!(
            md,
            "| file | stack | stored / logical | put MiB/s | get MiB/s |\n|---|---|---|---|---|"
        )
        .unwrap();
        for (what, f16) in [("float32", false), ("float16", true)] {
            let file = scratch.join(format!("model-{what}.safetensors"));
            safetensors(&file, size, f16);
            let len = std::fs::metadata(&file).unwrap().len();
            for (i, (name, a)) in stacks.iter().enumerate() {
                if !(i == 0 || name.contains("compression")) {
                    continue;
                }
                let path = ObjectPath::parse(&format!("model/{what}-{i}.safetensors")).unwrap();
                let p = put(a.as_ref(), &path, &file).await;
                let g = get(a.as_ref(), &path, len).await;
                let on_disk = std::fs::metadata(store.join(path.as_str())).unwrap().len();
                writeln!(
                    md,
                    "| {what}, {:.2} GiB | {name} | {:.3} | {:.0} | {:.0} |",
                    len as f64 / (1u64 << 30) as f64,
                    on_disk as f64 / len as f64,
                    mibs(len, p),
                    mibs(len, g)
                )
                .unwrap();
            }
            let _ = std::fs::remove_file(&file);
        }
    }
    print!("{md}");
    std::fs::write("/tmp/wharf-bench-layers.md", &md).unwrap();
    let _ = std::fs::remove_dir_all(&root);
}
