//! Host bindings of the contract, generated from `wit/`.
//!
//! Generated for the `complete-storage-adapter` world, but the world's own
//! `*Pre` is not used: it would refuse a component without the optional
//! `maintenance` and `reuse` exports. [`crate::runtime::Plugin`] keeps the
//! indices of each exported interface instead, the optional ones only when
//! the component has them.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "complete-storage-adapter",
    exports: { default: async },
});

pub(crate) use exports::wharf::storage::adapter::{Guest as AdapterExports, GuestIndices as AdapterIndices};
pub(crate) use exports::wharf::storage::maintenance::{
    Guest as MaintenanceExports, GuestIndices as MaintenanceIndices, PendingUpload as WitPendingUpload,
};

/// The export name of the contract this host speaks, e.g.
/// `wharf:storage/adapter@0.2.0`.
pub const CONTRACT_EXPORT: &str = "wharf:storage/adapter@0.2.0";
/// The export name of the optional interface for what interrupted writes
/// left behind.
pub const MAINTENANCE_EXPORT: &str = "wharf:storage/maintenance@0.2.0";
pub(crate) use exports::wharf::storage::reuse::{Guest as ReuseExports, GuestIndices as ReuseIndices};

/// The export name of the optional interface that lets the host keep and
/// reuse opened backends.
pub const REUSE_EXPORT: &str = "wharf:storage/reuse@0.2.0";
/// The contract version this host speaks.
pub const CONTRACT_VERSION: &str = "0.2.0";
