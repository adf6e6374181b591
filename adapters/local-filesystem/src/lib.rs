//! `local_filesystem`: a wharf storage adapter over a directory the host grants.
//!
//! The adapter sees only the directories the host preopened for it. `root`
//! (default `/data`) names the granted directory objects live under. An
//! object `a/b.onnx` is the file `<root>/a/b.onnx`.
//!
//! Writes go to `<root>/.wharf-tmp/` first and become visible by a rename
//! (overwrite, update) or a hard link (create, which fails atomically if the
//! destination exists), so a reader never sees a half-written object. Paths
//! whose first segment starts with `.wharf` are reserved.
//!
//! A write the host never finished (it was killed) leaves its temporary
//! file. Its name carries the object path, so `list-pending` reports it
//! (with its size, and its last write as `started-ms`) and `abort-pending`
//! removes it; any write also sweeps temporaries untouched for a day.
//!
//! The etag is `<size>-<mtime ns>` of the file: every write makes a new file
//! and stamps its modification time from the wall clock in nanoseconds (a
//! kernel's own file times can move in ticks of milliseconds), so any
//! content change changes it.
//! `update(etag)` compares and renames holding the object's lock file
//! (`.wharf-tmp/locks/`, created only where none exists), so of updates
//! racing with one etag exactly one wins; a lock a killed host left is
//! taken over after 30 s. An `overwrite` takes no lock: one landing between
//! an update's comparison and its rename is replaced by the update.

mod client;
mod config;
mod list;
mod lock;
mod pending;
mod reader;
mod writer;

use wharf_guest::{
    BackendBorrow, BackendHandle, ByteRange, Capabilities, Error, Guest, GuestBackend, GuestReader, Maintenance,
    ObjectMeta, Page, PendingPage, PutMode, ReaderHandle, UploadSlot, WriterHandle,
};

struct Component;
wharf_guest::export!(Component);
// Nothing it keeps goes stale while idle.
wharf_guest::nothing_to_recycle!(Component);

impl Guest for Component {
    type Backend = client::Store;
    type Reader = reader::ObjectReader;
    type Writer = UploadSlot<writer::ObjectWriter>;

    fn open(config: Vec<(String, String)>) -> Result<BackendHandle, Error> {
        Ok(BackendHandle::new(client::Store::open(
            config::Config::parse(config)?.root,
        )?))
    }
}

impl Maintenance for Component {
    fn list_pending(
        backend: BackendBorrow<'_>,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> Result<PendingPage, Error> {
        backend
            .get::<client::Store>()
            .list_pending(&prefix, cursor.as_deref(), limit.clamp(1, 1000) as usize)
    }

    fn abort_pending(backend: BackendBorrow<'_>, path: String, upload_id: String) -> Result<(), Error> {
        backend.get::<client::Store>().abort_pending(&path, &upload_id)
    }
}

impl GuestBackend for client::Store {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_range: true,
            write_create: true,
            write_update: true,
            copy: true,
            list_max_limit: 1000,
            write_min_chunk: 0,
            write_max_chunk: 64 << 20,
            max_object_size: None,
        }
    }

    fn stat(&self, path: String) -> Result<ObjectMeta, Error> {
        self.stat(&path)
    }

    fn exists(&self, path: String) -> Result<bool, Error> {
        wharf_guest::exists(self.stat(&path))
    }

    fn delete(&self, path: String) -> Result<(), Error> {
        self.delete(&path)
    }

    fn list(&self, prefix: String, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        self.list(&prefix, cursor.as_deref(), limit.clamp(1, 1000) as usize)
    }

    fn copy(&self, source: String, destination: String, mode: PutMode) -> Result<ObjectMeta, Error> {
        self.copy(&source, &destination, mode)
    }

    fn health(&self) -> Result<String, Error> {
        self.health()
    }

    fn read(&self, path: String, range: Option<ByteRange>) -> Result<ReaderHandle, Error> {
        Ok(ReaderHandle::new(self.read(&path, range)?))
    }

    fn write(&self, path: String, mode: PutMode, _size_hint: Option<u64>) -> Result<WriterHandle, Error> {
        Ok(WriterHandle::new(UploadSlot::new(self.write(&path, mode)?)))
    }
}

impl GuestReader for reader::ObjectReader {
    fn next(&self, max_bytes: u32) -> Result<Vec<u8>, Error> {
        self.next(max_bytes as usize)
    }
}
