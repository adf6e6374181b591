//! wharf stores machine-learning model artifacts in any storage through
//! storage adapters that are sandboxed WebAssembly components.
//!
//! - [`Host`] loads adapters by backend name from built-ins and a plugin
//!   directory, each with only the I/O its configuration grants.
//! - [`Adapter`] is the contract as an async trait; [`WasmAdapter`] runs it
//!   on a component, an instance per operation: fresh, or a warm one of the
//!   same backend when the component exports `reuse`.
//! - [`StorageService`] saves and loads models on top, streamed and
//!   verified by sha256, described by [`ModelStorageInfo`].
//! - `object_store::WharfStore` (cargo feature `object-store`) is any
//!   backend as an `object_store::ObjectStore`, for the Rust data ecosystem.
#![deny(missing_docs)]

mod adapter;
pub mod capabilities;
pub mod config;
pub mod conformance;
pub mod credentials;
pub mod detect;
mod error;
pub mod gc;
mod host;
pub mod layers;
mod memory;
pub mod model;
#[cfg(feature = "object-store")]
pub mod object_store;
pub mod ownership;
mod path;
pub mod plugins;
pub mod registry;
pub mod runtime;
pub mod service;
pub mod transaction;
pub mod trust;
pub mod url;

pub use adapter::{
    Adapter, ByteRange, Capabilities, Encoding, ListPage, ObjectMeta, ObjectReader, ObjectWriter, PendingPage,
    PendingUpload, PutMode,
};
pub use config::Config;
pub use error::{Error, ErrorKind, Result};
pub use gc::{GcItem, GcOptions, GcReport};
pub use host::Host;
pub use memory::InMemory;
pub use model::{ModelStorageInfo, SerializationFormat, StorageBackend, StoredFile};
pub use path::ObjectPath;
pub use registry::{Reference, VersionEntry};
pub use runtime::{BackendSpec, Limits, Plugin, PoolConfig, PoolStats, Runtime, RuntimeConfig, WasmAdapter};
pub use service::{Expected, LoadOptions, ObjectTransfer, ParallelReads, SaveOptions, StorageService};
pub use transaction::Transaction;
