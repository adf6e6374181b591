//! CPU work of a transforming layer, off the async workers.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::sync::mpsc as sync_mpsc;

/// Below this much work [`cpu`] runs inline: a thread hop costs more.
const CPU_INLINE: u64 = 128 << 10;

/// Bytes a [`WholeHash`] hashes inline before moving to its own thread.
const HASH_INLINE: u64 = 1 << 20;
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

/// sha256 of a stream. Past [`HASH_INLINE`] bytes it moves to a thread of
/// the blocking pool, so it runs beside the per-chunk work. Once
/// [`WholeHash::threaded`], `update` and `finish` may block: call them
/// inside [`cpu`] with enough work to leave the async worker.
pub(in crate::layers) struct WholeHash {
    state: Option<Sha256>,
    fed: u64,
    thread: Option<(sync_mpsc::SyncSender<Bytes>, sync_mpsc::Receiver<[u8; 32]>)>,
}

impl WholeHash {
    pub(in crate::layers) fn new() -> Self {
        WholeHash {
            state: Some(Sha256::new()),
            fed: 0,
            thread: None,
        }
    }

    /// Whether hashing moved to its own thread.
    pub(in crate::layers) fn threaded(&self) -> bool {
        self.thread.is_some()
    }

    pub(in crate::layers) fn update(&mut self, b: Bytes) {
        self.fed += b.len() as u64;
        if let Some((tx, _)) = &self.thread {
            // The thread ends only when `tx` is dropped.
            let _ = tx.send(b);
            return;
        }
        let Some(state) = self.state.as_mut() else { return };
        state.update(&b);
        if self.fed < HASH_INLINE {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (tx, rx) = sync_mpsc::sync_channel::<Bytes>(4);
        let (done_tx, done) = sync_mpsc::sync_channel(1);
        let mut h = self.state.take().expect("checked above");
        rt.spawn_blocking(move || {
            while let Ok(b) = rx.recv() {
                h.update(&b);
            }
            let _ = done_tx.send(h.finalize().into());
        });
        self.thread = Some((tx, done));
    }

    pub(in crate::layers) fn finish(self) -> [u8; 32] {
        match (self.state, self.thread) {
            (_, Some((tx, done))) => {
                drop(tx);
                done.recv().expect("the hashing thread sends its digest")
            }
            (Some(state), None) => state.finalize().into(),
            (None, None) => unreachable!("a WholeHash has a state or a thread"),
        }
    }
}
