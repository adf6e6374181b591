"""wharf: store ML model artifacts in any storage through sandboxed
WebAssembly adapters.

>>> import wharf
>>> svc = wharf.StorageService()                 # local_filesystem, ./wharf-data
>>> info = svc.save("model.onnx")                # streamed, sha256-checksummed
>>> svc.load(info, dest="back.onnx")             # verified before it appears

``StorageService`` / ``AsyncStorageService`` are the platform's
``StorageOperations``; ``ModelStorageInfo``, ``StorageBackend`` and
``SerializationFormat`` its types; errors derive from ``WharfError`` and the
built-ins (``NotFound`` is a ``FileNotFoundError``...); ``wharf.fsspec``
is the ``wharf://`` filesystem.

A service may be shared by threads, and keeps working in a child process
after ``fork`` (it rebuilds its runtime and connections there).
"""

from ._native import __version__
from .errors import (
    AlreadyExists,
    ConfigError,
    Denied,
    IntegrityError,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    Transient,
    Unsupported,
    WharfError,
)
from .service import AsyncStorageService, AsyncTransaction, ObjectInfo, StorageService, Transaction
from .types import ModelStorageInfo, SerializationFormat, StorageBackend, StoredFile, VersionInfo

__all__ = [
    "__version__",
    "StorageService",
    "AsyncStorageService",
    "Transaction",
    "AsyncTransaction",
    "ObjectInfo",
    "VersionInfo",
    "ModelStorageInfo",
    "StoredFile",
    "StorageBackend",
    "SerializationFormat",
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
