//! `redis`: a wharf storage adapter that keeps objects in a Redis server,
//! over the one TCP address the host grants (nothing else).
//!
//! # Configuration (`[backends.<name>.config]`)
//! | key | meaning |
//! |---|---|
//! | `address` | `host:port` of the server (required); grant it: `[backends.<name>.grants] tcp = ["host:port"]` |
//! | `password` | sends `AUTH` (use `${env:…}`); never appears in errors or logs |
//! | `username` | ACL user for `AUTH username password` (needs `password`) |
//! | `db` | database number for `SELECT`, default 0 |
//! | `prefix` | prefix of every key, default `wharf:` |
//! | `chunk_size` | bytes per chunk key, default `8MiB`, 64 KiB to 64 MiB |
//! | `upload_ttl` | how long chunks of an unfinished upload live, default `24h` (`s`, `m`, `h`, `d`; `0` = forever) |
//!
//! # Keys
//! - `<prefix>chunk:<upload id>:<n>`: the `n`th `chunk_size` bytes of one
//!   upload. The upload id is 128 random bits, new for every write and copy,
//!   so a concurrent or aborted write never touches a visible object's chunks.
//! - `<prefix>manifest:<path>`: a hash `{size, chunk_size, chunks, etag,
//!   modified_ms}`; `etag` is the upload id. It is written last: it is the
//!   commit. Objects larger than Redis' 512 MB string limit are just more
//!   chunks.
//! - `<prefix>index`: a sorted set of every committed path (all scores 0),
//!   for listing in byte order.
//!
//! # How it maps the contract
//! - Writes send each chunk with `PSETEX` (two in flight), so chunks of an
//!   upload that never finishes expire after `upload_ttl` even if the adapter
//!   dies. `finish` runs one Lua script (`EVAL`, atomic): it checks the mode
//!   against the current manifest (`create`: no manifest, like `SET NX`;
//!   `update(etag)`: same etag), checks every chunk is still there and makes
//!   it persistent, writes the manifest with the server's `TIME`, adds the
//!   path to the index and unlinks the replaced upload's chunks. `abort`, a
//!   failed write or a dropped writer runs the abort script, which unlinks
//!   the chunks unless that upload is the committed one (a commit whose
//!   answer was lost): so cleanup can never damage a visible object, and a
//!   late commit after it finds its chunks gone. `create` and `update` are
//!   also checked when the write starts, so a conflicting upload fails
//!   before sending gigabytes.
//! - Reads fetch the manifest, then only the chunks the range covers with
//!   `GETRANGE`, two requests in flight, each reply streamed to the host in
//!   pieces of at most the size it asks for. A chunk that vanishes (the
//!   object was overwritten or deleted meanwhile) fails the read; it never
//!   mixes versions.
//! - `delete` is one script: manifest and index entry, then the chunks.
//! - `list` keeps a sorted-set index (updated in the same scripts as the
//!   manifests) rather than `SCAN`: `SCAN` is unordered, so paging it in
//!   byte order would read every key under the prefix for every page. A page
//!   is one script: `ZRANGEBYLEX` after the cursor (the last path returned),
//!   `O(log N + limit)`, plus one `HMGET` per entry. The cost: one index
//!   entry per object (its path).
//! - `copy` runs `COPY` (Redis ≥ 6.2) of every chunk under a new upload id
//!   inside the server, in pipelined batches, then the same commit script;
//!   older servers get `GET`/`SET` through the adapter, a chunk at a time.
//! - `health`: `PING`, `INFO server` (the version), and that `EVAL` runs.
//! - Errors: a connection refused is `unreachable` (nothing was sent), one
//!   reset or cut is `transient`, both naming the address; a connection the host's TCP grant refuses and refused
//!   credentials (`WRONGPASS`, `NOAUTH`, `NOPERM`) are `denied`; bad config
//!   is `invalid` naming the key; `LOADING`/`BUSY` are `transient`.
//!
//! Needs a standalone Redis ≥ 5 (or a compatible server with Lua scripting)
//! and not Redis Cluster: the scripts touch keys they build from the upload
//! id, which Cluster forbids. A script's running time grows with the number
//! of chunks it commits or unlinks (about 2,500 for a 20 GiB object at 8 MiB),
//! during which the server serves no one else: milliseconds.
//!
//! # Why its own RESP client
//! The `redis` crate (1.x, default features off) does build for
//! wasm32-wasip2, but it brings `url`, `idna` and the ICU tables plus the
//! `combine` parser into a component that needs none of them, copies every
//! argument into a command buffer and returns whole replies. RESP2 is a few
//! hundred lines (`resp.rs`): the adapter writes a chunk straight from the
//! host's buffer and streams `GETRANGE` replies to the host without holding
//! a whole chunk, so guest memory stays near two chunks whatever the object
//! size.

// Dead-code lints are the component build's job: natively nothing exports
// the component, so most of the adapter looks unused.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod client;
mod config;
#[doc(hidden)]
pub mod fuzzing;
mod list;
mod reader;
mod resp;
mod scripts;
mod writer;

use client::Store;
use wharf_guest::{
    BackendHandle, ByteRange, Capabilities, DownloadCell, Error, Guest, GuestBackend, ObjectMeta, Page, PutMode,
    ReaderHandle, UploadSlot, WriterHandle,
};

struct Component;
// Only a component exports: natively (tests, fuzzing) two adapters' exports
// would collide at link time.
#[cfg(target_arch = "wasm32")]
wharf_guest::export!(Component);
wharf_guest::no_pending_uploads!(
    Component,
    "redis",
    "the chunks of an unfinished write expire after `upload_ttl`, and their keys do not name the object"
);

impl wharf_guest::Reuse for Component {
    /// A connection the server closed while the instance was idle is
    /// dropped; the next command opens (and authenticates) a new one.
    fn recycle(backend: wharf_guest::BackendBorrow<'_>, _idle_ms: u64) -> Result<(), Error> {
        backend.get::<Store>().recycle();
        Ok(())
    }
}

impl Guest for Component {
    type Backend = Store;
    type Reader = DownloadCell<reader::ChunkReader>;
    type Writer = UploadSlot<writer::Upload>;

    fn open(config: Vec<(String, String)>) -> Result<BackendHandle, Error> {
        Ok(BackendHandle::new(Store::open(config)?))
    }
}

impl GuestBackend for Store {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_range: true,
            write_create: true,
            write_update: true,
            copy: true,
            list_max_limit: 1000,
            // Appends of any size are gathered into chunks; appends of
            // exactly one chunk are sent without a copy.
            write_min_chunk: 0,
            write_max_chunk: self.cfg.chunk_size,
            // Chunked: only the server's memory limits an object.
            max_object_size: None,
        }
    }

    fn stat(&self, path: String) -> Result<ObjectMeta, Error> {
        Store::stat(self, &path)
    }

    fn exists(&self, path: String) -> Result<bool, Error> {
        Store::exists(self, &path)
    }

    fn delete(&self, path: String) -> Result<(), Error> {
        Store::delete(self, &path)
    }

    fn list(&self, prefix: String, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        Store::list(self, &prefix, cursor.as_deref(), limit.clamp(1, 1000))
    }

    fn copy(&self, source: String, destination: String, mode: PutMode) -> Result<ObjectMeta, Error> {
        Store::copy(self, &source, &destination, &mode)
    }

    fn health(&self) -> Result<String, Error> {
        Store::health(self)
    }

    fn read(&self, path: String, range: Option<ByteRange>) -> Result<ReaderHandle, Error> {
        Ok(ReaderHandle::new(DownloadCell::new(Store::read(self, &path, range)?)))
    }

    fn write(&self, path: String, mode: PutMode, _size_hint: Option<u64>) -> Result<WriterHandle, Error> {
        Ok(WriterHandle::new(UploadSlot::new(Store::write(self, &path, mode)?)))
    }
}
