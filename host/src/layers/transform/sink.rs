//! Stored bytes written behind a transforming layer, by a task, in the
//! sizes the inner adapter accepts.

use crate::adapter::{Capabilities, ObjectMeta, ObjectWriter};
use crate::error::{Error, ErrorKind, Result};
use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Preferred size of the appends sent to the inner writer (within its
/// `write_min_chunk..=write_max_chunk`).
const APPEND_SIZE: u64 = 4 << 20;

/// Pieces at least this large are appended as they come, not gathered.
const DIRECT_APPEND: u64 = 1 << 20;
enum SinkMsg {
    Data(Bytes),
    Finish,
    Abort,
}

/// Stored bytes on their way to the inner writer, appended by a task in
/// pieces of `APPEND_SIZE` clamped to the inner adapter's
/// `write_min_chunk..=write_max_chunk` (only the last may be smaller), so
/// whatever the caller appends, the inner adapter gets appends it accepts.
/// Dropped without `finish`, it drops the inner writer, which discards.
pub(in crate::layers) struct Sink {
    tx: mpsc::Sender<SinkMsg>,
    task: Option<JoinHandle<Result<Option<ObjectMeta>>>>,
    failed: Option<Error>,
}

impl Sink {
    pub(in crate::layers) fn spawn(inner: Box<dyn ObjectWriter>, caps: &Capabilities) -> Self {
        let (tx, rx) = mpsc::channel(2);
        let max = caps.write_max_chunk.clamp(1, usize::MAX as u64) as usize;
        let min = (caps.write_min_chunk as usize).min(max);
        let task = tokio::spawn(drive_sink(inner, rx, min, max));
        Sink {
            tx,
            task: Some(task),
            failed: None,
        }
    }

    pub(in crate::layers) async fn send(&mut self, b: Bytes) -> Result<()> {
        if b.is_empty() {
            return Ok(());
        }
        if self.tx.send(SinkMsg::Data(b)).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Appends what is left, finishes the inner writer, and returns its meta.
    pub(in crate::layers) async fn finish(mut self) -> Result<ObjectMeta> {
        if self.tx.send(SinkMsg::Finish).await.is_err() {
            return Err(self.failure().await);
        }
        match self.join().await {
            Ok(Some(meta)) => Ok(meta),
            Ok(None) => Err(Error::invalid("the writer already finished or aborted")),
            Err(e) => Err(e),
        }
    }

    /// [`Sink::finish`], the meta seen through the layer: `logical` bytes.
    pub(in crate::layers) async fn finish_logical(self, logical: u64) -> Result<ObjectMeta> {
        Ok(super::logical_meta(self.finish().await?, logical))
    }

    pub(in crate::layers) async fn abort(mut self) -> Result<()> {
        if self.tx.send(SinkMsg::Abort).await.is_err() {
            // The task already ended (an append failed): nothing is visible.
            return Ok(());
        }
        self.join().await.map(|_| ())
    }

    async fn join(&mut self) -> Result<Option<ObjectMeta>> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let Some(task) = self.task.take() else {
            return Err(Error::invalid("the writer already finished or aborted"));
        };
        let r = task
            .await
            .unwrap_or_else(|e| Err(Error::new(ErrorKind::Io, format!("the write task failed: {e}"))));
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    /// Why the task stopped taking data.
    async fn failure(&mut self) -> Error {
        match self.join().await {
            Err(e) => e,
            Ok(_) => Error::invalid("the writer already finished or aborted"),
        }
    }
}

async fn drive_sink(
    mut inner: Box<dyn ObjectWriter>,
    mut rx: mpsc::Receiver<SinkMsg>,
    min: usize,
    max: usize,
) -> Result<Option<ObjectMeta>> {
    let preferred = (APPEND_SIZE as usize).clamp(min.max(1), max);
    // A piece this large goes on as it is, without a copy.
    let direct = (DIRECT_APPEND as usize).clamp(min.max(1), max);
    let mut pending = BytesMut::new();
    loop {
        match rx.recv().await {
            Some(SinkMsg::Data(b)) => {
                if pending.is_empty() && b.len() >= direct && b.len() <= max {
                    inner.append(b).await?;
                    continue;
                }
                pending.extend_from_slice(&b);
                while pending.len() >= preferred {
                    let n = pending.len().min(max);
                    inner.append(pending.split_to(n).freeze()).await?;
                }
            }
            Some(SinkMsg::Finish) => {
                while !pending.is_empty() {
                    let n = pending.len().min(max);
                    inner.append(pending.split_to(n).freeze()).await?;
                }
                return inner.finish().await.map(Some);
            }
            Some(SinkMsg::Abort) => {
                inner.abort().await?;
                return Ok(None);
            }
            // The layer's writer was dropped: dropping `inner` discards.
            None => return Ok(None),
        }
    }
}
