"""Every StorageService method over local_filesystem, S3 (s3s-fs) and Redis."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from pathlib import Path

import joblib
import numpy
import pytest

import wharf

from conftest import redis_config, s3s_config, unique


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_save_and_load_bytes(svc: wharf.StorageService) -> None:
    data = os.urandom(300_000)
    info = svc.save(data, model="det", version="1")
    assert info.storage_path == "models/det/1"
    assert (info.size_bytes, info.checksum) == (len(data), sha(data))
    assert info.backend_name == svc.backend and info.model_name == "det" and info.version == "1"
    assert svc.load(info) == data
    assert svc.load(info.storage_path) == data
    assert svc.load(info.to_dict()) == data
    assert svc.load(info.to_json()) == data
    # Create-only: the same version again is refused, the stored one kept.
    with pytest.raises(wharf.AlreadyExists) as e:
        svc.save(b"other", model="det", version="1")
    assert isinstance(e.value, FileExistsError)
    assert "already exists" in str(e.value)
    assert svc.load(info) == data


def test_save_at_a_path_detects_the_format(svc: wharf.StorageService) -> None:
    # Detection reads content: a real pickle, written by the pickle module.
    info = svc.save(pickle.dumps({"weights": list(range(100))}), "team/detector")
    assert info.storage_path == "team/detector"
    assert info.format is wharf.SerializationFormat.PICKLE
    info2 = svc.save(b"GGUF\x03\x00\x00\x00" + b"\x00" * 64, model="llm")
    assert info2.format is wharf.SerializationFormat.GGUF
    assert info2.version  # a fresh one
    info3 = svc.save(b"opaque", model="x", format=wharf.SerializationFormat.ONNX)
    assert info3.format is wharf.SerializationFormat.ONNX
    assert info3.files[0].path == "model.onnx"
    with pytest.raises(wharf.InvalidInput):
        svc.save(b"x", model="x", format="tarball")


def test_save_a_file_and_a_folder_and_load_to_disk(svc: wharf.StorageService, tmp_path: Path) -> None:
    f = tmp_path / "iso.joblib"
    joblib.dump({"weights": numpy.arange(6_000, dtype=numpy.float64)}, f)
    info = svc.save(f)
    assert info.model_name == "iso" and info.format is wharf.SerializationFormat.JOBLIB
    back = svc.load(info, dest=tmp_path / "back.joblib")
    assert back == info
    assert (tmp_path / "back.joblib").read_bytes() == f.read_bytes()
    with pytest.raises(wharf.AlreadyExists):
        svc.load(info, dest=tmp_path / "back.joblib")
    svc.load(info, dest=tmp_path / "back.joblib", overwrite=True)

    folder = tmp_path / "saved"
    (folder / "variables").mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"pb" * 1000)
    (folder / "variables" / "variables.index").write_bytes(b"idx")
    dinfo = svc.save(folder, model="tf", version="1")
    # Bytes made up here are no SavedModel: detection reads content (real
    # SavedModels are detected in tests/tests/formats.rs).
    assert dinfo.is_directory and dinfo.format is wharf.SerializationFormat.UNKNOWN
    svc.load(dinfo, dest=tmp_path / "tf")
    assert (tmp_path / "tf" / "variables" / "variables.index").read_bytes() == b"idx"
    with pytest.raises(wharf.InvalidInput, match="folder"):
        svc.load(dinfo)  # a folder does not fit in bytes
    with pytest.raises(wharf.NotFound):
        svc.save(tmp_path / "missing.bin")


def test_save_a_stream_without_reading_it_whole(svc: wharf.StorageService) -> None:
    class Chunks(io.RawIOBase):
        """Hands out 6 MiB in 64 KiB reads; read() with no size is refused."""

        def __init__(self) -> None:
            self.left = 6 << 20
            self.reads = 0

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            assert n > 0, "save() must not read the whole stream"
            self.reads += 1
            k = min(n, self.left, 64 << 10)
            self.left -= k
            return b"z" * k

    src = Chunks()
    info = svc.save(src, model="stream", version="1", name="weights.bin")
    assert info.size_bytes == 6 << 20 and info.checksum == sha(b"z" * (6 << 20))
    assert info.files[0].path == "weights.bin"
    assert src.reads >= 96
    with open(os.devnull, "rb") as empty:
        assert svc.save(empty, model="empty", version="1").size_bytes == 0
    with pytest.raises(wharf.InvalidInput, match="text mode"):
        svc.save(io.StringIO("x"), model="t")

    class Broken(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            raise OSError("disk on fire")

    with pytest.raises(wharf.WharfError, match="disk on fire"):
        svc.save(Broken(), model="broken", version="1")
    assert not svc.exists("models/broken/1")


def test_delete_exists_list_metadata_health(svc: wharf.StorageService) -> None:
    a = svc.save(b"a" * 10, model="lst", version="1")
    b = svc.save(b"b" * 20, model="lst", version="2")
    assert svc.exists(a) and svc.exists(b.storage_path)
    paths = svc.list_objects("models/lst/")
    assert paths == sorted(paths) and len(paths) == 4
    assert sum(p.endswith("/wharf.json") for p in paths) == 2
    assert list(svc.iter_objects("models/lst/", page_size=1)) == paths
    rows = list(svc.iter_object_info("models/lst/1/"))
    assert {r.size for r in rows if not r.path.endswith("wharf.json")} == {10}
    meta = svc.get_metadata(a)
    assert meta["checksum"] == a.checksum and meta["files"][0]["size_bytes"] == 10
    obj = svc.get_metadata(paths[0])
    assert obj["path"] == paths[0] and obj["size"] > 0
    h = svc.health()
    assert h["ok"] is True and h["backend"] == svc.backend and h["capabilities"]["read_range"] is True
    assert svc.delete(a) is True
    assert not svc.exists(a) and svc.delete(a) is False
    # A numbered version leaves a tombstone: its number is never reused.
    assert svc.list_objects("models/lst/1/") == ["models/lst/1/wharf.json"]
    with pytest.raises(wharf.AlreadyExists, match="never reused"):
        svc.save(b"a" * 10, model="lst", version="1")
    with pytest.raises(wharf.NotFound) as e:
        svc.load(a)
    assert isinstance(e.value, FileNotFoundError) and e.value.kind == "not-found"
    with pytest.raises(wharf.NotFound):
        svc.get_metadata("models/none")


def test_open_reads_ranges_and_verifies_in_order(svc: wharf.StorageService) -> None:
    data = os.urandom(3 << 20)
    info = svc.save(data, model="rng", version="1")
    with svc.open(info) as f:
        assert f.seekable()
        f.seek(1000)
        assert f.read(10) == data[1000:1010]
        f.seek(-5, io.SEEK_END)
        assert f.read() == data[-5:]
        f.seek(0)
        assert f.read() == data
    with svc.open(info.storage_path, buffer_size=4096) as f:
        got = b"".join(iter(lambda: f.read(70_000), b""))
        assert got == data


def test_five_field_records_name_the_object(svc: wharf.StorageService, tmp_path: Path) -> None:
    data = os.urandom(10_000)
    with svc.open("platform/detector.pkl", "wb") as w:
        w.write(data[:4000])
        w.write(data[4000:])
    record = {
        "storage_backend": svc._native.backend_kind(svc.backend),
        "storage_path": "platform/detector.pkl",
        "format": "pickle",
        "size_bytes": len(data),
        "checksum": sha(data),
    }
    assert svc.exists(record)
    assert svc.load(record) == data
    out = svc.load(record, dest=tmp_path / "d.pkl")
    assert out.storage_path == "platform/detector.pkl"
    assert (tmp_path / "d.pkl").read_bytes() == data
    with svc.open(record) as f:
        assert f.read() == data
    assert svc.get_metadata(record)["size"] == len(data)
    # A record whose checksum is not what is stored: nothing is returned or written.
    bad = {**record, "checksum": sha(b"something else")}
    with pytest.raises(wharf.IntegrityError, match="sha256"):
        svc.load(bad)
    with pytest.raises(wharf.IntegrityError):
        svc.load(bad, dest=tmp_path / "bad.pkl")
    assert not (tmp_path / "bad.pkl").exists()
    with pytest.raises(wharf.IntegrityError), svc.open(bad) as f:
        f.read()
    with pytest.raises(wharf.IntegrityError, match="bytes"):
        svc.load({**record, "size_bytes": len(data) + 1})
    # A wharf record trimmed to the five fields still loads its model.
    m = svc.save(data, model="trim", version="1")
    assert svc.load({k: v for k, v in m.to_dict().items() if k in record}) == data
    assert svc.delete(record) is True and not svc.exists(record)
    with pytest.raises(wharf.InvalidInput, match="sha256"):
        svc.load({**record, "checksum": "abc"})


def test_writer_discards_on_error_and_xb_is_create_only(svc: wharf.StorageService) -> None:
    with pytest.raises(RuntimeError), svc.open("w/obj", "wb") as w:
        w.write(b"half")
        raise RuntimeError("stop")
    assert not svc.exists("w/obj")
    with svc.open("w/obj", "xb") as w:
        w.write(b"whole")
    with pytest.raises(wharf.AlreadyExists):
        with svc.open("w/obj", "xb") as w:
            w.write(b"again")
    assert svc.load("w/obj") == b"whole"


def test_error_types_are_the_builtins() -> None:
    builtin = {
        "NotFound": FileNotFoundError,
        "AlreadyExists": FileExistsError,
        "Denied": PermissionError,
        "InvalidInput": ValueError,
    }
    names = dict(wharf._native.error_classes())
    for kind, cls_name in names.items():
        cls = getattr(wharf, cls_name)
        assert issubclass(cls, wharf.WharfError), kind
        if cls_name in builtin:
            assert issubclass(cls, builtin[cls_name])
    assert names["precondition-failed"] == "PreconditionFailed"
    assert names["unsupported"] == "Unsupported"
    assert names["transient"] == names["unreachable"] == "Transient"
    assert names["integrity"] == "IntegrityError" and names["config"] == "ConfigError"
    for name in wharf.errors.__all__:
        assert issubclass(getattr(wharf, name), wharf.WharfError)


def test_denied_transient_and_config_errors_from_real_failures(tmp_path: Path) -> None:
    bad_key = wharf.StorageService(s3s_config(unique("denied"), secret="wrong-secret"))
    with pytest.raises(wharf.Denied) as e:
        bad_key.save(b"x", model="m", version="1")
    assert isinstance(e.value, PermissionError) and "s3s" in str(e.value)
    assert "wrong-secret" not in str(e.value)
    # Nothing listens there: unreachable, which a retry may fix.
    closed = wharf.StorageService(redis_config("wharf:" + unique("closed"), address="127.0.0.1:9"))
    with pytest.raises(wharf.Transient) as t:
        closed.exists("models/x")
    assert t.value.backend == "redis"
    with pytest.raises(wharf.ConfigError, match="unknown backend `nope`"):
        wharf.StorageService({"backends": {}}, backend="nope")
    with pytest.raises(wharf.ConfigError, match="plugn"):
        wharf.StorageService({"backends": {"x": {"plugn": "local_filesystem"}}})
    missing = tmp_path / "missing.toml"
    with pytest.raises(wharf.ConfigError, match="missing.toml"):
        wharf.StorageService(missing)
    with pytest.raises(wharf.InvalidInput, match=r"\.\."):
        wharf.StorageService(s3s_config(unique("inv"))).save(b"x", "a/../b")


def test_records_pick_their_backend(tmp_path: Path) -> None:
    cfg = s3s_config(unique("pick"))
    cfg["backends"].update(
        {
            "disk": {
                "plugin": "local_filesystem",
                "config": {"root": "/data"},
                "grants": {"dirs": [{"host": str(tmp_path / "disk"), "guest": "/data", "create": True}]},
            }
        }
    )
    (tmp_path / "disk").mkdir()
    on_disk = wharf.StorageService(cfg, backend="disk")
    info = on_disk.save(b"here", model="m", version="1")
    assert info.backend_name == "disk" and info.storage_backend is wharf.StorageBackend.LOCAL_FILESYSTEM
    default = wharf.StorageService(cfg)  # saves go to s3s
    assert default.backend == "s3s"
    assert default.load(info) == b"here"  # the record says where it is
    assert not default.exists(info.storage_path)  # a bare path is the default backend's


def test_the_default_service_is_the_clis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WHARF_CONFIG", raising=False)
    monkeypatch.setenv("WHARF_DATA_DIR", str(tmp_path / "data"))
    svc = wharf.StorageService()
    assert svc.backend == "local_filesystem" and svc.backends == ["local_filesystem"]
    info = svc.save(b"model", model="cli", version="1")
    assert (tmp_path / "data" / "models" / "cli" / "1" / "wharf.json").is_file()
    assert json.loads((tmp_path / "data" / "models" / "cli" / "1" / "wharf.json").read_text())["info"][
        "checksum"
    ] == info.checksum
    # A ./wharf.toml that was never approved is refused, as by the CLI.
    (tmp_path / "wharf.toml").write_text('default_backend = "local_filesystem"\n')
    with pytest.raises(wharf.ConfigError, match="never approved"):
        wharf.StorageService()
    monkeypatch.setenv("WHARF_CONFIG", str(tmp_path / "wharf.toml"))
    assert wharf.StorageService().backend == "local_filesystem"


def test_backend_by_url(tmp_path: Path) -> None:
    """A URL instead of a configured name: a Redis URL with its password,
    and an S3 URL with the AWS variables, no config at all."""
    from conftest import server_env

    url = f"redis://:{server_env('WHARF_TEST_REDIS_PASSWORD')}@{server_env('WHARF_TEST_REDIS_ADDR')}/0"
    svc = wharf.StorageService(backend=url)
    assert svc.backend == "redis"
    model = unique("url-model").rstrip("/")
    info = svc.save(b"weights" * 1000, model=model)
    assert info.storage_backend == wharf.StorageBackend.REDIS
    assert svc.load(info) == b"weights" * 1000
    assert svc.delete(info)

    env = {
        "AWS_ACCESS_KEY_ID": server_env("WHARF_TEST_S3S_ACCESS_KEY"),
        "AWS_SECRET_ACCESS_KEY": server_env("WHARF_TEST_S3S_SECRET_KEY"),
        "AWS_ENDPOINT_URL_S3": server_env("WHARF_TEST_S3S_URL"),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        s3 = wharf.StorageService(backend=f"s3://{server_env('WHARF_TEST_BUCKET')}/{unique('url')}")
        info = s3.save(b"model bytes", model="m")
        assert info.version == "1"
        assert s3.load(info) == b"model bytes"
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    with pytest.raises(wharf.ConfigError, match="AZURE_STORAGE_CONNECTION_STRING"):
        wharf.StorageService(backend="az://container/prefix")
