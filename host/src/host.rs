//! [`Host`]: the runtime, the plugins and the configured backends, built
//! lazily by name.

use crate::adapter::Adapter;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::layers::{Metrics, Registry, Stack, Tracing};
use crate::plugins::PluginSet;
use crate::runtime::{Runtime, RuntimeConfig, WasmAdapter};
use crate::service::StorageService;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::Mutex;

/// A wharf host: loads adapters by backend name and hands out
/// [`StorageService`]s over them.
///
/// # Example
///
/// ```no_run
/// # async fn demo() -> wharf::Result<()> {
/// use wharf::{Config, Host};
/// let host = Host::new(Config::local_default("wharf-data".as_ref()), ".".as_ref())?;
/// let service = host.service("local_filesystem").await?;
/// let info = service.save_file("model.onnx".as_ref(), &Default::default()).await?;
/// println!("{}", serde_json::to_string_pretty(&info).unwrap());
/// # Ok(()) }
/// ```
pub struct Host {
    runtime: Runtime,
    plugins: PluginSet,
    config: Config,
    base: PathBuf,
    adapters: Mutex<HashMap<String, Arc<dyn Adapter>>>,
    metrics: Arc<Registry>,
}

impl Host {
    /// A host for `config`; relative paths in it are taken from `base`
    /// (the config file's directory).
    pub fn new(config: Config, base: &Path) -> Result<Self> {
        let mut rc = RuntimeConfig::default();
        if let Some(dir) = &config.cache_dir {
            rc.cache_dir = Some(base.join(dir));
        }
        if let Some(n) = config.runtime.max_instances {
            rc.max_instances = n;
        }
        if let Some(n) = config.runtime.http_idle_per_host {
            rc.http_idle_per_host = n;
        }
        if let Some(t) = &config.runtime.instance_wait {
            rc.instance_wait = crate::config::parse_duration(t)
                .map_err(|why| Error::config(format!("runtime.instance_wait: {why}")))?;
        }
        if let Some(m) = &config.runtime.memory_budget {
            rc.memory_budget = crate::config::parse_size(m)
                .and_then(|n| usize::try_from(n).map_err(|_| format!("`{m}` is too large")))
                .map_err(|why| Error::config(format!("runtime.memory_budget: {why}")))?;
        }
        let plugins = match &config.plugin_dir {
            Some(dir) => PluginSet::with_dir(&base.join(dir))?,
            None => PluginSet::builtin(),
        };
        Ok(Host {
            runtime: Runtime::new(rc)?,
            plugins,
            config,
            base: base.to_path_buf(),
            adapters: Mutex::default(),
            metrics: Registry::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The directory relative paths in the configuration are taken from.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The plugins this host can load.
    pub fn plugins(&self) -> &PluginSet {
        &self.plugins
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// What every backend's operations have done so far (the outermost
    /// layer of each adapter this host hands out records here).
    pub fn metrics(&self) -> &Arc<Registry> {
        &self.metrics
    }

    /// Names of the configured backends.
    pub fn backend_names(&self) -> Vec<String> {
        self.config.backends.keys().cloned().collect()
    }

    /// The adapter of a configured backend, built on first use: the Wasm
    /// component inside the backend's configured layers, inside
    /// [`Tracing`] and [`Metrics`].
    pub async fn adapter(&self, name: &str) -> Result<Arc<dyn Adapter>> {
        if let Some(a) = self.adapters.lock().await.get(name) {
            return Ok(a.clone());
        }
        let backend = self.config.backends.get(name).ok_or_else(|| {
            Error::config(format!(
                "unknown backend `{name}` (configured: {}); add [backends.{name}] to wharf.toml",
                self.backend_names().join(", ")
            ))
        })?;
        let spec = backend.resolve(name, &self.base)?;
        let plugin = self
            .plugins
            .load(&self.runtime, backend.plugin_name(name), backend.sha256.as_deref())?;
        let stack = backend.stack(name, &self.base)?;
        let wasm: Arc<dyn Adapter> = Arc::new(WasmAdapter::new(&self.runtime, &plugin, spec).await?);
        // Every backend is observed, outside its configured layers, so
        // metrics and spans count what callers see (retries included).
        let adapter = Stack::new()
            .layer(Tracing::new())
            .layer(Metrics::new(self.metrics.clone()))
            .apply(stack.apply(wasm));
        // Built without the lock, so a slow backend does not hold up others;
        // if two callers raced, the first one stored wins.
        let mut adapters = self.adapters.lock().await;
        Ok(adapters.entry(name.to_string()).or_insert(adapter).clone())
    }

    /// A [`StorageService`] over one backend, recording its kind (the
    /// plugin it runs) as `storage_backend`.
    pub async fn service(&self, name: &str) -> Result<StorageService> {
        let adapter = self.adapter(name).await?;
        let kind = self.backend_kind(name).unwrap_or(name).to_string();
        let service = StorageService::new(adapter).with_kind(&kind);
        // A local disk gains nothing from several ranges at once, and the
        // ranged path reads the file back to hash it (measured in
        // BENCHMARKS.md: 0.61 → 0.50 of copyfile + sha256).
        Ok(if kind == crate::model::StorageBackend::LOCAL_FILESYSTEM {
            service.with_parallel_reads(crate::service::ParallelReads::off())
        } else {
            service
        })
    }

    /// The kind of a configured backend: the plugin it runs (`aws_s3`, or
    /// a third-party plugin's name).
    pub fn backend_kind<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.config.backends.get(name).map(|b| b.plugin_name(name))
    }

    /// The configured backend a record points at: the one named by its
    /// `backend_name` if that is configured, else the only configured
    /// backend of its kind (`storage_backend`); fails naming the candidates
    /// when there are none or several.
    pub fn backend_for(&self, info: &crate::ModelStorageInfo) -> Result<String> {
        if let Some(name) = &info.backend_name
            && self.config.backends.contains_key(name)
        {
            return Ok(name.clone());
        }
        let kind = info.storage_backend.as_str();
        let of_kind: Vec<String> = self
            .config
            .backends
            .iter()
            .filter(|(n, b)| b.plugin_name(n) == kind)
            .map(|(n, _)| n.clone())
            .collect();
        let named = info
            .backend_name
            .as_deref()
            .map(|n| format!("backend `{n}` is not configured and "))
            .unwrap_or_default();
        match of_kind.as_slice() {
            [one] => Ok(one.clone()),
            // A record written before kinds and names were split held the
            // configured name in `storage_backend`.
            [] if info.backend_name.is_none() && self.config.backends.contains_key(kind) => Ok(kind.to_string()),
            [] => Err(Error::config(format!(
                "the record's {named}no configured backend is of kind `{kind}` (configured: {}); pass --backend NAME",
                self.describe_backends()
            ))),
            many => Err(Error::config(format!(
                "the record's {named}{} configured backends are of kind `{kind}` ({}); pass --backend NAME",
                many.len(),
                many.join(", ")
            ))),
        }
    }

    fn describe_backends(&self) -> String {
        self.config
            .backends
            .iter()
            .map(|(n, b)| format!("{n} ({})", b.plugin_name(n)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
