//! The Wasm runtime: one engine, components compiled once (and cached on
//! disk), pre-instantiated; an instance per operation, fresh or warm (see
//! `pool`).

mod bindings;
mod cache;
mod pool;
mod state;
mod wasm_adapter;

pub use bindings::{CONTRACT_EXPORT, CONTRACT_VERSION, MAINTENANCE_EXPORT, REUSE_EXPORT};
pub use cache::default_cache_key_file;
pub use pool::{PoolConfig, PoolStats};
pub use wasm_adapter::{BackendSpec, Limits, WasmAdapter};

use crate::capabilities::HttpClient;
use crate::error::{Error, Result};
use bindings::{AdapterIndices, MaintenanceIndices, ReuseIndices};
use cache::CompileCache;
use sha2::{Digest, Sha256};
use state::GuestState;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;
use wasmtime::component::{Component, InstancePre, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; the unit of the CPU-time limit.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings of a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// The private key that authenticates cache entries (kept outside the
    /// cache); `None` disables the cache.
    pub cache_key_file: Option<PathBuf>,
    /// Instances alive at once across all backends (operations in flight,
    /// open readers and writers). Bounds the pooling allocator.
    pub max_instances: u32,
    /// The largest linear memory any adapter may have; each backend's own
    /// limit (default 256 MiB) is enforced below it.
    pub max_memory: usize,
    /// Idle keep-alive connections kept per host by the shared HTTP client.
    pub http_idle_per_host: usize,
    /// How long an operation waits for a free instance when all
    /// `max_instances` are in use, before it fails.
    pub instance_wait: Duration,
    /// Linear memory all live instances together may hold (default 4 GiB):
    /// `max_instances` × a backend's memory limit can exceed the machine.
    /// An instance that would grow past it fails its call (a memory limit)
    /// after idle instances were dropped to make room.
    pub memory_budget: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: default_cache_dir(),
            cache_key_file: default_cache_key_file(),
            max_instances: 256,
            max_memory: 1 << 30,
            http_idle_per_host: 32,
            instance_wait: Duration::from_secs(30),
            memory_budget: 4 << 30,
        }
    }
}

/// `$WHARF_CACHE_DIR`, else `$XDG_CACHE_HOME/wharf`, else `~/.cache/wharf`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("WHARF_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(d).join("wharf"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("wharf"))
}

/// The engine, linker and shared HTTP client of a host. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

struct RuntimeInner {
    engine: Engine,
    linker: Linker<GuestState>,
    http: HttpClient,
    cache: Option<CompileCache>,
    /// One permit per instance slot of the pooling allocator, so a full pool
    /// makes operations wait (bounded) instead of failing at once.
    slots: Arc<tokio::sync::Semaphore>,
    max_instances: u32,
    instance_wait: Duration,
    stop_ticker: Arc<AtomicBool>,
    /// Every backend's pool of idle instances, to drop some when an
    /// operation needs their slot or their memory.
    pools: Mutex<Vec<Weak<dyn pool::Evict>>>,
    /// Operations waiting for a slot: while there are any, an instance that
    /// finishes frees its slot instead of going idle.
    waiting: AtomicUsize,
    memory: Arc<MemoryBudget>,
}

/// Linear memory held by all live instances, against the budget.
pub(crate) struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
}

impl MemoryBudget {
    /// Takes `n` bytes of the budget if they are there.
    pub(crate) fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= self.limit)
            })
            .is_ok()
    }

    pub(crate) fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes held now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

impl Drop for RuntimeInner {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Builds the engine (pooling allocator, copy-on-write memory images,
    /// epoch interruption) and starts its epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        let n = config.max_instances.max(1);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n * 8)
            .total_memories(n * 2)
            .total_tables(n * 8)
            .total_stacks(n)
            .max_memory_size(config.max_memory)
            .max_core_instances_per_component(16)
            .max_memories_per_component(4)
            .max_tables_per_component(16);
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .wasm_component_model(true)
            .memory_init_cow(true)
            .cranelift_opt_level(wasmtime::OptLevel::Speed)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(|e| Error::config(format!("wasm engine: {e:#}")))?;
        let mut linker = Linker::<GuestState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .and_then(|()| wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker))
            .and_then(|()| restrict_name_lookup(&mut linker))
            .map_err(|e| Error::config(format!("linking WASI: {e:#}")))?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("wharf-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| Error::io("starting the epoch ticker", e))?;

        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                http: HttpClient::new(config.http_idle_per_host),
                cache: match (&config.cache_dir, &config.cache_key_file) {
                    (Some(dir), Some(key)) => CompileCache::open(dir, key),
                    _ => None,
                },
                slots: Arc::new(tokio::sync::Semaphore::new(n as usize)),
                max_instances: n,
                instance_wait: config.instance_wait,
                stop_ticker,
                pools: Mutex::new(Vec::new()),
                waiting: AtomicUsize::new(0),
                memory: Arc::new(MemoryBudget {
                    limit: config.memory_budget,
                    used: AtomicUsize::new(0),
                }),
            }),
        })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn http_client(&self) -> &HttpClient {
        &self.inner.http
    }

    /// A slot for one instance. When none is free, idle instances of any
    /// backend are dropped to make one; failing that, it waits up to `wait`
    /// (default `instance_wait`) for an operation to end.
    pub(crate) async fn instance_slot(&self, wait: Option<Duration>) -> Result<tokio::sync::OwnedSemaphorePermit> {
        let inner = &self.inner;
        loop {
            match inner.slots.clone().try_acquire_owned() {
                Ok(permit) => return Ok(permit),
                Err(tokio::sync::TryAcquireError::Closed) => {
                    return Err(Error::adapter("the runtime is shutting down"));
                }
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    if !self.evict_idle() {
                        break;
                    }
                }
            }
        }
        let wait = wait.unwrap_or(inner.instance_wait);
        inner.waiting.fetch_add(1, Ordering::AcqRel);
        let got = tokio::time::timeout(wait, inner.slots.clone().acquire_owned()).await;
        inner.waiting.fetch_sub(1, Ordering::AcqRel);
        match got {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(Error::adapter("the runtime is shutting down")),
            Err(_) => Err(Error::new(
                crate::ErrorKind::Transient,
                format!(
                    "all {} adapter instances stayed in use for {wait:?} (raise runtime.max_instances or the backend's pool.wait, or hold fewer readers and writers open)",
                    inner.max_instances
                ),
            )),
        }
    }

    /// Whether a finished instance may go idle: not while operations wait
    /// for its slot or the memory budget is nearly spent.
    pub(crate) fn room_for_idle(&self) -> bool {
        let m = &self.inner.memory;
        self.inner.waiting.load(Ordering::Acquire) == 0 && m.used() <= m.limit / 4 * 3
    }

    /// Drops one idle instance, of any backend; whether there was one.
    pub(crate) fn evict_idle(&self) -> bool {
        let pools: Vec<_> = {
            let mut pools = self.inner.pools.lock().expect("pools lock");
            pools.retain(|p| p.strong_count() > 0);
            pools.iter().filter_map(Weak::upgrade).collect()
        };
        pools.iter().any(|p| p.evict_one())
    }

    pub(crate) fn register_pool(&self, pool: Weak<dyn pool::Evict>) {
        self.inner.pools.lock().expect("pools lock").push(pool);
    }

    /// How long an operation waits for an instance unless its backend says.
    pub(crate) fn instance_wait(&self) -> Duration {
        self.inner.instance_wait
    }

    pub(crate) fn memory_budget(&self) -> &Arc<MemoryBudget> {
        &self.inner.memory
    }

    /// Compiles (or loads from the cache) an adapter component, checks that
    /// it exports the contract and that the host can satisfy its imports.
    /// `origin` names the file (or `built-in`) in errors.
    pub fn load_plugin(&self, name: &str, wasm: &[u8], origin: &str) -> Result<Plugin> {
        self.load_hashed_plugin(name, wasm, hex::encode(Sha256::digest(wasm)), origin)
    }

    /// [`Runtime::load_plugin`] for bytes whose sha256 the caller computed.
    pub(crate) fn load_hashed_plugin(&self, name: &str, wasm: &[u8], sha256: String, origin: &str) -> Result<Plugin> {
        let fail = |what: String| Error::config(format!("plugin `{name}` ({origin}): {what}"));
        check_component_header(wasm).map_err(fail)?;
        let component = self.compile_cached(wasm, &sha256).map_err(|e| fail(format!("{e:#}")))?;
        let exported = exported_contracts(&self.inner.engine, &component);
        if !exported.iter().any(|e| e == CONTRACT_EXPORT) {
            let what = match exported.iter().find(|e| e.starts_with("wharf:storage/adapter")) {
                Some(other) => format!(
                    "exports contract `{other}`, but this host supports `{CONTRACT_EXPORT}`; rebuild the adapter against wharf:storage@{CONTRACT_VERSION}"
                ),
                None => format!(
                    "does not export `{CONTRACT_EXPORT}` (it exports: {})",
                    if exported.is_empty() {
                        "nothing".to_string()
                    } else {
                        exported.join(", ")
                    }
                ),
            };
            return Err(fail(what));
        }
        let pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| fail(format!("needs an import the host does not provide: {e:#}")))?;
        let adapter = AdapterIndices::new(&pre).map_err(|e| fail(format!("{e:#}")))?;
        // Optional: a component built for the `storage-adapter` world alone
        // has no maintenance export and answers `unsupported` for it.
        let maintenance = if exported.iter().any(|e| e == MAINTENANCE_EXPORT) {
            Some(MaintenanceIndices::new(&pre).map_err(|e| fail(format!("{e:#}")))?)
        } else {
            None
        };
        let reuse = if exported.iter().any(|e| e == REUSE_EXPORT) {
            Some(ReuseIndices::new(&pre).map_err(|e| fail(format!("{e:#}")))?)
        } else {
            None
        };
        let imports = component
            .component_type()
            .imports(&self.inner.engine)
            .map(|(n, _)| n.to_string())
            .collect();
        Ok(Plugin {
            inner: Arc::new(PluginInner {
                name: name.into(),
                origin: origin.into(),
                sha256,
                size: wasm.len(),
                imports,
                pre,
                adapter,
                maintenance,
                reuse,
            }),
        })
    }

    fn compile_cached(&self, wasm: &[u8], sha256: &str) -> wasmtime::Result<Component> {
        let engine = &self.inner.engine;
        let Some(cache) = &self.inner.cache else {
            return Component::new(engine, wasm);
        };
        let mut h = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let engine_hash = h.finish();
        if let Some(c) = cache.load(engine, sha256, engine_hash) {
            return Ok(c);
        }
        let bytes = engine.precompile_component(wasm)?;
        // SAFETY: `bytes` were produced just now by this engine.
        let component = unsafe { Component::deserialize(engine, &bytes)? };
        cache.store(sha256, engine_hash, &bytes);
        Ok(component)
    }
}

/// Replaces wasi:sockets' `resolve-addresses` with one that answers only for
/// the names the backend's TCP grants hold: a lookup of any other name would
/// let a guest carry data out in DNS queries (`<secret>.attacker.example`).
fn restrict_name_lookup(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    use wasmtime::StoreContextMut;
    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::bindings::sockets::{ip_name_lookup, network};
    use wasmtime_wasi::sockets::WasiSocketsView;
    type Answer = (std::result::Result<Resource<ip_name_lookup::ResolveAddressStream>, network::ErrorCode>,);
    linker.allow_shadowing(true);
    linker.instance(NAME_LOOKUP)?.func_wrap(
        "resolve-addresses",
        |mut store: StoreContextMut<'_, GuestState>,
         (net, name): (Resource<network::Network>, String)|
         -> wasmtime::Result<Answer> {
            let state = store.data_mut();
            if !state.tcp.permits_name(&name) {
                let shown: String = name.chars().take(64).collect();
                tracing::warn!(backend = %state.backend, name = %shown.escape_debug(), "DNS lookup denied: not a granted TCP host");
                return Ok((Err(network::ErrorCode::AccessDenied),));
            }
            let mut view = state.sockets();
            Ok((match ip_name_lookup::Host::resolve_addresses(&mut view, net, name) {
                Ok(stream) => Ok(stream),
                Err(e) => Err(network::Host::convert_error_code(&mut view, e)?),
            },))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// The interface `restrict_name_lookup` replaces a function of (the version
/// wasmtime-wasi links; semver-compatible imports resolve to it).
const NAME_LOOKUP: &str = "wasi:sockets/ip-name-lookup@0.2.12";

pub(crate) fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random source works");
    u64::from_le_bytes(b)
}

/// A component's first 8 bytes say whether it is a component at all.
fn check_component_header(wasm: &[u8]) -> std::result::Result<(), String> {
    match wasm.get(..8) {
        Some([0, b'a', b's', b'm', _, _, 0x01, 0x00]) => Ok(()),
        Some([0, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00]) => Err(
            "is a core WebAssembly module, not a component; build it for wasm32-wasip2 or wrap it with `wasm-tools component new`"
                .into(),
        ),
        _ => Err("is not a WebAssembly component (no `\\0asm` header)".into()),
    }
}

fn exported_contracts(engine: &Engine, component: &Component) -> Vec<String> {
    component
        .component_type()
        .exports(engine)
        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentInstance(_)))
        .map(|(n, _)| n.to_string())
        .collect()
}

/// A compiled, pre-instantiated adapter component.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<PluginInner>,
}

struct PluginInner {
    name: String,
    origin: String,
    sha256: String,
    size: usize,
    imports: Vec<String>,
    pre: InstancePre<GuestState>,
    adapter: AdapterIndices,
    maintenance: Option<MaintenanceIndices>,
    reuse: Option<ReuseIndices>,
}

impl Plugin {
    /// The plugin's backend name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }
    /// Where it came from: a file path or `built-in`.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }
    /// sha256 of the `.wasm` file, hex.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }
    /// Size of the `.wasm` file in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }
    /// The WASI interfaces the component imports.
    pub fn imports(&self) -> &[String] {
        &self.inner.imports
    }
    /// Whether the component exports the optional `maintenance` interface
    /// (pending uploads); without it those operations are `unsupported`.
    pub fn has_maintenance(&self) -> bool {
        self.inner.maintenance.is_some()
    }
    /// Whether the component exports the optional `reuse` interface: the
    /// host may keep its opened backends for later operations.
    pub fn is_reusable(&self) -> bool {
        self.inner.reuse.is_some()
    }
    pub(crate) fn reuse_indices(&self) -> Option<&ReuseIndices> {
        self.inner.reuse.as_ref()
    }
    pub(crate) fn pre(&self) -> &InstancePre<GuestState> {
        &self.inner.pre
    }
    pub(crate) fn adapter_indices(&self) -> &AdapterIndices {
        &self.inner.adapter
    }
    pub(crate) fn maintenance_indices(&self) -> Option<&MaintenanceIndices> {
        self.inner.maintenance.as_ref()
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name())
            .field("origin", &self.origin())
            .field("sha256", &self.sha256())
            .finish()
    }
}
