"""``wharf://`` through fsspec: found by its entry point, fsspec's own
abstract test suite (copy, get, put, pipe, open) on local_filesystem and
S3 (s3s-fs), and pandas reading parquet through it."""

from __future__ import annotations

import posixpath
import uuid
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.tests import abstract

import wharf
from wharf.fsspec import WharfFileSystem

from conftest import local_config, s3s_config, unique


@pytest.fixture(scope="module")
def shared_local(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return local_config(tmp_path_factory.mktemp("fsspec") / "store")


@pytest.fixture(scope="module")
def shared_s3() -> dict[str, Any]:
    return s3s_config(unique("fsspec"))


class _Fixtures(abstract.AbstractFixtures):
    backend = ""

    @pytest.fixture
    def fs_join(self) -> Any:
        return posixpath.join

    @pytest.fixture
    def fs_path(self) -> str:
        return f"{self.backend}/fsspec-{uuid.uuid4().hex[:8]}"

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return False  # an object store: directories are implicit


class LocalFixtures(_Fixtures):
    backend = "local"

    @pytest.fixture
    def fs(self, shared_local: dict[str, Any]) -> WharfFileSystem:
        return WharfFileSystem(config=shared_local)


class S3Fixtures(_Fixtures):
    backend = "s3s"

    @pytest.fixture
    def fs(self, shared_s3: dict[str, Any]) -> WharfFileSystem:
        return WharfFileSystem(config=shared_s3)


class TestLocalCopy(abstract.AbstractCopyTests, LocalFixtures):
    pass


class TestLocalGet(abstract.AbstractGetTests, LocalFixtures):
    pass


class TestLocalPut(abstract.AbstractPutTests, LocalFixtures):
    pass


class TestLocalPipe(abstract.AbstractPipeTests, LocalFixtures):
    pass


class TestLocalOpen(abstract.AbstractOpenTests, LocalFixtures):
    pass


class TestS3Copy(abstract.AbstractCopyTests, S3Fixtures):
    pass


class TestS3Get(abstract.AbstractGetTests, S3Fixtures):
    pass


class TestS3Put(abstract.AbstractPutTests, S3Fixtures):
    pass


class TestS3Pipe(abstract.AbstractPipeTests, S3Fixtures):
    pass


class TestS3Open(abstract.AbstractOpenTests, S3Fixtures):
    pass


def write_toml(tmp_path: Path, store: Path) -> Path:
    store.mkdir(parents=True, exist_ok=True)
    toml = tmp_path / "wharf.toml"
    toml.write_text(
        f"""
default_backend = "lab"
[backends.lab]
plugin = "local_filesystem"
[backends.lab.config]
root = "/data"
[[backends.lab.grants.dirs]]
host = "{store}"
guest = "/data"
create = true
"""
    )
    return toml


def test_the_protocol_is_registered_by_its_entry_point(tmp_path: Path) -> None:
    toml = write_toml(tmp_path, tmp_path / "store")
    assert fsspec.get_filesystem_class("wharf") is WharfFileSystem
    fs = fsspec.filesystem("wharf", config=str(toml))
    assert isinstance(fs, WharfFileSystem)
    with fsspec.open("wharf://lab/a/b.bin", "wb", config=str(toml)) as f:
        f.write(b"x" * 100)
    with fsspec.open("wharf://lab/a/b.bin", "rb", config=str(toml)) as f:
        f.seek(90)
        assert f.read() == b"x" * 10
    assert fs.ls("lab", detail=False) == ["lab/a"]
    assert fs.ls("", detail=False) == ["lab", "local_filesystem"]
    assert fs.info("lab/a/b.bin")["size"] == 100 and fs.info("lab/a")["type"] == "directory"
    assert fs.cat_file("lab/a/b.bin", start=-3) == b"xxx"
    assert fs.cat_file("wharf://lab/a/b.bin", 10, 20) == b"x" * 10
    assert fs.exists("lab/a/b.bin") and not fs.exists("lab/a/none")
    fs.rm("lab/a", recursive=True)
    assert not fs.exists("lab/a/b.bin")
    with pytest.raises(FileNotFoundError):
        fs.info("lab/a/b.bin")
    with pytest.raises(FileNotFoundError):
        fs.ls("nope/x")
    with pytest.raises(FileNotFoundError):
        fs.cat_file("lab/missing")


def test_models_saved_by_the_service_are_files_of_the_filesystem(tmp_path: Path) -> None:
    cfg = local_config(tmp_path / "store")
    info = wharf.StorageService(cfg).save(b"weights", model="m", version="1")
    fs = WharfFileSystem(config=cfg)
    files = fs.find(f"local/{info.storage_path}")
    assert f"local/{info.storage_path}/wharf.json" in files
    (data,) = [f for f in files if not f.endswith("wharf.json")]
    assert fs.cat_file(data) == b"weights"


def test_pandas_reads_and_writes_parquet_through_wharf(tmp_path: Path) -> None:
    import pandas as pd
    toml = write_toml(tmp_path, tmp_path / "store")
    opts = {"config": str(toml)}
    frame = pd.DataFrame({"score": [0.1, 0.9, 0.5], "label": ["a", "b", "c"]})
    frame.to_parquet("wharf://lab/frames/scores.parquet", storage_options=opts)
    back = pd.read_parquet("wharf://lab/frames/scores.parquet", storage_options=opts)
    assert back.equals(frame)
    frame.to_csv("wharf://lab/frames/scores.csv", index=False, storage_options=opts)
    assert pd.read_csv("wharf://lab/frames/scores.csv", storage_options=opts).equals(frame)
