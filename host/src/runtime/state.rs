//! The state of one instance's store: WASI with exactly the backend's
//! grants, wasi:http with its allowlist, and its resource limits.

use super::wasm_adapter::AdapterShared;
use crate::capabilities::{GuestLog, HttpGrant, TcpGrant};
use crate::error::{Error, Result};
use wasmtime::StoreLimits;
use wasmtime::StoreLimitsBuilder;
use wasmtime::component::ResourceTable;
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
    pub(crate) limits: StoreLimits,
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
        b.stdout(log.clone()).stderr(log);
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
        Ok(GuestState {
            wasi: b.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: shared.http.clone(),
            tcp: shared.grants.tcp.clone(),
            backend: shared.name.clone(),
            limits,
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
