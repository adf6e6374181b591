//! Host bindings of the contract, generated from `wit/`.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "storage-adapter",
    exports: { default: async },
});

/// The export name of the contract this host speaks, e.g.
/// `wharf:storage/adapter@0.2.0`.
pub const CONTRACT_EXPORT: &str = "wharf:storage/adapter@0.2.0";
/// The contract version this host speaks.
pub const CONTRACT_VERSION: &str = "0.2.0";
