"""Services over the servers ``scripts/test.sh`` starts (their addresses
come from its ``WHARF_TEST_*`` variables); a missing server fails the test
that needs it, it is never skipped."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest

import wharf

BACKENDS = ["local", "s3s", "redis"]


def server_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"${name} is not set: run the tests with ./scripts/test.sh, which starts the servers", pytrace=False)
    return value


def unique(name: str) -> str:
    return f"py-{name}-{os.getpid()}-{uuid.uuid4().hex[:8]}/"


def local_config(root: Path) -> dict[str, Any]:
    root.mkdir(parents=True, exist_ok=True)
    return {
        "default_backend": "local",
        "backends": {
            "local": {
                "plugin": "local_filesystem",
                "config": {"root": "/data"},
                "grants": {"dirs": [{"host": str(root), "guest": "/data", "create": True}]},
            }
        },
    }


def s3s_config(prefix: str, secret: str | None = None) -> dict[str, Any]:
    return {
        "default_backend": "s3s",
        "backends": {
            "s3s": {
                "plugin": "aws_s3",
                "config": {
                    "endpoint": server_env("WHARF_TEST_S3S_URL"),
                    "bucket": server_env("WHARF_TEST_BUCKET"),
                    "access_key_id": server_env("WHARF_TEST_S3S_ACCESS_KEY"),
                    "secret_access_key": secret or server_env("WHARF_TEST_S3S_SECRET_KEY"),
                    "prefix": prefix,
                },
                "grants": {"http": ["http://127.0.0.1:*"]},
            }
        },
    }


def redis_config(prefix: str, address: str | None = None) -> dict[str, Any]:
    addr = server_env("WHARF_TEST_REDIS_ADDR")
    return {
        "default_backend": "redis",
        "backends": {
            "redis": {
                "plugin": "redis",
                "config": {
                    "address": address or addr,
                    "password": server_env("WHARF_TEST_REDIS_PASSWORD"),
                    "prefix": prefix,
                },
                "grants": {"tcp": [address or addr]},
            }
        },
    }


def config_for(kind: str, tmp_path: Path) -> dict[str, Any]:
    if kind == "local":
        return local_config(tmp_path / "store")
    if kind == "s3s":
        return s3s_config(unique("s3s"))
    if kind == "redis":
        return redis_config("wharf:" + unique("redis"))
    raise AssertionError(kind)


@pytest.fixture(params=BACKENDS)
def config(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """A config with one backend, over each of local_filesystem, s3s-fs and redis."""
    return config_for(request.param, tmp_path)


@pytest.fixture
def svc(config: dict[str, Any]) -> wharf.StorageService:
    return wharf.StorageService(config)


@pytest.fixture
def local(tmp_path: Path) -> wharf.StorageService:
    return wharf.StorageService(local_config(tmp_path / "store"))


@pytest.fixture
def s3s() -> wharf.StorageService:
    return wharf.StorageService(s3s_config(unique("s3s")))
