//! One tokio runtime per process, rebuilt in a child after `fork` (the
//! parent's worker threads do not exist there), and the two ways Python
//! waits for an operation: blocking with the GIL released, or a callback
//! from the runtime when it is done (what the asyncio service awaits).

use crate::errors::to_py;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Runtime;

static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);

/// The process's runtime; a new one in a forked child.
pub fn runtime() -> Arc<Runtime> {
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    let pid = std::process::id();
    match &*slot {
        Some((owner, rt)) if *owner == pid => rt.clone(),
        _ => {
            // The parent's runtime: its threads are not in this process, so
            // dropping it would wait for them forever.
            if let Some(old) = slot.take() {
                std::mem::forget(old);
            }
            let rt = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .thread_name("wharf")
                    .enable_all()
                    .build()
                    .expect("the tokio runtime starts"),
            );
            *slot = Some((pid, rt.clone()));
            rt
        }
    }
}

/// What an operation hands back to Python.
pub enum Out {
    None,
    Bool(bool),
    Str(String),
    Bytes(Vec<u8>),
    /// One page of a listing: `(path, size, etag, modified_ms)` rows and
    /// the cursor of the next page.
    Page(Vec<wharf::ObjectMeta>, Option<String>),
    /// A transaction just started.
    Tx(Box<crate::transaction::Tx>),
}

impl Out {
    fn into_py(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match self {
            Out::None => py.None(),
            Out::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
            Out::Str(s) => s.into_pyobject(py)?.into_any().unbind(),
            Out::Bytes(b) => PyBytes::new(py, &b).into_any().unbind(),
            Out::Page(entries, next) => {
                let rows = PyList::empty(py);
                for e in entries {
                    rows.append((e.path, e.size, e.etag, e.modified_ms))?;
                }
                PyTuple::new(py, [rows.into_any(), next.into_pyobject(py)?.into_any()])?
                    .into_any()
                    .unbind()
            }
            Out::Tx(tx) => Bound::new(py, *tx)?.into_any().unbind(),
        })
    }
}

/// Runs `op` to completion. Without `done`: here, with the GIL released
/// (Ctrl-C still interrupts it: the operation is dropped, which discards
/// an unfinished write). With `done`: on the runtime, returning at once;
/// `done(value, error)` is called when it ends, from a runtime thread, and
/// the returned [`Pending`] can cancel it.
pub fn run<F>(py: Python<'_>, done: Option<Py<PyAny>>, op: F) -> PyResult<Py<PyAny>>
where
    F: Future<Output = wharf::Result<Out>> + Send + 'static,
{
    let rt = runtime();
    match done {
        None => {
            let result = py.detach(|| rt.block_on(interruptible(op)))?;
            result.map_err(to_py)?.into_py(py)
        }
        Some(done) => {
            let task = rt.spawn(async move {
                let result = op.await;
                Python::attach(|py| {
                    let (value, error) = match result.map_err(to_py).and_then(|out| out.into_py(py)) {
                        Ok(v) => (v, py.None()),
                        Err(e) => (py.None(), e.into_value(py).into_any()),
                    };
                    if let Err(e) = done.call1(py, (value, error)) {
                        // The loop may be closed; nobody is waiting then.
                        e.write_unraisable(py, None);
                    }
                });
            });
            Ok(Pending { task }.into_pyobject(py)?.into_any().unbind())
        }
    }
}

/// `op`, stopped when Python has a signal to handle (Ctrl-C).
async fn interruptible<F: Future>(op: F) -> PyResult<F::Output> {
    tokio::pin!(op);
    loop {
        tokio::select! {
            biased;
            out = &mut op => return Ok(out),
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                Python::attach(|py| py.check_signals())?;
            }
        }
    }
}

/// An operation running on the runtime for an asyncio caller.
#[pyclass(frozen, module = "wharf._native")]
pub struct Pending {
    task: tokio::task::JoinHandle<()>,
}

#[pymethods]
impl Pending {
    /// Stops the operation (an unfinished write is discarded); `done` is
    /// not called.
    fn cancel(&self) {
        self.task.abort();
    }
}
