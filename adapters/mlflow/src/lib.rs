//! `mlflow`: a wharf storage adapter for the artifact proxy of an MLflow
//! tracking server (`mlflow server --serve-artifacts`), over the
//! `wasi:http` the host grants (nothing else).
//!
//! # Configuration (`[backends.<name>.config]`)
//! | key | meaning |
//! |---|---|
//! | `endpoint` | the tracking server's URL, e.g. `http://127.0.0.1:5000` (required) |
//! | `prefix` | an artifact directory the objects live under, e.g. `wharf/` or `1/<run id>/artifacts` |
//! | `token` | sent as `Authorization: Bearer …` (use `${env:…}`) |
//! | `username`, `password` | sent as HTTP Basic auth (MLflow's `--app-name basic-auth`); not with `token` |
//! | `multipart` | `auto` (default): large writes try the server's multipart routes; `off`: always one `PUT` |
//! | `part_size` | multipart part size and the size of each append, default `8MiB`, 5 MiB to 256 MiB |
//! | `max_in_flight` | multipart parts uploading at once, default 4 |
//!
//! Grant the tracking server's origin (`grants.http`). With `multipart =
//! "auto"` and a cloud artifact destination, parts go to the presigned URLs
//! the server hands out, so grant the storage's origin too (or set `off`).
//!
//! # How it maps the contract
//! - Routes: `PUT`/`GET`/`DELETE /api/2.0/mlflow-artifacts/artifacts/<path>`,
//!   `GET /api/2.0/mlflow-artifacts/artifacts?path=<dir>` (one level),
//!   `POST /api/2.0/mlflow-artifacts/mpu/{create,complete,abort}/<dir>`,
//!   `GET /health`.
//! - Writes: with a `size-hint` over one part, `mpu/create`; parts go to
//!   presigned URLs, `max_in_flight` at a time, `mpu/complete` on `finish`,
//!   `mpu/abort` on failure. The file store answers 501 there (as does
//!   every write without a hint): then one `PUT` whose chunked body streams
//!   from the appends (bounded memory). The file store writes to a hidden
//!   temporary file and renames it when the body is complete, so a `PUT` cut
//!   before its final chunk (`abort`, a dropped writer, a broken connection)
//!   leaves nothing. A `PUT` replaces an existing file.
//! - No conditional writes on the server: `create` and `update(etag)` are
//!   `unsupported` (`write_create`/`write_update` are false), and there is
//!   no server-side copy (`copy` is false).
//! - No etag: the listing gives only a size, so `etag` and `modified-ms` are
//!   `none` everywhere (the `GET` answer's etag exists only for the file
//!   store and would cost a download to learn).
//! - `stat`/`exists`: one listing of the parent directory. `delete`: the
//!   same listing first, because the server's `DELETE` of a directory
//!   removes the whole tree; a missing path (or a directory) succeeds.
//!   Deleting leaves empty directories behind, as the server does.
//! - `read`: `GET`, with `Range` when a range is asked. The file store
//!   answers 206; a store that streams through the server answers 200 and
//!   the adapter skips to the range, so `read_range` is `false` (a range
//!   may cost reading the object from its start).
//! - `list`: built from the one-level listing, see `list.rs`: one request per
//!   directory visited, and each page re-lists the directories down to its
//!   cursor.
//! - Paths: the server URL-decodes artifact paths until they stop changing
//!   and parses them as URLs; `%`, `#`, `?`, `;`, `:` (and a leading space
//!   or `.artifact.uploading.`) are stored escaped as `%_XX`, see `keys`.
//!   The file store cannot hold both `a` and `a/b`: such a write is `invalid`.
//! - Errors: 404 not-found, 401/403 denied, 400 invalid, 5xx and broken
//!   connections transient; messages name the request, never credentials.

mod client;
mod config;
mod keys;
mod list;
mod reader;
mod writer;

use client::Mlflow;
use wharf_guest::{
    BackendHandle, ByteRange, Capabilities, DownloadCell, Error, Guest, GuestBackend, ObjectMeta, Page, PutMode,
    ReaderHandle, UploadSlot, WriterHandle,
};

struct Component;
wharf_guest::export!(Component);
// Nothing it keeps goes stale while idle (HTTP connections are the host's).
wharf_guest::nothing_to_recycle!(Component);
wharf_guest::no_pending_uploads!(
    Component,
    "mlflow",
    "the tracking server has no route that lists unfinished multipart uploads"
);

impl Guest for Component {
    type Backend = Mlflow;
    type Reader = DownloadCell<reader::Body>;
    type Writer = UploadSlot<writer::Upload>;

    fn open(config: Vec<(String, String)>) -> Result<BackendHandle, Error> {
        Ok(BackendHandle::new(Mlflow::open(config)?))
    }
}

impl GuestBackend for Mlflow {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_range: false,
            write_create: false,
            write_update: false,
            copy: false,
            list_max_limit: 1000,
            // Multipart parts must be whole; a streamed PUT takes any size.
            write_min_chunk: if self.cfg.multipart { self.cfg.part_size } else { 0 },
            write_max_chunk: self.cfg.part_size,
            max_object_size: None,
        }
    }

    fn stat(&self, path: String) -> Result<ObjectMeta, Error> {
        Mlflow::stat(self, &path)
    }

    fn exists(&self, path: String) -> Result<bool, Error> {
        wharf_guest::exists(Mlflow::stat(self, &path))
    }

    fn delete(&self, path: String) -> Result<(), Error> {
        Mlflow::delete(self, &path)
    }

    fn list(&self, prefix: String, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        list::list(self, &prefix, cursor, limit)
    }

    fn copy(&self, source: String, destination: String, _mode: PutMode) -> Result<ObjectMeta, Error> {
        Err(Error::Unsupported(format!(
            "the MLflow artifact proxy has no server-side copy (`{source}` to `{destination}`): read and write instead"
        )))
    }

    fn health(&self) -> Result<String, Error> {
        Mlflow::health(self)
    }

    fn read(&self, path: String, range: Option<ByteRange>) -> Result<ReaderHandle, Error> {
        Ok(ReaderHandle::new(DownloadCell::new(self.get(&path, range)?)))
    }

    fn write(&self, path: String, mode: PutMode, size_hint: Option<u64>) -> Result<WriterHandle, Error> {
        let why = match mode {
            PutMode::Overwrite => None,
            PutMode::Create => Some("create (fail if it exists)"),
            PutMode::Update(_) => Some("update(etag)"),
        };
        if let Some(mode) = why {
            return Err(Error::Unsupported(format!(
                "the MLflow artifact proxy has no conditional writes, so `{path}` cannot be written with {mode}; \
                 only overwrite is supported"
            )));
        }
        Ok(WriterHandle::new(UploadSlot::new(writer::Upload::new(
            self, path, size_hint,
        ))))
    }
}
