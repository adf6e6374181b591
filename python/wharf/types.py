"""The platform's types: ``StorageBackend``, ``SerializationFormat`` and
``ModelStorageInfo``, with the values and field names its own code uses, so
records and enum values pass between the two unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

__all__ = ["StorageBackend", "SerializationFormat", "StoredFile", "ModelStorageInfo", "VersionInfo"]


class _ByValue(str, Enum):
    """A ``str``-valued enum that also accepts another enum's member with
    the same value (the platform's own ``StorageBackend.AWS_S3``)."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        inner = getattr(value, "value", None)
        if isinstance(inner, str) and inner != value:
            try:
                return cls(inner)
            except ValueError:
                return None
        return None

    def __str__(self) -> str:
        return str(self.value)


class StorageBackend(_ByValue):
    """The backend kinds: the platform's eight values, spelled the same.

    A record written by a third-party plugin carries that plugin's name,
    which is not a member; :class:`ModelStorageInfo` keeps it as a ``str``.
    """

    LOCAL_FILESYSTEM = "local_filesystem"
    AWS_S3 = "aws_s3"
    AZURE_BLOB = "azure_blob"
    GCP_STORAGE = "gcp_storage"
    MLFLOW = "mlflow"
    HUGGINGFACE_HUB = "huggingface_hub"
    DATABASE = "database"
    REDIS = "redis"


class SerializationFormat(_ByValue):
    """How a model is serialized: the platform's nine values, then the ones
    wharf adds (``SAFETENSORS``, ``GGUF``, ``KERAS``, ``SKOPS``,
    ``XGBOOST``, ``LIGHTGBM``, ``TORCHSCRIPT``, which it detects from
    content, and ``UNKNOWN`` for content it does not recognise). A test keeps this
    list equal to the Rust crate's ``SerializationFormat::ALL``."""

    PICKLE = "pickle"
    JOBLIB = "joblib"
    ONNX = "onnx"
    TENSORFLOW_SAVEDMODEL = "tensorflow_savedmodel"
    PYTORCH_STATE_DICT = "pytorch_state_dict"
    HUGGINGFACE = "huggingface"
    MLFLOW_MODEL = "mlflow_model"
    SCIKIT_LEARN_PICKLE = "scikit_learn_pickle"
    JAX_PARAMS = "jax_params"
    # wharf's additions:
    SAFETENSORS = "safetensors"
    GGUF = "gguf"
    KERAS = "keras"
    SKOPS = "skops"
    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"
    TORCHSCRIPT = "torchscript"
    UNKNOWN = "unknown"


def _value(v: Any) -> Any:
    """An enum member (ours or the platform's) as its value."""
    return v.value if isinstance(v, Enum) else v


@dataclass(frozen=True)
class StoredFile:
    """One file of a model wharf saved."""

    path: str
    size_bytes: int
    checksum: str
    stored_size_bytes: int | None = None
    executable: bool = False

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StoredFile":
        return cls(
            path=d["path"],
            size_bytes=int(d["size_bytes"]),
            checksum=d["checksum"],
            stored_size_bytes=d.get("stored_size_bytes"),
            executable=bool(d.get("executable", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "size_bytes": self.size_bytes, "checksum": self.checksum}
        if self.stored_size_bytes is not None:
            d["stored_size_bytes"] = self.stored_size_bytes
        if self.executable:
            d["executable"] = True
        return d


_FIVE = ("storage_backend", "storage_path", "format", "size_bytes", "checksum")


@dataclass(frozen=True)
class ModelStorageInfo:
    """Where and how a model (or one object) is stored.

    The first five fields are the platform's own ``ModelStorageInfo``; the
    rest are wharf's, optional when read, so a record with only the five
    loads (its ``storage_path`` then names the object itself).
    """

    storage_backend: StorageBackend | str
    storage_path: str
    format: SerializationFormat
    size_bytes: int
    checksum: str
    checksum_algorithm: str = "sha256"
    backend_name: str | None = None
    model_name: str | None = None
    version: str | None = None
    is_directory: bool = False
    files: tuple[StoredFile, ...] = ()
    directories: tuple[str, ...] = ()
    created_at: str = ""
    encodings: tuple[Mapping[str, Any], ...] = field(default=(), hash=False)
    stored_size_bytes: int | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelStorageInfo":
        """From the JSON shape (``wharf put`` prints it); only the five
        platform fields are required."""
        missing = [k for k in _FIVE if k not in d]
        if missing:
            from .errors import InvalidInput

            raise InvalidInput(f"a ModelStorageInfo needs {', '.join(missing)}")
        backend = _value(d["storage_backend"])
        try:
            backend = StorageBackend(backend)
        except ValueError:
            pass  # a third-party plugin's kind stays a str
        return cls(
            storage_backend=backend,
            storage_path=d["storage_path"],
            format=SerializationFormat(_value(d["format"])),
            size_bytes=int(d["size_bytes"]),
            checksum=d["checksum"],
            checksum_algorithm=d.get("checksum_algorithm", "sha256"),
            backend_name=d.get("backend_name"),
            model_name=d.get("model_name"),
            version=d.get("version"),
            is_directory=bool(d.get("is_directory", False)),
            files=tuple(StoredFile.from_dict(f) for f in d.get("files", ())),
            directories=tuple(d.get("directories", ())),
            created_at=d.get("created_at", ""),
            encodings=tuple(d.get("encodings", ())),
            stored_size_bytes=d.get("stored_size_bytes"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> "ModelStorageInfo":
        return cls.from_dict(json.loads(text))

    @classmethod
    def coerce(cls, record: Any) -> "ModelStorageInfo":
        """A record as this type: itself, a dict, JSON text, or any object
        with the five attributes (the platform's own dataclass, whose
        enum members are read by value)."""
        if isinstance(record, cls):
            return record
        if isinstance(record, Mapping):
            return cls.from_dict(record)
        if isinstance(record, (str, bytes)) and record.lstrip()[:1] in ("{", b"{"):
            return cls.from_json(record)
        if all(hasattr(record, k) for k in _FIVE):
            d = {k: getattr(record, k) for k in _FIVE}
            for k in ("backend_name", "model_name", "version", "created_at"):
                if getattr(record, k, None) is not None:
                    d[k] = getattr(record, k)
            return cls.from_dict(d)
        from .errors import InvalidInput

        raise InvalidInput(f"not a ModelStorageInfo: {record!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape, as the Rust side writes it: the five fields
        first, optional ones only when set."""
        d: dict[str, Any] = {
            "storage_backend": _value(self.storage_backend),
            "storage_path": self.storage_path,
            "format": _value(self.format),
            "size_bytes": self.size_bytes,
            "checksum": self.checksum,
            "checksum_algorithm": self.checksum_algorithm,
        }
        for k in ("backend_name", "model_name", "version"):
            if getattr(self, k) is not None:
                d[k] = getattr(self, k)
        d["is_directory"] = self.is_directory
        d["files"] = [f.to_dict() for f in self.files]
        if self.directories:
            d["directories"] = list(self.directories)
        d["created_at"] = self.created_at
        if self.encodings:
            d["encodings"] = [dict(e) for e in self.encodings]
        if self.stored_size_bytes is not None:
            d["stored_size_bytes"] = self.stored_size_bytes
        return d

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def platform_fields(self) -> dict[str, Any]:
        """The five fields the platform's ``ModelStorageInfo`` takes, enum
        values as strings: ``PlatformInfo(**{k: ... })`` after mapping the
        two enums by value."""
        return {k: _value(getattr(self, k)) for k in _FIVE}

    def replace(self, **changes: Any) -> "ModelStorageInfo":
        return dataclasses.replace(self, **changes)

    @property
    def is_object_record(self) -> bool:
        """A record of one object (no ``files``: the platform's five-field
        records) rather than of a model wharf saved."""
        return not self.files


@dataclass(frozen=True)
class VersionInfo:
    """One version of a model in the registry (a row of
    ``StorageService.versions``): its ``version`` (``"1"``, ``"2"``, ... or a
    name it was saved under), where it is stored, when, how large, its
    format, and the aliases naming it."""

    version: str
    storage_path: str
    created_at: str
    size_bytes: int
    format: SerializationFormat
    aliases: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "VersionInfo":
        return cls(
            version=d["version"],
            storage_path=d["storage_path"],
            created_at=d.get("created_at", ""),
            size_bytes=int(d["size_bytes"]),
            format=SerializationFormat(_value(d["format"])),
            aliases=tuple(d.get("aliases", ())),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "storage_path": self.storage_path,
            "created_at": self.created_at,
            "size_bytes": self.size_bytes,
            "format": _value(self.format),
            "aliases": list(self.aliases),
        }
