"""The platform's enums and ModelStorageInfo: same values, same fields, and
the Python enum kept equal to Rust's ``SerializationFormat::ALL``."""

from __future__ import annotations

import dataclasses
import json
from enum import Enum

import pytest

import wharf
from wharf import _native


# The platform's own definitions, as the storage audit gives them.
class PlatformBackend(Enum):
    LOCAL_FILESYSTEM = "local_filesystem"
    AWS_S3 = "aws_s3"
    AZURE_BLOB = "azure_blob"
    GCP_STORAGE = "gcp_storage"
    MLFLOW = "mlflow"
    HUGGINGFACE_HUB = "huggingface_hub"
    DATABASE = "database"
    REDIS = "redis"


class PlatformFormat(Enum):
    PICKLE = "pickle"
    JOBLIB = "joblib"
    ONNX = "onnx"
    TENSORFLOW_SAVEDMODEL = "tensorflow_savedmodel"
    PYTORCH_STATE_DICT = "pytorch_state_dict"
    HUGGINGFACE = "huggingface"
    MLFLOW_MODEL = "mlflow_model"
    SCIKIT_LEARN_PICKLE = "scikit_learn_pickle"
    JAX_PARAMS = "jax_params"


@dataclasses.dataclass
class PlatformInfo:
    storage_backend: PlatformBackend
    storage_path: str
    format: PlatformFormat
    size_bytes: int
    checksum: str


def test_storage_backend_is_the_platforms_enum_by_value() -> None:
    assert [m.value for m in wharf.StorageBackend] == [m.value for m in PlatformBackend]
    assert [m.name for m in wharf.StorageBackend] == [m.name for m in PlatformBackend]
    for m in PlatformBackend:
        ours = wharf.StorageBackend(m.value)
        assert PlatformBackend(ours.value) is m
        assert PlatformBackend(ours) is m  # a str subclass: looked up by value
        assert wharf.StorageBackend(m) is ours  # the platform's member, by value
        assert ours == m.value and isinstance(ours, str)
    assert wharf.StorageBackend("aws_s3") is wharf.StorageBackend.AWS_S3
    # Same list as the Rust crate's well-known kinds.
    assert [m.value for m in wharf.StorageBackend] == _native.backends()


def test_serialization_format_is_the_platforms_plus_wharfs_and_matches_rust() -> None:
    ours = [m.value for m in wharf.SerializationFormat]
    assert ours[:9] == [m.value for m in PlatformFormat]
    assert [m.name for m in wharf.SerializationFormat][:9] == [m.name for m in PlatformFormat]
    # Rust's SerializationFormat::ALL, in order: a variant added there fails here.
    assert ours == _native.formats()
    for m in PlatformFormat:
        assert PlatformFormat(wharf.SerializationFormat(m).value) is m
    with pytest.raises(ValueError):
        wharf.SerializationFormat("tarball")


FIVE = {
    "storage_backend": "local_filesystem",
    "storage_path": "/path/to/model.pkl",
    "format": "pickle",
    "size_bytes": 1024,
    "checksum": "ab" * 32,
}


def test_a_five_field_record_is_accepted() -> None:
    info = wharf.ModelStorageInfo.from_dict(FIVE)
    assert info.storage_backend is wharf.StorageBackend.LOCAL_FILESYSTEM
    assert info.format is wharf.SerializationFormat.PICKLE
    assert info.is_object_record and info.checksum_algorithm == "sha256"
    assert [f.name for f in dataclasses.fields(info)][:5] == list(FIVE)
    assert info.platform_fields() == FIVE
    # The platform's own object, enum members and all.
    platform = PlatformInfo(PlatformBackend.LOCAL_FILESYSTEM, "/path/to/model.pkl", PlatformFormat.PICKLE, 1024, "ab" * 32)
    assert wharf.ModelStorageInfo.coerce(platform) == info
    assert PlatformInfo(
        PlatformBackend(info.storage_backend), info.storage_path, PlatformFormat(info.format), info.size_bytes, info.checksum
    ) == platform
    with pytest.raises(wharf.InvalidInput, match="size_bytes"):
        wharf.ModelStorageInfo.from_dict({k: v for k, v in FIVE.items() if k != "size_bytes"})


def test_record_round_trips_and_is_frozen(local: wharf.StorageService) -> None:
    info = local.save(b"\x80\x04K\x01.", model="m", version="1", name="m.pkl")
    assert wharf.ModelStorageInfo.from_json(info.to_json()) == info
    assert wharf.ModelStorageInfo.from_dict(json.loads(json.dumps(info.to_dict()))) == info
    assert list(info.to_dict())[:5] == list(FIVE)
    assert hash(info) == hash(wharf.ModelStorageInfo.from_json(info.to_json()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.size_bytes = 3  # type: ignore[misc]
    assert info.replace(size_bytes=3).size_bytes == 3
    assert info.format is wharf.SerializationFormat.PICKLE


def test_a_third_party_kind_stays_a_string() -> None:
    info = wharf.ModelStorageInfo.from_dict({**FIVE, "storage_backend": "webdav"})
    assert info.storage_backend == "webdav" and not isinstance(info.storage_backend, wharf.StorageBackend)
    assert info.to_dict()["storage_backend"] == "webdav"
