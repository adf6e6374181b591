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

    /// A [`StorageService`] over one backend.
    pub async fn service(&self, name: &str) -> Result<StorageService> {
        Ok(StorageService::new(self.adapter(name).await?))
    }
}
