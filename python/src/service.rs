//! `wharf._native.Service`: a host over one configuration, every operation
//! of the Python `StorageService` on it. Records cross as JSON (serde is
//! the one definition of `ModelStorageInfo`); the Python layer makes them
//! dataclasses. Each method blocks with the GIL released, or, given `done`,
//! runs on the runtime and calls `done(value, error)` (the asyncio service).

use crate::errors::to_py;
use crate::runtime::{Out, run, runtime};
use crate::stream::{Expect, Reader, Writer, python_file};
use crate::transaction::Tx;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wharf::{
    ByteRange, Config, Error, ErrorKind, Expected, GcOptions, Host, LoadOptions, ModelStorageInfo, ObjectPath,
    ObjectTransfer, PutMode, SaveOptions, SerializationFormat, StorageBackend, StorageService,
};

/// What every operation shares: the configuration and the host built
/// from it, rebuilt in a forked child (its runtime threads, epoch ticker
/// and connections stayed in the parent).
pub struct Shared {
    config: Config,
    base: PathBuf,
    default_backend: String,
    host: Mutex<(u32, Arc<Host>)>,
}

impl Shared {
    fn host(&self) -> wharf::Result<Arc<Host>> {
        let mut slot = self.host.lock().unwrap_or_else(|p| p.into_inner());
        let pid = std::process::id();
        if slot.0 != pid {
            let fresh = Arc::new(Host::new(self.config.clone(), &self.base)?);
            // Dropping the parent's host would join threads that are not here.
            std::mem::forget(std::mem::replace(&mut *slot, (pid, fresh)));
        }
        Ok(slot.1.clone())
    }

    /// The service of a backend, the default one when `None`.
    pub async fn service(&self, backend: Option<&str>) -> wharf::Result<StorageService> {
        self.host()?.service(backend.unwrap_or(&self.default_backend)).await
    }

    /// The backend's name that serves `target`: the one asked for, else
    /// the record's (as `wharf get --info` picks it), else the default.
    fn backend_of(&self, backend: Option<&str>, target: &Target) -> wharf::Result<String> {
        match (backend, target) {
            (Some(b), _) => Ok(b.to_string()),
            // A record several backends could hold (two of its kind, no
            // `backend_name` among them) is the default backend's if that
            // one is of its kind; the CLI needs `--backend` there.
            (None, Target::Record(r)) => {
                let host = self.host()?;
                host.backend_for(r).or_else(|e| {
                    let default_kind = host.backend_kind(&self.default_backend);
                    if r.backend_name.is_none() && default_kind == Some(r.storage_backend.as_str()) {
                        Ok(self.default_backend.clone())
                    } else {
                        Err(e)
                    }
                })
            }
            (None, Target::Path(_)) => Ok(self.default_backend.clone()),
        }
    }
}

/// What an operation is about: a record the caller kept, or a path.
enum Target {
    Record(Box<ModelStorageInfo>),
    Path(String),
}

impl Target {
    fn new(record: Option<&str>, path: Option<String>) -> wharf::Result<Self> {
        match (record, path) {
            (Some(json), _) => Ok(Target::Record(Box::new(parse_record(json)?))),
            (None, Some(p)) => Ok(Target::Path(p)),
            (None, None) => Err(Error::new(ErrorKind::Invalid, "a record or a path is needed")),
        }
    }

    fn path(&self) -> &str {
        match self {
            Target::Record(r) => &r.storage_path,
            Target::Path(p) => p,
        }
    }

    /// A record of one object (the platform's five fields), not of a model.
    fn object_record(&self) -> Option<&ModelStorageInfo> {
        match self {
            Target::Record(r) if r.is_object_record() => Some(r),
            _ => None,
        }
    }

    fn load_options(&self, overwrite: bool) -> LoadOptions {
        let r = match self {
            Target::Record(r) => Some(r),
            Target::Path(_) => None,
        };
        LoadOptions {
            expect_checksum: r.map(|r| r.checksum.clone()),
            expect_size: r.map(|r| r.size_bytes),
            overwrite,
        }
    }
}

/// A record as `wharf get --info` reads one: only the platform's five
/// fields are required; the algorithm, when given, must be sha256.
fn parse_record(json: &str) -> wharf::Result<ModelStorageInfo> {
    let info: ModelStorageInfo = serde_json::from_str(json)
        .map_err(|e| Error::new(ErrorKind::Invalid, format!("not ModelStorageInfo JSON: {e}")))?;
    if !info.checksum_algorithm.eq_ignore_ascii_case("sha256") {
        return Err(Error::new(
            ErrorKind::Invalid,
            format!(
                "the record has a {} checksum; wharf verifies sha256 only",
                info.checksum_algorithm
            ),
        ));
    }
    if info.checksum.len() != 64 || !info.checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::new(
            ErrorKind::Invalid,
            "the record's checksum is not a sha256 in hex (64 digits)",
        ));
    }
    Ok(info)
}

fn expected(r: &ModelStorageInfo) -> Expected {
    Expected {
        size: Some(r.size_bytes),
        sha256: Some(r.checksum.clone()),
    }
}

pub(crate) fn json(v: &impl serde::Serialize) -> Out {
    Out::Str(serde_json::to_string(v).expect("serializable"))
}

pub(crate) fn save_options(
    model: Option<String>,
    version: Option<String>,
    path: Option<String>,
    format: Option<&str>,
) -> wharf::Result<SaveOptions> {
    let format = format
        .map(|f| {
            SerializationFormat::parse(f).ok_or_else(|| {
                let all: Vec<&str> = SerializationFormat::ALL.iter().map(|f| f.as_str()).collect();
                Error::new(
                    ErrorKind::Invalid,
                    format!("unknown format `{f}` (one of: {})", all.join(", ")),
                )
            })
        })
        .transpose()?;
    Ok(SaveOptions {
        model,
        version,
        path,
        format,
    })
}

fn put_mode(overwrite: bool) -> PutMode {
    if overwrite { PutMode::Overwrite } else { PutMode::Create }
}

/// A five-field record of an object loaded by path (no record was given) into
/// the local file `dest`; its format is detected from the bytes loaded.
fn object_record(service: &StorageService, t: &ObjectTransfer, dest: &Path) -> wharf::Result<ModelStorageInfo> {
    let format = SerializationFormat::detect_path(dest)
        .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", dest.display())))?;
    Ok(ModelStorageInfo {
        storage_backend: StorageBackend::new(service.kind())?,
        storage_path: t.path.clone(),
        format,
        size_bytes: t.size_bytes,
        checksum: t.checksum.clone(),
        checksum_algorithm: "sha256".into(),
        backend_name: Some(service.adapter().name().to_string()),
        model_name: None,
        version: None,
        is_directory: false,
        files: vec![],
        directories: vec![],
        created_at: String::new(),
        encodings: vec![],
        stored_size_bytes: None,
    })
}

#[pyclass(frozen, module = "wharf._native")]
pub struct Service {
    shared: Arc<Shared>,
}

impl Service {
    fn with<F, Fut>(&self, py: Python<'_>, done: Option<Py<PyAny>>, f: F) -> PyResult<Py<PyAny>>
    where
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: std::future::Future<Output = wharf::Result<Out>> + Send + 'static,
    {
        run(py, done, f(self.shared.clone()))
    }
}

#[pymethods]
impl Service {
    /// `config_path`: a wharf.toml; `config_json`: the same as JSON (a
    /// dict); neither: what the `wharf` command uses (`$WHARF_CONFIG`, an
    /// approved `./wharf.toml`, else local_filesystem into
    /// `$WHARF_DATA_DIR` or `./wharf-data`).
    #[new]
    #[pyo3(signature = (config_path=None, config_json=None, backend=None))]
    fn new(config_path: Option<PathBuf>, config_json: Option<&str>, backend: Option<String>) -> PyResult<Self> {
        let (config, base) = match (config_path, config_json) {
            (_, Some(text)) => {
                let cfg: Config = serde_json::from_str(text)
                    .map_err(|e| to_py(Error::new(ErrorKind::Config, format!("config: {e}"))))?;
                let cfg = cfg.expand_urls(&wharf::url::Env::process()).map_err(to_py)?;
                let cwd = std::env::current_dir().map_err(|e| to_py(Error::io("the current directory", e)))?;
                let data = cwd.join(wharf::config::default_data_dir());
                (cfg.with_local_default(&data), cwd)
            }
            (explicit, None) => {
                let explicit = explicit.or_else(|| std::env::var_os("WHARF_CONFIG").map(PathBuf::from));
                Config::discover(explicit.as_deref()).map_err(to_py)?
            }
        };
        let mut config = config;
        // A URL names a backend of its own, resolved from the environment.
        let backend = backend.map(|b| config.backend_arg(&b)).transpose().map_err(to_py)?;
        let default_backend = backend.unwrap_or_else(|| config.default_backend().to_string());
        if !config.backends.contains_key(&default_backend) {
            let names: Vec<&str> = config.backends.keys().map(String::as_str).collect();
            return Err(to_py(Error::new(
                ErrorKind::Config,
                format!(
                    "unknown backend `{default_backend}` (configured: {}); add [backends.{default_backend}] to wharf.toml",
                    names.join(", ")
                ),
            )));
        }
        let host = Host::new(config.clone(), &base).map_err(to_py)?;
        Ok(Service {
            shared: Arc::new(Shared {
                config,
                base,
                default_backend,
                host: Mutex::new((std::process::id(), Arc::new(host))),
            }),
        })
    }

    /// The backend used when none is named.
    #[getter]
    fn default_backend(&self) -> &str {
        &self.shared.default_backend
    }

    /// The configured backends' names.
    fn backend_names(&self) -> Vec<String> {
        self.shared.config.backends.keys().cloned().collect()
    }

    /// A configured backend's kind (the plugin it runs).
    fn backend_kind(&self, name: &str) -> Option<String> {
        self.shared
            .config
            .backends
            .get(name)
            .map(|b| b.plugin_name(name).to_string())
    }

    #[pyo3(signature = (data, name, model=None, version=None, path=None, format=None, backend=None, done=None))]
    #[expect(clippy::too_many_arguments, reason = "keyword arguments of a Python method")]
    fn save_bytes(
        &self,
        py: Python<'_>,
        data: PyBackedBytes,
        name: String,
        model: Option<String>,
        version: Option<String>,
        path: Option<String>,
        format: Option<&str>,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let opts = save_options(model, version, path, format).map_err(to_py)?;
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            let info = svc.save_stream(&name, std::io::Cursor::new(data), &opts).await?;
            Ok(json(&info))
        })
    }

    #[pyo3(signature = (source, model=None, version=None, path=None, format=None, backend=None, done=None))]
    #[expect(clippy::too_many_arguments, reason = "keyword arguments of a Python method")]
    fn save_path(
        &self,
        py: Python<'_>,
        source: PathBuf,
        model: Option<String>,
        version: Option<String>,
        path: Option<String>,
        format: Option<&str>,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let opts = save_options(model, version, path, format).map_err(to_py)?;
        self.with(py, done, |sh| async move {
            let meta = std::fs::metadata(&source).map_err(|e| Error::io(format!("`{}`", source.display()), e))?;
            let svc = sh.service(backend.as_deref()).await?;
            let info = if meta.is_dir() {
                svc.save_dir(&source, &opts).await?
            } else {
                svc.save_file(&source, &opts).await?
            };
            Ok(json(&info))
        })
    }

    #[pyo3(signature = (file, name, model=None, version=None, path=None, format=None, backend=None, done=None))]
    #[expect(clippy::too_many_arguments, reason = "keyword arguments of a Python method")]
    fn save_file_object(
        &self,
        py: Python<'_>,
        file: Py<PyAny>,
        name: String,
        model: Option<String>,
        version: Option<String>,
        path: Option<String>,
        format: Option<&str>,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let opts = save_options(model, version, path, format).map_err(to_py)?;
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            let reader = python_file(file, name.clone());
            let info = svc.save_stream(&name, reader, &opts).await?;
            Ok(json(&info))
        })
    }

    /// A model's or an object's bytes, verified against the record.
    #[pyo3(signature = (record=None, path=None, backend=None, done=None))]
    fn load_bytes(
        &self,
        py: Python<'_>,
        record: Option<&str>,
        path: Option<String>,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let target = Target::new(record, path).map_err(to_py)?;
        self.with(py, done, |sh| async move {
            let name = sh.backend_of(backend.as_deref(), &target)?;
            let svc = sh.service(Some(&name)).await?;
            let p = target.path();
            let mut out = Vec::new();
            if let Some(r) = object_of(&svc, &target).await? {
                out.reserve(r.size_bytes.min(64 << 20) as usize);
                svc.read_object_into(p, None, &expected(r), &mut out).await?;
                return Ok(Out::Bytes(out));
            }
            match svc.load_to_writer(p, &mut out, &target.load_options(false)).await {
                // A path that holds an object, not a model.
                Err(e)
                    if matches!(target, Target::Path(_))
                        && e.kind() == ErrorKind::NotFound
                        && !svc.exists(p).await? =>
                {
                    out.clear();
                    svc.read_object_into(p, None, &Expected::default(), &mut out).await?;
                }
                other => {
                    other?;
                }
            }
            Ok(Out::Bytes(out))
        })
    }

    /// Loads into the local path `dest`, verified; returns the record.
    #[pyo3(signature = (dest, record=None, path=None, overwrite=false, backend=None, done=None))]
    #[expect(clippy::too_many_arguments, reason = "keyword arguments of a Python method")]
    fn load_to(
        &self,
        py: Python<'_>,
        dest: PathBuf,
        record: Option<&str>,
        path: Option<String>,
        overwrite: bool,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let target = Target::new(record, path).map_err(to_py)?;
        self.with(py, done, |sh| async move {
            let name = sh.backend_of(backend.as_deref(), &target)?;
            let svc = sh.service(Some(&name)).await?;
            let p = target.path();
            if let Some(r) = object_of(&svc, &target).await? {
                svc.load_object_to_path(p, &dest, &expected(r), overwrite).await?;
                return Ok(json(r));
            }
            match svc.load_to_path_with(p, &dest, &target.load_options(overwrite)).await {
                Err(e)
                    if matches!(target, Target::Path(_))
                        && e.kind() == ErrorKind::NotFound
                        && !svc.exists(p).await? =>
                {
                    let (t, _) = svc
                        .load_object_to_path(p, &dest, &Expected::default(), overwrite)
                        .await?;
                    Ok(json(&object_record(&svc, &t, &dest)?))
                }
                other => Ok(json(&other?)),
            }
        })
    }

    /// Deletes a model (or the object a record or path names); whether it existed.
    #[pyo3(signature = (record=None, path=None, backend=None, done=None))]
    fn delete(
        &self,
        py: Python<'_>,
        record: Option<&str>,
        path: Option<String>,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let target = Target::new(record, path).map_err(to_py)?;
        self.with(py, done, |sh| async move {
            let name = sh.backend_of(backend.as_deref(), &target)?;
            let svc = sh.service(Some(&name)).await?;
            let p = target.path();
            let object_too = !matches!(&target, Target::Record(r) if !r.is_object_record());
            if object_of(&svc, &target).await?.is_some() {
                return Ok(Out::Bool(delete_object(&svc, p).await?));
            }
            if svc.delete(p).await? {
                return Ok(Out::Bool(true));
            }
            Ok(Out::Bool(object_too && delete_object(&svc, p).await?))
        })
    }

    /// Whether the model (or object) exists.
    #[pyo3(signature = (record=None, path=None, backend=None, done=None))]
    fn exists(
        &self,
        py: Python<'_>,
        record: Option<&str>,
        path: Option<String>,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let target = Target::new(record, path).map_err(to_py)?;
        self.with(py, done, |sh| async move {
            let name = sh.backend_of(backend.as_deref(), &target)?;
            let svc = sh.service(Some(&name)).await?;
            let p = target.path();
            let object_too = !matches!(&target, Target::Record(r) if !r.is_object_record());
            let found = svc.exists(p).await? || (object_too && svc.adapter().exists(&ObjectPath::parse(p)?).await?);
            Ok(Out::Bool(found))
        })
    }

    /// A model's stored record, else the object's metadata, as JSON.
    #[pyo3(signature = (record=None, path=None, backend=None, done=None))]
    fn metadata(
        &self,
        py: Python<'_>,
        record: Option<&str>,
        path: Option<String>,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let target = Target::new(record, path).map_err(to_py)?;
        self.with(py, done, |sh| async move {
            let name = sh.backend_of(backend.as_deref(), &target)?;
            let svc = sh.service(Some(&name)).await?;
            let p = target.path();
            if object_of(&svc, &target).await?.is_some() {
                return Ok(json(&svc.adapter().stat(&ObjectPath::parse(p)?).await?));
            }
            match svc.info(p).await {
                Err(e) if e.kind() == ErrorKind::NotFound && matches!(target, Target::Path(_)) => {
                    Ok(json(&svc.adapter().stat(&ObjectPath::parse(p)?).await?))
                }
                other => Ok(json(&other?)),
            }
        })
    }

    /// One page of the objects under `prefix`: `([(path, size, etag, modified_ms)], next_cursor)`.
    #[pyo3(signature = (prefix, cursor=None, limit=1000, backend=None, done=None))]
    fn list_page(
        &self,
        py: Python<'_>,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            let page = svc.adapter().list(&prefix, cursor.as_deref(), limit).await?;
            let next = page.next_cursor.filter(|_| !page.entries.is_empty());
            Ok(Out::Page(page.entries, next))
        })
    }

    /// The backend's check, as `wharf health --json` reports each row.
    #[pyo3(signature = (timeout=10.0, backend=None, done=None))]
    fn health(
        &self,
        py: Python<'_>,
        timeout: f64,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let timeout = Duration::try_from_secs_f64(timeout)
            .map_err(|e| to_py(Error::new(ErrorKind::Invalid, format!("timeout: {e}"))))?;
        self.with(py, done, |sh| async move {
            let name = backend.unwrap_or_else(|| sh.default_backend.clone());
            let started = Instant::now();
            let check = async {
                let adapter = sh.host()?.adapter(&name).await?;
                let caps = adapter.capabilities();
                let start = Instant::now();
                let detail = adapter.health().await;
                Ok::<_, Error>((caps, start.elapsed(), detail))
            };
            let row = match tokio::time::timeout(timeout, check).await {
                Err(_) => serde_json::json!({
                    "backend": name, "ok": false, "latency_ms": started.elapsed().as_secs_f64() * 1e3,
                    "detail": format!("no answer within {timeout:?}"), "capabilities": null,
                }),
                Ok(Err(e)) => serde_json::json!({
                    "backend": name, "ok": false, "latency_ms": 0.0, "detail": e.to_string(), "capabilities": null,
                }),
                Ok(Ok((caps, latency, detail))) => serde_json::json!({
                    "backend": name, "ok": detail.is_ok(), "latency_ms": latency.as_secs_f64() * 1e3,
                    "detail": match detail { Ok(d) => d, Err(e) => e.to_string() }, "capabilities": caps,
                }),
            };
            Ok(json(&row))
        })
    }

    /// The models with a version, whose names start with `prefix`, as JSON.
    #[pyo3(signature = (prefix=String::new(), backend=None, done=None))]
    fn models(
        &self,
        py: Python<'_>,
        prefix: String,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            Ok(json(&svc.models(&prefix).await?))
        })
    }

    /// A model's versions (`VersionEntry` rows) as JSON.
    #[pyo3(signature = (model, backend=None, done=None))]
    fn versions(
        &self,
        py: Python<'_>,
        model: String,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            Ok(json(&svc.versions(&model).await?))
        })
    }

    /// The storage path a reference (`MODEL@N`, `@latest`, `@ALIAS`, or a
    /// path) names.
    #[pyo3(signature = (reference, backend=None, done=None))]
    fn resolve(
        &self,
        py: Python<'_>,
        reference: String,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            Ok(Out::Str(svc.resolve(&reference).await?))
        })
    }

    /// A model's aliases (alias to version) as JSON.
    #[pyo3(signature = (model, backend=None, done=None))]
    fn aliases(
        &self,
        py: Python<'_>,
        model: String,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            Ok(json(&svc.aliases(&model).await?))
        })
    }

    /// Points `model@alias` at `version`.
    #[pyo3(signature = (model, alias, version, backend=None, done=None))]
    fn set_alias(
        &self,
        py: Python<'_>,
        model: String,
        alias: String,
        version: String,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            svc.set_alias(&model, &alias, &version).await?;
            Ok(Out::None)
        })
    }

    /// Removes `model@alias`; whether it existed.
    #[pyo3(signature = (model, alias, backend=None, done=None))]
    fn remove_alias(
        &self,
        py: Python<'_>,
        model: String,
        alias: String,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            Ok(Out::Bool(svc.remove_alias(&model, &alias).await?))
        })
    }

    /// `wharf gc`: what crashed saves and transactions left, older than
    /// `older_than` seconds (or `older_than_text`, as `wharf gc --older-than`
    /// reads it: `24h`); the report
    /// as JSON.
    #[pyo3(signature = (older_than=None, older_than_text=None, dry_run=false, backend=None, done=None))]
    fn gc(
        &self,
        py: Python<'_>,
        older_than: Option<f64>,
        older_than_text: Option<String>,
        dry_run: bool,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let invalid = |what: String| to_py(Error::new(ErrorKind::Invalid, what));
        let older_than = match (older_than, older_than_text) {
            (_, Some(t)) => wharf_units::parse_duration(&t).map_err(|e| invalid(format!("older_than `{t}`: {e}")))?,
            (Some(s), None) => Duration::try_from_secs_f64(s).map_err(|e| invalid(format!("older_than {s}: {e}")))?,
            (None, None) => GcOptions::default().older_than,
        };
        let opts = GcOptions { older_than, dry_run };
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            Ok(json(&svc.gc(&opts).await?))
        })
    }

    /// Starts a transaction on the backend (`unsupported` where commits
    /// cannot be atomic).
    #[pyo3(signature = (backend=None, done=None))]
    fn transaction(&self, py: Python<'_>, backend: Option<String>, done: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            Ok(Out::Tx(Box::new(Tx::new(svc.transaction()?))))
        })
    }

    /// An object's metadata (`path`, `size`, `etag`, `modified_ms`) as JSON.
    #[pyo3(signature = (path, backend=None))]
    fn stat(&self, py: Python<'_>, path: String, backend: Option<String>) -> PyResult<Py<PyAny>> {
        self.with(py, None, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            Ok(json(&svc.adapter().stat(&ObjectPath::parse(&path)?).await?))
        })
    }

    /// What a backend can do, as JSON.
    #[pyo3(signature = (backend=None))]
    fn capabilities(&self, py: Python<'_>, backend: Option<String>) -> PyResult<Py<PyAny>> {
        self.with(py, None, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            Ok(json(&svc.adapter().capabilities()))
        })
    }

    /// Bytes `start..end` (end exclusive, `None` to the end) of an object.
    #[pyo3(signature = (path, start=0, end=None, backend=None, done=None))]
    fn read_range(
        &self,
        py: Python<'_>,
        path: String,
        start: u64,
        end: Option<u64>,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            let range = (start > 0 || end.is_some()).then_some(ByteRange { start, end });
            if end.is_some_and(|e| e <= start) {
                return Ok(Out::Bytes(Vec::new()));
            }
            let mut out = Vec::new();
            svc.read_object_into(&path, range, &Expected::default(), &mut out)
                .await?;
            Ok(Out::Bytes(out))
        })
    }

    /// Writes `data` as the object `path`; create-only unless `overwrite`.
    #[pyo3(signature = (path, data, overwrite=true, backend=None, done=None))]
    fn put_bytes(
        &self,
        py: Python<'_>,
        path: String,
        data: PyBackedBytes,
        overwrite: bool,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            let size = data.len() as u64;
            let t = svc
                .save_object(&path, std::io::Cursor::new(data), Some(size), put_mode(overwrite))
                .await?;
            Ok(json(&t))
        })
    }

    /// Writes the local file `local` as the object `path`.
    #[pyo3(signature = (local, path, overwrite=true, backend=None, done=None))]
    fn put_file(
        &self,
        py: Python<'_>,
        local: PathBuf,
        path: String,
        overwrite: bool,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            Ok(json(&svc.save_object_file(&local, &path, put_mode(overwrite)).await?))
        })
    }

    /// Loads the object `path` into the local file `local`.
    #[pyo3(signature = (path, local, overwrite=true, sha256=None, backend=None, done=None))]
    #[expect(clippy::too_many_arguments, reason = "keyword arguments of a Python method")]
    fn get_file(
        &self,
        py: Python<'_>,
        path: String,
        local: PathBuf,
        overwrite: bool,
        sha256: Option<String>,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            let expect = Expected { size: None, sha256 };
            let (t, _) = svc.load_object_to_path(&path, &local, &expect, overwrite).await?;
            Ok(json(&t))
        })
    }

    /// Deletes one object; whether it existed.
    #[pyo3(signature = (path, backend=None, done=None))]
    fn delete_object(
        &self,
        py: Python<'_>,
        path: String,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            Ok(Out::Bool(delete_object(&svc, &path).await?))
        })
    }

    /// Copies one object inside a backend (streamed through the host when
    /// the backend has no copy of its own).
    #[pyo3(signature = (src, dst, overwrite=true, backend=None, done=None))]
    fn copy_object(
        &self,
        py: Python<'_>,
        src: String,
        dst: String,
        overwrite: bool,
        backend: Option<String>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |sh| async move {
            let svc = sh.service(backend.as_deref()).await?;
            let (from, to) = (ObjectPath::parse(&src)?, ObjectPath::parse(&dst)?);
            if svc.adapter().capabilities().copy {
                let meta = svc.adapter().copy(&from, &to, put_mode(overwrite)).await?;
                return Ok(json(&meta));
            }
            let (mut tx, rx) = tokio::io::duplex(wharf::service::CHUNK);
            let reader = svc.clone();
            let reading = async move {
                // Ends the pipe whatever happens, so the writer sees the end.
                let r = reader.read_object_into(&src, None, &Expected::default(), &mut tx).await;
                drop(tx);
                r
            };
            let (read, written) = tokio::join!(reading, svc.save_object(&dst, rx, None, put_mode(overwrite)));
            read?;
            let t = written?;
            Ok(json(&svc.adapter().stat(&ObjectPath::parse(&t.path)?).await?))
        })
    }

    /// A reader of the object a record or path names (a model's one file,
    /// or the object itself), verified when read through in order.
    #[pyo3(signature = (record=None, path=None, backend=None))]
    fn open_reader(
        &self,
        py: Python<'_>,
        record: Option<&str>,
        path: Option<String>,
        backend: Option<String>,
    ) -> PyResult<Reader> {
        let target = Target::new(record, path).map_err(to_py)?;
        let shared = self.shared.clone();
        let rt = runtime();
        let opened = py.detach(|| {
            rt.block_on(async move {
                let name = shared.backend_of(backend.as_deref(), &target)?;
                let svc = shared.service(Some(&name)).await?;
                let p = target.path();
                let (object, expect) = if let Some(r) = object_of(&svc, &target).await? {
                    let e = Expect {
                        size: r.size_bytes,
                        sha256: Some(r.checksum.clone()),
                    };
                    (ObjectPath::parse(p)?, e)
                } else {
                    match svc.file_object(p, None).await {
                        Ok((object, f)) => {
                            let want = match &target {
                                Target::Record(r) => r.checksum.clone(),
                                Target::Path(_) => f.checksum.clone(),
                            };
                            let e = Expect {
                                size: f.size_bytes,
                                sha256: Some(want),
                            };
                            (object, e)
                        }
                        Err(e) if e.kind() == ErrorKind::NotFound && matches!(target, Target::Path(_)) => {
                            let object = ObjectPath::parse(p)?;
                            let meta = svc.adapter().stat(&object).await?;
                            let e = Expect {
                                size: meta.size,
                                sha256: None,
                            };
                            (object, e)
                        }
                        Err(e) => return Err(e),
                    }
                };
                Ok(Reader::new(shared.clone(), name, svc, object, expect))
            })
        });
        opened.map_err(to_py)
    }

    /// A writer of the object `path`; create-only unless `overwrite`.
    #[pyo3(signature = (path, overwrite=true, backend=None))]
    fn open_writer(&self, py: Python<'_>, path: String, overwrite: bool, backend: Option<String>) -> PyResult<Writer> {
        let shared = self.shared.clone();
        let rt = runtime();
        py.detach(|| {
            rt.block_on(async move {
                let svc = shared.service(backend.as_deref()).await?;
                Writer::open(&svc, &path, put_mode(overwrite)).await
            })
        })
        .map_err(to_py)
    }
}

/// The record of one object `target` is, unless a model lives at its path
/// (a wharf record trimmed to the platform's five fields names the model).
async fn object_of<'a>(svc: &StorageService, target: &'a Target) -> wharf::Result<Option<&'a ModelStorageInfo>> {
    match target.object_record() {
        Some(r) if !svc.exists(&r.storage_path).await? => Ok(Some(r)),
        _ => Ok(None),
    }
}

async fn delete_object(svc: &StorageService, path: &str) -> wharf::Result<bool> {
    let p = ObjectPath::parse(path)?;
    if !svc.adapter().exists(&p).await? {
        return Ok(false);
    }
    svc.adapter().delete(&p).await?;
    Ok(true)
}
