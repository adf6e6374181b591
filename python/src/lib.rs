//! `wharf._native`: the extension module under the `wharf` Python package.
//! The Python modules beside it (`python/wharf/`) give it its public shape:
//! the platform's enums and `ModelStorageInfo`, `StorageService`,
//! `AsyncStorageService`, the exceptions, the fsspec filesystem.

mod errors;
mod runtime;
mod service;
mod stream;
mod transaction;

use pyo3::prelude::*;

/// The values of Rust's `SerializationFormat::ALL`, which the Python enum
/// must match (a test compares them).
#[pyfunction]
fn formats() -> Vec<&'static str> {
    wharf::SerializationFormat::ALL.iter().map(|f| f.as_str()).collect()
}

/// The well-known backend kinds, `StorageBackend::WELL_KNOWN`.
#[pyfunction]
fn backends() -> Vec<&'static str> {
    wharf::StorageBackend::WELL_KNOWN.to_vec()
}

/// The exception class name of each error kind (for the tests).
#[pyfunction]
fn error_classes() -> Vec<(&'static str, &'static str)> {
    use wharf::ErrorKind::*;
    [
        NotFound,
        AlreadyExists,
        PreconditionFailed,
        Denied,
        Invalid,
        Unsupported,
        Transient,
        Unreachable,
        Backend,
        Adapter,
        Integrity,
        Config,
        Io,
    ]
    .into_iter()
    .map(|k| (k.as_str(), errors::class_name(k)))
    .collect()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<service::Service>()?;
    m.add_class::<stream::Reader>()?;
    m.add_class::<stream::Writer>()?;
    m.add_class::<runtime::Pending>()?;
    m.add_class::<transaction::Tx>()?;
    m.add_function(wrap_pyfunction!(formats, m)?)?;
    m.add_function(wrap_pyfunction!(backends, m)?)?;
    m.add_function(wrap_pyfunction!(error_classes, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
