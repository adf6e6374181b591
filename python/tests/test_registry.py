"""The model registry over local_filesystem, S3 (s3s-fs) and Redis:
numbered versions, references, aliases, transactions (sync and asyncio)
and gc."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest

import wharf


def test_numbered_versions_and_references(svc: wharf.StorageService) -> None:
    a = svc.save(b"one", model="det")
    b = svc.save(b"two", model="det")
    assert (a.version, a.storage_path) == ("1", "models/det/1")
    assert (b.version, b.storage_path) == ("2", "models/det/2")
    assert svc.resolve("det@1") == "models/det/1"
    assert svc.resolve("det@latest") == "models/det/2"
    assert svc.resolve("models/det/1") == "models/det/1"
    assert svc.load("det@1") == b"one"
    assert svc.load("det@latest") == b"two"
    assert svc.exists("det@2") and not svc.exists("det@3")
    assert svc.get_metadata("det@2")["version"] == "2"
    with pytest.raises(wharf.NotFound):
        svc.resolve("nothing@latest")
    with pytest.raises(wharf.NotFound):
        svc.load("det@9")
    # A deleted number is never reused.
    assert svc.delete("det@latest")
    assert not svc.exists("det@2")
    assert svc.resolve("det@latest") == "models/det/1"
    assert svc.save(b"three", model="det").version == "3"


def test_models_versions_and_aliases(svc: wharf.StorageService, tmp_path: Path) -> None:
    svc.save(b"v1", model="clf")
    f = tmp_path / "weights.bin"
    f.write_bytes(b"v2" * 100)
    svc.save(f, model="clf")
    svc.save(io.BytesIO(b"x"), model="other", name="x.bin")
    assert svc.models() == ["clf", "other"]
    assert svc.models("cl") == ["clf"]
    assert svc.models("zz") == []

    svc.set_alias("clf", "production", "1")
    svc.set_alias("clf", "staging", 2)
    assert svc.aliases("clf") == {"production": "1", "staging": "2"}
    assert svc.load("clf@production") == b"v1"
    rows = svc.versions("clf")
    assert [r.version for r in rows] == ["1", "2"]
    assert all(isinstance(r, wharf.VersionInfo) for r in rows)
    assert rows[0].aliases == ("production",) and rows[1].aliases == ("staging",)
    assert rows[0].storage_path == "models/clf/1"
    assert (rows[0].size_bytes, rows[1].size_bytes) == (2, 200)
    assert isinstance(rows[0].format, wharf.SerializationFormat)
    assert rows[0].created_at
    assert wharf.VersionInfo.from_dict(rows[1].to_dict()) == rows[1]

    # Moving an alias, and one naming a version that does not exist.
    svc.set_alias("clf", "production", "2")
    assert svc.resolve("clf@production") == "models/clf/2"
    with pytest.raises(wharf.NotFound):
        svc.set_alias("clf", "production", "7")
    assert svc.remove_alias("clf", "staging")
    assert not svc.remove_alias("clf", "staging")
    assert svc.aliases("clf") == {"production": "2"}
    assert svc.versions("nothing") == []


def test_a_version_an_alias_names_cannot_be_deleted(svc: wharf.StorageService) -> None:
    svc.save(b"a", model="m")
    svc.save(b"b", model="m")
    svc.set_alias("m", "prod", "2")
    with pytest.raises(wharf.PreconditionFailed):
        svc.delete("m@2")
    with pytest.raises(wharf.PreconditionFailed):
        svc.delete("m@prod")
    assert svc.load("m@2") == b"b"
    assert svc.remove_alias("m", "prod")
    assert svc.delete("m@2")
    assert not svc.exists("m@2")


def test_transaction_commit_makes_all_visible(svc: wharf.StorageService) -> None:
    svc.save(b"old", model="det")
    with svc.transaction() as tx:
        assert tx.open and tx.id
        a = tx.save(b"new", model="det")
        c = tx.save(io.BytesIO(b"cls"), model="cls", name="c.bin")
        assert a.version == "2" and c.version == "1"
        tx.set_alias("det", "production", a.version)
        assert tx.delete("det@1")
        assert not tx.delete("det@9")
        # Nothing is visible before the commit.
        assert not svc.exists("det@2") and not svc.exists("cls@1")
        assert svc.exists("det@1")
        assert svc.aliases("det") == {}
        assert svc.models() == ["det"]
    assert not tx.open
    assert svc.load("det@production") == b"new"
    assert svc.load("cls@latest") == b"cls"
    assert not svc.exists("det@1")
    assert [v.version for v in svc.versions("det")] == ["2"]
    assert svc.models() == ["cls", "det"]
    # Used after the commit: a clear error.
    with pytest.raises(wharf.InvalidInput, match="committed"):
        tx.save(b"late", model="det")
    with pytest.raises(wharf.InvalidInput):
        tx.commit()


def test_an_exception_in_the_block_leaves_nothing(svc: wharf.StorageService, tmp_path: Path) -> None:
    keep = svc.save(b"keep", model="det")
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a")
    with pytest.raises(RuntimeError, match="boom"):
        with svc.transaction() as tx:
            tx.save(b"new", model="det")
            tx.save(folder, model="dir")
            tx.delete(keep)
            tx.set_alias("det", "production", "1")
            raise RuntimeError("boom")
    assert not tx.open
    assert svc.load("det@latest") == b"keep"
    assert svc.models() == ["det"]
    assert svc.aliases("det") == {}
    assert [v.version for v in svc.versions("det")] == ["1"]
    with pytest.raises(wharf.InvalidInput, match="rolled back"):
        tx.delete("det@1")


def test_explicit_commit_and_rollback(svc: wharf.StorageService) -> None:
    tx = svc.transaction()
    tx.save(b"x", model="r")
    tx.rollback()
    assert not svc.exists("r@1")
    with pytest.raises(wharf.InvalidInput):
        tx.rollback()
    tx = svc.transaction()
    info = tx.save(b"y", model="r")
    tx.commit()
    assert svc.load(info) == b"y"
    # Committed inside the block: the block's end does nothing more.
    with svc.transaction() as tx:
        tx.save(b"z", model="r")
        tx.commit()
    assert svc.load("r@latest") == b"z"


def test_transaction_conflict_is_precondition_failed(svc: wharf.StorageService) -> None:
    svc.save(b"a", model="m")
    svc.save(b"b", model="m")
    first = svc.transaction()
    first.set_alias("m", "prod", "1")
    second = svc.transaction()
    with pytest.raises(wharf.PreconditionFailed):
        second.set_alias("m", "prod", "2")
    second.rollback()
    first.commit()
    assert svc.aliases("m") == {"prod": "1"}


def test_async_registry_and_transaction(config: dict[str, Any]) -> None:
    async def main() -> None:
        svc = wharf.AsyncStorageService(config)
        one = await svc.save(b"one", model="a")
        assert one.version == "1"
        async with svc.transaction() as tx:
            assert tx.id
            two = await tx.save(b"two", model="a")
            await tx.set_alias("a", "prod", two.version)
            assert not await svc.exists("a@2")
        assert not tx.open
        assert await svc.resolve("a@prod") == "models/a/2"
        assert await svc.aliases("a") == {"prod": "2"}
        assert [v.version for v in await svc.versions("a")] == ["1", "2"]
        assert await svc.models() == ["a"]
        with pytest.raises(wharf.PreconditionFailed):
            await svc.delete("a@prod")
        with pytest.raises(KeyError):
            async with svc.transaction() as tx:
                await tx.save(b"three", model="a")
                raise KeyError("boom")
        assert await svc.resolve("a@latest") == "models/a/2"
        tx2 = await svc.transaction()
        assert await tx2.delete("a@1")
        await tx2.commit()
        assert not await svc.exists("a@1")
        with pytest.raises(wharf.InvalidInput):
            await tx2.commit()
        await svc.set_alias("a", "old", "2")
        assert await svc.remove_alias("a", "old")
        report = await svc.gc(dry_run=True)
        assert report["dry_run"] is True

    asyncio.run(main())


def test_gc_dry_run(svc: wharf.StorageService) -> None:
    svc.save(b"kept", model="g")
    tx = svc.transaction()
    tx.save(b"pending", model="g")
    report = svc.gc(older_than=0, dry_run=True)
    assert report["dry_run"] is True
    assert {"items", "objects", "bytes", "scanned"} <= report.keys()
    assert report["scanned"] > 0
    assert {"path": tx.id, "bytes": 0, "why": "abandoned-transaction"} in report["items"]
    # A dry run removes nothing: the transaction still commits.
    tx.commit()
    assert svc.load("g@2") == b"pending"
    # Nothing is 24 hours old here: a real run removes nothing.
    report = svc.gc()
    assert report["dry_run"] is False and report["objects"] == 0
    assert svc.gc("1h", dry_run=True)["objects"] == 0
    assert [v.version for v in svc.versions("g")] == ["1", "2"]
    with pytest.raises(wharf.InvalidInput):
        svc.gc("soon")
