//! [`WasmAdapter`]: the [`Adapter`] trait over a component, one instance per
//! operation (a fresh one, or a warm one of the same backend when the
//! component exports `reuse`: see [`super::pool`]), every call under
//! memory, CPU and time limits.

use super::bindings::wharf::storage::types as wit;
use super::bindings::{AdapterExports, MAINTENANCE_EXPORT, MaintenanceExports, ReuseExports, WitPendingUpload};
use super::pool::{Pool, PoolConfig, PoolStats, keeps_instance, spawn_reaper};
use super::state::GuestState;
use super::{EPOCH_TICK, Plugin, Runtime};
use crate::adapter::{
    Adapter, ByteRange, Capabilities, Encoding, ListPage, ObjectMeta, ObjectReader, ObjectWriter, PendingPage,
    PendingUpload, PutMode,
};
use crate::capabilities::{Grants, HttpGrant, Redactor};
use crate::credentials::CredentialProvider;
use crate::error::{Error, ErrorKind, Result};
use crate::path::{ObjectPath, check_prefix};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use wasmtime::component::ResourceAny;
use wasmtime::{Store, UpdateDeadline};

/// Per-call limits of one backend's adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory of one instance, bytes. Default 256 MiB.
    pub memory: usize,
    /// CPU time one call may spend running guest code. Default 30 s.
    pub cpu_time: Duration,
    /// Wall-clock time of one call, I/O included. Default 120 s.
    pub call_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory: 256 << 20,
            cpu_time: Duration::from_secs(30),
            call_timeout: Duration::from_secs(120),
        }
    }
}

/// Everything needed to run one backend on a plugin.
#[derive(Clone, Debug)]
pub struct BackendSpec {
    /// The backend's name.
    pub name: String,
    /// The `config` table handed to the adapter's `open`.
    pub config: Vec<(String, String)>,
    /// What the adapter may touch.
    pub grants: Grants,
    /// Per-call limits.
    pub limits: Limits,
    /// The values resolved from `${env:}` / `${file:}` references, masked in
    /// every error and log line that comes from the adapter.
    pub secrets: Redactor,
    /// How idle instances are kept, for a component that exports `reuse`.
    pub pool: PoolConfig,
    /// Short-lived credentials the host obtains and refreshes, merged over
    /// `config` in each instance's `open` (see [`crate::credentials`]).
    pub credentials: Option<Arc<CredentialProvider>>,
}

#[derive(Clone)]
pub(crate) struct AdapterShared {
    pub(crate) name: Arc<str>,
    pub(crate) grants: Grants,
    pub(crate) limits: Limits,
    pub(crate) http: HttpGrant,
    pub(crate) redactor: Redactor,
    config: Vec<(String, String)>,
    pub(crate) runtime: Runtime,
    plugin: Plugin,
    /// How long an operation waits for an instance slot.
    wait: Option<Duration>,
    credentials: Option<Arc<CredentialProvider>>,
    /// Whether its instances keep the bytes their readers return
    /// ([`UNKNOWN`], [`STEADY`] or [`GROWS`]; see [`WasmReader`]).
    reads: Arc<AtomicU8>,
}

impl AdapterShared {
    /// Masks resolved secrets in a message that came from the guest.
    fn redact(&self, e: Error) -> Error {
        if self.redactor.is_empty() {
            return e;
        }
        e.map_message(|m| self.redactor.apply(&m))
    }
}

/// A backend served by a Wasm component.
#[derive(Clone)]
pub struct WasmAdapter {
    shared: Arc<AdapterShared>,
    /// Idle instances of this backend (only of it: never handed to another).
    pool: Arc<Pool<Instance>>,
    capabilities: Capabilities,
}

/// An instance not yet opened.
struct Fresh {
    store: Store<GuestState>,
    instance: wasmtime::component::Instance,
    bindings: AdapterExports,
    slot: tokio::sync::OwnedSemaphorePermit,
}

/// One live instance with its opened backend resource.
struct Instance {
    store: Store<GuestState>,
    /// The pool slot this instance occupies; released when it is dropped.
    _slot: tokio::sync::OwnedSemaphorePermit,
    instance: wasmtime::component::Instance,
    bindings: AdapterExports,
    /// The `reuse` export, when the component has it.
    reuse: Option<ReuseExports>,
    backend: ResourceAny,
    shared: Arc<AdapterShared>,
    /// Operations served so far.
    uses: u32,
    /// This backend's `pool.max` permit, when it has one.
    _backend_slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// The generation of the host-obtained credentials it was opened with
    /// (0: none): an instance whose credentials were since refreshed is
    /// not reused.
    credentials: u64,
}

impl WasmAdapter {
    /// Builds the backend: checks the grants, opens it once to validate its
    /// config and reads its capabilities.
    pub async fn new(runtime: &Runtime, plugin: &Plugin, spec: BackendSpec) -> Result<Self> {
        for d in &spec.grants.dirs {
            d.validate(&spec.name)?;
        }
        let name: Arc<str> = spec.name.into();
        let http = HttpGrant::new(
            name.clone(),
            spec.grants.http.clone(),
            runtime.http_client().clone(),
            spec.secrets.clone(),
        );
        let shared = Arc::new(AdapterShared {
            name,
            grants: spec.grants,
            limits: spec.limits,
            http,
            redactor: spec.secrets,
            config: spec.config,
            runtime: runtime.clone(),
            plugin: plugin.clone(),
            wait: spec.pool.wait,
            credentials: spec.credentials,
            reads: Arc::new(AtomicU8::new(UNKNOWN)),
        });
        let reaper_every = spec.pool.idle_timeout / 2;
        let pool = Arc::new(Pool::new(spec.pool));
        if plugin.is_reusable() && pool.config.idle > 0 {
            let weak: std::sync::Weak<Pool<Instance>> = Arc::downgrade(&pool);
            runtime.register_pool(weak.clone());
            spawn_reaper(weak, reaper_every);
        }
        let mut inst = Instance::new(&shared)
            .await
            .map_err(|e| e.at(&shared.name, "open", None))?;
        pool.created();
        inst._backend_slot = pool.limit.as_ref().and_then(|l| l.clone().try_acquire_owned().ok());
        let caps = inst
            .call("capabilities", None, |i| async move {
                i.bindings.backend().call_capabilities(&mut i.store, i.backend).await
            })
            .await?;
        let adapter = WasmAdapter {
            shared,
            pool,
            capabilities: caps_from_wit(caps),
        };
        // The instance that answered is the first warm one.
        adapter.release(inst, None);
        Ok(adapter)
    }

    /// The checks every listed page passes.
    fn check_page(&self, page: wit::Page, prefix: &str, limit: u32) -> Result<wit::Page> {
        if page.entries.len() > limit as usize {
            return Err(Error::adapter(format!(
                "returned {} entries for a page of at most {limit}",
                page.entries.len()
            ))
            .at(&self.shared.name, "list", Some(prefix)));
        }
        if page.entries.windows(2).any(|w| w[0].path >= w[1].path)
            || page.entries.iter().any(|e| !e.path.starts_with(prefix))
        {
            return Err(
                Error::adapter("returned a page that is unsorted or outside the prefix").at(
                    &self.shared.name,
                    "list",
                    Some(prefix),
                ),
            );
        }
        Ok(page)
    }

    /// Counters of this backend's warm instances.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// The plugin this backend runs.
    pub fn plugin(&self) -> &Plugin {
        &self.shared.plugin
    }

    /// Creates one instance and opens the backend in it, then drops it: the
    /// fixed cost every operation pays. Returns the time spent
    /// instantiating and the time spent in the adapter's `open`.
    pub async fn probe_instance(&self) -> Result<(Duration, Duration)> {
        let start = std::time::Instant::now();
        let fresh = Instance::instantiate(&self.shared).await?;
        let instantiated = start.elapsed();
        let instance = Instance::open(&self.shared, fresh).await?;
        let opened = start.elapsed() - instantiated;
        drop(instance); // returning the slot to the pool is not part of either
        Ok((instantiated, opened))
    }

    /// An instance for one operation: a warm one that passes `recycle`,
    /// else a fresh one.
    async fn instance(&self, op: &'static str, path: Option<&str>) -> Result<Instance> {
        let wait = self.shared.wait.unwrap_or_else(|| self.shared.runtime.instance_wait());
        let deadline = tokio::time::Instant::now() + wait;
        if let Some(inst) = self.warm().await {
            return Ok(inst);
        }
        let permit = match &self.pool.limit {
            None => None,
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    // In line for the next instance this backend
                    // finishes with, or a slot one leaves free.
                    let returned = self.pool.wait_for_returned();
                    tokio::select! {
                        p = limit.clone().acquire_owned() => Some(p.map_err(|_| Error::adapter("the pool is closed"))?),
                        Ok(inst) = returned => return Ok(self.reusing(inst)),
                        () = tokio::time::sleep_until(deadline) => {
                            return Err(Error::new(
                                ErrorKind::Transient,
                                format!(
                                    "all {} instances of this backend (pool.max) stayed in use for {wait:?} (raise pool.max or pool.wait)",
                                    self.pool.config.max.unwrap_or_default()
                                ),
                            )
                            .at(&self.shared.name, op, path));
                        }
                    }
                }
            },
        };
        let mut inst = Instance::new(&self.shared)
            .await
            .map_err(|e| e.at(&self.shared.name, op, path))?;
        self.pool.created();
        inst.uses = 1;
        inst._backend_slot = permit;
        Ok(inst)
    }

    /// An instance taken up again: one use more, counted.
    fn reusing(&self, mut inst: Instance) -> Instance {
        inst.uses += 1;
        self.pool.reused();
        inst
    }

    /// An idle instance that passes `recycle`, if there is one.
    async fn warm(&self) -> Option<Instance> {
        // Credentials about to expire are refreshed here, before an
        // instance opened with them is taken; an error is left for the
        // fresh instance's `open` to report.
        let generation = match &self.shared.credentials {
            None => 0,
            Some(p) => p.current().await.ok()?.0,
        };
        while let Some((mut inst, idle)) = self.pool.take() {
            let Some(reuse) = inst.reuse.clone() else {
                self.pool.discard(inst);
                continue;
            };
            if inst.credentials != generation {
                self.pool.discard(inst);
                continue;
            }
            let idle_ms = idle.as_millis().min(u64::MAX as u128) as u64;
            let backend = inst.backend;
            let checked = inst
                .call_wit("recycle", None, |i| async move {
                    reuse.call_recycle(&mut i.store, backend, idle_ms).await
                })
                .await;
            match checked {
                Ok(()) => return Some(self.reusing(inst)),
                Err(e) => {
                    tracing::debug!("{e}; opening a fresh instance");
                    self.pool.discard(inst);
                }
            }
        }
        None
    }

    /// Hands an instance back after its operation: kept for the next one
    /// when the component is reusable and the operation ended cleanly or
    /// with an answer about the object; dropped otherwise.
    fn release(&self, inst: Instance, error: Option<&Error>) {
        release(&self.pool, inst, error);
    }
}

fn release(pool: &Pool<Instance>, inst: Instance, error: Option<&Error>) {
    if inst.reuse.is_none() {
        drop(inst);
        return;
    }
    if let Some(p) = &inst.shared.credentials
        && p.generation() != inst.credentials
    {
        // Opened with credentials that have since been refreshed.
        pool.discard(inst);
        return;
    }
    match error.map(Error::kind) {
        Some(k) if !keeps_instance(k) => {
            if matches!(k, ErrorKind::Transient | ErrorKind::Unreachable) {
                // The storage may have dropped every connection (a
                // restart): the idle ones are likely as broken.
                pool.invalidate();
            }
            pool.discard(inst);
        }
        _ => {
            let room = inst.shared.runtime.room_for_idle();
            let uses = inst.uses;
            pool.put_back(inst, uses, room);
        }
    }
}

impl Instance {
    /// Bytes of linear memory this instance has grown to.
    fn held(&self) -> usize {
        self.store.data().limits.held()
    }

    fn store(shared: &Arc<AdapterShared>) -> Result<Store<GuestState>> {
        let state = GuestState::new(shared)?;
        let mut store = Store::new(shared.runtime.engine(), state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_callback(|mut ctx| {
            let left = &mut ctx.data_mut().cpu_ticks_left;
            if *left == 0 {
                return Err(wasmtime::format_err!("CPU time limit exceeded"));
            }
            *left -= 1;
            // Yield so a busy guest never starves the executor.
            Ok(UpdateDeadline::Yield(1))
        });
        arm(&mut store, &shared.limits);
        Ok(store)
    }

    async fn new(shared: &Arc<AdapterShared>) -> Result<Self> {
        let fresh = Self::instantiate(shared).await?;
        Self::open(shared, fresh).await
    }

    /// A pool slot, a store with the backend's grants and limits, and an
    /// instance in it.
    async fn instantiate(shared: &Arc<AdapterShared>) -> Result<Fresh> {
        let slot = shared.runtime.instance_slot(shared.wait).await?;
        let mut store = Self::store(shared)?;
        let instance = bounded(&shared.limits, shared.plugin.pre().instantiate_async(&mut store))
            .await
            .map_err(|e| shared.redact(Error::adapter(format!("instantiating: {e}"))))?;
        let bindings = shared
            .plugin
            .adapter_indices()
            .load(&mut store, &instance)
            .map_err(|e| Error::adapter(format!("instantiating: {e:#}")))?;
        Ok(Fresh {
            store,
            instance,
            bindings,
            slot,
        })
    }

    /// Calls the adapter's `open` with the backend's config.
    async fn open(shared: &Arc<AdapterShared>, fresh: Fresh) -> Result<Self> {
        let Fresh {
            mut store,
            instance,
            bindings,
            slot,
        } = fresh;
        arm(&mut store, &shared.limits);
        let log = store.data().log.clone();
        let (credentials, config) = match &shared.credentials {
            None => (0, std::borrow::Cow::Borrowed(&shared.config)),
            Some(provider) => {
                let (generation, creds) = provider
                    .current()
                    .await
                    .map_err(|e| shared.redact(e).at(&shared.name, "open", None))?;
                shared.redactor.add(&CredentialProvider::secrets(&creds));
                let mut config = shared.config.clone();
                for (key, value) in &creds.values {
                    match config.iter_mut().find(|(k, _)| k == key) {
                        Some(slot) => slot.1 = value.clone(),
                        None => config.push((key.clone(), value.clone())),
                    }
                }
                (generation, std::borrow::Cow::Owned(config))
            }
        };
        // Named as `open`: an adapter's `invalid` here is a config error.
        let backend = bounded(&shared.limits, bindings.call_open(&mut store, &config))
            .await
            .map_err(|e| {
                shared
                    .redact(Error::adapter(with_output(e, &log)))
                    .at(&shared.name, "open", None)
            })?
            .map_err(|e| shared.redact(from_wit(e)).at(&shared.name, "open", None))?;
        let reuse = match shared.plugin.reuse_indices() {
            Some(indices) => Some(
                indices
                    .load(&mut store, &instance)
                    .map_err(|e| Error::adapter(format!("loading `reuse`: {e:#}")))?,
            ),
            None => None,
        };
        Ok(Instance {
            store,
            _slot: slot,
            instance,
            bindings,
            reuse,
            backend,
            shared: shared.clone(),
            uses: 0,
            _backend_slot: None,
            credentials,
        })
    }

    /// Runs one guest call under the limits and maps traps and timeouts.
    async fn call<'a, T, F, Fut>(&'a mut self, op: &'static str, path: Option<&str>, f: F) -> Result<T>
    where
        F: FnOnce(&'a mut Instance) -> Fut,
        Fut: Future<Output = wasmtime::Result<T>> + 'a,
    {
        let shared = self.shared.clone();
        arm(&mut self.store, &shared.limits);
        let log = self.store.data().log.clone();
        bounded(&shared.limits, f(self)).await.map_err(|e| {
            shared
                .redact(Error::adapter(with_output(e, &log)))
                .at(&shared.name, op, path)
        })
    }
    /// [`Instance::call`] for contract functions returning `result<T, error>`:
    /// the adapter's error becomes a [`Error`] naming backend, operation, path.
    async fn call_wit<'a, T, F, Fut>(&'a mut self, op: &'static str, path: Option<&str>, f: F) -> Result<T>
    where
        F: FnOnce(&'a mut Instance) -> Fut,
        Fut: Future<Output = wasmtime::Result<std::result::Result<T, wit::Error>>> + 'a,
    {
        let shared = self.shared.clone();
        let started = std::time::Instant::now();
        self.call(op, path, f).await?.map_err(|e| {
            let mut e = from_wit(e);
            // A TLS check that failed in the host's relay reached the
            // adapter only as a closed connection: say what failed.
            if matches!(
                e.kind(),
                ErrorKind::Transient | ErrorKind::Unreachable | ErrorKind::Backend
            ) && let Some((kind, why)) = shared.grants.tcp.tls_failure_since(started)
            {
                e = Error::new(kind, why);
            }
            shared.redact(e).at(&shared.name, op, path)
        })
    }
}

/// Gives the next call its full CPU budget.
fn arm(store: &mut Store<GuestState>, limits: &Limits) {
    store.data_mut().cpu_ticks_left = (limits.cpu_time.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
    store.set_epoch_deadline(1);
}

/// Applies the wall-clock limit and turns a trap into a readable message.
async fn bounded<T>(limits: &Limits, fut: impl Future<Output = wasmtime::Result<T>>) -> std::result::Result<T, String> {
    match tokio::time::timeout(limits.call_timeout, fut).await {
        Err(_) => Err(format!(
            "the adapter did not answer within {:?} (call timeout)",
            limits.call_timeout
        )),
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(describe_trap(&e)),
    }
}

/// A trap's message with the instance's last stderr lines, which often say
/// why (a Python guest prints its exception there before trapping).
fn with_output(message: String, log: &crate::capabilities::GuestLog) -> String {
    let tail = log.tail();
    if tail.is_empty() || !message.starts_with("adapter trapped") {
        return message;
    }
    format!("{message}; its last stderr lines: {}", tail.join(" | "))
}

fn describe_trap(e: &wasmtime::Error) -> String {
    // The root cause says what happened; the top-level message is a wasm
    // backtrace that can run to hundreds of lines.
    let root = e.root_cause().to_string();
    let cause = root.lines().next().unwrap_or("unknown trap").trim();
    if cause.contains("CPU time limit") {
        "CPU time limit exceeded".to_string()
    } else if cause.contains("forcing trap when growing memory") || cause.contains("memory growth failure") {
        format!("memory limit exceeded ({cause})")
    } else {
        format!("adapter trapped: {cause}")
    }
}

pub(crate) fn from_wit(e: wit::Error) -> Error {
    let (kind, msg) = match e {
        wit::Error::NotFound(m) => (ErrorKind::NotFound, m),
        wit::Error::AlreadyExists(m) => (ErrorKind::AlreadyExists, m),
        wit::Error::PreconditionFailed(m) => (ErrorKind::PreconditionFailed, m),
        wit::Error::Denied(m) => (ErrorKind::Denied, m),
        wit::Error::Invalid(m) => (ErrorKind::Invalid, m),
        wit::Error::Unsupported(m) => (ErrorKind::Unsupported, m),
        wit::Error::Transient(m) => (ErrorKind::Transient, m),
        wit::Error::Unreachable(m) => (ErrorKind::Unreachable, m),
        wit::Error::Backend(m) => (ErrorKind::Backend, m),
    };
    // A guest controls this text: keep it to a sane size.
    let mut msg = msg;
    if msg.len() > 4096 {
        let mut cut = 4096;
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        msg.truncate(cut);
        msg.push('…');
    }
    Error::new(kind, msg)
}

fn caps_from_wit(c: wit::Capabilities) -> Capabilities {
    Capabilities {
        read_range: c.read_range,
        write_create: c.write_create,
        write_update: c.write_update,
        copy: c.copy,
        list_max_limit: c.list_max_limit.max(1),
        write_min_chunk: c.write_min_chunk,
        write_max_chunk: c.write_max_chunk.clamp(1, 256 << 20),
        max_object_size: c.max_object_size,
    }
}

fn meta_from_wit(m: wit::ObjectMeta) -> ObjectMeta {
    ObjectMeta {
        path: m.path,
        size: m.size,
        etag: m.etag,
        modified_ms: m.modified_ms,
        stored_size: None,
    }
}

fn mode_to_wit(m: &PutMode) -> wit::PutMode {
    match m {
        PutMode::Overwrite => wit::PutMode::Overwrite,
        PutMode::Create => wit::PutMode::Create,
        PutMode::Update(e) => wit::PutMode::Update(e.clone()),
    }
}

macro_rules! guest_call {
    ($self:ident, $op:literal, $path:expr, |$i:ident| $call:expr) => {{
        let path: Option<&str> = $path;
        let mut inst = $self.instance($op, path).await?;
        let r = inst.call_wit($op, path, |$i| async move { $call.await }).await;
        $self.release(inst, r.as_ref().err());
        r
    }};
}

#[async_trait]
impl Adapter for WasmAdapter {
    fn name(&self) -> &str {
        &self.shared.name
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    fn encodings(&self) -> Vec<Encoding> {
        Vec::new()
    }

    fn reopen_with(&self, key: &str, value: &str) -> Option<futures::future::BoxFuture<'static, Result<()>>> {
        let mut shared = AdapterShared::clone(&self.shared);
        shared.config.push((key.to_string(), value.to_string()));
        let shared = Arc::new(shared);
        Some(Box::pin(async move {
            let opened = Instance::new(&shared).await;
            opened.map(drop).map_err(|e| e.at(&shared.name, "open", None))
        }))
    }

    async fn stat(&self, path: &ObjectPath) -> Result<ObjectMeta> {
        let p = path.as_str();
        let m = guest_call!(self, "stat", Some(p), |i| async move {
            i.bindings.backend().call_stat(&mut i.store, i.backend, p).await
        })?;
        Ok(meta_from_wit(m))
    }

    async fn exists(&self, path: &ObjectPath) -> Result<bool> {
        let p = path.as_str();
        guest_call!(self, "exists", Some(p), |i| async move {
            i.bindings.backend().call_exists(&mut i.store, i.backend, p).await
        })
    }

    async fn delete(&self, path: &ObjectPath) -> Result<()> {
        let p = path.as_str();
        guest_call!(self, "delete", Some(p), |i| async move {
            i.bindings.backend().call_delete(&mut i.store, i.backend, p).await
        })
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<ListPage> {
        check_prefix(prefix).map_err(|e| e.at(&self.shared.name, "list", Some(prefix)))?;
        let limit = limit.clamp(1, self.capabilities.list_max_limit);
        let mut inst = self.instance("list", Some(prefix)).await?;
        let page = inst
            .call_wit("list", Some(prefix), |i| async move {
                i.bindings
                    .backend()
                    .call_list(&mut i.store, i.backend, prefix, cursor, limit)
                    .await
            })
            .await
            .and_then(|page| self.check_page(page, prefix, limit));
        // A page the host rejected is an `adapter` error: the instance goes.
        self.release(inst, page.as_ref().err());
        let page = page?;
        Ok(ListPage {
            entries: page.entries.into_iter().map(meta_from_wit).collect(),
            next_cursor: page.next_cursor,
        })
    }

    async fn copy(&self, from: &ObjectPath, to: &ObjectPath, mode: PutMode) -> Result<ObjectMeta> {
        let (f, t, m) = (from.as_str(), to.as_str(), mode_to_wit(&mode));
        let meta = guest_call!(self, "copy", Some(f), |i| async move {
            i.bindings.backend().call_copy(&mut i.store, i.backend, f, t, &m).await
        })?;
        Ok(meta_from_wit(meta))
    }

    async fn health(&self) -> Result<String> {
        guest_call!(self, "health", None, |i| async move {
            i.bindings.backend().call_health(&mut i.store, i.backend).await
        })
    }

    async fn read(&self, path: &ObjectPath, range: Option<ByteRange>) -> Result<Box<dyn ObjectReader>> {
        let p = path.as_str();
        let mut inst = self.instance("read", Some(p)).await?;
        // A backend whose instances keep what their readers return is read
        // in segments, each pinned to the version `stat` gave first.
        let reads = self.shared.reads.load(Ordering::Relaxed);
        let segmented = reads == GROWS && self.capabilities.read_range;
        let pin = if segmented {
            match Version::stat(&mut inst, p).await {
                Ok(v) => Some(v),
                Err(e) => {
                    self.release(inst, Some(&e));
                    return Err(e);
                }
            }
        } else {
            None
        };
        let (start, end) = range.map_or((0, None), |r| (r.start, r.end));
        let reader = match open_reader(&mut inst, p, start, end).await {
            Ok(r) => r,
            Err(e) => {
                self.release(inst, Some(&e));
                return Err(e);
            }
        };
        let held_at_open = inst.held();
        Ok(Box::new(WasmReader {
            inst: Some(inst),
            adapter: self.clone(),
            reader,
            path: p.to_string(),
            start,
            end,
            returned: 0,
            held_at_open,
            track: match pin {
                Some(v) => Track::Pinned(v),
                None if reads == STEADY => Track::Off,
                None => Track::Probing(Sha256::new()),
            },
            reread: None,
        }))
    }

    async fn list_pending(&self, prefix: &str, cursor: Option<&str>, limit: u32) -> Result<PendingPage> {
        let op = "list_pending";
        check_prefix(prefix).map_err(|e| e.at(&self.shared.name, op, Some(prefix)))?;
        let limit = limit.clamp(1, PENDING_PAGE_MAX);
        let (mut inst, m) = self.maintenance(op, prefix).await?;
        let page = inst
            .call_wit(op, Some(prefix), |i| async move {
                m.call_list_pending(&mut i.store, i.backend, prefix, cursor, limit)
                    .await
            })
            .await?;
        if page.entries.len() > limit as usize || page.entries.iter().any(|e| !e.path.starts_with(prefix)) {
            return Err(Error::adapter(format!(
                "returned {} pending uploads for a page of at most {limit}, or one outside the prefix",
                page.entries.len()
            ))
            .at(&self.shared.name, op, Some(prefix)));
        }
        Ok(PendingPage {
            entries: page.entries.into_iter().map(pending_from_wit).collect(),
            next_cursor: page.next_cursor,
        })
    }

    async fn abort_pending(&self, upload: &PendingUpload) -> Result<()> {
        let op = "abort_pending";
        let (p, id) = (upload.path.as_str(), upload.upload_id.as_str());
        let (mut inst, m) = self.maintenance(op, p).await?;
        inst.call_wit(op, Some(p), |i| async move {
            m.call_abort_pending(&mut i.store, i.backend, p, id).await
        })
        .await
    }

    async fn write(&self, path: &ObjectPath, mode: PutMode, size_hint: Option<u64>) -> Result<Box<dyn ObjectWriter>> {
        let p = path.as_str();
        let m = mode_to_wit(&mode);
        let mut inst = self.instance("write", Some(p)).await?;
        let writer = inst
            .call_wit("write", Some(p), |i| async move {
                i.bindings
                    .backend()
                    .call_write(&mut i.store, i.backend, p, &m, size_hint)
                    .await
            })
            .await;
        let writer = match writer {
            Ok(w) => w,
            Err(e) => {
                self.release(inst, Some(&e));
                return Err(e);
            }
        };
        Ok(Box::new(WasmWriter {
            inst: Some(inst),
            pool: self.pool.clone(),
            writer,
            path: p.to_string(),
            pending: BytesMut::new(),
            min_chunk: self.capabilities.write_min_chunk as usize,
            max_chunk: self.capabilities.write_max_chunk as usize,
        }))
    }
}

impl WasmAdapter {
    /// A fresh instance and the component's `maintenance` export in it;
    /// `unsupported` for a component built without that interface.
    async fn maintenance(&self, op: &'static str, path: &str) -> Result<(Instance, MaintenanceExports)> {
        let name = &self.shared.name;
        let Some(indices) = self.shared.plugin.maintenance_indices() else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "the adapter does not export `{MAINTENANCE_EXPORT}`, so it cannot list or abort pending uploads"
                ),
            )
            .at(name, op, Some(path)));
        };
        let mut inst = self.instance(op, Some(path)).await?;
        let exports = indices
            .load(&mut inst.store, &inst.instance)
            .map_err(|e| Error::adapter(format!("loading `{MAINTENANCE_EXPORT}`: {e:#}")).at(name, op, Some(path)))?;
        Ok((inst, exports))
    }
}

/// The most pending uploads the host asks for in one page.
const PENDING_PAGE_MAX: u32 = 1000;

fn pending_from_wit(p: WitPendingUpload) -> PendingUpload {
    PendingUpload {
        path: p.path,
        upload_id: p.upload_id,
        started_ms: p.started_ms,
        staged_bytes: p.staged_bytes,
    }
}

/// Bytes a reader returns before the host checks whether its instance
/// keeps them (see [`WasmReader`]).
const PROBE: u64 = 16 << 20;
/// Room a pinned segment leaves below the memory limit, besides two chunks.
const SLACK: usize = 16 << 20;
/// Not yet known whether a backend's instances keep what readers return.
const UNKNOWN: u8 = 0;
/// They do not: reads are neither probed nor segmented.
const STEADY: u8 = 1;
/// They do: reads are pinned and segmented.
const GROWS: u8 = 2;

/// What identifies one version of an object: the answer of `stat`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Version {
    etag: Option<String>,
    size: u64,
    modified_ms: Option<u64>,
}

impl Version {
    /// `stat` of `path` in `inst`. A version needs an etag or a
    /// modification time: size alone cannot tell two versions apart.
    async fn stat(inst: &mut Instance, path: &str) -> Result<Version> {
        let m = inst
            .call_wit("read", Some(path), |i| async move {
                i.bindings.backend().call_stat(&mut i.store, i.backend, path).await
            })
            .await?;
        if m.etag.is_none() && m.modified_ms.is_none() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "this adapter's instances keep the bytes their readers return, so a large object is read in segments, \
                 which needs `stat` to give an etag or a modification time to keep them to one version; it gives neither",
            )
            .at(&inst.shared.name, "read", Some(path)));
        }
        Ok(Version {
            etag: m.etag,
            size: m.size,
            modified_ms: m.modified_ms,
        })
    }
}

/// How a reader keeps to one version of the object across instances.
enum Track {
    /// Not known to need segments: what it returns is hashed until
    /// [`PROBE`] bytes, when the instance's growth decides.
    Probing(Sha256),
    /// The instance does not grow with what it returns: one segment.
    Off,
    /// Pinned: every segment opened after this `stat` and was followed by
    /// one that gave the same version, so all read that version.
    Pinned(Version),
}

/// An object being read from a component.
///
/// Some guest toolchains never free the bytes an exported function returns
/// (componentize-py 0.25.1: see the Python example's README), so an
/// instance grows by everything its reader hands over and a large object
/// would hit the memory limit. The host notices: when an instance grew by
/// at least half of the first [`PROBE`] bytes its reader returned, the
/// backend is marked, and its reads go on in segments. Each segment is a
/// ranged read in a fresh instance that starts where the last one stopped
/// and ends before the memory limit. Segments are kept to one version: the
/// first pinned segment `stat`s before it opens, every later one `stat`s
/// after it opened, and all must give the same version, or the read fails
/// (`precondition-failed`). The segment opened when the growth is noticed
/// reads the probed bytes again and compares their sha256 with what was
/// already returned. Later reads of a marked backend are pinned from the
/// start; once a read of a few MiB did not grow its instance, later reads
/// of that backend are neither probed nor hashed. A component without
/// `read_range` is read in one segment.
struct WasmReader {
    /// `None` once the end was reached (the instance went back to the pool),
    /// the reader broke (the instance was dropped), or a new segment is due.
    inst: Option<Instance>,
    adapter: WasmAdapter,
    reader: ResourceAny,
    path: String,
    /// The range asked for.
    start: u64,
    end: Option<u64>,
    /// Bytes returned to the caller so far.
    returned: u64,
    /// What the instance's memory held when its reader opened.
    held_at_open: usize,
    track: Track,
    /// Set when segments begin: the sha256 of the first `n` bytes returned,
    /// which the next segment reads again and compares.
    reread: Option<([u8; 32], u64)>,
}

impl WasmReader {
    /// At the end of the object: drops the guest's reader, then hands the
    /// instance back for another operation.
    async fn finish(&mut self, mut inst: Instance) -> Result<()> {
        let reader = self.reader;
        let path = self.path.clone();
        let dropped = inst
            .call("read", Some(&path), |i| async move {
                reader.resource_drop_async(&mut i.store).await
            })
            .await;
        release(&self.adapter.pool, inst, dropped.as_ref().err());
        dropped
    }

    fn changed(&self, why: String) -> Error {
        Error::new(
            ErrorKind::PreconditionFailed,
            format!("the object changed while it was read in segments ({why}); read it again"),
        )
        .at(&self.adapter.shared.name, "read", Some(&self.path))
    }

    /// Opens the next segment in a fresh instance (see [`WasmReader`]).
    async fn next_segment(&mut self) -> Result<()> {
        let a = self.adapter.clone();
        let path = self.path.clone();
        let mut inst = a.instance("read", Some(&path)).await?;
        let first = !matches!(self.track, Track::Pinned(_));
        if first {
            let v = Version::stat(&mut inst, &path).await?;
            self.track = Track::Pinned(v);
        }
        let from = match self.reread {
            Some(_) => self.start,
            None => self.start + self.returned,
        };
        self.reader = open_reader(&mut inst, &path, from, self.end).await?;
        if !first {
            let now = Version::stat(&mut inst, &path).await?;
            if let Track::Pinned(pin) = &self.track
                && *pin != now
            {
                return Err(self.changed(format!("was {pin:?}, now {now:?}")));
            }
        }
        if let Some((want, n)) = self.reread.take() {
            let mut h = Sha256::new();
            let mut left = n;
            let reader = self.reader;
            while left > 0 {
                let max = left.min(1 << 20) as u32;
                let chunk = inst
                    .call_wit("read", Some(&path), |i| async move {
                        i.bindings.reader().call_next(&mut i.store, reader, max).await
                    })
                    .await?;
                if chunk.is_empty() || chunk.len() > max as usize {
                    return Err(self.changed(format!("{} bytes now where {n} were read", n - left)));
                }
                h.update(&chunk);
                left -= chunk.len() as u64;
            }
            if <[u8; 32]>::from(h.finalize()) != want {
                return Err(self.changed(format!("its first {n} bytes differ")));
            }
        }
        self.held_at_open = inst.held();
        self.inst = Some(inst);
        Ok(())
    }
}

#[async_trait]
impl ObjectReader for WasmReader {
    async fn next_chunk(&mut self, max: usize) -> Result<Option<Bytes>> {
        if self.inst.is_none() {
            if self.reread.is_none() && !self.due() {
                return Ok(None);
            }
            self.next_segment().await?;
        }
        // Taken out while in use: a call cut short (a timeout, a dropped
        // future) drops the instance with it, never reuses it.
        let Some(mut inst) = self.inst.take() else {
            return Ok(None);
        };
        let max32 = max.clamp(1, u32::MAX as usize) as u32;
        let reader = self.reader;
        let path = self.path.clone();
        // Any failure mid-stream drops the instance: the guest's reader is
        // still open in it.
        let chunk = inst
            .call_wit("read", Some(&path), |i| async move {
                i.bindings.reader().call_next(&mut i.store, reader, max32).await
            })
            .await?;
        if chunk.len() > max32 as usize {
            return Err(Error::adapter(format!(
                "returned {} bytes when at most {max32} were asked for",
                chunk.len()
            ))
            .at(&inst.shared.name, "read", Some(&path)));
        }
        if chunk.is_empty() {
            // A read of a few MiB that ended without growing its instance
            // by half of them settles it: later reads are not probed.
            if matches!(self.track, Track::Probing(_)) && self.returned >= PROBE / 4 && !self.grew(&inst) {
                self.adapter.shared.reads.store(STEADY, Ordering::Relaxed);
            }
            self.track = Track::Off;
            self.finish(inst).await?;
            return Ok(None);
        }
        self.returned += chunk.len() as u64;
        let limit = inst.shared.limits.memory;
        let grew = self.grew(&inst);
        match &mut self.track {
            Track::Off => self.inst = Some(inst),
            Track::Probing(h) => {
                h.update(&chunk);
                if self.returned < PROBE {
                    self.inst = Some(inst);
                } else if grew && self.adapter.capabilities.read_range {
                    tracing::debug!(
                        backend = %inst.shared.name,
                        "instances keep what their readers return: reading in segments"
                    );
                    self.adapter.shared.reads.store(GROWS, Ordering::Relaxed);
                    let digest = std::mem::replace(h, Sha256::new()).finalize().into();
                    self.reread = Some((digest, self.returned));
                    self.adapter.pool.discard(inst);
                } else {
                    if !grew {
                        self.adapter.shared.reads.store(STEADY, Ordering::Relaxed);
                    }
                    self.track = Track::Off;
                    self.inst = Some(inst);
                }
            }
            Track::Pinned(_) => {
                if inst.held() + 2 * max + SLACK > limit {
                    self.adapter.pool.discard(inst);
                } else {
                    self.inst = Some(inst);
                }
            }
        }
        Ok(Some(Bytes::from(chunk)))
    }
}

impl WasmReader {
    /// A pinned reader whose instance was let go before the end.
    fn due(&self) -> bool {
        matches!(self.track, Track::Pinned(_))
    }

    /// The instance grew by at least half of what its reader returned.
    fn grew(&self, inst: &Instance) -> bool {
        inst.held().saturating_sub(self.held_at_open) as u64 >= self.returned / 2
    }
}

/// Opens a guest reader on `path` from `start` (to `end`).
async fn open_reader(inst: &mut Instance, path: &str, start: u64, end: Option<u64>) -> Result<ResourceAny> {
    let r = (start > 0 || end.is_some()).then_some(wit::ByteRange { start, end });
    inst.call_wit("read", Some(path), |i| async move {
        i.bindings.backend().call_read(&mut i.store, i.backend, path, r).await
    })
    .await
}

struct WasmWriter {
    /// `None` while a call is in flight (a call cut short drops the
    /// instance with it), and once finished, aborted or broken.
    inst: Option<Instance>,
    pool: Arc<Pool<Instance>>,
    writer: ResourceAny,
    path: String,
    /// Bytes held back until they make a chunk of at least `min_chunk`.
    pending: BytesMut,
    min_chunk: usize,
    max_chunk: usize,
}

impl WasmWriter {
    async fn send(&mut self, chunk: &[u8]) -> Result<()> {
        let writer = self.writer;
        let path = self.path.clone();
        let Some(mut inst) = self.inst.take() else {
            return Err(Error::invalid("the writer already failed, finished or aborted"));
        };
        let r = inst
            .call_wit("write", Some(&path), |i| async move {
                i.bindings.writer().call_append(&mut i.store, writer, chunk).await
            })
            .await;
        match &r {
            Ok(()) => self.inst = Some(inst),
            // The instance trapped or hit a limit: it is gone.
            Err(e) if e.kind() == ErrorKind::Adapter => drop(inst),
            Err(_) => {
                self.inst = Some(inst);
                self.abort_in_background();
            }
        }
        r
    }

    /// A writer dropped or failed without `finish` asks the adapter to
    /// discard its data, without making the caller wait. The instance is
    /// dropped after.
    fn abort_in_background(&mut self) {
        let Some(mut inst) = self.inst.take() else { return };
        let writer = self.writer;
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = inst
                    .call("abort", None, |i| async move {
                        i.bindings.writer().call_abort(&mut i.store, writer).await
                    })
                    .await;
            });
        }
    }

    /// After `finish` or `abort` answered: drops the guest's writer and
    /// hands the instance back, kept or not by what `outcome` was.
    async fn done(&mut self, mut inst: Instance, outcome: Option<&Error>) {
        let pool = self.pool.clone();
        if outcome.is_some_and(|e| !keeps_instance(e.kind())) {
            pool.discard(inst);
            return;
        }
        let writer = self.writer;
        let path = self.path.clone();
        let dropped = inst
            .call("write", Some(&path), |i| async move {
                writer.resource_drop_async(&mut i.store).await
            })
            .await;
        match dropped {
            Ok(()) => release(&pool, inst, outcome),
            Err(e) => release(&pool, inst, Some(&e)),
        }
    }
}

impl Drop for WasmWriter {
    fn drop(&mut self) {
        self.abort_in_background();
    }
}

#[async_trait]
impl ObjectWriter for WasmWriter {
    async fn append(&mut self, chunk: Bytes) -> Result<()> {
        if self.pending.is_empty() && chunk.len() >= self.min_chunk && chunk.len() <= self.max_chunk {
            return self.send(&chunk).await;
        }
        self.pending.extend_from_slice(&chunk);
        // Every piece sent but the last is within [min_chunk, max_chunk].
        while self.pending.len() >= self.min_chunk.max(1) {
            let n = self.pending.len().min(self.max_chunk);
            let piece = self.pending.split_to(n).freeze();
            self.send(&piece).await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<ObjectMeta> {
        while !self.pending.is_empty() {
            let n = self.pending.len().min(self.max_chunk);
            let piece = self.pending.split_to(n).freeze();
            self.send(&piece).await?;
        }
        let writer = self.writer;
        let path = self.path.clone();
        let Some(mut inst) = self.inst.take() else {
            return Err(Error::invalid("the writer already failed, finished or aborted"));
        };
        let meta = inst
            .call_wit("write", Some(&path), |i| async move {
                i.bindings.writer().call_finish(&mut i.store, writer).await
            })
            .await;
        self.done(inst, meta.as_ref().err()).await;
        Ok(meta_from_wit(meta?))
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        let writer = self.writer;
        let path = self.path.clone();
        let Some(mut inst) = self.inst.take() else {
            return Ok(());
        };
        let r = inst
            .call_wit("abort", Some(&path), |i| async move {
                i.bindings.writer().call_abort(&mut i.store, writer).await
            })
            .await;
        self.done(inst, r.as_ref().err()).await;
        r
    }
}
