//! `wharf::Error` as the exceptions of `wharf.errors` (defined in Python,
//! where each can also be the built-in people catch: `NotFound` is a
//! `FileNotFoundError`, ...). The message is the CLI's.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use wharf::ErrorKind;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// The class of `wharf.errors` for a kind.
pub fn class_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "NotFound",
        ErrorKind::AlreadyExists => "AlreadyExists",
        ErrorKind::PreconditionFailed => "PreconditionFailed",
        ErrorKind::Denied => "Denied",
        ErrorKind::Invalid => "InvalidInput",
        ErrorKind::Unsupported => "Unsupported",
        ErrorKind::Transient | ErrorKind::Unreachable => "Transient",
        ErrorKind::Integrity => "IntegrityError",
        ErrorKind::Config => "ConfigError",
        _ => "WharfError",
    }
}

/// The Python exception for `e`, with `kind`, `backend`, `operation` and
/// `path` attributes.
pub fn to_py(e: wharf::Error) -> PyErr {
    Python::attach(|py| match build(py, &e) {
        Ok(err) => err,
        Err(failed) => PyRuntimeError::new_err(format!("{e} (and wharf.errors failed: {failed})")),
    })
}

fn build(py: Python<'_>, e: &wharf::Error) -> PyResult<PyErr> {
    let module = ERRORS.get_or_try_init(py, || py.import("wharf.errors").map(Bound::unbind))?;
    let class = module.bind(py).getattr(class_name(e.kind()))?;
    let value = class.call1((e.to_string(),))?;
    value.setattr("kind", e.kind().as_str())?;
    value.setattr("backend", e.backend())?;
    value.setattr("operation", e.operation())?;
    value.setattr("path", e.path())?;
    Ok(PyErr::from_value(value))
}
