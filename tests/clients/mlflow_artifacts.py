"""The official MLflow client for wharf's cross-client checks.

    mlflow_artifacts.py download <path>       downloads mlflow-artifacts:/<path>
                                              through the tracking server,
                                              prints "<sha256> <size>"
    mlflow_artifacts.py log <size> <seed>     logs a file of deterministic bytes
                                              as a run's artifact; prints
                                              "<artifact path> <sha256> <size>",
                                              the path relative to the
                                              server's artifact root
    mlflow_artifacts.py list <dir>            prints the names the client lists
                                              under mlflow-artifacts:/<dir>

The tracking server comes from WHARF_MLFLOW_URL.
"""

import hashlib
import os
import random
import sys
import tempfile
import uuid

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
from mlflow.artifacts import download_artifacts, list_artifacts  # noqa: E402

PREFIX = "mlflow-artifacts:/"


def sha256_file(path):
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def main():
    url = os.environ["WHARF_MLFLOW_URL"]
    mlflow.set_tracking_uri(url)
    cmd, args = sys.argv[1], sys.argv[2:]
    with tempfile.TemporaryDirectory() as tmp:
        if cmd == "download":
            local = download_artifacts(artifact_uri=PREFIX + args[0], tracking_uri=url, dst_path=tmp)
            digest, size = sha256_file(local)
            print(digest, size)
        elif cmd == "log":
            size, seed = int(args[0]), int(args[1])
            local = os.path.join(tmp, "model.bin")
            rng = random.Random(seed)
            with open(local, "wb") as f:
                left = size
                while left:
                    n = min(left, 1 << 20)
                    f.write(rng.randbytes(n))
                    left -= n
            mlflow.set_experiment(f"wharf-cross-{uuid.uuid4().hex}")
            with mlflow.start_run() as run:
                mlflow.log_artifact(local)
                root = run.info.artifact_uri
            if not root.startswith(PREFIX):
                sys.exit(f"the run's artifact URI {root} is not proxied")
            digest, size = sha256_file(local)
            print(f"{root[len(PREFIX):].lstrip('/')}/model.bin", digest, size)
        elif cmd == "list":
            for info in list_artifacts(artifact_uri=PREFIX + args[0], tracking_uri=url):
                print(info.path.rsplit("/", 1)[-1])
        else:
            sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
