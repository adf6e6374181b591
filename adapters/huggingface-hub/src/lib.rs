//! `huggingface_hub`: a wharf storage adapter that keeps objects as files
//! of a Hugging Face Hub repo (model, dataset or space), over the
//! `wasi:http` the host grants, and a scratch directory for large writes.
//!
//! # Configuration (`[backends.<name>.config]`)
//! | key | meaning |
//! |---|---|
//! | `repo_id` | `namespace/name` (required); the repo must exist |
//! | `repo_type` | `model` (default), `dataset` or `space` |
//! | `revision` | the branch read and committed to, default `main` |
//! | `endpoint` | default `https://huggingface.co` |
//! | `token` | a Hub access token (use `${env:HF_TOKEN}`); never shown in errors or logs |
//! | `prefix` | a path prefix inside the repo, e.g. `wharf/` |
//! | `scratch` | guest path of a granted directory (`grants.dirs`) where writes larger than `spool_threshold` are spooled; without it such writes fail as `invalid` |
//! | `spool_threshold` | bytes a write keeps in memory, default `10MiB`, at most `64MiB` |
//!
//! Grants: `http` needs the endpoint and the host the Hub redirects LFS
//! downloads and uploads to (on huggingface.co: its CDN and storage hosts).
//!
//! # How it maps the contract
//! - Reads: `GET /{repo}/resolve/{revision}/{path}` with `Range`. An LFS
//!   file answers with a redirect to the CDN, which is followed without the
//!   token when it is another host.
//! - `stat`: `HEAD` of the same URL. Regular files answer 200 with `ETag`
//!   (the git blob id); LFS files answer the redirect with `X-Linked-Size`
//!   and `X-Linked-Etag` (the sha256). That value is the object's etag.
//! - `list`: the tree API, recursive, following its `Link` pagination.
//! - Writes: the Hub needs an LFS object's sha256 before its upload, and a
//!   write arrives in one pass, so bytes are hashed as they come and kept in
//!   memory up to `spool_threshold`, then spooled to `scratch` (the file is
//!   removed on finish, abort or drop). `finish` asks `preupload`: a
//!   `regular` file goes base64 inside the commit; an `lfs` one through the
//!   LFS batch API (`basic`: one PUT; `multipart`: one PUT per part and a
//!   completion call, each streamed from the spool file), then
//!   `POST /api/{type}s/{repo}/commit/{revision}` (NDJSON) makes it visible.
//!   The whole upload happens inside `finish`: raise `limits.call_timeout`
//!   for files of several GiB.
//! - `create` and `update(etag)`: the precondition is checked with a `HEAD`
//!   when the write starts, and the commit carries the commit that `HEAD`
//!   saw as `parentCommit`; the Hub refuses it (412) if the branch moved.
//!   Then the precondition is checked again at the new head: a conflicting
//!   change fails the write (`already-exists` / `precondition-failed`), an
//!   unrelated one is retried on (at most 5 commits).
//! - `delete`: a commit with `deletedFile`; a missing file succeeds.
//! - `copy`: a commit that adds the destination with the source's LFS
//!   object id (no bytes move) or, for a regular file, its content.

mod client;
mod config;
mod list;
mod reader;
mod writer;

use client::Hub;
use serde_json::json;
use wharf_guest::{
    BackendHandle, ByteRange, Capabilities, DownloadCell, Error, Guest, GuestBackend, ObjectMeta, Page, PutMode,
    ReaderHandle, UploadSlot, WriterHandle,
};
use wharf_guest_http::encode::base64;

/// The largest regular file `copy` moves through memory (the Hub keeps
/// files of 10 MB and more in LFS, which copies without moving bytes).
const COPY_INLINE_MAX: u64 = 64 << 20;

struct Component;
wharf_guest::export!(Component);
// Nothing it keeps goes stale while idle (HTTP connections are the host's).
wharf_guest::nothing_to_recycle!(Component);
wharf_guest::no_pending_uploads!(
    Component,
    "huggingface_hub",
    "nothing reaches the Hub before the commit but LFS objects, which no commit references and the Hub does not list"
);

impl Guest for Component {
    type Backend = Hub;
    type Reader = DownloadCell<reader::Body>;
    type Writer = UploadSlot<writer::Upload>;

    fn open(config: Vec<(String, String)>) -> Result<BackendHandle, Error> {
        Ok(BackendHandle::new(Hub {
            cfg: config::Config::parse(config)?,
        }))
    }
}

impl GuestBackend for Hub {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            read_range: true,
            write_create: true,
            write_update: true,
            copy: true,
            list_max_limit: 1000,
            write_min_chunk: 0,
            write_max_chunk: 8 << 20,
            // Without a scratch directory a write must fit in memory.
            max_object_size: match self.cfg.scratch {
                Some(_) => None,
                None => Some(self.cfg.spool_threshold),
            },
        }
    }

    fn stat(&self, path: String) -> Result<ObjectMeta, Error> {
        Hub::stat(self, &path)
    }

    fn exists(&self, path: String) -> Result<bool, Error> {
        Ok(self.head(&path)?.file.is_some())
    }

    fn delete(&self, path: String) -> Result<(), Error> {
        if self.head(&path)?.file.is_none() {
            return Ok(());
        }
        let repo_path = self.repo_path(&path);
        let op = json!({ "key": "deletedFile", "value": { "path": repo_path } });
        match self.commit(&format!("Delete {repo_path} with wharf"), None, &[op]) {
            // Deleted by someone else in between.
            Ok(_) | Err(Error::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn list(&self, prefix: String, cursor: Option<String>, limit: u32) -> Result<Page, Error> {
        Hub::list(self, &prefix, cursor, limit.clamp(1, 1000))
    }

    fn copy(&self, source: String, destination: String, mode: PutMode) -> Result<ObjectMeta, Error> {
        let head = self.head(&source)?;
        let (src, at) = match (head.file, head.commit) {
            (Some(f), commit) => (f, commit),
            (None, _) => {
                return Err(Error::NotFound(format!(
                    "copy source `{}` does not exist",
                    self.repo_path(&source)
                )));
            }
        };
        let parent = match mode {
            PutMode::Overwrite => None,
            _ => Some(writer::check(self, &destination, &mode, self.head(&destination)?)?),
        };
        let dest = self.repo_path(&destination);
        let op = if src.lfs {
            json!({ "key": "lfsFile", "value": {
                "path": dest, "algo": "sha256", "oid": src.etag, "size": src.size } })
        } else {
            if src.size > COPY_INLINE_MAX {
                return Err(Error::Unsupported(format!(
                    "`{}` is a regular (non-LFS) file of {} bytes; copy moves at most {COPY_INLINE_MAX} through memory",
                    self.repo_path(&source),
                    src.size
                )));
            }
            // The content of the very commit HEAD saw.
            let rev = at.unwrap_or_else(|| self.cfg.revision.clone());
            let mut body = self.get(&rev, &source, None)?;
            let mut bytes = Vec::with_capacity(src.size as usize);
            loop {
                let chunk = body.next(1 << 20)?;
                if chunk.is_empty() {
                    break;
                }
                bytes.extend_from_slice(&chunk);
                if bytes.len() as u64 > COPY_INLINE_MAX {
                    return Err(Error::Backend(format!(
                        "`{}` grew while copied",
                        self.repo_path(&source)
                    )));
                }
            }
            if writer::git_blob_id(&bytes) != src.etag {
                return Err(Error::Transient(format!(
                    "`{}` changed while copied; try again",
                    self.repo_path(&source)
                )));
            }
            json!({ "key": "file", "value": { "path": dest, "content": base64(&bytes), "encoding": "base64" } })
        };
        let summary = format!("Copy {} to {dest} with wharf", self.repo_path(&source));
        writer::commit_checked(self, &destination, &mode, parent, &summary, &[op])?;
        Ok(ObjectMeta {
            path: destination,
            size: src.size,
            etag: Some(src.etag),
            modified_ms: None,
        })
    }

    fn health(&self) -> Result<String, Error> {
        let commit = self.head_commit()?;
        Ok(format!(
            "{} repo `{}` at {}: `{}` is at commit {commit} ({})",
            self.cfg.repo_type.name(),
            self.cfg.repo_id,
            self.cfg.endpoint.url(),
            self.cfg.revision,
            if self.cfg.token.is_some() {
                "with a token"
            } else {
                "anonymous"
            }
        ))
    }

    fn read(&self, path: String, range: Option<ByteRange>) -> Result<ReaderHandle, Error> {
        Ok(ReaderHandle::new(DownloadCell::new(self.get(
            &self.cfg.revision,
            &path,
            range,
        )?)))
    }

    fn write(&self, path: String, mode: PutMode, _size_hint: Option<u64>) -> Result<WriterHandle, Error> {
        Ok(WriterHandle::new(UploadSlot::new(writer::Upload::new(
            self, path, mode,
        )?)))
    }
}
