"""wharf's exceptions: one hierarchy rooted at :class:`WharfError`, each
also the built-in exception people already catch.

- ``NotFound`` (also ``FileNotFoundError``): no such model or object.
- ``AlreadyExists`` (also ``FileExistsError``): a create-only save or write
  found one there.
- ``Denied`` (also ``PermissionError``): credentials refused, or I/O the
  adapter was not granted.
- ``InvalidInput`` (also ``ValueError``): a bad path, range, record or
  argument.
- ``IntegrityError``: bytes do not match the recorded size or sha256.
- ``ConfigError``: the configuration is wrong.
- ``Unsupported``: the backend cannot do this.
- ``Transient``: a retry may succeed (timeouts, throttling, 5xx, no
  connection).
- ``PreconditionFailed``: a conditional write found another version.
- ``WharfError`` itself for the rest (a backend's own failure, an adapter
  that broke its contract, a local I/O error).

The message is the one the ``wharf`` command prints (backend, operation and
path first); ``kind``, ``backend``, ``operation`` and ``path`` are
attributes.
"""

from __future__ import annotations

__all__ = [
    "WharfError",
    "NotFound",
    "AlreadyExists",
    "Denied",
    "InvalidInput",
    "IntegrityError",
    "ConfigError",
    "Unsupported",
    "Transient",
    "PreconditionFailed",
]


class WharfError(Exception):
    """Any wharf failure. ``kind`` is the contract's name of it
    (``not-found``, ``integrity``, ``backend``, ...)."""

    kind: str | None = None
    backend: str | None = None
    operation: str | None = None
    path: str | None = None


class NotFound(WharfError, FileNotFoundError):
    """No such model or object."""


class AlreadyExists(WharfError, FileExistsError):
    """Something is already there and the operation does not replace it."""


class Denied(WharfError, PermissionError):
    """Credentials were refused, or the adapter was not granted the I/O."""


class InvalidInput(WharfError, ValueError):
    """A malformed path, range, record or argument."""


class IntegrityError(WharfError):
    """Stored bytes do not match the recorded size or sha256."""


class ConfigError(WharfError):
    """The configuration is malformed or names something that does not exist."""


class Unsupported(WharfError):
    """The backend cannot do this."""


class Transient(WharfError):
    """A temporary failure: trying again may succeed."""


class PreconditionFailed(WharfError):
    """A conditional write found another version than it expected."""
