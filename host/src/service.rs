//! [`StorageService`]: save and load models through any [`Adapter`],
//! streamed, checksummed, and committed by a manifest written last.
//!
//! A model version at `<storage_path>` is:
//! - its files under `<storage_path>/<upload-id>/...`, written first;
//! - its manifest `<storage_path>/wharf.json`, written last with a
//!   create-only put. The version exists once the manifest does; two hosts
//!   saving the same version race on the manifest and exactly one wins,
//!   the loser removes its own files. A crash before the manifest leaves
//!   unreferenced files under a fresh upload id, never a broken version.

use crate::adapter::{Adapter, Encoding, ObjectReader, PutMode};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{ModelStorageInfo, SerializationFormat, StorageBackend, StoredFile};
use crate::path::ObjectPath;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The manifest's object name under a model's storage path.
pub const MANIFEST: &str = "wharf.json";
/// Bytes moved per adapter call.
pub const CHUNK: usize = 4 << 20;
/// A manifest larger than this is refused.
const MAX_MANIFEST: u64 = 16 << 20;

/// Where to save a model and how to describe it.
#[derive(Clone, Debug, Default)]
pub struct SaveOptions {
    /// Model name: with `version`, makes the path `models/<model>/<version>`.
    pub model: Option<String>,
    /// Version name.
    pub version: Option<String>,
    /// An explicit storage path instead of `models/<model>/<version>`.
    pub path: Option<String>,
    /// The format, when known; otherwise detected from content.
    pub format: Option<SerializationFormat>,
}

/// How [`StorageService::load_to_path_with`] checks and writes.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The model's checksum as the caller recorded it (the `checksum` of the
    /// `ModelStorageInfo` it kept). The load fails with `integrity` unless the
    /// bytes read hash to it; the stored manifest alone is not trusted.
    pub expect_checksum: Option<String>,
    /// The recorded total size, checked the same way.
    pub expect_size: Option<u64>,
    /// Replace an existing regular file at the output. Character devices and
    /// FIFOs (`/dev/null`, a pipe) are written in place and never replaced.
    pub overwrite: bool,
}

/// Called with the number of bytes moved so far.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    wharf_manifest: u32,
    /// The upload id the files live under.
    data: String,
    info: ModelStorageInfo,
}

/// Saves, loads, lists and deletes models on one backend.
#[derive(Clone)]
pub struct StorageService {
    adapter: Arc<dyn Adapter>,
    progress: Option<Progress>,
}

impl StorageService {
    /// A service over `adapter`.
    pub fn new(adapter: Arc<dyn Adapter>) -> Self {
        StorageService {
            adapter,
            progress: None,
        }
    }

    /// Reports bytes moved to `progress` during transfers.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The adapter underneath.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.adapter
    }

    fn storage_path(opts: &SaveOptions) -> Result<ObjectPath> {
        if let Some(p) = &opts.path {
            return ObjectPath::parse(p);
        }
        match (&opts.model, &opts.version) {
            (Some(m), Some(v)) => {
                for (what, s) in [("model name", m), ("version", v)] {
                    if s.contains('/') {
                        return Err(Error::invalid(format!("{what} {s:?} must not contain `/`")));
                    }
                }
                ObjectPath::parse(&format!("models/{m}/{v}"))
            }
            _ => Err(Error::invalid(
                "saving needs a model name and a version, or an explicit path",
            )),
        }
    }

    /// Saves one file.
    pub async fn save_file(&self, file: &Path, opts: &SaveOptions) -> Result<ModelStorageInfo> {
        let name = file_name(file)?;
        let opts = &detected(opts, file, |p| SerializationFormat::detect_path(&p)).await?;
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| Error::io(format!("opening `{}`", file.display()), e))?;
        let size = f.metadata().await.ok().map(|m| m.len());
        self.save_streams(
            opts,
            false,
            vec![(name, Box::new(f) as Box<dyn AsyncRead + Unpin + Send>, size)],
        )
        .await
    }

    /// Saves a stream as one file named `name`.
    pub async fn save_stream(
        &self,
        name: &str,
        reader: impl AsyncRead + Unpin + Send + 'static,
        opts: &SaveOptions,
    ) -> Result<ModelStorageInfo> {
        self.save_streams(opts, false, vec![(name.to_string(), Box::new(reader), None)])
            .await
    }

    /// Saves a folder (a SavedModel, a Hugging Face model directory, ...).
    /// Symbolic links are refused rather than followed.
    pub async fn save_dir(&self, dir: &Path, opts: &SaveOptions) -> Result<ModelStorageInfo> {
        let mut rel = Vec::new();
        collect_files(dir, dir, &mut rel)?;
        if rel.is_empty() {
            return Err(Error::invalid(format!("folder `{}` holds no files", dir.display())));
        }
        rel.sort();
        let files = rel.clone();
        let opts = &detected(opts, dir, move |d| SerializationFormat::detect_dir(&d, &files)).await?;
        let mut streams: Vec<(String, Box<dyn AsyncRead + Unpin + Send>, Option<u64>)> = Vec::new();
        for r in rel {
            let full = dir.join(&r);
            let f = tokio::fs::File::open(&full)
                .await
                .map_err(|e| Error::io(format!("opening `{}`", full.display()), e))?;
            let size = f.metadata().await.ok().map(|m| m.len());
            streams.push((r, Box::new(f), size));
        }
        self.save_streams(opts, true, streams).await
    }

    async fn save_streams(
        &self,
        opts: &SaveOptions,
        is_directory: bool,
        streams: Vec<(String, Box<dyn AsyncRead + Unpin + Send>, Option<u64>)>,
    ) -> Result<ModelStorageInfo> {
        let base = Self::storage_path(opts)?;
        let manifest_path = base.join(MANIFEST)?;
        if self.adapter.exists(&manifest_path).await? {
            return Err(
                Error::new(ErrorKind::AlreadyExists, format!("model `{base}` already exists")).at(
                    self.adapter.name(),
                    "save",
                    Some(base.as_str()),
                ),
            );
        }
        let upload = format!("{:016x}", crate::runtime::rand_u64());
        let data = base.join(&upload)?;
        let mut files = Vec::new();
        let mut written = Vec::new();
        let mut head = Vec::new();
        let mut moved = 0u64;
        let result: Result<()> = async {
            for (rel, reader, size) in streams {
                let path = data.join(&rel)?;
                written.push(path.clone());
                let (file, first) = self.upload_one(&path, &rel, reader, size, &mut moved).await?;
                if head.is_empty() {
                    head = first;
                }
                files.push(file);
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.remove_all(&written).await;
            return Err(e);
        }
        let format = opts.format.unwrap_or_else(|| {
            if is_directory {
                SerializationFormat::Unknown // save_dir detects from the folder's files
            } else {
                SerializationFormat::detect_file(&head, files[0].size_bytes)
            }
        });
        let info = ModelStorageInfo {
            storage_backend: StorageBackend::new(self.adapter.name())?,
            storage_path: base.to_string(),
            format,
            size_bytes: files.iter().map(|f| f.size_bytes).sum(),
            checksum: ModelStorageInfo::checksum_of(&files, is_directory),
            checksum_algorithm: "sha256".into(),
            model_name: opts.model.clone(),
            version: opts.version.clone(),
            is_directory,
            stored_size_bytes: files
                .iter()
                .any(|f| f.stored_size_bytes.is_some())
                .then(|| files.iter().map(|f| f.stored_size_bytes.unwrap_or(f.size_bytes)).sum()),
            files,
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            encodings: self.adapter.encodings(),
        };
        let manifest = serde_json::to_vec_pretty(&Manifest {
            wharf_manifest: 1,
            data: upload,
            info: info.clone(),
        })
        .expect("a manifest serializes");
        // The commit point: create-only, so of two concurrent saves one wins.
        // A backend without atomic create (mlflow's artifact store) gets a
        // check then an overwrite: a version that exists is still refused,
        // but two saves racing on the same version are not told apart.
        let commit = async {
            let mode = if self.adapter.capabilities().write_create {
                PutMode::Create
            } else if self.adapter.exists(&manifest_path).await? {
                return Err(
                    Error::new(ErrorKind::AlreadyExists, format!("model `{base}` already exists")).at(
                        self.adapter.name(),
                        "save",
                        Some(base.as_str()),
                    ),
                );
            } else {
                PutMode::Overwrite
            };
            let mut w = self
                .adapter
                .write(&manifest_path, mode, Some(manifest.len() as u64))
                .await?;
            w.append(Bytes::from(manifest)).await?;
            w.finish().await
        }
        .await;
        if let Err(e) = commit {
            self.remove_all(&written).await;
            return Err(e);
        }
        Ok(info)
    }

    /// Streams one file into the backend. Reading and hashing run in their
    /// own task, a bounded two chunks ahead of the adapter, so the sha256
    /// and the transfer overlap.
    async fn upload_one(
        &self,
        path: &ObjectPath,
        rel: &str,
        mut reader: Box<dyn AsyncRead + Unpin + Send>,
        size: Option<u64>,
        moved: &mut u64,
    ) -> Result<(StoredFile, Vec<u8>)> {
        let mut w = self.adapter.write(path, PutMode::Overwrite, size).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(2);
        let source = rel.to_string();
        let producer = tokio::spawn(async move {
            let mut hasher = Sha256::new();
            let mut head = Vec::new();
            loop {
                let mut buf = BytesMut::with_capacity(CHUNK);
                while buf.len() < CHUNK {
                    let n = reader
                        .read_buf(&mut buf)
                        .await
                        .map_err(|e| Error::io(format!("reading `{source}`"), e))?;
                    if n == 0 {
                        break;
                    }
                }
                if buf.is_empty() {
                    break;
                }
                if head.is_empty() {
                    head = buf[..buf.len().min(crate::detect::DETECT_HEAD)].to_vec();
                }
                hasher.update(&buf);
                if tx.send(buf.freeze()).await.is_err() {
                    break; // the consumer failed; its error is reported
                }
            }
            Ok::<_, Error>((hex::encode(hasher.finalize()), head))
        });
        let mut total = 0u64;
        while let Some(chunk) = rx.recv().await {
            total += chunk.len() as u64;
            *moved += chunk.len() as u64;
            if let Err(e) = w.append(chunk).await {
                producer.abort();
                return Err(e);
            }
            if let Some(p) = &self.progress {
                p(*moved);
            }
        }
        let (checksum, head) = producer
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("reader task: {e}")))??;
        let meta = w.finish().await?;
        if meta.size != total {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!("stored {} bytes but {total} were sent", meta.size),
            )
            .at(self.adapter.name(), "write", Some(path.as_str())));
        }
        Ok((
            StoredFile {
                path: rel.to_string(),
                size_bytes: total,
                checksum,
                stored_size_bytes: meta.stored_size,
            },
            head,
        ))
    }

    async fn remove_all(&self, paths: &[ObjectPath]) {
        for p in paths {
            if let Err(e) = self.adapter.delete(p).await {
                tracing::warn!("cleaning up after a failed save: {e}");
            }
        }
    }

    async fn manifest(&self, storage_path: &str) -> Result<(ObjectPath, Manifest)> {
        let base = ObjectPath::parse(storage_path)?;
        let path = base.join(MANIFEST)?;
        let at = |e: Error| e.at(self.adapter.name(), "load", Some(storage_path));
        let mut r = self.adapter.read(&path, None).await.map_err(|e| {
            if e.kind() == ErrorKind::NotFound {
                Error::new(
                    ErrorKind::NotFound,
                    format!("no model at `{storage_path}` (no {MANIFEST})"),
                )
                .at(self.adapter.name(), "load", Some(storage_path))
            } else {
                e
            }
        })?;
        let mut bytes = Vec::new();
        while let Some(c) = r.next_chunk(CHUNK).await? {
            if bytes.len() + c.len() > MAX_MANIFEST as usize {
                return Err(at(Error::new(
                    ErrorKind::Invalid,
                    format!("{MANIFEST} is larger than allowed"),
                )));
            }
            bytes.extend_from_slice(&c);
        }
        let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            at(Error::new(
                ErrorKind::Integrity,
                format!("{MANIFEST} is not a valid manifest: {e}"),
            ))
        })?;
        if m.info.storage_path != storage_path {
            return Err(at(Error::new(
                ErrorKind::Integrity,
                format!("{MANIFEST} describes `{}`", m.info.storage_path),
            )));
        }
        check_encodings(&m.info.encodings, &self.adapter.encodings()).map_err(at)?;
        check_manifest(&m).map_err(at)?;
        Ok((base, m))
    }

    /// The stored `ModelStorageInfo` of a model.
    pub async fn info(&self, storage_path: &str) -> Result<ModelStorageInfo> {
        Ok(self.manifest(storage_path).await?.1.info)
    }

    /// Whether a model exists at `storage_path`.
    pub async fn exists(&self, storage_path: &str) -> Result<bool> {
        let path = ObjectPath::parse(storage_path)?.join(MANIFEST)?;
        self.adapter.exists(&path).await
    }

    /// Deletes a model: the manifest first (the model is gone at once), then
    /// its files. Returns whether it existed.
    pub async fn delete(&self, storage_path: &str) -> Result<bool> {
        let (base, m) = match self.manifest(storage_path).await {
            Ok(x) => x,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        self.adapter.delete(&base.join(MANIFEST)?).await?;
        let data = base.join(&m.data)?;
        for f in &m.info.files {
            self.adapter.delete(&data.join(&f.path)?).await?;
        }
        Ok(true)
    }

    /// Streams one file of a model into `out`, verifying size and sha256.
    ///
    /// On `Err` the bytes already written to `out` must be discarded;
    /// [`StorageService::load_to_path`] does that for files.
    pub async fn load_file_into(
        &self,
        storage_path: &str,
        file: &str,
        out: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<StoredFile> {
        let (base, m) = self.manifest(storage_path).await?;
        let f = m
            .info
            .files
            .iter()
            .find(|f| f.path == file)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("model `{storage_path}` has no file `{file}`"),
                )
            })?
            .clone();
        let data = base.join(&m.data)?;
        let mut moved = 0;
        self.download_one(&data.join(&f.path)?, &f, out, &mut moved).await?;
        Ok(f)
    }

    async fn download_one(
        &self,
        path: &ObjectPath,
        expect: &StoredFile,
        out: &mut (dyn AsyncWrite + Unpin + Send),
        moved: &mut u64,
    ) -> Result<()> {
        let mut r: Box<dyn ObjectReader> = self.adapter.read(path, None).await?;
        // The sha256 runs in its own task, overlapping the transfer.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(2);
        let hasher = tokio::spawn(async move {
            let mut h = Sha256::new();
            while let Some(c) = rx.recv().await {
                h.update(&c);
            }
            hex::encode(h.finalize())
        });
        let mut total = 0u64;
        let integrity =
            |msg: String| Error::new(ErrorKind::Integrity, msg).at(self.adapter.name(), "read", Some(path.as_str()));
        while let Some(chunk) = r.next_chunk(CHUNK).await? {
            total += chunk.len() as u64;
            if total > expect.size_bytes {
                return Err(integrity(format!(
                    "object is longer than the recorded {} bytes",
                    expect.size_bytes
                )));
            }
            let _ = tx.send(chunk.clone()).await;
            out.write_all(&chunk)
                .await
                .map_err(|e| Error::io("writing the output", e))?;
            *moved += chunk.len() as u64;
            if let Some(p) = &self.progress {
                p(*moved);
            }
        }
        drop(tx);
        let got = hasher
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("hash task: {e}")))?;
        if total != expect.size_bytes {
            return Err(integrity(format!(
                "object has {total} bytes, {} were recorded",
                expect.size_bytes
            )));
        }
        if got != expect.checksum {
            return Err(integrity(format!("sha256 is {got}, {} was recorded", expect.checksum)));
        }
        Ok(())
    }

    /// Streams one stored file into a new local file and syncs it.
    async fn download_to_file(
        &self,
        path: &ObjectPath,
        expect: &StoredFile,
        target: &Path,
        moved: &mut u64,
    ) -> Result<()> {
        let mut o = tokio::fs::OpenOptions::new();
        o.write(true).create_new(true);
        let mut out = o
            .open(target)
            .await
            .map_err(|e| Error::io(format!("creating `{}`", target.display()), e))?;
        // One blocking write per chunk instead of tokio's default 2 MiB pieces.
        out.set_max_buf_size(CHUNK);
        self.download_one(path, expect, &mut out, moved).await?;
        out.sync_all()
            .await
            .map_err(|e| Error::io(format!("writing `{}`", target.display()), e))
    }

    /// Loads a model to `dest`, verified against its manifest, never
    /// replacing an existing file. See [`StorageService::load_to_path_with`].
    pub async fn load_to_path(&self, storage_path: &str, dest: &Path) -> Result<ModelStorageInfo> {
        self.load_to_path_with(storage_path, dest, &LoadOptions::default())
            .await
    }

    /// Loads a model to `dest`, verified: a one-file model becomes the file
    /// `dest` (or `dest/<name>` if `dest` is a directory); a folder model
    /// becomes the directory `dest`, which must not exist yet.
    ///
    /// Every path in the stored manifest is checked before anything touches
    /// the local filesystem. Nothing appears at a regular-file or folder
    /// destination unless every byte matched; an existing file is replaced
    /// only with [`LoadOptions::overwrite`]. A character device or FIFO
    /// (`/dev/null`) is written in place, so there a failed check is reported
    /// after the bytes went through.
    pub async fn load_to_path_with(
        &self,
        storage_path: &str,
        dest: &Path,
        opts: &LoadOptions,
    ) -> Result<ModelStorageInfo> {
        let (base, m) = self.manifest(storage_path).await?;
        check_expected(&m.info, opts).map_err(|e| e.at(self.adapter.name(), "load", Some(storage_path)))?;
        let data = base.join(&m.data)?;
        let info = m.info;
        let mut moved = 0;
        if !info.is_directory && info.files.len() == 1 {
            let f = &info.files[0];
            let target = if dest.is_dir() {
                dest.join(leaf(&f.path))
            } else {
                dest.to_path_buf()
            };
            match Output::of(&target, opts.overwrite)? {
                Output::InPlace => {
                    let mut out = tokio::fs::OpenOptions::new()
                        .write(true)
                        .open(&target)
                        .await
                        .map_err(|e| Error::io(format!("opening `{}`", target.display()), e))?;
                    self.download_one(&data.join(&f.path)?, f, &mut out, &mut moved).await?;
                    out.flush()
                        .await
                        .map_err(|e| Error::io(format!("writing `{}`", target.display()), e))?;
                }
                Output::New { replace } => {
                    let tmp = partial_name(&target);
                    let result = async {
                        self.download_to_file(&data.join(&f.path)?, f, &tmp, &mut moved).await?;
                        place(&tmp, &target, replace)
                    }
                    .await;
                    if result.is_err() {
                        let _ = tokio::fs::remove_file(&tmp).await;
                    }
                    result?;
                }
            }
        } else {
            if std::fs::symlink_metadata(dest).is_ok() {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "`{}` already exists; a folder model loads into a new directory",
                        dest.display()
                    ),
                ));
            }
            let tmp = partial_name(dest);
            let result = async {
                tokio::fs::create_dir(&tmp)
                    .await
                    .map_err(|e| Error::io(format!("creating `{}`", tmp.display()), e))?;
                for f in &info.files {
                    // Checked by `check_manifest`: relative, no `..`, no clashes.
                    let target = tmp.join(&f.path);
                    if let Some(parent) = target.parent() {
                        tokio::fs::create_dir_all(parent)
                            .await
                            .map_err(|e| Error::io(format!("creating `{}`", parent.display()), e))?;
                    }
                    self.download_to_file(&data.join(&f.path)?, f, &target, &mut moved)
                        .await?;
                }
                place(&tmp, dest, false)
            }
            .await;
            if result.is_err() {
                let _ = tokio::fs::remove_dir_all(&tmp).await;
            }
            result?;
        }
        Ok(info)
    }

    /// Streams a one-file model into `out` (stdout, a socket...), verified
    /// against the manifest and `opts`; on `Err` the bytes already written
    /// must be discarded.
    pub async fn load_to_writer(
        &self,
        storage_path: &str,
        out: &mut (dyn AsyncWrite + Unpin + Send),
        opts: &LoadOptions,
    ) -> Result<ModelStorageInfo> {
        let (base, m) = self.manifest(storage_path).await?;
        check_expected(&m.info, opts).map_err(|e| e.at(self.adapter.name(), "load", Some(storage_path)))?;
        if m.info.is_directory || m.info.files.len() != 1 {
            return Err(Error::invalid(format!(
                "`{storage_path}` is a folder model of {} files; load it into a directory",
                m.info.files.len()
            )));
        }
        let f = &m.info.files[0];
        let mut moved = 0;
        self.download_one(&base.join(&m.data)?.join(&f.path)?, f, out, &mut moved)
            .await?;
        out.flush().await.map_err(|e| Error::io("writing the output", e))?;
        Ok(m.info)
    }
}

/// Where a loaded file goes.
enum Output {
    /// A character device or FIFO: written as it is.
    InPlace,
    /// A regular file written aside and moved into place; `replace` if one
    /// exists there (only with `overwrite`).
    New { replace: bool },
}

impl Output {
    fn of(target: &Path, overwrite: bool) -> Result<Self> {
        let meta = match std::fs::symlink_metadata(target) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Output::New { replace: false }),
            Err(e) => return Err(Error::io(format!("`{}`", target.display()), e)),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt;
            // Follow a link to see what it names (`/dev/stdout` is one).
            let ft = std::fs::metadata(target)
                .map(|m| m.file_type())
                .unwrap_or(meta.file_type());
            if ft.is_char_device() || ft.is_fifo() {
                return Ok(Output::InPlace);
            }
        }
        if meta.is_dir() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("`{}` is a directory", target.display()),
            ));
        }
        if !meta.is_file() && !meta.file_type().is_symlink() {
            return Err(Error::invalid(format!(
                "`{}` is neither a regular file, a character device nor a FIFO",
                target.display()
            )));
        }
        if !overwrite {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "`{}` exists; pass --force to replace it or -o to choose another path",
                    target.display()
                ),
            ));
        }
        Ok(Output::New { replace: true })
    }
}

/// Moves the verified `tmp` to `target`: a rename when replacing, else a
/// hard link, which fails if something appeared at `target` meanwhile.
fn place(tmp: &Path, target: &Path, replace: bool) -> Result<()> {
    let fail = |e| Error::io(format!("moving the verified output to `{}`", target.display()), e);
    if replace || tmp.is_dir() {
        if !replace && std::fs::symlink_metadata(target).is_ok() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!("`{}` appeared while loading", target.display()),
            ));
        }
        return std::fs::rename(tmp, target).map_err(fail);
    }
    match std::fs::hard_link(tmp, target) {
        Ok(()) => std::fs::remove_file(tmp).map_err(fail),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::new(
            ErrorKind::AlreadyExists,
            format!("`{}` appeared while loading; nothing was replaced", target.display()),
        )),
        // No hard links here (some network filesystems): check, then rename.
        Err(_) if std::fs::symlink_metadata(target).is_err() => std::fs::rename(tmp, target).map_err(fail),
        Err(e) => Err(fail(e)),
    }
}

/// A manifest from storage is input like any other: every path must be a
/// plain relative object path, no two files may clash, and the recorded
/// checksum and size must follow from the per-file entries.
fn check_manifest(m: &Manifest) -> Result<()> {
    let bad = |msg: String| Error::new(ErrorKind::Integrity, format!("{MANIFEST} is not trustworthy: {msg}"));
    ObjectPath::parse(&m.data).map_err(|e| bad(format!("upload id {:?}: {}", m.data, e.message())))?;
    if m.data.contains('/') {
        return Err(bad(format!("upload id {:?} has a `/`", m.data)));
    }
    let info = &m.info;
    if info.files.is_empty() {
        return Err(bad("it lists no files".into()));
    }
    let mut paths = std::collections::BTreeSet::new();
    for f in &info.files {
        ObjectPath::parse(&f.path).map_err(|e| bad(format!("file path {:?}: {}", f.path, e.message())))?;
        if f.path.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(bad(format!("file path {:?} is not a plain relative path", f.path)));
        }
        if !paths.insert(f.path.as_str()) {
            return Err(bad(format!("file {:?} is listed twice", f.path)));
        }
    }
    // A file may not also be a directory of another (`a` and `a/b`).
    for p in &paths {
        let dir = format!("{p}/");
        if paths.range(dir.as_str()..).next().is_some_and(|q| q.starts_with(&dir)) {
            return Err(bad(format!("{p:?} is both a file and a folder")));
        }
    }
    let size: u64 = info.files.iter().map(|f| f.size_bytes).sum();
    if size != info.size_bytes {
        return Err(bad(format!(
            "size_bytes {} but its files add up to {size}",
            info.size_bytes
        )));
    }
    if ModelStorageInfo::checksum_of(&info.files, info.is_directory) != info.checksum {
        return Err(bad("its checksum does not follow from its files' checksums".into()));
    }
    Ok(())
}

/// The caller's record decides what is expected, not the stored manifest.
/// `check_manifest` already made the manifest's checksum follow from the
/// per-file ones, and every file is hashed as it is read and compared to
/// those, so equality here means the bytes hash to the caller's checksum.
fn check_expected(info: &ModelStorageInfo, opts: &LoadOptions) -> Result<()> {
    if let Some(want) = &opts.expect_checksum
        && !want.eq_ignore_ascii_case(&info.checksum)
    {
        return Err(Error::new(
            ErrorKind::Integrity,
            format!(
                "the stored model has checksum {}, the caller's record says {want}",
                info.checksum
            ),
        ));
    }
    if let Some(want) = opts.expect_size
        && want != info.size_bytes
    {
        return Err(Error::new(
            ErrorKind::Integrity,
            format!(
                "the stored model has {} bytes, the caller's record says {want}",
                info.size_bytes
            ),
        ));
    }
    Ok(())
}

fn leaf(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

fn partial_name(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(
        ".{name}.wharf-partial-{:08x}",
        crate::runtime::rand_u64() as u32
    ))
}

/// `opts` with the format detected from the local file or folder at
/// `path` (bounded reads, off the async threads) when none was given.
async fn detected(
    opts: &SaveOptions,
    path: &Path,
    detect: impl FnOnce(PathBuf) -> std::io::Result<SerializationFormat> + Send + 'static,
) -> Result<SaveOptions> {
    let mut opts = opts.clone();
    if opts.format.is_none() {
        let p = path.to_path_buf();
        let found = tokio::task::spawn_blocking(move || detect(p))
            .await
            .map_err(|e| Error::new(ErrorKind::Io, format!("format detection task: {e}")))?
            .map_err(|e| Error::io(format!("detecting the format of `{}`", path.display()), e))?;
        opts.format = Some(found);
    }
    Ok(opts)
}

fn file_name(file: &Path) -> Result<String> {
    file.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(format!("`{}` has no usable file name", file.display())))
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let read = std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading `{}`", dir.display()), e))?;
    for entry in read {
        let entry = entry.map_err(|e| Error::io(format!("reading `{}`", dir.display()), e))?;
        let ft = entry
            .file_type()
            .map_err(|e| Error::io(format!("reading `{}`", dir.display()), e))?;
        let path = entry.path();
        if ft.is_symlink() {
            return Err(Error::invalid(format!(
                "`{}` is a symbolic link; copy the target instead",
                path.display()
            )));
        } else if ft.is_dir() {
            collect_files(root, &path, out)?;
        } else if ft.is_file() {
            let rel = path.strip_prefix(root).expect("below root");
            let rel = rel
                .to_str()
                .ok_or_else(|| Error::invalid(format!("`{}` is not valid UTF-8", path.display())))?
                .replace(std::path::MAIN_SEPARATOR, "/");
            ObjectPath::parse(&rel)?;
            out.push(rel);
        }
    }
    Ok(())
}

/// Refuses to read a model through layers of other kinds than it was
/// written with (key ids may differ: an encryption layer reads with any key
/// it holds, which is how keys rotate).
fn check_encodings(stored: &[Encoding], now: &[Encoding]) -> Result<()> {
    let kinds = |e: &[Encoding]| {
        e.iter()
            .map(|e| match e {
                Encoding::Checksum { .. } => "checksum",
                Encoding::Compression { .. } => "compression",
                Encoding::Encryption { .. } => "encryption",
            })
            .collect::<Vec<_>>()
    };
    let (was, is) = (kinds(stored), kinds(now));
    if was == is {
        return Ok(());
    }
    let show = |k: &[&str]| if k.is_empty() { "none".to_string() } else { k.join(", ") };
    Err(Error::new(
        ErrorKind::Config,
        format!(
            "the model was stored through layers [{}] but the backend now has [{}]; configure the same layers to read it",
            show(&was),
            show(&is)
        ),
    ))
}
