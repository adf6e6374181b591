//! Bytes between Python and a backend, streamed: a Python binary file read
//! as an `AsyncRead`, and [`Reader`] / [`Writer`], one object read at any
//! offset or written in pieces (what `open()` and fsspec's files use).

use crate::runtime::{Out, run, runtime};
use crate::service::Shared;
use bytes::{Buf, Bytes, BytesMut};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use sha2::{Digest, Sha256};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Mutex;
use wharf::service::CHUNK;
use wharf::{ByteRange, Error, ErrorKind, ObjectPath, ObjectReader, ObjectWriter, PutMode, StorageService};

/// Reads a Python binary file object (`read(n) -> bytes`) on a blocking
/// thread, a bounded two chunks ahead; the GIL is held only inside `read`.
/// Must be called inside the runtime.
pub fn python_file(file: Py<PyAny>, name: String) -> impl AsyncRead + Send + Unpin + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(2);
    tokio::task::spawn_blocking(move || {
        loop {
            let chunk = Python::attach(|py| -> PyResult<Bytes> {
                let got = file.call_method1(py, "read", (CHUNK,))?;
                let got = got.bind(py);
                if got.is_none() {
                    return Err(pyo3::exceptions::PyValueError::new_err(
                        "read() returned None (a non-blocking file with no data); pass a blocking binary file",
                    ));
                }
                // bytes are shared, not copied; bytearray and memoryview are copied once.
                let data: PyBackedBytes = match got.extract() {
                    Ok(b) => b,
                    Err(_) => py.get_type::<pyo3::types::PyBytes>().call1((got,))?.extract()?,
                };
                Ok(Bytes::from_owner(data))
            });
            let (item, last) = match chunk {
                Ok(b) if b.is_empty() => break,
                Ok(b) => (Ok(b), false),
                Err(e) => (Err(io::Error::other(format!("{name}: {e}"))), true),
            };
            if tx.blocking_send(item).is_err() || last {
                break; // the upload failed or stopped; nothing more to read
            }
        }
    });
    ChannelReader {
        rx,
        current: Bytes::new(),
    }
}

struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl AsyncRead for ChannelReader {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.current.is_empty() {
                let n = buf.remaining().min(self.current.len());
                buf.put_slice(&self.current[..n]);
                self.current.advance(n);
                return Poll::Ready(Ok(()));
            }
            match ready!(self.rx.poll_recv(cx)) {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Poll::Ready(Err(e)),
                None => return Poll::Ready(Ok(())),
            }
        }
    }
}

/// What a reader checks once every byte went through it in order.
pub struct Expect {
    pub size: u64,
    pub sha256: Option<String>,
}

/// One object, read at any offset: sequential reads continue one stream,
/// a seek starts a ranged read there. Read from start to end in order, the
/// bytes are checked against the expected sha256 (an `IntegrityError` at
/// the end otherwise); ranges alone cannot be.
#[pyclass(frozen, module = "wharf._native")]
pub struct Reader {
    state: Arc<Mutex<ReaderState>>,
    size: u64,
    path: String,
}

struct ReaderState {
    shared: Arc<Shared>,
    backend: String,
    service: StorageService,
    pid: u32,
    path: ObjectPath,
    expect: Expect,
    stream: Option<Box<dyn ObjectReader>>,
    /// Offset of the next byte `stream` (then `leftover`) yields.
    at: u64,
    leftover: Bytes,
    /// The sha256 of bytes `0..hashed`, while reads have been in order.
    hasher: Option<Sha256>,
    hashed: u64,
}

impl Reader {
    pub fn new(
        shared: Arc<Shared>,
        backend: String,
        service: StorageService,
        path: ObjectPath,
        expect: Expect,
    ) -> Self {
        Reader {
            size: expect.size,
            path: path.to_string(),
            state: Arc::new(Mutex::new(ReaderState {
                shared,
                backend,
                service,
                pid: std::process::id(),
                path,
                expect,
                stream: None,
                at: 0,
                leftover: Bytes::new(),
                hasher: Some(Sha256::new()),
                hashed: 0,
            })),
        }
    }
}

impl ReaderState {
    async fn read_at(&mut self, offset: u64, n: usize) -> wharf::Result<Vec<u8>> {
        if self.pid != std::process::id() {
            // Forked: the parent's connections and instances are not ours.
            std::mem::forget(self.stream.take());
            self.service = self.shared.service(Some(&self.backend)).await?;
            self.pid = std::process::id();
        }
        let size = self.expect.size;
        if offset >= size || n == 0 {
            return Ok(Vec::new());
        }
        let want = (n as u64).min(size - offset) as usize;
        if self.stream.is_none() || self.at != offset {
            self.stream = None;
            self.leftover = Bytes::new();
            let range = (offset > 0).then_some(ByteRange {
                start: offset,
                end: None,
            });
            self.stream = Some(self.service.adapter().read(&self.path, range).await?);
            self.at = offset;
        }
        let stream = self.stream.as_mut().expect("opened above");
        let mut out = Vec::with_capacity(want);
        while out.len() < want {
            if self.leftover.is_empty() {
                match stream.next_chunk((want - out.len()).max(64 << 10)).await? {
                    Some(c) => self.leftover = c,
                    None => break,
                }
            }
            let take = self.leftover.len().min(want - out.len());
            out.extend_from_slice(&self.leftover.split_to(take));
        }
        self.at = offset + out.len() as u64;
        let at = |e: Error| e.at(self.service.adapter().name(), "read", Some(self.path.as_str()));
        if out.len() < want {
            return Err(at(Error::new(
                ErrorKind::Integrity,
                format!("object has {} bytes, {size} were recorded", self.at),
            )));
        }
        match &mut self.hasher {
            Some(h) if self.hashed == offset => {
                h.update(&out);
                self.hashed += out.len() as u64;
            }
            // Out of order: this pass can no longer be checked.
            _ => self.hasher = None,
        }
        if self.hashed == size
            && let (Some(h), Some(want)) = (self.hasher.take(), &self.expect.sha256)
        {
            let got = hex::encode(h.finalize());
            if !got.eq_ignore_ascii_case(want) {
                return Err(at(Error::new(
                    ErrorKind::Integrity,
                    format!("sha256 is {got}, {want} was recorded"),
                )));
            }
        }
        Ok(out)
    }
}

impl Drop for ReaderState {
    fn drop(&mut self) {
        // Streams may clean up on the runtime; Python drops them anywhere.
        let _in_runtime = runtime().enter();
        self.stream = None;
    }
}

#[pymethods]
impl Reader {
    /// The object's size.
    #[getter]
    fn size(&self) -> u64 {
        self.size
    }

    /// The object's path in the backend.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Up to `n` bytes from `offset` (fewer only at the end).
    fn read_at(&self, py: Python<'_>, offset: u64, n: usize) -> PyResult<Py<PyAny>> {
        let state = self.state.clone();
        run(py, None, async move {
            let mut s = state.lock().await;
            s.read_at(offset, n).await.map(Out::Bytes)
        })
    }

    /// Ends the stream (a later read opens a new one).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let state = self.state.clone();
        run(py, None, async move {
            let mut s = state.lock().await;
            s.stream = None;
            s.leftover = Bytes::new();
            Ok(Out::None)
        })?;
        Ok(())
    }
}

/// One object written in pieces: nothing is visible until `finish`;
/// `abort`, or dropping it unfinished, leaves nothing.
#[pyclass(frozen, module = "wharf._native")]
pub struct Writer {
    state: Arc<Mutex<WriterState>>,
}

struct WriterState {
    writer: Option<Box<dyn ObjectWriter>>,
    buf: BytesMut,
    hasher: Sha256,
    size: u64,
    path: String,
}

impl Writer {
    pub async fn open(service: &StorageService, path: &str, mode: PutMode) -> wharf::Result<Self> {
        let p = ObjectPath::parse(path)?;
        let writer = service.adapter().write(&p, mode, None).await?;
        Ok(Writer {
            state: Arc::new(Mutex::new(WriterState {
                writer: Some(writer),
                buf: BytesMut::new(),
                hasher: Sha256::new(),
                size: 0,
                path: path.to_string(),
            })),
        })
    }
}

impl WriterState {
    fn writer(&mut self) -> wharf::Result<&mut Box<dyn ObjectWriter>> {
        self.writer
            .as_mut()
            .ok_or_else(|| Error::new(ErrorKind::Invalid, format!("the writer of `{}` is closed", self.path)))
    }

    /// Hands whole chunks to the adapter (every append but the last must be
    /// at least its `write_min_chunk`; [`CHUNK`] is).
    async fn push(&mut self, data: &[u8], last: bool) -> wharf::Result<()> {
        self.writer()?;
        self.hasher.update(data);
        self.size += data.len() as u64;
        self.buf.extend_from_slice(data);
        while self.buf.len() >= CHUNK || (last && !self.buf.is_empty()) {
            let n = self.buf.len().min(CHUNK);
            let chunk = self.buf.split_to(n).freeze();
            self.writer()?.append(chunk).await?;
        }
        Ok(())
    }
}

impl Drop for WriterState {
    fn drop(&mut self) {
        let _in_runtime = runtime().enter();
        self.writer = None;
    }
}

#[pymethods]
impl Writer {
    /// Appends bytes (buffered into chunks).
    fn write(&self, py: Python<'_>, data: PyBackedBytes) -> PyResult<usize> {
        let n = data.len();
        let state = self.state.clone();
        run(py, None, async move {
            state.lock().await.push(&data, false).await?;
            Ok(Out::None)
        })?;
        Ok(n)
    }

    /// Makes the object visible; returns `{path, size_bytes, checksum, etag}` as JSON.
    fn finish(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let state = self.state.clone();
        run(py, None, async move {
            let mut s = state.lock().await;
            s.push(&[], true).await?;
            let writer = s.writer.take().expect("checked by push");
            let meta = writer.finish().await?;
            let checksum = hex::encode(std::mem::take(&mut s.hasher).finalize());
            let done = wharf::ObjectTransfer {
                path: s.path.clone(),
                size_bytes: s.size,
                checksum,
                etag: meta.etag,
            };
            Ok(Out::Str(serde_json::to_string(&done).expect("serializable")))
        })
    }

    /// Discards what was written.
    fn abort(&self, py: Python<'_>) -> PyResult<()> {
        let state = self.state.clone();
        run(py, None, async move {
            if let Some(w) = state.lock().await.writer.take() {
                w.abort().await?;
            }
            Ok(Out::None)
        })?;
        Ok(())
    }

    /// Whether `finish` or `abort` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.state.try_lock().map(|s| s.writer.is_none()).unwrap_or(false)
    }
}
