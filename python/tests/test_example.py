"""examples/python/platform_service.py runs end to end: trains an
IsolationForest, saves it with joblib through wharf, keeps the platform's
five-field record, loads the model back by it and predicts the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import server_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "python" / "platform_service.py"


@pytest.mark.parametrize("backend", ["default", "s3s"])
def test_platform_example(backend: str, tmp_path: Path) -> None:
    env = {**os.environ, "WHARF_DATA_DIR": str(tmp_path / "data")}
    env.pop("WHARF_CONFIG", None)
    args = [sys.executable, str(EXAMPLE), "--registry", str(tmp_path / "registry.json")]
    if backend == "s3s":
        server_env("WHARF_TEST_S3S_URL")
        args += ["--config", str(ROOT / "examples" / "test-servers.toml"), "--backend", "s3s"]
    out = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["same_predictions"] is True and result["outliers_found"] >= 5
    info = result["stored"]["storage_info"]
    assert list(info) == ["storage_backend", "storage_path", "format", "size_bytes", "checksum"]
    assert info["format"] == "joblib"
    assert info["storage_backend"] == ("aws_s3" if backend == "s3s" else "local_filesystem")
    registry = json.loads((tmp_path / "registry.json").read_text())
    assert registry[0]["storage_info"] == info
