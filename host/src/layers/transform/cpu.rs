//! CPU work of a transforming layer, off the async workers.

/// Below this much work [`cpu`] runs inline: a thread hop costs more.
const CPU_INLINE: u64 = 128 << 10;

/// Runs `f`, about `work` bytes of CPU work, on tokio's blocking pool, or
/// inline when it is small.
pub(in crate::layers) async fn cpu<T: Send + 'static>(work: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    if work < CPU_INLINE {
        return f();
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(t) => t,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
