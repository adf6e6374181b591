//! [`Host`]: the runtime, the plugins and the configured backends, built
//! lazily by name.

use crate::adapter::Adapter;
use crate::config::Config;
use crate::error::{Error, Result};
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
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The plugins this host can load.
    pub fn plugins(&self) -> &PluginSet {
        &self.plugins
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Names of the configured backends.
    pub fn backend_names(&self) -> Vec<String> {
        self.config.backends.keys().cloned().collect()
    }

    /// The adapter of a configured backend, built on first use.
    pub async fn adapter(&self, name: &str) -> Result<Arc<dyn Adapter>> {
        let mut adapters = self.adapters.lock().await;
        if let Some(a) = adapters.get(name) {
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
        let adapter: Arc<dyn Adapter> = Arc::new(WasmAdapter::new(&self.runtime, &plugin, spec).await?);
        adapters.insert(name.to_string(), adapter.clone());
        Ok(adapter)
    }

    /// A [`StorageService`] over one backend.
    pub async fn service(&self, name: &str) -> Result<StorageService> {
        Ok(StorageService::new(self.adapter(name).await?))
    }
}
