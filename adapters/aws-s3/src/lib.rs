//! `aws_s3`: a wharf storage adapter for Amazon S3 and S3-compatible
//! servers, over the `wasi:http` the host grants (nothing else).
//!
//! # Configuration (`[backends.<name>.config]`)
//! | key | meaning |
//! |---|---|
//! | `bucket` | the bucket (required) |
//! | `region` | signing region, default `us-east-1` |
//! | `endpoint` | default `https://s3.<region>.amazonaws.com`; any S3-compatible URL |
//! | `path_style` | `true`: `<endpoint>/<bucket>/<key>`; `false`: `<bucket>.<endpoint host>/<key>`. Default `false` for the AWS endpoint, `true` for a custom one |
//! | `access_key_id`, `secret_access_key` | credentials (use `${env:…}`); both absent means anonymous requests |
//! | `session_token` | for temporary credentials |
//! | `prefix` | a key prefix inside the bucket, e.g. `models/` |
//! | `part_size` | multipart part size, default `8MiB`, 5 MiB to 5 GiB |
//! | `max_in_flight` | parts uploading at once, default 4 |
//! | `payload_signing` | `auto` (default: signed over http, `UNSIGNED-PAYLOAD` over https, where TLS protects the body), `signed` or `unsigned` |
//!
//! # How it maps the contract
//! - Writes: one `PutObject` when the object fits one part; otherwise a
//!   multipart upload, `max_in_flight` parts at a time, completed on
//!   `finish`. Any failure, `abort()` or a dropped writer aborts the upload,
//!   so no part stays billed behind. Signed parts are hashed four at a
//!   time (SIMD lanes), so the adapter holds up to 4 parts, at most 32 MiB
//!   (one part when unsigned, or when a part is 32 MiB or more); at most
//!   `max_in_flight` parts are in the host's send buffers.
//! - `create` sends `If-None-Match: *` and `update(etag)` sends `If-Match`
//!   (S3 has honoured both on `PutObject` and `CompleteMultipartUpload` since
//!   2024). Both are first checked with a `HEAD`, so a conflicting 1 GiB
//!   upload fails before it starts and servers that answer oddly for a
//!   missing object still give the contract's error; the atomic check is the
//!   server's.
//! - `copy`: `CopyObject` (S3 copies at most 5 GiB in one request; larger
//!   sources are refused as `unsupported`).
//! - Reads: `GET` with `Range`; a body shorter than its `Content-Length` is an
//!   error, never a short object.
//! - `list`: `ListObjectsV2` with `encoding-type=url`; the cursor is S3's
//!   continuation token.
//! - Pending uploads (`maintenance`): the multipart uploads under the
//!   prefix that were never completed or aborted (a host that crashed in a
//!   write leaves one), by `ListMultipartUploads`, with their `Initiated`
//!   time; `abort-pending` is `AbortMultipartUpload`. Staged bytes are not
//!   reported (that would cost a `ListParts` per upload). moto ignores
//!   `max-uploads` and the markers and reports every upload as initiated
//!   in 2010: the adapter pages such an answer itself. s3s-fs has no
//!   `ListMultipartUploads` (501, mapped to `unsupported`).

mod client;
mod config;
mod list;
mod pending;
mod reader;
mod sigv4;
mod writer;

use client::S3;
use wharf_guest::{
    BackendBorrow, BackendHandle, ByteRange, Capabilities, DownloadCell, Error, Guest, GuestBackend, Maintenance,
    ObjectMeta, Page, PendingPage, PutMode, ReaderHandle, UploadSlot, WriterHandle,
};

struct Component;
wharf_guest::export!(Component);
// Nothing it keeps goes stale while idle (HTTP connections are the host's).
wharf_guest::nothing_to_recycle!(Component);

impl Guest for Component {
    type Backend = S3;
    type Reader = DownloadCell<reader::Body>;
    type Writer = UploadSlot<writer::Upload>;

    fn open(config: Vec<(String, String)>) -> Result<BackendHandle, Error> {
        Ok(BackendHandle::new(S3::open(config)?))
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
            .get::<S3>()
            .list_multipart_uploads(&prefix, cursor, limit.clamp(1, 1000))
    }

    fn abort_pending(backend: BackendBorrow<'_>, path: String, upload_id: String) -> Result<(), Error> {
        backend.get::<S3>().abort_multipart_upload(&path, &upload_id)
    }
}

impl GuestBackend for S3 {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_range: true,
            write_create: true,
            write_update: true,
            copy: true,
            list_max_limit: 1000,
            write_min_chunk: self.cfg.part_size,
            write_max_chunk: self.cfg.part_size,
            max_object_size: Some(self.cfg.part_size * 10_000),
        }
    }

    fn stat(&self, path: String) -> Result<ObjectMeta, Error> {
        self.head(&path)
    }

    fn exists(&self, path: String) -> Result<bool, Error> {
        wharf_guest::exists(self.head(&path))
    }

    fn delete(&self, path: String) -> Result<(), Error> {
        self.delete_object(&path)
    }

    fn list(&self, prefix: String, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        self.list_objects(&prefix, cursor, limit.clamp(1, 1000))
    }

    fn copy(&self, source: String, destination: String, mode: PutMode) -> Result<ObjectMeta, Error> {
        self.copy_object(&source, &destination, &mode)
    }

    fn health(&self) -> Result<String, Error> {
        self.health()
    }

    fn read(&self, path: String, range: Option<ByteRange>) -> Result<ReaderHandle, Error> {
        Ok(ReaderHandle::new(DownloadCell::new(self.get_object(&path, range)?)))
    }

    fn write(&self, path: String, mode: PutMode, _size_hint: Option<u64>) -> Result<WriterHandle, Error> {
        Ok(WriterHandle::new(UploadSlot::new(writer::Upload::new(
            self, path, mode,
        )?)))
    }
}
