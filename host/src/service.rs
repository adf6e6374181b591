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
                SerializationFormat::detect_dir(files.iter().map(|f| f.path.as_str()))
            } else {
                SerializationFormat::detect_file(&head, &files[0].path)
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
            let mode = if self.adapter.capabilities().await?.write_create {
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
                    head = buf[..buf.len().min(256)].to_vec();
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
        let mut out = tokio::fs::File::create(target)
            .await
            .map_err(|e| Error::io(format!("creating `{}`", target.display()), e))?;
        // One blocking write per chunk instead of tokio's default 2 MiB pieces.
        out.set_max_buf_size(CHUNK);
        self.download_one(path, expect, &mut out, moved).await?;
        out.sync_all()
            .await
            .map_err(|e| Error::io(format!("writing `{}`", target.display()), e))
    }

    /// Loads a model to `dest`, verified: a one-file model becomes the file
    /// `dest` (or `dest/<name>` if `dest` is a directory); a folder model
    /// becomes the directory `dest`, which must not exist yet. Nothing
    /// appears at `dest` unless every byte matched its checksum.
    pub async fn load_to_path(&self, storage_path: &str, dest: &Path) -> Result<ModelStorageInfo> {
        let (base, m) = self.manifest(storage_path).await?;
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
            let tmp = partial_name(&target);
            let result = async {
                self.download_to_file(&data.join(&f.path)?, f, &tmp, &mut moved).await?;
                tokio::fs::rename(&tmp, &target)
                    .await
                    .map_err(|e| Error::io(format!("renaming to `{}`", target.display()), e))
            }
            .await;
            if result.is_err() {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            result?;
        } else {
            if dest.exists() {
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
                for f in &info.files {
                    let target = tmp.join(&f.path);
                    if let Some(parent) = target.parent() {
                        tokio::fs::create_dir_all(parent)
                            .await
                            .map_err(|e| Error::io(format!("creating `{}`", parent.display()), e))?;
                    }
                    self.download_to_file(&data.join(&f.path)?, f, &target, &mut moved)
                        .await?;
                }
                tokio::fs::rename(&tmp, dest)
                    .await
                    .map_err(|e| Error::io(format!("renaming to `{}`", dest.display()), e))
            }
            .await;
            if result.is_err() {
                let _ = tokio::fs::remove_dir_all(&tmp).await;
            }
            result?;
        }
        Ok(info)
    }
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
