//! The state of one instance's store: WASI with exactly the backend's
//! grants, wasi:http with its allowlist, and its resource limits.

use super::wasm_adapter::AdapterShared;
use super::{MemoryBudget, Runtime};
use crate::capabilities::{GuestLog, HttpGrant, TcpGrant};
use crate::error::{Error, Result};
use std::sync::Arc;
use wasmtime::StoreLimitsBuilder;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub(crate) struct GuestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: HttpGrant,
    /// For the name-lookup check (see `Runtime::new`).
    pub(crate) tcp: TcpGrant,
    pub(crate) backend: std::sync::Arc<str>,
    pub(crate) limits: Limiter,
    /// The instance's stderr (its last lines go into trap errors).
    pub(crate) log: GuestLog,
    /// Epoch ticks this call may still run for (its CPU budget).
    pub(crate) cpu_ticks_left: u64,
}

impl GuestState {
    pub(crate) fn new(shared: &AdapterShared) -> Result<Self> {
        let mut b = WasiCtxBuilder::new();
        // Run filesystem calls on the calling thread: a hop to tokio's
        // blocking pool costs more than a small read or a stat (measured in
        // BENCHMARKS.md), and large transfers move 4 MiB per call anyway.
        b.allow_blocking_current_thread(true);
        // No env, no args, no stdin; output goes to the log.
        let log = GuestLog::new(shared.name.clone(), shared.redactor.clone());
        b.stdout(log.stdout()).stderr(log.clone());
        for dir in &shared.grants.dirs {
            let perms = if dir.read_only {
                FsPerms::ReadOnly
            } else {
                FsPerms::ReadWrite
            };
            b.preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(|e| Error::config(format!("granting `{}` as `{}`: {e:#}", dir.host.display(), dir.guest)))?;
        }
        let tcp = shared.grants.tcp.clone();
        b.allow_udp(false)
            .allow_tcp(!tcp.is_empty())
            .allow_ip_name_lookup(!tcp.is_empty());
        b.socket_addr_check(move |addr, use_| {
            let ok = tcp.permits(addr, use_);
            Box::pin(async move { ok })
        });
        let limits = StoreLimitsBuilder::new()
            .memory_size(shared.limits.memory)
            .memories(4)
            .tables(16)
            .instances(16)
            .table_elements(1 << 20)
            .trap_on_grow_failure(true)
            .build();
        let limits = Limiter {
            store: limits,
            budget: shared.runtime.memory_budget().clone(),
            runtime: shared.runtime.clone(),
            held: 0,
        };
        Ok(GuestState {
            wasi: b.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: shared.http.clone(),
            tcp: shared.grants.tcp.clone(),
            backend: shared.name.clone(),
            limits,
            log,
            cpu_ticks_left: 0,
        })
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// The store's own limits, and the host-wide memory budget all stores share.
pub(crate) struct Limiter {
    store: StoreLimits,
    budget: Arc<MemoryBudget>,
    /// To drop idle instances when the budget runs short.
    runtime: Runtime,
    /// Bytes of the budget this store holds, given back when it is dropped.
    held: usize,
}

impl Limiter {
    /// Bytes of memory the store grew to (what it holds of the budget).
    pub(crate) fn held(&self) -> usize {
        self.held
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if !self.store.memory_growing(current, desired, maximum)? {
            return Ok(false);
        }
        let more = desired.saturating_sub(current);
        loop {
            if self.budget.try_take(more) {
                self.held += more;
                return Ok(true);
            }
            // Idle instances hold memory no operation uses: drop them first.
            if !self.runtime.evict_idle() {
                return Err(wasmtime::format_err!(
                    "host memory budget exceeded: live instances hold {} bytes of runtime.memory_budget",
                    self.budget.used()
                ));
            }
        }
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.store.memory_grow_failed(error)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.store.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.store.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.store.instances()
    }

    fn tables(&self) -> usize {
        self.store.tables()
    }

    fn memories(&self) -> usize {
        self.store.memories()
    }
}

impl Drop for Limiter {
    fn drop(&mut self) {
        self.budget.give_back(self.held);
    }
}
