//! The plugin directory: `<backend>.wasm` files, over the adapters built
//! into the binary.

use crate::error::{Error, Result};
use crate::model::StorageBackend;
use crate::runtime::{Plugin, Runtime};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod builtins {
    include!(concat!(env!("OUT_DIR"), "/builtins.rs"));
}

/// Where a plugin's component comes from.
#[derive(Clone, Debug)]
pub enum PluginSource {
    /// Compiled into this binary.
    BuiltIn(&'static [u8]),
    /// A `.wasm` file in the plugin directory.
    File(PathBuf),
}

impl PluginSource {
    /// `built-in` or the file's path.
    pub fn describe(&self) -> String {
        match self {
            PluginSource::BuiltIn(_) => "built-in".into(),
            PluginSource::File(p) => p.display().to_string(),
        }
    }

    /// The component's bytes.
    pub fn bytes(&self) -> Result<std::borrow::Cow<'static, [u8]>> {
        match self {
            PluginSource::BuiltIn(b) => Ok(std::borrow::Cow::Borrowed(b)),
            PluginSource::File(p) => std::fs::read(p)
                .map(std::borrow::Cow::Owned)
                .map_err(|e| Error::config(format!("reading plugin `{}`: {e}", p.display()))),
        }
    }
}

/// The adapters a host can load, by backend name.
#[derive(Clone, Debug)]
pub struct PluginSet {
    entries: BTreeMap<String, PluginSource>,
}

impl Default for PluginSet {
    fn default() -> Self {
        Self::builtin()
    }
}

impl PluginSet {
    /// Only the adapters built into this binary.
    pub fn builtin() -> Self {
        let entries = builtins::BUILTINS
            .iter()
            .map(|(name, bytes)| (name.to_string(), PluginSource::BuiltIn(bytes)))
            .collect();
        PluginSet { entries }
    }

    /// The built-in adapters, overridden or extended by every `<name>.wasm`
    /// in `dir`. A directory (or plugin file) that another user owns or can
    /// write is refused: whoever can write it chooses the code that runs
    /// with this backend's grants. A plugin that replaces a built-in is
    /// logged.
    pub fn with_dir(dir: &Path) -> Result<Self> {
        let mut set = Self::builtin();
        let untrusted = |what: &Path, why: String| {
            Error::config(format!(
                "plugin directory `{}`: `{}` {why}; only its owner may be able to change plugins (chmod go-w)",
                dir.display(),
                what.display()
            ))
        };
        let meta =
            std::fs::metadata(dir).map_err(|e| Error::config(format!("plugin directory `{}`: {e}", dir.display())))?;
        crate::ownership::owned_and_private(&meta, 0o022).map_err(|why| untrusted(dir, why))?;
        let read =
            std::fs::read_dir(dir).map_err(|e| Error::config(format!("plugin directory `{}`: {e}", dir.display())))?;
        for entry in read {
            let path = entry
                .map_err(|e| Error::io(format!("plugin directory `{}`", dir.display()), e))?
                .path();
            if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
                continue;
            }
            let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
                continue;
            };
            let name = StorageBackend::new(stem)
                .map_err(|e| Error::config(format!("plugin file `{}`: {}", path.display(), e.message())))?;
            let meta = std::fs::metadata(&path)
                .map_err(|e| Error::config(format!("plugin file `{}`: {e}", path.display())))?;
            crate::ownership::owned_and_private(&meta, 0o022).map_err(|why| untrusted(&path, why))?;
            if let Some(PluginSource::BuiltIn(_)) = set.entries.get(name.as_str()) {
                tracing::warn!(plugin = %path.display(), "`{name}.wasm` in the plugin directory replaces the built-in `{name}` adapter");
            }
            set.entries.insert(name.as_str().to_string(), PluginSource::File(path));
        }
        Ok(set)
    }

    /// Names and sources of every plugin.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &PluginSource)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The source of one plugin.
    pub fn get(&self, name: &str) -> Option<&PluginSource> {
        self.entries.get(name)
    }

    /// Compiles and checks a plugin; `pin` is the sha256 it must have.
    pub fn load(&self, runtime: &Runtime, name: &str, pin: Option<&str>) -> Result<Plugin> {
        let source = self.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.entries.keys().map(String::as_str).collect();
            Error::config(format!(
                "no plugin `{name}`: put `{name}.wasm` in the plugin directory (available: {})",
                known.join(", ")
            ))
        })?;
        let bytes = source.bytes()?;
        // The pin is checked on the bytes themselves, before anything is
        // compiled or read from the compile cache.
        let sha256 = hex::encode(Sha256::digest(&bytes));
        if let Some(pin) = pin
            && !sha256.eq_ignore_ascii_case(pin)
        {
            return Err(Error::config(format!(
                "plugin `{name}` ({}) has sha256 {sha256}, but the config pins {pin}",
                source.describe(),
            )));
        }
        runtime.load_hashed_plugin(name, &bytes, sha256, &source.describe())
    }
}
