//! `database`: a wharf storage adapter that keeps objects in PostgreSQL, as
//! chunked `bytea` rows, over the one TCP address the host grants.
//!
//! # Configuration (`[backends.<name>.config]`)
//! | key | meaning |
//! |---|---|
//! | `address` | `host:port` of the server, e.g. `127.0.0.1:5432`; or use `host` and `port` |
//! | `host`, `port` | the server's name or IP and port (default `5432`) |
//! | `user` | the role to log in as (required) |
//! | `password` | its password (use `${env:…}`); leave out for `trust` auth. Never logged or shown in errors |
//! | `dbname` | the database, default the user name |
//! | `table_prefix` | prefix of the two tables, default `wharf_`; `[a-z_][a-z0-9_]*`, at most 40 characters |
//! | `chunk_size` | size of the content rows new objects are written in, default `1MiB`, 64 KiB to 64 MiB |
//!
//! The backend's grant must cover the address: `[backends.<name>.grants]
//! tcp = ["127.0.0.1:5432"]`. The connection is plain TCP (no TLS): use it
//! on loopback, a private network or through a TLS-terminating proxy.
//!
//! # Why `postgres-protocol` over `std::net`
//! The `postgres` crate (and `tokio-postgres` under it) needs tokio's
//! networking, which does not build for `wasm32-wasip2`. Its lower half,
//! `postgres-protocol`, is runtime-free: it encodes and decodes the wire
//! messages and implements SCRAM-SHA-256 (and MD5) authentication. The
//! bytes travel over `std::net::TcpStream`, which on `wasm32-wasip2` is
//! `wasi:sockets`, where the host allows only the granted addresses. The
//! small blocking client on top is `wire.rs`.
//!
//! # Schema
//! Created on first use when either table is missing (a lock-free catalog
//! check each connection; the DDL under an advisory lock), with
//! `<prefix>` = `wharf_` by default:
//! ```sql
//! CREATE TABLE IF NOT EXISTS wharf_objects (
//!     path        text COLLATE "C" PRIMARY KEY,  -- byte order for listings
//!     size        bigint  NOT NULL,
//!     etag        text    NOT NULL,              -- the upload id, in hex
//!     modified_ms bigint  NOT NULL,              -- server clock at commit
//!     upload_id   bigint  NOT NULL,              -- whose chunks hold the content
//!     chunk_size  integer NOT NULL               -- the row size it was written with
//! );
//! CREATE TABLE IF NOT EXISTS wharf_chunks (
//!     upload_id   bigint  NOT NULL,
//!     seq         integer NOT NULL,              -- 0, 1, 2, …
//!     data        bytea   NOT NULL,              -- chunk_size bytes, the last row shorter
//!     PRIMARY KEY (upload_id, seq)
//! );
//! -- Model weights do not compress: store out of line without trying,
//! -- which also lets substring() read only the TOAST slices it needs.
//! ALTER TABLE wharf_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
//! ```
//! One `bytea` value caps at 1 GB; chunk rows keep every value small, so
//! objects of any size (up to 2^31 chunks) fit.
//!
//! # How it maps the contract
//! - Data moves with the extended query protocol and binary parameters and
//!   results: a chunk is sent and received as raw bytes, never hex-escaped.
//!   COPY is not used: one `INSERT` per chunk row, pipelined one deep (a
//!   row travels while the server stores the previous one), matches the
//!   native `postgres` crate's rate in the benchmark and keeps each write's
//!   statements plain SQL.
//! - Connections: one per backend, opened (SCRAM: a PBKDF2 on both sides,
//!   and the schema check) on first use, about 10 ms on loopback, and kept
//!   while the host reuses the instance (`wharf:storage/reuse`): readers and
//!   writers borrow it and put it back when they end cleanly, statements
//!   stay prepared on it, and `recycle` drops it when the server closed it
//!   while idle (a restart, `idle_session_timeout`).
//! - Writes: one transaction on a connection of the writer's own. `BEGIN`
//!   when the write starts, an `INSERT` per chunk row under a fresh random
//!   upload id, and in `finish` the objects row and `COMMIT`. `create` is
//!   `INSERT … ON CONFLICT (path) DO NOTHING` (no row → `already-exists`);
//!   `update(etag)` locks the current row `FOR UPDATE` and compares its etag
//!   (missing or different → `precondition-failed`); an overwritten
//!   object's old chunks are deleted in the same transaction. Both modes are
//!   also checked when the write starts, so a doomed upload fails before
//!   its data moves. `abort` rolls back; a dropped writer or a lost
//!   connection rolls back on the server. Nothing is visible before `COMMIT`.
//! - Reads: a `REPEATABLE READ READ ONLY` transaction (one snapshot even if
//!   the object is overwritten meanwhile), one bounded query per chunk row,
//!   only the rows the range covers: `SELECT data` for whole rows,
//!   `substring(data …)` on a range's edges (substring costs the server a
//!   copy, so whole rows never use it). About 4 MiB of rows are requested
//!   ahead; they wait in socket buffers, so memory here stays one row.
//! - The per-row statements (chunk `INSERT`, chunk `SELECT`s) are named
//!   prepared statements, parsed once per connection; the others are
//!   planned for their actual parameters (a `LIKE 'prefix%'` uses the index).
//! - `list`: `WHERE path LIKE '<escaped prefix>%' AND path > <cursor>
//!   ORDER BY path LIMIT n`; the cursor is the last path of the page.
//! - `copy`: one transaction: the source row locked `FOR SHARE`,
//!   `INSERT … SELECT` of its chunks under a new upload id, then the
//!   destination row as a write's `finish` would.
//! - `delete`: one statement deleting the row and its chunks.
//! - `health`: `SELECT version()`.
//! - Errors: a refused connection is `unreachable` (nothing was sent), a
//!   reset one `transient`, both naming the address; a connection the host did not grant is `denied`; SQLSTATE
//!   28P01/28000 (bad password, no `pg_hba` entry) is `denied`, naming the
//!   user and never the password; serialization failures, deadlocks and
//!   shutdowns are `transient`.

// Dead-code lints are the component build's job: natively nothing exports
// the component, so most of the adapter looks unused.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod client;
mod config;
#[doc(hidden)]
pub mod fuzzing;
mod list;
mod reader;
mod wire;
mod writer;

use client::Db;
use wharf_guest::{
    BackendHandle, ByteRange, Capabilities, DownloadCell, Error, Guest, GuestBackend, ObjectMeta, Page, PutMode,
    ReaderHandle, UploadSlot, WriterHandle,
};

/// The largest `append` the host sends; the writer cuts it into rows.
const MAX_APPEND: u64 = 16 << 20;

struct Component;
// Only a component exports: natively (tests, fuzzing) two adapters' exports
// would collide at link time.
#[cfg(target_arch = "wasm32")]
wharf_guest::export!(Component);
wharf_guest::no_pending_uploads!(
    Component,
    "database",
    "a write is one transaction, which the server rolls back when the writer is gone"
);

impl wharf_guest::Reuse for Component {
    /// A connection the server closed while the instance was idle is
    /// dropped; the next statement opens (and logs in on) a new one.
    fn recycle(backend: wharf_guest::BackendBorrow<'_>, _idle_ms: u64) -> Result<(), Error> {
        backend.get::<Db>().recycle();
        Ok(())
    }
}

impl Guest for Component {
    type Backend = Db;
    type Reader = DownloadCell<reader::ObjectReader>;
    type Writer = UploadSlot<writer::Upload>;

    /// Validates the config only: the connection is made by the first
    /// operation that needs it, which also creates the tables if missing.
    fn open(config: Vec<(String, String)>) -> Result<BackendHandle, Error> {
        Ok(BackendHandle::new(Db::open(config::Config::parse(config)?)))
    }
}

impl GuestBackend for Db {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_range: true,
            write_create: true,
            write_update: true,
            copy: true,
            list_max_limit: 1000,
            write_min_chunk: 0,
            write_max_chunk: MAX_APPEND,
            max_object_size: Some(self.shared.cfg.chunk_size * i32::MAX as u64),
        }
    }

    fn stat(&self, path: String) -> Result<ObjectMeta, Error> {
        Db::stat(self, &path)
    }

    fn exists(&self, path: String) -> Result<bool, Error> {
        Db::exists(self, &path)
    }

    fn delete(&self, path: String) -> Result<(), Error> {
        Db::delete(self, &path)
    }

    fn list(&self, prefix: String, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        Db::list(self, &prefix, cursor, limit.clamp(1, 1000))
    }

    fn copy(&self, source: String, destination: String, mode: PutMode) -> Result<ObjectMeta, Error> {
        Db::copy(self, &source, &destination, &mode)
    }

    fn health(&self) -> Result<String, Error> {
        Db::health(self)
    }

    fn read(&self, path: String, range: Option<ByteRange>) -> Result<ReaderHandle, Error> {
        let conn = self.take_conn()?;
        let r = reader::ObjectReader::open(self.shared.clone(), conn, path, range, self.conn.clone())?;
        Ok(ReaderHandle::new(DownloadCell::new(r)))
    }

    fn write(&self, path: String, mode: PutMode, _size_hint: Option<u64>) -> Result<WriterHandle, Error> {
        let conn = self.take_conn()?;
        let upload = writer::Upload::new(self.shared.clone(), conn, path, mode, self.conn.clone())?;
        Ok(WriterHandle::new(UploadSlot::new(upload)))
    }
}
