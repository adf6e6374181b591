//! `wharf._native.Tx`: one `wharf::Transaction` held for Python. Its
//! methods take `&mut self` (and `commit` / `rollback` take it whole), so it
//! sits behind an async mutex, `None`-like once finished; every call runs
//! on the runtime with the GIL released, or, given `done`, calls back (the
//! asyncio transaction). A `Tx` dropped while still open rolls back in the
//! background, as `wharf::Transaction` does when dropped.

use crate::errors::to_py;
use crate::runtime::{Out, run, runtime};
use crate::service::{json, save_options};
use crate::stream::python_file;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::Mutex;
use wharf::{Error, ErrorKind, SaveOptions, Transaction};

enum State {
    Open(Transaction),
    /// How it ended: "committed", "rolled back", "failed to commit".
    Done(&'static str),
}

struct Inner {
    id: String,
    state: Mutex<State>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let State::Open(tx) = std::mem::replace(self.state.get_mut(), State::Done("dropped")) {
            // `Transaction`'s drop rolls back on the runtime it finds.
            let rt = runtime();
            let _entered = rt.enter();
            drop(tx);
        }
    }
}

impl Inner {
    /// The open transaction in `state`; a clear error once it ended.
    fn open<'a>(&self, state: &'a mut State) -> wharf::Result<&'a mut Transaction> {
        match state {
            State::Open(tx) => Ok(tx),
            State::Done(how) => Err(self.ended(how)),
        }
    }

    fn ended(&self, how: &str) -> Error {
        Error::new(
            ErrorKind::Invalid,
            format!("transaction {} was {how}; start a new one", self.id),
        )
    }

    /// Takes the transaction out to commit or roll it back.
    async fn finish(&self, how: &'static str) -> wharf::Result<Transaction> {
        let mut state = self.state.lock().await;
        match std::mem::replace(&mut *state, State::Done(how)) {
            State::Open(tx) => Ok(tx),
            State::Done(before) => {
                *state = State::Done(before);
                Err(self.ended(before))
            }
        }
    }
}

#[pyclass(frozen, module = "wharf._native")]
pub struct Tx {
    inner: Arc<Inner>,
}

impl Tx {
    pub fn new(tx: Transaction) -> Self {
        Tx {
            inner: Arc::new(Inner {
                id: tx.id().to_string(),
                state: Mutex::new(State::Open(tx)),
            }),
        }
    }

    fn with<F, Fut>(&self, py: Python<'_>, done: Option<Py<PyAny>>, f: F) -> PyResult<Py<PyAny>>
    where
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: std::future::Future<Output = wharf::Result<Out>> + Send + 'static,
    {
        run(py, done, f(self.inner.clone()))
    }
}

fn opts(
    model: Option<String>,
    version: Option<String>,
    path: Option<String>,
    format: Option<&str>,
) -> PyResult<SaveOptions> {
    save_options(model, version, path, format).map_err(to_py)
}

#[pymethods]
impl Tx {
    /// The transaction's id (as errors and `_wharf/tx/` name it).
    #[getter]
    fn id(&self) -> &str {
        &self.inner.id
    }

    /// Whether it is still open (neither committed nor rolled back).
    #[getter]
    fn open(&self) -> bool {
        self.inner
            .state
            .try_lock()
            .map(|s| matches!(*s, State::Open(_)))
            .unwrap_or(true)
    }

    #[pyo3(signature = (data, name, model=None, version=None, path=None, format=None, done=None))]
    #[expect(clippy::too_many_arguments, reason = "keyword arguments of a Python method")]
    fn save_bytes(
        &self,
        py: Python<'_>,
        data: PyBackedBytes,
        name: String,
        model: Option<String>,
        version: Option<String>,
        path: Option<String>,
        format: Option<&str>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let opts = opts(model, version, path, format)?;
        self.with(py, done, |inner| async move {
            let mut state = inner.state.lock().await;
            let tx = inner.open(&mut state)?;
            let info = tx.save_stream(&name, std::io::Cursor::new(data), &opts).await?;
            Ok(json(&info))
        })
    }

    #[pyo3(signature = (source, model=None, version=None, path=None, format=None, done=None))]
    #[expect(clippy::too_many_arguments, reason = "keyword arguments of a Python method")]
    fn save_path(
        &self,
        py: Python<'_>,
        source: PathBuf,
        model: Option<String>,
        version: Option<String>,
        path: Option<String>,
        format: Option<&str>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let opts = opts(model, version, path, format)?;
        self.with(py, done, |inner| async move {
            let meta = std::fs::metadata(&source).map_err(|e| Error::io(format!("`{}`", source.display()), e))?;
            let mut state = inner.state.lock().await;
            let tx = inner.open(&mut state)?;
            let info = if meta.is_dir() {
                tx.save_dir(&source, &opts).await?
            } else {
                tx.save_file(&source, &opts).await?
            };
            Ok(json(&info))
        })
    }

    #[pyo3(signature = (file, name, model=None, version=None, path=None, format=None, done=None))]
    #[expect(clippy::too_many_arguments, reason = "keyword arguments of a Python method")]
    fn save_file_object(
        &self,
        py: Python<'_>,
        file: Py<PyAny>,
        name: String,
        model: Option<String>,
        version: Option<String>,
        path: Option<String>,
        format: Option<&str>,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let opts = opts(model, version, path, format)?;
        self.with(py, done, |inner| async move {
            let mut state = inner.state.lock().await;
            let tx = inner.open(&mut state)?;
            let reader = python_file(file, name.clone());
            let info = tx.save_stream(&name, reader, &opts).await?;
            Ok(json(&info))
        })
    }

    /// Deletes a version (a storage path or a reference) at the commit;
    /// whether it existed.
    #[pyo3(signature = (reference, done=None))]
    fn delete(&self, py: Python<'_>, reference: String, done: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        self.with(py, done, |inner| async move {
            let mut state = inner.state.lock().await;
            Ok(Out::Bool(inner.open(&mut state)?.delete(&reference).await?))
        })
    }

    /// Points `model@alias` at `version` at the commit.
    #[pyo3(signature = (model, alias, version, done=None))]
    fn set_alias(
        &self,
        py: Python<'_>,
        model: String,
        alias: String,
        version: String,
        done: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.with(py, done, |inner| async move {
            let mut state = inner.state.lock().await;
            inner.open(&mut state)?.set_alias(&model, &alias, &version).await?;
            Ok(Out::None)
        })
    }

    /// Makes all of it visible at once (on a conflict, none of it).
    #[pyo3(signature = (done=None))]
    fn commit(&self, py: Python<'_>, done: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        self.with(py, done, |inner| async move {
            let tx = inner.finish("committed").await?;
            if let Err(e) = tx.commit().await {
                *inner.state.lock().await = State::Done("not committed (the commit failed)");
                return Err(e);
            }
            Ok(Out::None)
        })
    }

    /// Drops all of it: none of it ever becomes visible.
    #[pyo3(signature = (done=None))]
    fn rollback(&self, py: Python<'_>, done: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        self.with(py, done, |inner| async move {
            inner.finish("rolled back").await?.rollback().await?;
            Ok(Out::None)
        })
    }
}
