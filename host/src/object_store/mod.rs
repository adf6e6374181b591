//! Any wharf backend as an [`object_store::ObjectStore`] (cargo feature
//! `object-store`): DataFusion, Polars, delta-rs, the `parquet` crate's
//! async reader... reach storage through a sandboxed adapter and wharf's
//! layers without a change to their code.
//!
//! [`WharfStore`] wraps any `Arc<dyn Adapter>`; keys are object_store
//! paths verbatim (`a/%48.bin` is the wharf object `a/%48.bin`). What maps
//! to what, and what answers `NotImplemented` and why, is the README's
//! "object_store" table.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo(host: &wharf::Host) -> Result<(), Box<dyn std::error::Error>> {
//! use object_store::{ObjectStore, ObjectStoreExt, path::Path};
//! let store: std::sync::Arc<dyn ObjectStore> = std::sync::Arc::new(host.object_store("models").await?);
//! store.put(&Path::from("tables/t.parquet"), "bytes".into()).await?;
//! let bytes = store.get_range(&Path::from("tables/t.parquet"), 1..3).await?;
//! assert_eq!(&bytes[..], b"yt");
//! # Ok(()) }
//! ```

mod error;
mod list;
mod multipart;

use crate::adapter::{Adapter, ByteRange, ObjectMeta as WharfMeta, ObjectReader, PutMode as WharfMode};
use crate::host::Host;
use crate::path::ObjectPath;
use async_trait::async_trait;
use bytes::Bytes;
use error::{generic, message, not_implemented, to_os, update_to_os};
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use std::fmt;
use std::sync::Arc;

/// How long `get_opts` keeps starting over when the object changed between
/// looking at it and reading it (or a layer failed `integrity` on it, having
/// read parts of two versions): a reader that keeps losing to writers gives
/// up after this long. Under object_store's own racing read-modify-write
/// test (five workers on one object, through checksum, compression and
/// encryption over local_filesystem, on two loaded cores) about half the
/// attempts lose and a read needed up to 9 of them.
const GET_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// The pause after failed attempt `n` is random in `[0, min(GET_BACKOFF_MAX,
/// GET_BACKOFF × 2^(n-1))]` (the retry layer's full jitter), so that
/// readers that lost to the same writers do not come back together.
const GET_BACKOFF: std::time::Duration = std::time::Duration::from_millis(5);
const GET_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_millis(200);
/// The most bytes asked of a reader at once.
const READ_CHUNK: usize = 1 << 20;
/// Deletes of one `delete_stream` in flight at once.
const DELETE_CONCURRENCY: usize = 8;
/// Default of [`WharfStore::with_parked_memory`].
pub const DEFAULT_PARKED_MEMORY: usize = 32 << 20;

/// An [`ObjectStore`] (and [`MultipartStore`](object_store::multipart::MultipartStore),
/// [`PaginatedListStore`](object_store::list::PaginatedListStore)) over a
/// wharf [`Adapter`]: a Wasm backend, its layers, or a native one.
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> object_store::Result<()> {
/// use object_store::{ObjectStoreExt, path::Path};
/// use wharf::object_store::WharfStore;
/// let store = WharfStore::new(std::sync::Arc::new(wharf::InMemory::new()));
/// store.put(&Path::from("a/b.bin"), "hello".into()).await?;
/// assert_eq!(store.head(&Path::from("a/b.bin")).await?.size, 5);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct WharfStore {
    adapter: Arc<dyn Adapter>,
    parked_memory: usize,
    uploads: Arc<multipart::Uploads>,
    /// The host [`WharfStore::from_url`] built, kept as long as the store.
    host: Option<Arc<Host>>,
}

impl WharfStore {
    /// A store over `adapter`.
    pub fn new(adapter: Arc<dyn Adapter>) -> Self {
        WharfStore {
            adapter,
            parked_memory: DEFAULT_PARKED_MEMORY,
            uploads: Arc::default(),
            host: None,
        }
    }

    /// The store over the backend a URL names (`s3://bucket/prefix`,
    /// `az://container/prefix`, `gs://`, `redis://host:port/db`,
    /// `postgresql://`, `file:///abs/dir`, `hf://`, `mlflow-artifacts:`),
    /// as object_store's own `parse_url_opts` takes one: the plugin, its
    /// config values and grants come from the URL, credentials from the
    /// environment in the order the README's "Backends named by URL" gives.
    /// No `wharf.toml` is read; the built-in plugins run it, with no layers.
    /// To use a configured backend, or one with layers, use
    /// [`WharfStore::open`] with a [`Host`] (whose `Config::backend_arg`
    /// also takes a URL).
    ///
    /// ```no_run
    /// # async fn demo() -> wharf::Result<()> {
    /// let store = wharf::object_store::WharfStore::from_url("s3://models/tables").await?;
    /// # Ok(()) }
    /// ```
    pub async fn from_url(url: &str) -> crate::Result<Self> {
        if !crate::url::is_url(url) {
            return Err(crate::Error::config(format!(
                "`{url}` is not a URL (s3://, az://, gs://, redis://, postgresql://, file://, hf://, mlflow-artifacts:)"
            )));
        }
        let mut config = crate::Config::default();
        let name = config.add_url_backend(url, &crate::url::Env::process())?;
        let cwd = std::env::current_dir()
            .map_err(|e| crate::Error::new(crate::ErrorKind::Io, format!("current directory: {e}")))?;
        let host = Arc::new(Host::new(config, &cwd)?);
        let mut store = WharfStore::open(&host, &name).await?;
        store.host = Some(host);
        Ok(store)
    }

    /// The store over the configured backend `name` of `host` (its layers
    /// included), as [`Host::object_store`].
    pub async fn open(host: &Host, name: &str) -> crate::Result<Self> {
        Ok(WharfStore::new(host.adapter(name).await?))
    }

    /// How many bytes of multipart parts that arrive before the parts
    /// ahead of them one upload holds in memory (default
    /// [`DEFAULT_PARKED_MEMORY`]); the adapter's writer only appends, so
    /// such parts wait, and past this they wait in anonymous temporary
    /// files (in [`std::env::temp_dir`]).
    pub fn with_parked_memory(mut self, bytes: usize) -> Self {
        self.parked_memory = bytes;
        self
    }

    /// The adapter underneath.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.adapter
    }

    fn write_mode(&self, mode: PutMode) -> Result<WharfMode> {
        let caps = self.adapter.capabilities();
        match mode {
            PutMode::Overwrite => Ok(WharfMode::Overwrite),
            PutMode::Create if caps.write_create => Ok(WharfMode::Create),
            PutMode::Create => Err(not_implemented(
                "put with PutMode::Create on a backend without atomic create",
            )),
            PutMode::Update(_) if !caps.write_update => Err(not_implemented(
                "put with PutMode::Update on a backend without atomic update",
            )),
            PutMode::Update(v) => match v.e_tag {
                Some(etag) => Ok(WharfMode::Update(etag)),
                None => Err(not_implemented(
                    "put with PutMode::Update by version (wharf objects have etags, no versions)",
                )),
            },
        }
    }

    /// Starts writing `location` under `mode`; errors as object_store's.
    async fn open_writer(
        &self,
        location: &Path,
        mode: WharfMode,
        size_hint: Option<u64>,
    ) -> Result<Box<dyn crate::ObjectWriter>> {
        let key = key(location)?;
        let update = matches!(mode, WharfMode::Update(_));
        self.adapter.write(&key, mode, size_hint).await.map_err(|e| {
            if update {
                update_to_os(e, location.as_ref())
            } else {
                to_os(e, location.as_ref())
            }
        })
    }

    /// Bytes per `append`: the adapter's largest.
    fn max_chunk(&self) -> usize {
        usize::try_from(self.adapter.capabilities().write_max_chunk.max(1)).unwrap_or(usize::MAX)
    }

    /// `stat`, `read`, `stat` again: what was read is the version the meta
    /// describes (the contract's `read` returns no meta). `Err(Again)` to
    /// start over.
    async fn get_once(
        &self,
        location: &Path,
        key: &ObjectPath,
        options: &GetOptions,
    ) -> Result<std::result::Result<GetResult, Again>> {
        let path = location.as_ref();
        let stat = match self.adapter.stat(key).await {
            Ok(s) => s,
            Err(e) => return again_or(e, path),
        };
        let meta = os_meta(location.clone(), &stat);
        if stat.modified_ms.is_none() && (options.if_modified_since.is_some() || options.if_unmodified_since.is_some())
        {
            return Err(object_store::Error::NotSupported {
                source: format!("{}: the backend keeps no modification times", self.adapter.name()).into(),
            });
        }
        options.check_preconditions(&meta)?;
        let range = match &options.range {
            Some(r) => r.as_range(stat.size).map_err(generic)?,
            None => 0..stat.size,
        };
        if options.head || range.is_empty() {
            // Nothing to read: a head, or an empty object.
            let range = if options.head { 0..0 } else { range };
            return Ok(Ok(result(meta, range, stream::empty().boxed())));
        }
        let wanted = (range.start != 0 || range.end != stat.size).then_some(ByteRange {
            start: range.start,
            end: Some(range.end),
        });
        let mut reader = match self.adapter.read(key, wanted).await {
            Ok(r) => r,
            Err(e) => return again_or(e, path),
        };
        // The first chunk is read here, inside the attempt: an object of up
        // to READ_CHUNK bytes is then read whole before `get_opts` answers,
        // and a failure from an overwrite meanwhile starts over instead of
        // reaching the caller's stream.
        let len = range.end - range.start;
        let first = match reader
            .next_chunk(usize::try_from(len).unwrap_or(usize::MAX).min(READ_CHUNK))
            .await
        {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => return again_or(e, path),
        };
        if let Some(etag) = &stat.etag {
            let now = match self.adapter.stat(key).await {
                Ok(s) => s,
                Err(e) => return again_or(e, path),
            };
            if now.etag.as_deref() != Some(etag.as_str()) {
                return Ok(Err(Again(None)));
            }
        }
        if first.len() as u64 > len {
            return Err(message(format!(
                "get `{location}`: the reader returned more bytes than the range holds"
            )));
        }
        let rest = read_stream(reader, location.clone(), len - first.len() as u64);
        let body = stream::once(async move { Ok(first) })
            .chain(rest)
            .filter(|c| futures::future::ready(!matches!(c, Ok(b) if b.is_empty())))
            .boxed();
        Ok(Ok(result(meta, range, body)))
    }
}

/// The object changed while `get_opts` looked at it, with the failure that
/// showed it, if one did.
struct Again(Option<crate::Error>);

/// `e` met by `get_opts`: an `integrity` failure can be a layer that read
/// parts of two versions of an object overwritten meanwhile (the contract
/// cannot pin a read to a version), and a `transient` one a backend whose
/// reader saw its version go ("read it again"), so both are tried again; a
/// lasting one is returned when the attempts run out. Anything else is
/// returned now.
fn again_or(e: crate::Error, path: &str) -> Result<std::result::Result<GetResult, Again>> {
    match e.kind() {
        crate::ErrorKind::Integrity | crate::ErrorKind::Transient => Ok(Err(Again(Some(e)))),
        _ => Err(to_os(e, path)),
    }
}

impl fmt::Debug for WharfStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WharfStore")
            .field("backend", &self.adapter.name())
            .field("capabilities", &self.adapter.capabilities())
            .finish()
    }
}

impl fmt::Display for WharfStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WharfStore({})", self.adapter.name())
    }
}

impl Host {
    /// The configured backend `name` (with its layers) as an
    /// [`ObjectStore`]: `let store = host.object_store("models").await?;`.
    /// Cargo feature `object-store`.
    pub async fn object_store(&self, name: &str) -> crate::Result<WharfStore> {
        WharfStore::open(self, name).await
    }
}

#[async_trait]
impl ObjectStore for WharfStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        if !opts.attributes.is_empty() {
            return Err(not_implemented("put with attributes (the contract stores none)"));
        }
        if !opts.tags.is_empty() {
            return Err(not_implemented("put with tags (the contract stores none)"));
        }
        let mode = self.write_mode(opts.mode)?;
        let update = matches!(mode, WharfMode::Update(_));
        let map = |e: crate::Error| {
            if update {
                update_to_os(e, location.as_ref())
            } else {
                to_os(e, location.as_ref())
            }
        };
        let mut writer = self
            .open_writer(location, mode, Some(payload.content_length() as u64))
            .await?;
        let max = self.max_chunk();
        for chunk in payload.iter() {
            for piece in pieces(chunk, max) {
                writer.append(piece).await.map_err(map)?;
            }
        }
        let meta = writer.finish().await.map_err(map)?;
        Ok(put_result(meta))
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        if !opts.attributes.is_empty() {
            return Err(not_implemented(
                "multipart put with attributes (the contract stores none)",
            ));
        }
        if !opts.tags.is_empty() {
            return Err(not_implemented("multipart put with tags (the contract stores none)"));
        }
        let writer = self.open_writer(location, WharfMode::Overwrite, None).await?;
        Ok(Box::new(multipart::Upload::new(
            writer,
            location.clone(),
            self.max_chunk(),
            self.parked_memory,
        )))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.version.is_some() {
            return Err(object_store::Error::NotSupported {
                source: "get by version: wharf objects have etags, no versions".into(),
            });
        }
        let key = key(location)?;
        let mut last = None;
        let started = std::time::Instant::now();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            match self.get_once(location, &key, &options).await? {
                Ok(r) => return Ok(r),
                Err(Again(e)) => last = e.or(last),
            }
            if started.elapsed() >= GET_PATIENCE {
                break;
            }
            // Let the writers that changed it finish.
            tokio::time::sleep(crate::layers::backoff(GET_BACKOFF, GET_BACKOFF_MAX, attempts)).await;
        }
        Err(match last {
            Some(e) => to_os(e, location.as_ref()),
            None => message(format!(
                "get `{location}`: the object changed while it was being read, {attempts} times in {} s",
                GET_PATIENCE.as_secs()
            )),
        })
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        let adapter = self.adapter.clone();
        locations
            .map(move |location| {
                let adapter = adapter.clone();
                async move {
                    let location = location?;
                    adapter
                        .delete(&key(&location)?)
                        .await
                        .map_err(|e| to_os(e, location.as_ref()))?;
                    Ok::<_, object_store::Error>(location)
                }
            })
            .buffered(DELETE_CONCURRENCY)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<object_store::ObjectMeta>> {
        list::flat(self.adapter.clone(), list::segment_prefix(prefix))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let prefix = list::segment_prefix(prefix);
        let page = list::page(&*self.adapter, &prefix, true, None, None, None).await?;
        Ok(page.result)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let mode = match options.mode {
            CopyMode::Overwrite => PutMode::Overwrite,
            CopyMode::Create => PutMode::Create,
        };
        let mode = self.write_mode(mode)?;
        let (src, dst) = (key(from)?, key(to)?);
        if self.adapter.capabilities().copy {
            return match self.adapter.copy(&src, &dst, mode).await {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == crate::ErrorKind::NotFound => Err(to_os(e, from.as_ref())),
                Err(e) => Err(to_os(e, to.as_ref())),
            };
        }
        // No copy inside the backend: stream it through.
        let size = self.adapter.stat(&src).await.map_err(|e| to_os(e, from.as_ref()))?.size;
        let mut reader = self
            .adapter
            .read(&src, None)
            .await
            .map_err(|e| to_os(e, from.as_ref()))?;
        let mut writer = self.open_writer(to, mode, Some(size)).await?;
        while let Some(chunk) = reader
            .next_chunk(READ_CHUNK.min(self.max_chunk()))
            .await
            .map_err(|e| to_os(e, from.as_ref()))?
        {
            writer.append(chunk).await.map_err(|e| to_os(e, to.as_ref()))?;
        }
        writer.finish().await.map_err(|e| to_os(e, to.as_ref()))?;
        Ok(())
    }
}

/// `location` as a wharf path: object_store's encoded form, verbatim.
fn key(location: &Path) -> Result<ObjectPath> {
    ObjectPath::parse(location.as_ref()).map_err(generic)
}

/// A wharf object's meta under object_store's names. A backend that keeps
/// no modification time reports the Unix epoch (and date conditions on it
/// answer `NotSupported`).
fn os_meta(location: Path, m: &WharfMeta) -> object_store::ObjectMeta {
    object_store::ObjectMeta {
        location,
        last_modified: m
            .modified_ms
            .and_then(|ms| chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?))
            .unwrap_or_default(),
        size: m.size,
        e_tag: m.etag.clone(),
        version: None,
    }
}

fn put_result(meta: WharfMeta) -> PutResult {
    PutResult {
        e_tag: meta.etag,
        version: None,
        extensions: Default::default(),
    }
}

fn result(
    meta: object_store::ObjectMeta,
    range: std::ops::Range<u64>,
    body: BoxStream<'static, Result<Bytes>>,
) -> GetResult {
    GetResult {
        payload: GetResultPayload::Stream(body),
        meta,
        range,
        attributes: Default::default(),
        extensions: Default::default(),
    }
}

/// `chunk` cut into pieces of at most `max` bytes (no copy).
fn pieces(chunk: &Bytes, max: usize) -> impl Iterator<Item = Bytes> + '_ {
    (0..chunk.len())
        .step_by(max)
        .map(move |at| chunk.slice(at..(at + max).min(chunk.len())))
}

/// A reader as a stream of exactly `len` bytes; a reader that ends early or
/// runs long fails the stream rather than hand back other bytes.
fn read_stream(reader: Box<dyn ObjectReader>, location: Path, len: u64) -> BoxStream<'static, Result<Bytes>> {
    stream::try_unfold((reader, location, len), |(mut reader, location, left)| async move {
        let max = usize::try_from(left).unwrap_or(usize::MAX).min(READ_CHUNK);
        let chunk = if left == 0 {
            // Past the end: the reader must say so too.
            reader.next_chunk(1).await
        } else {
            reader.next_chunk(max).await
        }
        .map_err(|e| to_os(e, location.as_ref()))?;
        match chunk {
            Some(c) if c.len() as u64 > left => Err(message(format!(
                "get `{location}`: the reader returned more bytes than the range holds"
            ))),
            Some(c) if !c.is_empty() => {
                let left = left - c.len() as u64;
                Ok(Some((c, (reader, location, left))))
            }
            _ if left == 0 => Ok::<_, object_store::Error>(None),
            _ => Err(message(format!(
                "get `{location}`: the object ended {left} bytes early"
            ))),
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests;
