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
