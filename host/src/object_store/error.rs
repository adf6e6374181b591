//! wharf errors as object_store's, so callers that branch on
//! `NotFound`, `AlreadyExists`, `Precondition`... keep working.

use crate::error::{Error, ErrorKind};
use object_store::Error as OsError;

/// The `store` name object_store's `Generic` errors carry.
pub(super) const STORE: &str = "wharf";

/// `e`, met on `path`, as object_store's error of the same meaning; the
/// wharf error (backend, operation, path, message) stays its source.
pub(super) fn to_os(e: Error, path: &str) -> OsError {
    let path = path.to_string();
    match e.kind() {
        ErrorKind::NotFound => OsError::NotFound {
            path,
            source: Box::new(e),
        },
        ErrorKind::AlreadyExists => OsError::AlreadyExists {
            path,
            source: Box::new(e),
        },
        ErrorKind::PreconditionFailed => OsError::Precondition {
            path,
            source: Box::new(e),
        },
        ErrorKind::Denied => OsError::PermissionDenied {
            path,
            source: Box::new(e),
        },
        ErrorKind::Unsupported => OsError::NotSupported { source: Box::new(e) },
        _ => generic(e),
    }
}

/// A write under `PutMode::Update`: a missing object is a failed
/// precondition, as object_store's stores answer.
pub(super) fn update_to_os(e: Error, path: &str) -> OsError {
    match e.kind() {
        ErrorKind::NotFound => OsError::Precondition {
            path: path.to_string(),
            source: Box::new(e),
        },
        _ => to_os(e, path),
    }
}

/// Any error as object_store's `Generic`.
pub(super) fn generic(e: impl std::error::Error + Send + Sync + 'static) -> OsError {
    OsError::Generic {
        store: STORE,
        source: Box::new(e),
    }
}

/// A failure of this mapping itself (no wharf error behind it).
pub(super) fn message(msg: impl Into<String>) -> OsError {
    OsError::Generic {
        store: STORE,
        source: msg.into().into(),
    }
}

/// What the mapping cannot do (see the README's table).
pub(super) fn not_implemented(operation: &str) -> OsError {
    OsError::NotImplemented {
        operation: operation.to_string(),
        implementer: "wharf::object_store::WharfStore".to_string(),
    }
}
