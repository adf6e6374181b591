//! `wharf.toml`: backends, their plugins, grants, config values and limits.
//!
//! Unknown keys are rejected with the key named. Config values may reference
//! secrets as `${env:NAME}` or `${file:PATH}`; they are resolved when the
//! backend is built and never logged or shown by `Debug`.

use crate::capabilities::{AllowedHost, DirGrant, Grants, Redactor, TcpGrant, TlsTarget};
use crate::error::{Error, Result};
use crate::layers::{
    AgeIdentity, AgeRecipient, Cache, Checksum, ChecksumAlgorithm, Compression, ConcurrencyLimit, DEFAULT_WRITE_BUFFER,
    Encryption, Retry, RetryPolicy, Stack, Timeout,
};
use crate::model::StorageBackend;
use crate::runtime::{BackendSpec, Limits, PoolConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The guest path the default local store is granted at.
pub const DEFAULT_DATA_GUEST: &str = "/data";

/// The whole configuration file.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory of `<backend>.wasm` plugins (relative to the config file).
    pub plugin_dir: Option<PathBuf>,
    /// Directory of compiled-component cache; default `~/.cache/wharf`.
    pub cache_dir: Option<PathBuf>,
    /// Where the `wharf` command keeps its running metrics totals (relative
    /// to the config file); default `$WHARF_METRICS_FILE`, else
    /// `$XDG_STATE_HOME/wharf/metrics.json`.
    pub metrics_file: Option<PathBuf>,
    /// Backend used when a command names none; default `local_filesystem`.
    pub default_backend: Option<String>,
    /// Engine-wide settings.
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// The backends, by name.
    #[serde(default)]
    pub backends: BTreeMap<String, BackendConfig>,
}

/// `[runtime]`; a key left out keeps its value in
/// [`RuntimeConfig::default`](crate::RuntimeConfig).
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    /// Adapter instances alive at once, over all backends (default 256).
    /// Every operation and open stream holds one; a backend's own bound is
    /// its `concurrency_limit` layer.
    pub max_instances: Option<u32>,
    /// Idle HTTP connections kept per host for adapters' requests (default 32).
    pub http_idle_per_host: Option<usize>,
    /// How long an operation waits for a free instance when all are in
    /// use, then fails as `transient` (default `30s`).
    pub instance_wait: Option<String>,
    /// Linear memory all live adapter instances may hold together, e.g.
    /// `"4GiB"` (default): idle instances are dropped to stay under it, and
    /// a call that would pass it fails.
    pub memory_budget: Option<String>,
}

/// Config keys that carry credentials, in any adapter that ships with
/// wharf: a backend that writes one in wharf.toml takes none from its
/// `url`'s exchanged sources.
const CREDENTIAL_KEYS: &[&str] = &[
    "access_key_id",
    "secret_access_key",
    "session_token",
    "token",
    "service_account_key",
    "account_key",
    "sas_token",
];

/// `[backends.<name>]`.
#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// The backend as a URL (`s3://bucket/prefix`, `redis://host:port`...):
    /// it sets the plugin, config values and grants (see [`crate::url`]);
    /// keys written beside it add to or override what it sets.
    pub url: Option<String>,
    /// Plugin to run; default: the backend's name.
    pub plugin: Option<String>,
    /// sha256 the plugin file must have.
    pub sha256: Option<String>,
    /// Values handed to the adapter's `open`.
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
    /// What the adapter may touch.
    #[serde(default)]
    pub grants: GrantsConfig,
    /// Per-call limits.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Warm instances (for adapters that export `wharf:storage/reuse`).
    #[serde(default)]
    pub pool: PoolSection,
    /// Middleware, outermost first (`[[backends.<name>.layers]]`).
    #[serde(default)]
    pub layers: Vec<LayerConfig>,
    /// Where each config value set by `url` came from (`AWS_PROFILE`...),
    /// for `wharf config show`.
    #[serde(skip)]
    pub sources: BTreeMap<String, String>,
    /// Credentials the host obtains by an exchange and refreshes, set by
    /// `url` (see [`crate::credentials`]).
    #[serde(skip)]
    pub credentials: Option<std::sync::Arc<crate::credentials::CredentialProvider>>,
}

impl fmt::Debug for BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: show keys only.
        f.debug_struct("BackendConfig")
            .field("url", &self.url.as_deref().map(crate::url::redact_url))
            .field("plugin", &self.plugin)
            .field("sha256", &self.sha256)
            .field("config_keys", &self.config.keys().collect::<Vec<_>>())
            .field("grants", &self.grants)
            .field("limits", &self.limits)
            .field("pool", &self.pool)
            .field("layers", &self.layers)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// A config value: a string, number or boolean, handed to the adapter as text.
#[derive(Deserialize, Clone, PartialEq)]
#[serde(untagged)]
pub enum ConfigValue {
    /// Text (may hold `${env:NAME}` / `${file:PATH}`).
    String(String),
    /// A secret resolved from a backend URL's credential source: handed
    /// to the adapter as it is, redacted from its messages, never shown.
    /// Not written in files.
    #[serde(skip)]
    Secret(String),
    /// An integer.
    Integer(i64),
    /// A boolean.
    Bool(bool),
}

/// `[backends.<name>.grants]`.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct GrantsConfig {
    /// Directories.
    #[serde(default)]
    pub dirs: Vec<DirGrantConfig>,
    /// `scheme://host:port` patterns for outgoing HTTP.
    #[serde(default)]
    pub http: Vec<String>,
    /// `host:port` pairs for outgoing TCP.
    #[serde(default)]
    pub tcp: Vec<String>,
    /// TCP peers reached over TLS that the host sets up and checks; the
    /// adapter connects to `${tls:host:port}` (a loopback relay).
    #[serde(default)]
    pub tls: Vec<TlsTarget>,
}

/// One directory grant.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct DirGrantConfig {
    /// Host directory (relative to the config file).
    pub host: PathBuf,
    /// Guest path, absolute (`/data`).
    pub guest: String,
    /// Read-only access.
    #[serde(default)]
    pub read_only: bool,
    /// Create the host directory if it is missing.
    #[serde(default)]
    pub create: bool,
}

/// `[backends.<name>.limits]`.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Linear memory per instance, e.g. `"256MiB"` (default).
    pub memory: Option<String>,
    /// CPU time per call, e.g. `"30s"` (default).
    pub cpu_time: Option<String>,
    /// Wall time per call, e.g. `"120s"` (default).
    pub call_timeout: Option<String>,
}

/// `[backends.<name>.pool]`: how many opened instances are kept for later
/// operations, and for how long. Only adapters that export
/// `wharf:storage/reuse` are kept at all (every built-in does).
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct PoolSection {
    /// Idle instances kept (default 8); `0` gives every operation a fresh one.
    pub idle: Option<usize>,
    /// Operations one instance serves before it is dropped (default 10000).
    pub uses: Option<u32>,
    /// How long an instance may sit idle, e.g. `"60s"` (default).
    pub idle_timeout: Option<String>,
    /// Instances of this backend alive at once, idle or busy (default: only
    /// `runtime.max_instances` bounds them); operations past it wait.
    pub max: Option<usize>,
    /// How long an operation waits for an instance when all of
    /// `runtime.max_instances` are busy (default: `runtime.instance_wait`).
    pub wait: Option<String>,
}

/// One `[[backends.<name>.layers]]` table; `layer` names the kind. Layers
/// apply in the order written, the first being the outermost (the one a
/// caller meets first). Sizes are like `"8MiB"`, durations like `"30s"`.
///
/// ```toml
/// [[backends.models.layers]]
/// layer = "retry"          # max_attempts = 4, initial_backoff = "100ms",
///                          # max_backoff = "5s", max_elapsed = "60s", write_buffer = "8MiB"
/// [[backends.models.layers]]
/// layer = "timeout"        # operation = "300s", idle = "60s"
/// [[backends.models.layers]]
/// layer = "concurrency_limit"
/// max = 16
/// [[backends.models.layers]]
/// layer = "cache"          # a local directory, least recently used out first
/// dir = "cache"
/// max_size = "20GiB"
/// ```
#[derive(Deserialize, Debug, Clone)]
#[serde(tag = "layer", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerConfig {
    /// Operations in flight at once (default
    /// [`ConcurrencyLimit::DEFAULT_MAX`]).
    ConcurrencyLimit {
        /// The bound.
        max: Option<u32>,
    },
    /// Per-operation and per-idle-stream timeouts.
    Timeout {
        /// Any call but a stream step (default
        /// [`Timeout::DEFAULT_OPERATION`]).
        operation: Option<String>,
        /// One stream step: a chunk read or written (default
        /// [`Timeout::DEFAULT_IDLE`]).
        idle: Option<String>,
    },
    /// A read-through cache in a local directory.
    Cache {
        /// The directory (relative to the config file).
        dir: PathBuf,
        /// Bytes of objects it may hold.
        max_size: String,
    },
    /// Retries of transient failures, with exponential backoff and jitter.
    Retry {
        /// Attempts in all, the first included (default: see
        /// [`RetryPolicy::default`], as for the next three).
        max_attempts: Option<u32>,
        /// Upper bound of the first wait.
        initial_backoff: Option<String>,
        /// Upper bound of any wait.
        max_backoff: Option<String>,
        /// No new attempt after this long.
        max_elapsed: Option<String>,
        /// A write up to this size is kept to be replayed (default
        /// [`DEFAULT_WRITE_BUFFER`]).
        write_buffer: Option<String>,
    },
    /// A digest per chunk stored with the data, checked on every read.
    Checksum {
        /// Bytes per digest (default
        /// [`Checksum::DEFAULT_CHUNK_SIZE`]).
        chunk_size: Option<String>,
        /// `"blake3"` (default) or `"sha256"`: the digests written (reads
        /// take each object's from its header).
        algorithm: Option<String>,
    },
    /// zstd in independently readable frames.
    Compression {
        /// zstd level (default [`Compression::DEFAULT_LEVEL`]).
        level: Option<i32>,
        /// Bytes of input per frame (default
        /// [`Compression::DEFAULT_FRAME_SIZE`]).
        frame_size: Option<String>,
    },
    /// The age format: X25519 recipients or a passphrase.
    Encryption {
        /// age recipients (`age1…`) new objects are encrypted to, inline
        /// (public keys are not secrets) or as `"${file:PATH}"` of a
        /// recipients file (one per line, `#` comments). None: the layer
        /// cannot write.
        #[serde(default)]
        recipients: Vec<String>,
        /// Identity files (`AGE-SECRET-KEY-1…` lines) to read with, each
        /// `"${file:PATH}"` or `"${env:NAME}"`, never inline: one string
        /// or a list. Keep old identities to read objects encrypted
        /// before a rotation. None: the layer cannot read.
        #[serde(default)]
        identities: Option<OneOrMany>,
        /// A passphrase (age's scrypt recipient) by reference, instead of
        /// keys: every read and write then costs an scrypt.
        passphrase: Option<String>,
        /// scrypt work factor (log2 N) of passphrase writes (default
        /// [`crate::layers::DEFAULT_WORK_FACTOR`]).
        work_factor: Option<u8>,
    },
}

/// One string or a list of them.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One.
    One(String),
    /// A list.
    Many(Vec<String>),
}

impl OneOrMany {
    fn items(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

impl LayerConfig {
    /// The `layer = "..."` name.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerConfig::ConcurrencyLimit { .. } => "concurrency_limit",
            LayerConfig::Timeout { .. } => "timeout",
            LayerConfig::Cache { .. } => "cache",
            LayerConfig::Retry { .. } => "retry",
            LayerConfig::Checksum { .. } => "checksum",
            LayerConfig::Compression { .. } => "compression",
            LayerConfig::Encryption { .. } => "encryption",
        }
    }
}

impl Config {
    /// Parses a `wharf.toml`; backends given by `url` are resolved in
    /// this process's environment ([`Config::expand_urls`]).
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let cfg: Config =
            toml::from_str(text).map_err(|e| Error::config(format!("{origin}: {}", e.to_string().trim_end())))?;
        cfg.expand_urls(&crate::url::Env::process())
    }

    /// Resolves every backend that has a `url`: the URL sets the plugin,
    /// config values (credentials from `env`) and grants; what the backend
    /// writes beside it overrides those values and adds grants. A `plugin`
    /// other than the URL's is an error.
    pub fn expand_urls(mut self, env: &crate::url::Env) -> Result<Self> {
        for (name, b) in self.backends.iter_mut() {
            let Some(url) = b.url.clone() else { continue };
            let derived = crate::url::backend(&url, env)
                .map_err(|e| Error::config(format!("backend `{name}`: {}", e.message())))?;
            b.merge_url(name, derived)?;
        }
        if let Some(d) = self.default_backend.clone()
            && crate::url::is_url(&d)
        {
            self.default_backend = Some(self.add_url_backend(&d, env)?);
        }
        Ok(self)
    }

    /// The backend `name_or_url` names: a configured name as it is, or a
    /// URL added with [`Config::add_url_backend`] (resolved in this
    /// process's environment). What `--backend` and Python's `backend=`
    /// take.
    pub fn backend_arg(&mut self, name_or_url: &str) -> Result<String> {
        if crate::url::is_url(name_or_url) {
            self.add_url_backend(name_or_url, &crate::url::Env::process())
        } else {
            Ok(name_or_url.to_string())
        }
    }

    /// Adds the backend a URL names (`--backend s3://...`) and returns its
    /// name: a configured backend with this `url` if there is one, else the
    /// URL's plugin name (`aws_s3`) if free, else `url-<plugin>[-N]`.
    pub fn add_url_backend(&mut self, url: &str, env: &crate::url::Env) -> Result<String> {
        if let Some((name, _)) = self.backends.iter().find(|(_, b)| b.url.as_deref() == Some(url)) {
            return Ok(name.clone());
        }
        let backend = crate::url::backend(url, env)?;
        let kind = backend.plugin_name("").to_string();
        let name = std::iter::once(kind.clone())
            .chain(std::iter::once(format!("url-{kind}")))
            .chain((2..).map(|n| format!("url-{kind}-{n}")))
            .find(|n| !self.backends.contains_key(n))
            .expect("an unbounded supply of names");
        self.backends.insert(name.clone(), backend);
        Ok(name)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("reading config `{}`: {e}", path.display())))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The backend commands use when they name none.
    pub fn default_backend(&self) -> &str {
        self.default_backend
            .as_deref()
            .unwrap_or(StorageBackend::LOCAL_FILESYSTEM)
    }

    /// The configuration used with no file: `local_filesystem` storing into
    /// `data_dir` (created if missing).
    pub fn local_default(data_dir: &Path) -> Self {
        let mut cfg = Config::default();
        cfg.backends
            .insert(StorageBackend::LOCAL_FILESYSTEM.into(), local_backend(data_dir));
        cfg
    }

    /// Adds the default `local_filesystem` backend if the file declares none.
    pub fn with_local_default(mut self, data_dir: &Path) -> Self {
        self.backends
            .entry(StorageBackend::LOCAL_FILESYSTEM.into())
            .or_insert_with(|| local_backend(data_dir));
        self
    }

    /// The configuration the `wharf` command uses, and its base directory
    /// (where relative paths in it are taken from). `explicit` (`--config`,
    /// `$WHARF_CONFIG`) is used as it is; else a `./wharf.toml` only if
    /// [`trust::implicit`](crate::trust::implicit) allows it (else a
    /// `config` error saying why); else the built-in `local_filesystem`
    /// backend storing into [`default_data_dir`]. A file that declares no
    /// `local_filesystem` backend gets that one too.
    pub fn discover(explicit: Option<&Path>) -> Result<(Config, PathBuf)> {
        let cwd =
            std::env::current_dir().map_err(|e| Error::new(crate::ErrorKind::Io, format!("current directory: {e}")))?;
        let data_dir = default_data_dir();
        let file = match explicit {
            Some(p) => Some((p.to_path_buf(), None)),
            None => match cwd.join("wharf.toml") {
                // Found, not chosen: used only if it is ours and approved.
                p if p.exists() => Some((p.clone(), Some(crate::trust::implicit(&p)?))),
                _ => None,
            },
        };
        match file {
            Some((path, text)) => {
                let cfg = match text {
                    Some(t) => Config::parse(&t, &path.display().to_string())?,
                    None => Config::load(&path)?,
                };
                let base = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map_or(cwd.clone(), Path::to_path_buf);
                let data = if data_dir.is_absolute() {
                    data_dir
                } else {
                    cwd.join(data_dir)
                };
                Ok((cfg.with_local_default(&data), base))
            }
            None => Ok((Config::local_default(&data_dir), cwd)),
        }
    }
}

/// `local_filesystem` storing into `data_dir` (created), granted at
/// [`DEFAULT_DATA_GUEST`].
pub(crate) fn local_backend(data_dir: &Path) -> BackendConfig {
    BackendConfig {
        config: [("root".to_string(), ConfigValue::String(DEFAULT_DATA_GUEST.into()))].into(),
        grants: GrantsConfig {
            dirs: vec![DirGrantConfig {
                host: data_dir.to_path_buf(),
                guest: DEFAULT_DATA_GUEST.into(),
                read_only: false,
                create: true,
            }],
            ..Default::default()
        },
        ..Default::default()
    }
}

/// wharf's per-user state: `$XDG_STATE_HOME/wharf`, else
/// `~/.local/state/wharf` (metrics totals, the cache key, trusted configs).
pub fn state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|d| d.join("wharf"))
}

/// `$WHARF_DATA_DIR`, else `./wharf-data`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("WHARF_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("wharf-data"))
}

impl BackendConfig {
    /// The configured layers as a [`Stack`], first written = outermost.
    /// Relative paths are taken from `base`.
    pub fn stack(&self, name: &str, base: &Path) -> Result<Stack> {
        let mut stack = Stack::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let at = |key: &str, why: String| {
                Error::config(format!(
                    "backend `{name}`: layers[{i}] ({}): {key}: {why}",
                    layer.kind()
                ))
            };
            let duration = |key: &str, v: &Option<String>, default: Duration| match v {
                Some(t) => parse_duration(t).map_err(|why| at(key, why)),
                None => Ok(default),
            };
            let size = |key: &str, v: &Option<String>, default: u64| match v {
                Some(t) => parse_size(t).map_err(|why| at(key, why)),
                None => Ok(default),
            };
            // The layers' own checks (ranges, key lengths) name the key too.
            let named = |key: &str| {
                let key = key.to_string();
                move |e: Error| at(&key, e.message().to_string())
            };
            stack = match layer {
                LayerConfig::ConcurrencyLimit { max } => match max {
                    None => stack.layer(ConcurrencyLimit::default()),
                    Some(0) => return Err(at("max", "must be at least 1".into())),
                    Some(n) => stack.layer(ConcurrencyLimit::new(*n as usize)),
                },
                LayerConfig::Timeout { operation, idle } => {
                    let d = Timeout::default();
                    stack.layer(
                        d.with_operation(duration("operation", operation, d.operation())?)
                            .with_idle(duration("idle", idle, d.idle())?),
                    )
                }
                LayerConfig::Cache { dir, max_size } => {
                    let max = parse_size(max_size).map_err(|why| at("max_size", why))?;
                    let dir = if dir.is_absolute() { dir.clone() } else { base.join(dir) };
                    let cache = Cache::new(dir, max).map_err(named("dir"))?;
                    stack.layer(cache)
                }
                LayerConfig::Retry {
                    max_attempts,
                    initial_backoff,
                    max_backoff,
                    max_elapsed,
                    write_buffer,
                } => {
                    let d = RetryPolicy::default();
                    let policy = RetryPolicy {
                        max_attempts: max_attempts.unwrap_or(d.max_attempts),
                        initial_backoff: duration("initial_backoff", initial_backoff, d.initial_backoff)?,
                        max_backoff: duration("max_backoff", max_backoff, d.max_backoff)?,
                        max_elapsed: duration("max_elapsed", max_elapsed, d.max_elapsed)?,
                    };
                    if policy.max_attempts == 0 {
                        return Err(at("max_attempts", "must be at least 1".into()));
                    }
                    let buffer = size("write_buffer", write_buffer, DEFAULT_WRITE_BUFFER)?;
                    stack.layer(Retry::new().with_policy(policy).with_write_buffer(buffer))
                }
                LayerConfig::Checksum { chunk_size, algorithm } => {
                    let d = Checksum::default();
                    let n = size("chunk_size", chunk_size, d.chunk_size())?;
                    let algorithm = match algorithm {
                        Some(a) => ChecksumAlgorithm::from_name(a).map_err(named("algorithm"))?,
                        None => d.algorithm(),
                    };
                    stack.layer(
                        d.with_chunk_size(n)
                            .map_err(named("chunk_size"))?
                            .with_algorithm(algorithm),
                    )
                }
                LayerConfig::Compression { level, frame_size } => {
                    let d = Compression::default();
                    let c = d
                        .with_level(level.unwrap_or(d.level()))
                        .map_err(named("level"))?
                        .with_frame_size(size("frame_size", frame_size, d.frame_size())?)
                        .map_err(named("frame_size"))?;
                    stack.layer(c)
                }
                LayerConfig::Encryption {
                    recipients,
                    identities,
                    passphrase,
                    work_factor,
                } => {
                    let reference = |key: &str, value: &str| {
                        if !value.trim_start().starts_with("${") {
                            return Err(at(
                                key,
                                "secrets must be given as \"${env:NAME}\" or \"${file:PATH}\", not inline".into(),
                            ));
                        }
                        resolve_refs(value, base, &TcpGrant::default(), &mut Vec::new()).map_err(|why| at(key, why))
                    };
                    let mut e = Encryption::new();
                    for (k, value) in recipients.iter().enumerate() {
                        let key = format!("recipients[{k}]");
                        let text = resolve_refs(value, base, &TcpGrant::default(), &mut Vec::new())
                            .map_err(|why| at(&key, why))?;
                        let lines = text
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty() && !l.starts_with('#'));
                        let parsed: Vec<AgeRecipient> = lines
                            .map(AgeRecipient::parse)
                            .collect::<std::result::Result<_, _>>()
                            .map_err(|why| at(&key, why))?;
                        if parsed.is_empty() {
                            return Err(at(&key, "no age1… recipient in it".into()));
                        }
                        e = e.with_recipients(parsed);
                    }
                    for (k, value) in identities.iter().flat_map(OneOrMany::items).enumerate() {
                        let key = format!("identities[{k}]");
                        let text = reference(&key, value)?;
                        e = e.with_identities(AgeIdentity::parse_file(&text).map_err(|why| at(&key, why))?);
                    }
                    if let Some(p) = passphrase {
                        let text = reference("passphrase", p)?;
                        e = e
                            .with_passphrase(text.trim_end_matches(['\n', '\r']))
                            .map_err(named("passphrase"))?;
                    }
                    if let Some(w) = work_factor {
                        e = e.with_work_factor(*w).map_err(named("work_factor"))?;
                    }
                    e.check().map_err(|err| at("encryption", err.message().to_string()))?;
                    stack.layer(e)
                }
            };
        }
        Ok(stack)
    }

    /// Takes in what `url` resolved to; what this backend sets itself wins.
    fn merge_url(&mut self, name: &str, derived: BackendConfig) -> Result<()> {
        let kind = derived.plugin.clone().expect("a URL names its plugin");
        match &self.plugin {
            Some(p) if *p != kind => {
                return Err(Error::config(format!(
                    "backend `{name}`: plugin `{p}` does not serve a `url` of kind `{kind}`"
                )));
            }
            _ => self.plugin = Some(kind),
        }
        let own_keys = CREDENTIAL_KEYS.iter().any(|k| self.config.contains_key(*k));
        for (key, value) in derived.config {
            match self.config.entry(key) {
                std::collections::btree_map::Entry::Occupied(set) => {
                    self.sources.insert(set.key().clone(), "wharf.toml".into());
                }
                std::collections::btree_map::Entry::Vacant(free) => {
                    free.insert(value);
                }
            }
        }
        // Keys written in wharf.toml are the credentials: the URL's
        // exchanged ones are not mixed in.
        if own_keys {
            self.sources.insert("credentials".into(), "wharf.toml".into());
        } else if self.credentials.is_none() {
            self.credentials = derived.credentials;
        }
        // The URL's sources, for the keys this backend did not set itself.
        for (key, source) in derived.sources {
            self.sources.entry(key).or_insert(source);
        }
        let g = &mut self.grants;
        g.http = derived.grants.http.into_iter().chain(g.http.drain(..)).collect();
        g.tcp = derived.grants.tcp.into_iter().chain(g.tcp.drain(..)).collect();
        g.tls = derived.grants.tls.into_iter().chain(g.tls.drain(..)).collect();
        g.dirs = derived.grants.dirs.into_iter().chain(g.dirs.drain(..)).collect();
        Ok(())
    }

    /// The plugin this backend runs.
    pub fn plugin_name<'a>(&'a self, backend: &'a str) -> &'a str {
        self.plugin.as_deref().unwrap_or(backend)
    }

    /// Resolves secrets, paths and limits into what the runtime needs.
    /// Relative host paths are taken from `base`.
    pub fn resolve(&self, name: &str, base: &Path) -> Result<BackendSpec> {
        StorageBackend::new(name)?;
        let at = |e: Error| Error::config(format!("backend `{name}`: {}", e.message()));
        let tls: Vec<TlsTarget> = self
            .grants
            .tls
            .iter()
            .map(|t| TlsTarget {
                ca_file: t.ca_file.as_ref().map(|f| base.join(f)),
                ..t.clone()
            })
            .collect();
        let tcp = TcpGrant::resolve(&self.grants.tcp)
            .and_then(|g| g.with_tls(&tls, name))
            .map_err(at)?;
        let mut config = Vec::with_capacity(self.config.len());
        let mut secrets = Vec::new();
        for (key, value) in &self.config {
            let text = match value {
                ConfigValue::String(s) => resolve_refs(s, base, &tcp, &mut secrets)
                    .map_err(|why| Error::config(format!("backend `{name}`: config key `{key}`: {why}")))?,
                ConfigValue::Secret(v) => {
                    secrets.push(v.clone());
                    v.clone()
                }
                ConfigValue::Integer(i) => i.to_string(),
                ConfigValue::Bool(b) => b.to_string(),
            };
            config.push((key.clone(), text));
        }
        let mut dirs = Vec::new();
        for d in &self.grants.dirs {
            let host = if d.host.is_absolute() {
                d.host.clone()
            } else {
                base.join(&d.host)
            };
            if d.create {
                std::fs::create_dir_all(&host)
                    .map_err(|e| Error::config(format!("backend `{name}`: creating `{}`: {e}", host.display())))?;
            }
            let grant = DirGrant {
                host,
                guest: d.guest.clone(),
                read_only: d.read_only,
            };
            grant.validate(name)?;
            dirs.push(grant);
        }
        let http = self
            .grants
            .http
            .iter()
            .map(|h| AllowedHost::parse(h).map_err(at))
            .collect::<Result<_>>()?;
        let mut limits = Limits::default();
        if let Some(m) = &self.limits.memory {
            limits.memory = parse_size(m)
                .and_then(|n| usize::try_from(n).map_err(|_| format!("`{m}` is too large")))
                .map_err(|why| Error::config(format!("backend `{name}`: limits.memory: {why}")))?;
        }
        if let Some(t) = &self.limits.cpu_time {
            limits.cpu_time =
                parse_duration(t).map_err(|why| Error::config(format!("backend `{name}`: limits.cpu_time: {why}")))?;
        }
        if let Some(t) = &self.limits.call_timeout {
            limits.call_timeout = parse_duration(t)
                .map_err(|why| Error::config(format!("backend `{name}`: limits.call_timeout: {why}")))?;
        }
        let mut pool = PoolConfig::default();
        if let Some(n) = self.pool.idle {
            pool.idle = n;
        }
        if let Some(n) = self.pool.uses {
            if n == 0 {
                return Err(Error::config(format!(
                    "backend `{name}`: pool.uses must be at least 1 (for no reuse, set pool.idle = 0)"
                )));
            }
            pool.uses = n;
        }
        if let Some(t) = &self.pool.idle_timeout {
            pool.idle_timeout = parse_duration(t)
                .map_err(|why| Error::config(format!("backend `{name}`: pool.idle_timeout: {why}")))?;
        }
        if let Some(n) = self.pool.max {
            if n == 0 {
                return Err(Error::config(format!("backend `{name}`: pool.max must be at least 1")));
            }
            pool.max = Some(n);
        }
        if let Some(t) = &self.pool.wait {
            pool.wait =
                Some(parse_duration(t).map_err(|why| Error::config(format!("backend `{name}`: pool.wait: {why}")))?);
        }
        Ok(BackendSpec {
            name: name.to_string(),
            config,
            grants: Grants { dirs, http, tcp },
            limits,
            secrets: Redactor::new(&secrets),
            pool,
            credentials: self.credentials.clone(),
        })
    }
}

/// Replaces `${env:NAME}` and `${file:PATH}` references. The error names the
/// reference, never a resolved value.
/// Every resolved value is added to `secrets`.
/// `${tls:host:port}` becomes the loopback address of that TLS grant's relay
/// (not a secret).
fn resolve_refs(
    s: &str,
    base: &Path,
    tcp: &TcpGrant,
    secrets: &mut Vec<String>,
) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find('}')
            .ok_or_else(|| format!("unterminated `${{` in `{s}`"))?
            + start;
        let reference = &rest[start + 2..end];
        if let Some(peer) = reference.strip_prefix("tls:") {
            let (_, local) = tcp
                .tls()
                .find(|(t, _)| t.address == peer)
                .ok_or_else(|| format!("references ${{tls:{peer}}}, but no TLS grant names `{peer}`"))?;
            out.push_str(&local.to_string());
            rest = &rest[end + 1..];
            continue;
        }
        let value = if let Some(var) = reference.strip_prefix("env:") {
            std::env::var(var).map_err(|_| format!("references ${{env:{var}}}, which is not set"))?
        } else if let Some(file) = reference.strip_prefix("file:") {
            let path = if Path::new(file).is_absolute() {
                PathBuf::from(file)
            } else {
                base.join(file)
            };
            std::fs::read_to_string(&path)
                .map_err(|e| format!("references ${{file:{file}}}, which cannot be read ({e})"))?
                .trim_end()
                .to_string()
        } else {
            return Err(format!(
                "unknown reference `${{{reference}}}` (use ${{env:NAME}}, ${{file:PATH}} or ${{tls:HOST:PORT}})"
            ));
        };
        out.push_str(&value);
        secrets.push(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub use wharf_units::parse_size;

/// A duration more than zero, in the syntax every config value uses
/// ([`wharf_units::parse_duration`]): `"30s"`, `"500ms"`, `"2m"`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let d = wharf_units::parse_duration(s)?;
    if d.is_zero() {
        return Err(format!("`{s}` must be more than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_file_is_used_as_it_is_with_the_local_default_added() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("custom.toml");
        std::fs::write(
            &file,
            "default_backend = \"x\"\n[backends.x]\nplugin = \"local_filesystem\"\n",
        )
        .unwrap();
        let (cfg, base) = Config::discover(Some(&file)).unwrap();
        assert_eq!(base, dir.path());
        assert_eq!(cfg.default_backend(), "x");
        assert!(cfg.backends.contains_key("x"));
        assert!(cfg.backends.contains_key(StorageBackend::LOCAL_FILESYSTEM));
        let e = Config::discover(Some(&dir.path().join("missing.toml"))).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config);
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = Config::parse("[backends.local_filesystem]\nplugn = \"x\"\n", "wharf.toml").unwrap_err();
        assert!(e.to_string().contains("plugn"), "{e}");
        let e = Config::parse("bogus = 1\n", "wharf.toml").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = Config::parse("[backends.x.limits]\nmemroy = \"1MiB\"\n", "wharf.toml").unwrap_err();
        assert!(e.to_string().contains("memroy"), "{e}");
    }

    #[test]
    fn secrets_resolve_and_stay_out_of_debug() {
        // SAFETY: test-only variable with a unique name.
        unsafe { std::env::set_var("WHARF_TEST_SECRET_1", "hunter2") };
        let cfg = Config::parse(
            "[backends.s3.config]\nsecret = \"${env:WHARF_TEST_SECRET_1}\"\nregion = \"eu\"\n",
            "wharf.toml",
        )
        .unwrap();
        let b = &cfg.backends["s3"];
        assert!(!format!("{b:?}").contains("hunter2"));
        let spec = b.resolve("s3", Path::new(".")).unwrap();
        assert!(spec.config.contains(&("secret".into(), "hunter2".into())));
        let missing = Config::parse("[backends.s3.config]\nk = \"${env:WHARF_TEST_UNSET_9}\"\n", "t").unwrap();
        let e = missing.backends["s3"].resolve("s3", Path::new(".")).unwrap_err();
        assert!(
            e.to_string().contains("WHARF_TEST_UNSET_9") && e.to_string().contains("`k`"),
            "{e}"
        );
    }

    /// The examples parse, including the commented-out layer keys, and every
    /// layer kind builds.
    #[test]
    fn examples_parse_and_build() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let text = std::fs::read_to_string(root.join("wharf.toml")).unwrap();
        let (head, layers) = text.split_once("# Middleware").unwrap();
        let uncommented: String = layers
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| !l.starts_with(' ') && (l.starts_with('[') || l.contains(" = ")))
            .map(|l| format!("{l}\n"))
            .collect();
        let cfg = Config::parse(&format!("{head}\n{uncommented}"), "examples/wharf.toml").unwrap();
        assert_eq!(cfg.backends["models"].layers.len(), 7);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("keys")).unwrap();
        let (old, new) = (AgeIdentity::generate(), AgeIdentity::generate());
        std::fs::write(dir.path().join("keys/2026.age"), new.to_secret_string()).unwrap();
        std::fs::write(
            dir.path().join("keys/recipients.txt"),
            format!("# the serving fleet\n{}\n", new.recipient()),
        )
        .unwrap();
        // SAFETY: test-only variable with a unique name.
        unsafe { std::env::set_var("WHARF_AGE_IDENTITY_2025", old.to_secret_string()) };
        let stack = cfg.backends["models"].stack("models", dir.path()).unwrap();
        assert_eq!(stack.len(), 7);
        Config::parse(
            &std::fs::read_to_string(root.join("full-stack.toml")).unwrap(),
            "full-stack",
        )
        .unwrap();
    }

    /// The checksum layer's `algorithm`: either name, or an error naming
    /// the key and both choices.
    #[test]
    fn checksum_algorithm_is_checked() {
        let stack = |layer: &str| {
            Config::parse(&format!("[[backends.x.layers]]\nlayer = \"checksum\"\n{layer}"), "t")
                .and_then(|cfg| cfg.backends["x"].stack("x", Path::new(".")).map(|s| s.len()))
        };
        for ok in ["", "algorithm = \"blake3\"\n", "algorithm = \"sha256\"\n"] {
            assert_eq!(stack(ok).unwrap(), 1, "{ok}");
        }
        let e = stack("algorithm = \"md5\"\n").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        let e = e.to_string();
        assert!(e.contains("algorithm") && e.contains("\"blake3\", \"sha256\""), "{e}");
    }

    /// Identities and passphrases only by reference; recipients inline or
    /// from a file; every key named in its error, no secret shown; a layer
    /// that can do nothing, or a passphrase beside recipients, refused.
    #[test]
    fn encryption_keys_by_reference_and_checked() {
        let id = AgeIdentity::generate();
        let secret = id.to_secret_string();
        let stack = |layer: &str| {
            Config::parse(&format!("[[backends.x.layers]]\nlayer = \"encryption\"\n{layer}"), "t")
                .and_then(|cfg| cfg.backends["x"].stack("x", Path::new(".")).map(|s| s.len()))
        };
        let e = stack(&format!("identities = \"{secret}\"\n")).unwrap_err().to_string();
        assert!(e.contains("identities[0]") && e.contains("${env:NAME}"), "{e}");
        assert!(!e.contains(&secret[16..]), "{e}");
        let e = stack("passphrase = \"hunter2\"\n").unwrap_err().to_string();
        assert!(e.contains("passphrase") && !e.contains("hunter2"), "{e}");
        let e = stack("recipients = [\"age1nope\"]\n").unwrap_err().to_string();
        assert!(e.contains("recipients[0]"), "{e}");
        let e = stack("").unwrap_err().to_string();
        assert!(e.contains("`recipients` (to write)"), "{e}");
        // SAFETY: test-only variables with unique names.
        unsafe {
            std::env::set_var("WHARF_TEST_AGE_ID_1", &secret);
            std::env::set_var("WHARF_TEST_AGE_BAD_1", "AGE-SECRET-KEY-1QQQQ");
            std::env::set_var("WHARF_TEST_AGE_PASS_1", "correct horse\n");
        }
        let r = id.recipient();
        assert_eq!(stack(&format!("recipients = [\"{r}\"]\n")).unwrap(), 1);
        assert_eq!(stack("identities = \"${env:WHARF_TEST_AGE_ID_1}\"\n").unwrap(), 1);
        let e = stack("identities = [\"${env:WHARF_TEST_AGE_ID_1}\", \"${env:WHARF_TEST_AGE_BAD_1}\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("identities[1]: line 1") && !e.contains("QQQQ"), "{e}");
        assert_eq!(
            stack("passphrase = \"${env:WHARF_TEST_AGE_PASS_1}\"\nwork_factor = 10\n").unwrap(),
            1
        );
        let e = stack(&format!(
            "passphrase = \"${{env:WHARF_TEST_AGE_PASS_1}}\"\nrecipients = [\"{r}\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot be combined"), "{e}");
        let e = stack("passphrase = \"${env:WHARF_TEST_AGE_PASS_1}\"\nwork_factor = 40\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("work_factor"), "{e}");
        let e = stack("key_id = \"a\"\n").unwrap_err().to_string();
        assert!(e.contains("key_id"), "{e}");
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("0").is_err());
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err(), "a zero timeout is refused");
    }

    #[test]
    fn bad_grants_are_rejected() {
        let cfg = Config::parse("[backends.x.grants]\nhttp = [\"example.com\"]\n", "t").unwrap();
        assert!(cfg.backends["x"].resolve("x", Path::new(".")).is_err());
        let cfg = Config::parse(
            "[[backends.x.grants.dirs]]\nhost = \"/nonexistent/wharf\"\nguest = \"/d\"\n",
            "t",
        )
        .unwrap();
        let e = cfg.backends["x"].resolve("x", Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/wharf"), "{e}");
    }
}
