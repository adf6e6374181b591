//! The error every wharf operation returns: what went wrong, where, and
//! whether trying again can help.

use std::fmt;
use std::sync::Arc;

/// What kind of failure an [`Error`] is. Mirrors the contract's `error`
/// variant, plus the failures only the host can see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The object does not exist.
    NotFound,
    /// A `create` write found an object already there.
    AlreadyExists,
    /// An `update(etag)` write found another etag.
    PreconditionFailed,
    /// Credentials refused, or I/O the backend was not granted.
    Denied,
    /// Malformed input: a path, a range, a config value.
    Invalid,
    /// The backend cannot do this.
    Unsupported,
    /// Temporary: trying again may succeed.
    Transient,
    /// No connection to the storage could be made (refused, no route, name
    /// not found): nothing was sent, so trying again may succeed and cannot
    /// repeat an effect, even for a `create` write or copy.
    Unreachable,
    /// Any other failure reported by the storage.
    Backend,
    /// The adapter broke its contract: it trapped, hit a limit, or returned
    /// something malformed. The host discards the instance.
    Adapter,
    /// Stored bytes do not match their recorded checksum.
    Integrity,
    /// Configuration is malformed or names something that does not exist.
    Config,
    /// A local I/O failure of the host itself.
    Io,
}

impl ErrorKind {
    /// Whether retrying the same operation may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Transient | ErrorKind::Unreachable)
    }

    /// Whether the failure is known to have happened before anything
    /// reached the storage, so that even a non-idempotent request may be
    /// sent again.
    pub fn never_reached_storage(self) -> bool {
        self == ErrorKind::Unreachable
    }

    /// The contract's name of this kind (`not-found`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not-found",
            ErrorKind::AlreadyExists => "already-exists",
            ErrorKind::PreconditionFailed => "precondition-failed",
            ErrorKind::Denied => "denied",
            ErrorKind::Invalid => "invalid",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Transient => "transient",
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::Backend => "backend",
            ErrorKind::Adapter => "adapter",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Config => "config",
            ErrorKind::Io => "io",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A wharf error. Its message names the backend, the operation and the path
/// when they are known: `aws_s3: read `models/a.onnx`: not-found: ...`.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    backend: Option<String>,
    operation: Option<&'static str>,
    path: Option<String>,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

/// `Result<T, wharf::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            backend: None,
            operation: None,
            path: None,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source` (returned by
    /// [`std::error::Error::source`]).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// Sets the backend, operation and path the error happened in, keeping
    /// any that are already set.
    pub fn at(mut self, backend: &str, operation: &'static str, path: Option<&str>) -> Self {
        self.backend.get_or_insert_with(|| backend.to_string());
        self.operation.get_or_insert(operation);
        if self.path.is_none() {
            self.path = path.map(str::to_string);
        }
        self.drop_echo();
        self
    }

    /// An adapter's message that starts with the operation and path the
    /// host prints anyway (`write `x`: the object already exists`) loses
    /// that start, so the error does not say it twice.
    fn drop_echo(&mut self) {
        let Some(op) = self.operation else { return };
        let Some(rest) = self.message.strip_prefix(op) else {
            return;
        };
        let rest = match &self.path {
            Some(p) => ["`", "'", "\""]
                .iter()
                .find_map(|q| rest.strip_prefix(&format!(" {q}{p}{q}")))
                .unwrap_or(rest),
            None => rest,
        };
        if let Some(tail) = rest.strip_prefix(": ")
            && !tail.is_empty()
        {
            self.message = tail.to_string();
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The backend the error happened in.
    pub fn backend(&self) -> Option<&str> {
        self.backend.as_deref()
    }

    /// The operation (`read`, `write`, `list`, ...).
    pub fn operation(&self) -> Option<&str> {
        self.operation
    }

    /// The object path involved.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }

    /// The message without the location.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }

    /// The same error with `f` applied to its message.
    pub(crate) fn map_message(mut self, f: impl FnOnce(String) -> String) -> Self {
        self.message = f(std::mem::take(&mut self.message));
        self
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Invalid, message)
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    pub(crate) fn adapter(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Adapter, message)
    }

    /// A local I/O failure with what was being done; `e` stays its
    /// [`source`](std::error::Error::source).
    pub fn io(context: impl fmt::Display, e: std::io::Error) -> Self {
        let kind = match e.kind() {
            std::io::ErrorKind::NotFound => ErrorKind::NotFound,
            std::io::ErrorKind::PermissionDenied => ErrorKind::Denied,
            _ => ErrorKind::Io,
        };
        Error::new(kind, format!("{context}: {e}")).with_source(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(b) = &self.backend {
            write!(f, "{b}: ")?;
        }
        if let Some(op) = self.operation {
            write!(f, "{op}")?;
            if let Some(p) = &self.path {
                write!(f, " `{p}`")?;
            }
            f.write_str(": ")?;
        }
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adapter_message_does_not_repeat_the_operation_and_path() {
        let e = Error::new(
            ErrorKind::AlreadyExists,
            "write `x/wharf.json`: the object already exists",
        )
        .at("dir", "write", Some("x/wharf.json"));
        assert_eq!(
            e.to_string(),
            "dir: write `x/wharf.json`: already-exists: the object already exists"
        );
        let e = Error::new(ErrorKind::NotFound, "read 'a b': no such object").at("dir", "read", Some("a b"));
        assert_eq!(e.message(), "no such object");
        let e = Error::new(ErrorKind::Backend, "list: the server closed").at("dir", "list", None);
        assert_eq!(e.message(), "the server closed");
        // Another path, another operation, or nothing after: kept whole.
        for (msg, op) in [
            ("write `y`: exists", "write"),
            ("read `x`: gone", "write"),
            ("write `x`: ", "write"),
            ("writer failed", "write"),
        ] {
            let e = Error::new(ErrorKind::Backend, msg).at("dir", op, Some("x"));
            assert_eq!(e.message(), msg);
        }
    }

    #[test]
    fn io_errors_keep_their_source() {
        let e = Error::io("reading `x`", std::io::Error::other("disk on fire"));
        assert_eq!(e.kind(), ErrorKind::Io);
        let source = std::error::Error::source(&e).expect("the io error is the source");
        assert_eq!(source.to_string(), "disk on fire");
    }

    #[test]
    fn only_unreachable_never_reached_storage() {
        for kind in [ErrorKind::Transient, ErrorKind::Unreachable] {
            assert!(kind.is_retryable(), "{kind}");
        }
        assert!(ErrorKind::Unreachable.never_reached_storage());
        assert!(!ErrorKind::Transient.never_reached_storage());
        assert!(!ErrorKind::Backend.is_retryable());
    }
}
