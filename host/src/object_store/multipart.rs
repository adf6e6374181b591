//! Multipart uploads onto the contract's append-only writer.
//!
//! Parts may be put concurrently and finish in any order (object_store's
//! `WriteMultipart` runs them as tasks; its suite puts parts 2, 3, 1 and
//! 2, 0, 1). A part is appended when every part before it is; one that
//! arrives early is parked, in memory up to the store's
//! [`with_parked_memory`](super::WharfStore::with_parked_memory), past that
//! in an anonymous temporary file, and appended as soon as its turn comes.

use super::WharfStore;
use super::error::{generic, message, not_implemented, to_os};
use crate::adapter::ObjectWriter;
use async_trait::async_trait;
use bytes::Bytes;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{MultipartId, MultipartUpload, PutMultipartOptions, PutPayload, PutResult, Result, UploadPart};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Bytes read back from a spilled part at a time.
const SPILL_CHUNK: usize = 1 << 20;

/// One upload's writer and the parts waiting for their turn.
struct Assembly {
    writer: Option<Box<dyn ObjectWriter>>,
    location: Path,
    max_chunk: usize,
    /// Index of the next part to append.
    next: usize,
    parked: BTreeMap<usize, Parked>,
    parked_in_memory: usize,
    parked_memory_max: usize,
    /// Why the upload can no longer complete (a failed append).
    failed: Option<String>,
}

enum Parked {
    Memory(PutPayload),
    File(tokio::fs::File),
}

type Shared = Arc<tokio::sync::Mutex<Assembly>>;

impl Assembly {
    fn new(writer: Box<dyn ObjectWriter>, location: Path, max_chunk: usize, parked_memory_max: usize) -> Shared {
        Arc::new(tokio::sync::Mutex::new(Assembly {
            writer: Some(writer),
            location,
            max_chunk,
            next: 0,
            parked: BTreeMap::new(),
            parked_in_memory: 0,
            parked_memory_max,
            failed: None,
        }))
    }

    fn check(&self) -> Result<()> {
        match (&self.failed, &self.writer) {
            (Some(why), _) => Err(message(format!("upload to `{}` failed: {why}", self.location))),
            (None, None) => Err(message(format!("upload to `{}` is already over", self.location))),
            (None, Some(_)) => Ok(()),
        }
    }

    /// Part `idx` arrived: appended now with every parked part it
    /// unblocks, or parked.
    async fn put(&mut self, idx: usize, data: PutPayload) -> Result<()> {
        self.check()?;
        if idx < self.next || self.parked.contains_key(&idx) {
            return Err(message(format!(
                "upload to `{}`: part {idx} was already put (parts cannot be replaced: they are appended)",
                self.location
            )));
        }
        if idx > self.next {
            return self.park(idx, data).await;
        }
        let result = self.append_run(data).await;
        if let Err(e) = &result {
            self.failed = Some(e.to_string());
            // Nothing of a failed upload may become visible.
            if let Some(w) = self.writer.take() {
                let _ = w.abort().await;
            }
            self.parked.clear();
        }
        result
    }

    /// Appends `data` (the next part) and the parked parts that follow it.
    async fn append_run(&mut self, data: PutPayload) -> Result<()> {
        self.append_payload(&data).await?;
        self.next += 1;
        while let Some(part) = self.parked.remove(&self.next) {
            match part {
                Parked::Memory(data) => {
                    self.parked_in_memory -= data.content_length();
                    self.append_payload(&data).await?;
                }
                Parked::File(mut file) => {
                    file.seek(std::io::SeekFrom::Start(0)).await.map_err(generic)?;
                    let mut buf = vec![0u8; SPILL_CHUNK.min(self.max_chunk)];
                    loop {
                        let n = file.read(&mut buf).await.map_err(generic)?;
                        if n == 0 {
                            break;
                        }
                        self.append(Bytes::copy_from_slice(&buf[..n])).await?;
                    }
                }
            }
            self.next += 1;
        }
        Ok(())
    }

    async fn append_payload(&mut self, data: &PutPayload) -> Result<()> {
        for chunk in data.iter() {
            for piece in super::pieces(chunk, self.max_chunk) {
                self.append(piece).await?;
            }
        }
        Ok(())
    }

    async fn append(&mut self, piece: Bytes) -> Result<()> {
        let writer = self.writer.as_mut().expect("checked before appending");
        writer.append(piece).await.map_err(|e| to_os(e, self.location.as_ref()))
    }

    async fn park(&mut self, idx: usize, data: PutPayload) -> Result<()> {
        let len = data.content_length();
        if self.parked_in_memory + len <= self.parked_memory_max {
            self.parked_in_memory += len;
            self.parked.insert(idx, Parked::Memory(data));
            return Ok(());
        }
        let file = tokio::task::spawn_blocking(tempfile::tempfile)
            .await
            .map_err(generic)?
            .map_err(generic)?;
        let mut file = tokio::fs::File::from_std(file);
        for chunk in data.iter() {
            file.write_all(chunk).await.map_err(generic)?;
        }
        file.flush().await.map_err(generic)?;
        self.parked.insert(idx, Parked::File(file));
        Ok(())
    }

    /// Commits the object once parts `0..parts` are all appended.
    async fn complete(&mut self, parts: usize) -> Result<PutResult> {
        self.check()?;
        if self.next != parts || !self.parked.is_empty() {
            let missing: Vec<usize> = (self.next..parts).filter(|i| !self.parked.contains_key(i)).collect();
            return Err(message(format!(
                "upload to `{}`: cannot complete with {parts} parts; parts {missing:?} never arrived",
                self.location
            )));
        }
        let writer = self.writer.take().expect("checked above");
        let meta = writer.finish().await.map_err(|e| to_os(e, self.location.as_ref()))?;
        Ok(super::put_result(meta))
    }

    async fn abort(&mut self) -> Result<()> {
        self.parked.clear();
        match self.writer.take() {
            Some(w) => w.abort().await.map_err(|e| to_os(e, self.location.as_ref())),
            None => Ok(()),
        }
    }
}

/// What `put_multipart` returns: parts numbered in the order `put_part`
/// is called.
pub(super) struct Upload {
    assembly: Shared,
    /// Parts handed out so far.
    issued: usize,
}

impl Upload {
    pub(super) fn new(
        writer: Box<dyn ObjectWriter>,
        location: Path,
        max_chunk: usize,
        parked_memory_max: usize,
    ) -> Self {
        Upload {
            assembly: Assembly::new(writer, location, max_chunk, parked_memory_max),
            issued: 0,
        }
    }
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("wharf::object_store::Upload")
            .field("issued", &self.issued)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl MultipartUpload for Upload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let idx = self.issued;
        self.issued += 1;
        let assembly = self.assembly.clone();
        Box::pin(async move { assembly.lock().await.put(idx, data).await })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.assembly.lock().await.complete(self.issued).await
    }

    async fn abort(&mut self) -> Result<()> {
        self.assembly.lock().await.abort().await
    }
}

/// The uploads a store's [`MultipartStore`] side has open, by id: they
/// live in this process (a writer is a live adapter instance), so an id is
/// good only with the store that made it and its clones.
#[derive(Default)]
pub(super) struct Uploads {
    next_id: AtomicU64,
    open: std::sync::Mutex<HashMap<String, (Path, Shared)>>,
}

impl Uploads {
    fn get(&self, path: &Path, id: &str) -> Result<Shared> {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.get(id) {
            Some((p, a)) if p == path => Ok(a.clone()),
            _ => Err(object_store::Error::NotFound {
                path: path.to_string(),
                source: format!("no multipart upload {id:?} open for this path in this store").into(),
            }),
        }
    }

    fn remove(&self, path: &Path, id: &str) -> Result<Shared> {
        let found = self.get(path, id)?;
        self.open.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
        Ok(found)
    }
}

#[async_trait]
impl MultipartStore for WharfStore {
    async fn create_multipart(&self, path: &Path) -> Result<MultipartId> {
        let writer = self.open_writer(path, crate::PutMode::Overwrite, None).await?;
        let id = self.uploads.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let assembly = Assembly::new(writer, path.clone(), self.max_chunk(), self.parked_memory);
        self.uploads
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), (path.clone(), assembly));
        Ok(id)
    }

    async fn create_multipart_opts(&self, path: &Path, opts: PutMultipartOptions) -> Result<MultipartId> {
        if !opts.attributes.is_empty() || !opts.tags.is_empty() {
            return Err(not_implemented(
                "multipart upload with attributes or tags (the contract stores none)",
            ));
        }
        self.create_multipart(path).await
    }

    async fn put_part(&self, path: &Path, id: &MultipartId, part_idx: usize, data: PutPayload) -> Result<PartId> {
        let assembly = self.uploads.get(path, id)?;
        assembly.lock().await.put(part_idx, data).await?;
        Ok(PartId {
            content_id: part_idx.to_string(),
        })
    }

    async fn complete_multipart(&self, path: &Path, id: &MultipartId, parts: Vec<PartId>) -> Result<PutResult> {
        // Appended in index order: the list must name parts 0, 1, 2...
        if let Some((i, p)) = parts.iter().enumerate().find(|(i, p)| p.content_id != i.to_string()) {
            return Err(object_store::Error::NotSupported {
                source: format!(
                    "complete `{path}`: part {i} of the list is part {}; wharf appends parts in index order, \
                     so the list must be every part, in order",
                    p.content_id
                )
                .into(),
            });
        }
        let assembly = self.uploads.remove(path, id)?;
        let mut assembly = assembly.lock().await;
        assembly.complete(parts.len()).await
    }

    async fn abort_multipart(&self, path: &Path, id: &MultipartId) -> Result<()> {
        let assembly = self.uploads.remove(path, id)?;
        let mut assembly = assembly.lock().await;
        assembly.abort().await
    }
}
