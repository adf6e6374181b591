//! Single objects, as every storage CLI moves them: read (whole or a
//! range), loaded into a local file, written from a local file or stream.
//! The same streaming, hashing and verification as models, without a
//! manifest.

use super::{Expected, StorageService};
use crate::adapter::{ByteRange, PutMode};
use crate::error::{Error, ErrorKind, Result};
use crate::path::ObjectPath;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// What a single-object transfer moved.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ObjectTransfer {
    /// The object's path in the backend.
    pub path: String,
    /// Bytes moved.
    pub size_bytes: u64,
    /// sha256 of the bytes moved, hex.
    pub checksum: String,
    /// The object's etag after a write, when the backend has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl StorageService {
    /// Streams an object, or `range` of it, into `out`, failing with
    /// `integrity` unless the bytes match `expect`. On `Err` the bytes
    /// already written to `out` must be discarded.
    pub async fn read_object_into(
        &self,
        path: &str,
        range: Option<ByteRange>,
        expect: &Expected,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<ObjectTransfer> {
        let p = ObjectPath::parse(path)?;
        let mut moved = 0;
        let (size_bytes, checksum) = self
            .stream_verified(&p, range, expect, out, &mut moved)
            .await
            .map_err(|e| e.at(self.adapter.name(), "read", Some(path)))?;
        out.flush().await.map_err(|e| Error::io("writing the output", e))?;
        Ok(ObjectTransfer {
            path: path.to_string(),
            size_bytes,
            checksum,
            etag: None,
        })
    }

    /// Loads an object into the local file `dest` (or `dest/<name>` when
    /// `dest` is a directory), verified against `expect`. As with models,
    /// nothing appears at `dest` unless every byte matched, and an existing
    /// file is replaced only with `overwrite`; a character device or FIFO
    /// is written in place. Returns what was moved and the file written.
    pub async fn load_object_to_path(
        &self,
        path: &str,
        dest: &Path,
        expect: &Expected,
        overwrite: bool,
    ) -> Result<(ObjectTransfer, PathBuf)> {
        let p = ObjectPath::parse(path)?;
        let target = if dest.is_dir() {
            dest.join(p.as_str().rsplit('/').next().unwrap_or("object"))
        } else {
            dest.to_path_buf()
        };
        let mut moved = 0;
        let (size_bytes, checksum) = self
            .download_to_target(&p, expect, false, &target, overwrite, &mut moved)
            .await?;
        let transfer = ObjectTransfer {
            path: path.to_string(),
            size_bytes,
            checksum,
            etag: None,
        };
        Ok((transfer, target))
    }

    /// Writes `reader` as the object `path`, streamed and hashed. With
    /// [`PutMode::Create`] an existing object is an `already-exists` error
    /// and stays as it was; a failed write leaves nothing behind.
    pub async fn save_object(
        &self,
        path: &str,
        reader: impl AsyncRead + Unpin + Send + 'static,
        size_hint: Option<u64>,
        mode: PutMode,
    ) -> Result<ObjectTransfer> {
        let p = ObjectPath::parse(path)?;
        let mut moved = 0;
        let up = self
            .upload_one(&p, path, Box::new(reader), size_hint, mode, &mut moved)
            .await
            .map_err(|e| e.at(self.adapter.name(), "write", Some(path)))?;
        Ok(ObjectTransfer {
            path: path.to_string(),
            size_bytes: up.file.size_bytes,
            checksum: up.file.checksum,
            etag: up.etag,
        })
    }

    /// Writes the local file `file` as the object `path`; see
    /// [`StorageService::save_object`].
    pub async fn save_object_file(&self, file: &Path, path: &str, mode: PutMode) -> Result<ObjectTransfer> {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| Error::io(format!("opening `{}`", file.display()), e))?;
        let meta = f
            .metadata()
            .await
            .map_err(|e| Error::io(format!("reading `{}`", file.display()), e))?;
        if !meta.is_file() {
            return Err(Error::new(
                ErrorKind::Invalid,
                format!("`{}` is not a regular file", file.display()),
            ));
        }
        self.save_object(path, f, Some(meta.len()), mode).await
    }
}
