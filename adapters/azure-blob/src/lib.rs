//! `azure_blob`: a wharf storage adapter for Azure Blob Storage (and the
//! Azurite emulator), over the `wasi:http` the host grants (nothing else).
//! It speaks the Blob REST API, version 2021-08-06, and stores each object
//! as a block blob named `<prefix><path>` in one container.
//!
//! # Configuration (`[backends.<name>.config]`)
//! | key | meaning |
//! |---|---|
//! | `account` | the storage account (required) |
//! | `container` | the container (required; it must exist) |
//! | `account_key` | Shared Key authorization: the base64 account key (use `${env:…}`) |
//! | `sas_token` | or a SAS token, appended to every URL (with or without the leading `?`) |
//! | `token` | or a Microsoft Entra ID access token, sent as `Authorization: Bearer` (HTTPS only, as Azure requires); the host obtains and renews it for `az://` URLs |
//! | `endpoint` | default `https://<account>.blob.core.windows.net`; a base path is kept in every URL, e.g. Azurite's `http://127.0.0.1:10000/devstoreaccount1` |
//! | `prefix` | a blob-name prefix inside the container, e.g. `models/` |
//! | `block_size` | upload block size, default `8MiB`, 64 KiB to 64 MiB (the adapter holds two blocks at once) |
//! | `max_in_flight` | blocks uploading at once, default 4, 1 to 64 |
//!
//! Exactly one of `account_key`, `sas_token` and `token` is required. Errors name the
//! account and the kind of credentials ("account `x` with a shared key"),
//! never a key or token.
//!
//! # How it maps the contract
//! - Writes: an object of at most one block is one Put Blob. A larger one is
//!   uploaded with Put Block, `max_in_flight` blocks at a time, and made
//!   visible at once by Put Block List on `finish`. Block ids carry a random
//!   per-upload tag, so concurrent uploads to one blob never mix blocks.
//!   Memory: the adapter holds at most two blocks (the first is kept until a
//!   second shows the object needs more than one), and at most
//!   `max_in_flight` blocks are in the host's send buffers.
//! - `abort()`, a dropped writer or a failed `finish` commit nothing, and
//!   uncommitted blocks are never visible (not read, listed or stat-ed).
//!   The adapter does not delete them (Delete Blob could remove a committed
//!   blob at that name): Azure garbage-collects them after seven days, or
//!   at the blob's next commit.
//! - `create` sends `If-None-Match: *` (Azure answers 409 BlobAlreadyExists
//!   or 412) and `update(etag)` sends `If-Match` (412, and a missing blob,
//!   are `precondition-failed`), on Put Blob, Put Block List and Copy Blob.
//!   A block upload first checks the condition with a `HEAD`, so a
//!   conflicting 1 GiB upload fails before it starts; the atomic check is
//!   Azure's, on commit.
//! - Reads: Get Blob with `x-ms-range`; a range starting at or past the end
//!   (416) reads nothing. A body shorter than its `Content-Length` is an
//!   error, never a short object.
//! - `list`: List Blobs (no delimiter, at most 5,000 per page); the cursor is
//!   Azure's `NextMarker`. Etags are shown quoted everywhere (`"0x8D…"`),
//!   as the `ETag` header has them.
//! - `copy`: Copy Blob from the source's URL in the same account (with the
//!   SAS token when that is the credential). Azure may finish it
//!   asynchronously: the adapter polls `x-ms-copy-status` for up to 60 s,
//!   then aborts the copy and removes the destination (`transient`).
//! - `delete` removes the blob with its snapshots; a missing blob is success.
//! - `health` lists one blob under the prefix: credentials, container and
//!   the list permission all work.
//!
//! # Limits and what the emulator cannot do
//! - A blob commits at most 50,000 blocks: the largest object is
//!   50,000 × `block_size` (about 390 GiB at 8 MiB, 3 TiB at 64 MiB).
//! - Azure lists blobs in UTF-8 byte order; Azurite compares names as
//!   JavaScript strings (UTF-16 code units), which differs only between
//!   characters above U+FFFF and U+E000–U+FFFF.
//! - Azurite copies inside one instance synchronously, so the polling of a
//!   pending copy only runs against Azure.
//! - Azure garbage-collects uncommitted blocks after a week; Azurite never
//!   expires them (they go when the blob is next committed or deleted).
//!   Neither reads, stats or lists them.

mod client;
mod config;
mod copy;
mod list;
mod reader;
mod shared_key;
mod writer;

use client::Azure;
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
    "azure_blob",
    "the Blob service discards uncommitted blocks by itself a week after they were staged, and has no call that discards them earlier without committing over the object"
);

impl Guest for Component {
    type Backend = Azure;
    type Reader = DownloadCell<reader::Body>;
    type Writer = UploadSlot<writer::Upload>;

    fn open(config: Vec<(String, String)>) -> Result<BackendHandle, Error> {
        Ok(BackendHandle::new(Azure::new(config::Config::parse(config)?)))
    }
}

impl GuestBackend for Azure {
    fn capabilities(&self) -> Capabilities {
        let block_size = self.config().block_size;
        Capabilities {
            read_range: true,
            write_create: true,
            write_update: true,
            copy: true,
            list_max_limit: client::LIST_MAX,
            write_min_chunk: block_size,
            write_max_chunk: block_size,
            max_object_size: Some(block_size * writer::MAX_BLOCKS),
        }
    }

    fn stat(&self, path: String) -> Result<ObjectMeta, Error> {
        Azure::stat(self, &path)
    }

    fn exists(&self, path: String) -> Result<bool, Error> {
        wharf_guest::exists(Azure::stat(self, &path))
    }

    fn delete(&self, path: String) -> Result<(), Error> {
        Azure::delete(self, &path)
    }

    fn list(&self, prefix: String, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        Azure::list(self, &prefix, cursor, limit)
    }

    fn copy(&self, source: String, destination: String, mode: PutMode) -> Result<ObjectMeta, Error> {
        Azure::copy(self, &source, &destination, &mode)
    }

    fn health(&self) -> Result<String, Error> {
        Azure::health(self)
    }

    fn read(&self, path: String, range: Option<ByteRange>) -> Result<ReaderHandle, Error> {
        Ok(ReaderHandle::new(DownloadCell::new(Azure::read(self, &path, range)?)))
    }

    fn write(&self, path: String, mode: PutMode, _size_hint: Option<u64>) -> Result<WriterHandle, Error> {
        Ok(WriterHandle::new(UploadSlot::new(writer::Upload::new(
            self, path, mode,
        ))))
    }
}
