"""A platform-style model service on wharf: trains a detector, stores it
through wharf, keeps the platform's own five-field ``ModelStorageInfo`` in
its registry, and later loads the model back by that record alone.

    PYTHONPATH=target/python .tools/venv/bin/python examples/python/platform_service.py
    ... --config examples/test-servers.toml --backend s3s   # against S3

The platform's types below are its own (as in its storage audit); wharf's
enums and records map onto them by value, nothing else is shared.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import tempfile
from enum import Enum
from pathlib import Path

import joblib
import numpy as np
from sklearn.ensemble import IsolationForest

import wharf


# --- the platform's domain types, unchanged --------------------------------
class StorageBackend(Enum):
    LOCAL_FILESYSTEM = "local_filesystem"
    AWS_S3 = "aws_s3"
    AZURE_BLOB = "azure_blob"
    GCP_STORAGE = "gcp_storage"
    MLFLOW = "mlflow"
    HUGGINGFACE_HUB = "huggingface_hub"
    DATABASE = "database"
    REDIS = "redis"


class SerializationFormat(Enum):
    PICKLE = "pickle"
    JOBLIB = "joblib"
    ONNX = "onnx"
    TENSORFLOW_SAVEDMODEL = "tensorflow_savedmodel"
    PYTORCH_STATE_DICT = "pytorch_state_dict"
    HUGGINGFACE = "huggingface"
    MLFLOW_MODEL = "mlflow_model"
    SCIKIT_LEARN_PICKLE = "scikit_learn_pickle"
    JAX_PARAMS = "jax_params"


@dataclasses.dataclass(frozen=True)
class ModelStorageInfo:
    storage_backend: StorageBackend
    storage_path: str
    format: SerializationFormat
    size_bytes: int
    checksum: str


@dataclasses.dataclass(frozen=True)
class ModelVersion:
    model_id: str
    version: str
    storage_info: ModelStorageInfo


# --- the service -------------------------------------------------------------
class DetectorService:
    """Trains, stores and serves anomaly detectors; the registry is a JSON
    file of ModelVersions, as the platform's file repositories keep them."""

    def __init__(self, storage: wharf.StorageService, registry: Path):
        self.storage = storage
        self.registry = registry

    def train_and_store(self, model_id: str, data: np.ndarray) -> ModelVersion:
        detector = IsolationForest(n_estimators=50, random_state=0).fit(data)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{model_id}.joblib"
            joblib.dump(detector, path)
            info = self.storage.save(path, model=model_id, format=wharf.SerializationFormat.JOBLIB)
        # The platform keeps only its five fields, as its own types.
        record = ModelStorageInfo(
            storage_backend=StorageBackend(info.storage_backend),
            storage_path=info.storage_path,
            format=SerializationFormat(info.format),
            size_bytes=info.size_bytes,
            checksum=info.checksum,
        )
        version = ModelVersion(model_id, info.version or "", record)
        self._remember(version)
        return version

    def load(self, version: ModelVersion) -> IsolationForest:
        # The platform's record is enough: wharf reads it by value, finds the
        # backend of its kind, and checks size and sha256 before returning.
        return joblib.load(io.BytesIO(self.storage.load(version.storage_info)))

    def versions(self) -> list[ModelVersion]:
        if not self.registry.exists():
            return []
        rows = json.loads(self.registry.read_text())
        return [
            ModelVersion(
                r["model_id"],
                r["version"],
                ModelStorageInfo(
                    StorageBackend(r["storage_info"]["storage_backend"]),
                    r["storage_info"]["storage_path"],
                    SerializationFormat(r["storage_info"]["format"]),
                    r["storage_info"]["size_bytes"],
                    r["storage_info"]["checksum"],
                ),
            )
            for r in rows
        ]

    def _remember(self, v: ModelVersion) -> None:
        rows = [dataclasses.asdict(x) for x in self.versions()] + [dataclasses.asdict(v)]
        self.registry.write_text(json.dumps(rows, default=lambda e: e.value, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="a wharf.toml (default: the wharf command's)")
    ap.add_argument("--backend", help="a configured backend (default: the config's)")
    ap.add_argument("--registry", default="registry.json")
    args = ap.parse_args()

    storage = wharf.StorageService(args.config, backend=args.backend)
    service = DetectorService(storage, Path(args.registry))
    rng = np.random.default_rng(0)
    train = rng.normal(size=(500, 4))
    probe = np.vstack([rng.normal(size=(20, 4)), rng.normal(loc=6.0, size=(5, 4))])

    version = service.train_and_store("isolation-forest", train)
    expected = IsolationForest(n_estimators=50, random_state=0).fit(train).predict(probe)

    # Later, maybe in another process: from the registry alone.
    stored = service.versions()[-1]
    assert stored == version
    predicted = service.load(stored).predict(probe)
    assert (predicted == expected).all(), (predicted, expected)
    print(
        json.dumps(
            {
                "stored": dataclasses.asdict(stored),
                "outliers_found": int((predicted == -1).sum()),
                "same_predictions": True,
            },
            default=lambda e: e.value,
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
