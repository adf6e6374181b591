//! Where a transforming layer's error happened.

use crate::error::{Error, ErrorKind};
use std::fmt::Display;

/// Where a layer's error happened: the layer, backend, operation and path.
#[derive(Clone, Debug)]
pub(in crate::layers) struct Site {
    layer: &'static str,
    backend: String,
    op: &'static str,
    path: String,
}

impl Site {
    pub(in crate::layers) fn new(layer: &'static str, backend: &str, op: &'static str, path: &str) -> Self {
        Site {
            layer,
            backend: backend.to_string(),
            op,
            path: path.to_string(),
        }
    }

    /// An error of `kind` located here, its message prefixed by the layer.
    pub(in crate::layers) fn error(&self, kind: ErrorKind, message: impl Display) -> Error {
        Error::new(kind, format!("{} layer: {message}", self.layer)).at(&self.backend, self.op, Some(&self.path))
    }

    /// Stored bytes that are not what this layer wrote.
    pub(in crate::layers) fn integrity(&self, message: impl Display) -> Error {
        self.error(ErrorKind::Integrity, message)
    }

    /// An inner error, located here unless it already says where it is.
    pub(in crate::layers) fn locate(&self, e: Error) -> Error {
        e.at(&self.backend, self.op, Some(&self.path))
    }
}
