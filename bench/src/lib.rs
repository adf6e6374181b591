//! wharf's benchmarks (`benches/`), each comparing wharf with a native
//! baseline or the client users would pick instead, in the same run; this
//! library is what they all measure the same way. Run by `scripts/bench.sh`;
//! kept out of `scripts/test.sh`'s build, as the baselines' clients
//! (object_store, postgres, redis) are large.

use std::time::Duration;

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    fn malloc_trim(pad: usize) -> i32;
}

/// Starts a new peak-RSS measurement from the current RSS.
pub fn peak_rss_reset() {
    // glibc keeps freed buffers in per-thread arenas; without a trim, one
    // round's leftovers would count in the next one's peak.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the system.
    unsafe {
        malloc_trim(0);
    }
    // Writing 5 to clear_refs resets VmHWM (peak RSS) to the current RSS.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak RSS (VmHWM) since the last [`peak_rss_reset`], MiB.
pub fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// The median of some timings (sorts them).
pub fn median(mut v: impl AsMut<[Duration]>) -> Duration {
    let v = v.as_mut();
    v.sort();
    v[v.len() / 2]
}

/// Throughput in MiB/s.
pub fn mibs(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / (1 << 20) as f64 / d.as_secs_f64()
}

/// One large upload and download: times and peak RSS.
pub struct Sample {
    /// The upload.
    pub put: Duration,
    /// The streamed download.
    pub get: Duration,
    /// Peak RSS during the upload, MiB.
    pub put_rss: f64,
    /// Peak RSS during the download, MiB.
    pub get_rss: f64,
}

/// The workloads run through any `object_store::ObjectStore`, so a native
/// store and wharf's `WharfStore` run the same code.
pub mod store {
    use super::{Sample, peak_rss_mib, peak_rss_reset};
    use bytes::Bytes;
    use futures::StreamExt;
    use object_store::path::Path;
    use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    use wharf::conformance::DataStream;

    /// `size` bytes as a multipart upload of `part`-byte parts, `in_flight`
    /// at once (`WriteMultipart`), then a streamed `get`, then a delete.
    pub async fn large(store: &Arc<dyn ObjectStore>, key: &str, size: u64, part: usize, in_flight: usize) -> Sample {
        let path = Path::from(key);
        let mut data = DataStream::new(1, size);
        peak_rss_reset();
        let start = Instant::now();
        let upload = store.put_multipart(&path).await.unwrap();
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part);
        while let Some(chunk) = data.next_chunk(4 << 20) {
            writer.wait_for_capacity(in_flight).await.unwrap();
            writer.write(&chunk);
        }
        writer.finish().await.unwrap();
        let put = start.elapsed();
        let put_rss = peak_rss_mib();

        peak_rss_reset();
        let start = Instant::now();
        let mut stream = store.get(&path).await.unwrap().into_stream();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            total += chunk.unwrap().len() as u64;
        }
        let get = start.elapsed();
        assert_eq!(total, size);
        let get_rss = peak_rss_mib();
        store.delete(&path).await.unwrap();
        Sample {
            put,
            get,
            put_rss,
            get_rss,
        }
    }

    /// Mean latency of a `size`-byte put and of a get, over `count` keys
    /// under `prefix`.
    pub async fn small(store: &Arc<dyn ObjectStore>, prefix: &str, size: usize, count: usize) -> (Duration, Duration) {
        let body = Bytes::from(vec![7u8; size]);
        let start = Instant::now();
        for i in 0..count {
            let path = Path::from(format!("{prefix}/{i:04}"));
            store.put(&path, body.clone().into()).await.unwrap();
        }
        let put = start.elapsed() / count as u32;
        let start = Instant::now();
        for i in 0..count {
            let path = Path::from(format!("{prefix}/{i:04}"));
            let got = store.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(got.len(), size);
        }
        let get = start.elapsed() / count as u32;
        (put, get)
    }
}
