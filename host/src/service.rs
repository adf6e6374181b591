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

use crate::adapter::{Adapter, Encoding, PutMode};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{ModelStorageInfo, SerializationFormat, StorageBackend, StoredFile};
use crate::path::ObjectPath;
use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

mod objects;
mod parallel;
mod pending;
mod writeback;

pub use objects::ObjectTransfer;
pub use parallel::ParallelReads;
#[cfg(test)]
mod tests;

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
    /// Version name; without one, a model is saved under a new version named
    /// after the UTC time of the save plus a random suffix
    /// (`20261205T121500Z-3f9a0c1e`), never one that exists; on a backend
    /// with atomic create a model without a version gets its next number.
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

/// A model version's `wharf.json`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    pub wharf_manifest: u32,
    /// The upload id the files live under.
    pub data: String,
    /// Which prefix `data` is under.
    #[serde(default, skip_serializing_if = "DataRoot::is_version")]
    pub data_root: DataRoot,
    /// The transaction that saved it: visible only once that committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx: Option<String>,
    pub info: ModelStorageInfo,
}

/// Where a version's files live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum DataRoot {
    /// `<storage_path>/<data>/...`: a version saved under a path or a name
    /// it was given.
    #[default]
    Version,
    /// `<model>/_wharf/uploads/<data>/...`: a numbered version, whose
    /// number is only known when its manifest is committed.
    Model,
}

impl DataRoot {
    fn is_version(&self) -> bool {
        *self == DataRoot::Version
    }
}

impl Manifest {
    /// The prefix its files live under, for the version at `base`.
    pub(crate) fn data_prefix(&self, base: &ObjectPath) -> Result<ObjectPath> {
        match self.data_root {
            DataRoot::Version => base.join(&self.data),
            DataRoot::Model => {
                let (model, _) = base
                    .as_str()
                    .rsplit_once('/')
                    .ok_or_else(|| Error::invalid(format!("`{base}` is not a model version")))?;
                ObjectPath::parse(model)?
                    .join(crate::registry::UPLOADS)?
                    .join(&self.data)
            }
        }
    }
}

/// What a deleted version leaves at its `wharf.json`: a numbered version's
/// number is never handed out again, and a transaction's delete keeps the
/// version (`previous`) until the transaction commits.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Tombstone {
    pub wharf_tombstone: u32,
    pub deleted_at: String,
    /// The transaction that deletes it: until that commits, `previous`
    /// is still the version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Box<Manifest>>,
}

/// What a `wharf.json` holds.
#[derive(Clone)]
#[expect(clippy::large_enum_variant, reason = "short-lived, one per manifest read")]
pub(crate) enum Slot {
    Manifest(Manifest),
    Tombstone(Tombstone),
}

/// Whether a `wharf.json` shows a version to readers.
#[expect(clippy::large_enum_variant, reason = "short-lived, one per manifest read")]
pub(crate) enum Visible {
    Yes(Manifest),
    Deleted,
    Uncommitted,
}

/// Saves, loads, lists and deletes models on one backend.
#[derive(Clone)]
pub struct StorageService {
    pub(crate) adapter: Arc<dyn Adapter>,
    /// The backend's kind, recorded as `storage_backend`.
    kind: String,
    progress: Option<Progress>,
    /// The transaction this service saves in (see
    /// [`StorageService::transaction`]).
    pub(crate) tx: Option<String>,
    /// How model files are loaded into local files.
    parallel: ParallelReads,
}

impl StorageService {
    /// A service over `adapter`, whose kind is taken to be its name (as for
    /// the built-in backends under their own names); see
    /// [`StorageService::with_kind`].
    pub fn new(adapter: Arc<dyn Adapter>) -> Self {
        StorageService {
            kind: adapter.name().to_string(),
            adapter,
            progress: None,
            tx: None,
            parallel: ParallelReads::default(),
        }
    }

    /// Records `kind` (`aws_s3`, a plugin's name...) as the
    /// `storage_backend` of what it saves; the adapter's own name (the
    /// configured backend's) goes in `backend_name`.
    pub fn with_kind(mut self, kind: &str) -> Self {
        self.kind = kind.to_string();
        self
    }

    /// The backend's kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Reports bytes moved to `progress` during transfers.
    pub fn with_progress(mut self, progress: Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Loads big model files into local files with several ranged reads
    /// at once as `parallel` says (the default: 4 reads of 16 MiB for files
    /// of 64 MiB and more, on backends that read ranges);
    /// [`ParallelReads::off`] reads every file as one stream. Either way
    /// the file is verified before it appears.
    pub fn with_parallel_reads(mut self, parallel: ParallelReads) -> Self {
        self.parallel = parallel;
        self
    }

    /// The adapter underneath.
    pub fn adapter(&self) -> &Arc<dyn Adapter> {
        &self.adapter
    }

    pub(crate) fn storage_path(opts: &SaveOptions) -> Result<ObjectPath> {
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
                "saving needs a model name (and optionally a version), or an explicit path",
            )),
        }
    }

    /// Where a save goes, checked to be free: `opts` as given, or, when it
    /// names a model but no version (on a backend without atomic create,
    /// where versions cannot be numbered), with a version chosen: the time
    /// of the save plus 32 random bits. The commit is create-only where the
    /// backend has it, so even a clash after this check cannot overwrite
    /// anything; it would only fail like an explicit version.
    pub(crate) async fn free_base(&self, opts: &SaveOptions) -> Result<(SaveOptions, ObjectPath)> {
        let mut opts = opts.clone();
        let chosen = opts.path.is_none() && opts.model.is_some() && opts.version.is_none();
        for _ in 0..8 {
            if chosen {
                let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
                let v = format!(
                    "{}-{:08x}",
                    t.replace(['-', ':'], ""),
                    crate::runtime::rand_u64() as u32
                );
                opts.version = Some(v);
            }
            let base = Self::storage_path(&opts)?;
            if !self.adapter.exists(&base.join(MANIFEST)?).await? {
                return Ok((opts, base));
            }
            if !chosen {
                return Err(self.taken(&base).await);
            }
        }
        Err(Error::new(
            ErrorKind::AlreadyExists,
            "eight random default versions were all taken; the random source is broken",
        ))
    }

    /// The mode of a write that must not replace an object: create-only on
    /// a backend with atomic create; on one without (mlflow's artifact
    /// store), a check then an overwrite, which refuses an object that
    /// exists but cannot tell two racing writers apart. `None`: an object
    /// is there.
    pub async fn create_only_mode(&self, path: &ObjectPath) -> Result<Option<PutMode>> {
        if self.adapter.capabilities().write_create {
            Ok(Some(PutMode::Create))
        } else if self.adapter.exists(path).await? {
            Ok(None)
        } else {
            Ok(Some(PutMode::Overwrite))
        }
    }

    /// Saves one file.
    pub async fn save_file(&self, file: &Path, opts: &SaveOptions) -> Result<ModelStorageInfo> {
        let name = file_name(file)?;
        let opts = &detected(opts, file, |p| SerializationFormat::detect_path(&p)).await?;
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| Error::io(format!("opening `{}`", file.display()), e))?;
        let meta = f.metadata().await.ok();
        let source = Source {
            rel: name,
            size: meta.as_ref().map(|m| m.len()),
            executable: meta.as_ref().is_some_and(is_executable),
            reader: Box::new(f),
        };
        self.save_streams(opts, false, vec![source], vec![]).await
    }

    /// Saves a stream as one file named `name`.
    pub async fn save_stream(
        &self,
        name: &str,
        reader: impl AsyncRead + Unpin + Send + 'static,
        opts: &SaveOptions,
    ) -> Result<ModelStorageInfo> {
        let source = Source {
            rel: name.to_string(),
            reader: Box::new(reader),
            size: None,
            executable: false,
        };
        self.save_streams(opts, false, vec![source], vec![]).await
    }

    /// Saves a folder (a SavedModel, a Hugging Face model directory, ...).
    /// Symbolic links are refused rather than followed.
    ///
    /// Everything a loader may rely on comes back: hidden files, empty
    /// directories and the executable bit. Symbolic links are refused, not
    /// followed (a link could name anything on this machine), and so is any
    /// entry that is neither a file nor a directory.
    pub async fn save_dir(&self, dir: &Path, opts: &SaveOptions) -> Result<ModelStorageInfo> {
        let mut tree = Tree::default();
        collect_files(dir, dir, &mut tree)?;
        if tree.files.is_empty() {
            return Err(Error::invalid(format!("folder `{}` holds no files", dir.display())));
        }
        tree.files.sort();
        tree.empty_dirs.sort();
        let files: Vec<String> = tree.files.iter().map(|(r, _)| r.clone()).collect();
        let opts = &detected(opts, dir, move |d| SerializationFormat::detect_dir(&d, &files)).await?;
        let mut streams: Vec<Source> = Vec::new();
        for (r, executable) in tree.files {
            let full = dir.join(&r);
            let f = tokio::fs::File::open(&full)
                .await
                .map_err(|e| Error::io(format!("opening `{}`", full.display()), e))?;
            let size = f.metadata().await.ok().map(|m| m.len());
            streams.push(Source {
                rel: r,
                reader: Box::new(f),
                size,
                executable,
            });
        }
        self.save_streams(opts, true, streams, tree.empty_dirs).await
    }

    async fn save_streams(
        &self,
        opts: &SaveOptions,
        is_directory: bool,
        streams: Vec<Source>,
        directories: Vec<String>,
    ) -> Result<ModelStorageInfo> {
        let target = self.save_target(opts).await?;
        let opts = &target.opts;
        let upload = format!("{:016x}", crate::runtime::rand_u64());
        let data = match &target.numbered {
            Some(model) => model.join(crate::registry::UPLOADS)?.join(&upload)?,
            None => target.base.join(&upload)?,
        };
        let mut files = Vec::new();
        let mut written = Vec::new();
        let mut head = Bytes::new();
        let mut moved = 0u64;
        let result: Result<()> = async {
            for Source {
                rel,
                reader,
                size,
                executable,
            } in streams
            {
                let path = data.join(&rel)?;
                written.push(path.clone());
                let up = self
                    .upload_one(&path, &rel, reader, size, PutMode::Overwrite, &mut moved)
                    .await?;
                // save_file and save_dir detected the format from the local
                // files already; only a stream is detected from its head.
                if opts.format.is_none() && head.is_empty() {
                    head = up.first.slice(..up.first.len().min(crate::detect::DETECT_HEAD));
                }
                files.push(StoredFile { executable, ..up.file });
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.remove_all(&written).await;
            return Err(e);
        }
        let format = opts
            .format
            .unwrap_or_else(|| SerializationFormat::detect_file(&head, files[0].size_bytes));
        let info = ModelStorageInfo {
            storage_backend: StorageBackend::new(&self.kind)?,
            storage_path: target.base.to_string(),
            format,
            size_bytes: files.iter().map(|f| f.size_bytes).sum(),
            checksum: ModelStorageInfo::checksum_of(&files, &directories, is_directory),
            checksum_algorithm: "sha256".into(),
            backend_name: Some(self.adapter.name().to_string()),
            model_name: opts.model.clone(),
            version: opts.version.clone(),
            is_directory,
            stored_size_bytes: files
                .iter()
                .any(|f| f.stored_size_bytes.is_some())
                .then(|| files.iter().map(|f| f.stored_size_bytes.unwrap_or(f.size_bytes)).sum()),
            files,
            directories,
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            encodings: self.adapter.encodings(),
        };
        let mut manifest = Manifest {
            wharf_manifest: 1,
            data: upload,
            data_root: if target.numbered.is_some() {
                DataRoot::Model
            } else {
                DataRoot::Version
            },
            tx: self.tx.clone(),
            info,
        };
        // The commit point: the manifest, written create-only.
        let commit = match &target.numbered {
            Some(model) => self.commit_numbered(model, &mut manifest).await,
            None => self.commit_manifest(&target.base, &manifest).await,
        };
        if let Err(e) = commit {
            self.remove_all(&written).await;
            return Err(e);
        }
        Ok(manifest.info)
    }

    /// Writes `manifest` at `base`: the commit point. Create-only, so of
    /// two concurrent saves one wins. A backend without atomic create
    /// (mlflow's artifact store) gets a check then an overwrite: a version
    /// that exists is still refused, but two saves racing on the same
    /// version are not told apart.
    async fn commit_manifest(&self, base: &ObjectPath, manifest: &Manifest) -> Result<()> {
        let manifest_path = base.join(MANIFEST)?;
        let Some(mode) = self.create_only_mode(&manifest_path).await? else {
            return Err(self.taken(base).await);
        };
        let bytes = serde_json::to_vec_pretty(manifest).expect("a manifest serializes");
        match self.put_small(&manifest_path, mode, bytes).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(self.taken(base).await),
            Err(e) => Err(e),
        }
    }

    /// Writes a small object whole. A refused `mode` (create-only on a
    /// taken path, a stale etag) is `already-exists` or
    /// `precondition-failed` whether the backend refuses it when the write
    /// opens or when it finishes.
    pub(crate) async fn put_small(
        &self,
        path: &ObjectPath,
        mode: PutMode,
        bytes: Vec<u8>,
    ) -> Result<crate::adapter::ObjectMeta> {
        let mut w = self.adapter.write(path, mode, Some(bytes.len() as u64)).await?;
        w.append(Bytes::from(bytes)).await?;
        w.finish().await
    }

    /// The error for a save to a version that is taken: it exists, or it
    /// was deleted (a numbered version keeps its slot as a tombstone, so
    /// its number is never handed out again).
    async fn taken(&self, base: &ObjectPath) -> Error {
        let why = match self.read_slot(base).await {
            Ok(Some((Slot::Tombstone(_), _))) => "was deleted; version numbers are never reused",
            _ => "already exists",
        };
        Error::new(ErrorKind::AlreadyExists, format!("model `{base}` {why}")).at(
            self.adapter.name(),
            "save",
            Some(base.as_str()),
        )
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
        mode: PutMode,
        moved: &mut u64,
    ) -> Result<Uploaded> {
        let mut w = self.adapter.write(path, mode, size).await?;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(2);
        let source = rel.to_string();
        let producer = tokio::spawn(async move {
            let mut hasher = Sha256::new();
            let mut first = Bytes::new();
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
                hasher.update(&buf);
                let buf = buf.freeze();
                if first.is_empty() {
                    first = buf.clone(); // shared, not copied
                }
                if tx.send(buf).await.is_err() {
                    break; // the consumer failed; its error is reported
                }
            }
            Ok::<_, Error>((hex::encode(hasher.finalize()), first))
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
        let (checksum, first) = producer
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
        Ok(Uploaded {
            file: StoredFile {
                path: rel.to_string(),
                size_bytes: total,
                checksum,
                stored_size_bytes: meta.stored_size,
                executable: false,
            },
            first,
            etag: meta.etag,
        })
    }

    async fn remove_all(&self, paths: &[ObjectPath]) {
        for p in paths {
            if let Err(e) = self.adapter.delete(p).await {
                tracing::warn!("cleaning up after a failed save: {e}");
            }
        }
    }

    /// Reads the `wharf.json` at `base`, with its etag when `with_etag`
    /// (a stat first, so a change between the two only makes a later
    /// compare-and-swap fail). `None` when there is none.
    pub(crate) async fn read_slot_at(
        &self,
        base: &ObjectPath,
        with_etag: bool,
    ) -> Result<Option<(Slot, Option<String>)>> {
        let path = base.join(MANIFEST)?;
        let at = |e: Error| e.at(self.adapter.name(), "load", Some(base.as_str()));
        let etag = if with_etag {
            match self.adapter.stat(&path).await {
                Ok(m) => m.etag,
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(at(e)),
            }
        } else {
            None
        };
        let bytes = match self.read_small(&path, MAX_MANIFEST).await {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(at(e)),
        };
        let slot = parse_slot(&bytes).map_err(at)?;
        match &slot {
            Slot::Manifest(m) => self.check_stored(base, m).map_err(at)?,
            Slot::Tombstone(Tombstone { previous: Some(m), .. }) => self.check_stored(base, m).map_err(at)?,
            Slot::Tombstone(_) => {}
        }
        Ok(Some((slot, etag)))
    }

    pub(crate) async fn read_slot(&self, base: &ObjectPath) -> Result<Option<(Slot, Option<String>)>> {
        self.read_slot_at(base, false).await
    }

    /// Reads a small object whole, refusing one larger than `max`. A read
    /// that fails as `transient` (an object replaced while it was read, on
    /// a backend without snapshot reads) starts again, up to 5 times:
    /// manifests and aliases are small and often rewritten.
    pub(crate) async fn read_small(&self, path: &ObjectPath, max: u64) -> Result<Vec<u8>> {
        let mut attempt = 0;
        loop {
            match self.read_small_once(path, max).await {
                Err(e) if e.kind() == ErrorKind::Transient && attempt < 4 => attempt += 1,
                done => return done,
            }
        }
    }

    async fn read_small_once(&self, path: &ObjectPath, max: u64) -> Result<Vec<u8>> {
        let mut r = self.adapter.read(path, None).await?;
        let mut bytes = Vec::new();
        while let Some(c) = r.next_chunk(CHUNK).await? {
            if (bytes.len() + c.len()) as u64 > max {
                return Err(Error::new(
                    ErrorKind::Invalid,
                    format!("`{path}` is larger than the {max} bytes allowed"),
                ));
            }
            bytes.extend_from_slice(&c);
        }
        Ok(bytes)
    }

    fn check_stored(&self, base: &ObjectPath, m: &Manifest) -> Result<()> {
        if m.info.storage_path != base.as_str() {
            return Err(Error::new(
                ErrorKind::Integrity,
                format!("{MANIFEST} describes `{}`", m.info.storage_path),
            ));
        }
        check_encodings(&m.info.encodings, &self.adapter.encodings())?;
        check_manifest(m)
    }

    /// The committed manifest of the model a storage path or reference
    /// (`MODEL@3`, `MODEL@latest`, `MODEL@production`) names.
    pub(crate) async fn manifest(&self, storage_path: &str) -> Result<(ObjectPath, Manifest)> {
        let path = self.resolve(storage_path).await?;
        let at = |e: Error| e.at(self.adapter.name(), "load", Some(storage_path));
        let base = ObjectPath::parse(&path).map_err(at)?;
        let missing = |why: &str| at(Error::new(ErrorKind::NotFound, format!("no model at `{path}` ({why})")));
        let slot = match self.read_slot(&base).await? {
            Some((slot, _)) => slot,
            None => return Err(missing(&format!("no {MANIFEST}"))),
        };
        match self
            .visible(slot, &mut crate::registry::TxCache::default())
            .await
            .map_err(at)?
        {
            Visible::Yes(m) => Ok((base, m)),
            Visible::Deleted => Err(missing("it was deleted")),
            Visible::Uncommitted => Err(missing("its transaction has not committed")),
        }
    }

    /// The stored `ModelStorageInfo` of a model.
    pub async fn info(&self, storage_path: &str) -> Result<ModelStorageInfo> {
        Ok(self.manifest(storage_path).await?.1.info)
    }

    /// Whether a model exists at `storage_path` (or the reference names
    /// one).
    pub async fn exists(&self, storage_path: &str) -> Result<bool> {
        match self.manifest(storage_path).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Where one file of a model is stored, and what its manifest records
    /// of it (size, sha256), for readers that go to the object itself (a
    /// seekable reader, a ranged read). `file` may be `None` for a one-file
    /// model.
    pub async fn file_object(&self, storage_path: &str, file: Option<&str>) -> Result<(ObjectPath, StoredFile)> {
        let (base, m) = self.manifest(storage_path).await?;
        let found = match file {
            Some(name) => m.info.files.iter().find(|f| f.path == name),
            None if !m.info.is_directory && m.info.files.len() == 1 => m.info.files.first(),
            None => {
                return Err(Error::invalid(format!(
                    "`{storage_path}` is a folder model of {} files; name one of them",
                    m.info.files.len()
                ))
                .at(self.adapter.name(), "load", Some(storage_path)));
            }
        };
        let f = found
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!("model `{storage_path}` has no file `{}`", file.unwrap_or_default()),
                )
            })?
            .clone();
        Ok((m.data_prefix(&base)?.join(&f.path)?, f))
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
        let (path, f) = self.file_object(storage_path, Some(file)).await?;
        let mut moved = 0;
        self.download_one(&path, &f, out, &mut moved).await?;
        Ok(f)
    }

    async fn download_one(
        &self,
        path: &ObjectPath,
        expect: &StoredFile,
        out: &mut (dyn AsyncWrite + Unpin + Send),
        moved: &mut u64,
    ) -> Result<()> {
        self.stream_verified(path, None, &Expected::from(expect), out, moved)
            .await?;
        Ok(())
    }

    /// Streams an object (or a range of it) into `out`, hashing it on the
    /// way, and fails with `integrity` unless it matches `expect`. Returns
    /// the bytes moved and their sha256.
    async fn stream_verified(
        &self,
        path: &ObjectPath,
        range: Option<crate::adapter::ByteRange>,
        expect: &Expected,
        out: &mut (dyn AsyncWrite + Unpin + Send),
        moved: &mut u64,
    ) -> Result<(u64, String)> {
        let mut r = writeback::Gather::new(self.adapter.read(path, range).await?);
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
        while let Some(chunk) = r.next().await? {
            total += chunk.len() as u64;
            if let Some(size) = expect.size
                && total > size
            {
                return Err(integrity(format!("object is longer than the recorded {size} bytes")));
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
        if let Some(size) = expect.size
            && total != size
        {
            return Err(integrity(format!("object has {total} bytes, {size} were recorded")));
        }
        if let Some(want) = &expect.sha256
            && !got.eq_ignore_ascii_case(want)
        {
            return Err(integrity(format!("sha256 is {got}, {want} was recorded")));
        }
        Ok((total, got))
    }

    /// Streams one stored file into a new local file and syncs it.
    async fn download_to_file(
        &self,
        path: &ObjectPath,
        expect: &Expected,
        executable: bool,
        target: &Path,
        moved: &mut u64,
    ) -> Result<(u64, String)> {
        let mut o = tokio::fs::OpenOptions::new();
        // Read too: ranged loads hash the file back as it fills.
        o.read(true).write(true).create_new(true);
        let mut out = o
            .open(target)
            .await
            .map_err(|e| Error::io(format!("creating `{}`", target.display()), e))?;
        // One blocking write per chunk instead of tokio's default 2 MiB pieces.
        out.set_max_buf_size(CHUNK);
        let file = out
            .try_clone()
            .await
            .map_err(|e| Error::io(format!("opening `{}`", target.display()), e))?
            .into_std()
            .await;
        let done = match self.ranged_size(expect) {
            Some(size) => self.download_ranges(path, size, expect, file, moved).await?,
            None => {
                let mut behind = writeback::WriteBehind::new(&mut out, file);
                let done = self.stream_verified(path, None, expect, &mut behind, moved).await?;
                // `sync_all` does not report a failed last write; a flush does.
                behind
                    .flush()
                    .await
                    .map_err(|e| Error::io(format!("writing `{}`", target.display()), e))?;
                done
            }
        };
        if executable {
            set_executable(&out, target).await?;
        }
        out.sync_all()
            .await
            .map_err(|e| Error::io(format!("writing `{}`", target.display()), e))?;
        Ok(done)
    }

    /// Streams one object into the local file `target`, verified against
    /// `expect`: a character device or FIFO is written in place; a regular
    /// file is written aside and moved into place only once every byte
    /// matched, replacing an existing one only with `overwrite`. Returns
    /// the bytes moved and their sha256.
    pub(crate) async fn download_to_target(
        &self,
        path: &ObjectPath,
        expect: &Expected,
        executable: bool,
        target: &Path,
        overwrite: bool,
        moved: &mut u64,
    ) -> Result<(u64, String)> {
        match Output::of(target, overwrite)? {
            Output::InPlace => {
                let mut out = tokio::fs::OpenOptions::new()
                    .write(true)
                    .open(target)
                    .await
                    .map_err(|e| Error::io(format!("opening `{}`", target.display()), e))?;
                let done = self.stream_verified(path, None, expect, &mut out, moved).await?;
                out.flush()
                    .await
                    .map_err(|e| Error::io(format!("writing `{}`", target.display()), e))?;
                Ok(done)
            }
            Output::New { replace } => {
                let tmp = partial_name(target);
                let result = async {
                    let done = self.download_to_file(path, expect, executable, &tmp, moved).await?;
                    place(&tmp, target, replace)?;
                    Ok(done)
                }
                .await;
                if result.is_err() {
                    let _ = tokio::fs::remove_file(&tmp).await;
                }
                result
            }
        }
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
        let data = m.data_prefix(&base)?;
        let info = m.info;
        let mut moved = 0;
        if !info.is_directory && info.files.len() == 1 {
            let f = &info.files[0];
            let target = if dest.is_dir() {
                dest.join(leaf(&f.path))
            } else {
                dest.to_path_buf()
            };
            self.download_to_target(
                &data.join(&f.path)?,
                &Expected::from(f),
                f.executable,
                &target,
                opts.overwrite,
                &mut moved,
            )
            .await?;
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
                    self.download_to_file(
                        &data.join(&f.path)?,
                        &Expected::from(f),
                        f.executable,
                        &target,
                        &mut moved,
                    )
                    .await?;
                }
                for d in &info.directories {
                    // Checked by `check_manifest` like the file paths.
                    let target = tmp.join(d);
                    tokio::fs::create_dir_all(&target)
                        .await
                        .map_err(|e| Error::io(format!("creating `{}`", target.display()), e))?;
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
        self.download_one(&m.data_prefix(&base)?.join(&f.path)?, f, out, &mut moved)
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
fn parse_slot(bytes: &[u8]) -> Result<Slot> {
    let bad =
        |e: serde_json::Error| Error::new(ErrorKind::Integrity, format!("{MANIFEST} is not a valid manifest: {e}"));
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(bad)?;
    if v.get("wharf_tombstone").is_some() {
        Ok(Slot::Tombstone(serde_json::from_value(v).map_err(bad)?))
    } else {
        Ok(Slot::Manifest(serde_json::from_value(v).map_err(bad)?))
    }
}

fn check_manifest(m: &Manifest) -> Result<()> {
    let bad = |msg: String| Error::new(ErrorKind::Integrity, format!("{MANIFEST} is not trustworthy: {msg}"));
    ObjectPath::parse(&m.data).map_err(|e| bad(format!("upload id {:?}: {}", m.data, e.message())))?;
    if m.data.contains('/') {
        return Err(bad(format!("upload id {:?} has a `/`", m.data)));
    }
    if let Some(id) = &m.tx
        && !crate::registry::is_tx_id(id)
    {
        return Err(bad(format!("transaction id {id:?} is not one wharf writes")));
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
    // Listed directories must be empty and new: not a file, not holding a
    // file or another listed directory, not below a file.
    let mut dirs = std::collections::BTreeSet::new();
    for d in &info.directories {
        ObjectPath::parse(d).map_err(|e| bad(format!("directory {d:?}: {}", e.message())))?;
        if d.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(bad(format!("directory {d:?} is not a plain relative path")));
        }
        if !info.is_directory {
            return Err(bad(format!("a one-file model lists directory {d:?}")));
        }
        if paths.contains(d.as_str()) || !dirs.insert(d.as_str()) {
            return Err(bad(format!("{d:?} is listed twice")));
        }
    }
    for d in &dirs {
        let inside = format!("{d}/");
        let holds = |set: &std::collections::BTreeSet<&str>| {
            set.range(inside.as_str()..)
                .next()
                .is_some_and(|q| q.starts_with(&inside))
        };
        if holds(&paths) || holds(&dirs) {
            return Err(bad(format!("directory {d:?} is listed as empty but holds entries")));
        }
        let mut parent = *d;
        while let Some((up, _)) = parent.rsplit_once('/') {
            if paths.contains(up) {
                return Err(bad(format!("directory {d:?} lies below the file {up:?}")));
            }
            parent = up;
        }
    }
    let size: u64 = info.files.iter().map(|f| f.size_bytes).sum();
    if size != info.size_bytes {
        return Err(bad(format!(
            "size_bytes {} but its files add up to {size}",
            info.size_bytes
        )));
    }
    if ModelStorageInfo::checksum_of(&info.files, &info.directories, info.is_directory) != info.checksum {
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

/// What [`StorageService::upload_one`] stored.
struct Uploaded {
    file: StoredFile,
    /// The first chunk read (for detecting a stream's format).
    first: Bytes,
    /// The object's etag, when the backend has one.
    etag: Option<String>,
}

/// One file of a model being saved.
struct Source {
    rel: String,
    reader: Box<dyn AsyncRead + Unpin + Send>,
    size: Option<u64>,
    executable: bool,
}

/// What a folder holds: its files (relative, with their executable bit) and
/// its empty directories.
#[derive(Default)]
struct Tree {
    files: Vec<(String, bool)>,
    empty_dirs: Vec<String>,
}

/// What the caller knows of an object's content.
#[derive(Clone, Debug, Default)]
pub struct Expected {
    /// Its size.
    pub size: Option<u64>,
    /// Its sha256, hex (either case).
    pub sha256: Option<String>,
}

impl From<&StoredFile> for Expected {
    fn from(f: &StoredFile) -> Self {
        Expected {
            size: Some(f.size_bytes),
            sha256: Some(f.checksum.clone()),
        }
    }
}

fn relative(root: &Path, path: &Path) -> Result<String> {
    let rel = path.strip_prefix(root).expect("below root");
    let rel = rel
        .to_str()
        .ok_or_else(|| Error::invalid(format!("`{}` is not valid UTF-8", path.display())))?
        .replace(std::path::MAIN_SEPARATOR, "/");
    ObjectPath::parse(&rel)?;
    Ok(rel)
}

fn collect_files(root: &Path, dir: &Path, out: &mut Tree) -> Result<()> {
    let read = std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading `{}`", dir.display()), e))?;
    let mut empty = true;
    for entry in read {
        empty = false;
        let entry = entry.map_err(|e| Error::io(format!("reading `{}`", dir.display()), e))?;
        let ft = entry
            .file_type()
            .map_err(|e| Error::io(format!("reading `{}`", dir.display()), e))?;
        let path = entry.path();
        if ft.is_symlink() {
            return Err(Error::invalid(format!(
                "`{}` is a symbolic link; wharf stores no links (replace it with a copy of its target)",
                path.display()
            )));
        } else if ft.is_dir() {
            collect_files(root, &path, out)?;
        } else if ft.is_file() {
            let meta = entry
                .metadata()
                .map_err(|e| Error::io(format!("reading `{}`", path.display()), e))?;
            out.files.push((relative(root, &path)?, is_executable(&meta)));
        } else {
            return Err(Error::invalid(format!(
                "`{}` is neither a file nor a directory (a socket, FIFO or device); a model folder holds only files",
                path.display()
            )));
        }
    }
    if empty && dir != root {
        out.empty_dirs.push(relative(root, dir)?);
    }
    Ok(())
}

/// Whether anyone may execute the file: what `git` records as mode 755.
fn is_executable(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// Adds execute permission wherever the file has read permission (644
/// becomes 755), as `git` checks out an executable file.
async fn set_executable(file: &tokio::fs::File, target: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let fail = |e| Error::io(format!("making `{}` executable", target.display()), e);
        let mode = file.metadata().await.map_err(fail)?.permissions().mode();
        file.set_permissions(std::fs::Permissions::from_mode(mode | ((mode & 0o444) >> 2)))
            .await
            .map_err(fail)?;
    }
    #[cfg(not(unix))]
    let _ = (file, target);
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
